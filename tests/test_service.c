/* The service framework against a real nats-server: typed request/reply,
 * error replies, queue groups, the micro protocol, deadlines, graceful
 * shutdown (in process and by SIGTERM to a real service binary), readiness
 * across a server restart, and JetStream ack / nak / term. */
#include <aiplat/aiplat.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/nats_harness.h"
#include "fakes/http_fake.h"
#include "harness/testutil.h"

static th_nats *server;

static void server_up(void) {
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
}
static void server_up_small(void) {
  server = th_nats_start("max_payload: 4096");
  ck_assert_ptr_nonnull(server);
}
static void server_down(void) {
  th_nats_stop(server);
  server = NULL;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- a service running on its own thread --------------------------------- */

typedef struct svc_run {
  aiplat_config *cfg;
  aiplat_service *svc;
  pthread_t thread;
  aiplat_status result;
  atomic_int calls;
} svc_run;

static void *run_thread(void *arg) {
  svc_run *r = arg;
  r->result = aiplat_service_run(r->svc);
  return NULL;
}

static aiplat_config *test_config(void) {
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_URL", th_nats_url(server)), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_PORT", "0"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HEALTH_BIND", "127.0.0.1"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_RECONNECT_WAIT", "100ms"), AIPLAT_OK);
  return cfg;
}

static aiplat_status on_echo(aiplat_request *req, void *ud) {
  svc_run *r = ud;
  atomic_fetch_add(&r->calls, 1);
  const char *text = NULL;
  aiplat_msg_get_string(aiplat_request_message(req), "message", &text);
  if (!text || !*text)
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT, "message is empty");
  if (strcmp(text, "no reply") == 0) return AIPLAT_OK;
  if (strcmp(text, "fail") == 0) {
    aiplat_log(AIPLAT_LOG_DEBUG, "failing on purpose");
    return AIPLAT_ERR_SERVER; /* no detail: the framework uses the status */
  }
  if (strncmp(text, "sleep ", 6) == 0) sleep_ms(atol(text + 6));
  char left[32];
  if (strcmp(text, "time left") == 0) {
    snprintf(left, sizeof left, "%lld", (long long)aiplat_request_time_left_ms(req));
    text = left;
  }
  aiplat_msg *out = NULL;
  ck_assert_int_eq(aiplat_msg_create(&out, AIPLAT_MSG_CHAT_RESPONSE), AIPLAT_OK);
  aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (strcmp(text, "big") == 0) {
    static char big[8001];
    memset(big, 'x', 8000);
    aiplat_msg_set_string(out, "text", big);
  } else {
    aiplat_msg_set_string(out, "text", text);
  }
  aiplat_msg_set_string(out, "model", aiplat_request_trace_id(req));
  aiplat_status st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

static void svc_start(svc_run *r, unsigned workers, int64_t timeout_ms) {
  memset(r, 0, sizeof *r);
  r->cfg = test_config();
  ck_assert_int_eq(aiplat_service_create(&r->svc, r->cfg, "echo", "1.2.3", "echo for tests"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_handle_signals(r->svc, false), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_workers(r->svc, workers), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_request_timeout_ms(r->svc, timeout_ms), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_shutdown_grace_ms(r->svc, 5000), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_add_endpoint(r->svc, "echo", "test.echo", NULL,
                                               AIPLAT_MSG_CHAT_REQUEST,
                                               AIPLAT_MSG_CHAT_RESPONSE, on_echo, r),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_start(r->svc), AIPLAT_OK);
  ck_assert_int_eq(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static aiplat_status svc_stop(svc_run *r) {
  aiplat_service_stop(r->svc);
  pthread_join(r->thread, NULL);
  aiplat_service_destroy(r->svc);
  aiplat_config_destroy(r->cfg);
  return r->result;
}

/* ---- a client -------------------------------------------------------------- */

static aiplat_bus *client(void) {
  aiplat_bus *bus = NULL;
  aiplat_config *cfg = test_config();
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  return bus;
}

static uint8_t *chat_request_id(const char *text, const char *id, size_t *len) {
  aiplat_msg *m = NULL;
  uint8_t *buf = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_CHAT_REQUEST), AIPLAT_OK);
  aiplat_msg_set_string(m, "user_id", "u1");
  aiplat_msg_set_string(m, "request_id", id);
  aiplat_msg_set_string(m, "message", text);
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, len), AIPLAT_OK);
  aiplat_msg_destroy(m);
  return buf;
}

static uint8_t *chat_request(const char *text, size_t *len) {
  return chat_request_id(text, "req-42", len);
}

/* Send a ChatRequest and decode the ChatResponse (caller destroys both). */
static aiplat_msg *ask(aiplat_bus *bus, const char *text, aiplat_headers *h,
                       aiplat_bus_msg **raw) {
  size_t len;
  uint8_t *buf = chat_request(text, &len);
  aiplat_bus_msg *reply = NULL;
  aiplat_status st = aiplat_bus_request(bus, "test.echo", buf, len, h, 5000, &reply);
  aiplat_free(buf);
  ck_assert_msg(st == AIPLAT_OK, "request failed: %s", aiplat_status_str(st));
  aiplat_msg *rep = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&rep, AIPLAT_MSG_CHAT_RESPONSE,
                                     aiplat_bus_msg_data(reply), aiplat_bus_msg_len(reply)),
                   AIPLAT_OK);
  if (raw)
    *raw = reply;
  else
    aiplat_bus_msg_destroy(reply);
  return rep;
}

static int64_t error_code(aiplat_msg *rep, const char **text) {
  if (!aiplat_msg_has(rep, "error")) return 0;
  aiplat_msg *e = NULL;
  int64_t code = -1;
  ck_assert_int_eq(aiplat_msg_get_message(rep, "error", &e), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_int64(e, "code", &code), AIPLAT_OK);
  if (text) aiplat_msg_get_string(e, "message", text);
  return code;
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(echo_roundtrip_with_trace_and_request_id) {
  svc_run r;
  svc_start(&r, 2, 10000);
  aiplat_bus *bus = client();
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  aiplat_headers_set(h, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  aiplat_bus_msg *raw = NULL;
  aiplat_msg *rep = ask(bus, "hello", h, &raw);
  const char *s = NULL;
  ck_assert_int_eq(error_code(rep, NULL), 0);
  aiplat_msg_get_string(rep, "text", &s);
  ck_assert_str_eq(s, "hello");
  aiplat_msg_get_string(rep, "request_id", &s);
  ck_assert_str_eq(s, "req-42");
  aiplat_msg_get_string(rep, "model", &s); /* the handler saw the trace id */
  ck_assert_str_eq(s, "0af7651916cd43dd8448eb211c80319c");
  const char *tp = NULL;
  ck_assert_int_eq(aiplat_bus_msg_header(raw, "traceparent", &tp), AIPLAT_OK);
  ck_assert_int_eq(strncmp(tp, "00-0af7651916cd43dd8448eb211c80319c-", 36), 0);
  ck_assert_str_ne(tp + 36, "b7ad6b7169203331-01"); /* a new span */
  aiplat_bus_msg_destroy(raw);
  aiplat_msg_destroy(rep);
  aiplat_headers_destroy(h);
  aiplat_bus_destroy(bus);
  ck_assert_int_eq(svc_stop(&r), AIPLAT_OK);
}
END_TEST

START_TEST(error_replies_never_silence) {
  svc_run r;
  svc_start(&r, 2, 10000);
  aiplat_bus *bus = client();
  /* undecodable payload */
  aiplat_bus_msg *reply = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, "test.echo", "\xff\xff\xff\xff", 4, NULL, 5000, &reply),
                   AIPLAT_OK);
  const char *code = NULL, *text = NULL;
  ck_assert_int_eq(aiplat_bus_msg_header(reply, "Nats-Service-Error-Code", &code), AIPLAT_OK);
  ck_assert_str_eq(code, "400");
  ck_assert_int_eq(aiplat_bus_msg_header(reply, "Nats-Service-Error", &text), AIPLAT_OK);
  ck_assert_ptr_nonnull(strstr(text, "ChatRequest"));
  aiplat_msg *rep = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&rep, AIPLAT_MSG_CHAT_RESPONSE, aiplat_bus_msg_data(reply),
                                     aiplat_bus_msg_len(reply)),
                   AIPLAT_OK);
  ck_assert_int_eq(error_code(rep, NULL), AIPLAT_ERR_DECODE);
  aiplat_msg_destroy(rep);
  aiplat_bus_msg_destroy(reply);
  ck_assert_int_eq(atomic_load(&r.calls), 0); /* the handler never saw it */

  /* a bad request, a handler without reply, a handler failure */
  rep = ask(bus, "", NULL, NULL);
  ck_assert_int_eq(error_code(rep, &text), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(text, "message is empty");
  aiplat_msg_destroy(rep);
  rep = ask(bus, "no reply", NULL, NULL);
  ck_assert_int_eq(error_code(rep, &text), AIPLAT_ERR_INTERNAL);
  aiplat_msg_destroy(rep);
  rep = ask(bus, "fail", NULL, NULL);
  ck_assert_int_eq(error_code(rep, &text), AIPLAT_ERR_SERVER);
  const char *rid = NULL;
  aiplat_msg_get_string(rep, "request_id", &rid);
  ck_assert_str_eq(rid, "req-42");
  aiplat_msg_destroy(rep);
  aiplat_bus_destroy(bus);
  ck_assert_int_eq(svc_stop(&r), AIPLAT_OK);
}
END_TEST

START_TEST(two_instances_share_a_queue_group) {
  svc_run a, b;
  svc_start(&a, 2, 10000);
  svc_start(&b, 2, 10000);
  aiplat_bus *bus = client();
  for (int i = 0; i < 60; i++) aiplat_msg_destroy(ask(bus, "x", NULL, NULL));
  ck_assert_int_eq(atomic_load(&a.calls) + atomic_load(&b.calls), 60);
  ck_assert_int_gt(atomic_load(&a.calls), 0);
  ck_assert_int_gt(atomic_load(&b.calls), 0);
  aiplat_bus_destroy(bus);
  svc_stop(&a);
  svc_stop(&b);
}
END_TEST

static json_t *srv_request(aiplat_bus *bus, const char *subject) {
  aiplat_bus_msg *reply = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, subject, NULL, 0, NULL, 3000, &reply), AIPLAT_OK);
  json_error_t err;
  json_t *j = json_loadb(aiplat_bus_msg_data(reply), aiplat_bus_msg_len(reply), 0, &err);
  ck_assert_ptr_nonnull(j);
  aiplat_bus_msg_destroy(reply);
  return j;
}

START_TEST(micro_protocol_ping_info_stats) {
  svc_run r;
  svc_start(&r, 2, 10000);
  aiplat_bus *bus = client();
  aiplat_msg_destroy(ask(bus, "a", NULL, NULL));
  aiplat_msg_destroy(ask(bus, "", NULL, NULL));
  json_t *j = srv_request(bus, "$SRV.PING");
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "io.nats.micro.v1.ping_response");
  ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "echo");
  ck_assert_str_eq(json_string_value(json_object_get(j, "id")), aiplat_service_id(r.svc));
  json_decref(j);
  j = srv_request(bus, "$SRV.INFO.echo");
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "io.nats.micro.v1.info_response");
  ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "1.2.3");
  ck_assert_str_eq(json_string_value(json_object_get(j, "description")), "echo for tests");
  json_t *ep = json_array_get(json_object_get(j, "endpoints"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(ep, "name")), "echo");
  ck_assert_str_eq(json_string_value(json_object_get(ep, "subject")), "test.echo");
  ck_assert_str_eq(json_string_value(json_object_get(ep, "queue_group")), "echo");
  json_decref(j);
  char subject[128];
  snprintf(subject, sizeof subject, "$SRV.STATS.echo.%s", aiplat_service_id(r.svc));
  j = srv_request(bus, subject);
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "io.nats.micro.v1.stats_response");
  ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "started")));
  ep = json_array_get(json_object_get(j, "endpoints"), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(ep, "num_requests")), 2);
  ck_assert_int_eq(json_integer_value(json_object_get(ep, "num_errors")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(ep, "last_error")), "message is empty");
  ck_assert_int_gt(json_integer_value(json_object_get(ep, "processing_time")), 0);
  json_decref(j);
  aiplat_bus_destroy(bus);
  svc_stop(&r);
}
END_TEST

typedef struct waiter {
  atomic_int got;
  char text[64];
  int64_t code; /* the reply's error code, 0 for none */
} waiter;

static void on_reply(aiplat_bus_msg *m, void *ud) {
  waiter *w = ud;
  aiplat_msg *rep = NULL;
  if (aiplat_msg_decode(&rep, AIPLAT_MSG_CHAT_RESPONSE, aiplat_bus_msg_data(m),
                        aiplat_bus_msg_len(m)) == AIPLAT_OK) {
    const char *t = "";
    aiplat_msg_get_string(rep, "text", &t);
    snprintf(w->text, sizeof w->text, "%s", t);
    w->code = error_code(rep, NULL);
    aiplat_msg_destroy(rep);
  }
  atomic_fetch_add(&w->got, 1);
}

/* Publish a request on @subject whose reply lands in @w. */
static aiplat_bus_sub *ask_async_on(aiplat_bus *bus, const char *subject, const char *inbox,
                                    const char *text, waiter *w) {
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, inbox, NULL, on_reply, w, &sub), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  size_t len;
  uint8_t *buf = chat_request(text, &len);
  ck_assert_int_eq(aiplat_bus_publish_request(bus, subject, inbox, buf, len, NULL), AIPLAT_OK);
  aiplat_free(buf);
  return sub;
}

static int64_t now_ms_(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Publish a request whose reply lands in @w. */
static aiplat_bus_sub *ask_async(aiplat_bus *bus, const char *inbox, const char *text, waiter *w) {
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, inbox, NULL, on_reply, w, &sub), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 2000), AIPLAT_OK);
  size_t len;
  uint8_t *buf = chat_request(text, &len);
  ck_assert_int_eq(aiplat_bus_publish_request(bus, "test.echo", inbox, buf, len, NULL), AIPLAT_OK);
  aiplat_free(buf);
  return sub;
}

START_TEST(stop_lets_inflight_requests_finish) {
  svc_run r;
  svc_start(&r, 2, 10000);
  aiplat_bus *bus = client();
  waiter w = {0};
  aiplat_bus_sub *sub = ask_async(bus, "test.inbox.stop", "sleep 800", &w);
  for (int i = 0; i < 100 && atomic_load(&r.calls) == 0; i++) sleep_ms(10);
  ck_assert_int_eq(atomic_load(&r.calls), 1);
  ck_assert_int_eq(svc_stop(&r), AIPLAT_OK); /* returns after the reply */
  for (int i = 0; i < 200 && atomic_load(&w.got) == 0; i++) sleep_ms(10);
  ck_assert_int_eq(atomic_load(&w.got), 1);
  ck_assert_str_eq(w.text, "sleep 800");
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(deadline_passed_in_the_queue) {
  svc_run r;
  svc_start(&r, 1, 10000); /* one worker */
  aiplat_bus *bus = client();
  waiter w = {0};
  aiplat_bus_sub *sub = ask_async(bus, "test.inbox.slow", "sleep 700", &w);
  for (int i = 0; i < 100 && atomic_load(&r.calls) == 0; i++) sleep_ms(10);
  /* the caller stops waiting in 300 ms; the only worker is busy for 700 */
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%lld",
           (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 300);
  aiplat_headers_set(h, "Aiplat-Deadline", deadline);
  aiplat_msg *rep = ask(bus, "queued", h, NULL);
  aiplat_headers_destroy(h);
  ck_assert_int_eq(error_code(rep, NULL), AIPLAT_ERR_TIMEOUT);
  aiplat_msg_destroy(rep);
  ck_assert_int_eq(atomic_load(&r.calls), 1); /* the handler never ran */
  for (int i = 0; i < 200 && atomic_load(&w.got) == 0; i++) sleep_ms(10);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  svc_stop(&r);
}
END_TEST

START_TEST(deadline_header_values_are_range_checked) {
  svc_run r;
  svc_start(&r, 1, 10000);
  aiplat_bus *bus = client();
  /* Far future, overflowing, negative or malformed: the service's own
   * budget applies and the handler runs. */
  const char *ignored[] = {"9223372036854775807", "99999999999999999999",
                           "-9223372036854775808", "-5", "0", "12abc", "",
                           "0x7fffffffffffffff", "+5"};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
    aiplat_headers *h = NULL;
    aiplat_headers_create(&h);
    aiplat_headers_set(h, "Aiplat-Deadline", ignored[i]);
    aiplat_msg *rep = ask(bus, "time left", h, NULL);
    aiplat_headers_destroy(h);
    ck_assert_msg(error_code(rep, NULL) == AIPLAT_OK, "Aiplat-Deadline: %s", ignored[i]);
    const char *text = NULL;
    aiplat_msg_get_string(rep, "text", &text);
    long long left = atoll(text);
    ck_assert_msg(left > 0 && left <= 10000, "%s: %lld ms left", ignored[i], left);
    aiplat_msg_destroy(rep);
  }
  /* Long past (the first Unix millisecond): answered TIMEOUT at once. */
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  aiplat_headers_set(h, "Aiplat-Deadline", "1");
  aiplat_msg *rep = ask(bus, "time left", h, NULL);
  aiplat_headers_destroy(h);
  ck_assert_int_eq(error_code(rep, NULL), AIPLAT_ERR_TIMEOUT);
  aiplat_msg_destroy(rep);
  ck_assert_int_eq(atomic_load(&r.calls), (int)(sizeof ignored / sizeof ignored[0]));
  aiplat_bus_destroy(bus);
  svc_stop(&r);
  /* The service's own timeout is bounded too. */
  aiplat_config *cfg = test_config();
  aiplat_service *svc = NULL;
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "echo", "1.2.3", NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_request_timeout_ms(svc, INT64_MAX),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
}
END_TEST

/* ---- requests handed over (deferred) ------------------------------------- */

typedef struct held {
  pthread_mutex_t mu;
  aiplat_request *reqs[64];
  int n;
  atomic_int cancels;
  bool with_cancel;
} held;

static void on_held_cancel(aiplat_request *req, void *ud) {
  (void)req;
  atomic_fetch_add(&((held *)ud)->cancels, 1);
}

static aiplat_status on_defer(aiplat_request *req, void *ud) {
  held *h = ud;
  ck_assert_int_eq(aiplat_request_defer(req), AIPLAT_OK);
  ck_assert_int_eq(aiplat_request_defer(req), AIPLAT_ERR_STATE);
  if (h->with_cancel) aiplat_request_set_cancel_callback(req, on_held_cancel, h);
  pthread_mutex_lock(&h->mu);
  h->reqs[h->n++] = req;
  pthread_mutex_unlock(&h->mu);
  return AIPLAT_ERR_INTERNAL; /* ignored once deferred */
}

static int held_count(held *h) {
  pthread_mutex_lock(&h->mu);
  int n = h->n;
  pthread_mutex_unlock(&h->mu);
  return n;
}

static void answer_held(aiplat_request *req, const char *text) {
  aiplat_msg *out = NULL;
  ck_assert_int_eq(aiplat_msg_create(&out, AIPLAT_MSG_CHAT_RESPONSE), AIPLAT_OK);
  aiplat_msg_set_string(out, "text", text);
  aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  ck_assert_int_eq(aiplat_request_complete(req, AIPLAT_OK, NULL), AIPLAT_OK);
}

static aiplat_service *held_service(aiplat_config **cfg, held *h, int max_in_flight,
                                    int64_t grace_ms) {
  aiplat_service *svc = NULL;
  *cfg = test_config();
  ck_assert_int_eq(aiplat_service_create(&svc, *cfg, "held", "1.0.0", NULL), AIPLAT_OK);
  aiplat_service_set_handle_signals(svc, false);
  ck_assert_int_eq(aiplat_service_set_workers(svc, 1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_max_in_flight(svc, max_in_flight), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_set_max_in_flight(svc, 0), AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_service_set_shutdown_grace_ms(svc, grace_ms);
  ck_assert_int_eq(aiplat_service_add_endpoint(svc, "held", "test.held", NULL,
                                               AIPLAT_MSG_CHAT_REQUEST,
                                               AIPLAT_MSG_CHAT_RESPONSE, on_defer, h),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_OK);
  return svc;
}

static void *run_svc(void *arg) {
  aiplat_service_run(arg);
  return NULL;
}

START_TEST(deferred_requests_finish_later_and_overload_is_answered) {
  held h = {.n = 0};
  pthread_mutex_init(&h.mu, NULL);
  aiplat_config *cfg;
  aiplat_service *svc = held_service(&cfg, &h, 4, 5000);
  pthread_t t;
  pthread_create(&t, NULL, run_svc, svc);
  aiplat_bus *bus = client();
  /* Four requests in flight at once on one delivery thread: none waits
   * behind another. */
  waiter w[4] = {{0}};
  aiplat_bus_sub *subs[4];
  for (int i = 0; i < 4; i++) {
    char inbox[32];
    snprintf(inbox, sizeof inbox, "test.inbox.held%d", i);
    subs[i] = ask_async_on(bus, "test.held", inbox, "hold", &w[i]);
  }
  for (int i = 0; i < 300 && held_count(&h) < 4; i++) sleep_ms(10);
  ck_assert_int_eq(held_count(&h), 4);
  /* The fifth is over MAX_IN_FLIGHT: an immediate, retryable error. */
  size_t len;
  uint8_t *buf = chat_request("one more", &len);
  aiplat_bus_msg *reply = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, "test.held", buf, len, NULL, 2000, &reply), AIPLAT_OK);
  aiplat_free(buf);
  aiplat_msg *rep = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&rep, AIPLAT_MSG_CHAT_RESPONSE, aiplat_bus_msg_data(reply),
                                     aiplat_bus_msg_len(reply)),
                   AIPLAT_OK);
  const char *text = NULL;
  ck_assert_int_eq(error_code(rep, &text), AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_nonnull(strstr(text, "overloaded"));
  ck_assert_ptr_nonnull(strstr(text, "MAX_IN_FLIGHT"));
  aiplat_msg *e = NULL;
  bool retryable = false;
  aiplat_msg_get_message(rep, "error", &e);
  aiplat_msg_get_bool(e, "retryable", &retryable);
  ck_assert(retryable);
  aiplat_msg_destroy(rep);
  aiplat_bus_msg_destroy(reply);
  ck_assert_int_eq(held_count(&h), 4); /* the handler never saw it */
  /* Finished from this thread, in reverse order. */
  for (int i = 3; i >= 0; i--) answer_held(h.reqs[i], "later");
  for (int i = 0; i < 4; i++) {
    for (int k = 0; k < 300 && atomic_load(&w[i].got) == 0; k++) sleep_ms(10);
    ck_assert_int_eq(atomic_load(&w[i].got), 1);
    ck_assert_str_eq(w[i].text, "later");
    aiplat_bus_sub_destroy(subs[i]);
  }
  aiplat_bus_destroy(bus);
  aiplat_service_stop(svc);
  pthread_join(t, NULL);
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  pthread_mutex_destroy(&h.mu);
}
END_TEST

typedef struct late {
  aiplat_request *req;
  int delay_ms;
  aiplat_status st;
} late;

static void *complete_late(void *arg) {
  late *l = arg;
  sleep_ms(l->delay_ms);
  aiplat_request_complete(l->req, l->st, "finished late");
  return NULL;
}

START_TEST(stop_past_grace_cancels_deferred_requests) {
  held h = {.n = 0, .with_cancel = true};
  pthread_mutex_init(&h.mu, NULL);
  aiplat_config *cfg;
  aiplat_service *svc = held_service(&cfg, &h, 16, 300);
  pthread_t t;
  pthread_create(&t, NULL, run_svc, svc);
  aiplat_bus *bus = client();
  waiter w = {0};
  aiplat_bus_sub *sub = ask_async_on(bus, "test.held", "test.inbox.grace", "hold", &w);
  for (int i = 0; i < 300 && held_count(&h) < 1; i++) sleep_ms(10);
  ck_assert_int_eq(held_count(&h), 1);
  /* The work stops when asked (its cancel callback), then completes. */
  late l = {h.reqs[0], 600, AIPLAT_ERR_CANCELLED};
  pthread_t lt;
  pthread_create(&lt, NULL, complete_late, &l);
  int64_t t0 = now_ms_();
  aiplat_service_stop(svc);
  pthread_join(t, NULL);
  int64_t took = now_ms_() - t0;
  ck_assert_int_eq(atomic_load(&h.cancels), 1);
  ck_assert_int_ge(took, 250); /* the grace was given */
  for (int i = 0; i < 300 && atomic_load(&w.got) == 0; i++) sleep_ms(10);
  ck_assert_int_eq(atomic_load(&w.got), 1);
  ck_assert_int_eq(w.code, AIPLAT_ERR_CANCELLED); /* an error, never silence */
  pthread_join(lt, NULL);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  pthread_mutex_destroy(&h.mu);
}
END_TEST

/* ---- a blocking backend call inside a handler ------------------------------- */

typedef struct llm_svc {
  aiplat_llm *llm;
  atomic_int status;
} llm_svc;

static aiplat_status on_ask_llm(aiplat_request *req, void *ud) {
  llm_svc *x = ud;
  aiplat_llm_request *lr = NULL;
  aiplat_llm_request_create(&lr);
  aiplat_llm_request_add_message(lr, "user", "hi");
  aiplat_llm_result *res = NULL;
  aiplat_status st = aiplat_llm_complete(x->llm, lr, &res);
  atomic_store(&x->status, (int)st);
  aiplat_llm_result_destroy(res);
  aiplat_llm_request_destroy(lr);
  return st == AIPLAT_OK ? aiplat_request_fail(req, AIPLAT_ERR_INTERNAL, "unexpected answer")
                         : aiplat_request_fail(req, st, "the model server did not answer");
}

START_TEST(the_callers_deadline_bounds_a_blocking_backend_call) {
  hf_server *hf = hf_start();
  ck_assert_ptr_nonnull(hf);
  hf_response slow = hf_resp(200, "application/json", "{}");
  slow.delay_ms = 5000;
  hf_push(hf, &slow);
  aiplat_config *cfg = test_config();
  char url[96];
  snprintf(url, sizeof url, "%s/v1", hf_url(hf));
  aiplat_config_set(cfg, "VLLM_URL", url);
  aiplat_config_set(cfg, "LLM_TIMEOUT", "60s");
  llm_svc x = {0};
  ck_assert_int_eq(aiplat_llm_create(&x.llm, cfg), AIPLAT_OK);
  aiplat_service *svc = NULL;
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "asker", "1.0.0", NULL), AIPLAT_OK);
  aiplat_service_set_handle_signals(svc, false);
  ck_assert_int_eq(aiplat_service_add_endpoint(svc, "ask", "test.ask", NULL,
                                               AIPLAT_MSG_CHAT_REQUEST,
                                               AIPLAT_MSG_CHAT_RESPONSE, on_ask_llm, &x),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_OK);
  pthread_t t;
  pthread_create(&t, NULL, run_svc, svc);
  aiplat_bus *bus = client();
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%lld",
           (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 400);
  aiplat_headers_set(h, "Aiplat-Deadline", deadline);
  size_t len;
  uint8_t *buf = chat_request("hi", &len);
  aiplat_bus_msg *reply = NULL;
  int64_t t0 = now_ms_();
  ck_assert_int_eq(aiplat_bus_request(bus, "test.ask", buf, len, h, 10000, &reply), AIPLAT_OK);
  int64_t took = now_ms_() - t0;
  aiplat_free(buf);
  aiplat_headers_destroy(h);
  aiplat_bus_msg_destroy(reply);
  /* The LLM client's own timeout is 60 s: the caller's 400 ms ended it. */
  ck_assert_int_eq(atomic_load(&x.status), AIPLAT_ERR_TIMEOUT);
  ck_assert_msg(took < 3000, "answered after %lld ms", (long long)took);
  aiplat_bus_destroy(bus);
  aiplat_service_stop(svc);
  pthread_join(t, NULL);
  aiplat_service_destroy(svc);
  aiplat_llm_destroy(x.llm);
  aiplat_config_destroy(cfg);
  hf_stop(hf);
}
END_TEST

START_TEST(reply_over_max_payload_becomes_an_error_reply) {
  svc_run r;
  svc_start(&r, 1, 10000);
  aiplat_bus *bus = client();
  aiplat_msg *rep = ask(bus, "big", NULL, NULL);
  const char *text = NULL;
  ck_assert_int_eq(error_code(rep, &text), AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_nonnull(strstr(text, "4096"));
  aiplat_msg_destroy(rep);
  /* a request over the limit is refused at the client, clearly */
  static char big[5000];
  memset(big, 'y', sizeof big);
  aiplat_bus_msg *reply = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, "test.echo", big, sizeof big, NULL, 1000, &reply),
                   AIPLAT_ERR_TOO_LARGE);
  aiplat_bus_destroy(bus);
  svc_stop(&r);
}
END_TEST

static size_t discard(char *p, size_t s, size_t n, void *u) {
  (void)p, (void)u;
  return s * n;
}

static long http_status(int port, const char *path) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  return code;
}

static long wait_status(int port, const char *path, long want) {
  long got = 0;
  for (int i = 0; i < 150 && (got = http_status(port, path)) != want; i++) sleep_ms(100);
  return got;
}

START_TEST(readiness_follows_the_nats_connection) {
  svc_run r;
  svc_start(&r, 1, 10000);
  int port = aiplat_health_port(aiplat_service_health(r.svc));
  ck_assert_int_gt(port, 0);
  ck_assert_int_eq(wait_status(port, "/ready", 200), 200);
  ck_assert_int_eq(http_status(port, "/health"), 200);
  ck_assert(th_nats_kill(server));
  ck_assert_int_eq(wait_status(port, "/ready", 503), 503);
  ck_assert_int_eq(http_status(port, "/health"), 200); /* alive all along */
  ck_assert(th_nats_restart(server));
  ck_assert_int_eq(wait_status(port, "/ready", 200), 200);
  aiplat_bus *bus = client(); /* and it serves again */
  aiplat_msg_destroy(ask(bus, "back", NULL, NULL));
  aiplat_bus_destroy(bus);
  svc_stop(&r);
}
END_TEST

START_TEST(stop_while_nats_is_down_is_clean) {
  svc_run r;
  svc_start(&r, 2, 10000);
  ck_assert_int_eq(aiplat_service_set_shutdown_grace_ms(r.svc, 3000), AIPLAT_OK);
  int port = aiplat_health_port(aiplat_service_health(r.svc));
  ck_assert(th_nats_kill(server));
  ck_assert_int_eq(wait_status(port, "/ready", 503), 503);
  /* idle, with no server to drain through: a clean stop, not a timeout */
  ck_assert_int_eq(svc_stop(&r), AIPLAT_OK);
  ck_assert(th_nats_restart(server));
}
END_TEST

/* ---- JetStream --------------------------------------------------------------- */

static atomic_int js_flaky, js_bad, js_good;

static aiplat_status on_js(aiplat_request *req, void *ud) {
  (void)ud;
  const char *text = "";
  aiplat_msg_get_string(aiplat_request_message(req), "message", &text);
  if (strcmp(text, "flaky") == 0 && atomic_fetch_add(&js_flaky, 1) == 0)
    return aiplat_request_fail(req, AIPLAT_ERR_UNAVAILABLE, "backend down, try again");
  if (strcmp(text, "bad") == 0) {
    atomic_fetch_add(&js_bad, 1);
    return aiplat_request_fail(req, AIPLAT_ERR_BAD_REQUEST, "cannot do that");
  }
  if (strcmp(text, "good") == 0) atomic_fetch_add(&js_good, 1);
  return AIPLAT_OK;
}

START_TEST(jetstream_nak_redelivers_and_term_does_not) {
  js_flaky = js_bad = js_good = 0;
  aiplat_config *cfg = test_config();
  aiplat_service *svc = NULL;
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "jobs", "1.0.0", "js"), AIPLAT_OK);
  aiplat_service_set_handle_signals(svc, false);
  ck_assert_int_eq(aiplat_service_add_js_endpoint(svc, "work", "JOBS", "jobs-worker", "test.jobs.>",
                                                  AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_INVALID,
                                                  on_js, NULL),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_OK);
  aiplat_bus *bus = client();
  const char *texts[] = {"flaky", "bad", "good"};
  for (int i = 0; i < 3; i++) {
    size_t len;
    char id[64];
    snprintf(id, sizeof id, "nak-%s-%d", texts[i], (int)getpid());
    uint8_t *buf = chat_request_id(texts[i], id, &len);
    ck_assert_int_eq(aiplat_bus_js_publish(bus, "test.jobs.x", buf, len, NULL, NULL), AIPLAT_OK);
    aiplat_free(buf);
  }
  ck_assert_int_eq(aiplat_bus_js_publish(bus, "test.jobs.x", "\x0a\xff", 2, NULL, NULL), AIPLAT_OK);
  for (int i = 0; i < 100 && js_flaky < 2; i++) sleep_ms(50); /* nak: 1 s backoff */
  ck_assert_int_eq(js_flaky, 2);
  ck_assert_int_eq(js_good, 1);
  sleep_ms(1500); /* long enough for a redelivery of anything naked */
  ck_assert_int_eq(js_bad, 1);   /* termed */
  ck_assert_int_eq(js_flaky, 2); /* acked the second time */
  ck_assert_int_eq(js_good, 1);
  aiplat_service_stop(svc);
  ck_assert_int_eq(aiplat_service_run(svc), AIPLAT_OK);
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- JetStream endpoints bind to the stream they find ---------------------- */

/* A JetStream API request; the decoded reply (caller releases it). */
static json_t *js_api(aiplat_bus *bus, const char *op, const char *body) {
  char subject[128];
  snprintf(subject, sizeof subject, "$JS.API.%s", op);
  aiplat_bus_msg *reply = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, subject, body, body ? strlen(body) : 0, NULL, 5000,
                                      &reply),
                   AIPLAT_OK);
  json_t *j = json_loadb(aiplat_bus_msg_data(reply), aiplat_bus_msg_len(reply), 0, NULL);
  aiplat_bus_msg_destroy(reply);
  ck_assert_ptr_nonnull(j);
  return j;
}

/* Create a stream the way an operator would, with settings of its own. */
static void operator_stream(aiplat_bus *bus, const char *name, const char *body) {
  char op[128];
  snprintf(op, sizeof op, "STREAM.CREATE.%s", name);
  json_t *j = js_api(bus, op, body);
  char *text = json_dumps(j, JSON_COMPACT);
  ck_assert_msg(json_object_get(j, "error") == NULL, "create %s: %s", name, text);
  free(text);
  json_decref(j);
}

/* The stream's configuration as the server reports it, keys sorted; free(). */
static char *stream_config(aiplat_bus *bus, const char *name) {
  char op[128];
  snprintf(op, sizeof op, "STREAM.INFO.%s", name);
  json_t *info = js_api(bus, op, NULL);
  json_t *cfg = json_object_get(info, "config");
  ck_assert_msg(cfg != NULL, "no stream %s", name);
  char *text = json_dumps(cfg, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(info);
  ck_assert_ptr_nonnull(text);
  return text;
}

static atomic_int js_seen;

static aiplat_status on_js_seen(aiplat_request *req, void *ud) {
  (void)req, (void)ud;
  atomic_fetch_add(&js_seen, 1);
  return AIPLAT_OK;
}

/* A service with one JetStream endpoint (raw payloads), not started. */
static aiplat_service *js_service(aiplat_config *cfg, const char *stream, const char *subject) {
  aiplat_service *svc = NULL;
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "binder", "1.0.0", "js"), AIPLAT_OK);
  aiplat_service_set_handle_signals(svc, false);
  ck_assert_int_eq(aiplat_service_set_workers(svc, 1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_add_js_endpoint(svc, "work", stream, "binder-worker", subject,
                                                  AIPLAT_MSG_INVALID, AIPLAT_MSG_INVALID,
                                                  on_js_seen, NULL),
                   AIPLAT_OK);
  return svc;
}

static void js_service_end(aiplat_service *svc) {
  aiplat_service_stop(svc);
  ck_assert_int_eq(aiplat_service_run(svc), AIPLAT_OK);
  aiplat_service_destroy(svc);
}

static size_t keep_body(char *p, size_t s, size_t n, void *u) {
  char *buf = u;
  size_t have = strlen(buf), add = s * n;
  if (have + add < 4096) memcpy(buf + have, p, add), buf[have + add] = '\0';
  return s * n;
}

/* The status of GET @path, its body in @body (4096 bytes). */
static long http_get(int port, const char *path, char *body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  body[0] = '\0';
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  return code;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll /ready until it answers @want, for up to @ms; the time it took. */
static int64_t ready_within(int port, long want, int64_t ms, char *body) {
  int64_t t0 = now_ms();
  while (http_get(port, "/ready", body) != want) {
    if (now_ms() - t0 > ms) return -1;
    sleep_ms(100);
  }
  return now_ms() - t0;
}

static void on_nothing(aiplat_bus_msg *m, void *ud) {
  (void)m, (void)ud;
}

START_TEST(readiness_follows_the_jetstream_consumer) {
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  js_seen = 0;
  aiplat_service *svc = js_service(cfg, "RDY", "test.rdy.>");
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_OK);
  int port = aiplat_health_port(aiplat_service_health(svc));
  char body[4096];
  ck_assert_int_ge(ready_within(port, 200, 5000, body), 0);
  ck_assert_ptr_nonnull(strstr(body, "jetstream.work"));

  /* The stream (and its consumer) gone: not ready within a few seconds,
   * and the body says why. */
  ck_assert_int_eq(aiplat_bus_stream_delete(bus, "RDY"), AIPLAT_OK);
  int64_t took = ready_within(port, 503, 10000, body);
  ck_assert_msg(took >= 0, "still ready 10 s after the stream was deleted");
  ck_assert_msg(strstr(body, "\"jetstream.work\":{\"ok\":false") &&
                    strstr(body, "JetStream consumer binder-worker"),
                "%s", body);
  ck_assert(aiplat_bus_is_connected(aiplat_service_bus(svc)));

  /* Back, as an operator restores it: ready again, and serving. */
  const char *subjects[] = {"test.rdy.>"};
  ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "RDY", subjects, 1, 0,
                                            AIPLAT_BUS_RETENTION_WORK_QUEUE),
                   AIPLAT_OK);
  aiplat_bus_sub *again = NULL;
  ck_assert_int_eq(aiplat_bus_js_subscribe(bus, "RDY", "binder-worker", "test.rdy.>", 60000, 5, 1,
                                           on_nothing, NULL, &again),
                   AIPLAT_OK);
  aiplat_bus_sub_destroy(again); /* bound: the consumer stays */
  ck_assert_msg(ready_within(port, 200, 10000, body) >= 0, "not ready again: %s", body);
  ck_assert_int_eq(aiplat_bus_js_publish(bus, "test.rdy.x", "x", 1, NULL, NULL), AIPLAT_OK);
  for (int i = 0; i < 100 && atomic_load(&js_seen) < 1; i++) sleep_ms(50);
  ck_assert_int_eq(atomic_load(&js_seen), 1);
  js_service_end(svc);
  aiplat_bus_stream_delete(bus, "RDY");
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

/* The number of messages stream @name holds. */
static json_int_t stream_messages(aiplat_bus *bus, const char *name) {
  char op[128];
  snprintf(op, sizeof op, "STREAM.INFO.%s", name);
  json_t *info = js_api(bus, op, NULL);
  json_int_t n = json_integer_value(json_object_get(json_object_get(info, "state"), "messages"));
  json_decref(info);
  return n;
}

static void publish_with_id(aiplat_bus *bus, const char *subject, const char *id) {
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  ck_assert_int_eq(aiplat_headers_set(h, "Aiplat-Request-Id", id), AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_js_publish(bus, subject, "x", 1, h, NULL), AIPLAT_OK);
  aiplat_headers_destroy(h);
}

/* One instance of a shared JetStream endpoint: what it handled, and the
 * most requests it held at once. */
typedef struct share_inst {
  atomic_int handled, now, most;
} share_inst;

static atomic_int share_seen[200];

static aiplat_status on_share(aiplat_request *req, void *ud) {
  share_inst *in = ud;
  int now = atomic_fetch_add(&in->now, 1) + 1;
  for (int m = atomic_load(&in->most); now > m && !atomic_compare_exchange_weak(&in->most, &m, now);) {
  }
  const char *id = aiplat_request_id(req);
  int i = id && id[0] == 's' ? atoi(id + 1) : -1;
  if (i >= 0 && i < 200) atomic_fetch_add(&share_seen[i], 1);
  sleep_ms(5);
  atomic_fetch_add(&in->handled, 1);
  atomic_fetch_sub(&in->now, 1);
  return AIPLAT_OK;
}

START_TEST(two_instances_share_a_jetstream_burst) {
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  ck_assert_int_eq(aiplat_config_set(cfg, "MAX_IN_FLIGHT", "8"), AIPLAT_OK);
  share_inst in[2];
  aiplat_service *svc[2];
  for (int k = 0; k < 2; k++) {
    atomic_init(&in[k].handled, 0);
    atomic_init(&in[k].now, 0);
    atomic_init(&in[k].most, 0);
    ck_assert_int_eq(aiplat_service_create(&svc[k], cfg, "sharer", "1.0.0", "js"), AIPLAT_OK);
    aiplat_service_set_handle_signals(svc[k], false);
    ck_assert_int_eq(aiplat_service_add_js_endpoint(svc[k], "work", "SHARE", "share-worker",
                                                    "test.share.>", AIPLAT_MSG_INVALID,
                                                    AIPLAT_MSG_INVALID, on_share, &in[k]),
                     AIPLAT_OK);
    ck_assert_int_eq(aiplat_service_start(svc[k]), AIPLAT_OK);
  }
  for (int i = 0; i < 200; i++) {
    atomic_store(&share_seen[i], 0);
    char id[16];
    snprintf(id, sizeof id, "s%d", i);
    publish_with_id(bus, "test.share.x", id);
  }
  for (int t = 0; t < 300 && atomic_load(&in[0].handled) + atomic_load(&in[1].handled) < 200; t++)
    sleep_ms(50);
  sleep_ms(300); /* a second handling on its way */
  for (int i = 0; i < 200; i++) ck_assert_msg(share_seen[i] == 1, "s%d handled %d times", i, share_seen[i]);
  for (int k = 0; k < 2; k++) {
    ck_assert_int_gt(atomic_load(&in[k].handled), 0);
    ck_assert_int_le(atomic_load(&in[k].most), 8);
  }
  for (int k = 0; k < 2; k++) js_service_end(svc[k]);
  ck_assert_int_eq(stream_messages(bus, "SHARE"), 0);
  aiplat_bus_stream_delete(bus, "SHARE");
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(jetstream_request_answered_once) {
  /* A request delivered again after its answer went out (its ack lost in
   * a failover) is acked without being handled a second time. */
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  js_seen = 0;
  aiplat_service *svc = js_service(cfg, "ONCE", "test.once.>");
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_OK);
  char first[64], other[64];
  snprintf(first, sizeof first, "once-%d", (int)getpid());
  snprintf(other, sizeof other, "other-%d", (int)getpid());
  publish_with_id(bus, "test.once.x", first);
  for (int i = 0; i < 100 && atomic_load(&js_seen) < 1; i++) sleep_ms(50);
  ck_assert_int_eq(atomic_load(&js_seen), 1);
  publish_with_id(bus, "test.once.x", first); /* the redelivery */
  publish_with_id(bus, "test.once.x", other);
  for (int i = 0; i < 100 && (atomic_load(&js_seen) < 2 || stream_messages(bus, "ONCE") > 0); i++)
    sleep_ms(50);
  sleep_ms(300);
  ck_assert_int_eq(atomic_load(&js_seen), 2);
  ck_assert_int_eq(stream_messages(bus, "ONCE"), 0); /* all acked */
  js_service_end(svc);
  aiplat_bus_stream_delete(bus, "ONCE");
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(jetstream_endpoint_keeps_an_operators_stream) {
  /* The endpoint's pull consumer works with every retention, so none is
   * refused, and nothing of the stream is changed. */
  const char *retentions[] = {"workqueue", "limits", "interest"};
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  for (size_t i = 0; i < sizeof retentions / sizeof retentions[0]; i++) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"OPS\",\"subjects\":[\"ops.audit.>\",\"test.ops.*.message\",\"ops.x\"],"
             "\"retention\":\"%s\",\"max_age\":3600000000000,\"max_msgs\":1000,"
             "\"max_bytes\":1048576,\"max_msgs_per_subject\":100,\"discard\":\"old\","
             "\"storage\":\"file\",\"num_replicas\":1}",
             retentions[i]);
    operator_stream(bus, "OPS", body);
    char *before = stream_config(bus, "OPS");
    ck_assert_ptr_nonnull(strstr(before, "\"max_age\":3600000000000"));
    ck_assert_ptr_nonnull(strstr(before, "\"max_msgs\":1000"));
    atomic_store(&js_seen, 0);
    aiplat_service *svc = js_service(cfg, "OPS", "test.ops.*.message");
    aiplat_status st = aiplat_service_start(svc);
    char why[512] = "";
    aiplat_service_last_error(svc, why, sizeof why);
    ck_assert_msg(st == AIPLAT_OK, "%s: start: %s", retentions[i], why);
    char *after = stream_config(bus, "OPS");
    ck_assert_str_eq(after, before);
    ck_assert_int_eq(aiplat_bus_js_publish(bus, "test.ops.u1.message", "hi", 2, NULL, NULL),
                     AIPLAT_OK);
    for (int k = 0; k < 200 && atomic_load(&js_seen) == 0; k++) sleep_ms(25);
    ck_assert_int_eq(atomic_load(&js_seen), 1);
    js_service_end(svc);
    free(after);
    after = stream_config(bus, "OPS");
    ck_assert_str_eq(after, before);
    free(after);
    free(before);
    ck_assert_int_eq(aiplat_bus_stream_delete(bus, "OPS"), AIPLAT_OK);
  }
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(jetstream_endpoint_refuses_a_stream_that_misses_its_subject) {
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  operator_stream(bus, "NARROW",
                  "{\"name\":\"NARROW\",\"subjects\":[\"test.narrow.u1.message\","
                  "\"test.narrow.other.>\"],\"retention\":\"limits\",\"max_age\":60000000000}");
  char *before = stream_config(bus, "NARROW");
  aiplat_service *svc = js_service(cfg, "NARROW", "test.narrow.*.message");
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_ERR_CONFIG);
  char why[512] = "";
  aiplat_service_last_error(svc, why, sizeof why);
  ck_assert_msg(strstr(why, "NARROW") && strstr(why, "test.narrow.u1.message") &&
                    strstr(why, "test.narrow.other.>") && strstr(why, "test.narrow.*.message"),
                "unclear: %s", why);
  aiplat_service_destroy(svc);
  char *after = stream_config(bus, "NARROW");
  ck_assert_str_eq(after, before);
  free(after);
  free(before);
  ck_assert_int_eq(aiplat_bus_stream_delete(bus, "NARROW"), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(jetstream_endpoint_subject_must_be_covered) {
  static const struct {
    const char *stream_subject, *endpoint_subject;
    bool covered;
  } cases[] = {
      {"cov.user.*.message", "cov.user.*.message", true},
      {"cov.>", "cov.user.*.message", true},
      {"cov.user.>", "cov.user.*.message", true},
      {"*.user.*.message", "cov.user.*.message", true},
      {"cov.*.*.>", "cov.user.*.message", true},
      {"cov.user.u1.message", "cov.user.*.message", false},
      {"cov.user.*", "cov.user.*.message", false},
      {"cov.user.*.message.>", "cov.user.*.message", false},
      {"cov.user.*.reply", "cov.user.*.message", false},
      {"cov.jobs.>", "cov.jobs.>", true},
      {"cov.>", "cov.jobs.>", true},
      {"cov.jobs.*", "cov.jobs.>", false},
      {"cov.jobs.*.>", "cov.jobs.>", false},
      {"cov.*", "cov.lit", true},
      {"cov.lit", "cov.lit", true},
      {"cov.lit.>", "cov.lit", false},
  };
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *subjects[] = {cases[i].stream_subject};
    ck_assert_int_eq(aiplat_bus_stream_ensure(bus, "COV", subjects, 1, 0,
                                              AIPLAT_BUS_RETENTION_LIMITS),
                     AIPLAT_OK);
    char *before = stream_config(bus, "COV");
    aiplat_service *svc = js_service(cfg, "COV", cases[i].endpoint_subject);
    aiplat_status st = aiplat_service_start(svc);
    char why[512] = "";
    aiplat_service_last_error(svc, why, sizeof why);
    ck_assert_msg(st == (cases[i].covered ? AIPLAT_OK : AIPLAT_ERR_CONFIG),
                  "stream %s, endpoint %s: %s (%s)", cases[i].stream_subject,
                  cases[i].endpoint_subject, aiplat_status_str(st), why);
    if (st == AIPLAT_OK)
      js_service_end(svc);
    else
      aiplat_service_destroy(svc);
    char *after = stream_config(bus, "COV");
    ck_assert_str_eq(after, before);
    free(after);
    free(before);
    ck_assert_int_eq(aiplat_bus_stream_delete(bus, "COV"), AIPLAT_OK);
  }
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

typedef struct racer {
  aiplat_service *svc;
  pthread_barrier_t *go;
  pthread_t thread;
  aiplat_status st;
  char why[512];
} racer;

static void *race_start(void *arg) {
  racer *r = arg;
  pthread_barrier_wait(r->go);
  r->st = aiplat_service_start(r->svc);
  aiplat_service_last_error(r->svc, r->why, sizeof r->why);
  return NULL;
}

START_TEST(jetstream_endpoint_creates_a_missing_stream_once) {
  /* Instances starting together both find no stream and both create it;
   * whichever create comes second must bind to the first one's stream. */
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  for (int round = 0; round < 8; round++) {
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    racer r[2];
    for (int k = 0; k < 2; k++) {
      memset(&r[k], 0, sizeof r[k]);
      r[k].svc = js_service(cfg, "RACE", "test.race.>");
      r[k].go = &go;
      ck_assert_int_eq(pthread_create(&r[k].thread, NULL, race_start, &r[k]), 0);
    }
    for (int k = 0; k < 2; k++) pthread_join(r[k].thread, NULL);
    pthread_barrier_destroy(&go);
    for (int k = 0; k < 2; k++)
      ck_assert_msg(r[k].st == AIPLAT_OK, "round %d, instance %d: %s", round, k, r[k].why);
    /* Created as it always was: the endpoint's subject, a work queue, no age limit. */
    char *config = stream_config(bus, "RACE");
    json_t *j = json_loads(config, 0, NULL);
    ck_assert_ptr_nonnull(j);
    json_t *subjects = json_object_get(j, "subjects");
    ck_assert_int_eq(json_array_size(subjects), 1);
    ck_assert_str_eq(json_string_value(json_array_get(subjects, 0)), "test.race.>");
    ck_assert_str_eq(json_string_value(json_object_get(j, "retention")), "workqueue");
    ck_assert_str_eq(json_string_value(json_object_get(j, "storage")), "file");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "max_age")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "num_replicas")), 1);
    json_decref(j);
    free(config);
    atomic_store(&js_seen, 0);
    ck_assert_int_eq(aiplat_bus_js_publish(bus, "test.race.x", "hi", 2, NULL, NULL), AIPLAT_OK);
    for (int k = 0; k < 200 && atomic_load(&js_seen) == 0; k++) sleep_ms(25);
    ck_assert_int_eq(atomic_load(&js_seen), 1);
    for (int k = 0; k < 2; k++) js_service_end(r[k].svc);
    ck_assert_int_eq(aiplat_bus_stream_delete(bus, "RACE"), AIPLAT_OK);
  }
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

typedef struct operator_race {
  pthread_barrier_t *go;
  pthread_t thread;
  aiplat_bus *bus;
  atomic_int lookups;      /* stream lookups seen (the endpoint's) */
  _Atomic(json_t *) reply; /* the server's answer to the operator's create */
} operator_race;

/* The operator creates the stream the moment the endpoint has looked it up
 * (or after a second without a lookup): aimed at the gap between the
 * endpoint's lookup and its own create. */
static void operator_create_once(operator_race *o) {
  static const char body[] =
      "{\"name\":\"RACE\",\"subjects\":[\"test.race.>\",\"ops.race\"],\"retention\":\"limits\","
      "\"max_age\":3600000000000,\"max_msgs\":500}";
  if (atomic_fetch_add(&o->lookups, 1) == 0)
    aiplat_bus_publish_request(o->bus, "$JS.API.STREAM.CREATE.RACE", "_INBOX.operator-race", body,
                               strlen(body), NULL);
}

static void on_lookup(aiplat_bus_msg *msg, void *ud) {
  (void)msg;
  operator_create_once(ud);
}

static void on_created(aiplat_bus_msg *msg, void *ud) {
  operator_race *o = ud;
  atomic_store(&o->reply, json_loadb(aiplat_bus_msg_data(msg), aiplat_bus_msg_len(msg), 0, NULL));
}

static void *operator_create(void *arg) {
  operator_race *o = arg;
  aiplat_bus_sub *lookups = NULL, *created = NULL;
  aiplat_bus_subscribe(o->bus, "$JS.API.STREAM.INFO.RACE", NULL, on_lookup, o, &lookups);
  aiplat_bus_subscribe(o->bus, "_INBOX.operator-race", NULL, on_created, o, &created);
  aiplat_bus_flush(o->bus, 5000);
  pthread_barrier_wait(o->go);
  for (int i = 0; i < 1000 && !atomic_load(&o->reply); i++) {
    if (i == 100) operator_create_once(o);
    sleep_ms(10);
  }
  aiplat_bus_sub_destroy(lookups);
  aiplat_bus_sub_destroy(created);
  return NULL;
}

START_TEST(jetstream_endpoint_races_an_operator_creating_its_stream) {
  /* Whoever comes first, the endpoint starts; a stream the operator made,
   * even between the endpoint's lookup and its create, is used as it is. */
  aiplat_bus *bus = client();
  aiplat_config *cfg = test_config();
  for (int round = 0; round < 8; round++) {
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    racer r = {.svc = js_service(cfg, "RACE", "test.race.>"), .go = &go};
    operator_race o = {.go = &go, .bus = client()};
    ck_assert_int_eq(pthread_create(&r.thread, NULL, race_start, &r), 0);
    ck_assert_int_eq(pthread_create(&o.thread, NULL, operator_create, &o), 0);
    pthread_join(r.thread, NULL);
    pthread_join(o.thread, NULL);
    pthread_barrier_destroy(&go);
    ck_assert_msg(r.st == AIPLAT_OK, "round %d: %s", round, r.why);
    json_t *reply = atomic_load(&o.reply);
    ck_assert_ptr_nonnull(reply);
    char *text = stream_config(bus, "RACE");
    json_t *have = json_loads(text, 0, NULL);
    free(text);
    json_t *made = json_object_get(reply, "config");
    if (made) {
      ck_assert_msg(json_equal(have, made), "round %d: the operator's stream was changed", round);
    } else { /* the endpoint created it first: the operator was refused */
      /* 10058 (the name exists), or 10065 (the subjects overlap) when the
       * server has not finished the endpoint's create yet */
      json_t *err = json_object_get(reply, "error");
      json_int_t code = json_integer_value(json_object_get(err, "err_code"));
      ck_assert_msg(code == 10058 || code == 10065, "round %d: err_code %lld", round,
                    (long long)code);
      ck_assert_str_eq(json_string_value(json_object_get(have, "retention")), "workqueue");
    }
    json_decref(have);
    json_decref(reply);
    atomic_store(&js_seen, 0);
    ck_assert_int_eq(aiplat_bus_js_publish(bus, "test.race.x", "hi", 2, NULL, NULL), AIPLAT_OK);
    for (int k = 0; k < 200 && atomic_load(&js_seen) == 0; k++) sleep_ms(25);
    ck_assert_int_eq(atomic_load(&js_seen), 1);
    js_service_end(r.svc);
    aiplat_bus_destroy(o.bus);
    ck_assert_int_eq(aiplat_bus_stream_delete(bus, "RACE"), AIPLAT_OK);
  }
  aiplat_config_destroy(cfg);
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- configuration and arguments ---------------------------------------------- */

START_TEST(bad_configuration_and_arguments) {
  aiplat_config *cfg = test_config();
  aiplat_service *svc = NULL;
  char msg[512];
  ck_assert_int_eq(aiplat_config_set(cfg, "WORKERS", "0"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "x", "1.0.0", ""), AIPLAT_ERR_CONFIG);
  aiplat_error_last(msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "WORKERS"));
  ck_assert_int_eq(aiplat_config_set(cfg, "WORKERS", NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "bad.name", "1.0.0", ""),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "x", "v1", ""), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_service_create(&svc, cfg, "x", "1.0.0", ""), AIPLAT_OK);
  ck_assert_int_eq(aiplat_service_add_endpoint(svc, "e", "ai.chat.user.a b.message", NULL,
                                               AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE,
                                               on_echo, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_service_add_endpoint(svc, "e", "ai..x", NULL, AIPLAT_MSG_INVALID,
                                               AIPLAT_MSG_INVALID, on_echo, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_service_add_endpoint(svc, "e", "ok.subject", NULL, AIPLAT_MSG_INVALID,
                                               AIPLAT_MSG_INVALID, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_service_start(svc), AIPLAT_ERR_STATE); /* no endpoint */
  aiplat_service_destroy(svc);
  char *subject = NULL;
  ck_assert_int_ne(aiplat_subject_chat_user_message(&subject, "alice.*"), AIPLAT_OK);
  ck_assert_ptr_null(subject);
  aiplat_config_destroy(cfg);
}
END_TEST

/* ---- SIGTERM to a real service binary ------------------------------------------- */

START_TEST(sigterm_keeps_the_inflight_reply) {
  const char *top = getenv("top_builddir");
  ck_assert_ptr_nonnull(top);
  char path[512];
  snprintf(path, sizeof path, "%s/examples/echo_service", top);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    setenv("NATS_URL", th_nats_url(server), 1);
    setenv("HEALTH_PORT", "0", 1);
    setenv("LOG_LEVEL", "WARNING", 1);
    execl(path, path, (char *)NULL);
    _exit(127);
  }
  aiplat_bus *bus = client();
  aiplat_bus_msg *reply = NULL;
  aiplat_status st = AIPLAT_ERR_UNAVAILABLE;
  for (int i = 0; i < 100 && st != AIPLAT_OK; i++) {
    st = aiplat_bus_request(bus, "$SRV.PING.echo", NULL, 0, NULL, 200, &reply);
    if (st != AIPLAT_OK) sleep_ms(50);
  }
  ck_assert_int_eq(st, AIPLAT_OK);
  aiplat_bus_msg_destroy(reply);
  waiter w = {0};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "test.inbox.term", NULL, on_reply, &w, &sub), AIPLAT_OK);
  aiplat_bus_flush(bus, 2000);
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  aiplat_headers_set(h, "Echo-Delay-Ms", "1000");
  size_t len;
  uint8_t *buf = chat_request("still here", &len);
  ck_assert_int_eq(aiplat_bus_publish_request(bus, "demo.echo", "test.inbox.term", buf, len, h),
                   AIPLAT_OK);
  aiplat_free(buf);
  aiplat_headers_destroy(h);
  aiplat_bus_flush(bus, 2000);
  sleep_ms(300); /* the request is in the handler */
  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status));
  ck_assert_int_eq(WEXITSTATUS(status), 0);
  for (int i = 0; i < 200 && atomic_load(&w.got) == 0; i++) sleep_ms(10);
  ck_assert_int_eq(atomic_load(&w.got), 1);
  ck_assert_str_eq(w.text, "still here");
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("service");
  TCase *tc = tcase_create("service");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, server_up, server_down);
  tcase_add_test(tc, echo_roundtrip_with_trace_and_request_id);
  tcase_add_test(tc, error_replies_never_silence);
  tcase_add_test(tc, two_instances_share_a_queue_group);
  tcase_add_test(tc, micro_protocol_ping_info_stats);
  tcase_add_test(tc, stop_lets_inflight_requests_finish);
  tcase_add_test(tc, deadline_passed_in_the_queue);
  tcase_add_test(tc, deadline_header_values_are_range_checked);
  tcase_add_test(tc, deferred_requests_finish_later_and_overload_is_answered);
  tcase_add_test(tc, stop_past_grace_cancels_deferred_requests);
  tcase_add_test(tc, the_callers_deadline_bounds_a_blocking_backend_call);
  tcase_add_test(tc, jetstream_nak_redelivers_and_term_does_not);
  tcase_add_test(tc, jetstream_endpoint_keeps_an_operators_stream);
  tcase_add_test(tc, readiness_follows_the_jetstream_consumer);
  tcase_add_test(tc, jetstream_request_answered_once);
  tcase_add_test(tc, two_instances_share_a_jetstream_burst);
  tcase_add_test(tc, jetstream_endpoint_refuses_a_stream_that_misses_its_subject);
  tcase_add_test(tc, jetstream_endpoint_subject_must_be_covered);
  tcase_add_test(tc, jetstream_endpoint_creates_a_missing_stream_once);
  tcase_add_test(tc, jetstream_endpoint_races_an_operator_creating_its_stream);
  tcase_add_test(tc, bad_configuration_and_arguments);
  tcase_add_test(tc, sigterm_keeps_the_inflight_reply);
  tcase_add_test(tc, readiness_follows_the_nats_connection); /* restarts: last */
  suite_add_tcase(s, tc);
  tc = tcase_create("nats-down");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, server_up, server_down);
  tcase_add_test(tc, stop_while_nats_is_down_is_clean);
  suite_add_tcase(s, tc);
  tc = tcase_create("small-server");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, server_up_small, server_down);
  tcase_add_test(tc, reply_over_max_payload_becomes_an_error_reply);
  suite_add_tcase(s, tc);
  return s;
}
