/* Figures for the health server and the metrics registry (not a test):
 *   tests/bench_health [seconds-per-figure]
 * prints the cost of the hot-path updates, of a labelled public update, of
 * rendering, the request rate of /metrics, /ready and /health over one
 * keep-alive connection, and what crowds of idle or trickling connections
 * cost and do to probes. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

static double secs = 0.5;

static double now_s(void) {
  return (double)aip_now_ns() / 1e9;
}

typedef struct job {
  aip_series *s;
  aiplat_metric *family;
  int kind; /* 0 inc, 1 observe, 2 public add with a label lookup */
  long ops;
  double until;
} job;

static void *run(void *arg) {
  job *j = arg;
  const char *v[] = {"chat"};
  long n = 0;
  while (now_s() < j->until) {
    for (int i = 0; i < 1000; i++) {
      if (j->kind == 0)
        aip_series_inc(j->s, 1);
      else if (j->kind == 1)
        aip_series_observe(j->s, 0.042);
      else
        aiplat_metric_add(j->family, v, 1, 1);
    }
    n += 1000;
  }
  j->ops = n;
  return NULL;
}

static void figure(const char *what, aip_series *s, aiplat_metric *f, int kind,
                   int threads) {
  pthread_t t[8];
  job j[8];
  double until = now_s() + secs;
  for (int i = 0; i < threads; i++) {
    j[i] = (job){.s = s, .family = f, .kind = kind, .until = until};
    pthread_create(&t[i], NULL, run, &j[i]);
  }
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    total += j[i].ops;
  }
  printf("%-44s %d thread%s  %8.1f ns/op  %7.1f M op/s total\n", what, threads,
         threads > 1 ? "s" : " ", secs * 1e9 * threads / (double)total,
         (double)total / secs / 1e6);
}

static size_t sink(char *p, size_t sz, size_t n, void *ud) {
  (void)p;
  *(size_t *)ud += sz * n;
  return sz * n;
}

static void http_rate(int port, const char *path) {
  CURL *c = curl_easy_init();
  char url[64];
  size_t bytes = 0;
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &bytes);
  long n = 0;
  double t0 = now_s(), until = t0 + secs;
  while (now_s() < until) {
    if (curl_easy_perform(c) != CURLE_OK) {
      fprintf(stderr, "request to %s failed\n", url);
      break;
    }
    n++;
  }
  double dt = now_s() - t0;
  printf("GET %-40s %8.0f req/s  %6.1f us/req  body %zu bytes\n", path,
         (double)n / dt, dt * 1e6 / (double)n, n ? bytes / (size_t)n : 0);
  curl_easy_cleanup(c);
}

/* ---- crowds ------------------------------------------------------------ */

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int open_conn(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

typedef struct trickle {
  int *fds;
  int n;
  atomic_bool stop;
} trickle;

/* Slowloris: a header that never ends, a byte every 200 ms. */
static void *trickle_main(void *arg) {
  trickle *t = arg;
  static const char start[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  for (int tick = 0; !atomic_load(&t->stop); tick++) {
    for (int i = 0; i < t->n; i++)
      (void)send(t->fds[i], tick ? "a" : start, tick ? 1 : sizeof start - 1,
                 MSG_NOSIGNAL);
    nap_ms(200);
  }
  return NULL;
}

/* Probes on fresh connections, as the kubelet makes them. */
static void probe_figure(int port, const char *path, int n) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  double sum = 0, worst = 0;
  int ok = 0;
  for (int i = 0; i < n; i++) {
    CURL *c = curl_easy_init();
    size_t bytes = 0;
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bytes);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    double t0 = now_s();
    if (curl_easy_perform(c) == CURLE_OK)
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    double dt = now_s() - t0;
    curl_easy_cleanup(c);
    ok += status == 200;
    sum += dt;
    if (dt > worst) worst = dt;
    nap_ms(20);
  }
  printf(
      "  GET %-8s on a new connection      %6.2f ms mean  %6.2f ms worst"
      "  %d/%d answered 200\n",
      path, sum * 1e3 / n, worst * 1e3, ok, n);
}

/* @nidle connections that send nothing and @nslow that trickle: the
 * server's memory for them, the probes' latency, how many were dropped. */
static void crowd_figure(int port, int nidle, int nslow) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t need = 2 * (rlim_t)(nidle + nslow) + 256;
  if (rl.rlim_cur < need) {
    printf("crowd of %d: needs %lu descriptors, the limit is %lu; skipped\n",
           nidle + nslow, (unsigned long)need, (unsigned long)rl.rlim_cur);
    return;
  }
  int *idle = calloc((size_t)nidle, sizeof *idle);
  trickle t = {.fds = calloc((size_t)nslow + 1, sizeof(int)), .n = nslow};
  atomic_init(&t.stop, false);
  long before = rss_kib();
  for (int i = 0; i < nidle; i++) idle[i] = open_conn(port);
  for (int i = 0; i < nslow; i++) t.fds[i] = open_conn(port);
  pthread_t th;
  pthread_create(&th, NULL, trickle_main, &t);
  nap_ms(1000); /* the server takes them in, the slow ones send a little */
  long after = rss_kib();
  printf(
      "crowd: %d idle + %d trickling connections   %+ld KiB RSS "
      "(%.2f KiB each, client sockets included)\n",
      nidle, nslow, after - before, (double)(after - before) / (nidle + nslow));
  probe_figure(port, "/health", 20);
  probe_figure(port, "/ready", 20);
  int dropped = 0;
  for (int i = 0; i < nidle; i++) {
    char c;
    struct pollfd p = {.fd = idle[i], .events = POLLIN};
    if (idle[i] >= 0 && poll(&p, 1, 0) == 1 &&
        recv(idle[i], &c, 1, MSG_DONTWAIT) <= 0)
      dropped++;
  }
  printf("  idle connections closed by the server to make room: %d\n", dropped);
  atomic_store(&t.stop, true);
  pthread_join(th, NULL);
  for (int i = 0; i < nidle; i++) close(idle[i]);
  for (int i = 0; i < nslow; i++) close(t.fds[i]);
  free(idle);
  free(t.fds);
  nap_ms(500); /* the server closes its ends */
}

static bool nats_ok(char *msg, size_t len, void *ud) {
  (void)ud;
  snprintf(msg, len, "connected");
  return true;
}

int main(int argc, char **argv) {
  if (argc > 1) secs = atof(argv[1]);
  if (secs <= 0) secs = 0.5;
  aiplat_log_set_level(AIPLAT_LOG_ERROR);
  aiplat_config *cfg;
  aiplat_health *h;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "HEALTH_PORT", "0");
  aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1");
  if (aiplat_health_create(&h, cfg) != AIPLAT_OK ||
      aiplat_health_start(h) != AIPLAT_OK) {
    char e[256];
    aiplat_error_last(e, sizeof e);
    fprintf(stderr, "bench_health: %s\n", e);
    return 1;
  }
  aiplat_config_destroy(cfg);
  aiplat_metrics *m = aiplat_health_metrics(h);
  aip_endpoint_metrics ep;
  aip_metrics_endpoint(m, "chat", &ep);
  aiplat_metric *pub;
  const char *lab[] = {"endpoint"};
  aiplat_metrics_counter(m, "bench_total", "Bench.", lab, 1, &pub);

  figure("counter inc, cached series", ep.requests, NULL, 0, 1);
  figure("counter inc, cached series (contended)", ep.requests, NULL, 0, 2);
  figure("histogram observe, cached series", ep.duration, NULL, 1, 1);
  figure("histogram observe (contended)", ep.duration, NULL, 1, 2);
  figure("aiplat_metric_add, 1 label lookup", NULL, pub, 2, 1);
  figure("aiplat_metric_add, 1 label lookup (contended)", NULL, pub, 2, 2);

  /* A realistic registry: 20 endpoints with a few error kinds each. */
  for (int i = 0; i < 20; i++) {
    char name[32];
    snprintf(name, sizeof name, "endpoint-%02d", i);
    aip_endpoint_metrics e;
    aip_metrics_endpoint(m, name, &e);
    for (int k = 0; k < 3; k++) {
      aip_endpoint_begin(&e);
      aip_endpoint_end(&e, k == 0 ? AIPLAT_OK : (aiplat_status)(k + 5),
                       50000000LL * k);
    }
  }
  aip_buf b = {0};
  double t0 = now_s();
  int renders = 0;
  while (now_s() < t0 + secs) {
    aip_buf_reset(&b);
    aip_metrics_render_buf(m, &b);
    renders++;
  }
  printf("%-44s %8.1f us/render  %zu bytes\n", "render (21 endpoints, process)",
         (now_s() - t0) * 1e6 / renders, b.len);
  aip_buf_free(&b);

  aiplat_health_add_check(h, "nats", nats_ok, NULL);
  int port = aiplat_health_port(h);
  http_rate(port, "/health");
  http_rate(port, "/ready");
  http_rate(port, "/metrics");
  probe_figure(port, "/health", 20);
  /* Within the cap, then beyond it (4096 when descriptors allow). */
  crowd_figure(port, 1000, 100);
  crowd_figure(port, 6000, 0);
  aiplat_health_destroy(h);
  return 0;
}
