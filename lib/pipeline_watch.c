/* The run watcher of the pipeline endpoint: one thread schedules the polls of the
 * watched runs; each poll is an asynchronous status call whose completion
 * (on the library's event loop thread) applies the answer and publishes a
 * PipelineStatus event on ai.pipeline.status.{runId} at each change, until
 * a terminal phase (or the run is lost). Polls of different runs overlap,
 * so one slow engine does not hold up the others; a run is never polled
 * twice at once. */
#include "pipeline_watch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aiplat/log.h"
#include "aiplat/subject.h"
#include "internal.h"

typedef struct slot {
  bool used, active; /* active: being watched; else remembered (finished) */
  bool polling;      /* a status call is in flight */
  aip_prun s;
  int64_t next_poll;     /* monotonic ms */
  int64_t failing_since; /* monotonic ms of the first failed poll in a row, 0 */
  uint64_t finished_seq; /* order of finishing, to forget the oldest first */
} slot;

struct aip_pwatch {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  aiplat_pipeline *poller;
  aiplat_bus *bus;
  int64_t interval_ms;
  bool stop, stopped;
  size_t active, reserved;
  size_t polls; /* status calls in flight */
  uint64_t seq;
  slot slots[AIP_PWATCH_MAX_WATCHED + AIP_PWATCH_MAX_REMEMBERED];
};

aiplat_msg *aip_prun_msg(const aip_prun *s) {
  aiplat_msg *m = NULL;
  if (aiplat_msg_create(&m, AIPLAT_MSG_PIPELINE_STATUS) != AIPLAT_OK)
    return NULL;
  aiplat_status st = aiplat_msg_set_string(m, "request_id", s->request_id);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(m, "run_id", s->run_id);
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_string(m, "engine",
                               aiplat_pipeline_engine_str(s->engine));
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_string(m, "phase", aiplat_pipeline_phase_engine_str(s->engine, s->phase));
  if (st == AIPLAT_OK && *s->message)
    st = aiplat_msg_set_string(m, "message", s->message);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(m, "pipeline", s->pipeline);
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_int64(m, "created_at_ms", s->created_ms);
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_int64(m, "updated_at_ms", s->updated_ms);
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_int64(m, "finished_at_ms", s->finished_ms);
  if (st == AIPLAT_OK) st = aiplat_msg_set_bool(m, "terminal", s->terminal);
  if (st == AIPLAT_OK && s->error != AIPLAT_OK) {
    aiplat_msg *e = NULL;
    st = aiplat_msg_mutable_message(m, "error", &e);
    if (st == AIPLAT_OK) st = aiplat_msg_set_int64(e, "code", s->error);
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_string(e, "message", s->error_message);
  }
  if (st != AIPLAT_OK) {
    aiplat_msg_destroy(m);
    return NULL;
  }
  return m;
}

/* Publish the event of @s on @bus. */
static void publish_on(aiplat_bus *bus, const aip_prun *s) {
  char *subject = NULL;
  aiplat_msg *m = aip_prun_msg(s);
  uint8_t *body = NULL;
  size_t len = 0;
  aiplat_status st = aiplat_subject_pipeline_status(&subject, s->run_id);
  if (st == AIPLAT_OK && m) st = aiplat_msg_encode(m, &body, &len);
  if (st == AIPLAT_OK && m && !bus)
    st = aip_fail(NULL, AIPLAT_ERR_STATE, "the endpoint has no bus");
  if (st == AIPLAT_OK && m)
    st = aiplat_bus_publish(bus, subject, body, len, NULL);
  if (st != AIPLAT_OK || !m) {
    char why[256];
    aiplat_error_last(why, sizeof why);
    const char *k[] = {"run_id", "error"}, *v[] = {s->run_id, why};
    aiplat_log_fields(AIPLAT_LOG_WARNING,
                      "cannot publish a pipeline status event", k, v, 2);
  } else {
    const char *k[] = {"run_id", "engine", "phase"};
    const char *v[] = {s->run_id, aiplat_pipeline_engine_str(s->engine),
                       aiplat_pipeline_phase_engine_str(s->engine, s->phase)};
    aiplat_log_fields(AIPLAT_LOG_INFO, "pipeline status", k, v, 3);
  }
  aiplat_free(body);
  aiplat_free(subject);
  aiplat_msg_destroy(m);
}

/* Publish the event of @s (called without the lock held; the bus is read
 * under it, and nothing is published once the watcher stopped). */
static void publish(aip_pwatch *w, const aip_prun *s) {
  pthread_mutex_lock(&w->mu);
  aiplat_bus *bus = w->stopped ? NULL : w->bus;
  bool stopped = w->stopped;
  pthread_mutex_unlock(&w->mu);
  if (!stopped) publish_on(bus, s);
}

/* A finished run moves from watched to remembered; the oldest remembered
 * run is forgotten when there is no room. Lock held. */
static void finish(aip_pwatch *w, slot *sl) {
  sl->active = false;
  sl->finished_seq = ++w->seq;
  w->active--;
  size_t remembered = 0;
  slot *oldest = NULL;
  for (size_t i = 0; i < sizeof w->slots / sizeof w->slots[0]; i++) {
    slot *o = &w->slots[i];
    if (!o->used || o->active) continue;
    remembered++;
    if (!oldest || o->finished_seq < oldest->finished_seq) oldest = o;
  }
  if (remembered > AIP_PWATCH_MAX_REMEMBERED && oldest) oldest->used = false;
}

/* One status call in flight. */
typedef struct poll_call {
  aip_pwatch *w;
  size_t i;
  char run_id[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
} poll_call;

/* Apply a poll's answer to slot @i (lock held); true when the run's event
 * is to be published (copied into @out). */
static bool apply(aip_pwatch *w, size_t i, const char *run_id, aiplat_status st,
                  const char *why, aiplat_pipeline_phase phase,
                  const char *msg, aip_prun *out) {
  slot *sl = &w->slots[i];
  if (!sl->used || !sl->active || strcmp(sl->s.run_id, run_id) != 0)
    return false;
  int64_t now = aip_now_ms();
  sl->next_poll = now + w->interval_ms;
  if (st == AIPLAT_ERR_CANCELLED) return false; /* stopping */
  bool changed = false;
  if (st == AIPLAT_OK) {
    sl->failing_since = 0;
    if (phase != sl->s.phase || strcmp(msg, sl->s.message) != 0) {
      changed = phase != sl->s.phase;
      sl->s.phase = phase;
      snprintf(sl->s.message, sizeof sl->s.message, "%s", msg);
      if (changed) sl->s.updated_ms = aip_wall_ms();
    }
    if (aiplat_pipeline_phase_is_terminal(phase)) {
      sl->s.terminal = true;
      sl->s.finished_ms = sl->s.updated_ms;
      changed = true;
    }
  } else {
    bool permanent = st == AIPLAT_ERR_NOT_FOUND || st == AIPLAT_ERR_AUTH ||
                     st == AIPLAT_ERR_INVALID_ARGUMENT ||
                     st == AIPLAT_ERR_CONFIG;
    if (!sl->failing_since) sl->failing_since = now;
    if (permanent || now - sl->failing_since >= AIP_PWATCH_GIVE_UP_MS) {
      sl->s.error = st;
      snprintf(sl->s.error_message, sizeof sl->s.error_message,
               "the run was lost: %.*s", AIP_PWATCH_MESSAGE_MAX - 32, why);
      sl->s.terminal = true;
      sl->s.updated_ms = sl->s.finished_ms = aip_wall_ms();
      changed = true;
    }
    const char *k[] = {"run_id", "error"}, *v[] = {run_id, why};
    aiplat_log_fields(AIPLAT_LOG_WARNING, "pipeline status poll failed", k, v,
                      2);
  }
  *out = sl->s;
  if (sl->s.terminal) finish(w, sl);
  return changed;
}

/* The end of a poll: on the event loop thread, or on the watcher's when
 * the call could not start. Must not block. */
static void on_polled(aiplat_status st, const char *why,
                      aiplat_pipeline_phase phase, const char *msg, void *ud) {
  poll_call *pc = ud;
  aip_pwatch *w = pc->w;
  aip_prun out;
  pthread_mutex_lock(&w->mu);
  bool changed = apply(w, pc->i, pc->run_id, st, why, phase, msg, &out);
  w->slots[pc->i].polling = false;
  pthread_mutex_unlock(&w->mu);
  if (changed) publish(w, &out);
  free(pc);
  /* the last touch of @w: aip_pwatch_stop() frees it once no poll is left */
  pthread_mutex_lock(&w->mu);
  w->polls--;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Start the poll of slot @i (lock not held; the slot is marked polling). */
static void start_poll(aip_pwatch *w, size_t i, const aip_prun *snap) {
  poll_call *pc = calloc(1, sizeof *pc);
  aiplat_pipeline_options *o = NULL;
  aiplat_status st = AIPLAT_ERR_NO_MEMORY;
  char why[AIP_PWATCH_MESSAGE_MAX] = "out of memory";
  if (pc) {
    pc->w = w;
    pc->i = i;
    snprintf(pc->run_id, sizeof pc->run_id, "%s", snap->run_id);
  }
  if (pc && aiplat_pipeline_options_create(&o) == AIPLAT_OK &&
      aiplat_pipeline_options_set_namespace(o, snap->ns) == AIPLAT_OK) {
    st = aiplat_pipeline_status_async(w->poller, snap->engine, snap->run_id, o,
                                      NULL, on_polled, pc);
    if (st != AIPLAT_OK) aiplat_error_last(why, sizeof why);
  } else if (pc) {
    aiplat_error_last(why, sizeof why);
    st = AIPLAT_ERR_INVALID_ARGUMENT;
  }
  aiplat_pipeline_options_destroy(o);
  if (st == AIPLAT_OK) return;
  if (pc) {
    on_polled(st, why, AIPLAT_PIPELINE_UNKNOWN, "", pc);
    return;
  }
  pthread_mutex_lock(&w->mu);
  w->slots[i].polling = false;
  w->polls--;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void *watch_main(void *arg) {
  aip_pwatch *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    int64_t now = aip_now_ms(), next = now + 60000;
    size_t due = SIZE_MAX;
    for (size_t i = 0; i < sizeof w->slots / sizeof w->slots[0]; i++) {
      slot *sl = &w->slots[i];
      if (!sl->used || !sl->active || sl->polling) continue;
      if (sl->next_poll <= now) {
        due = i;
        break;
      }
      if (sl->next_poll < next) next = sl->next_poll;
    }
    if (due != SIZE_MAX) {
      aip_prun snap = w->slots[due].s;
      w->slots[due].polling = true;
      w->polls++;
      pthread_mutex_unlock(&w->mu);
      start_poll(w, due, &snap);
      pthread_mutex_lock(&w->mu);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t wait = next - now;
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

aip_pwatch *aip_pwatch_start(aiplat_pipeline *poller, int64_t interval_ms) {
  aip_pwatch *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->poller = poller;
  w->interval_ms = interval_ms > 0 ? interval_ms : 1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&w->mu, NULL);
  /* The watcher never takes signals meant for the process. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&w->thread, NULL, watch_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return NULL;
  }
  return w;
}

void aip_pwatch_set_bus(aip_pwatch *w, aiplat_bus *bus) {
  pthread_mutex_lock(&w->mu);
  w->bus = bus;
  pthread_mutex_unlock(&w->mu);
}

bool aip_pwatch_reserve(aip_pwatch *w) {
  pthread_mutex_lock(&w->mu);
  bool ok = w->active + w->reserved < AIP_PWATCH_MAX_WATCHED;
  if (ok) w->reserved++;
  pthread_mutex_unlock(&w->mu);
  return ok;
}

void aip_pwatch_unreserve(aip_pwatch *w) {
  pthread_mutex_lock(&w->mu);
  if (w->reserved) w->reserved--;
  pthread_mutex_unlock(&w->mu);
}

void aip_pwatch_add(aip_pwatch *w, const aip_prun *s) {
  pthread_mutex_lock(&w->mu);
  if (w->reserved) w->reserved--;
  slot *free_slot = NULL, *oldest = NULL;
  for (size_t i = 0; i < sizeof w->slots / sizeof w->slots[0]; i++) {
    slot *o = &w->slots[i];
    if (!o->used) {
      if (!free_slot) free_slot = o;
    } else if (!o->active &&
               (!oldest || o->finished_seq < oldest->finished_seq)) {
      oldest = o;
    }
  }
  /* Active runs are capped by the reservation, so a slot is always there:
   * a free one, or the oldest remembered run. */
  slot *sl = free_slot ? free_slot : oldest;
  if (sl) {
    memset(sl, 0, sizeof *sl);
    sl->used = sl->active = true;
    sl->s = *s;
    sl->next_poll = aip_now_ms() + w->interval_ms;
    w->active++;
    pthread_cond_signal(&w->cv);
  }
  /* Under the lock, so the watcher's first change cannot overtake it. */
  if (!w->stopped) publish_on(w->bus, s);
  pthread_mutex_unlock(&w->mu);
}

bool aip_pwatch_find(aip_pwatch *w, const char *run_id,
                   aiplat_pipeline_engine engine, aip_prun *out) {
  bool found = false;
  pthread_mutex_lock(&w->mu);
  for (size_t i = 0; i < sizeof w->slots / sizeof w->slots[0] && !found; i++) {
    slot *sl = &w->slots[i];
    if (sl->used && strcmp(sl->s.run_id, run_id) == 0 &&
        (!engine || sl->s.engine == engine)) {
      *out = sl->s;
      found = true;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return found;
}

void aip_pwatch_stop(aip_pwatch *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  bool again = w->stop;
  w->stop = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (again) return;
  pthread_join(w->thread, NULL); /* no poll starts after this */
  aiplat_pipeline_close(w->poller); /* the polls in flight end now */
  pthread_mutex_lock(&w->mu);
  while (w->polls > 0) pthread_cond_wait(&w->cv, &w->mu);
  w->stopped = true;
  for (size_t i = 0; i < sizeof w->slots / sizeof w->slots[0]; i++) {
    slot *sl = &w->slots[i];
    if (!sl->used || !sl->active) continue;
    const char *k[] = {"run_id", "engine"};
    const char *v[] = {sl->s.run_id, aiplat_pipeline_engine_str(sl->s.engine)};
    aiplat_log_fields(AIPLAT_LOG_WARNING,
                      "stopped watching a run that has not ended", k, v, 2);
  }
  pthread_mutex_unlock(&w->mu);
}

void aip_pwatch_destroy(aip_pwatch *w) {
  if (!w) return;
  aip_pwatch_stop(w);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}
