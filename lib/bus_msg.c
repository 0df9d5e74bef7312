/* Headers and received messages: accessors, respond, JetStream acks and
 * metadata. See ADR 0006. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "subject_internal.h"

#define HDR_KEY_MAX 256
#define HDR_VALUE_MAX 4096
#define JS_ACK_PREFIX "$JS.ACK."

/* ---- headers ----------------------------------------------------------------
 */

AIPLAT_API aiplat_status aiplat_headers_create(aiplat_headers **out) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "headers: out is NULL");
  *out = NULL;
  aiplat_headers *h = calloc(1, sizeof *h);
  if (!h) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "headers: out of memory");
  aip_err_init(&h->err);
  *out = h;
  return AIPLAT_OK;
}

static void headers_clear(aiplat_headers *h) {
  for (size_t i = 0; i < h->n; i++) {
    free(h->keys[i]);
    free(h->values[i]);
  }
  free(h->keys);
  free(h->values);
  h->keys = h->values = NULL;
  h->n = h->cap = 0;
}

AIPLAT_API void aiplat_headers_destroy(aiplat_headers *h) {
  if (!h || h->readonly) return; /* a message's view belongs to the message */
  headers_clear(h);
  aip_err_destroy(&h->err);
  free(h);
}

static void headers_free_view(aiplat_headers *h) {
  if (!h) return;
  headers_clear(h);
  aip_err_destroy(&h->err);
  free(h);
}

static aiplat_status check_key(aip_err *e, const char *key) {
  if (!key || !*key)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "headers: key is empty");
  size_t len = strnlen(key, HDR_KEY_MAX + 1);
  if (len > HDR_KEY_MAX)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "headers: key is longer than %d bytes", HDR_KEY_MAX);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c <= ' ' || c >= 0x7f || c == ':')
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "headers: key may hold only printable ASCII without ':' "
                      "or spaces (bad byte at %zu)",
                      i);
  }
  return AIPLAT_OK;
}

static aiplat_status check_value(aip_err *e, const char *key,
                                 const char *value) {
  if (!value)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "headers: value of %s is NULL", key);
  size_t len = strnlen(value, HDR_VALUE_MAX + 1);
  if (len > HDR_VALUE_MAX)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "headers: value of %s is longer than %d bytes", key,
                    HDR_VALUE_MAX);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)value[i];
    if ((c < ' ' && c != '\t') || c == 0x7f)
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "headers: value of %s contains a line break or control "
                      "byte (at %zu)",
                      key, i);
  }
  return AIPLAT_OK;
}

static aiplat_status headers_push(aiplat_headers *h, const char *key,
                                  const char *value) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 8;
    char **k = realloc(h->keys, cap * sizeof *k);
    if (!k)
      return aip_fail(&h->err, AIPLAT_ERR_NO_MEMORY, "headers: out of memory");
    h->keys = k;
    char **v = realloc(h->values, cap * sizeof *v);
    if (!v)
      return aip_fail(&h->err, AIPLAT_ERR_NO_MEMORY, "headers: out of memory");
    h->values = v;
    h->cap = cap;
  }
  char *k = aip_strdup(key), *v = aip_strdup(value);
  if (!k || !v) {
    free(k);
    free(v);
    return aip_fail(&h->err, AIPLAT_ERR_NO_MEMORY, "headers: out of memory");
  }
  h->keys[h->n] = k;
  h->values[h->n] = v;
  h->n++;
  return AIPLAT_OK;
}

static aiplat_status headers_put(aiplat_headers *h, const char *key,
                                 const char *value, bool replace) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "headers: set is NULL");
  if (h->readonly)
    return aip_fail(NULL, AIPLAT_ERR_STATE,
                    "headers: the headers of a received message are "
                    "read-only");
  aiplat_status st = check_key(&h->err, key);
  if (!st) st = check_value(&h->err, key, value);
  if (st) return st;
  if (replace) {
    size_t w = 0;
    for (size_t i = 0; i < h->n; i++) {
      if (strcmp(h->keys[i], key) == 0) {
        free(h->keys[i]);
        free(h->values[i]);
      } else {
        h->keys[w] = h->keys[i];
        h->values[w] = h->values[i];
        w++;
      }
    }
    h->n = w;
  }
  return headers_push(h, key, value);
}

AIPLAT_API aiplat_status aiplat_headers_set(aiplat_headers *h, const char *key,
                                            const char *value) {
  return headers_put(h, key, value, true);
}

AIPLAT_API aiplat_status aiplat_headers_add(aiplat_headers *h, const char *key,
                                            const char *value) {
  return headers_put(h, key, value, false);
}

AIPLAT_API aiplat_status aiplat_headers_get(const aiplat_headers *h,
                                            const char *key,
                                            const char **value) {
  if (!h || !key || !value)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "headers: get: NULL argument");
  *value = NULL;
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->keys[i], key) == 0) {
      *value = h->values[i];
      return AIPLAT_OK;
    }
  return aip_fail(NULL, AIPLAT_ERR_NOT_FOUND, "headers: no header %s", key);
}

AIPLAT_API size_t aiplat_headers_count(const aiplat_headers *h) {
  return h ? h->n : 0;
}

AIPLAT_API const char *aiplat_headers_key_at(const aiplat_headers *h,
                                             size_t i) {
  return h && i < h->n ? h->keys[i] : NULL;
}

AIPLAT_API const char *aiplat_headers_value_at(const aiplat_headers *h,
                                               size_t i) {
  return h && i < h->n ? h->values[i] : NULL;
}

AIPLAT_API aiplat_status aiplat_headers_last_error(aiplat_headers *h, char *buf,
                                                   size_t buflen) {
  if (!h)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "headers: set is NULL");
  return aip_err_copy(&h->err, buf, buflen);
}

aiplat_status aip_headers_encoded_len(const aiplat_headers *h, aip_err *e,
                                      size_t *len) {
  /* As nats.c encodes them: "NATS/1.0\r\n" + "key: value\r\n"... + "\r\n".
   * Sets built by aiplat_headers_set/add are valid already; check again in
   * case the set is a message's view being forwarded. */
  *len = 0;
  if (!h || h->n == 0) return AIPLAT_OK;
  size_t total = 10 + 2;
  for (size_t i = 0; i < h->n; i++) {
    if (!h->checked) {
      aiplat_status st = check_key(e, h->keys[i]);
      if (!st) st = check_value(e, h->keys[i], h->values[i]);
      if (st) return st;
    }
    total += strlen(h->keys[i]) + 2 + strlen(h->values[i]) + 2;
  }
  *len = total;
  return AIPLAT_OK;
}

aiplat_status aip_headers_apply(const aiplat_headers *h, natsMsg *nm,
                                aip_err *e) {
  for (size_t i = 0; h && i < h->n; i++) {
    natsStatus s = natsMsgHeader_Add(nm, h->keys[i], h->values[i]);
    if (s != NATS_OK) return aip_bus_fail_nats(e, s, 0, "bus: headers");
  }
  return AIPLAT_OK;
}

/* ---- JetStream metadata
 * ------------------------------------------------------ */

static bool parse_u64(const char *s, uint64_t *out) {
  if (!*s) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool aip_js_parse_ack_subject(const char *reply, aip_js_meta *m) {
  memset(m, 0, sizeof *m);
  size_t plen = strlen(JS_ACK_PREFIX);
  if (!reply || strncmp(reply, JS_ACK_PREFIX, plen) != 0) return false;
  char *buf = aip_strdup(reply + plen);
  if (!buf) return false;
  char *tok[12];
  size_t n = 0;
  for (char *p = buf; n < AIP_ARRAY_LEN(tok);) {
    tok[n++] = p;
    char *dot = strchr(p, '.');
    if (!dot) break;
    *dot = '\0';
    p = dot + 1;
  }
  /* v1: stream.consumer.delivered.sseq.cseq.ts.pending (7 tokens);
   * v2: domain.account.stream.consumer.delivered.sseq.cseq.ts.pending[.x] */
  size_t base;
  if (n == 7)
    base = 0;
  else if (n >= 9)
    base = 2;
  else
    goto bad;
  uint64_t ts;
  if (!*tok[base] || !*tok[base + 1] ||
      !parse_u64(tok[base + 2], &m->delivered) ||
      !parse_u64(tok[base + 3], &m->stream_seq) ||
      !parse_u64(tok[base + 4], &m->consumer_seq) ||
      !parse_u64(tok[base + 5], &ts) || ts > INT64_MAX ||
      !parse_u64(tok[base + 6], &m->pending))
    goto bad;
  m->timestamp_ns = (int64_t)ts;
  m->buf = buf;
  m->stream = tok[base];
  m->consumer = tok[base + 1];
  return true;
bad:
  free(buf);
  memset(m, 0, sizeof *m);
  return false;
}

/* ---- messages
 * -------------------------------------------------------------------- */

enum { ACK_NONE = 0, ACK_FINAL = 1 };

struct aiplat_bus_msg {
  atomic_int refs;
  aip_err err;
  pthread_mutex_t mu;
  aiplat_bus *bus;
  aiplat_bus_sub *sub; /* JetStream subscription it counts against */
  natsMsg *nm;         /* NULL once taken */
  char *subject_copy, *reply_copy;
  const char *subject, *reply;
  bool is_js;
  int ack_state;
  aiplat_headers *view;
  aip_js_meta meta;
  int meta_state; /* 0 unparsed, 1 good, -1 malformed */
};

aiplat_status aip_bus_msg_wrap(aiplat_bus_msg **out, aiplat_bus *bus,
                               aiplat_bus_sub *sub, natsMsg *nm) {
  *out = NULL;
  aiplat_bus_msg *m = calloc(1, sizeof *m);
  if (!m) {
    natsMsg_Destroy(nm);
    return aip_fail(&bus->err, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  }
  atomic_init(&m->refs, 1);
  aip_err_init(&m->err);
  pthread_mutex_init(&m->mu, NULL);
  m->bus = bus;
  aip_bus_ref(bus);
  m->sub = sub;
  if (sub) aip_sub_msg_hold(sub);
  m->nm = nm;
  m->subject = natsMsg_GetSubject(nm);
  m->reply = natsMsg_GetReply(nm);
  if (m->reply && !*m->reply) m->reply = NULL;
  m->is_js =
      m->reply && strncmp(m->reply, JS_ACK_PREFIX, strlen(JS_ACK_PREFIX)) == 0;
  *out = m;
  return AIPLAT_OK;
}

aiplat_status aip_bus_msg_adopt(aiplat_bus_msg **out, aiplat_bus *bus,
                                natsMsg *nm) {
  if (!out || !bus || !nm) {
    natsMsg_Destroy(nm);
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: adopt: NULL argument");
  }
  return aip_bus_msg_wrap(out, bus, NULL, nm);
}

natsMsg *aip_bus_msg_nats(aiplat_bus_msg *msg) {
  return msg ? msg->nm : NULL;
}

natsMsg *aip_bus_msg_take_nats(aiplat_bus_msg *msg) {
  if (!msg) return NULL;
  pthread_mutex_lock(&msg->mu);
  natsMsg *nm = msg->nm;
  if (nm) {
    char *s = aip_strdup(msg->subject);
    char *r = msg->reply ? aip_strdup(msg->reply) : NULL;
    if (!s || (msg->reply && !r)) {
      free(s);
      free(r);
      nm = NULL;
    } else {
      msg->subject = msg->subject_copy = s;
      msg->reply = msg->reply_copy = r;
      headers_free_view(msg->view);
      msg->view = NULL;
      msg->nm = NULL;
    }
  }
  pthread_mutex_unlock(&msg->mu);
  return nm;
}

AIPLAT_API aiplat_bus_msg *aiplat_bus_msg_retain(aiplat_bus_msg *msg) {
  if (msg) atomic_fetch_add(&msg->refs, 1);
  return msg;
}

AIPLAT_API void aiplat_bus_msg_destroy(aiplat_bus_msg *msg) {
  if (!msg || atomic_fetch_sub(&msg->refs, 1) != 1) return;
  aip_bus_retire(msg->nm);
  free(msg->subject_copy);
  free(msg->reply_copy);
  headers_free_view(msg->view);
  free(msg->meta.buf);
  pthread_mutex_destroy(&msg->mu);
  aip_err_destroy(&msg->err);
  aiplat_bus_sub *sub = msg->sub;
  aiplat_bus *bus = msg->bus;
  free(msg);
  if (sub) aip_sub_msg_done(sub);
  aip_bus_unref(bus);
}

AIPLAT_API aiplat_status aiplat_bus_msg_last_error(aiplat_bus_msg *msg,
                                                   char *buf, size_t buflen) {
  if (!msg)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: msg is NULL");
  return aip_err_copy(&msg->err, buf, buflen);
}

AIPLAT_API const char *aiplat_bus_msg_subject(const aiplat_bus_msg *msg) {
  return msg ? msg->subject : NULL;
}

AIPLAT_API const char *aiplat_bus_msg_reply(const aiplat_bus_msg *msg) {
  return msg ? msg->reply : NULL;
}

AIPLAT_API const void *aiplat_bus_msg_data(const aiplat_bus_msg *msg) {
  if (!msg || !msg->nm) return "";
  const char *d = natsMsg_GetData(msg->nm);
  return d ? d : "";
}

AIPLAT_API size_t aiplat_bus_msg_len(const aiplat_bus_msg *msg) {
  if (!msg || !msg->nm) return 0;
  int n = natsMsg_GetDataLength(msg->nm);
  return n > 0 ? (size_t)n : 0;
}

AIPLAT_API aiplat_status aiplat_bus_msg_header(aiplat_bus_msg *msg,
                                               const char *key,
                                               const char **value) {
  if (!msg || !key || !value)
    return aip_fail(msg ? &msg->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: msg header: NULL argument");
  *value = NULL;
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&msg->mu);
  if (!msg->nm) {
    st = aip_fail(&msg->err, AIPLAT_ERR_STATE,
                  "bus: msg header: the NATS message was taken out");
  } else {
    natsStatus s = natsMsgHeader_Get(msg->nm, key, value);
    if (s == NATS_NOT_FOUND)
      st = aip_fail(&msg->err, AIPLAT_ERR_NOT_FOUND, "bus: no header %s", key);
    else if (s != NATS_OK)
      st = aip_bus_fail_nats(&msg->err, s, 0, "bus: msg header");
  }
  pthread_mutex_unlock(&msg->mu);
  return st;
}

const char *aip_bus_msg_header_peek(aiplat_bus_msg *msg, const char *key) {
  const char *value = NULL;
  pthread_mutex_lock(&msg->mu);
  if (msg->nm && natsMsgHeader_Get(msg->nm, key, &value) != NATS_OK) value = NULL;
  pthread_mutex_unlock(&msg->mu);
  return value;
}

static aiplat_status build_view(aiplat_bus_msg *msg) {
  aiplat_headers *h = calloc(1, sizeof *h);
  if (!h)
    return aip_fail(&msg->err, AIPLAT_ERR_NO_MEMORY, "bus: out of memory");
  aip_err_init(&h->err);
  const char **keys = NULL;
  int nkeys = 0;
  aiplat_status st = AIPLAT_OK;
  natsStatus s = natsMsgHeader_Keys(msg->nm, &keys, &nkeys);
  if (s == NATS_NOT_FOUND) s = NATS_OK, nkeys = 0;
  for (int i = 0; s == NATS_OK && st == AIPLAT_OK && i < nkeys; i++) {
    const char **vals = NULL;
    int nvals = 0;
    s = natsMsgHeader_Values(msg->nm, keys[i], &vals, &nvals);
    if (s == NATS_NOT_FOUND) {
      s = NATS_OK;
      continue;
    }
    for (int j = 0; s == NATS_OK && st == AIPLAT_OK && j < nvals; j++)
      st = headers_push(h, keys[i], vals[j] ? vals[j] : "");
    free((void *)vals);
  }
  free((void *)keys);
  if (s != NATS_OK) st = aip_bus_fail_nats(&msg->err, s, 0, "bus: msg headers");
  if (st) {
    headers_free_view(h);
    return st == AIPLAT_ERR_NO_MEMORY
               ? aip_fail(&msg->err, st, "bus: out of memory")
               : st;
  }
  h->readonly = true;
  msg->view = h;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_msg_headers(aiplat_bus_msg *msg,
                                                const aiplat_headers **out) {
  if (!msg || !out)
    return aip_fail(msg ? &msg->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: msg headers: NULL argument");
  *out = NULL;
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&msg->mu);
  if (!msg->nm)
    st = aip_fail(&msg->err, AIPLAT_ERR_STATE,
                  "bus: msg headers: the NATS message was taken out");
  else if (!msg->view)
    st = build_view(msg);
  if (!st) *out = msg->view;
  pthread_mutex_unlock(&msg->mu);
  return st;
}

AIPLAT_API aiplat_status aiplat_bus_msg_respond(aiplat_bus_msg *msg,
                                                const void *data, size_t len,
                                                const aiplat_headers *headers) {
  if (!msg)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: msg is NULL");
  if (!msg->reply)
    return aip_fail(&msg->err, AIPLAT_ERR_STATE,
                    "bus: respond: the message on %s has no reply subject",
                    msg->subject);
  if (msg->is_js)
    return aip_fail(&msg->err, AIPLAT_ERR_STATE,
                    "bus: respond: a JetStream message's reply subject is its "
                    "acknowledgement; use aiplat_bus_msg_ack/nak/term");
  natsConnection *nc = aip_bus_open_conn(msg->bus, &msg->err, "bus: respond");
  if (!nc) return aip_err_copy(&msg->err, NULL, 0);
  return aip_bus_send(&msg->err, nc, msg->reply, NULL, data, len, headers,
                      "bus: respond");
}

AIPLAT_API bool aiplat_bus_msg_is_jetstream(const aiplat_bus_msg *msg) {
  return msg && msg->is_js;
}

/* Send an acknowledgement body on the message's ack subject. A final one
 * (ack, nak, term) may be sent once; progress any number of times before. */
static aiplat_status send_ack(aiplat_bus_msg *msg, const char *what,
                              const char *body, bool final,
                              int64_t sync_timeout_ms) {
  if (!msg)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: msg is NULL");
  if (!msg->is_js)
    return aip_fail(&msg->err, AIPLAT_ERR_STATE,
                    "bus: %s: not a JetStream message (subject %s)", what,
                    msg->subject);
  pthread_mutex_lock(&msg->mu);
  bool done = msg->ack_state == ACK_FINAL;
  if (!done && final) msg->ack_state = ACK_FINAL;
  pthread_mutex_unlock(&msg->mu);
  if (done)
    return aip_fail(&msg->err, AIPLAT_ERR_STATE,
                    "bus: %s: the message was already acked, naked or "
                    "terminated",
                    what);
  natsConnection *nc = aip_bus_open_conn(msg->bus, &msg->err, "bus: ack");
  natsStatus s = NATS_CONNECTION_CLOSED;
  if (nc && sync_timeout_ms > 0) {
    natsMsg *r = NULL;
    s = natsConnection_Request(&r, nc, msg->reply, body, (int)strlen(body),
                               sync_timeout_ms);
    natsMsg_Destroy(r);
  } else if (nc) {
    s = natsConnection_Publish(nc, msg->reply, body, (int)strlen(body));
  }
  if (s == NATS_OK) return AIPLAT_OK;
  if (final) { /* not sent: allow another attempt */
    pthread_mutex_lock(&msg->mu);
    msg->ack_state = ACK_NONE;
    pthread_mutex_unlock(&msg->mu);
  }
  if (!nc) return aip_err_copy(&msg->err, NULL, 0);
  if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS)
    return aip_fail(&msg->err, AIPLAT_ERR_TIMEOUT,
                    "bus: %s: the server did not confirm within %lld ms", what,
                    (long long)sync_timeout_ms);
  return aip_bus_fail_nats(&msg->err, s, 0, what);
}

AIPLAT_API aiplat_status aiplat_bus_msg_ack(aiplat_bus_msg *msg) {
  return send_ack(msg, "ack", "+ACK", true, 0);
}

AIPLAT_API aiplat_status aiplat_bus_msg_ack_sync(aiplat_bus_msg *msg,
                                                 int64_t timeout_ms) {
  if (msg && timeout_ms <= 0)
    return aip_fail(&msg->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: ack_sync: timeout_ms must be more than 0");
  return send_ack(msg, "ack_sync", "+ACK", true, timeout_ms);
}

AIPLAT_API aiplat_status aiplat_bus_msg_nak(aiplat_bus_msg *msg) {
  return send_ack(msg, "nak", "-NAK", true, 0);
}

AIPLAT_API aiplat_status aiplat_bus_msg_nak_with_delay(aiplat_bus_msg *msg,
                                                       int64_t delay_ms) {
  if (msg && (delay_ms < 0 || delay_ms > INT64_MAX / 1000000))
    return aip_fail(&msg->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: nak_with_delay: delay_ms out of range");
  char body[64];
  snprintf(body, sizeof body, "-NAK {\"delay\":%lld}",
           (long long)delay_ms * 1000000LL);
  return send_ack(msg, "nak_with_delay", body, true, 0);
}

AIPLAT_API aiplat_status aiplat_bus_msg_term(aiplat_bus_msg *msg) {
  return send_ack(msg, "term", "+TERM", true, 0);
}

AIPLAT_API aiplat_status aiplat_bus_msg_in_progress(aiplat_bus_msg *msg) {
  return send_ack(msg, "in_progress", "+WPI", false, 0);
}

static aiplat_status meta(aiplat_bus_msg *msg, const char *what) {
  if (!msg)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: msg is NULL");
  if (!msg->is_js)
    return aip_fail(&msg->err, AIPLAT_ERR_STATE,
                    "bus: %s: not a JetStream message", what);
  pthread_mutex_lock(&msg->mu);
  if (msg->meta_state == 0)
    msg->meta_state = aip_js_parse_ack_subject(msg->reply, &msg->meta) ? 1 : -1;
  int state = msg->meta_state;
  pthread_mutex_unlock(&msg->mu);
  if (state < 0)
    return aip_fail(&msg->err, AIPLAT_ERR_PROTOCOL,
                    "bus: %s: malformed JetStream reply subject", what);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_msg_delivery_count(aiplat_bus_msg *msg,
                                                       uint64_t *out) {
  if (!out)
    return aip_fail(msg ? &msg->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: delivery_count: out is NULL");
  *out = 0;
  aiplat_status st = meta(msg, "delivery_count");
  if (!st) *out = msg->meta.delivered;
  return st;
}

AIPLAT_API aiplat_status aiplat_bus_msg_js_metadata(
    aiplat_bus_msg *msg, const char **stream, const char **consumer,
    uint64_t *stream_seq, uint64_t *consumer_seq, uint64_t *delivered,
    uint64_t *pending, int64_t *timestamp_ns) {
  aiplat_status st = meta(msg, "js_metadata");
  if (st) return st;
  if (stream) *stream = msg->meta.stream;
  if (consumer) *consumer = msg->meta.consumer;
  if (stream_seq) *stream_seq = msg->meta.stream_seq;
  if (consumer_seq) *consumer_seq = msg->meta.consumer_seq;
  if (delivered) *delivered = msg->meta.delivered;
  if (pending) *pending = msg->meta.pending;
  if (timestamp_ns) *timestamp_ns = msg->meta.timestamp_ns;
  return AIPLAT_OK;
}

void aip_bus_msg_settle_failed(aiplat_bus_msg *m, const char *why) {
  if (m && m->is_js) aip_bus_sub_settle_failed(m->sub, why);
}
