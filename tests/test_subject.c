/* Subjects: token checks, validation, builders, hostile tokens. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>

#include "harness/testutil.h"

static char msg[512];

static const char *last(void) {
  aiplat_error_last(msg, sizeof msg);
  return msg;
}

/* Tokens a user might send to break out of their subject level. */
static const struct {
  const char *token;
  const char *why; /* a word the message must contain */
} hostile[] = {
    {"", "empty"},
    {".", "'.'"},
    {"a.b", "'.'"},
    {"..", "'.'"},
    {"*", "wildcard"},
    {">", "wildcard"},
    {"u*", "wildcard"},
    {"u>", "wildcard"},
    {"a b", "whitespace"},
    {" a", "whitespace"},
    {"a\t", "whitespace"},
    {"a\r\nPUB ai.pipeline.trigger 2\r\nhi", "whitespace"},
    {"a\nb", "whitespace"},
    {"\x01", "control"},
    {"a\x7f", "control"},
    {"\xc2\x85", "control"}, /* U+0085 NEL, a C1 control */
    {"\xff", "UTF-8"},
    {"\xc0\xae", "UTF-8"},         /* overlong '.' */
    {"\xe0\x80\xae", "UTF-8"},     /* overlong '.' */
    {"\xed\xa0\x80", "UTF-8"},     /* surrogate */
    {"\xf4\x90\x80\x80", "UTF-8"}, /* above U+10FFFF */
    {"abc\xe2\x82", "UTF-8"},      /* truncated */
    {"\xc3", "UTF-8"},
};

START_TEST(token_check_rejects_hostile_tokens) {
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    aiplat_error_clear();
    ck_assert_msg(aiplat_subject_token_check(hostile[i].token) ==
                      AIPLAT_ERR_INVALID_ARGUMENT,
                  "token %zu accepted", i);
    ck_assert_msg(strstr(last(), hostile[i].why) != NULL,
                  "token %zu: message '%s' lacks '%s'", i, msg, hostile[i].why);
    /* Builders refuse them too, and write nothing. */
    char *out = (char *)0x1;
    ck_assert_int_eq(aiplat_subject_chat_user_message(&out, hostile[i].token),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
    out = (char *)0x1;
    ck_assert_int_eq(aiplat_subject_chat_response(&out, hostile[i].token),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
  }
  ck_assert_int_eq(aiplat_subject_token_check(NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(token_length_limit) {
  char tok[AIPLAT_SUBJECT_TOKEN_MAX + 2];
  memset(tok, 'a', sizeof tok - 1);
  tok[sizeof tok - 1] = '\0'; /* 257 bytes */
  ck_assert_int_eq(aiplat_subject_token_check(tok),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "longer than 256"));
  tok[AIPLAT_SUBJECT_TOKEN_MAX] = '\0'; /* 256 bytes */
  ck_assert_int_eq(aiplat_subject_token_check(tok), AIPLAT_OK);
}
END_TEST

START_TEST(token_check_accepts_ordinary_tokens) {
  const char *good[] = {
      "u1",      "user-42", "a_b", "550e8400-e29b-41d4-a716-446655440000",
      "Ünïcödé", "日本",    "$x",  "a:b",
      "=/+"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(aiplat_subject_token_check(good[i]) == AIPLAT_OK,
                  "token %zu refused: %s", i, last());
}
END_TEST

START_TEST(seed_subjects) {
  char *s = NULL;
  ck_assert_int_eq(aiplat_subject_chat_user_message(&s, "u1"), AIPLAT_OK);
  ck_assert_str_eq(s, "ai.chat.user.u1.message");
  aiplat_free(s);
  ck_assert_int_eq(aiplat_subject_chat_response(&s, "r1"), AIPLAT_OK);
  ck_assert_str_eq(s, "ai.chat.response.r1");
  aiplat_free(s);
  ck_assert_int_eq(aiplat_subject_voice_user_request(&s, "u2"), AIPLAT_OK);
  ck_assert_str_eq(s, "ai.voice.user.u2.request");
  aiplat_free(s);
  ck_assert_int_eq(aiplat_subject_voice_response(&s, "r2"), AIPLAT_OK);
  ck_assert_str_eq(s, "ai.voice.response.r2");
  aiplat_free(s);
  ck_assert_int_eq(aiplat_subject_pipeline_status(&s, "run-7"), AIPLAT_OK);
  ck_assert_str_eq(s, "ai.pipeline.status.run-7");
  aiplat_free(s);
  ck_assert_int_eq(aiplat_subject_build(&s, "stt", "module", "transcribe"),
                   AIPLAT_OK);
  ck_assert_str_eq(s, "ai.stt.module.transcribe");
  aiplat_free(s);
  ck_assert_str_eq(aiplat_subject_pipeline_trigger(), "ai.pipeline.trigger");
  ck_assert_str_eq(aiplat_subject_pipeline_query(), "ai.pipeline.query");
  ck_assert_str_eq(aiplat_subject_stt_transcribe(), "ai.stt.transcribe");
  ck_assert_str_eq(aiplat_subject_tts_synthesize(), "ai.tts.synthesize");
  ck_assert_int_eq(aiplat_subject_validate(aiplat_subject_pipeline_query()),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_subject_validate(aiplat_subject_stt_transcribe()),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_subject_validate(aiplat_subject_tts_synthesize()),
                   AIPLAT_OK);
  /* The query subject never collides with a run's status subject. */
  ck_assert_int_eq(aiplat_subject_pipeline_status(&s, "query"), AIPLAT_OK);
  ck_assert_str_ne(s, aiplat_subject_pipeline_query());
  aiplat_free(s);
  ck_assert_str_eq(aiplat_subject_chat_user_message_filter(),
                   "ai.chat.user.*.message");
  ck_assert_str_eq(aiplat_subject_voice_user_request_filter(),
                   "ai.voice.user.*.request");
  ck_assert_int_eq(
      aiplat_subject_validate_filter(aiplat_subject_chat_user_message_filter()),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_subject_validate(aiplat_subject_pipeline_trigger()),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_subject_build(&s, "chat", NULL, "x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(aiplat_subject_build(NULL, "a", "b", "c"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(join_checks_every_token) {
  const char *t[] = {"a", "b", "c"};
  char *s = NULL;
  ck_assert_int_eq(aiplat_subject_join(&s, t, 3), AIPLAT_OK);
  ck_assert_str_eq(s, "a.b.c");
  aiplat_free(s);
  const char *bad[] = {"a", "b.c"};
  ck_assert_int_eq(aiplat_subject_join(&s, bad, 2),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "token 1"));
  ck_assert_ptr_null(s);
  ck_assert_int_eq(aiplat_subject_join(&s, t, 0), AIPLAT_ERR_INVALID_ARGUMENT);
  /* Too long when joined: 9 tokens of 256 bytes. */
  static char big[AIPLAT_SUBJECT_TOKEN_MAX + 1];
  memset(big, 'x', AIPLAT_SUBJECT_TOKEN_MAX);
  const char *many[9];
  for (int i = 0; i < 9; i++) many[i] = big;
  ck_assert_int_eq(aiplat_subject_join(&s, many, 9),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "longer than 2048"));
  ck_assert_int_eq(aiplat_subject_join(&s, many, 7), AIPLAT_OK);
  ck_assert_uint_eq(strlen(s), 7 * 256 + 6);
  aiplat_free(s);
}
END_TEST

START_TEST(validate_subjects_and_filters) {
  const char *good[] = {"ai.chat.user.u1.message", "a", "_INBOX.abc.def"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_int_eq(aiplat_subject_validate(good[i]), AIPLAT_OK);
    ck_assert_int_eq(aiplat_subject_validate_filter(good[i]), AIPLAT_OK);
  }
  const char *bad[] = {"",    ".", "a.", ".a",   "a..b",   "a b",    "a.*",
                       "a.>", "*", ">",  "a.b*", "a.\xff", "a\r\nb", "a.\x01"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(
        aiplat_subject_validate(bad[i]) == AIPLAT_ERR_INVALID_ARGUMENT,
        "subject %zu accepted", i);
  const char *filters[] = {
      "a.*", "a.>", "*", ">", "ai.*.response.r1", "ai.chat.user.*.message"};
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
    ck_assert_msg(aiplat_subject_validate_filter(filters[i]) == AIPLAT_OK,
                  "filter %zu refused: %s", i, last());
  const char *bad_filters[] = {"a.>.b", ">.a", "a.b*", "a.*b", "a..*", "a.>>"};
  for (size_t i = 0; i < sizeof bad_filters / sizeof bad_filters[0]; i++)
    ck_assert_msg(aiplat_subject_validate_filter(bad_filters[i]) ==
                      AIPLAT_ERR_INVALID_ARGUMENT,
                  "filter %zu accepted", i);
  ck_assert_int_eq(aiplat_subject_validate_filter("a.>.b"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "last token"));
  ck_assert_int_eq(aiplat_subject_validate("ai.chat.u\x01"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "token 2"));
  ck_assert_int_eq(aiplat_subject_validate(NULL), AIPLAT_ERR_INVALID_ARGUMENT);
  static char huge[AIPLAT_SUBJECT_MAX + 2];
  for (size_t i = 0; i < sizeof huge - 1; i++)
    huge[i] = (i % 100 == 99) ? '.' : 'a';
  ck_assert_int_eq(aiplat_subject_validate(huge), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "longer than"));
}
END_TEST

START_TEST(token_at) {
  char *t = NULL;
  ck_assert_int_eq(aiplat_subject_token_at(&t, "ai.chat.user.u1.message", 3),
                   AIPLAT_OK);
  ck_assert_str_eq(t, "u1");
  aiplat_free(t);
  ck_assert_int_eq(aiplat_subject_token_at(&t, "ai.chat", 0), AIPLAT_OK);
  ck_assert_str_eq(t, "ai");
  aiplat_free(t);
  ck_assert_int_eq(aiplat_subject_token_at(&t, "ai.chat", 1), AIPLAT_OK);
  ck_assert_str_eq(t, "chat");
  aiplat_free(t);
  ck_assert_int_eq(aiplat_subject_token_at(&t, "ai.chat", 2),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(t);
  ck_assert_int_eq(aiplat_subject_token_at(&t, "ai..chat", 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("subject");
  TCase *tc = tcase_create("subject");
  tcase_add_test(tc, token_check_rejects_hostile_tokens);
  tcase_add_test(tc, token_length_limit);
  tcase_add_test(tc, token_check_accepts_ordinary_tokens);
  tcase_add_test(tc, seed_subjects);
  tcase_add_test(tc, join_checks_every_token);
  tcase_add_test(tc, validate_subjects_and_filters);
  tcase_add_test(tc, token_at);
  suite_add_tcase(s, tc);
  return s;
}
