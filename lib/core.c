/* Status text, error detail, memory, version and global init. */
#include "config.h"

#include <curl/curl.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "loop.h"
#include "otel.h"

static const char *const status_text[] = {
    [AIPLAT_OK] = "success",
    [AIPLAT_ERR_INVALID_ARGUMENT] = "invalid argument",
    [AIPLAT_ERR_NO_MEMORY] = "out of memory",
    [AIPLAT_ERR_CONFIG] = "invalid or missing configuration",
    [AIPLAT_ERR_NOT_FOUND] = "not found",
    [AIPLAT_ERR_IO] = "input/output error",
    [AIPLAT_ERR_TIMEOUT] = "timed out",
    [AIPLAT_ERR_CONNECTION] = "connection failed or lost",
    [AIPLAT_ERR_PROTOCOL] = "protocol error",
    [AIPLAT_ERR_DECODE] = "malformed data",
    [AIPLAT_ERR_TOO_LARGE] = "too large",
    [AIPLAT_ERR_BAD_REQUEST] = "request rejected by the server",
    [AIPLAT_ERR_AUTH] = "authentication failed",
    [AIPLAT_ERR_RATE_LIMITED] = "rate limited",
    [AIPLAT_ERR_SERVER] = "server error",
    [AIPLAT_ERR_UNAVAILABLE] = "unavailable",
    [AIPLAT_ERR_CANCELLED] = "cancelled",
    [AIPLAT_ERR_CLOSED] = "closed",
    [AIPLAT_ERR_STATE] = "invalid state for this call",
    [AIPLAT_ERR_BUFFER_TOO_SMALL] = "buffer too small",
    [AIPLAT_ERR_NOT_SUPPORTED] = "not supported",
    [AIPLAT_ERR_CORRUPT] = "corrupt data",
    [AIPLAT_ERR_EXISTS] = "already exists",
    [AIPLAT_ERR_INTERNAL] = "internal error",
};

static const char *const status_names[] = {
    [AIPLAT_OK] = "OK",
    [AIPLAT_ERR_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [AIPLAT_ERR_NO_MEMORY] = "NO_MEMORY",
    [AIPLAT_ERR_CONFIG] = "CONFIG",
    [AIPLAT_ERR_NOT_FOUND] = "NOT_FOUND",
    [AIPLAT_ERR_IO] = "IO",
    [AIPLAT_ERR_TIMEOUT] = "TIMEOUT",
    [AIPLAT_ERR_CONNECTION] = "CONNECTION",
    [AIPLAT_ERR_PROTOCOL] = "PROTOCOL",
    [AIPLAT_ERR_DECODE] = "DECODE",
    [AIPLAT_ERR_TOO_LARGE] = "TOO_LARGE",
    [AIPLAT_ERR_BAD_REQUEST] = "BAD_REQUEST",
    [AIPLAT_ERR_AUTH] = "AUTH",
    [AIPLAT_ERR_RATE_LIMITED] = "RATE_LIMITED",
    [AIPLAT_ERR_SERVER] = "SERVER",
    [AIPLAT_ERR_UNAVAILABLE] = "UNAVAILABLE",
    [AIPLAT_ERR_CANCELLED] = "CANCELLED",
    [AIPLAT_ERR_CLOSED] = "CLOSED",
    [AIPLAT_ERR_STATE] = "STATE",
    [AIPLAT_ERR_BUFFER_TOO_SMALL] = "BUFFER_TOO_SMALL",
    [AIPLAT_ERR_NOT_SUPPORTED] = "NOT_SUPPORTED",
    [AIPLAT_ERR_CORRUPT] = "CORRUPT",
    [AIPLAT_ERR_EXISTS] = "EXISTS",
    [AIPLAT_ERR_INTERNAL] = "INTERNAL",
};

AIPLAT_API const char *aiplat_status_name(aiplat_status status) {
  if ((unsigned)status < AIP_ARRAY_LEN(status_names) && status_names[status])
    return status_names[status];
  return "UNKNOWN";
}

AIPLAT_API const char *aiplat_status_str(aiplat_status status) {
  if ((unsigned)status < AIP_ARRAY_LEN(status_text) && status_text[status])
    return status_text[status];
  return "unknown status";
}

AIPLAT_API int aiplat_status_exit_code(aiplat_status status) {
  switch (status) {
    case AIPLAT_OK:
      return AIPLAT_EXIT_OK;
    case AIPLAT_ERR_CONFIG:
    case AIPLAT_ERR_AUTH:
      return AIPLAT_EXIT_CONFIG;
    case AIPLAT_ERR_CONNECTION:
    case AIPLAT_ERR_TIMEOUT:
    case AIPLAT_ERR_UNAVAILABLE:
    case AIPLAT_ERR_CLOSED:
      return AIPLAT_EXIT_UNAVAILABLE;
    case AIPLAT_ERR_INVALID_ARGUMENT:
    case AIPLAT_ERR_TOO_LARGE:
      return AIPLAT_EXIT_USAGE;
    case AIPLAT_ERR_IO:
      return AIPLAT_EXIT_IO;
    default:
      return AIPLAT_EXIT_FAILURE;
  }
}

/* ---- error detail ------------------------------------------------------ */

static _Thread_local aiplat_status tls_code;
static _Thread_local char tls_msg[AIP_ERRMSG_MAX];

void aip_err_init(aip_err *e) {
  pthread_mutex_init(&e->mu, NULL);
  e->code = AIPLAT_OK;
  e->msg[0] = '\0';
}

void aip_err_destroy(aip_err *e) { pthread_mutex_destroy(&e->mu); }

aiplat_status aip_vfail(aip_err *e, aiplat_status code, const char *fmt,
                        va_list ap) {
  vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
  tls_code = code;
  if (e) {
    pthread_mutex_lock(&e->mu);
    e->code = code;
    memcpy(e->msg, tls_msg, sizeof e->msg);
    pthread_mutex_unlock(&e->mu);
  }
  return code;
}

aiplat_status aip_fail(aip_err *e, aiplat_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  aip_vfail(e, code, fmt, ap);
  va_end(ap);
  return code;
}

static void copy_out(char *buf, size_t buflen, const char *msg) {
  if (!buf || buflen == 0) return;
  size_t n = strlen(msg);
  if (n >= buflen) n = buflen - 1;
  memcpy(buf, msg, n);
  buf[n] = '\0';
}

aiplat_status aip_err_copy(aip_err *e, char *buf, size_t buflen) {
  pthread_mutex_lock(&e->mu);
  aiplat_status code = e->code;
  copy_out(buf, buflen, e->msg);
  pthread_mutex_unlock(&e->mu);
  return code;
}

const char *aip_thread_errmsg(void) { return tls_msg; }

AIPLAT_API aiplat_status aiplat_error_last(char *buf, size_t buflen) {
  copy_out(buf, buflen, tls_msg);
  return tls_code;
}

AIPLAT_API void aiplat_error_clear(void) {
  tls_code = AIPLAT_OK;
  tls_msg[0] = '\0';
}

AIPLAT_API void aiplat_free(void *ptr) { free(ptr); }

/* ---- version ----------------------------------------------------------- */

AIPLAT_API const char *aiplat_version_string(void) {
  return AIPLAT_VERSION_STRING;
}

AIPLAT_API uint32_t aiplat_version_number(void) {
  return (uint32_t)AIPLAT_VERSION_NUMBER;
}

/* ---- global init ------------------------------------------------------- */

static pthread_mutex_t global_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned global_refs;

aiplat_status aip_global_ref(void) {
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&global_mu);
  if (global_refs == 0) {
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
      st = aip_fail(NULL, AIPLAT_ERR_INTERNAL, "curl_global_init: %s",
                    curl_easy_strerror(cc));
      goto out;
    }
  }
  global_refs++;
out:
  pthread_mutex_unlock(&global_mu);
  return st;
}

void aip_global_unref(void) {
  /* The last handle goes: queued spans are sent first (bounded by the
   * export timeout), without the lock, which completions may need. */
  pthread_mutex_lock(&global_mu);
  bool last = global_refs == 1;
  pthread_mutex_unlock(&global_mu);
  if (last) aip_otel_flush(-1);
  pthread_mutex_lock(&global_mu);
  if (global_refs > 0 && --global_refs == 0) {
    /* The execution core goes with the last handle (not from its own
     * thread: a completion that destroys the last handle leaves it to the
     * next aiplat_cleanup or the process's exit). */
    if (!aip_loop_on_thread()) {
      aip_otel_detach();
      aip_loop_shutdown();
    }
    curl_global_cleanup();
    /* Release nats.c's library-wide threads and memory too, so that a
     * program that balanced its init/cleanup leaves nothing behind. */
    nats_CloseAndWait(2000);
  }
  pthread_mutex_unlock(&global_mu);
}

AIPLAT_API aiplat_status aiplat_init(void) { return aip_global_ref(); }

AIPLAT_API void aiplat_cleanup(void) { aip_global_unref(); }

static _Thread_local int64_t tls_deadline_ms;

void aip_thread_deadline_set(int64_t deadline_ms) { tls_deadline_ms = deadline_ms; }

int64_t aip_thread_deadline(void) { return tls_deadline_ms; }
