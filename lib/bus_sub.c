/* Subscriptions: plain (nats.c delivery thread per subscription) and
 * JetStream pull consumers (a libaiplat fetch thread per subscription).
 *
 * Releasing a natsSubscription safely on nats.c 3.4.1 takes three steps:
 * stop it (unsubscribe or drain), wait until no callback runs (the
 * subscription's completion callback, or the fetch thread's end), then
 * release it through aip_bus_release_nsub() (read-loop race). See ADR 0006. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_internal.h"
#include "options_internal.h"
#include "subject_internal.h"

/* Expiry of one pull request: how long an idle consumer waits on the
 * server before asking again (and the longest it takes to resume after a
 * reconnection, when the pending pull request was lost with the server). */
#define FETCH_EXPIRES_MS 3000
/* Pause after a fetch error before trying again. */
#define FETCH_BACKOFF_MS 1000
#define MAX_IN_FLIGHT 65536
#define BACKOFF_MAX 32
#define NAME_MAX_LEN 64
/* Failures in a row after which a subscription cannot fetch: one alone is
 * a blip (a reconnection, a leader moving). */
#define FETCH_FAILURES_UNREADY 2
/* How long the consumer probe after an empty fetch waits for its answer. */
#define PROBE_TIMEOUT_MS 1000

/* The subscription whose callback runs on this thread, if any. */
static _Thread_local aiplat_bus_sub *tls_current_sub;

/* ---- references and accounting ---------------------------------------------
 */

static aiplat_bus_sub *sub_new(aiplat_bus *bus, aip_sub_kind kind,
                               const char *subject, aiplat_bus_msg_fn fn,
                               void *ud, bool owned) {
  aiplat_bus_sub *sub = calloc(1, sizeof *sub);
  if (!sub) return NULL;
  if (!(sub->subject = aip_strdup(subject ? subject : ""))) {
    free(sub);
    return NULL;
  }
  atomic_init(&sub->refs, 1);
  aip_err_init(&sub->err);
  pthread_mutex_init(&sub->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sub->cond, &ca);
  pthread_condattr_destroy(&ca);
  sub->bus = bus;
  aip_bus_ref(bus);
  sub->kind = kind;
  sub->fn = fn;
  sub->ud = ud;
  sub->owned = owned;
  return sub;
}

/* Destroy the retired messages back to back: the collector thread, woken
 * by the first, finds the rest queued when it runs. */
static void retire_flush(aiplat_bus_sub *sub) {
  for (int i = 0; i < sub->n_retired; i++) natsMsg_Destroy(sub->retired[i]);
  sub->n_retired = 0;
  sub->retired_bytes = 0;
}

void aip_bus_retire(natsMsg *nm) {
  aiplat_bus_sub *sub = tls_current_sub;
  if (!nm) return;
  size_t bytes = (size_t)natsMsg_GetDataLength(nm);
  if (!sub || sub->kind != AIP_SUB_CORE || bytes > AIP_RETIRE_ONE_MAX) {
    natsMsg_Destroy(nm);
    return;
  }
  sub->retired[sub->n_retired++] = nm;
  sub->retired_bytes += bytes;
  if (sub->n_retired == AIP_RETIRE_MAX || sub->retired_bytes > AIP_RETIRE_BYTES)
    retire_flush(sub);
}

void aip_sub_unref(aiplat_bus_sub *sub) {
  if (atomic_fetch_sub(&sub->refs, 1) != 1) return;
  retire_flush(sub); /* normally empty: the completion flushed it */
  aiplat_bus *bus = sub->bus;
  free(sub->subject);
  free(sub->stream);
  pthread_cond_destroy(&sub->cond);
  pthread_mutex_destroy(&sub->mu);
  aip_err_destroy(&sub->err);
  free(sub);
  aip_bus_unref(bus);
}

void aip_sub_msg_hold(aiplat_bus_sub *sub) {
  atomic_fetch_add(&sub->refs, 1);
  pthread_mutex_lock(&sub->mu);
  sub->in_flight++;
  pthread_mutex_unlock(&sub->mu);
}

void aip_sub_msg_done(aiplat_bus_sub *sub) {
  pthread_mutex_lock(&sub->mu);
  sub->in_flight--;
  pthread_cond_broadcast(&sub->cond);
  pthread_mutex_unlock(&sub->mu);
  aip_sub_unref(sub);
}

static void deliver(aiplat_bus_sub *sub, aiplat_bus_msg *m) {
  aiplat_bus_sub *prev = tls_current_sub;
  tls_current_sub = sub;
  sub->fn(m, sub->ud);
  if (!sub->owned) aiplat_bus_msg_destroy(m); /* retired, when the last */
  tls_current_sub = prev;
}

static void deadline_in(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Wait (sub->mu held) until complete or the deadline; false on timeout. */
static bool wait_complete(aiplat_bus_sub *sub, const struct timespec *dl) {
  while (!sub->complete) {
    if (!dl)
      pthread_cond_wait(&sub->cond, &sub->mu);
    else if (pthread_cond_timedwait(&sub->cond, &sub->mu, dl) == ETIMEDOUT)
      return sub->complete;
  }
  return true;
}

/* Release the natsSubscription once no callback runs (sub->complete). */
static void release_ns(aiplat_bus_sub *sub) {
  natsSubscription *ns = sub->ns;
  if (sub->kind == AIP_SUB_JS && sub->fetcher_started)
    pthread_join(sub->fetcher, NULL);
  aip_bus_release_nsub(sub->bus, ns);
  pthread_mutex_lock(&sub->mu);
  sub->ns = NULL;
  sub->stopped = true;
  pthread_cond_broadcast(&sub->cond);
  pthread_mutex_unlock(&sub->mu);
}

/* ---- plain subscriptions
 * ------------------------------------------------------- */

static void on_core_msg(natsConnection *nc, natsSubscription *ns, natsMsg *nm,
                        void *closure) {
  (void)nc;
  (void)ns;
  aiplat_bus_sub *sub = closure;
  aiplat_bus_msg *m = NULL;
  if (aip_bus_msg_wrap(&m, sub->bus, NULL, nm) != AIPLAT_OK) {
    aip_log_kv(AIPLAT_LOG_ERROR, "bus: message dropped: out of memory",
               "subject", sub->subject, NULL);
    return;
  }
  deliver(sub, m);
}

/* nats.c: the subscription is closed and its last callback has returned. */
static void on_core_complete(void *closure) {
  aiplat_bus_sub *sub = closure;
  retire_flush(sub); /* still on the delivery thread */
  pthread_mutex_lock(&sub->mu);
  sub->complete = true;
  /* Destroyed from its own callback: finish the job here, unless another
   * thread is already releasing it. */
  bool finish = sub->destroy_pending && !sub->stop_busy;
  if (finish) sub->stop_busy = true;
  pthread_cond_broadcast(&sub->cond);
  pthread_mutex_unlock(&sub->mu);
  if (!finish) return;
  release_ns(sub);
  aip_sub_unref(sub);
}

static aiplat_status check_queue(aip_err *e, const char *queue) {
  if (!queue) return AIPLAT_OK;
  return aip_subject_check(e, "bus: queue group", queue, false);
}

static aiplat_status subscribe_core(aiplat_bus *bus, const char *subject,
                                    const char *queue, aiplat_bus_msg_fn fn,
                                    void *ud, bool owned,
                                    aiplat_bus_sub **out) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  if (!out || !fn)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: subscribe: %s is NULL", out ? "callback" : "out");
  *out = NULL;
  aiplat_status st =
      aip_subject_check(&bus->err, "bus: subscribe", subject, true);
  if (!st) st = check_queue(&bus->err, queue);
  if (st) return st;
  natsConnection *nc = aip_bus_open_conn(bus, &bus->err, "bus: subscribe");
  if (!nc) return aip_err_copy(&bus->err, NULL, 0);
  aiplat_bus_sub *sub = sub_new(bus, AIP_SUB_CORE, subject, fn, ud, owned);
  if (!sub)
    return aip_fail(&bus->err, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  natsSubscription *ns = NULL;
  natsStatus s =
      queue ? natsConnection_QueueSubscribe(&ns, nc, subject, queue,
                                            on_core_msg, sub)
            : natsConnection_Subscribe(&ns, nc, subject, on_core_msg, sub);
  if (s != NATS_OK) {
    st = aip_bus_fail_nats(&bus->err, s, 0, "bus: subscribe");
    aip_sub_unref(sub);
    return st;
  }
  sub->ns = ns;
  s = natsSubscription_SetOnCompleteCB(ns, on_core_complete, sub);
  if (s != NATS_OK) {
    /* The connection closed under us: a callback may still be running with
     * `sub`, and without the completion callback we cannot know when it
     * ends. Keep both (a bounded leak in a rare race) rather than risk a
     * use after free. */
    st = aip_bus_fail_nats(&bus->err, s, 0, "bus: subscribe");
    aip_log_kv(AIPLAT_LOG_WARNING,
               "bus: subscription closed while being created; leaked",
               "subject", subject, NULL);
    return st;
  }
  *out = sub;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_subscribe(
    aiplat_bus *bus, const char *subject, const char *queue,
    aiplat_bus_msg_fn fn, void *user_data, aiplat_bus_sub **out) {
  return subscribe_core(bus, subject, queue, fn, user_data, false, out);
}

aiplat_status aip_bus_subscribe_owned(aiplat_bus *bus, const char *subject,
                                      const char *queue, aiplat_bus_msg_fn fn,
                                      void *closure, aiplat_bus_sub **out) {
  return subscribe_core(bus, subject, queue, fn, closure, true, out);
}

/* ---- JetStream pull consumers
 * ------------------------------------------------------ */

/* Record a fetch that reached the consumer (@why NULL) or failed, and log
 * when the subscription turns unable to fetch or able again: once per
 * change, not once per retry. A failure is @sure when the consumer did not
 * answer a probe after a fetch that waited out its expiry: no blip, but a
 * consumer that cannot serve (no leader, lost): unable at once. */
static void fetch_health(aiplat_bus_sub *sub, const char *why, bool sure) {
  pthread_mutex_lock(&sub->mu);
  bool was_ok = sub->fetch_failures < FETCH_FAILURES_UNREADY;
  if (why) {
    if (sure) sub->fetch_failures = FETCH_FAILURES_UNREADY;
    if (sub->fetch_failures < FETCH_FAILURES_UNREADY) sub->fetch_failures++;
    snprintf(sub->fetch_why, sizeof sub->fetch_why, "%s", why);
  } else {
    sub->fetch_failures = 0;
  }
  bool ok = sub->fetch_failures < FETCH_FAILURES_UNREADY;
  bool quiet = sub->stopping || sub->draining;
  pthread_mutex_unlock(&sub->mu);
  if (ok == was_ok || quiet) return;
  if (ok)
    aip_log_kv(AIPLAT_LOG_INFO, "bus: JetStream fetch works again", "durable",
               sub->subject, NULL);
  else
    aip_log_kv(AIPLAT_LOG_WARNING, "bus: JetStream fetch fails; retrying",
               "durable", sub->subject, "error", why, NULL);
}

/* The reason of a failed fetch or probe, in @buf. */
static const char *fetch_reason(aiplat_bus_sub *sub, natsStatus s, int jerr,
                                char *buf, size_t len) {
  if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT)
    snprintf(buf, len,
             "JetStream consumer %s does not answer (no leader, stream or "
             "consumer lost, or no permission)",
             sub->subject);
  else {
    char what[NAME_MAX_LEN + 32];
    snprintf(what, sizeof what, "JetStream consumer %s", sub->subject);
    (void)aip_bus_fail_nats(&sub->err, s, jerr, what);
    snprintf(buf, len, "%s", aip_thread_errmsg());
  }
  return buf;
}

/* A fetch that timed out may have waited on a consumer that is there
 * (idle) or on nothing (a pull request lost with a server, a consumer with
 * no leader): ask the consumer for its state to know which. */
static natsStatus probe_consumer(aiplat_bus_sub *sub, jsErrCode *jerr) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = PROBE_TIMEOUT_MS;
  jsConsumerInfo *ci = NULL;
  *jerr = 0;
  natsStatus s = js_GetConsumerInfo(&ci, aip_bus_js(sub->bus), sub->stream,
                                    sub->subject, &o, jerr);
  jsConsumerInfo_Destroy(ci);
  return s;
}

void aip_bus_sub_settle_failed(aiplat_bus_sub *sub, const char *why) {
  if (sub && sub->kind == AIP_SUB_JS && why) fetch_health(sub, why, true);
}

bool aip_bus_sub_fetch_ok(aiplat_bus_sub *sub, char *why, size_t whylen) {
  if (!sub || sub->kind != AIP_SUB_JS) return true;
  pthread_mutex_lock(&sub->mu);
  bool ok = sub->fetch_failures < FETCH_FAILURES_UNREADY;
  if (!ok && why && whylen) snprintf(why, whylen, "%s", sub->fetch_why);
  pthread_mutex_unlock(&sub->mu);
  return ok;
}

static void *fetch_main(void *arg) {
  aiplat_bus_sub *sub = arg;
  natsSubscription *ns = sub->ns;
  for (;;) {
    pthread_mutex_lock(&sub->mu);
    while (!sub->stopping && !sub->draining &&
           sub->in_flight >= sub->max_in_flight)
      pthread_cond_wait(&sub->cond, &sub->mu);
    bool stop = sub->stopping || sub->draining;
    int want = sub->max_in_flight - sub->in_flight;
    pthread_mutex_unlock(&sub->mu);
    if (stop) break;
    if (want > 256) want = 256;

    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s =
        natsSubscription_Fetch(&list, ns, want, FETCH_EXPIRES_MS, &jerr);
    bool probed = s == NATS_TIMEOUT;
    if (probed) s = probe_consumer(sub, &jerr);
    if (s == NATS_OK) fetch_health(sub, NULL, false);
    if (s == NATS_OK && list.Count == 0) continue;
    if (s == NATS_OK) {
      for (int i = 0; i < list.Count; i++) {
        pthread_mutex_lock(&sub->mu);
        bool drop = sub->stopping;
        pthread_mutex_unlock(&sub->mu);
        if (drop) break; /* the rest is freed below; redelivered later */
        natsMsg *nm = list.Msgs[i];
        list.Msgs[i] = NULL;
        aiplat_bus_msg *m = NULL;
        if (aip_bus_msg_wrap(&m, sub->bus, sub, nm) != AIPLAT_OK) {
          aip_log_kv(AIPLAT_LOG_ERROR, "bus: message dropped: out of memory",
                     "subject", sub->subject, NULL);
          continue;
        }
        deliver(sub, m);
      }
      natsMsgList_Destroy(&list);
      continue;
    }
    if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION ||
        natsConnection_IsClosed(sub->bus->nc))
      break; /* stopped, or the bus closed */
    pthread_mutex_lock(&sub->mu);
    bool quiet = sub->stopping || sub->draining;
    pthread_mutex_unlock(&sub->mu);
    if (quiet) break;
    char why[sizeof sub->fetch_why];
    fetch_health(sub, fetch_reason(sub, s, jerr, why, sizeof why), probed);
    struct timespec dl;
    deadline_in(&dl, FETCH_BACKOFF_MS);
    pthread_mutex_lock(&sub->mu);
    while (!sub->stopping && !sub->draining &&
           pthread_cond_timedwait(&sub->cond, &sub->mu, &dl) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&sub->mu);
  }

  pthread_mutex_lock(&sub->mu);
  sub->complete = true;
  bool finish = sub->destroy_pending && !sub->stop_busy;
  if (finish) sub->stop_busy = true;
  pthread_cond_broadcast(&sub->cond);
  pthread_mutex_unlock(&sub->mu);
  if (finish) {
    /* Destroyed from its own callback: nobody will join this thread. */
    pthread_detach(pthread_self());
    sub->fetcher_started = false;
    natsSubscription_Unsubscribe(ns);
    release_ns(sub);
    aip_sub_unref(sub);
  }
  nats_ReleaseThreadMemory();
  return NULL;
}

/* Create the durable pull consumer, or update it to these settings. */
static aiplat_status ensure_consumer(aiplat_bus *bus, jsCtx *js,
                                     const char *stream,
                                     const aiplat_consumer_options *o) {
  const char *durable = o->durable;
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable;
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = o->ack_wait_ms * 1000000;
  cc.MaxDeliver = o->max_deliver;
  cc.FilterSubject = o->filter;
  /* first, doubling up to max: the server uses the last one for every
   * later delivery, and wants fewer than max_deliver of them. */
  int64_t backoff[BACKOFF_MAX];
  int n = 0;
  for (int64_t d = o->backoff_first_ms; d > 0 && n < BACKOFF_MAX &&
                                        n < o->max_deliver - 1;) {
    backoff[n++] = d * 1000000;
    if (d >= o->backoff_max_ms) break;
    d = d * 2 < o->backoff_max_ms ? d * 2 : o->backoff_max_ms;
  }
  if (n > 0) {
    cc.BackOff = backoff;
    cc.BackOffLen = n;
  }
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_AddConsumer(&ci, js, stream, &cc, NULL, &jerr);
  jsConsumerInfo_Destroy(ci);
  ci = NULL;
  if (s == NATS_OK) return AIPLAT_OK;
  if (jerr == JSStreamNotFoundErr)
    return aip_fail(&bus->err, AIPLAT_ERR_NOT_FOUND,
                    "bus: js_subscribe: no stream %s", stream);
  /* It exists with other settings: update it. */
  jsErrCode jerr2 = 0;
  if (js_GetConsumerInfo(&ci, js, stream, durable, NULL, &jerr2) == NATS_OK) {
    jsConsumerInfo_Destroy(ci);
    s = js_UpdateConsumer(NULL, js, stream, &cc, NULL, &jerr);
    if (s == NATS_OK) return AIPLAT_OK;
  }
  return aip_bus_fail_nats(&bus->err, s, jerr,
                           "bus: js_subscribe: cannot create the consumer");
}

static aiplat_status js_subscribe(aiplat_bus *bus, const char *stream,
                                  const aiplat_consumer_options *o,
                                  aiplat_bus_msg_fn fn, void *ud, bool owned,
                                  aiplat_bus_sub **out) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  if (!out || !fn)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: js_subscribe: %s is NULL", out ? "callback" : "out");
  *out = NULL;
  if (!o)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: js_subscribe: options are NULL");
  const char *durable = o->durable, *filter = o->filter;
  int64_t ack_wait_ms = o->ack_wait_ms, max_deliver = o->max_deliver;
  int max_in_flight = o->max_in_flight;
  aiplat_status st;
  if ((st = aip_name_check(&bus->err, "bus: js_subscribe: stream name", stream,
                           NAME_MAX_LEN)) ||
      (st = aip_name_check(&bus->err, "bus: js_subscribe: durable name",
                           durable, NAME_MAX_LEN)) ||
      (filter &&
       (st = aip_subject_check(&bus->err, "bus: js_subscribe", filter, true))))
    return st;
  if (ack_wait_ms <= 0 || ack_wait_ms > INT64_MAX / 1000000)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: js_subscribe: ack_wait_ms must be more than 0");
  if (max_deliver == 0 || max_deliver < -1)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: js_subscribe: max_deliver must be -1 or at least 1");
  if (max_in_flight < 1 || max_in_flight > MAX_IN_FLIGHT)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: js_subscribe: max_in_flight must be 1..%d",
                    MAX_IN_FLIGHT);
  if (o->backoff_first_ms > 0 && max_deliver < 2)
    return aip_fail(&bus->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: js_subscribe: a redelivery backoff needs a delivery "
                    "limit of at least 2");
  natsConnection *nc = aip_bus_open_conn(bus, &bus->err, "bus: js_subscribe");
  if (!nc) return aip_err_copy(&bus->err, NULL, 0);
  jsCtx *js = aip_bus_js(bus);
  if (!js)
    return aip_fail(&bus->err, AIPLAT_ERR_NOT_SUPPORTED,
                    "bus: js_subscribe: no JetStream context");
  if ((st = ensure_consumer(bus, js, stream, o)))
    return st;

  aiplat_bus_sub *sub = sub_new(bus, AIP_SUB_JS, durable, fn, ud, owned);
  if (!sub)
    return aip_fail(&bus->err, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  sub->max_in_flight = max_in_flight;
  if (!(sub->stream = aip_strdup(stream))) {
    aip_sub_unref(sub);
    return aip_fail(&bus->err, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream;
  so.Consumer = durable; /* bind: unsubscribing never deletes the consumer */
  so.ManualAck = true;
  jsErrCode jerr = 0;
  natsStatus s =
      js_PullSubscribe(&sub->ns, js, filter, durable, NULL, &so, &jerr);
  if (s != NATS_OK) {
    st = aip_bus_fail_nats(&bus->err, s, jerr, "bus: js_subscribe");
    aip_sub_unref(sub);
    return st;
  }
  int rc = pthread_create(&sub->fetcher, NULL, fetch_main, sub);
  if (rc != 0) {
    natsSubscription_Unsubscribe(sub->ns);
    aip_bus_release_nsub(bus, sub->ns);
    aip_sub_unref(sub);
    return aip_fail(&bus->err, AIPLAT_ERR_INTERNAL,
                    "bus: js_subscribe: cannot start the fetch thread: %s",
                    strerror(rc));
  }
  sub->fetcher_started = true;
  *out = sub;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_js_subscribe(
    aiplat_bus *bus, const char *stream, const char *durable,
    const char *filter_subject, int64_t ack_wait_ms, int64_t max_deliver,
    int max_in_flight, aiplat_bus_msg_fn fn, void *user_data,
    aiplat_bus_sub **out) {
  /* Borrows the caller's strings: the options are read, never kept. */
  struct aiplat_consumer_options o = {(char *)durable, (char *)filter_subject,
                                      ack_wait_ms, max_deliver, 0, 0,
                                      max_in_flight};
  return aiplat_bus_js_subscribe_with(bus, stream, &o, fn, user_data, out);
}

AIPLAT_API aiplat_status aiplat_bus_js_subscribe_with(
    aiplat_bus *bus, const char *stream, const aiplat_consumer_options *opts,
    aiplat_bus_msg_fn fn, void *user_data, aiplat_bus_sub **out) {
  return js_subscribe(bus, stream, opts, fn, user_data, false, out);
}

aiplat_status aip_bus_js_subscribe_owned(aiplat_bus *bus, const char *stream,
                                         const char *durable,
                                         const char *filter_subject,
                                         int64_t ack_wait_ms,
                                         int64_t max_deliver, int max_in_flight,
                                         aiplat_bus_msg_fn fn, void *closure,
                                         aiplat_bus_sub **out) {
  struct aiplat_consumer_options o = {(char *)durable, (char *)filter_subject,
                                      ack_wait_ms, max_deliver, 0, 0,
                                      max_in_flight};
  return js_subscribe(bus, stream, &o, fn, closure, true, out);
}

/* ---- stopping
 * ------------------------------------------------------------------------ */

/* Stop the subscription and release its natsSubscription; with @drain,
 * let received messages reach the callback first, up to @timeout_ms. */
static aiplat_status sub_stop(aiplat_bus_sub *sub, bool drain,
                              int64_t timeout_ms) {
  pthread_mutex_lock(&sub->mu);
  if (sub->stop_busy) {
    while (!sub->stopped) pthread_cond_wait(&sub->cond, &sub->mu);
    pthread_mutex_unlock(&sub->mu);
    return AIPLAT_OK;
  }
  sub->stop_busy = true;
  if (sub->kind == AIP_SUB_JS) {
    if (drain)
      sub->draining = true;
    else
      sub->stopping = true;
    pthread_cond_broadcast(&sub->cond);
  }
  pthread_mutex_unlock(&sub->mu);

  aiplat_status st = AIPLAT_OK;
  natsSubscription *ns = sub->ns;
  struct timespec dl;
  if (drain) deadline_in(&dl, timeout_ms);
  if (sub->kind == AIP_SUB_CORE && drain) {
    natsStatus s = natsSubscription_DrainTimeout(ns, timeout_ms);
    if (s == NATS_OK)
      s = natsSubscription_WaitForDrainCompletion(ns, timeout_ms);
    if (s == NATS_TIMEOUT)
      st = aip_fail(&sub->err, AIPLAT_ERR_TIMEOUT,
                    "bus: drain of %s did not finish within %lld ms; the rest "
                    "is dropped",
                    sub->subject, (long long)timeout_ms);
    /* Timed out, or the connection closed: stop now. */
    if (s != NATS_OK) natsSubscription_Unsubscribe(ns);
  } else {
    /* Plain: stop at once. JetStream: wake a fetch waiting on the server;
     * with drain, messages already fetched still reach the callback. */
    natsSubscription_Unsubscribe(ns);
  }
  pthread_mutex_lock(&sub->mu);
  /* A plain subscription completes as soon as its current callback
   * returns (it is closed by now); a JetStream one drains on its own. */
  bool bounded = drain && sub->kind == AIP_SUB_JS;
  if (!wait_complete(sub, bounded ? &dl : NULL)) {
    st = aip_fail(&sub->err, AIPLAT_ERR_TIMEOUT,
                  "bus: drain of %s did not finish within %lld ms; the rest "
                  "is dropped",
                  sub->subject, (long long)timeout_ms);
    sub->stopping = true;
    pthread_cond_broadcast(&sub->cond);
    wait_complete(sub, NULL);
  }
  /* Destroyed meanwhile from its own callback: that reference is ours. */
  bool pending = sub->destroy_pending;
  pthread_mutex_unlock(&sub->mu);
  release_ns(sub);
  if (pending) aip_sub_unref(sub);
  return st;
}

static aiplat_status check_not_own(aiplat_bus_sub *sub, const char *what) {
  if (tls_current_sub == sub)
    return aip_fail(&sub->err, AIPLAT_ERR_STATE,
                    "bus: %s cannot be called from the subscription's own "
                    "callback (it waits for that callback to return)",
                    what);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_sub_unsubscribe(aiplat_bus_sub *sub) {
  if (!sub)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: sub is NULL");
  aiplat_status st = check_not_own(sub, "unsubscribe");
  return st ? st : sub_stop(sub, false, 0);
}

AIPLAT_API aiplat_status aiplat_bus_sub_drain(aiplat_bus_sub *sub,
                                              int64_t timeout_ms) {
  if (!sub)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: sub is NULL");
  if (timeout_ms <= 0)
    return aip_fail(&sub->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: drain: timeout_ms must be more than 0");
  aiplat_status st = check_not_own(sub, "drain");
  return st ? st : sub_stop(sub, true, timeout_ms);
}

AIPLAT_API uint64_t aiplat_bus_sub_dropped_count(aiplat_bus_sub *sub) {
  if (!sub || sub->kind != AIP_SUB_CORE) return 0;
  pthread_mutex_lock(&sub->mu);
  int64_t n = 0;
  if (sub->ns && !sub->stopped &&
      natsSubscription_GetDropped(sub->ns, &n) != NATS_OK)
    n = 0;
  pthread_mutex_unlock(&sub->mu);
  return n > 0 ? (uint64_t)n : 0;
}

AIPLAT_API void aiplat_bus_sub_destroy(aiplat_bus_sub *sub) {
  if (!sub) return;
  if (tls_current_sub == sub) {
    /* From its own callback: stop now, finish when the callback returns
     * (completion callback or fetch thread end). */
    pthread_mutex_lock(&sub->mu);
    bool busy = sub->stop_busy;
    sub->destroy_pending = true;
    sub->stopping = true;
    pthread_cond_broadcast(&sub->cond);
    natsSubscription *ns = sub->ns;
    pthread_mutex_unlock(&sub->mu);
    /* When another thread is stopping it, that thread drops our reference
     * once done (sub_stop); otherwise the completion does. */
    if (!busy && sub->kind == AIP_SUB_CORE) natsSubscription_Unsubscribe(ns);
    return;
  }
  sub_stop(sub, false, 0);
  aip_sub_unref(sub);
}

AIPLAT_API aiplat_status aiplat_bus_sub_last_error(aiplat_bus_sub *sub,
                                                   char *buf, size_t buflen) {
  if (!sub)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: sub is NULL");
  return aip_err_copy(&sub->err, buf, buflen);
}
