/* JetStream and Key-Value against a real nats-server: streams ensured
 * idempotently, durable pull consumers with ack, nak (with delay), term,
 * in-progress, redelivery, in-flight limits, shared durables; KV put, get,
 * delete, missing keys, TTL. No assertion depends on an upper time bound. */
#include <aiplat/aiplat.h>
#include <pthread.h>
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

static void setup(void) {
  bus = tu_connect(th_nats_url(server));
}

static void teardown(void) {
  aiplat_bus_destroy(bus);
  bus = NULL;
}

static void ensure(const char *name, const char *subject) {
  const char *subjects[] = {subject};
  aiplat_status st = aiplat_bus_stream_ensure(bus, name, subjects, 1, 0,
                                              AIPLAT_BUS_RETENTION_LIMITS);
  ck_assert_msg(st == AIPLAT_OK, "stream_ensure: %s", tu_bus_err(bus));
}

static void js_pub(const char *subject, const char *data) {
  aiplat_status st =
      aiplat_bus_js_publish(bus, subject, data, strlen(data), NULL, NULL);
  ck_assert_msg(st == AIPLAT_OK, "js_publish: %s", tu_bus_err(bus));
}

static aiplat_bus_sub *js_sub(const char *stream, const char *durable,
                              const char *filter, int64_t ack_wait_ms,
                              int max_in_flight, aiplat_bus_msg_fn fn,
                              void *ud) {
  aiplat_bus_sub *sub = NULL;
  aiplat_status st =
      aiplat_bus_js_subscribe(bus, stream, durable, filter, ack_wait_ms, -1,
                              max_in_flight, fn, ud, &sub);
  ck_assert_msg(st == AIPLAT_OK, "js_subscribe: %s", tu_bus_err(bus));
  return sub;
}

/* ---- streams
 * ------------------------------------------------------------------ */

START_TEST(stream_ensure_is_idempotent_and_updates) {
  const char *one[] = {"orders.new"};
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "ORDERS", one, 1, 60000,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "ORDERS", one, 1, 60000,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_OK);
  uint64_t seq = 0;
  ck_assert_int_eq(aiplat_bus_js_publish(bus, "orders.new", "a", 1, NULL, &seq),
                   AIPLAT_OK);
  ck_assert_uint_eq(seq, 1);
  ck_assert_int_eq(
      aiplat_bus_js_publish(bus, "orders.paid", "b", 1, NULL, &seq),
      AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(tu_bus_err(bus), "orders.paid"));
  /* Same stream, one more subject and another max age: updated. */
  const char *two[] = {"orders.new", "orders.paid"};
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "ORDERS", two, 2, 120000,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_bus_js_publish(bus, "orders.paid", "b", 1, NULL, &seq), AIPLAT_OK);
  ck_assert_uint_eq(seq, 2); /* the stream kept its messages */
  /* The server cannot change the retention of a stream. */
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "ORDERS", two, 2, 120000,
                                            AIPLAT_BUS_RETENTION_WORK_QUEUE),
                   AIPLAT_ERR_BAD_REQUEST);
  /* Overlapping subjects with another stream are refused. */
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "OTHER", one, 1, 0,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_ERR_BAD_REQUEST);
  ck_assert_int_eq(aiplat_bus_stream_delete(bus, "ORDERS"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_stream_delete(bus, "ORDERS"),
                   AIPLAT_ERR_NOT_FOUND);
}
END_TEST

START_TEST(stream_arguments_are_checked) {
  const char *one[] = {"x.y"};
  const char *bad_subject[] = {"x y"};
  const char *bad_names[] = {"", "a.b", "a b", "a*", "a>", "a/b", "\xff"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
    ck_assert_int_eq(aiplat_bus_stream_ensure(bus, bad_names[i], one, 1, 0,
                                              AIPLAT_BUS_RETENTION_LIMITS),
                     AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "S", bad_subject, 1, 0,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "S", one, 0, 0,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "S", one, 1, -1,
                                            AIPLAT_BUS_RETENTION_LIMITS),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_bus_stream_ensure(bus, "S", one, 1, 0, (aiplat_bus_retention)7),
      AIPLAT_ERR_INVALID_ARGUMENT);
  tu_collector c;
  tu_collector_init(&c);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "NOPE", "d", NULL, 1000, -1, 1,
                                           tu_collect, &c, &sub),
                   AIPLAT_ERR_NOT_FOUND);
  ensure("ARGS", "args.>");
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "ARGS", "d.x", NULL, 1000, -1,
                                           1, tu_collect, &c, &sub),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "ARGS", "d", "args x", 1000, -1,
                                           1, tu_collect, &c, &sub),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "ARGS", "d", NULL, 0, -1, 1,
                                           tu_collect, &c, &sub),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "ARGS", "d", NULL, 1000, 0, 1,
                                           tu_collect, &c, &sub),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "ARGS", "d", NULL, 1000, -1, 0,
                                           tu_collect, &c, &sub),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(sub);
  ck_assert_int_eq(aiplat_bus_js_publish(bus, "args.a b", "x", 1, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  tu_collector_free(&c);
}
END_TEST

/* ---- consumers
 * ------------------------------------------------------------------- */

START_TEST(ack_consumes_and_metadata) {
  ensure("ACKS", "acks.>");
  js_pub("acks.a", "one");
  js_pub("acks.b", "two");
  tu_collector c;
  tu_collector_init(&c);
  c.ack = true;
  c.keep = true;
  aiplat_bus_sub *sub =
      js_sub("ACKS", "acker", "acks.>", 1000, 8, tu_collect, &c);
  ck_assert(tu_wait_count(&c, 2, 10000));
  /* Acked: nothing comes back after the ack wait (1 s of slack for the
   * ack itself on a loaded machine). */
  tu_sleep_ms(2200);
  aiplat_bus_sub_destroy(sub);
  ck_assert_int_eq(c.count, 2);
  aiplat_bus_msg *m = c.kept[1];
  ck_assert(aiplat_bus_msg_is_jetstream(m));
  const char *stream = NULL, *consumer = NULL;
  uint64_t sseq = 0, cseq = 0, delivered = 0, pending = 9;
  int64_t ts = 0;
  ck_assert_int_eq(aiplat_bus_msg_js_metadata(m, &stream, &consumer, &sseq,
                                              &cseq, &delivered, &pending, &ts),
                   AIPLAT_OK);
  ck_assert_str_eq(stream, "ACKS");
  ck_assert_str_eq(consumer, "acker");
  ck_assert_uint_eq(sseq, 2);
  ck_assert_uint_eq(cseq, 2);
  ck_assert_uint_eq(delivered, 1);
  ck_assert_uint_eq(pending, 0);
  ck_assert_int_gt(ts, 0);
  ck_assert_str_eq(aiplat_bus_msg_subject(m), "acks.b");
  ck_assert_str_eq(aiplat_bus_msg_data(m), "two");
  /* Already acked; a JetStream reply subject is not for responding. */
  ck_assert_int_eq(aiplat_bus_msg_ack(m), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_msg_nak(m), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_msg_respond(m, "x", 1, NULL), AIPLAT_ERR_STATE);
  tu_collector_free(&c);
}
END_TEST

/* Records deliveries; naks (optionally with a delay), terms or holds the
 * first delivery, acks later ones. */
typedef struct policy {
  pthread_mutex_t mu;
  int count;
  uint64_t delivered[16];
  int64_t at_ms[16];
  enum { NAK, NAK_DELAY, TERM, HOLD, DROP } first;
  int64_t delay_ms;
  aiplat_bus_msg *held;
  aiplat_status st;
} policy;

static void on_policy(aiplat_bus_msg *m, void *ud) {
  policy *p = ud;
  uint64_t d = 0;
  aiplat_bus_msg_delivery_count(m, &d);
  pthread_mutex_lock(&p->mu);
  int i = p->count++;
  if (i < 16) {
    p->delivered[i] = d;
    p->at_ms[i] = tu_now_ms();
  }
  pthread_mutex_unlock(&p->mu);
  aiplat_status st = AIPLAT_OK;
  if (i > 0) {
    st = aiplat_bus_msg_ack_sync(m, 5000);
  } else {
    switch (p->first) {
      case NAK:
        st = aiplat_bus_msg_nak(m);
        break;
      case NAK_DELAY:
        st = aiplat_bus_msg_nak_with_delay(m, p->delay_ms);
        break;
      case TERM:
        st = aiplat_bus_msg_term(m);
        break;
      case HOLD:
        p->held = aiplat_bus_msg_retain(m);
        break;
      case DROP:
        break;
    }
  }
  if (i == 0) p->st = st;
}

static int policy_count(policy *p) {
  pthread_mutex_lock(&p->mu);
  int n = p->count;
  pthread_mutex_unlock(&p->mu);
  return n;
}

static bool wait_policy(policy *p, int n, int timeout_ms) {
  int64_t end = tu_now_ms() + timeout_ms;
  while (policy_count(p) < n) {
    if (tu_now_ms() > end) return false;
    tu_sleep_ms(5);
  }
  return true;
}

START_TEST(nak_redelivers) {
  ensure("NAKS", "naks.>");
  policy p = {.first = NAK};
  pthread_mutex_init(&p.mu, NULL);
  aiplat_bus_sub *sub = js_sub("NAKS", "naker", NULL, 30000, 4, on_policy, &p);
  js_pub("naks.a", "x");
  /* Redelivered long before the 30 s ack wait, because of the nak. */
  ck_assert(wait_policy(&p, 2, 20000));
  aiplat_bus_sub_destroy(sub);
  ck_assert_int_eq(p.st, AIPLAT_OK);
  ck_assert_uint_eq(p.delivered[0], 1);
  ck_assert_uint_eq(p.delivered[1], 2);
}
END_TEST

START_TEST(nak_with_delay_is_honoured) {
  ensure("DELAY", "delay.>");
  policy p = {.first = NAK_DELAY, .delay_ms = 700};
  pthread_mutex_init(&p.mu, NULL);
  aiplat_bus_sub *sub =
      js_sub("DELAY", "delayer", NULL, 30000, 4, on_policy, &p);
  js_pub("delay.a", "x");
  ck_assert(wait_policy(&p, 2, 20000));
  aiplat_bus_sub_destroy(sub);
  ck_assert_int_eq(p.st, AIPLAT_OK);
  ck_assert_uint_eq(p.delivered[1], 2);
  /* Not before the delay (a lower bound only: no flaky upper bound). */
  ck_assert_int_ge(p.at_ms[1] - p.at_ms[0], 600);
  ck_assert_int_eq(aiplat_bus_msg_nak_with_delay(NULL, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(term_stops_redelivery) {
  ensure("TERMS", "terms.>");
  policy p = {.first = TERM};
  pthread_mutex_init(&p.mu, NULL);
  aiplat_bus_sub *sub = js_sub("TERMS", "termer", NULL, 1000, 4, on_policy, &p);
  js_pub("terms.a", "x");
  ck_assert(wait_policy(&p, 1, 10000));
  tu_sleep_ms(2500); /* two ack waits */
  aiplat_bus_sub_destroy(sub);
  ck_assert_int_eq(p.st, AIPLAT_OK);
  ck_assert_int_eq(p.count, 1);
}
END_TEST

START_TEST(unacked_is_redelivered_after_ack_wait) {
  ensure("DROPS", "drops.>");
  policy p = {.first = DROP};
  pthread_mutex_init(&p.mu, NULL);
  aiplat_bus_sub *sub = js_sub("DROPS", "dropper", NULL, 400, 4, on_policy, &p);
  js_pub("drops.a", "x");
  ck_assert(wait_policy(&p, 2, 20000));
  aiplat_bus_sub_destroy(sub);
  ck_assert_uint_eq(p.delivered[1], 2);
  ck_assert_int_ge(p.at_ms[1] - p.at_ms[0], 300);
}
END_TEST

/* Hold the first delivery for @hold_ms, sending in-progress every 250 ms
 * when @progress, then ack it; return the number of deliveries seen. */
static int hold_and_ack(const char *stream, bool progress, int hold_ms) {
  char subj[64];
  snprintf(subj, sizeof subj, "%s.>", stream);
  ensure(stream, subj);
  policy p = {.first = HOLD};
  pthread_mutex_init(&p.mu, NULL);
  aiplat_bus_sub *sub = js_sub(stream, "holder", NULL, 1500, 4, on_policy, &p);
  snprintf(subj, sizeof subj, "%s.a", stream);
  js_pub(subj, "x");
  ck_assert(wait_policy(&p, 1, 10000));
  int64_t end = tu_now_ms() + hold_ms;
  while (tu_now_ms() < end) {
    if (progress)
      ck_assert_int_eq(aiplat_bus_msg_in_progress(p.held), AIPLAT_OK);
    tu_sleep_ms(250);
  }
  ck_assert_int_eq(aiplat_bus_msg_ack(p.held), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_msg_in_progress(p.held), AIPLAT_ERR_STATE);
  tu_sleep_ms(300);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_msg_destroy(p.held);
  return policy_count(&p);
}

START_TEST(in_progress_extends_ack_wait) {
  /* Held 3 s with a 1.5 s ack wait: in-progress keeps it ours... */
  ck_assert_int_eq(hold_and_ack("PROG", true, 3000), 1);
  /* ...and without it, the server delivers it again. */
  ck_assert_int_ge(hold_and_ack("NOPROG", false, 3000), 2);
}
END_TEST

START_TEST(max_in_flight_bounds_held_messages) {
  ensure("FLIGHT", "flight.>");
  tu_collector c;
  tu_collector_init(&c);
  c.keep = true; /* each message stays held until we release it */
  aiplat_bus_sub *sub =
      js_sub("FLIGHT", "flyer", NULL, 30000, 2, tu_collect, &c);
  for (int i = 0; i < 5; i++) js_pub("flight.a", "x");
  ck_assert(tu_wait_count(&c, 2, 10000));
  tu_sleep_ms(500);
  ck_assert_int_eq(tu_count(&c), 2);
  pthread_mutex_lock(&c.mu);
  aiplat_bus_msg *first = c.kept[0];
  c.kept[0] = c.kept[--c.n_kept];
  pthread_mutex_unlock(&c.mu);
  ck_assert_int_eq(aiplat_bus_msg_ack(first), AIPLAT_OK);
  aiplat_bus_msg_destroy(first); /* frees one slot */
  ck_assert(tu_wait_count(&c, 3, 10000));
  tu_sleep_ms(300);
  ck_assert_int_eq(tu_count(&c), 3);
  /* Draining returns although messages are still held (the caller owns
   * them), and they can still be acked afterwards. */
  ck_assert_int_eq(aiplat_bus_sub_drain(sub, 5000), AIPLAT_OK);
  pthread_mutex_lock(&c.mu);
  for (int i = 0; i < c.n_kept; i++)
    ck_assert_int_eq(aiplat_bus_msg_ack(c.kept[i]), AIPLAT_OK);
  pthread_mutex_unlock(&c.mu);
  aiplat_bus_sub_destroy(sub);
  tu_collector_free(&c);
}
END_TEST

START_TEST(durable_survives_and_is_shared) {
  ensure("SHARED", "shared.>");
  tu_collector a, b;
  tu_collector_init(&a);
  tu_collector_init(&b);
  a.ack = b.ack = true;
  a.sleep_ms = b.sleep_ms = 5;
  aiplat_bus_sub *sa =
      js_sub("SHARED", "workers", NULL, 30000, 1, tu_collect, &a);
  aiplat_bus_sub *sb =
      js_sub("SHARED", "workers", NULL, 30000, 1, tu_collect, &b);
  const int n = 60;
  for (int i = 0; i < n; i++) js_pub("shared.job", "j");
  int64_t end = tu_now_ms() + 20000;
  while (tu_count(&a) + tu_count(&b) < n && tu_now_ms() < end) tu_sleep_ms(5);
  ck_assert_int_eq(aiplat_bus_sub_unsubscribe(sa), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_sub_unsubscribe(sb), AIPLAT_OK);
  ck_assert_int_eq(tu_count(&a) + tu_count(&b), n);
  ck_assert_int_gt(tu_count(&a), 0);
  ck_assert_int_gt(tu_count(&b), 0);
  aiplat_bus_sub_destroy(sa);
  aiplat_bus_sub_destroy(sb);
  /* The durable outlives its subscriptions: a message published now is
   * delivered to the next subscriber of the same durable. */
  js_pub("shared.job", "later");
  tu_collector c;
  tu_collector_init(&c);
  c.ack = true;
  aiplat_bus_sub *sc =
      js_sub("SHARED", "workers", NULL, 30000, 4, tu_collect, &c);
  ck_assert(tu_wait_count(&c, 1, 10000));
  tu_sleep_ms(200);
  ck_assert_int_eq(tu_count(&c), 1);
  ck_assert_str_eq(c.last_data, "later");
  aiplat_bus_sub_destroy(sc);
  tu_collector_free(&a);
  tu_collector_free(&b);
  tu_collector_free(&c);
}
END_TEST

START_TEST(consumer_settings_are_updated) {
  ensure("UPD", "upd.>");
  tu_collector c;
  tu_collector_init(&c);
  c.ack = true;
  aiplat_bus_sub *s1 =
      js_sub("UPD", "changing", NULL, 30000, 1, tu_collect, &c);
  aiplat_bus_sub_destroy(s1);
  /* Same durable, another ack wait: updated, not refused. */
  aiplat_bus_sub *s2 = js_sub("UPD", "changing", NULL, 5000, 1, tu_collect, &c);
  js_pub("upd.a", "x");
  ck_assert(tu_wait_count(&c, 1, 10000));
  aiplat_bus_sub_destroy(s2);
  tu_collector_free(&c);
}
END_TEST

START_TEST(consumer_resumes_after_server_restart) {
  /* A server of its own, restarted with the same JetStream storage. */
  th_nats *s = th_nats_start(NULL);
  ck_assert_ptr_nonnull(s);
  aiplat_bus *b = tu_connect(th_nats_url(s));
  const char *subjects[] = {"resume.>"};
  ck_assert_int_eq(aiplat_bus_stream_ensure(b, "RESUME", subjects, 1, 0,
                                            AIPLAT_BUS_RETENTION_WORK_QUEUE),
                   AIPLAT_OK);
  tu_collector c;
  tu_collector_init(&c);
  c.ack = true;
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_js_subscribe(b, "RESUME", "resumer", NULL, 30000,
                                           -1, 4, tu_collect, &c, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_bus_js_publish(b, "resume.a", "before", 6, NULL, NULL), AIPLAT_OK);
  ck_assert(tu_wait_count(&c, 1, 10000));
  ck_assert(th_nats_kill(s));
  ck_assert(th_nats_restart(s));
  /* JetStream needs a moment after the reconnection: retry the publish. */
  aiplat_status st = AIPLAT_ERR_TIMEOUT;
  int64_t end = tu_now_ms() + 20000;
  while (tu_now_ms() < end &&
         (st = aiplat_bus_js_publish(b, "resume.a", "after", 5, NULL, NULL)) !=
             AIPLAT_OK)
    tu_sleep_ms(200);
  ck_assert_msg(st == AIPLAT_OK, "%s", tu_bus_err(b));
  ck_assert(tu_wait_count(&c, 2, 20000));
  ck_assert_str_eq(c.last_data, "after");
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(b);
  tu_collector_free(&c);
  th_nats_stop(s);
}
END_TEST

/* ---- Key-Value
 * ------------------------------------------------------------------------- */

START_TEST(kv_put_get_delete) {
  aiplat_kv *kv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "chat_history", 0, 5), AIPLAT_OK);
  uint64_t r1 = 0, r2 = 0;
  ck_assert_int_eq(aiplat_kv_put(kv, "conv.u1/c1", "hello", 5, &r1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_put(kv, "conv.u1/c1", "hello again", 11, &r2),
                   AIPLAT_OK);
  ck_assert_uint_gt(r2, r1);
  void *v = NULL;
  size_t n = 0;
  ck_assert_int_eq(aiplat_kv_get(kv, "conv.u1/c1", &v, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 11);
  ck_assert_str_eq(v, "hello again");
  aiplat_free(v);
  /* Binary values come back whole. */
  const unsigned char bin[] = {0, 1, 2, 0, 255};
  ck_assert_int_eq(aiplat_kv_put(kv, "bin", bin, sizeof bin, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_get(kv, "bin", &v, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, sizeof bin);
  ck_assert_int_eq(memcmp(v, bin, n), 0);
  aiplat_free(v);
  ck_assert_int_eq(aiplat_kv_put(kv, "empty", NULL, 0, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_get(kv, "empty", &v, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  aiplat_free(v);
  ck_assert_int_eq(aiplat_kv_get(kv, "never", &v, &n), AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(v);
  ck_assert_int_eq(aiplat_kv_delete(kv, "conv.u1/c1"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_get(kv, "conv.u1/c1", &v, &n),
                   AIPLAT_ERR_NOT_FOUND);
  char err[256];
  ck_assert_int_eq(aiplat_kv_last_error(kv, err, sizeof err),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(err, "chat_history"));
  /* Opening again binds to the same bucket (its settings stay). */
  aiplat_kv *again = NULL;
  ck_assert_int_eq(aiplat_kv_open(&again, bus, "chat_history", 1000, 1),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_get(again, "bin", &v, &n), AIPLAT_OK);
  aiplat_free(v);
  aiplat_kv_destroy(again);
  aiplat_kv_destroy(kv);
}
END_TEST

START_TEST(kv_rejects_bad_input) {
  aiplat_kv *kv = NULL;
  const char *bad_buckets[] = {"", "a.b", "a b", "a*", "a/b"};
  for (size_t i = 0; i < sizeof bad_buckets / sizeof bad_buckets[0]; i++)
    ck_assert_int_eq(aiplat_kv_open(&kv, bus, bad_buckets[i], 0, 1),
                     AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "ok", 0, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "ok", 0, 65),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "ok", -1, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "bad_input", 0, 1), AIPLAT_OK);
  const char *bad_keys[] = {"",   ".a", "a.",    "a..b", "a b",
                            "a*", "a>", "a\r\n", "\xff", "a:b"};
  void *v = NULL;
  size_t n = 0;
  for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
    ck_assert_int_eq(aiplat_kv_put(kv, bad_keys[i], "x", 1, NULL),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_kv_get(kv, bad_keys[i], &v, &n),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_kv_delete(kv, bad_keys[i]),
                     AIPLAT_ERR_INVALID_ARGUMENT);
  }
  char longkey[300];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  ck_assert_int_eq(aiplat_kv_put(kv, longkey, "x", 1, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  size_t big = (size_t)aiplat_bus_max_payload(bus) + 1;
  char *data = calloc(1, big);
  ck_assert_ptr_nonnull(data);
  ck_assert_int_eq(aiplat_kv_put(kv, "big", data, big, NULL),
                   AIPLAT_ERR_TOO_LARGE);
  free(data);
  ck_assert_int_eq(aiplat_kv_put(kv, "k", NULL, 3, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_kv_destroy(kv);
}
END_TEST

START_TEST(kv_ttl_expires_values) {
  aiplat_kv *kv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "short_lived", 1000, 1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_put(kv, "k", "v", 1, NULL), AIPLAT_OK);
  void *v = NULL;
  size_t n = 0;
  ck_assert_int_eq(aiplat_kv_get(kv, "k", &v, &n), AIPLAT_OK);
  aiplat_free(v);
  /* Gone some time after the 1 s TTL (the server sweeps periodically). */
  aiplat_status st = AIPLAT_OK;
  int64_t end = tu_now_ms() + 15000;
  while (tu_now_ms() < end) {
    st = aiplat_kv_get(kv, "k", &v, &n);
    if (st == AIPLAT_OK) aiplat_free(v);
    if (st == AIPLAT_ERR_NOT_FOUND) break;
    tu_sleep_ms(100);
  }
  ck_assert_int_eq(st, AIPLAT_ERR_NOT_FOUND);
  aiplat_kv_destroy(kv);
}
END_TEST

START_TEST(kv_outlives_closed_bus) {
  aiplat_kv *kv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "closing", 0, 1), AIPLAT_OK);
  aiplat_bus_close(bus);
  ck_assert_int_eq(aiplat_kv_put(kv, "k", "v", 1, NULL), AIPLAT_ERR_CLOSED);
  aiplat_kv_destroy(kv);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("bus_js");
  TCase *tc = tcase_create("jetstream");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, start_server, stop_server);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, stream_ensure_is_idempotent_and_updates);
  tcase_add_test(tc, stream_arguments_are_checked);
  tcase_add_test(tc, ack_consumes_and_metadata);
  tcase_add_test(tc, nak_redelivers);
  tcase_add_test(tc, nak_with_delay_is_honoured);
  tcase_add_test(tc, term_stops_redelivery);
  tcase_add_test(tc, unacked_is_redelivered_after_ack_wait);
  tcase_add_test(tc, in_progress_extends_ack_wait);
  tcase_add_test(tc, max_in_flight_bounds_held_messages);
  tcase_add_test(tc, durable_survives_and_is_shared);
  tcase_add_test(tc, consumer_settings_are_updated);
  tcase_add_test(tc, consumer_resumes_after_server_restart);
  suite_add_tcase(s, tc);
  TCase *kvc = tcase_create("kv");
  tcase_set_timeout(kvc, 60);
  tcase_add_unchecked_fixture(kvc, start_server, stop_server);
  tcase_add_checked_fixture(kvc, setup, teardown);
  tcase_add_test(kvc, kv_put_get_delete);
  tcase_add_test(kvc, kv_rejects_bad_input);
  tcase_add_test(kvc, kv_ttl_expires_values);
  tcase_add_test(kvc, kv_outlives_closed_bus);
  suite_add_tcase(s, kvc);
  return s;
}
