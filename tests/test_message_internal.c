/* The internal side of messages: UTF-8 validation, the bridge between
 * handles and generated structs, the error helper and the wire walk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/testutil.h"
#include "message_internal.h"

START_TEST(utf8_validation) {
  static const struct {
    const char *s;
    size_t len;
    bool ok;
    size_t bad;
  } cases[] = {
      {"", 0, true, 0},
      {"plain ascii", 11, true, 0},
      {"\xc3\xbc", 2, true, 0},          /* ü */
      {"\xe2\x9c\x93", 3, true, 0},      /* ✓ */
      {"\xf0\x9f\x98\x80", 4, true, 0},  /* U+1F600 */
      {"\xf4\x8f\xbf\xbf", 4, true, 0},  /* U+10FFFF */
      {"\xef\xbf\xbf", 3, true, 0},      /* U+FFFF */
      {"a\x80", 2, false, 1},            /* lone continuation */
      {"\xc1\xbf", 2, false, 0},         /* overlong 2-byte */
      {"\xe0\x9f\xbf", 3, false, 0},     /* overlong 3-byte */
      {"\xf0\x8f\xbf\xbf", 4, false, 0}, /* overlong 4-byte */
      {"\xed\xa0\x80", 3, false, 0},     /* U+D800 */
      {"\xed\xbf\xbf", 3, false, 0},     /* U+DFFF */
      {"\xf4\x90\x80\x80", 4, false, 0}, /* U+110000 */
      {"\xf5\x80\x80\x80", 4, false, 0}, /* invalid lead */
      {"ab\xe2\x9c", 4, false, 2},       /* truncated */
      {"\xe2\x28\xa1", 3, false, 0},     /* bad continuation */
      {"\xff", 1, false, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t bad = 99;
    ck_assert_msg(aip_utf8_check(cases[i].s, cases[i].len, &bad) == cases[i].ok,
                  "case %zu", i);
    ck_assert(aip_utf8_valid(cases[i].s, cases[i].len) == cases[i].ok);
    if (!cases[i].ok) ck_assert_uint_eq(bad, cases[i].bad);
  }
}
END_TEST

/* C code in the library builds a generated struct and hands it over. */
START_TEST(wrap_generated_struct) {
  Aiplat__Messages__V1__ChatRequest *r = malloc(sizeof *r);
  aiplat__messages__v1__chat_request__init(r);
  ck_assert(aip_chat_request_enable_rag(r));
  ck_assert(aip_msg_str_set(&r->user_id, "u1"));
  ck_assert(aip_msg_str_set(&r->message, "hello"));
  ck_assert(aip_msg_str_set(&r->message, "hello again")); /* frees the old */
  r->_max_tokens_case =
      AIPLAT__MESSAGES__V1__CHAT_REQUEST___MAX_TOKENS_MAX_TOKENS;
  r->max_tokens = 64;
  r->_enable_rag_case =
      AIPLAT__MESSAGES__V1__CHAT_REQUEST___ENABLE_RAG_ENABLE_RAG;
  r->enable_rag = 0;
  ck_assert(!aip_chat_request_enable_rag(r));

  aiplat_msg *m;
  ck_assert_int_eq(aip_msg_wrap(&m, &r->base), AIPLAT_OK);
  ck_assert_ptr_eq(aip_msg_pb(m), &r->base);
  const char *s;
  ck_assert_int_eq(aiplat_msg_get_string(m, "message", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "hello again");
  int64_t v;
  ck_assert_int_eq(aiplat_msg_get_int64(m, "max_tokens", &v), AIPLAT_OK);
  ck_assert_int_eq(v, 64);
  bool b = true;
  ck_assert_int_eq(aiplat_msg_get_bool(m, "enable_rag", &b), AIPLAT_OK);
  ck_assert(!b);
  /* And back: the API's changes show in the struct. */
  ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", "rq"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_clear_field(m, "enable_rag"), AIPLAT_OK);
  ck_assert_str_eq(r->request_id, "rq");
  ck_assert(aip_chat_request_enable_rag(r));
  ck_assert_ptr_eq(aip_msg_release(m), &r->base);
  protobuf_c_message_free_unpacked(&r->base, NULL);

  /* A struct of another schema is refused and left to the caller. */
  ProtobufCMessage *bogus =
      aip_pb_new(&aiplat__messages__v1__error__descriptor);
  ck_assert_ptr_nonnull(bogus);
  ProtobufCMessageDescriptor fake = aiplat__messages__v1__error__descriptor;
  bogus->descriptor = &fake;
  ck_assert_int_eq(aip_msg_wrap(&m, bogus), AIPLAT_ERR_INVALID_ARGUMENT);
  bogus->descriptor = &aiplat__messages__v1__error__descriptor;
  protobuf_c_message_free_unpacked(bogus, NULL);
}
END_TEST

START_TEST(release_of_child_is_null) {
  aiplat_msg *m, *u;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_CHAT_RESPONSE), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_mutable_message(m, "usage", &u), AIPLAT_OK);
  ck_assert_ptr_null(aip_msg_release(u));
  aiplat_msg_destroy(m);
}
END_TEST

START_TEST(set_error_on_replies) {
  static const aiplat_msg_type replies[] = {
      AIPLAT_MSG_CHAT_RESPONSE,       AIPLAT_MSG_CHAT_CHUNK,
      AIPLAT_MSG_VOICE_RESPONSE,      AIPLAT_MSG_TRANSCRIBE_RESPONSE,
      AIPLAT_MSG_SYNTHESIZE_RESPONSE, AIPLAT_MSG_PIPELINE_STATUS};
  for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
    aiplat_msg *m, *e;
    ck_assert_int_eq(aiplat_msg_create(&m, replies[i]), AIPLAT_OK);
    ck_assert_int_eq(
        aip_msg_set_error(m, AIPLAT_ERR_RATE_LIMITED, "slow \xff down"),
        AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_get_message(m, "error", &e), AIPLAT_OK);
    int64_t code;
    bool retry;
    const char *text;
    ck_assert_int_eq(aiplat_msg_get_int64(e, "code", &code), AIPLAT_OK);
    ck_assert_int_eq(code, AIPLAT_ERR_RATE_LIMITED);
    ck_assert_int_eq(aiplat_msg_get_bool(e, "retryable", &retry), AIPLAT_OK);
    ck_assert(retry);
    ck_assert_int_eq(aiplat_msg_get_string(e, "message", &text), AIPLAT_OK);
    ck_assert_str_eq(text, "slow ? down"); /* made valid UTF-8 */
    ck_assert_int_eq(aip_msg_set_error(m, AIPLAT_ERR_DECODE, "bad bytes"),
                     AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_get_bool(e, "retryable", &retry), AIPLAT_OK);
    ck_assert(!retry);
    /* The reply encodes and decodes. */
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(aiplat_msg_encode(m, &buf, &len), AIPLAT_OK);
    aiplat_msg *d;
    ck_assert_int_eq(aiplat_msg_decode(&d, replies[i], buf, len), AIPLAT_OK);
    aiplat_free(buf);
    aiplat_msg_destroy(d);
    aiplat_msg_destroy(m);
  }
  aiplat_msg *req;
  ck_assert_int_eq(aiplat_msg_create(&req, AIPLAT_MSG_CHAT_REQUEST), AIPLAT_OK);
  ck_assert_int_eq(aip_msg_set_error(req, AIPLAT_ERR_DECODE, "x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_msg_destroy(req);
}
END_TEST

/* The unpack/pack pair used by the service framework. */
START_TEST(unpack_and_pack) {
  static const uint8_t wire[] = {0x0a, 1, 'u', 0x12, 2, 'h', 'i'};
  ProtobufCMessage *pm = NULL;
  aip_err err;
  aip_err_init(&err);
  ck_assert_int_eq(
      aip_msg_unpack(&aiplat__messages__v1__chat_request__descriptor, wire,
                     sizeof wire, 100, &pm, &err),
      AIPLAT_OK);
  Aiplat__Messages__V1__ChatRequest *r =
      (Aiplat__Messages__V1__ChatRequest *)pm;
  ck_assert_str_eq(r->user_id, "u");
  ck_assert_str_eq(r->message, "hi");
  ck_assert(aip_chat_request_enable_rag(r));
  uint8_t *out;
  size_t len;
  ck_assert_int_eq(aip_msg_pack(pm, &out, &len, &err), AIPLAT_OK);
  ck_assert_uint_eq(len, sizeof wire);
  ck_assert_mem_eq(out, wire, len);
  free(out);
  protobuf_c_message_free_unpacked(pm, NULL);

  ck_assert_int_eq(
      aip_msg_unpack(&aiplat__messages__v1__chat_request__descriptor, wire,
                     sizeof wire, 6, &pm, &err),
      AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_null(pm);
  char buf[256];
  ck_assert_int_eq(aip_err_copy(&err, buf, sizeof buf), AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_nonnull(strstr(buf, "ChatRequest"));
  aip_err_destroy(&err);

  /* A struct that protobuf-c itself finds inconsistent is not packed. */
  Aiplat__Messages__V1__ChatResponse resp;
  aiplat__messages__v1__chat_response__init(&resp);
  resp.n_sources = 1; /* but no array */
  ck_assert_int_eq(aip_msg_pack(&resp.base, &out, &len, NULL),
                   AIPLAT_ERR_INTERNAL);
}
END_TEST

/* The memory estimate: deep enough to see, loose enough for real use. */
START_TEST(wire_check_budget) {
  /* 200 000 empty sources: 400 kB on the wire, ~30 MB for protobuf-c. */
  size_t count = 200000;
  uint8_t *b = malloc(2 * count);
  for (size_t i = 0; i < count; i++) {
    b[2 * i] = 0x1a;
    b[2 * i + 1] = 0;
  }
  ck_assert_int_eq(
      aip_msg_wire_check(&aiplat__messages__v1__chat_response__descriptor, b,
                         2 * count, NULL),
      AIPLAT_ERR_TOO_LARGE);
  /* 10 000 of them fit the slack. */
  ck_assert_int_eq(
      aip_msg_wire_check(&aiplat__messages__v1__chat_response__descriptor, b,
                         2 * 10000, NULL),
      AIPLAT_OK);
  free(b);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("message_internal");
  TCase *tc = tcase_create("internal");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, utf8_validation);
  tcase_add_test(tc, wrap_generated_struct);
  tcase_add_test(tc, release_of_child_is_null);
  tcase_add_test(tc, set_error_on_replies);
  tcase_add_test(tc, unpack_and_pack);
  tcase_add_test(tc, wire_check_budget);
  suite_add_tcase(s, tc);
  return s;
}
