/* The execution core (internal, not installed): one event loop thread per
 * process that drives every HTTP transfer of the library through libcurl's
 * multi interface, plus timers and tasks posted from any thread. The number
 * of threads does not grow with the number of transfers in flight.
 *
 * The loop starts with the first task posted and stops when the library's
 * last reference is dropped (aip_global_unref). Everything that runs on it
 * (tasks, timers, transfer completions) must not block: see
 * docs/decisions/0020-execution-core.md. */
#ifndef AIPLAT_LOOP_H
#define AIPLAT_LOOP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* A unit of work run once on the loop thread. Embed one in the object it
 * belongs to; a task may be posted again after it has run. */
typedef struct aip_task {
  struct aip_task *next;
  void (*fn)(struct aip_task *t);
} aip_task;

/* A one-shot timer on the loop thread. Embed and zero it; start and stop
 * only on the loop thread. */
typedef struct aip_timer {
  int64_t when_ns; /* CLOCK_MONOTONIC */
  size_t idx;      /* position in the heap + 1; 0 when not armed */
  void (*fn)(struct aip_timer *t);
} aip_timer;

/* A libcurl transfer on the loop's multi handle. @done runs on the loop
 * thread once the transfer has ended; the easy handle is removed from the
 * multi handle before. */
typedef struct aip_transfer {
  CURL *easy;
  void (*done)(struct aip_transfer *x, CURLcode result);
  bool active;
} aip_transfer;

/* Run @t->fn on the loop thread, soon, in posting order. Any thread
 * (including the loop's own). Fails only when the loop cannot start. */
aiplat_status aip_loop_post(aip_task *t);
/* True on the loop thread: blocking calls refuse to run there. */
bool aip_loop_on_thread(void);

/* Loop thread only. */
void aip_timer_start(aip_timer *t, int64_t when_ns);
void aip_timer_stop(aip_timer *t);
/* Add a configured easy handle; false when curl refuses it. */
bool aip_loop_add_transfer(aip_transfer *x);
/* Stop a transfer early: the easy handle leaves the multi handle (an
 * unfinished connection is closed); @done is not called. */
void aip_loop_remove_transfer(aip_transfer *x);
/* An easy handle from the loop's pool (reset), and back. */
CURL *aip_loop_easy_get(void);
void aip_loop_easy_put(CURL *e);

/* Stop the loop thread (from aip_global_unref when the last reference
 * goes). Tasks still queued run first; no transfer may be running. */
void aip_loop_shutdown(void);


#endif
