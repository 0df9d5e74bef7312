/* Pipeline client: start and follow runs on Argo Workflows and Kubeflow
 * Pipelines (include/aiplat/pipeline.h,
 * docs/decisions/0012-pipeline-engines.md). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "internal.h"
#include "pipeline_wire.h"
#include "utf8.h"

typedef struct pipe_engine {
  const char *label;     /* "argo", "kubeflow" */
  const char *url_var;   /* ARGO_URL, KUBEFLOW_URL */
  const char *token_var; /* ARGO_TOKEN, KUBEFLOW_TOKEN */
  char *url;             /* NULL: not configured */
  aip_http *http;        /* NULL: not configured */
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

bool aiplat_pipeline_phase_is_terminal(aiplat_pipeline_phase phase) {
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

const char *aiplat_pipeline_phase_str(aiplat_pipeline_phase phase) {
  static const char *const names[] = {
      "unknown", "pending",   "running", "succeeded",  "failed",
      "error",   "cancelled", "skipped", "cancelling", "paused"};
  if ((int)phase < 0 || (size_t)phase >= AIP_ARRAY_LEN(names)) return "unknown";
  return names[phase];
}

const char *aiplat_pipeline_engine_str(aiplat_pipeline_engine engine) {
  switch (engine) {
    case AIPLAT_PIPELINE_ARGO:
      return "argo";
    case AIPLAT_PIPELINE_KUBEFLOW:
      return "kubeflow";
    default:
      return NULL;
  }
}

aiplat_status aiplat_pipeline_engine_parse(const char *name,
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
  e->http = aip_http_new(e->label);
  if (!e->url || !e->http)
    return aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "pipeline: ENOMEM");
  /* URL, CA file, timeouts and retries as every HTTP client reads them */
  aiplat_status rc =
      aip_http_configure(e->http, &p->err, cfg, e->url_var, NULL, NULL);
  if (rc != AIPLAT_OK) return rc;
  /* Argo's own CLI takes ARGO_TOKEN as the whole header value ("Bearer
   * xyz"): accept that form too, so the same secret serves both. */
  if (token && strncasecmp(token, "Bearer ", 7) == 0) token += 7;
  while (token && *token == ' ') token++;
  if (aip_http_set_api_key(e->http, &p->err, token) != AIPLAT_OK)
    return aip_fail(&p->err, AIPLAT_ERR_CONFIG,
                    "pipeline: %s contains a line break", e->token_var);
  return AIPLAT_OK;
}

aiplat_status aiplat_pipeline_create(aiplat_pipeline **out,
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
  p->eng[0] = (pipe_engine){"argo", "ARGO_URL", "ARGO_TOKEN", NULL, NULL};
  p->eng[1] =
      (pipe_engine){"kubeflow", "KUBEFLOW_URL", "KUBEFLOW_TOKEN", NULL, NULL};
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

void aiplat_pipeline_close(aiplat_pipeline *p) {
  if (!p) return;
  __atomic_store_n(&p->closed, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < 2; i++)
    if (p->eng[i].http) aip_http_cancel(p->eng[i].http);
}

void aiplat_pipeline_destroy(aiplat_pipeline *p) {
  if (!p) return;
  for (int i = 0; i < 2; i++) {
    free(p->eng[i].url);
    aip_http_free(p->eng[i].http);
  }
  free(p->argo_namespace);
  aip_err_destroy(&p->err);
  free(p);
  aip_global_unref();
}

bool aiplat_pipeline_engine_configured(aiplat_pipeline *p,
                                       aiplat_pipeline_engine engine) {
  pipe_engine *e = p ? engine_of(p, engine) : NULL;
  return e && e->url;
}

aiplat_status aiplat_pipeline_last_error(aiplat_pipeline *p, char *buf,
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

/* ---- transport ----------------------------------------------------------- */

/* One request to an engine through the library's HTTP layer; on a 2xx
 * answer *@out gets the body (free()). @retry: let the layer retry
 * transient failures (reads only: a submit is sent once). */
static aiplat_status pipe_request(aiplat_pipeline *p, pipe_engine *e,
                                  const char *method, const char *path,
                                  json_t *body, bool retry, char **out,
                                  size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  char *text = NULL;
  if (body && !(text = json_dumps(body, JSON_COMPACT)))
    return aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", e->label);
  aip_http_req req = {.method = method,
                      .path = path,
                      .content_type = text ? "application/json" : NULL,
                      .body = text,
                      .body_len = text ? strlen(text) : 0,
                      .accept = "application/json",
                      .max_retries = retry ? -1 : 0};
  aip_http_resp resp = {0};
  aiplat_status rc = aip_http_do(e->http, &p->err, &req, &resp);
  free(text);
  if (rc == AIPLAT_OK) {
    if (!resp.body.data && !aip_buf_putc(&resp.body, '\0')) {
      rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "%s: ENOMEM", e->label);
    } else {
      if (resp.body.len == 0) resp.body.data[0] = '\0';
      *out = aip_buf_steal(&resp.body, out_len);
    }
  } else if (resp.status >= 400) {
    /* The engines' statuses mean a little more than a model server's:
     * 409 is a name clash, 504 a deadline inside the server. The layer's
     * message (with the server's own words) stays. */
    aiplat_status mine = aip_pipe_status_for_http(resp.status);
    if (mine != rc) {
      char why[AIP_ERRMSG_MAX];
      aip_err_copy(&p->err, why, sizeof why);
      rc = aip_fail(&p->err, mine, "%s", why);
    }
  }
  aip_http_resp_free(&resp);
  return rc;
}

/* ---- Argo ---------------------------------------------------------------- */

static aiplat_status argo_submit(aiplat_pipeline *p, pipe_engine *e,
                                 const char *tmpl, const char *ns,
                                 const char *const *keys,
                                 const char *const *values, size_t n,
                                 char **run_id_out) {
  long bad = -1;
  json_t *body = aip_pipe_argo_submit_body(ns, tmpl, keys, values, n, &bad);
  if (!body)
    return bad >= 0
               ? aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                          "argo: parameter \"%s\" is not UTF-8 text", keys[bad])
               : aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "argo: ENOMEM");
  aip_buf path = {0};
  char *answer = NULL;
  size_t len = 0;
  aiplat_status rc = AIPLAT_ERR_NO_MEMORY;
  if (!aip_buf_puts(&path, "/api/v1/workflows/") ||
      !aip_pipe_escape(&path, ns) || !aip_buf_puts(&path, "/submit")) {
    rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "argo: ENOMEM");
    goto out;
  }
  rc = pipe_request(p, e, "POST", path.data, body, false, &answer, &len);
  if (rc != AIPLAT_OK) goto out;
  char name[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  rc = aip_pipe_argo_parse_workflow(&p->err, answer, len, name, sizeof name,
                                    NULL, NULL, 0);
  if (rc != AIPLAT_OK) goto out;
  *run_id_out = aip_strdup(name);
  if (!*run_id_out)
    rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "argo: ENOMEM");
out:
  free(answer);
  aip_buf_free(&path);
  json_decref(body);
  return rc;
}

/* Fields argo-server keeps in its answer (WorkflowGetRequest.fields): the
 * node tree of a big workflow can be megabytes we do not need. */
#define ARGO_STATUS_FIELDS                                        \
  "metadata.name,metadata.namespace,status.phase,status.message," \
  "status.startedAt,status.finishedAt"

static aiplat_status argo_status(aiplat_pipeline *p, pipe_engine *e,
                                 const char *name, const char *ns,
                                 aiplat_pipeline_phase *phase, char *msg,
                                 size_t msglen) {
  aip_buf path = {0};
  char *answer = NULL;
  size_t len = 0;
  aiplat_status rc;
  if (!aip_buf_puts(&path, "/api/v1/workflows/") ||
      !aip_pipe_escape(&path, ns) || !aip_buf_putc(&path, '/') ||
      !aip_pipe_escape(&path, name) ||
      !aip_buf_puts(&path, "?fields=" ARGO_STATUS_FIELDS)) {
    rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "argo: ENOMEM");
    goto out;
  }
  rc = pipe_request(p, e, "GET", path.data, NULL, true, &answer, &len);
  if (rc != AIPLAT_OK) goto out;
  rc = aip_pipe_argo_parse_workflow(&p->err, answer, len, NULL, 0, phase, msg,
                                    msglen);
out:
  free(answer);
  aip_buf_free(&path);
  return rc;
}

/* ---- Kubeflow ------------------------------------------------------------ */

/* The pipeline's id from its name (GET /apis/v2beta1/pipelines/names/N). */
static aiplat_status kfp_pipeline_id(aiplat_pipeline *p, pipe_engine *e,
                                     const char *name, const char *ns, char *id,
                                     size_t idlen) {
  aip_buf path = {0};
  char *answer = NULL;
  size_t len = 0;
  aiplat_status rc;
  if (!aip_buf_puts(&path, "/apis/v2beta1/pipelines/names/") ||
      !aip_pipe_escape(&path, name) ||
      (ns &&
       (!aip_buf_puts(&path, "?namespace=") || !aip_pipe_escape(&path, ns)))) {
    rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "kubeflow: ENOMEM");
    goto out;
  }
  rc = pipe_request(p, e, "GET", path.data, NULL, true, &answer, &len);
  if (rc != AIPLAT_OK) goto out;
  rc = aip_pipe_kfp_parse_pipeline(&p->err, answer, len, id, idlen);
out:
  free(answer);
  aip_buf_free(&path);
  return rc;
}

static aiplat_status kfp_submit(aiplat_pipeline *p, pipe_engine *e,
                                const char *pipeline, const char *ns,
                                const char *const *keys,
                                const char *const *values, size_t n,
                                char **run_id_out) {
  char pid[160];
  aiplat_status rc = kfp_pipeline_id(p, e, pipeline, ns, pid, sizeof pid);
  if (rc != AIPLAT_OK) return rc;
  char when[40], display[200];
  aip_format_time_ms(aip_wall_ms(), when, sizeof when);
  snprintf(display, sizeof display, "%s %s", pipeline, when);
  long bad = -1;
  json_t *body = aip_pipe_kfp_run_body(display, pid, keys, values, n, &bad);
  if (!body)
    return bad >= 0
               ? aip_fail(&p->err, AIPLAT_ERR_INVALID_ARGUMENT,
                          "kubeflow: parameter \"%s\" is not UTF-8 text",
                          keys[bad])
               : aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "kubeflow: ENOMEM");
  char *answer = NULL;
  size_t len = 0;
  rc = pipe_request(p, e, "POST", "/apis/v2beta1/runs", body, false, &answer,
                    &len);
  json_decref(body);
  if (rc != AIPLAT_OK) return rc;
  char rid[160];
  rc = aip_pipe_kfp_parse_run(&p->err, answer, len, rid, sizeof rid, NULL, NULL,
                              0);
  free(answer);
  if (rc != AIPLAT_OK) return rc;
  *run_id_out = aip_strdup(rid);
  if (!*run_id_out)
    return aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "kubeflow: ENOMEM");
  return AIPLAT_OK;
}

static aiplat_status kfp_status(aiplat_pipeline *p, pipe_engine *e,
                                const char *run_id,
                                aiplat_pipeline_phase *phase, char *msg,
                                size_t msglen) {
  aip_buf path = {0};
  char *answer = NULL;
  size_t len = 0;
  aiplat_status rc;
  if (!aip_buf_puts(&path, "/apis/v2beta1/runs/") ||
      !aip_pipe_escape(&path, run_id)) {
    rc = aip_fail(&p->err, AIPLAT_ERR_NO_MEMORY, "kubeflow: ENOMEM");
    goto out;
  }
  rc = pipe_request(p, e, "GET", path.data, NULL, true, &answer, &len);
  if (rc != AIPLAT_OK) goto out;
  char rid[160];
  rc = aip_pipe_kfp_parse_run(&p->err, answer, len, rid, sizeof rid, phase, msg,
                              msglen);
  if (rc == AIPLAT_OK && strcmp(rid, run_id) != 0)
    rc = aip_fail(&p->err, AIPLAT_ERR_PROTOCOL,
                  "kubeflow: asked for run %s, the server answered run %s",
                  run_id, rid);
out:
  free(answer);
  aip_buf_free(&path);
  return rc;
}

/* ---- public calls -------------------------------------------------------- */

aiplat_status aiplat_pipeline_submit(aiplat_pipeline *p,
                                     aiplat_pipeline_engine engine,
                                     const char *pipeline, const char *ns,
                                     const char *const *keys,
                                     const char *const *values, size_t n,
                                     char **run_id_out) {
  if (!p || !run_id_out)
    return aip_fail(p ? &p->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: handle or run_id_out is NULL");
  *run_id_out = NULL;
  pipe_engine *e = NULL;
  aiplat_status rc = usable_engine(p, engine, &e);
  if (rc != AIPLAT_OK || !e) return rc;
  rc = check_params(p, e->label, keys, values, n);
  if (rc != AIPLAT_OK) return rc;
  if (engine == AIPLAT_PIPELINE_ARGO) {
    if (!ns) ns = p->argo_namespace;
    if ((rc = check_name(p, e->label, "namespace", ns,
                         aip_pipe_valid_namespace)) != AIPLAT_OK ||
        (rc = check_name(p, e->label, "workflow template name", pipeline,
                         aip_pipe_valid_k8s_name)) != AIPLAT_OK)
      return rc;
    rc = argo_submit(p, e, pipeline, ns, keys, values, n, run_id_out);
  } else {
    if ((ns && (rc = check_name(p, e->label, "namespace", ns,
                                aip_pipe_valid_namespace)) != AIPLAT_OK) ||
        (rc = check_name(p, e->label, "pipeline name", pipeline,
                         aip_pipe_valid_kfp_id)) != AIPLAT_OK)
      return rc;
    rc = kfp_submit(p, e, pipeline, ns, keys, values, n, run_id_out);
  }
  if (rc == AIPLAT_OK)
    aip_log_kv(AIPLAT_LOG_INFO, "pipeline run submitted", "engine", e->label,
               "pipeline", pipeline, "run_id", *run_id_out, (const char *)NULL);
  return rc;
}

aiplat_status aiplat_pipeline_status(aiplat_pipeline *p,
                                     aiplat_pipeline_engine engine,
                                     const char *run_id, const char *ns,
                                     aiplat_pipeline_phase *phase_out,
                                     char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = '\0';
  if (!p || !phase_out)
    return aip_fail(p ? &p->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "pipeline: handle or phase_out is NULL");
  *phase_out = AIPLAT_PIPELINE_UNKNOWN;
  pipe_engine *e = NULL;
  aiplat_status rc = usable_engine(p, engine, &e);
  if (rc != AIPLAT_OK || !e) return rc;
  if (engine == AIPLAT_PIPELINE_ARGO) {
    if (!ns) ns = p->argo_namespace;
    if ((rc = check_name(p, e->label, "namespace", ns,
                         aip_pipe_valid_namespace)) != AIPLAT_OK ||
        (rc = check_name(p, e->label, "run id", run_id,
                         aip_pipe_valid_k8s_name)) != AIPLAT_OK)
      return rc;
    return argo_status(p, e, run_id, ns, phase_out, msg, msglen);
  }
  if ((rc = check_name(p, e->label, "run id", run_id, aip_pipe_valid_kfp_id)) !=
      AIPLAT_OK)
    return rc;
  return kfp_status(p, e, run_id, phase_out, msg, msglen);
}
