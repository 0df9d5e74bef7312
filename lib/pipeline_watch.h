/* The pipeline endpoint's table of runs and the watcher thread that polls
 * them and publishes PipelineStatus events (internal; the endpoint is
 * include/aiplat/pipeline.h, docs/decisions/0017-bridges-and-cli.md).
 *
 * The table holds the runs being watched (at most AIP_PWATCH_MAX_WATCHED) and the
 * last AIP_PWATCH_MAX_REMEMBERED finished ones, so that ai.pipeline.query answers
 * from memory for runs this bridge started. One thread schedules a poll of
 * every watched run each interval, through the asynchronous status call
 * (the polls overlap; their completions run on the library's event loop
 * thread); request handlers never block on a run. */
#ifndef AIP_PIPELINE_WATCH_H
#define AIP_PIPELINE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aiplat/bus.h"
#include "aiplat/message.h"
#include "aiplat/pipeline.h"

#define AIP_PWATCH_MAX_WATCHED 256
#define AIP_PWATCH_MAX_REMEMBERED 256
#define AIP_PWATCH_MESSAGE_MAX 512
/* Consecutive failed polls are tolerated this long, then the run is lost. */
#define AIP_PWATCH_GIVE_UP_MS (INT64_C(10) * 60 * 1000)

typedef struct aip_pwatch aip_pwatch;

/* A run's state as events and queries report it. */
typedef struct aip_prun {
  char run_id[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  char ns[64];
  char pipeline[254];
  char request_id[128];
  aiplat_pipeline_engine engine;
  aiplat_pipeline_phase phase;
  char message[AIP_PWATCH_MESSAGE_MAX];
  aiplat_status error; /* the run was lost (NOT_FOUND, AUTH, ...) */
  char error_message[AIP_PWATCH_MESSAGE_MAX];
  int64_t created_ms, updated_ms, finished_ms;
  bool terminal;
} aip_prun;

/* @poller is the handle the polls use (owned by the caller, used only by
 * the watcher, closed by aip_pwatch_stop()); events are published on the
 * bus of aip_pwatch_set_bus() (none before: logged and dropped). NULL when
 * out of memory or the thread cannot start. */
aip_pwatch *aip_pwatch_start(aiplat_pipeline *poller, int64_t interval_ms);

/* The bus the events go to (borrowed; NULL: none). Any thread. */
void aip_pwatch_set_bus(aip_pwatch *w, aiplat_bus *bus);

/* Reserve room for one more watched run before submitting; false when
 * AIP_PWATCH_MAX_WATCHED runs are watched already. */
bool aip_pwatch_reserve(aip_pwatch *w);
/* Give a reservation back (the submit failed). */
void aip_pwatch_unreserve(aip_pwatch *w);
/* Turn a reservation into a watched run (state copied) and publish its
 * first event. */
void aip_pwatch_add(aip_pwatch *w, const aip_prun *s);

/* A copy of the state of @run_id (and @engine, unless 0) if the table
 * knows it. */
bool aip_pwatch_find(aip_pwatch *w, const char *run_id,
                   aiplat_pipeline_engine engine, aip_prun *out);

/* Stop polling (cancels the polls in flight and waits for them) and
 * publishing; log the runs still watched. Idempotent; NULL is a no-op. The
 * table still answers aip_pwatch_find(). */
void aip_pwatch_stop(aip_pwatch *w);

/* Stop, then free. NULL is a no-op. */
void aip_pwatch_destroy(aip_pwatch *w);

/* ---- shared with the endpoint ---------------------------------------------- */

/* A PipelineStatus message of @s (new; aiplat_msg_destroy()). */
aiplat_msg *aip_prun_msg(const aip_prun *s);

#endif
