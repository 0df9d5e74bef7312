/* Options objects against a real nats-server: each typed setter refuses
 * what it cannot take; a JetStream endpoint honours its delivery limit and
 * nak backoff, and with bind-only neither creates nor changes a stream;
 * streams, consumers and Key-Value buckets get the settings of their
 * options, as the JetStream API reports them. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_testutil.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"

static th_nats *server;
static aiplat_bus *bus;

static void start_server(void) {
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
}

static void stop_server(void) {
  th_nats_stop(server);
  server = NULL;
}

static void setup(void) { bus = tu_connect(th_nats_url(server)); }

static void teardown(void) {
  aiplat_bus_destroy(bus);
  bus = NULL;
}

/* @st is ::AIPLAT_ERR_INVALID_ARGUMENT with a message. */
static void assert_refused(aiplat_status st, const char *call) {
  char why[512] = "";
  aiplat_error_last(why, sizeof why);
  ck_assert_msg(st == AIPLAT_ERR_INVALID_ARGUMENT, "%s: %s", call,
                aiplat_status_str(st));
  ck_assert_msg(why[0] != '\0', "%s: no message", call);
}

#define REFUSED(call) assert_refused((call), #call)
#define ACCEPTED(call) ck_assert_int_eq((call), AIPLAT_OK)

/* A JetStream API request; the decoded reply (caller releases it). */
static json_t *js_api(const char *op) {
  char subject[160];
  snprintf(subject, sizeof subject, "$JS.API.%s", op);
  aiplat_bus_msg *reply = NULL;
  ck_assert_int_eq(
      aiplat_bus_request(bus, subject, NULL, 0, NULL, 5000, &reply), AIPLAT_OK);
  json_t *j = json_loadb(aiplat_bus_msg_data(reply), aiplat_bus_msg_len(reply),
                         0, NULL);
  aiplat_bus_msg_destroy(reply);
  ck_assert_ptr_nonnull(j);
  return j;
}

/* The configuration of stream @name (caller releases it), or NULL when the
 * server has no such stream. */
static json_t *stream_config(const char *name) {
  char op[128];
  snprintf(op, sizeof op, "STREAM.INFO.%s", name);
  json_t *info = js_api(op);
  json_t *cfg = json_incref(json_object_get(info, "config"));
  json_decref(info);
  return cfg;
}

static json_int_t int_of(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  ck_assert_msg(json_is_integer(v), "no integer %s", key);
  return json_integer_value(v);
}

static const char *str_of(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  ck_assert_msg(json_is_string(v), "no string %s", key);
  return json_string_value(v);
}

/* ---- setters ---------------------------------------------------------------- */

START_TEST(endpoint_setters_validate) {
  aiplat_endpoint_options *o = NULL;
  REFUSED(aiplat_endpoint_options_create(NULL));
  ACCEPTED(aiplat_endpoint_options_create(&o));
  REFUSED(aiplat_endpoint_options_set_queue_group(NULL, "q"));
  REFUSED(aiplat_endpoint_options_set_queue_group(o, "a b"));
  REFUSED(aiplat_endpoint_options_set_queue_group(o, ""));
  ACCEPTED(aiplat_endpoint_options_set_queue_group(o, "workers"));
  ACCEPTED(aiplat_endpoint_options_set_queue_group(o, NULL));
  REFUSED(aiplat_endpoint_options_set_types(o, (aiplat_msg_type)9999,
                                            AIPLAT_MSG_INVALID));
  REFUSED(aiplat_endpoint_options_set_types(o, AIPLAT_MSG_INVALID,
                                            (aiplat_msg_type)-5));
  ACCEPTED(aiplat_endpoint_options_set_types(o, AIPLAT_MSG_CHAT_REQUEST,
                                             AIPLAT_MSG_CHAT_RESPONSE));
  REFUSED(aiplat_endpoint_options_set_jetstream(o, NULL, "d"));
  REFUSED(aiplat_endpoint_options_set_jetstream(o, "S", NULL));
  REFUSED(aiplat_endpoint_options_set_jetstream(o, "a.b", "d"));
  REFUSED(aiplat_endpoint_options_set_jetstream(o, "S", "d*"));
  ACCEPTED(aiplat_endpoint_options_set_jetstream(o, "S", "d"));
  REFUSED(aiplat_endpoint_options_set_max_deliver(o, 0));
  REFUSED(aiplat_endpoint_options_set_max_deliver(o, -1));
  REFUSED(aiplat_endpoint_options_set_max_deliver(o, 1001));
  ACCEPTED(aiplat_endpoint_options_set_max_deliver(o, 1));
  REFUSED(aiplat_endpoint_options_set_nak_backoff_ms(o, 0, 10));
  REFUSED(aiplat_endpoint_options_set_nak_backoff_ms(o, 20, 10));
  REFUSED(aiplat_endpoint_options_set_nak_backoff_ms(o, 1, 3600001));
  ACCEPTED(aiplat_endpoint_options_set_nak_backoff_ms(o, 10, 10));
  REFUSED(aiplat_endpoint_options_set_ack_wait_ms(o, -1));
  REFUSED(aiplat_endpoint_options_set_ack_wait_ms(o, 7 * 86400000LL + 1));
  ACCEPTED(aiplat_endpoint_options_set_ack_wait_ms(o, 0));
  REFUSED(aiplat_endpoint_options_set_bind_only(NULL, true));
  ACCEPTED(aiplat_endpoint_options_set_bind_only(o, true));
  aiplat_endpoint_options_destroy(o);
  aiplat_endpoint_options_destroy(NULL);
}
END_TEST

START_TEST(bus_setters_validate) {
  aiplat_stream_options *so = NULL;
  REFUSED(aiplat_stream_options_create(NULL));
  ACCEPTED(aiplat_stream_options_create(&so));
  const char *good[] = {"a.b", "c.>"};
  const char *bad[] = {"a.b", "a b"};
  REFUSED(aiplat_stream_options_set_subjects(so, NULL, 1));
  REFUSED(aiplat_stream_options_set_subjects(so, good, 0));
  REFUSED(aiplat_stream_options_set_subjects(so, good, 1025));
  REFUSED(aiplat_stream_options_set_subjects(so, bad, 2));
  ACCEPTED(aiplat_stream_options_set_subjects(so, good, 2));
  ACCEPTED(aiplat_stream_options_set_subjects(so, good, 1)); /* replaces */
  REFUSED(aiplat_stream_options_set_max_age_ms(so, -1));
  REFUSED(aiplat_stream_options_set_max_age_ms(so, INT64_MAX));
  ACCEPTED(aiplat_stream_options_set_max_age_ms(so, 0));
  REFUSED(aiplat_stream_options_set_retention(so, (aiplat_bus_retention)3));
  ACCEPTED(aiplat_stream_options_set_retention(
      so, AIPLAT_BUS_RETENTION_INTEREST));
  REFUSED(aiplat_stream_options_set_replicas(so, 0));
  REFUSED(aiplat_stream_options_set_replicas(so, 6));
  ACCEPTED(aiplat_stream_options_set_replicas(so, 3));
  REFUSED(aiplat_stream_options_set_storage(so, (aiplat_bus_storage)2));
  ACCEPTED(aiplat_stream_options_set_storage(so, AIPLAT_BUS_STORAGE_MEMORY));
  REFUSED(aiplat_stream_options_set_replicas(NULL, 1));
  aiplat_stream_options_destroy(so);
  aiplat_stream_options_destroy(NULL);

  aiplat_consumer_options *co = NULL;
  REFUSED(aiplat_consumer_options_create(NULL));
  ACCEPTED(aiplat_consumer_options_create(&co));
  REFUSED(aiplat_consumer_options_set_durable(co, NULL));
  REFUSED(aiplat_consumer_options_set_durable(co, "a.b"));
  ACCEPTED(aiplat_consumer_options_set_durable(co, "worker"));
  REFUSED(aiplat_consumer_options_set_filter_subject(co, "a..b"));
  ACCEPTED(aiplat_consumer_options_set_filter_subject(co, "a.*"));
  ACCEPTED(aiplat_consumer_options_set_filter_subject(co, NULL));
  REFUSED(aiplat_consumer_options_set_ack_wait_ms(co, 0));
  REFUSED(aiplat_consumer_options_set_ack_wait_ms(co, 7 * 86400000LL + 1));
  ACCEPTED(aiplat_consumer_options_set_ack_wait_ms(co, 1));
  REFUSED(aiplat_consumer_options_set_max_deliver(co, 0));
  REFUSED(aiplat_consumer_options_set_max_deliver(co, -2));
  ACCEPTED(aiplat_consumer_options_set_max_deliver(co, -1));
  REFUSED(aiplat_consumer_options_set_backoff_ms(co, 0, 5));
  REFUSED(aiplat_consumer_options_set_backoff_ms(co, 5, 4));
  ACCEPTED(aiplat_consumer_options_set_backoff_ms(co, 5, 5));
  ACCEPTED(aiplat_consumer_options_set_backoff_ms(co, 0, 0));
  REFUSED(aiplat_consumer_options_set_max_in_flight(co, 0));
  REFUSED(aiplat_consumer_options_set_max_in_flight(co, 65537));
  ACCEPTED(aiplat_consumer_options_set_max_in_flight(co, 65536));
  aiplat_consumer_options_destroy(co);
  aiplat_consumer_options_destroy(NULL);

  aiplat_kv_options *ko = NULL;
  REFUSED(aiplat_kv_options_create(NULL));
  ACCEPTED(aiplat_kv_options_create(&ko));
  REFUSED(aiplat_kv_options_set_ttl_ms(ko, -1));
  ACCEPTED(aiplat_kv_options_set_ttl_ms(ko, 0));
  REFUSED(aiplat_kv_options_set_history(ko, 0));
  REFUSED(aiplat_kv_options_set_history(ko, 65));
  ACCEPTED(aiplat_kv_options_set_history(ko, 64));
  REFUSED(aiplat_kv_options_set_replicas(ko, 0));
  REFUSED(aiplat_kv_options_set_replicas(ko, 6));
  ACCEPTED(aiplat_kv_options_set_replicas(ko, 1));
  aiplat_kv_options_destroy(ko);
  aiplat_kv_options_destroy(NULL);
}
END_TEST

/* ---- streams, consumers, buckets ------------------------------------------ */

START_TEST(stream_ensure_with_applies_the_options) {
  aiplat_stream_options *o = NULL;
  ACCEPTED(aiplat_stream_options_create(&o));
  const char *subjects[] = {"opt.jobs.>", "opt.more"};
  ACCEPTED(aiplat_stream_options_set_subjects(o, subjects, 2));
  ACCEPTED(aiplat_stream_options_set_max_age_ms(o, 60000));
  ACCEPTED(aiplat_stream_options_set_retention(o,
                                               AIPLAT_BUS_RETENTION_WORK_QUEUE));
  ACCEPTED(aiplat_stream_options_set_replicas(o, 1));
  ACCEPTED(aiplat_stream_options_set_storage(o, AIPLAT_BUS_STORAGE_MEMORY));
  aiplat_status st = aiplat_bus_stream_ensure_with(bus, "OPTJOBS", o);
  ck_assert_msg(st == AIPLAT_OK, "ensure_with: %s", tu_bus_err(bus));
  json_t *c = stream_config("OPTJOBS");
  ck_assert_ptr_nonnull(c);
  ck_assert_str_eq(str_of(c, "retention"), "workqueue");
  ck_assert_str_eq(str_of(c, "storage"), "memory");
  ck_assert_int_eq(int_of(c, "num_replicas"), 1);
  ck_assert_int_eq(int_of(c, "max_age"), 60000LL * 1000000);
  ck_assert_int_eq(json_array_size(json_object_get(c, "subjects")), 2);
  json_decref(c);
  /* Three replicas: passed to the server, which has no cluster for them. */
  ACCEPTED(aiplat_stream_options_set_replicas(o, 3));
  ACCEPTED(aiplat_stream_options_set_storage(o, AIPLAT_BUS_STORAGE_FILE));
  ACCEPTED(aiplat_stream_options_set_retention(o, AIPLAT_BUS_RETENTION_LIMITS));
  st = aiplat_bus_stream_ensure_with(bus, "OPTR3", o);
  ck_assert_int_ne(st, AIPLAT_OK);
  ck_assert_ptr_null(stream_config("OPTR3"));
  /* Without subjects, nothing reaches the server. */
  aiplat_stream_options *empty = NULL;
  ACCEPTED(aiplat_stream_options_create(&empty));
  REFUSED(aiplat_bus_stream_ensure_with(bus, "OPTNONE", empty));
  REFUSED(aiplat_bus_stream_ensure_with(bus, "OPTNONE", NULL));
  aiplat_stream_options_destroy(empty);
  aiplat_stream_options_destroy(o);
  ACCEPTED(aiplat_bus_stream_delete(bus, "OPTJOBS"));
}
END_TEST

static void on_nothing(aiplat_bus_msg *m, void *ud) { (void)m, (void)ud; }

START_TEST(js_subscribe_with_applies_the_options) {
  const char *subjects[] = {"optc.>"};
  ACCEPTED(aiplat_bus_stream_ensure(bus, "OPTC", subjects, 1, 0,
                                    AIPLAT_BUS_RETENTION_LIMITS));
  aiplat_consumer_options *o = NULL;
  ACCEPTED(aiplat_consumer_options_create(&o));
  aiplat_bus_sub *sub = NULL;
  /* No durable name yet. */
  REFUSED(aiplat_bus_js_subscribe_with(bus, "OPTC", o, on_nothing, NULL, &sub));
  ACCEPTED(aiplat_consumer_options_set_durable(o, "optc-worker"));
  ACCEPTED(aiplat_consumer_options_set_filter_subject(o, "optc.a"));
  ACCEPTED(aiplat_consumer_options_set_ack_wait_ms(o, 2000));
  ACCEPTED(aiplat_consumer_options_set_backoff_ms(o, 100, 400));
  /* The server wants a delivery limit with a backoff. */
  REFUSED(aiplat_bus_js_subscribe_with(bus, "OPTC", o, on_nothing, NULL, &sub));
  ACCEPTED(aiplat_consumer_options_set_max_deliver(o, 6));
  ACCEPTED(aiplat_consumer_options_set_max_in_flight(o, 3));
  aiplat_status st =
      aiplat_bus_js_subscribe_with(bus, "OPTC", o, on_nothing, NULL, &sub);
  ck_assert_msg(st == AIPLAT_OK, "js_subscribe_with: %s", tu_bus_err(bus));
  /* Read during the call only. */
  aiplat_consumer_options_destroy(o);
  json_t *info = js_api("CONSUMER.INFO.OPTC.optc-worker");
  json_t *c = json_object_get(info, "config");
  ck_assert_ptr_nonnull(c);
  ck_assert_str_eq(str_of(c, "filter_subject"), "optc.a");
  ck_assert_int_eq(int_of(c, "max_deliver"), 6);
  json_t *backoff = json_object_get(c, "backoff");
  ck_assert_int_eq(json_array_size(backoff), 3); /* 100, 200, 400 ms */
  ck_assert_int_eq(json_integer_value(json_array_get(backoff, 0)),
                   100LL * 1000000);
  ck_assert_int_eq(json_integer_value(json_array_get(backoff, 2)),
                   400LL * 1000000);
  json_decref(info);
  aiplat_bus_sub_destroy(sub);
  ACCEPTED(aiplat_bus_stream_delete(bus, "OPTC"));
}
END_TEST

START_TEST(kv_open_with_applies_the_options) {
  aiplat_kv_options *o = NULL;
  ACCEPTED(aiplat_kv_options_create(&o));
  ACCEPTED(aiplat_kv_options_set_history(o, 5));
  ACCEPTED(aiplat_kv_options_set_ttl_ms(o, 90000));
  aiplat_kv *kv = NULL;
  aiplat_status st = aiplat_kv_open_with(&kv, bus, "optbucket", o);
  ck_assert_msg(st == AIPLAT_OK, "kv_open_with: %s", tu_bus_err(bus));
  aiplat_kv_options_destroy(o);
  json_t *c = stream_config("KV_optbucket");
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(int_of(c, "max_msgs_per_subject"), 5);
  ck_assert_int_eq(int_of(c, "max_age"), 90000LL * 1000000);
  ck_assert_int_eq(int_of(c, "num_replicas"), 1);
  json_decref(c);
  ACCEPTED(aiplat_kv_put(kv, "k", "v", 1, NULL));
  aiplat_kv_destroy(kv);
  /* NULL options: the defaults (one value per key, no expiry). */
  ACCEPTED(aiplat_kv_open_with(&kv, bus, "optdefault", NULL));
  c = stream_config("KV_optdefault");
  ck_assert_int_eq(int_of(c, "max_msgs_per_subject"), 1);
  ck_assert_int_eq(int_of(c, "max_age"), 0);
  json_decref(c);
  aiplat_kv_destroy(kv);
}
END_TEST

/* ---- JetStream endpoints ---------------------------------------------------- */

static atomic_int failed_calls;

static aiplat_status on_always_fail(aiplat_request *req, void *ud) {
  (void)ud;
  atomic_fetch_add(&failed_calls, 1);
  return aiplat_request_fail(req, AIPLAT_ERR_UNAVAILABLE, "backend down");
}

static aiplat_config *service_config(void) {
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ACCEPTED(aiplat_config_set(cfg, "NATS_URL", th_nats_url(server)));
  ACCEPTED(aiplat_config_set(cfg, "HEALTH_PORT", "0"));
  ACCEPTED(aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1"));
  return cfg;
}

static aiplat_service *js_service(aiplat_config *cfg, const char *name,
                                  const char *subject,
                                  const aiplat_endpoint_options *o) {
  aiplat_service *svc = NULL;
  ACCEPTED(aiplat_service_create(&svc, cfg, name, "1.0.0", "options"));
  ACCEPTED(aiplat_service_set_handle_signals(svc, false));
  ACCEPTED(aiplat_service_set_workers(svc, 1));
  ACCEPTED(aiplat_service_add_endpoint_with(svc, "work", subject, o,
                                            on_always_fail, NULL));
  return svc;
}

START_TEST(js_endpoint_honours_max_deliver_and_backoff) {
  failed_calls = 0;
  aiplat_config *cfg = service_config();
  aiplat_endpoint_options *o = NULL;
  ACCEPTED(aiplat_endpoint_options_create(&o));
  ACCEPTED(aiplat_endpoint_options_set_jetstream(o, "OPTTRIES", "tries"));
  ACCEPTED(aiplat_endpoint_options_set_max_deliver(o, 2));
  ACCEPTED(aiplat_endpoint_options_set_nak_backoff_ms(o, 50, 100));
  aiplat_service *svc = js_service(cfg, "tries", "opt.tries.>", o);
  aiplat_endpoint_options_destroy(o); /* read by the add call only */
  aiplat_status st = aiplat_service_start(svc);
  ck_assert_msg(st == AIPLAT_OK, "start: %s", aiplat_status_str(st));
  ACCEPTED(aiplat_bus_js_publish(bus, "opt.tries.x", "job", 3, NULL, NULL));
  for (int i = 0; i < 200 && failed_calls < 2; i++) tu_sleep_ms(50);
  ck_assert_int_eq(failed_calls, 2);
  /* Twenty times the backoff: the default limit (5) would have delivered
   * it again by now. */
  tu_sleep_ms(2000);
  ck_assert_int_eq(failed_calls, 2);
  aiplat_service_stop(svc);
  ACCEPTED(aiplat_service_run(svc));
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  /* The server saw two deliveries, and gave up. */
  json_t *info = js_api("CONSUMER.INFO.OPTTRIES.tries");
  ck_assert_int_eq(int_of(json_object_get(info, "config"), "max_deliver"), 2);
  ck_assert_int_eq(int_of(json_object_get(info, "delivered"), "consumer_seq"), 2);
  json_decref(info);
  ACCEPTED(aiplat_bus_stream_delete(bus, "OPTTRIES"));
}
END_TEST

START_TEST(bind_only_never_creates_nor_changes_a_stream) {
  aiplat_config *cfg = service_config();
  aiplat_endpoint_options *o = NULL;
  ACCEPTED(aiplat_endpoint_options_create(&o));
  ACCEPTED(aiplat_endpoint_options_set_jetstream(o, "OPTBOUND", "bound"));
  ACCEPTED(aiplat_endpoint_options_set_bind_only(o, true));
  /* Missing: refused, and still missing. */
  aiplat_service *svc = js_service(cfg, "bound", "optbound.x", o);
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_ERR_NOT_FOUND);
  aiplat_service_destroy(svc);
  ck_assert_ptr_null(stream_config("OPTBOUND"));
  /* An operator's stream, with settings the service would not choose. */
  aiplat_stream_options *so = NULL;
  ACCEPTED(aiplat_stream_options_create(&so));
  const char *subjects[] = {"optbound.>"};
  ACCEPTED(aiplat_stream_options_set_subjects(so, subjects, 1));
  ACCEPTED(aiplat_stream_options_set_max_age_ms(so, 3600000));
  ACCEPTED(aiplat_stream_options_set_storage(so, AIPLAT_BUS_STORAGE_MEMORY));
  ACCEPTED(aiplat_bus_stream_ensure_with(bus, "OPTBOUND", so));
  aiplat_stream_options_destroy(so);
  json_t *before = stream_config("OPTBOUND");
  svc = js_service(cfg, "bound", "optbound.x", o);
  aiplat_endpoint_options_destroy(o);
  aiplat_status st = aiplat_service_start(svc);
  ck_assert_msg(st == AIPLAT_OK, "start: %s", aiplat_status_str(st));
  aiplat_service_stop(svc);
  ACCEPTED(aiplat_service_run(svc));
  aiplat_service_destroy(svc);
  json_t *after = stream_config("OPTBOUND");
  char *b = json_dumps(before, JSON_SORT_KEYS | JSON_COMPACT);
  char *a = json_dumps(after, JSON_SORT_KEYS | JSON_COMPACT);
  ck_assert_str_eq(a, b);
  ck_assert_str_eq(str_of(after, "retention"), "limits");
  free(a);
  free(b);
  json_decref(before);
  json_decref(after);
  aiplat_config_destroy(cfg);
  ACCEPTED(aiplat_bus_stream_delete(bus, "OPTBOUND"));
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("setters");
  tcase_add_test(tc, endpoint_setters_validate);
  tcase_add_test(tc, bus_setters_validate);
  suite_add_tcase(s, tc);
  TCase *js = tcase_create("jetstream");
  tcase_set_timeout(js, 60);
  tcase_add_unchecked_fixture(js, start_server, stop_server);
  tcase_add_checked_fixture(js, setup, teardown);
  tcase_add_test(js, stream_ensure_with_applies_the_options);
  tcase_add_test(js, js_subscribe_with_applies_the_options);
  tcase_add_test(js, kv_open_with_applies_the_options);
  tcase_add_test(js, js_endpoint_honours_max_deliver_and_backoff);
  tcase_add_test(js, bind_only_never_creates_nor_changes_a_stream);
  suite_add_tcase(s, js);
  return s;
}
