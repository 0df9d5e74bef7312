/**
 * @file aiplat/common.h
 * @brief Export macro, status codes, error detail, memory and library init.
 *
 * Conventions for the whole API (docs/decisions/0001-api-conventions.md):
 *  - Every function returning ::aiplat_status returns ::AIPLAT_OK (0) on
 *    success. On failure the detail is kept per thread (aiplat_error_last())
 *    and, for functions taking a handle, also in that handle.
 *  - Strings passed in are copied; the caller keeps ownership of its memory.
 *  - A `const char *` returned is borrowed: valid for the life of the handle it
 *    came from unless the doc comment says otherwise.
 *  - Buffers the library allocates for the caller are released with
 *    aiplat_free(), never with the caller's own free().
 *  - Destroy functions accept NULL.
 */
#ifndef AIPLAT_COMMON_H
#define AIPLAT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(AIPLAT_BUILDING)
#    define AIPLAT_API __declspec(dllexport)
#  else
#    define AIPLAT_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define AIPLAT_API __attribute__((visibility("default")))
#else
#  define AIPLAT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Status codes. The numbers are part of the ABI: they are pinned, never
 * reused, and new codes are only appended.
 */
typedef enum aiplat_status {
  AIPLAT_OK = 0,                   /**< success */
  AIPLAT_ERR_INVALID_ARGUMENT = 1, /**< a NULL handle, a bad parameter */
  AIPLAT_ERR_NO_MEMORY = 2,        /**< allocation failed */
  AIPLAT_ERR_CONFIG = 3,           /**< a setting is missing or invalid */
  AIPLAT_ERR_NOT_FOUND = 4,        /**< no such item, name, subject or file */
  AIPLAT_ERR_IO = 5,               /**< a read or write failed */
  AIPLAT_ERR_TIMEOUT = 6,          /**< a deadline passed */
  AIPLAT_ERR_CONNECTION = 7,       /**< cannot connect, or the connection was lost */
  AIPLAT_ERR_PROTOCOL = 8,         /**< the peer sent something that is not its protocol */
  AIPLAT_ERR_DECODE = 9,           /**< bytes that do not decode (protobuf, JSON, audio) */
  AIPLAT_ERR_TOO_LARGE = 10,       /**< a payload or value over its limit */
  AIPLAT_ERR_BAD_REQUEST = 11,     /**< the server refused the request (HTTP 4xx) */
  AIPLAT_ERR_AUTH = 12,            /**< authentication or authorisation failed (401/403) */
  AIPLAT_ERR_RATE_LIMITED = 13,    /**< the server asked us to slow down (429) */
  AIPLAT_ERR_SERVER = 14,          /**< the server failed (HTTP 5xx, an error inside a 200) */
  AIPLAT_ERR_UNAVAILABLE = 15,     /**< the server or service is not ready (503, no responders) */
  AIPLAT_ERR_CANCELLED = 16,       /**< cancelled by the caller or stopped by a callback */
  AIPLAT_ERR_CLOSED = 17,          /**< the handle was closed */
  AIPLAT_ERR_STATE = 18,           /**< the call is not valid in the handle's current state */
  AIPLAT_ERR_BUFFER_TOO_SMALL = 19,/**< the caller's buffer cannot hold the result */
  AIPLAT_ERR_NOT_SUPPORTED = 20,   /**< not supported by this build or this server */
  AIPLAT_ERR_CORRUPT = 21,         /**< stored data failed its checksum or format check */
  AIPLAT_ERR_EXISTS = 22,          /**< the item already exists */
  AIPLAT_ERR_INTERNAL = 23         /**< a bug in libaiplat or a dependency */
} aiplat_status;

/**
 * Static English text for a status code; never NULL, never freed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_status_str(aiplat_status status);
/**
 * The name of @p status as in the protocol's ErrorCode without its prefix
 * ("INVALID_ARGUMENT", "TIMEOUT"; "OK" for ::AIPLAT_OK, "UNKNOWN" for a
 * number that is not a status): static. The statuses and the protocol's
 * error codes share their numbers, so this names a reply's `error.code`.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_status_name(aiplat_status status);

/**
 * Exit statuses of the platform's programs: the five services
 * (chat-handler, voice-assistant, pipeline-bridge, stt-module, tts-module),
 * `aiplat` and `aiplat-rag` (docs/exit-status.md). A script can rely on
 * them; the numbers are pinned like the status codes.
 */
typedef enum aiplat_exit_code {
  /** done; a service stopped by SIGTERM or SIGINT after a clean drain */
  AIPLAT_EXIT_OK = 0,
  /** failed: a service or a backend answered with an error, a run failed,
   *  a running service could not shut down cleanly */
  AIPLAT_EXIT_FAILURE = 1,
  /** usage: an unknown option or argument, a missing or bad argument */
  AIPLAT_EXIT_USAGE = 2,
  /** unavailable: no NATS server, no responder, no answer in time, a
   *  backend that cannot be reached */
  AIPLAT_EXIT_UNAVAILABLE = 3,
  /** configuration: a setting is missing or invalid, or credentials were
   *  refused */
  AIPLAT_EXIT_CONFIG = 4,
  /** I/O: a file could not be read or written, an address not bound */
  AIPLAT_EXIT_IO = 5
} aiplat_exit_code;

/**
 * The exit status for a program that ends because of @p status:
 * ::AIPLAT_EXIT_OK for ::AIPLAT_OK; ::AIPLAT_EXIT_CONFIG for
 * ::AIPLAT_ERR_CONFIG and ::AIPLAT_ERR_AUTH; ::AIPLAT_EXIT_UNAVAILABLE for
 * ::AIPLAT_ERR_CONNECTION, ::AIPLAT_ERR_TIMEOUT, ::AIPLAT_ERR_UNAVAILABLE
 * and ::AIPLAT_ERR_CLOSED; ::AIPLAT_EXIT_USAGE for
 * ::AIPLAT_ERR_INVALID_ARGUMENT and ::AIPLAT_ERR_TOO_LARGE (an argument
 * the program was given); ::AIPLAT_EXIT_IO for ::AIPLAT_ERR_IO;
 * ::AIPLAT_EXIT_FAILURE for every other status.
 * @since 1.0
 */
AIPLAT_API int aiplat_status_exit_code(aiplat_status status);

/**
 * The last failure on the calling thread.
 *
 * Copies the detail message of the most recent failure of any libaiplat
 * call made on this thread into @p buf (always NUL-terminated, truncated to
 * @p buflen - 1 bytes), and returns its status. Returns ::AIPLAT_OK and an
 * empty string when no call on this thread has failed since the last
 * aiplat_error_clear(). @p buf may be NULL when @p buflen is 0.
 * Thread: any; the record is per thread.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_error_last(char *buf, size_t buflen);

/**
 * Forget the calling thread's last failure.
 * @since 1.0
 */
AIPLAT_API void aiplat_error_clear(void);

/**
 * Release a buffer the library allocated for the caller. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_free(void *ptr);

/**
 * The run-time library version, "MAJOR.MINOR.PATCH"; static.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_version_string(void);

/**
 * The run-time library version as (major << 16) | (minor << 8) | patch.
 * @since 1.0
 */
AIPLAT_API uint32_t aiplat_version_number(void);

/**
 * Initialise the library's global state (libcurl's among it).
 *
 * Reference counted: every successful call must be matched by one
 * aiplat_cleanup(); the last one releases the global state. Call it before
 * starting threads that use libaiplat. Handles' create functions call it
 * themselves when the program has not, so calling it is only needed to
 * control when the global work happens.
 * Thread: safe to call from any thread.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_init(void);

/**
 * Drop one reference taken by aiplat_init(); the last one releases.
 * @since 1.0
 */
AIPLAT_API void aiplat_cleanup(void);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_COMMON_H */
