/* pipeline-bridge's table of runs and the watcher thread that polls them
 * and publishes PipelineStatus events (docs/decisions/0017-bridges-and-cli.md).
 *
 * The table holds the runs being watched (at most PB_MAX_WATCHED) and the
 * last PB_MAX_REMEMBERED finished ones, so that ai.pipeline.query answers
 * from memory for runs this bridge started. One thread schedules a poll of
 * every watched run each interval, through the asynchronous status call
 * (the polls overlap; their completions run on the library's event loop
 * thread); request handlers never block on a run. */
#ifndef PB_WATCH_H
#define PB_WATCH_H

#include <aiplat/aiplat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_MAX_WATCHED 256
#define PB_MAX_REMEMBERED 256
#define PB_MESSAGE_MAX 512
/* Consecutive failed polls are tolerated this long, then the run is lost. */
#define PB_GIVE_UP_MS (INT64_C(10) * 60 * 1000)

typedef struct pb_watch pb_watch;

/* A run's state as events and queries report it. */
typedef struct pb_run_state {
  char run_id[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  char ns[64];
  char pipeline[254];
  char request_id[128];
  aiplat_pipeline_engine engine;
  aiplat_pipeline_phase phase;
  char message[PB_MESSAGE_MAX];
  aiplat_status error; /* the run was lost (NOT_FOUND, AUTH, ...) */
  char error_message[PB_MESSAGE_MAX];
  int64_t created_ms, updated_ms, finished_ms;
  bool terminal;
} pb_run_state;

/* @poller is the handle the polls use (owned by the caller, used only by
 * the watcher, closed by pb_watch_stop()); @bus publishes the events. */
pb_watch *pb_watch_start(aiplat_pipeline *poller, aiplat_bus *bus,
                         int64_t interval_ms);

/* Reserve room for one more watched run before submitting; false when
 * PB_MAX_WATCHED runs are watched already. */
bool pb_watch_reserve(pb_watch *w);
/* Give a reservation back (the submit failed). */
void pb_watch_unreserve(pb_watch *w);
/* Turn a reservation into a watched run (state copied) and publish its
 * first event. */
void pb_watch_add(pb_watch *w, const pb_run_state *s);

/* A copy of the state of @run_id (and @engine, unless 0) if the table
 * knows it. */
bool pb_watch_find(pb_watch *w, const char *run_id,
                   aiplat_pipeline_engine engine, pb_run_state *out);

/* Stop polling (cancels a poll in progress), log the runs still watched,
 * free. NULL is a no-op. */
void pb_watch_stop(pb_watch *w);

/* ---- shared with the service ------------------------------------------------
 */

/* A PipelineStatus message of @s (new; aiplat_msg_destroy()). */
aiplat_msg *pb_status_msg(const pb_run_state *s);
int64_t pb_wall_ms(void);

#endif
