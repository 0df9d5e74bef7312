/* Durable mode in a three-node NATS cluster: an operator's replicated
 * stream is used as it is, and requests survive the stream leader's node. */
#include <aiplat/aiplat.h>
#include <check.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/nats_harness.h"
#include "harness/testutil.h"

#define NODES 3

static th_nats *nodes[NODES];
static char urls[512];

static void cluster_up(void) {
  if (!th_nats_cluster_start(nodes, NODES)) abort();
  th_nats_cluster_urls(nodes, NODES, urls, sizeof urls);
}

static void cluster_down(void) {
  for (int i = 0; i < NODES; i++) th_nats_stop(nodes[i]);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static aiplat_config *cluster_config(void) {
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_URL", urls), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", "0"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_RECONNECT_WAIT", "100ms"),
                   AIPLAT_OK);
  return cfg;
}

static aiplat_bus *client(void) {
  aiplat_config *cfg = cluster_config();
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  return bus;
}

/* A JetStream API request, retried while the cluster elects its leaders;
 * the decoded reply (caller releases it). */
static json_t *js_api(aiplat_bus *bus, const char *op, const char *body) {
  char subject[128];
  snprintf(subject, sizeof subject, "$JS.API.%s", op);
  for (int attempt = 0; attempt < 60; attempt++) {
    aiplat_bus_msg *reply = NULL;
    if (aiplat_bus_request(bus, subject, body, body ? strlen(body) : 0, NULL,
                           2000, &reply) == AIPLAT_OK) {
      json_t *j = json_loadb(aiplat_bus_msg_data(reply),
                             aiplat_bus_msg_len(reply), 0, NULL);
      aiplat_bus_msg_destroy(reply);
      json_t *err = json_object_get(j, "error");
      /* 503: no JetStream leader yet. */
      if (!err || json_integer_value(json_object_get(err, "code")) != 503)
        return j;
      json_decref(j);
    }
    aiplat_error_clear();
    sleep_ms(250);
  }
  ck_abort_msg("no answer to %s", op);
  return NULL;
}

static atomic_int seen;

static aiplat_status on_work(aiplat_request *req, void *ud) {
  (void)req, (void)ud;
  atomic_fetch_add(&seen, 1);
  return AIPLAT_OK;
}

START_TEST(binds_to_an_operators_r3_stream_unchanged) {
  aiplat_bus *bus = client();
  const char *create =
      "{\"name\":\"OPS3\",\"subjects\":[\"ops3.>\"],\"retention\":"
      "\"workqueue\","
      "\"max_msgs\":5000,\"storage\":\"file\",\"num_replicas\":3}";
  json_t *j = js_api(bus, "STREAM.CREATE.OPS3", create);
  ck_assert_msg(json_object_get(j, "error") == NULL, "%s", json_dumps(j, 0));
  char *before =
      json_dumps(json_object_get(j, "config"), JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(j);

  /* Two instances start at once, with the default of one replica for a
   * stream they would create. */
  aiplat_config *cfg = cluster_config();
  aiplat_service *svc[2];
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(aiplat_service_create(&svc[i], cfg, "ops3", "1.0.0", "r3"),
                     AIPLAT_OK);
    aiplat_service_set_handle_signals(svc[i], false);
    ck_assert_int_eq(aiplat_service_add_js_endpoint(
                         svc[i], "work", "OPS3", "ops3-worker", "ops3.>",
                         AIPLAT_MSG_INVALID, AIPLAT_MSG_INVALID, on_work, NULL),
                     AIPLAT_OK);
  }
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(aiplat_service_start(svc[i]), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_js_publish(bus, "ops3.a", "x", 1, NULL, NULL),
                   AIPLAT_OK);
  for (int i = 0; i < 100 && atomic_load(&seen) < 1; i++) sleep_ms(50);
  ck_assert_int_eq(atomic_load(&seen), 1);

  j = js_api(bus, "STREAM.INFO.OPS3", NULL);
  char *after =
      json_dumps(json_object_get(j, "config"), JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(j);
  ck_assert_ptr_nonnull(strstr(after, "\"num_replicas\":3"));
  ck_assert_str_eq(after, before);
  free(before);
  free(after);
  for (int i = 0; i < 2; i++) {
    aiplat_service_stop(svc[i]);
    ck_assert_int_eq(aiplat_service_run(svc[i]), AIPLAT_OK);
    aiplat_service_destroy(svc[i]);
  }
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("cluster");
  TCase *tc = tcase_create("r3");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
  tcase_add_test(tc, binds_to_an_operators_r3_stream_unchanged);
  suite_add_tcase(s, tc);
  return s;
}
