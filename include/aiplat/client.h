/**
 * @file client.h
 * @brief The client half of the platform's protocol: send a typed request
 *        to a service and get its typed reply.
 *
 * One call encodes the request message, checks it against the server's
 * max_payload, sends it with the protocol's headers (#AIPLAT_HEADER_REQUEST_ID,
 * #AIPLAT_HEADER_DEADLINE, #AIPLAT_HEADER_TRACEPARENT and, on request,
 * #AIPLAT_HEADER_MSG_ID for JetStream deduplication), waits for the reply
 * (or completes asynchronously), decodes it as the expected type and turns
 * a reply's `error {code, message}` into the returned status, with the
 * message in the error detail. Streamed answers (ChatChunk on
 * `ai.chat.response.{request_id}`) go to a callback in order, before the
 * final reply.
 *
 * @code
 *   aiplat_client *c;
 *   aiplat_client_create(&c, bus);
 *   aiplat_msg *req, *rep = NULL;
 *   aiplat_msg_create(&req, AIPLAT_MSG_CHAT_REQUEST);
 *   aiplat_msg_set_string(req, "message", "hello");
 *   aiplat_status st = aiplat_client_request(c, "ai.chat.user.u1.message", req,
 *                                            AIPLAT_MSG_CHAT_RESPONSE, NULL, &rep);
 *   // st: AIPLAT_OK, or the service's error code (detail: aiplat_error_last())
 * @endcode
 *
 * Threads: a client may be used from any number of threads at once. Each
 * call takes one private reply subject under the client's own inbox
 * (one subscription per client, whatever the number of calls in flight);
 * a streamed call also subscribes to its response subject while it runs.
 *
 * Lifetimes: the bus must outlive the client; the client must outlive its
 * calls (aiplat_client_destroy() ends the calls still running with
 * ::AIPLAT_ERR_CLOSED and waits for their callbacks).
 */
#ifndef AIPLAT_CLIENT_H
#define AIPLAT_CLIENT_H

#include <stdint.h>

#include "bus.h"
#include "call.h"
#include "common.h"
#include "message.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The request id of a request (services echo it; names response subjects). */
#define AIPLAT_HEADER_REQUEST_ID "Aiplat-Request-Id"
/** The caller's deadline: milliseconds since the Unix epoch, digits only. */
#define AIPLAT_HEADER_DEADLINE "Aiplat-Deadline"
/** W3C trace context of the request. */
#define AIPLAT_HEADER_TRACEPARENT "traceparent"
/** JetStream's deduplication id (set to the request id on request). */
#define AIPLAT_HEADER_MSG_ID "Nats-Msg-Id"

typedef struct aiplat_client aiplat_client;
typedef struct aiplat_client_options aiplat_client_options;

/**
 * A streamed message (e.g. a ChatChunk), borrowed for the callback's
 * duration. Called in the order the service sent them, on a thread of the
 * bus, never after the call's completion. Return false to stop the call
 * (it then ends with ::AIPLAT_ERR_CANCELLED).
 */
typedef bool (*aiplat_client_chunk_fn)(aiplat_msg *chunk, void *user_data);

/**
 * The end of an asynchronous call, called exactly once, on a thread of the
 * bus or of the library's execution core; it must not block.
 * @param status  ::AIPLAT_OK, the service's error code from the reply's
 *                `error`, or the call's own failure (::AIPLAT_ERR_TIMEOUT,
 *                ::AIPLAT_ERR_UNAVAILABLE when nobody listens on the
 *                subject, ::AIPLAT_ERR_DECODE, ::AIPLAT_ERR_CANCELLED,
 *                ::AIPLAT_ERR_CLOSED)
 * @param message the error detail ("" on success); valid during the call
 * @param reply   the decoded reply, owned by the callee (destroy it with
 *                aiplat_msg_destroy()); also given with a service's error
 *                code; NULL when no reply was decoded
 */
typedef void (*aiplat_client_done_fn)(aiplat_status status,
                                      const char *message, aiplat_msg *reply,
                                      void *user_data);

/**
 * A client on @p bus (connected or not yet). Default timeout 30 s.
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT, ::AIPLAT_ERR_NO_MEMORY.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_create(aiplat_client **out,
                                              aiplat_bus *bus);
/**
 * Ends the calls still running (::AIPLAT_ERR_CLOSED), waits for their
 * callbacks, unsubscribes. Accepts NULL. Not from a callback of this
 * client.
 * @since 1.0
 */
AIPLAT_API void aiplat_client_destroy(aiplat_client *client);
/**
 * The timeout of calls whose options set none (1 ms .. 7 days).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_set_timeout_ms(aiplat_client *client,
                                                      int64_t ms);
/**
 * The calls in flight now.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_client_in_flight(aiplat_client *client);

/**
 * Per-call options; all optional. Free with aiplat_client_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_create(
    aiplat_client_options **out);
/**
 * Accepts NULL.
 * @since 1.0
 */
AIPLAT_API void aiplat_client_options_destroy(aiplat_client_options *o);
/**
 * The call ends at the latest @p ms from its start (1 ms .. 7 days).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_set_timeout_ms(
    aiplat_client_options *o, int64_t ms);
/**
 * Deadline and cancellation from a per-call object: its deadline (the
 * sooner of it and the timeout wins) is sent as #AIPLAT_HEADER_DEADLINE,
 * and aiplat_call_cancel() ends the call with ::AIPLAT_ERR_CANCELLED.
 * Borrowed: @p call must outlive the calls started with these options.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_set_call(
    aiplat_client_options *o, aiplat_call *call);
/**
 * The request id (a subject token: letters, digits, '-', '_'; at most 128
 * bytes). Default: the request message's `request_id` field when it has
 * one, else a new random id. Whichever is used is written into the request
 * message's `request_id` field when its type has one (the call changes
 * the message).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_set_request_id(
    aiplat_client_options *o, const char *id);
/**
 * The trace context to continue (a `traceparent` value; checked).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_set_traceparent(
    aiplat_client_options *o, const char *traceparent);
/**
 * One more header (the protocol's own names are refused: set them above).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_add_header(
    aiplat_client_options *o, const char *key, const char *value);
/**
 * Send #AIPLAT_HEADER_MSG_ID = the request id (JetStream deduplication).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_set_dedup(
    aiplat_client_options *o, bool on);
/**
 * Receive a streamed answer: messages of @p chunk_type on @p subject
 * (NULL: `ai.chat.response.{request_id}`, chat's response subject) go to
 * @p fn in order; the final reply (of the call's reply type, on the same
 * subject or the reply subject) ends the call after them. A ChatRequest
 * sent this way should have `stream` set.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_options_set_stream(
    aiplat_client_options *o, const char *subject, aiplat_msg_type chunk_type,
    aiplat_client_chunk_fn fn, void *user_data);

/**
 * Send @p request on @p subject and wait for its reply, decoded as
 * @p reply_type.
 * @param opts   NULL for the defaults; only read during the call
 * @param reply  receives the reply (aiplat_msg_destroy()); also set when
 *               the service answered with an error; NULL otherwise
 * Returns ::AIPLAT_OK, the service's error code (detail:
 * aiplat_error_last(), "SERVICE_CODE_NAME: message"), or the call's own
 * error: ::AIPLAT_ERR_INVALID_ARGUMENT (bad subject, options),
 * ::AIPLAT_ERR_TOO_LARGE (over the server's max_payload),
 * ::AIPLAT_ERR_UNAVAILABLE (nobody listens), ::AIPLAT_ERR_TIMEOUT,
 * ::AIPLAT_ERR_DECODE (the reply is not a @p reply_type),
 * ::AIPLAT_ERR_CANCELLED, ::AIPLAT_ERR_STATE (not connected),
 * ::AIPLAT_ERR_CLOSED (the client was destroyed, or the bus closed).
 * Not from a callback of this client, nor on the library's event loop
 * thread (a completion of an asynchronous model call, say): the call's
 * timeout and cancellation run on that thread, so a reply that never
 * comes would be waited for forever.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_request(
    aiplat_client *client, const char *subject, aiplat_msg *request,
    aiplat_msg_type reply_type, const aiplat_client_options *opts,
    aiplat_msg **reply);

/**
 * As aiplat_client_request(), without waiting: @p done runs once when the
 * call ends. A call that cannot start returns its error and @p done is not
 * called; once this returns ::AIPLAT_OK, @p done will be called.
 * @p request (whose `request_id` is set, see
 * aiplat_client_options_set_request_id()) and @p opts may be destroyed as
 * soon as this returns.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_client_request_async(
    aiplat_client *client, const char *subject, aiplat_msg *request,
    aiplat_msg_type reply_type, const aiplat_client_options *opts,
    aiplat_client_done_fn done, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_CLIENT_H */
