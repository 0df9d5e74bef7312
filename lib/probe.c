/* The backend readiness probe with an immediate re-check (lib/probe.h). */
#include "probe.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "aiplat/log.h"
#include "internal.h"

struct aip_probe {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  aip_probe_fn fn;
  void (*cancel)(void *ud);
  void *ud;
  int64_t interval_ms;
  bool started, stop, kicked, checked, ok;
  uint64_t count;
  char msg[AIPLAT_HEALTH_MESSAGE_MAX];
};

static void deadline_after(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* Wait until @ms have passed, the probe stops or (with @kick) a kick. */
static void wait_for(aip_probe *p, int64_t ms, bool kick) {
  struct timespec ts;
  deadline_after(&ts, ms);
  while (!p->stop && !(kick && p->kicked) &&
         pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT) {
  }
}

static void *probe_main(void *arg) {
  aip_probe *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    p->kicked = false;
    pthread_mutex_unlock(&p->mu);
    char msg[AIPLAT_HEALTH_MESSAGE_MAX] = "";
    bool ok = p->fn(msg, sizeof msg, p->ud);
    aiplat_error_clear();
    pthread_mutex_lock(&p->mu);
    if (ok != p->ok || !p->checked)
      aiplat_log(ok ? AIPLAT_LOG_INFO : AIPLAT_LOG_WARNING,
                 ok ? "backend ready" : "backend not ready");
    p->ok = ok;
    p->checked = true;
    p->count++;
    snprintf(p->msg, sizeof p->msg, "%s", msg);
    pthread_cond_broadcast(&p->cv);
    /* A kick during the gap is kept and honoured right after it. */
    wait_for(p, AIP_PROBE_MIN_GAP_MS, false);
    wait_for(p, p->interval_ms - AIP_PROBE_MIN_GAP_MS, true);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

aiplat_status aip_probe_create(aip_probe **out, aip_probe_fn fn,
                               void (*cancel)(void *user_data),
                               void *user_data, int64_t interval_ms) {
  *out = NULL;
  aip_probe *p = calloc(1, sizeof *p);
  if (!p) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "probe: out of memory");
  p->fn = fn;
  p->cancel = cancel;
  p->ud = user_data;
  p->interval_ms = interval_ms > AIP_PROBE_MIN_GAP_MS ? interval_ms
                                                      : AIP_PROBE_MIN_GAP_MS + 1;
  snprintf(p->msg, sizeof p->msg, "not checked yet");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  *out = p;
  return AIPLAT_OK;
}

static bool probe_check(char *msg, size_t msglen, void *user_data) {
  aip_probe *p = user_data;
  pthread_mutex_lock(&p->mu);
  bool ok = p->checked && p->ok;
  snprintf(msg, msglen, "%s", p->msg);
  pthread_mutex_unlock(&p->mu);
  return ok;
}

aiplat_status aip_probe_add_check(aip_probe *p, aiplat_health *health,
                                  const char *name) {
  pthread_mutex_lock(&p->mu);
  bool again = p->started;
  /* A second call must not forget the thread the first one started. */
  if (!again) {
    /* The probe's thread never takes signals meant for the process: a
     * service started afterwards waits for SIGTERM on its main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    p->started = pthread_create(&p->thread, NULL, probe_main, p) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  bool ok = p->started;
  pthread_mutex_unlock(&p->mu);
  if (again) return aip_fail(NULL, AIPLAT_ERR_EXISTS, "the probe already runs");
  if (!ok)
    return aip_fail(NULL, AIPLAT_ERR_INTERNAL,
                    "cannot start the probe's thread");
  return aiplat_health_add_check(health, name, probe_check, p);
}

void aip_probe_kick(aip_probe *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->kicked = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void aip_probe_note(aip_probe *p, aiplat_status st) {
  if (!p) return;
  bool suspect = st == AIPLAT_ERR_CONNECTION || st == AIPLAT_ERR_TIMEOUT ||
                 st == AIPLAT_ERR_UNAVAILABLE || st == AIPLAT_ERR_SERVER;
  /* Cancelled calls say nothing about the server. */
  if (st == AIPLAT_ERR_CANCELLED || st == AIPLAT_ERR_CLOSED) return;
  pthread_mutex_lock(&p->mu);
  if (p->started && p->checked && suspect == p->ok) {
    p->kicked = true;
    pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
}

bool aip_probe_ready(aip_probe *p) {
  pthread_mutex_lock(&p->mu);
  bool ok = p->checked && p->ok;
  pthread_mutex_unlock(&p->mu);
  return ok;
}

uint64_t aip_probe_count(aip_probe *p) {
  pthread_mutex_lock(&p->mu);
  uint64_t n = p->count;
  pthread_mutex_unlock(&p->mu);
  return n;
}

void aip_probe_destroy(aip_probe *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  bool started = p->started;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (started) {
    if (p->cancel) p->cancel(p->ud);
    pthread_join(p->thread, NULL);
  }
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
