/* The pipeline-bridge endpoint (include/aiplat/pipeline.h): triggers and
 * queries of Argo Workflows and Kubeflow Pipelines runs over NATS. The
 * handlers check a request on the delivery thread and hand it over; the
 * asynchronous engine calls finish it from the library's event loop
 * thread, so no delivery thread waits on an engine. The run watcher
 * (pipeline_watch.c) follows the runs started here; a readiness probe per
 * engine (probe.h) re-checks at once when a request finds it down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aiplat/log.h"
#include "aiplat/pipeline.h"
#include "aiplat/subject.h"
#include "internal.h"
#include "pipeline_watch.h"
#include "pipeline_wire.h"
#include "probe.h"

#define PROBE_INTERVAL_MS 10000
#define PROBE_TIMEOUT_MS 3000
/* A status poll never takes longer than this, whatever HTTP_TIMEOUT says,
 * so one slow engine cannot hold up the other runs' polls for long. */
#define POLL_TIMEOUT_MS 10000

static const aiplat_pipeline_engine all_engines[] = {AIPLAT_PIPELINE_ARGO,
                                                     AIPLAT_PIPELINE_KUBEFLOW};

typedef struct engine_probe {
  aiplat_pipeline_engine engine;
  aiplat_pipeline *handle; /* the probe's own, with short limits */
  aip_probe *probe;
} engine_probe;

struct aiplat_pipeline_endpoint {
  aiplat_pipeline *pl;     /* submits and queries (request handlers) */
  aiplat_pipeline *poller; /* the watcher's */
  aip_pwatch *watch;
  engine_probe probes[2]; /* [0] Argo, [1] Kubeflow; handle NULL: unset */
  char argo_ns[64];
};

/* Copy at most @n - 1 bytes of UTF-8 @src, never cutting a character. */
static void copy_utf8(char *dst, size_t n, const char *src) {
  size_t len = strlen(src);
  if (len >= n) {
    len = n - 1;
    while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80) len--;
  }
  memcpy(dst, src, len);
  dst[len] = '\0';
}

/* The outcome of a request's engine call, for that engine's probe. */
static void note(aiplat_pipeline_endpoint *ep, aiplat_pipeline_engine e,
                 aiplat_status st) {
  aip_probe_note(ep->probes[e == AIPLAT_PIPELINE_ARGO ? 0 : 1].probe, st);
}

static aiplat_status fail_engine(aiplat_request *req, const char *name) {
  char why[200];
  snprintf(why, sizeof why,
           "engine \"%.40s\" is not supported: use argo or kubeflow", name);
  return aiplat_request_fail(req, AIPLAT_ERR_NOT_SUPPORTED, why);
}

static aiplat_status check_engine(aiplat_pipeline_endpoint *ep,
                                  aiplat_request *req,
                                  aiplat_pipeline_engine e) {
  if (aiplat_pipeline_engine_configured(ep->pl, e)) return AIPLAT_OK;
  char why[200];
  snprintf(why, sizeof why,
           "engine %s is not configured on this bridge (%s is unset)",
           aiplat_pipeline_engine_str(e),
           e == AIPLAT_PIPELINE_ARGO ? "ARGO_URL" : "KUBEFLOW_URL");
  return aiplat_request_fail(req, AIPLAT_ERR_NOT_SUPPORTED, why);
}

/* A request handler's arguments, checked. */
static aiplat_pipeline_endpoint *endpoint_of(aiplat_request *req, void *ud,
                                             aiplat_msg_type type) {
  aiplat_msg *in = req ? aiplat_request_message(req) : NULL;
  if (!ud || !in || aiplat_msg_get_type(in) != type) {
    aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
             "pipeline: the endpoint must decode %s and have an endpoint "
             "handle",
             type == AIPLAT_MSG_PIPELINE_TRIGGER ? "PipelineTrigger"
                                                 : "PipelineStatus");
    return NULL;
  }
  return ud;
}

/* One trigger in flight: the deferred request and the run's first state. */
typedef struct trigger {
  aiplat_pipeline_endpoint *ep;
  aiplat_request *req;
  aiplat_call *call;
  aip_prun s;
} trigger;

/* Shutdown past the grace period: stop the engine call; its completion
 * then fails the request. */
static void on_cancel(aiplat_request *req, void *ud) {
  (void)req;
  aiplat_call_cancel(ud);
}

/* A trigger whose submit failed: the request fails with the reason. */
static void trigger_failed(trigger *t, aiplat_status st, const char *why) {
  aiplat_request *req = t->req;
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  aiplat_call_destroy(t->call);
  aip_pwatch_unreserve(t->ep->watch);
  free(t);
  aiplat_request_complete(req, st, why);
}

/* The end of a submit, on the library's event loop thread. */
static void on_submitted(aiplat_status st, const char *why, const char *run_id,
                         void *ud) {
  trigger *t = ud;
  aiplat_pipeline_endpoint *ep = t->ep;
  note(ep, t->s.engine, st);
  if (st != AIPLAT_OK || !run_id) {
    trigger_failed(t, st != AIPLAT_OK ? st : AIPLAT_ERR_INTERNAL, why);
    return;
  }
  aiplat_request *req = t->req;
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  aiplat_call_destroy(t->call);
  aip_prun *s = &t->s;
  copy_utf8(s->run_id, sizeof s->run_id, run_id);
  s->phase = AIPLAT_PIPELINE_PENDING;
  s->created_ms = s->updated_ms = aip_wall_ms();
  const char *k[] = {"engine", "pipeline", "run_id"};
  const char *v[] = {aiplat_pipeline_engine_str(s->engine), s->pipeline,
                     s->run_id};
  aiplat_log_fields(AIPLAT_LOG_INFO, "pipeline run started", k, v, 3);

  aiplat_msg *out = aip_prun_msg(s);
  st = out ? aiplat_request_respond(req, out) : AIPLAT_ERR_NO_MEMORY;
  aiplat_msg_destroy(out);
  if (aiplat_subject_token_check(s->run_id) == AIPLAT_OK) {
    aip_pwatch_add(ep->watch, s); /* the run is started: follow it either way */
  } else {
    aiplat_error_clear();
    aip_pwatch_unreserve(ep->watch);
    aiplat_log_fields(AIPLAT_LOG_WARNING,
                      "run id cannot name a subject; not watched", k, v, 3);
  }
  free(t);
  aiplat_request_complete(req, st,
                          st == AIPLAT_OK ? NULL : aiplat_status_str(st));
}

/* A failure detail of the calling thread, as a request's message. */
static aiplat_status fail_last(aiplat_request *req, aiplat_status st) {
  char why[AIP_PWATCH_MESSAGE_MAX];
  aiplat_error_last(why, sizeof why);
  return aiplat_request_fail(req, st, why);
}

/* The call's deadline is the request's. */
static aiplat_call *request_call(aiplat_request *req) {
  aiplat_call *call = NULL;
  if (aiplat_call_create(&call) != AIPLAT_OK) return NULL;
  int64_t left = aiplat_request_time_left_ms(req);
  if (left > 0) aiplat_call_set_timeout_ms(call, left);
  return call;
}

/* The trigger's options (namespace, version); NULL after failing @req. */
static aiplat_pipeline_options *trigger_options(aiplat_request *req,
                                                const char *ns,
                                                const char *version) {
  aiplat_pipeline_options *opts = NULL;
  aiplat_status st = aiplat_pipeline_options_create(&opts);
  if (st == AIPLAT_OK) st = aiplat_pipeline_options_set_namespace(opts, ns);
  if (st == AIPLAT_OK) st = aiplat_pipeline_options_set_version(opts, version);
  if (st == AIPLAT_OK) return opts;
  fail_last(req, st);
  aiplat_pipeline_options_destroy(opts);
  return NULL;
}

AIPLAT_API aiplat_status aiplat_pipeline_handle_trigger(aiplat_request *req,
                                                        void *user_data) {
  aiplat_pipeline_endpoint *ep =
      endpoint_of(req, user_data, AIPLAT_MSG_PIPELINE_TRIGGER);
  if (!ep) return AIPLAT_ERR_INVALID_ARGUMENT;
  aiplat_msg *in = aiplat_request_message(req);
  const char *engine = "", *pipeline = "", *ns = "", *version = "";
  aiplat_msg_get_string(in, "engine", &engine);
  aiplat_msg_get_string(in, "pipeline", &pipeline);
  aiplat_msg_get_string(in, "namespace", &ns);
  aiplat_msg_get_string(in, "pipeline_version", &version);
  aiplat_pipeline_engine e;
  if (aiplat_pipeline_engine_parse(engine, &e) != AIPLAT_OK)
    return fail_engine(req, engine);
  aiplat_status st = check_engine(ep, req, e);
  if (st != AIPLAT_OK) return st;
  if (!*pipeline)
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT,
                               "pipeline is empty");
  /* An Argo run is named after its template: a name that cannot be a NATS
   * subject token could start a run nobody can follow. */
  if (e == AIPLAT_PIPELINE_ARGO &&
      aiplat_subject_token_check(pipeline) != AIPLAT_OK) {
    aiplat_error_clear();
    return aiplat_request_fail(
        req, AIPLAT_ERR_INVALID_ARGUMENT,
        "an Argo template name with '.', '*', '>' or blanks cannot "
        "name a status subject (ai.pipeline.status.{runId})");
  }
  size_t n = 0;
  aiplat_msg_count(in, "parameters", &n);
  if (n > AIPLAT_PIPELINE_MAX_PARAMS)
    return aiplat_request_fail(req, AIPLAT_ERR_TOO_LARGE,
                               "more than 256 parameters");
  const char *keys[AIPLAT_PIPELINE_MAX_PARAMS],
      *values[AIPLAT_PIPELINE_MAX_PARAMS];
  for (size_t i = 0; i < n; i++) {
    aiplat_msg_map_key(in, "parameters", i, &keys[i]);
    aiplat_msg_map_value(in, "parameters", i, &values[i]);
  }
  aiplat_pipeline_options *opts = trigger_options(req, ns, version);
  if (!opts) return AIPLAT_OK; /* failed with the reason */
  if (!aip_pwatch_reserve(ep->watch)) {
    aiplat_pipeline_options_destroy(opts);
    return aiplat_request_fail(
        req, AIPLAT_ERR_UNAVAILABLE,
        "256 runs are being watched already; retry later");
  }
  trigger *t = calloc(1, sizeof *t);
  if (!t || !(t->call = request_call(req))) {
    free(t);
    aip_pwatch_unreserve(ep->watch);
    aiplat_pipeline_options_destroy(opts);
    return aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
  }
  t->ep = ep;
  t->req = req;
  t->s.engine = e;
  copy_utf8(t->s.ns, sizeof t->s.ns,
            *ns                         ? ns
            : e == AIPLAT_PIPELINE_ARGO ? ep->argo_ns
                                        : "");
  copy_utf8(t->s.pipeline, sizeof t->s.pipeline, pipeline);
  copy_utf8(t->s.request_id, sizeof t->s.request_id, aiplat_request_id(req));
  /* The submit runs on the execution core: the request is handed over and
   * finished by on_submitted. */
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, t->call);
  st = aiplat_pipeline_submit_async(ep->pl, e, pipeline, keys, values, n, opts,
                                    t->call, on_submitted, t);
  aiplat_pipeline_options_destroy(opts);
  if (st != AIPLAT_OK) {
    char why[AIP_PWATCH_MESSAGE_MAX];
    aiplat_error_last(why, sizeof why);
    trigger_failed(t, st, why);
  }
  return AIPLAT_OK;
}

static aiplat_status reply_state(aiplat_request *req, aip_prun *s) {
  copy_utf8(s->request_id, sizeof s->request_id, aiplat_request_id(req));
  aiplat_msg *out = aip_prun_msg(s);
  aiplat_status st =
      out ? aiplat_request_respond(req, out)
          : aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
  aiplat_msg_destroy(out);
  return st;
}

/* A query of a run this endpoint does not know: the engines are asked one
 * after the other, each from the completion of the one before. */
typedef struct query {
  aiplat_pipeline_endpoint *ep;
  aiplat_request *req;
  aiplat_call *call;
  aiplat_pipeline_engine only; /* 0: every configured engine */
  size_t next;                 /* index into the engines still to ask */
  aiplat_pipeline_engine asking;
  char run[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  char why[AIP_PWATCH_MESSAGE_MAX];
} query;

static void query_end(query *q, aiplat_status st, const char *why) {
  aiplat_request *req = q->req;
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  aiplat_call_destroy(q->call);
  free(q);
  aiplat_request_complete(req, st, why);
}

static void query_next(query *q);

static void on_queried(aiplat_status st, const char *why,
                       aiplat_pipeline_phase phase, const char *run_msg,
                       void *ud) {
  query *q = ud;
  note(q->ep, q->asking, st);
  if (st == AIPLAT_OK) {
    aip_prun s;
    memset(&s, 0, sizeof s);
    copy_utf8(s.run_id, sizeof s.run_id, q->run);
    copy_utf8(s.message, sizeof s.message, run_msg);
    s.engine = q->asking;
    s.phase = phase;
    s.terminal = aiplat_pipeline_phase_is_terminal(phase);
    s.updated_ms = aip_wall_ms();
    st = reply_state(q->req, &s);
    query_end(q, st, st == AIPLAT_OK ? NULL : aiplat_status_str(st));
    return;
  }
  copy_utf8(q->why, sizeof q->why, why);
  if (st != AIPLAT_ERR_NOT_FOUND && st != AIPLAT_ERR_INVALID_ARGUMENT) {
    query_end(q, st, q->why);
    return;
  }
  query_next(q);
}

/* Ask the next engine, or answer NOT_FOUND when none is left. */
static void query_next(query *q) {
  while (q->next < 2) {
    aiplat_pipeline_engine e = all_engines[q->next++];
    if ((q->only && e != q->only) ||
        !aiplat_pipeline_engine_configured(q->ep->pl, e))
      continue;
    q->asking = e;
    aiplat_status st = aiplat_pipeline_status_async(
        q->ep->pl, e, q->run, NULL, q->call, on_queried, q);
    if (st == AIPLAT_OK) return;
    aiplat_error_last(q->why, sizeof q->why);
    if (st != AIPLAT_ERR_NOT_FOUND && st != AIPLAT_ERR_INVALID_ARGUMENT) {
      query_end(q, st, q->why);
      return;
    }
  }
  char msg[AIP_PWATCH_MESSAGE_MAX + AIPLAT_PIPELINE_MAX_RUN_ID + 16];
  snprintf(msg, sizeof msg, "no run %s%s%s", q->run, *q->why ? ": " : "",
           q->why);
  query_end(q, AIPLAT_ERR_NOT_FOUND, msg);
}

AIPLAT_API aiplat_status aiplat_pipeline_handle_query(aiplat_request *req,
                                                      void *user_data) {
  aiplat_pipeline_endpoint *ep =
      endpoint_of(req, user_data, AIPLAT_MSG_PIPELINE_STATUS);
  if (!ep) return AIPLAT_ERR_INVALID_ARGUMENT;
  aiplat_msg *in = aiplat_request_message(req);
  const char *run = "", *engine = "";
  aiplat_msg_get_string(in, "run_id", &run);
  aiplat_msg_get_string(in, "engine", &engine);
  if (!*run)
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT,
                               "run_id is empty");
  aiplat_pipeline_engine only = 0;
  if (*engine) {
    if (aiplat_pipeline_engine_parse(engine, &only) != AIPLAT_OK)
      return fail_engine(req, engine);
    aiplat_status st = check_engine(ep, req, only);
    if (st != AIPLAT_OK) return st;
  }
  aip_prun s;
  if (aip_pwatch_find(ep->watch, run, only, &s)) return reply_state(req, &s);
  if (strlen(run) > AIPLAT_PIPELINE_MAX_RUN_ID)
    return aiplat_request_fail(req, AIPLAT_ERR_NOT_FOUND,
                               "no run with an id that long");
  /* Not one of ours (or forgotten): ask the engines. */
  query *q = calloc(1, sizeof *q);
  if (!q || !(q->call = request_call(req))) {
    free(q);
    return aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
  }
  q->ep = ep;
  q->req = req;
  q->only = only;
  copy_utf8(q->run, sizeof q->run, run);
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, q->call);
  query_next(q);
  return AIPLAT_OK;
}

/* ---- readiness ------------------------------------------------------------ */

/* Reading a run that does not exist proves the engine answers and takes
 * the token: NOT_FOUND is the healthy answer. */
static bool probe_engine(char *msg, size_t msglen, void *user_data) {
  engine_probe *p = user_data;
  aiplat_pipeline_phase phase;
  const char *id = p->engine == AIPLAT_PIPELINE_ARGO
                       ? "aiplat-readiness-probe"
                       : "00000000-0000-0000-0000-000000000000";
  aiplat_status st =
      aiplat_pipeline_status(p->handle, p->engine, id, NULL, &phase, NULL, 0);
  if (st == AIPLAT_OK || st == AIPLAT_ERR_NOT_FOUND) {
    snprintf(msg, msglen, "%s answers", aiplat_pipeline_engine_str(p->engine));
    return true;
  }
  aiplat_pipeline_last_error(p->handle, msg, msglen);
  return false;
}

static void cancel_probe(void *user_data) {
  engine_probe *p = user_data;
  aiplat_pipeline_close(p->handle);
}

AIPLAT_API aiplat_status aiplat_pipeline_endpoint_add_checks(
    aiplat_pipeline_endpoint *ep, aiplat_health *health) {
  if (!ep || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: NULL endpoint or health");
  for (size_t i = 0; i < 2; i++) {
    engine_probe *p = &ep->probes[i];
    if (!p->probe) continue;
    aiplat_status st = aip_probe_add_check(
        p->probe, health, aiplat_pipeline_engine_str(p->engine));
    if (st != AIPLAT_OK) return st;
  }
  return AIPLAT_OK;
}

/* ---- the handle ----------------------------------------------------------- */

/* A pipeline handle of @cfg whose calls are bounded by @timeout_ms and
 * @retries (-1: HTTP_MAX_RETRIES). */
static aiplat_status limited_handle(aiplat_pipeline **out, aiplat_config *cfg,
                                    int64_t timeout_ms, int retries) {
  aiplat_status st = aiplat_pipeline_create(out, cfg);
  if (st == AIPLAT_OK) st = aip_pipe_limit_http(*out, timeout_ms, retries);
  if (st != AIPLAT_OK && *out) {
    char why[AIP_ERRMSG_MAX];
    aiplat_pipeline_last_error(*out, why, sizeof why);
    aip_fail(NULL, st, "%s", why);
  }
  return st;
}

static aiplat_status endpoint_setup(aiplat_pipeline_endpoint *ep,
                                    aiplat_config *cfg) {
  int64_t interval = 0, http_timeout = 0;
  const char *ns = NULL;
  aiplat_status st =
      aiplat_config_get_duration_ms(cfg, "PIPELINE_POLL_INTERVAL", &interval);
  if (!st) st = aiplat_config_get_duration_ms(cfg, "HTTP_TIMEOUT", &http_timeout);
  if (!st) st = aiplat_config_get_string(cfg, "ARGO_NAMESPACE", &ns);
  if (st) {
    char why[AIP_ERRMSG_MAX];
    aiplat_config_last_error(cfg, why, sizeof why);
    return aip_fail(NULL, st, "%s", why);
  }
  if (interval <= 0)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "config: PIPELINE_POLL_INTERVAL must be above 0");
  snprintf(ep->argo_ns, sizeof ep->argo_ns, "%s", ns ? ns : "");
  if ((st = aiplat_pipeline_create(&ep->pl, cfg)) != AIPLAT_OK) return st;
  bool any = false;
  for (size_t i = 0; i < 2; i++)
    any |= aiplat_pipeline_engine_configured(ep->pl, all_engines[i]);
  if (!any)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "config: neither ARGO_URL nor KUBEFLOW_URL is set");
  int64_t poll_timeout = http_timeout > 0 && http_timeout < POLL_TIMEOUT_MS
                             ? http_timeout
                             : POLL_TIMEOUT_MS;
  if ((st = limited_handle(&ep->poller, cfg, poll_timeout, -1)) != AIPLAT_OK)
    return st;
  for (size_t i = 0; i < 2; i++) {
    engine_probe *p = &ep->probes[i];
    p->engine = all_engines[i];
    if (!aiplat_pipeline_engine_configured(ep->pl, p->engine)) continue;
    if ((st = limited_handle(&p->handle, cfg, PROBE_TIMEOUT_MS, 0)) ||
        (st = aip_probe_create(&p->probe, probe_engine, cancel_probe, p,
                               PROBE_INTERVAL_MS)))
      return st;
  }
  if (!(ep->watch = aip_pwatch_start(ep->poller, interval)))
    return aip_fail(NULL, AIPLAT_ERR_INTERNAL,
                    "pipeline: cannot start the run watcher");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_pipeline_endpoint_create(
    aiplat_pipeline_endpoint **out, aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "pipeline: NULL out");
  *out = NULL;
  aiplat_pipeline_endpoint *ep = calloc(1, sizeof *ep);
  if (!ep) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  aiplat_config *own = NULL;
  aiplat_status st = cfg ? AIPLAT_OK : aiplat_config_create(&own);
  if (own) cfg = own;
  if (st == AIPLAT_OK) st = endpoint_setup(ep, cfg);
  aiplat_config_destroy(own);
  if (st != AIPLAT_OK) {
    aiplat_pipeline_endpoint_destroy(ep);
    return st;
  }
  *out = ep;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_pipeline_endpoint_set_bus(
    aiplat_pipeline_endpoint *ep, aiplat_bus *bus) {
  if (!ep)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: NULL endpoint");
  aip_pwatch_set_bus(ep->watch, bus);
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_pipeline_endpoint_close(aiplat_pipeline_endpoint *ep) {
  if (ep) aip_pwatch_stop(ep->watch);
}

AIPLAT_API void aiplat_pipeline_endpoint_destroy(aiplat_pipeline_endpoint *ep) {
  if (!ep) return;
  aip_pwatch_destroy(ep->watch);
  for (size_t i = 0; i < 2; i++) {
    aip_probe_destroy(ep->probes[i].probe);
    aiplat_pipeline_destroy(ep->probes[i].handle);
  }
  aiplat_pipeline_destroy(ep->poller);
  aiplat_pipeline_destroy(ep->pl);
  free(ep);
}
