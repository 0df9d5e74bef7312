/* Retrieval for the chat pipeline, through the RAG API (aiplat/rag.h): the
 * question's passages and their numbered context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "config.h"
#include "model_metrics.h"

struct aip_chat_retriever {
  aiplat_embeddings *emb; /* also probed by the readiness check */
  aiplat_reranker *rr;    /* NULL without RERANKER_URL */
  aiplat_rag *rag;
};

aiplat_status aip_chat_retriever_create(aip_chat_retriever **out,
                                        aiplat_config *cfg) {
  aip_chat_retriever *r = calloc(1, sizeof *r);
  if (!r) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  aiplat_status st = aiplat_embeddings_create(&r->emb, cfg);
  if (!st && aiplat_config_is_set(cfg, "RERANKER_URL"))
    st = aiplat_reranker_create(&r->rr, cfg);
  if (!st) st = aiplat_rag_create_with(&r->rag, cfg, r->emb, r->rr);
  if (st) {
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
  aiplat_rag_destroy(r->rag);
  aiplat_reranker_destroy(r->rr);
  aiplat_embeddings_destroy(r->emb);
  free(r);
}

void aip_chat_attach_metrics(aiplat_llm *llm, aip_chat_retriever *r,
                             aiplat_metrics *m) {
  aip_model_metrics_attach(aip_llm_base(llm), m);
  if (r) aip_rag_attach_metrics(r->rag, m);
}

aiplat_status aip_chat_retriever_health(aip_chat_retriever *r) {
  return aiplat_embeddings_health(r->emb);
}

bool aip_chat_retriever_has_reranker(aip_chat_retriever *r) {
  return r->rr != NULL;
}

aiplat_status aip_chat_retriever_reranker_health(aip_chat_retriever *r) {
  return aiplat_reranker_health(r->rr);
}

void aip_chat_passages_free(aip_chat_passage *p, size_t n) {
  for (size_t i = 0; p && i < n; i++) {
    free(p[i].id);
    free(p[i].text);
    free(p[i].source);
  }
  free(p);
}

/* The passages and their context from query results (not destroyed). */
static aiplat_status convert(aiplat_rag_results *res, size_t budget,
                             aip_chat_passage **passages, size_t *n,
                             char **context) {
  char *ctx = NULL;
  aiplat_status st = aiplat_rag_results_context(res, budget, &ctx);
  if (st) return st; /* the detail is in the thread's record */
  size_t k = aiplat_rag_results_count(res);
  aip_chat_passage *p = calloc(k ? k : 1, sizeof *p);
  bool ok = p && (*context = strdup(ctx));
  for (size_t i = 0; ok && i < k; i++) {
    p[i].id = strdup(aiplat_rag_results_id(res, i));
    p[i].text = strdup(aiplat_rag_results_text(res, i));
    p[i].source = strdup(aiplat_rag_results_source(res, i));
    p[i].score = aiplat_rag_results_score(res, i);
    ok = p[i].id && p[i].text && p[i].source;
  }
  aiplat_free(ctx);
  if (!ok) {
    aip_chat_passages_free(p, k);
    free(*context);
    *context = NULL;
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "retrieval: out of memory");
  }
  *passages = p;
  *n = k;
  return AIPLAT_OK;
}

aiplat_status aip_chat_retrieve(aip_chat_retriever *r, const char *query,
                                int top_k, size_t budget,
                                aip_chat_passage **passages, size_t *n,
                                char **context) {
  *passages = NULL;
  *n = 0;
  *context = NULL;
  aiplat_rag_results *res = NULL;
  aiplat_status st =
      aiplat_rag_query_filtered(r->rag, query, (size_t)top_k, NULL, &res);
  if (st) {
    char why[AIP_ERRMSG_MAX];
    aiplat_rag_last_error(r->rag, why, sizeof why);
    return aip_fail(NULL, st, "%s", why);
  }
  st = convert(res, budget, passages, n, context);
  aiplat_rag_results_destroy(res);
  return st;
}

typedef struct retrieval {
  size_t budget;
  aip_chat_retrieved_fn done;
  void *ud;
} retrieval;

static void on_results(aiplat_status st, const char *message,
                       aiplat_rag_results *res, void *ud) {
  retrieval *x = ud;
  aip_chat_passage *p = NULL;
  size_t n = 0;
  char *context = NULL;
  char why[AIP_ERRMSG_MAX] = "";
  if (st) {
    snprintf(why, sizeof why, "%s", message);
  } else if ((st = convert(res, x->budget, &p, &n, &context))) {
    aiplat_error_last(why, sizeof why);
  }
  aiplat_rag_results_destroy(res);
  x->done(st, why, p, n, context, x->ud);
  free(x);
}

aiplat_status aip_chat_retrieve_async(aip_chat_retriever *r, const char *query,
                                      int top_k, size_t budget,
                                      aiplat_call *call,
                                      aip_chat_retrieved_fn done, void *ud) {
  retrieval *x = calloc(1, sizeof *x);
  if (!x) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "retrieval: out of memory");
  x->budget = budget;
  x->done = done;
  x->ud = ud;
  aiplat_status st = aiplat_rag_query_async(r->rag, query, (size_t)top_k, NULL,
                                            call, on_results, x);
  if (st) {
    char why[AIP_ERRMSG_MAX];
    aiplat_rag_last_error(r->rag, why, sizeof why);
    free(x);
    return aip_fail(NULL, st, "%s", why);
  }
  return AIPLAT_OK;
}
