/**
 * @file call.h
 * @brief The per-call object of asynchronous client calls: deadline and
 *        cancellation.
 *
 * One aiplat_call goes with one asynchronous client call at a time (e.g.
 * aiplat_llm_stream_async()). Its deadline bounds the whole call, retries
 * included, together with the client's own timeout (the sooner wins);
 * aiplat_call_cancel() stops it from any thread: the transfer is
 * abandoned, its connection closed (the server sees the disconnect), and
 * the completion callback runs with ::AIPLAT_ERR_CANCELLED.
 *
 * Lifetime: the caller owns the object; it must outlive the call it was
 * given to (destroy it in or after the completion callback). It may be
 * reused for another call after the completion callback has run; its
 * deadline and its cancellation stay: once cancelled, every later call
 * given the object ends with ::AIPLAT_ERR_CANCELLED.
 * Thread safety: every function may be called from any thread.
 */
#ifndef AIPLAT_CALL_H
#define AIPLAT_CALL_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aiplat_call aiplat_call;

/**
 * A call object with no deadline of its own.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_call_create(aiplat_call **out);
/**
 * Accepts NULL. Must not be destroyed while its call runs.
 * @since 1.0
 */
AIPLAT_API void aiplat_call_destroy(aiplat_call *call);
/**
 * The call ends at the latest @p ms milliseconds from now (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_call_set_timeout_ms(aiplat_call *call,
                                                    int64_t ms);
/**
 * The call ends at the latest at @p unix_ms (milliseconds since the Unix
 * epoch, e.g. a request's `Aiplat-Deadline`); a time already past makes
 * the call fail with ::AIPLAT_ERR_TIMEOUT.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_call_set_deadline_unix_ms(aiplat_call *call,
                                                          int64_t unix_ms);
/**
 * Stop the running call, and every call started with this object later
 * (the cancellation cannot be undone).
 * @since 1.0
 */
AIPLAT_API void aiplat_call_cancel(aiplat_call *call);
/**
 * True once aiplat_call_cancel() was called.
 * @since 1.0
 */
AIPLAT_API bool aiplat_call_cancelled(const aiplat_call *call);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_CALL_H */
