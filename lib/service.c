/* The service framework; see include/aiplat/service.h and
 * docs/decisions/0014-service-framework.md.
 *
 * Each endpoint has WORKERS subscriptions in one queue group, so the server
 * spreads its messages over them and each subscription's delivery thread is
 * one worker: a request is handled on the thread that received it, with no
 * hand-off (docs/decisions/0014). Each request runs
 * decode -> handler -> reply or error reply -> (JetStream) ack / nak / term,
 * with metrics, micro statistics, trace context and log context around it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aiplat/service.h"
#include "bus_internal.h"
#include "internal.h"
#include "loop.h"
#include "message_internal.h"
#include "metrics.h"
#include "micro.h"
#include "options_internal.h"
#include "otel.h"
#include "trace.h"

/* Bounds every deadline the framework computes in nanoseconds. */
#define MAX_REQUEST_TIMEOUT_MS (7 * 24 * 3600 * INT64_C(1000))

#define LAST_ERROR_MAX 256
#define MICRO_VERBS 3
/* Settling a JetStream request: the flush of the answer waits at most
 * JS_FLUSH_TIMEOUT_MS; each attempt at recording the completion, looking
 * it up or confirming the ack waits at most JS_STEP_TIMEOUT_MS, and failed
 * attempts are retried, JS_RETRY_MIN_MS doubling to JS_RETRY_MAX_MS apart,
 * for at most JS_SETTLE_BUDGET_MS. While a
 * stream or bucket elects a new leader, its requests time out or find no
 * responder: short attempts retried keep one request from holding its
 * worker for long, and settle it as soon as the leader is back. */
#define JS_FLUSH_TIMEOUT_MS 2000
#define JS_STEP_TIMEOUT_MS 1000
#define JS_RETRY_MIN_MS 50
#define JS_RETRY_MAX_MS 1000
#define JS_SETTLE_BUDGET_MS 30000
/* The least time a completion is remembered (more when the redelivery
 * window is longer). */
#define COMPLETIONS_TTL_MIN_MS (3600 * INT64_C(1000))
/* What cancelled requests get to send their error replies at shutdown. */
#define CANCEL_GRACE_MS 2000

typedef struct endpoint {
  struct aiplat_service *svc;
  char *name, *subject, *queue, *stream, *durable;
  bool js, bind_only;
  int max_deliver;                      /* JetStream settings */
  int64_t nak_first_ms, nak_max_ms, ack_wait_ms; /* ack wait 0: timeout */
  aiplat_msg_type request_type, reply_type;
  aiplat_handler_fn fn;
  void *ud;
  aiplat_bus_sub **subs; /* svc->workers of them */
  unsigned n_subs;
  aip_endpoint_metrics metrics;
  /* micro protocol statistics */
  pthread_mutex_t mu;
  uint64_t num_requests, num_errors;
  int64_t processing_ns;
  char last_error[LAST_ERROR_MAX];
} endpoint;

struct aiplat_service {
  aip_err err;
  aiplat_config *cfg;
  char *name, *version, *description;
  char id[AIP_MICRO_ID_LEN + 1];
  unsigned workers;
  int64_t request_timeout_ms, grace_ms;
  bool handle_signals;
  endpoint **eps;
  size_t n_eps;
  aiplat_bus *bus;
  aiplat_kv *completions; /* JetStream requests answered, by request id */
  aiplat_health *health;
  aiplat_bus_sub *micro_subs[MICRO_VERBS * 3];
  size_t n_micro;
  int64_t started_wall_ms;
  bool started, shut_down;
  atomic_bool stop_requested;
  atomic_int in_flight; /* requests admitted and not yet finished */
  int max_in_flight;    /* MAX_IN_FLIGHT */
  struct aiplat_request *deferred; /* handed over by their handlers */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sigset_t sigs;
  /* JetStream requests finished on the event loop settle here, so that
   * the flush and the confirmed ack never block the loop; one settler
   * per worker, so that a request waiting on the server does not hold up
   * the others. */
  pthread_t *settlers;
  unsigned n_settlers;
  bool settle_stop;
  pthread_mutex_t settle_mu;
  pthread_cond_t settle_cv;
  struct aiplat_request *settle_head, *settle_tail;
};

struct aiplat_request {
  endpoint *ep;
  aiplat_bus_msg *msg;
  aiplat_msg *decoded;
  char *request_id;
  aip_trace trace;
  char traceparent[AIP_TRACEPARENT_LEN + 1];
  aip_span *span; /* the server span, NULL when not traced */
  int64_t deadline_ns;
  int64_t t0;
  atomic_bool answered;   /* a reply or an error reply went out */
  aiplat_status failed;   /* the failure recorded, or AIPLAT_OK */
  atomic_int refs;        /* the handler's while it runs + defer's */
  atomic_bool deferred, completed;
  struct aiplat_request *next, *prev; /* in svc->deferred */
  struct aiplat_request *settle_next;  /* in svc's settle queue */
  aiplat_request_cancel_fn cancel_fn;
  void *cancel_ud;
};

static void cancel_deferred(aiplat_service *svc);
static bool wait_in_flight(aiplat_service *svc, int64_t deadline_ms);
static void settler_stop(aiplat_service *svc);
static void *settler_main(void *arg);

/* ---- small helpers ------------------------------------------------------ */

static bool transient(aiplat_status st) {
  switch (st) {
    case AIPLAT_ERR_TIMEOUT:
    case AIPLAT_ERR_CONNECTION:
    case AIPLAT_ERR_RATE_LIMITED:
    case AIPLAT_ERR_SERVER:
    case AIPLAT_ERR_UNAVAILABLE:
    case AIPLAT_ERR_IO:
    case AIPLAT_ERR_NO_MEMORY:
    case AIPLAT_ERR_CLOSED:
      return true;
    default:
      return false;
  }
}

/* The HTTP-like code NATS tooling shows for a micro error. */
static int micro_code(aiplat_status st) {
  switch (st) {
    case AIPLAT_ERR_INVALID_ARGUMENT:
    case AIPLAT_ERR_DECODE:
    case AIPLAT_ERR_BAD_REQUEST:
    case AIPLAT_ERR_TOO_LARGE:
      return 400;
    case AIPLAT_ERR_AUTH: return 401;
    case AIPLAT_ERR_NOT_FOUND: return 404;
    case AIPLAT_ERR_RATE_LIMITED: return 429;
    case AIPLAT_ERR_NOT_SUPPORTED: return 501;
    case AIPLAT_ERR_UNAVAILABLE: return 503;
    case AIPLAT_ERR_TIMEOUT: return 504;
    default: return 500;
  }
}

static void random_hex(char *out, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[32];
  aip_random_bytes(raw, nbytes);
  for (size_t i = 0; i < nbytes; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[2 * nbytes] = '\0';
}

/* ---- create / configure ------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_service_create(aiplat_service **out,
                                               aiplat_config *cfg,
                                               const char *name,
                                               const char *version,
                                               const char *description) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: out is NULL");
  *out = NULL;
  if (!cfg) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: config is NULL");
  if (!aip_micro_name_valid(name))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: name must be letters, digits, '-' or '_'");
  if (!aip_micro_version_valid(version))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: version \"%.64s\" is not SemVer (e.g. 1.0.0)",
                    version ? version : "");
  int64_t workers, timeout, grace;
  aiplat_status st = aiplat_config_validate(cfg);
  int64_t max_in_flight;
  if (st == AIPLAT_OK) st = aiplat_config_get_int(cfg, "WORKERS", 1, 1024, &workers);
  if (st == AIPLAT_OK)
    st = aiplat_config_get_int(cfg, "MAX_IN_FLIGHT", 1, 65536, &max_in_flight);
  if (st == AIPLAT_OK) st = aiplat_config_get_duration_ms(cfg, "REQUEST_TIMEOUT", &timeout);
  if (st == AIPLAT_OK) st = aiplat_config_get_duration_ms(cfg, "SHUTDOWN_GRACE", &grace);
  if (st != AIPLAT_OK) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_config_last_error(cfg, msg, sizeof msg);
    return aip_fail(NULL, st, "%s", msg);
  }
  if (timeout <= 0 || timeout > MAX_REQUEST_TIMEOUT_MS)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "config: REQUEST_TIMEOUT must be above 0 and at most 7 days");
  st = aip_global_ref();
  if (st != AIPLAT_OK) return st;
  aiplat_service *svc = calloc(1, sizeof *svc);
  if (!svc) {
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
  }
  aip_err_init(&svc->err);
  pthread_mutex_init(&svc->mu, NULL);
  pthread_cond_init(&svc->cv, NULL);
  pthread_mutex_init(&svc->settle_mu, NULL);
  pthread_cond_init(&svc->settle_cv, NULL);
  svc->cfg = cfg;
  svc->name = strdup(name);
  svc->version = strdup(version);
  svc->description = strdup(description ? description : "");
  svc->workers = (unsigned)workers;
  svc->max_in_flight = (int)max_in_flight;
  svc->request_timeout_ms = timeout;
  svc->grace_ms = grace;
  svc->handle_signals = true;
  aip_micro_new_id(svc->id);
  if (!svc->name || !svc->version || !svc->description) {
    aiplat_service_destroy(svc);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
  }
  /* The health server exists from the start so that checks can be added
   * before aiplat_service_start(); it listens from start on. */
  st = aiplat_health_create(&svc->health, cfg);
  if (st == AIPLAT_OK) st = aiplat_bus_create(&svc->bus, cfg);
  if (st != AIPLAT_OK) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_error_last(msg, sizeof msg);
    aiplat_service_destroy(svc);
    return aip_fail(NULL, st, "%s", msg);
  }
  aiplat_log_set_service(name);
  *out = svc;
  return AIPLAT_OK;
}

static void endpoint_free(endpoint *ep) {
  if (!ep) return;
  for (unsigned i = 0; i < ep->n_subs; i++) aiplat_bus_sub_destroy(ep->subs[i]);
  free(ep->subs);
  pthread_mutex_destroy(&ep->mu);
  free(ep->name);
  free(ep->subject);
  free(ep->queue);
  free(ep->stream);
  free(ep->durable);
  free(ep);
}

static void shutdown_service(aiplat_service *svc);

AIPLAT_API void aiplat_service_destroy(aiplat_service *svc) {
  if (!svc) return;
  if (svc->started && !svc->shut_down) shutdown_service(svc);
  if (atomic_load(&svc->in_flight) > 0) {
    /* Requests still held (a completion that never came): they reach the
     * service through their endpoint, so they must end first. */
    cancel_deferred(svc);
    if (!wait_in_flight(svc, aip_now_ms() + CANCEL_GRACE_MS))
      aip_log_kv(AIPLAT_LOG_ERROR, "service destroyed with requests never completed", NULL);
  }
  settler_stop(svc);
  for (size_t i = 0; i < svc->n_micro; i++) aiplat_bus_sub_destroy(svc->micro_subs[i]);
  for (size_t i = 0; i < svc->n_eps; i++) endpoint_free(svc->eps[i]);
  free(svc->eps);

  aiplat_kv_destroy(svc->completions);
  aiplat_bus_destroy(svc->bus);
  aiplat_health_destroy(svc->health);
  free(svc->name);
  free(svc->version);
  free(svc->description);
  pthread_cond_destroy(&svc->cv);
  pthread_mutex_destroy(&svc->mu);
  pthread_cond_destroy(&svc->settle_cv);
  pthread_mutex_destroy(&svc->settle_mu);
  aip_err_destroy(&svc->err);
  free(svc);
  aip_global_unref();
}

AIPLAT_API aiplat_status aiplat_service_last_error(aiplat_service *svc,
                                                   char *buf, size_t buflen) {
  if (!svc) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: NULL handle");
  return aip_err_copy(&svc->err, buf, buflen);
}

static aiplat_status not_started(aiplat_service *svc, const char *what) {
  if (!svc) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: NULL handle");
  if (svc->started)
    return aip_fail(&svc->err, AIPLAT_ERR_STATE, "service: %s only before start", what);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_set_workers(aiplat_service *svc,
                                                    unsigned workers) {
  aiplat_status st = not_started(svc, "set_workers");
  if (st != AIPLAT_OK) return st;
  if (workers < 1 || workers > 1024)
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT, "service: workers must be 1..1024");
  svc->workers = workers;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_set_max_in_flight(aiplat_service *svc, int max) {
  aiplat_status st = not_started(svc, "set_max_in_flight");
  if (st != AIPLAT_OK) return st;
  if (max < 1 || max > 65536)
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT, "service: max in flight must be 1..65536");
  svc->max_in_flight = max;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_set_request_timeout_ms(aiplat_service *svc,
                                                               int64_t timeout_ms) {
  aiplat_status st = not_started(svc, "set_request_timeout_ms");
  if (st != AIPLAT_OK) return st;
  if (timeout_ms <= 0 || timeout_ms > MAX_REQUEST_TIMEOUT_MS)
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: timeout must be above 0 and at most 7 days");
  svc->request_timeout_ms = timeout_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_set_shutdown_grace_ms(aiplat_service *svc,
                                                              int64_t grace_ms) {
  if (!svc) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: NULL handle");
  if (grace_ms < 0)
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT, "service: grace must be >= 0");
  svc->grace_ms = grace_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_set_handle_signals(aiplat_service *svc,
                                                           bool handle) {
  aiplat_status st = not_started(svc, "set_handle_signals");
  if (st != AIPLAT_OK) return st;
  svc->handle_signals = handle;
  return AIPLAT_OK;
}

static aiplat_status add_endpoint(aiplat_service *svc, const char *name,
                                  const char *subject,
                                  const aiplat_endpoint_options *o,
                                  aiplat_handler_fn fn, void *ud) {
  aiplat_status st = not_started(svc, "add_endpoint");
  if (st != AIPLAT_OK) return st;
  const char *queue = o->queue, *stream = o->stream, *durable = o->durable;
  aiplat_msg_type request_type = o->request_type, reply_type = o->reply_type;
  if (!aip_micro_name_valid(name))
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: endpoint name must be letters, digits, '-' or '_'");
  if (!fn) return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT, "service: handler is NULL");
  if (!subject || aiplat_subject_validate_filter(subject) != AIPLAT_OK) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: endpoint %s: %s", name, subject ? why : "subject is NULL");
  }
  if (queue && aiplat_subject_validate(queue) != AIPLAT_OK)
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: endpoint %s: invalid queue group", name);
  if (request_type != AIPLAT_MSG_INVALID && !aiplat_msg_type_name(request_type))
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: endpoint %s: unknown request type %d", name, (int)request_type);
  if (reply_type != AIPLAT_MSG_INVALID && !aiplat_msg_type_name(reply_type))
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: endpoint %s: unknown reply type %d", name, (int)reply_type);
  for (size_t i = 0; i < svc->n_eps; i++)
    if (strcmp(svc->eps[i]->name, name) == 0)
      return aip_fail(&svc->err, AIPLAT_ERR_EXISTS, "service: endpoint %s exists", name);
  endpoint *ep = calloc(1, sizeof *ep);
  endpoint **grown = realloc(svc->eps, (svc->n_eps + 1) * sizeof *grown);
  if (!ep || !grown) {
    free(ep);
    if (grown) svc->eps = grown;
    return aip_fail(&svc->err, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
  }
  svc->eps = grown;
  pthread_mutex_init(&ep->mu, NULL);
  ep->svc = svc;
  ep->name = strdup(name);
  ep->subject = strdup(subject);
  ep->queue = strdup(queue ? queue : svc->name);
  ep->stream = stream ? strdup(stream) : NULL;
  ep->durable = durable ? strdup(durable) : NULL;
  ep->js = stream != NULL;
  ep->bind_only = o->bind_only;
  ep->max_deliver = o->max_deliver;
  ep->nak_first_ms = o->nak_first_ms;
  ep->nak_max_ms = o->nak_max_ms;
  ep->ack_wait_ms = o->ack_wait_ms;
  ep->request_type = request_type;
  ep->reply_type = reply_type;
  ep->fn = fn;
  ep->ud = ud;
  if (!ep->name || !ep->subject || !ep->queue || (stream && !ep->stream) ||
      (durable && !ep->durable)) {
    endpoint_free(ep);
    return aip_fail(&svc->err, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
  }
  svc->eps[svc->n_eps++] = ep;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_add_endpoint_with(
    aiplat_service *svc, const char *name, const char *subject,
    const aiplat_endpoint_options *opts, aiplat_handler_fn handler,
    void *user_data) {
  struct aiplat_endpoint_options defaults;
  if (!opts) {
    aip_endpoint_options_init(&defaults);
    opts = &defaults;
  }
  if (svc && (!opts->stream) != (!opts->durable))
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: a JetStream endpoint needs a stream and a durable name");
  return add_endpoint(svc, name, subject, opts, handler, user_data);
}

AIPLAT_API aiplat_status aiplat_service_add_endpoint(
    aiplat_service *svc, const char *name, const char *subject,
    const char *queue_group, aiplat_msg_type request_type,
    aiplat_msg_type reply_type, aiplat_handler_fn handler, void *user_data) {
  /* Borrows the caller's strings: the options are read, never kept. */
  struct aiplat_endpoint_options o;
  aip_endpoint_options_init(&o);
  o.queue = (char *)queue_group;
  o.request_type = request_type;
  o.reply_type = reply_type;
  return aiplat_service_add_endpoint_with(svc, name, subject, &o, handler, user_data);
}

AIPLAT_API aiplat_status aiplat_service_add_js_endpoint(
    aiplat_service *svc, const char *name, const char *stream,
    const char *durable, const char *subject, aiplat_msg_type request_type,
    aiplat_msg_type reply_type, aiplat_handler_fn handler, void *user_data) {
  if (svc && (!stream || !*stream || !durable || !*durable))
    return aip_fail(&svc->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "service: a JetStream endpoint needs a stream and a durable name");
  struct aiplat_endpoint_options o;
  aip_endpoint_options_init(&o);
  o.stream = (char *)stream;
  o.durable = (char *)durable;
  o.request_type = request_type;
  o.reply_type = reply_type;
  return aiplat_service_add_endpoint_with(svc, name, subject, &o, handler, user_data);
}

AIPLAT_API aiplat_status aiplat_service_add_check(aiplat_service *svc,
                                                  const char *name,
                                                  aiplat_health_check_fn fn,
                                                  void *user_data) {
  if (!svc) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: NULL handle");
  return aiplat_health_add_check(svc->health, name, fn, user_data);
}

AIPLAT_API aiplat_bus *aiplat_service_bus(aiplat_service *svc) {
  return svc ? svc->bus : NULL;
}
AIPLAT_API aiplat_health *aiplat_service_health(aiplat_service *svc) {
  return svc ? svc->health : NULL;
}
AIPLAT_API aiplat_config *aiplat_service_config(aiplat_service *svc) {
  return svc ? svc->cfg : NULL;
}
AIPLAT_API const char *aiplat_service_id(aiplat_service *svc) {
  return svc ? svc->id : NULL;
}

/* ---- replies ------------------------------------------------------------ */

static aiplat_headers *reply_headers(aiplat_request *req) {
  aiplat_headers *h = NULL;
  if (aiplat_headers_create(&h) != AIPLAT_OK) return NULL;
  aiplat_headers_set(h, "traceparent", req->traceparent);
  return h;
}

/* The same single header, built on the stack for the success path: a
 * reply allocates no header set. */
typedef struct trace_header {
  aiplat_headers set;
  char *key, *value;
} trace_header;

static const aiplat_headers *trace_header_of(trace_header *t, aiplat_request *req) {
  memset(t, 0, sizeof *t);
  t->key = (char *)"traceparent";
  t->value = req->traceparent;
  t->set.readonly = true;
  t->set.checked = true; /* a valid name; the value is formatted hex */
  t->set.n = t->set.cap = 1;
  t->set.keys = &t->key;
  t->set.values = &t->value;
  return &t->set;
}

static void note_error(endpoint *ep, const char *text) {
  pthread_mutex_lock(&ep->mu);
  ep->num_errors++;
  snprintf(ep->last_error, sizeof ep->last_error, "%s", text);
  pthread_mutex_unlock(&ep->mu);
}

/* Send the error reply of a failed request (when someone waits for one). */
static void send_error(aiplat_request *req, aiplat_status code, const char *text) {
  endpoint *ep = req->ep;
  note_error(ep, text);
  aip_log_kv(transient(code) ? AIPLAT_LOG_WARNING : AIPLAT_LOG_INFO, "request failed",
             "endpoint", ep->name, "subject", aiplat_bus_msg_subject(req->msg), "error",
             aiplat_status_str(code), "detail", text, NULL);
  if (ep->js || !aiplat_bus_msg_reply(req->msg)) return;
  uint8_t *body = NULL;
  size_t len = 0;
  if (ep->reply_type != AIPLAT_MSG_INVALID) {
    aiplat_msg *reply = NULL;
    if (aiplat_msg_create(&reply, ep->reply_type) == AIPLAT_OK) {
      aip_msg_set_error(reply, code, text);
      if (req->request_id && aiplat_msg_set_string(reply, "request_id", req->request_id) != AIPLAT_OK)
        aiplat_error_clear(); /* reply types without request_id */
      if (aiplat_msg_encode(reply, &body, &len) != AIPLAT_OK) body = NULL, len = 0;
      aiplat_msg_destroy(reply);
    }
  }
  aiplat_headers *h = reply_headers(req);
  char num[16];
  snprintf(num, sizeof num, "%d", micro_code(code));
  if (h) {
    /* Header values cannot hold CR/LF: the text is a one-line summary. */
    char line[LAST_ERROR_MAX];
    snprintf(line, sizeof line, "%s", text);
    for (char *p = line; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    aiplat_headers_set(h, AIP_MICRO_ERROR_HEADER, line);
    aiplat_headers_set(h, AIP_MICRO_ERROR_CODE_HEADER, num);
  }
  if (aiplat_bus_msg_respond(req->msg, body, len, h) != AIPLAT_OK) {
    char why[AIP_ERRMSG_MAX];
    aiplat_bus_msg_last_error(req->msg, why, sizeof why);
    aip_log_kv(AIPLAT_LOG_WARNING, "could not send the error reply", "endpoint", ep->name,
               "error", why, NULL);
  }
  aiplat_headers_destroy(h);
  aiplat_free(body);
}

AIPLAT_API aiplat_status aiplat_request_fail(aiplat_request *req,
                                             aiplat_status code,
                                             const char *message) {
  if (!req) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL");
  if (code == AIPLAT_OK) code = AIPLAT_ERR_INTERNAL;
  if (atomic_exchange(&req->answered, true))
    return aip_fail(NULL, AIPLAT_ERR_STATE, "request: already answered");
  req->failed = code;
  send_error(req, code, message && *message ? message : aiplat_status_str(code));
  return code;
}

static aiplat_status respond_raw(aiplat_request *req, const void *data, size_t len) {
  if (!req) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL");
  if (atomic_exchange(&req->answered, true))
    return aip_fail(NULL, AIPLAT_ERR_STATE, "request: already answered");
  if (req->ep->js || !aiplat_bus_msg_reply(req->msg)) return AIPLAT_OK;
  trace_header th;
  aiplat_status st = aiplat_bus_msg_respond(req->msg, data, len, trace_header_of(&th, req));
  if (st != AIPLAT_OK) {
    /* The caller must not wait for a reply that cannot be sent (over the
     * server's max_payload, say): tell it why instead. */
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    req->failed = st;
    send_error(req, st, why);
  }
  return st;
}

AIPLAT_API aiplat_status aiplat_request_respond_bytes(aiplat_request *req,
                                                      const void *data,
                                                      size_t len) {
  return respond_raw(req, data, len);
}

AIPLAT_API aiplat_status aiplat_request_respond(aiplat_request *req,
                                                aiplat_msg *reply) {
  if (!req || !reply) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL reply");
  uint8_t *body = NULL;
  size_t len = 0;
  aiplat_status st = aiplat_msg_encode(reply, &body, &len);
  if (st != AIPLAT_OK) return st;
  st = respond_raw(req, body, len);
  aiplat_free(body);
  return st;
}

AIPLAT_API aiplat_status aiplat_request_publish(aiplat_request *req,
                                                const char *subject,
                                                aiplat_msg *msg) {
  if (!req || !msg) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL message");
  uint8_t *body = NULL;
  size_t len = 0;
  aiplat_status st = aiplat_msg_encode(msg, &body, &len);
  if (st != AIPLAT_OK) return st;
  trace_header th;
  st = aiplat_bus_publish(req->ep->svc->bus, subject, body, len, trace_header_of(&th, req));
  aiplat_free(body);
  return st;
}

AIPLAT_API aiplat_status aiplat_request_in_progress(aiplat_request *req) {
  if (!req) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL");
  if (!req->ep->js) return AIPLAT_OK;
  return aiplat_bus_msg_in_progress(req->msg);
}

/* ---- request accessors -------------------------------------------------- */

AIPLAT_API const char *aiplat_request_subject(aiplat_request *req) {
  return req ? aiplat_bus_msg_subject(req->msg) : NULL;
}
AIPLAT_API const char *aiplat_request_endpoint(aiplat_request *req) {
  return req ? req->ep->name : NULL;
}
AIPLAT_API const uint8_t *aiplat_request_data(aiplat_request *req, size_t *len) {
  if (!req) return NULL;
  if (len) *len = aiplat_bus_msg_len(req->msg);
  return aiplat_bus_msg_data(req->msg);
}
AIPLAT_API const char *aiplat_request_header(aiplat_request *req, const char *key) {
  return req && key ? aip_bus_msg_header_peek(req->msg, key) : NULL;
}
AIPLAT_API aiplat_msg *aiplat_request_message(aiplat_request *req) {
  return req ? req->decoded : NULL;
}
AIPLAT_API const char *aiplat_request_id(aiplat_request *req) {
  return req ? req->request_id : NULL;
}
AIPLAT_API const char *aiplat_request_trace_id(aiplat_request *req) {
  return req ? req->trace.trace_id : NULL;
}
AIPLAT_API const char *aiplat_request_traceparent(aiplat_request *req) {
  return req ? req->traceparent : NULL;
}
AIPLAT_API int64_t aiplat_request_time_left_ms(aiplat_request *req) {
  return req ? (req->deadline_ns - aip_now_ns()) / 1000000 : 0;
}
AIPLAT_API bool aiplat_request_has_reply(aiplat_request *req) {
  return req && !req->ep->js && aiplat_bus_msg_reply(req->msg) != NULL;
}

/* ---- the request cycle -------------------------------------------------- */

/* The key of a request's completion: "<durable>.<request id>", or false
 * when the id cannot be a key (it is then not deduplicated). */
static bool completion_key(aiplat_request *req, char *key, size_t cap) {
  const char *id = req->request_id;
  if (!id || !*id || id[0] == '.' || strstr(id, "..")) return false;
  for (const char *p = id; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("-_=/.", *p)) return false;
  int n = snprintf(key, cap, "%s.%s", req->ep->durable, id);
  return n > 0 && (size_t)n < cap && key[n - 1] != '.';
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Whether a JetStream request was answered before (a redelivery after the
 * answer went out but its ack was lost): AIPLAT_OK when it was,
 * AIPLAT_ERR_NOT_FOUND when not (or when it cannot be told: no bucket, an
 * id that cannot be a key), another failure when the bucket did not answer
 * (a leader election): the request is then put back rather than risk a
 * second answer, except at its last delivery, which is handled.
 * AIPLAT_ERR_STATE for the first redelivery of a request not recorded yet:
 * the instance that answered it may still be recording its completion (it
 * retries while a leader is elected, and the redelivery comes as soon as
 * the new leader is there), so it is put back once, briefly, and looked up
 * again, unless it is the last delivery. */
static aiplat_status answered_before(aiplat_request *req) {
  aiplat_kv *kv = req->ep->svc->completions;
  char key[256];
  if (!kv || !completion_key(req, key, sizeof key)) return AIPLAT_ERR_NOT_FOUND;
  void *data = NULL;
  size_t len = 0;
  aiplat_status st = aiplat_kv_get(kv, key, &data, &len);
  aiplat_free(data);
  uint64_t n = 1;
  aiplat_bus_msg_delivery_count(req->msg, &n);
  if (st == AIPLAT_OK || st == AIPLAT_ERR_NOT_FOUND) {
    aiplat_error_clear();
    /* Not at the last delivery, which is handled (a limit of 2). */
    if (st == AIPLAT_ERR_NOT_FOUND && n == 2 && n < (uint64_t)req->ep->max_deliver)
      return AIPLAT_ERR_STATE;
    return st;
  }
  if (n >= (uint64_t)req->ep->max_deliver) {
    aiplat_error_clear();
    return AIPLAT_ERR_NOT_FOUND;
  }
  return AIPLAT_ERR_UNAVAILABLE;
}

/* The time left to settle @req: JS_SETTLE_BUDGET_MS from now. Past the
 * ack wait the request is delivered again, but a completion recorded late
 * still keeps that copy from being answered again (answered_before() puts
 * a first redelivery back once to give this time). */
static int64_t settle_deadline_ns(aiplat_request *req) {
  (void)req;
  return aip_now_ns() + JS_SETTLE_BUDGET_MS * INT64_C(1000000);
}

/* Sleep before the next attempt: *@pause_ms (then doubled up to
 * JS_RETRY_MAX_MS), or false when that would pass @deadline_ns. */
static bool retry_pause(int64_t deadline_ns, int64_t *pause_ms) {
  if (aip_now_ns() + *pause_ms * INT64_C(1000000) >= deadline_ns) return false;
  sleep_ms(*pause_ms);
  *pause_ms = *pause_ms * 2 < JS_RETRY_MAX_MS ? *pause_ms * 2 : JS_RETRY_MAX_MS;
  return true;
}

/* Record the completion of @req, retried until @deadline_ns. */
static void record_completion(aiplat_request *req, int64_t deadline_ns) {
  aiplat_service *svc = req->ep->svc;
  char key[256];
  if (!svc->completions || !completion_key(req, key, sizeof key)) return;
  int64_t pause = JS_RETRY_MIN_MS;
  int attempts = 0;
  do {
    attempts++;
    if (aiplat_kv_put(svc->completions, key, "1", 1, NULL) == AIPLAT_OK) return;
    if (attempts == 2)
      aip_bus_msg_settle_failed(req->msg, "the completions bucket does not answer "
                                          "(no leader, or it was lost)");
  } while (retry_pause(deadline_ns, &pause));
  char why[AIP_ERRMSG_MAX], n[16];
  aiplat_kv_last_error(svc->completions, why, sizeof why);
  snprintf(n, sizeof n, "%d", attempts);
  aip_log_kv(AIPLAT_LOG_WARNING, "could not record the completion; a redelivery would be answered again",
             "endpoint", req->ep->name, "attempts", n, "error", why, NULL);
}

/* Ack @req and wait for the server's confirmation, retried until
 * @deadline_ns (acking a delivery twice is harmless). */
static void ack_confirmed(aiplat_request *req, int64_t deadline_ns) {
  int64_t pause = JS_RETRY_MIN_MS;
  int attempts = 0;
  do {
    attempts++;
    int64_t left = (deadline_ns - aip_now_ns()) / 1000000;
    int64_t wait = left < JS_STEP_TIMEOUT_MS ? (left > 100 ? left : 100) : JS_STEP_TIMEOUT_MS;
    if (aiplat_bus_msg_ack_sync(req->msg, wait) == AIPLAT_OK) return;
    if (attempts == 2) /* not a blip: the consumer has no leader */
      aip_bus_msg_settle_failed(req->msg, "JetStream does not confirm acknowledgements "
                                          "(no leader for the consumer, or it was lost)");
  } while (retry_pause(deadline_ns, &pause));
  char why[AIP_ERRMSG_MAX], n[16];
  aiplat_bus_msg_last_error(req->msg, why, sizeof why);
  snprintf(n, sizeof n, "%d", attempts);
  aip_log_kv(AIPLAT_LOG_WARNING, "ack not confirmed; the request may be delivered again",
             "endpoint", req->ep->name, "attempts", n, "error", why, NULL);
}

/* A JetStream request that succeeded: its answer is handed to the server
 * (flushed), its completion recorded, then the ack confirmed. An answer
 * that may not have reached the server is not acked: the nak brings the
 * request back. */
static aiplat_status settle_ok(aiplat_request *req) {
  aiplat_service *svc = req->ep->svc;
  aiplat_status st = aiplat_bus_flush(svc->bus, JS_FLUSH_TIMEOUT_MS);
  if (st != AIPLAT_OK) return st;
  int64_t deadline = settle_deadline_ns(req);
  record_completion(req, deadline);
  ack_confirmed(req, deadline);
  return AIPLAT_OK;
}

static void settle_js(aiplat_request *req, aiplat_status st) {
  aiplat_bus_msg *m = req->msg;
  if (st == AIPLAT_OK && (st = settle_ok(req)) != AIPLAT_OK) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    aip_log_kv(AIPLAT_LOG_WARNING, "the answer may not have reached the server; not acked",
               "endpoint", req->ep->name, "error", why, NULL);
    if (!transient(st)) st = AIPLAT_ERR_CONNECTION;
  }
  if (st == AIPLAT_OK) {
    return;
  } else if (transient(st)) {
    uint64_t n = 1;
    aiplat_bus_msg_delivery_count(m, &n);
    int64_t delay = req->ep->nak_first_ms, most = req->ep->nak_max_ms;
    for (uint64_t i = 1; i < n && delay < most; i++) delay *= 2;
    aiplat_bus_msg_nak_with_delay(m, delay < most ? delay : most);
  } else {
    aiplat_bus_msg_term(m);
  }
}

static void set_request_id(aiplat_request *req) {
  const char *id = NULL;
  if (req->decoded && aiplat_msg_get_string(req->decoded, "request_id", &id) != AIPLAT_OK) {
    id = NULL;
    aiplat_error_clear();
  }
  if (!id || !*id) id = aiplat_request_header(req, "Aiplat-Request-Id");
  if (id && *id) {
    req->request_id = strdup(id);
  } else {
    req->request_id = malloc(17);
    if (req->request_id) random_hex(req->request_id, 8);
  }
}

/* The request's deadline: REQUEST_TIMEOUT from now, or sooner when the
 * caller said when it stops waiting (`Aiplat-Deadline`: Unix time in ms). */
static int64_t deadline_of(aiplat_request *req, int64_t now_ns) {
  int64_t budget_ms = req->ep->svc->request_timeout_ms;
  const char *h = aiplat_request_header(req, "Aiplat-Deadline");
  if (h) {
    /* A number from the wire: only a well-formed positive value that is
     * sooner than our own budget is used, and it is compared in
     * milliseconds before any conversion, so no value can overflow. */
    char *end;
    errno = 0;
    long long wall = strtoll(h, &end, 10);
    if (h[0] >= '0' && h[0] <= '9' && errno == 0 && *end == '\0' && wall > 0) {
      int64_t now_wall = aip_wall_ms();
      if (wall <= now_wall)
        budget_ms = 0;
      else if (wall - now_wall < budget_ms)
        budget_ms = wall - now_wall;
    }
  }
  return now_ns + budget_ms * 1000000;
}

/* The end of a request: JetStream settles, the statistics count it, the
 * message goes back to its subscription (which may fetch the next). */
static void finalize_now(aiplat_request *req) {
  endpoint *ep = req->ep;
  aiplat_service *svc = ep->svc;
  aiplat_status st = req->failed;
  if (ep->js) settle_js(req, st);
  if (atomic_load(&req->deferred)) {
    pthread_mutex_lock(&svc->mu);
    if (req->prev)
      req->prev->next = req->next;
    else if (svc->deferred == req)
      svc->deferred = req->next;
    if (req->next) req->next->prev = req->prev;
    pthread_mutex_unlock(&svc->mu);
  }
  int64_t elapsed = aip_now_ns() - req->t0;
  aip_otel_server_end(req->span, st, req->request_id);
  aip_endpoint_end(&ep->metrics, st, elapsed);
  pthread_mutex_lock(&ep->mu);
  ep->num_requests++;
  ep->processing_ns += elapsed;
  pthread_mutex_unlock(&ep->mu);
  aiplat_msg_destroy(req->decoded);
  free(req->request_id);
  aiplat_bus_msg_destroy(req->msg);
  free(req);
  if (atomic_fetch_sub(&svc->in_flight, 1) == 1) {
    pthread_mutex_lock(&svc->mu);
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
  }
}

static void *settler_main(void *arg) {
  aiplat_service *svc = arg;
  pthread_mutex_lock(&svc->settle_mu);
  for (;;) {
    aiplat_request *req = svc->settle_head;
    if (req) {
      svc->settle_head = req->settle_next;
      if (!svc->settle_head) svc->settle_tail = NULL;
      pthread_mutex_unlock(&svc->settle_mu);
      finalize_now(req);
      pthread_mutex_lock(&svc->settle_mu);
    } else if (svc->settle_stop) {
      break;
    } else {
      pthread_cond_wait(&svc->settle_cv, &svc->settle_mu);
    }
  }
  pthread_mutex_unlock(&svc->settle_mu);
  return NULL;
}

static void finalize(aiplat_request *req) {
  aiplat_service *svc = req->ep->svc;
  if (!req->ep->js || !svc->n_settlers || !aip_loop_on_thread()) {
    finalize_now(req);
    return;
  }
  req->settle_next = NULL;
  pthread_mutex_lock(&svc->settle_mu);
  if (svc->settle_tail)
    svc->settle_tail->settle_next = req;
  else
    svc->settle_head = req;
  svc->settle_tail = req;
  pthread_cond_signal(&svc->settle_cv);
  pthread_mutex_unlock(&svc->settle_mu);
}

static void settler_stop(aiplat_service *svc) {
  if (!svc->settlers) return;
  pthread_mutex_lock(&svc->settle_mu);
  svc->settle_stop = true;
  pthread_cond_broadcast(&svc->settle_cv);
  pthread_mutex_unlock(&svc->settle_mu);
  for (unsigned i = 0; i < svc->n_settlers; i++) pthread_join(svc->settlers[i], NULL);
  free(svc->settlers);
  svc->settlers = NULL;
  svc->n_settlers = 0;
}

static void request_unref(aiplat_request *req) {
  if (atomic_fetch_sub(&req->refs, 1) == 1) finalize(req);
}

/* Past the bound: an immediate, retryable answer naming the overload. */
static void refuse_overload(endpoint *ep, aiplat_bus_msg *msg) {
  aiplat_service *svc = ep->svc;
  aiplat_request req = {.ep = ep, .msg = msg};
  atomic_init(&req.answered, false);
  char why[160];
  snprintf(why, sizeof why,
           "overloaded: %d requests in flight (MAX_IN_FLIGHT); retry later or on another replica",
           svc->max_in_flight);
  aip_endpoint_begin(&ep->metrics);
  send_error(&req, AIPLAT_ERR_UNAVAILABLE, why);
  aip_endpoint_end(&ep->metrics, AIPLAT_ERR_UNAVAILABLE, 0);
  pthread_mutex_lock(&ep->mu);
  ep->num_requests++;
  pthread_mutex_unlock(&ep->mu);
  aiplat_bus_msg_destroy(msg);
}

static void handle(endpoint *ep, aiplat_bus_msg *msg) {
  aiplat_service *svc = ep->svc;
  if (!ep->js && atomic_fetch_add(&svc->in_flight, 1) >= svc->max_in_flight) {
    refuse_overload(ep, msg);
    if (atomic_fetch_sub(&svc->in_flight, 1) == 1) {
      pthread_mutex_lock(&svc->mu);
      pthread_cond_broadcast(&svc->cv);
      pthread_mutex_unlock(&svc->mu);
    }
    return;
  }
  if (ep->js) atomic_fetch_add(&svc->in_flight, 1); /* the fetch bounds it */
  aiplat_request *req = calloc(1, sizeof *req);
  if (!req) {
    aiplat_request tmp = {.ep = ep, .msg = msg};
    send_error(&tmp, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
    if (ep->js) settle_js(&tmp, AIPLAT_ERR_NO_MEMORY);
    aiplat_bus_msg_destroy(msg);
    atomic_fetch_sub(&svc->in_flight, 1);
    return;
  }
  int64_t t0 = aip_now_ns();
  req->ep = ep;
  req->msg = msg;
  req->t0 = t0;
  atomic_init(&req->refs, 1);
  req->deadline_ns = deadline_of(req, t0);
  aip_trace_continue(aiplat_request_header(req, "traceparent"), &req->trace);
  aip_trace_format(&req->trace, req->traceparent, sizeof req->traceparent);
  req->span = aip_otel_server_span(&req->trace, ep->subject, aiplat_bus_msg_subject(msg));
  aip_endpoint_begin(&ep->metrics);

  aiplat_status st = AIPLAT_OK;
  char why[AIP_ERRMSG_MAX];
  if (ep->request_type != AIPLAT_MSG_INVALID) {
    st = aiplat_msg_decode(&req->decoded, ep->request_type, aiplat_bus_msg_data(msg),
                           aiplat_bus_msg_len(msg));
    if (st != AIPLAT_OK) aiplat_error_last(why, sizeof why);
  }
  set_request_id(req);
  aiplat_log_set_thread_context(req->request_id, req->trace.trace_id);
  aip_otel_ctx otel_prev = aip_otel_enter_trace(&req->trace);
  if (st != AIPLAT_OK) {
    aiplat_request_fail(req, st, why);
  } else if (aip_now_ns() >= req->deadline_ns) {
    aiplat_request_fail(req, AIPLAT_ERR_TIMEOUT,
                        "the caller's deadline passed before a worker was free");
  } else if (ep->js && (st = answered_before(req)) != AIPLAT_ERR_NOT_FOUND) {
    if (st == AIPLAT_OK) {
      atomic_store(&req->answered, true); /* acked, not handled again */
      aip_log_kv(AIPLAT_LOG_INFO, "request answered before; acknowledged without handling it again",
                 "endpoint", ep->name, NULL);
    } else if (st == AIPLAT_ERR_STATE) {
      aiplat_request_fail(req, AIPLAT_ERR_UNAVAILABLE,
                          "delivered again and not recorded as answered yet; put back once "
                          "while an earlier delivery may still record its answer");
    } else {
      aiplat_request_fail(req, st, "cannot tell whether the request was answered before "
                                   "(the completions bucket does not answer); put back");
    }
  } else {
    aiplat_error_clear();
    aip_thread_deadline_set(req->deadline_ns / 1000000);
    st = ep->fn(req, ep->ud);
    aip_thread_deadline_set(0);
    if (!atomic_load(&req->deferred) && !atomic_load(&req->answered)) {
      if (st != AIPLAT_OK) {
        aiplat_status last = aiplat_error_last(why, sizeof why);
        aiplat_request_fail(req, st, last != AIPLAT_OK && *why ? why : aiplat_status_str(st));
      } else if (aiplat_request_has_reply(req)) {
        aiplat_request_fail(req, AIPLAT_ERR_INTERNAL, "the handler returned without a reply");
      }
    }
  }
  aiplat_log_set_thread_context(NULL, NULL);
  aip_otel_restore(otel_prev);
  request_unref(req);
}

/* ---- requests finished later ---------------------------------------------- */

AIPLAT_API aiplat_status aiplat_request_defer(aiplat_request *req) {
  if (!req) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL");
  if (atomic_exchange(&req->deferred, true))
    return aip_fail(NULL, AIPLAT_ERR_STATE, "request: already deferred");
  atomic_fetch_add(&req->refs, 1);
  aiplat_service *svc = req->ep->svc;
  pthread_mutex_lock(&svc->mu);
  req->next = svc->deferred;
  if (svc->deferred) svc->deferred->prev = req;
  svc->deferred = req;
  pthread_mutex_unlock(&svc->mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_request_set_cancel_callback(aiplat_request *req,
                                                            aiplat_request_cancel_fn fn,
                                                            void *user_data) {
  if (!req) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL");
  aiplat_service *svc = req->ep->svc;
  pthread_mutex_lock(&svc->mu);
  req->cancel_fn = fn;
  req->cancel_ud = user_data;
  pthread_mutex_unlock(&svc->mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_request_complete(aiplat_request *req, aiplat_status status,
                                                 const char *message) {
  if (!req) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request: NULL");
  if (!atomic_load(&req->deferred))
    return aip_fail(NULL, AIPLAT_ERR_STATE, "request: complete without defer");
  if (atomic_exchange(&req->completed, true))
    return aip_fail(NULL, AIPLAT_ERR_STATE, "request: already completed");
  aiplat_log_set_thread_context(req->request_id, req->trace.trace_id);
  if (!atomic_load(&req->answered)) {
    if (status != AIPLAT_OK)
      aiplat_request_fail(req, status, message && *message ? message : aiplat_status_str(status));
    else if (aiplat_request_has_reply(req))
      aiplat_request_fail(req, AIPLAT_ERR_INTERNAL, "the request completed without a reply");
  } else if (status != AIPLAT_OK && req->failed == AIPLAT_OK) {
    req->failed = status; /* answered, then failed: JetStream naks */
  }
  aiplat_log_set_thread_context(NULL, NULL);
  request_unref(req);
  return AIPLAT_OK;
}

int64_t aip_request_deadline_ms(aiplat_request *req) {
  return req->deadline_ns / 1000000;
}

/* Past the grace period: ask every handed-over request to stop; those
 * without a cancel callback are answered with an error now (their later
 * reply is refused as a second answer). */
static void cancel_deferred(aiplat_service *svc) {
  pthread_mutex_lock(&svc->mu);
  for (aiplat_request *r = svc->deferred; r; r = r->next) {
    if (r->cancel_fn) {
      r->cancel_fn(r, r->cancel_ud);
    } else if (!atomic_load(&r->answered)) {
      aiplat_request_fail(r, AIPLAT_ERR_UNAVAILABLE,
                          "the service stopped before the request finished");
    }
  }
  pthread_mutex_unlock(&svc->mu);
}

static bool wait_in_flight(aiplat_service *svc, int64_t deadline_ms) {
  pthread_mutex_lock(&svc->mu);
  while (atomic_load(&svc->in_flight) > 0 && aip_now_ms() < deadline_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 10 * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&svc->cv, &svc->mu, &until);
  }
  bool done = atomic_load(&svc->in_flight) == 0;
  pthread_mutex_unlock(&svc->mu);
  return done;
}

/* Delivery callback: the message is the request's until it finishes. */
static void on_message(aiplat_bus_msg *msg, void *closure) {
  handle(closure, msg);
}

/* ---- micro protocol ------------------------------------------------------ */

enum { VERB_PING, VERB_INFO, VERB_STATS };
static const char *const verb_names[MICRO_VERBS] = {"PING", "INFO", "STATS"};

static aip_micro_endpoint *snapshot(aiplat_service *svc) {
  aip_micro_endpoint *eps = calloc(svc->n_eps ? svc->n_eps : 1, sizeof *eps);
  if (!eps) return NULL;
  for (size_t i = 0; i < svc->n_eps; i++) {
    endpoint *ep = svc->eps[i];
    pthread_mutex_lock(&ep->mu);
    eps[i] = (aip_micro_endpoint){ep->name, ep->subject, ep->js ? "" : ep->queue,
                                  ep->num_requests, ep->num_errors, ep->processing_ns,
                                  strdup(ep->last_error)};
    pthread_mutex_unlock(&ep->mu);
  }
  return eps;
}

/* The verb of a micro protocol subject ($SRV.<VERB>[.name[.id]]), or -1. */
static int micro_verb(const char *subject) {
  if (strncmp(subject, "$SRV.", 5) != 0) return -1;
  const char *v = subject + 5;
  size_t n = strcspn(v, ".");
  for (int i = 0; i < MICRO_VERBS; i++)
    if (strlen(verb_names[i]) == n && strncmp(v, verb_names[i], n) == 0) return i;
  return -1;
}

static void on_micro(aiplat_bus_msg *msg, void *closure) {
  aiplat_service *svc = closure;
  int verb = micro_verb(aiplat_bus_msg_subject(msg));
  if (verb < 0) return; /* another verb of the protocol: not ours */
  aip_micro_identity id = {svc->name, svc->id, svc->version, svc->description};
  char *body = NULL;
  aip_micro_endpoint *eps = NULL;
  switch (verb) {
    case VERB_PING: body = aip_micro_ping_json(&id); break;
    case VERB_INFO:
      eps = snapshot(svc);
      if (eps) body = aip_micro_info_json(&id, eps, svc->n_eps);
      break;
    default:
      eps = snapshot(svc);
      if (eps) body = aip_micro_stats_json(&id, svc->started_wall_ms, eps, svc->n_eps);
  }
  if (eps)
    for (size_t i = 0; i < svc->n_eps; i++) free((char *)eps[i].last_error);
  free(eps);
  if (body && aiplat_bus_msg_reply(msg)) aiplat_bus_msg_respond(msg, body, strlen(body), NULL);
  free(body);
}

/* ---- start, run, stop ---------------------------------------------------- */

static bool nats_check(char *msg, size_t msglen, void *ud) {
  aiplat_service *svc = ud;
  bool up = aiplat_bus_is_connected(svc->bus);
  snprintf(msg, msglen, "%s", up ? "connected" : "not connected to NATS");
  return up;
}

/* How long the server waits for an endpoint's ack. */
static int64_t ack_wait(const endpoint *ep) {
  return ep->ack_wait_ms > 0 ? ep->ack_wait_ms : ep->svc->request_timeout_ms;
}

/* The bucket of completions, when an endpoint takes requests from
 * JetStream: kept longer than a request can be delivered again. */
static aiplat_status open_completions(aiplat_service *svc, int stream_replicas) {
  const char *bucket = NULL;
  aiplat_status st = aiplat_config_get_string(svc->cfg, "JS_COMPLETIONS_BUCKET", &bucket);
  int64_t replicas = 0;
  if (st == AIPLAT_OK)
    st = aiplat_config_get_int(svc->cfg, "JS_COMPLETIONS_REPLICAS", 0, 5, &replicas);
  if (st != AIPLAT_OK) return st;
  /* The records must outlive a node as the requests do. */
  if (replicas == 0) replicas = stream_replicas;
  /* The longest any JetStream endpoint may deliver one request again. */
  int64_t window = 0;
  for (size_t i = 0; i < svc->n_eps; i++) {
    endpoint *ep = svc->eps[i];
    if (!ep->js) continue;
    int64_t w = (ack_wait(ep) + ep->nak_max_ms) * ep->max_deliver;
    if (w > window) window = w;
  }
  int64_t ttl = window > COMPLETIONS_TTL_MIN_MS ? window : COMPLETIONS_TTL_MIN_MS;
  return aip_kv_open(&svc->completions, svc->bus, bucket, ttl, 1, (int)replicas,
                     JS_STEP_TIMEOUT_MS);
}

/* Bind (or create) the stream of each JetStream endpoint, then open the
 * completions bucket with as many replicas as the most replicated of them,
 * and start the settlers. Before any subscription, so that no request is
 * handled without the bucket. */
static aiplat_status start_js(aiplat_service *svc) {
  int most = 0;
  aiplat_status st = AIPLAT_OK;
  for (size_t i = 0; i < svc->n_eps && st == AIPLAT_OK; i++) {
    endpoint *ep = svc->eps[i];
    if (!ep->js) continue;
    /* An operator's stream is used as it is; one is created only when
     * missing (docs/decisions/0006). */
    char what[96];
    snprintf(what, sizeof what, "service: endpoint %s", ep->name);
    int64_t replicas = 1;
    int have = 1;
    st = aiplat_config_get_int(svc->cfg, "JS_STREAM_REPLICAS", 1, 5, &replicas);
    if (st == AIPLAT_OK)
      st = aip_bus_stream_bind(svc->bus, what, ep->stream, ep->subject,
                               AIPLAT_BUS_RETENTION_WORK_QUEUE, (int)replicas,
                               ep->bind_only, &have);
    if (have > most) most = have;
  }
  if (st != AIPLAT_OK || most == 0) return st;
  st = open_completions(svc, most);
  if (st != AIPLAT_OK) return st;
  svc->settlers = calloc(svc->workers, sizeof *svc->settlers);
  if (!svc->settlers) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
  for (unsigned i = 0; i < svc->workers; i++) {
    if (pthread_create(&svc->settlers[i], NULL, settler_main, svc) != 0)
      return aip_fail(NULL, AIPLAT_ERR_INTERNAL, "service: cannot start a thread");
    svc->n_settlers++;
  }
  return AIPLAT_OK;
}

/* An endpoint taking requests from JetStream is ready while each of its
 * subscriptions can fetch. */
static bool js_check(char *msg, size_t msglen, void *ud) {
  endpoint *ep = ud;
  for (unsigned w = 0; w < ep->n_subs; w++)
    if (!aip_bus_sub_fetch_ok(ep->subs[w], msg, msglen)) return false;
  snprintf(msg, msglen, "fetching from stream %s", ep->stream);
  return true;
}

static void on_bus_event(aiplat_bus *bus, aiplat_bus_event event, aiplat_status status,
                         const char *detail, void *ud) {
  (void)bus, (void)status, (void)detail;
  aiplat_service *svc = ud;
  aiplat_metrics *m = aiplat_health_metrics(svc->health);
  if (event == AIPLAT_BUS_EVENT_RECONNECTED) aip_metrics_nats_reconnected(m);
  if (event == AIPLAT_BUS_EVENT_DISCONNECTED) aip_metrics_nats_disconnected(m);
}

/* The micro protocol's subjects, the verb a wildcard: three subscriptions
 * (so three delivery threads in nats.c) serve every verb. */
static aiplat_status subscribe_micro(aiplat_service *svc) {
  char subj[3][256];
  snprintf(subj[0], sizeof subj[0], "$SRV.*");
  snprintf(subj[1], sizeof subj[1], "$SRV.*.%s", svc->name);
  snprintf(subj[2], sizeof subj[2], "$SRV.*.%s.%s", svc->name, svc->id);
  for (int k = 0; k < 3; k++) {
    aiplat_status st = aiplat_bus_subscribe(svc->bus, subj[k], NULL, on_micro, svc,
                                            &svc->micro_subs[svc->n_micro]);
    if (st != AIPLAT_OK) return st;
    svc->n_micro++;
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_service_start(aiplat_service *svc) {
  if (!svc) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: NULL handle");
  if (svc->started) return aip_fail(&svc->err, AIPLAT_ERR_STATE, "service: already started");
  if (svc->n_eps == 0)
    return aip_fail(&svc->err, AIPLAT_ERR_STATE, "service: no endpoint was added");
  svc->started = true;
  if (svc->handle_signals) {
    /* Block before any thread starts, so every thread inherits the mask and
     * only aiplat_service_run() takes SIGINT/SIGTERM (with sigtimedwait). */
    sigemptyset(&svc->sigs);
    sigaddset(&svc->sigs, SIGINT);
    sigaddset(&svc->sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &svc->sigs, NULL);
  }
  char why[AIP_ERRMSG_MAX];
  aiplat_status st = aiplat_health_add_check(svc->health, "nats", nats_check, svc);
  if (st == AIPLAT_OK) st = aiplat_health_set_ready(svc->health, false, "starting");
  if (st == AIPLAT_OK) st = aip_metrics_register_std(aiplat_health_metrics(svc->health));
  if (st == AIPLAT_OK) st = aiplat_health_start(svc->health);
  if (st == AIPLAT_OK) st = aiplat_bus_set_event_callback(svc->bus, on_bus_event, svc);
  if (st == AIPLAT_OK) st = aiplat_bus_connect(svc->bus);
  if (st == AIPLAT_OK) st = start_js(svc);
  if (st != AIPLAT_OK) goto fail;
  for (size_t i = 0; i < svc->n_eps && st == AIPLAT_OK; i++) {
    endpoint *ep = svc->eps[i];
    st = aip_metrics_endpoint(aiplat_health_metrics(svc->health), ep->name, &ep->metrics);
    if (st != AIPLAT_OK) break;
    ep->subs = calloc(svc->workers, sizeof *ep->subs);
    if (!ep->subs) {
      st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "service: out of memory");
      break;
    }
    /* One subscription per worker: the server spreads the queue group's
     * messages (JetStream: the durable's) over them. */
    /* The messages are owned: a request keeps its message until it
     * finishes, and a JetStream subscription fetches only while it holds
     * fewer than its share of MAX_IN_FLIGHT. */
    int share = svc->max_in_flight / (int)svc->workers;
    for (unsigned w = 0; w < svc->workers && st == AIPLAT_OK; w++) {
      if (ep->js)
        st = aip_bus_js_subscribe_owned(svc->bus, ep->stream, ep->durable, ep->subject,
                                        ack_wait(ep), ep->max_deliver,
                                        share > 0 ? share : 1, on_message, ep, &ep->subs[w]);
      else
        st = aip_bus_subscribe_owned(svc->bus, ep->subject, ep->queue, on_message, ep,
                                     &ep->subs[w]);
      if (st == AIPLAT_OK) ep->n_subs++;
    }
  }
  /* Added once the subscriptions exist: the check reads them. */
  for (size_t i = 0; i < svc->n_eps && st == AIPLAT_OK; i++) {
    char check[80];
    snprintf(check, sizeof check, "jetstream.%s", svc->eps[i]->name);
    if (svc->eps[i]->js) st = aiplat_health_add_check(svc->health, check, js_check, svc->eps[i]);
  }
  if (st != AIPLAT_OK) goto fail;
  st = subscribe_micro(svc);
  if (st != AIPLAT_OK) goto fail;
  if (aiplat_bus_flush(svc->bus, 5000) != AIPLAT_OK) aiplat_error_clear();
  svc->started_wall_ms = aip_wall_ms();
  aiplat_health_set_ready(svc->health, true, NULL);
  char workers[16], port[16];
  snprintf(workers, sizeof workers, "%u", svc->workers);
  snprintf(port, sizeof port, "%d", aiplat_health_port(svc->health));
  aip_log_kv(AIPLAT_LOG_INFO, "service started", "version", svc->version, "id", svc->id,
             "workers", workers, "health_port", port, NULL);
  return AIPLAT_OK;
fail:
  aiplat_error_last(why, sizeof why);
  return aip_fail(&svc->err, st, "%s", why);
}

typedef struct drainer {
  pthread_t thread;
  aiplat_bus_sub *sub;
  int64_t timeout_ms;
  aiplat_status st;
} drainer;

static void *drain_one(void *arg) {
  drainer *d = arg;
  d->st = aiplat_bus_sub_drain(d->sub, d->timeout_ms > 0 ? d->timeout_ms : 1);
  return NULL;
}

/* Drain every endpoint subscription at once (each waits for its running
 * handler), so that none keeps taking messages while another finishes. */
static bool drain_all(aiplat_service *svc, int64_t deadline_ms) {
  size_t n = 0;
  for (size_t i = 0; i < svc->n_eps; i++) n += svc->eps[i]->n_subs;
  drainer *d = calloc(n ? n : 1, sizeof *d);
  if (!d) return false;
  size_t k = 0;
  int64_t left = deadline_ms - aip_now_ms();
  for (size_t i = 0; i < svc->n_eps; i++)
    for (unsigned w = 0; w < svc->eps[i]->n_subs; w++, k++) {
      d[k].sub = svc->eps[i]->subs[w];
      d[k].timeout_ms = left;
      if (pthread_create(&d[k].thread, NULL, drain_one, &d[k]) != 0) drain_one(&d[k]), d[k].sub = NULL;
    }
  bool finished = true;
  for (k = 0; k < n; k++) {
    if (d[k].sub) pthread_join(d[k].thread, NULL);
    if (d[k].st != AIPLAT_OK) finished = false;
  }
  free(d);
  return finished;
}

/* Graceful shutdown: not ready, stop taking messages, let the queued and
 * running requests finish within the grace period, drain the connection. */
static void shutdown_service(aiplat_service *svc) {
  svc->shut_down = true;
  aiplat_health_set_ready(svc->health, false, "shutting down");
  aip_log_kv(AIPLAT_LOG_INFO, "service stopping", NULL);
  int64_t deadline = aip_now_ms() + svc->grace_ms;
  /* Stop taking messages (each subscription waits for the handler it is
   * running), then wait for the requests handed over to finish. */
  if (aiplat_bus_is_connected(svc->bus)) drain_all(svc, deadline);
  bool finished = wait_in_flight(svc, deadline);
  if (!finished) {
    /* Past the grace: cancel what is left (backend transfers close, the
     * callers get an error) and give the cancellations a moment. */
    cancel_deferred(svc);
    wait_in_flight(svc, aip_now_ms() + CANCEL_GRACE_MS);
  }
  for (size_t i = 0; i < svc->n_micro; i++) aiplat_bus_sub_destroy(svc->micro_subs[i]);
  svc->n_micro = 0;
  if (aiplat_bus_is_connected(svc->bus) && aiplat_bus_drain(svc->bus, 5000) != AIPLAT_OK)
    aiplat_error_clear();
  aiplat_bus_close(svc->bus);
  aiplat_health_stop(svc->health);
  /* The spans of the last requests leave within what is left of the grace
   * period (at least a moment); the library's final flush is bound by the
   * same deadline, so a collector that is down does not stretch it. */
  int64_t flush_by = deadline > aip_now_ms() + 200 ? deadline : aip_now_ms() + 200;
  aip_otel_shutdown_by(flush_by);
  aip_otel_flush(flush_by - aip_now_ms());
  if (!finished)
    aip_fail(&svc->err, AIPLAT_ERR_TIMEOUT,
             "service: requests still running after the %lld ms grace period",
             (long long)svc->grace_ms);
  aip_log_kv(finished ? AIPLAT_LOG_INFO : AIPLAT_LOG_WARNING,
             finished ? "service stopped" : "service stopped with requests unfinished", NULL);
}

AIPLAT_API void aiplat_service_stop(aiplat_service *svc) {
  if (!svc) return;
  atomic_store(&svc->stop_requested, true);
  pthread_mutex_lock(&svc->mu);
  pthread_cond_broadcast(&svc->cv);
  pthread_mutex_unlock(&svc->mu);
}

AIPLAT_API aiplat_status aiplat_service_run(aiplat_service *svc) {
  if (!svc) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "service: NULL handle");
  if (svc->shut_down) return aip_fail(&svc->err, AIPLAT_ERR_STATE, "service: already stopped");
  if (!svc->started) {
    aiplat_status st = aiplat_service_start(svc);
    if (st != AIPLAT_OK) return st;
  }
  while (!atomic_load(&svc->stop_requested)) {
    if (svc->handle_signals) {
      struct timespec ts = {0, 100 * 1000000L};
      int sig = sigtimedwait(&svc->sigs, NULL, &ts);
      if (sig > 0) {
        aip_log_kv(AIPLAT_LOG_INFO, "signal received", "signal",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
        break;
      }
    } else {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += 100 * 1000000L;
      if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
      pthread_mutex_lock(&svc->mu);
      if (!atomic_load(&svc->stop_requested))
        pthread_cond_timedwait(&svc->cv, &svc->mu, &until);
      pthread_mutex_unlock(&svc->mu);
    }
  }
  shutdown_service(svc);
  char why[AIP_ERRMSG_MAX];
  aiplat_status st = aip_err_copy(&svc->err, why, sizeof why);
  return st == AIPLAT_ERR_TIMEOUT ? st : AIPLAT_OK;
}
