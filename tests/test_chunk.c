/* Chunking documents for retrieval, and stable passage ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "harness/testutil.h"

static bool utf8_boundary(const char *t, size_t i, size_t len) {
  return i >= len || ((unsigned char)t[i] & 0xC0) != 0x80;
}

/* Every chunk within limits and on UTF-8 boundaries, every non-space byte
 * covered, chunks in order. */
static void check_chunks(const char *t, size_t len, size_t max, aip_chunk *c, size_t n) {
  char *covered = calloc(len + 1, 1);
  size_t prev = 0;
  for (size_t i = 0; i < n; i++) {
    ck_assert_uint_gt(c[i].len, 0);
    ck_assert_uint_le(c[i].len, max);
    ck_assert_uint_le(c[i].offset + c[i].len, len);
    ck_assert_uint_ge(c[i].offset, prev);
    prev = c[i].offset;
    ck_assert(utf8_boundary(t, c[i].offset, len));
    ck_assert(utf8_boundary(t, c[i].offset + c[i].len, len));
    ck_assert(t[c[i].offset] != ' ' && t[c[i].offset] != '\n');
    memset(covered + c[i].offset, 1, c[i].len);
  }
  for (size_t i = 0; i < len; i++)
    if (t[i] != ' ' && t[i] != '\n') ck_assert_msg(covered[i], "byte %zu not in any chunk", i);
  free(covered);
}

START_TEST(short_paragraphs_are_one_chunk_each) {
  const char *t = "First paragraph here.\n\nSecond one, also short.\n \n\nThird.";
  aip_chunk *c;
  size_t n = aip_chunk_text(t, strlen(t), 200, 20, &c);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(strncmp(t + c[0].offset, "First paragraph here.", c[0].len), 0);
  ck_assert_uint_eq(c[0].len, strlen("First paragraph here."));
  ck_assert_int_eq(strncmp(t + c[1].offset, "Second one, also short.", c[1].len), 0);
  ck_assert_int_eq(strncmp(t + c[2].offset, "Third.", c[2].len), 0);
  free(c);
}
END_TEST

START_TEST(long_paragraph_splits_on_sentences_with_overlap) {
  char t[4000] = "";
  for (int i = 0; i < 40; i++) {
    char s[100];
    snprintf(s, sizeof s, "Sentence number %d talks about topic %d. ", i, i * 7);
    strcat(t, s);
  }
  size_t len = strlen(t);
  aip_chunk *c;
  size_t n = aip_chunk_text(t, len, 300, 60, &c);
  ck_assert_uint_gt(n, 5);
  check_chunks(t, len, 300, c, n);
  int overlaps = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    /* chunks end at a sentence end and start at a sentence start */
    ck_assert_int_eq(t[c[i].offset + c[i].len - 1], '.');
    ck_assert_int_eq(strncmp(t + c[i + 1].offset, "Sentence", 8), 0);
    if (c[i + 1].offset < c[i].offset + c[i].len) overlaps++;
  }
  ck_assert_int_gt(overlaps, 0);
  free(c);
  /* no overlap asked: chunks are disjoint */
  n = aip_chunk_text(t, len, 300, 0, &c);
  for (size_t i = 0; i + 1 < n; i++) ck_assert_uint_ge(c[i + 1].offset, c[i].offset + c[i].len);
  free(c);
}
END_TEST

START_TEST(utf8_is_never_split) {
  /* no spaces at all: hard cuts, which must respect UTF-8 */
  char t[3001];
  const char *e = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* é € 😀 */
  size_t len = 0;
  while (len + 9 < sizeof t - 1) {
    memcpy(t + len, e, 9);
    len += 9;
  }
  t[len] = '\0';
  aip_chunk *c;
  size_t n = aip_chunk_text(t, len, 100, 10, &c);
  ck_assert_uint_gt(n, 20);
  check_chunks(t, len, 100, c, n);
  free(c);
}
END_TEST

START_TEST(random_text_invariants) {
  srand(7);
  static const char *const words[] = {"alpha", "beta.", "gamma!", "d\xc3\xa9lta", "\n\n",
                                      "epsilon?", "zeta", "\n", "eta,", "thetaaaaaaaaaaaaaaaaa"};
  for (int round = 0; round < 200; round++) {
    char t[5000] = "";
    size_t len = 0;
    int nw = rand() % 600;
    for (int w = 0; w < nw && len < 4900; w++) {
      const char *x = words[rand() % 10];
      len += (size_t)snprintf(t + len, sizeof t - len, "%s%s", x, rand() % 5 ? " " : "");
    }
    size_t max = 32 + (size_t)(rand() % 400), ov = (size_t)rand() % (max / 2);
    aip_chunk *c;
    size_t n = aip_chunk_text(t, len, max, ov, &c);
    ck_assert_uint_ne(n, (size_t)-1);
    check_chunks(t, len, max, c, n);
    free(c);
  }
}
END_TEST

START_TEST(empty_and_bad_arguments) {
  aip_chunk *c = (aip_chunk *)1;
  ck_assert_uint_eq(aip_chunk_text(" \n\n \t", 5, 100, 0, &c), 0);
  free(c);
  ck_assert_uint_eq(aip_chunk_text("", 0, 100, 0, &c), 0);
  free(c);
  ck_assert_uint_eq(aip_chunk_text("x", 1, 10, 0, &c), (size_t)-1);  /* max < 32 */
  ck_assert_uint_eq(aip_chunk_text("x", 1, 100, 50, &c), (size_t)-1); /* overlap */
  ck_assert_uint_eq(aip_chunk_text(NULL, 1, 100, 0, &c), (size_t)-1);
}
END_TEST

START_TEST(ids_are_stable_and_distinct) {
  char a[33], b[33], c[33], d[33];
  aip_chunk_id("doc.md", "hello", 5, a);
  aip_chunk_id("doc.md", "hello", 5, b);
  ck_assert_str_eq(a, b);
  ck_assert_uint_eq(strlen(a), 32);
  aip_chunk_id("doc.md", "hellp", 5, c);
  ck_assert_str_ne(a, c);
  aip_chunk_id("ab", "c", 1, c);
  aip_chunk_id("a", "bc", 2, d);
  ck_assert_str_ne(c, d);
  aip_chunk_id(NULL, "hello", 5, d);
  ck_assert_str_ne(a, d);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("chunk");
  TCase *tc = tcase_create("chunk");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, short_paragraphs_are_one_chunk_each);
  tcase_add_test(tc, long_paragraph_splits_on_sentences_with_overlap);
  tcase_add_test(tc, utf8_is_never_split);
  tcase_add_test(tc, random_text_invariants);
  tcase_add_test(tc, empty_and_bad_arguments);
  tcase_add_test(tc, ids_are_stable_and_distinct);
  suite_add_tcase(s, tc);
  return s;
}
