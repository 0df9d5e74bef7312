/* The local model backend under many concurrent streams: thousands of paced
 * streaming chat completions (some with injected faults) open at once on one
 * backend process, whose thread count must stay small, and a stop while
 * streams are paused between their events. One client thread drives every
 * connection with non-blocking sockets and epoll. Under valgrind the backend
 * runs under valgrind too, with fewer streams. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_client.h"
#include "harness/testutil.h"

#define STREAMS 4096
#define STREAMS_VALGRIND 256
#define MAX_THREADS 32
#define INTERVAL_MS "50"
#define CONNECTING_MAX 512 /* connections being opened at once */
/* Every stream starts after this (a model's time to first token), so that
 * the first ones are still open when the last ones are sent. */
#define FIRST_TOKEN "delay=2000"

static const char PROMPT[] =
    "\"messages\":[{\"role\":\"system\",\"content\":\"[1] The night train to "
    "Vienna leaves platform seven at eleven and arrives after breakfast with "
    "coffee served in every carriage.\"},{\"role\":\"user\",\"content\":"
    "\"When does the night train to Vienna leave?\"}]";

static const char ANSWER[] =
    "The night train to Vienna leaves platform seven at eleven and arrives "
    "after breakfast with coffee served in every carriage. [1]";

/* What a stream is asked to do, by its index modulo 16. */
typedef enum kind {
  K_PLAIN,        /* the answer, word by word, then [DONE] */
  K_SPLIT,        /* the same bytes written 11 at a time */
  K_INTERVAL,     /* the same, paced by the request (20 ms) */
  K_STATUS,       /* an injected 429 */
  K_STREAM_ERROR, /* 5 events, an error event, [DONE] */
  K_CUT           /* 4 events, then the connection closes */
} kind;

static kind kind_of(size_t i) {
  switch (i % 16) {
    case 10:
    case 11:
      return K_SPLIT;
    case 12:
      return K_INTERVAL;
    case 13:
      return K_STATUS;
    case 14:
      return K_STREAM_ERROR;
    case 15:
      return K_CUT;
    default:
      return K_PLAIN;
  }
}

static const char *fault_of(kind k) {
  switch (k) {
    case K_SPLIT:
      return "split=11";
    case K_INTERVAL:
      return "interval=20";
    case K_STATUS:
      return "status=429";
    case K_STREAM_ERROR:
      return "stream_error=5";
    case K_CUT:
      return "cut=4";
    default:
      return NULL;
  }
}

static bool under_valgrind(void) {
  return bkc_running_under_valgrind();
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Raise this process's descriptor limit to its hard limit; the number of
 * streams it allows. */
static size_t streams_allowed(size_t want) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want + 64) {
    printf("descriptor limit %llu: %llu streams instead of %zu\n",
           (unsigned long long)rl.rlim_cur,
           (unsigned long long)rl.rlim_cur - 64, want);
    return (size_t)rl.rlim_cur - 64;
  }
  return want;
}

/* A field ("Threads:", "VmRSS:") of /proc/PID/status, or -1. */
static long proc_status(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  size_t fl = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0) {
      v = strtol(line + fl, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* ---- the client -------------------------------------------------------- */

typedef enum phase { P_IDLE, P_SENDING, P_READING, P_DONE } phase;

typedef struct stream {
  int fd;
  phase ph;
  const char *req; /* borrowed */
  size_t req_len, sent;
  char *buf;
  size_t len, cap;
  int err; /* errno of a failed connect, send or read */
} stream;

typedef struct client {
  int port;
  int ep;
  stream *s;
  size_t n;
  size_t next, connecting, open, done;
  size_t max_open;
  long threads_all_open, rss_all_open_kb, max_threads;
  int64_t t0, all_open_ms; /* when the last stream was sent */
  pid_t server;
} client;

static char *request_text(int port, kind k) {
  char body[1024], fault[64];
  int bl = snprintf(body, sizeof body, "{\"model\":\"m\",%s,\"stream\":true}",
                    PROMPT);
  snprintf(fault, sizeof fault, "X-Aiplat-Fault: %s%s%s\r\n", FIRST_TOKEN,
           fault_of(k) ? "; " : "", fault_of(k) ? fault_of(k) : "");
  char *r = malloc(2048);
  snprintf(r, 2048,
           "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
           "Content-Type: application/json\r\n%sConnection: close\r\n"
           "Content-Length: %d\r\n\r\n%s",
           port, fault, bl, body);
  return r;
}

static void stream_open(client *c, stream *s) {
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ck_assert_msg(s->fd >= 0, "socket: %s", strerror(errno));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)c->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(s->fd, (struct sockaddr *)&a, sizeof a);
  ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s",
                strerror(errno));
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
  ck_assert_int_eq(epoll_ctl(c->ep, EPOLL_CTL_ADD, s->fd, &ev), 0);
  s->ph = P_SENDING;
  c->connecting++;
}

static void stream_finish(client *c, stream *s, int err) {
  if (s->ph == P_SENDING) c->connecting--;
  if (s->ph == P_READING) c->open--;
  s->err = err;
  s->ph = P_DONE;
  close(s->fd); /* also leaves the epoll set */
  s->fd = -1;
  c->done++;
}

static void stream_send(client *c, stream *s) {
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr) return stream_finish(c, s, soerr);
  while (s->sent < s->req_len) {
    ssize_t k =
        send(s->fd, s->req + s->sent, s->req_len - s->sent, MSG_NOSIGNAL);
    if (k < 0 && errno == EAGAIN) return;
    if (k < 0) return stream_finish(c, s, errno);
    s->sent += (size_t)k;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
  ck_assert_int_eq(epoll_ctl(c->ep, EPOLL_CTL_MOD, s->fd, &ev), 0);
  s->ph = P_READING;
  c->connecting--;
  c->open++;
  if (c->open > c->max_open) c->max_open = c->open;
}

static void stream_read(client *c, stream *s) {
  for (;;) {
    if (s->cap - s->len < 4096) {
      s->cap = s->cap ? s->cap * 2 : 8192;
      s->buf = realloc(s->buf, s->cap);
      ck_assert_ptr_nonnull(s->buf);
    }
    ssize_t k = recv(s->fd, s->buf + s->len, s->cap - s->len - 1, 0);
    if (k > 0) s->len += (size_t)k;
    s->buf[s->len] = 0;
    if (k > 0) continue;
    if (k < 0 && errno == EAGAIN) return;
    return stream_finish(c, s, k == 0 ? 0 : errno);
  }
}

static void sample(client *c) {
  long t = proc_status(c->server, "Threads:");
  if (t > c->max_threads) c->max_threads = t;
  if (c->open == c->n && c->threads_all_open < 0) {
    c->threads_all_open = t;
    c->rss_all_open_kb = proc_status(c->server, "VmRSS:");
    c->all_open_ms = now_ms() - c->t0;
  }
}

/* Open what may be opened, then handle one round of socket events. */
static void pump(client *c) {
  struct epoll_event evs[512];
  while (c->next < c->n && c->connecting < CONNECTING_MAX)
    stream_open(c, &c->s[c->next++]);
  int k = epoll_wait(c->ep, evs, 512, 20);
  ck_assert_msg(k >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
  for (int i = 0; i < k; i++) {
    stream *s = evs[i].data.ptr;
    if (s->ph == P_SENDING)
      stream_send(c, s);
    else if (s->ph == P_READING)
      stream_read(c, s);
  }
}

/* Run the streams; returns when every one has ended. */
static void run_streams(client *c, int timeout_ms) {
  c->threads_all_open = -1;
  c->rss_all_open_kb = -1;
  c->all_open_ms = -1;
  c->t0 = now_ms();
  int64_t deadline = now_ms() + timeout_ms, next_sample = 0;
  while (c->done < c->n) {
    pump(c);
    int64_t now = now_ms();
    if (now >= next_sample || (c->open == c->n && c->threads_all_open < 0)) {
      sample(c);
      next_sample = now + 100;
    }
    ck_assert_msg(now < deadline,
                  "streams still running after %d ms: %zu of %zu done, %zu "
                  "open",
                  timeout_ms, c->done, c->n, c->open);
  }
}

/* ---- checking a response ------------------------------------------------ */

typedef struct parsed {
  int status;
  bool chunked;
  bool complete; /* the final chunk (or the whole Content-Length) came */
  char *body;    /* NUL-terminated */
  size_t len;
} parsed;

/* Where the text after line starts in the head (case-insensitive), or NULL. */
static const char *find_header(const char *head, size_t hl, const char *line) {
  size_t ll = strlen(line);
  for (size_t i = 0; i + ll <= hl; i++)
    if (strncasecmp(head + i, line, ll) == 0) return head + i + ll;
  return NULL;
}

static parsed parse_response(const stream *s) {
  parsed p = {0};
  p.body = calloc(1, s->len + 1);
  if (!s->buf) return p;
  const char *end = strstr(s->buf, "\r\n\r\n");
  if (!end || sscanf(s->buf, "HTTP/1.1 %d", &p.status) != 1) return p;
  size_t hl = (size_t)(end - s->buf);
  const char *q = end + 4, *stop = s->buf + s->len;
  p.chunked = find_header(s->buf, hl, "\r\nTransfer-Encoding: chunked");
  if (!p.chunked) {
    p.len = (size_t)(stop - q);
    memcpy(p.body, q, p.len);
    const char *cl = find_header(s->buf, hl, "\r\nContent-Length:");
    p.complete = cl && strtoul(cl, NULL, 10) == p.len;
    return p;
  }
  while (q < stop) {
    char *e;
    unsigned long sz = strtoul(q, &e, 16);
    if (e == q || e + 2 > stop || e[0] != '\r' || e[1] != '\n') break;
    q = e + 2;
    if (sz == 0) {
      p.complete = true;
      break;
    }
    if ((size_t)(stop - q) < sz + 2) break;
    memcpy(p.body + p.len, q, sz);
    p.len += sz;
    q += sz + 2;
  }
  return p;
}

/* The content of a stream's chunks (malloc'd); *finish gets the last
 * finish_reason seen. */
static char *stream_text(char **ev, size_t n, char *finish, size_t flen) {
  char *all = calloc(1, 4096);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *j = json_loads(ev[i], 0, NULL);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    const char *t = json_string_value(
        json_object_get(json_object_get(ch, "delta"), "content"));
    size_t tl = t ? strlen(t) : 0;
    if (tl > 0 && len + tl < 4096) {
      memcpy(all + len, t, tl);
      len += tl;
      all[len] = '\0';
    }
    const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
    if (fr) snprintf(finish, flen, "%s", fr);
    json_decref(j);
  }
  return all;
}

/* Check stream i's response against what its kind promises; a message
 * (static) when it is wrong, NULL when right. */
static const char *check_one(size_t i, const stream *s) {
  static char why[256];
  kind k = kind_of(i);
  if (s->err) {
    snprintf(why, sizeof why, "socket error: %s", strerror(s->err));
    return why;
  }
  parsed p = parse_response(s);
  char **ev = NULL;
  size_t n = 0;
  const char *bad = NULL;
  if (k == K_STATUS) {
    json_t *j = json_loadb(p.body, p.len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (p.status != 429 || !p.complete ||
        json_integer_value(json_object_get(e, "code")) != 429)
      bad = "want a complete 429 error";
    json_decref(j);
    goto out;
  }
  if (p.status != 200 || !p.chunked) {
    bad = "want a chunked 200";
    goto out;
  }
  if (!bkc_sse_events(p.body, p.len, &ev, &n)) {
    bad = "SSE framing is wrong";
    goto out;
  }
  char finish[16] = "";
  if (k == K_CUT) {
    if (p.complete || n != 4 || strcmp(ev[n - 1], "[DONE]") == 0)
      bad = "want 4 events and no end";
    goto out;
  }
  if (!p.complete || n == 0 || strcmp(ev[n - 1], "[DONE]") != 0) {
    bad = "want a complete stream ending in [DONE]";
    goto out;
  }
  if (k == K_STREAM_ERROR) {
    if (n != 7 || !strstr(ev[5], "\"error\"")) bad = "want 5 events + error";
    goto out;
  }
  char *text = stream_text(ev, n - 1, finish, sizeof finish);
  if (strcmp(text, ANSWER) != 0 || strcmp(finish, "stop") != 0) {
    snprintf(why, sizeof why, "text '%.120s' finish '%s'", text, finish);
    bad = why;
  }
  free(text);
out:
  bkc_sse_free(ev, n);
  free(p.body);
  return bad;
}

/* ---- the tests --------------------------------------------------------- */

static bool curl_ready;

static void start_backend(bkc_proc *p, const char *interval) {
  if (!curl_ready) curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ready = true;
  const char *args[] = {"--no-stt", "--stream-interval-ms", interval, NULL};
  ck_assert_msg(bkc_start(p, args, under_valgrind()), "backend did not start");
  ck_assert_msg(bkc_wait_ready(p, under_valgrind() ? 180000 : 30000),
                "backend did not become ready");
}

static void stop_backend(bkc_proc *p) {
  int st = bkc_stop(p, SIGTERM, under_valgrind() ? 60000 : 10000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "backend did not exit cleanly (status %d; 99: valgrind "
                "found errors)",
                st);
}

START_TEST(thousands_of_paced_streams) {
  size_t n =
      streams_allowed(under_valgrind() ? STREAMS_VALGRIND : (size_t)STREAMS);
  bkc_proc p;
  start_backend(&p, INTERVAL_MS);
  /* The non-streamed answer is the text every stream must carry. */
  char body[1024];
  snprintf(body, sizeof body, "{%s}", PROMPT);
  bkc_resp r = bkc_post_json(&p, "/v1/chat/completions", body, NULL);
  ck_assert_int_eq(r.status, 200);
  json_t *j = bkc_json(&r);
  ck_assert_str_eq(
      json_string_value(json_object_get(
          json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                          "message"),
          "content")),
      ANSWER);
  json_decref(j);
  bkc_resp_free(&r);

  char *reqs[K_CUT + 1];
  for (int k = 0; k <= K_CUT; k++) reqs[k] = request_text(p.port, (kind)k);
  client c = {0};
  c.port = p.port;
  c.server = p.pid;
  c.n = n;
  c.s = calloc(n, sizeof *c.s);
  c.ep = epoll_create1(EPOLL_CLOEXEC);
  ck_assert_int_ge(c.ep, 0);
  for (size_t i = 0; i < n; i++) {
    c.s[i].req = reqs[kind_of(i)];
    c.s[i].req_len = strlen(c.s[i].req);
    c.s[i].fd = -1;
  }
  long threads_idle = proc_status(p.pid, "Threads:");
  long rss_idle_kb = proc_status(p.pid, "VmRSS:");
  int64_t t0 = now_ms();
  run_streams(&c, under_valgrind() ? 300000 : 60000);
  int64_t took = now_ms() - t0;
  printf(
      "%zu streams (%s ms apart): all open after %lld ms, all done in %lld "
      "ms; %zu open at most; backend threads idle %ld, with all open %ld, at "
      "most %ld; RSS idle %ld KiB, with all open %ld KiB, peak %ld KiB\n",
      n, INTERVAL_MS, (long long)c.all_open_ms, (long long)took, c.max_open,
      threads_idle, c.threads_all_open, c.max_threads, rss_idle_kb,
      c.rss_all_open_kb, proc_status(p.pid, "VmHWM:"));
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) {
    const char *why = check_one(i, &c.s[i]);
    if (why && wrong++ < 5)
      printf("stream %zu (kind %d): %s\n", i, (int)kind_of(i), why);
    free(c.s[i].buf);
  }
  fflush(stdout); /* Check's forked test may end without flushing */
  close(c.ep);
  free(c.s);
  for (int k = 0; k <= K_CUT; k++) free(reqs[k]);
  /* Still serving after the load. */
  r = bkc_get(&p, "/health", NULL);
  ck_assert_int_eq(r.status, 200);
  bkc_resp_free(&r);
  stop_backend(&p);
  ck_assert_msg(wrong == 0, "%zu of %zu streams were wrong", wrong, n);
  ck_assert_msg(c.max_open == n, "only %zu of %zu streams were open at once",
                c.max_open, n);
  ck_assert_msg(c.threads_all_open > 0 && c.max_threads < MAX_THREADS,
                "backend threads: %ld with all %zu streams open, %ld at most "
                "(want < %d)",
                c.threads_all_open, n, c.max_threads, MAX_THREADS);
}
END_TEST

/* SIGTERM while streams wait between their events and requests wait in an
 * injected delay: a clean exit, at once. 256 requests arriving together are
 * also two full batches of libmicrohttpd's epoll events (128 each), after
 * which its own polling thread could sleep with the requests unread. */
START_TEST(stop_with_streams_paused) {
  bkc_proc p;
  start_backend(&p, "1000");
  size_t n = under_valgrind() ? 16 : 256;
  char *plain = request_text(p.port, K_PLAIN);
  char body[1024];
  int bl = snprintf(body, sizeof body, "{%s,\"stream\":true}", PROMPT);
  char delayed[2048];
  snprintf(delayed, sizeof delayed,
           "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Content-Type: application/json\r\nX-Aiplat-Fault: delay=30000\r\n"
           "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
           bl, body);
  client c = {0};
  c.port = p.port;
  c.server = p.pid;
  c.n = n;
  c.s = calloc(n, sizeof *c.s);
  c.ep = epoll_create1(EPOLL_CLOEXEC);
  ck_assert_int_ge(c.ep, 0);
  for (size_t i = 0; i < n; i++) {
    c.s[i].req = i % 4 == 3 ? delayed : plain;
    c.s[i].req_len = strlen(c.s[i].req);
    c.s[i].fd = -1;
  }
  /* Wait until every request is sent and every plain stream has its first
   * event. */
  int64_t deadline = now_ms() + (under_valgrind() ? 120000 : 20000);
  for (;;) {
    size_t started = 0;
    for (size_t i = 0; i < n; i++)
      started += i % 4 != 3 && c.s[i].buf && strstr(c.s[i].buf, "data: ");
    if (c.open == n && started == n - n / 4) break;
    ck_assert_msg(now_ms() < deadline,
                  "%zu streams started, %zu sent, %zu being sent, %zu ended",
                  started, c.open, c.connecting, c.done);
    pump(&c);
  }
  ck_assert_uint_eq(c.done, 0);
  int64_t t0 = now_ms();
  stop_backend(&p);
  int64_t took = now_ms() - t0;
  printf("stopped with %zu streams paused in %lld ms\n", n, (long long)took);
  fflush(stdout);
  while (c.done < n) pump(&c);
  /* Every connection ended without a complete stream. */
  for (size_t i = 0; i < n; i++) {
    parsed pr = parse_response(&c.s[i]);
    ck_assert(!(pr.status == 200 && pr.complete));
    free(pr.body);
    free(c.s[i].buf);
  }
  close(c.ep);
  free(c.s);
  free(plain);
}
END_TEST

static void cleanup(void) {
  if (curl_ready) curl_global_cleanup();
}

Suite *make_suite(void) {
  Suite *s = suite_create("model-backend-scale");
  TCase *tc = tcase_create("scale");
  tcase_add_unchecked_fixture(tc, NULL, cleanup);
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, thousands_of_paced_streams);
  tcase_add_test(tc, stop_with_streams_paused);
  suite_add_tcase(s, tc);
  return s;
}
