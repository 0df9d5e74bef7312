/* The client half of the protocol against a real nats-server and a
 * responder on the bus: typed round trip with the protocol's headers, error
 * replies as statuses, no responders, timeouts, garbage replies, streamed
 * chunks in order before the final reply, cancellation, destroy with calls
 * in flight, many calls at once, and hostile arguments. */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bus_testutil.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"

static th_nats *server;
static aiplat_bus *svc_bus, *cli_bus;
static aiplat_bus_sub *responder;

/* What the responder saw last (for header checks). */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen_rid[160], seen_deadline[32], seen_tp[64], seen_msgid[160],
    seen_extra[64], seen_field_rid[160];
static atomic_int silent_count;

static void publish_typed(const char *subject, aiplat_msg *m, const char *type) {
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, &len), AIPLAT_OK);
  aiplat_headers *h = NULL;
  aiplat_headers_create(&h);
  if (type) aiplat_headers_set(h, AIPLAT_CHAT_TYPE_HEADER, type);
  ck_assert_int_eq(aiplat_bus_publish(svc_bus, subject, buf, len, h), AIPLAT_OK);
  aiplat_headers_destroy(h);
  aiplat_free(buf);
}

static void respond_msg(aiplat_bus_msg *in, aiplat_msg *m) {
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, &len), AIPLAT_OK);
  aiplat_bus_msg_respond(in, buf, len, NULL);
  aiplat_free(buf);
}

static void copy_header(aiplat_bus_msg *m, const char *key, char *out, size_t n) {
  const char *v = NULL;
  if (aiplat_bus_msg_header(m, key, &v) == AIPLAT_OK && v)
    snprintf(out, n, "%s", v);
  else
    out[0] = '\0';
}

/* svc.echo: text = message; svc.error: an error reply; svc.silent: nothing;
 * svc.garbage: bytes that are not a ChatResponse; svc.stream: 5 chunks on
 * ai.chat.response.{id}, then the final on the reply subject FIRST and on
 * the stream after; svc.replyonly: chunks, then the final on the reply
 * subject only. */
static void on_request(aiplat_bus_msg *m, void *ud) {
  (void)ud;
  const char *subject = aiplat_bus_msg_subject(m);
  aiplat_msg *req = NULL;
  if (aiplat_msg_decode(&req, AIPLAT_MSG_CHAT_REQUEST, aiplat_bus_msg_data(m),
                        aiplat_bus_msg_len(m)) != AIPLAT_OK)
    return;
  const char *text = "", *rid = "";
  aiplat_msg_get_string(req, "message", &text);
  aiplat_msg_get_string(req, "request_id", &rid);
  pthread_mutex_lock(&seen_mu);
  copy_header(m, AIPLAT_HEADER_REQUEST_ID, seen_rid, sizeof seen_rid);
  copy_header(m, AIPLAT_HEADER_DEADLINE, seen_deadline, sizeof seen_deadline);
  copy_header(m, AIPLAT_HEADER_TRACEPARENT, seen_tp, sizeof seen_tp);
  copy_header(m, AIPLAT_HEADER_MSG_ID, seen_msgid, sizeof seen_msgid);
  copy_header(m, "X-Extra", seen_extra, sizeof seen_extra);
  snprintf(seen_field_rid, sizeof seen_field_rid, "%s", rid);
  pthread_mutex_unlock(&seen_mu);

  aiplat_msg *rep = NULL;
  aiplat_msg_create(&rep, AIPLAT_MSG_CHAT_RESPONSE);
  aiplat_msg_set_string(rep, "request_id", rid);
  if (strcmp(subject, "svc.echo") == 0) {
    aiplat_msg_set_string(rep, "text", text);
    respond_msg(m, rep);
  } else if (strcmp(subject, "svc.error") == 0) {
    aiplat_msg *err = NULL;
    aiplat_msg_mutable_message(rep, "error", &err);
    aiplat_msg_set_int64(err, "code", AIPLAT_ERR_INVALID_ARGUMENT);
    aiplat_msg_set_string(err, "message", "message: must not be empty");
    respond_msg(m, rep);
  } else if (strcmp(subject, "svc.silent") == 0) {
    atomic_fetch_add(&silent_count, 1);
  } else if (strcmp(subject, "svc.garbage") == 0) {
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    aiplat_bus_msg_respond(m, junk, sizeof junk, NULL);
  } else if (strcmp(subject, "svc.stream") == 0 || strcmp(subject, "svc.replyonly") == 0) {
    char chunks_subject[200];
    snprintf(chunks_subject, sizeof chunks_subject, "ai.chat.response.%s", rid);
    for (int i = 0; i < 5; i++) {
      aiplat_msg *ch = NULL;
      aiplat_msg_create(&ch, AIPLAT_MSG_CHAT_CHUNK);
      aiplat_msg_set_string(ch, "request_id", rid);
      aiplat_msg_set_uint64(ch, "seq", (uint64_t)i);
      char d[16];
      snprintf(d, sizeof d, "w%d ", i);
      aiplat_msg_set_string(ch, "delta", d);
      if (i == 4) aiplat_msg_set_bool(ch, "done", true);
      publish_typed(chunks_subject, ch, "aiplat.messages.v1.ChatChunk");
      aiplat_msg_destroy(ch);
    }
    aiplat_msg_set_string(rep, "text", "w0 w1 w2 w3 w4 ");
    respond_msg(m, rep); /* the reply subject first: the client must wait */
    if (strcmp(subject, "svc.stream") == 0) {
      tu_sleep_ms(50);
      publish_typed(chunks_subject, rep, "aiplat.messages.v1.ChatResponse");
    }
  }
  aiplat_msg_destroy(rep);
  aiplat_msg_destroy(req);
}

static void setup(void) {
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
  svc_bus = tu_connect(th_nats_url(server));
  cli_bus = tu_connect(th_nats_url(server));
  ck_assert_int_eq(aiplat_bus_subscribe(svc_bus, "svc.*", NULL, on_request, NULL, &responder),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(svc_bus, 2000), AIPLAT_OK);
  atomic_store(&silent_count, 0);
}

static void teardown(void) {
  aiplat_bus_sub_destroy(responder);
  aiplat_bus_destroy(cli_bus);
  aiplat_bus_destroy(svc_bus);
  th_nats_stop(server);
}

static aiplat_msg *chat_request(const char *text) {
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_CHAT_REQUEST), AIPLAT_OK);
  aiplat_msg_set_string(m, "message", text);
  return m;
}

static const char *last_error(void) {
  static _Thread_local char buf[1024];
  aiplat_error_last(buf, sizeof buf);
  return buf;
}

START_TEST(typed_roundtrip_sends_the_protocol_headers) {
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  aiplat_client_options *o = NULL;
  ck_assert_int_eq(aiplat_client_options_create(&o), AIPLAT_OK);
  const char *parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  ck_assert_int_eq(aiplat_client_options_set_traceparent(o, parent), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_set_timeout_ms(o, 5000), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_set_dedup(o, true), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_add_header(o, "X-Extra", "42"), AIPLAT_OK);

  aiplat_msg *req = chat_request("hello there"), *rep = NULL;
  int64_t before = tu_now_ms();
  ck_assert_int_eq(aiplat_client_request(c, "svc.echo", req, AIPLAT_MSG_CHAT_RESPONSE, o, &rep),
                   AIPLAT_OK);
  const char *text = NULL;
  ck_assert_int_eq(aiplat_msg_get_string(rep, "text", &text), AIPLAT_OK);
  ck_assert_str_eq(text, "hello there");

  /* A request id was made, written into the request and sent as header and
   * as Nats-Msg-Id. */
  const char *rid = NULL;
  aiplat_msg_get_string(req, "request_id", &rid);
  ck_assert_int_ge(strlen(rid), 16);
  pthread_mutex_lock(&seen_mu);
  ck_assert_str_eq(seen_rid, rid);
  ck_assert_str_eq(seen_field_rid, rid);
  ck_assert_str_eq(seen_msgid, rid);
  ck_assert_str_eq(seen_extra, "42");
  /* The trace continues the caller's: same trace id, a new span id. */
  ck_assert_int_eq(strlen(seen_tp), 55);
  ck_assert(strncmp(seen_tp, parent, 36) == 0);
  ck_assert(strncmp(seen_tp + 36, parent + 36, 16) != 0);
  /* The deadline: about 5 s from the call, in Unix milliseconds. */
  long long dl = atoll(seen_deadline);
  pthread_mutex_unlock(&seen_mu);
  (void)before;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  long long wall = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  ck_assert_int_gt(dl, wall + 3000);
  ck_assert_int_le(dl, wall + 5100);
  aiplat_msg_destroy(rep);
  rep = NULL;

  /* The caller's own request id is kept. */
  aiplat_msg_set_string(req, "request_id", "my-id_1");
  aiplat_client_options_set_dedup(o, false);
  ck_assert_int_eq(aiplat_client_request(c, "svc.echo", req, AIPLAT_MSG_CHAT_RESPONSE, o, &rep),
                   AIPLAT_OK);
  pthread_mutex_lock(&seen_mu);
  ck_assert_str_eq(seen_rid, "my-id_1");
  ck_assert_str_eq(seen_msgid, "");
  pthread_mutex_unlock(&seen_mu);
  ck_assert_uint_eq(aiplat_client_in_flight(c), 0);
  aiplat_msg_destroy(rep);
  aiplat_msg_destroy(req);
  aiplat_client_options_destroy(o);
  aiplat_client_destroy(c);
}
END_TEST

START_TEST(error_reply_becomes_the_status) {
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  aiplat_msg *req = chat_request(""), *rep = NULL;
  ck_assert_int_eq(aiplat_client_request(c, "svc.error", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(last_error(), "INVALID_ARGUMENT: message: must not be empty");
  ck_assert_ptr_nonnull(rep); /* the reply is still given */
  ck_assert(aiplat_msg_has(rep, "error"));
  aiplat_msg_destroy(rep);
  aiplat_msg_destroy(req);
  aiplat_client_destroy(c);
}
END_TEST

START_TEST(no_responders_timeout_and_garbage) {
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_set_timeout_ms(c, 400), AIPLAT_OK);
  aiplat_msg *req = chat_request("x"), *rep = NULL;

  int64_t t0 = tu_now_ms();
  ck_assert_int_eq(aiplat_client_request(c, "nobody.here", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_null(rep);
  ck_assert_int_lt(tu_now_ms() - t0, 300); /* at once, not at the timeout */

  t0 = tu_now_ms();
  ck_assert_int_eq(aiplat_client_request(c, "svc.silent", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_TIMEOUT);
  ck_assert_int_ge(tu_now_ms() - t0, 350);
  ck_assert_ptr_null(rep);
  ck_assert_int_eq(atomic_load(&silent_count), 1);

  ck_assert_int_eq(aiplat_client_request(c, "svc.garbage", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_DECODE);
  ck_assert_ptr_nonnull(strstr(last_error(), "ChatResponse"));
  ck_assert_ptr_null(rep);
  ck_assert_uint_eq(aiplat_client_in_flight(c), 0);
  aiplat_msg_destroy(req);
  aiplat_client_destroy(c);
}
END_TEST

typedef struct chunks {
  pthread_mutex_t mu;
  char text[256];
  int n;
  uint64_t next_seq;
  bool in_order;
  bool after_done; /* a chunk came after the completion */
  bool completed;
  int stop_after; /* 0: never stop */
} chunks;

static bool on_chunk(aiplat_msg *chunk, void *ud) {
  chunks *k = ud;
  uint64_t seq = 0;
  const char *d = "";
  aiplat_msg_get_uint64(chunk, "seq", &seq);
  aiplat_msg_get_string(chunk, "delta", &d);
  pthread_mutex_lock(&k->mu);
  if (k->completed) k->after_done = true;
  if (seq != k->next_seq) k->in_order = false;
  k->next_seq = seq + 1;
  strncat(k->text, d, sizeof k->text - strlen(k->text) - 1);
  k->n++;
  bool go_on = !(k->stop_after && k->n >= k->stop_after);
  pthread_mutex_unlock(&k->mu);
  return go_on;
}

START_TEST(streamed_chunks_come_in_order_before_the_final_reply) {
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  const char *subjects[] = {"svc.stream", "svc.replyonly"};
  for (int i = 0; i < 2; i++) {
    chunks k = {.in_order = true};
    pthread_mutex_init(&k.mu, NULL);
    aiplat_client_options *o = NULL;
    aiplat_client_options_create(&o);
    ck_assert_int_eq(aiplat_client_options_set_stream(o, NULL, AIPLAT_MSG_CHAT_CHUNK,
                                                      on_chunk, &k),
                     AIPLAT_OK);
    aiplat_msg *req = chat_request("stream please"), *rep = NULL;
    aiplat_msg_set_bool(req, "stream", true);
    ck_assert_int_eq(aiplat_client_request(c, subjects[i], req, AIPLAT_MSG_CHAT_RESPONSE, o, &rep),
                     AIPLAT_OK);
    pthread_mutex_lock(&k.mu);
    k.completed = true;
    ck_assert_int_eq(k.n, 5);
    ck_assert(k.in_order);
    ck_assert_str_eq(k.text, "w0 w1 w2 w3 w4 ");
    pthread_mutex_unlock(&k.mu);
    const char *text = NULL;
    aiplat_msg_get_string(rep, "text", &text);
    ck_assert_str_eq(text, "w0 w1 w2 w3 w4 ");
    tu_sleep_ms(100);
    ck_assert(!k.after_done);
    aiplat_msg_destroy(rep);
    aiplat_msg_destroy(req);
    aiplat_client_options_destroy(o);
    pthread_mutex_destroy(&k.mu);
  }

  /* The chunk callback may stop the call. */
  chunks k = {.in_order = true, .stop_after = 2};
  pthread_mutex_init(&k.mu, NULL);
  aiplat_client_options *o = NULL;
  aiplat_client_options_create(&o);
  aiplat_client_options_set_stream(o, NULL, AIPLAT_MSG_CHAT_CHUNK, on_chunk, &k);
  aiplat_msg *req = chat_request("stop early"), *rep = NULL;
  ck_assert_int_eq(aiplat_client_request(c, "svc.stream", req, AIPLAT_MSG_CHAT_RESPONSE, o, &rep),
                   AIPLAT_ERR_CANCELLED);
  ck_assert_int_eq(k.n, 2);
  aiplat_msg_destroy(rep);
  aiplat_msg_destroy(req);
  aiplat_client_options_destroy(o);
  pthread_mutex_destroy(&k.mu);
  aiplat_client_destroy(c);
}
END_TEST

typedef struct outcome {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, ok;
  int by_status[AIPLAT_ERR_INTERNAL + 1];
} outcome;

static void on_done(aiplat_status st, const char *message, aiplat_msg *reply, void *ud) {
  outcome *o = ud;
  (void)message;
  pthread_mutex_lock(&o->mu);
  if (st == AIPLAT_OK && reply) {
    const char *text = "";
    aiplat_msg_get_string(reply, "text", &text);
    if (strncmp(text, "n", 1) == 0) o->ok++;
  }
  if ((unsigned)st <= AIPLAT_ERR_INTERNAL) o->by_status[st]++;
  o->done++;
  pthread_cond_broadcast(&o->cv);
  pthread_mutex_unlock(&o->mu);
  aiplat_msg_destroy(reply);
}

static bool wait_done(outcome *o, int n, int timeout_ms) {
  int64_t end = tu_now_ms() + timeout_ms;
  pthread_mutex_lock(&o->mu);
  while (o->done < n && tu_now_ms() < end) {
    pthread_mutex_unlock(&o->mu);
    tu_sleep_ms(5);
    pthread_mutex_lock(&o->mu);
  }
  bool r = o->done >= n;
  pthread_mutex_unlock(&o->mu);
  return r;
}

START_TEST(many_async_calls_at_once) {
  enum { N = 1000 };
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  outcome out = {.done = 0};
  pthread_mutex_init(&out.mu, NULL);
  pthread_cond_init(&out.cv, NULL);
  for (int i = 0; i < N; i++) {
    char text[16];
    snprintf(text, sizeof text, "n%d", i);
    aiplat_msg *req = chat_request(text);
    ck_assert_int_eq(aiplat_client_request_async(c, "svc.echo", req, AIPLAT_MSG_CHAT_RESPONSE,
                                                 NULL, on_done, &out),
                     AIPLAT_OK);
    aiplat_msg_destroy(req); /* may go at once */
  }
  ck_assert(wait_done(&out, N, 20000));
  ck_assert_int_eq(out.ok, N);
  ck_assert_uint_eq(aiplat_client_in_flight(c), 0);
  aiplat_client_destroy(c);
  pthread_cond_destroy(&out.cv);
  pthread_mutex_destroy(&out.mu);
}
END_TEST

START_TEST(cancel_and_destroy_end_calls_in_flight) {
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  outcome out = {.done = 0};
  pthread_mutex_init(&out.mu, NULL);
  pthread_cond_init(&out.cv, NULL);

  /* cancel through the per-call object */
  aiplat_call *call = NULL;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  aiplat_client_options *o = NULL;
  aiplat_client_options_create(&o);
  aiplat_client_options_set_call(o, call);
  aiplat_msg *req = chat_request("wait");
  ck_assert_int_eq(aiplat_client_request_async(c, "svc.silent", req, AIPLAT_MSG_CHAT_RESPONSE, o,
                                               on_done, &out),
                   AIPLAT_OK);
  tu_sleep_ms(50);
  ck_assert_int_eq(out.done, 0);
  aiplat_call_cancel(call);
  ck_assert(wait_done(&out, 1, 2000));
  ck_assert_int_eq(out.by_status[AIPLAT_ERR_CANCELLED], 1);
  /* a cancelled call object refuses the next call at once */
  ck_assert_int_eq(aiplat_client_request_async(c, "svc.echo", req, AIPLAT_MSG_CHAT_RESPONSE, o,
                                               on_done, &out),
                   AIPLAT_ERR_CANCELLED);

  /* the call's deadline bounds the call */
  aiplat_call *short_call = NULL;
  aiplat_call_create(&short_call);
  aiplat_call_set_timeout_ms(short_call, 200);
  aiplat_client_options_set_call(o, short_call);
  int64_t t0 = tu_now_ms();
  aiplat_msg *rep = NULL;
  ck_assert_int_eq(aiplat_client_request(c, "svc.silent", req, AIPLAT_MSG_CHAT_RESPONSE, o, &rep),
                   AIPLAT_ERR_TIMEOUT);
  ck_assert_int_lt(tu_now_ms() - t0, 2000);

  /* destroy ends what is still running, with CLOSED */
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(aiplat_client_request_async(c, "svc.silent", req, AIPLAT_MSG_CHAT_RESPONSE,
                                                 NULL, on_done, &out),
                     AIPLAT_OK);
  ck_assert_uint_eq(aiplat_client_in_flight(c), 10);
  aiplat_client_destroy(c);
  ck_assert_int_eq(out.done, 11);
  ck_assert_int_eq(out.by_status[AIPLAT_ERR_CLOSED], 10);
  aiplat_msg_destroy(req);
  aiplat_client_options_destroy(o);
  aiplat_call_destroy(call);
  aiplat_call_destroy(short_call);
  pthread_cond_destroy(&out.cv);
  pthread_mutex_destroy(&out.mu);
}
END_TEST

START_TEST(hostile_arguments_are_refused) {
  aiplat_client *c = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, cli_bus), AIPLAT_OK);
  aiplat_client_options *o = NULL;
  aiplat_client_options_create(&o);
  aiplat_msg *req = chat_request("x"), *rep = NULL;
  ck_assert_int_eq(aiplat_client_request(c, "bad subject", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_request(c, "svc.*", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_options_set_request_id(o, "a.b"), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_options_set_request_id(o, "*"), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_options_set_traceparent(o, "00-zz-yy-01"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_options_add_header(o, "aiplat-deadline", "1"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_options_add_header(o, "Bad\r\nKey", "1"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_client_options_set_timeout_ms(o, 0), AIPLAT_ERR_INVALID_ARGUMENT);
  /* a request id from the message must be a subject token too */
  aiplat_msg_set_string(req, "request_id", "x.>");
  ck_assert_int_eq(aiplat_client_request(c, "svc.echo", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_msg_set_string(req, "request_id", "");
  /* over the server's max_payload (1 MB by default) */
  size_t big = (size_t)aiplat_bus_max_payload(cli_bus) + 10;
  char *text = malloc(big + 1);
  memset(text, 'a', big);
  text[big] = '\0';
  aiplat_msg_set_string(req, "message", text);
  free(text);
  ck_assert_int_eq(aiplat_client_request(c, "svc.echo", req, AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep),
                   AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_null(rep);
  ck_assert_uint_eq(aiplat_client_in_flight(c), 0);
  aiplat_msg_destroy(req);
  aiplat_client_options_destroy(o);
  aiplat_client_destroy(c);
}
END_TEST

START_TEST(status_names_are_the_protocol_names) {
  ck_assert_str_eq(aiplat_status_name(AIPLAT_OK), "OK");
  ck_assert_str_eq(aiplat_status_name(AIPLAT_ERR_INVALID_ARGUMENT), "INVALID_ARGUMENT");
  ck_assert_str_eq(aiplat_status_name(AIPLAT_ERR_UNAVAILABLE), "UNAVAILABLE");
  ck_assert_str_eq(aiplat_status_name(AIPLAT_ERR_INTERNAL), "INTERNAL");
  ck_assert_str_eq(aiplat_status_name((aiplat_status)99), "UNKNOWN");
  ck_assert_str_eq(aiplat_status_name((aiplat_status)-1), "UNKNOWN");
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("client");
  TCase *tc = tcase_create("client");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, typed_roundtrip_sends_the_protocol_headers);
  tcase_add_test(tc, error_reply_becomes_the_status);
  tcase_add_test(tc, no_responders_timeout_and_garbage);
  tcase_add_test(tc, streamed_chunks_come_in_order_before_the_final_reply);
  tcase_add_test(tc, many_async_calls_at_once);
  tcase_add_test(tc, cancel_and_destroy_end_calls_in_flight);
  tcase_add_test(tc, hostile_arguments_are_refused);
  suite_add_tcase(s, tc);
  TCase *names = tcase_create("names");
  tcase_add_test(names, status_names_are_the_protocol_names);
  suite_add_tcase(s, names);
  return s;
}
