/* The library's one HTTP layer (internal, not installed), on libcurl.
 *
 * One aip_http per model client: its settings (base URL, API key, timeouts,
 * retries, size cap, CA file) and the list of its calls in flight (for the
 * cancel switch). Every request runs on the execution core (loop.h); a
 * client may have any number of requests in flight, from any threads. Design notes and the status mapping are in
 * docs/decisions/0008-http-and-model-clients.md. */
#ifndef AIPLAT_HTTP_H
#define AIPLAT_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef struct aip_http aip_http;

/* Settings, with the defaults used when the client is made without a
 * config. All times in milliseconds. */
typedef struct aip_http_settings {
  int64_t connect_timeout_ms; /* one connection attempt */
  int64_t timeout_ms;         /* a whole call, retries and waits included */
  int64_t idle_timeout_ms;    /* streams: longest silence; 0 = none */
  int max_retries;            /* extra attempts on retryable failures */
  int64_t retry_base_ms;      /* backoff base: full jitter over base * 2^n */
  int64_t retry_max_wait_ms;  /* cap of one wait, Retry-After included */
  int64_t max_response_bytes; /* cap of a 2xx body */
} aip_http_settings;

/* @component prefixes every error message ("llm", "embeddings", ...). */
aip_http *aip_http_new(const char *component);
void aip_http_free(aip_http *h);

/* Read URL, API key and HTTP_* settings from @cfg (NULL: the environment).
 * @url_var / @key_var / @timeout_var name the client's own settings
 * (e.g. VLLM_URL, LLM_API_KEY, LLM_TIMEOUT); @timeout_var NULL means
 * HTTP_TIMEOUT. A URL setting without a value (and no default) is a
 * CONFIG error naming the variable. */
aiplat_status aip_http_configure(aip_http *h, aip_err *err, aiplat_config *cfg,
                                 const char *url_var, const char *key_var,
                                 const char *timeout_var);

/* Base URL `http(s)://host[:port][/prefix][/v1][/]`: the `/v1` and
 * trailing slashes are dropped, request paths carry their own `/v1`. */
aiplat_status aip_http_set_url(aip_http *h, aip_err *err, const char *url);
/* NULL or "" removes the key (no Authorization header). */
aiplat_status aip_http_set_api_key(aip_http *h, aip_err *err, const char *key);
aiplat_status aip_http_set_ca_file(aip_http *h, aip_err *err, const char *path);
void aip_http_get_settings(aip_http *h, aip_http_settings *out);
/* Every field is checked (times >= 0, retries 0..100, size >= 1). */
aiplat_status aip_http_set_settings(aip_http *h, aip_err *err,
                                    const aip_http_settings *s);
/* The root URL (no /v1), copied into a new string (free()). */
char *aip_http_root_url(aip_http *h);

/* Stop every request of this client in progress now (including waits
 * between retries): they return AIPLAT_ERR_CANCELLED. Later requests are
 * not affected. Any thread. */
void aip_http_cancel(aip_http *h);

/* ---- requests ----------------------------------------------------------- */

/* Receives the body of a 2xx response as it arrives (the bytes are
 * borrowed). Return AIPLAT_OK to go on; any other status stops the
 * transfer, the connection is closed and the call returns that status
 * (set the detail with aip_fail first). */
typedef aiplat_status (*aip_http_sink)(const char *data, size_t len, void *ud);

/* One part of a multipart/form-data body. */
typedef struct aip_http_part {
  const char *name;
  const char *filename; /* NULL: a plain field */
  const char *type;     /* NULL: none (text/plain for fields) */
  const void *data;
  size_t len;
} aip_http_part;

typedef struct aip_http_req {
  const char *method;       /* "GET" or "POST" */
  const char *path;         /* appended to the root URL, e.g. "/health" */
  const char *content_type; /* of body */
  const void *body;
  size_t body_len;
  const aip_http_part *parts; /* multipart/form-data when nparts > 0 */
  size_t nparts;
  const char *accept; /* Accept header, or NULL */
  bool stream;        /* apply the idle timeout */
  aip_http_sink sink; /* 2xx body goes here instead of resp->body */
  void *sink_ud;
  int max_retries;    /* -1: the client's setting */
  int64_t timeout_ms; /* > 0: this call's total, if below the client's */
  int64_t deadline_ms; /* > 0: CLOCK_MONOTONIC ms (aip_now_ms) by which the
                          whole call ends, retries included */
  struct aiplat_call *call; /* asynchronous calls: tied to it (cancel) from
                               before the call starts until before its
                               completion runs; NULL: none */
} aip_http_req;

typedef struct aip_http_resp {
  long status;        /* 0 when no response arrived */
  aip_buf body;       /* 2xx body (without a sink) or the error body */
  char *content_type; /* the response's Content-Type, or NULL */
  int attempts;       /* requests sent */
  bool delivered;     /* some body reached the sink */
} aip_http_resp;

void aip_http_resp_free(aip_http_resp *r);

/* Perform a request with retries and wait for it: the asynchronous call
 * with a wait, the sink running on the calling thread. Refused on the loop
 * thread.  AIPLAT_OK only for a 2xx status; an
 * error status leaves status and the (truncated) error body in @resp and
 * the server's message in @err. @resp must be zeroed by the caller. */
aiplat_status aip_http_do(aip_http *h, aip_err *err, const aip_http_req *req,
                          aip_http_resp *resp);

/* ---- asynchronous calls --------------------------------------------------
 *
 * A call runs on the execution core's loop thread (loop.h). @req and
 * everything it points to are copied, except sink_ud. The sink, when set,
 * runs on the loop thread and must not block. */

typedef struct aip_http_call aip_http_call;

/* Runs once on the loop thread when the call has ended. @resp and @err are
 * borrowed for the callback's duration; the callback may move resp's
 * fields out (leaving them zeroed). Must not block. */
typedef void (*aip_http_done)(aiplat_status st, aip_http_resp *resp,
                              aip_err *err, void *ud);

/* Start @req. On AIPLAT_OK @done will run exactly once; on failure it never
 * runs and @err has the detail. @out (may be NULL) gets a handle for
 * aip_http_call_cancel(), released with aip_http_call_release() (the call
 * itself lives until its completion either way). */
aiplat_status aip_http_start(aip_http *h, aip_err *err, const aip_http_req *req,
                             aip_http_done done, void *ud, aip_http_call **out);
/* Stop the call (any thread): the transfer is removed and its connection
 * closed, a wait between retries ends, and @done runs with @why
 * (AIPLAT_ERR_CANCELLED, with a message, when @why is AIPLAT_OK or
 * CANCELLED; any other status is passed through as it is). A call already
 * ended is not affected. */
void aip_http_call_cancel(aip_http_call *c, aiplat_status why);
void aip_http_call_release(aip_http_call *c);
/* The Content-Type of the answer being received, or NULL before its
 * headers: for sinks, which run on the loop thread while @c is alive. */
const char *aip_http_call_content_type(const aip_http_call *c);

/* POST @body as JSON to @path and parse a JSON 2xx answer into *@out
 * (object or array; new reference). A 2xx body that is not JSON is
 * AIPLAT_ERR_DECODE. @status_out (may be NULL) gets the HTTP status. */
aiplat_status aip_http_post_json(aip_http *h, aip_err *err, const char *path,
                                 json_t *body, json_t **out, long *status_out);

/* Readiness: GET /health; when the server has none (404/405), GET
 * /v1/models. No retries. */
aiplat_status aip_http_health(aip_http *h, aip_err *err);

/* ---- errors ------------------------------------------------------------- */

/* The status for an HTTP status code (2xx: AIPLAT_OK). */
aiplat_status aip_http_status_for(long http_status);

/* The server's own message from an error body: OpenAI's nested
 * {"error":{"message"}}, {"error":"..."}, {"message"}, vLLM's
 * {"object":"error","message"}, FastAPI's {"detail": "..." | [{loc,msg}]},
 * a JSON string, an HTML page's title, or plain text. Control characters
 * are replaced, the text is trimmed and cut at @outlen - 1 bytes. Returns
 * false (and "") when nothing usable is there. */
bool aip_http_error_text(const char *body, size_t len, char *out,
                         size_t outlen);
/* The same for an already parsed value. */
bool aip_http_error_json(json_t *root, char *out, size_t outlen);
/* An HTTP-like status from an error object's "code"/"status" (e.g. 429
 * inside a stream), or 0. */
long aip_http_error_code(json_t *root);

#endif
