/* bench_service: request/reply through the service framework against raw
 * nats.c repliers doing the same bytes, in one run on one nats-server.
 *
 *   bench_service [seconds-per-case [rounds]]     (default 3 s, 3 rounds)
 *
 * Each replier runs in its own process (a fresh exec of this program, with
 * nats.c's own threads), on its own subject, so that
 * its CPU time per message is its own (utime + stime from /proc/PID/stat
 * over the measured window) and its context switches are counted over all
 * its threads (/proc/PID/task/TID/status). The load generator keeps 1 or 16
 * requests in flight on one connection (send-asap) and records each round
 * trip's latency.
 *
 * On a small virtual machine a context switch costs more than everything
 * else a reply does, and where the scheduler puts a replier's threads
 * changes its figures by a third from one run to the next. So the cases
 * are interleaved (every replier and depth once per round, rounds in turn)
 * and each figure is the median over the rounds, with the range.
 *
 * Repliers:
 *   framework   aiplat_service: decode ChatRequest -> handler -> encode
 *               ChatResponse -> reply (WORKERS from BENCH_WORKERS, default 1:
 *               one delivery thread, like the raw repliers)
 *   raw-default nats.c subscription callback replying with the request's
 *               bytes, default connection options
 *   raw-asap    the same with natsOptions_SetSendAsap(true)
 * Also prints the idle framework service's VmRSS and private anonymous
 * memory (from /proc/PID/smaps_rollup).
 *
 * BENCH_REPLIERS=framework,raw-asap runs only those; BENCH_PAUSE=N prints
 * each replier's pid and waits N seconds (to attach perf or strace);
 * BENCH_THREADS=1 prints each case's switches and CPU ticks per thread. */
#include <aiplat/aiplat.h>
#include <nats/nats.h>
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/harness/nats_harness.h"

#define SUBJECT_PREFIX "bench.echo."
#define MAX_ROUNDS 15
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

static int run_framework(const char *url, const char *subject) {
  aiplat_config *cfg = NULL;
  aiplat_service *svc = NULL;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "NATS_URL", url);
  aiplat_config_set(cfg, "HEALTH_PORT", "0");
  aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1");
  aiplat_config_set(cfg, "LOG_LEVEL", "WARNING");
  const char *workers = getenv("BENCH_WORKERS");
  aiplat_config_set(cfg, "WORKERS", workers && *workers ? workers : "1");
  aiplat_log_set_level(AIPLAT_LOG_WARNING);
  if (aiplat_service_create(&svc, cfg, "bench", "1.0.0", "bench echo") != AIPLAT_OK ||
      aiplat_service_add_endpoint(svc, "echo", subject, NULL, AIPLAT_MSG_CHAT_REQUEST,
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

static int run_raw(const char *url, const char *subject, bool asap) {
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  natsSubscription *sub = NULL;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url);
  natsOptions_SetSendAsap(o, asap);
  if (natsConnection_Connect(&nc, o) != NATS_OK) return 1;
  natsConnection_QueueSubscribe(&sub, nc, subject, "bench", raw_cb, NULL);
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
  const char *subject;
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
  natsConnection_PublishRequest(L->nc, L->subject, reply, L->payload, L->len);
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

/* utime + stime, in clock ticks, from a /proc stat file. */
static long stat_ticks(const char *path) {
  char buf[1024];
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  /* fields after ")": state(3) ... utime(14) stime(15) */
  if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
  return (long)(ut + st);
}

static double cpu_seconds(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  return (double)stat_ticks(path) / (double)sysconf(_SC_CLK_TCK);
}

/* Context switches and CPU ticks of each thread of the replier; summed for
 * every case, printed per thread with BENCH_THREADS=1. */
typedef struct thread_snap {
  int tid;
  long vol, invol, ticks;
} thread_snap;

static int snap_threads(pid_t pid, thread_snap *out, int max) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) && n < max) {
    if (e->d_name[0] == '.') continue;
    char sp[320], line[256];
    thread_snap t = {.tid = atoi(e->d_name)};
    snprintf(sp, sizeof sp, "/proc/%d/task/%s/status", (int)pid, e->d_name);
    FILE *f = fopen(sp, "r");
    while (f && fgets(line, sizeof line, f)) {
      if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) t.vol = atol(line + 24);
      if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0) t.invol = atol(line + 27);
    }
    if (f) fclose(f);
    snprintf(sp, sizeof sp, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
    t.ticks = stat_ticks(sp);
    out[n++] = t;
  }
  if (d) closedir(d);
  return n;
}

/* Context switches of every thread of a snapshot. */
static long total_switches(const thread_snap *t, int n) {
  long total = 0;
  for (int i = 0; i < n; i++) total += t[i].vol + t[i].invol;
  return total;
}

static void print_thread_deltas(const char *name, int depth, const thread_snap *a, int na,
                                const thread_snap *b, int nb, long msgs) {
  for (int i = 0; i < nb; i++) {
    thread_snap before = {0};
    for (int j = 0; j < na; j++)
      if (a[j].tid == b[i].tid) before = a[j];
    long vol = b[i].vol - before.vol, invol = b[i].invol - before.invol;
    long ticks = b[i].ticks - before.ticks;
    if (!vol && !invol && !ticks) continue;
    printf("#   %s depth %d thread %d: %.3f voluntary + %.3f involuntary switches/msg, %ld ticks\n",
           name, depth, b[i].tid, msgs ? (double)vol / (double)msgs : 0.0,
           msgs ? (double)invol / (double)msgs : 0.0, ticks);
  }
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

static bool wait_responder(const char *url, const char *subject) {
  natsConnection *nc = NULL;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK) return false;
  natsMsg *r = NULL;
  bool ok = false;
  for (int i = 0; i < 200 && !ok; i++) {
    ok = natsConnection_RequestString(&r, nc, subject, "", 100) == NATS_OK;
    natsMsg_Destroy(r);
    r = NULL;
    if (!ok) usleep(20000);
  }
  natsConnection_Destroy(nc);
  return ok;
}

typedef struct result {
  double rate, p50, p99, cpu_us, switches;
} result;

static result run_case(const char *url, const char *name, const char *subject, pid_t replier,
                       int depth, double seconds, const void *payload, int len) {
  load L = {0};
  L.subject = subject;
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
  thread_snap ta[64], tb[64];
  int na = snap_threads(replier, ta, 64);
  double c0 = cpu_seconds(replier);
  int64_t t0 = now_ns();
  usleep((useconds_t)(seconds * 1e6));
  long d1 = atomic_load(&L.done);
  double c1 = cpu_seconds(replier);
  int nb = snap_threads(replier, tb, 64);
  int64_t t1 = now_ns();
  atomic_store(&L.stop, true);
  usleep(200000);
  long n = d1 - d0;
  double secs = (double)(t1 - t0) / 1e9;
  long have = d1 < MAX_SAMPLES ? d1 : MAX_SAMPLES;
  long from = d0 < have ? d0 : 0;
  result r = {0};
  if (have > from) {
    qsort(L.lat_us + from, (size_t)(have - from), sizeof(double), cmp_double);
    r.p50 = L.lat_us[from + (have - from) / 2];
    r.p99 = L.lat_us[from + (long)((double)(have - from) * 0.99)];
  }
  r.rate = (double)n / secs;
  r.cpu_us = n ? (c1 - c0) * 1e6 / (double)n : 0.0;
  r.switches = n ? (double)(total_switches(tb, nb) - total_switches(ta, na)) / (double)n : 0.0;
  if (getenv("BENCH_THREADS")) print_thread_deltas(name, depth, ta, na, tb, nb, n);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(L.nc);
  natsOptions_Destroy(o);
  free(L.sent_at);
  free(L.lat_us);
  return r;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* "median (min-max)" of one figure over the rounds, with @prec decimals. */
static void print_figure(const result *rs, int n, size_t off, int prec) {
  double v[MAX_ROUNDS];
  for (int i = 0; i < n; i++) v[i] = *(const double *)((const char *)&rs[i] + off);
  double med = median(v, n);
  char cell[64];
  snprintf(cell, sizeof cell, "%.*f (%.*f-%.*f)", prec, med, prec, v[0], prec, v[n - 1]);
  printf(" %-22s", cell);
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--replier") == 0) { /* a child, see below */
    if (strcmp(argv[2], "framework") == 0) return run_framework(argv[3], argv[4]);
    return run_raw(argv[3], argv[4], strcmp(argv[2], "raw-asap") == 0);
  }
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  if (seconds <= 0) seconds = 3.0;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 3;
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

  const char *workers = getenv("BENCH_WORKERS");
  printf("request/reply, %zu-byte ChatRequest, %.1f s per case, %d rounds, framework WORKERS=%s,"
         " nats-server %s\n",
         len, seconds, rounds, workers && *workers ? workers : "1", url);
  enum { NREP = 3 };
  const char *names[NREP] = {"framework", "raw-default", "raw-asap"};
  const char *only = getenv("BENCH_REPLIERS"); /* e.g. "framework,raw-asap" */
  pid_t pids[NREP] = {0};
  char subjects[NREP][64];
  for (int r = 0; r < NREP; r++) {
    snprintf(subjects[r], sizeof subjects[r], SUBJECT_PREFIX "%s", names[r]);
    if (only && *only && !strstr(only, names[r])) continue;
    pid_t pid = fork();
    if (pid == 0) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &set, NULL);
      /* A fresh image, not just a fork: nats.c keeps process-wide threads
       * (timers, callbacks, the message collector) that a fork does not
       * copy, and this process has opened nats.c by now. A forked replier
       * would never free a message and would skip the collector's cost. */
      execl("/proc/self/exe", argv[0], "--replier", names[r], url, subjects[r], (char *)NULL);
      _exit(127);
    }
    if (!wait_responder(url, subjects[r])) {
      fprintf(stderr, "bench: %s did not answer\n", names[r]);
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      continue;
    }
    pids[r] = pid;
    if (getenv("BENCH_PAUSE")) { /* time to attach perf or strace */
      printf("# %s replier pid %d\n", names[r], (int)pid);
      fflush(stdout);
      sleep((unsigned)atoi(getenv("BENCH_PAUSE")));
    }
    if (r == 0) {
      usleep(1000000);
      printf("# idle framework service: VmRSS %ld kB (Rss), private anonymous %ld kB\n",
             smaps_kb(pid, "Rss:"), smaps_kb(pid, "Anonymous:"));
    }
  }
  static const int depths[2] = {1, 16};
  static result res[NREP][2][MAX_ROUNDS];
  for (int k = 0; k < rounds; k++) {
    for (int r = 0; r < NREP; r++)
      for (int d = 0; d < 2 && pids[r]; d++)
        res[r][d][k] = run_case(url, names[r], subjects[r], pids[r], depths[d], seconds,
                                payload, (int)len);
    fprintf(stderr, "bench: round %d of %d done\n", k + 1, rounds);
  }
  printf("median over the rounds (min-max)\n");
  printf("%-12s %5s  %-22s %-22s %-22s %-22s %-22s\n", "replier", "depth", "msgs/s", "p50 us",
         "p99 us", "cpu us/msg", "switches/msg");
  for (int r = 0; r < NREP; r++) {
    for (int d = 0; d < 2 && pids[r]; d++) {
      printf("%-12s %5d ", names[r], depths[d]);
      print_figure(res[r][d], rounds, offsetof(result, rate), 0);
      print_figure(res[r][d], rounds, offsetof(result, p50), 0);
      print_figure(res[r][d], rounds, offsetof(result, p99), 0);
      print_figure(res[r][d], rounds, offsetof(result, cpu_us), 1);
      print_figure(res[r][d], rounds, offsetof(result, switches), 2);
      printf("\n");
    }
  }
  fflush(stdout);
  for (int r = 0; r < NREP; r++) {
    if (!pids[r]) continue;
    kill(pids[r], SIGTERM);
    waitpid(pids[r], NULL, 0);
  }
  aiplat_free(payload);
  th_nats_stop(srv);
  return 0;
}
