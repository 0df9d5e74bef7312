/* Helpers shared by the bus suites: a message collector that tests can
 * wait on, an event recorder, and a configuration pointing at a server. */
#ifndef TESTS_BUS_TESTUTIL_H
#define TESTS_BUS_TESTUTIL_H

#include <aiplat/aiplat.h>
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static inline int64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void tu_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#define TU_MAX_KEPT 64

/* Counts messages; keeps the last payload and (optionally) references. */
typedef struct tu_collector {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int count;
  char last_subject[256];
  char last_data[256];
  uint64_t last_delivered;
  int64_t times_ms[TU_MAX_KEPT]; /* arrival times of the first messages */
  aiplat_bus_msg *kept[TU_MAX_KEPT];
  int n_kept;
  bool keep;               /* retain each message in kept[] */
  bool ack;                /* JetStream: ack each message */
  int sleep_ms;            /* work per message */
  bool block;              /* wait in the callback until unblocked */
  aiplat_status cb_status; /* a status observed inside the callback */
} tu_collector;

static inline void tu_collector_init(tu_collector *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

static inline void tu_collector_free(tu_collector *c) {
  for (int i = 0; i < c->n_kept; i++) aiplat_bus_msg_destroy(c->kept[i]);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
}

static inline void tu_collect(aiplat_bus_msg *m, void *ud) {
  tu_collector *c = ud;
  pthread_mutex_lock(&c->mu);
  while (c->block) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  if (c->sleep_ms) tu_sleep_ms(c->sleep_ms);
  uint64_t delivered = 0;
  if (aiplat_bus_msg_is_jetstream(m)) {
    aiplat_bus_msg_delivery_count(m, &delivered);
    if (c->ack) aiplat_bus_msg_ack(m);
  }
  pthread_mutex_lock(&c->mu);
  if (c->count < TU_MAX_KEPT) c->times_ms[c->count] = tu_now_ms();
  c->count++;
  c->last_delivered = delivered;
  snprintf(c->last_subject, sizeof c->last_subject, "%s",
           aiplat_bus_msg_subject(m));
  size_t n = aiplat_bus_msg_len(m);
  if (n >= sizeof c->last_data) n = sizeof c->last_data - 1;
  memcpy(c->last_data, aiplat_bus_msg_data(m), n);
  c->last_data[n] = '\0';
  if (c->keep && c->n_kept < TU_MAX_KEPT)
    c->kept[c->n_kept++] = aiplat_bus_msg_retain(m);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static inline void tu_unblock(tu_collector *c) {
  pthread_mutex_lock(&c->mu);
  c->block = false;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* Wait until at least @n messages arrived; false after @timeout_ms. */
static inline bool tu_wait_count(tu_collector *c, int n, int timeout_ms) {
  int64_t end = tu_now_ms() + timeout_ms;
  pthread_mutex_lock(&c->mu);
  while (c->count < n && tu_now_ms() < end) {
    pthread_mutex_unlock(&c->mu);
    tu_sleep_ms(5);
    pthread_mutex_lock(&c->mu);
  }
  bool ok = c->count >= n;
  pthread_mutex_unlock(&c->mu);
  return ok;
}

static inline int tu_count(tu_collector *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->count;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* Records connection events. */
typedef struct tu_events {
  pthread_mutex_t mu;
  int counts[8];
  aiplat_status last_error;
  char last_detail[256];
} tu_events;

static inline void tu_events_init(tu_events *e) {
  memset(e, 0, sizeof *e);
  pthread_mutex_init(&e->mu, NULL);
}

static inline void tu_on_event(aiplat_bus *bus, aiplat_bus_event ev,
                               aiplat_status st, const char *detail, void *ud) {
  (void)bus;
  tu_events *e = ud;
  pthread_mutex_lock(&e->mu);
  if ((int)ev >= 0 && (int)ev < 8) e->counts[ev]++;
  if (ev == AIPLAT_BUS_EVENT_ERROR) {
    e->last_error = st;
    snprintf(e->last_detail, sizeof e->last_detail, "%s", detail);
  }
  pthread_mutex_unlock(&e->mu);
}

static inline int tu_event_count(tu_events *e, aiplat_bus_event ev) {
  pthread_mutex_lock(&e->mu);
  int n = e->counts[ev];
  pthread_mutex_unlock(&e->mu);
  return n;
}

static inline bool tu_wait_event(tu_events *e, aiplat_bus_event ev, int n,
                                 int timeout_ms) {
  int64_t end = tu_now_ms() + timeout_ms;
  while (tu_event_count(e, ev) < n) {
    if (tu_now_ms() >= end) return false;
    tu_sleep_ms(5);
  }
  return true;
}

/* A configuration for @url that ignores NATS_* variables of the caller's
 * environment, with quick reconnects for tests. */
static inline aiplat_config *tu_config(const char *url) {
  static const char *const clear[] = {
      "NATS_CREDS",          "NATS_NKEY_SEED", "NATS_TOKEN",
      "NATS_USER",           "NATS_PASSWORD",  "NATS_TLS_CA",
      "NATS_TLS_CERT",       "NATS_TLS_KEY",   "NATS_NAME",
      "NATS_MAX_RECONNECTS", "NATS_SEND_ASAP", "NATS_RETRY_ON_FAILED_CONNECT"};
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++)
    ck_assert_int_eq(aiplat_config_set(cfg, clear[i], NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_URL", url), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_RECONNECT_WAIT", "100ms"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_CONNECT_TIMEOUT", "2s"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "SERVICE_NAME", "bus-test"),
                   AIPLAT_OK);
  return cfg;
}

/* A connected bus on @url; fails the test otherwise. */
static inline aiplat_bus *tu_connect(const char *url) {
  aiplat_config *cfg = tu_config(url);
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  char err[512] = "";
  aiplat_status st = aiplat_bus_connect(bus);
  aiplat_bus_last_error(bus, err, sizeof err);
  ck_assert_msg(st == AIPLAT_OK, "connect: %s", err);
  return bus;
}

static inline const char *tu_bus_err(aiplat_bus *bus) {
  static char buf[512];
  aiplat_bus_last_error(bus, buf, sizeof buf);
  return buf;
}

#endif
