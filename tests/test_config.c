/* Configuration: defaults, environment, NAME_FILE, typed getters, errors. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness/testutil.h"

static aiplat_config *cfg;
static char msg[512];

static void setup(void) {
  static const char *const vars[] = {"HEALTH_PORT", "NATS_URL", "NATS_TOKEN",
                                     "NATS_TOKEN_FILE", "LLM_TIMEOUT", "X_TEST",
                                     "X_TEST_FILE", "MILVUS_TLS", "VECTOR_STORE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  msg[0] = '\0';
}

static void teardown(void) {
  aiplat_config_destroy(cfg);
  cfg = NULL;
}

static const char *errmsg(void) {
  aiplat_config_last_error(cfg, msg, sizeof msg);
  return msg;
}

static char *write_temp(const char *content, size_t len) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/aiplat-cfg-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
  close(fd);
  return path;
}

START_TEST(seed_defaults) {
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "NATS_URL", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "nats://localhost:4222");
  ck_assert_int_eq(aiplat_config_get_url(cfg, "VLLM_URL", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "http://localhost:8000");
  ck_assert_int_eq(aiplat_config_get_string(cfg, "MILVUS_HOST", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "localhost");
  int64_t n;
  ck_assert_int_eq(aiplat_config_get_int(cfg, "MILVUS_PORT", 1, 65535, &n), AIPLAT_OK);
  ck_assert_int_eq(n, 19530);
  ck_assert_int_eq(aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &n), AIPLAT_OK);
  ck_assert_int_eq(n, 8080);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "LOG_LEVEL", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "INFO");
  ck_assert(!aiplat_config_is_set(cfg, "HEALTH_PORT"));
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_OK);
}
END_TEST

START_TEST(environment_overrides_default) {
  TH_SETENV("HEALTH_PORT", " 9090 ");
  int64_t n;
  ck_assert_int_eq(aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &n), AIPLAT_OK);
  ck_assert_int_eq(n, 9090);
  ck_assert(aiplat_config_is_set(cfg, "HEALTH_PORT"));
}
END_TEST

START_TEST(set_overrides_environment_and_keeps_old_strings) {
  TH_SETENV("X_TEST", "from-env");
  const char *a, *b;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &a), AIPLAT_OK);
  ck_assert_str_eq(a, "from-env");
  ck_assert_int_eq(aiplat_config_set(cfg, "X_TEST", "explicit"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &b), AIPLAT_OK);
  ck_assert_str_eq(b, "explicit");
  ck_assert_str_eq(a, "from-env"); /* still valid */
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "HEALTH_PORT", &b), AIPLAT_OK);
  ck_assert_str_eq(b, "8080");
  ck_assert_int_eq(aiplat_config_get_string(cfg, "NOT_IN_TABLE", &b), AIPLAT_OK);
  ck_assert_ptr_null(b);
}
END_TEST

START_TEST(file_secret) {
  char *path = write_temp("s3cr3t-token\n", 13);
  TH_SETENV("NATS_TOKEN_FILE", path);
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "NATS_TOKEN", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "s3cr3t-token");
  ck_assert(aiplat_config_is_set(cfg, "NATS_TOKEN"));
  ck_assert(aiplat_config_is_secret("NATS_TOKEN"));
  unlink(path);
}
END_TEST

START_TEST(file_unreadable) {
  TH_SETENV("X_TEST_FILE", "/nonexistent/dir/secret");
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "X_TEST_FILE"));
  ck_assert_ptr_nonnull(strstr(msg, "/nonexistent/dir/secret"));
  TH_SETENV("X_TEST_FILE", "/tmp"); /* a directory */
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "X_TEST_FILE"));
}
END_TEST

START_TEST(file_and_variable_both_set) {
  char *path = write_temp("a", 1);
  TH_SETENV("X_TEST", "b");
  TH_SETENV("X_TEST_FILE", path);
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "both X_TEST and X_TEST_FILE"));
  unlink(path);
}
END_TEST

START_TEST(file_too_long_or_binary) {
  static char big[AIPLAT_CONFIG_MAX_FILE_VALUE + 10];
  memset(big, 'a', sizeof big);
  char *path = write_temp(big, sizeof big);
  TH_SETENV("X_TEST_FILE", path);
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "longer than"));
  unlink(path);
  path = write_temp("ab\0cd", 5);
  TH_SETENV("X_TEST_FILE", path);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "NUL byte"));
  unlink(path);
}
END_TEST

START_TEST(overlong_environment_value) {
  static char big[AIPLAT_CONFIG_MAX_VALUE + 2];
  memset(big, 'x', sizeof big - 1);
  TH_SETENV("X_TEST", big);
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "X_TEST", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "longer than 4096"));
  ck_assert_int_eq(aiplat_config_set(cfg, "X_TEST", big), AIPLAT_ERR_CONFIG);
}
END_TEST

START_TEST(int_range_and_garbage) {
  int64_t n;
  TH_SETENV("HEALTH_PORT", "70000");
  ck_assert_int_eq(aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &n), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "HEALTH_PORT=\"70000\""));
  ck_assert_ptr_nonnull(strstr(msg, "out of range [0, 65535]"));
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_ERR_CONFIG);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", "80x"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &n), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "not an integer"));
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", "99999999999999999999999"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &n), AIPLAT_ERR_CONFIG);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", ""), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &n), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "HEALTH_PORT is not set"));
}
END_TEST

START_TEST(doubles_and_bools) {
  double d;
  bool b;
  ck_assert_int_eq(aiplat_config_get_double(cfg, "LLM_TEMPERATURE", 0, 2, &d), AIPLAT_OK);
  ck_assert(d > 0.69 && d < 0.71);
  ck_assert_int_eq(aiplat_config_set(cfg, "LLM_TEMPERATURE", "nan"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_double(cfg, "LLM_TEMPERATURE", 0, 2, &d), AIPLAT_ERR_CONFIG);
  ck_assert_int_eq(aiplat_config_set(cfg, "LLM_TEMPERATURE", "3"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_double(cfg, "LLM_TEMPERATURE", 0, 2, &d), AIPLAT_ERR_CONFIG);
  const char *yes[] = {"true", "TRUE", "1", "yes", "On"};
  const char *no[] = {"false", "0", "NO", "off"};
  for (size_t i = 0; i < 5; i++) {
    ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_TLS", yes[i]), AIPLAT_OK);
    ck_assert_int_eq(aiplat_config_get_bool(cfg, "MILVUS_TLS", &b), AIPLAT_OK);
    ck_assert(b);
  }
  for (size_t i = 0; i < 4; i++) {
    ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_TLS", no[i]), AIPLAT_OK);
    ck_assert_int_eq(aiplat_config_get_bool(cfg, "MILVUS_TLS", &b), AIPLAT_OK);
    ck_assert(!b);
  }
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_TLS", "maybe"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_bool(cfg, "MILVUS_TLS", &b), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "MILVUS_TLS"));
}
END_TEST

START_TEST(durations) {
  static const struct { const char *text; int64_t ms; } good[] = {
      {"30s", 30000}, {"500ms", 500}, {"1.5s", 1500}, {"2m", 120000},
      {"1h30m", 5400000}, {"0s", 0}, {" 10s ", 10000}, {"1m30s250ms", 90250},
      /* fractions of a millisecond round to the nearest, halves up */
      {"0.4ms", 0}, {"0.5ms", 1}, {"2.5ms", 3}, {"0.0015s", 2}, {"1.4999ms", 1}};
  static const char *const bad[] = {"30", "", "s", "-5s", "5x", "5 s", "1e3s",
                                    "abc", "10sec", "5s5", "1.2.3s"};
  int64_t ms;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_msg(aiplat_duration_parse_ms(good[i].text, &ms) == AIPLAT_OK, "%s", good[i].text);
    ck_assert_int_eq(ms, good[i].ms);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(aiplat_duration_parse_ms(bad[i], &ms) == AIPLAT_ERR_CONFIG, "%s", bad[i]);
  ck_assert_int_eq(aiplat_config_get_duration_ms(cfg, "LLM_TIMEOUT", &ms), AIPLAT_OK);
  ck_assert_int_eq(ms, 120000);
  TH_SETENV("LLM_TIMEOUT", "soon");
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_get_duration_ms(cfg, "LLM_TIMEOUT", &ms), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "LLM_TIMEOUT=\"soon\""));
  ck_assert_ptr_nonnull(strstr(msg, "not a duration"));
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_ERR_CONFIG);
}
END_TEST

START_TEST(urls) {
  static const char *const good[] = {"http://a", "https://host.example:8443/v1",
                                     "nats://user:pw@10.0.0.1:4222", "http://[::1]:8000",
                                     "http://my_host-1.svc.cluster.local:8000/v1/"};
  static const char *const bad[] = {"localhost:8000", "ftp://x", "http://",
                                    "http://host:0", "http://host:65536", "http://host:abc",
                                    "http://ho st", "http://host:", "http://[::1",
                                    "http://h\x01"};
  const char *v;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_int_eq(aiplat_config_set(cfg, "VLLM_URL", good[i]), AIPLAT_OK);
    ck_assert_msg(aiplat_config_get_url(cfg, "VLLM_URL", &v) == AIPLAT_OK, "%s: %s", good[i], errmsg());
    ck_assert_str_eq(v, good[i]);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(aiplat_config_set(cfg, "VLLM_URL", bad[i]), AIPLAT_OK);
    ck_assert_msg(aiplat_config_get_url(cfg, "VLLM_URL", &v) == AIPLAT_ERR_CONFIG, "%s", bad[i]);
    ck_assert_ptr_nonnull(strstr(errmsg(), "VLLM_URL"));
  }
  ck_assert_int_eq(aiplat_config_set(cfg, "VLLM_URL", NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_URL", "nats://a:4222, nats://b:4222"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_URL", "nats://a:4222,,nats://b"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "NATS_URL"));
}
END_TEST

START_TEST(secret_never_echoed) {
  TH_SETENV("MILVUS_TOKEN", "root:Milvus-s3cret");
  TH_SETENV("X_TEST_PASSWORD", "hunter2");
  int64_t n;
  ck_assert_int_eq(aiplat_config_get_int(cfg, "MILVUS_TOKEN", 0, 10, &n), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_null(strstr(errmsg(), "s3cret"));
  ck_assert_ptr_nonnull(strstr(msg, "MILVUS_TOKEN"));
  ck_assert_ptr_nonnull(strstr(msg, "hidden"));
  char tbuf[512];
  aiplat_error_last(tbuf, sizeof tbuf);
  ck_assert_ptr_null(strstr(tbuf, "s3cret"));
  ck_assert_int_eq(aiplat_config_get_int(cfg, "X_TEST_PASSWORD", 0, 10, &n), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_null(strstr(errmsg(), "hunter2"));
  TH_UNSETENV("MILVUS_TOKEN");
  TH_UNSETENV("X_TEST_PASSWORD");
}
END_TEST

START_TEST(required_settings) {
  const char *v = "x";
  ck_assert_int_eq(aiplat_config_require(cfg, "ARGO_URL", &v), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "ARGO_URL is required"));
  ck_assert_int_eq(aiplat_config_set(cfg, "ARGO_URL", "http://argo:2746"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_require(cfg, "ARGO_URL", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "http://argo:2746");
}
END_TEST

START_TEST(bad_names_and_handles) {
  const char *v;
  ck_assert_int_eq(aiplat_config_get_string(cfg, "lower", &v), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "A=B", &v), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_config_get_string(cfg, "", &v), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_config_get_string(cfg, NULL, &v), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_config_get_string(NULL, "X", &v), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_config_create(NULL), AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_config_destroy(NULL);
}
END_TEST

START_TEST(validate_enums_and_levels) {
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "redis"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "VECTOR_STORE"));
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "milvus"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "LOG_LEVEL", "LOUD"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_validate(cfg), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(errmsg(), "LOG_LEVEL"));
}
END_TEST

START_TEST(table_introspection) {
  size_t n = aiplat_config_setting_count();
  ck_assert_uint_gt(n, 20);
  bool found = false;
  for (size_t i = 0; i < n; i++) {
    ck_assert_ptr_nonnull(aiplat_config_setting_name(i));
    ck_assert_ptr_nonnull(aiplat_config_setting_description(i));
    if (strcmp(aiplat_config_setting_name(i), "MILVUS_PORT") == 0) {
      ck_assert_str_eq(aiplat_config_setting_default(i), "19530");
      found = true;
    }
  }
  ck_assert(found);
  ck_assert_ptr_null(aiplat_config_setting_name(n));
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, seed_defaults);
  tcase_add_test(tc, environment_overrides_default);
  tcase_add_test(tc, set_overrides_environment_and_keeps_old_strings);
  tcase_add_test(tc, file_secret);
  tcase_add_test(tc, file_unreadable);
  tcase_add_test(tc, file_and_variable_both_set);
  tcase_add_test(tc, file_too_long_or_binary);
  tcase_add_test(tc, overlong_environment_value);
  tcase_add_test(tc, int_range_and_garbage);
  tcase_add_test(tc, doubles_and_bools);
  tcase_add_test(tc, durations);
  tcase_add_test(tc, urls);
  tcase_add_test(tc, secret_never_echoed);
  tcase_add_test(tc, required_settings);
  tcase_add_test(tc, bad_names_and_handles);
  tcase_add_test(tc, validate_enums_and_levels);
  tcase_add_test(tc, table_introspection);
  suite_add_tcase(s, tc);
  return s;
}
