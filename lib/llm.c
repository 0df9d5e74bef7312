/* Chat completions client (aiplat/llm.h). */
#include "aiplat/llm.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "call_internal.h"
#include "model_common.h"
#include "model_parse.h"
#include "otel.h"
#include "sse.h"

#define LLM_EVENT_MAX ((size_t)1 << 20)

struct aiplat_llm {
  aip_model_base base;
  int32_t max_tokens; /* LLM_MAX_TOKENS */
  double temperature; /* LLM_TEMPERATURE */
};

struct aiplat_llm_request {
  aip_err err;
  json_t *messages;
  json_t *stop;
  char *model;
  int32_t max_tokens; /* 0: the client's */
  double temperature; /* < 0: the client's */
  double top_p;       /* < 0: none */
  bool has_seed;
  int64_t seed;
};

struct aiplat_llm_result {
  aip_buf text;
  char *finish_reason;
  char *model;
  int64_t prompt_tokens, completion_tokens, total_tokens;
};

/* ---- client -----------------------------------------------------------------
 */

AIPLAT_API aiplat_status aiplat_llm_create(aiplat_llm **out,
                                           aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL out");
  *out = NULL;
  aiplat_llm *c = calloc(1, sizeof *c);
  if (!c) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  aiplat_status st =
      aip_model_base_init(&c->base, "llm", cfg, "VLLM_URL", "LLM_API_KEY",
                          "LLM_MODEL", "LLM_TIMEOUT");
  if (st != AIPLAT_OK) {
    free(c);
    return st;
  }
  aiplat_config *own = NULL, *k = aip_model_cfg_begin(cfg, &own);
  int64_t n = 0;
  if (!k) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  } else if ((st = aiplat_config_get_int(k, "LLM_MAX_TOKENS", 1, 1000000,
                                         &n)) != AIPLAT_OK ||
             (st = aiplat_config_get_double(k, "LLM_TEMPERATURE", 0, 2,
                                            &c->temperature)) != AIPLAT_OK) {
    aip_model_cfg_fail(&c->base, k, st);
  }
  c->max_tokens = (int32_t)n;
  aip_model_cfg_end(own);
  if (st != AIPLAT_OK) {
    aiplat_llm_destroy(c);
    return st;
  }
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_llm_destroy(aiplat_llm *c) {
  if (!c) return;
  aip_model_base_destroy(&c->base);
  free(c);
}

/* ---- the entry points every client kind offers (lib/model_common.c) ---- */

AIPLAT_API aiplat_status aiplat_llm_set_url(aiplat_llm *c, const char *url) {
  return aip_model_api_set_url(c ? &c->base : NULL, "llm", url);
}

AIPLAT_API aiplat_status aiplat_llm_set_model(aiplat_llm *c, const char *model) {
  return aip_model_api_set_model(c ? &c->base : NULL, "llm", model);
}

AIPLAT_API aiplat_status aiplat_llm_set_api_key(aiplat_llm *c, const char *key) {
  return aip_model_api_set_api_key(c ? &c->base : NULL, "llm", key);
}

AIPLAT_API aiplat_status aiplat_llm_set_timeout_ms(aiplat_llm *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "llm", AIP_KNOB_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_llm_set_connect_timeout_ms(aiplat_llm *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "llm", AIP_KNOB_CONNECT_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_llm_set_max_retries(aiplat_llm *c, int retries) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "llm", AIP_KNOB_RETRIES, retries);
}

AIPLAT_API aiplat_status aiplat_llm_health(aiplat_llm *c) {
  return aip_model_api_health(c ? &c->base : NULL, "llm");
}

AIPLAT_API void aiplat_llm_cancel(aiplat_llm *c) { aip_model_api_cancel(c ? &c->base : NULL); }

AIPLAT_API aiplat_status aiplat_llm_last_error(aiplat_llm *c, char *buf, size_t buflen) {
  return aip_model_api_last_error(c ? &c->base : NULL, buf, buflen);
}

aip_model_base *aip_llm_base(aiplat_llm *c) { /* model_metrics.h */
  return c ? &c->base : NULL;
}

AIPLAT_API aiplat_status aiplat_llm_set_stream_idle_timeout_ms(aiplat_llm *c,
                                                               int64_t ms) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL client");
  return aip_model_base_set(&c->base, AIP_KNOB_IDLE_TIMEOUT, ms);
}

/* ---- request ----------------------------------------------------------------
 */

AIPLAT_API aiplat_status aiplat_llm_request_create(aiplat_llm_request **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL out");
  aiplat_llm_request *r = calloc(1, sizeof *r);
  if (!r || !(r->messages = json_array()) || !(r->stop = json_array())) {
    if (r) json_decref(r->messages);
    free(r);
    *out = NULL;
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  }
  aip_err_init(&r->err);
  r->temperature = -1;
  r->top_p = -1;
  *out = r;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_llm_request_destroy(aiplat_llm_request *r) {
  if (!r) return;
  json_decref(r->messages);
  json_decref(r->stop);
  free(r->model);
  aip_err_destroy(&r->err);
  free(r);
}

static bool valid_role(const char *role) {
  if (!role || !*role || strlen(role) > 32) return false;
  for (const char *p = role; *p; p++)
    if (!islower((unsigned char)*p) && *p != '_') return false;
  return true;
}

AIPLAT_API aiplat_status aiplat_llm_request_add_message(aiplat_llm_request *r,
                                                        const char *role,
                                                        const char *content) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  if (!valid_role(role))
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: role \"%.40s\" is not a lowercase word such as user",
                    role ? role : "(null)");
  if (!content)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL content");
  json_t *c = json_string(content);
  if (!c)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: message content is not valid UTF-8");
  json_t *m = json_pack("{s:s, s:o}", "role", role, "content", c);
  if (!m || json_array_append_new(r->messages, m) != 0)
    return aip_fail(&r->err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_llm_request_clear_messages(aiplat_llm_request *r) {
  if (r) json_array_clear(r->messages);
}

AIPLAT_API size_t
aiplat_llm_request_message_count(const aiplat_llm_request *r) {
  return r ? json_array_size(r->messages) : 0;
}

AIPLAT_API aiplat_status aiplat_llm_request_set_model(aiplat_llm_request *r,
                                                      const char *model) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  if (model && !*model)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: empty model name");
  if (!aip_str_replace(&r->model, model))
    return aip_fail(&r->err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status
aiplat_llm_request_set_max_tokens(aiplat_llm_request *r, int32_t n) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  if (n < 0)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: max_tokens %d is negative", (int)n);
  r->max_tokens = n;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status
aiplat_llm_request_set_temperature(aiplat_llm_request *r, double t) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  if (isnan(t) || t > 2)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: temperature must be in [0, 2]");
  r->temperature = t < 0 ? -1 : t;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_llm_request_set_top_p(aiplat_llm_request *r,
                                                      double p) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  if (isnan(p) || p == 0 || p > 1)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: top_p must be in (0, 1]");
  r->top_p = p < 0 ? -1 : p;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_llm_request_add_stop(aiplat_llm_request *r,
                                                     const char *stop) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  if (!stop || !*stop)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: empty stop sequence");
  json_t *s = json_string(stop);
  if (!s)
    return aip_fail(&r->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: stop sequence is not valid UTF-8");
  if (json_array_append_new(r->stop, s) != 0)
    return aip_fail(&r->err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_llm_request_set_seed(aiplat_llm_request *r,
                                                     int64_t seed) {
  if (!r)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL request");
  r->has_seed = true;
  r->seed = seed;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_llm_request_last_error(aiplat_llm_request *r,
                                                       char *buf,
                                                       size_t buflen) {
  if (!r) {
    if (buf && buflen) buf[0] = '\0';
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return aip_err_copy(&r->err, buf, buflen);
}

/* ---- result -----------------------------------------------------------------
 */

static aiplat_llm_result *result_new(void) {
  aiplat_llm_result *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (!aip_buf_reserve(&r->text, 0)) {
    free(r);
    return NULL;
  }
  r->prompt_tokens = r->completion_tokens = r->total_tokens = -1;
  return r;
}

AIPLAT_API void aiplat_llm_result_destroy(aiplat_llm_result *r) {
  if (!r) return;
  aip_buf_free(&r->text);
  free(r->finish_reason);
  free(r->model);
  free(r);
}

AIPLAT_API const char *aiplat_llm_result_text(const aiplat_llm_result *r) {
  return r && r->text.data ? r->text.data : "";
}
AIPLAT_API size_t aiplat_llm_result_text_len(const aiplat_llm_result *r) {
  return r ? r->text.len : 0;
}
AIPLAT_API const char *aiplat_llm_result_finish_reason(
    const aiplat_llm_result *r) {
  return r ? r->finish_reason : NULL;
}
AIPLAT_API const char *aiplat_llm_result_model(const aiplat_llm_result *r) {
  return r ? r->model : NULL;
}
AIPLAT_API int64_t aiplat_llm_result_prompt_tokens(const aiplat_llm_result *r) {
  return r ? r->prompt_tokens : -1;
}
AIPLAT_API int64_t
aiplat_llm_result_completion_tokens(const aiplat_llm_result *r) {
  return r ? r->completion_tokens : -1;
}
AIPLAT_API int64_t aiplat_llm_result_total_tokens(const aiplat_llm_result *r) {
  return r ? r->total_tokens : -1;
}

static void take_usage(aiplat_llm_result *r, json_t *usage) {
  if (!json_is_object(usage)) return;
  json_t *v;
  if (json_is_integer(v = json_object_get(usage, "prompt_tokens")))
    r->prompt_tokens = json_integer_value(v);
  if (json_is_integer(v = json_object_get(usage, "completion_tokens")))
    r->completion_tokens = json_integer_value(v);
  if (json_is_integer(v = json_object_get(usage, "total_tokens")))
    r->total_tokens = json_integer_value(v);
  if (r->total_tokens < 0 && r->prompt_tokens >= 0 && r->completion_tokens >= 0)
    r->total_tokens = r->prompt_tokens + r->completion_tokens;
}

static void take_string(char **dst, json_t *obj, const char *key) {
  const char *s = aip_json_str(obj, key);
  if (s) aip_str_replace(dst, s);
}

/* The choice with "index" 0, else the first one. */
static json_t *first_choice(json_t *root) {
  json_t *choices = json_object_get(root, "choices");
  if (!json_is_array(choices) || json_array_size(choices) == 0) return NULL;
  size_t i;
  json_t *ch;
  json_array_foreach(choices, i, ch) {
    json_t *idx = json_object_get(ch, "index");
    if (json_is_integer(idx) && json_integer_value(idx) == 0) return ch;
  }
  return json_array_get(choices, 0);
}

/* An error object in a 200 body or a stream event: {"error":...} or
 * vLLM's {"object":"error",...}. */
static bool is_error_body(json_t *root) {
  if (!json_is_object(root)) return false;
  const char *obj = aip_json_str(root, "object");
  if (obj && strcmp(obj, "error") == 0) return true;
  json_t *e = json_object_get(root, "error");
  return e && !json_is_null(e) && !json_object_get(root, "choices");
}

static aiplat_status body_error(aip_err *err, json_t *root, const char *where) {
  char msg[384];
  if (!aip_http_error_json(root, msg, sizeof msg))
    snprintf(msg, sizeof msg, "no message");
  long code = aip_http_error_code(root);
  aiplat_status st = code ? aip_http_status_for(code) : AIPLAT_ERR_SERVER;
  if (st == AIPLAT_OK) st = AIPLAT_ERR_SERVER;
  return aip_fail(err, st, "llm: %s: %s", where, msg);
}

/* ---- tracing ----------------------------------------------------------------
 */

/* A GenAI client span for a chat completion, the current span of the
 * calling thread while the HTTP call starts (so that it is the parent). */
static aip_span *llm_span(aiplat_llm *c, const aiplat_llm_request *r) {
  if (!aip_otel_enabled()) return NULL;
  pthread_mutex_lock(&c->base.mu);
  char *model = aip_strdup(r->model ? r->model : c->base.model);
  pthread_mutex_unlock(&c->base.mu);
  char *root = aip_http_root_url(c->base.http);
  aip_span *sp = aip_otel_genai_begin("chat", model, root);
  free(model);
  free(root);
  return sp;
}

static void llm_span_end(aip_span *sp, aiplat_status st,
                         const aiplat_llm_result *res, int64_t first_ns) {
  if (!sp) return;
  aip_otel_genai_end(sp, st, res ? res->model : NULL,
                     res ? res->prompt_tokens : -1,
                     res ? res->completion_tokens : -1,
                     res ? res->finish_reason : NULL, first_ns);
}

/* ---- building the body ------------------------------------------------------
 */

static json_t *build_body(aiplat_llm *c, const aiplat_llm_request *r,
                          bool stream, aiplat_status *st) {
  *st = AIPLAT_ERR_NO_MEMORY;
  char *model =
      r->model ? aip_strdup(r->model) : aip_model_base_model(&c->base);
  json_t *b = json_object();
  if (!model || !b) goto fail;
  double temp = r->temperature >= 0 ? r->temperature : c->temperature;
  int32_t max_tokens = r->max_tokens > 0 ? r->max_tokens : c->max_tokens;
  if (json_object_set_new(b, "model", json_string(model)) ||
      json_object_set(b, "messages", r->messages) ||
      json_object_set_new(b, "max_tokens", json_integer(max_tokens)) ||
      json_object_set_new(b, "temperature", json_real(temp)) ||
      json_object_set_new(b, "stream", json_boolean(stream)))
    goto fail;
  if (r->top_p > 0 && json_object_set_new(b, "top_p", json_real(r->top_p)))
    goto fail;
  if (json_array_size(r->stop) > 0 && json_object_set(b, "stop", r->stop))
    goto fail;
  if (r->has_seed && json_object_set_new(b, "seed", json_integer(r->seed)))
    goto fail;
  if (stream && json_object_set_new(b, "stream_options",
                                    json_pack("{s:b}", "include_usage", 1)))
    goto fail;
  free(model);
  *st = AIPLAT_OK;
  return b;
fail:
  free(model);
  json_decref(b);
  aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  return NULL;
}

static aiplat_status check_args(aiplat_llm *c, const aiplat_llm_request *r) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL client");
  if (!r)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: NULL request");
  if (json_array_size(r->messages) == 0)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: the request has no messages");
  return AIPLAT_OK;
}

/* ---- complete ---------------------------------------------------------------
 */

/* Fill @res from a chat.completion object. */
static aiplat_status parse_completion(aip_err *err, json_t *root,
                                      aiplat_llm_result *res) {
  if (is_error_body(root))
    return body_error(err, root, "the server answered an error");
  json_t *ch = first_choice(root);
  if (!ch)
    return aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "llm: the answer has no \"choices\"");
  json_t *msg = json_object_get(ch, "message");
  json_t *content = json_object_get(msg, "content");
  if (!json_is_object(msg) ||
      !(json_is_string(content) || json_is_null(content) || !content))
    return aip_fail(
        err, AIPLAT_ERR_PROTOCOL,
        "llm: choices[0].message.content is missing or not a string");
  aip_buf_reset(&res->text);
  if (json_is_string(content) &&
      !aip_buf_append(&res->text, json_string_value(content),
                      json_string_length(content)))
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  take_string(&res->finish_reason, ch, "finish_reason");
  take_string(&res->model, root, "model");
  take_usage(res, json_object_get(root, "usage"));
  return AIPLAT_OK;
}

aiplat_status aip_llm_parse_completion(aip_err *err, json_t *root,
                                       aiplat_llm_result **out) {
  *out = NULL;
  aiplat_llm_result *res = result_new();
  if (!res) return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  aiplat_status st = parse_completion(err, root, res);
  if (st == AIPLAT_OK)
    *out = res;
  else
    aiplat_llm_result_destroy(res);
  return st;
}

AIPLAT_API aiplat_status aiplat_llm_complete(aiplat_llm *c,
                                             const aiplat_llm_request *r,
                                             aiplat_llm_result **out) {
  if (out) *out = NULL;
  aiplat_status st = check_args(c, r);
  if (st != AIPLAT_OK) return st;
  if (!out)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT, "llm: NULL out");
  json_t *body = build_body(c, r, false, &st);
  if (!body) return st;
  json_t *root = NULL;
  aip_span *sp = llm_span(c, r);
  aip_otel_ctx prev = aip_otel_enter(sp);
  aip_model_obs obs;
  aip_model_obs_begin(&obs, &c->base, r->model);
  st = aip_http_post_json(c->base.http, &c->base.err, "/v1/chat/completions",
                          body, &root, NULL);
  aip_otel_restore(prev);
  json_decref(body);
  if (st == AIPLAT_OK) st = aip_llm_parse_completion(&c->base.err, root, out);
  llm_span_end(sp, st, *out, 0);
  aip_model_obs_end_llm(&obs, st, *out);
  json_decref(root);
  return st;
}

/* ---- stream -----------------------------------------------------------------
 */

typedef struct stream_ctx {
  aip_err *err;
  aiplat_llm_result *res;
  aiplat_llm_token_fn fn;
  void *ud;
  aip_sse *sse;
  aiplat_status st; /* why the event handler stopped the stream */
  bool done;        /* [DONE] seen */
  bool json_mode;   /* the server answered one JSON document, not SSE */
  bool started;     /* first non-blank byte seen */
  aip_buf json;     /* the JSON document in json_mode */
  aip_span *span;   /* GenAI span, NULL when not traced */
  int64_t first_ns; /* time to the first piece of text */
  aip_model_obs obs;
} stream_ctx;

/* The whole type: "message\0x" is another type than "message". */
static bool type_is(const aip_sse_event *ev, const char *name) {
  size_t n = strlen(name);
  return ev->type_len == n && memcmp(ev->type, name, n) == 0;
}

static bool on_event(const aip_sse_event *ev, void *ud) {
  stream_ctx *s = ud;
  if (s->done) return true; /* ignore anything after [DONE] */
  bool error_event = type_is(ev, "error");
  if (!error_event && !type_is(ev, "message")) return true; /* ping, ... */
  if (!error_event && ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
    s->done = true;
    return true;
  }
  json_error_t je;
  json_t *root = json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, &je);
  if (!root) {
    if (error_event) { /* an error event with plain text */
      char msg[384];
      aip_http_error_text(ev->data, ev->data_len, msg, sizeof msg);
      s->st = aip_fail(s->err, AIPLAT_ERR_SERVER,
                       "llm: error in the stream: %s", msg);
    } else {
      s->st = aip_fail(s->err, AIPLAT_ERR_DECODE,
                       "llm: a stream event is not JSON (%s): \"%.80s\"",
                       je.text, ev->data);
    }
    return false;
  }
  bool go_on = true;
  if (error_event || is_error_body(root)) {
    s->st = body_error(s->err, root, "error in the stream");
    go_on = false;
  } else if (!json_is_object(root)) {
    s->st = aip_fail(s->err, AIPLAT_ERR_PROTOCOL,
                     "llm: a stream event is not a JSON object: \"%.80s\"",
                     ev->data);
    go_on = false;
  } else {
    take_usage(s->res, json_object_get(root, "usage"));
    take_string(&s->res->model, root, "model");
    json_t *ch = first_choice(root);
    json_t *delta = json_object_get(ch, "delta");
    json_t *content = json_object_get(delta, "content");
    if (json_is_string(content) && json_string_length(content) > 0) {
      const char *t = json_string_value(content);
      size_t n = json_string_length(content);
      if (s->span && !s->first_ns) s->first_ns = aip_span_elapsed_ns(s->span);
      aip_model_obs_first(&s->obs);
      if (!aip_buf_append(&s->res->text, t, n)) {
        s->st = aip_fail(s->err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
        go_on = false;
      } else if (s->fn && !s->fn(t, n, s->ud)) {
        s->st = aip_fail(s->err, AIPLAT_ERR_CANCELLED,
                         "llm: the stream was stopped by the callback");
        go_on = false;
      }
    }
    if (ch) take_string(&s->res->finish_reason, ch, "finish_reason");
  }
  json_decref(root);
  return go_on;
}

static aiplat_status sse_rc_status(stream_ctx *s, aip_sse_rc rc) {
  switch (rc) {
    case AIP_SSE_OK:
      return AIPLAT_OK;
    case AIP_SSE_STOPPED:
      return s->st;
    case AIP_SSE_TOO_LARGE:
      return aip_fail(s->err, AIPLAT_ERR_TOO_LARGE,
                      "llm: one stream event is larger than %zu bytes",
                      LLM_EVENT_MAX);
    default:
      return aip_fail(s->err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  }
}

static aiplat_status on_body(const char *data, size_t len, void *ud) {
  stream_ctx *s = ud;
  if (!s->started) { /* a JSON document instead of an event stream? */
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\r' || data[i] == '\n' ||
                       data[i] == '\t'))
      i++;
    /* Blanks alone do not decide yet; they belong to an event stream (a
     * tab may begin a line) and mean nothing before a JSON document. */
    if (i == len) return sse_rc_status(s, aip_sse_feed(s->sse, data, len));
    s->started = true;
    s->json_mode = data[i] == '{';
  }
  if (s->json_mode)
    return aip_buf_append(&s->json, data, len)
               ? AIPLAT_OK
               : aip_fail(s->err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  return sse_rc_status(s, aip_sse_feed(s->sse, data, len));
}

/* The server ignored "stream": a whole completion (or an error) in JSON. */
static aiplat_status finish_json_mode(stream_ctx *s) {
  json_error_t je;
  json_t *root = json_loadb(s->json.data, s->json.len, 0, &je);
  if (!root)
    return aip_fail(s->err, AIPLAT_ERR_DECODE,
                    "llm: the answer is not JSON (%s)", je.text);
  aiplat_status st = parse_completion(s->err, root, s->res);
  json_decref(root);
  if (st == AIPLAT_OK && s->fn && s->res->text.len > 0 &&
      !s->fn(s->res->text.data, s->res->text.len, s->ud))
    st = aip_fail(s->err, AIPLAT_ERR_CANCELLED,
                  "llm: the stream was stopped by the callback");
  return st;
}

/* Set up @s; false without memory (release it all the same). */
static bool stream_begin(stream_ctx *s, aip_err *err, aiplat_llm_token_fn fn,
                         void *ud) {
  *s = (stream_ctx){.err = err, .fn = fn, .ud = ud, .st = AIPLAT_OK};
  s->res = result_new();
  s->sse = aip_sse_new(LLM_EVENT_MAX, on_event, s);
  return s->res && s->sse;
}

/* The whole body has arrived: finish it. */
static aiplat_status stream_finish(stream_ctx *s) {
  if (s->json_mode) return finish_json_mode(s);
  aiplat_status st = sse_rc_status(s, aip_sse_finish(s->sse));
  if (st == AIPLAT_OK && !s->done && !s->res->finish_reason)
    st = aip_fail(s->err, AIPLAT_ERR_PROTOCOL,
                  "llm: the stream ended without [DONE] or a finish_reason "
                  "(%zu bytes of text kept)",
                  s->res->text.len);
  return st;
}

/* Hand the result to *@out (when wanted) and release the rest. */
static void stream_end(stream_ctx *s, aiplat_llm_result **out) {
  if (out) {
    *out = s->res;
    s->res = NULL;
  }
  aiplat_llm_result_destroy(s->res);
  aip_sse_free(s->sse);
  aip_buf_free(&s->json);
}

aiplat_status aip_llm_parse_stream(aip_err *err, const char *const *pieces,
                                   const size_t *lens, size_t n,
                                   aiplat_llm_token_fn fn, void *user_data,
                                   aiplat_llm_result **out) {
  stream_ctx s;
  aiplat_status st = AIPLAT_OK;
  if (!stream_begin(&s, err, fn, user_data))
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  for (size_t i = 0; st == AIPLAT_OK && i < n; i++)
    st = on_body(pieces[i], lens[i], &s);
  if (st == AIPLAT_OK) st = stream_finish(&s);
  stream_end(&s, out);
  return st;
}

AIPLAT_API aiplat_status aiplat_llm_stream(aiplat_llm *c,
                                           const aiplat_llm_request *r,
                                           aiplat_llm_token_fn fn,
                                           void *user_data,
                                           aiplat_llm_result **out) {
  if (out) *out = NULL;
  aiplat_status st = check_args(c, r);
  if (st != AIPLAT_OK) return st;
  json_t *body = build_body(c, r, true, &st);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!body) return st;
  stream_ctx s;
  if (!stream_begin(&s, &c->base.err, fn, user_data) || !text) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
    stream_end(&s, NULL);
    free(text);
    return st;
  }
  aip_http_req req = {.method = "POST",
                      .path = "/v1/chat/completions",
                      .content_type = "application/json",
                      .body = text,
                      .body_len = strlen(text),
                      .accept = "text/event-stream",
                      .stream = true,
                      .sink = on_body,
                      .sink_ud = &s,
                      .max_retries = -1};
  aip_http_resp resp = {0};
  s.span = llm_span(c, r);
  aip_otel_ctx prev = aip_otel_enter(s.span);
  aip_model_obs_begin(&s.obs, &c->base, r->model);
  st = aip_http_do(c->base.http, &c->base.err, &req, &resp);
  aip_otel_restore(prev);
  aip_http_resp_free(&resp);
  if (st == AIPLAT_OK) st = stream_finish(&s);
  llm_span_end(s.span, st, s.res, s.first_ns);
  aip_model_obs_end_llm(&s.obs, st, s.res);
  stream_end(&s, out);
  free(text);
  return st;
}

/* ---- asynchronous forms --------------------------------------------------
 */

typedef struct async_llm {
  stream_ctx s;
  aip_err err;
  aiplat_llm_done_fn done;
  void *ud;
  aiplat_call *call;
} async_llm;

static void async_llm_free(async_llm *a) {
  stream_end(&a->s, NULL);
  aip_err_destroy(&a->err);
  free(a);
}

/* On the loop thread: finish the answer as the blocking form does. */
static void async_llm_done(aiplat_status st, aip_http_resp *resp, aip_err *err,
                           void *ud) {
  (void)resp;
  async_llm *a = ud;
  stream_ctx *s = &a->s;
  char msg[AIP_ERRMSG_MAX] = "";
  if (st == AIPLAT_OK) {
    st = stream_finish(s);
    if (st != AIPLAT_OK) aip_err_copy(s->err, msg, sizeof msg);
  } else if (s->st != AIPLAT_OK && st == s->st) {
    aip_err_copy(s->err, msg, sizeof msg); /* our own sink stopped it */
  } else {
    aip_err_copy(err, msg, sizeof msg);
  }
  aiplat_llm_result *res = NULL;
  llm_span_end(s->span, st, s->res, s->first_ns);
  aip_model_obs_end_llm(&s->obs, st, s->res);
  stream_end(s, &res);
  a->done(st, msg, res, a->ud);
  aip_err_destroy(&a->err);
  free(a);
}

static aiplat_status start_async(aiplat_llm *c, const aiplat_llm_request *r,
                                 bool stream, aiplat_call *call,
                                 aiplat_llm_token_fn fn,
                                 aiplat_llm_done_fn done, void *user_data) {
  aiplat_status st = check_args(c, r);
  if (st != AIPLAT_OK) return st;
  if (!done)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "llm: NULL completion callback");
  async_llm *a = calloc(1, sizeof *a);
  if (!a) return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  aip_err_init(&a->err);
  bool ready = stream_begin(&a->s, &a->err, fn, user_data);
  a->done = done;
  a->ud = user_data;
  a->call = call;
  json_t *body = build_body(c, r, stream, &st);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!body) {
    async_llm_free(a);
    return st;
  }
  if (!text || !ready) {
    free(text);
    async_llm_free(a);
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "llm: out of memory");
  }
  aip_http_req req = {.method = "POST",
                      .path = "/v1/chat/completions",
                      .content_type = "application/json",
                      .body = text,
                      .body_len = strlen(text),
                      .accept = stream ? "text/event-stream" : "application/json",
                      .stream = stream,
                      .sink = on_body,
                      .sink_ud = &a->s,
                      .max_retries = -1,
                      .deadline_ms = aip_call_deadline_ms(call),
                      .call = call};
  aip_span *sp = a->s.span = llm_span(c, r);
  aip_otel_ctx prev = aip_otel_enter(sp);
  aip_model_obs_begin(&a->s.obs, &c->base, r->model);
  st = aip_http_start(c->base.http, &c->base.err, &req, async_llm_done, a,
                      NULL);
  aip_otel_restore(prev);
  free(text);
  if (st != AIPLAT_OK) {
    llm_span_end(sp, st, NULL, 0);
    aip_model_obs_end(&a->s.obs, st);
    async_llm_free(a);
    return st;
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_llm_stream_async(aiplat_llm *c,
                                                 const aiplat_llm_request *r,
                                                 aiplat_call *call,
                                                 aiplat_llm_token_fn fn,
                                                 aiplat_llm_done_fn done,
                                                 void *user_data) {
  return start_async(c, r, true, call, fn, done, user_data);
}

AIPLAT_API aiplat_status aiplat_llm_complete_async(aiplat_llm *c,
                                                   const aiplat_llm_request *r,
                                                   aiplat_call *call,
                                                   aiplat_llm_done_fn done,
                                                   void *user_data) {
  return start_async(c, r, false, call, NULL, done, user_data);
}
