/* Shared parts of the model clients (see model_common.h). */
#include "model_common.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "call_internal.h"
#include "config.h"
#include "otel.h"

aiplat_status aip_model_base_init(aip_model_base *b, const char *component,
                                  aiplat_config *cfg, const char *url_var,
                                  const char *key_var, const char *model_var,
                                  const char *timeout_var) {
  memset(b, 0, sizeof *b);
  aip_err_init(&b->err);
  pthread_mutex_init(&b->mu, NULL);
  b->component = component;
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) goto fail;
  b->global_ref = true;
  if (!(b->http = aip_http_new(component))) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", component);
    goto fail;
  }
  st = aip_http_configure(b->http, NULL, cfg, url_var, key_var, timeout_var);
  if (st != AIPLAT_OK) goto fail;
  if (model_var) {
    aiplat_config *own = NULL;
    aiplat_config *c = aip_model_cfg_begin(cfg, &own);
    const char *model = NULL;
    if (!c) {
      st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", component);
      goto fail;
    }
    st = aiplat_config_get_string(c, model_var, &model);
    if (st != AIPLAT_OK) {
      aip_model_cfg_fail(b, c, st);
    } else if (!model || !*model) {
      st = aip_fail(NULL, AIPLAT_ERR_CONFIG, "%s: %s is not set", component,
                    model_var);
    } else {
      st = aip_model_base_set_model(b, model);
    }
    aip_model_cfg_end(own);
    if (st != AIPLAT_OK) goto fail;
  }
  return AIPLAT_OK;
fail:
  aip_model_base_destroy(b);
  return st;
}

void aip_model_base_destroy(aip_model_base *b) {
  aip_model_metrics_detach(b);
  aip_http_free(b->http);
  b->http = NULL;
  free(b->model);
  b->model = NULL;
  pthread_mutex_destroy(&b->mu);
  aip_err_destroy(&b->err);
  if (b->global_ref) aip_global_unref();
  b->global_ref = false;
}

char *aip_model_base_model(aip_model_base *b) {
  pthread_mutex_lock(&b->mu);
  char *m = aip_strdup(b->model);
  pthread_mutex_unlock(&b->mu);
  return m;
}

aiplat_status aip_model_base_set_model(aip_model_base *b, const char *model) {
  if (!model || !*model)
    return aip_fail(&b->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: empty model name", b->component);
  char *copy = aip_strdup(model);
  if (!copy)
    return aip_fail(&b->err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    b->component);
  pthread_mutex_lock(&b->mu);
  free(b->model);
  b->model = copy;
  pthread_mutex_unlock(&b->mu);
  return AIPLAT_OK;
}

aiplat_status aip_model_base_set(aip_model_base *b, aip_model_knob k,
                                 int64_t value) {
  aip_http_settings s;
  aip_http_get_settings(b->http, &s);
  switch (k) {
    case AIP_KNOB_TIMEOUT:
      s.timeout_ms = value;
      break;
    case AIP_KNOB_CONNECT_TIMEOUT:
      s.connect_timeout_ms = value;
      break;
    case AIP_KNOB_IDLE_TIMEOUT:
      s.idle_timeout_ms = value;
      break;
    case AIP_KNOB_RETRIES:
      s.max_retries = value < 0 || value > 100 ? -1 : (int)value;
      break;
  }
  return aip_http_set_settings(b->http, &b->err, &s);
}

aiplat_config *aip_model_cfg_begin(aiplat_config *cfg, aiplat_config **own) {
  *own = NULL;
  if (cfg) return cfg;
  if (aiplat_config_create(own) != AIPLAT_OK) return NULL;
  return *own;
}

void aip_model_cfg_end(aiplat_config *own) {
  aiplat_config_destroy(own);
}

aiplat_status aip_model_cfg_fail(aip_model_base *b, aiplat_config *cfg,
                                 aiplat_status st) {
  char msg[AIP_ERRMSG_MAX];
  aiplat_config_last_error(cfg, msg, sizeof msg);
  return aip_fail(&b->err, st, "%s: %s", b->component, msg);
}

const char *aip_json_str(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

aiplat_status aip_json_add_str(aip_model_base *b, aip_err *err, json_t *obj,
                               const char *key, const char *value,
                               const char *what) {
  json_t *s = json_string(value);
  if (!s)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: %s is not valid UTF-8", b->component, what);
  if (json_object_set_new(obj, key, s) != 0)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    b->component);
  return AIPLAT_OK;
}

/* ---- asynchronous calls ---------------------------------------------------
 */

static void answer(aip_model_call *m) {
  aip_call_unbind(m->call);
  m->on_answer(m);
}

static void run_answer(aip_task *t) {
  char *m = (char *)t - offsetof(aip_model_call, task);
  answer((aip_model_call *)(void *)m);
}

/* One of the two halves (the request ended; the starter tied it to the
 * aiplat_call) is done; the second one lets the answer run, on the loop
 * thread. */
static void arrive(aip_model_call *m) {
  if (atomic_fetch_sub(&m->pending, 1) != 1) return;
  if (aip_loop_on_thread() || aip_loop_post(&m->task) != AIPLAT_OK)
    answer(m); /* the loop ran the request, so a post cannot fail */
}

static void on_request_done(aiplat_status st, aip_http_resp *resp, aip_err *err,
                            void *ud) {
  aip_model_call *m = ud;
  aip_http_resp_free(&m->resp);
  m->resp = *resp;
  memset(resp, 0, sizeof *resp);
  m->st = st;
  if (st != AIPLAT_OK && !(m->sink_st != AIPLAT_OK && st == m->sink_st)) {
    char msg[AIP_ERRMSG_MAX];
    aip_err_copy(err, msg, sizeof msg);
    aip_fail(&m->err, st, "%s", msg);
  }
  arrive(m);
}

/* The GenAI operation of a client kind, or NULL for servers that are not
 * model servers (Milvus, the pipeline engines). */
static const char *genai_operation(const char *component) {
  static const char *const ops[][2] = {{"embeddings", "embeddings"},
                                       {"reranker", "rerank"},
                                       {"stt", "transcription"},
                                       {"tts", "speech"}};
  for (size_t i = 0; component && i < sizeof ops / sizeof ops[0]; i++)
    if (strcmp(component, ops[i][0]) == 0) return ops[i][1];
  return NULL;
}

/* A GenAI span for the call, a child of the calling thread's current span
 * (none when tracing is off or nothing is traced). */
static struct aip_span *genai_begin(aip_model_base *b) {
  const char *op = genai_operation(b->component);
  if (!op || !aip_otel_enabled()) return NULL;
  char *model = aip_model_base_model(b);
  char *root = aip_http_root_url(b->http);
  aip_span *s = aip_otel_genai_begin(op, model, root);
  free(model);
  free(root);
  return s;
}

void aip_model_call_init(aip_model_call *m, aip_model_base *b,
                         aiplat_call *call, aip_model_answer_fn on_answer) {
  memset(m, 0, sizeof *m);
  m->base = b;
  m->call = call;
  m->on_answer = on_answer;
  aip_err_init(&m->err);
  atomic_init(&m->pending, 0);
  m->task.fn = run_answer;
  aip_model_obs_begin(&m->obs, b, NULL);
  m->span = genai_begin(b);
}

void aip_model_call_end(aip_model_call *m, aiplat_status st) {
  if (m->span) {
    aip_otel_genai_end(m->span, st, NULL, m->obs.in_tokens_n, m->obs.out_tokens_n, NULL, 0);
    m->span = NULL;
  }
  aip_model_obs_end(&m->obs, st);
}

void aip_model_call_destroy(aip_model_call *m) {
  /* a call that failed to start: counted as the failure it returned, or
   * not at all when it was refused before anything was sent */
  if (m->st != AIPLAT_OK)
    aip_model_obs_end(&m->obs, m->st);
  else
    aip_model_obs_abandon(&m->obs);
  aip_otel_end(m->span, m->st != AIPLAT_OK ? m->st : AIPLAT_ERR_CANCELLED);
  m->span = NULL;
  aip_http_resp_free(&m->resp);
  aip_err_destroy(&m->err);
}

/* The call ends before a request is sent: the answer runs on the loop
 * thread with @st (detail already in m->err). */
static aiplat_status end_unsent(aip_model_call *m, aip_err *err,
                                aiplat_status st) {
  aip_http_resp_free(&m->resp);
  memset(&m->resp, 0, sizeof m->resp);
  m->st = st;
  atomic_store(&m->pending, 1);
  aiplat_status post = aip_loop_post(&m->task);
  if (post != AIPLAT_OK)
    return aip_fail(err, post, "%s: the execution core is not running",
                    m->base->component);
  return AIPLAT_OK;
}

aiplat_status aip_model_call_start(aip_model_call *m, aip_err *err,
                                   const aip_http_req *req) {
  aip_http_req r = *req;
  int64_t d = aip_call_deadline_ms(m->call);
  if (d != 0 && (r.deadline_ms <= 0 || d < r.deadline_ms)) r.deadline_ms = d;
  m->sink_st = AIPLAT_OK;
  m->running = NULL;
  /* Nothing is sent for a call already over (a request would still get a
   * moment on the wire otherwise). */
  if (aiplat_call_cancelled(m->call))
    return end_unsent(m, err,
                      aip_fail(&m->err, AIPLAT_ERR_CANCELLED,
                               "%s: %s %s: cancelled before it was sent",
                               m->base->component, r.method, r.path));
  if (r.deadline_ms > 0 && r.deadline_ms <= aip_now_ms())
    return end_unsent(m, err,
                      aip_fail(&m->err, AIPLAT_ERR_TIMEOUT,
                               "%s: %s %s: timed out: the call's deadline "
                               "passed before it was sent",
                               m->base->component, r.method, r.path));
  atomic_store(&m->pending, 2);
  /* `running` is set before the request can make progress, for sinks */
  aip_otel_ctx prev = aip_otel_enter(m->span); /* its HTTP span is a child */
  aiplat_status st =
      aip_http_start(m->base->http, err, &r, on_request_done, m, &m->running);
  aip_otel_restore(prev);
  if (st != AIPLAT_OK) return m->st = st;
  aip_call_bind(m->call, m->running); /* takes the reference over */
  arrive(m);
  return AIPLAT_OK;
}

void aip_model_call_message(aip_model_call *m, aiplat_status st, char *buf,
                            size_t buflen) {
  if (!buf || !buflen) return;
  buf[0] = '\0';
  if (st != AIPLAT_OK) aip_err_copy(&m->err, buf, buflen);
}

aiplat_status aip_model_json_answer(aip_model_base *b, aip_err *err,
                                    const char *path, const aip_http_resp *resp,
                                    json_t **out) {
  *out = NULL;
  if (resp->body.len == 0)
    return aip_fail(err, AIPLAT_ERR_DECODE,
                    "%s: POST %s: HTTP %ld with an empty body", b->component,
                    path, resp->status);
  json_error_t je;
  *out = json_loadb(resp->body.data, resp->body.len, 0, &je);
  if (*out) return AIPLAT_OK;
  char start[81];
  aip_http_error_text(resp->body.data, resp->body.len, start, sizeof start);
  return aip_fail(err, AIPLAT_ERR_DECODE,
                  "%s: POST %s: the answer is not JSON (%s at byte %d): \"%s\"",
                  b->component, path, je.text, je.position, start);
}

aiplat_status aip_model_call_post_json(aip_model_call *m, aip_err *err,
                                       const char *path, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!text)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    m->base->component);
  aip_http_req req = {.method = "POST",
                      .path = path,
                      .content_type = "application/json",
                      .body = text,
                      .body_len = strlen(text),
                      .accept = "application/json",
                      .max_retries = -1};
  aiplat_status st = aip_model_call_start(m, err, &req);
  free(text);
  return st;
}

/* ---- the entry points every client kind offers --------------------------- */

static aiplat_status null_client(const char *kind) {
  return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "%s: NULL client", kind);
}

aiplat_status aip_model_api_set_url(aip_model_base *b, const char *kind,
                                    const char *url) {
  if (!b) return null_client(kind);
  return aip_http_set_url(b->http, &b->err, url);
}

aiplat_status aip_model_api_set_model(aip_model_base *b, const char *kind,
                                      const char *model) {
  if (!b) return null_client(kind);
  return aip_model_base_set_model(b, model);
}

aiplat_status aip_model_api_set_api_key(aip_model_base *b, const char *kind,
                                        const char *key) {
  if (!b) return null_client(kind);
  return aip_http_set_api_key(b->http, &b->err, key);
}

aiplat_status aip_model_api_set_knob(aip_model_base *b, const char *kind,
                                     aip_model_knob k, int64_t value) {
  if (!b) return null_client(kind);
  return aip_model_base_set(b, k, value);
}

aiplat_status aip_model_api_health(aip_model_base *b, const char *kind) {
  if (!b) return null_client(kind);
  return aip_http_health(b->http, &b->err);
}

void aip_model_api_cancel(aip_model_base *b) {
  if (b) aip_http_cancel(b->http);
}

aiplat_status aip_model_api_last_error(aip_model_base *b, char *buf,
                                       size_t buflen) {
  if (!b) {
    if (buf && buflen) buf[0] = '\0';
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return aip_err_copy(&b->err, buf, buflen);
}
