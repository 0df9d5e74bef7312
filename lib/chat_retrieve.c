/* Retrieval for the chat pipeline: embed the question, search the vector
 * store, fit the best passages into the context budget. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "utf8.h"
#include "vstore.h"

struct aip_chat_retriever {
  aiplat_embeddings *emb;
  aiplat_config *cfg; /* own copy of the settings the store needs */
  pthread_mutex_t mu;
  aip_vstore *vs; /* opened at first use */
};

static const char *const store_vars[] = {"VECTOR_STORE", "VECTOR_STORE_PATH", "MILVUS_HOST",
                                         "MILVUS_PORT", "MILVUS_COLLECTION", "MILVUS_DB",
                                         "MILVUS_TOKEN", "MILVUS_TLS"};

aiplat_status aip_chat_retriever_create(aip_chat_retriever **out, aiplat_config *cfg) {
  aip_chat_retriever *r = calloc(1, sizeof *r);
  if (!r) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  pthread_mutex_init(&r->mu, NULL);
  aiplat_status st = aiplat_embeddings_create(&r->emb, cfg);
  if (st == AIPLAT_OK) st = aiplat_config_create(&r->cfg);
  /* Copy the store's settings now: the caller's config may go away. */
  for (size_t i = 0; st == AIPLAT_OK && i < AIP_ARRAY_LEN(store_vars); i++) {
    if (!cfg || !aiplat_config_is_set(cfg, store_vars[i])) continue;
    const char *v = NULL;
    st = aiplat_config_get_string(cfg, store_vars[i], &v);
    if (st == AIPLAT_OK) st = aiplat_config_set(r->cfg, store_vars[i], v);
  }
  if (st != AIPLAT_OK) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    aip_chat_retriever_destroy(r);
    return aip_fail(NULL, st, "%s", why);
  }
  *out = r;
  return AIPLAT_OK;
}

void aip_chat_retriever_destroy(aip_chat_retriever *r) {
  if (!r) return;
  aip_vstore_close(r->vs);
  aiplat_embeddings_destroy(r->emb);
  aiplat_config_destroy(r->cfg);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

aiplat_status aip_chat_retriever_health(aip_chat_retriever *r) {
  return aiplat_embeddings_health(r->emb);
}

void aip_chat_passages_free(aip_chat_passage *p, size_t n) {
  for (size_t i = 0; p && i < n; i++) {
    free(p[i].id);
    free(p[i].text);
    free(p[i].source);
  }
  free(p);
}

static aiplat_status store(aip_chat_retriever *r, aip_vstore **out) {
  pthread_mutex_lock(&r->mu);
  aiplat_status st = AIPLAT_OK;
  if (!r->vs) st = aip_vstore_open_config(&r->vs, r->cfg, false);
  *out = r->vs;
  pthread_mutex_unlock(&r->mu);
  return st;
}

/* Bytes of s that fit in max bytes without cutting a UTF-8 sequence. */
static size_t fit_utf8(const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  size_t i = 0;
  while (i < max) {
    size_t l = aip_utf8_seq_len((const unsigned char *)s + i, len - i);
    if (l == 0 || i + l > max) break;
    i += l;
  }
  return i;
}

aiplat_status aip_chat_retrieve(aip_chat_retriever *r, const char *query, int top_k,
                                size_t budget, aip_chat_passage **passages, size_t *n,
                                char **context) {
  *passages = NULL;
  *n = 0;
  *context = NULL;
  aiplat_embeddings_result *er = NULL;
  aiplat_status st = aiplat_embeddings_embed(r->emb, &query, 1, &er);
  if (st != AIPLAT_OK) return st;
  aip_vstore *vs = NULL;
  aip_vhit *hits = NULL;
  size_t nhits = 0;
  st = store(r, &vs);
  if (st == AIPLAT_OK)
    st = aip_vstore_search(vs, aiplat_embeddings_result_vector(er, 0),
                           (uint32_t)aiplat_embeddings_result_dimension(er), (size_t)top_k,
                           NULL, &hits, &nhits);
  aiplat_embeddings_result_destroy(er);
  if (st != AIPLAT_OK) return st;
  aip_chat_passage *p = calloc(nhits ? nhits : 1, sizeof *p);
  aip_buf ctx = {0};
  size_t k = 0;
  bool ok = p != NULL;
  for (size_t i = 0; ok && i < nhits; i++) {
    size_t before = ctx.len;
    size_t tlen = strlen(hits[i].text);
    /* "[N] " + text + "\nSource: " + source + "\n\n" */
    size_t overhead = 16 + 9 + strlen(hits[i].source) + 2;
    if (before + overhead + 1 > budget) break;
    size_t room = budget - before - overhead;
    if (tlen > room && k > 0) break; /* whole passages after the first */
    size_t take = fit_utf8(hits[i].text, tlen, room);
    if (take == 0) break;
    ok = aip_buf_printf(&ctx, "[%zu] ", k + 1) && aip_buf_append(&ctx, hits[i].text, take) &&
         (!*hits[i].source || aip_buf_printf(&ctx, "\nSource: %s", hits[i].source)) &&
         aip_buf_puts(&ctx, "\n\n");
    if (!ok) break;
    p[k].id = strdup(hits[i].id);
    p[k].text = strndup(hits[i].text, take);
    p[k].source = strdup(hits[i].source);
    p[k].score = hits[i].score;
    k++;
    ok = p[k - 1].id && p[k - 1].text && p[k - 1].source;
  }
  free(hits);
  if (!ok) {
    aip_chat_passages_free(p, k);
    aip_buf_free(&ctx);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "retrieval: out of memory");
  }
  *passages = p;
  *n = k;
  *context = ctx.data ? aip_buf_steal(&ctx, NULL) : strdup("");
  return *context ? AIPLAT_OK : aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "retrieval: out of memory");
}
