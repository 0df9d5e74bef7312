/* The internal HTTP layer against a real HTTP server on loopback
 * (tests/fakes/http_fake): retries, Retry-After, timeouts, cancel, size
 * cap, keep-alive, headers, multipart, health, secrets. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fakes/http_fake.h"
#include "harness/testutil.h"
#include "http.h"

static hf_server *srv;
static aip_http *h;
static aip_err err;
static char msg[AIP_ERRMSG_MAX];

static void fast_settings(void) {
  aip_http_settings s;
  aip_http_get_settings(h, &s);
  s.retry_base_ms = 10;
  s.retry_max_wait_ms = 2000;
  s.timeout_ms = 10000;
  s.connect_timeout_ms = 2000;
  s.max_retries = 3;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &s), AIPLAT_OK);
}

static void setup(void) {
  ck_assert_int_eq(aip_global_ref(), AIPLAT_OK);
  srv = hf_start();
  ck_assert_ptr_nonnull(srv);
  h = aip_http_new("test");
  ck_assert_ptr_nonnull(h);
  aip_err_init(&err);
  ck_assert_int_eq(aip_http_set_url(h, &err, hf_url(srv)), AIPLAT_OK);
  fast_settings();
}

static void teardown(void) {
  aip_http_free(h);
  hf_stop(srv);
  aip_err_destroy(&err);
  aip_global_unref();
}

static const char *errmsg(void) {
  aip_err_copy(&err, msg, sizeof msg);
  return msg;
}

static aiplat_status get(const char *path, aip_http_resp *resp) {
  aip_http_req req = {.method = "GET", .path = path, .max_retries = -1};
  memset(resp, 0, sizeof *resp);
  return aip_http_do(h, &err, &req, resp);
}

static aiplat_status post_json(const char *json, json_t **out) {
  json_t *body = json_loads(json, 0, NULL);
  ck_assert_ptr_nonnull(body);
  aiplat_status st = aip_http_post_json(h, &err, "/v1/x", body, out, NULL);
  json_decref(body);
  return st;
}

static void push(int status, const char *ctype, const char *body) {
  hf_response r = hf_resp(status, ctype, body);
  hf_push(srv, &r);
}

/* ---- plumbing ----------------------------------------------------------- */

START_TEST(json_post_headers_and_body) {
  ck_assert_int_eq(aip_http_set_api_key(h, &err, "sk-test-123"), AIPLAT_OK);
  push(200, "application/json", "{\"ok\":true,\"unknown\":[1,2]}");
  json_t *out = NULL;
  ck_assert_int_eq(post_json("{\"model\":\"m\",\"input\":[\"a\"]}", &out),
                   AIPLAT_OK);
  ck_assert(json_is_true(json_object_get(out, "ok")));
  json_decref(out);
  const hf_request *r = hf_request_at(srv, 0);
  ck_assert_str_eq(r->method, "POST");
  ck_assert_str_eq(r->path, "/v1/x");
  ck_assert_str_eq(hf_header_get(r, "authorization"), "Bearer sk-test-123");
  ck_assert_str_eq(hf_header_get(r, "content-type"), "application/json");
  char ua[64];
  snprintf(ua, sizeof ua, "aiplat/%s", aiplat_version_string());
  ck_assert_str_eq(hf_header_get(r, "user-agent"), ua);
  ck_assert_ptr_null(hf_header_get(r, "expect"));
  ck_assert_str_eq(r->body, "{\"model\":\"m\",\"input\":[\"a\"]}");
  /* No key: no Authorization header at all. */
  ck_assert_int_eq(aip_http_set_api_key(h, &err, ""), AIPLAT_OK);
  push(200, "application/json", "{}");
  ck_assert_int_eq(post_json("{}", &out), AIPLAT_OK);
  json_decref(out);
  ck_assert_ptr_null(hf_header_get(hf_request_at(srv, 1), "authorization"));
  ck_assert_int_eq(aip_http_set_api_key(h, &err, "a\r\nX-Evil: 1"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(url_forms) {
  static const char *const forms[] = {"", "/", "/v1", "/v1/", "//v1//"};
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    char url[128];
    snprintf(url, sizeof url, "%s%s", hf_url(srv), forms[i]);
    ck_assert_int_eq(aip_http_set_url(h, &err, url), AIPLAT_OK);
    char *root = aip_http_root_url(h);
    ck_assert_str_eq(root, hf_url(srv));
    free(root);
  }
  char url[128];
  snprintf(url, sizeof url, "%s/gateway/llm/v1", hf_url(srv));
  ck_assert_int_eq(aip_http_set_url(h, &err, url), AIPLAT_OK);
  push(200, "application/json", "{}");
  json_t *out = NULL;
  ck_assert_int_eq(post_json("{}", &out), AIPLAT_OK);
  json_decref(out);
  ck_assert_str_eq(hf_request_at(srv, 0)->path, "/gateway/llm/v1/x");
  static const char *const bad[] = {
      "",          "localhost:8000", "ftp://h",       "http://",
      "http:///x", "http://h/a b",   "http://h/?q=1", "http://h/#f"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(
        aip_http_set_url(h, &err, bad[i]) == AIPLAT_ERR_INVALID_ARGUMENT, "%s",
        bad[i]);
}
END_TEST

/* ---- retries ------------------------------------------------------------ */

START_TEST(retried_statuses) {
  static const int codes[] = {429, 502, 503, 504};
  for (size_t i = 0; i < 4; i++) {
    size_t before = hf_request_count(srv);
    push(codes[i], "application/json", "{\"error\":{\"message\":\"busy\"}}");
    push(200, "application/json", "{\"n\":1}");
    aip_http_resp resp;
    ck_assert_int_eq(get("/v1/models", &resp), AIPLAT_OK);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 2);
    ck_assert_str_eq(resp.body.data, "{\"n\":1}");
    aip_http_resp_free(&resp);
    ck_assert_uint_eq(hf_request_count(srv) - before, 2);
  }
}
END_TEST

START_TEST(not_retried_statuses) {
  static const struct {
    int code;
    aiplat_status st;
  } cases[] = {{400, AIPLAT_ERR_BAD_REQUEST}, {401, AIPLAT_ERR_AUTH},
               {403, AIPLAT_ERR_AUTH},        {404, AIPLAT_ERR_NOT_FOUND},
               {422, AIPLAT_ERR_BAD_REQUEST}, {500, AIPLAT_ERR_SERVER}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t before = hf_request_count(srv);
    hf_response r =
        hf_resp(cases[i].code, "application/json",
                "{\"error\":{\"message\":\"nope from the server\"}}");
    hf_push(srv, &r);
    push(200, "application/json", "{}"); /* would be answered to a retry */
    aip_http_resp resp;
    ck_assert_int_eq(get("/v1/models", &resp), cases[i].st);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_int_eq(resp.status, cases[i].code);
    aip_http_resp_free(&resp);
    ck_assert_uint_eq(hf_request_count(srv) - before, 1);
    char want[64];
    snprintf(want, sizeof want, "HTTP %d: nope from the server", cases[i].code);
    ck_assert_msg(strstr(errmsg(), want), "%s", msg);
    /* Take the unused 200 off the queue. */
    ck_assert_int_eq(get("/v1/models", &resp), AIPLAT_OK);
    aip_http_resp_free(&resp);
  }
}
END_TEST

START_TEST(retries_exhausted) {
  for (int i = 0; i < 4; i++)
    push(503, "application/json",
         "{\"object\":\"error\",\"message\":\"engine loading\",\"code\":503}");
  aip_http_resp resp;
  ck_assert_int_eq(get("/health", &resp), AIPLAT_ERR_UNAVAILABLE);
  ck_assert_int_eq(resp.attempts, 4);
  aip_http_resp_free(&resp);
  ck_assert_uint_eq(hf_request_count(srv), 4);
  ck_assert_ptr_nonnull(
      strstr(errmsg(), "HTTP 503: engine loading (after 4 attempts)"));
  ck_assert_ptr_nonnull(strstr(msg, "test: GET http://127.0.0.1:"));
}
END_TEST

START_TEST(retry_after_seconds_and_cap) {
  hf_response r = hf_resp(429, "application/json", "{\"error\":\"slow down\"}");
  r.headers[0] = "Retry-After: 1";
  hf_push(srv, &r);
  push(200, "text/plain", "ok");
  aip_http_resp resp;
  int64_t t0 = aip_now_ms();
  ck_assert_int_eq(get("/x", &resp), AIPLAT_OK);
  int64_t waited = aip_now_ms() - t0;
  ck_assert_msg(waited >= 950, "waited %lld ms, Retry-After was 1 s",
                (long long)waited);
  aip_http_resp_free(&resp);
  /* Retry-After above the cap waits the cap. */
  aip_http_settings s;
  aip_http_get_settings(h, &s);
  s.retry_max_wait_ms = 200;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &s), AIPLAT_OK);
  r.headers[0] = "Retry-After: 3600";
  hf_push(srv, &r);
  push(200, "text/plain", "ok");
  t0 = aip_now_ms();
  ck_assert_int_eq(get("/x", &resp), AIPLAT_OK);
  waited = aip_now_ms() - t0;
  ck_assert_msg(waited >= 190 && waited < 3000, "waited %lld ms",
                (long long)waited);
  aip_http_resp_free(&resp);
}
END_TEST

START_TEST(retry_after_http_date) {
  char date[64], hdr[96];
  time_t later = time(NULL) + 2;
  struct tm tm;
  gmtime_r(&later, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  snprintf(hdr, sizeof hdr, "Retry-After: %s", date);
  hf_response r = hf_resp(503, "text/plain", "maintenance");
  r.headers[0] = hdr;
  hf_push(srv, &r);
  push(200, "text/plain", "ok");
  aip_http_resp resp;
  int64_t t0 = aip_now_ms();
  ck_assert_int_eq(get("/x", &resp), AIPLAT_OK);
  int64_t waited = aip_now_ms() - t0;
  ck_assert_msg(waited >= 700, "waited %lld ms for an HTTP-date 2 s ahead",
                (long long)waited);
  aip_http_resp_free(&resp);
}
END_TEST

/* A port nothing listens on. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd);
  return ntohs(sa.sin_port);
}

START_TEST(connect_refused_is_retried) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
  ck_assert_int_eq(aip_http_set_url(h, &err, url), AIPLAT_OK);
  aip_http_resp resp;
  ck_assert_int_eq(get("/health", &resp), AIPLAT_ERR_CONNECTION);
  ck_assert_int_eq(resp.attempts, 4);
  ck_assert_int_eq(resp.status, 0);
  aip_http_resp_free(&resp);
  ck_assert_ptr_nonnull(strstr(errmsg(), "cannot connect"));
}
END_TEST

/* A listener whose accept queue is full: SYNs are dropped, connect hangs. */
static int blackhole(int fds[4]) {
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fds[0], (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(fds[0], 0), 0);
  socklen_t len = sizeof sa;
  getsockname(fds[0], (struct sockaddr *)&sa, &len);
  for (int i = 1; i < 4; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
    connect(fds[i], (struct sockaddr *)&sa, sizeof sa);
  }
  usleep(50000);
  return ntohs(sa.sin_port);
}

START_TEST(connect_timeout_fires) {
  int fds[4];
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", blackhole(fds));
  ck_assert_int_eq(aip_http_set_url(h, &err, url), AIPLAT_OK);
  aip_http_settings s;
  aip_http_get_settings(h, &s);
  s.connect_timeout_ms = 300;
  s.max_retries = 1;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &s), AIPLAT_OK);
  aip_http_resp resp;
  int64_t t0 = aip_now_ms();
  ck_assert_int_eq(get("/health", &resp), AIPLAT_ERR_TIMEOUT);
  int64_t took = aip_now_ms() - t0;
  ck_assert_int_eq(resp.attempts, 2); /* a connect timeout is a connect error */
  aip_http_resp_free(&resp);
  /* Upper bounds here only tell "the setting took effect" from the
   * alternatives (5-60 s defaults, or never): wide, for valgrind on a slow
   * machine. */
  ck_assert_msg(took >= 550 && took < 8000, "took %lld ms", (long long)took);
  for (int i = 0; i < 4; i++) close(fds[i]);
}
END_TEST

START_TEST(total_timeout_when_server_never_answers) {
  hf_response r = hf_resp(200, "text/plain", "late");
  r.hang = true;
  hf_push(srv, &r);
  aip_http_settings s;
  aip_http_get_settings(h, &s);
  s.timeout_ms = 400;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &s), AIPLAT_OK);
  aip_http_resp resp;
  int64_t t0 = aip_now_ms();
  ck_assert_int_eq(get("/x", &resp), AIPLAT_ERR_TIMEOUT);
  int64_t took = aip_now_ms() - t0;
  ck_assert_int_eq(resp.attempts,
                   1); /* connected: a read timeout is not retried */
  aip_http_resp_free(&resp);
  ck_assert_msg(took >= 350 && took < 8000, "took %lld ms", (long long)took);
  ck_assert_ptr_nonnull(strstr(errmsg(), "timed out"));
}
END_TEST

/* ---- streaming ---------------------------------------------------------- */

typedef struct sink_rec {
  aip_buf got;
  size_t calls;
  size_t stop_after; /* 0: never */
} sink_rec;

static aiplat_status sink(const char *d, size_t n, void *ud) {
  sink_rec *s = ud;
  aip_buf_append(&s->got, d, n);
  s->calls++;
  if (s->stop_after && s->calls >= s->stop_after)
    return aip_fail(&err, AIPLAT_ERR_CANCELLED, "stopped by the test");
  return AIPLAT_OK;
}

static aiplat_status stream(const char *path, sink_rec *s,
                            aip_http_resp *resp) {
  aip_http_req req = {.method = "GET",
                      .path = path,
                      .stream = true,
                      .sink = sink,
                      .sink_ud = s,
                      .max_retries = -1};
  memset(resp, 0, sizeof *resp);
  return aip_http_do(h, &err, &req, resp);
}

START_TEST(pieces_reach_the_sink) {
  hf_response r = hf_resp(200, "audio/wav", "0123456789abcdefghij");
  r.split_every = 5;
  r.piece_delay_ms = 30;
  r.chunked = true;
  hf_push(srv, &r);
  sink_rec s = {{0}, 0, 0};
  aip_http_resp resp;
  ck_assert_int_eq(stream("/a", &s, &resp), AIPLAT_OK);
  ck_assert_str_eq(s.got.data, "0123456789abcdefghij");
  ck_assert_uint_ge(s.calls, 3); /* pieces 30 ms apart arrive apart */
  ck_assert(resp.delivered);
  ck_assert_str_eq(resp.content_type, "audio/wav");
  ck_assert_uint_eq(resp.body.len, 0); /* went to the sink only */
  aip_http_resp_free(&resp);
  aip_buf_free(&s.got);
}
END_TEST

/* A sink may go on looking at the answer's type while the call ends behind
 * it on the loop thread. */
typedef struct type_rec {
  aip_http_resp *resp;
  const char *seen;
  char first[64], later[64];
} type_rec;

static aiplat_status type_sink(const char *d, size_t n, void *ud) {
  (void)d;
  (void)n;
  type_rec *t = ud;
  if (t->seen) return AIPLAT_OK;
  t->seen = t->resp->content_type;
  snprintf(t->first, sizeof t->first, "%s", t->seen ? t->seen : "(null)");
  usleep(500000); /* the whole answer is in: the call ends meanwhile */
  snprintf(t->later, sizeof t->later, "%s", t->seen ? t->seen : "(null)");
  return AIPLAT_OK;
}

START_TEST(sink_reads_the_type_while_the_call_ends) {
  hf_response r =
      hf_resp(200, "application/json", "{\"error\":\"JSON instead of audio\"}");
  r.chunked = true;
  r.split_every = 8; /* the end comes while the sink looks at the first */
  r.piece_delay_ms = 50;
  hf_push(srv, &r);
  aip_http_resp resp = {0};
  type_rec t = {.resp = &resp};
  aip_http_req req = {.method = "GET",
                      .path = "/t",
                      .stream = true,
                      .sink = type_sink,
                      .sink_ud = &t,
                      .max_retries = -1};
  ck_assert_int_eq(aip_http_do(h, &err, &req, &resp), AIPLAT_OK);
  ck_assert_str_eq(t.first, "application/json");
  ck_assert_str_eq(t.later, "application/json");
  ck_assert_str_eq(resp.content_type, "application/json");
  aip_http_resp_free(&resp);
}
END_TEST

START_TEST(stream_idle_timeout) {
  hf_response r = hf_resp(200, "text/event-stream", "data: first\n\n");
  r.hang_after_body = true;
  hf_push(srv, &r);
  aip_http_settings set;
  aip_http_get_settings(h, &set);
  set.idle_timeout_ms = 300;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &set), AIPLAT_OK);
  sink_rec s = {{0}, 0, 0};
  aip_http_resp resp;
  int64_t t0 = aip_now_ms();
  ck_assert_int_eq(stream("/s", &s, &resp), AIPLAT_ERR_TIMEOUT);
  int64_t took = aip_now_ms() - t0;
  ck_assert_msg(took >= 280 && took < 8000, "took %lld ms", (long long)took);
  ck_assert_str_eq(s.got.data, "data: first\n\n");
  ck_assert_int_eq(resp.attempts, 1);
  ck_assert_ptr_nonnull(strstr(errmsg(), "no data from the server for 300 ms"));
  aip_http_resp_free(&resp);
  aip_buf_free(&s.got);
}
END_TEST

static void *cancel_later(void *arg) {
  usleep(200000);
  aip_http_cancel(arg);
  return NULL;
}

START_TEST(cancel_from_another_thread) {
  hf_response r = hf_resp(200, "text/event-stream", "data: a\n\n");
  r.hang_after_body = true;
  hf_push(srv, &r);
  pthread_t t;
  pthread_create(&t, NULL, cancel_later, h);
  sink_rec s = {{0}, 0, 0};
  aip_http_resp resp;
  int64_t t0 = aip_now_ms();
  ck_assert_int_eq(stream("/s", &s, &resp), AIPLAT_ERR_CANCELLED);
  int64_t took = aip_now_ms() - t0;
  pthread_join(t, NULL);
  ck_assert_msg(took >= 150 && took < 8000, "cancel took %lld ms",
                (long long)took);
  aip_http_resp_free(&resp);
  aip_buf_free(&s.got);
  /* A cancel during the wait before a retry ends the wait. */
  hf_response busy = hf_resp(503, "text/plain", "busy");
  busy.headers[0] = "Retry-After: 20";
  hf_push(srv, &busy);
  aip_http_settings set;
  aip_http_get_settings(h, &set);
  set.retry_max_wait_ms = 30000;
  set.timeout_ms = 60000;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &set), AIPLAT_OK);
  pthread_create(&t, NULL, cancel_later, h);
  t0 = aip_now_ms();
  ck_assert_int_eq(get("/x", &resp), AIPLAT_ERR_CANCELLED);
  took = aip_now_ms() - t0;
  pthread_join(t, NULL);
  ck_assert_msg(took < 8000, "cancel of a retry wait took %lld ms",
                (long long)took);
  aip_http_resp_free(&resp);
  /* Later calls are not cancelled. */
  push(200, "text/plain", "fine");
  ck_assert_int_eq(get("/x", &resp), AIPLAT_OK);
  aip_http_resp_free(&resp);
}
END_TEST

START_TEST(sink_stop_closes_and_is_not_retried) {
  hf_response r =
      hf_resp(200, "text/event-stream", "data: 1\n\ndata: 2\n\ndata: 3\n\n");
  r.split_every = 9;
  r.piece_delay_ms = 20;
  r.chunked = true;
  hf_push(srv, &r);
  push(200, "text/plain", "spare");
  sink_rec s = {{0}, 0, 1};
  aip_http_resp resp;
  ck_assert_int_eq(stream("/s", &s, &resp), AIPLAT_ERR_CANCELLED);
  ck_assert_int_eq(resp.attempts, 1);
  ck_assert_str_eq(errmsg(), "stopped by the test");
  aip_http_resp_free(&resp);
  aip_buf_free(&s.got);
  ck_assert_uint_eq(hf_request_count(srv), 1);
}
END_TEST

START_TEST(cut_mid_body) {
  hf_response r =
      hf_resp(200, "application/json", "{\"data\":[1,2,3,4,5,6,7,8,9]}");
  r.cut = true;
  r.cut_at = 10;
  hf_push(srv, &r);
  json_t *out = NULL;
  ck_assert_int_eq(post_json("{}", &out), AIPLAT_ERR_CONNECTION);
  ck_assert_ptr_null(out);
  ck_assert_ptr_nonnull(strstr(errmsg(), "connection lost"));
  ck_assert_uint_eq(hf_request_count(srv), 1);
  /* The same in a stream, after bytes reached the sink. */
  r = hf_resp(200, "text/event-stream", "data: a\n\ndata: b\n\n");
  r.cut = true;
  r.cut_at = 12;
  r.chunked = true;
  hf_push(srv, &r);
  sink_rec s = {{0}, 0, 0};
  aip_http_resp resp;
  ck_assert_int_eq(stream("/s", &s, &resp), AIPLAT_ERR_CONNECTION);
  ck_assert_int_eq(resp.attempts, 1);
  ck_assert_str_eq(s.got.data, "data: a\n\ndat");
  aip_http_resp_free(&resp);
  aip_buf_free(&s.got);
}
END_TEST

/* ---- size cap and bad bodies ------------------------------------------- */

START_TEST(response_size_cap) {
  aip_http_settings s;
  aip_http_get_settings(h, &s);
  s.max_response_bytes = 1024;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &s), AIPLAT_OK);
  static char big[5000];
  memset(big, 'a', sizeof big - 1);
  push(200, "text/plain", big); /* with Content-Length */
  aip_http_resp resp;
  ck_assert_int_eq(get("/big", &resp), AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_nonnull(strstr(errmsg(), "larger than 1024 bytes"));
  aip_http_resp_free(&resp);
  hf_response r = hf_resp(200, "text/plain", big); /* chunked, no length */
  r.chunked = true;
  r.split_every = 700;
  hf_push(srv, &r);
  ck_assert_int_eq(get("/big", &resp), AIPLAT_ERR_TOO_LARGE);
  aip_http_resp_free(&resp);
  /* An error body over the cap is cut, not an error of its own. */
  push(500, "text/plain", big);
  ck_assert_int_eq(get("/big", &resp), AIPLAT_ERR_SERVER);
  aip_http_resp_free(&resp);
  /* Exactly at the cap is fine. */
  big[1024] = '\0';
  push(200, "text/plain", big);
  ck_assert_int_eq(get("/big", &resp), AIPLAT_OK);
  ck_assert_uint_eq(resp.body.len, 1024);
  aip_http_resp_free(&resp);
}
END_TEST

START_TEST(garbage_and_truncated_json) {
  static const char *const bodies[] = {"hello",
                                       "{\"a\": [1, 2",
                                       "",
                                       "<html>oops</html>",
                                       "\"just a string\"",
                                       "{\"a\":1} trailing"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    push(200, "application/json", bodies[i]);
    json_t *out = NULL;
    ck_assert_msg(post_json("{}", &out) == AIPLAT_ERR_DECODE, "%s", bodies[i]);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(errmsg(), i == 2 ? "empty body" : "not JSON"), "%s",
                  msg);
  }
}
END_TEST

/* ---- connections -------------------------------------------------------- */

START_TEST(keep_alive_reuses_one_connection) {
  for (int i = 0; i < 5; i++) push(200, "application/json", "{}");
  for (int i = 0; i < 5; i++) {
    aip_http_resp resp;
    ck_assert_int_eq(get("/x", &resp), AIPLAT_OK);
    aip_http_resp_free(&resp);
  }
  ck_assert_uint_eq(hf_connection_count(srv), 1);
  for (int i = 0; i < 5; i++)
    ck_assert_uint_eq(hf_request_at(srv, (size_t)i)->conn_id, 1);
  /* A server that closes each connection forces new ones. */
  for (int i = 0; i < 3; i++) {
    hf_response r = hf_resp(200, "application/json", "{}");
    r.headers[0] = "Connection: close";
    hf_push(srv, &r);
  }
  for (int i = 0; i < 3; i++) {
    aip_http_resp resp;
    ck_assert_int_eq(get("/x", &resp), AIPLAT_OK);
    aip_http_resp_free(&resp);
  }
  /* The first of these still rode connection 1, then it was closed. */
  ck_assert_uint_eq(hf_connection_count(srv), 3);
  ck_assert_uint_eq(hf_request_at(srv, 5)->conn_id, 1);
  ck_assert_uint_eq(hf_request_at(srv, 6)->conn_id, 2);
  ck_assert_uint_eq(hf_request_at(srv, 7)->conn_id, 3);
}
END_TEST

static void slow_ok(const hf_request *req, hf_response *r, void *ud) {
  (void)req;
  (void)ud;
  *r = hf_resp(200, "application/json", "{\"ok\":1}");
  r->delay_ms = 20;
}

static void *worker(void *arg) {
  (void)arg;
  long fails = 0;
  for (int i = 0; i < 10; i++) {
    aip_http_req req = {.method = "GET", .path = "/w", .max_retries = 0};
    aip_http_resp resp = {0};
    if (aip_http_do(h, NULL, &req, &resp) != AIPLAT_OK) fails++;
    aip_http_resp_free(&resp);
  }
  return (void *)fails;
}

START_TEST(one_client_many_threads) {
  hf_set_handler(srv, slow_ok, NULL);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < 4; i++) {
    void *fails;
    pthread_join(t[i], &fails);
    ck_assert_int_eq((long)fails, 0);
  }
  ck_assert_uint_eq(hf_request_count(srv), 40);
  ck_assert_uint_le(hf_connection_count(srv), 4); /* pooled and reused */
}
END_TEST

/* ---- multipart ---------------------------------------------------------- */

START_TEST(multipart_bytes_exact) {
  unsigned char audio[3000];
  for (size_t i = 0; i < sizeof audio; i++)
    audio[i] = (unsigned char)(i * 7 + 3);
  memcpy(audio + 100, "\r\n--", 4); /* looks like a boundary start */
  audio[200] = 0;
  aip_http_part parts[] = {
      {"file", "audio.wav", "audio/wav", audio, sizeof audio},
      {"model", NULL, NULL, "whisper-1", 9},
      {"language", NULL, NULL, "de", 2},
  };
  push(200, "application/json", "{\"text\":\"ok\"}");
  aip_http_req req = {.method = "POST",
                      .path = "/v1/audio/transcriptions",
                      .parts = parts,
                      .nparts = 3,
                      .max_retries = -1};
  aip_http_resp resp = {0};
  ck_assert_int_eq(aip_http_do(h, &err, &req, &resp), AIPLAT_OK);
  aip_http_resp_free(&resp);
  const hf_request *r = hf_request_at(srv, 0);
  ck_assert_ptr_nonnull(
      strstr(hf_header_get(r, "content-type"), "multipart/form-data"));
  const hf_part *f = hf_part_get(r, "file");
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(f->filename, "audio.wav");
  ck_assert_str_eq(f->type, "audio/wav");
  ck_assert_uint_eq(f->len, sizeof audio);
  ck_assert_int_eq(memcmp(f->data, audio, sizeof audio), 0);
  ck_assert_str_eq(hf_part_get(r, "model")->data, "whisper-1");
  ck_assert_str_eq(hf_part_get(r, "language")->data, "de");
}
END_TEST

/* ---- health ------------------------------------------------------------- */

START_TEST(health_and_fallback) {
  push(200, NULL, "");
  ck_assert_int_eq(aip_http_health(h, &err), AIPLAT_OK);
  ck_assert_str_eq(hf_request_at(srv, 0)->path, "/health");
  push(404, "text/plain", "404 page not found"); /* Ollama has no /health */
  push(200, "application/json", "{\"object\":\"list\",\"data\":[]}");
  ck_assert_int_eq(aip_http_health(h, &err), AIPLAT_OK);
  ck_assert_str_eq(hf_request_at(srv, 2)->path, "/v1/models");
  push(503, "application/json",
       "{\"error\":{\"code\":503,\"message\":\"Loading "
       "model\",\"type\":\"unavailable_error\"}}");
  push(200, NULL, "");
  ck_assert_int_eq(aip_http_health(h, &err), AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_nonnull(strstr(errmsg(), "Loading model"));
  ck_assert_uint_eq(hf_request_count(srv), 4); /* no retry */
}
END_TEST

/* ---- secrets ------------------------------------------------------------ */

static aip_buf logs;
static void capture(aiplat_log_level l, const char *rec, size_t n, void *ud) {
  (void)l;
  (void)ud;
  aip_buf_append(&logs, rec, n);
  aip_buf_putc(&logs, '\n');
}

START_TEST(api_key_and_url_password_never_shown) {
  aiplat_log_set_callback(capture, NULL);
  aiplat_log_set_level(AIPLAT_LOG_DEBUG);
  char url[128];
  snprintf(url, sizeof url, "http://user:hunter2@127.0.0.1:%d/v1",
           hf_port(srv));
  ck_assert_int_eq(aip_http_set_url(h, &err, url), AIPLAT_OK);
  ck_assert_int_eq(aip_http_set_api_key(h, &err, "sk-SECRET-777"), AIPLAT_OK);
  push(502, "text/plain", "bad gateway");
  push(401, "application/json",
       "{\"error\":{\"message\":\"Invalid API key\"}}");
  aip_http_resp resp;
  ck_assert_int_eq(get("/v1/models", &resp), AIPLAT_ERR_AUTH);
  aip_http_resp_free(&resp);
  aiplat_log_set_callback(NULL, NULL);
  aiplat_log_reset_level();
  ck_assert_ptr_nonnull(logs.data);
  ck_assert_ptr_nonnull(strstr(logs.data, "retrying")); /* the 502 was logged */
  ck_assert_ptr_null(strstr(logs.data, "SECRET"));
  ck_assert_ptr_null(strstr(logs.data, "hunter2"));
  ck_assert_ptr_null(strstr(errmsg(), "SECRET"));
  ck_assert_ptr_null(strstr(msg, "hunter2"));
  ck_assert_ptr_nonnull(strstr(msg, "Invalid API key"));
  /* The server did get both. */
  ck_assert_str_eq(hf_header_get(hf_request_at(srv, 1), "authorization"),
                   "Bearer sk-SECRET-777");
  aip_buf_free(&logs);
}
END_TEST

/* ---- TLS ---------------------------------------------------------------- */

/* A self-signed test-only certificate for 127.0.0.1 (EC P-256, valid
 * 2000-2099), made for this test; it protects nothing. */
static const char test_cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBaTCCAQ6gAwIBAgICEAAwCgYIKoZIzj0EAwIwFDESMBAGA1UEAwwJMTI3LjAu\n"
    "MC4xMCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMDAwMDAwWjAUMRIwEAYDVQQD\n"
    "DAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARzMEycDDrXjWTv\n"
    "3qr6Tx2jZoZVzGIq4U+DrmZgeacx357O3Tn2WRzZS0CPhJrGN88cbPn1WafdhYPh\n"
    "RaSCE6R5o04wTDAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGHBH8AAAGCCWxv\n"
    "Y2FsaG9zdDAdBgNVHQ4EFgQUH26Xxs2Rx7R0VYpOtJeSdejZeQ4wCgYIKoZIzj0E\n"
    "AwIDSQAwRgIhAKtLwTtYALii8bgdlo4NF1AV1cFndCKo6CH1oDB4P0fnAiEAikRV\n"
    "4nmERqc02U5cGbxVbfsVGi88fNFtQ8hjpOxzSS0=\n"
    "-----END CERTIFICATE-----\n";
static const char test_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0wW69LFxOZlGuLMj\n"
    "WtkF1BxH4l1pSjPKpzZzbVbUdqehRANCAARzMEycDDrXjWTv3qr6Tx2jZoZVzGIq\n"
    "4U+DrmZgeacx357O3Tn2WRzZS0CPhJrGN88cbPn1WafdhYPhRaSCE6R5\n"
    "-----END PRIVATE KEY-----\n";

START_TEST(tls_verified_by_default) {
  hf_server *tls = hf_start_tls(test_cert, test_key);
  ck_assert_ptr_nonnull(tls);
  aip_http_settings s;
  aip_http_get_settings(h, &s);
  s.connect_timeout_ms = 15000; /* the handshake is slow under valgrind */
  s.timeout_ms = 30000;
  ck_assert_int_eq(aip_http_set_settings(h, &err, &s), AIPLAT_OK);
  ck_assert_int_eq(aip_http_set_url(h, &err, hf_url(tls)), AIPLAT_OK);
  hf_response ok = hf_resp(200, "application/json", "{\"secure\":true}");
  hf_push(tls, &ok);
  aip_http_resp resp;
  /* Not trusted: refused, not retried, and nothing reached the handler. */
  ck_assert_int_eq(get("/v1/models", &resp), AIPLAT_ERR_CONNECTION);
  ck_assert_int_eq(resp.attempts, 1);
  aip_http_resp_free(&resp);
  ck_assert_ptr_nonnull(strstr(errmsg(), "TLS"));
  ck_assert_uint_eq(hf_request_count(tls), 0);
  /* Trusted through HTTP_CA_FILE (read by aip_http_configure). */
  char ca[] = "/tmp/aiplat-ca-XXXXXX";
  int fd = mkstemp(ca);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, test_cert, strlen(test_cert)),
                   (ssize_t)strlen(test_cert));
  close(fd);
  aiplat_config *cfg;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VLLM_URL", hf_url(tls)), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_CA_FILE", ca), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_CONNECT_TIMEOUT", "15s"), AIPLAT_OK);
  ck_assert_int_eq(aip_http_configure(h, &err, cfg, "VLLM_URL", "LLM_API_KEY",
                                      "LLM_TIMEOUT"),
                   AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(get("/v1/models", &resp), AIPLAT_OK);
  ck_assert_str_eq(resp.body.data, "{\"secure\":true}");
  aip_http_resp_free(&resp);
  ck_assert_uint_eq(hf_request_count(tls), 1);
  unlink(ca);
  hf_stop(tls);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("http");
  TCase *tc = tcase_create("http");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, json_post_headers_and_body);
  tcase_add_test(tc, url_forms);
  tcase_add_test(tc, retried_statuses);
  tcase_add_test(tc, not_retried_statuses);
  tcase_add_test(tc, retries_exhausted);
  tcase_add_test(tc, retry_after_seconds_and_cap);
  tcase_add_test(tc, retry_after_http_date);
  tcase_add_test(tc, connect_refused_is_retried);
  tcase_add_test(tc, connect_timeout_fires);
  tcase_add_test(tc, total_timeout_when_server_never_answers);
  tcase_add_test(tc, pieces_reach_the_sink);
  tcase_add_test(tc, sink_reads_the_type_while_the_call_ends);
  tcase_add_test(tc, stream_idle_timeout);
  tcase_add_test(tc, cancel_from_another_thread);
  tcase_add_test(tc, sink_stop_closes_and_is_not_retried);
  tcase_add_test(tc, cut_mid_body);
  tcase_add_test(tc, response_size_cap);
  tcase_add_test(tc, garbage_and_truncated_json);
  tcase_add_test(tc, keep_alive_reuses_one_connection);
  tcase_add_test(tc, one_client_many_threads);
  tcase_add_test(tc, multipart_bytes_exact);
  tcase_add_test(tc, health_and_fallback);
  tcase_add_test(tc, api_key_and_url_password_never_shown);
  tcase_add_test(tc, tls_verified_by_default);
  suite_add_tcase(s, tc);
  return s;
}
