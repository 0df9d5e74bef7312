/* The RAG layer without servers: prompt context fitting, markdown titles,
 * and the public API's argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aiplat/rag.h"
#include "harness/testutil.h"
#include "rag_internal.h"
#include "utf8.h"

static char *build(const aip_rag_passage *p, size_t n, size_t budget) {
  char *out = NULL;
  size_t len = 0;
  ck_assert_int_eq(aip_rag_context_build(NULL, p, n, budget, &out, &len),
                   AIPLAT_OK);
  ck_assert_ptr_nonnull(out);
  ck_assert_uint_eq(strlen(out), len);
  ck_assert_uint_le(len, budget);
  ck_assert_msg(aip_utf8_valid(out, len), "not UTF-8: %s", out);
  return out;
}

START_TEST(numbered_passages_with_sources) {
  aip_rag_passage p[] = {
      {"backups.md", "Milvus backups are taken\n  every night.\n"},
      {"messaging.md", "\tSubjects follow a pattern."},
      {NULL, "No source here."},
      {"", "Empty source."}};
  char *c = build(p, 4, 4000);
  ck_assert_str_eq(c,
                   "[1] (source: backups.md) Milvus backups are taken every "
                   "night.\n\n[2] (source: messaging.md) Subjects follow a "
                   "pattern.\n\n[3] No source here.\n\n[4] Empty source.");
  free(c);
  /* Hostile sources cannot break the layout. */
  aip_rag_passage q[] = {{"a\n[2] (source: evil)\x01", "text"},
                         {" \n\t", "other"}};
  c = build(q, 2, 4000);
  ck_assert_str_eq(c, "[1] (source: a [2] (source: evil)) text\n\n[2] other");
  free(c);
  /* Nothing to say: empty string; blank passages are skipped. */
  c = build(NULL, 0, 100);
  ck_assert_str_eq(c, "");
  free(c);
  aip_rag_passage blank[] = {{"x", " \n "}, {"y", "real"}};
  c = build(blank, 2, 100);
  ck_assert_str_eq(c, "[1] (source: y) real");
  free(c);
  /* A very long source is cut. */
  char longsrc[600];
  memset(longsrc, 's', sizeof longsrc - 1);
  longsrc[sizeof longsrc - 1] = 0;
  aip_rag_passage ls[] = {{longsrc, "t"}};
  c = build(ls, 1, 4000);
  ck_assert_uint_eq(strlen(c),
                    strlen("[1] (source: ) t") + AIP_RAG_SOURCE_SHOWN);
  free(c);
}
END_TEST

START_TEST(whole_passages_are_dropped_not_cut) {
  aip_rag_passage p[] = {{"a", "First passage fits."},
                         {"b",
                          "This second passage is far too long to fit in "
                          "what is left of the budget at all."},
                         {"c", "Third fits."}};
  const char *want1 = "[1] (source: a) First passage fits.";
  const char *want3 = "\n\n[2] (source: c) Third fits.";
  size_t budget = strlen(want1) + strlen(want3);
  char *c = build(p, 3, budget);
  char expect[256];
  snprintf(expect, sizeof expect, "%s%s", want1, want3);
  ck_assert_str_eq(c, expect);
  free(c);
  /* One byte less: the third does not fit either. */
  c = build(p, 3, budget - 1);
  ck_assert_str_eq(c, want1);
  free(c);
}
END_TEST

START_TEST(first_passage_cut_at_a_sentence_or_word) {
  aip_rag_passage p[] = {
      {"s", "One sentence here. Two sentences here. Three sentences here."}};
  /* Room for two sentences: cut after the second, no ellipsis. */
  size_t head = strlen("[1] (source: s) ");
  char *c =
      build(p, 1, head + strlen("One sentence here. Two sentences here.") + 5);
  ck_assert_str_eq(c, "[1] (source: s) One sentence here. Two sentences here.");
  free(c);
  /* No sentence end in reach: a word boundary and an ellipsis. */
  aip_rag_passage w[] = {
      {"s", "alpha beta gamma delta epsilon zeta eta theta"}};
  c = build(w, 1, head + 20);
  ck_assert_str_eq(c, "[1] (source: s) alpha beta gamma\xe2\x80\xa6");
  free(c);
  /* One long word of multibyte characters: cut on a character boundary. */
  char word[400] = "";
  for (int i = 0; i < 100; i++) strcat(word, "\xc3\xa9"); /* é */
  aip_rag_passage m[] = {{"s", word}};
  for (size_t b = head + 5; b < head + 40; b++) {
    c = build(m, 1, b);
    ck_assert_msg(strstr(c, "\xe2\x80\xa6") != NULL, "budget %zu: %s", b, c);
    free(c);
  }
  /* Not even the header fits: nothing. */
  c = build(m, 1, 16);
  ck_assert_str_eq(c, "");
  free(c);
}
END_TEST

/* Random passages with multibyte text under every budget: never over,
 * always UTF-8, numbered from 1 without gaps. */
START_TEST(any_budget_any_text) {
  static const char *const words[] = {"a",
                                      "backup",
                                      "\xc3\xbc"
                                      "ber",
                                      "\xe6\x97\xa5\xe6\x9c\xac",
                                      "\xf0\x9f\x98\x80",
                                      "night.",
                                      "x?",
                                      "lorem",
                                      "\n\n",
                                      "\t"};
  uint64_t rng = 12345;
  for (int round = 0; round < 300; round++) {
    aip_rag_passage p[6];
    char texts[6][512];
    size_t n = 1 + round % 6;
    for (size_t i = 0; i < n; i++) {
      texts[i][0] = 0;
      size_t nw = 1 + (rng = rng * 6364136223846793005ull + 1) % 60;
      for (size_t w = 0; w < nw; w++) {
        rng = rng * 6364136223846793005ull + 1;
        strcat(texts[i], words[(rng >> 33) % 10]);
        strcat(texts[i], (rng >> 40) % 3 ? " " : "");
      }
      p[i] = (aip_rag_passage){i % 2 ? "doc.md" : "\xc3\xa9t\xc3\xa9.md",
                               texts[i]};
    }
    size_t budget = 16 + (size_t)(rng >> 35) % 600;
    char *c = build(p, n, budget);
    size_t k = 1;
    for (const char *s = c; (s = strstr(s, "[")) != NULL; s++) {
      char want[16];
      snprintf(want, sizeof want, "[%zu] ", k);
      if (strncmp(s, want, strlen(want)) == 0) k++;
    }
    ck_assert(c[0] == 0 || strncmp(c, "[1] ", 4) == 0);
    free(c);
  }
}
END_TEST

START_TEST(budget_limits) {
  char *out = (char *)1;
  aip_rag_passage p[] = {{"s", "t"}};
  ck_assert_int_eq(aip_rag_context_build(NULL, p, 1, 15, &out, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(out);
  ck_assert_int_eq(
      aip_rag_context_build(NULL, p, 1, AIP_RAG_MAX_CONTEXT + 1, &out, NULL),
      AIPLAT_ERR_INVALID_ARGUMENT);
  /* The public formatter: NULL results are an empty context. */
  ck_assert_int_eq(aiplat_rag_results_context(NULL, 100, &out), AIPLAT_OK);
  ck_assert_str_eq(out, "");
  aiplat_free(out);
  ck_assert_int_eq(aiplat_rag_results_context(NULL, 8, &out),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_results_context(NULL, 100, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(markdown_titles) {
  const struct {
    const char *text, *want;
  } cases[] = {
      {"# Backups and restore\n\nText.", "Backups and restore"},
      {"\n\n  # Spaced title #  \r\nx", "Spaced title"},
      {"\xef\xbb\xbf# With BOM\n", "With BOM"},
      {"#\tTabbed\n", "Tabbed"},
      {"# Control\001chars\n", "Control chars"},
      {"Text first\n# Late title\n", NULL},
      {"## Second level\n", NULL},
      {"#NoSpace\n", NULL},
      {"# \n", NULL},
      {"", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *t = aip_rag_markdown_title(cases[i].text, strlen(cases[i].text));
    if (cases[i].want)
      ck_assert_msg(t && strcmp(t, cases[i].want) == 0, "case %zu: %s", i,
                    t ? t : "(null)");
    else
      ck_assert_msg(t == NULL, "case %zu: %s", i, t);
    free(t);
  }
}
END_TEST

START_TEST(public_api_arguments) {
  aiplat_rag_results *r = (aiplat_rag_results *)1;
  char buf[64];
  ck_assert_int_eq(aiplat_rag_query(NULL, "q", &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_query_filtered(NULL, "q", 1, NULL, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest(NULL, "s", "t", 1, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest_file(NULL, "/x", NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_delete_source(NULL, "s"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  uint64_t n;
  ck_assert_int_eq(aiplat_rag_count(NULL, &n), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_top_k(NULL, 3), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_min_score(NULL, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_rerank(NULL, true),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_last_error(NULL, buf, sizeof buf),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(buf, "");
  ck_assert_str_eq(aiplat_rag_store_backend(NULL), "");
  ck_assert(!aiplat_rag_reranks(NULL));
  char *ctx = NULL;
  ck_assert_int_eq(aiplat_rag_context(NULL, "q", &ctx),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(aiplat_rag_results_count(NULL), 0);
  ck_assert_ptr_null(aiplat_rag_results_text(NULL, 0));
  ck_assert_ptr_null(aiplat_rag_results_id(NULL, 0));
  ck_assert_ptr_null(aiplat_rag_results_source(NULL, 0));
  ck_assert_ptr_null(aiplat_rag_results_metadata(NULL, 0));
  ck_assert(aiplat_rag_results_score(NULL, 0) == 0.0);
  ck_assert(aiplat_rag_results_vector_score(NULL, 0) == 0.0);
  ck_assert(!aiplat_rag_results_reranked(NULL));
  aiplat_rag_results_destroy(NULL);
  aiplat_rag_destroy(NULL);
  ck_assert_int_eq(aiplat_rag_create(NULL, NULL), AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_rag *rag = (aiplat_rag *)1;
  ck_assert_int_eq(aiplat_rag_create_with(&rag, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(rag);
}
END_TEST

/* A handle needs no server to be made; settings are checked. */
START_TEST(create_and_settings) {
  char dir[] = "/tmp/aiplat-rag-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/kb.aipvs", dir);
  aiplat_config *cfg;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_config_set(cfg, "EMBEDDINGS_URL", "http://127.0.0.1:1"),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "local"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE_PATH", path),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "RERANKER_URL", NULL), AIPLAT_OK);
  aiplat_rag *rag = NULL;
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_OK);
  ck_assert_str_eq(aiplat_rag_store_backend(rag), "local");
  ck_assert(!aiplat_rag_reranks(rag));
  ck_assert_int_eq(aiplat_rag_set_rerank(rag, true), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_rag_set_rerank(rag, false), AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_set_top_k(rag, 0), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_top_k(rag, 16384),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_top_k(rag, 3), AIPLAT_OK);
  ck_assert_int_eq(aiplat_rag_set_candidates(rag, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_min_score(rag, NAN),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_min_score(rag, INFINITY),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_context_chars(rag, 15),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_chunking(rag, 31, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_chunking(rag, 100, 50),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_chunking(rag, 65536, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_set_chunking(rag, 100, 49), AIPLAT_OK);
  char msg[256];
  aiplat_rag_last_error(rag, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "chunking"));
  /* No store file yet: no passages, no error, no server needed. */
  uint64_t n = 9;
  ck_assert_int_eq(aiplat_rag_count(rag, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  aiplat_rag_results *r = NULL;
  ck_assert_int_eq(aiplat_rag_query(rag, "anything?", &r), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_rag_results_count(r), 0);
  aiplat_rag_results_destroy(r);
  /* Input checks come before any server. */
  ck_assert_int_eq(aiplat_rag_query(rag, " \n\t", &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_query(rag, "bad \xff utf8", &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_query(rag, NULL, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_query_filtered(rag, "q", 16384, NULL, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_query_filtered(rag, "q", 1, "\xc0", &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest(rag, "", "t", 1, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest(rag, "s", "a\0b", 3, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_rag_last_error(rag, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "NUL byte at offset 1"));
  ck_assert_int_eq(aiplat_rag_ingest(rag, "s", "\xe2\x82", 2, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest(rag, "s", "t", 1, "[1]", NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest(rag, "s", "t", 1, "{\"a\":", NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_rag_ingest(rag, "s", "t", 1, "{\"a\":1,\"a\":2}", NULL, NULL),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_rag_ingest(rag, "s", NULL, 5, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_rag_ingest_file(rag, "/nonexistent/x.md", NULL, NULL, NULL),
      AIPLAT_ERR_NOT_FOUND);
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, dir, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  char bin[160];
  snprintf(bin, sizeof bin, "%s/bin.md", dir);
  FILE *f = fopen(bin, "wb");
  fwrite("text\0\1\2", 1, 7, f);
  fclose(f);
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, bin, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_rag_last_error(rag, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "not UTF-8 text"));
  f = fopen(bin, "wb");
  fwrite("caf\xe9", 1, 4, f); /* Latin-1 */
  fclose(f);
  ck_assert_int_eq(aiplat_rag_ingest_file(rag, bin, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  unlink(bin);
  ck_assert_int_eq(aiplat_rag_delete_source(rag, ""),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_rag_destroy(rag);

  /* Bad settings name the variable. */
  const struct {
    const char *name, *value;
  } bad[] = {{"RAG_TOP_K", "0"},         {"RAG_CANDIDATES", "x"},
             {"RAG_CONTEXT_CHARS", "8"}, {"RAG_MIN_SCORE", "high"},
             {"VECTOR_STORE", "redis"},  {"EMBEDDINGS_URL", "ftp://x"},
             {"RERANKER_URL", "nope"},   {"MILVUS_COLLECTION", "a-b"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aiplat_config *c2;
    ck_assert_int_eq(aiplat_config_create(&c2), AIPLAT_OK);
    ck_assert_int_eq(
        aiplat_config_set(c2, "EMBEDDINGS_URL", "http://127.0.0.1:1"),
        AIPLAT_OK);
    ck_assert_int_eq(aiplat_config_set(c2, "VECTOR_STORE_PATH", path),
                     AIPLAT_OK);
    if (strcmp(bad[i].name, "MILVUS_COLLECTION") == 0)
      ck_assert_int_eq(aiplat_config_set(c2, "VECTOR_STORE", "milvus"),
                       AIPLAT_OK);
    ck_assert_int_eq(aiplat_config_set(c2, bad[i].name, bad[i].value),
                     AIPLAT_OK);
    rag = (aiplat_rag *)1;
    aiplat_status st = aiplat_rag_create(&rag, c2);
    ck_assert_msg(st == AIPLAT_ERR_CONFIG, "%s=%s: %s", bad[i].name,
                  bad[i].value, aiplat_status_str(st));
    ck_assert_ptr_null(rag);
    aiplat_error_last(msg, sizeof msg);
    ck_assert_msg(strstr(msg, bad[i].name), "%s", msg);
    aiplat_config_destroy(c2);
  }
  /* A file that is not a store is refused at create. */
  f = fopen(path, "wb");
  fputs("not a vector store at all, just text\n", f);
  fclose(f);
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_ERR_CORRUPT);
  unlink(path);
  rmdir(dir);
  aiplat_config_destroy(cfg);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("rag_context");
  TCase *tc = tcase_create("context");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, numbered_passages_with_sources);
  tcase_add_test(tc, whole_passages_are_dropped_not_cut);
  tcase_add_test(tc, first_passage_cut_at_a_sentence_or_word);
  tcase_add_test(tc, any_budget_any_text);
  tcase_add_test(tc, budget_limits);
  tcase_add_test(tc, markdown_titles);
  tcase_add_test(tc, public_api_arguments);
  tcase_add_test(tc, create_and_settings);
  suite_add_tcase(s, tc);
  return s;
}
