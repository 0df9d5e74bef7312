/* Internal declarations shared by the library's components. Not installed. */
#ifndef AIPLAT_INTERNAL_H
#define AIPLAT_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "aiplat/aiplat.h"

#define AIP_HIDDEN __attribute__((visibility("hidden")))
#define AIP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define AIP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error detail ------------------------------------------------------ */

#define AIP_ERRMSG_MAX 512

/* Per-handle error record: embed one in each handle, init in create. */
typedef struct aip_err {
  pthread_mutex_t mu;
  aiplat_status code;
  char msg[AIP_ERRMSG_MAX];
} aip_err;

void aip_err_init(aip_err *e);
void aip_err_destroy(aip_err *e);
/* Record a failure in @e (may be NULL) and in the thread's record; returns
 * @code so that callers can write `return aip_fail(...)`. */
aiplat_status aip_fail(aip_err *e, aiplat_status code, const char *fmt, ...)
    AIP_PRINTF(3, 4);
aiplat_status aip_vfail(aip_err *e, aiplat_status code, const char *fmt,
                        va_list ap) AIP_PRINTF(3, 0);
/* Copy a handle's record into a caller's buffer. */
aiplat_status aip_err_copy(aip_err *e, char *buf, size_t buflen);
/* The calling thread's last message (borrowed, per thread). */
const char *aip_thread_errmsg(void);

/* The deadline of the request the calling thread works on (aip_now_ms()
 * clock; 0: none). The service framework sets it around a handler, so that
 * every blocking backend call the handler makes ends by then. */
void aip_thread_deadline_set(int64_t deadline_ms);
int64_t aip_thread_deadline(void);

/* The request's deadline on the aip_now_ms() clock (service.c). */
int64_t aip_request_deadline_ms(aiplat_request *req);

/* ---- global state ------------------------------------------------------ */

/* Every handle takes a reference at create and drops it at destroy. */
aiplat_status aip_global_ref(void);
void aip_global_unref(void);

/* ---- memory and strings ------------------------------------------------ */

char *aip_strdup(const char *s);          /* NULL in, NULL out */
char *aip_strndup(const char *s, size_t n);
char *aip_sprintf(const char *fmt, ...) AIP_PRINTF(1, 2);
/* Replace *dst with a copy of src (NULL allowed); false on ENOMEM. */
bool aip_str_replace(char **dst, const char *src);
bool aip_str_ieq(const char *a, const char *b);

/* Growable byte buffer, always NUL-terminated when data != NULL. */
typedef struct aip_buf {
  char *data;
  size_t len;
  size_t cap;
} aip_buf;

bool aip_buf_reserve(aip_buf *b, size_t extra);
bool aip_buf_append(aip_buf *b, const void *data, size_t len);
bool aip_buf_puts(aip_buf *b, const char *s);
bool aip_buf_putc(aip_buf *b, char c);
bool aip_buf_printf(aip_buf *b, const char *fmt, ...) AIP_PRINTF(2, 3);
/* Append @s as the inside of a JSON string (no quotes). */
bool aip_buf_json_escape(aip_buf *b, const char *s, size_t len);
void aip_buf_reset(aip_buf *b);
void aip_buf_free(aip_buf *b);
/* Hand the buffer's memory to the caller (to be freed with free()). */
char *aip_buf_steal(aip_buf *b, size_t *len);

/* ---- time -------------------------------------------------------------- */

int64_t aip_now_ms(void);  /* monotonic */
int64_t aip_now_ns(void);  /* monotonic */
int64_t aip_wall_ms(void); /* since the epoch */
/* RFC 3339 UTC with milliseconds, e.g. 2026-11-26T09:30:00.123Z; buf >= 32 */
void aip_format_time_ms(int64_t wall_ms, char *buf, size_t buflen);

/* ---- logging (internal convenience) ------------------------------------ */

bool aip_log_enabled(aiplat_log_level level);
/* Log with key/value pairs given as const char * arguments ending in NULL. */
void aip_log_kv(aiplat_log_level level, const char *msg, ...);
void aip_logf(aiplat_log_level level, const char *fmt, ...) AIP_PRINTF(2, 3);

#endif /* AIPLAT_INTERNAL_H */
