/* The client half of the protocol (include/aiplat/client.h).
 *
 * A client owns one wildcard subscription, `_INBOX.<random>.*`, and gives
 * each call the reply subject `_INBOX.<random>.<n>`; a table maps n to the
 * call. A reply, a timeout, a cancel or the client's end finishes a call
 * exactly once (the first of them, under the client's lock). Timers and
 * the clean-up of a finished call run on the execution core's loop thread
 * (lib/loop.h), so every step that may touch a call after it finished
 * (its timer, a posted cancel, the clean-up) runs there in posting order,
 * and the clean-up, posted last, frees it. A streamed call's own
 * subscription is destroyed by the clean-up too, which waits for its
 * callback to return. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aiplat/chat.h"
#include "aiplat/client.h"
#include "aiplat/subject.h"
#include "call_internal.h"
#include "internal.h"
#include "loop.h"
#include "otel.h"
#include "trace.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 30000
#define CLIENT_MAX_TIMEOUT_MS (INT64_C(7) * 24 * 3600 * 1000)
/* A streamed call whose final reply came on the reply subject waits this
 * long for the same reply on the stream (so that it follows the chunks). */
#define CLIENT_STREAM_GRACE_MS 1000
#define CLIENT_BUCKETS 1024
#define CLIENT_MAX_ID 128

typedef struct ccall ccall;

struct aiplat_client {
  aiplat_bus *bus;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char prefix[48]; /* "_INBOX.<22 chars>" */
  aiplat_bus_sub *mux;
  uint64_t next;
  ccall *buckets[CLIENT_BUCKETS];
  size_t in_flight; /* not finished */
  size_t live;      /* not freed yet (the clean-up runs on the loop) */
  int64_t timeout_ms;
  bool closing;
  bool global_ref;
};

typedef struct header_kv {
  char *key, *value;
} header_kv;

struct aiplat_client_options {
  int64_t timeout_ms; /* 0: the client's */
  aiplat_call *call;
  char *request_id;
  char *traceparent;
  header_kv *headers;
  size_t n_headers;
  bool dedup;
  bool stream;
  char *stream_subject;
  aiplat_msg_type chunk_type;
  aiplat_client_chunk_fn chunk_fn;
  void *chunk_ud;
};

struct ccall {
  ccall *next; /* in its bucket */
  aiplat_client *c;
  uint64_t token;
  aiplat_msg_type reply_type, chunk_type;
  aiplat_client_done_fn done;
  void *ud;
  aiplat_client_chunk_fn chunk_fn;
  void *chunk_ud;
  aiplat_bus_sub *stream_sub;
  aiplat_call *call;
  int64_t deadline_ms; /* aip_now_ms() clock */
  bool finished;
  bool streaming;
  aiplat_msg *held; /* a final reply from the reply subject, held */
  aip_span *span;   /* the request's client span (otel.h), or NULL */
  atomic_bool cancel_posted;
  atomic_bool grace_posted;
  aip_timer timer;
  aip_task arm, cancel, grace, cleanup;
};

/* ---- options ------------------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_client_options_create(aiplat_client_options **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL out");
  *out = calloc(1, sizeof **out);
  if (!*out) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_client_options_destroy(aiplat_client_options *o) {
  if (!o) return;
  free(o->request_id);
  free(o->traceparent);
  for (size_t i = 0; i < o->n_headers; i++) {
    free(o->headers[i].key);
    free(o->headers[i].value);
  }
  free(o->headers);
  free(o->stream_subject);
  free(o);
}

static aiplat_status bad_timeout(void) {
  return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                  "client: the timeout must be 1 ms .. 7 days");
}

AIPLAT_API aiplat_status aiplat_client_options_set_timeout_ms(aiplat_client_options *o,
                                                              int64_t ms) {
  if (!o) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL options");
  if (ms <= 0 || ms > CLIENT_MAX_TIMEOUT_MS) return bad_timeout();
  o->timeout_ms = ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_client_options_set_call(aiplat_client_options *o,
                                                        aiplat_call *call) {
  if (!o) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL options");
  o->call = call;
  return AIPLAT_OK;
}

static bool valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > CLIENT_MAX_ID) return false;
  for (const char *p = id; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return false;
  }
  return true;
}

static aiplat_status replace_str(char **slot, const char *v) {
  char *copy = NULL;
  if (v && !(copy = aip_strdup(v)))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
  free(*slot);
  *slot = copy;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_client_options_set_request_id(aiplat_client_options *o,
                                                              const char *id) {
  if (!o) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL options");
  if (id && !valid_id(id))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "client: a request id is 1..128 letters, digits, '-' or '_'");
  return replace_str(&o->request_id, id);
}

AIPLAT_API aiplat_status aiplat_client_options_set_traceparent(aiplat_client_options *o,
                                                               const char *tp) {
  if (!o) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL options");
  aip_trace t;
  if (tp && !aip_trace_parse(tp, &t))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "client: not a W3C traceparent value");
  return replace_str(&o->traceparent, tp);
}

static bool reserved_header(const char *key) {
  static const char *const names[] = {AIPLAT_HEADER_REQUEST_ID, AIPLAT_HEADER_DEADLINE,
                                      AIPLAT_HEADER_TRACEPARENT, AIPLAT_HEADER_MSG_ID};
  for (size_t i = 0; i < AIP_ARRAY_LEN(names); i++)
    if (strcasecmp(key, names[i]) == 0) return true;
  return false;
}

AIPLAT_API aiplat_status aiplat_client_options_add_header(aiplat_client_options *o,
                                                          const char *key,
                                                          const char *value) {
  if (!o || !key || !*key || !value)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL header");
  if (reserved_header(key))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "client: header %s is set through its own option", key);
  /* checked by the bus when the request is sent; checked here first so that
   * the error comes from the option that caused it */
  aiplat_headers *probe = NULL;
  aiplat_status st = aiplat_headers_create(&probe);
  if (st == AIPLAT_OK) st = aiplat_headers_set(probe, key, value);
  aiplat_headers_destroy(probe);
  if (st != AIPLAT_OK) return st;
  header_kv *h = realloc(o->headers, (o->n_headers + 1) * sizeof *h);
  if (!h) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
  o->headers = h;
  h[o->n_headers].key = aip_strdup(key);
  h[o->n_headers].value = aip_strdup(value);
  if (!h[o->n_headers].key || !h[o->n_headers].value) {
    free(h[o->n_headers].key);
    free(h[o->n_headers].value);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
  }
  o->n_headers++;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_client_options_set_dedup(aiplat_client_options *o,
                                                         bool on) {
  if (!o) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL options");
  o->dedup = on;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_client_options_set_stream(
    aiplat_client_options *o, const char *subject, aiplat_msg_type chunk_type,
    aiplat_client_chunk_fn fn, void *user_data) {
  if (!o || !fn)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL stream callback");
  if (!aiplat_msg_type_name(chunk_type))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: unknown chunk type");
  if (subject) {
    aiplat_status vst = aiplat_subject_validate(subject);
    if (vst != AIPLAT_OK) return vst;
  }
  aiplat_status st = replace_str(&o->stream_subject, subject);
  if (st != AIPLAT_OK) return st;
  o->stream = true;
  o->chunk_type = chunk_type;
  o->chunk_fn = fn;
  o->chunk_ud = user_data;
  return AIPLAT_OK;
}

/* ---- the client ------------------------------------------------------------ */

static void random_token(char *out, size_t n) {
  static const char alphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t raw[64];
  if (n > sizeof raw) n = sizeof raw;
  aip_random_bytes(raw, n);
  for (size_t i = 0; i < n; i++) out[i] = alphabet[raw[i] % 62];
  out[n] = '\0';
}

AIPLAT_API aiplat_status aiplat_client_create(aiplat_client **out, aiplat_bus *bus) {
  if (!out || !bus) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL argument");
  *out = NULL;
  aiplat_client *c = calloc(1, sizeof *c);
  if (!c) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) {
    free(c);
    return st;
  }
  c->global_ref = true;
  c->bus = bus;
  c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  char tok[23];
  random_token(tok, 22);
  snprintf(c->prefix, sizeof c->prefix, "_INBOX.%s", tok);
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_client_set_timeout_ms(aiplat_client *c, int64_t ms) {
  if (!c) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL client");
  if (ms <= 0 || ms > CLIENT_MAX_TIMEOUT_MS) return bad_timeout();
  pthread_mutex_lock(&c->mu);
  c->timeout_ms = ms;
  pthread_mutex_unlock(&c->mu);
  return AIPLAT_OK;
}

AIPLAT_API size_t aiplat_client_in_flight(aiplat_client *c) {
  if (!c) return 0;
  pthread_mutex_lock(&c->mu);
  size_t n = c->in_flight;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* Under c->mu. */
static ccall *table_find(aiplat_client *c, uint64_t token) {
  for (ccall *k = c->buckets[token % CLIENT_BUCKETS]; k; k = k->next)
    if (k->token == token) return k;
  return NULL;
}

static void table_remove(aiplat_client *c, ccall *k) {
  ccall **pp = &c->buckets[k->token % CLIENT_BUCKETS];
  while (*pp && *pp != k) pp = &(*pp)->next;
  if (*pp) *pp = k->next;
  k->next = NULL;
}

/* ---- finishing a call ------------------------------------------------------ */

static void on_cleanup(aip_task *t) {
  ccall *k = (ccall *)((char *)t - offsetof(ccall, cleanup));
  aiplat_client *c = k->c;
  aip_timer_stop(&k->timer);
  aiplat_bus_sub_destroy(k->stream_sub);
  aiplat_msg_destroy(k->held);
  free(k);
  pthread_mutex_lock(&c->mu);
  c->live--;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* Under c->mu: true for the one caller that ends the call. */
static bool claim(ccall *k) {
  if (k->finished) return false;
  k->finished = true;
  table_remove(k->c, k);
  k->c->in_flight--; /* no longer in flight, though its callback may run */
  return true;
}

/* The end of a claimed call: no chunk callback runs any more (unless we
 * are inside the stream's own callback, which is then the last one), the
 * completion callback runs, the clean-up is posted. @reply is taken over. */
static void complete(ccall *k, aiplat_status st, const char *message, aiplat_msg *reply,
                     bool in_stream_callback) {
  aiplat_client *c = k->c;
  aip_call_unbind_hook(k->call);
  if (!in_stream_callback && k->stream_sub) {
    aiplat_bus_sub_destroy(k->stream_sub);
    k->stream_sub = NULL;
  }
  aip_otel_end(k->span, st);
  k->span = NULL;
  k->done(st, message ? message : "", reply, k->ud);
  k->cleanup.fn = on_cleanup;
  if (aip_loop_post(&k->cleanup) != AIPLAT_OK) {
    /* the loop cannot start: nothing else of this call is on it */
    aiplat_bus_sub_destroy(k->stream_sub);
    aiplat_msg_destroy(k->held);
    free(k);
    pthread_mutex_lock(&c->mu);
    c->live--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
}

/* For callers that hold @k alive (the loop's tasks and timer, the stream's
 * callback): the first caller wins. */
static void finish(ccall *k, aiplat_status st, const char *message, aiplat_msg *reply,
                   bool in_stream_callback) {
  pthread_mutex_lock(&k->c->mu);
  bool mine = claim(k);
  pthread_mutex_unlock(&k->c->mu);
  if (mine)
    complete(k, st, message, reply, in_stream_callback);
  else
    aiplat_msg_destroy(reply);
}

static void on_timer(aip_timer *t) {
  ccall *k = (ccall *)((char *)t - offsetof(ccall, timer));
  aiplat_client *c = k->c;
  pthread_mutex_lock(&c->mu);
  aiplat_msg *held = k->held;
  k->held = NULL;
  bool mine = claim(k);
  pthread_mutex_unlock(&c->mu);
  if (!mine) {
    aiplat_msg_destroy(held);
    return;
  }
  if (held) /* the stream's copy of the final reply did not come: take this one */
    complete(k, AIPLAT_OK, "", held, false);
  else
    complete(k, AIPLAT_ERR_TIMEOUT, "client: no reply within the deadline", NULL, false);
}

static void on_arm(aip_task *t) {
  ccall *k = (ccall *)((char *)t - offsetof(ccall, arm));
  k->timer.fn = on_timer;
  aip_timer_start(&k->timer, k->deadline_ms * INT64_C(1000000));
}

static void on_grace(aip_task *t) {
  ccall *k = (ccall *)((char *)t - offsetof(ccall, grace));
  pthread_mutex_lock(&k->c->mu);
  bool finished = k->finished;
  pthread_mutex_unlock(&k->c->mu);
  if (finished) return;
  int64_t when = aip_now_ms() + CLIENT_STREAM_GRACE_MS;
  if (when > k->deadline_ms) return; /* the deadline timer decides */
  aip_timer_stop(&k->timer);
  aip_timer_start(&k->timer, when * INT64_C(1000000));
}

static void on_cancel_task(aip_task *t) {
  ccall *k = (ccall *)((char *)t - offsetof(ccall, cancel));
  finish(k, AIPLAT_ERR_CANCELLED, "client: cancelled", NULL, false);
}

/* From aiplat_call_cancel(), under the call's lock: post only. */
static void cancel_hook(void *arg) {
  ccall *k = arg;
  if (atomic_exchange(&k->cancel_posted, true)) return;
  k->cancel.fn = on_cancel_task;
  aip_loop_post(&k->cancel);
}

/* ---- replies --------------------------------------------------------------- */

/* A claimed call ends with a decoded final reply: its `error`, if any,
 * becomes the status. */
static void complete_with_reply(ccall *k, aiplat_msg *reply, bool in_stream_callback) {
  aiplat_msg *err = NULL;
  if (aiplat_msg_get_message(reply, "error", &err) == AIPLAT_OK && err) {
    int64_t code = 0;
    const char *text = "";
    aiplat_msg_get_int64(err, "code", &code);
    aiplat_msg_get_string(err, "message", &text);
    aiplat_status st = code > 0 && code <= AIPLAT_ERR_INTERNAL ? (aiplat_status)code
                                                               : AIPLAT_ERR_INTERNAL;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", aiplat_status_name(st),
             *text ? text : "(no message)");
    complete(k, st, msg, reply, in_stream_callback);
    return;
  }
  aiplat_error_clear();
  complete(k, AIPLAT_OK, "", reply, in_stream_callback);
}

static bool is_no_responders(aiplat_bus_msg *m) {
  const char *status = NULL;
  if (aiplat_bus_msg_len(m) != 0) return false;
  bool r = aiplat_bus_msg_header(m, "Status", &status) == AIPLAT_OK && status &&
           strncmp(status, "503", 3) == 0;
  aiplat_error_clear();
  return r;
}

/* On the client's inbox. A call found in the table is alive while c->mu is
 * held; once released it may end and be freed, so it is found again, by
 * its token, before anything touches it. */
static void on_reply(aiplat_bus_msg *m, void *ud) {
  aiplat_client *c = ud;
  const char *subject = aiplat_bus_msg_subject(m);
  size_t plen = strlen(c->prefix);
  if (strncmp(subject, c->prefix, plen) != 0 || subject[plen] != '.') return;
  char *end = NULL;
  uint64_t token = strtoull(subject + plen + 1, &end, 10);
  if (!end || *end) return;

  pthread_mutex_lock(&c->mu);
  ccall *k = table_find(c, token);
  aiplat_msg_type reply_type = k ? k->reply_type : AIPLAT_MSG_INVALID;
  pthread_mutex_unlock(&c->mu);
  if (!k) return; /* late: the call has ended */

  aiplat_status st = AIPLAT_OK;
  char msg[600] = "";
  aiplat_msg *reply = NULL;
  if (is_no_responders(m)) {
    st = AIPLAT_ERR_UNAVAILABLE;
    snprintf(msg, sizeof msg, "client: no service listens on the subject");
  } else if (aiplat_msg_decode(&reply, reply_type, aiplat_bus_msg_data(m),
                               aiplat_bus_msg_len(m)) != AIPLAT_OK) {
    st = AIPLAT_ERR_DECODE;
    snprintf(msg, sizeof msg, "client: the reply is not a %s: %s",
             aiplat_msg_type_name(reply_type), aip_thread_errmsg());
  }

  pthread_mutex_lock(&c->mu);
  k = table_find(c, token);
  bool mine = false;
  if (k && st == AIPLAT_OK && k->streaming && !aiplat_msg_has(reply, "error")) {
    /* The same reply follows the chunks on the stream: wait for it there,
     * briefly, so that every chunk is delivered first. Posted under the
     * lock, before any clean-up of the call can be. */
    if (!k->held) {
      k->held = reply;
      reply = NULL;
      if (!atomic_exchange(&k->grace_posted, true)) {
        k->grace.fn = on_grace;
        aip_loop_post(&k->grace);
      }
    }
  } else if (k) {
    mine = claim(k);
  }
  pthread_mutex_unlock(&c->mu);
  if (!mine) {
    aiplat_msg_destroy(reply);
    return;
  }
  if (st != AIPLAT_OK)
    complete(k, st, msg, NULL, false);
  else
    complete_with_reply(k, reply, false);
}

static bool type_header_is(aiplat_bus_msg *m, aiplat_msg_type type, bool *present) {
  const char *v = NULL;
  *present = aiplat_bus_msg_header(m, AIPLAT_CHAT_TYPE_HEADER, &v) == AIPLAT_OK && v;
  aiplat_error_clear();
  return *present && strcmp(v, aiplat_msg_type_name(type)) == 0;
}

static void on_stream(aiplat_bus_msg *m, void *ud) {
  ccall *k = ud;
  aiplat_client *c = k->c;
  pthread_mutex_lock(&c->mu);
  bool finished = k->finished;
  pthread_mutex_unlock(&c->mu);
  if (finished) return;
  bool typed;
  bool is_final = type_header_is(m, k->reply_type, &typed);
  if (!typed) {
    /* no type header: a chunk if it decodes as one */
    aiplat_msg *probe = NULL;
    is_final = aiplat_msg_decode(&probe, k->chunk_type, aiplat_bus_msg_data(m),
                                 aiplat_bus_msg_len(m)) != AIPLAT_OK;
    aiplat_msg_destroy(probe);
  }
  aiplat_msg *msg = NULL;
  aiplat_msg_type type = is_final ? k->reply_type : k->chunk_type;
  if (aiplat_msg_decode(&msg, type, aiplat_bus_msg_data(m), aiplat_bus_msg_len(m)) !=
      AIPLAT_OK) {
    char text[600];
    snprintf(text, sizeof text, "client: a streamed message is not a %s: %s",
             aiplat_msg_type_name(type), aip_thread_errmsg());
    finish(k, AIPLAT_ERR_DECODE, text, NULL, true);
    return;
  }
  if (is_final) {
    pthread_mutex_lock(&c->mu);
    bool mine = claim(k);
    pthread_mutex_unlock(&c->mu);
    if (mine)
      complete_with_reply(k, msg, true);
    else
      aiplat_msg_destroy(msg);
    return;
  }
  bool go_on = k->chunk_fn(msg, k->chunk_ud);
  aiplat_msg_destroy(msg);
  if (!go_on)
    finish(k, AIPLAT_ERR_CANCELLED, "client: stopped by the chunk callback", NULL, true);
}

/* ---- starting a call --------------------------------------------------------- */

static aiplat_status ensure_mux(aiplat_client *c) {
  /* under c->mu */
  if (c->mux) return AIPLAT_OK;
  char filter[64];
  snprintf(filter, sizeof filter, "%s.*", c->prefix);
  return aiplat_bus_subscribe(c->bus, filter, NULL, on_reply, c, &c->mux);
}

static int64_t min_deadline(int64_t a, int64_t b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return a < b ? a : b;
}

/* The request id: the options', else the message's `request_id`, else a new
 * one written into the message. */
static aiplat_status pick_request_id(const aiplat_client_options *o, aiplat_msg *req,
                                     char *out, size_t outlen) {
  aiplat_field_kind kind;
  bool has_field = aiplat_msg_field_info(aiplat_msg_get_type(req), "request_id", &kind,
                                         NULL, NULL, NULL) == AIPLAT_OK &&
                   kind == AIPLAT_FIELD_STRING;
  aiplat_error_clear();
  const char *id = o ? o->request_id : NULL;
  if (!id && has_field) {
    const char *v = NULL;
    if (aiplat_msg_get_string(req, "request_id", &v) == AIPLAT_OK && v && *v) id = v;
  }
  if (id) {
    if (!valid_id(id))
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                      "client: the request id must be 1..128 letters, digits, '-' or '_'");
    snprintf(out, outlen, "%s", id);
  } else {
    random_token(out, 22);
  }
  if (has_field) return aiplat_msg_set_string(req, "request_id", out);
  return AIPLAT_OK;
}

static aiplat_status build_headers(const aiplat_client_options *o, const char *rid,
                                   int64_t deadline_ms, const aip_span *span,
                                   aiplat_headers **out) {
  aiplat_headers *h = NULL;
  aiplat_status st = aiplat_headers_create(&h);
  if (st != AIPLAT_OK) return st;
  st = aiplat_headers_set(h, AIPLAT_HEADER_REQUEST_ID, rid);
  char deadline[24];
  int64_t unix_ms = aip_wall_ms() + (deadline_ms - aip_now_ms());
  snprintf(deadline, sizeof deadline, "%" PRId64, unix_ms > 0 ? unix_ms : 1);
  if (st == AIPLAT_OK) st = aiplat_headers_set(h, AIPLAT_HEADER_DEADLINE, deadline);
  /* the request's span when it is traced, else a continued trace */
  char tp[AIP_TRACEPARENT_LEN + 1] = "";
  if (span) aip_span_traceparent(span, tp, sizeof tp);
  if (!tp[0]) {
    aip_trace t;
    aip_trace_continue(o ? o->traceparent : NULL, &t);
    aip_trace_format(&t, tp, sizeof tp);
  }
  if (st == AIPLAT_OK) st = aiplat_headers_set(h, AIPLAT_HEADER_TRACEPARENT, tp);
  if (st == AIPLAT_OK && o && o->dedup) st = aiplat_headers_set(h, AIPLAT_HEADER_MSG_ID, rid);
  for (size_t i = 0; o && st == AIPLAT_OK && i < o->n_headers; i++)
    st = aiplat_headers_add(h, o->headers[i].key, o->headers[i].value);
  if (st != AIPLAT_OK) {
    aiplat_headers_destroy(h);
    return st;
  }
  *out = h;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_client_request_async(
    aiplat_client *c, const char *subject, aiplat_msg *request, aiplat_msg_type reply_type,
    const aiplat_client_options *o, aiplat_client_done_fn done, void *user_data) {
  if (!c || !subject || !request || !done)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL argument");
  if (!aiplat_msg_type_name(reply_type))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: unknown reply type");
  aiplat_status st = aiplat_subject_validate(subject);
  if (st != AIPLAT_OK) return st;
  if (o && o->call && aiplat_call_cancelled(o->call))
    return aip_fail(NULL, AIPLAT_ERR_CANCELLED, "client: the call was cancelled");

  char rid[CLIENT_MAX_ID + 1];
  st = pick_request_id(o, request, rid, sizeof rid);
  if (st != AIPLAT_OK) return st;

  pthread_mutex_lock(&c->mu);
  int64_t timeout = o && o->timeout_ms ? o->timeout_ms : c->timeout_ms;
  pthread_mutex_unlock(&c->mu);
  int64_t now = aip_now_ms();
  int64_t deadline = min_deadline(now + timeout, o ? aip_call_deadline_ms(o->call) : 0);
  deadline = min_deadline(deadline, aip_thread_deadline());
  if (deadline <= now)
    return aip_fail(NULL, AIPLAT_ERR_TIMEOUT, "client: the deadline has passed");

  uint8_t *body = NULL;
  size_t len = 0;
  st = aiplat_msg_encode(request, &body, &len);
  if (st != AIPLAT_OK) return st;
  /* A client span, a child of the caller's traceparent when given, else of
   * the thread's current span (a handler's request). */
  aip_span *span = NULL;
  if (aip_otel_enabled()) {
    aip_trace t;
    bool given = o && o->traceparent && aip_trace_parse(o->traceparent, &t);
    aip_otel_ctx prev = given ? aip_otel_enter_trace(&t) : (aip_otel_ctx){0};
    span = aip_otel_nats_begin("request", subject);
    if (given) aip_otel_restore(prev);
  }
  aiplat_headers *h = NULL;
  st = build_headers(o, rid, deadline, span, &h);
  if (st != AIPLAT_OK) {
    aip_otel_end(span, st);
    aiplat_free(body);
    return st;
  }

  ccall *k = calloc(1, sizeof *k);
  if (!k) {
    aip_otel_end(span, AIPLAT_ERR_NO_MEMORY);
    aiplat_free(body);
    aiplat_headers_destroy(h);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
  }
  k->span = span;
  k->c = c;
  k->reply_type = reply_type;
  k->done = done;
  k->ud = user_data;
  k->deadline_ms = deadline;
  k->call = o ? o->call : NULL;
  if (o && o->stream) {
    k->streaming = true;
    k->chunk_type = o->chunk_type;
    k->chunk_fn = o->chunk_fn;
    k->chunk_ud = o->chunk_ud;
    char *ssub = o->stream_subject ? aip_strdup(o->stream_subject)
                                   : aip_sprintf("ai.chat.response.%s", rid);
    st = ssub ? aiplat_bus_subscribe(c->bus, ssub, NULL, on_stream, k, &k->stream_sub)
              : aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "client: out of memory");
    free(ssub);
    if (st != AIPLAT_OK) {
      aip_otel_end(k->span, st);
      free(k);
      aiplat_free(body);
      aiplat_headers_destroy(h);
      return st;
    }
  }

  pthread_mutex_lock(&c->mu);
  if (c->closing) st = aip_fail(NULL, AIPLAT_ERR_CLOSED, "client: destroyed");
  if (st == AIPLAT_OK) st = ensure_mux(c);
  if (st == AIPLAT_OK) {
    k->token = ++c->next;
    k->next = c->buckets[k->token % CLIENT_BUCKETS];
    c->buckets[k->token % CLIENT_BUCKETS] = k;
    c->in_flight++;
    c->live++;
  }
  pthread_mutex_unlock(&c->mu);
  if (st != AIPLAT_OK) {
    aip_otel_end(k->span, st);
    aiplat_bus_sub_destroy(k->stream_sub);
    free(k);
    aiplat_free(body);
    aiplat_headers_destroy(h);
    return st;
  }

  char reply_subject[80];
  snprintf(reply_subject, sizeof reply_subject, "%s.%" PRIu64, c->prefix, k->token);
  /* Every step that may touch the call once it has ended is set up before
   * the request leaves: its timer (posted before any clean-up can be) and
   * the cancel hook. */
  k->arm.fn = on_arm;
  st = aip_loop_post(&k->arm);
  bool armed = st == AIPLAT_OK;
  if (st == AIPLAT_OK && k->call) aip_call_bind_hook(k->call, cancel_hook, k);
  if (st == AIPLAT_OK)
    st = aiplat_bus_publish_request(c->bus, subject, reply_subject, body, len, h);
  aiplat_free(body);
  aiplat_headers_destroy(h);
  if (st == AIPLAT_OK) return AIPLAT_OK;

  /* Not sent: undo without calling @done (unless a cancel got there first,
   * in which case it has called @done and the caller gets AIPLAT_OK). */
  char why[512];
  snprintf(why, sizeof why, "%s", aip_thread_errmsg());
  pthread_mutex_lock(&c->mu);
  bool mine = claim(k);
  pthread_mutex_unlock(&c->mu);
  if (!mine) return AIPLAT_OK;
  aip_otel_end(k->span, st);
  k->span = NULL;
  aip_call_unbind_hook(k->call);
  aiplat_bus_sub_destroy(k->stream_sub);
  k->stream_sub = NULL;
  k->cleanup.fn = on_cleanup;
  if (!armed || aip_loop_post(&k->cleanup) != AIPLAT_OK) {
    free(k);
    pthread_mutex_lock(&c->mu);
    c->live--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return aip_fail(NULL, st, "%s", why);
}

/* ---- the blocking form ---------------------------------------------------------- */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  aiplat_status st;
  char msg[1024];
  aiplat_msg *reply;
} waiter;

static void on_done_wait(aiplat_status st, const char *message, aiplat_msg *reply,
                         void *ud) {
  waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  w->st = st;
  snprintf(w->msg, sizeof w->msg, "%s", message);
  w->reply = reply;
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

AIPLAT_API aiplat_status aiplat_client_request(aiplat_client *c, const char *subject,
                                               aiplat_msg *request,
                                               aiplat_msg_type reply_type,
                                               const aiplat_client_options *o,
                                               aiplat_msg **reply) {
  if (!reply) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "client: NULL reply");
  *reply = NULL;
  waiter w = {.done = false};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  aiplat_status st = aiplat_client_request_async(c, subject, request, reply_type, o,
                                                 on_done_wait, &w);
  if (st == AIPLAT_OK) {
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    *reply = w.reply;
    st = w.st;
    if (st != AIPLAT_OK) aip_fail(NULL, st, "%s", w.msg);
  }
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  return st;
}

/* ---- the end ------------------------------------------------------------------- */

AIPLAT_API void aiplat_client_destroy(aiplat_client *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->closing = true;
  pthread_mutex_unlock(&c->mu);
  /* end every call still running: claimed all at once, under the lock */
  ccall *ended = NULL;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < CLIENT_BUCKETS; i++) {
    while (c->buckets[i]) {
      ccall *k = c->buckets[i];
      claim(k);
      k->next = ended;
      ended = k;
    }
  }
  pthread_mutex_unlock(&c->mu);
  while (ended) {
    ccall *k = ended;
    ended = k->next;
    k->next = NULL;
    complete(k, AIPLAT_ERR_CLOSED, "client: destroyed", NULL, false);
  }
  aiplat_bus_sub_destroy(c->mux);
  pthread_mutex_lock(&c->mu);
  /* each call's clean-up runs after its callback returned */
  while (c->live > 0) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  bool ref = c->global_ref;
  free(c);
  if (ref) aip_global_unref();
}
