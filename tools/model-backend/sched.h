/* Waiting and working without a thread per request: a timer thread that runs
 * callbacks when they are due, and pools of worker threads that run jobs.
 *
 * The HTTP side suspends a connection, hands it to one of these, and the
 * callback resumes it. So that the resume can never come before the
 * suspend, both take an "arm" callback that runs on the calling thread,
 * under their lock, before the entry becomes visible to their threads.
 * Once closed they refuse new entries (arm is then not run), and closing
 * runs everything they still hold, so nothing stays suspended. */
#ifndef BK_SCHED_H
#define BK_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*bk_sched_fn)(void *arg);

/* ---- timer --------------------------------------------------------------- */

typedef struct bk_timer bk_timer;

/* Start the timer thread; NULL when it cannot. */
bk_timer *bk_timer_create(void);

/* Run fire(arg) on the timer thread once aip_now_ms() >= due_ms, entries due
 * at the same time in the order they were added; arm(arg) (may be NULL) runs
 * first, on this thread. false (and arm not run) when the timer is closed or
 * memory runs out. */
bool bk_timer_at(bk_timer *t, int64_t due_ms, bk_sched_fn arm, bk_sched_fn fire,
                 void *arg);

/* Entries waiting (for tests and logs). */
size_t bk_timer_pending(bk_timer *t);

/* Refuse new entries, fire every pending one now (due or not), join the
 * thread. Idempotent. */
void bk_timer_close(bk_timer *t);

/* Close, then free. NULL is a no-op. */
void bk_timer_destroy(bk_timer *t);

/* ---- worker pool --------------------------------------------------------- */

/* A job: run(arg) on a worker. Owned by the submitter (usually embedded in
 * the request's state); it must live until run has been called. */
typedef struct bk_job {
  bk_sched_fn run;
  void *arg;
  struct bk_job *next; /* the pool's queue */
} bk_job;

typedef struct bk_pool bk_pool;

/* Start n (1..64) workers; NULL when they cannot be started. */
bk_pool *bk_pool_create(int n);

/* Queue job (first in, first out); arm(job->arg) (may be NULL) runs first,
 * on this thread. false (and arm not run) once the pool is closed. */
bool bk_pool_submit(bk_pool *p, bk_job *job, bk_sched_fn arm);

/* Refuse new jobs, let the workers run every queued one, join them.
 * Idempotent. */
void bk_pool_close(bk_pool *p);

/* Close, then free. NULL is a no-op. */
void bk_pool_destroy(bk_pool *p);

#endif
