/* Health HTTP server: /health, /ready, /metrics on libmicrohttpd.
 * docs/decisions/0007-health-and-metrics.md explains the choices. */
#include "config.h" /* autoconf's: before any system header */

/* System and dependency headers, then the library's own. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "metrics.h"
#include "otel.h"

/* One polling thread answers every connection (the ADR says why). The port
 * holds up to HEALTH_MAX_CONNECTIONS at once, fewer when the descriptor
 * limit is low; when it is full, the connection that has waited longest
 * for a request is dropped to let the new one in, so a crowd of idle or
 * trickling clients never locks a probe out. Connections silent for the
 * timeout are closed; each may buffer at most HEALTH_CONNECTION_MEMORY. */
#define HEALTH_MAX_CONNECTIONS 4096u
/* Room above the cap for connections dropped and not yet closed. */
#define HEALTH_CONNECTION_SLACK 64u
#define HEALTH_CONNECTION_TIMEOUT_S 10u
#define HEALTH_CONNECTION_MEMORY ((size_t)8 * 1024)
#define HEALTH_DROP_LOG_MS ((int64_t)60000)
/* /ready waits this long at most for a round of the inline checks. */
#define HEALTH_INLINE_BUDGET_MS ((int64_t)250)
#define HEALTH_SLOW_CHECK_MS ((int64_t)100)
#define HEALTH_CHECK_NAME_MAX 64
#define HEALTH_MAX_CHECKS 64
#define HEALTH_MAX_PERIOD_MS ((int64_t)86400000)
#define HEALTH_HOST_MAX (INET6_ADDRSTRLEN + 32) /* with a scope id */

#define CT_JSON "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

typedef struct hcheck {
  char *name;
  aiplat_health_check_fn fn;
  void *user_data;
  pthread_t thread;   /* a cached check's own */
  pthread_cond_t cv;  /* wakes a cached check's thread to quit */
  pthread_mutex_t mu; /* guards quit, running and the result */
  int64_t interval_ms;
  int64_t timeout_ms; /* an inline check's is the budget of /ready */
  int64_t running_since_ms;
  atomic_bool slow_warned;
  bool cached;
  bool thread_started;
  bool quit;
  bool running;
  bool has_result;
  bool ok;
  char msg[AIPLAT_HEALTH_MESSAGE_MAX]; /* the latest result's */
} hcheck;

/* A connection as the accept policy sees it; only the server's thread
 * touches these. */
typedef struct hconn {
  struct hconn *prev, *next; /* in the waiting list */
  int fd;
  bool waiting; /* for a request: the one to drop when the port is full */
  bool dropped;
} hconn;

struct aiplat_health {
  aip_err err;
  /* Address from the configuration. */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  bool dual_stack;                     /* bound to "::": IPv4 clients too */
  char addr_text[HEALTH_HOST_MAX + 4]; /* "[host]" */
  int port_cfg;
  /* Server life: start/stop/destroy, on the owner's thread. */
  pthread_mutex_t life_mu;
  struct MHD_Daemon *daemon;
  atomic_int port;
  atomic_bool stopping;
  /* Checks and gates, read by the server thread. */
  pthread_mutex_t mu;
  hcheck **checks;
  size_t nchecks;
  bool ready;
  char *ready_reason;
  bool live;
  char *live_reason;
  aiplat_metrics *metrics;
  /* Inline checks run in rounds on a thread of their own. */
  pthread_mutex_t round_mu;
  pthread_cond_t round_ask;  /* to the thread: a round is wanted, or quit */
  pthread_cond_t round_done; /* from the thread: a round ended */
  pthread_t round_thread;
  bool round_started;
  bool round_quit;
  uint64_t rounds_asked;
  uint64_t rounds_ended;
  int64_t round_asked_ms;
  /* Connections; the server's thread alone touches these while it runs. */
  unsigned conn_cap;
  unsigned conn_open; /* accepted and not dropped */
  hconn *wait_head;   /* waiting for a request, the longest first */
  hconn *wait_tail;
  uint64_t conn_dropped; /* since the last log line about it */
  int64_t drop_logged_ms;
  /* The server's last log line, for a failed start's message. */
  pthread_mutex_t log_mu;
  char mhd_last[256];
};

/* ---- configuration ----------------------------------------------------- */

static aiplat_status parse_bind(aiplat_health *h, const char *text, int port) {
  char host[HEALTH_HOST_MAX];
  const char *orig = text;
  size_t n = strlen(text);
  if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
    text++;
    n -= 2;
  }
  if (n == 0 || n >= sizeof host) goto bad;
  memcpy(host, text, n);
  host[n] = '\0';
  memset(&h->addr, 0, sizeof h->addr);
  if (!strchr(host, ':')) {
    /* Strict dotted quad: not the legacy forms ("127.1") inet_aton takes. */
    struct sockaddr_in *a4 = (struct sockaddr_in *)&h->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) goto bad;
    a4->sin_family = AF_INET;
    h->addrlen = sizeof *a4;
  } else {
    /* getaddrinfo rather than inet_pton for the scope id in fe80::1%eth0. */
    struct addrinfo hints = {.ai_family = AF_INET6,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) goto bad;
    memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
    h->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
  }
  if (h->addr.ss_family == AF_INET6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&h->addr;
    a6->sin6_port = htons((uint16_t)port);
    h->dual_stack = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
    snprintf(h->addr_text, sizeof h->addr_text, "[%s]", host);
  } else if (h->addr.ss_family == AF_INET) {
    ((struct sockaddr_in *)&h->addr)->sin_port = htons((uint16_t)port);
    snprintf(h->addr_text, sizeof h->addr_text, "%s", host);
  } else {
    goto bad;
  }
  return AIPLAT_OK;
bad:
  return aip_fail(&h->err, AIPLAT_ERR_CONFIG,
                  "health: HEALTH_BIND: \"%.64s\" is not an IPv4 or IPv6 "
                  "address (a literal such as 0.0.0.0, 127.0.0.1, :: or ::1)",
                  orig);
}

static aiplat_status read_config(aiplat_health *h, aiplat_config *cfg) {
  int64_t port;
  const char *bind = NULL;
  aiplat_status st = aiplat_config_get_int(cfg, "HEALTH_PORT", 0, 65535, &port);
  if (st != AIPLAT_OK) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_config_last_error(cfg, msg, sizeof msg);
    return aip_fail(&h->err, st, "health: %s", msg);
  }
  st = aiplat_config_get_string(cfg, "HEALTH_BIND", &bind);
  if (st != AIPLAT_OK) {
    char msg[AIP_ERRMSG_MAX];
    aiplat_config_last_error(cfg, msg, sizeof msg);
    return aip_fail(&h->err, st, "health: %s", msg);
  }
  h->port_cfg = (int)port;
  return parse_bind(h, bind ? bind : "0.0.0.0", (int)port);
}

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status,
                               const char *ctype, aip_buf *body) {
  struct MHD_Response *r = NULL;
  if (body->data) {
    size_t len = 0;
    char *data = aip_buf_steal(body, &len);
    r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!r) free(data);
  }
  if (!r) {
    static char oom[] = "{\"error\":\"out of memory\"}";
    aip_buf_free(body);
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    ctype = CT_JSON;
    r = MHD_create_response_from_buffer(sizeof oom - 1, oom,
                                        MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status,
                                    const char *json) {
  aip_buf b = {0};
  aip_buf_puts(&b, json);
  return respond(c, status, CT_JSON, &b);
}

/* Append @s as a JSON string, invalid UTF-8 bytes replaced by '?'. */
static bool put_json_string(aip_buf *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s);
  bool ok = aip_buf_putc(b, '"');
  for (size_t i = 0; ok && i < len;) {
    size_t n = aip_utf8_seq_len(p + i, len - i);
    ok = n ? aip_buf_json_escape(b, s + i, n) : aip_buf_putc(b, '?');
    i += n ? n : 1;
  }
  return ok && aip_buf_putc(b, '"');
}

/* ---- liveness ---------------------------------------------------------- */

static enum MHD_Result serve_health(aiplat_health *h,
                                    struct MHD_Connection *c) {
  if (atomic_load(&h->stopping))
    return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "{\"status\":\"stopping\"}");
  aip_buf b = {0};
  pthread_mutex_lock(&h->mu);
  bool live = h->live;
  bool ok =
      live || (aip_buf_puts(&b, "{\"status\":\"failed\"") &&
               (!h->live_reason || (aip_buf_puts(&b, ",\"reason\":") &&
                                    put_json_string(&b, h->live_reason))) &&
               aip_buf_putc(&b, '}'));
  pthread_mutex_unlock(&h->mu);
  if (live) return respond_text(c, MHD_HTTP_OK, "{\"status\":\"ok\"}");
  if (!ok) aip_buf_free(&b);
  return respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, CT_JSON, &b);
}

/* ---- readiness --------------------------------------------------------- */

/* Fill @until with the monotonic time @ms from now. */
static void monotonic_after(struct timespec *until, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, until);
  until->tv_sec += (time_t)(ms / 1000);
  until->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until->tv_nsec >= 1000000000L) {
    until->tv_sec++;
    until->tv_nsec -= 1000000000L;
  }
}

/* Run @k once on the calling thread and keep its result; returns how
 * long it took in ms. */
static int64_t run_check(hcheck *k) {
  pthread_mutex_lock(&k->mu);
  int64_t t0 = aip_now_ms();
  k->running = true;
  k->running_since_ms = t0;
  pthread_mutex_unlock(&k->mu);
  char msg[AIPLAT_HEALTH_MESSAGE_MAX] = "";
  bool ok = k->fn(msg, sizeof msg, k->user_data);
  msg[sizeof msg - 1] = '\0';
  pthread_mutex_lock(&k->mu);
  k->running = false;
  k->ok = ok;
  k->has_result = true;
  memcpy(k->msg, msg, sizeof msg);
  pthread_mutex_unlock(&k->mu);
  return aip_now_ms() - t0;
}

/* The latest result of @k. A run that has lasted longer than the check's
 * timeout fails it, and so does any run in progress of an inline check
 * whose round /ready stopped waiting for (@late). */
static void read_check(hcheck *k, bool late, bool *ok, char *msg) {
  pthread_mutex_lock(&k->mu);
  int64_t running_ms = k->running ? aip_now_ms() - k->running_since_ms : 0;
  if (k->running && (late || running_ms > k->timeout_ms)) {
    *ok = false;
    snprintf(msg, AIPLAT_HEALTH_MESSAGE_MAX,
             "no answer within %lld ms (running for %lld ms)",
             (long long)k->timeout_ms, (long long)running_ms);
  } else if (!k->has_result) {
    *ok = false;
    snprintf(msg, AIPLAT_HEALTH_MESSAGE_MAX, "not checked yet");
  } else {
    *ok = k->ok;
    memcpy(msg, k->msg, AIPLAT_HEALTH_MESSAGE_MAX);
  }
  pthread_mutex_unlock(&k->mu);
}

/* The inline checks' thread: one round of every inline check per round
 * asked. Checks are only removed by destroy, which joins this thread
 * first, so the pointers copied under the lock stay valid. */
static void run_round(aiplat_health *h) {
  hcheck *local[HEALTH_MAX_CHECKS];
  size_t n = 0;
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < h->nchecks; i++)
    if (!h->checks[i]->cached) local[n++] = h->checks[i];
  pthread_mutex_unlock(&h->mu);
  for (size_t i = 0; i < n; i++) {
    int64_t took = run_check(local[i]);
    if (took > HEALTH_SLOW_CHECK_MS &&
        !atomic_exchange(&local[i]->slow_warned, true)) {
      char ms[32];
      snprintf(ms, sizeof ms, "%lld", (long long)took);
      aip_log_kv(AIPLAT_LOG_WARNING,
                 "health: a readiness check took over 100 ms, and /ready "
                 "waits 250 ms at most for its checks; make it non-blocking "
                 "or add it with aiplat_health_add_cached_check()",
                 "check", local[i]->name, "took_ms", ms, (const char *)NULL);
    }
  }
}

static void *round_main(void *arg) {
  aiplat_health *h = arg;
  pthread_setname_np(pthread_self(), "aiplat-ready");
  pthread_mutex_lock(&h->round_mu);
  for (;;) {
    while (!h->round_quit && h->rounds_ended == h->rounds_asked)
      pthread_cond_wait(&h->round_ask, &h->round_mu);
    if (h->round_quit) break;
    uint64_t round = h->rounds_asked;
    pthread_mutex_unlock(&h->round_mu);
    run_round(h);
    pthread_mutex_lock(&h->round_mu);
    h->rounds_ended = round;
    pthread_cond_broadcast(&h->round_done);
  }
  pthread_mutex_unlock(&h->round_mu);
  return NULL;
}

/* On the server's thread: have the inline checks run, unless a round is
 * running already, and wait for the round at most HEALTH_INLINE_BUDGET_MS
 * after it was asked for. A check stuck in a call (nats.c holds its
 * connection's lock while it connects, for instance) thus holds the server
 * up once, for the budget, and never for its whole duration. True when
 * the round ended in time. */
static bool inline_round(aiplat_health *h) {
  pthread_mutex_lock(&h->round_mu);
  if (!h->round_started) {
    pthread_mutex_unlock(&h->round_mu);
    return true;
  }
  if (h->rounds_ended == h->rounds_asked) {
    h->rounds_asked++;
    h->round_asked_ms = aip_now_ms();
    pthread_cond_signal(&h->round_ask);
  }
  uint64_t want = h->rounds_asked;
  int64_t left = h->round_asked_ms + HEALTH_INLINE_BUDGET_MS - aip_now_ms();
  if (h->rounds_ended < want && left > 0) {
    struct timespec until;
    monotonic_after(&until, left);
    while (h->rounds_ended < want &&
           pthread_cond_timedwait(&h->round_done, &h->round_mu, &until) !=
               ETIMEDOUT) {
    }
  }
  bool in_time = h->rounds_ended >= want;
  pthread_mutex_unlock(&h->round_mu);
  return in_time;
}

/* Evaluate readiness into @b; true when ready. */
static bool evaluate_ready(aiplat_health *h, aip_buf *b, bool *oom) {
  bool late = !inline_round(h);
  pthread_mutex_lock(&h->mu);
  size_t n = h->nchecks;
  hcheck *local[HEALTH_MAX_CHECKS];
  memcpy(local, h->checks, n * sizeof *local);
  bool gate = h->ready;
  char *reason = aip_strdup(h->ready_reason);
  pthread_mutex_unlock(&h->mu);

  aip_buf checks = {0};
  bool all = true, ok = aip_buf_putc(&checks, '{');
  for (size_t i = 0; i < n; i++) {
    char msg[AIPLAT_HEALTH_MESSAGE_MAX] = "";
    bool pass = false;
    read_check(local[i], late && !local[i]->cached, &pass, msg);
    if (!pass && !msg[0]) snprintf(msg, sizeof msg, "check failed");
    all = all && pass;
    ok = ok && (i == 0 || aip_buf_putc(&checks, ',')) &&
         put_json_string(&checks, local[i]->name) &&
         aip_buf_printf(&checks, ":{\"ok\":%s", pass ? "true" : "false") &&
         (!msg[0] || (aip_buf_puts(&checks, ",\"message\":") &&
                      put_json_string(&checks, msg))) &&
         aip_buf_putc(&checks, '}');
  }
  ok = ok && aip_buf_putc(&checks, '}');
  bool ready = gate && all;
  ok = ok &&
       aip_buf_printf(b, "{\"status\":\"%s\"", ready ? "ready" : "not ready");
  if (ok && !gate)
    ok = aip_buf_puts(b, ",\"reason\":") &&
         put_json_string(b, reason ? reason : "not ready");
  ok = ok && aip_buf_puts(b, ",\"checks\":") &&
       aip_buf_append(b, checks.data, checks.len) && aip_buf_putc(b, '}');
  aip_buf_free(&checks);
  free(reason);
  *oom = !ok;
  return ready;
}

static enum MHD_Result serve_ready(aiplat_health *h, struct MHD_Connection *c) {
  if (atomic_load(&h->stopping))
    return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "{\"status\":\"not ready\",\"reason\":\"stopping\"}");
  aip_buf b = {0};
  bool oom = false;
  bool ready = evaluate_ready(h, &b, &oom);
  if (oom) aip_buf_free(&b);
  return respond(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, CT_JSON,
                 &b);
}

/* ---- metrics ----------------------------------------------------------- */

static enum MHD_Result serve_metrics(aiplat_health *h,
                                     struct MHD_Connection *c) {
  aip_buf b = {0};
  if (!aip_metrics_render_buf(h->metrics, &b) || !aip_otel_render_metrics(&b))
    aip_buf_free(&b);
  return respond(c, MHD_HTTP_OK, CT_METRICS, &b);
}

/* ---- dispatch ---------------------------------------------------------- */

static enum MHD_Result route(aiplat_health *h, struct MHD_Connection *c,
                             const char *url) {
  if (strcmp(url, "/health") == 0) return serve_health(h, c);
  if (strcmp(url, "/ready") == 0) return serve_ready(h, c);
  if (strcmp(url, "/metrics") == 0) return serve_metrics(h, c);
  return respond_text(c, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}");
}

static bool announces_body(struct MHD_Connection *c) {
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *te = MHD_lookup_connection_value(
      c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  return te || (cl && strspn(cl, "0 \t") != strlen(cl));
}

/* ---- connections ------------------------------------------------------- */

static void wait_push(aiplat_health *h, hconn *k) {
  k->prev = h->wait_tail;
  k->next = NULL;
  if (h->wait_tail)
    h->wait_tail->next = k;
  else
    h->wait_head = k;
  h->wait_tail = k;
  k->waiting = true;
}

static void wait_unlink(aiplat_health *h, hconn *k) {
  if (!k->waiting) return;
  if (k->prev)
    k->prev->next = k->next;
  else
    h->wait_head = k->next;
  if (k->next)
    k->next->prev = k->prev;
  else
    h->wait_tail = k->prev;
  k->prev = k->next = NULL;
  k->waiting = false;
}

static hconn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* A request arrived whole: its connection is being answered, not idle. */
static void busy(aiplat_health *h, struct MHD_Connection *c) {
  hconn *k = conn_of(c);
  if (k) wait_unlink(h, k);
}

/* Answered: a kept-alive connection waits for its next request. */
static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode why) {
  (void)state;
  aiplat_health *h = cls;
  hconn *k = conn_of(c);
  if (k && !k->dropped && !k->waiting &&
      why == MHD_REQUEST_TERMINATED_COMPLETED_OK)
    wait_push(h, k);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode what) {
  aiplat_health *h = cls;
  hconn *k = *ctx;
  if (what == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    k = fd ? calloc(1, sizeof *k) : NULL;
    if (!k) return; /* untracked: counted by the server's own limit only */
    k->fd = fd->connect_fd;
    h->conn_open++;
    wait_push(h, k);
    *ctx = k;
  } else if (k) {
    wait_unlink(h, k);
    if (!k->dropped) h->conn_open--;
    free(k);
    *ctx = NULL;
  }
}

static void log_drops(aiplat_health *h) {
  int64_t now = aip_now_ms();
  h->conn_dropped++;
  if (h->drop_logged_ms && now - h->drop_logged_ms < HEALTH_DROP_LOG_MS) return;
  char cap[16], dropped[32];
  snprintf(cap, sizeof cap, "%u", h->conn_cap);
  snprintf(dropped, sizeof dropped, "%llu",
           (unsigned long long)h->conn_dropped);
  aip_log_kv(AIPLAT_LOG_WARNING,
             "health: the port is full; dropping the connections that waited "
             "longest for a request",
             "max_connections", cap, "dropped", dropped, "address",
             h->addr_text, (const char *)NULL);
  h->conn_dropped = 0;
  h->drop_logged_ms = now;
}

/* The accept policy, on the server's thread before a connection starts.
 * A full port makes room by shutting the longest-waiting connection down:
 * the server then reads its end and closes it. A probe connects and sends
 * its request at once, so it is never the one that waited longest. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr,
                                 socklen_t addrlen) {
  (void)addr, (void)addrlen;
  aiplat_health *h = cls;
  if (h->conn_open < h->conn_cap) return MHD_YES;
  hconn *old = h->wait_head;
  if (!old) return MHD_NO; /* all being answered: refused, at once */
  wait_unlink(h, old);
  old->dropped = true;
  h->conn_open--;
  shutdown(old->fd, SHUT_RDWR);
  log_drops(h);
  return MHD_YES;
}

/* How many connections the port may hold: half the soft RLIMIT_NOFILE at
 * most, the other half being the program's (NATS, HTTP clients, files).
 * A soft limit below what a full port needs is first raised to the hard
 * limit, as Go's runtime does at start: the soft limit of 1024 exists for
 * select(), which none of libmicrohttpd (epoll), nats.c and libcurl (poll)
 * uses. The raise is for the process, and its children inherit it. */
static unsigned connection_cap(void) {
  const rlim_t want =
      2 * (rlim_t)(HEALTH_MAX_CONNECTIONS + HEALTH_CONNECTION_SLACK);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = rl.rlim_max = 1024;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want &&
      rl.rlim_max > rl.rlim_cur) {
    rlim_t from = rl.rlim_cur;
    struct rlimit up = {rl.rlim_max, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) != 0 && rl.rlim_max > want) {
      up.rlim_cur = want; /* a hard limit of "unlimited" */
      if (setrlimit(RLIMIT_NOFILE, &up) != 0) up.rlim_cur = from;
    }
    if (up.rlim_cur != from) {
      char a[32], b[32];
      snprintf(a, sizeof a, "%llu", (unsigned long long)from);
      snprintf(b, sizeof b, "%llu", (unsigned long long)up.rlim_cur);
      aip_log_kv(AIPLAT_LOG_INFO,
                 "health: raised the soft descriptor limit (RLIMIT_NOFILE) to "
                 "the hard limit",
                 "from", a, "to", b, (const char *)NULL);
    }
    rl.rlim_cur = up.rlim_cur;
  }
  rlim_t half = rl.rlim_cur == RLIM_INFINITY ? want / 2 : rl.rlim_cur / 2;
  rlim_t cap = half > 2 * HEALTH_CONNECTION_SLACK
                   ? half - HEALTH_CONNECTION_SLACK
                   : half / 2;
  if (cap > HEALTH_MAX_CONNECTIONS) cap = HEALTH_MAX_CONNECTIONS;
  return cap ? (unsigned)cap : 1u;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
  static int seen;
  aiplat_health *h = cls;
  bool allowed = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                 strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!*state) {
    *state = &seen;
    busy(h, c);
    /* Answering before the body is read makes the server discard it and
     * close the connection afterwards: bodies are never read. */
    if (!allowed)
      return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "{\"error\":\"method not allowed\"}");
    if (announces_body(c)) return route(h, c, url);
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  return route(h, c, url);
}

AIP_PRINTF(2, 0)
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  aiplat_health *h = cls;
  char line[256];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  pthread_mutex_lock(&h->log_mu);
  memcpy(h->mhd_last, line, sizeof line);
  pthread_mutex_unlock(&h->log_mu);
  aip_log_kv(AIPLAT_LOG_WARNING, "health: http server", "detail", line,
             "address", h->addr_text, (const char *)NULL);
}

/* ---- cached checks ----------------------------------------------------- */

static void *cached_main(void *arg) {
  hcheck *k = arg;
  pthread_setname_np(pthread_self(), "aiplat-check");
  pthread_mutex_lock(&k->mu);
  while (!k->quit) {
    pthread_mutex_unlock(&k->mu);
    run_check(k);
    pthread_mutex_lock(&k->mu);
    struct timespec until;
    monotonic_after(&until, k->interval_ms);
    while (!k->quit &&
           pthread_cond_timedwait(&k->cv, &k->mu, &until) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&k->mu);
  return NULL;
}

static void check_free(hcheck *k) {
  if (!k) return;
  if (k->thread_started) {
    pthread_mutex_lock(&k->mu);
    k->quit = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
  }
  pthread_cond_destroy(&k->cv);
  pthread_mutex_destroy(&k->mu);
  free(k->name);
  free(k);
}

/* Threads of the library never take the process's signals: whatever the
 * program does with SIGTERM happens on its own threads. */
static void block_signals(sigset_t *old) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, old);
}

static void restore_signals(const sigset_t *old) {
  pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void monotonic_cond_init(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

/* The inline checks' thread, started with the first of them (under h->mu). */
static aiplat_status start_rounds(aiplat_health *h) {
  pthread_mutex_lock(&h->round_mu);
  bool started = h->round_started;
  pthread_mutex_unlock(&h->round_mu);
  if (started) return AIPLAT_OK;
  sigset_t old;
  block_signals(&old);
  int rc = pthread_create(&h->round_thread, NULL, round_main, h);
  restore_signals(&old);
  if (rc != 0)
    return aip_fail(&h->err, AIPLAT_ERR_INTERNAL,
                    "health: cannot start the readiness checks' thread: %s",
                    strerror(rc));
  pthread_mutex_lock(&h->round_mu);
  h->round_started = true;
  pthread_mutex_unlock(&h->round_mu);
  return AIPLAT_OK;
}

static void stop_rounds(aiplat_health *h) {
  pthread_mutex_lock(&h->round_mu);
  bool started = h->round_started;
  h->round_quit = true;
  pthread_cond_signal(&h->round_ask);
  pthread_mutex_unlock(&h->round_mu);
  if (started) pthread_join(h->round_thread, NULL);
}

static bool valid_check_name(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > HEALTH_CHECK_NAME_MAX) return false;
  return strspn(name,
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789_.-") == n;
}

static aiplat_status add_check(aiplat_health *h, const char *name,
                               aiplat_health_check_fn fn, void *user_data,
                               bool cached, int64_t interval_ms,
                               int64_t timeout_ms) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "health: NULL handle");
  if (!valid_check_name(name))
    return aip_fail(&h->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "health: check name \"%.64s\" must be 1 to %d characters "
                    "of A-Z a-z 0-9 _ . -",
                    name ? name : "(null)", HEALTH_CHECK_NAME_MAX);
  if (!fn)
    return aip_fail(&h->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "health: check %s: NULL function", name);
  if (cached && (interval_ms < 10 || interval_ms > HEALTH_MAX_PERIOD_MS ||
                 timeout_ms < 1 || timeout_ms > HEALTH_MAX_PERIOD_MS))
    return aip_fail(&h->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "health: check %s: interval must be 10 ms to 24 h and "
                    "timeout 1 ms to 24 h",
                    name);
  hcheck *k = calloc(1, sizeof *k);
  if (!k || !(k->name = strdup(name))) {
    free(k);
    return aip_fail(&h->err, AIPLAT_ERR_NO_MEMORY,
                    "health: check %s: out of memory", name);
  }
  k->fn = fn;
  k->user_data = user_data;
  k->cached = cached;
  atomic_init(&k->slow_warned, false);
  monotonic_cond_init(&k->cv);
  pthread_mutex_init(&k->mu, NULL);
  k->interval_ms = interval_ms;
  k->timeout_ms = cached ? timeout_ms : HEALTH_INLINE_BUDGET_MS;

  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < h->nchecks; i++) {
    if (strcmp(h->checks[i]->name, name) == 0) {
      st = aip_fail(&h->err, AIPLAT_ERR_EXISTS,
                    "health: a check named %s exists already", name);
      goto out;
    }
  }
  if (h->nchecks >= HEALTH_MAX_CHECKS) {
    st = aip_fail(&h->err, AIPLAT_ERR_TOO_LARGE, "health: at most %d checks",
                  HEALTH_MAX_CHECKS);
    goto out;
  }
  if (cached) {
    sigset_t old;
    block_signals(&old);
    int rc = pthread_create(&k->thread, NULL, cached_main, k);
    restore_signals(&old);
    if (rc != 0) {
      st = aip_fail(&h->err, AIPLAT_ERR_INTERNAL,
                    "health: check %s: cannot start its thread: %s", name,
                    strerror(rc));
      goto out;
    }
    k->thread_started = true;
  } else if ((st = start_rounds(h)) != AIPLAT_OK) {
    goto out;
  }
  h->checks[h->nchecks++] = k;
  k = NULL;
out:
  pthread_mutex_unlock(&h->mu);
  check_free(k);
  return st;
}

/* ---- public API -------------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_health_create(aiplat_health **out,
                                              aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "health: out is NULL");
  *out = NULL;
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) return st;
  aiplat_health *h = calloc(1, sizeof *h);
  if (!h) {
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "health: out of memory");
  }
  aip_err_init(&h->err);
  pthread_mutex_init(&h->life_mu, NULL);
  pthread_mutex_init(&h->mu, NULL);
  pthread_mutex_init(&h->log_mu, NULL);
  pthread_mutex_init(&h->round_mu, NULL);
  monotonic_cond_init(&h->round_ask);
  monotonic_cond_init(&h->round_done);
  atomic_init(&h->port, 0);
  atomic_init(&h->stopping, false);
  h->ready = true;
  h->live = true;

  aiplat_config *own = NULL;
  if (!cfg && (st = aiplat_config_create(&own)) != AIPLAT_OK) goto fail;
  st = read_config(h, cfg ? cfg : own);
  aiplat_config_destroy(own);
  if (st != AIPLAT_OK) goto fail;
  if (!(h->checks = calloc(HEALTH_MAX_CHECKS, sizeof *h->checks))) {
    st = aip_fail(&h->err, AIPLAT_ERR_NO_MEMORY, "health: out of memory");
    goto fail;
  }
  if ((st = aip_metrics_new(&h->metrics)) != AIPLAT_OK ||
      (st = aip_metrics_register_std(h->metrics)) != AIPLAT_OK)
    goto fail;
  *out = h;
  return AIPLAT_OK;
fail:
  aiplat_health_destroy(h);
  return st;
}

AIPLAT_API void aiplat_health_destroy(aiplat_health *h) {
  if (!h) return;
  aiplat_health_stop(h);
  stop_rounds(h); /* waits for a running inline check, as for cached ones */
  for (size_t i = 0; i < h->nchecks; i++) check_free(h->checks[i]);
  free(h->checks);
  free(h->ready_reason);
  free(h->live_reason);
  aip_metrics_free(h->metrics);
  pthread_cond_destroy(&h->round_done);
  pthread_cond_destroy(&h->round_ask);
  pthread_mutex_destroy(&h->round_mu);
  pthread_mutex_destroy(&h->log_mu);
  pthread_mutex_destroy(&h->mu);
  pthread_mutex_destroy(&h->life_mu);
  aip_err_destroy(&h->err);
  free(h);
  aip_global_unref();
}

/* After a failed start: bind a socket the same way to learn why. */
static int probe_bind(const aiplat_health *h) {
  int fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int one = 1, v6only = h->dual_stack ? 0 : 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (h->addr.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  int e = 0;
  if (bind(fd, (const struct sockaddr *)&h->addr, h->addrlen) != 0 ||
      listen(fd, 1) != 0)
    e = errno;
  close(fd);
  return e;
}

AIPLAT_API aiplat_status aiplat_health_start(aiplat_health *h) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "health: NULL handle");
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&h->life_mu);
  if (h->daemon) {
    st = aip_fail(&h->err, AIPLAT_ERR_STATE,
                  "health: the server is already started");
    goto out;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                   MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (h->addr.ss_family == AF_INET6)
    flags |= h->dual_stack ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  pthread_mutex_lock(&h->log_mu);
  h->mhd_last[0] = '\0';
  pthread_mutex_unlock(&h->log_mu);
  /* Read by the server's thread alone once it runs. */
  h->conn_cap = connection_cap();
  h->conn_open = 0;
  h->wait_head = h->wait_tail = NULL;
  h->conn_dropped = 0;
  h->drop_logged_ms = 0;
  sigset_t old;
  block_signals(&old);
  /* The server's own limit stays above the cap, so that the accept policy
   * sees a full port and makes room instead of the server leaving new
   * connections in the kernel's backlog until one times out. */
  /* clang-format off */
  h->daemon = MHD_start_daemon(
      flags, (uint16_t)h->port_cfg, on_accept, h, on_request, h,
      /* the logger first, or libmicrohttpd complains on stderr */
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
      MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&h->addr,
      MHD_OPTION_CONNECTION_LIMIT, h->conn_cap + HEALTH_CONNECTION_SLACK,
      MHD_OPTION_CONNECTION_TIMEOUT, HEALTH_CONNECTION_TIMEOUT_S,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, HEALTH_CONNECTION_MEMORY,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
      MHD_OPTION_END);
  /* clang-format on */
  restore_signals(&old);
  if (!h->daemon) {
    int e = probe_bind(h);
    if (e) {
      st =
          aip_fail(&h->err, AIPLAT_ERR_IO, "health: cannot listen on %s:%d: %s",
                   h->addr_text, h->port_cfg, strerror(e));
    } else {
      pthread_mutex_lock(&h->log_mu);
      st = aip_fail(&h->err, AIPLAT_ERR_IO,
                    "health: cannot start the HTTP server on %s:%d: %s",
                    h->addr_text, h->port_cfg,
                    h->mhd_last[0] ? h->mhd_last : "unknown error");
      pthread_mutex_unlock(&h->log_mu);
    }
    goto out;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  atomic_store(&h->port, info && info->port ? info->port : h->port_cfg);
  char port[16], cap[16];
  snprintf(port, sizeof port, "%d", atomic_load(&h->port));
  snprintf(cap, sizeof cap, "%u", h->conn_cap);
  aip_log_kv(AIPLAT_LOG_INFO, "health: listening", "address", h->addr_text,
             "port", port, "max_connections", cap, (const char *)NULL);
out:
  pthread_mutex_unlock(&h->life_mu);
  return st;
}

AIPLAT_API aiplat_status aiplat_health_stop(aiplat_health *h) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "health: NULL handle");
  pthread_mutex_lock(&h->life_mu);
  if (h->daemon) {
    atomic_store(&h->stopping, true);
    MHD_stop_daemon(h->daemon); /* joins the server's thread */
    h->daemon = NULL;
    atomic_store(&h->port, 0);
    atomic_store(&h->stopping, false);
    aip_log_kv(AIPLAT_LOG_INFO, "health: stopped", "address", h->addr_text,
               (const char *)NULL);
  }
  pthread_mutex_unlock(&h->life_mu);
  return AIPLAT_OK;
}

AIPLAT_API int aiplat_health_port(aiplat_health *h) {
  return h ? atomic_load(&h->port) : 0;
}

AIPLAT_API aiplat_status aiplat_health_add_check(aiplat_health *h,
                                                 const char *name,
                                                 aiplat_health_check_fn fn,
                                                 void *user_data) {
  return add_check(h, name, fn, user_data, false, 0, 0);
}

AIPLAT_API aiplat_status aiplat_health_add_cached_check(
    aiplat_health *h, const char *name, aiplat_health_check_fn fn,
    void *user_data, int64_t interval_ms, int64_t timeout_ms) {
  return add_check(h, name, fn, user_data, true, interval_ms, timeout_ms);
}

static aiplat_status set_gate(aiplat_health *h, bool *flag, char **reason_slot,
                              bool value, const char *reason) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "health: NULL handle");
  char *copy = aip_strdup(reason);
  pthread_mutex_lock(&h->mu);
  *flag = value;
  free(*reason_slot);
  *reason_slot = copy;
  pthread_mutex_unlock(&h->mu);
  if (reason && !copy)
    return aip_fail(&h->err, AIPLAT_ERR_NO_MEMORY,
                    "health: out of memory for the reason");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_health_set_ready(aiplat_health *h, bool ready,
                                                 const char *reason) {
  return set_gate(h, h ? &h->ready : NULL, h ? &h->ready_reason : NULL, ready,
                  reason);
}

AIPLAT_API aiplat_status aiplat_health_set_live(aiplat_health *h, bool live,
                                                const char *reason) {
  return set_gate(h, h ? &h->live : NULL, h ? &h->live_reason : NULL, live,
                  reason);
}

AIPLAT_API aiplat_metrics *aiplat_health_metrics(aiplat_health *h) {
  return h ? h->metrics : NULL;
}

AIPLAT_API aiplat_status aiplat_health_last_error(aiplat_health *h, char *buf,
                                                  size_t buflen) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "health: NULL handle");
  return aip_err_copy(&h->err, buf, buflen);
}
