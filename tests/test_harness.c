/* The nats-server harness: a real server starts on a free port, takes a
 * connection, carries a message, restarts on the same port, and stops. */
#include <check.h>
#include <nats/nats.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include "harness/nats_harness.h"
#include "harness/testutil.h"

START_TEST(start_connect_roundtrip_restart_stop) {
  th_nats *s = th_nats_start(NULL);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_gt(th_nats_port(s), 0);
  ck_assert_ptr_nonnull(strstr(th_nats_url(s), "nats://127.0.0.1:"));

  natsConnection *nc = NULL;
  ck_assert_int_eq(natsConnection_ConnectTo(&nc, th_nats_url(s)), NATS_OK);
  natsSubscription *sub = NULL;
  ck_assert_int_eq(natsConnection_SubscribeSync(&sub, nc, "harness.ping"), NATS_OK);
  ck_assert_int_eq(natsConnection_PublishString(nc, "harness.ping", "pong"), NATS_OK);
  natsMsg *m = NULL;
  ck_assert_int_eq(natsSubscription_NextMsg(&m, sub, 2000), NATS_OK);
  ck_assert_str_eq(natsMsg_GetData(m), "pong");
  natsMsg_Destroy(m);

  /* JetStream is enabled */
  jsCtx *js = NULL;
  jsAccountInfo *ai = NULL;
  ck_assert_int_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
  ck_assert_int_eq(js_GetAccountInfo(&ai, js, NULL, NULL), NATS_OK);
  jsAccountInfo_Destroy(ai);
  jsCtx_Destroy(js);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);

  int port = th_nats_port(s);
  pid_t old = th_nats_pid(s);
  ck_assert(th_nats_restart(s));
  ck_assert_int_eq(th_nats_port(s), port);
  ck_assert_int_ne(th_nats_pid(s), old);
  ck_assert_int_eq(kill(old, 0), -1); /* the old process is gone */
  ck_assert_int_eq(natsConnection_ConnectTo(&nc, th_nats_url(s)), NATS_OK);
  natsConnection_Destroy(nc);

  pid_t pid = th_nats_pid(s);
  th_nats_stop(s);
  ck_assert_int_eq(kill(pid, 0), -1);
  nats_CloseAndWait(1000);
}
END_TEST

START_TEST(extra_config_is_applied) {
  th_nats *s = th_nats_start("max_payload: 2048");
  ck_assert_ptr_nonnull(s);
  natsConnection *nc = NULL;
  ck_assert_int_eq(natsConnection_ConnectTo(&nc, th_nats_url(s)), NATS_OK);
  ck_assert_int_eq(natsConnection_GetMaxPayload(nc), 2048);
  natsConnection_Destroy(nc);
  th_nats_stop(s);
  nats_CloseAndWait(1000);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("harness");
  TCase *tc = tcase_create("nats-server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, start_connect_roundtrip_restart_stop);
  tcase_add_test(tc, extra_config_is_applied);
  suite_add_tcase(s, tc);
  return s;
}
