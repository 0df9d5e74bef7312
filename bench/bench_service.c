/* bench_service: request/reply through the service framework against raw
 * nats.c repliers doing the same bytes, in one run on one nats-server.
 *
 *   bench_service [seconds-per-case]        (default 3)
 *
 * Each replier runs in its own child process so that its CPU time per
 * message is its own (utime + stime from /proc/PID/stat over the measured
 * window). The load generator keeps 1 or 16 requests in flight on one
 * connection (send-asap), and records each round trip's latency.
 *
 * Repliers:
 *   framework   aiplat_service: decode ChatRequest -> handler -> encode
 *               ChatResponse -> reply (WORKERS=2)
 *   raw-default nats.c subscription callback replying with the request's
 *               bytes, default connection options
 *   raw-asap    the same with natsOptions_SetSendAsap(true)
 * Also prints the idle framework service's VmRSS and private anonymous
 * memory (from /proc/PID/smaps_rollup). */
#include <aiplat/aiplat.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/harness/nats_harness.h"

#define SUBJECT "bench.echo"
#define MAX_SAMPLES 2000000

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- repliers (child processes) ------------------------------------------ */

static aiplat_status on_echo(aiplat_request *req, void *ud) {
  (void)ud;
  const char *text = "";
  aiplat_msg_get_string(aiplat_request_message(req), "message", &text);
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_CHAT_RESPONSE);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(out, "text", text);
  if (st == AIPLAT_OK) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

static int run_framework(const char *url) {
  aiplat_config *cfg = NULL;
  aiplat_service *svc = NULL;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "NATS_URL", url);
  aiplat_config_set(cfg, "HEALTH_PORT", "0");
  aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1");
  aiplat_config_set(cfg, "LOG_LEVEL", "WARNING");
  aiplat_config_set(cfg, "WORKERS", "2");
  aiplat_log_set_level(AIPLAT_LOG_WARNING);
  if (aiplat_service_create(&svc, cfg, "bench", "1.0.0", "bench echo") != AIPLAT_OK ||
      aiplat_service_add_endpoint(svc, "echo", SUBJECT, NULL, AIPLAT_MSG_CHAT_REQUEST,
                                  AIPLAT_MSG_CHAT_RESPONSE, on_echo, NULL) != AIPLAT_OK)
    return 1;
  aiplat_status st = aiplat_service_run(svc); /* until SIGTERM */
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  return st == AIPLAT_OK ? 0 : 1;
}

static void raw_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)sub, (void)ud;
  if (natsMsg_GetReply(m))
    natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
  natsMsg_Destroy(m);
}

static int run_raw(const char *url, bool asap) {
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  natsSubscription *sub = NULL;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url);
  natsOptions_SetSendAsap(o, asap);
  if (natsConnection_Connect(&nc, o) != NATS_OK) return 1;
  natsConnection_QueueSubscribe(&sub, nc, SUBJECT, "bench", raw_cb, NULL);
  natsConnection_Flush(nc);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  int sig;
  sigwait(&set, &sig);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
  return 0;
}

/* ---- load generator --------------------------------------------------------- */

typedef struct load {
  natsConnection *nc;
  const void *payload;
  int len;
  char inbox[64];
  int64_t *sent_at; /* by sequence */
  double *lat_us;
  atomic_long done;
  atomic_long next_seq;
  atomic_bool stop;
  long samples;
} load;

static void send_one(load *L) {
  long seq = atomic_fetch_add(&L->next_seq, 1);
  char reply[96];
  snprintf(reply, sizeof reply, "%s.%ld", L->inbox, seq);
  L->sent_at[seq % MAX_SAMPLES] = now_ns();
  natsConnection_PublishRequest(L->nc, SUBJECT, reply, L->payload, L->len);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)nc, (void)sub;
  load *L = ud;
  const char *subj = natsMsg_GetSubject(m);
  long seq = atol(strrchr(subj, '.') + 1);
  int64_t t = now_ns();
  long n = atomic_fetch_add(&L->done, 1);
  if (n < MAX_SAMPLES) L->lat_us[n] = (double)(t - L->sent_at[seq % MAX_SAMPLES]) / 1000.0;
  natsMsg_Destroy(m);
  if (!atomic_load(&L->stop)) send_one(L);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double cpu_seconds(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  /* fields after ")": state(3) ... utime(14) stime(15) */
  if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long smaps_kb(pid_t pid, const char *key) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  size_t kl = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0) kb = atol(line + kl);
  if (f) fclose(f);
  return kb;
}

static bool wait_responder(const char *url) {
  natsConnection *nc = NULL;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK) return false;
  natsMsg *r = NULL;
  bool ok = false;
  for (int i = 0; i < 200 && !ok; i++) {
    ok = natsConnection_RequestString(&r, nc, SUBJECT, "", 100) == NATS_OK;
    natsMsg_Destroy(r);
    r = NULL;
    if (!ok) usleep(20000);
  }
  natsConnection_Destroy(nc);
  return ok;
}

static void run_case(const char *url, const char *name, pid_t replier, int depth,
                     double seconds, const void *payload, int len) {
  load L = {0};
  L.payload = payload;
  L.len = len;
  L.sent_at = calloc(MAX_SAMPLES, sizeof *L.sent_at);
  L.lat_us = calloc(MAX_SAMPLES, sizeof *L.lat_us);
  natsOptions *o = NULL;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url);
  natsOptions_SetSendAsap(o, true);
  natsConnection_Connect(&L.nc, o);
  snprintf(L.inbox, sizeof L.inbox, "_BENCH.%s.%d", name, depth);
  char filter[96];
  snprintf(filter, sizeof filter, "%s.*", L.inbox);
  natsSubscription *sub = NULL;
  natsConnection_Subscribe(&sub, L.nc, filter, on_reply, &L);
  natsSubscription_SetPendingLimits(sub, -1, -1);
  natsConnection_Flush(L.nc);
  /* warm up half a second, then measure */
  for (int i = 0; i < depth; i++) send_one(&L);
  usleep(500000);
  long d0 = atomic_load(&L.done);
  double c0 = cpu_seconds(replier);
  int64_t t0 = now_ns();
  usleep((useconds_t)(seconds * 1e6));
  long d1 = atomic_load(&L.done);
  double c1 = cpu_seconds(replier);
  int64_t t1 = now_ns();
  atomic_store(&L.stop, true);
  usleep(200000);
  long n = d1 - d0;
  double secs = (double)(t1 - t0) / 1e9;
  long have = d1 < MAX_SAMPLES ? d1 : MAX_SAMPLES;
  long from = d0 < have ? d0 : 0;
  qsort(L.lat_us + from, (size_t)(have - from), sizeof(double), cmp_double);
  double p50 = L.lat_us[from + (have - from) / 2];
  double p99 = L.lat_us[from + (long)((double)(have - from) * 0.99)];
  printf("%-12s %6d %12.0f %10.1f %10.1f %14.2f\n", name, depth, (double)n / secs, p50, p99,
         n ? (c1 - c0) * 1e6 / (double)n : 0.0);
  fflush(stdout);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(L.nc);
  natsOptions_Destroy(o);
  free(L.sent_at);
  free(L.lat_us);
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  if (seconds <= 0) seconds = 3.0;
  th_nats *srv = th_nats_start(NULL);
  if (!srv) return 1;
  const char *url = th_nats_url(srv);

  aiplat_msg *m = NULL;
  uint8_t *payload = NULL;
  size_t len = 0;
  aiplat_msg_create(&m, AIPLAT_MSG_CHAT_REQUEST);
  aiplat_msg_set_string(m, "user_id", "bench-user");
  aiplat_msg_set_string(m, "request_id", "bench-request-0001");
  aiplat_msg_set_string(m, "message", "How often are Milvus backups taken?");
  aiplat_msg_encode(m, &payload, &len);
  aiplat_msg_destroy(m);

  printf("request/reply, %zu-byte ChatRequest, %.1f s per case, nats-server %s\n", len, seconds,
         url);
  printf("%-12s %6s %12s %10s %10s %14s\n", "replier", "depth", "msgs/s", "p50 us", "p99 us",
         "cpu us/msg");
  const char *names[] = {"framework", "raw-default", "raw-asap"};
  for (int r = 0; r < 3; r++) {
    pid_t pid = fork();
    if (pid == 0) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &set, NULL);
      _exit(r == 0 ? run_framework(url) : run_raw(url, r == 2));
    }
    if (!wait_responder(url)) {
      fprintf(stderr, "bench: %s did not answer\n", names[r]);
      kill(pid, SIGKILL);
      continue;
    }
    if (r == 0) {
      usleep(1000000);
      printf("# idle framework service: VmRSS %ld kB (Rss), private anonymous %ld kB\n",
             smaps_kb(pid, "Rss:"), smaps_kb(pid, "Anonymous:"));
    }
    run_case(url, names[r], pid, 1, seconds, payload, (int)len);
    run_case(url, names[r], pid, 16, seconds, payload, (int)len);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
  aiplat_free(payload);
  th_nats_stop(srv);
  return 0;
}
