/* Structured JSON-lines logging. */
#include "config.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define LEVEL_UNSET 0

static atomic_int log_level = LEVEL_UNSET;
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static aiplat_log_fn sink_fn;
static void *sink_ud;
static char *service_name;
static pthread_mutex_t stderr_mu = PTHREAD_MUTEX_INITIALIZER;

/* A thread's log context, copied in: values up to CTX_INLINE - 1 bytes
 * (request ids, trace ids) into the thread's own buffer, so that setting
 * and clearing it around every request allocates nothing; longer ones on
 * the heap. */
#define CTX_INLINE 80
typedef struct ctx_str {
  char *p; /* NULL, inline or heap */
  char inline_buf[CTX_INLINE];
} ctx_str;

static _Thread_local ctx_str ctx_request_id;
static _Thread_local ctx_str ctx_trace_id;
static _Thread_local bool in_sink; /* drop records logged from the callback */

AIPLAT_API aiplat_status aiplat_log_level_parse(const char *name,
                                                aiplat_log_level *out) {
  static const struct {
    const char *name;
    aiplat_log_level level;
  } names[] = {{"DEBUG", AIPLAT_LOG_DEBUG},
               {"INFO", AIPLAT_LOG_INFO},
               {"WARNING", AIPLAT_LOG_WARNING},
               {"WARN", AIPLAT_LOG_WARNING},
               {"ERROR", AIPLAT_LOG_ERROR}};
  if (!name || !out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "log level: NULL");
  for (size_t i = 0; i < AIP_ARRAY_LEN(names); i++) {
    if (strcasecmp(name, names[i].name) == 0) {
      *out = names[i].level;
      return AIPLAT_OK;
    }
  }
  return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "log level: unknown level (expected DEBUG, INFO, WARNING, "
                  "WARN or ERROR)");
}

static const char *level_name(aiplat_log_level level) {
  switch (level) {
    case AIPLAT_LOG_DEBUG: return "DEBUG";
    case AIPLAT_LOG_INFO: return "INFO";
    case AIPLAT_LOG_WARNING: return "WARNING";
    default: return "ERROR";
  }
}

AIPLAT_API void aiplat_log_set_level(aiplat_log_level level) {
  atomic_store(&log_level, (int)level);
}

AIPLAT_API void aiplat_log_reset_level(void) {
  atomic_store(&log_level, LEVEL_UNSET);
}

AIPLAT_API aiplat_log_level aiplat_log_get_level(void) {
  int lv = atomic_load(&log_level);
  if (lv != LEVEL_UNSET) return (aiplat_log_level)lv;
  aiplat_log_level parsed = AIPLAT_LOG_INFO;
  const char *env = getenv("LOG_LEVEL");
  if (env && *env && aiplat_log_level_parse(env, &parsed) != AIPLAT_OK) {
    parsed = AIPLAT_LOG_INFO;
    aiplat_error_clear();
  }
  int expected = LEVEL_UNSET;
  atomic_compare_exchange_strong(&log_level, &expected, (int)parsed);
  return (aiplat_log_level)atomic_load(&log_level);
}

bool aip_log_enabled(aiplat_log_level level) {
  return level >= aiplat_log_get_level();
}

AIPLAT_API aiplat_status aiplat_log_set_service(const char *service) {
  char *copy = NULL;
  if (service && !(copy = strdup(service)))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "log: out of memory");
  pthread_rwlock_wrlock(&sink_lock);
  free(service_name);
  service_name = copy;
  pthread_rwlock_unlock(&sink_lock);
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_log_set_callback(aiplat_log_fn fn, void *user_data) {
  pthread_rwlock_wrlock(&sink_lock);
  sink_fn = fn;
  sink_ud = user_data;
  pthread_rwlock_unlock(&sink_lock);
}

static void ctx_set(ctx_str *c, const char *value) {
  if (c->p != c->inline_buf) free(c->p);
  c->p = NULL;
  if (!value) return;
  size_t n = strlen(value);
  if (n < sizeof c->inline_buf) {
    memcpy(c->inline_buf, value, n + 1);
    c->p = c->inline_buf;
  } else {
    c->p = aip_strdup(value); /* NULL when out of memory: no context */
  }
}

AIPLAT_API void aiplat_log_set_thread_context(const char *request_id,
                                              const char *trace_id) {
  ctx_set(&ctx_request_id, request_id);
  ctx_set(&ctx_trace_id, trace_id);
}

static bool contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return true;
  return false;
}

AIPLAT_API bool aiplat_log_key_is_secret(const char *key) {
  static const char *const marks[] = {"password", "passwd",    "secret",
                                      "token",    "apikey",    "api_key",
                                      "api-key",  "authorization", "credential",
                                      "seed",     "nkey",      "private_key"};
  if (!key) return false;
  for (size_t i = 0; i < AIP_ARRAY_LEN(marks); i++)
    if (contains_ci(key, marks[i])) return true;
  return false;
}

static bool is_reserved(const char *key) {
  return strcmp(key, "ts") == 0 || strcmp(key, "level") == 0 ||
         strcmp(key, "service") == 0 || strcmp(key, "msg") == 0 ||
         strcmp(key, "request_id") == 0 || strcmp(key, "trace_id") == 0;
}

static void put_field(aip_buf *b, const char *key, const char *value) {
  aip_buf_puts(b, ",\"");
  if (is_reserved(key)) aip_buf_puts(b, "field.");
  aip_buf_json_escape(b, key, strlen(key));
  aip_buf_puts(b, "\":");
  if (!value) {
    aip_buf_puts(b, "null");
  } else if (aiplat_log_key_is_secret(key)) {
    aip_buf_puts(b, "\"[REDACTED]\"");
  } else {
    aip_buf_putc(b, '"');
    aip_buf_json_escape(b, value, strlen(value));
    aip_buf_putc(b, '"');
  }
}

static void emit(aiplat_log_level level, const char *msg,
                 const char *const *keys, const char *const *values,
                 size_t n) {
  if (in_sink || !aip_log_enabled(level)) return;
  char ts[40];
  aip_format_time_ms(aip_wall_ms(), ts, sizeof ts);
  aip_buf b = {0};
  pthread_rwlock_rdlock(&sink_lock);
  aip_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_name(level));
  if (service_name) {
    aip_buf_puts(&b, ",\"service\":\"");
    aip_buf_json_escape(&b, service_name, strlen(service_name));
    aip_buf_putc(&b, '"');
  }
  aip_buf_puts(&b, ",\"msg\":\"");
  if (msg) aip_buf_json_escape(&b, msg, strlen(msg));
  aip_buf_putc(&b, '"');
  if (ctx_request_id.p) {
    aip_buf_puts(&b, ",\"request_id\":\"");
    aip_buf_json_escape(&b, ctx_request_id.p, strlen(ctx_request_id.p));
    aip_buf_putc(&b, '"');
  }
  if (ctx_trace_id.p) {
    aip_buf_puts(&b, ",\"trace_id\":\"");
    aip_buf_json_escape(&b, ctx_trace_id.p, strlen(ctx_trace_id.p));
    aip_buf_putc(&b, '"');
  }
  for (size_t i = 0; i < n; i++)
    if (keys && keys[i]) put_field(&b, keys[i], values ? values[i] : NULL);
  aip_buf_putc(&b, '}');
  if (!b.data) goto out; /* out of memory: nothing sensible to write */
  if (sink_fn) {
    in_sink = true;
    sink_fn(level, b.data, b.len, sink_ud);
    in_sink = false;
  } else {
    aip_buf_putc(&b, '\n');
    pthread_mutex_lock(&stderr_mu);
    fwrite(b.data, 1, b.len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&stderr_mu);
  }
out:
  pthread_rwlock_unlock(&sink_lock);
  aip_buf_free(&b);
}

AIPLAT_API void aiplat_log(aiplat_log_level level, const char *message) {
  emit(level, message, NULL, NULL, 0);
}

AIPLAT_API void aiplat_log_fields(aiplat_log_level level, const char *message,
                                  const char *const *keys,
                                  const char *const *values, size_t n_fields) {
  emit(level, message, keys, values, n_fields);
}

#define KV_MAX 16

void aip_log_kv(aiplat_log_level level, const char *msg, ...) {
  if (!aip_log_enabled(level)) return;
  const char *keys[KV_MAX], *values[KV_MAX];
  size_t n = 0;
  va_list ap;
  va_start(ap, msg);
  const char *k;
  while (n < KV_MAX && (k = va_arg(ap, const char *)) != NULL) {
    keys[n] = k;
    values[n] = va_arg(ap, const char *);
    n++;
  }
  va_end(ap);
  emit(level, msg, keys, values, n);
}

void aip_logf(aiplat_log_level level, const char *fmt, ...) {
  if (!aip_log_enabled(level)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, msg, NULL, NULL, 0);
}
