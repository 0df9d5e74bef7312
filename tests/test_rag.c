/* The RAG API end to end with the local model backend (embeddings and
 * rerank served on loopback) and both stores: the local one, and Milvus's
 * REST API v2 through its fake. The sample documents are the ones in
 * examples/knowledge. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aiplat/aiplat.h"
#include "harness/backend_harness.h"
#include "harness/testutil.h"
#include "utf8.h"

static th_server *B;  /* the model backend */
static th_server *B2; /* a second one with 64-dimensional embeddings */
static th_server *M;  /* the Milvus fake */
static char dir[64];  /* temporary files of one test */
static char store[128];

static void servers_up(void) {
  setenv("LOG_LEVEL", "WARNING", 1);
  B = th_backend_start(NULL);
  ck_assert_msg(B != NULL, "the model backend did not start");
  const char *args[] = {"--embedding-dim", "64", NULL};
  B2 = th_backend_start(args);
  ck_assert_msg(B2 != NULL, "the second model backend did not start");
  ck_assert_msg(th_have_python3(), "python3 is needed for the Milvus fake");
  M = th_milvus_fake_start();
  ck_assert_msg(M != NULL, "the Milvus fake did not start");
}

static void servers_down(void) {
  th_server_stop(M);
  th_server_stop(B2);
  ck_assert_int_eq(th_server_stop(B), 0); /* a clean exit */
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/aiplat-rag-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void teardown(void) {
  ck_assert_int_eq(nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---- helpers ---------------------------------------------------------------
 */

static aiplat_config *config(const th_server *emb, bool rerank, bool milvus) {
  aiplat_config *cfg;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
#define SET(n, v) ck_assert_int_eq(aiplat_config_set(cfg, (n), (v)), AIPLAT_OK)
  SET("EMBEDDINGS_URL", th_server_url(emb));
  SET("RERANKER_URL", rerank ? th_server_url(B) : NULL);
  SET("HTTP_MAX_RETRIES", "0");
  SET("HTTP_TIMEOUT", "20s");
  if (milvus) {
    char port[16];
    snprintf(port, sizeof port, "%d", th_server_port(M));
    SET("VECTOR_STORE", "milvus");
    SET("MILVUS_HOST", "127.0.0.1");
    SET("MILVUS_PORT", port);
  } else {
    SET("VECTOR_STORE", "local");
    SET("VECTOR_STORE_PATH", store);
  }
#undef SET
  return cfg;
}

static aiplat_rag *make(const th_server *emb, bool rerank, bool milvus) {
  aiplat_config *cfg = config(emb, rerank, milvus);
  aiplat_rag *rag = NULL;
  aiplat_status st = aiplat_rag_create(&rag, cfg);
  char msg[512];
  aiplat_error_last(msg, sizeof msg);
  ck_assert_msg(st == AIPLAT_OK, "create: %s", msg);
  aiplat_config_destroy(cfg);
  return rag;
}

static char errbuf[512];
static const char *err_of(aiplat_rag *rag) {
  aiplat_rag_last_error(rag, errbuf, sizeof errbuf);
  return errbuf;
}

static const char *const DOCS[] = {"README.md",      "backups.md",
                                   "gpu-cluster.md", "messaging.md",
                                   "onboarding.md",  "retrieval.md"};
#define NDOCS (sizeof DOCS / sizeof DOCS[0])

static const char *doc_path(const char *name) {
  static char path[4200];
  const char *top = getenv("top_srcdir");
  snprintf(path, sizeof path, "%s/examples/knowledge/%s", top ? top : ".",
           name);
  return path;
}

/* Ingest the sample documents; returns the number of passages. */
static size_t ingest_all(aiplat_rag *rag, aiplat_rag_ingest_outcome want) {
  size_t total = 0;
  for (size_t i = 0; i < NDOCS; i++) {
    size_t chunks = 0;
    aiplat_rag_ingest_outcome o = 0;
    aiplat_status st =
        aiplat_rag_ingest_file(rag, doc_path(DOCS[i]), NULL, &chunks, &o);
    ck_assert_msg(st == AIPLAT_OK, "%s: %s", DOCS[i], err_of(rag));
    ck_assert_msg(o == want, "%s: outcome %d, want %d", DOCS[i], (int)o,
                  (int)want);
    ck_assert_uint_gt(chunks, 0);
    total += chunks;
  }
  return total;
}

static uint64_t count(aiplat_rag *rag) {
  uint64_t n = 0;
  ck_assert_msg(aiplat_rag_count(rag, &n) == AIPLAT_OK, "%s", err_of(rag));
  return n;
}

static aiplat_rag_results *ask(aiplat_rag *rag, const char *q) {
  aiplat_rag_results *r = NULL;
  ck_assert_msg(aiplat_rag_query(rag, q, &r) == AIPLAT_OK, "%s: %s", q,
                err_of(rag));
  ck_assert_ptr_nonnull(r);
  return r;
}

/* The questions and the document that answers each. */
static const struct {
  const char *q, *source, *fact;
} QA[] = {
    {"How often are Milvus backups taken?", "backups.md", "every night"},
    {"Which port exposes the liveness probe /health?", "onboarding.md",
     "port 8080"},
    {"What accelerators do the inference nodes have?", "gpu-cluster.md",
     "AMD Instinct"},
    {"On which subject is a user's chat message published?", "messaging.md",
     "ai.chat.user.{userId}.message"},
    {"How are documents split into passages?", "retrieval.md",
     "eight hundred characters"},
};

static void check_answers(aiplat_rag *rag, bool reranked) {
  for (size_t i = 0; i < sizeof QA / sizeof QA[0]; i++) {
    aiplat_rag_results *r = ask(rag, QA[i].q);
    size_t n = aiplat_rag_results_count(r);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_le(n, 5); /* RAG_TOP_K */
    ck_assert_msg(strcmp(aiplat_rag_results_source(r, 0), QA[i].source) == 0,
                  "%s: first is %s", QA[i].q, aiplat_rag_results_source(r, 0));
    ck_assert_msg(strstr(aiplat_rag_results_text(r, 0), QA[i].fact), "%s: %s",
                  QA[i].q, aiplat_rag_results_text(r, 0));
    ck_assert_int_eq(aiplat_rag_results_reranked(r), reranked);
    for (size_t k = 0; k < n; k++) {
      ck_assert_ptr_nonnull(aiplat_rag_results_text(r, k));
      ck_assert_uint_eq(strlen(aiplat_rag_results_id(r, k)), 32);
      ck_assert(aiplat_rag_results_metadata(r, k)[0] == '{');
      if (k) /* best first */
        ck_assert(aiplat_rag_results_score(r, k) <=
                  aiplat_rag_results_score(r, k - 1));
      double v = aiplat_rag_results_vector_score(r, k);
      ck_assert(v >= -1.0001 && v <= 1.0001);
      if (!reranked) ck_assert(aiplat_rag_results_score(r, k) == v);
    }
    ck_assert_ptr_null(aiplat_rag_results_text(r, n));
    aiplat_rag_results_destroy(r);
  }
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  ck_assert_int_eq(fclose(f), 0);
}

/* ---- tests -----------------------------------------------------------------
 */

START_TEST(knowledge_base_end_to_end) {
  aiplat_rag *rag = make(B, false, false);
  ck_assert_str_eq(aiplat_rag_store_backend(rag), "local");
  ck_assert(!aiplat_rag_reranks(rag));
  size_t n = ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  ck_assert_uint_eq(count(rag), n);
  check_answers(rag, false);
  /* The title of a markdown file is its metadata. */
  aiplat_rag_results *r = ask(rag, QA[0].q);
  ck_assert_str_eq(aiplat_rag_results_metadata(r, 0),
                   "{\"title\":\"Backups and restore\"}");
  aiplat_rag_results_destroy(r);

  /* Again: nothing changes, nothing duplicates. */
  ck_assert_uint_eq(ingest_all(rag, AIPLAT_RAG_INGEST_UNCHANGED), n);
  ck_assert_uint_eq(count(rag), n);
  aiplat_rag_destroy(rag);
  /* Another handle (another process would do the same) agrees. */
  rag = make(B, false, false);
  ck_assert_uint_eq(ingest_all(rag, AIPLAT_RAG_INGEST_UNCHANGED), n);
  ck_assert_uint_eq(count(rag), n);

  /* A changed file replaces its source's passages. */
  char path[160];
  snprintf(path, sizeof path, "%s/backups.md", dir);
  write_file(path,
             "# Backups and restore\n\nMilvus backups are taken every six "
             "hours and kept for a month.\n");
  size_t chunks = 0;
  aiplat_rag_ingest_outcome o = 0;
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, path, NULL, &chunks, &o),
                   AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_REPLACED);
  ck_assert_uint_eq(chunks, 1);
  r = ask(rag, QA[0].q);
  ck_assert_str_eq(aiplat_rag_results_source(r, 0), "backups.md");
  ck_assert_ptr_nonnull(strstr(aiplat_rag_results_text(r, 0), "six hours"));
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(
      aiplat_rag_query_filtered(rag, "backups restore snapshot night", 50,
                                "backups.md", &r),
      AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 1); /* the old ones: gone */
  aiplat_rag_results_destroy(r);
  uint64_t total = count(rag);
  ck_assert_uint_lt(total, n);

  /* An empty document removes the source; deleting is idempotent. */
  write_file(path, " \n\n");
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, path, NULL, &chunks, &o),
                   AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_EMPTY);
  ck_assert_uint_eq(chunks, 0);
  ck_assert_uint_eq(count(rag), total - 1);
  ck_assert_int_eq(aiplat_rag_delete_source(rag, "messaging.md"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_delete_source(rag, "messaging.md"), AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_rag_query_filtered(rag, QA[3].q, 5, "messaging.md", &r),
      AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 0);
  aiplat_rag_results_destroy(r);
  aiplat_rag_destroy(rag);
}
END_TEST

START_TEST(ingest_text_with_metadata_and_sources) {
  aiplat_rag *rag = make(B, false, false);
  const char *text =
      "Paragraph one talks about zebras and their stripes.\n\n"
      "Paragraph two talks about zebras and their stripes.\n\n"
      "Paragraph one talks about zebras and their stripes.\n";
  size_t chunks = 0;
  aiplat_rag_ingest_outcome o = 0;
  ck_assert_int_eq(
      aiplat_rag_ingest(rag, "https://wiki/zebra?x=\"1\"", text, strlen(text),
                        "{ \"b\": 2, \"a\": [1] }", &chunks, &o),
      AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_NEW);
  ck_assert_uint_eq(chunks, 2); /* the repeated paragraph is stored once */
  ck_assert_uint_eq(count(rag), 2);
  aiplat_rag_results *r = ask(rag, "zebra stripes");
  ck_assert_uint_eq(aiplat_rag_results_count(r), 2);
  ck_assert_str_eq(aiplat_rag_results_source(r, 0),
                   "https://wiki/zebra?x=\"1\"");
  ck_assert_str_eq(aiplat_rag_results_metadata(r, 0), "{\"a\":[1],\"b\":2}");
  aiplat_rag_results_destroy(r);
  /* Same text, same metadata written differently: unchanged. */
  ck_assert_int_eq(
      aiplat_rag_ingest(rag, "https://wiki/zebra?x=\"1\"", text, strlen(text),
                        "{\"a\":[1],\"b\":2}", &chunks, &o),
      AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_UNCHANGED);
  /* Other metadata: other ids, the source is replaced. */
  ck_assert_int_eq(aiplat_rag_ingest(rag, "https://wiki/zebra?x=\"1\"", text,
                                     strlen(text), "{\"a\":[2]}", &chunks, &o),
                   AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_REPLACED);
  ck_assert_uint_eq(count(rag), 2);
  /* Other chunking: other passages. */
  ck_assert_int_eq(aiplat_rag_set_chunking(rag, 40, 10), AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_ingest(rag, "https://wiki/zebra?x=\"1\"", text,
                                     strlen(text), "{\"a\":[2]}", &chunks, &o),
                   AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_REPLACED);
  ck_assert_uint_gt(chunks, 2);
  ck_assert_uint_eq(count(rag), chunks);
  /* An explicit source for a file. */
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, doc_path("backups.md"),
                                          "ops/backups", &chunks, &o),
                   AIPLAT_OK);
  r = ask(rag, QA[0].q);
  ck_assert_str_eq(aiplat_rag_results_source(r, 0), "ops/backups");
  aiplat_rag_results_destroy(r);
  aiplat_rag_destroy(rag);
}
END_TEST

START_TEST(context_within_budget) {
  aiplat_rag *rag = make(B, false, false);
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  char *ctx = NULL;
  ck_assert_int_eq(aiplat_rag_context(rag, QA[0].q, &ctx), AIPLAT_OK);
  ck_assert_msg(strncmp(ctx, "[1] (source: backups.md) ", 25) == 0, "%s", ctx);
  ck_assert_ptr_nonnull(strstr(ctx, "\n\n[2] (source: "));
  ck_assert_uint_le(strlen(ctx), 4000);
  aiplat_free(ctx);
  for (size_t budget = 16; budget < 700; budget += 37) {
    ck_assert_int_eq(aiplat_rag_set_context_chars(rag, budget), AIPLAT_OK);
    ck_assert_int_eq(aiplat_rag_context(rag, QA[0].q, &ctx), AIPLAT_OK);
    ck_assert_uint_le(strlen(ctx), budget);
    ck_assert(aip_utf8_valid(ctx, strlen(ctx)));
    ck_assert(ctx[0] == 0 || strncmp(ctx, "[1] (source: backups.md)", 24) == 0);
    aiplat_free(ctx);
  }
  /* Multibyte text under a tight budget stays valid UTF-8. */
  const char *uni =
      "\xc3\x9c"
      "bersicht: Sicherungen laufen n\xc3\xa4"
      "chtlich \xe2\x80\x94 "
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 backups backups "
      "backups nightly snapshot \xc3\xa9t\xc3\xa9 \xc3\xa0 \xc3\xa9t\xc3\xa9";
  ck_assert_int_eq(
      aiplat_rag_ingest(rag, "\xc3\xbc.md", uni, strlen(uni), NULL, NULL, NULL),
      AIPLAT_OK);
  aiplat_rag_results *r = NULL;
  ck_assert_int_eq(aiplat_rag_query_filtered(rag, "backups nightly snapshot", 1,
                                             "\xc3\xbc.md", &r),
                   AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 1);
  for (size_t budget = 20; budget < 140; budget++) {
    ck_assert_int_eq(aiplat_rag_results_context(r, budget, &ctx), AIPLAT_OK);
    ck_assert_uint_le(strlen(ctx), budget);
    ck_assert_msg(aip_utf8_valid(ctx, strlen(ctx)), "budget %zu", budget);
    aiplat_free(ctx);
  }
  aiplat_rag_results_destroy(r);
  aiplat_rag_destroy(rag);
}
END_TEST

START_TEST(min_score_and_overrides) {
  aiplat_rag *rag = make(B, false, false);
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  aiplat_rag_results *r = ask(rag, QA[0].q);
  double best = aiplat_rag_results_score(r, 0);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 5);
  aiplat_rag_results_destroy(r);
  /* Above the best score: nothing. */
  ck_assert_int_eq(aiplat_rag_set_min_score(rag, best + 0.01), AIPLAT_OK);
  r = ask(rag, QA[0].q);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 0);
  aiplat_rag_results_destroy(r);
  char *ctx = NULL;
  ck_assert_int_eq(aiplat_rag_context(rag, QA[0].q, &ctx), AIPLAT_OK);
  ck_assert_str_eq(ctx, "");
  aiplat_free(ctx);
  /* Between: only those at or above it. */
  ck_assert_int_eq(aiplat_rag_set_min_score(rag, 0.2), AIPLAT_OK);
  r = ask(rag, QA[0].q);
  ck_assert_uint_ge(aiplat_rag_results_count(r), 1);
  ck_assert_uint_lt(aiplat_rag_results_count(r), 5);
  for (size_t i = 0; i < aiplat_rag_results_count(r); i++)
    ck_assert(aiplat_rag_results_score(r, i) >= 0.2);
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(aiplat_rag_set_min_score(rag, -1), AIPLAT_OK);
  /* Per call: k and a source filter. */
  ck_assert_int_eq(aiplat_rag_query_filtered(rag, QA[0].q, 1, NULL, &r),
                   AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 1);
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(
      aiplat_rag_query_filtered(rag, QA[0].q, 10, "messaging.md", &r),
      AIPLAT_OK);
  ck_assert_uint_ge(aiplat_rag_results_count(r), 1);
  for (size_t i = 0; i < aiplat_rag_results_count(r); i++)
    ck_assert_str_eq(aiplat_rag_results_source(r, i), "messaging.md");
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(aiplat_rag_query_filtered(rag, QA[0].q, 3, "nope.md", &r),
                   AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 0);
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(aiplat_rag_set_top_k(rag, 2), AIPLAT_OK);
  r = ask(rag, QA[0].q);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 2);
  aiplat_rag_results_destroy(r);
  aiplat_rag_destroy(rag);
}
END_TEST

START_TEST(rerank_on_and_off) {
  aiplat_rag *rag = make(B, true, false);
  ck_assert(aiplat_rag_reranks(rag));
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  check_answers(rag, true);
  aiplat_rag_results *r = ask(rag, QA[0].q);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 5);
  bool differ = false;
  for (size_t i = 0; i < 5; i++) {
    double s = aiplat_rag_results_score(r, i);
    ck_assert(s >= 0.0 && s <= 1.0); /* the reranker's scale */
    differ |= s != aiplat_rag_results_vector_score(r, i);
  }
  ck_assert(differ);
  aiplat_rag_results_destroy(r);
  /* Candidates: the reranker sees more than k, returns k. */
  ck_assert_int_eq(aiplat_rag_set_candidates(rag, 3), AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_query_filtered(rag, QA[0].q, 4, NULL, &r),
                   AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 4);
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(aiplat_rag_set_rerank(rag, false), AIPLAT_OK);
  ck_assert(!aiplat_rag_reranks(rag));
  check_answers(rag, false);
  ck_assert_int_eq(aiplat_rag_set_rerank(rag, true), AIPLAT_OK);
  aiplat_rag_destroy(rag);

  /* A reranker that does not answer: the query says so. */
  aiplat_config *cfg = config(B, true, false);
  ck_assert_int_eq(aiplat_config_set(cfg, "RERANKER_URL", "http://127.0.0.1:1"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_rag_query(rag, QA[0].q, &r), AIPLAT_ERR_CONNECTION);
  ck_assert_ptr_null(r);
  ck_assert_ptr_nonnull(strstr(err_of(rag), "rag: reranking: "));
  aiplat_rag_destroy(rag);
}
END_TEST

START_TEST(milvus_end_to_end) {
  th_http(th_server_port(M), "POST", "/fake/control", "{\"reset\":true}", NULL,
          5000);
  aiplat_rag *rag = make(B, false, true);
  ck_assert_str_eq(aiplat_rag_store_backend(rag), "milvus");
  uint64_t none = 7;
  ck_assert_int_eq(aiplat_rag_count(rag, &none), AIPLAT_OK);
  ck_assert_uint_eq(none, 0);
  size_t n = ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  ck_assert_uint_eq(count(rag), n);
  check_answers(rag, false);
  ck_assert_uint_eq(ingest_all(rag, AIPLAT_RAG_INGEST_UNCHANGED), n);
  ck_assert_uint_eq(count(rag), n);
  char path[160];
  snprintf(path, sizeof path, "%s/backups.md", dir);
  write_file(path, "# Backups\n\nMilvus backups are taken every six hours.\n");
  aiplat_rag_ingest_outcome o = 0;
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, path, NULL, NULL, &o),
                   AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_REPLACED);
  aiplat_rag_results *r = ask(rag, QA[0].q);
  ck_assert_ptr_nonnull(strstr(aiplat_rag_results_text(r, 0), "six hours"));
  aiplat_rag_results_destroy(r);
  ck_assert_int_eq(
      aiplat_rag_ingest_file(rag, doc_path("backups.md"), NULL, NULL, &o),
      AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_REPLACED);
  ck_assert_uint_eq(count(rag), n);
  /* Dropped behind our back: the next ingest creates it again. */
  ck_assert_int_eq(
      th_http(th_server_port(M), "POST", "/v2/vectordb/collections/drop",
              "{\"collectionName\":\"knowledge_base\"}", NULL, 5000),
      200);
  ck_assert_uint_eq(count(rag), 0);
  ck_assert_uint_eq(ingest_all(rag, AIPLAT_RAG_INGEST_NEW), n);
  ck_assert_uint_eq(count(rag), n);
  aiplat_rag_destroy(rag);
  /* With the reranker too. */
  rag = make(B, true, true);
  check_answers(rag, true);
  aiplat_rag_destroy(rag);
  /* Milvus refusing: the error names the store. */
  th_http(th_server_port(M), "POST", "/fake/control",
          "{\"token\":\"root:Milvus\"}", NULL, 5000);
  rag = make(B, false, true);
  ck_assert_int_eq(aiplat_rag_query(rag, QA[0].q, &r), AIPLAT_ERR_AUTH);
  ck_assert_ptr_nonnull(
      strstr(err_of(rag), "rag: searching the store: milvus:"));
  ck_assert_int_eq(
      aiplat_rag_ingest_file(rag, doc_path("backups.md"), NULL, NULL, NULL),
      AIPLAT_ERR_AUTH);
  aiplat_rag_destroy(rag);
  th_http(th_server_port(M), "POST", "/fake/control", "{\"reset\":true}", NULL,
          5000);
}
END_TEST

START_TEST(failures_name_the_part) {
  /* Embeddings of another dimension than the store's. */
  aiplat_rag *rag = make(B, false, false);
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  aiplat_rag_destroy(rag);
  rag = make(B2, false, false);
  aiplat_rag_results *r = (aiplat_rag_results *)1;
  ck_assert_int_eq(aiplat_rag_query(rag, QA[0].q, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(r);
  ck_assert_ptr_nonnull(strstr(err_of(rag), "dimension mismatch"));
  ck_assert_ptr_nonnull(strstr(errbuf, "384"));
  const char *t = "A document with other vectors.";
  ck_assert_int_eq(
      aiplat_rag_ingest(rag, "x.md", t, strlen(t), NULL, NULL, NULL),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(err_of(rag), "rag: preparing the store: "));
  aiplat_rag_destroy(rag);

  /* The embeddings server does not answer. */
  aiplat_config *cfg = config(B, false, false);
  ck_assert_int_eq(
      aiplat_config_set(cfg, "EMBEDDINGS_URL", "http://127.0.0.1:1"),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_rag_query(rag, QA[0].q, &r), AIPLAT_ERR_CONNECTION);
  ck_assert_ptr_nonnull(
      strstr(err_of(rag), "rag: embedding the question: embeddings:"));
  uint64_t before = 0;
  ck_assert_int_eq(aiplat_rag_count(rag, &before), AIPLAT_OK);
  /* A changed document whose embedding fails keeps its old passages. */
  char path[160];
  snprintf(path, sizeof path, "%s/backups.md", dir);
  write_file(path, "# Backups\n\nChanged text that cannot be embedded now.\n");
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, path, NULL, NULL, NULL),
                   AIPLAT_ERR_CONNECTION);
  ck_assert_ptr_nonnull(strstr(err_of(rag), "embedding the passages"));
  uint64_t after = 0;
  ck_assert_int_eq(aiplat_rag_count(rag, &after), AIPLAT_OK);
  ck_assert_uint_eq(after, before);
  /* Unchanged ones need no embeddings at all. */
  aiplat_rag_ingest_outcome o = 0;
  ck_assert_int_eq(
      aiplat_rag_ingest_file(rag, doc_path("messaging.md"), NULL, NULL, &o),
      AIPLAT_OK);
  ck_assert_int_eq(o, AIPLAT_RAG_INGEST_UNCHANGED);
  aiplat_rag_destroy(rag);
}
END_TEST

START_TEST(readers_and_the_writer) {
  /* A query-only handle made before anything exists... */
  aiplat_rag *reader = make(B, false, false);
  aiplat_rag_results *r = ask(reader, QA[0].q);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 0);
  aiplat_rag_results_destroy(r);
  /* ...sees what a writer commits, without taking the lock itself. */
  aiplat_rag *writer = make(B, false, false);
  size_t n = ingest_all(writer, AIPLAT_RAG_INGEST_NEW);
  r = ask(reader, QA[0].q);
  ck_assert_uint_ge(aiplat_rag_results_count(r), 1);
  ck_assert_str_eq(aiplat_rag_results_source(r, 0), "backups.md");
  aiplat_rag_results_destroy(r);
  ck_assert_uint_eq(count(reader), n);
  /* One writer at a time: a second one is told. */
  ck_assert_int_eq(aiplat_rag_delete_source(reader, "README.md"),
                   AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_nonnull(
      strstr(err_of(reader), "opening the store for writing"));
  ck_assert_int_eq(aiplat_rag_delete_source(writer, "README.md"), AIPLAT_OK);
  ck_assert_uint_lt(count(reader), n);
  aiplat_rag_destroy(writer);
  /* The lock is free again. */
  ck_assert_int_eq(aiplat_rag_delete_source(reader, "backups.md"), AIPLAT_OK);
  aiplat_rag_destroy(reader);
}
END_TEST

START_TEST(made_from_parts) {
  aiplat_config *cfg = config(B, false, false);
  aiplat_embeddings *emb = NULL;
  aiplat_reranker *rr = NULL;
  ck_assert_int_eq(aiplat_embeddings_create(&emb, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "RERANKER_URL", th_server_url(B)),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  aiplat_rag *rag = NULL;
  ck_assert_int_eq(aiplat_rag_create_with(&rag, cfg, emb, rr), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert(aiplat_rag_reranks(rag));
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  check_answers(rag, true);
  aiplat_rag_destroy(rag);
  /* The clients are the caller's: still usable after the handle. */
  const char *t = "still here";
  aiplat_embeddings_result *er = NULL;
  ck_assert_int_eq(aiplat_embeddings_embed(emb, &t, 1, &er), AIPLAT_OK);
  aiplat_embeddings_result_destroy(er);
  aiplat_reranker_destroy(rr);
  aiplat_embeddings_destroy(emb);
}
END_TEST

typedef struct worker {
  aiplat_rag *rag;
  int fails;
} worker;

static void *asker(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 10; i++) {
    aiplat_rag_results *r = NULL;
    if (aiplat_rag_query(w->rag, QA[i % 5].q, &r) != AIPLAT_OK ||
        aiplat_rag_results_count(r) == 0 ||
        strcmp(aiplat_rag_results_source(r, 0), QA[i % 5].source) != 0)
      w->fails++;
    aiplat_rag_results_destroy(r);
  }
  return NULL;
}

START_TEST(shared_by_threads) {
  aiplat_rag *rag = make(B, true, false);
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  pthread_t t[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){rag, 0};
    ck_assert_int_eq(pthread_create(&t[i], NULL, asker, &w[i]), 0);
  }
  /* Ingests run meanwhile (an unrelated source). */
  for (int i = 0; i < 5; i++) {
    char text[128], src[32];
    snprintf(text, sizeof text, "Unrelated note number %d about gardening.", i);
    snprintf(src, sizeof src, "note%d.txt", i);
    ck_assert_int_eq(
        aiplat_rag_ingest(rag, src, text, strlen(text), NULL, NULL, NULL),
        AIPLAT_OK);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(w[i].fails, 0);
  }
  aiplat_rag_destroy(rag);
}
END_TEST

/* ---- the asynchronous query -------------------------------------------------
 */

typedef struct got {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls;
  aiplat_status st;
  char msg[512];
  aiplat_rag_results *r;
  pthread_t thread;
} got;

static void got_init(got *g) {
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
}

static void got_free(got *g) {
  aiplat_rag_results_destroy(g->r);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

static void on_query(aiplat_status st, const char *message,
                     aiplat_rag_results *r, void *ud) {
  got *g = ud;
  pthread_mutex_lock(&g->mu);
  g->calls++;
  g->st = st;
  snprintf(g->msg, sizeof g->msg, "%s", message);
  g->r = r;
  g->thread = pthread_self();
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* Wait for the completion (at most 20 s); a second one would be seen by
 * the count staying 1. */
static void wait_done(got *g) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 20;
  pthread_mutex_lock(&g->mu);
  while (g->calls == 0 &&
         pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0) {
  }
  int calls = g->calls;
  pthread_mutex_unlock(&g->mu);
  ck_assert_int_eq(calls, 1);
  ck_assert_msg(!pthread_equal(g->thread, pthread_self()),
                "the completion ran on the caller's thread");
}

/* Query through the asynchronous form and wait. */
static aiplat_status ask_async(aiplat_rag *rag, const char *q, size_t k,
                               const char *source, aiplat_call *call, got *g) {
  got_init(g);
  aiplat_status st = aiplat_rag_query_async(rag, q, k, source, call, on_query, g);
  ck_assert_msg(st == AIPLAT_OK, "start: %s", err_of(rag));
  wait_done(g);
  usleep(20000);
  ck_assert_int_eq(g->calls, 1);
  return g->st;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_async_answers(aiplat_rag *rag, bool reranked) {
  for (size_t i = 0; i < sizeof QA / sizeof QA[0]; i++) {
    got g;
    ck_assert_msg(ask_async(rag, QA[i].q, 0, NULL, NULL, &g) == AIPLAT_OK,
                  "%s: %s", QA[i].q, g.msg);
    ck_assert_str_eq(g.msg, "");
    ck_assert_uint_ge(aiplat_rag_results_count(g.r), 1);
    ck_assert_str_eq(aiplat_rag_results_source(g.r, 0), QA[i].source);
    ck_assert_ptr_nonnull(strstr(aiplat_rag_results_text(g.r, 0), QA[i].fact));
    ck_assert_int_eq(aiplat_rag_results_reranked(g.r), reranked);
    got_free(&g);
  }
}

START_TEST(async_query_local_store) {
  /* Before the store exists: nothing found, still on the loop thread. */
  aiplat_rag *rag = make(B, true, false);
  got g;
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, NULL, &g), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(g.r), 0);
  got_free(&g);
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  check_async_answers(rag, true);
  ck_assert_int_eq(aiplat_rag_set_rerank(rag, false), AIPLAT_OK);
  check_async_answers(rag, false);
  /* Per-call options: one passage, from one source. */
  ck_assert_int_eq(ask_async(rag, QA[1].q, 1, "backups.md", NULL, &g),
                   AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(g.r), 1);
  ck_assert_str_eq(aiplat_rag_results_source(g.r, 0), "backups.md");
  got_free(&g);
  /* Bad input is refused at the start, and nothing is called back. */
  ck_assert_int_eq(aiplat_rag_query_async(rag, "  ", 0, NULL, NULL, on_query,
                                          &g),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(err_of(rag), "empty"));
  ck_assert_int_eq(aiplat_rag_query_async(rag, QA[0].q, 0, NULL, NULL, NULL,
                                          NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_query_async(NULL, QA[0].q, 0, NULL, NULL,
                                          on_query, &g),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  /* A call cancelled before it starts: CANCELLED, nothing sent. */
  aiplat_call *call = NULL;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  aiplat_call_cancel(call);
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, call, &g),
                   AIPLAT_ERR_CANCELLED);
  ck_assert_ptr_null(g.r);
  ck_assert_ptr_nonnull(strstr(g.msg, "rag: embedding the question: "));
  got_free(&g);
  aiplat_call_destroy(call);
  aiplat_rag_destroy(rag);

  /* The embeddings server does not answer: the part is named. */
  aiplat_config *cfg = config(B, false, false);
  ck_assert_int_eq(
      aiplat_config_set(cfg, "EMBEDDINGS_URL", "http://127.0.0.1:1"),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, NULL, &g),
                   AIPLAT_ERR_CONNECTION);
  ck_assert_ptr_nonnull(
      strstr(g.msg, "rag: embedding the question: embeddings:"));
  got_free(&g);
  aiplat_rag_destroy(rag);
}
END_TEST

static void milvus_fault(const char *kind, int delay_ms) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"fault\":{\"path\":\"/v2/vectordb/entities/search\",\"kind\":"
           "\"%s\",\"delay_ms\":%d}}",
           kind, delay_ms);
  ck_assert_int_eq(
      th_http(th_server_port(M), "POST", "/fake/control", body, NULL, 5000),
      200);
}

START_TEST(async_query_milvus_and_its_faults) {
  th_http(th_server_port(M), "POST", "/fake/control", "{\"reset\":true}", NULL,
          5000);
  aiplat_rag *rag = make(B, true, true);
  ingest_all(rag, AIPLAT_RAG_INGEST_NEW);
  check_async_answers(rag, true);
  got g;
  /* HTTP 500 from Milvus. */
  milvus_fault("http500", 0);
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, NULL, &g),
                   AIPLAT_ERR_SERVER);
  ck_assert_msg(strstr(g.msg, "rag: searching the store: milvus:") &&
                    strstr(g.msg, "500"),
                "%s", g.msg);
  ck_assert_ptr_null(g.r);
  got_free(&g);
  /* An answer that is not JSON. */
  milvus_fault("garbage", 0);
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, NULL, &g),
                   AIPLAT_ERR_DECODE);
  ck_assert_msg(strstr(g.msg, "rag: searching the store: milvus: search:") &&
                    strstr(g.msg, "not JSON"),
                "%s", g.msg);
  got_free(&g);
  /* Milvus's own error inside HTTP 200. */
  ck_assert_int_eq(
      th_http(th_server_port(M), "POST", "/fake/control",
              "{\"fault\":{\"path\":\"/v2/vectordb/entities/search\",\"kind\":"
              "\"code\",\"code\":65535,\"message\":\"segcore failure\"}}",
              NULL, 5000),
      200);
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, NULL, &g),
                   AIPLAT_ERR_SERVER);
  ck_assert_ptr_nonnull(strstr(g.msg, "segcore failure"));
  got_free(&g);
  /* A search slower than the call's deadline: TIMEOUT at the deadline. */
  aiplat_call *call = NULL;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  milvus_fault("slow", 3000);
  ck_assert_int_eq(aiplat_call_set_timeout_ms(call, 800), AIPLAT_OK);
  int64_t t0 = mono_ms();
  ck_assert_int_eq(ask_async(rag, QA[0].q, 0, NULL, call, &g),
                   AIPLAT_ERR_TIMEOUT);
  int64_t took = mono_ms() - t0;
  ck_assert_msg(took < 2500, "TIMEOUT after %lld ms", (long long)took);
  ck_assert_ptr_nonnull(strstr(g.msg, "rag: searching the store: "));
  got_free(&g);
  aiplat_call_destroy(call);
  /* Cancelled while Milvus is searching: CANCELLED at once. */
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  milvus_fault("slow", 3000);
  got_init(&g);
  t0 = mono_ms();
  ck_assert_int_eq(
      aiplat_rag_query_async(rag, QA[0].q, 0, NULL, call, on_query, &g),
      AIPLAT_OK);
  /* the question's embedding takes a moment: wait until the search is on */
  usleep(500000);
  pthread_mutex_lock(&g.mu);
  int early = g.calls;
  pthread_mutex_unlock(&g.mu);
  ck_assert_int_eq(early, 0);
  aiplat_call_cancel(call);
  wait_done(&g);
  took = mono_ms() - t0;
  ck_assert_int_eq(g.st, AIPLAT_ERR_CANCELLED);
  ck_assert_msg(took < 2500, "CANCELLED after %lld ms", (long long)took);
  ck_assert_ptr_nonnull(strstr(g.msg, "rag: searching the store: "));
  got_free(&g);
  aiplat_call_destroy(call);
  /* The handle goes on working, through both forms. */
  check_async_answers(rag, true);
  check_answers(rag, true);
  aiplat_rag_destroy(rag);
  th_http(th_server_port(M), "POST", "/fake/control", "{\"reset\":true}", NULL,
          5000);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("rag");
  TCase *tc = tcase_create("rag");
  tcase_add_unchecked_fixture(tc, servers_up, servers_down);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, knowledge_base_end_to_end);
  tcase_add_test(tc, ingest_text_with_metadata_and_sources);
  tcase_add_test(tc, context_within_budget);
  tcase_add_test(tc, min_score_and_overrides);
  tcase_add_test(tc, rerank_on_and_off);
  tcase_add_test(tc, milvus_end_to_end);
  tcase_add_test(tc, failures_name_the_part);
  tcase_add_test(tc, readers_and_the_writer);
  tcase_add_test(tc, made_from_parts);
  tcase_add_test(tc, shared_by_threads);
  tcase_add_test(tc, async_query_local_store);
  tcase_add_test(tc, async_query_milvus_and_its_faults);
  suite_add_tcase(s, tc);
  return s;
}
