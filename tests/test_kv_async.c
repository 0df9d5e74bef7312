/* The asynchronous Key-Value calls (lib/bus_internal.h) against a real
 * nats-server: a value put and read back, a key never written, deleted or
 * purged, expired by the bucket's max age, a bucket that does not exist
 * yet, a deadline with no answer (the server stopped), the handle's end with calls in flight.
 * Each callback runs on the execution core's loop thread. No assertion
 * depends on an upper time bound. */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "bus_testutil.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"
#include "loop.h"

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

/* One call's end, waited for. */
typedef struct result {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done, on_loop;
  aiplat_status st;
  char why[256];
  char *data;
  size_t len;
  uint64_t rev;
} result;

static void result_init(result *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
}

static void result_free(result *r) {
  free(r->data);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
}

static void on_done(aiplat_status st, const char *why, void *data, size_t len,
                    uint64_t rev, void *ud) {
  result *r = ud;
  pthread_mutex_lock(&r->mu);
  r->on_loop = aip_loop_on_thread();
  r->st = st;
  snprintf(r->why, sizeof r->why, "%s", why);
  r->data = data;
  r->len = len;
  r->rev = rev;
  r->done = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void result_wait(result *r) {
  pthread_mutex_lock(&r->mu);
  while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  ck_assert(r->on_loop);
}

static aiplat_status get(aip_akv *kv, const char *key, result *r) {
  result_init(r);
  ck_assert_int_eq(aip_akv_get(kv, key, 0, on_done, r), AIPLAT_OK);
  result_wait(r);
  return r->st;
}

static aiplat_status put(aip_akv *kv, const char *key, const char *val,
                         uint64_t *rev) {
  result r;
  result_init(&r);
  ck_assert_int_eq(aip_akv_put(kv, key, val, strlen(val), 0, on_done, &r),
                   AIPLAT_OK);
  result_wait(&r);
  aiplat_status st = r.st;
  ck_assert_msg(st == AIPLAT_OK, "put: %s", r.why);
  if (rev) *rev = r.rev;
  result_free(&r);
  return st;
}

START_TEST(put_then_get_and_a_missing_bucket_is_created) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_one", 0, 1), AIPLAT_OK);
  /* No bucket yet: the get creates it and finds no key. */
  result r;
  aiplat_status st = get(kv, "k1", &r);
  ck_assert_msg(st == AIPLAT_ERR_NOT_FOUND, "%d %s", st, r.why);
  ck_assert_ptr_nonnull(strstr(r.why, "k1"));
  result_free(&r);
  uint64_t rev1 = 0, rev2 = 0;
  put(kv, "k1", "first", &rev1);
  put(kv, "k1", "second", &rev2);
  ck_assert_uint_gt(rev1, 0);
  ck_assert_uint_gt(rev2, rev1);
  ck_assert_int_eq(get(kv, "k1", &r), AIPLAT_OK);
  ck_assert_str_eq(r.data, "second");
  ck_assert_uint_eq(r.len, 6);
  ck_assert_uint_eq(r.rev, rev2);
  result_free(&r);
  /* The blocking handle sees the same bucket. */
  aiplat_kv *bkv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&bkv, bus, "akv_one", 0, 1), AIPLAT_OK);
  void *v = NULL;
  size_t n = 0;
  ck_assert_int_eq(aiplat_kv_get(bkv, "k1", &v, &n), AIPLAT_OK);
  ck_assert_str_eq(v, "second");
  aiplat_free(v);
  aiplat_kv_destroy(bkv);
  aip_akv_destroy(kv);
}
END_TEST

START_TEST(a_put_creates_a_missing_bucket) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_put", 0, 1), AIPLAT_OK);
  put(kv, "a.b", "", NULL); /* an empty value is a value */
  result r;
  ck_assert_int_eq(get(kv, "a.b", &r), AIPLAT_OK);
  ck_assert_uint_eq(r.len, 0);
  ck_assert_str_eq(r.data, "");
  result_free(&r);
  aip_akv_destroy(kv);
}
END_TEST

START_TEST(deleted_and_purged_keys_are_not_found) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_del", 0, 5), AIPLAT_OK);
  put(kv, "gone", "v", NULL);
  put(kv, "purged", "v", NULL);
  aiplat_kv *bkv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&bkv, bus, "akv_del", 0, 5), AIPLAT_OK);
  ck_assert_int_eq(aiplat_kv_delete(bkv, "gone"), AIPLAT_OK);
  aiplat_kv_destroy(bkv);
  /* A purge marker, as a KV client writes it. */
  natsMsg *m = NULL;
  ck_assert_int_eq(natsMsg_Create(&m, "$KV.akv_del.purged", NULL, NULL, 0),
                   NATS_OK);
  natsMsgHeader_Set(m, "KV-Operation", "PURGE");
  natsMsgHeader_Set(m, "Nats-Rollup", "sub");
  natsMsg *ack = NULL;
  ck_assert_int_eq(natsConnection_RequestMsg(&ack, aip_bus_conn(bus), m, 5000),
                   NATS_OK);
  natsMsg_Destroy(ack);
  natsMsg_Destroy(m);
  result r;
  ck_assert_int_eq(get(kv, "gone", &r), AIPLAT_ERR_NOT_FOUND);
  result_free(&r);
  ck_assert_int_eq(get(kv, "purged", &r), AIPLAT_ERR_NOT_FOUND);
  result_free(&r);
  ck_assert_int_eq(get(kv, "never", &r), AIPLAT_ERR_NOT_FOUND);
  result_free(&r);
  /* Written again: found again. */
  put(kv, "gone", "back", NULL);
  ck_assert_int_eq(get(kv, "gone", &r), AIPLAT_OK);
  ck_assert_str_eq(r.data, "back");
  result_free(&r);
  aip_akv_destroy(kv);
}
END_TEST

START_TEST(an_expired_value_is_not_found) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_ttl", 1000, 1), AIPLAT_OK);
  put(kv, "k", "v", NULL);
  result r;
  ck_assert_int_eq(get(kv, "k", &r), AIPLAT_OK);
  result_free(&r);
  /* The bucket's max age removes it, some time after a second. */
  for (;;) {
    aiplat_status st = get(kv, "k", &r);
    result_free(&r);
    if (st == AIPLAT_ERR_NOT_FOUND) break;
    ck_assert_int_eq(st, AIPLAT_OK);
    tu_sleep_ms(200);
  }
  aip_akv_destroy(kv);
}
END_TEST

/* The server stops answering (the process is stopped) and resumes. */
static void server_pause(bool on) {
  pid_t pid = th_nats_pid(server);
  ck_assert_int_eq(kill(pid, on ? SIGSTOP : SIGCONT), 0);
  /* SIGSTOP takes effect asynchronously: wait until the state says so. */
  char path[64], stat[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  while (on) {
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');
    if (p && p[1] == ' ' && p[2] == 'T') break;
    tu_sleep_ms(5);
  }
}

START_TEST(no_answer_ends_at_the_deadline) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_mute", 0, 1), AIPLAT_OK);
  put(kv, "k", "v", NULL);
  server_pause(true);
  result r;
  result_init(&r);
  ck_assert_int_eq(aip_akv_get(kv, "k", aip_now_ms() + 300, on_done, &r),
                   AIPLAT_OK);
  result_wait(&r);
  server_pause(false);
  ck_assert_int_eq(r.st, AIPLAT_ERR_TIMEOUT);
  result_free(&r);
  /* A deadline already past is refused at once. */
  ck_assert_int_eq(aip_akv_get(kv, "k", aip_now_ms() - 1, on_done, &r),
                   AIPLAT_ERR_TIMEOUT);
  aip_akv_destroy(kv);
}
END_TEST

START_TEST(the_end_of_the_handle_ends_its_calls) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_end", 0, 1), AIPLAT_OK);
  put(kv, "k", "v", NULL);
  server_pause(true);
  enum { N = 50 };
  result r[N];
  for (int i = 0; i < N; i++) {
    result_init(&r[i]);
    ck_assert_int_eq(aip_akv_get(kv, "k", aip_now_ms() + 600000, on_done, &r[i]),
                     AIPLAT_OK);
  }
  aip_akv_destroy(kv);
  server_pause(false);
  for (int i = 0; i < N; i++) {
    ck_assert(r[i].done); /* destroy waited for every callback */
    ck_assert(r[i].on_loop);
    ck_assert_int_eq(r[i].st, AIPLAT_ERR_CLOSED);
    result_free(&r[i]);
  }
}
END_TEST

START_TEST(bad_arguments_are_refused_at_once) {
  aip_akv *kv = NULL;
  ck_assert_int_eq(aip_akv_create(&kv, bus, "bad.name", 0, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_bad", 0, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_akv_create(&kv, bus, "akv_bad", 0, 1), AIPLAT_OK);
  result r;
  result_init(&r);
  ck_assert_int_eq(aip_akv_get(kv, "a..b", 0, on_done, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_akv_get(kv, "a b", 0, on_done, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  size_t big = (size_t)natsConnection_GetMaxPayload(aip_bus_conn(bus)) + 1;
  char *v = calloc(1, big);
  ck_assert_int_eq(aip_akv_put(kv, "k", v, big, 0, on_done, &r),
                   AIPLAT_ERR_TOO_LARGE);
  free(v);
  ck_assert(!r.done);
  result_free(&r);
  aip_akv_destroy(kv);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("kv_async");
  TCase *tc = tcase_create("kv_async");
  tcase_add_unchecked_fixture(tc, start_server, stop_server);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, put_then_get_and_a_missing_bucket_is_created);
  tcase_add_test(tc, a_put_creates_a_missing_bucket);
  tcase_add_test(tc, deleted_and_purged_keys_are_not_found);
  tcase_add_test(tc, an_expired_value_is_not_found);
  tcase_add_test(tc, no_answer_ends_at_the_deadline);
  tcase_add_test(tc, the_end_of_the_handle_ends_its_calls);
  tcase_add_test(tc, bad_arguments_are_refused_at_once);
  suite_add_tcase(s, tc);
  return s;
}
