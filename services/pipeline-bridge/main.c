/* pipeline-bridge: starts Argo Workflows and Kubeflow Pipelines runs for
 * NATS requests and follows them (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.pipeline.trigger        PipelineTrigger -> PipelineStatus (the run id)
 *   ai.pipeline.status.{run}   PipelineStatus events until a terminal phase
 *   ai.pipeline.query          PipelineStatus {run_id} -> PipelineStatus
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

static const char ABOUT[] =
    "Starts pipeline runs for NATS requests and follows them:\n"
    "  ai.pipeline.trigger       a PipelineTrigger (engine argo or kubeflow,\n"
    "                            pipeline, namespace, parameters) submits an\n"
    "                            Argo WorkflowTemplate or creates a Kubeflow\n"
    "                            run; the reply is a PipelineStatus with the\n"
    "                            run id\n"
    "  ai.pipeline.status.RUN    PipelineStatus events: the first at the\n"
    "                            trigger, then one per phase change (polled\n"
    "                            every PIPELINE_POLL_INTERVAL) until a\n"
    "                            terminal phase (terminal = true)\n"
    "  ai.pipeline.query         a PipelineStatus with run_id (and engine)\n"
    "                            is answered with the run's state\n"
    "\n"
    "Error replies: NOT_SUPPORTED (unknown or unconfigured engine),\n"
    "NOT_FOUND (no such template, pipeline or run: the engine's message),\n"
    "AUTH (token refused), UNAVAILABLE (256 runs watched already), ...\n"
    "/ready checks NATS and each configured engine; at least one of ARGO_URL\n"
    "and KUBEFLOW_URL must be set.\n"
    "\n"
    "Configured by the environment only: the settings below (NAME_FILE\n"
    "instead of NAME reads a secret from a file). A wrong setting stops the\n"
    "program at start with one line naming it (exit status 2); SIGTERM or\n"
    "SIGINT shut it down gracefully.\n";

static const char *const SETTINGS[] = {
    "ARGO_URL", "ARGO_NAMESPACE", "ARGO_TOKEN", "KUBEFLOW_URL",
    "KUBEFLOW_TOKEN", "PIPELINE_POLL_INTERVAL", "HTTP_CONNECT_TIMEOUT",
    "HTTP_TIMEOUT", "HTTP_MAX_RETRIES", "HTTP_CA_FILE", "SERVICE_NAME",
    SVCU_COMMON_SETTINGS, NULL};

static const svcu_help HELP = {
    "Starts Argo Workflows and Kubeflow Pipelines runs for NATS requests.",
    ABOUT, SETTINGS};

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
  if (*version)
    return aiplat_request_fail(
        req, AIPLAT_ERR_NOT_SUPPORTED,
        "pipeline_version is not supported: the latest version of "
        "the pipeline runs; leave it empty");
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
  if (!pb_watch_reserve(b->watch))
    return aiplat_request_fail(
        req, AIPLAT_ERR_UNAVAILABLE,
        "256 runs are being watched already; retry later");
  char *run_id = NULL;
  st = aiplat_pipeline_submit(b->pl, e, pipeline, *ns ? ns : NULL, keys, values,
                              n, &run_id);
  if (st != AIPLAT_OK) {
    pb_watch_unreserve(b->watch);
    char why[PB_MESSAGE_MAX];
    aiplat_pipeline_last_error(b->pl, why, sizeof why);
    return aiplat_request_fail(req, st, why);
  }
  pb_run_state s;
  memset(&s, 0, sizeof s);
  copy_utf8(s.run_id, sizeof s.run_id, run_id);
  copy_utf8(s.ns, sizeof s.ns,
            *ns                         ? ns
            : e == AIPLAT_PIPELINE_ARGO ? b->argo_ns
                                        : "");
  copy_utf8(s.pipeline, sizeof s.pipeline, pipeline);
  copy_utf8(s.request_id, sizeof s.request_id, aiplat_request_id(req));
  s.engine = e;
  s.phase = AIPLAT_PIPELINE_PENDING;
  s.created_ms = s.updated_ms = pb_wall_ms();
  aiplat_free(run_id);
  const char *k[] = {"engine", "pipeline", "run_id"};
  const char *v[] = {aiplat_pipeline_engine_str(e), s.pipeline, s.run_id};
  aiplat_log_fields(AIPLAT_LOG_INFO, "pipeline run started", k, v, 3);

  aiplat_msg *out = pb_status_msg(&s);
  st = out ? aiplat_request_respond(req, out) : AIPLAT_ERR_NO_MEMORY;
  aiplat_msg_destroy(out);
  if (aiplat_subject_token_check(s.run_id) == AIPLAT_OK) {
    pb_watch_add(b->watch, &s); /* the run is started: follow it either way */
  } else {
    aiplat_error_clear();
    pb_watch_unreserve(b->watch);
    aiplat_log_fields(AIPLAT_LOG_WARNING,
                      "run id cannot name a subject; not watched", k, v, 3);
  }
  return st;
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
  /* Not one of ours (or forgotten): ask the engines. */
  static const aiplat_pipeline_engine all[] = {AIPLAT_PIPELINE_ARGO,
                                               AIPLAT_PIPELINE_KUBEFLOW};
  char why[PB_MESSAGE_MAX] = "";
  for (size_t i = 0; i < 2; i++) {
    aiplat_pipeline_engine e = all[i];
    if ((only && e != only) || !aiplat_pipeline_engine_configured(b->pl, e))
      continue;
    memset(&s, 0, sizeof s);
    aiplat_status st = aiplat_pipeline_status(b->pl, e, run, NULL, &s.phase,
                                              s.message, sizeof s.message);
    if (st == AIPLAT_OK) {
      copy_utf8(s.run_id, sizeof s.run_id, run);
      s.engine = e;
      s.terminal = aiplat_pipeline_phase_is_terminal(s.phase);
      s.updated_ms = pb_wall_ms();
      return reply_state(req, &s);
    }
    aiplat_pipeline_last_error(b->pl, why, sizeof why);
    if (st != AIPLAT_ERR_NOT_FOUND && st != AIPLAT_ERR_INVALID_ARGUMENT)
      return aiplat_request_fail(req, st, why);
    aiplat_error_clear();
  }
  char msg[PB_MESSAGE_MAX + AIPLAT_PIPELINE_MAX_RUN_ID + 16];
  snprintf(msg, sizeof msg, "no run %.*s%s%s", AIPLAT_PIPELINE_MAX_RUN_ID, run,
           *why ? ": " : "", why);
  return aiplat_request_fail(req, AIPLAT_ERR_NOT_FOUND, msg);
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
  int rc = svcu_args(argc, argv, NAME, &HELP);
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
