/* Retrieval-augmented generation: query, context, ingest (aiplat/rag.h,
 * docs/decisions/0015-rag.md). */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chunk.h"
#include "loop.h"
#include "model_metrics.h"
#include "otel.h"
#include "rag_internal.h"
#include "utf8.h"
#include "vstore.h"

#define DEFAULT_CHUNK 800u
#define DEFAULT_OVERLAP 100u
#define MAX_K (AIP_VSTORE_MAX_LIMIT - 1u)
#define MAX_DOC (64u << 20)
#define MAX_QUESTION AIP_VSTORE_MAX_TEXT
/* Passages embedded and written per step of an ingest (bounds memory). */
#define INGEST_GROUP 1024u
/* Ids of a source read back to tell whether it changed. */
#define OLD_IDS_MAX (AIP_VSTORE_MAX_LIMIT - 1u)

typedef struct settings {
  size_t top_k, candidates, context_chars, chunk_chars, overlap;
  double min_score;
  bool rerank;
} settings;

struct aiplat_rag {
  aip_err err;
  pthread_mutex_t mu;        /* settings and the store handles */
  pthread_mutex_t ingest_mu; /* one ingest or delete at a time */
  aiplat_embeddings *emb;
  aiplat_reranker *rr;
  bool own_clients;
  char *model; /* EMBEDDINGS_MODEL: part of every passage id */
  bool milvus;
  char *path;     /* the local store's file */
  aip_vstore *rd; /* local: read-only (may be NULL until the file exists) */
  aip_vstore *wr; /* local: the writer, opened on the first write;
                     milvus: the one handle (rd == wr) */
  bool warned_missing;
  uint32_t ensured_dim;
  settings s;
  _Atomic(aip_retrieval_metrics *) metrics; /* model_metrics.h */
};

typedef struct item {
  const aip_vhit *h;
  double score, vscore;
} item;

struct aiplat_rag_results {
  aip_vhit *hits;
  item *items;
  size_t n;
  bool reranked;
};

/* ---- helpers ---------------------------------------------------------------
 */

#define NEED_RAG(rag)                                                         \
  do {                                                                        \
    if (!(rag))                                                               \
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL handle"); \
  } while (0)

static settings snapshot(aiplat_rag *rag) {
  pthread_mutex_lock(&rag->mu);
  settings s = rag->s;
  pthread_mutex_unlock(&rag->mu);
  return s;
}

/* Record a part's failure (the store's, the clients') in the handle. */
static aiplat_status part_fail(aiplat_rag *rag, aiplat_status st,
                               const char *doing, const char *detail) {
  return aip_fail(&rag->err, st, "rag: %s: %s", doing,
                  detail && *detail ? detail : aiplat_status_str(st));
}

static aiplat_status store_fail(aiplat_rag *rag, aip_vstore *vs,
                                aiplat_status st, const char *doing) {
  char msg[AIP_ERRMSG_MAX];
  aip_vstore_last_error(vs, msg, sizeof msg);
  return part_fail(rag, st, doing, msg);
}

static aiplat_status check_utf8(aiplat_rag *rag, const char *what,
                                const char *s, size_t len, size_t max) {
  if (len > max)
    return aip_fail(&rag->err, AIPLAT_ERR_TOO_LARGE,
                    "rag: %s is %zu bytes, over %zu", what, len, max);
  const char *nul = memchr(s, '\0', len);
  if (nul)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: %s holds a NUL byte at offset %zu", what,
                    (size_t)(nul - s));
  size_t bad = 0;
  if (!aip_utf8_check(s, len, &bad))
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: %s is not valid UTF-8 (offset %zu)", what, bad);
  return AIPLAT_OK;
}

/* ---- life cycle ------------------------------------------------------------
 */

static aiplat_status cfg_fail(aiplat_config *cfg, aiplat_status st) {
  char msg[AIP_ERRMSG_MAX];
  aiplat_config_last_error(cfg, msg, sizeof msg);
  return aip_fail(NULL, st, "rag: %s", msg);
}

static aiplat_status read_settings(aiplat_rag *rag, aiplat_config *cfg) {
  int64_t k, cand, ctx;
  double min;
  aiplat_status st;
  const char *model = NULL;
  if ((st = aiplat_config_get_int(cfg, "RAG_TOP_K", 1, MAX_K, &k)) ||
      (st = aiplat_config_get_int(cfg, "RAG_CANDIDATES", 1, MAX_K, &cand)) ||
      (st = aiplat_config_get_int(cfg, "RAG_CONTEXT_CHARS", AIP_RAG_MIN_CONTEXT,
                                  AIP_RAG_MAX_CONTEXT, &ctx)) ||
      (st = aiplat_config_get_double(cfg, "RAG_MIN_SCORE", -1e9, 1e9, &min)) ||
      (st = aiplat_config_get_string(cfg, "EMBEDDINGS_MODEL", &model)))
    return cfg_fail(cfg, st);
  if (!isfinite(min))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "RAG_MIN_SCORE: must be a finite number");
  rag->s =
      (settings){(size_t)k,       (size_t)cand, (size_t)ctx,    DEFAULT_CHUNK,
                 DEFAULT_OVERLAP, min,          rag->rr != NULL};
  if (!(rag->model = aip_strdup(model ? model : "")))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  return AIPLAT_OK;
}

static aiplat_status open_store(aiplat_rag *rag, aiplat_config *cfg) {
  const char *path = NULL;
  aiplat_status st = aip_vstore_choose(cfg, &rag->milvus, &path);
  if (st) return st;
  if (rag->milvus) {
    if ((st = aip_vstore_milvus_open(&rag->wr, cfg))) return st;
    rag->rd = rag->wr;
    return AIPLAT_OK;
  }
  if (!(rag->path = aip_strdup(path)))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  st = aip_vstore_local_open(&rag->rd, path, AIP_VLOCAL_READONLY);
  /* No file yet: fine, the first ingest creates it. */
  return st == AIPLAT_ERR_NOT_FOUND ? AIPLAT_OK : st;
}

static aiplat_status create(aiplat_rag **out, aiplat_config *cfg,
                            aiplat_embeddings *emb, aiplat_reranker *rr,
                            bool own) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL out");
  *out = NULL;
  if (!own && !emb)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: an embeddings client is required");
  aiplat_status st = aip_global_ref();
  if (st) return st;
  aiplat_rag *rag = calloc(1, sizeof *rag);
  if (!rag) {
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  }
  aip_err_init(&rag->err);
  pthread_mutex_init(&rag->mu, NULL);
  pthread_mutex_init(&rag->ingest_mu, NULL);
  rag->own_clients = own;
  rag->emb = emb;
  rag->rr = rr;
  aiplat_config *mine = NULL;
  if (!cfg && (st = aiplat_config_create(&mine))) goto fail;
  if (!cfg) cfg = mine;
  if (own) {
    if ((st = aiplat_embeddings_create(&rag->emb, cfg))) goto fail;
    const char *url = NULL;
    if ((st = aiplat_config_get_string(cfg, "RERANKER_URL", &url))) {
      st = cfg_fail(cfg, st);
      goto fail;
    }
    if (url && *url && (st = aiplat_reranker_create(&rag->rr, cfg))) goto fail;
  }
  if ((st = read_settings(rag, cfg)) || (st = open_store(rag, cfg))) goto fail;
  aiplat_config_destroy(mine);
  *out = rag;
  return AIPLAT_OK;
fail:
  aiplat_config_destroy(mine);
  /* Keep the part's message: destroy must not overwrite the record. */
  {
    char msg[AIP_ERRMSG_MAX];
    aiplat_error_last(msg, sizeof msg);
    aiplat_rag_destroy(rag);
    aip_fail(NULL, st, "%s", msg);
  }
  return st;
}

AIPLAT_API aiplat_status aiplat_rag_create(aiplat_rag **out,
                                           aiplat_config *cfg) {
  return create(out, cfg, NULL, NULL, true);
}

AIPLAT_API aiplat_status aiplat_rag_create_with(aiplat_rag **out,
                                                aiplat_config *cfg,
                                                aiplat_embeddings *embeddings,
                                                aiplat_reranker *reranker) {
  return create(out, cfg, embeddings, reranker, false);
}

AIPLAT_API void aiplat_rag_destroy(aiplat_rag *rag) {
  if (!rag) return;
  if (rag->wr && rag->wr != rag->rd) aip_vstore_close(rag->wr);
  aip_vstore_close(rag->rd);
  if (rag->own_clients) {
    aiplat_embeddings_destroy(rag->emb);
    aiplat_reranker_destroy(rag->rr);
  }
  free(rag->model);
  free(rag->path);
  aip_retrieval_metrics_free(atomic_load(&rag->metrics));
  pthread_mutex_destroy(&rag->ingest_mu);
  pthread_mutex_destroy(&rag->mu);
  aip_err_destroy(&rag->err);
  free(rag);
  aip_global_unref();
}

AIPLAT_API aiplat_status aiplat_rag_last_error(aiplat_rag *rag, char *buf,
                                               size_t buflen) {
  if (!rag) {
    if (buf && buflen) buf[0] = '\0';
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return aip_err_copy(&rag->err, buf, buflen);
}

AIPLAT_API const char *aiplat_rag_store_backend(const aiplat_rag *rag) {
  return !rag ? "" : rag->milvus ? "milvus" : "local";
}

AIPLAT_API bool aiplat_rag_reranks(aiplat_rag *rag) {
  return rag && rag->rr && snapshot(rag).rerank;
}

/* ---- settings --------------------------------------------------------------
 */

static aiplat_status set_size(aiplat_rag *rag, size_t *field, size_t v,
                              size_t lo, size_t hi, const char *what) {
  NEED_RAG(rag);
  if (v < lo || v > hi)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: %s %zu is outside %zu..%zu", what, v, lo, hi);
  pthread_mutex_lock(&rag->mu);
  *field = v;
  pthread_mutex_unlock(&rag->mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_rag_set_top_k(aiplat_rag *rag, size_t k) {
  return set_size(rag, rag ? &rag->s.top_k : NULL, k, 1, MAX_K, "top k");
}

AIPLAT_API aiplat_status aiplat_rag_set_candidates(aiplat_rag *rag, size_t n) {
  return set_size(rag, rag ? &rag->s.candidates : NULL, n, 1, MAX_K,
                  "candidates");
}

AIPLAT_API aiplat_status aiplat_rag_set_context_chars(aiplat_rag *rag,
                                                      size_t chars) {
  return set_size(rag, rag ? &rag->s.context_chars : NULL, chars,
                  AIP_RAG_MIN_CONTEXT, AIP_RAG_MAX_CONTEXT, "context budget");
}

AIPLAT_API aiplat_status aiplat_rag_set_min_score(aiplat_rag *rag, double min) {
  NEED_RAG(rag);
  if (!isfinite(min))
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: the minimum score must be a finite number");
  pthread_mutex_lock(&rag->mu);
  rag->s.min_score = min;
  pthread_mutex_unlock(&rag->mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_rag_set_chunking(aiplat_rag *rag,
                                                 size_t chunk_chars,
                                                 size_t overlap) {
  NEED_RAG(rag);
  if (chunk_chars < 32 || chunk_chars > AIP_VSTORE_MAX_TEXT ||
      overlap >= chunk_chars / 2)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: chunking %zu/%zu: the size must be 32..%u and the "
                    "overlap less than half of it",
                    chunk_chars, overlap, AIP_VSTORE_MAX_TEXT);
  pthread_mutex_lock(&rag->mu);
  rag->s.chunk_chars = chunk_chars;
  rag->s.overlap = overlap;
  pthread_mutex_unlock(&rag->mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_rag_set_rerank(aiplat_rag *rag, bool enabled) {
  NEED_RAG(rag);
  if (enabled && !rag->rr)
    return aip_fail(&rag->err, AIPLAT_ERR_STATE,
                    "rag: no reranker (set RERANKER_URL)");
  pthread_mutex_lock(&rag->mu);
  rag->s.rerank = enabled;
  pthread_mutex_unlock(&rag->mu);
  return AIPLAT_OK;
}

/* ---- the store handles -----------------------------------------------------
 */

/* The handle to read from: the writer once there is one; NULL (and OK)
 * while the local store's file does not exist. */
static aiplat_status reader(aiplat_rag *rag, aip_vstore **vs) {
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&rag->mu);
  if (!rag->wr && !rag->rd) {
    st = aip_vstore_local_open(&rag->rd, rag->path, AIP_VLOCAL_READONLY);
    if (st == AIPLAT_ERR_NOT_FOUND) {
      st = AIPLAT_OK;
      if (!rag->warned_missing) {
        rag->warned_missing = true;
        aip_log_kv(AIPLAT_LOG_WARNING,
                   "the local vector store does not exist yet: no passages "
                   "until something is ingested",
                   "path", rag->path, (const char *)NULL);
      }
    } else if (st) {
      char msg[AIP_ERRMSG_MAX];
      aiplat_error_last(msg, sizeof msg);
      st = part_fail(rag, st, "opening the store", msg);
    }
  }
  *vs = rag->wr ? rag->wr : rag->rd;
  pthread_mutex_unlock(&rag->mu);
  return st;
}

/* The handle to write with; the local store's writer is opened (and its
 * lock taken) the first time. */
static aiplat_status writer(aiplat_rag *rag, aip_vstore **vs) {
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&rag->mu);
  if (!rag->wr) {
    st = aip_vstore_local_open(&rag->wr, rag->path, 0);
    if (st) {
      char msg[AIP_ERRMSG_MAX];
      aiplat_error_last(msg, sizeof msg);
      st = part_fail(rag, st, "opening the store for writing", msg);
    }
  }
  *vs = rag->wr;
  pthread_mutex_unlock(&rag->mu);
  return st;
}

/* ---- query -----------------------------------------------------------------
 */

static aiplat_status embed(aiplat_rag *rag, const char *const *texts, size_t n,
                           const char *doing, aiplat_embeddings_result **res) {
  aiplat_status st = aiplat_embeddings_embed(rag->emb, texts, n, res);
  if (st) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_embeddings_last_error(rag->emb, msg, sizeof msg);
    return part_fail(rag, st, doing, msg);
  }
  size_t dim = aiplat_embeddings_result_dimension(*res);
  if (dim == 0 || dim > AIP_VSTORE_MAX_DIM) {
    aiplat_embeddings_result_destroy(*res);
    *res = NULL;
    return aip_fail(&rag->err, AIPLAT_ERR_PROTOCOL,
                    "rag: %s: the embeddings have %zu dimensions (1..%u)",
                    doing, dim, AIP_VSTORE_MAX_DIM);
  }
  return AIPLAT_OK;
}

static aiplat_rag_results *empty_results(void) {
  return calloc(1, sizeof(aiplat_rag_results));
}

/* One asynchronous query: embed the question, search the store, rerank;
 * each step starts from the end of the one before, on the loop thread. */
typedef struct rquery {
  aiplat_rag *rag;
  aiplat_call *call; /* the caller's, may be NULL */
  char *question, *source;
  size_t k, fetch;
  double min_score;
  bool rerank;
  aip_vstore *vs;
  aiplat_embeddings_result *er;
  aiplat_rag_results *r;
  size_t nhits;
  aiplat_rag_done_fn done;
  void *ud;
  aip_retrieval_metrics *metrics; /* when attached (model_metrics.h) */
  int64_t observed_from;
  aip_span *span, *step; /* "retrieve" and its current step (otel.h) */
  aip_task task; /* nothing to search: the end, posted to the loop */
} rquery;

/* Start step @name (a child of the query's span) and make it the thread's
 * current span while the step's call starts, so that the call's own spans
 * are its children; restore with aip_otel_restore(). */
static aip_otel_ctx step_enter(rquery *q, const char *name) {
  aip_otel_ctx prev = aip_otel_enter(q->span);
  q->step = aip_otel_step_begin(name);
  aip_otel_enter(q->step);
  return prev;
}

static void step_end(rquery *q, aiplat_status st) {
  aip_otel_end(q->step, st);
  q->step = NULL;
}

static void rquery_free(rquery *q) {
  step_end(q, AIPLAT_ERR_CANCELLED);
  aip_otel_end(q->span, AIPLAT_ERR_CANCELLED);
  aiplat_embeddings_result_destroy(q->er);
  aiplat_rag_results_destroy(q->r);
  free(q->question);
  free(q->source);
  free(q);
}

/* Call the user back with the results, or the failure of @doing. */
static void rquery_end(rquery *q, aiplat_status st, const char *doing,
                       const char *detail) {
  char msg[AIP_ERRMSG_MAX] = "";
  aiplat_rag_results *r = NULL;
  if (st)
    snprintf(msg, sizeof msg, "rag: %s: %s", doing,
             detail && *detail ? detail : aiplat_status_str(st));
  else {
    r = q->r;
    q->r = NULL;
  }
  aip_retrieval_observe(q->metrics, q->observed_from, st, r);
  step_end(q, st);
  if (q->span) aip_span_set_int(q->span, "aiplat.retrieval.hits", r ? (int64_t)r->n : 0);
  aip_otel_end(q->span, st);
  q->span = NULL;
  q->done(st, msg, r, q->ud);
  rquery_free(q);
}

static void rquery_posted(aip_task *t) {
  rquery *q = (rquery *)(void *)((char *)t - offsetof(rquery, task));
  rquery_end(q, AIPLAT_OK, NULL, NULL);
}

/* The hits in rank order: the reranker's (@rres) or the store's. */
static void rquery_select(rquery *q, aiplat_reranker_result *rres) {
  aiplat_rag_results *r = q->r;
  if (rres) {
    r->reranked = true;
    size_t nr = aiplat_reranker_result_count(rres);
    for (size_t i = 0; i < nr && r->n < q->k; i++) {
      size_t idx = aiplat_reranker_result_index(rres, i);
      double sc = aiplat_reranker_result_score(rres, i);
      if (idx >= q->nhits || !(sc >= q->min_score)) continue;
      r->items[r->n++] = (item){&r->hits[idx], sc, r->hits[idx].score};
    }
    return;
  }
  for (size_t i = 0; i < q->nhits && r->n < q->k; i++)
    if (r->hits[i].score >= q->min_score)
      r->items[r->n++] = (item){&r->hits[i], r->hits[i].score, r->hits[i].score};
}

static void on_reranked(aiplat_status st, const char *message,
                        aiplat_reranker_result *rres, void *ud) {
  rquery *q = ud;
  step_end(q, st);
  if (st) {
    rquery_end(q, st, "reranking", message);
    return;
  }
  rquery_select(q, rres);
  aiplat_reranker_result_destroy(rres);
  rquery_end(q, AIPLAT_OK, NULL, NULL);
}

static void on_searched(aiplat_status st, const char *message, aip_vhit *hits,
                        size_t n, void *ud) {
  rquery *q = ud;
  step_end(q, st);
  q->r->hits = hits;
  q->nhits = n;
  if (st) {
    rquery_end(q, st, "searching the store", message);
    return;
  }
  if (n && !(q->r->items = calloc(n, sizeof *q->r->items))) {
    rquery_end(q, AIPLAT_ERR_NO_MEMORY, "searching the store", "out of memory");
    return;
  }
  if (!q->rerank || !n) {
    rquery_select(q, NULL);
    rquery_end(q, AIPLAT_OK, NULL, NULL);
    return;
  }
  const char **docs = malloc(n * sizeof *docs);
  if (!docs) {
    rquery_end(q, AIPLAT_ERR_NO_MEMORY, "reranking", "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) docs[i] = hits[i].text;
  aip_otel_ctx prev = step_enter(q, "rerank");
  st = aiplat_reranker_rerank_async(q->rag->rr, q->question, docs, n, n,
                                    q->call, on_reranked, q);
  aip_otel_restore(prev);
  free(docs); /* copied by the reranker */
  if (st) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_reranker_last_error(q->rag->rr, msg, sizeof msg);
    rquery_end(q, st, "reranking", msg);
  }
}

static void on_embedded(aiplat_status st, const char *message,
                        aiplat_embeddings_result *er, void *ud) {
  rquery *q = ud;
  step_end(q, st);
  q->er = er;
  if (st) {
    rquery_end(q, st, "embedding the question", message);
    return;
  }
  size_t dim = aiplat_embeddings_result_dimension(er);
  if (dim == 0 || dim > AIP_VSTORE_MAX_DIM) {
    char msg[96];
    snprintf(msg, sizeof msg, "the embeddings have %zu dimensions (1..%u)",
             dim, AIP_VSTORE_MAX_DIM);
    rquery_end(q, AIPLAT_ERR_PROTOCOL, "embedding the question", msg);
    return;
  }
  aip_vfilter f = {AIP_VMATCH_EXACT, q->source};
  aip_otel_ctx prev = step_enter(q, "search");
  st = aip_vstore_search_async(q->vs, NULL, aiplat_embeddings_result_vector(er, 0),
                               (uint32_t)dim, q->fetch, q->source ? &f : NULL,
                               q->call, on_searched, q);
  aip_otel_restore(prev);
  if (st) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_error_last(msg, sizeof msg);
    rquery_end(q, st, "searching the store", msg);
  }
}

static aiplat_status query_start(aiplat_rag *rag, const char *question,
                                 size_t top_k, const char *source,
                                 aiplat_call *call, aiplat_rag_done_fn done,
                                 void *ud) {
  if (!question)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: no question");
  size_t qlen = strlen(question);
  aiplat_status st =
      check_utf8(rag, "the question", question, qlen, MAX_QUESTION);
  if (st) return st;
  size_t blank = strspn(question, " \t\r\n\f\v");
  if (blank == qlen)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: the question is empty");
  if (source && (st = check_utf8(rag, "the source filter", source,
                                 strlen(source), AIP_VSTORE_MAX_SOURCE)))
    return st;
  settings s = snapshot(rag);
  size_t k = top_k ? top_k : s.top_k;
  if (k > MAX_K)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: top k %zu is over %u", k, MAX_K);
  aip_vstore *vs = NULL;
  if ((st = reader(rag, &vs))) return st;
  rquery *q = calloc(1, sizeof *q);
  if (!q || !(q->question = aip_strdup(question)) ||
      (source && !(q->source = aip_strdup(source))) ||
      !(q->r = empty_results())) {
    if (q) rquery_free(q);
    return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  }
  q->rag = rag;
  q->call = call;
  q->k = k;
  q->rerank = s.rerank && rag->rr;
  q->fetch = q->rerank && s.candidates > k ? s.candidates : k;
  q->min_score = s.min_score;
  q->vs = vs;
  q->done = done;
  q->ud = ud;
  q->metrics = atomic_load(&rag->metrics);
  q->observed_from = aip_retrieval_start(q->metrics);
  q->span = aip_otel_step_begin("retrieve"); /* a child of the caller's span */
  if (!vs) { /* no store yet: nothing found, reported on the loop */
    q->task.fn = rquery_posted;
    if ((st = aip_loop_post(&q->task))) {
      rquery_free(q);
      return aip_fail(&rag->err, st, "rag: the execution core is not running");
    }
    return AIPLAT_OK;
  }
  const char *texts[1] = {q->question};
  aip_otel_ctx prev = step_enter(q, "embed");
  st = aiplat_embeddings_embed_async(rag->emb, texts, 1, call, on_embedded, q);
  aip_otel_restore(prev);
  if (st) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_embeddings_last_error(rag->emb, msg, sizeof msg);
    rquery_free(q);
    return part_fail(rag, st, "embedding the question", msg);
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_rag_query_async(aiplat_rag *rag,
                                                const char *question,
                                                size_t top_k,
                                                const char *source,
                                                aiplat_call *call,
                                                aiplat_rag_done_fn done,
                                                void *user_data) {
  NEED_RAG(rag);
  if (!done)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: no completion callback");
  return query_start(rag, question, top_k, source, call, done, user_data);
}

/* ---- the blocking query: the asynchronous one, waited for ---------------- */

typedef struct query_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool ended;
  aiplat_status st;
  char msg[AIP_ERRMSG_MAX];
  aiplat_rag_results *r;
} query_wait;

static void query_ended(aiplat_status st, const char *message,
                        aiplat_rag_results *r, void *ud) {
  query_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  w->st = st;
  snprintf(w->msg, sizeof w->msg, "%s", message);
  w->r = r;
  w->ended = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static aiplat_status query(aiplat_rag *rag, const char *question, size_t top_k,
                           const char *source, aiplat_rag_results **out) {
  NEED_RAG(rag);
  if (!out)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL out");
  *out = NULL;
  if (aip_loop_on_thread())
    return aip_fail(&rag->err, AIPLAT_ERR_INTERNAL,
                    "rag: a blocking query cannot run on the event loop "
                    "thread (use aiplat_rag_query_async)");
  query_wait w = {.ended = false};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  aiplat_status st =
      query_start(rag, question, top_k, source, NULL, query_ended, &w);
  if (!st) {
    pthread_mutex_lock(&w.mu);
    while (!w.ended) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    st = w.st;
    if (st)
      aip_fail(&rag->err, st, "%s", w.msg);
    else
      *out = w.r;
  }
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return st;
}

void aip_rag_attach_metrics(aiplat_rag *rag, aiplat_metrics *m) {
  if (rag)
    aip_retrieval_attach(&rag->metrics, rag->emb, rag->rr, m,
                         aiplat_rag_store_backend(rag));
}

AIPLAT_API aiplat_status aiplat_rag_query(aiplat_rag *rag, const char *question,
                                          aiplat_rag_results **out) {
  return query(rag, question, 0, NULL, out);
}

AIPLAT_API aiplat_status aiplat_rag_query_filtered(aiplat_rag *rag,
                                                   const char *question,
                                                   size_t top_k,
                                                   const char *source,
                                                   aiplat_rag_results **out) {
  return query(rag, question, top_k, source, out);
}

/* ---- results ---------------------------------------------------------------
 */

AIPLAT_API void aiplat_rag_results_destroy(aiplat_rag_results *r) {
  if (!r) return;
  free(r->hits);
  free(r->items);
  free(r);
}

AIPLAT_API size_t aiplat_rag_results_count(const aiplat_rag_results *r) {
  return r ? r->n : 0;
}

AIPLAT_API bool aiplat_rag_results_reranked(const aiplat_rag_results *r) {
  return r && r->reranked;
}

static const item *at(const aiplat_rag_results *r, size_t i) {
  return r && i < r->n ? &r->items[i] : NULL;
}

AIPLAT_API const char *aiplat_rag_results_id(const aiplat_rag_results *r,
                                             size_t i) {
  const item *it = at(r, i);
  return it ? it->h->id : NULL;
}

AIPLAT_API const char *aiplat_rag_results_text(const aiplat_rag_results *r,
                                               size_t i) {
  const item *it = at(r, i);
  return it ? it->h->text : NULL;
}

AIPLAT_API const char *aiplat_rag_results_source(const aiplat_rag_results *r,
                                                 size_t i) {
  const item *it = at(r, i);
  return it ? it->h->source : NULL;
}

AIPLAT_API const char *aiplat_rag_results_metadata(const aiplat_rag_results *r,
                                                   size_t i) {
  const item *it = at(r, i);
  return it ? it->h->metadata : NULL;
}

AIPLAT_API double aiplat_rag_results_score(const aiplat_rag_results *r,
                                           size_t i) {
  const item *it = at(r, i);
  return it ? it->score : 0.0;
}

AIPLAT_API double aiplat_rag_results_vector_score(const aiplat_rag_results *r,
                                                  size_t i) {
  const item *it = at(r, i);
  return it ? it->vscore : 0.0;
}

AIPLAT_API aiplat_status aiplat_rag_results_context(const aiplat_rag_results *r,
                                                    size_t max_chars,
                                                    char **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL out");
  *out = NULL;
  size_t n = r ? r->n : 0;
  aip_rag_passage *p = calloc(n ? n : 1, sizeof *p);
  if (!p) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  for (size_t i = 0; i < n; i++)
    p[i] = (aip_rag_passage){r->items[i].h->source, r->items[i].h->text};
  aiplat_status st = aip_rag_context_build(NULL, p, n, max_chars, out, NULL);
  free(p);
  return st;
}

AIPLAT_API aiplat_status aiplat_rag_context(aiplat_rag *rag,
                                            const char *question, char **out) {
  NEED_RAG(rag);
  if (!out)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL out");
  *out = NULL;
  aiplat_rag_results *r = NULL;
  aiplat_status st = aiplat_rag_query(rag, question, &r);
  if (st) return st;
  st = aiplat_rag_results_context(r, snapshot(rag).context_chars, out);
  aiplat_rag_results_destroy(r);
  if (st) return aip_fail(&rag->err, st, "rag: formatting the context");
  return AIPLAT_OK;
}

/* ---- ingest ----------------------------------------------------------------
 */

typedef struct piece {
  char id[33];
  char *text; /* NUL-terminated copy of the chunk */
} piece;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_pieces(piece *p, size_t n) {
  for (size_t i = 0; p && i < n; i++) free(p[i].text);
  free(p);
}

typedef struct keyed {
  const char *id;
  size_t pos;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* True when every non-blank line of the chunk is a markdown heading. */
static bool headings_only(const char *t, size_t len) {
  bool line_start = true, any = false;
  for (size_t i = 0; i < len; i++) {
    char c = t[i];
    if (c == '\n') {
      line_start = true;
    } else if (line_start && c != ' ' && c != '\t' && c != '\r') {
      if (c != '#') return false;
      any = true;
      line_start = false;
    }
  }
  return any;
}

/* A heading alone is a poor passage: it joins the chunk that follows it
 * (the span from the heading to that chunk's end) when that fits. */
static size_t merge_headings(const char *text, aip_chunk *ck, size_t n,
                             size_t max) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (i + 1 < n && headings_only(text + ck[i].offset, ck[i].len) &&
        ck[i + 1].offset >= ck[i].offset + ck[i].len) {
      size_t span = ck[i + 1].offset + ck[i + 1].len - ck[i].offset;
      if (span <= max) {
        ck[i + 1].len = span;
        ck[i + 1].offset = ck[i].offset;
        continue;
      }
    }
    ck[k++] = ck[i];
  }
  return k;
}

/* Split into pieces with ids, in document order, without duplicates (the
 * same passage twice in one document is stored once). */
static aiplat_status make_pieces(aiplat_rag *rag, const settings *s,
                                 const char *key, const char *text, size_t len,
                                 piece **out, size_t *n) {
  *out = NULL;
  *n = 0;
  aip_chunk *ck = NULL;
  size_t nc = aip_chunk_text(text, len, s->chunk_chars, s->overlap, &ck);
  if (nc == (size_t)-1)
    return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY,
                    "rag: no memory to split the text");
  nc = merge_headings(text, ck, nc, s->chunk_chars);
  piece *p = calloc(nc ? nc : 1, sizeof *p);
  keyed *order = malloc((nc ? nc : 1) * sizeof *order);
  bool *dup = calloc(nc ? nc : 1, sizeof *dup);
  if (!p || !order || !dup) goto nomem;
  for (size_t i = 0; i < nc; i++) {
    aip_chunk_id(key, text + ck[i].offset, ck[i].len, p[i].id);
    order[i] = (keyed){p[i].id, i};
  }
  qsort(order, nc, sizeof *order, cmp_keyed);
  for (size_t i = 1; i < nc; i++)
    if (!strcmp(order[i].id, order[i - 1].id)) dup[order[i].pos] = true;
  size_t k = 0;
  for (size_t i = 0; i < nc; i++) {
    if (dup[i]) continue;
    if (k != i) memcpy(p[k].id, p[i].id, sizeof p[k].id);
    if (!(p[k].text = aip_strndup(text + ck[i].offset, ck[i].len))) goto nomem;
    k++;
  }
  free(dup);
  free(order);
  free(ck);
  *out = p;
  *n = k;
  return AIPLAT_OK;
nomem:
  free(dup);
  free(order);
  free(ck);
  free_pieces(p, nc);
  return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
}

/* Compare the stored ids of the source with the new ones: *same when the
 * sets are equal, *stale when some stored id is not among the new ones
 * (or the stored ones could not be listed). */
static aiplat_status compare_ids(aiplat_rag *rag, aip_vstore *vs,
                                 const char *source, const piece *p, size_t n,
                                 size_t *old_n, bool *same, bool *stale) {
  char **old = NULL;
  size_t no = 0;
  *same = *stale = false;
  aiplat_status st = aip_vstore_source_ids(vs, source, OLD_IDS_MAX, &old, &no);
  if (st == AIPLAT_ERR_TOO_LARGE) { /* too many to compare: replace */
    *old_n = OLD_IDS_MAX + 1;
    *stale = true;
    return AIPLAT_OK;
  }
  if (st) return store_fail(rag, vs, st, "reading the source's passages");
  *old_n = no;
  char **fresh = malloc((n ? n : 1) * sizeof *fresh);
  if (!fresh) {
    free(old);
    return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  }
  for (size_t i = 0; i < n; i++) fresh[i] = (char *)p[i].id;
  qsort(fresh, n, sizeof *fresh, cmp_str);
  if (no) qsort(old, no, sizeof *old, cmp_str);
  size_t common = 0;
  for (size_t i = 0; i < no; i++) {
    if (n && bsearch(&old[i], fresh, n, sizeof *fresh, cmp_str))
      common++;
    else
      *stale = true;
  }
  *same = !*stale && common == n && no == n;
  free(fresh);
  free(old);
  return AIPLAT_OK;
}

static aiplat_status delete_exact(aiplat_rag *rag, aip_vstore *vs,
                                  const char *source) {
  aip_vfilter f = {AIP_VMATCH_EXACT, source};
  aiplat_status st = aip_vstore_delete_source(vs, &f, NULL);
  return st ? store_fail(rag, vs, st, "removing the source's old passages")
            : AIPLAT_OK;
}

/* Make sure the store holds @dim-dimensional vectors (once per handle, or
 * again when @force). */
static aiplat_status ensure_dim(aiplat_rag *rag, aip_vstore *vs, uint32_t dim,
                                bool force) {
  pthread_mutex_lock(&rag->mu);
  bool done = !force && rag->ensured_dim == dim;
  pthread_mutex_unlock(&rag->mu);
  if (done) return AIPLAT_OK;
  aiplat_status st = aip_vstore_ensure(vs, dim, AIP_VMETRIC_COSINE);
  if (st) return store_fail(rag, vs, st, "preparing the store");
  pthread_mutex_lock(&rag->mu);
  rag->ensured_dim = dim;
  pthread_mutex_unlock(&rag->mu);
  return AIPLAT_OK;
}

/* Embed pieces [from, to) and write them. */
static aiplat_status write_group(aiplat_rag *rag, aip_vstore *vs,
                                 const char *source, const char *meta, piece *p,
                                 size_t from, size_t to, bool delete_first) {
  size_t n = to - from;
  const char **texts = malloc(n * sizeof *texts);
  aip_vrecord *recs = calloc(n, sizeof *recs);
  aiplat_embeddings_result *er = NULL;
  aiplat_status st = AIPLAT_OK;
  if (!texts || !recs) {
    st = aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) texts[i] = p[from + i].text;
  if ((st = embed(rag, texts, n, "embedding the passages", &er))) goto out;
  uint32_t dim = (uint32_t)aiplat_embeddings_result_dimension(er);
  if ((st = ensure_dim(rag, vs, dim, false))) goto out;
  /* Old passages go only once the new ones are embedded: an embeddings
   * outage never leaves a source empty. */
  if (delete_first && (st = delete_exact(rag, vs, source))) goto out;
  for (size_t i = 0; i < n; i++)
    recs[i] =
        (aip_vrecord){p[from + i].id, aiplat_embeddings_result_vector(er, i),
                      p[from + i].text, source, meta};
  st = aip_vstore_insert(vs, recs, n, dim);
  if (st == AIPLAT_ERR_NOT_FOUND) {
    /* The collection went away since it was ensured (dropped in Milvus):
     * create it again, once. */
    aip_log_kv(AIPLAT_LOG_WARNING,
               "the store's collection is gone, creating it", "source", source,
               (const char *)NULL);
    if (!(st = ensure_dim(rag, vs, dim, true)))
      st = aip_vstore_insert(vs, recs, n, dim);
  }
  if (st) st = store_fail(rag, vs, st, "writing the passages");
out:
  aiplat_embeddings_result_destroy(er);
  free(recs);
  free(texts);
  return st;
}

/* Metadata as canonical JSON (sorted keys, compact), or NULL for none. */
static aiplat_status canonical_meta(aiplat_rag *rag, const char *meta,
                                    char **out) {
  *out = NULL;
  if (!meta || !*meta) return AIPLAT_OK;
  json_error_t je;
  json_t *j = json_loads(meta, JSON_REJECT_DUPLICATES, &je);
  if (!j || !json_is_object(j)) {
    json_decref(j);
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: the metadata is not a JSON object%s%s", j ? "" : ": ",
                    j ? "" : je.text);
  }
  *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  if (!*out)
    return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  if (strlen(*out) > AIP_VSTORE_MAX_METADATA) {
    free(*out);
    *out = NULL;
    return aip_fail(&rag->err, AIPLAT_ERR_TOO_LARGE,
                    "rag: the metadata is over %u bytes",
                    AIP_VSTORE_MAX_METADATA);
  }
  return AIPLAT_OK;
}

static const char *outcome_name(aiplat_rag_ingest_outcome o) {
  switch (o) {
    case AIPLAT_RAG_INGEST_NEW:
      return "new";
    case AIPLAT_RAG_INGEST_UNCHANGED:
      return "unchanged";
    case AIPLAT_RAG_INGEST_REPLACED:
      return "replaced";
    default:
      return "empty";
  }
}

static aiplat_status ingest_locked(aiplat_rag *rag, const char *source,
                                   const char *text, size_t len,
                                   const char *meta, size_t *chunks,
                                   aiplat_rag_ingest_outcome *outcome) {
  settings s = snapshot(rag);
  aip_vstore *vs = NULL;
  aiplat_status st = writer(rag, &vs);
  if (st) return st;
  char *key =
      aip_sprintf("%s\x1f%s\x1f%s", source, rag->model, meta ? meta : "");
  if (!key)
    return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  piece *p = NULL;
  size_t n = 0, old_n = 0;
  bool same = false, stale = false;
  if ((st = make_pieces(rag, &s, key, text, len, &p, &n)) ||
      (st = compare_ids(rag, vs, source, p, n, &old_n, &same, &stale)))
    goto out;
  aiplat_rag_ingest_outcome o;
  if (n == 0) {
    o = AIPLAT_RAG_INGEST_EMPTY;
    if (old_n && (st = delete_exact(rag, vs, source))) goto out;
  } else if (same) {
    o = AIPLAT_RAG_INGEST_UNCHANGED;
  } else {
    o = old_n ? AIPLAT_RAG_INGEST_REPLACED : AIPLAT_RAG_INGEST_NEW;
    for (size_t from = 0; from < n && !st; from += INGEST_GROUP) {
      size_t to = n - from > INGEST_GROUP ? from + INGEST_GROUP : n;
      st = write_group(rag, vs, source, meta, p, from, to, stale && from == 0);
    }
    if (st) goto out;
  }
  if (chunks) *chunks = n;
  if (outcome) *outcome = o;
  if (aip_log_enabled(AIPLAT_LOG_INFO)) {
    char cs[24];
    snprintf(cs, sizeof cs, "%zu", n);
    aip_log_kv(AIPLAT_LOG_INFO, "document ingested", "source", source,
               "passages", cs, "outcome", outcome_name(o), (const char *)NULL);
  }
out:
  free_pieces(p, n);
  free(key);
  return st;
}

AIPLAT_API aiplat_status aiplat_rag_ingest(aiplat_rag *rag, const char *source,
                                           const char *text, size_t len,
                                           const char *metadata_json,
                                           size_t *chunks,
                                           aiplat_rag_ingest_outcome *outcome) {
  NEED_RAG(rag);
  if (chunks) *chunks = 0;
  if (!source || !*source)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: a document needs a source name");
  if (!text && len)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: no text");
  aiplat_status st;
  if ((st = check_utf8(rag, "the source", source, strlen(source),
                       AIP_VSTORE_MAX_SOURCE)) ||
      (st = check_utf8(rag, "the text", text ? text : "", len, MAX_DOC)))
    return st;
  char *meta = NULL;
  if ((st = canonical_meta(rag, metadata_json, &meta))) return st;
  pthread_mutex_lock(&rag->ingest_mu);
  st = ingest_locked(rag, source, text ? text : "", len, meta, chunks, outcome);
  pthread_mutex_unlock(&rag->ingest_mu);
  free(meta);
  return st;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash && slash[1] ? slash + 1 : path;
}

AIPLAT_API aiplat_status
aiplat_rag_ingest_file(aiplat_rag *rag, const char *path, const char *source,
                       size_t *chunks, aiplat_rag_ingest_outcome *outcome) {
  NEED_RAG(rag);
  if (chunks) *chunks = 0;
  if (!path || !*path)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: no path");
  FILE *f = fopen(path, "rb");
  if (!f)
    return aip_fail(&rag->err,
                    errno == ENOENT ? AIPLAT_ERR_NOT_FOUND : AIPLAT_ERR_IO,
                    "rag: cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: %s is not a regular file", path);
  }
  if ((uint64_t)sb.st_size > MAX_DOC) {
    fclose(f);
    return aip_fail(&rag->err, AIPLAT_ERR_TOO_LARGE,
                    "rag: %s is %lld bytes, over %u", path,
                    (long long)sb.st_size, MAX_DOC);
  }
  aip_buf b = {0};
  char chunk[65536];
  size_t r;
  bool ok = aip_buf_reserve(&b, (size_t)sb.st_size + 1);
  while (ok && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
    ok = b.len + r <= MAX_DOC && aip_buf_append(&b, chunk, r);
  bool failed = ferror(f);
  fclose(f);
  if (!ok || failed) {
    aip_buf_free(&b);
    return aip_fail(&rag->err, failed ? AIPLAT_ERR_IO : AIPLAT_ERR_TOO_LARGE,
                    "rag: cannot read %s", path);
  }
  const char *text = b.data ? b.data : "";
  size_t len = b.len;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) { /* BOM */
    text += 3;
    len -= 3;
  }
  const char *nul = memchr(text, '\0', len);
  size_t bad = 0;
  if (nul || !aip_utf8_check(text, len, &bad)) {
    aiplat_status st = aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                                "rag: %s is not UTF-8 text (%s at offset %zu)",
                                path, nul ? "a NUL byte" : "an invalid byte",
                                nul ? (size_t)(nul - text) : bad);
    aip_buf_free(&b);
    return st;
  }
  char *title = aip_rag_markdown_title(text, len), *meta = NULL;
  if (title) {
    json_t *j = json_pack("{s:s}", "title", title);
    meta = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(title);
  }
  aiplat_status st = aiplat_rag_ingest(rag, source ? source : base_name(path),
                                       text, len, meta, chunks, outcome);
  free(meta);
  aip_buf_free(&b);
  return st;
}

AIPLAT_API aiplat_status aiplat_rag_delete_source(aiplat_rag *rag,
                                                  const char *source) {
  NEED_RAG(rag);
  if (!source || !*source)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: delete needs a source name");
  aiplat_status st = check_utf8(rag, "the source", source, strlen(source),
                                AIP_VSTORE_MAX_SOURCE);
  if (st) return st;
  pthread_mutex_lock(&rag->ingest_mu);
  aip_vstore *vs = NULL;
  if (!(st = writer(rag, &vs))) st = delete_exact(rag, vs, source);
  pthread_mutex_unlock(&rag->ingest_mu);
  return st;
}

AIPLAT_API aiplat_status aiplat_rag_count(aiplat_rag *rag, uint64_t *out) {
  NEED_RAG(rag);
  if (!out)
    return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL out");
  *out = 0;
  aip_vstore *vs = NULL;
  aiplat_status st = reader(rag, &vs);
  if (st || !vs) return st;
  st = aip_vstore_count(vs, out);
  return st ? store_fail(rag, vs, st, "counting the passages") : AIPLAT_OK;
}

/* ---- maintenance of the local store ----------------------------------------
 */

static aiplat_status local_only(aiplat_rag *rag, const char *what) {
  if (rag->milvus)
    return aip_fail(&rag->err, AIPLAT_ERR_NOT_SUPPORTED,
                    "rag: %s: the store is Milvus, which manages its own files", what);
  return AIPLAT_OK;
}

static uint64_t file_size(const char *path) {
  struct stat sb;
  return path && stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

AIPLAT_API aiplat_status aiplat_rag_compact(aiplat_rag *rag, uint64_t *bytes_before,
                                            uint64_t *bytes_after) {
  NEED_RAG(rag);
  aiplat_status st = local_only(rag, "compact");
  if (st) return st;
  if (bytes_before) *bytes_before = file_size(rag->path);
  aip_vstore *vs = NULL;
  if ((st = writer(rag, &vs))) return st;
  st = aip_vstore_local_compact(vs);
  if (st) return store_fail(rag, vs, st, "compacting the store");
  if (bytes_after) *bytes_after = file_size(rag->path);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_rag_verify(aiplat_rag *rag, char **report) {
  NEED_RAG(rag);
  if (!report) return aip_fail(&rag->err, AIPLAT_ERR_INVALID_ARGUMENT, "rag: NULL report");
  *report = NULL;
  aiplat_status st = local_only(rag, "verify");
  if (st) return st;
  /* a fresh read-only open checks every committed record of the file as it
   * is now, skipping (and counting) damage instead of stopping at it */
  aip_vstore *vs = NULL;
  st = aip_vstore_local_open(&vs, rag->path, AIP_VLOCAL_READONLY | AIP_VLOCAL_SALVAGE);
  if (st) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_error_last(msg, sizeof msg);
    return part_fail(rag, st, "verifying the store", msg);
  }
  aip_vlocal_report r;
  st = aip_vstore_local_report(vs, &r);
  aip_vstore_close(vs);
  if (st) return aip_fail(&rag->err, st, "rag: verifying the store: no report");
  bool ok = r.torn_bytes == 0 && r.damaged_regions == 0 && r.bad_vectors == 0;
  *report = aip_sprintf(
      "{\"dimension\":%u,\"file_bytes\":%llu,\"committed_bytes\":%llu,"
      "\"records\":%llu,\"live\":%llu,\"torn_bytes\":%llu,\"torn_records\":%llu,"
      "\"damaged_regions\":%llu,\"damaged_bytes\":%llu,\"bad_vectors\":%llu,\"ok\":%s}",
      r.dim, (unsigned long long)r.file_bytes, (unsigned long long)r.committed_bytes,
      (unsigned long long)r.records, (unsigned long long)r.live,
      (unsigned long long)r.torn_bytes, (unsigned long long)r.torn_records,
      (unsigned long long)r.damaged_regions, (unsigned long long)r.damaged_bytes,
      (unsigned long long)r.bad_vectors, ok ? "true" : "false");
  if (!*report) return aip_fail(&rag->err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  if (!ok)
    return aip_fail(&rag->err, AIPLAT_ERR_CORRUPT,
                    "rag: the store %s is damaged: %llu torn bytes, %llu damaged regions, "
                    "%llu bad vectors (compact it to keep only what is whole)",
                    rag->path, (unsigned long long)r.torn_bytes,
                    (unsigned long long)r.damaged_regions, (unsigned long long)r.bad_vectors);
  return AIPLAT_OK;
}
