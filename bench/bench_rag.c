/* RAG ingestion and query throughput with the local model backend and the
 * local store (`make bench-rag`). Prints figures; asserts nothing.
 *
 *   bench_rag [--docs N] [--paragraphs P] [--queries Q] [--url URL]
 *
 * Without --url it starts tools/model-backend/aiplat-model-backend of this
 * build on a free port. A synthetic corpus of N documents with P paragraphs
 * of 250-700 bytes each (one passage per paragraph) is ingested:
 *  1. end to end through aiplat_rag_ingest (chunk, embed, write);
 *  2. the parts alone: the embeddings client on the same passages (a request
 *     per document, as ingestion does, and requests of 32), and the store's
 *     inserts of the same vectors (a synced batch per document);
 *  3. the same documents again (unchanged: ids compared, nothing written);
 *  4. queries end to end (embed the question, search, with and without
 *     rerank), latency percentiles. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aiplat/aiplat.h"
#include "chunk.h"
#include "harness/backend_harness.h"
#include "vstore.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const WORDS[] = {
    "backup",  "snapshot",    "cluster",     "inference", "message",
    "subject", "stream",      "consumer",    "vector",    "collection",
    "passage", "embedding",   "reranker",    "latency",   "throughput",
    "replica", "namespace",   "workflow",    "template",  "pipeline",
    "secret",  "token",       "certificate", "rotation",  "deployment",
    "node",    "accelerator", "memory",      "queue",     "handler",
    "request", "response",    "timeout",     "retry",     "backoff",
    "schema",  "index",       "metric",      "health",    "readiness",
    "the",     "a",           "of",          "and",       "to",
    "is",      "every",       "night",       "with",      "for"};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* A document of @paras paragraphs of sentences of random words. */
static char *make_doc(int paras, size_t *len) {
  size_t cap = (size_t)paras * 1500 + 64, n = 0;
  char *d = malloc(cap);
  n += (size_t)snprintf(d, cap, "# Document %llu\n\n",
                        (unsigned long long)(next() % 1000000));
  for (int p = 0; p < paras; p++) {
    size_t target = 250 + next() % 450, start = n;
    while (n - start < target) {
      int words = 6 + (int)(next() % 12);
      for (int w = 0; w < words; w++)
        n += (size_t)snprintf(d + n, cap - n, "%s%s", w ? " " : "",
                              WORDS[next() % NWORDS]);
      n += (size_t)snprintf(d + n, cap - n, ". ");
    }
    n += (size_t)snprintf(d + n, cap - n, "\n\n");
  }
  *len = n;
  return d;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(const char *what, aiplat_rag *rag) {
  char msg[512] = "";
  if (rag)
    aiplat_rag_last_error(rag, msg, sizeof msg);
  else
    aiplat_error_last(msg, sizeof msg);
  fprintf(stderr, "bench_rag: %s: %s\n", what, msg);
  exit(1);
}

static void query_latency(aiplat_rag *rag, int queries, const char *label) {
  double *lat = malloc((size_t)queries * sizeof *lat);
  char q[256];
  for (int i = 0; i < queries; i++) {
    snprintf(q, sizeof q, "How is the %s %s of the %s %s?", WORDS[next() % 40],
             WORDS[next() % 40], WORDS[next() % 40], WORDS[next() % 40]);
    aiplat_rag_results *r = NULL;
    double t0 = now_s();
    if (aiplat_rag_query(rag, q, &r)) die("query", rag);
    lat[i] = (now_s() - t0) * 1000.0;
    aiplat_rag_results_destroy(r);
  }
  qsort(lat, (size_t)queries, sizeof *lat, cmp_double);
  printf(
      "  query %-22s median %.2f ms, p90 %.2f ms, p99 %.2f ms (%d queries)\n",
      label, lat[queries / 2], lat[queries * 9 / 10],
      lat[(size_t)(queries * 0.99)], queries);
  free(lat);
}

int main(int argc, char **argv) {
  int docs = 200, paras = 8, queries = 200;
  const char *url = NULL;
  static const struct option opts[] = {
      {"docs", required_argument, NULL, 'd'},
      {"paragraphs", required_argument, NULL, 'p'},
      {"queries", required_argument, NULL, 'q'},
      {"url", required_argument, NULL, 'u'},
      {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'd':
        docs = atoi(optarg);
        break;
      case 'p':
        paras = atoi(optarg);
        break;
      case 'q':
        queries = atoi(optarg);
        break;
      case 'u':
        url = optarg;
        break;
      default:
        fprintf(stderr,
                "usage: bench_rag [--docs N] [--paragraphs P] [--queries Q] "
                "[--url URL]\n");
        return 2;
    }
  }
  if (docs < 1 || paras < 1 || queries < 1) return 2;
  setenv("LOG_LEVEL", "WARNING", 1);
  th_server *backend = NULL;
  if (!url) {
    if (!(backend = th_backend_start(NULL))) {
      fprintf(stderr, "bench_rag: cannot start the model backend\n");
      return 1;
    }
    url = th_server_url(backend);
  }
  char dir[] = "/tmp/aiplat-bench-rag-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char store[128], store2[128];
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
  snprintf(store2, sizeof store2, "%s/parts.aipvs", dir);

  aiplat_config *cfg;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "EMBEDDINGS_URL", url);
  aiplat_config_set(cfg, "VECTOR_STORE", "local");
  aiplat_config_set(cfg, "VECTOR_STORE_PATH", store);
  aiplat_config_set(cfg, "RERANKER_URL", NULL);
  aiplat_rag *rag = NULL;
  if (aiplat_rag_create(&rag, cfg)) die("create", NULL);

  char **texts = calloc((size_t)docs, sizeof *texts);
  size_t *lens = calloc((size_t)docs, sizeof *lens), bytes = 0;
  for (int i = 0; i < docs; i++) {
    texts[i] = make_doc(paras, &lens[i]);
    bytes += lens[i];
  }
  printf(
      "bench_rag: %d documents x %d paragraphs, %.2f MB, embeddings at %s "
      "(local model backend), local store\n",
      docs, paras, (double)bytes / 1e6, url);

  /* 1. end to end */
  size_t chunks = 0;
  double t0 = now_s();
  for (int i = 0; i < docs; i++) {
    char src[32];
    size_t n = 0;
    snprintf(src, sizeof src, "doc%05d.md", i);
    if (aiplat_rag_ingest(rag, src, texts[i], lens[i], NULL, &n, NULL))
      die("ingest", rag);
    chunks += n;
  }
  double t_ingest = now_s() - t0;
  printf(
      "  ingest end to end      %zu passages in %.2f s: %.0f passages/s, "
      "%.1f documents/s, %.2f MB/s\n",
      chunks, t_ingest, (double)chunks / t_ingest, docs / t_ingest,
      (double)bytes / 1e6 / t_ingest);

  /* 2. the parts: embeddings alone (batches of 32), the store alone */
  const char **pieces = malloc(chunks * sizeof *pieces);
  size_t np = 0;
  for (int i = 0; i < docs; i++) {
    aip_chunk *ck = NULL;
    size_t n = aip_chunk_text(texts[i], lens[i], 800, 100, &ck);
    for (size_t k = 0; k < n && np < chunks; k++)
      pieces[np++] = strndup(texts[i] + ck[k].offset, ck[k].len);
    free(ck);
  }
  aiplat_embeddings *emb = NULL;
  if (aiplat_embeddings_create(&emb, cfg)) die("embeddings", NULL);
  /* As ingestion asks: one request per document. */
  size_t per_doc = (np / (size_t)docs) ? np / (size_t)docs : 1;
  t0 = now_s();
  for (size_t i = 0; i < np; i += per_doc) {
    aiplat_embeddings_result *one = NULL;
    size_t n = np - i < per_doc ? np - i : per_doc;
    if (aiplat_embeddings_embed(emb, pieces + i, n, &one)) die("embed", NULL);
    aiplat_embeddings_result_destroy(one);
  }
  double t_embed = now_s() - t0;
  aiplat_embeddings_result *er = NULL;
  t0 = now_s();
  if (aiplat_embeddings_embed(emb, pieces, np, &er)) die("embed", NULL);
  double t_embed32 = now_s() - t0;
  uint32_t dim = (uint32_t)aiplat_embeddings_result_dimension(er);
  printf(
      "  embeddings alone       %zu passages in %.2f s: %.0f passages/s "
      "(dimension %u, a request per document); %.0f passages/s in "
      "requests of 32\n",
      np, t_embed, (double)np / t_embed, dim, (double)np / t_embed32);
  aip_vstore *vs = NULL;
  if (aip_vstore_local_open(&vs, store2, 0) ||
      aip_vstore_ensure(vs, dim, AIP_VMETRIC_COSINE))
    die("store", NULL);
  aip_vrecord *recs = calloc(np, sizeof *recs);
  char(*ids)[33] = calloc(np, 33);
  for (size_t i = 0; i < np; i++) {
    snprintf(ids[i], 33, "p%zu", i);
    recs[i] = (aip_vrecord){ids[i], aiplat_embeddings_result_vector(er, i),
                            pieces[i], "src", NULL};
  }
  t0 = now_s();
  for (size_t i = 0; i < np; i += per_doc) {
    size_t n = np - i < per_doc ? np - i : per_doc;
    if (aip_vstore_insert(vs, recs + i, n, dim)) die("insert", NULL);
  }
  double t_store = now_s() - t0;
  printf(
      "  store inserts alone    %zu passages in %.2f s: %.0f passages/s "
      "(one synced batch per document)\n",
      np, t_store, (double)np / t_store);
  printf(
      "  share of ingest time   embeddings %.0f%%, store %.0f%%, rest "
      "(chunking, ids, comparison) %.0f%%\n",
      100 * t_embed / t_ingest, 100 * t_store / t_ingest,
      100 * (t_ingest - t_embed - t_store) / t_ingest);
  aip_vstore_close(vs);
  free(recs);
  free(ids);
  aiplat_embeddings_result_destroy(er);
  aiplat_embeddings_destroy(emb);
  for (size_t i = 0; i < np; i++) free((char *)pieces[i]);
  free(pieces);

  /* 3. unchanged */
  t0 = now_s();
  for (int i = 0; i < docs; i++) {
    char src[32];
    aiplat_rag_ingest_outcome o;
    snprintf(src, sizeof src, "doc%05d.md", i);
    if (aiplat_rag_ingest(rag, src, texts[i], lens[i], NULL, NULL, &o) ||
        o != AIPLAT_RAG_INGEST_UNCHANGED)
      die("re-ingest", rag);
  }
  double t_again = now_s() - t0;
  printf(
      "  re-ingest unchanged    %d documents in %.3f s: %.0f documents/s, "
      "%.0f passages/s (nothing embedded or written)\n",
      docs, t_again, docs / t_again, (double)chunks / t_again);

  /* 4. queries */
  query_latency(rag, queries, "(no rerank)");
  aiplat_rag_destroy(rag);
  aiplat_config_set(cfg, "RERANKER_URL", url);
  if (aiplat_rag_create(&rag, cfg)) die("create", NULL);
  query_latency(rag, queries, "(rerank 20 -> 5)");
  aiplat_rag_destroy(rag);
  aiplat_config_destroy(cfg);

  for (int i = 0; i < docs; i++) free(texts[i]);
  free(texts);
  free(lens);
  unlink(store);
  unlink(store2);
  rmdir(dir);
  th_server_stop(backend);
  return 0;
}
