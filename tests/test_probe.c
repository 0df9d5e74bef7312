/* The backend readiness probe (lib/probe.h): the readiness check reports
 * the latest probe, and a request whose outcome contradicts it makes the
 * probe run again at once instead of after its interval (an hour here). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/testutil.h"
#include "probe.h"

static atomic_bool up;

static bool fake_probe(char *msg, size_t msglen, void *user_data) {
  (void)user_data;
  bool ok = atomic_load(&up);
  snprintf(msg, msglen, "%s", ok ? "answers" : "unreachable");
  return ok;
}

/* Wait (a generous bound, not a measurement) until @p has run @n probes. */
static bool wait_count(aip_probe *p, uint64_t n) {
  for (int i = 0; i < 2000; i++) {
    if (aip_probe_count(p) >= n) return true;
    usleep(10000);
  }
  return false;
}

START_TEST(request_outcomes_trigger_an_immediate_recheck) {
  aiplat_config *cfg = NULL;
  aiplat_health *h = NULL;
  aip_probe *p = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", "0"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_create(&h, cfg), AIPLAT_OK);
  atomic_store(&up, true);
  ck_assert_int_eq(aip_probe_create(&p, fake_probe, NULL, NULL, 3600000),
                   AIPLAT_OK);
  aip_probe_note(p, AIPLAT_ERR_CONNECTION); /* not started: nothing */
  ck_assert(!aip_probe_ready(p));
  ck_assert_int_eq(aip_probe_add_check(p, h, "backend"), AIPLAT_OK);
  ck_assert_int_eq(aip_probe_add_check(p, h, "again"), AIPLAT_ERR_EXISTS);
  ck_assert(wait_count(p, 1));
  ck_assert(aip_probe_ready(p));

  /* Outcomes that agree with "ready" (or say nothing of the server) do not
   * probe; the next contradiction does, long before the hour is up. */
  aip_probe_note(p, AIPLAT_OK);
  aip_probe_note(p, AIPLAT_ERR_BAD_REQUEST);
  aip_probe_note(p, AIPLAT_ERR_CANCELLED);
  atomic_store(&up, false);
  aip_probe_note(p, AIPLAT_ERR_CONNECTION);
  ck_assert_msg(wait_count(p, 2), "no re-check after a connection failure");
  ck_assert_uint_eq(aip_probe_count(p), 2);
  ck_assert(!aip_probe_ready(p));

  /* Marked down: a request the server answered re-checks at once too. */
  atomic_store(&up, true);
  aip_probe_note(p, AIPLAT_ERR_BAD_REQUEST);
  ck_assert_msg(wait_count(p, 3), "no re-check after the server answered");
  ck_assert(aip_probe_ready(p));

  aiplat_health_destroy(h); /* first: it holds the check */
  aip_probe_destroy(p);
  aiplat_config_destroy(cfg);
}
END_TEST

START_TEST(destroy_without_start) {
  aip_probe *p = NULL;
  ck_assert_int_eq(aip_probe_create(&p, fake_probe, NULL, NULL, 1),
                   AIPLAT_OK);
  aip_probe_kick(p);
  aip_probe_destroy(p);
  aip_probe_destroy(NULL);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("probe");
  TCase *tc = tcase_create("probe");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, request_outcomes_trigger_an_immediate_recheck);
  tcase_add_test(tc, destroy_without_start);
  suite_add_tcase(s, tc);
  return s;
}
