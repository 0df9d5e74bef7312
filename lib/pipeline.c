/* Pipeline client: start and follow runs on Argo Workflows and Kubeflow
 * Pipelines (include/aiplat/pipeline.h,
 * docs/decisions/0012-pipeline-engines.md). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "call_internal.h"
#include "http.h"
#include "internal.h"
#include "loop.h"
#include "model_common.h"
#include "pipeline_wire.h"
#include "utf8.h"

typedef struct pipe_engine {
  const char *label;     /* "argo", "kubeflow" */
  const char *url_var;   /* ARGO_URL, KUBEFLOW_URL */
  const char *token_var; /* ARGO_TOKEN, KUBEFLOW_TOKEN */
  char *url;             /* NULL: not configured */
  /* The asynchronous machinery of the model clients (model_common.h)
   * drives the requests; it reads only base.http (NULL: not configured)
   * and base.component. */
  aip_model_base base;
} pipe_engine;

struct aiplat_pipeline {
  aip_err err;
  char *argo_namespace;
  pipe_engine eng[2]; /* [0] Argo, [1] Kubeflow */
  volatile int closed;
};

static pipe_engine *engine_of(aiplat_pipeline *p, aiplat_pipeline_engine e) {
  if (e == AIPLAT_PIPELINE_ARGO) return &p->eng[0];
  if (e == AIPLAT_PIPELINE_KUBEFLOW) return &p->eng[1];
  return NULL;
}

/* ---- static helpers of the public API ------------------------------------ */

AIPLAT_API bool aiplat_pipeline_phase_is_terminal(aiplat_pipeline_phase phase) {
  switch (phase) {
    case AIPLAT_PIPELINE_SUCCEEDED:
    case AIPLAT_PIPELINE_FAILED:
    case AIPLAT_PIPELINE_ERROR:
    case AIPLAT_PIPELINE_CANCELLED:
    case AIPLAT_PIPELINE_SKIPPED:
      return true;
    default:
      return false;
  }
}

AIPLAT_API const char *aiplat_pipeline_phase_str(aiplat_pipeline_phase phase) {
  static const char *const names[] = {
      "unknown", "pending",   "running", "succeeded",  "failed",
      "error",   "cancelled", "skipped", "cancelling", "paused"};
  if ((int)phase < 0 || (size_t)phase >= AIP_ARRAY_LEN(names)) return "unknown";
  return names[phase];
}

AIPLAT_API const char *aiplat_pipeline_engine_str(aiplat_pipeline_engine engine) {
  switch (engine) {
    case AIPLAT_PIPELINE_ARGO:
      return "argo";
    case AIPLAT_PIPELINE_KUBEFLOW:
      return "kubeflow";
    default:
      return NULL;
  }
}

AIPLAT_API aiplat_status aiplat_pipeline_engine_parse(const char *name,
                                           aiplat_pipeline_engine *out) {
  if (!name || !out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: engine name or out is NULL");
  if (aip_str_ieq(name, "argo")) {
    *out = AIPLAT_PIPELINE_ARGO;
    return AIPLAT_OK;
  }
  if (aip_str_ieq(name, "kubeflow") || aip_str_ieq(name, "kfp")) {
    *out = AIPLAT_PIPELINE_KUBEFLOW;
    return AIPLAT_OK;
  }
  return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                  "pipeline: unknown engine (expected \"argo\" or "
                  "\"kubeflow\")");
}

/* ---- handle -------------------------------------------------------------- */

/* Fail with the config's own message (which names the variable): copied
 * first, since the thread's record is about to be rewritten. */
static aiplat_status config_fail(aiplat_pipeline *p) {
  char why[AIP_ERRMSG_MAX];
  snprintf(why, sizeof why, "%s", aip_thread_errmsg());
  return aip_fail(&p->err, AIPLAT_ERR_CONFIG, "pipeline: %s", why);
}

static aiplat_status read_engine(aiplat_pipeline *p, aiplat_config *cfg,
                                 pipe_engine *e) {
  const char *v = NULL;
  /* Reading the token first makes a bad NAME_FILE fail at start. */
  if (aiplat_config_get_string(cfg, e->token_var, &v) != AIPLAT_OK)
    return config_fail(p);
  const char *token = v;
  /* unset or empty (a manifest's ARGO_URL: ""): not configured */
  if (aiplat_config_get_string(cfg, e->url_var, &v) != AIPLAT_OK)
    return config_fail(p);
  if (!v || !*v) return AIPLAT_OK;
  if (aiplat_config_get_url(cfg, e->url_var, &v) != AIPLAT_OK)
    return config_fail(p);
  if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
    return aip_fail(&p->err, AIPLAT_ERR_CONFIG,
                    "pipeline: %s must be an http:// or https:// URL",
                    e->url_var);
  e->url = aip_strdup(v);
  e->base.http = aip_http_new(e->label);
  if (!e->url || !e->base.http)
    return aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  /* URL, CA file, timeouts and retries as every HTTP client reads them */
  aiplat_status rc =
      aip_http_configure(e->base.http, &p->err, cfg, e->url_var, NULL, NULL);
  if (rc != AIPLAT_OK) return rc;
  /* Argo's own CLI takes ARGO_TOKEN as the whole header value ("Bearer
   * xyz"): accept that form too, so the same secret serves both. */
  if (token && strncasecmp(token, "Bearer ", 7) == 0) token += 7;
  while (token && *token == ' ') token++;
  if (aip_http_set_api_key(e->base.http, &p->err, token) != AIPLAT_OK)
    return aip_fail(&p->err, AIPLAT_ERR_CONFIG,
                    "pipeline: %s contains a line break", e->token_var);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_pipeline_create(aiplat_pipeline **out,
                                     aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "pipeline: out is NULL");
  *out = NULL;
  aiplat_status rc = aip_global_ref();
  if (rc != AIPLAT_OK) return rc;
  aiplat_pipeline *p = calloc(1, sizeof *p);
  if (!p) {
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  }
  aip_err_init(&p->err);
  p->eng[0] = (pipe_engine){.label = "argo",
                            .url_var = "ARGO_URL",
                            .token_var = "ARGO_TOKEN",
                            .base.component = "argo"};
  p->eng[1] = (pipe_engine){.label = "kubeflow",
                            .url_var = "KUBEFLOW_URL",
                            .token_var = "KUBEFLOW_TOKEN",
                            .base.component = "kubeflow"};
  aiplat_config *own = NULL;
  if (!cfg) {
    rc = aiplat_config_create(&own);
    if (rc != AIPLAT_OK) goto fail;
    cfg = own;
  }
  for (int i = 0; i < 2; i++) {
    rc = read_engine(p, cfg, &p->eng[i]);
    if (rc != AIPLAT_OK) goto fail;
  }
  const char *ns = NULL;
  const char *why = NULL;
  rc = aiplat_config_get_string(cfg, "ARGO_NAMESPACE", &ns);
  if (rc != AIPLAT_OK) {
    rc = config_fail(p);
    goto fail;
  }
  if (!aip_pipe_valid_namespace(ns, &why)) {
    rc = aip_fail(&p->err, AIPLAT_ERR_CONFIG, "pipeline: ARGO_NAMESPACE %s",
                  why);
    goto fail;
  }
  p->argo_namespace = aip_strdup(ns);
  if (!p->argo_namespace) {
    rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
    goto fail;
  }
  aiplat_config_destroy(own);
  *out = p;
  return AIPLAT_OK;
fail:
  aiplat_config_destroy(own);
  aiplat_pipeline_destroy(p);
  return rc;
}

AIPLAT_API void aiplat_pipeline_close(aiplat_pipeline *p) {
  if (!p) return;
  __atomic_store_n(&p->closed, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < 2; i++)
    if (p->eng[i].base.http) aip_http_cancel(p->eng[i].base.http);
}

AIPLAT_API void aiplat_pipeline_destroy(aiplat_pipeline *p) {
  if (!p) return;
  for (int i = 0; i < 2; i++) {
    free(p->eng[i].url);
    aip_http_free(p->eng[i].base.http);
  }
  free(p->argo_namespace);
  aip_err_destroy(&p->err);
  free(p);
  aip_global_unref();
}

AIPLAT_API bool aiplat_pipeline_engine_configured(aiplat_pipeline *p,
                                       aiplat_pipeline_engine engine) {
  pipe_engine *e = p ? engine_of(p, engine) : NULL;
  return e && e->url;
}

AIPLAT_API aiplat_status aiplat_pipeline_last_error(aiplat_pipeline *p, char *buf,
                                         size_t buflen) {
  if (!p) {
    if (buf && buflen) buf[0] = '\0';
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return aip_err_copy(&p->err, buf, buflen);
}

/* ---- checks before any request ------------------------------------------- */

static aiplat_status usable_engine(aiplat_pipeline *p,
                                   aiplat_pipeline_engine engine,
                                   pipe_engine **out) {
  pipe_engine *e = engine_of(p, engine);
  if (!e)
    return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: unknown engine %d", (int)engine);
  if (!e->url)
    return aip_fail(&p->err, AIPLAT_ERR_CONFIG,
                    "%s: %s is not set, so the engine is not configured",
                    e->label, e->url_var);
  if (__atomic_load_n(&p->closed, __ATOMIC_SEQ_CST))
    return aip_fail(&p->err, AIPLAT_ERR_CANCELLED,
                    "%s: the pipeline handle was closed", e->label);
  *out = e;
  return AIPLAT_OK;
}

static aiplat_status check_params(aiplat_pipeline *p, const char *label,
                                  const char *const *keys,
                                  const char *const *values, size_t n) {
  if (n > AIPLAT_PIPELINE_MAX_PARAMS)
    return aip_fail(&p->err, AIPLAT_ERR_TOO_LARGE,
                    "%s: %zu parameters, more than the %d allowed", label, n,
                    AIPLAT_PIPELINE_MAX_PARAMS);
  if (n > 0 && (!keys || !values))
    return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: parameter keys or values are NULL", label);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const char *why = NULL;
    if (!keys[i] || !values[i])
      return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s: parameter %zu has a NULL key or value", label, i);
    if (!aip_pipe_valid_param_key(keys[i], &why))
      return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s: parameter %zu's key %s", label, i, why);
    if (!aip_utf8_valid(values[i], strlen(values[i])))
      return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s: parameter \"%s\" is not UTF-8 text", label, keys[i]);
    size_t vl = strlen(values[i]);
    if (vl > AIP_PIPE_MAX_VALUE)
      return aip_fail(&p->err, AIPLAT_ERR_TOO_LARGE,
                      "%s: parameter \"%s\" is longer than %d bytes", label,
                      keys[i], AIP_PIPE_MAX_VALUE);
    total += vl + strlen(keys[i]);
    for (size_t j = 0; j < i; j++)
      if (strcmp(keys[i], keys[j]) == 0)
        return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                        "%s: parameter \"%s\" is given twice", label, keys[i]);
  }
  if (total > AIP_PIPE_MAX_BODY)
    return aip_fail(&p->err, AIPLAT_ERR_TOO_LARGE,
                    "%s: the parameters take more than %d bytes", label,
                    AIP_PIPE_MAX_BODY);
  return AIPLAT_OK;
}

static aiplat_status check_name(aiplat_pipeline *p, const char *label,
                                const char *what, const char *v,
                                bool (*valid)(const char *, const char **)) {
  const char *why = NULL;
  if (!valid(v, &why))
    return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT, "%s: the %s %s",
                    label, what, why);
  return AIPLAT_OK;
}

/* ---- per-call options ---------------------------------------------------- */

struct aiplat_pipeline_options {
  char *ns;      /* NULL: the default */
  char *version; /* NULL: the latest */
};

AIPLAT_API aiplat_status aiplat_pipeline_options_create(aiplat_pipeline_options **out) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "pipeline: NULL out");
  *out = calloc(1, sizeof **out);
  if (!*out) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_pipeline_options_destroy(aiplat_pipeline_options *o) {
  if (!o) return;
  free(o->ns);
  free(o->version);
  free(o);
}

AIPLAT_API aiplat_status aiplat_pipeline_options_set_namespace(aiplat_pipeline_options *o,
                                                    const char *ns) {
  const char *why = NULL;
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: NULL options");
  if (ns && *ns && !aip_pipe_valid_namespace(ns, &why))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: the namespace %s", why);
  if (!aip_str_replace(&o->ns, ns && *ns ? ns : NULL))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_pipeline_options_set_version(aiplat_pipeline_options *o,
                                                  const char *version) {
  const char *why = NULL;
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: NULL options");
  if (version && *version && !aip_pipe_valid_kfp_id(version, &why))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: the pipeline version %s", why);
  if (!aip_str_replace(&o->version, version && *version ? version : NULL))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  return AIPLAT_OK;
}

/* ---- asynchronous calls -------------------------------------------------- */

/* The request a call is waiting for. */
typedef enum pipe_step {
  STEP_ARGO_SUBMIT,
  STEP_ARGO_STATUS,
  STEP_KFP_PIPELINE, /* the pipeline's id from its name */
  STEP_KFP_VERSION,  /* the version's id from its name */
  STEP_KFP_VERSION_ID, /* no version of that name: the version of that id */
  STEP_KFP_RUN,      /* the run's creation */
  STEP_KFP_STATUS
} pipe_step;

/* One asynchronous call: one request (a status, an Argo submit) or up to
 * three in sequence (a Kubeflow submit). Owned by the loop thread once its
 * first request started; freed after its completion callback. */
typedef struct pipe_call {
  aip_model_call m; /* first: the answer callback gets &m */
  aiplat_pipeline *p;
  pipe_engine *e;
  pipe_step step;
  char *name;    /* template, pipeline or run id */
  char *ns;      /* NULL: none (Kubeflow) */
  char *version; /* NULL: the latest */
  json_t *body;  /* a submit's request body */
  char path[1024];
  char pid[160], vid[160];
  aiplat_pipeline_submit_done_fn submit_done;
  aiplat_pipeline_status_done_fn status_done;
  void *ud;
} pipe_call;

static void pipe_call_free(pipe_call *c) {
  aip_model_call_destroy(&c->m);
  free(c->name);
  free(c->ns);
  free(c->version);
  json_decref(c->body);
  free(c);
}

/* Call back with the outcome and free the call. */
static void finish(pipe_call *c, aiplat_status st, const char *run_id,
                   aiplat_pipeline_phase phase, const char *run_msg) {
  char msg[AIP_ERRMSG_MAX];
  aip_model_call_message(&c->m, st, msg, sizeof msg);
  if (c->submit_done) {
    if (st == AIPLAT_OK)
      aip_log_kv(AIPLAT_LOG_INFO, "pipeline run submitted", "engine",
                 c->e->label, "pipeline", c->name, "run_id", run_id,
                 (const char *)NULL);
    c->submit_done(st, msg, st == AIPLAT_OK ? run_id : NULL, c->ud);
  } else {
    c->status_done(st, msg, st == AIPLAT_OK ? phase : AIPLAT_PIPELINE_UNKNOWN,
                   st == AIPLAT_OK && run_msg ? run_msg : "", c->ud);
  }
  pipe_call_free(c);
}

/* Start the request of the current step (path in c->path; a POST sends
 * c->body). @err: the handle's record on the caller's thread, the call's
 * own on the loop thread. Reads are retried as the HTTP layer does; a
 * submit is sent once. */
static aiplat_status send_step(pipe_call *c, aip_err *err) {
  bool post = c->step == STEP_ARGO_SUBMIT || c->step == STEP_KFP_RUN;
  char *text = NULL;
  if (post && !(text = json_dumps(c->body, JSON_COMPACT)))
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", c->e->label);
  aip_http_req req = {.method = post ? "POST" : "GET",
                      .path = c->path,
                      .content_type = text ? "application/json" : NULL,
                      .body = text,
                      .body_len = text ? strlen(text) : 0,
                      .accept = "application/json",
                      .max_retries = post ? 0 : -1};
  aiplat_status st = aip_model_call_start(&c->m, err, &req);
  free(text);
  return st;
}

/* c->path from pieces: literal text, and (escaped) values. */
static bool path_set(pipe_call *c, const char *a, const char *v1,
                     const char *b, const char *v2, const char *tail) {
  aip_buf path = {0};
  bool ok = aip_buf_puts(&path, a) && (!v1 || aip_pipe_escape(&path, v1)) &&
            (!b || aip_buf_puts(&path, b)) &&
            (!v2 || aip_pipe_escape(&path, v2)) &&
            (!tail || aip_buf_puts(&path, tail)) &&
            path.len < sizeof c->path;
  if (ok) memcpy(c->path, path.data, path.len + 1);
  aip_buf_free(&path);
  return ok;
}

/* Fields argo-server keeps in its answer (WorkflowGetRequest.fields): the
 * node tree of a big workflow can be megabytes we do not need. */
#define ARGO_STATUS_FIELDS                                        \
  "metadata.name,metadata.namespace,status.phase,status.message," \
  "status.startedAt,status.finishedAt"

/* The path of the current step. */
static bool step_path(pipe_call *c) {
  switch (c->step) {
    case STEP_ARGO_SUBMIT:
      return path_set(c, "/api/v1/workflows/", c->ns, "/submit", NULL, NULL);
    case STEP_ARGO_STATUS:
      return path_set(c, "/api/v1/workflows/", c->ns, "/", c->name,
                      "?fields=" ARGO_STATUS_FIELDS);
    case STEP_KFP_PIPELINE:
      return path_set(c, "/apis/v2beta1/pipelines/names/", c->name,
                      c->ns ? "?namespace=" : NULL, c->ns, NULL);
    case STEP_KFP_VERSION: {
      json_t *f = aip_pipe_kfp_version_filter(c->version);
      char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
      json_decref(f);
      bool ok = text && path_set(c, "/apis/v2beta1/pipelines/", c->pid,
                                 "/versions?filter=", text, NULL);
      free(text);
      return ok;
    }
    case STEP_KFP_VERSION_ID:
      return path_set(c, "/apis/v2beta1/pipelines/", c->pid, "/versions/",
                      c->version, NULL);
    case STEP_KFP_RUN:
      return path_set(c, "/apis/v2beta1/runs", NULL, NULL, NULL, NULL);
    case STEP_KFP_STATUS:
      return path_set(c, "/apis/v2beta1/runs/", c->name, NULL, NULL, NULL);
  }
  return false;
}

/* Go on with @step, on the loop thread; on a failure to start it the call
 * ends here (its callback runs). */
static void next_step(pipe_call *c, pipe_step step) {
  c->step = step;
  aiplat_status st;
  if (__atomic_load_n(&c->p->closed, __ATOMIC_SEQ_CST))
    st = aip_fail(&c->m.err, AIPLAT_ERR_CANCELLED,
                  "%s: the pipeline handle was closed", c->e->label);
  else if (!step_path(c))
    st = aip_fail(&c->m.err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", c->e->label);
  else
    st = send_step(c, &c->m.err);
  if (st != AIPLAT_OK) finish(c, st, NULL, AIPLAT_PIPELINE_UNKNOWN, NULL);
}

/* The engines' statuses mean a little more than a model server's: 409 is
 * a name clash, 504 a deadline inside the server. The layer's message
 * (with the server's own words) stays. */
static aiplat_status refine(pipe_call *c) {
  aiplat_status st = c->m.st;
  if (st == AIPLAT_OK || c->m.resp.status < 400) return st;
  aiplat_status mine = aip_pipe_status_for_http(c->m.resp.status);
  if (mine != st) {
    char why[AIP_ERRMSG_MAX];
    aip_err_copy(&c->m.err, why, sizeof why);
    st = aip_fail(&c->m.err, mine, "%s", why);
  }
  return st;
}

/* On the loop thread: a request of @m has ended. */
static void on_answer(aip_model_call *m) {
  pipe_call *c = (pipe_call *)(void *)m;
  aiplat_status st = refine(c);
  if (st != AIPLAT_OK) {
    if (c->step == STEP_KFP_VERSION_ID &&
        (st == AIPLAT_ERR_NOT_FOUND || st == AIPLAT_ERR_BAD_REQUEST))
      st = aip_fail(&m->err, AIPLAT_ERR_NOT_FOUND,
                    "kubeflow: pipeline \"%s\" has no version named \"%s\" "
                    "nor one of that id",
                    c->name, c->version);
    finish(c, st, NULL, AIPLAT_PIPELINE_UNKNOWN, NULL);
    return;
  }
  const char *body = m->resp.body.data ? m->resp.body.data : "";
  size_t len = m->resp.body.len;
  aip_err *err = &m->err;
  char id[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  char msg[AIP_ERRMSG_MAX] = "";
  aiplat_pipeline_phase phase = AIPLAT_PIPELINE_UNKNOWN;
  switch (c->step) {
    case STEP_ARGO_SUBMIT:
      st = aip_pipe_argo_parse_workflow(err, body, len, id, sizeof id, NULL,
                                        NULL, 0);
      finish(c, st, id, phase, NULL);
      return;
    case STEP_ARGO_STATUS:
      st = aip_pipe_argo_parse_workflow(err, body, len, NULL, 0, &phase, msg,
                                        sizeof msg);
      finish(c, st, NULL, phase, msg);
      return;
    case STEP_KFP_PIPELINE:
      st = aip_pipe_kfp_parse_pipeline(err, body, len, c->pid, sizeof c->pid);
      if (st != AIPLAT_OK) break;
      if (c->version) {
        next_step(c, STEP_KFP_VERSION);
        return;
      }
      if (!aip_pipe_kfp_run_ref(c->body, c->pid, NULL)) goto nomem;
      next_step(c, STEP_KFP_RUN);
      return;
    case STEP_KFP_VERSION:
      st = aip_pipe_kfp_parse_versions(err, body, len, c->name, c->version,
                                       c->vid, sizeof c->vid);
      if (st == AIPLAT_ERR_NOT_FOUND) { /* the trigger may carry an id */
        next_step(c, STEP_KFP_VERSION_ID);
        return;
      }
      if (st != AIPLAT_OK) break;
      if (!aip_pipe_kfp_run_ref(c->body, c->pid, c->vid)) goto nomem;
      next_step(c, STEP_KFP_RUN);
      return;
    case STEP_KFP_VERSION_ID:
      st = aip_pipe_kfp_parse_version(err, body, len, c->pid, c->vid,
                                      sizeof c->vid);
      if (st != AIPLAT_OK) break;
      if (!aip_pipe_kfp_run_ref(c->body, c->pid, c->vid)) goto nomem;
      next_step(c, STEP_KFP_RUN);
      return;
    case STEP_KFP_RUN:
      st = aip_pipe_kfp_parse_run(err, body, len, id, sizeof id, NULL, NULL,
                                  0);
      finish(c, st, id, phase, NULL);
      return;
    case STEP_KFP_STATUS:
      st = aip_pipe_kfp_parse_run(err, body, len, id, sizeof id, &phase, msg,
                                  sizeof msg);
      if (st == AIPLAT_OK && strcmp(id, c->name) != 0)
        st = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                      "kubeflow: asked for run %s, the server answered run %s",
                      c->name, id);
      finish(c, st, NULL, phase, msg);
      return;
  }
  finish(c, st, NULL, AIPLAT_PIPELINE_UNKNOWN, NULL);
  return;
nomem:
  finish(c, aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", c->e->label),
         NULL, AIPLAT_PIPELINE_UNKNOWN, NULL);
}

static pipe_call *call_new(aiplat_pipeline *p, pipe_engine *e,
                           aiplat_call *call) {
  pipe_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  aip_model_call_init(&c->m, &e->base, call, on_answer);
  c->p = p;
  c->e = e;
  return c;
}

/* The first request from the caller's thread; on failure the call is
 * freed, nothing is called back and the handle's record has the detail. */
static aiplat_status start(pipe_call *c, pipe_step step) {
  c->step = step;
  aiplat_status st =
      step_path(c)
          ? send_step(c, &c->p->err)
          : aip_fail(&c->p->err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM",
                     c->e->label);
  if (st != AIPLAT_OK) pipe_call_free(c);
  return st;
}

AIPLAT_API aiplat_status aiplat_pipeline_submit_async(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *pipeline,
    const char *const *keys, const char *const *values, size_t n,
    const aiplat_pipeline_options *options, aiplat_call *call,
    aiplat_pipeline_submit_done_fn done, void *user_data) {
  if (!p || !done)
    return aip_fail(p ? &p->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: handle or completion callback is NULL");
  pipe_engine *e = NULL;
  aiplat_status rc = usable_engine(p, engine, &e);
  if (rc != AIPLAT_OK || !e) return rc;
  rc = check_params(p, e->label, keys, values, n);
  if (rc != AIPLAT_OK) return rc;
  const char *ns = options ? options->ns : NULL;
  const char *version = options ? options->version : NULL;
  long bad = -1;
  json_t *body = NULL;
  if (engine == AIPLAT_PIPELINE_ARGO) {
    if (!ns) ns = p->argo_namespace;
    if (version)
      return aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "argo: a pipeline version cannot be chosen: "
                      "WorkflowTemplates are not versioned (name the "
                      "versioned template itself)");
    if ((rc = check_name(p, e->label, "namespace", ns,
                         aip_pipe_valid_namespace)) != AIPLAT_OK ||
        (rc = check_name(p, e->label, "workflow template name", pipeline,
                         aip_pipe_valid_k8s_name)) != AIPLAT_OK)
      return rc;
    body = aip_pipe_argo_submit_body(ns, pipeline, keys, values, n, &bad);
  } else {
    if ((ns && (rc = check_name(p, e->label, "namespace", ns,
                                aip_pipe_valid_namespace)) != AIPLAT_OK) ||
        (rc = check_name(p, e->label, "pipeline name", pipeline,
                         aip_pipe_valid_kfp_id)) != AIPLAT_OK)
      return rc;
    char when[40], display[200];
    aip_format_time_ms(aip_wall_ms(), when, sizeof when);
    snprintf(display, sizeof display, "%s %s", pipeline, when);
    body = aip_pipe_kfp_run_body(display, NULL, keys, values, n, &bad);
  }
  if (!body)
    return bad >= 0 ? aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                               "%s: parameter \"%s\" is not UTF-8 text",
                               e->label, keys[bad])
                    : aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM",
                               e->label);
  pipe_call *c = call_new(p, e, call);
  if (!c || !(c->name = aip_strdup(pipeline)) ||
      (ns && !(c->ns = aip_strdup(ns))) ||
      (version && !(c->version = aip_strdup(version)))) {
    json_decref(body);
    if (c) pipe_call_free(c);
    return aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", e->label);
  }
  c->body = body;
  c->submit_done = done;
  c->ud = user_data;
  return start(c, engine == AIPLAT_PIPELINE_ARGO ? STEP_ARGO_SUBMIT
                                                 : STEP_KFP_PIPELINE);
}

AIPLAT_API aiplat_status aiplat_pipeline_status_async(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *run_id,
    const aiplat_pipeline_options *options, aiplat_call *call,
    aiplat_pipeline_status_done_fn done, void *user_data) {
  if (!p || !done)
    return aip_fail(p ? &p->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: handle or completion callback is NULL");
  pipe_engine *e = NULL;
  aiplat_status rc = usable_engine(p, engine, &e);
  if (rc != AIPLAT_OK || !e) return rc;
  const char *ns = NULL;
  if (engine == AIPLAT_PIPELINE_ARGO) {
    ns = options && options->ns ? options->ns : p->argo_namespace;
    if ((rc = check_name(p, e->label, "namespace", ns,
                         aip_pipe_valid_namespace)) != AIPLAT_OK ||
        (rc = check_name(p, e->label, "run id", run_id,
                         aip_pipe_valid_k8s_name)) != AIPLAT_OK)
      return rc;
  } else if ((rc = check_name(p, e->label, "run id", run_id,
                              aip_pipe_valid_kfp_id)) != AIPLAT_OK) {
    return rc;
  }
  pipe_call *c = call_new(p, e, call);
  if (!c || !(c->name = aip_strdup(run_id)) ||
      (ns && !(c->ns = aip_strdup(ns)))) {
    if (c) pipe_call_free(c);
    return aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", e->label);
  }
  c->status_done = done;
  c->ud = user_data;
  return start(c, engine == AIPLAT_PIPELINE_ARGO ? STEP_ARGO_STATUS
                                                 : STEP_KFP_STATUS);
}

/* ---- blocking calls: the asynchronous ones and a wait --------------------- */

typedef struct pipe_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  aiplat_status st;
  char msg[AIP_ERRMSG_MAX];
  char *run_id;
  aiplat_pipeline_phase phase;
  char *out_msg; /* the caller's status message buffer, or NULL */
  size_t out_len;
} pipe_wait;

static void wait_init(pipe_wait *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

/* Wait for the completion, record a failure in the handle, clean up. */
static aiplat_status wait_end(aiplat_pipeline *p, pipe_wait *w,
                              aiplat_status started) {
  if (started == AIPLAT_OK) {
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    if (w->st != AIPLAT_OK) aip_fail(&p->err, w->st, "%s", w->msg);
  }
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  return started == AIPLAT_OK ? w->st : started;
}

static void wake(pipe_wait *w, aiplat_status st, const char *msg) {
  w->st = st;
  snprintf(w->msg, sizeof w->msg, "%s", msg);
  pthread_mutex_lock(&w->mu);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Copy @s into @out (size @n), cut at a character's start. */
static void copy_cut(char *out, size_t n, const char *s) {
  size_t len = strlen(s);
  if (len >= n) {
    len = n - 1;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--;
  }
  memcpy(out, s, len);
  out[len] = '\0';
}

static void submit_woken(aiplat_status st, const char *msg, const char *run_id,
                         void *ud) {
  pipe_wait *w = ud;
  if (st == AIPLAT_OK && !(w->run_id = aip_strdup(run_id))) {
    st = AIPLAT_ERR_NO_MEMORY;
    msg = "pipeline: ENOMEM";
  }
  wake(w, st, msg);
}

static void status_woken(aiplat_status st, const char *msg,
                         aiplat_pipeline_phase phase, const char *run_msg,
                         void *ud) {
  pipe_wait *w = ud;
  w->phase = phase;
  if (w->out_msg && w->out_len)
    copy_cut(w->out_msg, w->out_len, run_msg);
  wake(w, st, msg);
}

static aiplat_status refuse_on_loop(aiplat_pipeline *p) {
  return aip_fail(&p->err, AIPLAT_ERR_INTERNAL,
                  "pipeline: a blocking call cannot run on the event loop "
                  "thread (use the asynchronous form)");
}

AIPLAT_API aiplat_status aiplat_pipeline_submit(aiplat_pipeline *p,
                                     aiplat_pipeline_engine engine,
                                     const char *pipeline, const char *ns,
                                     const char *const *keys,
                                     const char *const *values, size_t n,
                                     char **run_id_out) {
  if (!p || !run_id_out)
    return aip_fail(p ? &p->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: handle or run_id_out is NULL");
  *run_id_out = NULL;
  if (aip_loop_on_thread()) return refuse_on_loop(p);
  /* the namespace is checked by the call, as before, not by the option */
  aiplat_pipeline_options opts = {.ns = (char *)(uintptr_t)ns};
  pipe_wait w;
  wait_init(&w);
  aiplat_status st = wait_end(
      p, &w,
      aiplat_pipeline_submit_async(p, engine, pipeline, keys, values, n, &opts,
                                   NULL, submit_woken, &w));
  if (st == AIPLAT_OK)
    *run_id_out = w.run_id;
  else
    free(w.run_id);
  return st;
}

AIPLAT_API aiplat_status aiplat_pipeline_status(aiplat_pipeline *p,
                                     aiplat_pipeline_engine engine,
                                     const char *run_id, const char *ns,
                                     aiplat_pipeline_phase *phase_out,
                                     char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = '\0';
  if (!p || !phase_out)
    return aip_fail(p ? &p->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: handle or phase_out is NULL");
  *phase_out = AIPLAT_PIPELINE_UNKNOWN;
  if (aip_loop_on_thread()) return refuse_on_loop(p);
  aiplat_pipeline_options opts = {.ns = (char *)(uintptr_t)ns};
  pipe_wait w;
  wait_init(&w);
  w.out_msg = msg;
  w.out_len = msglen;
  aiplat_status st = wait_end(
      p, &w,
      aiplat_pipeline_status_async(p, engine, run_id, &opts, NULL,
                                   status_woken, &w));
  *phase_out = w.phase;
  return st;
}

aiplat_status aip_pipe_limit_http(aiplat_pipeline *p, int64_t timeout_ms,
                                  int max_retries) {
  for (int i = 0; i < 2; i++) {
    aip_http *h = p->eng[i].base.http;
    if (!h) continue;
    aip_http_settings set;
    aip_http_get_settings(h, &set);
    if (timeout_ms > 0 && (set.timeout_ms <= 0 || set.timeout_ms > timeout_ms))
      set.timeout_ms = timeout_ms;
    if (timeout_ms > 0 &&
        (set.connect_timeout_ms <= 0 || set.connect_timeout_ms > timeout_ms))
      set.connect_timeout_ms = timeout_ms;
    if (max_retries >= 0) set.max_retries = max_retries;
    aiplat_status st = aip_http_set_settings(h, &p->err, &set);
    if (st != AIPLAT_OK) return st;
  }
  return AIPLAT_OK;
}
