/**
 * @file aiplat/service.h
 * @brief The service framework: typed NATS handlers with health, metrics,
 *        tracing, worker concurrency, discovery and graceful shutdown.
 *
 * A service is what the platform deploys: a name and version, one or more
 * endpoints (a subject, a queue group, a request and a reply message type,
 * a handler), a health server on `HEALTH_PORT`, and the NATS micro protocol
 * (`$SRV.PING|INFO|STATS`) so standard NATS tooling can discover it.
 *
 * ```c
 * aiplat_service_create(&svc, cfg, "echo", "1.0.0", "echoes chat requests");
 * aiplat_service_add_endpoint(svc, "echo", "demo.echo", NULL,
 *                             AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE,
 *                             on_echo, NULL);
 * return aiplat_service_run(svc) == AIPLAT_OK ? 0 : 1;   // until SIGTERM
 * ```
 *
 * The request cycle follows the platform's handler pattern: decode (an
 * undecodable payload is answered with an error reply, and a JetStream
 * message is terminated) → handler → on failure an error reply (JetStream:
 * nak with backoff when the failure is transient, term when it is not) → on
 * success the reply (JetStream: ack). A request with a reply subject always
 * gets an answer: if the handler neither replied nor failed, the framework
 * answers ::AIPLAT_ERR_INTERNAL rather than leave the caller to time out.
 * Error replies are the endpoint's reply type with its `error` field set
 * (`code` = the ::aiplat_status, `message`, `retryable`) and carry the
 * micro protocol headers `Nats-Service-Error` and `Nats-Service-Error-Code`.
 *
 * Threading: handlers run on the endpoint's delivery threads (`WORKERS`
 * subscriptions per endpoint, default 1, each with its own thread); handlers
 * of several endpoints or workers run at once. A handler that waits on
 * a backend should not block: it hands the request over with
 * aiplat_request_defer() and finishes it from the completion of an
 * asynchronous client call (on the library's event loop thread), so that
 * up to `MAX_IN_FLIGHT` requests are in flight with no thread each. Every
 * log record written while a handler runs, and while a deferred request
 * completes, carries the request id and trace id.
 */
#ifndef AIPLAT_SERVICE_H
#define AIPLAT_SERVICE_H

#include "common.h"
#include "config.h"
#include "message.h"
#include "bus.h"
#include "health.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aiplat_service aiplat_service;
/** One request being handled; valid during the handler call, or until
 *  aiplat_request_complete() when the handler deferred it. */
typedef struct aiplat_request aiplat_request;

/**
 * Handles one request. Answer with aiplat_request_respond() (or _bytes),
 * or fail with aiplat_request_fail() and return its status. Returning a
 * non-OK status without calling aiplat_request_fail() fails the request
 * with that status and the calling thread's last error message.
 * Runs on one of the endpoint's delivery threads (for a JetStream endpoint,
 * a subscription's fetch thread of the library); it must not destroy the
 * service. @p req lives until the handler returns, or until
 * aiplat_request_complete() after aiplat_request_defer().
 */
typedef aiplat_status (*aiplat_handler_fn)(aiplat_request *req,
                                           void *user_data);

/**
 * Create a service. @p name is `[A-Za-z0-9_-]+` (it names the micro
 * service and the default queue group), @p version is SemVer, @p
 * description free text (all copied). @p cfg (not NULL) is borrowed and
 * must outlive the service: aiplat_service_start() reads it again (the
 * `JS_*` settings of JetStream endpoints). Reads `WORKERS`,
 * `MAX_IN_FLIGHT`, `REQUEST_TIMEOUT`, `SHUTDOWN_GRACE`, the `NATS_*` and
 * `HEALTH_*` settings; an invalid one is ::AIPLAT_ERR_CONFIG with a
 * message naming it. A NULL @p cfg, an invalid @p name or @p version is
 * ::AIPLAT_ERR_INVALID_ARGUMENT.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_create(aiplat_service **out,
                                               aiplat_config *cfg,
                                               const char *name,
                                               const char *version,
                                               const char *description);

/**
 * Stop (if running: the graceful shutdown of aiplat_service_run()) and
 * release the service. Deferred requests still not complete are cancelled
 * (their ::aiplat_request_cancel_fn runs on this thread) and waited for up
 * to 2 s. Whatever the handlers use (their user_data) must outlive this
 * call. Not from a handler or another callback of the service. NULL is a
 * no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_service_destroy(aiplat_service *svc);

/**
 * Copy the detail of the service's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_last_error(aiplat_service *svc,
                                                   char *buf, size_t buflen);

/**
 * Worker threads (1..1024), before start. Overrides `WORKERS`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_set_workers(aiplat_service *svc,
                                                    unsigned workers);

/**
 * Most requests the service works on at once (`MAX_IN_FLIGHT`, default
 * 4096; 1..65536), before start. A core request beyond it gets an
 * immediate ::AIPLAT_ERR_UNAVAILABLE error reply naming the overload; a
 * JetStream endpoint fetches only what it has room for.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_set_max_in_flight(aiplat_service *svc,
                                                          int max);

/** Deadline of one request, from its arrival (> 0, at most 7 days),
 *  before start.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_set_request_timeout_ms(
    aiplat_service *svc, int64_t timeout_ms);

/**
 * Time in-flight requests get to finish at shutdown (>= 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_set_shutdown_grace_ms(
    aiplat_service *svc, int64_t grace_ms);

/**
 * Whether aiplat_service_run() waits for SIGTERM/SIGINT (default true).
 * When true, aiplat_service_start() blocks those signals in the calling
 * thread, so call it from the main thread before creating other threads.
 * Embedders that own signal handling (an FFI host) set false and call
 * aiplat_service_stop() themselves.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_set_handle_signals(aiplat_service *svc,
                                                           bool handle);

/**
 * Add a request/reply endpoint, before start.
 * @param name        endpoint name for discovery and metrics, `[A-Za-z0-9_-]+`
 * @param subject     subject, wildcards allowed (e.g. `ai.chat.user.*.message`)
 * @param queue_group queue group; NULL means the service name, so replicas
 *                    share the load
 * @param request_type  type the payload is decoded to, or
 *                    ::AIPLAT_MSG_INVALID to hand the raw bytes over
 * @param reply_type  type of replies (used for error replies), or
 *                    ::AIPLAT_MSG_INVALID for raw replies
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_add_endpoint(
    aiplat_service *svc, const char *name, const char *subject,
    const char *queue_group, aiplat_msg_type request_type,
    aiplat_msg_type reply_type, aiplat_handler_fn handler, void *user_data);

/**
 * Add a JetStream endpoint, before start: a durable consumer @p durable on
 * @p stream with manual acks; success acks, a transient failure naks with
 * exponential backoff, a permanent one (an undecodable payload, a bad
 * request) terms.
 * At start, an existing @p stream is used as it is (its subjects, limits,
 * retention and replicas are never changed); one of its subjects must cover
 * @p subject, else aiplat_service_start() fails with ::AIPLAT_ERR_CONFIG
 * naming the stream and both subjects. A missing @p stream is created:
 * @p subject, work-queue retention, no age limit, on file, one replica.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_add_js_endpoint(
    aiplat_service *svc, const char *name, const char *stream,
    const char *durable, const char *subject, aiplat_msg_type request_type,
    aiplat_msg_type reply_type, aiplat_handler_fn handler, void *user_data);

/**
 * Settings of an endpoint that will grow: an opaque object with typed
 * setters, given to aiplat_service_add_endpoint_with(). Read when that call
 * starts (strings are copied), so it may be changed, reused or destroyed
 * right after. One thread at a time.
 */
typedef struct aiplat_endpoint_options aiplat_endpoint_options;

/**
 * Create endpoint options with the defaults: the service name as queue
 * group, raw requests and replies (::AIPLAT_MSG_INVALID), a core NATS
 * endpoint. JetStream settings (used once
 * aiplat_endpoint_options_set_jetstream() was called): 5 deliveries, a nak
 * delay of 1 s doubling up to 30 s, an ack wait equal to the service's
 * request timeout, and a stream created when missing.
 * Release with aiplat_endpoint_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_create(
    aiplat_endpoint_options **out);

/**
 * Release endpoint options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_endpoint_options_destroy(aiplat_endpoint_options *opts);

/**
 * Queue group of a core endpoint (copied); NULL means the service name.
 * ::AIPLAT_ERR_INVALID_ARGUMENT (with a message in aiplat_error_last())
 * for a name that is not a valid subject.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_queue_group(
    aiplat_endpoint_options *opts, const char *queue_group);

/**
 * Request and reply types: the payload is decoded to @p request_type, and
 * error replies are @p reply_type; ::AIPLAT_MSG_INVALID for raw bytes.
 * ::AIPLAT_ERR_INVALID_ARGUMENT for an unknown type.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_types(
    aiplat_endpoint_options *opts, aiplat_msg_type request_type,
    aiplat_msg_type reply_type);

/**
 * Make the endpoint a JetStream one: durable pull consumer @p durable on
 * @p stream (both copied; 1-64 bytes of A-Z, a-z, 0-9, '_', '-'), as
 * aiplat_service_add_js_endpoint() describes. The queue group is then
 * unused. ::AIPLAT_ERR_INVALID_ARGUMENT for a missing or invalid name.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_jetstream(
    aiplat_endpoint_options *opts, const char *stream, const char *durable);

/**
 * JetStream: deliveries of a request before the server gives up on it
 * (1..1000, default 5); a request failing transiently that many times is
 * dropped. ::AIPLAT_ERR_INVALID_ARGUMENT out of range.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_max_deliver(
    aiplat_endpoint_options *opts, int max_deliver);

/**
 * JetStream: the delay before a request that failed transiently is
 * delivered again: @p first_ms after the first delivery, doubling with each
 * delivery up to @p max_ms (1 <= first_ms <= max_ms <= 1 hour; default
 * 1000 and 30000). ::AIPLAT_ERR_INVALID_ARGUMENT otherwise.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_nak_backoff_ms(
    aiplat_endpoint_options *opts, int64_t first_ms, int64_t max_ms);

/**
 * JetStream: how long the server waits for a request's ack before
 * delivering it again (1 ms .. 7 days); 0, the default, means the service's
 * request timeout at start. ::AIPLAT_ERR_INVALID_ARGUMENT otherwise.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_ack_wait_ms(
    aiplat_endpoint_options *opts, int64_t ack_wait_ms);

/**
 * JetStream: with true, aiplat_service_start() only binds to the stream:
 * it never creates (nor changes) it, and fails with ::AIPLAT_ERR_NOT_FOUND
 * naming the stream when it is missing. Default false: a missing stream is
 * created.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_endpoint_options_set_bind_only(
    aiplat_endpoint_options *opts, bool bind_only);

/**
 * Add an endpoint on @p subject (wildcards allowed) with the settings of
 * @p opts (NULL: the defaults of aiplat_endpoint_options_create()), before
 * start. @p name is the endpoint name for discovery and metrics,
 * `[A-Za-z0-9_-]+`. @p opts is read during the call and not kept.
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT, ::AIPLAT_ERR_EXISTS (name taken),
 * ::AIPLAT_ERR_STATE (after start).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_add_endpoint_with(
    aiplat_service *svc, const char *name, const char *subject,
    const aiplat_endpoint_options *opts, aiplat_handler_fn handler,
    void *user_data);

/**
 * Add a readiness check (see aiplat_health_add_check()); "nats" (the
 * connection is up) is always registered. Before or after start.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_add_check(aiplat_service *svc,
                                                  const char *name,
                                                  aiplat_health_check_fn fn,
                                                  void *user_data);

/**
 * Connect to NATS, start the health server, subscribe the endpoints and
 * the micro protocol subjects. Returns once the service takes requests.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_start(aiplat_service *svc);

/**
 * Start (if not started), serve until SIGTERM/SIGINT (see
 * aiplat_service_set_handle_signals()) or aiplat_service_stop(), then shut
 * down gracefully: readiness goes 503, subscriptions stop taking new
 * messages, in-flight requests finish within the grace period, the
 * connection drains. ::AIPLAT_OK when everything finished in time,
 * ::AIPLAT_ERR_TIMEOUT when requests were still running past the grace
 * period, ::AIPLAT_ERR_STATE when the service was stopped before, or the
 * error of aiplat_service_start().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_service_run(aiplat_service *svc);

/**
 * Ask a running service to shut down; aiplat_service_run() returns after
 * the graceful shutdown. Any thread; idempotent.
 * @since 1.0
 */
AIPLAT_API void aiplat_service_stop(aiplat_service *svc);

/**
 * The service's bus (connected after start); borrowed.
 * @since 1.0
 */
AIPLAT_API aiplat_bus *aiplat_service_bus(aiplat_service *svc);
/**
 * The service's health server; borrowed.
 * @since 1.0
 */
AIPLAT_API aiplat_health *aiplat_service_health(aiplat_service *svc);
/**
 * The service's configuration (the one given to create); borrowed.
 * @since 1.0
 */
AIPLAT_API aiplat_config *aiplat_service_config(aiplat_service *svc);
/**
 * The instance id announced by the micro protocol; borrowed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_service_id(aiplat_service *svc);

/**
 * The subject the request arrived on; borrowed while @p req is valid.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_request_subject(aiplat_request *req);
/**
 * The name of the endpoint that received the request.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_request_endpoint(aiplat_request *req);
/**
 * The raw payload; borrowed. @p len may be NULL.
 * @since 1.0
 */
AIPLAT_API const uint8_t *aiplat_request_data(aiplat_request *req,
                                              size_t *len);
/**
 * A header value (first one), or NULL; borrowed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_request_header(aiplat_request *req,
                                             const char *key);
/**
 * The decoded request (NULL for raw endpoints); borrowed.
 * @since 1.0
 */
AIPLAT_API aiplat_msg *aiplat_request_message(aiplat_request *req);
/**
 * The request id: the message's `request_id` field when it has one,
 * else the `Aiplat-Request-Id` header, else a generated one. Borrowed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_request_id(aiplat_request *req);
/**
 * The W3C trace id (32 hex), continued from `traceparent` or new.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_request_trace_id(aiplat_request *req);
/**
 * The `traceparent` value for calls made on behalf of this request.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_request_traceparent(aiplat_request *req);
/**
 * Milliseconds left before the request's deadline (<= 0: passed).
 * @since 1.0
 */
AIPLAT_API int64_t aiplat_request_time_left_ms(aiplat_request *req);
/**
 * True when the request has a reply subject (someone waits for it).
 * @since 1.0
 */
AIPLAT_API bool aiplat_request_has_reply(aiplat_request *req);

/**
 * Reply with @p reply (encoded; not taken). Adds `traceparent`. Once per
 * request; ::AIPLAT_ERR_STATE after a reply or failure was sent. Without a
 * reply subject this records success and sends nothing.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_respond(aiplat_request *req,
                                                aiplat_msg *reply);

/**
 * Reply with raw bytes (copied); otherwise as aiplat_request_respond().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_respond_bytes(aiplat_request *req,
                                                      const void *data,
                                                      size_t len);

/**
 * Fail the request: send the error reply now (reply type with `error`,
 * micro error headers) and return @p code, so a handler writes
 * `return aiplat_request_fail(req, AIPLAT_ERR_BAD_REQUEST, "empty message");`.
 * ::AIPLAT_OK as @p code is taken as ::AIPLAT_ERR_INTERNAL; after a reply
 * or failure was sent nothing is sent and ::AIPLAT_ERR_STATE is returned.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_fail(aiplat_request *req,
                                             aiplat_status code,
                                             const char *message);

/**
 * Publish @p msg (encoded) on @p subject on behalf of the request, with
 * its `traceparent` (e.g. streamed chunks to `ai.chat.response.{id}`).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_publish(aiplat_request *req,
                                                const char *subject,
                                                aiplat_msg *msg);

/**
 * Hand the request over: the handler returns at once and the request stays
 * in flight until aiplat_request_complete(). Replies, failures and
 * publishes may then come from any thread (a completion callback of an
 * asynchronous client call, say), one thread at a time. After this call
 * the handler's return value is ignored and the handler must not touch
 * @p req again. Counts against the service's MAX_IN_FLIGHT until complete.
 * ::AIPLAT_ERR_STATE when called twice.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_defer(aiplat_request *req);

/**
 * Finish a deferred request, once, from any thread: with @p status
 * ::AIPLAT_OK after its reply was sent; with an error status the error
 * reply is sent now unless one was (JetStream: nak or term as for a
 * handler's return). @p req is invalid afterwards. ::AIPLAT_ERR_STATE
 * (and nothing done) for a request that was not deferred.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_complete(aiplat_request *req,
                                                 aiplat_status status,
                                                 const char *message);

/**
 * Called when the service stops past its grace period, or is destroyed,
 * while a deferred request is still running: stop the work (e.g. cancel
 * the backend call) so that it completes soon with an error. Runs on the
 * thread stopping (or destroying) the service with a service lock held: it
 * must not block, complete the request itself or set its cancel callback
 * (both take that lock).
 */
typedef void (*aiplat_request_cancel_fn)(aiplat_request *req, void *user_data);

/**
 * Set (or clear, with NULL) the request's cancel callback.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_set_cancel_callback(
    aiplat_request *req, aiplat_request_cancel_fn fn, void *user_data);

/**
 * JetStream: tell the server the request is still being worked on.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_request_in_progress(aiplat_request *req);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_SERVICE_H */
