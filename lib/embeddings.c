/* Embeddings client (aiplat/embeddings.h). */
#include "aiplat/embeddings.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model_common.h"
#include "model_parse.h"

#define BATCH_MAX 65536

struct aiplat_embeddings {
  aip_model_base base;
  size_t expected_dim; /* under base.mu */
  size_t batch;
};

struct aiplat_embeddings_result {
  size_t count, dim;
  float *data;
  int64_t prompt_tokens;
};

AIPLAT_API aiplat_status aiplat_embeddings_create(aiplat_embeddings **out,
                                                  aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "embeddings: NULL out");
  *out = NULL;
  aiplat_embeddings *c = calloc(1, sizeof *c);
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "embeddings: out of memory");
  aiplat_status st =
      aip_model_base_init(&c->base, "embeddings", cfg, "EMBEDDINGS_URL",
                          "EMBEDDINGS_API_KEY", "EMBEDDINGS_MODEL", NULL);
  if (st != AIPLAT_OK) {
    free(c);
    return st;
  }
  aiplat_config *own = NULL, *k = aip_model_cfg_begin(cfg, &own);
  int64_t dim = 0, batch = 0;
  if (!k) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "embeddings: out of memory");
  } else if ((st = aiplat_config_get_int(k, "EMBEDDINGS_DIMENSION", 0, 1 << 20,
                                         &dim)) != AIPLAT_OK ||
             (st = aiplat_config_get_int(k, "EMBEDDINGS_BATCH_SIZE", 1,
                                         BATCH_MAX, &batch)) != AIPLAT_OK) {
    aip_model_cfg_fail(&c->base, k, st);
  }
  aip_model_cfg_end(own);
  c->expected_dim = (size_t)dim;
  c->batch = (size_t)batch;
  if (st != AIPLAT_OK) {
    aiplat_embeddings_destroy(c);
    return st;
  }
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_embeddings_destroy(aiplat_embeddings *c) {
  if (!c) return;
  aip_model_base_destroy(&c->base);
  free(c);
}

/* ---- the entry points every client kind offers (lib/model_common.c) ---- */

AIPLAT_API aiplat_status aiplat_embeddings_set_url(aiplat_embeddings *c, const char *url) {
  return aip_model_api_set_url(c ? &c->base : NULL, "embeddings", url);
}

AIPLAT_API aiplat_status aiplat_embeddings_set_model(aiplat_embeddings *c, const char *model) {
  return aip_model_api_set_model(c ? &c->base : NULL, "embeddings", model);
}

AIPLAT_API aiplat_status aiplat_embeddings_set_api_key(aiplat_embeddings *c, const char *key) {
  return aip_model_api_set_api_key(c ? &c->base : NULL, "embeddings", key);
}

AIPLAT_API aiplat_status aiplat_embeddings_set_timeout_ms(aiplat_embeddings *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "embeddings", AIP_KNOB_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_embeddings_set_connect_timeout_ms(aiplat_embeddings *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "embeddings", AIP_KNOB_CONNECT_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_embeddings_set_max_retries(aiplat_embeddings *c, int retries) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "embeddings", AIP_KNOB_RETRIES, retries);
}

AIPLAT_API aiplat_status aiplat_embeddings_health(aiplat_embeddings *c) {
  return aip_model_api_health(c ? &c->base : NULL, "embeddings");
}

AIPLAT_API void aiplat_embeddings_cancel(aiplat_embeddings *c) { aip_model_api_cancel(c ? &c->base : NULL); }

AIPLAT_API aiplat_status aiplat_embeddings_last_error(aiplat_embeddings *c, char *buf, size_t buflen) {
  return aip_model_api_last_error(c ? &c->base : NULL, buf, buflen);
}

aip_model_base *aip_embeddings_base(aiplat_embeddings *c) { /* model_metrics.h */
  return c ? &c->base : NULL;
}

AIPLAT_API aiplat_status
aiplat_embeddings_set_expected_dimension(aiplat_embeddings *c, size_t dim) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "embeddings: NULL client");
  pthread_mutex_lock(&c->base.mu);
  c->expected_dim = dim;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_embeddings_set_batch_size(aiplat_embeddings *c,
                                                          size_t n) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "embeddings: NULL client");
  if (n < 1 || n > BATCH_MAX)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "embeddings: batch size %zu is not in [1, %d]", n,
                    BATCH_MAX);
  pthread_mutex_lock(&c->base.mu);
  c->batch = n;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

/* ---- result -----------------------------------------------------------------
 */

AIPLAT_API void aiplat_embeddings_result_destroy(aiplat_embeddings_result *r) {
  if (!r) return;
  free(r->data);
  free(r);
}
AIPLAT_API size_t
aiplat_embeddings_result_count(const aiplat_embeddings_result *r) {
  return r ? r->count : 0;
}
AIPLAT_API size_t
aiplat_embeddings_result_dimension(const aiplat_embeddings_result *r) {
  return r ? r->dim : 0;
}
AIPLAT_API const float *aiplat_embeddings_result_vector(
    const aiplat_embeddings_result *r, size_t i) {
  return r && i < r->count ? r->data + i * r->dim : NULL;
}
AIPLAT_API const float *aiplat_embeddings_result_data(
    const aiplat_embeddings_result *r) {
  return r ? r->data : NULL;
}
AIPLAT_API int64_t
aiplat_embeddings_result_prompt_tokens(const aiplat_embeddings_result *r) {
  return r ? r->prompt_tokens : -1;
}

/* ---- decoding ---------------------------------------------------------------
 */

static int b64_value(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+' || ch == '-') return 62;
  if (ch == '/' || ch == '_') return 63;
  return -1;
}

/* base64 of little-endian float32s (what servers send for
 * encoding_format "base64", should one ignore our "float"). Returns the
 * number of floats, or 0 on malformed input; *@out malloc'ed. */
static size_t b64_floats(const char *s, size_t n, float **out) {
  *out = NULL;
  while (n && s[n - 1] == '=') n--;
  size_t bytes = n * 3 / 4;
  if (bytes == 0 || bytes % 4 != 0) return 0;
  /* zeroed although every byte is written below: clang-analyzer cannot
   * follow the bit counting */
  unsigned char *buf = calloc(bytes, 1);
  if (!buf) return 0;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) {
      free(buf);
      return 0;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o < bytes) buf[o++] = (unsigned char)(acc >> bits);
    }
  }
  size_t count = bytes / 4;
  float *f = malloc(count * sizeof *f);
  if (!f) {
    free(buf);
    return 0;
  }
  for (size_t i = 0; i < count; i++) {
    uint32_t u = (uint32_t)buf[4 * i] | (uint32_t)buf[4 * i + 1] << 8 |
                 (uint32_t)buf[4 * i + 2] << 16 |
                 (uint32_t)buf[4 * i + 3] << 24;
    memcpy(&f[i], &u, sizeof u);
  }
  free(buf);
  *out = f;
  return count;
}

typedef struct embed_job {
  aiplat_embeddings *c;
  aip_err *err; /* the handle's (blocking) or the call's own (async) */
  aiplat_embeddings_result *res; /* data grows as the dimension is learnt */
  size_t expected;               /* 0: any */
  bool *seen;                    /* per input */
} embed_job;

/* Store one vector for input @slot. */
static aiplat_status store(embed_job *j, size_t slot, const float *v,
                           size_t dim) {
  aiplat_embeddings_result *r = j->res;
  if (dim == 0)
    return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                    "embeddings: the server sent an empty vector for input %zu",
                    slot);
  if (j->expected && dim != j->expected)
    return aip_fail(
        j->err, AIPLAT_ERR_PROTOCOL,
        "embeddings: the server sent a vector of dimension %zu for input "
        "%zu; %zu is expected (EMBEDDINGS_DIMENSION)",
        dim, slot, j->expected);
  if (r->dim == 0) {
    r->dim = dim;
    if (r->count > SIZE_MAX / sizeof(float) / dim ||
        !(r->data = calloc(r->count * dim, sizeof(float))))
      return aip_fail(j->err, AIPLAT_ERR_NO_MEMORY,
                      "embeddings: out of memory");
  } else if (dim != r->dim) {
    return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                    "embeddings: vectors of different dimensions (%zu and %zu)",
                    r->dim, dim);
  }
  memcpy(r->data + slot * r->dim, v, dim * sizeof(float));
  j->seen[slot] = true;
  return AIPLAT_OK;
}

/* One item of "data": {"index": i, "embedding": [...] | "base64"}. */
static aiplat_status take_item(embed_job *j, json_t *item, size_t pos,
                               size_t first, size_t n) {
  json_t *idx = json_object_get(item, "index");
  size_t local = pos;
  if (idx) {
    if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
        (size_t)json_integer_value(idx) >= n)
      return aip_fail(
          j->err, AIPLAT_ERR_PROTOCOL,
          "embeddings: data[%zu].index is not an input position in [0, %zu)",
          pos, n);
    local = (size_t)json_integer_value(idx);
  }
  size_t slot = first + local;
  if (j->seen[slot])
    return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                    "embeddings: two vectors for input %zu", slot);
  json_t *emb = json_object_get(item, "embedding");
  float *v = NULL;
  size_t dim = 0;
  aiplat_status st;
  if (json_is_array(emb)) {
    dim = json_array_size(emb);
    if (dim && !(v = malloc(dim * sizeof *v)))
      return aip_fail(j->err, AIPLAT_ERR_NO_MEMORY,
                      "embeddings: out of memory");
    size_t k;
    json_t *x;
    json_array_foreach(emb, k, x) {
      if (!json_is_number(x)) {
        free(v);
        return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                        "embeddings: data[%zu].embedding[%zu] is not a number",
                        pos, k);
      }
      v[k] = (float)json_number_value(x);
    }
  } else if (json_is_string(emb)) {
    dim = b64_floats(json_string_value(emb), json_string_length(emb), &v);
    if (!dim)
      return aip_fail(
          j->err, AIPLAT_ERR_PROTOCOL,
          "embeddings: data[%zu].embedding is a string but not base64 floats",
          pos);
  } else {
    return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                    "embeddings: data[%zu].embedding is missing", pos);
  }
  st = store(j, slot, v, dim);
  free(v);
  return st;
}

/* The JSON strings of inputs [first, first + n) into *@out; the detail in
 * @err when one is NULL or not UTF-8. */
static aiplat_status inputs_json(aip_err *err, const char *const *texts,
                                 size_t first, size_t n, json_t **out) {
  json_t *input = *out = json_array();
  if (!input)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "embeddings: out of memory");
  for (size_t i = 0; i < n; i++) {
    json_t *s = texts[first + i] ? json_string(texts[first + i]) : NULL;
    aiplat_status st = AIPLAT_OK;
    if (!s)
      st = aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "embeddings: input %zu is NULL or not valid UTF-8",
                    first + i);
    else if (json_array_append_new(input, s) != 0)
      st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "embeddings: out of memory");
    if (st != AIPLAT_OK) {
      json_decref(input);
      *out = NULL;
      return st;
    }
  }
  return AIPLAT_OK;
}

/* The request body for one batch (takes @input over). */
static json_t *batch_body(aip_err *err, const char *model, json_t *input) {
  json_t *body = input ? json_pack("{s:s, s:o, s:s}", "model", model, "input",
                                   input, "encoding_format", "float")
                       : NULL;
  if (!body) aip_fail(err, AIPLAT_ERR_NO_MEMORY, "embeddings: out of memory");
  return body;
}

/* Take the answer to the batch of inputs [first, first + n). */
static aiplat_status take_answer(embed_job *j, json_t *root, size_t first,
                                 size_t n) {
  json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
  if (!json_is_array(data)) {
    char msg[300];
    if (json_is_object(root) && json_object_get(root, "error") &&
        aip_http_error_json(root, msg, sizeof msg)) /* an error inside a 200 */
      return aip_fail(j->err, AIPLAT_ERR_SERVER, "embeddings: %s", msg);
    return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                    "embeddings: the answer has no \"data\" list");
  }
  if (json_array_size(data) != n)
    return aip_fail(j->err, AIPLAT_ERR_PROTOCOL,
                    "embeddings: %zu vectors for %zu inputs",
                    json_array_size(data), n);
  size_t i;
  json_t *item;
  aiplat_status st;
  json_array_foreach(data, i, item) {
    if ((st = take_item(j, item, i, first, n)) != AIPLAT_OK) return st;
  }
  json_t *pt = json_object_get(json_object_get(root, "usage"), "prompt_tokens");
  if (json_is_integer(pt) && j->res->prompt_tokens >= -1)
    j->res->prompt_tokens =
        (j->res->prompt_tokens < 0 ? 0 : j->res->prompt_tokens) +
        json_integer_value(pt);
  return AIPLAT_OK;
}

/* Embed inputs [first, first + n). */
static aiplat_status embed_batch(embed_job *j, const char *model,
                                 const char *const *texts, size_t first,
                                 size_t n) {
  aiplat_embeddings *c = j->c;
  json_t *input = NULL;
  aiplat_status st = inputs_json(j->err, texts, first, n, &input);
  if (st != AIPLAT_OK) return st;
  json_t *body = batch_body(j->err, model, input);
  if (!body) return AIPLAT_ERR_NO_MEMORY;
  json_t *root = NULL;
  st = aip_http_post_json(c->base.http, j->err, "/v1/embeddings", body, &root,
                          NULL);
  json_decref(body);
  if (st == AIPLAT_OK) st = take_answer(j, root, first, n);
  json_decref(root);
  return st;
}

/* Settings and buffers of one call; false when out of memory. */
static bool job_init(embed_job *j, aiplat_embeddings *c, aip_err *err,
                     size_t count, size_t *batch) {
  j->c = c;
  j->err = err;
  pthread_mutex_lock(&c->base.mu);
  j->expected = c->expected_dim;
  *batch = c->batch;
  pthread_mutex_unlock(&c->base.mu);
  j->res = calloc(1, sizeof *j->res);
  j->seen = calloc(count, sizeof *j->seen);
  if (!j->res || !j->seen) return false;
  j->res->count = count;
  j->res->prompt_tokens = -1;
  return true;
}

static void job_free(embed_job *j) {
  aiplat_embeddings_result_destroy(j->res);
  free(j->seen);
}

/* @out: the result's pointer (blocking) or the completion callback. */
static aiplat_status check_args(aiplat_embeddings *c, const char *const *texts,
                                size_t count, bool have_out, const char *out) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "embeddings: NULL client");
  if (!have_out || !texts || count == 0)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "embeddings: no inputs (texts NULL or count 0) or NULL %s",
                    out);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status
aiplat_embeddings_embed(aiplat_embeddings *c, const char *const *texts,
                        size_t count, aiplat_embeddings_result **out) {
  if (out) *out = NULL;
  aiplat_status st = check_args(c, texts, count, out != NULL, "out");
  if (st != AIPLAT_OK) return st;
  embed_job j = {0};
  size_t batch = 1;
  char *model = aip_model_base_model(&c->base);
  if (!job_init(&j, c, &c->base.err, count, &batch) || !model) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY,
                  "embeddings: out of memory");
    goto out;
  }
  aip_model_obs obs;
  aip_model_obs_begin(&obs, &c->base, model);
  for (size_t first = 0; first < count && st == AIPLAT_OK; first += batch)
    st = embed_batch(&j, model, texts, first,
                     count - first < batch ? count - first : batch);
  aip_model_obs_tokens(&obs, j.res ? j.res->prompt_tokens : -1, -1);
  aip_model_obs_end(&obs, st);
  if (st == AIPLAT_OK) {
    *out = j.res;
    j.res = NULL;
  }
out:
  job_free(&j);
  free(model);
  return st;
}

/* ---- asynchronous form ------------------------------------------------------
 */

typedef struct embed_async {
  aip_model_call m;
  embed_job j;
  json_t *inputs; /* every input, checked before the first request */
  char *model;
  size_t count, batch;
  size_t first, n; /* the batch in flight */
  aiplat_embeddings_done_fn done;
  void *ud;
} embed_async;

static void embed_async_free(embed_async *a) {
  job_free(&a->j);
  json_decref(a->inputs);
  free(a->model);
  aip_model_call_destroy(&a->m);
  free(a);
}

/* Send the batch starting at a->first. */
static aiplat_status start_batch(embed_async *a, aip_err *err) {
  a->n = a->count - a->first < a->batch ? a->count - a->first : a->batch;
  json_t *input = json_array();
  for (size_t i = 0; input && i < a->n; i++)
    if (json_array_append(input, json_array_get(a->inputs, a->first + i))) {
      json_decref(input);
      input = NULL;
    }
  return aip_model_call_post_json(&a->m, err, "/v1/embeddings",
                                  batch_body(err, a->model, input));
}

/* On the loop thread: take a batch's answer, send the next one or call
 * back. */
static void embed_answer(aip_model_call *m) {
  embed_async *a = (embed_async *)(void *)m;
  aiplat_status st = m->st;
  if (st == AIPLAT_OK) {
    json_t *root = NULL;
    st = aip_model_json_answer(m->base, &m->err, "/v1/embeddings", &m->resp,
                               &root);
    if (st == AIPLAT_OK) st = take_answer(&a->j, root, a->first, a->n);
    json_decref(root);
  }
  if (st == AIPLAT_OK && a->first + a->n < a->count) {
    a->first += a->n;
    if ((st = start_batch(a, &m->err)) == AIPLAT_OK) return;
  }
  char msg[AIP_ERRMSG_MAX];
  aip_model_call_message(m, st, msg, sizeof msg);
  aiplat_embeddings_result *res = NULL;
  if (st == AIPLAT_OK) {
    res = a->j.res;
    a->j.res = NULL;
  }
  aip_model_obs_tokens(&m->obs, res ? res->prompt_tokens : -1, -1);
  aip_model_call_end(m, st);
  a->done(st, msg, res, a->ud);
  embed_async_free(a);
}

AIPLAT_API aiplat_status aiplat_embeddings_embed_async(
    aiplat_embeddings *c, const char *const *texts, size_t count,
    aiplat_call *call, aiplat_embeddings_done_fn done, void *user_data) {
  aiplat_status st =
      check_args(c, texts, count, done != NULL, "completion callback");
  if (st != AIPLAT_OK) return st;
  embed_async *a = calloc(1, sizeof *a);
  if (!a)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY,
                    "embeddings: out of memory");
  aip_model_call_init(&a->m, &c->base, call, embed_answer);
  a->count = count;
  a->done = done;
  a->ud = user_data;
  a->model = aip_model_base_model(&c->base);
  if (!job_init(&a->j, c, &a->m.err, count, &a->batch) || !a->model) {
    embed_async_free(a);
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY,
                    "embeddings: out of memory");
  }
  /* every input is checked (and copied) before anything is sent */
  if ((st = inputs_json(&c->base.err, texts, 0, count, &a->inputs)) !=
          AIPLAT_OK ||
      (st = start_batch(a, &c->base.err)) != AIPLAT_OK)
    embed_async_free(a);
  return st;
}

/* ---- the answer alone (fuzz targets) ------------------------------------- */

aiplat_status aip_embeddings_parse(aip_err *err, json_t *root, size_t count,
                                   size_t expected_dim,
                                   aiplat_embeddings_result **out) {
  *out = NULL;
  if (count == 0)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT, "embeddings: no inputs");
  embed_job j = {.err = err, .expected = expected_dim};
  j.res = calloc(1, sizeof *j.res);
  j.seen = calloc(count, sizeof *j.seen);
  aiplat_status st;
  if (!j.res || !j.seen) {
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "embeddings: out of memory");
  } else {
    j.res->count = count;
    j.res->prompt_tokens = -1;
    st = take_answer(&j, root, 0, count);
  }
  if (st == AIPLAT_OK) {
    *out = j.res;
    j.res = NULL;
  }
  job_free(&j);
  return st;
}
