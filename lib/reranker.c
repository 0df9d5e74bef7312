/* Reranker client (aiplat/reranker.h). */
#include "aiplat/reranker.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model_common.h"
#include "model_parse.h"

/* Where AUTO found the server (kept per client). */
enum { FOUND_NONE, FOUND_COHERE_V1, FOUND_TEI, FOUND_COHERE_ROOT };

struct aiplat_reranker {
  aip_model_base base;
  aiplat_reranker_api api; /* under base.mu */
  int found;
};

typedef struct ranked {
  size_t index;
  double score;
} ranked;

struct aiplat_reranker_result {
  size_t count;
  ranked *items;
};

AIPLAT_API aiplat_status aiplat_reranker_create(aiplat_reranker **out,
                                                aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "reranker: NULL out");
  *out = NULL;
  aiplat_reranker *c = calloc(1, sizeof *c);
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "reranker: out of memory");
  aiplat_status st =
      aip_model_base_init(&c->base, "reranker", cfg, "RERANKER_URL",
                          "RERANKER_API_KEY", "RERANKER_MODEL", NULL);
  if (st != AIPLAT_OK) {
    free(c);
    return st;
  }
  aiplat_config *own = NULL, *k = aip_model_cfg_begin(cfg, &own);
  const char *api = NULL;
  if (!k) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "reranker: out of memory");
  } else if ((st = aiplat_config_get_string(k, "RERANKER_API", &api)) !=
             AIPLAT_OK) {
    aip_model_cfg_fail(&c->base, k, st);
  } else if (!api || aip_str_ieq(api, "auto")) {
    c->api = AIPLAT_RERANKER_API_AUTO;
  } else if (aip_str_ieq(api, "cohere")) {
    c->api = AIPLAT_RERANKER_API_COHERE;
  } else if (aip_str_ieq(api, "tei")) {
    c->api = AIPLAT_RERANKER_API_TEI;
  } else {
    st = aip_fail(&c->base.err, AIPLAT_ERR_CONFIG,
                  "reranker: RERANKER_API=\"%.40s\" is not auto, cohere or tei",
                  api);
  }
  aip_model_cfg_end(own);
  if (st != AIPLAT_OK) {
    aiplat_reranker_destroy(c);
    return st;
  }
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_reranker_destroy(aiplat_reranker *c) {
  if (!c) return;
  aip_model_base_destroy(&c->base);
  free(c);
}

/* ---- the entry points every client kind offers (lib/model_common.c) ---- */

AIPLAT_API aiplat_status aiplat_reranker_set_url(aiplat_reranker *c, const char *url) {
  return aip_model_api_set_url(c ? &c->base : NULL, "reranker", url);
}

AIPLAT_API aiplat_status aiplat_reranker_set_model(aiplat_reranker *c, const char *model) {
  return aip_model_api_set_model(c ? &c->base : NULL, "reranker", model);
}

AIPLAT_API aiplat_status aiplat_reranker_set_api_key(aiplat_reranker *c, const char *key) {
  return aip_model_api_set_api_key(c ? &c->base : NULL, "reranker", key);
}

AIPLAT_API aiplat_status aiplat_reranker_set_timeout_ms(aiplat_reranker *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "reranker", AIP_KNOB_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_reranker_set_connect_timeout_ms(aiplat_reranker *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "reranker", AIP_KNOB_CONNECT_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_reranker_set_max_retries(aiplat_reranker *c, int retries) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "reranker", AIP_KNOB_RETRIES, retries);
}

AIPLAT_API aiplat_status aiplat_reranker_health(aiplat_reranker *c) {
  return aip_model_api_health(c ? &c->base : NULL, "reranker");
}

AIPLAT_API void aiplat_reranker_cancel(aiplat_reranker *c) { aip_model_api_cancel(c ? &c->base : NULL); }

AIPLAT_API aiplat_status aiplat_reranker_last_error(aiplat_reranker *c, char *buf, size_t buflen) {
  return aip_model_api_last_error(c ? &c->base : NULL, buf, buflen);
}

aip_model_base *aip_reranker_base(aiplat_reranker *c) { /* model_metrics.h */
  return c ? &c->base : NULL;
}

AIPLAT_API aiplat_status aiplat_reranker_set_api(aiplat_reranker *c,
                                                 aiplat_reranker_api api) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "reranker: NULL client");
  if (api != AIPLAT_RERANKER_API_AUTO && api != AIPLAT_RERANKER_API_COHERE &&
      api != AIPLAT_RERANKER_API_TEI)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "reranker: unknown API %d", (int)api);
  pthread_mutex_lock(&c->base.mu);
  c->api = api;
  c->found = FOUND_NONE;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_reranker_api aiplat_reranker_get_api(aiplat_reranker *c) {
  if (!c) return AIPLAT_RERANKER_API_AUTO;
  pthread_mutex_lock(&c->base.mu);
  aiplat_reranker_api api = c->api;
  if (api == AIPLAT_RERANKER_API_AUTO && c->found != FOUND_NONE)
    api = c->found == FOUND_TEI ? AIPLAT_RERANKER_API_TEI
                                : AIPLAT_RERANKER_API_COHERE;
  pthread_mutex_unlock(&c->base.mu);
  return api;
}

/* ---- result -----------------------------------------------------------------
 */

AIPLAT_API void aiplat_reranker_result_destroy(aiplat_reranker_result *r) {
  if (!r) return;
  free(r->items);
  free(r);
}
AIPLAT_API size_t
aiplat_reranker_result_count(const aiplat_reranker_result *r) {
  return r ? r->count : 0;
}
AIPLAT_API size_t aiplat_reranker_result_index(const aiplat_reranker_result *r,
                                               size_t i) {
  return r && i < r->count ? r->items[i].index : SIZE_MAX;
}
AIPLAT_API double aiplat_reranker_result_score(const aiplat_reranker_result *r,
                                               size_t i) {
  return r && i < r->count ? r->items[i].score : 0;
}

static int by_score(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->score > y->score) return -1;
  if (x->score < y->score) return 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Either shape: [{"index","score"}] or {"results"|"data": [{"index",
 * "relevance_score"|"score"}]}. */
static aiplat_status parse(aip_err *err, json_t *root, size_t count,
                           size_t top_n, aiplat_reranker_result **out) {
  json_t *items = json_is_array(root) ? root : NULL;
  if (!items && json_is_object(root)) {
    items = json_object_get(root, "results");
    if (!json_is_array(items)) items = json_object_get(root, "data");
  }
  if (!json_is_array(items)) {
    char msg[300];
    if (json_is_object(root) && json_object_get(root, "error") &&
        aip_http_error_json(root, msg, sizeof msg))
      return aip_fail(err, AIPLAT_ERR_SERVER, "reranker: %s", msg);
    return aip_fail(
        err, AIPLAT_ERR_PROTOCOL,
        "reranker: the answer is neither a list nor has \"results\"");
  }
  size_t n = json_array_size(items);
  if (n > count)
    return aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "reranker: %zu results for %zu documents", n, count);
  aiplat_reranker_result *r = calloc(1, sizeof *r);
  bool *seen = calloc(count, sizeof *seen);
  aiplat_status st = AIPLAT_OK;
  if (!r || !seen || (n && !(r->items = calloc(n, sizeof *r->items)))) {
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "reranker: out of memory");
    goto out;
  }
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    json_t *idx = json_object_get(it, "index");
    json_t *score = json_object_get(it, "relevance_score");
    if (!score) score = json_object_get(it, "score");
    if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
        (size_t)json_integer_value(idx) >= count) {
      st = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "reranker: result %zu has no index in [0, %zu)", i, count);
      goto out;
    }
    size_t k = (size_t)json_integer_value(idx);
    if (seen[k]) {
      st = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "reranker: document %zu is scored twice", k);
      goto out;
    }
    if (!json_is_number(score)) {
      st = aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "reranker: result %zu has no relevance_score or score", i);
      goto out;
    }
    seen[k] = true;
    r->items[i].index = k;
    r->items[i].score = json_number_value(score);
  }
  if (n) qsort(r->items, n, sizeof *r->items, by_score);
  r->count = top_n && top_n < n ? top_n : n;
  *out = r;
  r = NULL;
out:
  aiplat_reranker_result_destroy(r);
  free(seen);
  return st;
}

/* The query and the documents as JSON, checked once for every try. */
typedef struct rr_input {
  json_t *query; /* a string */
  json_t *docs;  /* an array of strings */
  size_t count, top_n;
  char *model;
} rr_input;

static void input_free(rr_input *in) {
  json_decref(in->query);
  json_decref(in->docs);
  free(in->model);
}

static aiplat_status input_init(aiplat_reranker *c, aip_err *err, rr_input *in,
                                const char *query, const char *const *docs,
                                size_t count, size_t top_n) {
  in->count = count;
  in->top_n = top_n;
  in->query = json_string(query);
  in->docs = json_array();
  in->model = aip_model_base_model(&c->base);
  if (!in->docs || !in->model)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "reranker: out of memory");
  bool ok = in->query != NULL;
  for (size_t i = 0; ok && i < count; i++) {
    json_t *s = docs[i] ? json_string(docs[i]) : NULL;
    ok = s && json_array_append_new(in->docs, s) == 0;
  }
  if (!ok)
    return aip_fail(
        err, AIPLAT_ERR_INVALID_ARGUMENT,
        "reranker: the query or a document is NULL or not valid UTF-8");
  return AIPLAT_OK;
}

static json_t *make_body(const rr_input *in, bool tei) {
  json_t *b = json_object();
  if (!b || json_object_set(b, "query", in->query) ||
      json_object_set(b, tei ? "texts" : "documents", in->docs))
    goto fail;
  if (!tei) {
    if (json_object_set_new(b, "model", json_string(in->model))) goto fail;
    if (in->top_n &&
        json_object_set_new(b, "top_n", json_integer((json_int_t)in->top_n)))
      goto fail;
  }
  return b;
fail:
  json_decref(b);
  return NULL;
}

/* ---- which API: the tries of one call ---------------------------------------
 *
 * AUTO tries /v1/rerank, then on 404/405 /rerank with `texts` (TEI), then on
 * 422 /rerank with `documents` (Infinity without the /v1 prefix); what worked
 * is kept for the client's later calls. The blocking and the asynchronous
 * forms walk the same plan. */

enum {
  TRY_TEI_KNOWN,  /* TEI, set or found before */
  TRY_ROOT_KNOWN, /* Cohere's shape at /rerank, found before */
  TRY_V1,         /* Cohere's shape at /v1/rerank */
  TRY_TEI_PROBE,  /* after a 404/405 from /v1/rerank */
  TRY_ROOT_PROBE, /* after the TEI probe's 422 (or a 404 with COHERE) */
  TRY_DONE
};

typedef struct rr_plan {
  aiplat_reranker_api api; /* as the call started */
  int found;               /* what the client knew, then what worked */
  int next;                /* TRY_... */
  aiplat_status first_st;  /* the failure before the last probe */
  char first[AIP_ERRMSG_MAX];
} rr_plan;

static void plan_start(aiplat_reranker *c, rr_plan *p) {
  pthread_mutex_lock(&c->base.mu);
  p->api = c->api;
  p->found = c->found;
  pthread_mutex_unlock(&c->base.mu);
  p->first_st = AIPLAT_OK;
  p->first[0] = '\0';
  if (p->api == AIPLAT_RERANKER_API_TEI || p->found == FOUND_TEI)
    p->next = TRY_TEI_KNOWN;
  else if (p->found == FOUND_COHERE_ROOT)
    p->next = TRY_ROOT_KNOWN;
  else
    p->next = TRY_V1;
}

static const char *try_path(int t) {
  return t == TRY_V1 ? "/v1/rerank" : "/rerank";
}

static bool try_tei(int t) {
  return t == TRY_TEI_KNOWN || t == TRY_TEI_PROBE;
}

/* The try p->next ended with @st (detail in @err) and HTTP @status: choose
 * the next one (p->next), or TRY_DONE with the call's status in *@st. */
static void plan_after(rr_plan *p, aiplat_status *st, long status,
                       aip_err *err) {
  int t = p->next;
  p->next = TRY_DONE;
  switch (t) {
    case TRY_V1:
      if (*st == AIPLAT_OK) {
        p->found = FOUND_COHERE_V1;
      } else if ((status == 404 || status == 405) && p->found == FOUND_NONE) {
        if (p->api == AIPLAT_RERANKER_API_AUTO) {
          p->next = TRY_TEI_PROBE; /* text-embeddings-inference? */
        } else {
          p->first_st = aip_err_copy(err, p->first, sizeof p->first);
          p->next = TRY_ROOT_PROBE;
        }
      }
      break;
    case TRY_TEI_PROBE:
      if (*st == AIPLAT_OK) {
        p->found = FOUND_TEI;
      } else if (status == 422) {
        p->first_st = aip_err_copy(err, p->first, sizeof p->first);
        p->next = TRY_ROOT_PROBE;
      }
      break;
    case TRY_ROOT_PROBE:
      if (*st == AIPLAT_OK)
        p->found = FOUND_COHERE_ROOT;
      else if (p->api == AIPLAT_RERANKER_API_AUTO && status >= 400 &&
               status < 500)
        *st = aip_fail(err, p->first_st, "%s",
                       p->first); /* the TEI try said more */
      break;
    default: /* a known API: one try */
      break;
  }
}

/* Keep what worked for the client's later calls. */
static void plan_keep(aiplat_reranker *c, const rr_plan *p, aiplat_status st) {
  if (st != AIPLAT_OK || p->found == FOUND_NONE) return;
  pthread_mutex_lock(&c->base.mu);
  if (c->api == p->api) c->found = p->found;
  pthread_mutex_unlock(&c->base.mu);
}

/* ---- rerank -----------------------------------------------------------------
 */

/* One try; *status gets the HTTP status (0 without an answer). */
static aiplat_status try_shape(aiplat_reranker *c, const rr_input *in, int t,
                               aiplat_reranker_result **out, long *status) {
  *status = 0;
  json_t *body = make_body(in, try_tei(t));
  if (!body)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY,
                    "reranker: out of memory");
  json_t *root = NULL;
  aiplat_status st = aip_http_post_json(c->base.http, &c->base.err, try_path(t),
                                        body, &root, status);
  json_decref(body);
  if (st == AIPLAT_OK)
    st = parse(&c->base.err, root, in->count, in->top_n, out);
  json_decref(root);
  return st;
}

/* @out: the result's pointer (blocking) or the completion callback. */
static aiplat_status check_args(aiplat_reranker *c, const char *query,
                                const char *const *documents, size_t count,
                                bool have_out, const char *out) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "reranker: NULL client");
  if (!have_out || !query || !documents || count == 0)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "reranker: NULL query, no documents or NULL %s", out);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_reranker_rerank(aiplat_reranker *c,
                                                const char *query,
                                                const char *const *documents,
                                                size_t count, size_t top_n,
                                                aiplat_reranker_result **out) {
  if (out) *out = NULL;
  aiplat_status st = check_args(c, query, documents, count, out != NULL, "out");
  if (st != AIPLAT_OK) return st;
  rr_input in = {0};
  st = input_init(c, &c->base.err, &in, query, documents, count, top_n);
  aip_model_obs obs;
  aip_model_obs_begin(&obs, &c->base, NULL);
  if (st == AIPLAT_OK) {
    rr_plan p;
    plan_start(c, &p);
    while (p.next != TRY_DONE) {
      long status = 0;
      st = try_shape(c, &in, p.next, out, &status);
      plan_after(&p, &st, status, &c->base.err);
    }
    plan_keep(c, &p, st);
  }
  aip_model_obs_end(&obs, st);
  input_free(&in);
  return st;
}

/* ---- asynchronous form ------------------------------------------------------
 */

typedef struct rerank_async {
  aip_model_call m;
  aiplat_reranker *c;
  rr_input in;
  rr_plan p;
  aiplat_reranker_result *res;
  aiplat_reranker_done_fn done;
  void *ud;
} rerank_async;

static void rerank_async_free(rerank_async *a) {
  input_free(&a->in);
  aiplat_reranker_result_destroy(a->res);
  aip_model_call_destroy(&a->m);
  free(a);
}

static aiplat_status start_try(rerank_async *a, aip_err *err) {
  return aip_model_call_post_json(&a->m, err, try_path(a->p.next),
                                  make_body(&a->in, try_tei(a->p.next)));
}

/* On the loop thread: take a try's answer, make the next try or call
 * back. */
static void rerank_answer(aip_model_call *m) {
  rerank_async *a = (rerank_async *)(void *)m;
  aiplat_status st = m->st;
  if (st == AIPLAT_OK) {
    json_t *root = NULL;
    st = aip_model_json_answer(m->base, &m->err, try_path(a->p.next), &m->resp,
                               &root);
    if (st == AIPLAT_OK)
      st = parse(&m->err, root, a->in.count, a->in.top_n, &a->res);
    json_decref(root);
  }
  plan_after(&a->p, &st, m->resp.status, &m->err);
  if (a->p.next != TRY_DONE) {
    if ((st = start_try(a, &m->err)) == AIPLAT_OK) return;
  }
  plan_keep(a->c, &a->p, st);
  char msg[AIP_ERRMSG_MAX];
  aip_model_call_message(m, st, msg, sizeof msg);
  aiplat_reranker_result *res = st == AIPLAT_OK ? a->res : NULL;
  if (res) a->res = NULL;
  aip_model_call_end(m, st);
  a->done(st, msg, res, a->ud);
  rerank_async_free(a);
}

AIPLAT_API aiplat_status aiplat_reranker_rerank_async(
    aiplat_reranker *c, const char *query, const char *const *documents,
    size_t count, size_t top_n, aiplat_call *call, aiplat_reranker_done_fn done,
    void *user_data) {
  aiplat_status st = check_args(c, query, documents, count, done != NULL,
                                "completion callback");
  if (st != AIPLAT_OK) return st;
  rerank_async *a = calloc(1, sizeof *a);
  if (!a)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY,
                    "reranker: out of memory");
  aip_model_call_init(&a->m, &c->base, call, rerank_answer);
  a->c = c;
  a->done = done;
  a->ud = user_data;
  st = input_init(c, &c->base.err, &a->in, query, documents, count, top_n);
  if (st == AIPLAT_OK) {
    plan_start(c, &a->p);
    st = start_try(a, &c->base.err);
  }
  if (st != AIPLAT_OK) rerank_async_free(a);
  return st;
}

/* ---- the answer alone (fuzz targets) ------------------------------------- */

aiplat_status aip_reranker_parse(aip_err *err, json_t *root, size_t count,
                                 size_t top_n, aiplat_reranker_result **out) {
  *out = NULL;
  return parse(err, root, count, top_n, out);
}
