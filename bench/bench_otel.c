/* bench_otel: the cost of tracing. Requests/s and p99 of the echo path (an
 * aiplat_service echo replier) and the chat path (chat-handler with the
 * local model backend, streaming, retrieval off) with tracing off and on
 * (OTLP/HTTP to the fake collector tests/otlp_collector.js, sampler
 * always_on; it answers without decoding), in one run: the cases alternate, rounds in turn, and each
 * figure is the median over the rounds.
 *
 *   bench_otel [seconds-per-case [rounds [in-flight]]]   (default 3 s, 3, 8)
 *
 * Run through `make bench-otel` (needs node and tests/otlp-deps.sh). */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "chat_testutil.h"
#include "harness/nats_harness.h"
#include "svc_proc.h"

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the echo replier (a child process) ---------------------------------- */

static aiplat_status on_echo(aiplat_request *req, void *ud) {
  (void)ud;
  const char *text = "";
  aiplat_msg_get_string(aiplat_request_message(req), "message", &text);
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_CHAT_RESPONSE);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(out, "text", text);
  if (st == AIPLAT_OK) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

static int run_echo(void) {
  aiplat_config *cfg = NULL;
  aiplat_service *svc = NULL;
  aiplat_config_create(&cfg);
  if (aiplat_service_create(&svc, cfg, "bench-echo", "1.0.0", "bench echo") != AIPLAT_OK ||
      aiplat_service_add_endpoint(svc, "echo", "bench.echo", NULL, AIPLAT_MSG_CHAT_REQUEST,
                                  AIPLAT_MSG_CHAT_RESPONSE, on_echo, NULL) != AIPLAT_OK)
    return 1;
  aiplat_status st = aiplat_service_run(svc);
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  return st == AIPLAT_OK ? 0 : 1;
}

/* ---- load ---------------------------------------------------------------- */

typedef struct load {
  aiplat_bus *bus;
  const char *subject;
  uint8_t *req;
  size_t len;
  int64_t until;
  pthread_mutex_t mu;
  int64_t *lat;
  size_t n, cap, errors;
} load;

static void *worker(void *arg) {
  load *l = arg;
  while (now_ns() < l->until) {
    aiplat_bus_msg *reply = NULL;
    int64_t t0 = now_ns();
    aiplat_status st = aiplat_bus_request(l->bus, l->subject, l->req, l->len, NULL, 30000, &reply);
    int64_t dt = now_ns() - t0;
    aiplat_bus_msg_destroy(reply);
    pthread_mutex_lock(&l->mu);
    if (st != AIPLAT_OK) {
      l->errors++;
    } else {
      if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->lat = realloc(l->lat, l->cap * sizeof *l->lat);
      }
      l->lat[l->n++] = dt;
    }
    pthread_mutex_unlock(&l->mu);
  }
  return NULL;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* One case: @inflight requesters for @seconds; req/s and p99 (ms). */
static void measure(aiplat_bus *bus, const char *subject, bool chat, double seconds,
                    int inflight, double *rps, double *p99, size_t *errors) {
  ct_chat c = ct_chat_init("bench", "What is the platform?", NULL);
  if (chat) {
    c.enable_rag = 0;
    c.stream = true;
  }
  load l = {.bus = bus, .subject = subject};
  pthread_mutex_init(&l.mu, NULL);
  l.req = ct_chat_bytes(&c, &l.len);
  int64_t t0 = now_ns();
  l.until = t0 + (int64_t)(seconds * 1e9);
  pthread_t th[64];
  for (int i = 0; i < inflight; i++) pthread_create(&th[i], NULL, worker, &l);
  for (int i = 0; i < inflight; i++) pthread_join(th[i], NULL);
  double wall = (double)(now_ns() - t0) / 1e9;
  qsort(l.lat, l.n, sizeof *l.lat, cmp64);
  *rps = (double)l.n / wall;
  *p99 = l.n ? (double)l.lat[(size_t)((double)l.n * 0.99)] / 1e6 : 0;
  *errors = l.errors;
  free(l.lat);
  aiplat_free(l.req);
  pthread_mutex_destroy(&l.mu);
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmpd);
  return v[n / 2];
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--echo") == 0) return run_echo();
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  int inflight = argc > 3 ? atoi(argv[3]) : 8;
  if (rounds < 1 || rounds > 20 || inflight < 1 || inflight > 64) return 2;
  setenv("LOG_LEVEL", "ERROR", 1);
  th_nats *nats = th_nats_start(NULL);
  bkc_proc B;
  if (!nats || !bkc_start(&B, NULL, false) || !bkc_wait_ready(&B, 60000)) {
    fprintf(stderr, "bench_otel: nats-server or the model backend did not start\n");
    return 1;
  }
  char dir[] = "/tmp/aiplat-bench-otel-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  const char *src = getenv("top_srcdir"), *bld = getenv("top_builddir");
  char script[1024], nodepath[1024], portfile[128];
  snprintf(script, sizeof script, "%s/tests/otlp_collector.js", src ? src : "..");
  snprintf(nodepath, sizeof nodepath, "%s/tests/otlp-node/node_modules", bld ? bld : ".");
  snprintf(portfile, sizeof portfile, "%s/port", dir);
  pid_t col = fork();
  if (col == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setenv("NODE_PATH", nodepath, 1);
    execlp("node", "node", script, dir, (char *)NULL);
    _exit(127);
  }
  char modefile[128];
  snprintf(modefile, sizeof modefile, "%s/mode", dir);
  FILE *mf = fopen(modefile, "w"); /* answer 200 without decoding */
  if (mf) {
    fputs("discard", mf);
    fclose(mf);
  }
  int port = 0;
  for (int i = 0; i < 200 && !port; i++) {
    FILE *f = fopen(portfile, "r");
    if (!f || fscanf(f, "%d", &port) != 1) port = 0;
    if (f) fclose(f);
    if (!port) usleep(50000);
  }
  if (!port) {
    fprintf(stderr, "bench_otel: the collector did not start (tests/otlp-deps.sh?)\n");
    return 1;
  }
  char e_nats[160], e_vllm[160], e_ep[160], chat_bin[1024], self[1024];
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", B.base);
  snprintf(e_ep, sizeof e_ep, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:%d", port);
  sp_path("services/chat-handler/chat-handler", chat_bin, sizeof chat_bin);
  ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sn <= 0) return 1;
  self[sn] = '\0';
  const char *env_off[] = {e_nats, e_vllm, "LOG_LEVEL=INFO", "VECTOR_STORE=local",
                           "OTEL_SDK_DISABLED=true", NULL};
  const char *env_on[] = {e_nats, e_vllm, "LOG_LEVEL=INFO", "VECTOR_STORE=local", e_ep,
                          "OTEL_TRACES_SAMPLER=always_on", "OTEL_SERVICE_NAME=bench", NULL};
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  if (!bus) return 1;
  static const char *paths[] = {"echo", "chat"};
  double rps[2][2][20], p99[2][2][20];
  size_t errs = 0;
  const char *echo_args[] = {"--echo", NULL};
  for (int r = 0; r < rounds; r++) {
    for (int p = 0; p < 2; p++) {
      for (int on = 0; on < 2; on++) {
        int o = (r % 2) ? 1 - on : on; /* alternate which goes first */
        sp_proc s;
        char log[256];
        snprintf(log, sizeof log, "%s/%s-%d-%d.log", dir, paths[p], o, r);
        if (!sp_start(&s, p ? chat_bin : self, o ? env_on : env_off, log,
                      p ? NULL : echo_args) ||
            !sp_wait_started(&s, 20000)) {
          fprintf(stderr, "bench_otel: the %s replier did not start (%s)\n", paths[p], log);
          return 1;
        }
        size_t e = 0;
        measure(bus, p ? "ai.chat.user.bench.message" : "bench.echo", p == 1, seconds,
                inflight, &rps[p][o][r], &p99[p][o][r], &e);
        errs += e;
        sp_stop(&s, SIGTERM, 20000);
      }
    }
  }
  printf("bench_otel: %d rounds of %.1f s per case, %d in flight, medians (errors: %zu)\n",
         rounds, seconds, inflight, errs);
  printf("%-6s %-9s %10s %10s\n", "path", "tracing", "req/s", "p99 ms");
  for (int p = 0; p < 2; p++) {
    double m[2][2];
    for (int o = 0; o < 2; o++) {
      m[o][0] = median(rps[p][o], rounds);
      m[o][1] = median(p99[p][o], rounds);
      printf("%-6s %-9s %10.0f %10.2f\n", paths[p], o ? "on (1.0)" : "off", m[o][0], m[o][1]);
    }
    printf("%-6s cost: throughput %+.1f%%, p99 %+.1f%%\n", paths[p],
           100.0 * (m[1][0] - m[0][0]) / m[0][0], 100.0 * (m[1][1] - m[0][1]) / m[0][1]);
  }
  aiplat_bus_destroy(bus);
  kill(col, SIGTERM);
  waitpid(col, NULL, 0);
  bkc_stop(&B, SIGTERM, 20000);
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
