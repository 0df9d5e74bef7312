/* bench_durable: durable-mode (JetStream) requests through the service
 * framework, on a three-node cluster with an R3 stream against a single
 * node with an R1 stream, in one run; then the recovery after the stream
 * leader's node is killed.
 *
 *   bench_durable [requests [publishers]]     (default 1000, 8)
 *
 * Each setup runs two service instances (4 workers each) on one durable
 * consumer. Each publisher thread publishes a request to the stream (with
 * its publish ack), waits for its answer (a core message on a subject of
 * its own), then sends the next one. A request's latency runs from its
 * publish to its answer, so it counts the publish ack, the fetch, the
 * handler, the flush, the completion record and the confirmed ack of the
 * previous ones. Throughput is answers per second over the run.
 *
 * Recovery: on the cluster, one request every 20 ms; the node leading the
 * stream (and the consumer and the completions bucket, moved there first)
 * is killed; the figure is the time from the kill to the first answer to
 * a request published after it. */
#include <aiplat/aiplat.h>
#include <signal.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/harness/nats_harness.h"

#define MAX_REQ 100000

static int64_t sent_ns[MAX_REQ];
static atomic_llong recv_ns[MAX_REQ];
static int n_req = 1000, n_pub = 8;
static atomic_int next_req;
static char prefix[32];

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static aiplat_status on_req(aiplat_request *req, void *ud) {
  aiplat_service *svc = *(aiplat_service **)ud;
  const char *id = aiplat_request_id(req);
  char subject[96];
  snprintf(subject, sizeof subject, "%s.ans.%s", prefix, id);
  aiplat_status st =
      aiplat_bus_publish(aiplat_service_bus(svc), subject, id, strlen(id), NULL);
  return st ? aiplat_request_fail(req, AIPLAT_ERR_UNAVAILABLE, "not sent")
            : AIPLAT_OK;
}

static void on_answer(aiplat_bus_msg *m, void *ud) {
  (void)ud;
  char id[16];
  snprintf(id, sizeof id, "%.*s", (int)aiplat_bus_msg_len(m),
           (const char *)aiplat_bus_msg_data(m));
  int i = atoi(id);
  if (i >= 0 && i < MAX_REQ) {
    long long zero = 0;
    atomic_compare_exchange_strong(&recv_ns[i], &zero, now_ns());
  }
}

static aiplat_config *config(const char *urls, int replicas) {
  aiplat_config *cfg = NULL;
  char r[8];
  snprintf(r, sizeof r, "%d", replicas);
  if (aiplat_config_create(&cfg) || aiplat_config_set(cfg, "NATS_URL", urls) ||
      aiplat_config_set(cfg, "HEALTH_PORT", "0") ||
      aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1") ||
      aiplat_config_set(cfg, "NATS_RECONNECT_WAIT", "100ms") ||
      aiplat_config_set(cfg, "REQUEST_TIMEOUT", "5s") ||
      aiplat_config_set(cfg, "JS_STREAM_REPLICAS", r)) {
    fprintf(stderr, "config failed\n");
    exit(1);
  }
  return cfg;
}

static aiplat_bus *bus_of(aiplat_config *cfg) {
  aiplat_bus *bus = NULL;
  if (aiplat_bus_create(&bus, cfg) || aiplat_bus_connect(bus)) {
    fprintf(stderr, "connect failed\n");
    exit(1);
  }
  return bus;
}

typedef struct setup {
  aiplat_config *cfg;
  aiplat_service *svc[2];
  aiplat_bus *bus;
  aiplat_bus_sub *collector;
  char stream[32], subject[64];
} setup;

static void setup_start(setup *s, const char *urls, int replicas,
                        const char *name) {
  s->cfg = config(urls, replicas);
  snprintf(prefix, sizeof prefix, "%s", name);
  snprintf(s->stream, sizeof s->stream, "BENCH_%s", name);
  snprintf(s->subject, sizeof s->subject, "%s.req.x", name);
  char filter[64];
  snprintf(filter, sizeof filter, "%s.req.>", name);
  for (int i = 0; i < 2; i++) {
    if (aiplat_service_create(&s->svc[i], s->cfg, "bench", "1.0.0", "durable") ||
        (aiplat_service_set_handle_signals(s->svc[i], false),
         aiplat_service_add_js_endpoint(s->svc[i], "work", s->stream,
                                        "bench-worker", filter,
                                        AIPLAT_MSG_INVALID, AIPLAT_MSG_INVALID,
                                        on_req, &s->svc[i])) ||
        aiplat_service_start(s->svc[i])) {
      char why[256];
      aiplat_error_last(why, sizeof why);
      fprintf(stderr, "service start failed: %s\n", why);
      exit(1);
    }
  }
  s->bus = bus_of(s->cfg);
  char ans[64];
  snprintf(ans, sizeof ans, "%s.ans.*", name);
  aiplat_bus_subscribe(s->bus, ans, NULL, on_answer, NULL, &s->collector);
  aiplat_bus_flush(s->bus, 2000);
}

static void setup_stop(setup *s) {
  for (int i = 0; i < 2; i++) {
    aiplat_service_stop(s->svc[i]);
    aiplat_service_run(s->svc[i]);
    aiplat_service_destroy(s->svc[i]);
  }
  aiplat_bus_sub_destroy(s->collector);
  aiplat_bus_destroy(s->bus);
  aiplat_config_destroy(s->cfg);
}

/* Publish request @i, retried until the stream stores it. */
static void publish(setup *s, int i) {
  char id[16];
  snprintf(id, sizeof id, "%d", i);
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  aiplat_headers_set(h, "Aiplat-Request-Id", id);
  aiplat_headers_set(h, "Nats-Msg-Id", id);
  sent_ns[i] = now_ns();
  while (aiplat_bus_js_publish(s->bus, s->subject, id, strlen(id), h, NULL)) {
    aiplat_error_clear();
    sleep_ms(20);
  }
  aiplat_headers_destroy(h);
}

static void *pub_main(void *arg) {
  setup *s = arg;
  for (int i; (i = atomic_fetch_add(&next_req, 1)) < n_req;) {
    publish(s, i);
    for (int64_t t0 = now_ns(); !atomic_load(&recv_ns[i]) &&
                                now_ns() - t0 < 30 * INT64_C(1000000000);) {
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static void measure(setup *s, const char *label) {
  for (int i = 0; i < n_req; i++) atomic_store(&recv_ns[i], 0);
  atomic_store(&next_req, 0);
  pthread_t t[64];
  int64_t t0 = now_ns();
  for (int p = 0; p < n_pub; p++) pthread_create(&t[p], NULL, pub_main, s);
  for (int p = 0; p < n_pub; p++) pthread_join(t[p], NULL);
  int64_t t1 = now_ns();
  long long *lat = calloc((size_t)n_req, sizeof *lat);
  int got = 0;
  for (int i = 0; i < n_req; i++)
    if (recv_ns[i]) lat[got++] = recv_ns[i] - sent_ns[i];
  qsort(lat, (size_t)got, sizeof *lat, cmp_ll);
  printf("%-22s %6d/%d answered  %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms\n",
         label, got, n_req, got / ((t1 - t0) / 1e9),
         got ? lat[got / 2] / 1e6 : 0, got ? lat[(got * 99) / 100] / 1e6 : 0);
  free(lat);
  fflush(stdout);
}

static int leader(aiplat_bus *bus, const char *op) {
  for (int attempt = 0; attempt < 40; attempt++) {
    aiplat_bus_msg *r = NULL;
    char subj[160];
    snprintf(subj, sizeof subj, "$JS.API.%s", op);
    if (aiplat_bus_request(bus, subj, NULL, 0, NULL, 2000, &r) == AIPLAT_OK) {
      const char *d = (const char *)aiplat_bus_msg_data(r);
      const char *l = strstr(d, "\"leader\":\"n");
      int i = l ? atoi(l + 11) - 1 : -1;
      aiplat_bus_msg_destroy(r);
      if (i >= 0) return i;
    }
    aiplat_error_clear();
    sleep_ms(250);
  }
  return -1;
}

static void stepdown(aiplat_bus *bus, const char *op) {
  char subj[160];
  snprintf(subj, sizeof subj, "$JS.API.%s", op);
  aiplat_bus_msg *r = NULL;
  if (aiplat_bus_request(bus, subj, "{}", 2, NULL, 2000, &r) == AIPLAT_OK)
    aiplat_bus_msg_destroy(r);
  aiplat_error_clear();
}

/* The node leading the stream, with the consumer's and the bucket's
 * leaders moved there; -1 when they would not move. */
static int align(aiplat_bus *bus, const char *stream) {
  char sop[96], ops[2][160], downs[2][160];
  snprintf(sop, sizeof sop, "STREAM.INFO.%s", stream);
  snprintf(ops[0], sizeof ops[0], "CONSUMER.INFO.%s.bench-worker", stream);
  snprintf(downs[0], sizeof downs[0], "CONSUMER.LEADER.STEPDOWN.%s.bench-worker",
           stream);
  snprintf(ops[1], sizeof ops[1], "STREAM.INFO.KV_aiplat-completions");
  snprintf(downs[1], sizeof downs[1],
           "STREAM.LEADER.STEPDOWN.KV_aiplat-completions");
  int s = leader(bus, sop);
  for (int k = 0; k < 2 && s >= 0; k++) {
    int tries = 0, c;
    while ((c = leader(bus, ops[k])) != s && tries++ < 12) {
      stepdown(bus, downs[k]);
      sleep_ms(300);
    }
    if (c != s) return -1;
  }
  return s;
}

static void recovery(setup *s, th_nats **nodes, int n) {
  int victim = align(s->bus, s->stream);
  if (victim < 0) {
    printf("recovery: the leaders would not gather on one node\n");
    return;
  }
  /* Requests and answers through a node that survives. */
  char url[64];
  snprintf(url, sizeof url, "%s", th_nats_url(nodes[(victim + 1) % n]));
  aiplat_config *cfg = config(url, 3);
  aiplat_bus *bus = bus_of(cfg);
  aiplat_bus_sub *col = NULL;
  char ans[64];
  snprintf(ans, sizeof ans, "%s.ans.*", prefix);
  aiplat_bus_subscribe(bus, ans, NULL, on_answer, NULL, &col);
  aiplat_bus_flush(bus, 2000);
  aiplat_bus *keep = s->bus;
  s->bus = bus;
  int base = n_req, i = base;
  for (int k = 0; k < 2000; k++) atomic_store(&recv_ns[base + k], 0);
  for (; i < base + 25; i++) publish(s, i), sleep_ms(20);
  int64_t killed = now_ns();
  kill(th_nats_pid(nodes[victim]), SIGKILL);
  th_nats_kill(nodes[victim]);
  int first_after = i;
  int64_t back = -1;
  for (; i < base + 2000 && back < 0; i++) {
    publish(s, i);
    sleep_ms(20);
    for (int j = first_after; j <= i && back < 0; j++)
      if (recv_ns[j]) back = recv_ns[j];
  }
  printf("recovery after the leader's node was killed: %.2f s (first answer "
         "to a request published after the kill)\n",
         back > 0 ? (back - killed) / 1e9 : -1.0);
  sleep_ms(3000);
  s->bus = keep;
  aiplat_bus_sub_destroy(col);
  aiplat_bus_destroy(bus);
  aiplat_config_destroy(cfg);
  th_nats_restart(nodes[victim]);
}

int main(int argc, char **argv) {
  if (argc > 1) n_req = atoi(argv[1]);
  if (argc > 2) n_pub = atoi(argv[2]);
  if (n_req < 1 || n_req > MAX_REQ - 2000 || n_pub < 1 || n_pub > 64) {
    fprintf(stderr, "usage: bench_durable [requests [publishers]]\n");
    return 2;
  }
  setenv("LOG_LEVEL", "error", 0);
  th_nats *single = th_nats_start(NULL);
  th_nats *nodes[3];
  if (!single || !th_nats_cluster_start(nodes, 3)) return 1;
  char urls[512];
  th_nats_cluster_urls(nodes, 3, urls, sizeof urls);
  sleep_ms(3000); /* the meta leader */
  printf("durable requests: %d, %d publishers, 2 instances x 4 workers\n",
         n_req, n_pub);
  setup one, three;
  setup_start(&one, th_nats_url(single), 1, "one");
  measure(&one, "1 node, R1 stream");
  setup_stop(&one);
  setup_start(&three, urls, 3, "three");
  measure(&three, "3 nodes, R3 stream");
  recovery(&three, nodes, 3);
  setup_stop(&three);
  for (int i = 0; i < 3; i++) th_nats_stop(nodes[i]);
  th_nats_stop(single);
  return 0;
}
