/* Structured logging: format, levels, redaction, callback. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <string.h>

#include "harness/testutil.h"

static char last[4096];
static int count;
static aiplat_log_level last_level;

static void capture(aiplat_log_level level, const char *record, size_t len,
                    void *ud) {
  ck_assert_uint_eq(strlen(record), len);
  snprintf(last, sizeof last, "%s", record);
  last_level = level;
  count++;
  (*(int *)ud)++;
  aiplat_log(AIPLAT_LOG_ERROR, "re-entered"); /* must be dropped */
}

static int calls;

static void setup(void) {
  last[0] = '\0';
  count = calls = 0;
  aiplat_log_set_callback(capture, &calls);
  aiplat_log_set_level(AIPLAT_LOG_DEBUG);
  aiplat_log_set_service("test-svc");
}

static void teardown(void) {
  aiplat_log_set_callback(NULL, NULL);
  aiplat_log_set_service(NULL);
  aiplat_log_set_thread_context(NULL, NULL);
}

static json_t *parse_last(void) {
  json_error_t err;
  json_t *j = json_loads(last, 0, &err);
  ck_assert_msg(j != NULL, "not JSON: %s (%s)", last, err.text);
  return j;
}

START_TEST(record_is_one_json_object) {
  aiplat_log(AIPLAT_LOG_INFO, "hello \"world\"\n\x01");
  ck_assert_int_eq(count, 1);
  ck_assert_int_eq(calls, 1);
  ck_assert_int_eq(last_level, AIPLAT_LOG_INFO);
  ck_assert_ptr_null(strchr(last, '\n'));
  json_t *j = parse_last();
  ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "INFO");
  ck_assert_str_eq(json_string_value(json_object_get(j, "service")), "test-svc");
  ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "hello \"world\"\n\x01");
  const char *ts = json_string_value(json_object_get(j, "ts"));
  ck_assert_ptr_nonnull(ts);
  ck_assert_uint_eq(strlen(ts), 24); /* 2026-11-26T09:30:00.123Z */
  ck_assert_int_eq(ts[10], 'T');
  ck_assert_int_eq(ts[23], 'Z');
  json_decref(j);
}
END_TEST

START_TEST(fields_and_secrets) {
  const char *keys[] = {"user", "api_key", "NATS_PASSWORD", "Authorization",
                        "empty", "msg"};
  const char *vals[] = {"alice", "sk-123", "hunter2", "Bearer x", NULL, "spoof"};
  aiplat_log_fields(AIPLAT_LOG_WARNING, "m", keys, vals, 6);
  json_t *j = parse_last();
  ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "WARNING");
  ck_assert_str_eq(json_string_value(json_object_get(j, "user")), "alice");
  ck_assert_str_eq(json_string_value(json_object_get(j, "api_key")), "[REDACTED]");
  ck_assert_str_eq(json_string_value(json_object_get(j, "NATS_PASSWORD")), "[REDACTED]");
  ck_assert_str_eq(json_string_value(json_object_get(j, "Authorization")), "[REDACTED]");
  ck_assert(json_is_null(json_object_get(j, "empty")));
  ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "m");
  ck_assert_str_eq(json_string_value(json_object_get(j, "field.msg")), "spoof");
  ck_assert_ptr_null(strstr(last, "sk-123"));
  ck_assert_ptr_null(strstr(last, "hunter2"));
  json_decref(j);
}
END_TEST

START_TEST(secret_keys) {
  ck_assert(aiplat_log_key_is_secret("MILVUS_TOKEN"));
  ck_assert(aiplat_log_key_is_secret("nkey_seed"));
  ck_assert(aiplat_log_key_is_secret("client_secret"));
  ck_assert(!aiplat_log_key_is_secret("user_id"));
  ck_assert(!aiplat_log_key_is_secret("subject"));
  ck_assert(!aiplat_log_key_is_secret(NULL));
}
END_TEST

START_TEST(level_filter) {
  aiplat_log_set_level(AIPLAT_LOG_WARNING);
  aiplat_log(AIPLAT_LOG_DEBUG, "d");
  aiplat_log(AIPLAT_LOG_INFO, "i");
  ck_assert_int_eq(count, 0);
  aiplat_log(AIPLAT_LOG_ERROR, "e");
  ck_assert_int_eq(count, 1);
  ck_assert_int_eq(aiplat_log_get_level(), AIPLAT_LOG_WARNING);
}
END_TEST

START_TEST(level_names) {
  aiplat_log_level lv;
  ck_assert_int_eq(aiplat_log_level_parse("debug", &lv), AIPLAT_OK);
  ck_assert_int_eq(lv, AIPLAT_LOG_DEBUG);
  ck_assert_int_eq(aiplat_log_level_parse("WARN", &lv), AIPLAT_OK);
  ck_assert_int_eq(lv, AIPLAT_LOG_WARNING);
  ck_assert_int_eq(aiplat_log_level_parse("Warning", &lv), AIPLAT_OK);
  ck_assert_int_eq(lv, AIPLAT_LOG_WARNING);
  ck_assert_int_eq(aiplat_log_level_parse("ERROR", &lv), AIPLAT_OK);
  ck_assert_int_eq(lv, AIPLAT_LOG_ERROR);
  ck_assert_int_eq(aiplat_log_level_parse("TRACE", &lv), AIPLAT_ERR_CONFIG);
  ck_assert_int_eq(aiplat_log_level_parse("", &lv), AIPLAT_ERR_CONFIG);
  ck_assert_int_eq(aiplat_log_level_parse(NULL, &lv), AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(thread_context_fields) {
  aiplat_log_set_thread_context("req-1", "0af7651916cd43dd8448eb211c80319c");
  aiplat_log(AIPLAT_LOG_INFO, "with context");
  json_t *j = parse_last();
  ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "req-1");
  ck_assert_str_eq(json_string_value(json_object_get(j, "trace_id")),
                   "0af7651916cd43dd8448eb211c80319c");
  json_decref(j);
  aiplat_log_set_thread_context(NULL, NULL);
  aiplat_log(AIPLAT_LOG_INFO, "without");
  j = parse_last();
  ck_assert_ptr_null(json_object_get(j, "request_id"));
  json_decref(j);
}
END_TEST

/* Context values of any length, replaced in any order, are logged whole:
 * short and long ids alternate, and one set to the other's value. */
START_TEST(thread_context_any_length) {
  char longid[300];
  memset(longid, 'x', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  const char *ids[] = {"short", longid, longid + 220, "s", longid + 1, NULL};
  for (size_t i = 0; ids[i]; i++) {
    aiplat_log_set_thread_context(ids[i], ids[i]);
    aiplat_log(AIPLAT_LOG_INFO, "ctx");
    json_t *j = parse_last();
    ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), ids[i]);
    ck_assert_str_eq(json_string_value(json_object_get(j, "trace_id")), ids[i]);
    json_decref(j);
  }
  aiplat_log_set_thread_context(longid, NULL);
  aiplat_log(AIPLAT_LOG_INFO, "half");
  json_t *j = parse_last();
  ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), longid);
  ck_assert_ptr_null(json_object_get(j, "trace_id"));
  json_decref(j);
}
END_TEST

START_TEST(level_from_environment) {
  TH_SETENV("LOG_LEVEL", "error");
  aiplat_log_reset_level();
  aiplat_log(AIPLAT_LOG_WARNING, "w");
  ck_assert_int_eq(count, 0);
  aiplat_log(AIPLAT_LOG_ERROR, "e");
  ck_assert_int_eq(count, 1);
  TH_SETENV("LOG_LEVEL", "nonsense"); /* invalid: INFO */
  aiplat_log_reset_level();
  ck_assert_int_eq(aiplat_log_get_level(), AIPLAT_LOG_INFO);
  TH_UNSETENV("LOG_LEVEL");
  aiplat_log_reset_level();
  ck_assert_int_eq(aiplat_log_get_level(), AIPLAT_LOG_INFO);
  TH_SETENV("LOG_LEVEL", "DEBUG");
  aiplat_log_reset_level();
  ck_assert_int_eq(aiplat_log_get_level(), AIPLAT_LOG_DEBUG);
  TH_UNSETENV("LOG_LEVEL");
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("log");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, record_is_one_json_object);
  tcase_add_test(tc, fields_and_secrets);
  tcase_add_test(tc, secret_keys);
  tcase_add_test(tc, level_filter);
  tcase_add_test(tc, level_names);
  tcase_add_test(tc, thread_context_fields);
  tcase_add_test(tc, thread_context_any_length);
  tcase_add_test(tc, level_from_environment);
  suite_add_tcase(s, tc);
  return s;
}
