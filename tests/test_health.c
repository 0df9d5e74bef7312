/* Health server: endpoints, readiness checks, HTTP edge cases, binding,
 * and the /metrics exposition, through libcurl as a real client. */
#include <aiplat/aiplat.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/testutil.h"

/* ---- HTTP client ------------------------------------------------------- */

typedef struct resp {
  long status;
  char *body;
  size_t len;
  char ctype[128];
  char allow[64];
  char cache[64];
  long content_length; /* -1 when absent */
  CURLcode rc;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  resp *r = ud;
  size_t add = sz * n;
  char *b = realloc(r->body, r->len + add + 1);
  if (!b) return 0;
  memcpy(b + r->len, p, add);
  r->body = b;
  r->len += add;
  b[r->len] = '\0';
  return add;
}

static void header_value(const char *line, size_t n, const char *name,
                         char *out, size_t outlen) {
  size_t k = strlen(name);
  if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':') return;
  const char *v = line + k + 1;
  while (*v == ' ') v++;
  size_t m = n - (size_t)(v - line);
  while (m && (v[m - 1] == '\r' || v[m - 1] == '\n')) m--;
  if (m >= outlen) m = outlen - 1;
  memcpy(out, v, m);
  out[m] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  resp *r = ud;
  size_t len = sz * n;
  char cl[32] = "";
  header_value(p, len, "Content-Type", r->ctype, sizeof r->ctype);
  header_value(p, len, "Allow", r->allow, sizeof r->allow);
  header_value(p, len, "Cache-Control", r->cache, sizeof r->cache);
  header_value(p, len, "Content-Length", cl, sizeof cl);
  if (cl[0]) r->content_length = atol(cl);
  return len;
}

/* One request to http://HOST:PORT/PATH; @method "GET", "HEAD", "POST"...;
 * @body sent when not NULL. Returns the curl code; fills @r. */
static CURLcode http_host(const char *host, int port, const char *method,
                          const char *path, const char *body, resp *r) {
  memset(r, 0, sizeof *r);
  r->content_length = -1;
  char url[256];
  snprintf(url, sizeof url, "http://%s:%d%s", host, port, path);
  CURL *c = curl_easy_init();
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  r->rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_cleanup(c);
  return r->rc;
}

static CURLcode http(int port, const char *method, const char *path,
                     const char *body, resp *r) {
  return http_host("127.0.0.1", port, method, path, body, r);
}

static void resp_free(resp *r) {
  free(r->body);
  r->body = NULL;
}

static json_t *parse_json(const resp *r) {
  json_error_t e;
  json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, &e);
  ck_assert_msg(j != NULL, "body is not JSON (%s): %s", e.text,
                r->body ? r->body : "(empty)");
  return j;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- fixture ----------------------------------------------------------- */

static aiplat_health *h;
static int port;
static char msg[512];

static aiplat_health *make_health(const char *bind, const char *port_text,
                                  aiplat_status *st) {
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  if (port_text)
    ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", port_text),
                     AIPLAT_OK);
  if (bind)
    ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_BIND", bind), AIPLAT_OK);
  aiplat_health *out = NULL;
  *st = aiplat_health_create(&out, cfg);
  aiplat_config_destroy(cfg);
  return out;
}

static void setup(void) {
  unsetenv("HEALTH_PORT");
  unsetenv("HEALTH_BIND");
  ck_assert_int_eq(aiplat_init(), AIPLAT_OK);
  aiplat_log_set_level(AIPLAT_LOG_ERROR);
  aiplat_status st;
  h = make_health("127.0.0.1", "0", &st);
  ck_assert_int_eq(st, AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_start(h), AIPLAT_OK);
  port = aiplat_health_port(h);
  ck_assert_int_gt(port, 0);
}

static void teardown(void) {
  aiplat_health_destroy(h);
  h = NULL;
  aiplat_log_set_callback(NULL, NULL);
  aiplat_log_reset_level();
  aiplat_cleanup();
}

/* A check whose result the test sets. */
typedef struct flag_check {
  atomic_bool ok;
  const char *message;
} flag_check;

static bool flag_fn(char *out, size_t outlen, void *ud) {
  flag_check *f = ud;
  bool ok = atomic_load(&f->ok);
  if (f->message) snprintf(out, outlen, "%s", f->message);
  return ok;
}

/* ---- endpoints --------------------------------------------------------- */

START_TEST(health_is_ok) {
  resp r;
  ck_assert_int_eq(http(port, "GET", "/health", NULL, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.ctype, "application/json");
  ck_assert_str_eq(r.cache, "no-store");
  json_t *j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
  json_decref(j);
  resp_free(&r);
}
END_TEST

START_TEST(ready_without_checks_is_ready) {
  resp r;
  ck_assert_int_eq(http(port, "GET", "/ready", NULL, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  json_t *j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ready");
  ck_assert(json_is_object(json_object_get(j, "checks")));
  ck_assert_int_eq(json_object_size(json_object_get(j, "checks")), 0);
  json_decref(j);
  resp_free(&r);
}
END_TEST

START_TEST(ready_follows_a_check) {
  flag_check f = {.message = "disconnected"};
  atomic_store(&f.ok, true);
  ck_assert_int_eq(aiplat_health_add_check(h, "nats", flag_fn, &f), AIPLAT_OK);
  resp r;
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);

  atomic_store(&f.ok, false);
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 503);
  json_t *j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
                   "not ready");
  json_t *nats = json_object_get(json_object_get(j, "checks"), "nats");
  ck_assert(json_is_false(json_object_get(nats, "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(nats, "message")),
                   "disconnected");
  json_decref(j);
  resp_free(&r);

  atomic_store(&f.ok, true);
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
  /* Liveness never followed readiness. */
  atomic_store(&f.ok, false);
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

static bool weird_fn(char *out, size_t outlen, void *ud) {
  (void)ud;
  /* Quotes, a backslash, control bytes, invalid UTF-8, a valid é, and
   * more text than fits: all must arrive as valid JSON. */
  char text[600];
  snprintf(text, sizeof text, "say \"hi\" \\ \n\t\x01 \xff\xfe caf\xc3\xa9 ");
  size_t n = strlen(text);
  memset(text + n, 'x', sizeof text - n - 1);
  text[sizeof text - 1] = '\0';
  snprintf(out, outlen, "%s", text);
  return false;
}

static bool silent_fail_fn(char *out, size_t outlen, void *ud) {
  (void)out, (void)outlen, (void)ud;
  return false;
}

START_TEST(failing_checks_are_named_in_json) {
  flag_check nats = {.message = "disconnected"}, db = {.message = "fine"};
  atomic_store(&nats.ok, false);
  atomic_store(&db.ok, true);
  ck_assert_int_eq(aiplat_health_add_check(h, "nats", flag_fn, &nats),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_add_check(h, "db", flag_fn, &db), AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_add_check(h, "weird.one-2", weird_fn, NULL),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_add_check(h, "silent", silent_fail_fn, NULL),
                   AIPLAT_OK);
  resp r;
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert_str_eq(r.ctype, "application/json");
  json_t *j = parse_json(&r);
  json_t *checks = json_object_get(j, "checks");
  ck_assert_int_eq(json_object_size(checks), 4);
  json_t *c = json_object_get(checks, "nats");
  ck_assert(json_is_false(json_object_get(c, "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(c, "message")),
                   "disconnected");
  c = json_object_get(checks, "db");
  ck_assert(json_is_true(json_object_get(c, "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(c, "message")), "fine");
  c = json_object_get(checks, "silent");
  ck_assert(json_is_false(json_object_get(c, "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(c, "message")),
                   "check failed");
  c = json_object_get(checks, "weird.one-2");
  ck_assert(json_is_false(json_object_get(c, "ok")));
  const char *m = json_string_value(json_object_get(c, "message"));
  ck_assert_ptr_nonnull(m);
  const char *want = "say \"hi\" \\ \n\t\x01 ?? caf\xc3\xa9 xxx";
  ck_assert_msg(strncmp(m, want, strlen(want)) == 0, "message: %s", m);
  ck_assert_uint_eq(strlen(m),
                    AIPLAT_HEALTH_MESSAGE_MAX - 1); /* cut, 2 bytes replaced */
  json_decref(j);
  resp_free(&r);
}
END_TEST

START_TEST(manual_gate) {
  resp r;
  ck_assert_int_eq(aiplat_health_set_ready(h, false, "draining"), AIPLAT_OK);
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 503);
  json_t *j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
                   "not ready");
  ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "draining");
  json_decref(j);
  resp_free(&r);

  ck_assert_int_eq(aiplat_health_set_ready(h, true, NULL), AIPLAT_OK);
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  j = parse_json(&r);
  ck_assert_ptr_null(json_object_get(j, "reason"));
  json_decref(j);
  resp_free(&r);

  ck_assert_int_eq(aiplat_health_set_ready(h, false, NULL), AIPLAT_OK);
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 503);
  j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
                   "not ready");
  json_decref(j);
  resp_free(&r);
  http(port, "GET", "/health", NULL, &r); /* a drain does not fail liveness */
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

START_TEST(liveness_latch) {
  resp r;
  ck_assert_int_eq(aiplat_health_set_live(h, false, "nats closed for good"),
                   AIPLAT_OK);
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 503);
  json_t *j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "failed");
  ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
                   "nats closed for good");
  json_decref(j);
  resp_free(&r);
  ck_assert_int_eq(aiplat_health_set_live(h, true, NULL), AIPLAT_OK);
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

START_TEST(unknown_paths_are_404) {
  static const char *const paths[] = {"/",          "/nope",
                                      "/health/",   "/healthz",
                                      "/metrics/x", "/ready?x=1/../metrics",
                                      "/HEALTH"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    resp r;
    ck_assert_int_eq(http(port, "GET", paths[i], NULL, &r), CURLE_OK);
    /* A query string is not part of the path: /ready?... is /ready. */
    long want = strncmp(paths[i], "/ready?", 7) == 0 ? 200 : 404;
    ck_assert_msg(r.status == want, "%s: %ld", paths[i], r.status);
    if (want == 404) {
      json_t *j = parse_json(&r);
      ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                       "not found");
      json_decref(j);
    }
    resp_free(&r);
  }
}
END_TEST

START_TEST(other_methods_are_405_with_allow) {
  static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH",
                                        "OPTIONS"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    resp r;
    const char *body = i % 2 ? "{\"x\":1}" : NULL;
    ck_assert_int_eq(http(port, methods[i], "/health", body, &r), CURLE_OK);
    ck_assert_msg(r.status == 405, "%s: %ld", methods[i], r.status);
    ck_assert_str_eq(r.allow, "GET, HEAD");
    resp_free(&r);
  }
  resp r;
  http(port, "POST", "/nowhere", "data", &r);
  ck_assert_int_eq(r.status, 405);
  resp_free(&r);
}
END_TEST

START_TEST(head_has_headers_and_no_body) {
  resp get, head;
  http(port, "GET", "/health", NULL, &get);
  ck_assert_int_eq(http(port, "HEAD", "/health", NULL, &head), CURLE_OK);
  ck_assert_int_eq(head.status, 200);
  ck_assert_uint_eq(head.len, 0);
  ck_assert_int_eq(head.content_length, (long)get.len);
  ck_assert_str_eq(head.ctype, "application/json");
  resp_free(&get);
  resp_free(&head);
  http(port, "HEAD", "/metrics", NULL, &head);
  ck_assert_int_eq(head.status, 200);
  ck_assert_uint_eq(head.len, 0);
  ck_assert_str_eq(head.ctype, "text/plain; version=0.0.4; charset=utf-8");
  resp_free(&head);
  ck_assert_int_eq(aiplat_health_set_ready(h, false, "x"), AIPLAT_OK);
  http(port, "HEAD", "/ready", NULL, &head);
  ck_assert_int_eq(head.status, 503);
  ck_assert_uint_eq(head.len, 0);
  resp_free(&head);
}
END_TEST

START_TEST(request_body_is_ignored) {
  resp r;
  ck_assert_int_eq(http(port, "GET", "/health", "ignored body", &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  json_t *j = parse_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
  json_decref(j);
  resp_free(&r);
  http(port, "GET", "/health", NULL, &r); /* and the server goes on */
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

/* ---- raw sockets: garbage, slow clients -------------------------------- */

static int connect_raw(int p) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* Send @req, read until the peer closes or 5 s pass; returns bytes read. */
static size_t raw_exchange(int p, const char *req, size_t len, char *out,
                           size_t outlen) {
  int fd = connect_raw(p);
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += (size_t)n;
  }
  shutdown(fd, SHUT_WR);
  size_t got = 0;
  ssize_t n;
  while (got + 1 < outlen && (n = recv(fd, out + got, outlen - 1 - got, 0)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(fd);
  return got;
}

START_TEST(garbage_requests_do_not_hurt) {
  char out[4096];
  static const char garbage[] =
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
      "GARBAGE \r\n\r\n";
  raw_exchange(port, garbage, sizeof garbage - 1, out, sizeof out);
  ck_assert_msg(out[0] == '\0' || strncmp(out, "HTTP/1.1 400", 12) == 0, "%s",
                out);
  static const char bad_version[] = "GET /health HTTP/9.9\r\nHost: x\r\n\r\n";
  raw_exchange(port, bad_version, sizeof bad_version - 1, out, sizeof out);
  ck_assert_msg(strncmp(out, "HTTP/1.1 505", 12) == 0 ||
                    strncmp(out, "HTTP/1.1 400", 12) == 0,
                "%s", out);
  /* A header larger than the connection's memory. */
  size_t big = 100 * 1024;
  char *req = malloc(big + 64);
  ck_assert_ptr_nonnull(req);
  int k = snprintf(req, 64, "GET /health HTTP/1.1\r\nX-Big: ");
  memset(req + k, 'a', big);
  memcpy(req + k + big, "\r\n\r\n", 4);
  raw_exchange(port, req, (size_t)k + big + 4, out, sizeof out);
  free(req);
  ck_assert_msg(out[0] == '\0' || strncmp(out, "HTTP/1.1 431", 12) == 0 ||
                    strncmp(out, "HTTP/1.1 413", 12) == 0 ||
                    strncmp(out, "HTTP/1.1 400", 12) == 0,
                "%.40s", out);
  /* HTTP/1.0 without a Host header still works. */
  static const char old[] = "GET /health HTTP/1.0\r\n\r\n";
  raw_exchange(port, old, sizeof old - 1, out, sizeof out);
  ck_assert_msg(strncmp(out, "HTTP/1.0 200", 12) == 0 ||
                    strncmp(out, "HTTP/1.1 200", 12) == 0,
                "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "{\"status\":\"ok\"}"));
  resp r;
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

START_TEST(slow_client_does_not_block_others) {
  int fd = connect_raw(port);
  ck_assert_int_eq(send(fd, "GET /hea", 8, MSG_NOSIGNAL), 8);
  resp r;
  ck_assert_int_eq(http(port, "GET", "/health", NULL, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
  ck_assert_int_eq(
      send(fd, "lth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 44,
           MSG_NOSIGNAL),
      44);
  char out[1024];
  size_t got = 0;
  ssize_t n;
  while ((n = recv(fd, out + got, sizeof out - 1 - got, 0)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(fd);
  ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
}
END_TEST

/* ---- binding ----------------------------------------------------------- */

START_TEST(port_in_use_is_an_io_error_naming_the_address) {
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  aiplat_status st;
  aiplat_health *h2 = make_health("127.0.0.1", p, &st);
  ck_assert_int_eq(st, AIPLAT_OK);
  aiplat_error_clear();
  ck_assert_int_eq(aiplat_health_start(h2), AIPLAT_ERR_IO);
  ck_assert_int_eq(aiplat_health_last_error(h2, msg, sizeof msg),
                   AIPLAT_ERR_IO);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", port);
  ck_assert_msg(strstr(msg, want) != NULL, "%s", msg);
  ck_assert_msg(strstr(msg, "in use") != NULL, "%s", msg);
  char tl[512];
  ck_assert_int_eq(aiplat_error_last(tl, sizeof tl), AIPLAT_ERR_IO);
  ck_assert_str_eq(tl, msg);
  ck_assert_int_eq(aiplat_health_port(h2), 0);
  aiplat_health_destroy(h2);
  resp r; /* the first server is untouched */
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

START_TEST(port_zero_stop_and_restart) {
  ck_assert_int_eq(aiplat_health_start(h), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_health_stop(h), AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_port(h), 0);
  ck_assert_int_eq(aiplat_health_stop(h), AIPLAT_OK);
  resp r;
  ck_assert_int_eq(http(port, "GET", "/health", NULL, &r),
                   CURLE_COULDNT_CONNECT);
  resp_free(&r);
  ck_assert_int_eq(aiplat_health_start(h), AIPLAT_OK);
  port = aiplat_health_port(h);
  ck_assert_int_gt(port, 0);
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
  ck_assert_int_eq(aiplat_health_port(NULL), 0);
}
END_TEST

/* A non-loopback IPv4 address of this machine, if it has one. */
static bool other_ipv4(char *out, size_t outlen) {
  struct ifaddrs *ifs = NULL, *i;
  bool found = false;
  if (getifaddrs(&ifs) != 0) return false;
  for (i = ifs; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
    if ((ntohl(a.s_addr) >> 24) == 127) continue;
    found = inet_ntop(AF_INET, &a, out, (socklen_t)outlen) != NULL;
  }
  freeifaddrs(ifs);
  return found;
}

START_TEST(bind_to_loopback_only) {
  CURL *c = curl_easy_init();
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  char *ip = NULL;
  curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip);
  ck_assert_str_eq(ip, "127.0.0.1");
  curl_easy_cleanup(c);
  char other[INET_ADDRSTRLEN];
  if (other_ipv4(other, sizeof other)) {
    resp r;
    CURLcode rc = http_host(other, port, "GET", "/health", NULL, &r);
    ck_assert_msg(rc != CURLE_OK, "reachable on %s although bound to 127.0.0.1",
                  other);
    resp_free(&r);
  }
}
END_TEST

static bool ipv6_loopback_works(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                           .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

START_TEST(bind_ipv6) {
  if (!ipv6_loopback_works()) {
    fprintf(stderr,
            "bind_ipv6: no IPv6 loopback here; only the parsing is tested\n");
    aiplat_status st;
    aiplat_health *h6 = make_health("[::1]", "0", &st);
    ck_assert_int_eq(st, AIPLAT_OK);
    aiplat_health_destroy(h6);
    return;
  }
  static const char *const binds[] = {"::1", "[::1]", "::"};
  for (size_t i = 0; i < 3; i++) {
    aiplat_status st;
    aiplat_health *h6 = make_health(binds[i], "0", &st);
    ck_assert_int_eq(st, AIPLAT_OK);
    ck_assert_int_eq(aiplat_health_start(h6), AIPLAT_OK);
    int p = aiplat_health_port(h6);
    resp r;
    ck_assert_int_eq(http_host("[::1]", p, "GET", "/health", NULL, &r),
                     CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    CURLcode rc = http_host("127.0.0.1", p, "GET", "/health", NULL, &r);
    resp_free(&r);
    if (i == 2) /* "::" takes IPv4 clients too */
      ck_assert_int_eq(rc, CURLE_OK);
    else
      ck_assert_int_ne(rc, CURLE_OK);
    aiplat_health_destroy(h6);
  }
}
END_TEST

START_TEST(bad_settings_are_config_errors) {
  static const struct {
    const char *bind, *port, *needle;
  } cases[] = {{"localhost", "0", "HEALTH_BIND"},
               {"", "0", "HEALTH_BIND"},
               {"1.2.3", "0", "HEALTH_BIND"},
               {"127.1", "0", "HEALTH_BIND"},
               {"0.0.0.0 ", "0", "HEALTH_BIND"},
               {"::1::2", "0", "HEALTH_BIND"},
               {"[127.0.0.1", "0", "HEALTH_BIND"},
               {"::1%nosuchif0", "0", "HEALTH_BIND"},
               {"127.0.0.1", "70000", "HEALTH_PORT"},
               {"127.0.0.1", "-1", "HEALTH_PORT"},
               {"127.0.0.1", "80x", "HEALTH_PORT"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aiplat_status st;
    aiplat_health *bad = make_health(cases[i].bind, cases[i].port, &st);
    ck_assert_ptr_null(bad);
    ck_assert_msg(st == AIPLAT_ERR_CONFIG, "case %zu: %d", i, st);
    aiplat_error_last(msg, sizeof msg);
    ck_assert_msg(strstr(msg, cases[i].needle) != NULL, "case %zu: %s", i, msg);
  }
  /* From the environment when no config handle is given. */
  TH_SETENV("HEALTH_BIND", "not-an-address");
  aiplat_health *bad = NULL;
  ck_assert_int_eq(aiplat_health_create(&bad, NULL), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_null(bad);
  TH_UNSETENV("HEALTH_BIND");
  ck_assert_int_eq(aiplat_health_create(NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(defaults_from_environment) {
  aiplat_health *d = NULL;
  ck_assert_int_eq(aiplat_health_create(&d, NULL),
                   AIPLAT_OK);                /* 0.0.0.0:8080 */
  ck_assert_int_eq(aiplat_health_port(d), 0); /* not started */
  ck_assert_ptr_nonnull(aiplat_health_metrics(d));
  aiplat_health_destroy(d);
  aiplat_health_destroy(NULL);
  TH_SETENV("HEALTH_PORT", "0");
  TH_SETENV("HEALTH_BIND", "127.0.0.1");
  ck_assert_int_eq(aiplat_health_create(&d, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_start(d), AIPLAT_OK);
  ck_assert_int_gt(aiplat_health_port(d), 0);
  aiplat_health_destroy(d);
}
END_TEST

/* ---- checks ------------------------------------------------------------ */

static bool ok_fn(char *out, size_t outlen, void *ud) {
  (void)out, (void)outlen, (void)ud;
  return true;
}

START_TEST(check_registration_errors) {
  char long_name[80];
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  const char *bad[] = {NULL, "", "a b", "caf\xc3\xa9", "x/y", "q\"", long_name};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(aiplat_health_add_check(h, bad[i], ok_fn, NULL),
                     AIPLAT_ERR_INVALID_ARGUMENT);
  long_name[64] = '\0';
  ck_assert_int_eq(aiplat_health_add_check(h, long_name, ok_fn, NULL),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_add_check(h, "x", NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_health_add_check(h, "x", ok_fn, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_add_check(h, "x", ok_fn, NULL),
                   AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(
      aiplat_health_add_cached_check(h, "x", ok_fn, NULL, 1000, 100),
      AIPLAT_ERR_EXISTS);
  aiplat_health_last_error(h, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "x"));
  ck_assert_int_eq(aiplat_health_add_cached_check(h, "c", ok_fn, NULL, 5, 100),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_health_add_cached_check(h, "c", ok_fn, NULL, 1000, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_health_add_check(NULL, "n", ok_fn, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  int added = 2;
  aiplat_status st = AIPLAT_OK;
  for (int i = 0; i < 100 && st == AIPLAT_OK; i++) {
    char name[16];
    snprintf(name, sizeof name, "n%d", i);
    st = aiplat_health_add_check(h, name, ok_fn, NULL);
    if (st == AIPLAT_OK) added++;
  }
  ck_assert_int_eq(st, AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(added, 64);
  resp r;
  http(port, "GET", "/ready", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  json_t *j = parse_json(&r);
  ck_assert_int_eq(json_object_size(json_object_get(j, "checks")), 64);
  json_decref(j);
  resp_free(&r);
}
END_TEST

/* A cached check that the test can make hang. */
typedef struct hang_check {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool hang;
  atomic_int entered;
  atomic_int runs;
} hang_check;

static bool hang_fn(char *out, size_t outlen, void *ud) {
  hang_check *k = ud;
  atomic_fetch_add(&k->entered, 1);
  pthread_mutex_lock(&k->mu);
  while (k->hang) pthread_cond_wait(&k->cv, &k->mu);
  pthread_mutex_unlock(&k->mu);
  atomic_fetch_add(&k->runs, 1);
  snprintf(out, outlen, "probed");
  return true;
}

static void hang_set(hang_check *k, bool hang) {
  pthread_mutex_lock(&k->mu);
  k->hang = hang;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* Poll /ready until it answers @want (20 s at most); returns its body. */
static json_t *wait_ready(long want) {
  for (int i = 0; i < 400; i++) {
    resp r;
    ck_assert_int_eq(http(port, "GET", "/ready", NULL, &r), CURLE_OK);
    if (r.status == want) {
      json_t *j = parse_json(&r);
      resp_free(&r);
      return j;
    }
    resp_free(&r);
    sleep_ms(50);
  }
  ck_abort_msg("/ready never answered %ld", want);
  return NULL;
}

START_TEST(cached_check_never_blocks_the_server) {
  hang_check k = {.hang = true};
  pthread_mutex_init(&k.mu, NULL);
  pthread_cond_init(&k.cv, NULL);
  ck_assert_int_eq(
      aiplat_health_add_cached_check(h, "probe", hang_fn, &k, 20, 200),
      AIPLAT_OK);
  /* Hanging from the start: first "not checked yet", then out of budget. */
  json_t *j = wait_ready(503);
  const char *m = json_string_value(json_object_get(
      json_object_get(json_object_get(j, "checks"), "probe"), "message"));
  ck_assert_msg(
      strcmp(m, "not checked yet") == 0 || strstr(m, "no answer within 200 ms"),
      "%s", m);
  json_decref(j);
  for (int i = 0; i < 400; i++) {
    resp r;
    http(port, "GET", "/ready", NULL, &r);
    bool late = r.body && strstr(r.body, "no answer within 200 ms");
    resp_free(&r);
    if (late) break;
    ck_assert_int_lt(i, 399);
    sleep_ms(50);
  }
  resp r; /* liveness is served meanwhile */
  http(port, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);

  hang_set(&k, false);
  j = wait_ready(200);
  json_t *probe = json_object_get(json_object_get(j, "checks"), "probe");
  ck_assert(json_is_true(json_object_get(probe, "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(probe, "message")),
                   "probed");
  json_decref(j);
  /* It keeps running on its interval. */
  int runs = atomic_load(&k.runs);
  for (int i = 0; i < 400 && atomic_load(&k.runs) < runs + 3; i++) sleep_ms(10);
  ck_assert_int_ge(atomic_load(&k.runs), runs + 3);

  /* Hang again, then destroy waits for the release from another thread. */
  hang_set(&k, true);
  j = wait_ready(503);
  json_decref(j);
  hang_set(&k, false);
  aiplat_health_destroy(h);
  h = NULL;
  pthread_cond_destroy(&k.cv);
  pthread_mutex_destroy(&k.mu);
}
END_TEST

/* Slow, but within the 250 ms that /ready waits for its inline checks. */
static bool slow_fn(char *out, size_t outlen, void *ud) {
  (void)out, (void)outlen, (void)ud;
  sleep_ms(120);
  return true;
}

static atomic_int slow_warnings;

static void capture_log(aiplat_log_level level, const char *record, size_t len,
                        void *ud) {
  (void)len, (void)ud;
  if (level == AIPLAT_LOG_WARNING && strstr(record, "took over 100 ms") &&
      strstr(record, "\"check\":\"slowpoke\""))
    atomic_fetch_add(&slow_warnings, 1);
}

START_TEST(slow_inline_check_is_reported_once) {
  aiplat_log_set_level(AIPLAT_LOG_WARNING);
  aiplat_log_set_callback(capture_log, NULL);
  atomic_store(&slow_warnings, 0);
  ck_assert_int_eq(aiplat_health_add_check(h, "slowpoke", slow_fn, NULL),
                   AIPLAT_OK);
  for (int i = 0; i < 2; i++) {
    resp r;
    http(port, "GET", "/ready", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
  }
  ck_assert_int_eq(atomic_load(&slow_warnings), 1);
}
END_TEST

/* ---- crowds: many idle or trickling connections ------------------------ */

/* Valgrind's preload is how a test knows it runs under valgrind-wrap.sh. */
static bool under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload") != NULL;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How fast a probe must be answered: the kubelet's default probe timeout,
 * 1 s. Valgrind runs one thread at a time some 50 times slower, so there
 * the bound is 5 s (and the crowds are smaller, see below). */
static int64_t probe_bound_ms(void) {
  return under_valgrind() ? 5000 : 1000;
}

/* GET @path on a connection of its own, as the kubelet probes; returns the
 * status (0 when none came), the wall time in @ms and, when @body is not
 * NULL, the start of the body. */
static long probe(int p, const char *path, int64_t *ms, char *body,
                  size_t bodylen) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", p, path);
  CURL *c = curl_easy_init();
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(3 * probe_bound_ms()));
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  resp r = {0};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  int64_t t0 = mono_ms();
  CURLcode rc = curl_easy_perform(c);
  *ms = mono_ms() - t0;
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (body) snprintf(body, bodylen, "%s", r.body ? r.body : "");
  free(r.body);
  return status;
}

/* Make room for @n descriptors in this process: the server's side of each
 * connection counts too. */
static void need_fds(rlim_t n) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur >= n) return;
  rl.rlim_cur = rl.rlim_max < n ? rl.rlim_max : n;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  ck_assert_msg(rl.rlim_cur >= n,
                "this test needs %lu descriptors; the hard limit is %lu",
                (unsigned long)n, (unsigned long)rl.rlim_max);
}

/* A connection to 127.0.0.1:@p. Non-blocking: until the server accepts
 * it, the kernel's backlog holds it and connect() must not wait. */
static int open_conn(int p) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s",
                strerror(errno));
  return fd;
}

/* True when the server closed @fd (or reset it). */
static bool peer_closed(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Slowloris: a request header that never ends, a byte every 200 ms. */
typedef struct trickle {
  int *fds;
  int n;
  atomic_bool stop;
  pthread_t thread;
} trickle;

static void *trickle_main(void *arg) {
  trickle *t = arg;
  static const char start[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  for (int tick = 0; !atomic_load(&t->stop); tick++) {
    for (int i = 0; i < t->n; i++) {
      if (tick == 0)
        (void)send(t->fds[i], start, sizeof start - 1, MSG_NOSIGNAL);
      else
        (void)send(t->fds[i], "a", 1, MSG_NOSIGNAL);
    }
    sleep_ms(200);
  }
  return NULL;
}

START_TEST(idle_and_slow_crowds_do_not_starve_probes) {
  /* 1,000 idle connections, as a port scan or a leaking client would hold,
   * plus trickling ones. Valgrind gets 200 and 20: it accepts about 50
   * times slower, on one thread at a time. */
  bool vg = under_valgrind();
  int nidle = vg ? 200 : 1000, nslow = vg ? 20 : 100;
  need_fds((rlim_t)(2 * (nidle + nslow) + 256));
  flag_check f = {.ok = true, .message = "fine"};
  ck_assert_int_eq(aiplat_health_add_check(h, "flag", flag_fn, &f), AIPLAT_OK);
  int *idle = calloc((size_t)nidle, sizeof *idle);
  trickle t = {.fds = calloc((size_t)nslow, sizeof(int)), .n = nslow};
  ck_assert(idle && t.fds);
  for (int i = 0; i < nidle; i++) idle[i] = open_conn(port);
  for (int i = 0; i < nslow; i++) t.fds[i] = open_conn(port);
  atomic_init(&t.stop, false);
  ck_assert_int_eq(pthread_create(&t.thread, NULL, trickle_main, &t), 0);

  /* A few rounds of probes while the crowd stays and trickles. */
  int64_t bound = probe_bound_ms();
  for (int round = 0; round < 3; round++) {
    static const char *const paths[] = {"/health", "/ready"};
    for (size_t k = 0; k < 2; k++) {
      int64_t ms = 0;
      long st = probe(port, paths[k], &ms, NULL, 0);
      ck_assert_msg(st == 200 && ms < bound,
                    "round %d: GET %s: status %ld after %lld ms (bound %lld) "
                    "with %d idle and %d slow connections open",
                    round, paths[k], st, (long long)ms, (long long)bound, nidle,
                    nslow);
    }
    sleep_ms(300);
  }
  /* The crowd was held, not dropped to make room: it is within the cap. */
  for (int i = 0; i < nidle; i++)
    ck_assert_msg(!peer_closed(idle[i]), "idle connection %d was closed", i);

  atomic_store(&t.stop, true);
  pthread_join(t.thread, NULL);
  for (int i = 0; i < nidle; i++) close(idle[i]);
  for (int i = 0; i < nslow; i++) close(t.fds[i]);
  free(idle);
  free(t.fds);
}
END_TEST

/* How many sockets this process can still open, up to @want. */
static int sockets_left(int want) {
  int fds[256], n = 0;
  while (n < want && n < 256 && (fds[n] = socket(AF_INET, SOCK_STREAM, 0)) >= 0)
    n++;
  for (int i = 0; i < n; i++) close(fds[i]);
  return n;
}

/* The port's cap comes from the descriptor limit, which only a process of
 * its own can lower for good: a child with a limit of 256 serves, so its
 * port holds 64 connections. The child reports its port on @up; at each
 * byte on @down it reports how many of 100 more sockets it could open; it
 * serves until @down is closed. Only libc and the library there, no Check. */
static void serve_in_child(int up, int down) {
  struct rlimit rl = {256, 256};
  aiplat_config *cfg = NULL;
  aiplat_health *c = NULL;
  int code = 1;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0 &&
      aiplat_config_create(&cfg) == AIPLAT_OK &&
      aiplat_config_set(cfg, "HEALTH_PORT", "0") == AIPLAT_OK &&
      aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1") == AIPLAT_OK &&
      aiplat_health_create(&c, cfg) == AIPLAT_OK &&
      aiplat_health_start(c) == AIPLAT_OK) {
    int p = aiplat_health_port(c);
    char b;
    bool ok = write(up, &p, sizeof p) == (ssize_t)sizeof p;
    while (ok && read(down, &b, 1) == 1) {
      int n = sockets_left(100);
      ok = write(up, &n, sizeof n) == (ssize_t)sizeof n;
    }
    code = ok ? 0 : 1;
  }
  aiplat_health_destroy(c);
  aiplat_config_destroy(cfg);
  _exit(code);
}

/* Wait up to 5 s for the server to close @fd; true when it did. */
static bool closed_within_5s(int fd) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  return poll(&pfd, 1, 5000) == 1 && peer_closed(fd);
}

START_TEST(full_port_drops_the_longest_waiting) {
  if (under_valgrind()) {
    /* valgrind refuses a change of the hard descriptor limit, so the
     * child cannot have a small cap; the plain and ASan runs cover it. */
    return;
  }
  aiplat_health_destroy(h); /* no server threads across fork() */
  h = NULL;
  enum { N = 200 }; /* three times the child's cap */
  need_fds(N + 64);
  int up[2], down[2];
  ck_assert_int_eq(pipe(up), 0);
  ck_assert_int_eq(pipe(down), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    serve_in_child(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  int p = 0;
  ck_assert_int_eq(read(up[0], &p, sizeof p), (ssize_t)sizeof p);

  int fds[N];
  for (int i = 0; i < N; i++) fds[i] = open_conn(p);
  int64_t ms = 0, bound = probe_bound_ms();
  long st = probe(p, "/health", &ms, NULL, 0);
  ck_assert_msg(st == 200 && ms < bound,
                "GET /health: status %ld after %lld ms with the port full", st,
                (long long)ms);
  /* The room was made by closing the connection that waited longest, and
   * the newest one waits on. */
  ck_assert(closed_within_5s(fds[0]));
  ck_assert(!peer_closed(fds[N - 1]));
  /* The crowd took no more than the port's share of the descriptors: the
   * program can still open its own (a NATS reconnection, say). */
  int left = 0;
  ck_assert_int_eq(write(down[1], "?", 1), 1);
  ck_assert_int_eq(read(up[0], &left, sizeof left), (ssize_t)sizeof left);
  ck_assert_int_eq(left, 100);

  for (int i = 0; i < N; i++) close(fds[i]);
  close(up[0]);
  close(down[1]);
  int status = -1;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the child's server failed (status %d)", status);
}
END_TEST

START_TEST(start_raises_a_low_descriptor_limit) {
  struct rlimit was, now;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
  ck_assert_msg(was.rlim_max > 512, "the hard limit %lu leaves no room",
                (unsigned long)was.rlim_max);
  struct rlimit low = {256, was.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  ck_assert_int_eq(aiplat_health_stop(h), AIPLAT_OK);
  ck_assert_int_eq(aiplat_health_start(h), AIPLAT_OK);
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
  /* Up to the hard limit, as Go does (or enough, when it is unlimited). */
  ck_assert_msg(now.rlim_cur == was.rlim_max ||
                    (was.rlim_max == RLIM_INFINITY && now.rlim_cur >= 8192),
                "soft limit %lu, hard %lu", (unsigned long)now.rlim_cur,
                (unsigned long)was.rlim_max);
  resp r;
  ck_assert_int_eq(http(aiplat_health_port(h), "GET", "/health", NULL, &r),
                   CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  resp_free(&r);
}
END_TEST

/* A /ready request, made on a thread of its own. */
typedef struct ready_call {
  int port;
  long status;
  int64_t ms;
  char body[512];
} ready_call;

static void *ready_call_main(void *arg) {
  ready_call *c = arg;
  c->status = probe(c->port, "/ready", &c->ms, c->body, sizeof c->body);
  return NULL;
}

START_TEST(stuck_inline_check_does_not_stall_the_server) {
  /* An inline check that blocks, as one reading nats.c's connection
   * status does while nats.c connects with the connection's lock held. */
  hang_check k = {.hang = true};
  pthread_mutex_init(&k.mu, NULL);
  pthread_cond_init(&k.cv, NULL);
  ck_assert_int_eq(aiplat_health_add_check(h, "stuck", hang_fn, &k), AIPLAT_OK);
  ready_call first = {.port = port};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, ready_call_main, &first), 0);
  for (int i = 0; i < 1000 && atomic_load(&k.entered) == 0; i++) sleep_ms(5);
  ck_assert_int_eq(atomic_load(&k.entered), 1);

  /* Liveness is answered while the check hangs, and readiness too: not
   * ready, naming the check. */
  int64_t ms = 0, bound = probe_bound_ms();
  long st = probe(port, "/health", &ms, NULL, 0);
  ck_assert_msg(st == 200 && ms < bound, "GET /health: %ld after %lld ms", st,
                (long long)ms);
  pthread_join(t, NULL);
  ck_assert_msg(first.status == 503 && first.ms < bound,
                "GET /ready: %ld after %lld ms", first.status,
                (long long)first.ms);
  static const char stuck[] =
      "\"stuck\":{\"ok\":false,\"message\":\"no answer within 250 ms";
  ck_assert_msg(strstr(first.body, stuck), "%s", first.body);
  /* The next /ready does not wait for the stuck check again. */
  char body[512];
  st = probe(port, "/ready", &ms, body, sizeof body);
  ck_assert_msg(st == 503 && ms < bound && strstr(body, stuck),
                "GET /ready: %ld after %lld ms: %s", st, (long long)ms, body);
  ck_assert_int_eq(atomic_load(&k.entered), 1);

  /* Released, it counts again. */
  hang_set(&k, false);
  json_t *j = wait_ready(200);
  json_decref(j);
  aiplat_health_destroy(h); /* before the check's state goes */
  h = NULL;
  pthread_cond_destroy(&k.cv);
  pthread_mutex_destroy(&k.mu);
}
END_TEST

/* ---- /metrics exposition checker --------------------------------------- */

typedef struct expo_state {
  char family[256];
  char type[16];
  char help_for[256];
  char seen_types[64][256];
  int nseen;
  /* current histogram series */
  char hseries[2048];
  double last_le, last_cum, inf_count;
  bool in_hist, have_inf, have_sum;
} expo_state;

static bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':' || (!first && c >= '0' && c <= '9');
}

static bool parse_value(const char *s, double *v) {
  if (strcmp(s, "+Inf") == 0) {
    *v = INFINITY;
    return true;
  }
  if (strcmp(s, "-Inf") == 0) {
    *v = -INFINITY;
    return true;
  }
  if (strcmp(s, "NaN") == 0) {
    *v = NAN;
    return true;
  }
  char *end;
  *v = strtod(s, &end);
  return end != s && *end == '\0';
}

/* Check one exposition; returns NULL or a description of the first fault.
 * @err is a caller buffer. */
static const char *check_exposition(const char *text, char *err,
                                    size_t errlen) {
  expo_state *st = calloc(1, sizeof *st);
  const char *line = text;
  int lineno = 0;
#define FAIL(...)                                         \
  do {                                                    \
    int k_ = snprintf(err, errlen, "line %d: ", lineno);  \
    snprintf(err + k_, errlen - (size_t)k_, __VA_ARGS__); \
    free(st);                                             \
    return err;                                           \
  } while (0)
  if (!*text) FAIL("empty exposition");
  while (*line) {
    lineno++;
    const char *nl = strchr(line, '\n');
    if (!nl) FAIL("last line has no newline");
    size_t n = (size_t)(nl - line);
    char buf[4096];
    if (n >= sizeof buf) FAIL("line too long");
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl + 1;
    if (n == 0) FAIL("empty line");
    if (strncmp(buf, "# HELP ", 7) == 0) {
      char *name = buf + 7, *sp = strchr(name, ' ');
      if (sp) *sp = '\0';
      for (size_t i = 0; name[i]; i++)
        if (!is_name_char(name[i], i == 0)) FAIL("bad HELP name %.64s", name);
      if (sp) { /* only \\ and \n escapes in help text */
        for (char *p = sp + 1; *p; p++) {
          if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
            FAIL("bad escape in HELP");
          if (*p == '\\') p++;
        }
      }
      snprintf(st->help_for, sizeof st->help_for, "%.200s", name);
      continue;
    }
    if (strncmp(buf, "# TYPE ", 7) == 0) {
      char name[256], type[32];
      if (sscanf(buf + 7, "%255s %31s", name, type) != 2) FAIL("bad TYPE line");
      if (strcmp(name, st->help_for) != 0)
        FAIL("TYPE %s without HELP before it", name);
      if (strcmp(type, "counter") && strcmp(type, "gauge") &&
          strcmp(type, "histogram"))
        FAIL("unknown type %s", type);
      for (int i = 0; i < st->nseen; i++)
        if (strcmp(st->seen_types[i], name) == 0) FAIL("TYPE %s twice", name);
      if (st->nseen < 64)
        snprintf(st->seen_types[st->nseen++], 256, "%s", name);
      if (st->in_hist && !(st->have_inf && st->have_sum))
        FAIL("unfinished histogram");
      st->in_hist = false;
      snprintf(st->family, sizeof st->family, "%s", name);
      snprintf(st->type, sizeof st->type, "%.15s", type);
      continue;
    }
    if (buf[0] == '#') FAIL("unexpected comment");
    /* A sample: name, optional labels, space, value. */
    char *p = buf;
    char name[256];
    size_t k = 0;
    while (is_name_char(*p, k == 0) && k < sizeof name - 1) name[k++] = *p++;
    name[k] = '\0';
    if (k == 0) FAIL("no metric name");
    char labels[2048] = "";
    double le = NAN;
    bool has_le = false;
    if (*p == '{') {
      p++;
      size_t lk = 0;
      while (*p != '}') {
        char lname[128];
        size_t j = 0;
        while (is_name_char(*p, j == 0) && *p != ':' && j < sizeof lname - 1)
          lname[j++] = *p++;
        lname[j] = '\0';
        if (j == 0 || *p != '=' || p[1] != '"') FAIL("bad label in %s", name);
        p += 2;
        char value[1100];
        size_t vk = 0;
        while (*p != '"') {
          if (!*p) FAIL("unterminated label value");
          char c = *p++;
          if (c == '\\') {
            c = *p++;
            if (c == 'n')
              c = '\n';
            else if (c != '\\' && c != '"')
              FAIL("bad escape in label value");
          }
          if (vk < sizeof value - 1) value[vk++] = c;
        }
        value[vk] = '\0';
        p++;
        if (strcmp(lname, "le") == 0) {
          if (!parse_value(value, &le)) FAIL("bad le %.32s", value);
          has_le = true;
        } else {
          lk += (size_t)snprintf(labels + lk, sizeof labels - lk,
                                 "%.100s=%.300s;", lname, value);
          if (lk >= sizeof labels) FAIL("too many labels");
        }
        if (*p == ',')
          p++;
        else if (*p != '}')
          FAIL("bad label separator");
      }
      p++;
    }
    if (*p != ' ') FAIL("no space before the value");
    double v;
    if (!parse_value(p + 1, &v)) FAIL("bad value \"%s\"", p + 1);
    if (strcmp(st->type, "histogram") != 0) {
      if (strcmp(name, st->family) != 0)
        FAIL("sample %s under family %s", name, st->family);
      if (strcmp(st->type, "counter") == 0 && !(v >= 0))
        FAIL("counter %s < 0", name);
      continue;
    }
    size_t fl = strlen(st->family);
    if (strncmp(name, st->family, fl) != 0)
      FAIL("sample %s under %s", name, st->family);
    const char *suffix = name + fl;
    if (strcmp(suffix, "_bucket") == 0) {
      if (!has_le) FAIL("bucket without le");
      if (!st->in_hist || strcmp(labels, st->hseries) != 0) {
        if (st->in_hist && !(st->have_inf && st->have_sum))
          FAIL("unfinished histogram");
        st->in_hist = true;
        snprintf(st->hseries, sizeof st->hseries, "%s", labels);
        st->last_le = -INFINITY;
        st->last_cum = 0;
        st->have_inf = st->have_sum = false;
      }
      if (st->have_inf) FAIL("bucket after +Inf");
      if (!(le > st->last_le)) FAIL("le not increasing");
      if (v < st->last_cum) FAIL("bucket counts decrease");
      st->last_le = le;
      st->last_cum = v;
      if (isinf(le)) {
        st->have_inf = true;
        st->inf_count = v;
      }
    } else if (strcmp(suffix, "_sum") == 0) {
      if (!st->in_hist || !st->have_inf || strcmp(labels, st->hseries) != 0)
        FAIL("_sum before its +Inf bucket");
      st->have_sum = true;
    } else if (strcmp(suffix, "_count") == 0) {
      if (!st->have_sum || strcmp(labels, st->hseries) != 0)
        FAIL("_count before _sum");
      if (v != st->inf_count)
        FAIL("_count %g != +Inf bucket %g", v, st->inf_count);
      st->in_hist = false;
    } else {
      FAIL("sample %s in histogram %s", name, st->family);
    }
  }
  if (st->in_hist) FAIL("unfinished histogram at the end");
  free(st);
  return NULL;
#undef FAIL
}

/* The value of the line that starts with @prefix followed by a space. */
static bool sample_value(const char *text, const char *prefix, double *v) {
  size_t n = strlen(prefix);
  for (const char *l = text; l && *l;
       l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    if (strncmp(l, prefix, n) == 0 && l[n] == ' ') {
      char tmp[64];
      const char *e = strchr(l + n + 1, '\n');
      size_t len = e ? (size_t)(e - (l + n + 1)) : strlen(l + n + 1);
      if (len >= sizeof tmp) return false;
      memcpy(tmp, l + n + 1, len);
      tmp[len] = '\0';
      return parse_value(tmp, v);
    }
  }
  return false;
}

static char *get_metrics(void) {
  resp r;
  ck_assert_int_eq(http(port, "GET", "/metrics", NULL, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
  return r.body;
}

START_TEST(metrics_text_format) {
  aiplat_metrics *m = aiplat_health_metrics(h);
  aiplat_metric *jobs, *temp, *lat;
  const char *labels[] = {"kind", "note"};
  ck_assert_int_eq(
      aiplat_metrics_counter(m, "app_jobs_total",
                             "Jobs done.\nBy kind \\ note.", labels, 2, &jobs),
      AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_metrics_gauge(m, "app_temperature_celsius", "", NULL, 0, &temp),
      AIPLAT_OK);
  const double b[] = {0.1, 0.5, 1, 2.5};
  const char *ep[] = {"endpoint"};
  ck_assert_int_eq(aiplat_metrics_histogram(m, "app_latency_seconds",
                                            "Latency.", ep, 1, b, 4, &lat),
                   AIPLAT_OK);
  const char *v1[] = {"a\"b\\c\nd", "caf\xc3\xa9"};
  const char *v2[] = {"plain", ""};
  ck_assert_int_eq(aiplat_metric_add(jobs, v1, 2, 3), AIPLAT_OK);
  ck_assert_int_eq(aiplat_metric_add(jobs, v2, 2, 1.5), AIPLAT_OK);
  ck_assert_int_eq(aiplat_metric_add(jobs, v2, 2, 1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_metric_set(temp, NULL, 0, -3.25), AIPLAT_OK);
  const char *chat[] = {"chat"}, *voice[] = {"voice"};
  const double obs[] = {0.05, 0.1, 0.3, 0.7, 2, 7, 100};
  for (size_t i = 0; i < 7; i++)
    ck_assert_int_eq(aiplat_metric_observe(lat, chat, 1, obs[i]), AIPLAT_OK);
  ck_assert_int_eq(aiplat_metric_observe(lat, voice, 1, 0.2), AIPLAT_OK);

  char *text = get_metrics();
  char err[512];
  const char *fault = check_exposition(text, err, sizeof err);
  ck_assert_msg(fault == NULL, "%s\n%s", fault, text);
  ck_assert_ptr_nonnull(
      strstr(text,
             "# HELP app_jobs_total Jobs done.\\nBy kind \\\\ note.\n"
             "# TYPE app_jobs_total counter\n"));
  ck_assert_ptr_nonnull(strstr(
      text,
      "# HELP app_temperature_celsius\n# TYPE app_temperature_celsius gauge\n"
      "app_temperature_celsius -3.25\n"));
  ck_assert_ptr_nonnull(strstr(
      text,
      "app_jobs_total{kind=\"a\\\"b\\\\c\\nd\",note=\"caf\xc3\xa9\"} 3\n"));
  ck_assert_ptr_nonnull(
      strstr(text, "app_jobs_total{kind=\"plain\",note=\"\"} 2.5\n"));
  double v;
  ck_assert(sample_value(
      text, "app_latency_seconds_bucket{endpoint=\"chat\",le=\"0.1\"}", &v));
  ck_assert_double_eq(v, 2);
  ck_assert(sample_value(
      text, "app_latency_seconds_bucket{endpoint=\"chat\",le=\"0.5\"}", &v));
  ck_assert_double_eq(v, 3);
  ck_assert(sample_value(
      text, "app_latency_seconds_bucket{endpoint=\"chat\",le=\"2.5\"}", &v));
  ck_assert_double_eq(v, 5);
  ck_assert(sample_value(
      text, "app_latency_seconds_bucket{endpoint=\"chat\",le=\"+Inf\"}", &v));
  ck_assert_double_eq(v, 7);
  ck_assert(
      sample_value(text, "app_latency_seconds_count{endpoint=\"chat\"}", &v));
  ck_assert_double_eq(v, 7);
  ck_assert(
      sample_value(text, "app_latency_seconds_sum{endpoint=\"chat\"}", &v));
  ck_assert_double_eq_tol(v, 110.15, 1e-9);
  ck_assert(
      sample_value(text, "app_latency_seconds_count{endpoint=\"voice\"}", &v));
  ck_assert_double_eq(v, 1);
  /* The library's own families and the process. */
  ck_assert(sample_value(text, "aiplat_nats_reconnects_total", &v));
  ck_assert_double_eq(v, 0);
  ck_assert_ptr_nonnull(
      strstr(text, "# TYPE aiplat_request_duration_seconds histogram\n"));
  ck_assert_ptr_nonnull(strstr(text, "# TYPE aiplat_requests_total counter\n"));
  char build[64];
  snprintf(build, sizeof build, "aiplat_build_info{version=\"%s\"}",
           aiplat_version_string());
  ck_assert(sample_value(text, build, &v));
  ck_assert_double_eq(v, 1);
  ck_assert(sample_value(text, "process_resident_memory_bytes", &v));
  ck_assert_double_gt(v, 1024 * 1024);
  ck_assert(sample_value(text, "process_virtual_memory_bytes", &v));
  ck_assert_double_gt(v, 1024 * 1024);
  ck_assert(sample_value(text, "process_open_fds", &v));
  ck_assert_double_ge(v, 3);
  ck_assert(sample_value(text, "process_cpu_seconds_total", &v));
  ck_assert_double_ge(v, 0);
  ck_assert(sample_value(text, "process_start_time_seconds", &v));
  double now = (double)time(NULL);
  ck_assert_msg(v > now - 3600 && v <= now + 1, "start %f now %f", v, now);
  free(text);
}
END_TEST

START_TEST(exposition_checker_catches_faults) {
  /* The checker above must be able to fail, or the tests using it prove
   * nothing. */
  static const char *const bad[] = {
      "",
      "x 1",
      "# TYPE x counter\nx 1\n",
      "# HELP x\n# TYPE x counter\nx -1\n",
      "# HELP x\n# TYPE x counter\ny 1\n",
      "# HELP x\n# TYPE x counter\nx{a=\"\\t\"} 1\n",
      "# HELP x\n# TYPE x counter\nx one\n",
      /* the +Inf bucket below a finite one */
      ("# HELP h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
       "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
      /* _count differs from the +Inf bucket */
      ("# HELP h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
       "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),
      /* le decreasing */
      ("# HELP h\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\n"
       "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"),
      /* no +Inf bucket */
      ("# HELP h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n"
       "h_count 1\n"),
      "# HELP x\n# TYPE x counter\n# HELP x\n# TYPE x counter\n",
  };
  char err[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(check_exposition(bad[i], err, sizeof err) != NULL,
                  "case %zu passed", i);
  ck_assert_ptr_null(check_exposition(
      "# HELP h x\n# TYPE h histogram\nh_bucket{a=\"1\",le=\"1\"} 1\n"
      "h_bucket{a=\"1\",le=\"+Inf\"} 2\nh_sum{a=\"1\"} 3\nh_count{a=\"1\"} 2\n",
      err, sizeof err));
}
END_TEST

START_TEST(metric_registration_errors) {
  aiplat_metrics *m = aiplat_health_metrics(h);
  aiplat_metric *a = NULL, *b = NULL;
  const char *lab[] = {"kind"};
  const char *le[] = {"le"}, *dunder[] = {"__x"}, *dup[] = {"k", "k"},
             *dash[] = {"a-b"};
  ck_assert_int_eq(aiplat_metrics_counter(m, "1abc", "", NULL, 0, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_counter(m, "a-b", "", NULL, 0, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_counter(m, NULL, "", NULL, 0, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_metrics_counter(m, "ok_total", "bad\xff", NULL, 0, &a),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_histogram(m, "h", "", le, 1, NULL, 0, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "", dunder, 1, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "", dup, 2, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "", dash, 1, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "", NULL, 1, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  const double dec[] = {1, 0.5}, nan_b[] = {1, NAN}, inf_b[] = {1, INFINITY};
  ck_assert_int_eq(aiplat_metrics_histogram(m, "h", "", NULL, 0, dec, 2, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_histogram(m, "h", "", NULL, 0, nan_b, 2, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_histogram(m, "h", "", NULL, 0, inf_b, 2, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_histogram(m, "h", "", NULL, 0, NULL, 3, &a),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  /* Idempotent registration, conflicts. */
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "help", lab, 1, &a),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "help", lab, 1, &b),
                   AIPLAT_OK);
  ck_assert_ptr_eq(a, b);
  ck_assert_int_eq(aiplat_metrics_gauge(m, "c_total", "help", lab, 1, &b),
                   AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "other", lab, 1, &b),
                   AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(aiplat_metrics_counter(m, "c_total", "help", NULL, 0, &b),
                   AIPLAT_ERR_EXISTS);
  aiplat_metrics_last_error(m, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "c_total"));
  aiplat_metric *hist;
  ck_assert_int_eq(
      aiplat_metrics_histogram(m, "rt_seconds", "", NULL, 0, NULL, 0, &hist),
      AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_metrics_counter(m, "rt_seconds_bucket", "", NULL, 0, &b),
      AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(aiplat_metrics_gauge(m, "rt_seconds_count", "", NULL, 0, &b),
                   AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(aiplat_metrics_counter(m, "x_sum", "", NULL, 0, &b),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_metrics_histogram(m, "x", "", NULL, 0, NULL, 0, &b),
                   AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(aiplat_metrics_gauge(m, "process_open_fds", "", NULL, 0, &b),
                   AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(
      aiplat_metrics_counter(m, "aiplat_requests_total", "x", NULL, 0, &b),
      AIPLAT_ERR_EXISTS);
  /* Updates. */
  const char *one[] = {"v"}, *two[] = {"v", "w"};
  ck_assert_int_eq(aiplat_metric_add(a, two, 2, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metric_add(a, NULL, 1, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metric_add(a, one, 1, -1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metric_add(a, one, 1, NAN),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metric_set(a, one, 1, 1), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_metric_observe(a, one, 1, 1), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_metric_add(hist, NULL, 0, 1), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_metric_observe(hist, NULL, 0, NAN),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metric_add(NULL, NULL, 0, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  const char *nul[] = {NULL};
  ck_assert_int_eq(aiplat_metric_add(a, nul, 1, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  const char *badutf[] = {"\xc3\x28"};
  ck_assert_int_eq(aiplat_metric_add(a, badutf, 1, 1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  char *huge = malloc(2000);
  memset(huge, 'v', 1999);
  huge[1999] = '\0';
  const char *hv[] = {huge};
  ck_assert_int_eq(aiplat_metric_add(a, hv, 1, 1), AIPLAT_ERR_TOO_LARGE);
  free(huge);
  /* Cardinality is capped. */
  aiplat_status st = AIPLAT_OK;
  int made = 0;
  for (int i = 0; i < 3000 && st == AIPLAT_OK; i++) {
    char v[16];
    snprintf(v, sizeof v, "u%d", i);
    const char *vals[] = {v};
    st = aiplat_metric_add(a, vals, 1, 1);
    if (st == AIPLAT_OK) made++;
  }
  ck_assert_int_eq(st, AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(made, 2000);
  aiplat_metrics_last_error(m, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "small set"));
  ck_assert_int_eq(aiplat_metric_add(a, one, 1, 1), AIPLAT_ERR_TOO_LARGE);
  const char *u0[] = {"u0"}; /* existing series still update */
  ck_assert_int_eq(aiplat_metric_add(a, u0, 1, 1), AIPLAT_OK);
  /* A health handle's registry is not destroyed by the standalone call. */
  aiplat_metrics_destroy(m);
  ck_assert_int_eq(aiplat_metric_add(a, u0, 1, 1), AIPLAT_OK);
  char *text = get_metrics();
  double v;
  ck_assert(sample_value(text, "c_total{kind=\"u0\"}", &v));
  ck_assert_double_eq(v, 3);
  free(text);
}
END_TEST

START_TEST(standalone_registry) {
  aiplat_metrics *m = NULL;
  ck_assert_int_eq(aiplat_metrics_create(&m), AIPLAT_OK);
  aiplat_metric *c;
  ck_assert_int_eq(
      aiplat_metrics_counter(m, "solo_total", "Solo.", NULL, 0, &c), AIPLAT_OK);
  ck_assert_int_eq(aiplat_metric_add(c, NULL, 0, 41), AIPLAT_OK);
  ck_assert_int_eq(aiplat_metric_add(c, NULL, 0, 1), AIPLAT_OK);
  char *text = NULL;
  size_t len = 0;
  ck_assert_int_eq(aiplat_metrics_render(m, &text, &len), AIPLAT_OK);
  ck_assert_uint_eq(len, strlen(text));
  char err[256];
  const char *fault = check_exposition(text, err, sizeof err);
  ck_assert_msg(fault == NULL, "%s", fault);
  double v;
  ck_assert(sample_value(text, "solo_total", &v));
  ck_assert_double_eq(v, 42);
  ck_assert(sample_value(text, "process_resident_memory_bytes", &v));
  ck_assert_ptr_null(
      strstr(text, "aiplat_requests_total")); /* not a health registry */
  aiplat_free(text);
  ck_assert_int_eq(aiplat_metrics_render(m, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_metrics_render(NULL, &text, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_metrics_destroy(m);
  aiplat_metrics_destroy(NULL);
}
END_TEST

/* ---- concurrency ------------------------------------------------------- */

#define THREADS 8
#define ADDS 20000

typedef struct worker {
  aiplat_metric *counter, *gauge, *hist;
  int id;
  atomic_bool *stop;
  long failures;
} worker;

static void *adder(void *arg) {
  worker *w = arg;
  char own[16];
  snprintf(own, sizeof own, "t%d", w->id);
  const char *shared[] = {"shared"}, *mine[] = {own};
  for (int i = 0; i < ADDS; i++) {
    aiplat_metric_add(w->counter, shared, 1, 1);
    aiplat_metric_add(w->counter, mine, 1, 1);
    aiplat_metric_add(w->gauge, shared, 1, 1);
    aiplat_metric_add(w->gauge, shared, 1, -1);
    aiplat_metric_observe(w->hist, shared, 1,
                          (i % 4) * 0.5); /* 0, .5, 1, 1.5 */
  }
  return NULL;
}

START_TEST(concurrent_updates_sum_exactly) {
  aiplat_metrics *m = aiplat_health_metrics(h);
  const char *lab[] = {"who"};
  const double b[] = {0.25, 1};
  worker w[THREADS];
  aiplat_metric *c, *g, *hi;
  ck_assert_int_eq(aiplat_metrics_counter(m, "ops_total", "Ops.", lab, 1, &c),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_metrics_gauge(m, "level", "Level.", lab, 1, &g),
                   AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_metrics_histogram(m, "size", "Size.", lab, 1, b, 2, &hi),
      AIPLAT_OK);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){.counter = c, .gauge = g, .hist = hi, .id = i};
    ck_assert_int_eq(pthread_create(&t[i], NULL, adder, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  char *text = get_metrics();
  double v;
  ck_assert(sample_value(text, "ops_total{who=\"shared\"}", &v));
  ck_assert_double_eq(v, THREADS * ADDS);
  for (int i = 0; i < THREADS; i++) {
    char p[64];
    snprintf(p, sizeof p, "ops_total{who=\"t%d\"}", i);
    ck_assert(sample_value(text, p, &v));
    ck_assert_double_eq(v, ADDS);
  }
  ck_assert(sample_value(text, "level{who=\"shared\"}", &v));
  ck_assert_double_eq(v, 0);
  ck_assert(sample_value(text, "size_count{who=\"shared\"}", &v));
  ck_assert_double_eq(v, THREADS * ADDS);
  ck_assert(sample_value(text, "size_bucket{who=\"shared\",le=\"0.25\"}", &v));
  ck_assert_double_eq(v, THREADS * ADDS / 4);
  ck_assert(sample_value(text, "size_bucket{who=\"shared\",le=\"1\"}", &v));
  ck_assert_double_eq(v, THREADS * ADDS * 3 / 4);
  ck_assert(sample_value(text, "size_sum{who=\"shared\"}", &v));
  ck_assert_double_eq(v, THREADS * (ADDS / 4) * 3.0); /* 0+.5+1+1.5 per 4 */
  free(text);
}
END_TEST

typedef struct scraper {
  int port;
  int rounds;
  int ok;
  char fault[256];
} scraper;

static void *scrape(void *arg) {
  scraper *s = arg;
  CURL *c = curl_easy_init();
  char url[64];
  for (int i = 0; i < s->rounds; i++) {
    const char *path = i % 3 == 0   ? "/ready"
                       : i % 3 == 1 ? "/health"
                                    : "/metrics";
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    resp r = {.content_length = -1};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    CURLcode rc = curl_easy_perform(c); /* reuses its connection */
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char err[256];
    if (rc != CURLE_OK || r.status != 200) {
      snprintf(s->fault, sizeof s->fault, "%s: curl %d status %ld", path, rc,
               r.status);
    } else if (i % 3 == 2 && check_exposition(r.body, err, sizeof err)) {
      snprintf(s->fault, sizeof s->fault, "exposition: %.200s", err);
    } else {
      s->ok++;
    }
    free(r.body);
  }
  curl_easy_cleanup(c);
  return NULL;
}

static void *observer(void *arg) {
  worker *w = arg;
  const char *ep[] = {"busy"};
  /* Updates keep flowing during the scrapes, but the loop yields now and
     then: under valgrind, which runs one thread at a time, a pure spin
     would starve the server's threads and time the scrapers out. */
  for (unsigned n = 1; !atomic_load(w->stop); n++) {
    aiplat_metric_observe(w->hist, ep, 1, 0.3);
    aiplat_metric_add(w->counter, ep, 1, 1);
    if (n % 256 == 0) sched_yield();
  }
  return NULL;
}

START_TEST(many_concurrent_scrapes) {
  aiplat_metrics *m = aiplat_health_metrics(h);
  const char *ep[] = {"endpoint"};
  aiplat_metric *c, *hi;
  ck_assert_int_eq(aiplat_metrics_counter(m, "busy_total", "Busy.", ep, 1, &c),
                   AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_metrics_histogram(m, "busy_seconds", "Busy.", ep, 1, NULL, 0, &hi),
      AIPLAT_OK);
  flag_check f = {.message = "fine"};
  atomic_store(&f.ok, true);
  ck_assert_int_eq(aiplat_health_add_check(h, "flag", flag_fn, &f), AIPLAT_OK);
  atomic_bool stop = false;
  worker ow[2] = {{.counter = c, .hist = hi, .stop = &stop},
                  {.counter = c, .hist = hi, .stop = &stop}};
  pthread_t ot[2], st[THREADS];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&ot[i], NULL, observer, &ow[i]), 0);
  scraper s[THREADS];
  for (int i = 0; i < THREADS; i++) {
    s[i] = (scraper){.port = port, .rounds = 30};
    ck_assert_int_eq(pthread_create(&st[i], NULL, scrape, &s[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(st[i], NULL);
  atomic_store(&stop, true);
  for (int i = 0; i < 2; i++) pthread_join(ot[i], NULL);
  for (int i = 0; i < THREADS; i++)
    ck_assert_msg(s[i].ok == 30, "scraper %d: %d ok, last fault: %s", i,
                  s[i].ok, s[i].fault);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("health");
  TCase *t = tcase_create("server");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 30);
  tcase_add_test(t, health_is_ok);
  tcase_add_test(t, ready_without_checks_is_ready);
  tcase_add_test(t, ready_follows_a_check);
  tcase_add_test(t, failing_checks_are_named_in_json);
  tcase_add_test(t, manual_gate);
  tcase_add_test(t, liveness_latch);
  tcase_add_test(t, unknown_paths_are_404);
  tcase_add_test(t, other_methods_are_405_with_allow);
  tcase_add_test(t, head_has_headers_and_no_body);
  tcase_add_test(t, request_body_is_ignored);
  tcase_add_test(t, garbage_requests_do_not_hurt);
  tcase_add_test(t, slow_client_does_not_block_others);
  tcase_add_test(t, port_in_use_is_an_io_error_naming_the_address);
  tcase_add_test(t, port_zero_stop_and_restart);
  tcase_add_test(t, bind_to_loopback_only);
  tcase_add_test(t, bind_ipv6);
  tcase_add_test(t, bad_settings_are_config_errors);
  tcase_add_test(t, defaults_from_environment);
  tcase_add_test(t, check_registration_errors);
  tcase_add_test(t, cached_check_never_blocks_the_server);
  tcase_add_test(t, slow_inline_check_is_reported_once);
  suite_add_tcase(s, t);

  TCase *ct = tcase_create("crowds");
  tcase_add_checked_fixture(ct, setup, teardown);
  tcase_set_timeout(ct, 60);
  tcase_add_test(ct, idle_and_slow_crowds_do_not_starve_probes);
  tcase_add_test(ct, full_port_drops_the_longest_waiting);
  tcase_add_test(ct, start_raises_a_low_descriptor_limit);
  tcase_add_test(ct, stuck_inline_check_does_not_stall_the_server);
  suite_add_tcase(s, ct);

  TCase *mt = tcase_create("metrics");
  tcase_add_checked_fixture(mt, setup, teardown);
  tcase_set_timeout(mt, 30);
  tcase_add_test(mt, metrics_text_format);
  tcase_add_test(mt, exposition_checker_catches_faults);
  tcase_add_test(mt, metric_registration_errors);
  tcase_add_test(mt, standalone_registry);
  tcase_add_test(mt, concurrent_updates_sum_exactly);
  tcase_add_test(mt, many_concurrent_scrapes);
  suite_add_tcase(s, mt);
  return s;
}
