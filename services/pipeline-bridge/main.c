/* pipeline-bridge: starts Argo Workflows and Kubeflow Pipelines runs for
 * NATS requests and follows them (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.pipeline.trigger        PipelineTrigger -> PipelineStatus (the run id)
 *   ai.pipeline.status.{run}   PipelineStatus events until a terminal phase
 *   ai.pipeline.query          PipelineStatus {run_id} -> PipelineStatus
 *
 * Requests are deferred and finished from the completion of the
 * asynchronous pipeline calls (on the library's event loop thread): no
 * delivery thread waits on an engine.
 *
 * Configured by the environment only: NATS_*, HEALTH_*, WORKERS,
 * REQUEST_TIMEOUT, SHUTDOWN_GRACE, ARGO_URL, ARGO_NAMESPACE, ARGO_TOKEN,
 * KUBEFLOW_URL, KUBEFLOW_TOKEN, PIPELINE_POLL_INTERVAL, HTTP_*. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcutil.h"
#include "watch.h"

#define NAME "pipeline-bridge"
#define PROBE_INTERVAL_MS 10000
#define PROBE_TIMEOUT "3s"
/* A status poll never takes longer than this, whatever HTTP_TIMEOUT says,
 * so one slow engine cannot hold up the other runs' polls for long. */
#define POLL_TIMEOUT_MS 10000

typedef struct engine_probe {
  aiplat_pipeline_engine engine;
  aiplat_pipeline *handle;
  svcu_probe *probe;
} engine_probe;

typedef struct bridge {
  aiplat_pipeline *pl;     /* submits and queries (request handlers) */
  aiplat_pipeline *poller; /* the watcher's */
  aiplat_config *poll_cfg, *probe_cfg;
  pb_watch *watch;
  engine_probe probes[2];
  size_t n_probes;
  const char *argo_ns;
} bridge;

static const char HELP[] =
    "Starts pipeline runs for NATS requests and follows them:\n"
    "  ai.pipeline.trigger       a PipelineTrigger (engine argo or kubeflow,\n"
    "                            pipeline, pipeline_version, namespace,\n"
    "                            parameters) submits an Argo WorkflowTemplate\n"
    "                            or creates a Kubeflow run (of the named\n"
    "                            version, else the latest; Argo templates\n"
    "                            have no versions); the reply is a\n"
    "                            PipelineStatus with the run id\n"
    "  ai.pipeline.status.RUN    PipelineStatus events: the first at the\n"
    "                            trigger, then one per phase change (polled\n"
    "                            every PIPELINE_POLL_INTERVAL) until a\n"
    "                            terminal phase (terminal = true)\n"
    "  ai.pipeline.query         a PipelineStatus with run_id (and engine)\n"
    "                            is answered with the run's state\n"
    "Error replies: NOT_SUPPORTED (unknown or unconfigured engine),\n"
    "NOT_FOUND (no such template, pipeline or run: the engine's message),\n"
    "AUTH (token refused), UNAVAILABLE (256 runs watched already), ...\n"
    "\n"
    "Configuration (environment only; NAME_FILE reads a secret from a file):\n"
    "  NATS_URL, NATS_* ........... the NATS connection\n"
    "  ARGO_URL, ARGO_NAMESPACE (ai-ml), ARGO_TOKEN\n"
    "  KUBEFLOW_URL, KUBEFLOW_TOKEN  at least one engine's URL must be set\n"
    "  PIPELINE_POLL_INTERVAL (5s)  between status polls of a run\n"
    "  HTTP_* ...................... timeouts, retries, CA file\n"
    "  HEALTH_PORT (8080) .......... /health, /ready (NATS and each\n"
    "                                configured engine), /metrics\n"
    "  WORKERS, REQUEST_TIMEOUT, SHUTDOWN_GRACE, LOG_LEVEL\n"
    "A wrong setting stops the program at start with one line naming it\n"
    "(exit status 2); SIGTERM or SIGINT shut it down gracefully.\n";

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

static aiplat_status fail_engine(aiplat_request *req, const char *name) {
  char why[200];
  snprintf(why, sizeof why,
           "engine \"%.40s\" is not supported: use argo or kubeflow", name);
  return aiplat_request_fail(req, AIPLAT_ERR_NOT_SUPPORTED, why);
}

static aiplat_status check_engine(bridge *b, aiplat_request *req,
                                  aiplat_pipeline_engine e) {
  if (aiplat_pipeline_engine_configured(b->pl, e)) return AIPLAT_OK;
  char why[200];
  snprintf(why, sizeof why,
           "engine %s is not configured on this bridge (%s is unset)",
           aiplat_pipeline_engine_str(e),
           e == AIPLAT_PIPELINE_ARGO ? "ARGO_URL" : "KUBEFLOW_URL");
  return aiplat_request_fail(req, AIPLAT_ERR_NOT_SUPPORTED, why);
}

/* One trigger in flight: the deferred request and the run's first state. */
typedef struct trigger {
  bridge *b;
  aiplat_request *req;
  aiplat_call *call;
  pb_run_state s;
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
  pb_watch_unreserve(t->b->watch);
  free(t);
  aiplat_request_complete(req, st, why);
}

/* The end of a submit, on the library's event loop thread. */
static void on_submitted(aiplat_status st, const char *why, const char *run_id,
                         void *ud) {
  trigger *t = ud;
  if (st != AIPLAT_OK || !run_id) {
    trigger_failed(t, st != AIPLAT_OK ? st : AIPLAT_ERR_INTERNAL, why);
    return;
  }
  bridge *b = t->b;
  aiplat_request *req = t->req;
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  aiplat_call_destroy(t->call);
  pb_run_state *s = &t->s;
  copy_utf8(s->run_id, sizeof s->run_id, run_id);
  s->phase = AIPLAT_PIPELINE_PENDING;
  s->created_ms = s->updated_ms = pb_wall_ms();
  const char *k[] = {"engine", "pipeline", "run_id"};
  const char *v[] = {aiplat_pipeline_engine_str(s->engine), s->pipeline,
                     s->run_id};
  aiplat_log_fields(AIPLAT_LOG_INFO, "pipeline run started", k, v, 3);

  aiplat_msg *out = pb_status_msg(s);
  st = out ? aiplat_request_respond(req, out) : AIPLAT_ERR_NO_MEMORY;
  aiplat_msg_destroy(out);
  if (aiplat_subject_token_check(s->run_id) == AIPLAT_OK) {
    pb_watch_add(b->watch, s); /* the run is started: follow it either way */
  } else {
    aiplat_error_clear();
    pb_watch_unreserve(b->watch);
    aiplat_log_fields(AIPLAT_LOG_WARNING,
                      "run id cannot name a subject; not watched", k, v, 3);
  }
  free(t);
  aiplat_request_complete(req, st,
                          st == AIPLAT_OK ? NULL : aiplat_status_str(st));
}

/* A failure detail of the calling thread, as a request's message. */
static aiplat_status fail_last(aiplat_request *req, aiplat_status st) {
  char why[PB_MESSAGE_MAX];
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

static aiplat_status on_trigger(aiplat_request *req, void *user_data) {
  bridge *b = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  const char *engine = "", *pipeline = "", *ns = "", *version = "";
  aiplat_msg_get_string(in, "engine", &engine);
  aiplat_msg_get_string(in, "pipeline", &pipeline);
  aiplat_msg_get_string(in, "namespace", &ns);
  aiplat_msg_get_string(in, "pipeline_version", &version);
  aiplat_pipeline_engine e;
  if (aiplat_pipeline_engine_parse(engine, &e) != AIPLAT_OK)
    return fail_engine(req, engine);
  aiplat_status st = check_engine(b, req, e);
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
  aiplat_pipeline_options *opts = NULL;
  if (aiplat_pipeline_options_create(&opts) != AIPLAT_OK)
    return fail_last(req, AIPLAT_ERR_NO_MEMORY);
  if ((st = aiplat_pipeline_options_set_namespace(opts, ns)) != AIPLAT_OK ||
      (st = aiplat_pipeline_options_set_version(opts, version)) !=
          AIPLAT_OK) {
    aiplat_pipeline_options_destroy(opts);
    return fail_last(req, st);
  }
  if (!pb_watch_reserve(b->watch)) {
    aiplat_pipeline_options_destroy(opts);
    return aiplat_request_fail(
        req, AIPLAT_ERR_UNAVAILABLE,
        "256 runs are being watched already; retry later");
  }
  trigger *t = calloc(1, sizeof *t);
  if (!t || !(t->call = request_call(req))) {
    free(t);
    pb_watch_unreserve(b->watch);
    aiplat_pipeline_options_destroy(opts);
    return aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
  }
  t->b = b;
  t->req = req;
  t->s.engine = e;
  copy_utf8(t->s.ns, sizeof t->s.ns,
            *ns                         ? ns
            : e == AIPLAT_PIPELINE_ARGO ? b->argo_ns
                                        : "");
  copy_utf8(t->s.pipeline, sizeof t->s.pipeline, pipeline);
  copy_utf8(t->s.request_id, sizeof t->s.request_id, aiplat_request_id(req));
  /* The submit runs on the execution core: the request is handed over and
   * finished by on_submitted. */
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, t->call);
  st = aiplat_pipeline_submit_async(b->pl, e, pipeline, keys, values, n, opts,
                                    t->call, on_submitted, t);
  aiplat_pipeline_options_destroy(opts);
  if (st != AIPLAT_OK) {
    char why[PB_MESSAGE_MAX];
    aiplat_error_last(why, sizeof why);
    trigger_failed(t, st, why);
  }
  return AIPLAT_OK;
}

static aiplat_status reply_state(aiplat_request *req, pb_run_state *s) {
  copy_utf8(s->request_id, sizeof s->request_id, aiplat_request_id(req));
  aiplat_msg *out = pb_status_msg(s);
  aiplat_status st =
      out ? aiplat_request_respond(req, out)
          : aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
  aiplat_msg_destroy(out);
  return st;
}

/* A query of a run this bridge does not know: the engines are asked one
 * after the other, each from the completion of the one before. */
typedef struct query {
  bridge *b;
  aiplat_request *req;
  aiplat_call *call;
  aiplat_pipeline_engine only; /* 0: every configured engine */
  size_t next;                 /* index into the engines still to ask */
  aiplat_pipeline_engine asking;
  char run[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  char why[PB_MESSAGE_MAX];
} query;

static const aiplat_pipeline_engine all_engines[] = {AIPLAT_PIPELINE_ARGO,
                                                     AIPLAT_PIPELINE_KUBEFLOW};

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
  if (st == AIPLAT_OK) {
    pb_run_state s;
    memset(&s, 0, sizeof s);
    copy_utf8(s.run_id, sizeof s.run_id, q->run);
    copy_utf8(s.message, sizeof s.message, run_msg);
    s.engine = q->asking;
    s.phase = phase;
    s.terminal = aiplat_pipeline_phase_is_terminal(phase);
    s.updated_ms = pb_wall_ms();
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
        !aiplat_pipeline_engine_configured(q->b->pl, e))
      continue;
    q->asking = e;
    aiplat_status st = aiplat_pipeline_status_async(
        q->b->pl, e, q->run, NULL, q->call, on_queried, q);
    if (st == AIPLAT_OK) return;
    aiplat_error_last(q->why, sizeof q->why);
    if (st != AIPLAT_ERR_NOT_FOUND && st != AIPLAT_ERR_INVALID_ARGUMENT) {
      query_end(q, st, q->why);
      return;
    }
  }
  char msg[PB_MESSAGE_MAX + AIPLAT_PIPELINE_MAX_RUN_ID + 16];
  snprintf(msg, sizeof msg, "no run %s%s%s", q->run, *q->why ? ": " : "",
           q->why);
  query_end(q, AIPLAT_ERR_NOT_FOUND, msg);
}

static aiplat_status on_query(aiplat_request *req, void *user_data) {
  bridge *b = user_data;
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
    aiplat_status st = check_engine(b, req, only);
    if (st != AIPLAT_OK) return st;
  }
  pb_run_state s;
  if (pb_watch_find(b->watch, run, only, &s)) return reply_state(req, &s);
  if (strlen(run) > AIPLAT_PIPELINE_MAX_RUN_ID)
    return aiplat_request_fail(req, AIPLAT_ERR_NOT_FOUND,
                               "no run with an id that long");
  /* Not one of ours (or forgotten): ask the engines. */
  query *q = calloc(1, sizeof *q);
  if (!q || !(q->call = request_call(req))) {
    free(q);
    return aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
  }
  q->b = b;
  q->req = req;
  q->only = only;
  copy_utf8(q->run, sizeof q->run, run);
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, q->call);
  query_next(q);
  return AIPLAT_OK;
}

/* ---- readiness
 * ----------------------------------------------------------------- */

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

/* ---- main
 * ---------------------------------------------------------------------- */

/* The environment's configuration with other HTTP limits. */
static aiplat_config *derived_config(const char *timeout, const char *retries) {
  aiplat_config *c = NULL;
  if (aiplat_config_create(&c) != AIPLAT_OK) return NULL;
  if (aiplat_config_set(c, "HTTP_TIMEOUT", timeout) != AIPLAT_OK ||
      (retries &&
       aiplat_config_set(c, "HTTP_MAX_RETRIES", retries) != AIPLAT_OK)) {
    aiplat_config_destroy(c);
    return NULL;
  }
  return c;
}

static int setup(bridge *b, aiplat_config *cfg, int64_t *interval_ms) {
  int64_t http_timeout = 0;
  if (aiplat_config_get_duration_ms(cfg, "PIPELINE_POLL_INTERVAL",
                                    interval_ms) != AIPLAT_OK ||
      aiplat_config_get_duration_ms(cfg, "HTTP_TIMEOUT", &http_timeout) !=
          AIPLAT_OK ||
      aiplat_config_get_string(cfg, "ARGO_NAMESPACE", &b->argo_ns) !=
          AIPLAT_OK)
    return svcu_config_error(cfg, NAME);
  if (*interval_ms <= 0) {
    svcu_error_line(NAME, "config: PIPELINE_POLL_INTERVAL must be above 0");
    return SVCU_EXIT_CONFIG;
  }
  if (!b->argo_ns) b->argo_ns = "";
  if (aiplat_pipeline_create(&b->pl, cfg) != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    return SVCU_EXIT_CONFIG;
  }
  if (!aiplat_pipeline_engine_configured(b->pl, AIPLAT_PIPELINE_ARGO) &&
      !aiplat_pipeline_engine_configured(b->pl, AIPLAT_PIPELINE_KUBEFLOW)) {
    svcu_error_line(NAME, "config: neither ARGO_URL nor KUBEFLOW_URL is set");
    return SVCU_EXIT_CONFIG;
  }
  char poll_timeout[32];
  snprintf(poll_timeout, sizeof poll_timeout, "%lldms",
           (long long)(http_timeout > 0 && http_timeout < POLL_TIMEOUT_MS
                           ? http_timeout
                           : POLL_TIMEOUT_MS));
  if (!(b->poll_cfg = derived_config(poll_timeout, NULL)) ||
      !(b->probe_cfg = derived_config(PROBE_TIMEOUT, "0")) ||
      aiplat_pipeline_create(&b->poller, b->poll_cfg) != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    return SVCU_EXIT_CONFIG;
  }
  static const aiplat_pipeline_engine all[] = {AIPLAT_PIPELINE_ARGO,
                                               AIPLAT_PIPELINE_KUBEFLOW};
  for (size_t i = 0; i < 2; i++) {
    if (!aiplat_pipeline_engine_configured(b->pl, all[i])) continue;
    engine_probe *p = &b->probes[b->n_probes++];
    p->engine = all[i];
    if (aiplat_pipeline_create(&p->handle, b->probe_cfg) != AIPLAT_OK) {
      svcu_last_error_line(NAME);
      return SVCU_EXIT_CONFIG;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  int rc = svcu_args(
      argc, argv, NAME,
      "Starts Argo Workflows and Kubeflow Pipelines runs for NATS requests.",
      HELP);
  if (rc >= 0) return rc;
  svcu_block_signals();
  aiplat_config *cfg = svcu_config(NAME);
  if (!cfg) return SVCU_EXIT_CONFIG;
  bridge b;
  memset(&b, 0, sizeof b);
  aiplat_service *svc = NULL;
  int64_t interval = 0;
  rc = setup(&b, cfg, &interval);
  if (rc < 0 &&
      aiplat_service_create(
          &svc, cfg, svcu_service_name(cfg, NAME), AIPLAT_VERSION_STRING,
          "Argo Workflows and Kubeflow Pipelines bridge") != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_CONFIG;
  }
  if (rc < 0 && (aiplat_service_add_endpoint(
                     svc, "trigger", aiplat_subject_pipeline_trigger(), NULL,
                     AIPLAT_MSG_PIPELINE_TRIGGER, AIPLAT_MSG_PIPELINE_STATUS,
                     on_trigger, &b) != AIPLAT_OK ||
                 aiplat_service_add_endpoint(
                     svc, "query", aiplat_subject_pipeline_query(), NULL,
                     AIPLAT_MSG_PIPELINE_STATUS, AIPLAT_MSG_PIPELINE_STATUS,
                     on_query, &b) != AIPLAT_OK ||
                 !(b.watch = pb_watch_start(b.poller, aiplat_service_bus(svc),
                                            interval)))) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_FAILURE;
  }
  for (size_t i = 0; rc < 0 && i < b.n_probes; i++) {
    engine_probe *p = &b.probes[i];
    if (!(p->probe = svcu_probe_start(probe_engine, cancel_probe, p,
                                      PROBE_INTERVAL_MS)) ||
        aiplat_service_add_check(svc, aiplat_pipeline_engine_str(p->engine),
                                 svcu_probe_check, p->probe) != AIPLAT_OK) {
      svcu_last_error_line(NAME);
      rc = SVCU_EXIT_FAILURE;
    }
  }
  if (rc < 0) rc = svcu_run(svc, NAME); /* until SIGTERM */
  pb_watch_stop(b.watch);
  for (size_t i = 0; i < b.n_probes; i++) {
    svcu_probe_stop(b.probes[i].probe);
    aiplat_pipeline_destroy(b.probes[i].handle);
  }
  aiplat_service_destroy(svc);
  aiplat_pipeline_destroy(b.poller);
  aiplat_pipeline_destroy(b.pl);
  aiplat_config_destroy(b.poll_cfg);
  aiplat_config_destroy(b.probe_cfg);
  aiplat_config_destroy(cfg);
  return rc;
}
