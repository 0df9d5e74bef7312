/* Shared main() for Check suites: each test file defines make_suite(). */
#include <check.h>
#include <stdlib.h>

Suite *make_suite(void);

int main(void) {
  SRunner *sr = srunner_create(make_suite());
  /* Leave CK_FORK to the environment (valgrind runs set CK_FORK=no). */
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
