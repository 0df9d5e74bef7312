/* Fixed worker pool over a bounded ring buffer; see workq.h. */
#include "config.h"

#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

typedef struct job {
  aip_job_fn fn;
  void *arg;
} job;

struct aip_workq {
  pthread_mutex_t mu;
  pthread_cond_t has_work; /* a job was queued, or the pool is stopping */
  pthread_cond_t idle;     /* a job finished */
  job *ring;
  size_t cap, head, count;
  size_t running;
  bool closed;   /* no more submits */
  bool stopping; /* workers exit */
  unsigned nthreads;
  pthread_t *threads;
};

static void *worker(void *arg) {
  aip_workq *q = arg;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (q->count == 0 && !q->stopping) pthread_cond_wait(&q->has_work, &q->mu);
    if (q->stopping) break;
    job j = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->running++;
    pthread_mutex_unlock(&q->mu);
    j.fn(j.arg, false);
    pthread_mutex_lock(&q->mu);
    q->running--;
    pthread_cond_broadcast(&q->idle);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

aip_workq *aip_workq_create(unsigned workers, size_t capacity) {
  if (workers == 0 || capacity == 0) return NULL;
  aip_workq *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->ring = calloc(capacity, sizeof *q->ring);
  q->threads = calloc(workers, sizeof *q->threads);
  if (!q->ring || !q->threads) goto fail;
  q->cap = capacity;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->has_work, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->idle, &ca);
  pthread_condattr_destroy(&ca);
  for (; q->nthreads < workers; q->nthreads++) {
    if (pthread_create(&q->threads[q->nthreads], NULL, worker, q) != 0) {
      aip_workq_destroy(q);
      return NULL;
    }
  }
  return q;
fail:
  free(q->ring);
  free(q->threads);
  free(q);
  return NULL;
}

bool aip_workq_submit(aip_workq *q, aip_job_fn fn, void *arg) {
  pthread_mutex_lock(&q->mu);
  bool ok = !q->closed && q->count < q->cap;
  if (ok) {
    q->ring[(q->head + q->count) % q->cap] = (job){fn, arg};
    q->count++;
    pthread_cond_signal(&q->has_work);
  }
  pthread_mutex_unlock(&q->mu);
  return ok;
}

size_t aip_workq_pending(aip_workq *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->count + q->running;
  pthread_mutex_unlock(&q->mu);
  return n;
}

bool aip_workq_drain(aip_workq *q, int64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&q->mu);
  q->closed = true;
  int rc = 0;
  while ((q->count > 0 || q->running > 0) && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&q->idle, &q->mu, &until);
  bool done = q->count == 0 && q->running == 0;
  pthread_mutex_unlock(&q->mu);
  return done;
}

void aip_workq_destroy(aip_workq *q) {
  if (!q) return;
  pthread_mutex_lock(&q->mu);
  q->closed = true;
  q->stopping = true;
  pthread_cond_broadcast(&q->has_work);
  pthread_mutex_unlock(&q->mu);
  for (unsigned i = 0; i < q->nthreads; i++) pthread_join(q->threads[i], NULL);
  while (q->count > 0) { /* never ran: let the owner release them */
    job j = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    j.fn(j.arg, true);
  }
  pthread_cond_destroy(&q->has_work);
  pthread_cond_destroy(&q->idle);
  pthread_mutex_destroy(&q->mu);
  free(q->ring);
  free(q->threads);
  free(q);
}
