/**
 * @file aiplat/log.h
 * @brief Structured JSON-lines logging.
 *
 * Every record is one JSON object on one line:
 * `{"ts":"2026-11-26T09:30:00.123Z","level":"INFO","service":"chat-handler",
 *   "msg":"started","request_id":"r1","trace_id":"...","key":"value"}`.
 * By default records go to stderr; aiplat_log_set_callback() hands them to
 * the embedding program instead. The level comes from `LOG_LEVEL`
 * (`DEBUG`, `INFO`, `WARNING` or `WARN`, `ERROR`; default `INFO`) the first
 * time anything is logged, unless aiplat_log_set_level() was called.
 *
 * Values of keys that name a secret (containing `password`, `passwd`,
 * `secret`, `token`, `apikey`, `api_key`, `authorization`, `credential`,
 * `seed` or `nkey`, in any case) are written as `"[REDACTED]"`.
 *
 * Thread: every function may be called from any thread.
 */
#ifndef AIPLAT_LOG_H
#define AIPLAT_LOG_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels; the numbers are pinned. */
typedef enum aiplat_log_level {
  AIPLAT_LOG_DEBUG = 10,
  AIPLAT_LOG_INFO = 20,
  AIPLAT_LOG_WARNING = 30,
  AIPLAT_LOG_ERROR = 40
} aiplat_log_level;

/**
 * Receives each record that passes the level filter.
 * @param level     the record's level
 * @param record    the complete JSON object, NUL-terminated, no newline;
 *                  borrowed for the duration of the call only
 * @param len       strlen(record)
 * @param user_data as given to aiplat_log_set_callback()
 * Runs on the thread that logged; may run on several threads at once.
 * It must not call aiplat_log functions itself (they would be dropped).
 */
typedef void (*aiplat_log_fn)(aiplat_log_level level, const char *record,
                              size_t len, void *user_data);

/**
 * Set the minimum level written. Overrides `LOG_LEVEL`.
 * @since 1.0
 */
AIPLAT_API void aiplat_log_set_level(aiplat_log_level level);

/**
 * Forget aiplat_log_set_level(): the level is read from `LOG_LEVEL` again
 * when the next record is written (`INFO` when it is unset or invalid).
 * @since 1.0
 */
AIPLAT_API void aiplat_log_reset_level(void);

/**
 * The current minimum level.
 * @since 1.0
 */
AIPLAT_API aiplat_log_level aiplat_log_get_level(void);

/**
 * Parse a level name (`DEBUG`, `INFO`, `WARNING`, `WARN`, `ERROR`, any case)
 * into @p out. ::AIPLAT_ERR_CONFIG for anything else.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_log_level_parse(const char *name,
                                                aiplat_log_level *out);

/**
 * Set the `service` field of every record (copied). NULL clears it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_log_set_service(const char *service);

/**
 * Send records to @p fn instead of stderr; NULL restores stderr.
 * The switch is atomic with respect to records being written.
 * @since 1.0
 */
AIPLAT_API void aiplat_log_set_callback(aiplat_log_fn fn, void *user_data);

/**
 * Write one record with no extra fields.
 * @since 1.0
 */
AIPLAT_API void aiplat_log(aiplat_log_level level, const char *message);

/**
 * Write one record with extra fields: @p keys[i] = @p values[i] for
 * i < @p n_fields. A NULL value is written as JSON null. Keys are copied
 * into the record verbatim after JSON escaping; reserved names (`ts`,
 * `level`, `service`, `msg`) are prefixed with `field.`.
 * @since 1.0
 */
AIPLAT_API void aiplat_log_fields(aiplat_log_level level, const char *message,
                                  const char *const *keys,
                                  const char *const *values, size_t n_fields);

/**
 * Attach request context to every record logged on the calling thread
 * until cleared: `request_id` and `trace_id` fields. NULL clears each.
 * The service framework sets these around each handler call.
 * @since 1.0
 */
AIPLAT_API void aiplat_log_set_thread_context(const char *request_id,
                                              const char *trace_id);

/**
 * True when a key's value would be redacted in a record.
 * @since 1.0
 */
AIPLAT_API bool aiplat_log_key_is_secret(const char *key);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_LOG_H */
