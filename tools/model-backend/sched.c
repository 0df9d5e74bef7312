/* The backend's timer thread (a binary heap of due times) and worker pools
 * (a FIFO of jobs); see sched.h. */
#include "sched.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* Entries fired per pass, outside the lock. */
#define FIRE_BATCH 256
#define POOL_MAX 64

/* ---- timer --------------------------------------------------------------- */

typedef struct tentry {
  int64_t due;
  uint64_t seq; /* ties keep the order of addition */
  bk_sched_fn fire;
  void *arg;
} tentry;

struct bk_timer {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC: entries added, closing */
  pthread_t th;
  bool started, closed;
  tentry *heap;
  size_t n, cap;
  uint64_t seq;
};

static bool earlier(const tentry *a, const tentry *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_push(bk_timer *t, tentry e) {
  size_t i = t->n++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!earlier(&e, &t->heap[up])) break;
    t->heap[i] = t->heap[up];
    i = up;
  }
  t->heap[i] = e;
}

static tentry heap_pop(bk_timer *t) {
  tentry top = t->heap[0], last = t->heap[--t->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const tentry *best = &last;
    if (l < t->n && earlier(&t->heap[l], best)) m = l, best = &t->heap[l];
    if (r < t->n && earlier(&t->heap[r], best)) m = r;
    if (m == i) break;
    t->heap[i] = t->heap[m];
    i = m;
  }
  if (t->n > 0) t->heap[i] = last;
  return top;
}

static void wait_until(bk_timer *t, int64_t due_ms) {
  /* aip_now_ms() is CLOCK_MONOTONIC, the clock of the condition. */
  struct timespec ts = {(time_t)(due_ms / 1000),
                        (long)(due_ms % 1000) * 1000000L};
  pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

static void *timer_main(void *arg) {
  bk_timer *t = arg;
  tentry batch[FIRE_BATCH];
  pthread_mutex_lock(&t->mu);
  for (;;) {
    if (t->n == 0) {
      if (t->closed) break;
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    int64_t now = aip_now_ms();
    if (!t->closed && t->heap[0].due > now) {
      wait_until(t, t->heap[0].due);
      continue;
    }
    size_t k = 0;
    while (k < FIRE_BATCH && t->n > 0 && (t->closed || t->heap[0].due <= now))
      batch[k++] = heap_pop(t);
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < k; i++) batch[i].fire(batch[i].arg);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

bk_timer *bk_timer_create(void) {
  bk_timer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  pthread_mutex_init(&t->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&t->th, NULL, timer_main, t) != 0) {
    bk_timer_destroy(t);
    return NULL;
  }
  t->started = true;
  return t;
}

bool bk_timer_at(bk_timer *t, int64_t due_ms, bk_sched_fn arm, bk_sched_fn fire,
                 void *arg) {
  pthread_mutex_lock(&t->mu);
  if (t->closed) goto refuse;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 1024;
    tentry *h = realloc(t->heap, cap * sizeof *h);
    if (!h) goto refuse;
    t->heap = h;
    t->cap = cap;
  }
  if (arm) arm(arg);
  tentry e = {due_ms, t->seq++, fire, arg};
  heap_push(t, e);
  if (t->heap[0].seq == e.seq) pthread_cond_signal(&t->cv); /* new first */
  pthread_mutex_unlock(&t->mu);
  return true;
refuse:
  pthread_mutex_unlock(&t->mu);
  return false;
}

size_t bk_timer_pending(bk_timer *t) {
  pthread_mutex_lock(&t->mu);
  size_t n = t->n;
  pthread_mutex_unlock(&t->mu);
  return n;
}

void bk_timer_close(bk_timer *t) {
  pthread_mutex_lock(&t->mu);
  bool join = t->started;
  t->closed = true;
  t->started = false;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  if (join) pthread_join(t->th, NULL);
}

void bk_timer_destroy(bk_timer *t) {
  if (!t) return;
  bk_timer_close(t);
  free(t->heap);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* ---- worker pool --------------------------------------------------------- */

struct bk_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* jobs queued, closing */
  bk_job *head, *tail;
  bool closed;
  int n; /* workers started (and not yet joined) */
  pthread_t th[POOL_MAX];
};

static void *pool_main(void *arg) {
  bk_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    bk_job *j = p->head;
    if (!j) {
      if (p->closed) break;
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    j->run(j->arg); /* may free the job */
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

bk_pool *bk_pool_create(int n) {
  if (n < 1 || n > POOL_MAX) return NULL;
  bk_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (; p->n < n; p->n++)
    if (pthread_create(&p->th[p->n], NULL, pool_main, p) != 0) {
      bk_pool_destroy(p);
      return NULL;
    }
  return p;
}

bool bk_pool_submit(bk_pool *p, bk_job *job, bk_sched_fn arm) {
  pthread_mutex_lock(&p->mu);
  if (p->closed) {
    pthread_mutex_unlock(&p->mu);
    return false;
  }
  if (arm) arm(job->arg);
  job->next = NULL;
  if (p->tail)
    p->tail->next = job;
  else
    p->head = job;
  p->tail = job;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return true;
}

void bk_pool_close(bk_pool *p) {
  pthread_mutex_lock(&p->mu);
  p->closed = true;
  int n = p->n;
  p->n = 0;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < n; i++) pthread_join(p->th[i], NULL);
}

void bk_pool_destroy(bk_pool *p) {
  if (!p) return;
  bk_pool_close(p);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
