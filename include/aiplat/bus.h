/**
 * @file aiplat/bus.h
 * @brief The NATS bus: connection, publish, request/reply, subscriptions,
 *        headers, JetStream durable consumers and Key-Value buckets.
 *
 * Decisions and their reasons: docs/decisions/0006-nats-bus.md.
 *
 * Lifecycle: aiplat_bus_create() reads the settings (`NATS_URL`, ...),
 * setters adjust it, aiplat_bus_connect() connects. By default the bus
 * reconnects forever with jitter, and subscriptions survive reconnections.
 * aiplat_bus_close() closes the connection and unblocks every waiting call;
 * aiplat_bus_destroy() closes and releases it. Subscriptions, messages and
 * Key-Value handles keep the bus's memory alive until they are destroyed
 * too, so any destruction order is safe; destroy them before the bus for
 * deterministic cleanup.
 *
 * Subjects are checked before they reach the NATS client
 * (see aiplat/subject.h): an invalid subject is refused with
 * ::AIPLAT_ERR_INVALID_ARGUMENT and nothing is sent.
 *
 * Threads:
 *  - A bus, a subscription and a Key-Value handle may be used from any
 *    thread, concurrently.
 *  - A message may be used from one thread at a time (acks and respond may
 *    come from any thread once the message is handed over).
 *  - Message callbacks of one subscription run one at a time, in arrival
 *    order, on a thread that belongs to that subscription; callbacks of
 *    different subscriptions run concurrently. Plain subscriptions use the
 *    NATS client's delivery thread of the subscription, JetStream
 *    subscriptions a fetch thread of libaiplat.
 *  - The event callback runs on the NATS client's single internal callback
 *    thread; it must return quickly and must not call aiplat_bus_close(),
 *    aiplat_bus_drain() (::AIPLAT_ERR_STATE there) or aiplat_bus_destroy()
 *    (ignored there, with an error logged).
 *  - A callback may publish, request, ack, and destroy its own
 *    subscription; it must not unsubscribe or drain its own subscription
 *    (::AIPLAT_ERR_STATE), since those wait for the callback to return.
 */
#ifndef AIPLAT_BUS_H
#define AIPLAT_BUS_H

#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A connection to NATS. */
typedef struct aiplat_bus aiplat_bus;
/** A message received from a subscription or as a reply. */
typedef struct aiplat_bus_msg aiplat_bus_msg;
/** A subscription (plain or JetStream). */
typedef struct aiplat_bus_sub aiplat_bus_sub;
/** A set of message headers (a key may have several values). */
typedef struct aiplat_headers aiplat_headers;
/** A Key-Value bucket. */
typedef struct aiplat_kv aiplat_kv;

/** Connection events given to the event callback; numbers are pinned. */
typedef enum aiplat_bus_event {
  /** Connected after aiplat_bus_connect() returned (retry on failed connect).
   */
  AIPLAT_BUS_EVENT_CONNECTED = 1,
  /** The connection to the server was lost; reconnection begins. */
  AIPLAT_BUS_EVENT_DISCONNECTED = 2,
  /** Connected again; subscriptions were restored. */
  AIPLAT_BUS_EVENT_RECONNECTED = 3,
  /** Closed for good (aiplat_bus_close(), drain, or reconnects exhausted). */
  AIPLAT_BUS_EVENT_CLOSED = 4,
  /** An asynchronous error (slow consumer, permission violation, ...). */
  AIPLAT_BUS_EVENT_ERROR = 5,
  /** The server announced it is shutting down (lame duck mode). */
  AIPLAT_BUS_EVENT_LAME_DUCK = 6
} aiplat_bus_event;

/**
 * Receives connection events.
 * @param bus       the bus
 * @param event     what happened
 * @param status    ::AIPLAT_OK, or for ::AIPLAT_BUS_EVENT_ERROR the error
 *                  (::AIPLAT_ERR_TOO_LARGE for a slow consumer whose pending
 *                  limit dropped messages, ::AIPLAT_ERR_AUTH for a
 *                  permission violation, ...)
 * @param detail    a human-readable description, never NULL; borrowed for
 *                  the duration of the call
 * @param user_data as given to aiplat_bus_set_event_callback()
 * Runs on the NATS client's internal callback thread, one event at a time.
 * Every event is also logged by the library, whether or not a callback is set.
 */
typedef void (*aiplat_bus_event_fn)(aiplat_bus *bus, aiplat_bus_event event,
                                    aiplat_status status, const char *detail,
                                    void *user_data);

/**
 * Receives a message of a subscription.
 * @param msg       the message, borrowed: the library releases it when the
 *                  callback returns, unless the callback took a reference
 *                  with aiplat_bus_msg_retain() (to answer or ack it later,
 *                  from any thread)
 * @param user_data as given when subscribing
 * Thread: see the file comment.
 */
typedef void (*aiplat_bus_msg_fn)(aiplat_bus_msg *msg, void *user_data);

/* ---- connection ------------------------------------------------------- */

/**
 * Create a bus from settings; it is not connected yet.
 *
 * Reads from @p cfg (or from the environment when @p cfg is NULL):
 * `NATS_URL` (one URL or several separated by commas; `nats://` or
 * `tls://`), `NATS_NAME` (default `SERVICE_NAME`), `NATS_CREDS`,
 * `NATS_NKEY_SEED`, `NATS_TOKEN`, `NATS_USER` + `NATS_PASSWORD`,
 * `NATS_TLS_CA`, `NATS_TLS_CERT` + `NATS_TLS_KEY`, `NATS_CONNECT_TIMEOUT`,
 * `NATS_RECONNECT_WAIT`, `NATS_MAX_RECONNECTS` (-1: forever),
 * `NATS_SEND_ASAP`, `NATS_RETRY_ON_FAILED_CONNECT`. Values are copied;
 * @p cfg may be destroyed afterwards.
 * Errors: ::AIPLAT_ERR_CONFIG naming the variable (a secret's value is never
 * repeated); the detail is in aiplat_error_last().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_create(aiplat_bus **out,
                                           aiplat_config *cfg);

/**
 * Set the event callback (NULL removes it). Only before
 * aiplat_bus_connect(); ::AIPLAT_ERR_STATE afterwards.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_set_event_callback(aiplat_bus *bus,
                                                       aiplat_bus_event_fn fn,
                                                       void *user_data);

/**
 * Send each publish at once (true) or let the client gather writes for up
 * to about 1 ms (false). The default is `NATS_SEND_ASAP` (true: see ADR
 * 0006 for the measurements). Only before aiplat_bus_connect().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_set_send_asap(aiplat_bus *bus,
                                                  bool send_asap);

/**
 * When no server can be reached at connect time: fail (false, the default
 * from `NATS_RETRY_ON_FAILED_CONNECT`) or return ::AIPLAT_OK and keep trying
 * in the background with the reconnect settings (true); the
 * ::AIPLAT_BUS_EVENT_CONNECTED event tells when it succeeds. Publishes made
 * meanwhile are buffered (8 MB). Only before aiplat_bus_connect().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_set_retry_on_failed_connect(aiplat_bus *bus,
                                                                bool retry);

/**
 * Connect. Blocks until connected, or until every server has failed
 * (each attempt bounded by `NATS_CONNECT_TIMEOUT`).
 * Errors: ::AIPLAT_ERR_AUTH (credentials refused), ::AIPLAT_ERR_CONNECTION
 * (no server reachable), ::AIPLAT_ERR_CONFIG (e.g. unreadable TLS or creds
 * file), ::AIPLAT_ERR_STATE (already connected or connecting),
 * ::AIPLAT_ERR_CLOSED (closed before or while connecting).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_connect(aiplat_bus *bus);

/**
 * True when the connection is up now (false while reconnecting).
 * @since 1.0
 */
AIPLAT_API bool aiplat_bus_is_connected(aiplat_bus *bus);

/**
 * Number of successful reconnections since connect (for metrics).
 * @since 1.0
 */
AIPLAT_API uint64_t aiplat_bus_reconnect_count(aiplat_bus *bus);

/**
 * Number of asynchronous errors (slow consumers, ...) since connect.
 * @since 1.0
 */
AIPLAT_API uint64_t aiplat_bus_async_error_count(aiplat_bus *bus);

/**
 * Largest payload (data plus encoded headers) the connected server accepts,
 * in bytes; 0 when not connected yet.
 * @since 1.0
 */
AIPLAT_API int64_t aiplat_bus_max_payload(aiplat_bus *bus);

/**
 * Close the connection: pending requests, flushes and drains return
 * ::AIPLAT_ERR_CLOSED, subscriptions stop. The handle stays valid until
 * destroyed. Idempotent.
 * @since 1.0
 */
AIPLAT_API void aiplat_bus_close(aiplat_bus *bus);

/**
 * Close (if needed) and release the bus. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_bus_destroy(aiplat_bus *bus);

/**
 * Copy the detail of the bus's last failure into @p buf; returns its code.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_last_error(aiplat_bus *bus, char *buf,
                                               size_t buflen);

/* ---- headers ------------------------------------------------------------ */

/**
 * Create an empty header set; release with aiplat_headers_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_headers_create(aiplat_headers **out);

/**
 * Release a header set. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_headers_destroy(aiplat_headers *h);

/**
 * Replace every value of @p key with @p value (both copied).
 * Keys are case-sensitive, 1-256 bytes of printable ASCII without ':';
 * values up to 4096 bytes without CR, LF or NUL (no header injection).
 * ::AIPLAT_ERR_INVALID_ARGUMENT otherwise; ::AIPLAT_ERR_STATE on a read-only
 * set from aiplat_bus_msg_headers().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_headers_set(aiplat_headers *h, const char *key,
                                            const char *value);

/**
 * Append a value to @p key (both copied); rules as aiplat_headers_set().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_headers_add(aiplat_headers *h, const char *key,
                                            const char *value);

/**
 * The first value of @p key, borrowed until the set changes or is
 * destroyed. ::AIPLAT_ERR_NOT_FOUND when absent.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_headers_get(const aiplat_headers *h,
                                            const char *key,
                                            const char **value);

/**
 * Number of (key, value) pairs; a key with two values counts twice.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_headers_count(const aiplat_headers *h);

/**
 * Key of pair @p i, or NULL past the end; borrowed as for get.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_headers_key_at(const aiplat_headers *h, size_t i);

/**
 * Value of pair @p i, or NULL past the end; borrowed as for get.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_headers_value_at(const aiplat_headers *h,
                                               size_t i);

/**
 * Copy the detail of the set's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_headers_last_error(aiplat_headers *h, char *buf,
                                                   size_t buflen);

/* ---- publish and request ----------------------------------------------- */

/**
 * Publish @p len bytes of @p data (copied; NULL with 0 allowed) on
 * @p subject, with @p headers (NULL for none; copied).
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT (bad subject or headers),
 * ::AIPLAT_ERR_TOO_LARGE (over the server's max_payload, named in the
 * detail), ::AIPLAT_ERR_CLOSED, ::AIPLAT_ERR_UNAVAILABLE (reconnect buffer
 * full), ::AIPLAT_ERR_STATE (not connected yet).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_publish(aiplat_bus *bus,
                                            const char *subject,
                                            const void *data, size_t len,
                                            const aiplat_headers *headers);

/**
 * Publish with a reply subject, for replies gathered by a subscription the
 * caller made (e.g. streamed answers). Same rules and errors as
 * aiplat_bus_publish(); @p reply is checked like a subject.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_publish_request(
    aiplat_bus *bus, const char *subject, const char *reply, const void *data,
    size_t len, const aiplat_headers *headers);

/**
 * Send a request and wait up to @p timeout_ms (> 0) for the first reply.
 * @param reply receives the reply, owned by the caller
 *              (aiplat_bus_msg_destroy())
 * Errors: ::AIPLAT_ERR_UNAVAILABLE (no subscriber on @p subject; returned
 * at once), ::AIPLAT_ERR_TIMEOUT, ::AIPLAT_ERR_TOO_LARGE, and those of
 * aiplat_bus_publish().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_request(
    aiplat_bus *bus, const char *subject, const void *data, size_t len,
    const aiplat_headers *headers, int64_t timeout_ms, aiplat_bus_msg **reply);

/**
 * Wait until the server has processed everything published so far
 * (a PING/PONG round trip), up to @p timeout_ms (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_flush(aiplat_bus *bus, int64_t timeout_ms);

/**
 * Drain then close: stop receiving, let callbacks finish the messages
 * already received, flush what was published, close. Blocks up to
 * @p timeout_ms (> 0); ::AIPLAT_ERR_TIMEOUT if not done by then (the
 * connection is then closed anyway). ::AIPLAT_ERR_STATE from the event
 * callback.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_drain(aiplat_bus *bus, int64_t timeout_ms);

/* ---- received messages -------------------------------------------------- */

/**
 * The subject the message was published on; borrowed from the message.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_bus_msg_subject(const aiplat_bus_msg *msg);

/**
 * The reply subject, or NULL when there is none; borrowed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_bus_msg_reply(const aiplat_bus_msg *msg);

/**
 * The payload, borrowed from the message; followed by a NUL byte that is not
 * counted in aiplat_bus_msg_len(), so text payloads can be read as strings.
 * @since 1.0
 */
AIPLAT_API const void *aiplat_bus_msg_data(const aiplat_bus_msg *msg);

/**
 * The payload's length in bytes.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_bus_msg_len(const aiplat_bus_msg *msg);

/**
 * The first value of header @p key, borrowed from the message.
 * ::AIPLAT_ERR_NOT_FOUND when absent.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_header(aiplat_bus_msg *msg,
                                               const char *key,
                                               const char **value);

/**
 * All headers of the message as a read-only set (empty when there are
 * none), borrowed from the message: do not destroy or modify it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_headers(aiplat_bus_msg *msg,
                                                const aiplat_headers **out);

/**
 * Publish a reply on the message's reply subject.
 * ::AIPLAT_ERR_STATE when the message has no reply subject, or is a
 * JetStream message (whose reply subject is its acknowledgement: use the
 * ack functions). Other errors as aiplat_bus_publish().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_respond(aiplat_bus_msg *msg,
                                                const void *data, size_t len,
                                                const aiplat_headers *headers);

/**
 * Take a reference: the message stays valid after the callback returns,
 * until a matching aiplat_bus_msg_destroy(). Returns @p msg.
 * @since 1.0
 */
AIPLAT_API aiplat_bus_msg *aiplat_bus_msg_retain(aiplat_bus_msg *msg);

/**
 * Drop a reference; the last one releases the message. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_bus_msg_destroy(aiplat_bus_msg *msg);

/**
 * Copy the detail of the message's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_last_error(aiplat_bus_msg *msg,
                                                   char *buf, size_t buflen);

/**
 * True when the message came from a JetStream consumer (it can be acked).
 * @since 1.0
 */
AIPLAT_API bool aiplat_bus_msg_is_jetstream(const aiplat_bus_msg *msg);

/**
 * Acknowledge a JetStream message: processed, do not deliver again.
 * The ack is sent without waiting; a lost ack means one more delivery.
 * ::AIPLAT_ERR_STATE for a plain message or one already acked, naked or
 * terminated. A JetStream message released without any of ack, nak or term
 * is delivered again once its ack wait has passed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_ack(aiplat_bus_msg *msg);

/**
 * Acknowledge and wait up to @p timeout_ms for the server to confirm it.
 * Errors as aiplat_bus_msg_ack(), plus ::AIPLAT_ERR_TIMEOUT.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_ack_sync(aiplat_bus_msg *msg,
                                                 int64_t timeout_ms);

/**
 * Negative ack: deliver again as soon as possible. Errors as ack.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_nak(aiplat_bus_msg *msg);

/**
 * Negative ack: deliver again after @p delay_ms (>= 0). Errors as ack.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_nak_with_delay(aiplat_bus_msg *msg,
                                                       int64_t delay_ms);

/**
 * Give up on the message: never deliver it again. Errors as ack.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_term(aiplat_bus_msg *msg);

/**
 * Still working on it: restart the message's ack wait on the server.
 * May be sent several times before the final ack, nak or term.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_in_progress(aiplat_bus_msg *msg);

/**
 * How many times this JetStream message has been delivered, 1 for the
 * first delivery. ::AIPLAT_ERR_STATE for a plain message.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_delivery_count(aiplat_bus_msg *msg,
                                                       uint64_t *out);

/**
 * JetStream metadata of the message; any output may be NULL.
 * @param stream       stream name, borrowed from the message
 * @param consumer     consumer name, borrowed from the message
 * @param stream_seq   sequence of the message in the stream
 * @param consumer_seq sequence of this delivery in the consumer
 * @param delivered    delivery count (1 for the first delivery)
 * @param pending      messages left for the consumer after this one
 * @param timestamp_ns when the message was stored, ns since the epoch (UTC)
 * ::AIPLAT_ERR_STATE for a plain message; ::AIPLAT_ERR_PROTOCOL when the
 * metadata is malformed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_msg_js_metadata(
    aiplat_bus_msg *msg, const char **stream, const char **consumer,
    uint64_t *stream_seq, uint64_t *consumer_seq, uint64_t *delivered,
    uint64_t *pending, int64_t *timestamp_ns);

/* ---- subscriptions ------------------------------------------------------ */

/**
 * Subscribe to @p subject (wildcards allowed), optionally in queue group
 * @p queue (NULL for none): the members of a queue group share the
 * messages, each message going to one of them.
 * @param fn        called for each message (see ::aiplat_bus_msg_fn)
 * @param out       receives the subscription; destroy it with
 *                  aiplat_bus_sub_destroy()
 * Messages that arrive faster than @p fn handles them are queued in the
 * client (65536 messages / 64 MB); beyond that they are dropped and an
 * ::AIPLAT_BUS_EVENT_ERROR is raised (and logged).
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT (bad subject or queue name),
 * ::AIPLAT_ERR_CLOSED, ::AIPLAT_ERR_STATE (not connected yet).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_subscribe(
    aiplat_bus *bus, const char *subject, const char *queue,
    aiplat_bus_msg_fn fn, void *user_data, aiplat_bus_sub **out);

/**
 * Stop at once: messages not yet handed to the callback are dropped.
 * Returns when no callback of this subscription runs any more.
 * Idempotent. ::AIPLAT_ERR_STATE when called from the subscription's own
 * callback.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_sub_unsubscribe(aiplat_bus_sub *sub);

/**
 * Stop receiving, but let the callback handle every message already
 * received; returns when done or after @p timeout_ms (> 0), then
 * ::AIPLAT_ERR_TIMEOUT and the rest is dropped. For a JetStream
 * subscription, no more messages are fetched and messages not fetched stay
 * on the server. ::AIPLAT_ERR_STATE from the subscription's own callback.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_sub_drain(aiplat_bus_sub *sub,
                                              int64_t timeout_ms);

/**
 * Messages dropped because the callback did not keep up (plain
 * subscriptions); 0 for JetStream subscriptions, which never drop.
 * @since 1.0
 */
AIPLAT_API uint64_t aiplat_bus_sub_dropped_count(aiplat_bus_sub *sub);

/**
 * Unsubscribe (if needed) and release. May be called from the
 * subscription's own callback: the release then completes when the
 * callback returns. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_bus_sub_destroy(aiplat_bus_sub *sub);

/**
 * Copy the detail of the subscription's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_sub_last_error(aiplat_bus_sub *sub,
                                                   char *buf, size_t buflen);

/* ---- JetStream ------------------------------------------------------------
 */

/** Retention of a stream; numbers pinned. */
typedef enum aiplat_bus_retention {
  /** Keep messages until a limit (age) removes them. */
  AIPLAT_BUS_RETENTION_LIMITS = 0,
  /** Remove a message once a consumer acks it (a work queue). */
  AIPLAT_BUS_RETENTION_WORK_QUEUE = 1,
  /** Remove a message once every consumer has acked it. */
  AIPLAT_BUS_RETENTION_INTEREST = 2
} aiplat_bus_retention;

/**
 * Create stream @p name capturing @p subjects (wildcards allowed), or update
 * it when it exists (idempotent; subjects and max age follow the call).
 * @param name         1-64 bytes of A-Z, a-z, 0-9, '_', '-'
 * @param max_age_ms   age after which messages are removed; 0 for no limit
 * @param retention    see ::aiplat_bus_retention; the server cannot change
 *                     the retention of an existing stream
 *                     (::AIPLAT_ERR_BAD_REQUEST)
 * Stored on file, one replica. Errors: ::AIPLAT_ERR_INVALID_ARGUMENT,
 * ::AIPLAT_ERR_BAD_REQUEST (refused by the server, e.g. subjects
 * overlapping another stream), ::AIPLAT_ERR_NOT_SUPPORTED (JetStream not
 * enabled), ::AIPLAT_ERR_TIMEOUT.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_stream_ensure(
    aiplat_bus *bus, const char *name, const char *const *subjects,
    size_t n_subjects, int64_t max_age_ms, aiplat_bus_retention retention);

/** Where a stream keeps its messages; numbers pinned. */
typedef enum aiplat_bus_storage {
  /** On disk (the default). */
  AIPLAT_BUS_STORAGE_FILE = 0,
  /** In memory: lost when the server stops. */
  AIPLAT_BUS_STORAGE_MEMORY = 1
} aiplat_bus_storage;

/**
 * Settings of a stream, given to aiplat_bus_stream_ensure_with(): an opaque
 * object with typed setters. Read when that call starts (strings copied),
 * so it may be changed, reused or destroyed right after. One thread at a
 * time.
 */
typedef struct aiplat_stream_options aiplat_stream_options;

/**
 * Create stream options with the defaults: no subjects (they must be set),
 * no age limit, ::AIPLAT_BUS_RETENTION_LIMITS, one replica, on file.
 * Release with aiplat_stream_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stream_options_create(
    aiplat_stream_options **out);

/**
 * Release stream options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_stream_options_destroy(aiplat_stream_options *opts);

/**
 * Subjects the stream captures (1..1024 of them, wildcards allowed; all
 * copied, replacing earlier ones). ::AIPLAT_ERR_INVALID_ARGUMENT for an
 * invalid count or subject.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stream_options_set_subjects(
    aiplat_stream_options *opts, const char *const *subjects,
    size_t n_subjects);

/**
 * Age after which messages are removed (>= 0; 0 for no limit).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stream_options_set_max_age_ms(
    aiplat_stream_options *opts, int64_t max_age_ms);

/**
 * Retention (see ::aiplat_bus_retention).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stream_options_set_retention(
    aiplat_stream_options *opts, aiplat_bus_retention retention);

/**
 * Replicas of the stream in a cluster (1..5).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stream_options_set_replicas(
    aiplat_stream_options *opts, int replicas);

/**
 * Storage (see ::aiplat_bus_storage).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_stream_options_set_storage(
    aiplat_stream_options *opts, aiplat_bus_storage storage);

/**
 * Create stream @p name with the settings of @p opts, or update an
 * existing one to them (idempotent), as aiplat_bus_stream_ensure() does;
 * the server refuses to change retention or storage of an existing stream
 * (::AIPLAT_ERR_BAD_REQUEST). @p opts is read during the call and not kept.
 * Errors: those of aiplat_bus_stream_ensure(); ::AIPLAT_ERR_INVALID_ARGUMENT
 * when @p opts is NULL or has no subjects.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_stream_ensure_with(
    aiplat_bus *bus, const char *name, const aiplat_stream_options *opts);

/**
 * Delete stream @p name and its messages. ::AIPLAT_ERR_NOT_FOUND if absent.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_stream_delete(aiplat_bus *bus,
                                                  const char *name);

/**
 * Publish to a stream and wait for the server to store it.
 * @param seq receives the stream sequence (may be NULL)
 * Errors: ::AIPLAT_ERR_NOT_FOUND (no stream captures @p subject), and those
 * of aiplat_bus_publish(), ::AIPLAT_ERR_TIMEOUT.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_js_publish(aiplat_bus *bus,
                                               const char *subject,
                                               const void *data, size_t len,
                                               const aiplat_headers *headers,
                                               uint64_t *seq);

/**
 * Consume stream @p stream through durable pull consumer @p durable with
 * explicit acknowledgement.
 *
 * The consumer is created, or updated to these settings, and survives the
 * subscription: another process using the same @p durable shares its
 * messages (this is how replicas of a service scale out; no queue group is
 * needed). Messages are fetched only while fewer than @p max_in_flight
 * fetched messages are still held (not yet released by the callback or by
 * every aiplat_bus_msg_destroy() after aiplat_bus_msg_retain()), so a slow
 * consumer never holds messages it cannot start on.
 * Each message must be acked, naked or terminated; one that is not is
 * delivered again after @p ack_wait_ms.
 * @param filter_subject only messages on this subject (wildcards allowed);
 *                       NULL for every subject of the stream
 * @param ack_wait_ms    time the server waits for an ack (> 0)
 * @param max_deliver    deliveries before the server gives up; -1 no limit
 * @param max_in_flight  fetched messages held at once (1..65536)
 * Errors: ::AIPLAT_ERR_NOT_FOUND (no such stream),
 * ::AIPLAT_ERR_INVALID_ARGUMENT, ::AIPLAT_ERR_BAD_REQUEST.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_js_subscribe(
    aiplat_bus *bus, const char *stream, const char *durable,
    const char *filter_subject, int64_t ack_wait_ms, int64_t max_deliver,
    int max_in_flight, aiplat_bus_msg_fn fn, void *user_data,
    aiplat_bus_sub **out);

/**
 * Settings of a durable JetStream consumer, given to
 * aiplat_bus_js_subscribe_with(): an opaque object with typed setters. Read
 * when that call starts (strings copied), so it may be changed, reused or
 * destroyed right after. One thread at a time.
 */
typedef struct aiplat_consumer_options aiplat_consumer_options;

/**
 * Create consumer options with the defaults: no durable name (it must be
 * set), every subject of the stream, an ack wait of 30 s, no delivery limit,
 * no redelivery backoff, 64 fetched messages in flight. Release with
 * aiplat_consumer_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_create(
    aiplat_consumer_options **out);

/**
 * Release consumer options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_consumer_options_destroy(aiplat_consumer_options *opts);

/**
 * Durable consumer name (copied; 1-64 bytes of A-Z, a-z, 0-9, '_', '-').
 * ::AIPLAT_ERR_INVALID_ARGUMENT otherwise.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_set_durable(
    aiplat_consumer_options *opts, const char *durable);

/**
 * Only messages on this subject (copied; wildcards allowed); NULL for every
 * subject of the stream. ::AIPLAT_ERR_INVALID_ARGUMENT for a bad subject.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_set_filter_subject(
    aiplat_consumer_options *opts, const char *filter_subject);

/**
 * Time the server waits for an ack before delivering again (1 ms..7 days).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_set_ack_wait_ms(
    aiplat_consumer_options *opts, int64_t ack_wait_ms);

/**
 * Deliveries before the server gives up on a message; -1 for no limit.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_set_max_deliver(
    aiplat_consumer_options *opts, int64_t max_deliver);

/**
 * Redelivery delays after an ack wait expires: @p first_ms after the first
 * delivery, doubling up to @p max_ms (1 <= first_ms <= max_ms <= 7 days);
 * 0 and 0 to clear (redeliver after the ack wait). The server requires a
 * delivery limit with a backoff: aiplat_bus_js_subscribe_with() refuses a
 * backoff with no limit (::AIPLAT_ERR_INVALID_ARGUMENT).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_set_backoff_ms(
    aiplat_consumer_options *opts, int64_t first_ms, int64_t max_ms);

/**
 * Fetched messages held at once (1..65536), see aiplat_bus_js_subscribe().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_consumer_options_set_max_in_flight(
    aiplat_consumer_options *opts, int max_in_flight);

/**
 * Consume stream @p stream through the durable pull consumer that @p opts
 * describes, created or updated to its settings, as
 * aiplat_bus_js_subscribe() does. @p opts is read during the call and not
 * kept. Errors: those of aiplat_bus_js_subscribe();
 * ::AIPLAT_ERR_INVALID_ARGUMENT when @p opts is NULL or has no durable name.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_bus_js_subscribe_with(
    aiplat_bus *bus, const char *stream, const aiplat_consumer_options *opts,
    aiplat_bus_msg_fn fn, void *user_data, aiplat_bus_sub **out);

/* ---- Key-Value --------------------------------------------------------------
 */

/**
 * Open bucket @p bucket, creating it when it does not exist.
 * @param ttl_ms  age after which a value expires; 0 for never (used only
 *                when creating)
 * @param history values kept per key, 1..64 (used only when creating)
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT (bucket name: 1-64 bytes of A-Z,
 * a-z, 0-9, '_', '-'), ::AIPLAT_ERR_NOT_SUPPORTED (JetStream not enabled).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_open(aiplat_kv **out, aiplat_bus *bus,
                                        const char *bucket, int64_t ttl_ms,
                                        int history);

/**
 * Settings of a Key-Value bucket, given to aiplat_kv_open_with(): an opaque
 * object with typed setters. Read when that call starts, so it may be
 * changed, reused or destroyed right after. One thread at a time.
 */
typedef struct aiplat_kv_options aiplat_kv_options;

/**
 * Create Key-Value options with the defaults: values never expire, one
 * value kept per key, one replica. Release with aiplat_kv_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_options_create(aiplat_kv_options **out);

/**
 * Release Key-Value options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_kv_options_destroy(aiplat_kv_options *opts);

/**
 * Age after which a value expires (>= 0; 0 for never).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_options_set_ttl_ms(aiplat_kv_options *opts,
                                                      int64_t ttl_ms);

/**
 * Values kept per key (1..64).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_options_set_history(aiplat_kv_options *opts,
                                                       int history);

/**
 * Replicas of the bucket in a cluster (1..5).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_options_set_replicas(
    aiplat_kv_options *opts, int replicas);

/**
 * Open bucket @p bucket, creating it with the settings of @p opts (NULL:
 * the defaults) when it does not exist; an existing bucket is used as it
 * is. @p opts is read during the call and not kept. Errors: those of
 * aiplat_kv_open().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_open_with(aiplat_kv **out, aiplat_bus *bus,
                                             const char *bucket,
                                             const aiplat_kv_options *opts);

/**
 * Store @p len bytes of @p data under @p key.
 * Keys: 1-256 bytes of A-Z, a-z, 0-9 and `-_=/.`, not starting or ending
 * with '.', no empty level.
 * @param revision receives the new revision (may be NULL)
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT, ::AIPLAT_ERR_TOO_LARGE.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_put(aiplat_kv *kv, const char *key,
                                       const void *data, size_t len,
                                       uint64_t *revision);

/**
 * Read the latest value of @p key.
 * @param data receives a copy, followed by a NUL byte not counted in
 *             @p len; release with aiplat_free()
 * ::AIPLAT_ERR_NOT_FOUND when the key is absent, deleted or expired.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_get(aiplat_kv *kv, const char *key,
                                       void **data, size_t *len);

/**
 * Delete @p key (later gets return ::AIPLAT_ERR_NOT_FOUND).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_delete(aiplat_kv *kv, const char *key);

/**
 * Release the handle (the bucket stays on the server). NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_kv_destroy(aiplat_kv *kv);

/**
 * Copy the detail of the handle's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_kv_last_error(aiplat_kv *kv, char *buf,
                                              size_t buflen);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_BUS_H */
