/* Status codes, error detail, version, init/cleanup. */
#include <aiplat/aiplat.h>
#include <string.h>

#include "harness/testutil.h"

START_TEST(status_strings_are_static_and_distinct) {
  ck_assert_str_eq(aiplat_status_str(AIPLAT_OK), "success");
  for (int a = 0; a <= AIPLAT_ERR_INTERNAL; a++) {
    const char *sa = aiplat_status_str((aiplat_status)a);
    ck_assert_ptr_nonnull(sa);
    ck_assert_str_ne(sa, "unknown status");
    for (int b = a + 1; b <= AIPLAT_ERR_INTERNAL; b++)
      ck_assert_str_ne(sa, aiplat_status_str((aiplat_status)b));
  }
  ck_assert_str_eq(aiplat_status_str((aiplat_status)9999), "unknown status");
  ck_assert_str_eq(aiplat_status_str((aiplat_status)-1), "unknown status");
}
END_TEST

START_TEST(exit_codes_are_pinned_and_mapped) {
  /* One convention for every program (docs/exit-status.md). */
  ck_assert_int_eq(AIPLAT_EXIT_OK, 0);
  ck_assert_int_eq(AIPLAT_EXIT_FAILURE, 1);
  ck_assert_int_eq(AIPLAT_EXIT_USAGE, 2);
  ck_assert_int_eq(AIPLAT_EXIT_UNAVAILABLE, 3);
  ck_assert_int_eq(AIPLAT_EXIT_CONFIG, 4);
  ck_assert_int_eq(AIPLAT_EXIT_IO, 5);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_OK), 0);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_CONFIG), 4);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_AUTH), 4);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_CONNECTION), 3);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_TIMEOUT), 3);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_UNAVAILABLE), 3);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_INVALID_ARGUMENT), 2);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_IO), 5);
  ck_assert_int_eq(aiplat_status_exit_code(AIPLAT_ERR_SERVER), 1);
  ck_assert_int_eq(aiplat_status_exit_code((aiplat_status)9999), 1);
}
END_TEST

START_TEST(status_values_are_pinned) {
  /* These numbers are ABI: a change here is a break. */
  ck_assert_int_eq(AIPLAT_OK, 0);
  ck_assert_int_eq(AIPLAT_ERR_INVALID_ARGUMENT, 1);
  ck_assert_int_eq(AIPLAT_ERR_CONFIG, 3);
  ck_assert_int_eq(AIPLAT_ERR_TIMEOUT, 6);
  ck_assert_int_eq(AIPLAT_ERR_DECODE, 9);
  ck_assert_int_eq(AIPLAT_ERR_UNAVAILABLE, 15);
  ck_assert_int_eq(AIPLAT_ERR_INTERNAL, 23);
}
END_TEST

START_TEST(error_last_is_per_thread_and_truncates) {
  aiplat_error_clear();
  char buf[64] = "x";
  ck_assert_int_eq(aiplat_error_last(buf, sizeof buf), AIPLAT_OK);
  ck_assert_str_eq(buf, "");
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "bad name", "x"), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_error_last(buf, sizeof buf), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(buf, "invalid setting name"));
  char tiny[5];
  ck_assert_int_eq(aiplat_error_last(tiny, sizeof tiny), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(strlen(tiny), 4);
  ck_assert_int_eq(aiplat_error_last(NULL, 0), AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_error_clear();
  ck_assert_int_eq(aiplat_error_last(buf, sizeof buf), AIPLAT_OK);
  aiplat_config_destroy(cfg);
}
END_TEST

#include <pthread.h>
static void *other_thread(void *arg) {
  char buf[64];
  *(aiplat_status *)arg = aiplat_error_last(buf, sizeof buf);
  return NULL;
}

START_TEST(error_last_does_not_cross_threads) {
  aiplat_status dummy;
  ck_assert_int_eq(aiplat_log_level_parse("LOUD", (aiplat_log_level *)&dummy),
                   AIPLAT_ERR_CONFIG);
  aiplat_status seen = AIPLAT_ERR_INTERNAL;
  pthread_t t;
  pthread_create(&t, NULL, other_thread, &seen);
  pthread_join(t, NULL);
  ck_assert_int_eq(seen, AIPLAT_OK);
  char buf[8];
  ck_assert_int_eq(aiplat_error_last(buf, sizeof buf), AIPLAT_ERR_CONFIG);
}
END_TEST

START_TEST(version_matches_macros) {
  ck_assert_str_eq(aiplat_version_string(), AIPLAT_VERSION_STRING);
  ck_assert_uint_eq(aiplat_version_number(), AIPLAT_VERSION_NUMBER);
  ck_assert_uint_eq(aiplat_version_number() >> 16, AIPLAT_VERSION_MAJOR);
  ck_assert_uint_eq((aiplat_version_number() >> 8) & 0xff, AIPLAT_VERSION_MINOR);
}
END_TEST

START_TEST(init_is_reference_counted) {
  ck_assert_int_eq(aiplat_init(), AIPLAT_OK);
  ck_assert_int_eq(aiplat_init(), AIPLAT_OK);
  aiplat_cleanup();
  aiplat_cleanup();
  aiplat_cleanup(); /* an extra cleanup is harmless */
  ck_assert_int_eq(aiplat_init(), AIPLAT_OK);
  aiplat_cleanup();
}
END_TEST

START_TEST(free_null_is_noop) { aiplat_free(NULL); }
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, status_strings_are_static_and_distinct);
  tcase_add_test(tc, status_values_are_pinned);
  tcase_add_test(tc, exit_codes_are_pinned_and_mapped);
  tcase_add_test(tc, error_last_is_per_thread_and_truncates);
  tcase_add_test(tc, error_last_does_not_cross_threads);
  tcase_add_test(tc, version_matches_macros);
  tcase_add_test(tc, init_is_reference_counted);
  tcase_add_test(tc, free_null_is_noop);
  suite_add_tcase(s, tc);
  return s;
}
