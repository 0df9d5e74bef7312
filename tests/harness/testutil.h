/* Small helpers shared by the Check suites. */
#ifndef TH_TESTUTIL_H
#define TH_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

Suite *make_suite(void);

/* Set or unset an environment variable inside a test. */
#define TH_SETENV(n, v) ck_assert_int_eq(setenv((n), (v), 1), 0)
#define TH_UNSETENV(n) ck_assert_int_eq(unsetenv(n), 0)

#endif
