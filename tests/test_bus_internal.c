/* The bus's internal API (lib/bus_internal.h): nkey derivation and nkey
 * authentication, JetStream ack-subject parsing, subscriptions that hand
 * the callback ownership of each message (the service framework's way in),
 * adopting a natsMsg, batched destruction of delivered messages. */
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "bus_testutil.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"

static th_nats *server;

static void start_server(void) {
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
}

static void stop_server(void) {
  th_nats_stop(server);
  server = NULL;
}

static void new_seed(char seed[64], char pub[64]) {
  unsigned char raw[32];
  ck_assert_int_eq(RAND_bytes(raw, sizeof raw), 1);
  ck_assert(aip_nkey_encode_seed(raw, seed, 64));
  ck_assert(aip_nkey_public_from_seed(seed, pub, 64));
}

START_TEST(nkey_seed_to_public_key) {
  char seed[64], pub[64];
  new_seed(seed, pub);
  ck_assert_uint_eq(strlen(seed), 58);
  ck_assert(strncmp(seed, "SU", 2) == 0);
  ck_assert_uint_eq(strlen(pub), 56);
  ck_assert_int_eq(pub[0], 'U');
  char again[64];
  ck_assert(aip_nkey_public_from_seed(seed, again, sizeof again));
  ck_assert_str_eq(again, pub);
  /* Corruptions: checksum, alphabet, length, type, small buffer. */
  char bad[64];
  strcpy(bad, seed);
  bad[20] = bad[20] == 'A' ? 'B' : 'A';
  ck_assert(!aip_nkey_public_from_seed(bad, again, sizeof again));
  strcpy(bad, seed);
  bad[10] = '1';
  ck_assert(!aip_nkey_public_from_seed(bad, again, sizeof again));
  ck_assert(!aip_nkey_public_from_seed("SU", again, sizeof again));
  ck_assert(!aip_nkey_public_from_seed(pub, again, sizeof again));
  ck_assert(!aip_nkey_public_from_seed(NULL, again, sizeof again));
  ck_assert(!aip_nkey_public_from_seed(seed, again, 10));
}
END_TEST

START_TEST(nkey_authentication) {
  char seed[64], pub[64], other[64], other_pub[64];
  new_seed(seed, pub);
  new_seed(other, other_pub);
  char conf[256];
  snprintf(conf, sizeof conf, "authorization { users = [ { nkey: \"%s\" } ] }",
           pub);
  th_nats *s = th_nats_start(conf);
  ck_assert_ptr_nonnull(s);
  for (int round = 0; round < 2; round++) {
    aiplat_config *cfg = tu_config(th_nats_url(s));
    ck_assert_int_eq(
        aiplat_config_set(cfg, "NATS_NKEY_SEED", round ? other : seed),
        AIPLAT_OK);
    aiplat_bus *bus = NULL;
    ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
    aiplat_config_destroy(cfg); /* the bus keeps its own copy of the seed */
    aiplat_status st = aiplat_bus_connect(bus);
    ck_assert_int_eq(st, round ? AIPLAT_ERR_AUTH : AIPLAT_OK);
    ck_assert_ptr_null(strstr(tu_bus_err(bus), round ? other : seed));
    aiplat_bus_destroy(bus);
  }
  th_nats_stop(s);
}
END_TEST

START_TEST(ack_subject_parsing) {
  aip_js_meta m;
  ck_assert(aip_js_parse_ack_subject(
      "$JS.ACK.ORDERS.work.3.41.17.1700000000000000001.5", &m));
  ck_assert_str_eq(m.stream, "ORDERS");
  ck_assert_str_eq(m.consumer, "work");
  ck_assert_uint_eq(m.delivered, 3);
  ck_assert_uint_eq(m.stream_seq, 41);
  ck_assert_uint_eq(m.consumer_seq, 17);
  ck_assert_int_eq(m.timestamp_ns, 1700000000000000001LL);
  ck_assert_uint_eq(m.pending, 5);
  free(m.buf);
  /* v2: domain and account hash first, a random token last. */
  ck_assert(aip_js_parse_ack_subject(
      "$JS.ACK.hub.ACCHASH.ORDERS.work.1.2.3.4.0.xyz", &m));
  ck_assert_str_eq(m.stream, "ORDERS");
  ck_assert_uint_eq(m.delivered, 1);
  ck_assert_uint_eq(m.pending, 0);
  free(m.buf);
  const char *bad[] = {
      NULL,
      "",
      "_INBOX.x",
      "$JS.ACK.",
      "$JS.ACK.S.C.1.2.3.4",     /* 6 tokens */
      "$JS.ACK.S.C.1.2.3.4.5.6", /* 8 tokens */
      "$JS.ACK.S.C.x.2.3.4.5",   /* not a number */
      "$JS.ACK.S.C.1.2.3.-4.5",
      "$JS.ACK.S.C.1.2.3.4.99999999999999999999999",
      "$JS.ACK.S.C.1.2.3.18446744073709551615.5", /* timestamp > INT64_MAX */
      "$JS.ACK..C.1.2.3.4.5",                     /* empty stream */
      "$JS.ACK.S.C.1..3.4.5",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!aip_js_parse_ack_subject(bad[i], &m), "accepted %zu", i);
}
END_TEST

/* A tiny "worker pool": the callback only queues the owned message. */
typedef struct handoff {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  aiplat_bus_msg *q[64];
  int n;
  bool on_delivery_thread_only;
} handoff;

static void take(aiplat_bus_msg *m, void *ud) {
  handoff *h = ud;
  pthread_mutex_lock(&h->mu);
  if (h->n < 64)
    h->q[h->n++] = m;
  else
    aiplat_bus_msg_destroy(m);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

static aiplat_bus_msg *next(handoff *h, int timeout_ms) {
  int64_t end = tu_now_ms() + timeout_ms;
  pthread_mutex_lock(&h->mu);
  while (h->n == 0 && tu_now_ms() < end) {
    pthread_mutex_unlock(&h->mu);
    tu_sleep_ms(2);
    pthread_mutex_lock(&h->mu);
  }
  aiplat_bus_msg *m = NULL;
  if (h->n) {
    m = h->q[0];
    memmove(h->q, h->q + 1, (size_t)--h->n * sizeof *h->q);
  }
  pthread_mutex_unlock(&h->mu);
  return m;
}

START_TEST(owned_subscription_hands_messages_over) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  ck_assert_ptr_nonnull(aip_bus_conn(bus));
  ck_assert_ptr_nonnull(aip_bus_js(bus));
  ck_assert_int_eq(natsConnection_Status(aip_bus_conn(bus)),
                   NATS_CONN_STATUS_CONNECTED);
  handoff h;
  memset(&h, 0, sizeof h);
  pthread_mutex_init(&h.mu, NULL);
  pthread_cond_init(&h.cv, NULL);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aip_bus_subscribe_owned(bus, "own.x", "pool", take, &h, &sub), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  /* A request answered by "a worker" (this thread) after the callback. */
  natsMsg *reply = NULL;
  natsConnection *nc = aip_bus_conn(bus);
  ck_assert_int_eq(
      natsConnection_PublishRequestString(nc, "own.x", "own.reply", "q1"),
      NATS_OK);
  aiplat_bus_msg *m = next(&h, 5000);
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(aip_bus_msg_nats(m));
  ck_assert_str_eq(natsMsg_GetData(aip_bus_msg_nats(m)), "q1");
  /* Take the natsMsg: subject and reply stay usable for responding. */
  natsMsg *nm = aip_bus_msg_take_nats(m);
  ck_assert_ptr_nonnull(nm);
  ck_assert_ptr_null(aip_bus_msg_nats(m));
  ck_assert_ptr_null(aip_bus_msg_take_nats(m));
  ck_assert_str_eq(aiplat_bus_msg_subject(m), "own.x");
  ck_assert_str_eq(aiplat_bus_msg_reply(m), "own.reply");
  ck_assert_uint_eq(aiplat_bus_msg_len(m), 0);
  const char *v;
  ck_assert_int_eq(aiplat_bus_msg_header(m, "X", &v), AIPLAT_ERR_STATE);
  natsMsg_Destroy(nm);
  natsSubscription *rs = NULL;
  ck_assert_int_eq(natsConnection_SubscribeSync(&rs, nc, "own.reply"), NATS_OK);
  ck_assert_int_eq(natsConnection_Flush(nc), NATS_OK);
  ck_assert_int_eq(aiplat_bus_msg_respond(m, "a1", 2, NULL), AIPLAT_OK);
  ck_assert_int_eq(natsSubscription_NextMsg(&reply, rs, 5000), NATS_OK);
  ck_assert_str_eq(natsMsg_GetData(reply), "a1");
  natsMsg_Destroy(reply);
  aiplat_bus_msg_destroy(m);
  /* The subscription can go while a message is still owned elsewhere. */
  ck_assert_int_eq(natsConnection_PublishString(nc, "own.x", "q2"), NATS_OK);
  m = next(&h, 5000);
  ck_assert_ptr_nonnull(m);
  aiplat_bus_sub_destroy(sub);
  ck_assert_str_eq(aiplat_bus_msg_data(m), "q2");
  aiplat_bus_msg_destroy(m);
  /* Adopting a natsMsg received some other way. */
  ck_assert_int_eq(natsConnection_PublishString(nc, "own.reply", "raw"),
                   NATS_OK);
  ck_assert_int_eq(natsSubscription_NextMsg(&reply, rs, 5000), NATS_OK);
  aiplat_bus_msg *adopted = NULL;
  ck_assert_int_eq(aip_bus_msg_adopt(&adopted, bus, reply), AIPLAT_OK);
  ck_assert_str_eq(aiplat_bus_msg_data(adopted), "raw");
  aiplat_bus_msg_destroy(adopted);
  ck_assert_int_eq(aip_bus_msg_adopt(&adopted, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  natsSubscription_Unsubscribe(rs);
  natsSubscription_Destroy(rs);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(owned_jetstream_messages_count_until_destroyed) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  const char *subjects[] = {"ownjs.>"};
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "OWNJS", subjects, 1, 0,
                                            AIPLAT_BUS_RETENTION_WORK_QUEUE),
                   AIPLAT_OK);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(
        aiplat_bus_js_publish(bus, "ownjs.job", "j", 1, NULL, NULL), AIPLAT_OK);
  handoff h;
  memset(&h, 0, sizeof h);
  pthread_mutex_init(&h.mu, NULL);
  pthread_cond_init(&h.cv, NULL);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aip_bus_js_subscribe_owned(bus, "OWNJS", "pool", NULL, 30000,
                                              -1, 2, take, &h, &sub),
                   AIPLAT_OK);
  aiplat_bus_msg *a = next(&h, 5000), *b = next(&h, 5000);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  /* Two owned and not destroyed: no third one is fetched. */
  ck_assert_ptr_null(next(&h, 500));
  /* A worker acks after taking the natsMsg out: still safe. */
  natsMsg *nm = aip_bus_msg_take_nats(a);
  natsMsg_Destroy(nm);
  ck_assert_int_eq(aiplat_bus_msg_ack(a), AIPLAT_OK);
  aiplat_bus_msg_destroy(a);
  aiplat_bus_msg *c = next(&h, 5000);
  ck_assert_ptr_nonnull(c);
  /* Messages outlive their subscription and can still be acked. */
  aiplat_bus_sub_destroy(sub);
  ck_assert_int_eq(aiplat_bus_msg_ack(b), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_msg_ack_sync(c, 5000), AIPLAT_OK);
  aiplat_bus_msg_destroy(b);
  aiplat_bus_msg_destroy(c);
  aiplat_bus_destroy(bus);
}
END_TEST

/* Echo with a header, so each request leaves two natsMsgs to retire. */
static void echo_with_header(aiplat_bus_msg *m, void *ud) {
  atomic_int *n = ud;
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_set(h, "X-Seq", "1"), AIPLAT_OK);
  if (aiplat_bus_msg_reply(m))
    ck_assert_int_eq(aiplat_bus_msg_respond(m, aiplat_bus_msg_data(m),
                                            aiplat_bus_msg_len(m), h),
                     AIPLAT_OK);
  aiplat_headers_destroy(h);
  atomic_fetch_add(n, 1);
}

START_TEST(retired_messages_are_intact_until_freed_on_every_path) {
  /* Delivery threads batch the destruction of the natsMsgs they are done
   * with (AIP_RETIRE_MAX): replies must still carry each request's bytes,
   * big messages go at once, and whatever is still retired when the
   * subscription ends -- unsubscribed, or its connection closed -- is
   * freed (ASan and valgrind report a leak otherwise). */
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  atomic_int served = 0;
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "retire.echo", NULL,
                                        echo_with_header, &served, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  static char big[AIP_RETIRE_ONE_MAX * 2];
  for (int i = 0; i < 3 * AIP_RETIRE_MAX + 5; i++) {
    char small[32];
    int n = snprintf(small, sizeof small, "request %d", i);
    const char *data = small;
    size_t len = (size_t)n;
    if (i % 7 == 0) { /* over the size for batching */
      memset(big, 'a' + i % 26, sizeof big);
      memcpy(big, small, (size_t)n);
      data = big;
      len = sizeof big;
    }
    aiplat_bus_msg *reply = NULL;
    ck_assert_int_eq(
        aiplat_bus_request(bus, "retire.echo", data, len, NULL, 5000, &reply),
        AIPLAT_OK);
    ck_assert_uint_eq(aiplat_bus_msg_len(reply), len);
    ck_assert_int_eq(memcmp(aiplat_bus_msg_data(reply), data, len), 0);
    const char *v = NULL;
    ck_assert_int_eq(aiplat_bus_msg_header(reply, "X-Seq", &v), AIPLAT_OK);
    ck_assert_str_eq(v, "1");
    aiplat_bus_msg_destroy(reply);
  }
  /* Fewer than a batch left retired; unsubscribing frees them. */
  ck_assert_int_eq(aiplat_bus_sub_unsubscribe(sub), AIPLAT_OK);
  aiplat_bus_sub_destroy(sub);

  /* Messages without a reply, then the connection closes under the
   * subscription. */
  atomic_store(&served, 0);
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "retire.note", NULL,
                                        echo_with_header, &served, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(aiplat_bus_publish(bus, "retire.note", "n", 1, NULL),
                     AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  for (int i = 0; i < 200 && atomic_load(&served) < 5; i++) tu_sleep_ms(10);
  ck_assert_int_eq(atomic_load(&served), 5);
  aiplat_bus_close(bus);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(nats_status_mapping) {
  static const struct {
    natsStatus s;
    int jerr;
    aiplat_status want;
  } map[] = {
      {NATS_TIMEOUT, 0, AIPLAT_ERR_TIMEOUT},
      {NATS_NO_RESPONDERS, 0, AIPLAT_ERR_UNAVAILABLE},
      {NATS_MAX_PAYLOAD, 0, AIPLAT_ERR_TOO_LARGE},
      {NATS_CONNECTION_AUTH_FAILED, 0, AIPLAT_ERR_AUTH},
      {NATS_NOT_PERMITTED, 0, AIPLAT_ERR_AUTH},
      {NATS_CONNECTION_CLOSED, 0, AIPLAT_ERR_CLOSED},
      {NATS_NO_SERVER, 0, AIPLAT_ERR_CONNECTION},
      {NATS_ERR, JSStreamNotFoundErr, AIPLAT_ERR_NOT_FOUND},
      {NATS_ERR, JSStreamNameExistErr, AIPLAT_ERR_EXISTS},
      {NATS_ERR, JSNotEnabledErr, AIPLAT_ERR_NOT_SUPPORTED},
      {NATS_ERR, 10052, AIPLAT_ERR_BAD_REQUEST},
      {NATS_ERR, 0, AIPLAT_ERR_SERVER},
      {NATS_OK, 0, AIPLAT_ERR_INTERNAL}, /* a failure never maps to OK */
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    ck_assert_msg(
        aip_bus_fail_nats(NULL, map[i].s, map[i].jerr, "t") == map[i].want,
        "row %zu", i);
  char buf[128];
  aip_bus_fail_nats(NULL, NATS_ERR, 10052, "bus: x");
  aiplat_error_last(buf, sizeof buf);
  ck_assert_ptr_nonnull(strstr(buf, "10052"));
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("bus_internal");
  TCase *tc = tcase_create("internal");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, start_server, stop_server);
  tcase_add_test(tc, nkey_seed_to_public_key);
  tcase_add_test(tc, nkey_authentication);
  tcase_add_test(tc, ack_subject_parsing);
  tcase_add_test(tc, owned_subscription_hands_messages_over);
  tcase_add_test(tc, owned_jetstream_messages_count_until_destroyed);
  tcase_add_test(tc, retired_messages_are_intact_until_freed_on_every_path);
  tcase_add_test(tc, nats_status_mapping);
  suite_add_tcase(s, tc);
  return s;
}
