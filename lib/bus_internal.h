/* The bus inside the library (not installed): shared by lib/bus*.c and by
 * the service framework, which builds on the bus's connection and on
 * subscriptions that hand it ownership of each message.
 * See docs/decisions/0006-nats-bus.md. */
#ifndef AIPLAT_BUS_INTERNAL_H
#define AIPLAT_BUS_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>

#include "aiplat/bus.h"
#include "internal.h"

/* ---- for the service framework --------------------------------------- */

/* The NATS connection of a connected bus, or NULL before
 * aiplat_bus_connect(). Borrowed: valid until the bus is released (it is
 * kept while any subscription, message or KV handle of the bus lives).
 * Publishing on it directly bypasses subject checks: check with
 * aip_subject_check() first. Do not close or destroy it. */
natsConnection *aip_bus_conn(aiplat_bus *bus);

/* The JetStream context of a connected bus (same lifetime as the
 * connection), or NULL before connect. */
jsCtx *aip_bus_js(aiplat_bus *bus);

/* Find stream @name for a consumer of @subject (wildcards allowed) and use
 * it as it is: its subjects, limits, retention and replicas are never
 * changed. One of its subjects must cover @subject (NATS wildcard rules),
 * else AIPLAT_ERR_CONFIG naming the stream, its subjects and @subject. When
 * there is no such stream, create it capturing @subject with @retention,
 * no age limit, on file, @replicas replicas (1..5); when another process
 * creates it first, bind to that one. With @bind_only a missing stream is
 * AIPLAT_ERR_NOT_FOUND instead, and nothing is created. When @have_replicas is not NULL it
 * receives the replicas of the stream used. Failures are recorded as
 * "@what: ...". */
aiplat_status aip_bus_stream_bind(aiplat_bus *bus, const char *what,
                                  const char *name, const char *subject,
                                  aiplat_bus_retention retention,
                                  int replicas, bool bind_only,
                                  int *have_replicas);

/* aiplat_kv_open() with the replicas of a bucket it creates (1..5; an
 * existing bucket is used as it is) and, when @timeout_ms > 0, its own
 * JetStream context so that each of its requests (get, put, delete) waits
 * at most @timeout_ms for the server rather than the bus's default. */
aiplat_status aip_kv_open(aiplat_kv **out, aiplat_bus *bus, const char *bucket,
                          int64_t ttl_ms, int history, int replicas,
                          int64_t timeout_ms);

/* ---- asynchronous Key-Value (the request/reply form of JetStream KV) --- */

/* A bucket reached without blocking: a get is a JetStream direct get
 * ($JS.API.DIRECT.GET.KV_<bucket>), a put a publish to $KV.<bucket>.<key>
 * whose reply is the stream's acknowledgement. The replies of every call
 * come on one wildcard inbox subscription; deadlines are timers on the
 * execution core's loop (lib/loop.h). Creating the handle sends nothing;
 * a get or put that finds no bucket creates it (file storage, one replica,
 * @ttl_ms max age or none, @history values per key, direct get allowed)
 * and tries once more. */
typedef struct aip_akv aip_akv;

/* The end of a call, on the loop thread: AIPLAT_OK with, for a get, the
 * value in @data (@len bytes, NUL-terminated, the callee's: free()) and
 * its revision; else @why (borrowed for the call). A get of a key never
 * written, deleted, purged or expired ends with AIPLAT_ERR_NOT_FOUND. */
typedef void (*aip_akv_fn)(aiplat_status st, const char *why, void *data,
                           size_t len, uint64_t revision, void *ud);

/* No server round trip. @bucket is checked (the rules of aiplat_kv_open). */
aiplat_status aip_akv_create(aip_akv **out, aiplat_bus *bus,
                             const char *bucket, int64_t ttl_ms, int history);
/* Ends every call still running with AIPLAT_ERR_CLOSED (on the loop thread)
 * and waits for them. Not on the loop thread. NULL is a no-op. */
void aip_akv_destroy(aip_akv *kv);
/* Start a get or a put bounded by @deadline_ms (aip_now_ms() clock; 0:
 * five seconds). On AIPLAT_OK @done runs once, later, on the loop thread; on
 * failure (bad key, value too large, not connected, handle closing) never,
 * and the thread's record has the detail. @data is copied. Any thread. */
aiplat_status aip_akv_get(aip_akv *kv, const char *key, int64_t deadline_ms,
                          aip_akv_fn done, void *ud);
aiplat_status aip_akv_put(aip_akv *kv, const char *key, const void *data,
                          size_t len, int64_t deadline_ms, aip_akv_fn done,
                          void *ud);

/* Subscribe like aiplat_bus_subscribe(), but @fn receives OWNERSHIP of each
 * message: it must call aiplat_bus_msg_destroy() once done, from any thread
 * (typically after a worker answered or acked it). This lets a worker pool
 * take messages off the delivery thread at once. The natsMsg inside is
 * reachable with aip_bus_msg_nats() or taken with aip_bus_msg_take_nats(). */
aiplat_status aip_bus_subscribe_owned(aiplat_bus *bus, const char *subject,
                                      const char *queue, aiplat_bus_msg_fn fn,
                                      void *closure, aiplat_bus_sub **out);

/* The same for a JetStream pull consumer (see aiplat_bus_js_subscribe());
 * @max_in_flight bounds the owned messages not yet destroyed, which is how
 * a worker pool of N threads asks for at most N messages at a time. */
aiplat_status aip_bus_js_subscribe_owned(aiplat_bus *bus, const char *stream,
                                         const char *durable,
                                         const char *filter_subject,
                                         int64_t ack_wait_ms,
                                         int64_t max_deliver, int max_in_flight,
                                         aiplat_bus_msg_fn fn, void *closure,
                                         aiplat_bus_sub **out);

/* Whether a JetStream pull subscription can fetch: false after two
 * failures in a row (no consumer leader, stream or consumer lost, no
 * permission, no answer), true again after the next fetch or probe that
 * reaches the consumer. When false, the reason is copied into @why (up to
 * @whylen bytes, NUL-terminated). A plain subscription always can. Any
 * thread; does not block. */
bool aip_bus_sub_fetch_ok(aiplat_bus_sub *sub, char *why, size_t whylen);
/* A JetStream message of @sub could not be settled (its ack or completion
 * record found no leader): the subscription cannot serve until a fetch
 * succeeds again, which readiness reports. A subscription at its capacity
 * does not fetch, so only its settling tells. */
void aip_bus_sub_settle_failed(aiplat_bus_sub *sub, const char *why);
void aip_bus_msg_settle_failed(aiplat_bus_msg *m, const char *why);

/* The natsMsg of a message, borrowed (NULL after aip_bus_msg_take_nats()).
 * Do not call natsMsg_Ack() and friends on it: nats.c 3.4.1 reaches the
 * subscription through the message, which may be gone by then; the
 * aiplat_bus_msg_ack() family publishes on the reply subject through the
 * connection and stays safe. */
natsMsg *aip_bus_msg_nats(aiplat_bus_msg *msg);

/* Take the natsMsg out of the message (the caller destroys it with
 * natsMsg_Destroy()); the message keeps a copy of its subject and reply so
 * that acks and respond still work. NULL on allocation failure. */
natsMsg *aip_bus_msg_take_nats(aiplat_bus_msg *msg);

/* Wrap a natsMsg (ownership taken, also on failure) received on @bus into a
 * message handle, e.g. one obtained from a subscription made directly on
 * aip_bus_conn(). */
aiplat_status aip_bus_msg_adopt(aiplat_bus_msg **out, aiplat_bus *bus,
                                natsMsg *nm);

/* The first value of header @key, or NULL when absent; unlike
 * aiplat_bus_msg_header() a missing header is not recorded as a failure
 * (the service framework looks up optional headers on every request). */
const char *aip_bus_msg_header_peek(aiplat_bus_msg *msg, const char *key);

/* Map a natsStatus to an aiplat_status and record "@what: <nats text>" in
 * @e and in the thread's record. @jerr is a JetStream error code or 0. */
aiplat_status aip_bus_fail_nats(aip_err *e, natsStatus s, int jerr,
                                const char *what);

/* ---- nkeys (lib/bus_nkey.c) ------------------------------------------ */

/* The public user key ("U...") of an encoded user seed ("SU..."); @pub
 * must hold 57 bytes. false when the seed is malformed (no detail: the
 * seed is a secret). */
bool aip_nkey_public_from_seed(const char *seed, char *pub, size_t publen);

/* Encode 32 raw bytes as a user seed ("SU...", 58 chars + NUL); for tests. */
bool aip_nkey_encode_seed(const unsigned char raw[32], char *seed,
                          size_t seedlen);

/* ---- TLS exit guard (lib/bus_tls.c) ------------------------------------ */

/* Register, once and after nats.c is initialised, the exit handler that
 * prevents nats.c 3.4.1 and OpenSSL from freeing the same stack at exit. */
void aip_bus_tls_exit_guard(void);

/* ---- shared between lib/bus*.c ---------------------------------------- */

typedef enum aip_bus_state {
  AIP_BUS_CREATED = 0,
  AIP_BUS_CONNECTING,
  AIP_BUS_OPEN,
  AIP_BUS_CLOSED
} aip_bus_state;

struct aiplat_bus {
  atomic_int refs; /* the user's, plus one per sub, message and KV handle */
  aip_err err;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  aip_bus_state state;
  natsOptions *opts;
  natsConnection *nc;
  jsCtx *js;
  aiplat_bus_event_fn event_fn;
  void *event_ud;
  bool send_asap;
  bool retry_connect;
  bool closed_done; /* the CLOSED callback has run */
  atomic_uint_fast64_t reconnects;
  atomic_uint_fast64_t async_errors;
  /* Subscriptions whose release could not be proven safe while the
   * connection is open (nats.c 3.4.1 read-loop race): freed at the end. */
  natsSubscription **parked;
  size_t n_parked, cap_parked;
  char *servers_log;   /* NATS_URL without credentials, for logs */
  char nkey_seed[128]; /* nats.c signs with it on every (re)connect */
};

void aip_bus_ref(aiplat_bus *bus);
void aip_bus_unref(aiplat_bus *bus);
/* The connection if the bus is open, else NULL and a recorded failure. */
natsConnection *aip_bus_open_conn(aiplat_bus *bus, aip_err *e,
                                  const char *what);
/* Release a natsSubscription whose messages are done: destroy it when a
 * round trip proves the read loop is past it, else keep it until the bus
 * is released. */
void aip_bus_release_nsub(aiplat_bus *bus, natsSubscription *ns);

struct aiplat_headers {
  aip_err err;
  bool readonly;
  bool checked; /* built by libaiplat from valid parts: no re-check */
  size_t n, cap;
  char **keys;
  char **values;
};

/* Check the headers and count the bytes they add to a message. */
aiplat_status aip_headers_encoded_len(const aiplat_headers *h, aip_err *e,
                                      size_t *len);
/* Copy @h into the headers of @nm. */
aiplat_status aip_headers_apply(const aiplat_headers *h, natsMsg *nm,
                                aip_err *e);

/* Build the natsMsg to publish: subject, reply, data and headers, after
 * checking the subject, headers and size against max_payload. With @out
 * NULL, only check. */
aiplat_status aip_bus_make_msg(aiplat_bus *bus, aip_err *e, natsConnection *nc,
                               const char *subject, const char *reply,
                               const void *data, size_t len,
                               const aiplat_headers *headers, natsMsg **out);

/* Check and publish (without a natsMsg copy when there are no headers). */
aiplat_status aip_bus_send(aip_err *e, natsConnection *nc, const char *subject,
                           const char *reply, const void *data, size_t len,
                           const aiplat_headers *headers, const char *what);

typedef enum aip_sub_kind { AIP_SUB_CORE, AIP_SUB_JS } aip_sub_kind;

/* nats.c 3.4.1 frees every natsMsg on its garbage-collector thread, and
 * each natsMsg_Destroy that finds that thread asleep wakes it: two or three
 * context switches per message, more than the rest of a reply costs. A
 * subscription's delivery thread therefore keeps the messages it is done
 * with and destroys them in a batch of up to AIP_RETIRE_MAX (or
 * AIP_RETIRE_BYTES of payload), so the collector wakes a few times per
 * batch rather than per message.
 * Messages over AIP_RETIRE_ONE_MAX bytes are destroyed at once. */
#define AIP_RETIRE_MAX 64
#define AIP_RETIRE_BYTES 32768
#define AIP_RETIRE_ONE_MAX 2048

struct aiplat_bus_sub {
  atomic_int refs; /* the user's, plus one per held JetStream message */
  aip_err err;
  aiplat_bus *bus;
  aip_sub_kind kind;
  natsSubscription *ns;
  aiplat_bus_msg_fn fn;
  void *ud;
  bool owned; /* the callback owns each message */
  char *subject;
  char *stream; /* JetStream: the consumer's stream */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool complete;        /* no callback will run any more */
  bool stopped;         /* natsSubscription released */
  bool stopping;        /* JetStream: stop fetching, drop the rest */
  bool draining;        /* JetStream: stop fetching, deliver the rest */
  bool destroy_pending; /* destroyed from its own callback */
  bool stop_busy;       /* a thread is releasing the natsSubscription */
  /* Core: natsMsgs released on the delivery thread, destroyed together
   * (see aip_bus_retire). Touched only by that thread, and once no
   * callback runs. */
  natsMsg *retired[AIP_RETIRE_MAX];
  int n_retired;
  size_t retired_bytes;
  /* JetStream pull */
  pthread_t fetcher;
  bool fetcher_started;
  int max_in_flight;
  int in_flight;
  /* Fetch health (under mu): failures in a row and the last reason. */
  int fetch_failures;
  char fetch_why[160];
};

void aip_sub_unref(aiplat_bus_sub *sub);
/* Destroy a natsMsg, batched when called on a core subscription's delivery
 * thread (inside its callback). */
void aip_bus_retire(natsMsg *nm);
/* A message now counts against a JetStream subscription's in-flight limit
 * (and keeps the subscription's memory alive). */
void aip_sub_msg_hold(aiplat_bus_sub *sub);
/* A message handed to a JetStream subscription's callback was released. */
void aip_sub_msg_done(aiplat_bus_sub *sub);

/* Parsed JetStream metadata (from the $JS.ACK reply subject). */
typedef struct aip_js_meta {
  char *buf; /* the stream and consumer names point into it */
  const char *stream, *consumer;
  uint64_t stream_seq, consumer_seq, delivered, pending;
  int64_t timestamp_ns;
} aip_js_meta;

/* Parse a JetStream ack subject; false when malformed. */
bool aip_js_parse_ack_subject(const char *reply, aip_js_meta *m);

/* Create a message handle for @nm (ownership taken, also on failure); @sub
 * is the JetStream subscription it counts against, or NULL. */
aiplat_status aip_bus_msg_wrap(aiplat_bus_msg **out, aiplat_bus *bus,
                               aiplat_bus_sub *sub, natsMsg *nm);

#endif
