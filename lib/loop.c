/* The execution core: one epoll loop thread, libcurl's multi socket
 * interface, a timer heap and a task queue (see loop.h and ADR 0020).
 *
 * Threads meet in one place only: the task queue (a mutex-protected list
 * and an eventfd that wakes the loop when the list stops being empty).
 * Everything else here belongs to the loop thread. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "config.h"

#define EASY_POOL_MAX 256
#define EVENTS_MAX 128

typedef struct loop {
  pthread_t thread;
  int ep, wake;
  CURLM *multi;
  /* the task queue: the only state shared with other threads */
  pthread_mutex_t mu;
  aip_task *head, *tail;
  bool stop;
  /* loop thread only */
  aip_timer **heap;
  size_t nheap, capheap;
  aip_timer curl_timer;
  CURL *easy_pool[EASY_POOL_MAX];
  size_t neasy;
  size_t transfers;
} loop;

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static loop *_Atomic the_loop; /* set under start_mu */
static _Thread_local bool on_loop_thread;

bool aip_loop_on_thread(void) { return on_loop_thread; }

/* ---- timers: a binary min-heap ------------------------------------------ */

static bool before(const aip_timer *a, const aip_timer *b) {
  return a->when_ns < b->when_ns;
}

static void heap_set(loop *l, size_t i, aip_timer *t) {
  l->heap[i] = t;
  t->idx = i + 1;
}

static void sift_up(loop *l, size_t i) {
  aip_timer *t = l->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(t, l->heap[p])) break;
    heap_set(l, i, l->heap[p]);
    i = p;
  }
  heap_set(l, i, t);
}

static void sift_down(loop *l, size_t i) {
  aip_timer *t = l->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= l->nheap) break;
    if (c + 1 < l->nheap && before(l->heap[c + 1], l->heap[c])) c++;
    if (!before(l->heap[c], t)) break;
    heap_set(l, i, l->heap[c]);
    i = c;
  }
  heap_set(l, i, t);
}

static void heap_remove(loop *l, size_t i) {
  l->heap[i]->idx = 0;
  l->nheap--;
  if (i == l->nheap) return;
  heap_set(l, i, l->heap[l->nheap]);
  sift_down(l, i);
  sift_up(l, l->heap[i]->idx - 1);
}

void aip_timer_stop(aip_timer *t) {
  if (t->idx) heap_remove(the_loop, t->idx - 1);
}

void aip_timer_start(aip_timer *t, int64_t when_ns) {
  loop *l = the_loop;
  aip_timer_stop(t);
  if (l->nheap == l->capheap) {
    size_t cap = l->capheap ? l->capheap * 2 : 64;
    aip_timer **h = realloc(l->heap, cap * sizeof *h);
    if (!h) abort(); /* a timer that never fires would hang a request */
    l->heap = h;
    l->capheap = cap;
  }
  t->when_ns = when_ns;
  heap_set(l, l->nheap++, t);
  sift_up(l, l->nheap - 1);
}

static void run_timers(loop *l) {
  int64_t now = aip_now_ns();
  while (l->nheap && l->heap[0]->when_ns <= now) {
    aip_timer *t = l->heap[0];
    heap_remove(l, 0);
    t->fn(t);
  }
}

static int wait_ms(loop *l) {
  if (!l->nheap) return -1;
  int64_t d = l->heap[0]->when_ns - aip_now_ns();
  if (d <= 0) return 0;
  int64_t ms = (d + 999999) / 1000000;
  return ms > 60000 ? 60000 : (int)ms;
}

/* ---- libcurl ------------------------------------------------------------- */

static void read_done(loop *l) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(l->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    aip_transfer *x = NULL;
    CURL *e = m->easy_handle;
    CURLcode result = m->data.result;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(l->multi, e);
    l->transfers--;
    if (x) {
      x->active = false;
      x->done(x, result);
    }
  }
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sp) {
  (void)e;
  (void)sp;
  loop *l = ud;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(l->ep, EPOLL_CTL_DEL, s, NULL);
    return 0;
  }
  struct epoll_event ev = {.data.fd = s};
  if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
  if (epoll_ctl(l->ep, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
    epoll_ctl(l->ep, EPOLL_CTL_ADD, s, &ev);
  return 0;
}

static void on_curl_timer(aip_timer *t) {
  (void)t;
  loop *l = the_loop;
  int running;
  curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  read_done(l);
}

static int on_timer_change(CURLM *m, long ms, void *ud) {
  (void)m;
  loop *l = ud;
  if (ms < 0)
    aip_timer_stop(&l->curl_timer);
  else
    aip_timer_start(&l->curl_timer, aip_now_ns() + (int64_t)ms * 1000000);
  return 0;
}

bool aip_loop_add_transfer(aip_transfer *x) {
  loop *l = the_loop;
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
  if (curl_multi_add_handle(l->multi, x->easy) != CURLM_OK) return false;
  x->active = true;
  l->transfers++;
  return true;
}

void aip_loop_remove_transfer(aip_transfer *x) {
  if (!x->active) return;
  curl_multi_remove_handle(the_loop->multi, x->easy);
  the_loop->transfers--;
  x->active = false;
}

CURL *aip_loop_easy_get(void) {
  loop *l = the_loop;
  if (l->neasy) {
    CURL *e = l->easy_pool[--l->neasy];
    curl_easy_reset(e);
    return e;
  }
  return curl_easy_init();
}

void aip_loop_easy_put(CURL *e) {
  loop *l = the_loop;
  if (!e) return;
  if (l->neasy < EASY_POOL_MAX)
    l->easy_pool[l->neasy++] = e;
  else
    curl_easy_cleanup(e);
}

/* ---- tasks --------------------------------------------------------------- */

static void run_tasks(loop *l) {
  uint64_t v;
  while (read(l->wake, &v, sizeof v) > 0) {
  }
  pthread_mutex_lock(&l->mu);
  aip_task *t = l->head;
  l->head = l->tail = NULL;
  pthread_mutex_unlock(&l->mu);
  while (t) {
    aip_task *next = t->next; /* fn may post t again */
    t->next = NULL;
    t->fn(t);
    t = next;
  }
}

static void *loop_main(void *arg) {
  loop *l = arg;
  on_loop_thread = true;
  struct epoll_event ev[EVENTS_MAX];
  for (;;) {
    pthread_mutex_lock(&l->mu);
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    if (stop) {
      /* Tasks still queued only release what they hold (a cancel that
       * arrived after its call ended, say): run them, then stop. */
      run_tasks(l);
      break;
    }
    int n = epoll_wait(l->ep, ev, EVENTS_MAX, wait_ms(l));
    for (int i = 0; i < n; i++) {
      if (ev[i].data.fd == l->wake) {
        run_tasks(l);
        continue;
      }
      int flags = 0, running;
      if (ev[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
      if (ev[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
      if (ev[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(l->multi, ev[i].data.fd, flags, &running);
      read_done(l);
    }
    run_timers(l);
  }
  return NULL;
}

static void loop_free(loop *l) {
  if (l->multi) curl_multi_cleanup(l->multi);
  for (size_t i = 0; i < l->neasy; i++) curl_easy_cleanup(l->easy_pool[i]);
  if (l->ep >= 0) close(l->ep);
  if (l->wake >= 0) close(l->wake);
  free(l->heap);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

static loop *loop_start(void) {
  loop *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  pthread_mutex_init(&l->mu, NULL);
  l->ep = epoll_create1(EPOLL_CLOEXEC);
  l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  l->multi = curl_multi_init();
  l->curl_timer.fn = on_curl_timer;
  struct epoll_event ev = {.events = EPOLLIN};
  if (l->ep < 0 || l->wake < 0 || !l->multi) goto fail;
  ev.data.fd = l->wake;
  if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &ev) != 0) goto fail;
  curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
  curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
  curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
  /* the loop's own thread never takes signals meant for the process */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&l->thread, NULL, loop_main, l);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) goto fail;
  return l;
fail:
  loop_free(l);
  return NULL;
}

aiplat_status aip_loop_post(aip_task *t) {
  loop *l = the_loop;
  if (!l) {
    pthread_mutex_lock(&start_mu);
    if (!the_loop) the_loop = loop_start();
    l = the_loop;
    pthread_mutex_unlock(&start_mu);
    if (!l)
      return aip_fail(NULL, AIPLAT_ERR_INTERNAL,
                      "core: cannot start the event loop thread");
  }
  t->next = NULL;
  pthread_mutex_lock(&l->mu);
  bool was_empty = l->head == NULL;
  if (l->tail)
    l->tail->next = t;
  else
    l->head = t;
  l->tail = t;
  pthread_mutex_unlock(&l->mu);
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w = write(l->wake, &one, sizeof one);
    (void)w; /* a full counter still wakes the loop */
  }
  return AIPLAT_OK;
}

void aip_loop_shutdown(void) {
  pthread_mutex_lock(&start_mu);
  loop *l = the_loop;
  if (l) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    ssize_t w = write(l->wake, &one, sizeof one);
    (void)w;
    pthread_join(l->thread, NULL);
    loop_free(l);
    the_loop = NULL;
  }
  pthread_mutex_unlock(&start_mu);
}
