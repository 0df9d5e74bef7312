/* The bus against a real nats-server: connect (several URLs, auth),
 * publish/subscribe with headers, request/reply, no responders, timeouts,
 * queue groups, max_payload, hostile subjects, reconnection, drain, close,
 * slow consumers. */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus_testutil.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"

static th_nats *server;

static void start_server(void) {
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
}

static void stop_server(void) {
  th_nats_stop(server);
  server = NULL;
}

/* ---- connect ------------------------------------------------------------- */

START_TEST(connect_several_urls_one_dead) {
  char urls[256];
  /* Port 1 on loopback refuses connections; the list is tried in random
   * order, so whichever comes first, the live server must be reached. */
  snprintf(urls, sizeof urls, " nats://127.0.0.1:1 , %s ", th_nats_url(server));
  for (int i = 0; i < 3; i++) {
    aiplat_bus *bus = tu_connect(urls);
    ck_assert(aiplat_bus_is_connected(bus));
    ck_assert_int_gt(aiplat_bus_max_payload(bus), 0);
    aiplat_bus_destroy(bus);
  }
}
END_TEST

START_TEST(connect_no_server) {
  aiplat_config *cfg = tu_config("nats://127.0.0.1:1,nats://127.0.0.1:2");
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_ERR_CONNECTION);
  ck_assert_ptr_nonnull(strstr(tu_bus_err(bus), "127.0.0.1:1"));
  ck_assert(!aiplat_bus_is_connected(bus));
  /* Not connected: operations say so. */
  ck_assert_int_eq(aiplat_bus_publish(bus, "a", "x", 1, NULL),
                   AIPLAT_ERR_STATE);
  aiplat_bus_destroy(bus);
  aiplat_config_destroy(cfg);
}
END_TEST

START_TEST(bad_settings_are_config_errors) {
  static const struct {
    const char *name, *value, *needle;
  } bad[] = {
      {"NATS_URL", "ws://127.0.0.1:4222", "websocket"},
      {"NATS_URL", "nats://u:hunter2@127.0.0.1:1, ,nats://127.0.0.1:2",
       "server 2"},
      {"NATS_URL", "http://127.0.0.1:4222", "scheme"},
      {"NATS_USER", "alice", "NATS_PASSWORD"},
      {"NATS_TLS_CERT", "/nonexistent.pem", "NATS_TLS_KEY"},
      {"NATS_TLS_CA", "/nonexistent/ca.pem", "/nonexistent/ca.pem"},
      {"NATS_CREDS", "/nonexistent/x.creds", "NATS_CREDS"},
      {"NATS_NKEY_SEED", "SUNOTASEED", "NATS_NKEY_SEED"},
      {"NATS_CONNECT_TIMEOUT", "5", "NATS_CONNECT_TIMEOUT"},
      {"NATS_MAX_RECONNECTS", "-2", "NATS_MAX_RECONNECTS"},
      {"NATS_SEND_ASAP", "maybe", "NATS_SEND_ASAP"},
  };
  char msg[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aiplat_config *cfg = tu_config(th_nats_url(server));
    ck_assert_int_eq(aiplat_config_set(cfg, bad[i].name, bad[i].value),
                     AIPLAT_OK);
    aiplat_bus *bus = (aiplat_bus *)0x1;
    ck_assert_msg(aiplat_bus_create(&bus, cfg) == AIPLAT_ERR_CONFIG,
                  "setting %zu accepted", i);
    ck_assert_ptr_null(bus);
    aiplat_error_last(msg, sizeof msg);
    ck_assert_msg(strstr(msg, bad[i].needle) != NULL, "setting %zu: '%s'", i,
                  msg);
    ck_assert_msg(strstr(msg, "hunter2") == NULL, "secret repeated: %s", msg);
    aiplat_config_destroy(cfg);
  }
}
END_TEST

static aiplat_status try_connect(const char *url, const char *const *kv,
                                 size_t n, char *err, size_t errlen) {
  aiplat_config *cfg = tu_config(url);
  for (size_t i = 0; i + 1 < n; i += 2)
    ck_assert_int_eq(aiplat_config_set(cfg, kv[i], kv[i + 1]), AIPLAT_OK);
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  aiplat_status st = aiplat_bus_connect(bus);
  aiplat_bus_last_error(bus, err, errlen);
  if (st == AIPLAT_OK) {
    aiplat_bus_msg *r = NULL;
    /* Really usable: a request reaches the server (no responders). */
    ck_assert_int_eq(
        aiplat_bus_request(bus, "auth.probe", "x", 1, NULL, 2000, &r),
        AIPLAT_ERR_UNAVAILABLE);
  }
  aiplat_bus_destroy(bus);
  return st;
}

START_TEST(token_auth) {
  th_nats *s = th_nats_start("authorization { token: \"s3cr3t-tok\" }");
  ck_assert_ptr_nonnull(s);
  char err[512];
  const char *good[] = {"NATS_TOKEN", "s3cr3t-tok"};
  ck_assert_int_eq(try_connect(th_nats_url(s), good, 2, err, sizeof err),
                   AIPLAT_OK);
  const char *bad[] = {"NATS_TOKEN", "wrong"};
  ck_assert_int_eq(try_connect(th_nats_url(s), bad, 2, err, sizeof err),
                   AIPLAT_ERR_AUTH);
  ck_assert_ptr_null(strstr(err, "wrong"));
  ck_assert_int_eq(try_connect(th_nats_url(s), NULL, 0, err, sizeof err),
                   AIPLAT_ERR_AUTH);
  th_nats_stop(s);
}
END_TEST

START_TEST(user_password_auth) {
  th_nats *s = th_nats_start(
      "authorization { users = [ { user: alice, password: \"pw-alice\" } ] }");
  ck_assert_ptr_nonnull(s);
  char err[512];
  const char *good[] = {"NATS_USER", "alice", "NATS_PASSWORD", "pw-alice"};
  ck_assert_int_eq(try_connect(th_nats_url(s), good, 4, err, sizeof err),
                   AIPLAT_OK);
  const char *bad[] = {"NATS_USER", "alice", "NATS_PASSWORD", "nope"};
  ck_assert_int_eq(try_connect(th_nats_url(s), bad, 4, err, sizeof err),
                   AIPLAT_ERR_AUTH);
  ck_assert_ptr_nonnull(strstr(err, "uthorization"));
  const char *nobody[] = {"NATS_USER", "mallory", "NATS_PASSWORD", "pw-alice"};
  ck_assert_int_eq(try_connect(th_nats_url(s), nobody, 4, err, sizeof err),
                   AIPLAT_ERR_AUTH);
  th_nats_stop(s);
}
END_TEST

START_TEST(state_errors) {
  aiplat_config *cfg = tu_config(th_nats_url(server));
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  aiplat_bus_sub *sub = NULL;
  tu_collector c;
  tu_collector_init(&c);
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "a", NULL, tu_collect, &c, &sub),
                   AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_flush(bus, 1000), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_set_send_asap(bus, false), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_set_event_callback(bus, NULL, NULL),
                   AIPLAT_ERR_STATE);
  ck_assert_int_eq(aiplat_bus_set_retry_on_failed_connect(bus, true),
                   AIPLAT_ERR_STATE);
  aiplat_bus_msg *r = (aiplat_bus_msg *)0x1;
  ck_assert_int_eq(aiplat_bus_request(bus, "a", NULL, 0, NULL, 0, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(r);
  ck_assert_int_eq(aiplat_bus_publish(bus, "a", NULL, 3, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_publish(bus, "a", NULL, 0, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "a", NULL, NULL, NULL, &sub),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_bus_close(bus);
  aiplat_bus_close(bus);
  ck_assert(!aiplat_bus_is_connected(bus));
  ck_assert_int_eq(aiplat_bus_publish(bus, "a", "x", 1, NULL),
                   AIPLAT_ERR_CLOSED);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_ERR_CLOSED);
  aiplat_bus_destroy(bus);
  aiplat_bus_destroy(NULL);
  aiplat_bus_sub_destroy(NULL);
  aiplat_bus_msg_destroy(NULL);
  aiplat_headers_destroy(NULL);
  aiplat_kv_destroy(NULL);
  tu_collector_free(&c);
}
END_TEST

/* ---- TLS
 * ---------------------------------------------------------------------- */

/* Make a CA, a server certificate for 127.0.0.1 and a client certificate in
 * @dir with the openssl program; false when it is not installed. */
static bool make_certs(const char *dir) {
  if (system("openssl version >/dev/null 2>&1") != 0) return false;
  char cmd[4096];
  snprintf(
      cmd, sizeof cmd,
      "(cd %s && "
      "printf 'subjectAltName=IP:127.0.0.1\n' > san.ext && "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "  -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=aiplat-test-ca && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "  -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
      "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "  -out srv.pem -days 2 -extfile san.ext && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "  -keyout cli.key -out cli.csr -subj /CN=bus-client && "
      "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "  -out cli.pem -days 2) >/dev/null 2>&1",
      dir);
  ck_assert_int_eq(system(cmd), 0);
  return true;
}

START_TEST(tls_with_ca_and_client_certificate) {
  char dir[] = "/tmp/aiplat-tls-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  if (!make_certs(dir)) {
    fprintf(stderr, "tls test skipped: no openssl program\n");
    return;
  }
  char conf[1024], path[300];
  snprintf(conf, sizeof conf,
           "tls { cert_file: \"%s/srv.pem\", key_file: \"%s/srv.key\", "
           "ca_file: \"%s/ca.pem\", verify: true }",
           dir, dir, dir);
  th_nats *s = th_nats_start(conf);
  ck_assert_ptr_nonnull(s);
  char url[64], err[512];
  snprintf(url, sizeof url, "tls://127.0.0.1:%d", th_nats_port(s));
  char ca[320], cert[320], key[320];
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  snprintf(cert, sizeof cert, "%s/cli.pem", dir);
  snprintf(key, sizeof key, "%s/cli.key", dir);
  const char *full[] = {"NATS_TLS_CA",  ca, "NATS_TLS_CERT", cert,
                        "NATS_TLS_KEY", key};
  ck_assert_int_eq(try_connect(url, full, 6, err, sizeof err), AIPLAT_OK);
  /* Without the client certificate the server refuses us. */
  ck_assert_int_ne(try_connect(url, full, 2, err, sizeof err), AIPLAT_OK);
  /* Without our CA the server's certificate is not trusted. */
  ck_assert_int_ne(try_connect(url, full + 2, 4, err, sizeof err), AIPLAT_OK);
  th_nats_stop(s);
  snprintf(path, sizeof path, "rm -rf %s", dir);
  ck_assert_int_eq(system(path), 0);
}
END_TEST

/* ---- publish / subscribe ----------------------------------------------------
 */

typedef struct hdr_check {
  pthread_mutex_t mu;
  int got;
  char trace[64];
  size_t count;
  char second_key[32], second_value[32];
  char third_value[32];
  aiplat_status view_set;
  aiplat_status missing;
} hdr_check;

static void on_hdr_msg(aiplat_bus_msg *m, void *ud) {
  hdr_check *h = ud;
  const char *v = NULL;
  pthread_mutex_lock(&h->mu);
  if (aiplat_bus_msg_header(m, "Trace-Id", &v) == AIPLAT_OK)
    snprintf(h->trace, sizeof h->trace, "%s", v);
  h->missing = aiplat_bus_msg_header(m, "Absent", &v);
  const aiplat_headers *view = NULL;
  if (aiplat_bus_msg_headers(m, &view) == AIPLAT_OK) {
    h->count = aiplat_headers_count(view);
    /* Keys come from a hash in the client: find the values by key. */
    for (size_t i = 0; i < h->count; i++) {
      if (strcmp(aiplat_headers_key_at(view, i), "Multi") == 0) {
        if (!h->second_key[0]) {
          snprintf(h->second_key, sizeof h->second_key, "%s",
                   aiplat_headers_key_at(view, i));
          snprintf(h->second_value, sizeof h->second_value, "%s",
                   aiplat_headers_value_at(view, i));
        } else {
          snprintf(h->third_value, sizeof h->third_value, "%s",
                   aiplat_headers_value_at(view, i));
        }
      }
    }
    h->view_set = aiplat_headers_set((aiplat_headers *)view, "X", "y");
  }
  h->got++;
  pthread_mutex_unlock(&h->mu);
}

START_TEST(publish_subscribe_with_headers) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  hdr_check h;
  memset(&h, 0, sizeof h);
  pthread_mutex_init(&h.mu, NULL);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "hdr.*", NULL, on_hdr_msg, &h, &sub),
      AIPLAT_OK);
  tu_collector c;
  tu_collector_init(&c);
  aiplat_bus_sub *sub2 = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "hdr.>", NULL, tu_collect, &c, &sub2),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);

  aiplat_headers *hd = NULL;
  ck_assert_int_eq(aiplat_headers_create(&hd), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_set(hd, "Trace-Id", "old"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_set(hd, "Trace-Id", "t-123"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_add(hd, "Multi", "one"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_add(hd, "Multi", "two"), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_headers_count(hd), 3);
  const char *v = NULL;
  ck_assert_int_eq(aiplat_headers_get(hd, "Multi", &v), AIPLAT_OK);
  ck_assert_str_eq(v, "one");
  ck_assert_int_eq(aiplat_headers_get(hd, "multi", &v), AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(aiplat_headers_key_at(hd, 3));
  /* Header injection and malformed keys are refused. */
  ck_assert_int_eq(aiplat_headers_set(hd, "Evil", "a\r\nStatus: 503"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_headers_set(hd, "Bad:Key", "v"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_headers_set(hd, "Bad Key", "v"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_headers_set(hd, "", "v"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_headers_add(hd, "K", NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(aiplat_headers_count(hd), 3);

  ck_assert_int_eq(aiplat_bus_publish(bus, "hdr.one", "hello", 5, hd),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_publish(bus, "hdr.two", NULL, 0, NULL),
                   AIPLAT_OK);
  ck_assert(tu_wait_count(&c, 2, 5000));
  int64_t end = tu_now_ms() + 5000;
  for (;;) {
    pthread_mutex_lock(&h.mu);
    int got = h.got;
    pthread_mutex_unlock(&h.mu);
    if (got >= 2 || tu_now_ms() > end) break;
    tu_sleep_ms(5);
  }
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_sub_destroy(sub2);
  ck_assert_int_eq(h.got, 2);
  ck_assert_str_eq(c.last_subject, "hdr.two");
  ck_assert_str_eq(h.trace, "t-123");
  ck_assert_int_eq(h.missing, AIPLAT_ERR_NOT_FOUND);
  ck_assert_str_eq(h.second_value, "one");
  ck_assert_str_eq(h.third_value, "two");
  ck_assert_int_eq(h.view_set, AIPLAT_ERR_STATE);
  aiplat_headers_destroy(hd);
  tu_collector_free(&c);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(hostile_subjects_are_never_published) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  tu_collector c;
  tu_collector_init(&c);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, ">", NULL, tu_collect, &c, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  static const char *const bad[] = {
      "",         ".",
      "ai..chat", "ai.chat.",
      ".ai",      "ai.*",
      "ai.>",     "*",
      ">",        "ai.chat user",
      "ai.\t",    "ai.x\r\nPUB ai.pipeline.trigger 1\r\nx",
      "ai.\xff",  "ai.\xc0\xae",
      "ai.a\x7f", "ai.a*b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(aiplat_bus_publish(bus, bad[i], "x", 1, NULL) ==
                      AIPLAT_ERR_INVALID_ARGUMENT,
                  "publish %zu accepted", i);
    ck_assert_ptr_nonnull(strstr(tu_bus_err(bus), "subject"));
    ck_assert_int_eq(
        aiplat_bus_publish_request(bus, "ok.x", bad[i], "x", 1, NULL),
        AIPLAT_ERR_INVALID_ARGUMENT);
    aiplat_bus_msg *r = NULL;
    ck_assert_int_eq(aiplat_bus_request(bus, bad[i], "x", 1, NULL, 100, &r),
                     AIPLAT_ERR_INVALID_ARGUMENT);
  }
  static char huge[3000];
  memset(huge, 'a', sizeof huge - 1);
  ck_assert_int_eq(aiplat_bus_publish(bus, huge, "x", 1, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  /* Subscriptions: malformed filters and queue names. */
  aiplat_bus_sub *s2 = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "a.>.b", NULL, tu_collect, &c, &s2),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "a", "q q", tu_collect, &c, &s2),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "a", "q.*", tu_collect, &c, &s2),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(s2);
  /* Nothing reached the server: only the sentinel arrives. */
  ck_assert_int_eq(aiplat_bus_publish(bus, "ok.sentinel", "end", 3, NULL),
                   AIPLAT_OK);
  ck_assert(tu_wait_count(&c, 1, 5000));
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  tu_sleep_ms(100);
  ck_assert_int_eq(tu_count(&c), 1);
  ck_assert_str_eq(c.last_subject, "ok.sentinel");
  aiplat_bus_sub_destroy(sub);
  tu_collector_free(&c);
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- request / reply
 * ----------------------------------------------------------- */

static void echo(aiplat_bus_msg *m, void *ud) {
  (void)ud;
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  const char *v = NULL;
  if (aiplat_bus_msg_header(m, "Request-Id", &v) == AIPLAT_OK)
    aiplat_headers_set(h, "Request-Id", v);
  aiplat_headers_set(h, "Replied-By", "echo");
  char out[300];
  int n = snprintf(out, sizeof out, "echo:%.*s", (int)aiplat_bus_msg_len(m),
                   (const char *)aiplat_bus_msg_data(m));
  aiplat_bus_msg_respond(m, out, (size_t)n, h);
  aiplat_headers_destroy(h);
}

START_TEST(request_reply) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "svc.echo", "echoers", echo, NULL, &sub),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_set(h, "Request-Id", "r-9"), AIPLAT_OK);
  for (int i = 0; i < 20; i++) {
    aiplat_bus_msg *r = NULL;
    ck_assert_int_eq(
        aiplat_bus_request(bus, "svc.echo", "ping", 4, h, 5000, &r), AIPLAT_OK);
    ck_assert_uint_eq(aiplat_bus_msg_len(r), 9);
    ck_assert_str_eq(aiplat_bus_msg_data(r), "echo:ping");
    const char *v = NULL;
    ck_assert_int_eq(aiplat_bus_msg_header(r, "Request-Id", &v), AIPLAT_OK);
    ck_assert_str_eq(v, "r-9");
    ck_assert(!aiplat_bus_msg_is_jetstream(r));
    /* A reply has no reply subject; plain messages cannot be acked. */
    ck_assert_ptr_null(aiplat_bus_msg_reply(r));
    ck_assert_int_eq(aiplat_bus_msg_respond(r, "x", 1, NULL), AIPLAT_ERR_STATE);
    ck_assert_int_eq(aiplat_bus_msg_ack(r), AIPLAT_ERR_STATE);
    uint64_t d;
    ck_assert_int_eq(aiplat_bus_msg_delivery_count(r, &d), AIPLAT_ERR_STATE);
    aiplat_bus_msg_destroy(r);
  }
  aiplat_headers_destroy(h);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(no_responders_is_unavailable) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  aiplat_bus_msg *r = (aiplat_bus_msg *)0x1;
  /* The server answers "no responders" at once, long before the timeout:
   * the status alone proves it (a timeout would be AIPLAT_ERR_TIMEOUT). */
  ck_assert_int_eq(
      aiplat_bus_request(bus, "nobody.here", "x", 1, NULL, 20000, &r),
      AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_null(r);
  ck_assert_ptr_nonnull(strstr(tu_bus_err(bus), "no responders"));
  char buf[256];
  ck_assert_int_eq(aiplat_error_last(buf, sizeof buf), AIPLAT_ERR_UNAVAILABLE);
  aiplat_bus_destroy(bus);
}
END_TEST

static void ignore(aiplat_bus_msg *m, void *ud) {
  (void)m;
  (void)ud;
}

START_TEST(request_timeout) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "svc.silent", NULL, ignore, NULL, &sub),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  aiplat_bus_msg *r = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, "svc.silent", "x", 1, NULL, 200, &r),
                   AIPLAT_ERR_TIMEOUT);
  ck_assert_ptr_nonnull(strstr(tu_bus_err(bus), "200 ms"));
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

typedef struct req_arg {
  aiplat_bus *bus;
  aiplat_status st;
} req_arg;

static void *slow_request(void *p) {
  req_arg *a = p;
  aiplat_bus_msg *r = NULL;
  a->st = aiplat_bus_request(a->bus, "svc.silent2", "x", 1, NULL, 20000, &r);
  aiplat_bus_msg_destroy(r);
  return NULL;
}

START_TEST(close_unblocks_request) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "svc.silent2", NULL, ignore, NULL, &sub),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  req_arg a = {bus, AIPLAT_OK};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, slow_request, &a), 0);
  tu_sleep_ms(200);
  aiplat_bus_close(bus);
  pthread_join(t, NULL);
  /* Closed, not timed out: the 20 s deadline did not have to pass. */
  ck_assert_int_eq(a.st, AIPLAT_ERR_CLOSED);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- queue groups, limits
 * ---------------------------------------------------------- */

START_TEST(queue_group_shares_messages) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  tu_collector a, b, all;
  tu_collector_init(&a);
  tu_collector_init(&b);
  tu_collector_init(&all);
  aiplat_bus_sub *sa = NULL, *sb = NULL, *sall = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "work.q", "workers", tu_collect, &a, &sa),
      AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "work.q", "workers", tu_collect, &b, &sb),
      AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "work.q", NULL, tu_collect, &all, &sall),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  const int n = 200;
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(aiplat_bus_publish(bus, "work.q", "j", 1, NULL),
                     AIPLAT_OK);
  ck_assert(tu_wait_count(&all, n, 10000));
  int64_t end = tu_now_ms() + 10000;
  while (tu_count(&a) + tu_count(&b) < n && tu_now_ms() < end) tu_sleep_ms(5);
  aiplat_bus_sub_destroy(sa);
  aiplat_bus_sub_destroy(sb);
  aiplat_bus_sub_destroy(sall);
  /* Each message went to exactly one member; both got some (a member
   * getting none of 200 random picks has probability 2^-199). */
  ck_assert_int_eq(a.count + b.count, n);
  ck_assert_int_gt(a.count, 0);
  ck_assert_int_gt(b.count, 0);
  ck_assert_int_eq(all.count, n);
  tu_collector_free(&a);
  tu_collector_free(&b);
  tu_collector_free(&all);
  aiplat_bus_destroy(bus);
}
END_TEST

static void respond_big(aiplat_bus_msg *m, void *ud) {
  aiplat_status *st = ud;
  static char big[5000];
  *st = aiplat_bus_msg_respond(m, big, sizeof big, NULL);
  aiplat_bus_msg_respond(m, "small", 5, NULL);
}

START_TEST(payload_over_max_payload) {
  th_nats *s = th_nats_start("max_payload: 4096");
  ck_assert_ptr_nonnull(s);
  aiplat_bus *bus = tu_connect(th_nats_url(s));
  ck_assert_int_eq(aiplat_bus_max_payload(bus), 4096);
  static char data[5000];
  memset(data, 'x', sizeof data);
  ck_assert_int_eq(aiplat_bus_publish(bus, "big.x", data, 5000, NULL),
                   AIPLAT_ERR_TOO_LARGE);
  const char *err = tu_bus_err(bus);
  ck_assert_msg(strstr(err, "4096") && strstr(err, "5000"), "%s", err);
  ck_assert_int_eq(aiplat_bus_publish(bus, "big.x", data, 4096, NULL),
                   AIPLAT_OK);
  /* Headers count toward the limit. */
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_set(h, "K", "value"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_publish(bus, "big.x", data, 4090, h),
                   AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(aiplat_bus_publish(bus, "big.x", data, 4096 - 22, h),
                   AIPLAT_OK);
  aiplat_headers_destroy(h);
  aiplat_bus_msg *r = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, "big.y", data, 5000, NULL, 1000, &r),
                   AIPLAT_ERR_TOO_LARGE);
  /* A reply over the limit is refused too, and a small one still goes. */
  aiplat_status respond_st = AIPLAT_OK;
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "big.svc", NULL, respond_big,
                                        &respond_st, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_request(bus, "big.svc", "q", 1, NULL, 5000, &r),
                   AIPLAT_OK);
  ck_assert_str_eq(aiplat_bus_msg_data(r), "small");
  aiplat_bus_msg_destroy(r);
  aiplat_bus_sub_destroy(sub);
  ck_assert_int_eq(respond_st, AIPLAT_ERR_TOO_LARGE);
  ck_assert(aiplat_bus_is_connected(bus));
  aiplat_bus_destroy(bus);
  th_nats_stop(s);
}
END_TEST

/* ---- reconnection
 * ------------------------------------------------------------------------ */

START_TEST(reconnect_after_server_restart) {
  th_nats *s = th_nats_start(NULL);
  ck_assert_ptr_nonnull(s);
  tu_events ev;
  tu_events_init(&ev);
  aiplat_config *cfg = tu_config(th_nats_url(s));
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_bus_set_event_callback(bus, tu_on_event, &ev),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  tu_collector c;
  tu_collector_init(&c);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "rc.x", NULL, tu_collect, &c, &sub), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_publish(bus, "rc.x", "1", 1, NULL), AIPLAT_OK);
  ck_assert(tu_wait_count(&c, 1, 5000));
  ck_assert_uint_eq(aiplat_bus_reconnect_count(bus), 0);

  ck_assert(th_nats_kill(s));
  ck_assert(tu_wait_event(&ev, AIPLAT_BUS_EVENT_DISCONNECTED, 1, 10000));
  ck_assert(!aiplat_bus_is_connected(bus));
  ck_assert(th_nats_restart(s));
  ck_assert(tu_wait_event(&ev, AIPLAT_BUS_EVENT_RECONNECTED, 1, 10000));
  ck_assert(aiplat_bus_is_connected(bus));
  ck_assert_uint_eq(aiplat_bus_reconnect_count(bus), 1);
  /* The subscription was restored on the new server. */
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_publish(bus, "rc.x", "2", 1, NULL), AIPLAT_OK);
  ck_assert(tu_wait_count(&c, 2, 5000));
  ck_assert_str_eq(c.last_data, "2");

  aiplat_bus_sub_destroy(sub);
  aiplat_bus_close(bus);
  ck_assert_int_eq(tu_event_count(&ev, AIPLAT_BUS_EVENT_CLOSED), 1);
  aiplat_bus_destroy(bus);
  tu_collector_free(&c);
  th_nats_stop(s);
}
END_TEST

START_TEST(retry_on_failed_connect) {
  th_nats *s = th_nats_start(NULL);
  ck_assert_ptr_nonnull(s);
  ck_assert(th_nats_kill(s)); /* keeps the port */
  tu_events ev;
  tu_events_init(&ev);
  aiplat_config *cfg = tu_config(th_nats_url(s));
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_bus_set_event_callback(bus, tu_on_event, &ev),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_set_retry_on_failed_connect(bus, true),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  ck_assert(!aiplat_bus_is_connected(bus));
  /* Buffered until connected. */
  ck_assert_int_eq(aiplat_bus_publish(bus, "early.x", "1", 1, NULL), AIPLAT_OK);
  ck_assert(th_nats_restart(s));
  ck_assert(tu_wait_event(&ev, AIPLAT_BUS_EVENT_CONNECTED, 1, 10000));
  ck_assert(aiplat_bus_is_connected(bus));
  aiplat_bus_destroy(bus);
  th_nats_stop(s);
}
END_TEST

START_TEST(permission_violation_is_reported) {
  th_nats *s = th_nats_start(
      "authorization { users = [ { user: bob, password: \"pw-bob\", "
      "permissions: { publish: { deny: [\"secret.>\"] } } } ] }");
  ck_assert_ptr_nonnull(s);
  aiplat_config *cfg = tu_config(th_nats_url(s));
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_USER", "bob"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_PASSWORD", "pw-bob"),
                   AIPLAT_OK);
  tu_events ev;
  tu_events_init(&ev);
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_bus_set_event_callback(bus, tu_on_event, &ev),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  /* The server refuses it after the fact: reported, not silent. */
  ck_assert_int_eq(aiplat_bus_publish(bus, "secret.plans", "x", 1, NULL),
                   AIPLAT_OK);
  ck_assert(tu_wait_event(&ev, AIPLAT_BUS_EVENT_ERROR, 1, 10000));
  ck_assert_int_eq(ev.last_error, AIPLAT_ERR_AUTH);
  ck_assert_ptr_nonnull(strstr(ev.last_detail, "Permissions Violation"));
  ck_assert_uint_eq(aiplat_bus_async_error_count(bus), 1);
  ck_assert(aiplat_bus_is_connected(bus));
  aiplat_bus_destroy(bus);
  th_nats_stop(s);
}
END_TEST

/* ---- lifecycle of subscriptions and messages
 * ------------------------------------------- */

START_TEST(drain_subscription_and_bus) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  tu_collector c;
  tu_collector_init(&c);
  c.sleep_ms = 10;
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "dr.x", NULL, tu_collect, &c, &sub), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  for (int i = 0; i < 30; i++)
    ck_assert_int_eq(aiplat_bus_publish(bus, "dr.x", "m", 1, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  /* Every message already received is handled before drain returns. */
  ck_assert_int_eq(aiplat_bus_sub_drain(sub, 10000), AIPLAT_OK);
  ck_assert_int_eq(tu_count(&c), 30);
  ck_assert_int_eq(aiplat_bus_publish(bus, "dr.x", "late", 4, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  tu_sleep_ms(50);
  ck_assert_int_eq(tu_count(&c), 30);
  ck_assert_int_eq(aiplat_bus_sub_unsubscribe(sub), AIPLAT_OK); /* idempotent */
  aiplat_bus_sub_destroy(sub);

  tu_collector d;
  tu_collector_init(&d);
  d.sleep_ms = 5;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "dr.y", NULL, tu_collect, &d, &sub), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  for (int i = 0; i < 20; i++)
    ck_assert_int_eq(aiplat_bus_publish(bus, "dr.y", "m", 1, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_drain(bus, 10000), AIPLAT_OK);
  ck_assert_int_eq(tu_count(&d), 20);
  ck_assert_int_eq(aiplat_bus_publish(bus, "dr.y", "m", 1, NULL),
                   AIPLAT_ERR_CLOSED);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  tu_collector_free(&c);
  tu_collector_free(&d);
}
END_TEST

typedef struct self_arg {
  aiplat_bus_sub *sub;
  aiplat_status unsub, drain;
  int calls;
  bool destroy;
} self_arg;

static void self_stop(aiplat_bus_msg *m, void *ud) {
  (void)m;
  self_arg *a = ud;
  a->calls++;
  while (!__atomic_load_n(&a->sub, __ATOMIC_ACQUIRE)) tu_sleep_ms(1);
  a->unsub = aiplat_bus_sub_unsubscribe(a->sub);
  a->drain = aiplat_bus_sub_drain(a->sub, 100);
  if (a->destroy) aiplat_bus_sub_destroy(a->sub);
}

START_TEST(callbacks_cannot_wait_for_themselves) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  self_arg a = {NULL, AIPLAT_OK, AIPLAT_OK, 0, true};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "self.x", NULL, self_stop, &a, &sub),
      AIPLAT_OK);
  __atomic_store_n(&a.sub, sub, __ATOMIC_RELEASE);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(aiplat_bus_publish(bus, "self.x", "m", 1, NULL),
                     AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  tu_sleep_ms(200);
  /* Destroyed from its own callback after the first message. */
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(a.unsub, AIPLAT_ERR_STATE);
  ck_assert_int_eq(a.drain, AIPLAT_ERR_STATE);
  aiplat_bus_destroy(bus);
}
END_TEST

static void keep_for_later(aiplat_bus_msg *m, void *ud) {
  aiplat_bus_msg **slot = ud;
  __atomic_store_n(slot, aiplat_bus_msg_retain(m), __ATOMIC_RELEASE);
}

START_TEST(retained_message_outlives_callback_and_bus) {
  aiplat_bus *bus = tu_connect(th_nats_url(server));
  aiplat_bus_msg *kept = NULL;
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "keep.x", NULL, keep_for_later, &kept, &sub),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  aiplat_bus_msg *r = NULL;
  /* The responder answers from this thread, after its callback returned. */
  aiplat_bus_sub *waiter = NULL;
  tu_collector c;
  tu_collector_init(&c);
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "keep.reply", NULL, tu_collect, &c, &waiter),
      AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_bus_publish_request(bus, "keep.x", "keep.reply", "q", 1, NULL),
      AIPLAT_OK);
  int64_t end = tu_now_ms() + 5000;
  while (!__atomic_load_n(&kept, __ATOMIC_ACQUIRE) && tu_now_ms() < end)
    tu_sleep_ms(5);
  ck_assert_ptr_nonnull(kept);
  ck_assert_str_eq(aiplat_bus_msg_reply(kept), "keep.reply");
  ck_assert_int_eq(aiplat_bus_msg_respond(kept, "late answer", 11, NULL),
                   AIPLAT_OK);
  ck_assert(tu_wait_count(&c, 1, 5000));
  ck_assert_str_eq(c.last_data, "late answer");
  (void)r;
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_sub_destroy(waiter);
  /* The bus goes first; the message keeps what it needs. */
  aiplat_bus_destroy(bus);
  ck_assert_str_eq(aiplat_bus_msg_subject(kept), "keep.x");
  ck_assert_str_eq(aiplat_bus_msg_data(kept), "q");
  ck_assert_int_eq(aiplat_bus_msg_respond(kept, "x", 1, NULL),
                   AIPLAT_ERR_CLOSED);
  aiplat_bus_msg_destroy(kept);
  tu_collector_free(&c);
}
END_TEST

START_TEST(slow_consumer_is_reported) {
  aiplat_config *cfg = tu_config(th_nats_url(server));
  aiplat_bus *bus = NULL;
  tu_events ev;
  tu_events_init(&ev);
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_bus_set_event_callback(bus, tu_on_event, &ev),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  tu_collector c;
  tu_collector_init(&c);
  c.block = true; /* the callback holds the delivery thread */
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(
      aiplat_bus_subscribe(bus, "slow.x", NULL, tu_collect, &c, &sub),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  /* More than the 65536 messages a subscription may queue. */
  for (int i = 0; i < 70000; i++)
    ck_assert_int_eq(aiplat_bus_publish(bus, "slow.x", "m", 1, NULL),
                     AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 10000), AIPLAT_OK);
  ck_assert(tu_wait_event(&ev, AIPLAT_BUS_EVENT_ERROR, 1, 10000));
  ck_assert_int_eq(ev.last_error, AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_nonnull(strstr(ev.last_detail, "slow consumer"));
  ck_assert_uint_gt(aiplat_bus_async_error_count(bus), 0);
  ck_assert_uint_gt(aiplat_bus_sub_dropped_count(sub), 0);
  tu_unblock(&c);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  tu_collector_free(&c);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("bus");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, start_server, stop_server);
  tcase_add_test(tc, connect_several_urls_one_dead);
  tcase_add_test(tc, connect_no_server);
  tcase_add_test(tc, bad_settings_are_config_errors);
  tcase_add_test(tc, token_auth);
  tcase_add_test(tc, user_password_auth);
  tcase_add_test(tc, state_errors);
  tcase_add_test(tc, tls_with_ca_and_client_certificate);
  tcase_add_test(tc, publish_subscribe_with_headers);
  tcase_add_test(tc, hostile_subjects_are_never_published);
  tcase_add_test(tc, request_reply);
  tcase_add_test(tc, no_responders_is_unavailable);
  tcase_add_test(tc, request_timeout);
  tcase_add_test(tc, close_unblocks_request);
  tcase_add_test(tc, queue_group_shares_messages);
  tcase_add_test(tc, payload_over_max_payload);
  tcase_add_test(tc, reconnect_after_server_restart);
  tcase_add_test(tc, retry_on_failed_connect);
  tcase_add_test(tc, drain_subscription_and_bus);
  tcase_add_test(tc, callbacks_cannot_wait_for_themselves);
  tcase_add_test(tc, retained_message_outlives_callback_and_bus);
  tcase_add_test(tc, slow_consumer_is_reported);
  tcase_add_test(tc, permission_violation_is_reported);
  suite_add_tcase(s, tc);
  return s;
}
