/* The SSE parser, fed recorded streams split at every byte offset, byte by
 * byte and at random offsets: the events must not depend on the chunking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/testutil.h"
#include "internal.h"
#include "sse.h"

/* Events rendered as "type|id|retry|data\n" lines (data with \n as \\n). */
typedef struct rec {
  aip_buf out;
  size_t stop_after; /* stop the parser after this many events; 0: never */
  size_t n;
} rec;

static bool record(const aip_sse_event *ev, void *ud) {
  rec *r = ud;
  ck_assert_uint_eq(strlen(ev->data), ev->data_len); /* NUL-terminated */
  aip_buf_printf(&r->out, "%s|%s|%ld|", ev->type, ev->id, ev->retry_ms);
  for (size_t i = 0; i < ev->data_len; i++) {
    if (ev->data[i] == '\n')
      aip_buf_puts(&r->out, "\\n");
    else
      aip_buf_putc(&r->out, ev->data[i]);
  }
  aip_buf_putc(&r->out, '\n');
  r->n++;
  return !(r->stop_after && r->n >= r->stop_after);
}

/* Parse @in split at the offsets in @cuts (ascending), finish, return the
 * rendering (caller frees) and the last rc. */
static char *parse_split(const char *in, size_t len, const size_t *cuts,
                         size_t ncuts, size_t max, aip_sse_rc *rc_out) {
  rec r = {{0}, 0, 0};
  aip_sse *p = aip_sse_new(max, record, &r);
  ck_assert_ptr_nonnull(p);
  size_t pos = 0;
  aip_sse_rc rc = AIP_SSE_OK;
  for (size_t i = 0; i <= ncuts && rc == AIP_SSE_OK; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    rc = aip_sse_feed(p, in + pos, end - pos);
    pos = end;
  }
  if (rc == AIP_SSE_OK) rc = aip_sse_finish(p);
  aip_sse_free(p);
  if (rc_out) *rc_out = rc;
  if (!r.out.data) aip_buf_reserve(&r.out, 0);
  return aip_buf_steal(&r.out, NULL);
}

static char *parse_whole(const char *in, size_t len) {
  return parse_split(in, len, NULL, 0, 0, NULL);
}

/* Every way of cutting @in once, byte by byte, and 300 random cuttings
 * must give @expect. */
static void check_all_splits(const char *in, size_t len, const char *expect) {
  char *whole = parse_whole(in, len);
  ck_assert_str_eq(whole, expect);
  free(whole);
  for (size_t i = 0; i <= len; i++) {
    char *got = parse_split(in, len, &i, 1, 0, NULL);
    ck_assert_msg(strcmp(got, expect) == 0, "split at %zu:\n%s\nexpected:\n%s",
                  i, got, expect);
    free(got);
  }
  for (size_t i = 1; i + 1 < len;
       i++) { /* two cuts: every pair near CR/LF pairs */
    size_t cuts[2] = {i, i + 1};
    char *got = parse_split(in, len, cuts, 2, 0, NULL);
    ck_assert_msg(strcmp(got, expect) == 0, "cuts at %zu,%zu", i, i + 1);
    free(got);
  }
  size_t *bytes = malloc(len * sizeof *bytes);
  for (size_t i = 0; i < len; i++) bytes[i] = i + 1;
  char *got = parse_split(in, len, bytes, len ? len - 1 : 0, 0, NULL);
  ck_assert_msg(strcmp(got, expect) == 0, "byte by byte:\n%s", got);
  free(got);
  free(bytes);
  unsigned seed = 12345;
  for (int round = 0; round < 300; round++) {
    size_t cuts[40], n = 0, at = 0;
    while (n < 40) {
      at += 1 + (size_t)(rand_r(&seed) % 23);
      if (at >= len) break;
      cuts[n++] = at;
    }
    got = parse_split(in, len, cuts, n, 0, NULL);
    ck_assert_msg(strcmp(got, expect) == 0, "random round %d", round);
    free(got);
  }
}

/* A vLLM-style chat stream with a BOM, comments, UTF-8 in several bytes,
 * usage chunk, [DONE]. */
static const char vllm_stream[] =
    "\xEF\xBB\xBF: keep-alive\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
    "data: "
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Gr\xC3\xBC\xC3\x9F "
    "\xE2\x82\xAC \xF0\x9F\x98\x80\"}}]}\n\n"
    ": another comment\n"
    "data: "
    "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9}}\n\n"
    "data: [DONE]\n\n";

static const char vllm_expect[] =
    "message||-1|{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}"
    "]}\n"
    "message||-1|{\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"Gr\xC3\xBC\xC3\x9F "
    "\xE2\x82\xAC \xF0\x9F\x98\x80\"}}]}\n"
    "message||-1|{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
    "\"stop\"}]}\n"
    "message||-1|{\"choices\":[],\"usage\":{\"prompt_tokens\":9}}\n"
    "message||-1|[DONE]\n";

START_TEST(recorded_stream_every_split) {
  check_all_splits(vllm_stream, sizeof vllm_stream - 1, vllm_expect);
}
END_TEST

/* The same stream with each LF turned into @eol. */
static char *with_eol(const char *in, const char *eol) {
  aip_buf b = {0};
  for (const char *p = in; *p; p++) {
    if (*p == '\n')
      aip_buf_puts(&b, eol);
    else
      aip_buf_putc(&b, *p);
  }
  return aip_buf_steal(&b, NULL);
}

START_TEST(crlf_and_cr_line_endings) {
  char *crlf = with_eol(vllm_stream, "\r\n");
  check_all_splits(crlf, strlen(crlf), vllm_expect);
  free(crlf);
  char *cr = with_eol(vllm_stream, "\r");
  check_all_splits(cr, strlen(cr), vllm_expect);
  free(cr);
}
END_TEST

/* Fields: event, id (persisting, NUL ignored), retry (digits only),
 * multi-line data, no space after the colon, a field without colon,
 * unknown fields, an event without data (not dispatched). */
static const char fields_stream[] =
    "event: add\nid: 7\nretry: 1500\ndata: line one\ndata:line two\ndata\n\n"
    "event: nothing\n\n"
    "foo: bar\ndata:  two spaces\n\n"
    "id\nretry: 12x\ndata: {\"a\":1}\r\n\r\n"
    "event:\ndata: x\n\n";

static const char fields_expect[] =
    "add|7|1500|line one\\nline two\\n\n"
    "message|7|-1| two spaces\n"
    "message||-1|{\"a\":1}\n"
    "message||-1|x\n";

START_TEST(fields_every_split) {
  check_all_splits(fields_stream, sizeof fields_stream - 1, fields_expect);
}
END_TEST

START_TEST(id_with_nul_is_ignored) {
  static const char in[] = "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n";
  char *got = parse_whole(in, sizeof in - 1);
  ck_assert_str_eq(got, "message|1|-1|a\nmessage|1|-1|b\n");
  free(got);
}
END_TEST

/* llama.cpp's server sends streaming errors as an `error:` field. */
START_TEST(llamacpp_error_field) {
  static const char in[] =
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
      "error: {\"code\":400,\"message\":\"the request exceeds the available "
      "context "
      "size\",\"type\":\"exceed_context_size_error\"}\n\n";
  check_all_splits(
      in, sizeof in - 1,
      "message||-1|{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n"
      "error||-1|{\"code\":400,\"message\":\"the request exceeds the available "
      "context size\",\"type\":\"exceed_context_size_error\"}\n");
}
END_TEST

START_TEST(final_event_without_blank_line) {
  static const char in[] = "data: first\n\ndata: last";
  check_all_splits(in, sizeof in - 1, "message||-1|first\nmessage||-1|last\n");
  static const char in2[] = "data: first\n\ndata: last\n";
  check_all_splits(in2, sizeof in2 - 1,
                   "message||-1|first\nmessage||-1|last\n");
  static const char in3[] = "data: a\r";
  check_all_splits(in3, sizeof in3 - 1, "message||-1|a\n");
}
END_TEST

START_TEST(bom_only_at_start) {
  /* A second BOM is data; bytes that begin like a BOM but are not one are
   * input. */
  static const char in[] =
      "\xEF\xBB\xBF\xEF\xBB\xBF"
      "data: x\n\n";
  char *got = parse_whole(in, sizeof in - 1);
  ck_assert_str_eq(got, ""); /* the field name is "\xEF\xBB\xBFdata": unknown */
  free(got);
  static const char in2[] =
      "\xEF\xBB"
      "data: y\n\n";
  check_all_splits(in2, sizeof in2 - 1, "");
  static const char in3[] =
      "\xEF\xBB\xBF"
      "data: z\n\n";
  check_all_splits(in3, sizeof in3 - 1, "message||-1|z\n");
  static const char in4[] = "\xEF";
  check_all_splits(in4, sizeof in4 - 1, "");
}
END_TEST

START_TEST(comments_only_and_empty) {
  static const char in[] = ": hi\n:\n\n\n: bye\r\n";
  check_all_splits(in, sizeof in - 1, "");
  char *got = parse_whole("", 0);
  ck_assert_str_eq(got, "");
  free(got);
}
END_TEST

START_TEST(event_size_cap) {
  aip_sse_rc rc;
  /* Data lines adding up past the cap. */
  aip_buf b = {0};
  for (int i = 0; i < 20; i++) aip_buf_puts(&b, "data: 0123456789\n");
  aip_buf_puts(&b, "\n");
  char *got = parse_split(b.data, b.len, NULL, 0, 100, &rc);
  ck_assert_int_eq(rc, AIP_SSE_TOO_LARGE);
  ck_assert_str_eq(got, "");
  free(got);
  /* One endless line, fed in pieces, never ending in a line break. */
  aip_buf_reset(&b);
  for (int i = 0; i < 50; i++) aip_buf_puts(&b, "xxxxxxxxxx");
  size_t cuts[5] = {10, 20, 30, 40, 50};
  got = parse_split(b.data, b.len, cuts, 5, 100, &rc);
  ck_assert_int_eq(rc, AIP_SSE_TOO_LARGE);
  free(got);
  /* Events just under the cap pass, one after the other. */
  aip_buf_reset(&b);
  for (int i = 0; i < 30; i++)
    aip_buf_puts(&b, "data: 0123456789012345678901234567890123456789\n\n");
  got = parse_split(b.data, b.len, NULL, 0, 100, &rc);
  ck_assert_int_eq(rc, AIP_SSE_OK);
  ck_assert_uint_eq(
      strlen(got),
      30 * strlen("message||-1|0123456789012345678901234567890123456789\n"));
  free(got);
  aip_buf_free(&b);
}
END_TEST

START_TEST(callback_stops_parser) {
  rec r = {{0}, 2, 0};
  aip_sse *p = aip_sse_new(0, record, &r);
  static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
  ck_assert_int_eq(aip_sse_feed(p, in, sizeof in - 1), AIP_SSE_STOPPED);
  ck_assert_uint_eq(r.n, 2);
  ck_assert_int_eq(aip_sse_feed(p, "data: 4\n\n", 9), AIP_SSE_STOPPED);
  ck_assert_int_eq(aip_sse_finish(p), AIP_SSE_STOPPED);
  ck_assert_uint_eq(r.n, 2);
  ck_assert_uint_eq(aip_sse_event_count(p), 2);
  aip_sse_reset(p);
  r.stop_after = 0;
  ck_assert_int_eq(aip_sse_feed(p, "data: 5\n\n", 9), AIP_SSE_OK);
  ck_assert_uint_eq(r.n, 3);
  aip_sse_free(p);
  aip_buf_free(&r.out);
}
END_TEST

/* A long synthetic stream (thousands of events) split at random sizes,
 * compared with the whole-buffer parse. */
START_TEST(long_stream_random_chunks) {
  aip_buf in = {0};
  for (int i = 0; i < 3000; i++)
    aip_buf_printf(
        &in,
        "data: {\"choices\":[{\"delta\":{\"content\":\"tok%d \\u00e9\"}}]}%s",
        i,
        i % 3 == 0   ? "\r\n\r\n"
        : i % 3 == 1 ? "\n\n"
                     : "\r\r");
  char *expect = parse_whole(in.data, in.len);
  ck_assert_uint_gt(strlen(expect), 3000 * 40);
  unsigned seed = 99;
  for (int round = 0; round < 20; round++) {
    size_t cuts[4096], n = 0, at = 0;
    while (n < 4096) {
      at += 1 + (size_t)(rand_r(&seed) % 97);
      if (at >= in.len) break;
      cuts[n++] = at;
    }
    char *got = parse_split(in.data, in.len, cuts, n, 0, NULL);
    ck_assert_msg(strcmp(got, expect) == 0, "round %d", round);
    free(got);
  }
  free(expect);
  aip_buf_free(&in);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("sse");
  TCase *tc = tcase_create("sse");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, recorded_stream_every_split);
  tcase_add_test(tc, crlf_and_cr_line_endings);
  tcase_add_test(tc, fields_every_split);
  tcase_add_test(tc, id_with_nul_is_ignored);
  tcase_add_test(tc, llamacpp_error_field);
  tcase_add_test(tc, final_event_without_blank_line);
  tcase_add_test(tc, bom_only_at_start);
  tcase_add_test(tc, comments_only_and_empty);
  tcase_add_test(tc, event_size_cap);
  tcase_add_test(tc, callback_stops_parser);
  tcase_add_test(tc, long_stream_random_chunks);
  suite_add_tcase(s, tc);
  return s;
}
