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

AIP_MODEL_COMMON_API(reranker)

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
aiplat_status aip_reranker_parse(aip_err *err, json_t *root, size_t count,
                                 size_t top_n, aiplat_reranker_result **out) {
  *out = NULL;
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

static json_t *make_body(const char *model, const char *query,
                         const char *const *docs, size_t count, size_t top_n,
                         bool tei) {
  json_t *list = json_array();
  json_t *b = json_object();
  if (!list || !b) goto fail;
  for (size_t i = 0; i < count; i++) {
    json_t *s = docs[i] ? json_string(docs[i]) : NULL;
    if (!s || json_array_append_new(list, s)) goto fail;
  }
  json_t *q = json_string(query);
  if (!q || json_object_set_new(b, "query", q)) goto fail;
  if (json_object_set_new(b, tei ? "texts" : "documents", list)) {
    list = NULL;
    goto fail;
  }
  list = NULL;
  if (!tei) {
    if (json_object_set_new(b, "model", json_string(model))) goto fail;
    if (top_n &&
        json_object_set_new(b, "top_n", json_integer((json_int_t)top_n)))
      goto fail;
  }
  return b;
fail:
  json_decref(list);
  json_decref(b);
  return NULL;
}

/* One try at @path; *status gets the HTTP status (0 without an answer). */
static aiplat_status try_shape(aiplat_reranker *c, const char *path, bool tei,
                               const char *model, const char *query,
                               const char *const *docs, size_t count,
                               size_t top_n, aiplat_reranker_result **out,
                               long *status) {
  json_t *body = make_body(model, query, docs, count, top_n, tei);
  if (!body) {
    *status = 0;
    return aip_fail(
        &c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
        "reranker: the query or a document is NULL or not valid UTF-8");
  }
  json_t *root = NULL;
  aiplat_status st =
      aip_http_post_json(c->base.http, &c->base.err, path, body, &root, status);
  json_decref(body);
  if (st == AIPLAT_OK)
    st = aip_reranker_parse(&c->base.err, root, count, top_n, out);
  json_decref(root);
  return st;
}

AIPLAT_API aiplat_status aiplat_reranker_rerank(aiplat_reranker *c,
                                                const char *query,
                                                const char *const *documents,
                                                size_t count, size_t top_n,
                                                aiplat_reranker_result **out) {
  if (out) *out = NULL;
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "reranker: NULL client");
  if (!out || !query || !documents || count == 0)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "reranker: NULL query, no documents or NULL out");
  pthread_mutex_lock(&c->base.mu);
  aiplat_reranker_api api = c->api;
  int found = c->found;
  pthread_mutex_unlock(&c->base.mu);
  char *model = aip_model_base_model(&c->base);
  if (!model)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY,
                    "reranker: out of memory");
  aiplat_status st;
  long status = 0;
  if (api == AIPLAT_RERANKER_API_TEI || found == FOUND_TEI) {
    st = try_shape(c, "/rerank", true, model, query, documents, count, top_n,
                   out, &status);
    goto out;
  }
  if (found == FOUND_COHERE_ROOT) {
    st = try_shape(c, "/rerank", false, model, query, documents, count, top_n,
                   out, &status);
    goto out;
  }
  st = try_shape(c, "/v1/rerank", false, model, query, documents, count, top_n,
                 out, &status);
  if (st == AIPLAT_OK) found = FOUND_COHERE_V1;
  if (st == AIPLAT_OK || (status != 404 && status != 405) ||
      found != FOUND_NONE)
    goto out;
  if (api == AIPLAT_RERANKER_API_AUTO) { /* text-embeddings-inference? */
    st = try_shape(c, "/rerank", true, model, query, documents, count, top_n,
                   out, &status);
    if (st == AIPLAT_OK) {
      found = FOUND_TEI;
      goto out;
    }
    if (status != 422) goto out;
  }
  /* Cohere's shape without the /v1 prefix (Infinity's default routes). */
  char first[AIP_ERRMSG_MAX];
  aiplat_status first_st = aip_err_copy(&c->base.err, first, sizeof first);
  st = try_shape(c, "/rerank", false, model, query, documents, count, top_n,
                 out, &status);
  if (st == AIPLAT_OK) {
    found = FOUND_COHERE_ROOT;
  } else if (api == AIPLAT_RERANKER_API_AUTO && status >= 400 && status < 500) {
    st = aip_fail(&c->base.err, first_st, "%s",
                  first); /* the TEI try said more */
  }
out:
  if (st == AIPLAT_OK && found != FOUND_NONE) {
    pthread_mutex_lock(&c->base.mu);
    if (c->api == api) c->found = found;
    pthread_mutex_unlock(&c->base.mu);
  }
  free(model);
  return st;
}
