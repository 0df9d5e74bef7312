/* The internal HTTP layer on libcurl (see http.h and ADR 0008).
 *
 * Every request of every client is a transfer on the execution core's one
 * multi handle (loop.h, ADR 0020): the loop thread drives it, waits out the
 * backoff between retries on a timer, enforces the stream-idle timeout and
 * the caller's deadline, and runs the completion on its own thread. The
 * multi handle keeps the connection cache, so a later request to the same
 * server reuses a kept-alive connection. The blocking aip_http_do() is a
 * thin wrapper: it starts the call and waits for it, and hands streamed
 * data to its sink on the caller's thread. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "call_internal.h"
#include "loop.h"
#include "otel.h"

#define ERROR_BODY_MAX 65536
#define HEALTH_TIMEOUT_MAX_MS 10000
/* A streamed answer arrives in small pieces: a small receive buffer keeps
 * thousands of streams cheap (libcurl's default is 16 KiB each). */
#define STREAM_BUFFER_BYTES 4096

typedef struct aip_http_call call;

struct aip_http {
  pthread_mutex_t mu; /* settings, the list of calls */
  char *component;
  char *root; /* base URL without trailing '/' and without '/v1' */
  char *api_key;
  char *ca_file;
  aip_http_settings set;
  call *calls; /* in flight, for aip_http_cancel */
};

static const aip_http_settings default_settings = {
    .connect_timeout_ms = 5000,
    .timeout_ms = 60000,
    .idle_timeout_ms = 60000,
    .max_retries = 3,
    .retry_base_ms = 250,
    .retry_max_wait_ms = 30000,
    .max_response_bytes = 64 << 20,
};

/* ---- life cycle -----------------------------------------------------------
 */

aip_http *aip_http_new(const char *component) {
  aip_http *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->component = aip_strdup(component ? component : "http");
  if (!h->component) {
    free(h);
    return NULL;
  }
  pthread_mutex_init(&h->mu, NULL);
  h->set = default_settings;
  return h;
}

void aip_http_free(aip_http *h) {
  if (!h) return;
  /* The owner guarantees no request is running. */
  pthread_mutex_destroy(&h->mu);
  free(h->component);
  free(h->root);
  if (h->api_key) { /* do not leave the secret in freed memory */
    memset(h->api_key, 0, strlen(h->api_key));
    free(h->api_key);
  }
  free(h->ca_file);
  free(h);
}

/* ---- settings -------------------------------------------------------------
 */

static bool valid_url_char(unsigned char c) {
  return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '"' && c != '<' &&
         c != '>' && c != '\\' && c != '^' && c != '`' && c != '{' &&
         c != '|' && c != '}';
}

aiplat_status aip_http_set_url(aip_http *h, aip_err *err, const char *url) {
  if (!url || !*url)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT, "%s: empty URL",
                    h->component);
  size_t skip = strncasecmp(url, "http://", 7) == 0    ? 7
                : strncasecmp(url, "https://", 8) == 0 ? 8
                                                       : 0;
  if (skip == 0 || !url[skip] || url[skip] == '/')
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: URL \"%.200s\" is not http(s)://host[:port][/path]",
                    h->component, url);
  for (const char *p = url; *p; p++)
    if (!valid_url_char((unsigned char)*p))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s: URL \"%.200s\" has a character not allowed here "
                      "(space, control, query or fragment)",
                      h->component, url);
  char *root = aip_strdup(url);
  if (!root)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    h->component);
  size_t n = strlen(root);
  while (n > skip && root[n - 1] == '/') root[--n] = '\0';
  if (n >= skip + 4 && strcasecmp(root + n - 3, "/v1") == 0) {
    n -= 3;
    root[n] = '\0';
    while (n > skip && root[n - 1] == '/') root[--n] = '\0';
  }
  pthread_mutex_lock(&h->mu);
  free(h->root);
  h->root = root;
  pthread_mutex_unlock(&h->mu);
  return AIPLAT_OK;
}

aiplat_status aip_http_set_api_key(aip_http *h, aip_err *err, const char *key) {
  if (key && strpbrk(key, "\r\n"))
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: the API key contains a line break", h->component);
  char *copy = NULL;
  if (key && *key && !(copy = aip_strdup(key)))
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    h->component);
  pthread_mutex_lock(&h->mu);
  char *old = h->api_key;
  h->api_key = copy;
  pthread_mutex_unlock(&h->mu);
  if (old) {
    memset(old, 0, strlen(old));
    free(old);
  }
  return AIPLAT_OK;
}

aiplat_status aip_http_set_ca_file(aip_http *h, aip_err *err,
                                   const char *path) {
  char *copy = NULL;
  if (path && *path && !(copy = aip_strdup(path)))
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    h->component);
  pthread_mutex_lock(&h->mu);
  free(h->ca_file);
  h->ca_file = copy;
  pthread_mutex_unlock(&h->mu);
  return AIPLAT_OK;
}

void aip_http_get_settings(aip_http *h, aip_http_settings *out) {
  pthread_mutex_lock(&h->mu);
  *out = h->set;
  pthread_mutex_unlock(&h->mu);
}

aiplat_status aip_http_set_settings(aip_http *h, aip_err *err,
                                    const aip_http_settings *s) {
  if (s->connect_timeout_ms < 1 || s->timeout_ms < 1 ||
      s->idle_timeout_ms < 0 || s->retry_base_ms < 0 ||
      s->retry_max_wait_ms < 0)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: timeouts must be positive", h->component);
  if (s->max_retries < 0 || s->max_retries > 100)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: retries must be in [0, 100]", h->component);
  if (s->max_response_bytes < 1)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: the response size cap must be positive", h->component);
  pthread_mutex_lock(&h->mu);
  h->set = *s;
  pthread_mutex_unlock(&h->mu);
  return AIPLAT_OK;
}

char *aip_http_root_url(aip_http *h) {
  pthread_mutex_lock(&h->mu);
  char *r = aip_strdup(h->root);
  pthread_mutex_unlock(&h->mu);
  return r;
}

/* Copy the config's message for a failed getter into @err. */
static aiplat_status cfg_fail(aip_http *h, aip_err *err, aiplat_config *cfg,
                              aiplat_status st) {
  char msg[AIP_ERRMSG_MAX];
  aiplat_config_last_error(cfg, msg, sizeof msg);
  return aip_fail(err, st, "%s: %s", h->component, msg);
}

aiplat_status aip_http_configure(aip_http *h, aip_err *err, aiplat_config *cfg,
                                 const char *url_var, const char *key_var,
                                 const char *timeout_var) {
  aiplat_config *own = NULL;
  aiplat_status st;
  if (!cfg) {
    if ((st = aiplat_config_create(&own)) != AIPLAT_OK)
      return aip_fail(err, st, "%s: cannot read the configuration",
                      h->component);
    cfg = own;
  }
  const char *url = NULL, *key = NULL, *ca = NULL;
  aip_http_settings s;
  int64_t n;
  aip_http_get_settings(h, &s);
  if ((st = aiplat_config_get_url(cfg, url_var, &url)) != AIPLAT_OK) {
    st = cfg_fail(h, err, cfg, st);
    goto out;
  }
  if (!url || !*url) {
    st = aip_fail(err, AIPLAT_ERR_CONFIG, "%s: %s is not set", h->component,
                  url_var);
    goto out;
  }
  if (aip_http_set_url(h, err, url) != AIPLAT_OK) {
    st = aip_fail(err, AIPLAT_ERR_CONFIG, "%s: %s: invalid URL", h->component,
                  url_var);
    goto out;
  }
  if (key_var &&
      (st = aiplat_config_get_string(cfg, key_var, &key)) != AIPLAT_OK) {
    st = cfg_fail(h, err, cfg, st);
    goto out;
  }
  if ((st = aip_http_set_api_key(h, err, key)) != AIPLAT_OK) goto out;
  if ((st = aiplat_config_get_string(cfg, "HTTP_CA_FILE", &ca)) != AIPLAT_OK ||
      (st = aip_http_set_ca_file(h, err, ca)) != AIPLAT_OK) {
    st = cfg_fail(h, err, cfg, st);
    goto out;
  }
  const struct {
    const char *name;
    int64_t *dst;
  } durs[] = {{"HTTP_CONNECT_TIMEOUT", &s.connect_timeout_ms},
              {timeout_var ? timeout_var : "HTTP_TIMEOUT", &s.timeout_ms},
              {"HTTP_STREAM_IDLE_TIMEOUT", &s.idle_timeout_ms},
              {"HTTP_RETRY_BACKOFF", &s.retry_base_ms},
              {"HTTP_RETRY_MAX_WAIT", &s.retry_max_wait_ms}};
  for (size_t i = 0; i < AIP_ARRAY_LEN(durs); i++) {
    if ((st = aiplat_config_get_duration_ms(cfg, durs[i].name, durs[i].dst)) !=
        AIPLAT_OK) {
      st = cfg_fail(h, err, cfg, st);
      goto out;
    }
  }
  if (s.connect_timeout_ms < 1 || s.timeout_ms < 1) {
    st = aip_fail(err, AIPLAT_ERR_CONFIG,
                  "%s: HTTP_CONNECT_TIMEOUT and %s must be more than 0",
                  h->component, timeout_var ? timeout_var : "HTTP_TIMEOUT");
    goto out;
  }
  if ((st = aiplat_config_get_int(cfg, "HTTP_MAX_RETRIES", 0, 100, &n)) !=
      AIPLAT_OK) {
    st = cfg_fail(h, err, cfg, st);
    goto out;
  }
  s.max_retries = (int)n;
  if ((st = aiplat_config_get_int(cfg, "HTTP_MAX_RESPONSE_BYTES", 1024,
                                  INT64_C(17179869184), &n)) != AIPLAT_OK) {
    st = cfg_fail(h, err, cfg, st);
    goto out;
  }
  s.max_response_bytes = n;
  st = aip_http_set_settings(h, err, &s);
out:
  aiplat_config_destroy(own);
  return st;
}

/* ---- one call -------------------------------------------------------------
 */

struct aip_http_call {
  /* owned by the loop thread once started */
  aip_task start_task;
  aip_task cancel_task;
  aip_timer timer; /* backoff wait, or the stream-idle check */
  aip_transfer xfer;
  atomic_int refs;           /* the loop's until done + the caller's handle */
  atomic_int cancel_status;  /* 0, or why the call is to stop */
  atomic_bool cancel_posted; /* cancel_task is queued (once) */
  bool finished;
  bool waiting; /* between attempts */
  call *next, *prev; /* in h->calls */
  aip_http *h;
  aip_http_done done;
  void *done_ud;
  /* the request, copied */
  aip_http_req req_store;
  const aip_http_req *req;
  char *method, *path, *content_type, *accept;
  void *body;
  aip_http_part *parts;
  /* the answer */
  aip_http_resp resp_store;
  aip_http_resp *resp;
  aip_err err_store;
  aip_err *err;
  aip_http_settings set;
  char *url;     /* root + path */
  char *display; /* url without user information, for messages and logs */
  char *auth;    /* "Authorization: Bearer ..." or NULL */
  char *ca_file;
  int64_t deadline_ms;
  int attempt_no, max_retries;
  /* per attempt */
  CURL *easy;
  struct curl_slist *hdrs;
  curl_mime *mime;
  bool status_known;
  long status;
  size_t received;
  aiplat_status stop; /* why a callback stopped the transfer */
  int64_t last_activity_ms;
  bool cancelled, idle_expired;
  char errbuf[CURL_ERROR_SIZE];
  aip_span *span; /* the client span, NULL when not traced */
};

static size_t on_header(char *b, size_t sz, size_t n, void *ud) {
  (void)b;
  call *c = ud;
  c->last_activity_ms = aip_now_ms();
  return sz * n;
}

static size_t on_write(char *b, size_t sz, size_t n, void *ud) {
  call *c = ud;
  size_t len = sz * n;
  c->last_activity_ms = aip_now_ms();
  if (!c->status_known) {
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    c->status_known = true;
    char *ct = NULL; /* sinks may look at the type before the first byte */
    if (curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
        ct && !c->resp->content_type)
      c->resp->content_type = aip_strdup(ct);
    curl_off_t cl = -1;
    if (c->status >= 200 && c->status < 300 &&
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
            CURLE_OK &&
        cl > c->set.max_response_bytes) {
      c->stop = AIPLAT_ERR_TOO_LARGE;
      return 0;
    }
  }
  aip_buf *body = &c->resp->body;
  if (c->status < 200 || c->status >= 300) { /* error body: keep its start */
    size_t room = body->len < ERROR_BODY_MAX ? ERROR_BODY_MAX - body->len : 0;
    if (room && !aip_buf_append(body, b, len < room ? len : room)) {
      c->stop = AIPLAT_ERR_NO_MEMORY;
      return 0;
    }
    return len;
  }
  if ((int64_t)(c->received + len) > c->set.max_response_bytes) {
    c->stop = AIPLAT_ERR_TOO_LARGE;
    return 0;
  }
  c->received += len;
  if (c->req->sink) {
    c->resp->delivered = true;
    aiplat_status st = c->req->sink(b, len, c->req->sink_ud);
    if (st != AIPLAT_OK) {
      c->stop = st;
      return 0;
    }
    return len;
  }
  if (!aip_buf_append(body, b, len)) {
    c->stop = AIPLAT_ERR_NO_MEMORY;
    return 0;
  }
  return len;
}

static int64_t remaining_ms(const call *c) {
  int64_t r = c->deadline_ms - aip_now_ms();
  return r < 1 ? 1 : r;
}

static bool set_request(call *c, CURL *e, struct curl_slist **hdrs,
                        curl_mime **mime) {
  const aip_http_req *r = c->req;
  int64_t rem = remaining_ms(c);
  int64_t conn =
      c->set.connect_timeout_ms < rem ? c->set.connect_timeout_ms : rem;
  char ua[64];
  snprintf(ua, sizeof ua, "aiplat/%s", aiplat_version_string());
  curl_easy_setopt(e, CURLOPT_URL, c->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rem);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)conn);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
  struct curl_slist *l = NULL, *t;
#define ADD_HEADER(s)                               \
  do {                                              \
    if (!(t = curl_slist_append(l, s))) goto nomem; \
    l = t;                                          \
  } while (0)
  ADD_HEADER("Expect:"); /* no 100-continue round trip for big bodies */
  if (c->auth) ADD_HEADER(c->auth);
  char tp[16 + AIP_TRACEPARENT_LEN] = "traceparent: ";
  aip_span_traceparent(c->span, tp + 13, sizeof tp - 13);
  if (c->span) ADD_HEADER(tp);
  if (r->accept) {
    char *a = aip_sprintf("Accept: %s", r->accept);
    if (!a) goto nomem;
    t = curl_slist_append(l, a);
    free(a);
    if (!t) goto nomem;
    l = t;
  }
  if (r->nparts > 0) {
    curl_mime *m = curl_mime_init(e);
    if (!m) goto nomem;
    *mime = m;
    for (size_t i = 0; i < r->nparts; i++) {
      const aip_http_part *p = &r->parts[i];
      curl_mimepart *mp = curl_mime_addpart(m);
      if (!mp || curl_mime_name(mp, p->name) != CURLE_OK ||
          curl_mime_data(mp, p->data ? p->data : "", p->len) != CURLE_OK ||
          (p->filename && curl_mime_filename(mp, p->filename) != CURLE_OK) ||
          (p->type && curl_mime_type(mp, p->type) != CURLE_OK))
        goto nomem;
    }
    curl_easy_setopt(e, CURLOPT_MIMEPOST, m);
  } else if (strcmp(r->method, "POST") == 0) {
    if (r->content_type) {
      char *ct = aip_sprintf("Content-Type: %s", r->content_type);
      if (!ct) goto nomem;
      t = curl_slist_append(l, ct);
      free(ct);
      if (!t) goto nomem;
      l = t;
    }
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
#undef ADD_HEADER
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
  *hdrs = l;
  return true;
nomem:
  curl_slist_free_all(l);
  return false;
}

/* Drive one transfer to its end, a cancel or an idle timeout. */
static bool connect_error(CURLcode cc, bool connected) {
  switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return true;
    case CURLE_OPERATION_TIMEDOUT:
      return !connected;
    default:
      return false;
  }
}

static bool retryable_status(long s) {
  return s == 429 || s == 502 || s == 503 || s == 504;
}

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void) {
  if (rng_state == 0)
    rng_state = (uint64_t)aip_now_ns() ^
                ((uint64_t)(uintptr_t)&rng_state << 16) ^ 0x9E3779B97F4A7C15ull;
  uint64_t x = rng_state; /* xorshift64* */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Full jitter: uniform in [0, min(cap, base * 2^n)]. */
static int64_t backoff_ms(const aip_http_settings *s, int n) {
  int64_t ceil = s->retry_base_ms;
  for (int i = 0; i < n && ceil < s->retry_max_wait_ms; i++) ceil *= 2;
  if (ceil > s->retry_max_wait_ms) ceil = s->retry_max_wait_ms;
  if (ceil <= 0) return 0;
  return (int64_t)(rng_next() % (uint64_t)(ceil + 1));
}

/* Sleep @ms unless the client is cancelled first; false when cancelled. */
static aiplat_status curl_failure(call *c, CURLcode cc) {
  const char *m = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
  const char *comp = c->h->component, *meth = c->req->method;
  switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return aip_fail(c->err, AIPLAT_ERR_CONNECTION,
                      "%s: %s %s: cannot connect: %s", comp, meth, c->display,
                      m);
    case CURLE_OPERATION_TIMEDOUT:
      return aip_fail(c->err, AIPLAT_ERR_TIMEOUT, "%s: %s %s: timed out: %s",
                      comp, meth, c->display, m);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return aip_fail(c->err, AIPLAT_ERR_CONFIG, "%s: %s %s: bad URL: %s", comp,
                      meth, c->display, m);
    case CURLE_OUT_OF_MEMORY:
      return aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", comp);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return aip_fail(c->err, AIPLAT_ERR_CONNECTION, "%s: %s %s: TLS: %s", comp,
                      meth, c->display, m);
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return aip_fail(c->err, AIPLAT_ERR_PROTOCOL, "%s: %s %s: not HTTP: %s",
                      comp, meth, c->display, m);
    default:
      return aip_fail(c->err, AIPLAT_ERR_CONNECTION,
                      "%s: %s %s: connection lost after %zu body bytes: %s",
                      comp, meth, c->display, c->received, m);
  }
}

static aiplat_status http_failure(call *c) {
  aip_http_resp *r = c->resp;
  char msg[384];
  bool has = aip_http_error_text(r->body.data, r->body.len, msg, sizeof msg);
  char tries[40] = "";
  if (r->attempts > 1)
    snprintf(tries, sizeof tries, " (after %d attempts)", r->attempts);
  return aip_fail(c->err, aip_http_status_for(r->status),
                  "%s: %s %s: HTTP %ld%s%s%s", c->h->component, c->req->method,
                  c->display, r->status, has ? ": " : " with no message",
                  has ? msg : "", tries);
}

/* The outcome of an attempt that ran to its end (or was stopped). */
static aiplat_status outcome(call *c, CURLcode cc) {
  const char *comp = c->h->component;
  if (c->cancelled)
    return aip_fail(c->err, AIPLAT_ERR_CANCELLED, "%s: %s %s: cancelled", comp,
                    c->req->method, c->display);
  if (c->idle_expired)
    return aip_fail(c->err, AIPLAT_ERR_TIMEOUT,
                    "%s: %s %s: no data from the server for %lld ms", comp,
                    c->req->method, c->display,
                    (long long)c->set.idle_timeout_ms);
  if (c->stop != AIPLAT_OK) {
    if (c->stop == AIPLAT_ERR_TOO_LARGE)
      return aip_fail(c->err, AIPLAT_ERR_TOO_LARGE,
                      "%s: %s %s: the answer is larger than %lld bytes "
                      "(HTTP_MAX_RESPONSE_BYTES)",
                      comp, c->req->method, c->display,
                      (long long)c->set.max_response_bytes);
    if (c->stop == AIPLAT_ERR_NO_MEMORY)
      return aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", comp);
    return c->stop; /* the sink recorded its own detail */
  }
  if (cc != CURLE_OK) return curl_failure(c, cc);
  if (c->resp->status >= 200 && c->resp->status < 300) return AIPLAT_OK;
  return http_failure(c);
}

/* "scheme://user:pw@host/..." without "user:pw@". */
static char *redact_url(const char *url) {
  const char *p = strstr(url, "://");
  if (!p) return aip_strdup(url);
  p += 3;
  const char *slash = strchr(p, '/');
  const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
  if (!at) return aip_strdup(url);
  return aip_sprintf("%.*s%s", (int)(p - url), url, at + 1);
}

static const char *status_word(long s) {
  return s == 429   ? "429"
         : s == 502 ? "502"
         : s == 503 ? "503"
         : s == 504 ? "504"
                    : "error";
}

/* ---- the call on the loop thread -----------------------------------------
 */

#define CALL_OF(p, member) \
  ((call *)(void *)((char *)(p) - offsetof(call, member)))

static void free_parts(aip_http_part *p, size_t n) {
  for (size_t i = 0; p && i < n; i++) {
    free((char *)p[i].name);
    free((char *)p[i].filename);
    free((char *)p[i].type);
    free((void *)p[i].data);
  }
  free(p);
}

static void call_release(call *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  free(c->method);
  free(c->path);
  free(c->content_type);
  free(c->accept);
  free(c->body);
  free_parts(c->parts, c->req_store.nparts);
  aip_http_resp_free(&c->resp_store);
  aip_err_destroy(&c->err_store);
  free(c->url);
  free(c->display);
  if (c->auth) {
    memset(c->auth, 0, strlen(c->auth));
    free(c->auth);
  }
  free(c->ca_file);
  free(c);
}

static void link_call(call *c) {
  aip_http *h = c->h;
  pthread_mutex_lock(&h->mu);
  c->next = h->calls;
  if (h->calls) h->calls->prev = c;
  h->calls = c;
  pthread_mutex_unlock(&h->mu);
}

static void unlink_call(call *c) {
  aip_http *h = c->h;
  pthread_mutex_lock(&h->mu);
  if (c->prev)
    c->prev->next = c->next;
  else if (h->calls == c)
    h->calls = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
  pthread_mutex_unlock(&h->mu);
}

static aiplat_status cancel_failure(call *c, aiplat_status why) {
  if (why == AIPLAT_ERR_CANCELLED)
    return aip_fail(c->err, AIPLAT_ERR_CANCELLED, "%s: %s %s: cancelled",
                    c->h->component, c->req->method, c->display);
  return why; /* whoever stopped the call recorded its own detail */
}

static void finish(call *c, aiplat_status st) {
  c->finished = true;
  c->waiting = false;
  aip_timer_stop(&c->timer);
  unlink_call(c);
  /* Untied before the completion, which may destroy the call object. */
  if (c->req->call) aip_call_unbind(c->req->call);
  aip_otel_http_end(c->span, st, c->resp->status, c->resp->attempts);
  c->done(st, c->resp, c->err, c->done_ud);
  call_release(c);
}

static void start_attempt(call *c);

static void on_wait_over(aip_timer *t) {
  call *c = CALL_OF(t, timer);
  c->waiting = false;
  start_attempt(c);
}

static void attempt_done(aip_transfer *x, CURLcode cc) {
  call *c = CALL_OF(x, xfer);
  aip_http_resp *resp = c->resp;
  CURL *e = c->easy;
  aip_timer_stop(&c->timer);
  long code = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  resp->status = code;
  char *ct = NULL;
  if (!resp->content_type &&
      curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
    resp->content_type = aip_strdup(ct);
  curl_off_t retry_after = 0, connect_us = 0;
  curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connect_us);
  bool connected = connect_us > 0 || code > 0;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(e, CURLOPT_MIMEPOST, NULL);
  curl_slist_free_all(c->hdrs);
  curl_mime_free(c->mime);
  c->hdrs = NULL;
  c->mime = NULL;
  aip_loop_easy_put(e);
  c->easy = NULL;

  bool retry_status =
      cc == CURLE_OK && c->stop == AIPLAT_OK && retryable_status(resp->status);
  bool retry = !c->cancelled && !c->idle_expired && !resp->delivered &&
               (connect_error(cc, connected) || retry_status);
  aiplat_status st = outcome(c, cc);
  int n = c->attempt_no;
  if (st == AIPLAT_OK || !retry || n >= c->max_retries) {
    finish(c, st);
    return;
  }
  int64_t wait = backoff_ms(&c->set, n);
  if (retry_status && retry_after > 0)
    /* the server's number is compared before it is scaled */
    wait = retry_after < c->set.retry_max_wait_ms / 1000
               ? (int64_t)retry_after * 1000
               : c->set.retry_max_wait_ms;
  if (aip_now_ms() + wait >= c->deadline_ms) {
    finish(c, st); /* no time for another try */
    return;
  }
  if (aip_log_enabled(AIPLAT_LOG_WARNING)) {
    char a[16], w[24];
    snprintf(a, sizeof a, "%d", n + 1);
    snprintf(w, sizeof w, "%lld", (long long)wait);
    aip_log_kv(AIPLAT_LOG_WARNING, "http request failed, retrying",
               "component", c->h->component, "method", c->req->method, "url",
               c->display, "attempt", a, "reason",
               retry_status ? status_word(resp->status) : "connect", "wait_ms",
               w, (const char *)NULL);
  }
  c->attempt_no++;
  c->waiting = true;
  c->timer.fn = on_wait_over;
  aip_timer_start(&c->timer, aip_now_ns() + wait * 1000000);
}

/* Stop the running attempt now, as if it had ended with @why. */
static void abort_attempt(call *c) {
  aip_loop_remove_transfer(&c->xfer);
  attempt_done(&c->xfer, CURLE_ABORTED_BY_CALLBACK);
}

static void on_idle_check(aip_timer *t) {
  call *c = CALL_OF(t, timer);
  int64_t left = c->last_activity_ms + c->set.idle_timeout_ms - aip_now_ms();
  if (left > 0) {
    aip_timer_start(t, aip_now_ns() + left * 1000000);
    return;
  }
  c->idle_expired = true;
  abort_attempt(c);
}

static void start_attempt(call *c) {
  int why = atomic_load(&c->cancel_status);
  if (why) {
    finish(c, cancel_failure(c, (aiplat_status)why));
    return;
  }
  if (c->attempt_no == 0 && aip_now_ms() >= c->deadline_ms) {
    finish(c, aip_fail(c->err, AIPLAT_ERR_TIMEOUT,
                       "%s: %s %s: the deadline passed before the request "
                       "was sent",
                       c->h->component, c->req->method, c->display));
    return;
  }
  aip_http_resp *resp = c->resp;
  c->status_known = false;
  c->status = 0;
  c->received = 0;
  c->stop = AIPLAT_OK;
  c->cancelled = c->idle_expired = false;
  c->errbuf[0] = '\0';
  aip_buf_reset(&resp->body);
  free(resp->content_type);
  resp->content_type = NULL;
  resp->status = 0;
  CURL *e = aip_loop_easy_get();
  if (!e) {
    finish(c, aip_fail(c->err, AIPLAT_ERR_NO_MEMORY,
                       "%s: cannot create a curl handle", c->h->component));
    return;
  }
  c->easy = e;
  c->xfer.easy = e;
  c->xfer.done = attempt_done;
  if (!set_request(c, e, &c->hdrs, &c->mime)) {
    aip_loop_easy_put(e);
    c->easy = NULL;
    finish(c, aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                       c->h->component));
    return;
  }
  if (c->req->stream)
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)STREAM_BUFFER_BYTES);
  resp->attempts++;
  c->last_activity_ms = aip_now_ms();
  if (!aip_loop_add_transfer(&c->xfer)) {
    curl_slist_free_all(c->hdrs);
    curl_mime_free(c->mime);
    c->hdrs = NULL;
    c->mime = NULL;
    aip_loop_easy_put(e);
    c->easy = NULL;
    finish(c, aip_fail(c->err, AIPLAT_ERR_INTERNAL,
                       "%s: cannot start a transfer", c->h->component));
    return;
  }
  if (c->req->stream && c->set.idle_timeout_ms > 0) {
    c->timer.fn = on_idle_check;
    aip_timer_start(&c->timer,
                    aip_now_ns() + c->set.idle_timeout_ms * 1000000);
  }
}

static void run_start(aip_task *t) { start_attempt(CALL_OF(t, start_task)); }

static void run_cancel(aip_task *t) {
  call *c = CALL_OF(t, cancel_task);
  aiplat_status why = (aiplat_status)atomic_load(&c->cancel_status);
  if (!c->finished) {
    if (c->waiting) {
      finish(c, cancel_failure(c, why));
    } else if (c->xfer.active) {
      if (why == AIPLAT_ERR_CANCELLED)
        c->cancelled = true;
      else
        c->stop = why;
      abort_attempt(c);
    } /* else not started yet: start_attempt sees the status */
  }
  call_release(c);
}

void aip_http_call_cancel(aip_http_call *c, aiplat_status why) {
  if (!c) return;
  int expected = 0;
  atomic_compare_exchange_strong(
      &c->cancel_status, &expected,
      (int)(why != AIPLAT_OK ? why : AIPLAT_ERR_CANCELLED));
  if (atomic_exchange(&c->cancel_posted, true)) return;
  atomic_fetch_add(&c->refs, 1);
  if (aip_loop_post(&c->cancel_task) != AIPLAT_OK) call_release(c);
}

void aip_http_call_release(aip_http_call *c) {
  if (c) call_release(c);
}

const char *aip_http_call_content_type(const aip_http_call *c) {
  return c ? c->resp->content_type : NULL;
}

void aip_http_cancel(aip_http *h) {
  if (!h) return;
  /* A call in the list has not completed: its completion unlinks it under
   * the same lock before it drops the loop's reference. */
  pthread_mutex_lock(&h->mu);
  for (call *c = h->calls; c; c = c->next) {
    int expected = 0;
    atomic_compare_exchange_strong(&c->cancel_status, &expected,
                                   (int)AIPLAT_ERR_CANCELLED);
    if (atomic_exchange(&c->cancel_posted, true)) continue;
    atomic_fetch_add(&c->refs, 1);
    if (aip_loop_post(&c->cancel_task) != AIPLAT_OK)
      atomic_fetch_sub(&c->refs, 1);
  }
  pthread_mutex_unlock(&h->mu);
}

static char *dup_or_null(const char *s, bool *ok) {
  if (!s) return NULL;
  char *d = aip_strdup(s);
  if (!d) *ok = false;
  return d;
}

static bool copy_request(call *c, const aip_http_req *req) {
  bool ok = true;
  c->req_store = *req;
  c->req_store.method = c->method = dup_or_null(req->method, &ok);
  c->req_store.path = c->path = dup_or_null(req->path, &ok);
  c->req_store.content_type = c->content_type =
      dup_or_null(req->content_type, &ok);
  c->req_store.accept = c->accept = dup_or_null(req->accept, &ok);
  if (req->body && req->body_len) {
    c->body = malloc(req->body_len);
    if (c->body)
      memcpy(c->body, req->body, req->body_len);
    else
      ok = false;
  }
  c->req_store.body = c->body;
  c->req_store.parts = NULL;
  c->req_store.nparts = 0;
  if (req->nparts > 0) {
    c->parts = calloc(req->nparts, sizeof *c->parts);
    if (!c->parts) return false;
    c->req_store.nparts = req->nparts;
    for (size_t i = 0; i < req->nparts; i++) {
      const aip_http_part *p = &req->parts[i];
      aip_http_part *q = &c->parts[i];
      q->name = dup_or_null(p->name, &ok);
      q->filename = dup_or_null(p->filename, &ok);
      q->type = dup_or_null(p->type, &ok);
      q->len = p->len;
      if (p->data && p->len) {
        void *d = malloc(p->len);
        if (d)
          memcpy(d, p->data, p->len);
        else
          ok = false;
        q->data = d;
      }
    }
    c->req_store.parts = c->parts;
  }
  c->req = &c->req_store;
  return ok && c->method && c->path;
}

aiplat_status aip_http_start(aip_http *h, aip_err *err, const aip_http_req *req,
                             aip_http_done done, void *ud,
                             aip_http_call **out) {
  if (out) *out = NULL;
  call *c = calloc(1, sizeof *c);
  if (!c)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    h->component);
  atomic_init(&c->refs, out ? 2 : 1);
  c->h = h;
  c->done = done;
  c->done_ud = ud;
  c->resp = &c->resp_store;
  aip_err_init(&c->err_store);
  c->err = &c->err_store;
  c->start_task.fn = run_start;
  c->cancel_task.fn = run_cancel;
  bool copied = copy_request(c, req);
  pthread_mutex_lock(&h->mu);
  c->set = h->set;
  bool has_root = h->root != NULL;
  if (has_root) c->url = aip_sprintf("%s%s", h->root, req->path);
  if (h->api_key) c->auth = aip_sprintf("Authorization: Bearer %s", h->api_key);
  bool auth_ok = !h->api_key || c->auth;
  c->ca_file = aip_strdup(h->ca_file);
  pthread_mutex_unlock(&h->mu);
  aiplat_status st = AIPLAT_OK;
  if (!has_root)
    st = aip_fail(err, AIPLAT_ERR_CONFIG, "%s: no server URL is set",
                  h->component);
  else if (!copied || !c->url || !auth_ok || !(c->display = redact_url(c->url)))
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory", h->component);
  if (st != AIPLAT_OK) {
    atomic_store(&c->refs, 1);
    call_release(c);
    return st;
  }
  int64_t total = c->set.timeout_ms;
  if (req->timeout_ms > 0 && req->timeout_ms < total) total = req->timeout_ms;
  c->deadline_ms = aip_now_ms() + total;
  if (req->deadline_ms > 0 && req->deadline_ms < c->deadline_ms)
    c->deadline_ms = req->deadline_ms;
  c->max_retries =
      req->max_retries >= 0 ? req->max_retries : c->set.max_retries;
  c->span = aip_otel_http_begin(c->method, c->display);
  link_call(c);
  if (out) *out = c; /* before the call can make progress */
  if (req->call) { /* tied before it can make progress, too */
    atomic_fetch_add(&c->refs, 1);
    aip_call_bind(req->call, c);
  }
  st = aip_loop_post(&c->start_task);
  if (st != AIPLAT_OK) {
    if (out) *out = NULL;
    if (req->call) aip_call_unbind(req->call);
    unlink_call(c);
    aip_otel_http_end(c->span, st, 0, 0);
    atomic_store(&c->refs, 1);
    call_release(c);
    return aip_fail(err, st, "%s: the execution core is not running",
                    h->component);
  }
  return AIPLAT_OK;
}

/* ---- the blocking form ------------------------------------------------------
 */

typedef struct sync_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  aiplat_status st;
  char msg[AIP_ERRMSG_MAX];
  aip_http_resp *resp;
  call *call;
  aip_buf pending; /* streamed bytes not yet given to the caller's sink */
  bool sink_failed;
  aiplat_status sink_st;
} sync_wait;

/* Loop thread: streamed bytes wait for the caller's thread. */
static aiplat_status sync_sink(const char *data, size_t len, void *ud) {
  sync_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  aiplat_status st = w->sink_failed ? w->sink_st : AIPLAT_OK;
  /* sinks may look at the type before the first byte */
  const char *ct = w->call->resp->content_type;
  if (ct && !w->resp->content_type &&
      !(w->resp->content_type = aip_strdup(ct)))
    st = AIPLAT_ERR_NO_MEMORY;
  if (st == AIPLAT_OK && !aip_buf_append(&w->pending, data, len))
    st = AIPLAT_ERR_NO_MEMORY;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return st;
}

static void sync_done(aiplat_status st, aip_http_resp *resp, aip_err *err,
                      void *ud) {
  sync_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  /* The answer moves to the caller, except the type copied for the
   * caller's sink, which may be reading it right now (the same answer's:
   * nothing is retried once the sink has had bytes). */
  char *ct = w->resp->content_type;
  aip_http_resp r = *resp;
  memset(resp, 0, sizeof *resp);
  if (ct) {
    free(r.content_type);
    r.content_type = ct; /* the field keeps its value */
  }
  *w->resp = r;
  w->st = st;
  if (st != AIPLAT_OK) aip_err_copy(err, w->msg, sizeof w->msg);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

aiplat_status aip_http_do(aip_http *h, aip_err *err, const aip_http_req *req,
                          aip_http_resp *resp) {
  if (aip_loop_on_thread())
    return aip_fail(err, AIPLAT_ERR_INTERNAL,
                    "%s: a blocking request cannot run on the event loop "
                    "thread (use the asynchronous form)",
                    h->component);
  sync_wait w = {.resp = resp};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  aip_http_req r = *req;
  /* Inside a service handler, the request's deadline bounds the call. */
  int64_t td = aip_thread_deadline();
  if (td > 0 && (r.deadline_ms <= 0 || td < r.deadline_ms)) r.deadline_ms = td;
  if (req->sink) {
    r.sink = sync_sink;
    r.sink_ud = &w;
  }
  aiplat_status st = aip_http_start(h, err, &r, sync_done, &w, &w.call);
  call *c = w.call;
  if (st == AIPLAT_OK) {
    pthread_mutex_lock(&w.mu);
    for (;;) {
      if (w.pending.len && !w.sink_failed) {
        aip_buf got = w.pending;
        memset(&w.pending, 0, sizeof w.pending);
        pthread_mutex_unlock(&w.mu);
        aiplat_status s = req->sink(got.data, got.len, req->sink_ud);
        aip_buf_free(&got);
        pthread_mutex_lock(&w.mu);
        if (s != AIPLAT_OK && !w.sink_failed) {
          w.sink_failed = true;
          w.sink_st = s;
          pthread_mutex_unlock(&w.mu);
          aip_http_call_cancel(c, s);
          pthread_mutex_lock(&w.mu);
        }
        continue;
      }
      if (w.done) break;
      pthread_cond_wait(&w.cv, &w.mu);
    }
    pthread_mutex_unlock(&w.mu);
    aip_http_call_release(c);
    if (w.sink_failed)
      st = w.sink_st; /* the sink recorded its own detail */
    else if ((st = w.st) != AIPLAT_OK)
      aip_fail(err, st, "%s", w.msg);
  }
  aip_buf_free(&w.pending);
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return st;
}

void aip_http_resp_free(aip_http_resp *r) {
  if (!r) return;
  aip_buf_free(&r->body);
  free(r->content_type);
  r->content_type = NULL;
}

/* ---- helpers --------------------------------------------------------------
 */

aiplat_status aip_http_post_json(aip_http *h, aip_err *err, const char *path,
                                 json_t *body, json_t **out, long *status_out) {
  *out = NULL;
  char *text = json_dumps(body, JSON_COMPACT);
  if (!text)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "%s: out of memory",
                    h->component);
  aip_http_req req = {.method = "POST",
                      .path = path,
                      .content_type = "application/json",
                      .body = text,
                      .body_len = strlen(text),
                      .accept = "application/json",
                      .max_retries = -1};
  aip_http_resp resp = {0};
  aiplat_status st = aip_http_do(h, err, &req, &resp);
  if (status_out) *status_out = resp.status;
  free(text);
  if (st != AIPLAT_OK) goto out;
  if (resp.body.len == 0) {
    st = aip_fail(err, AIPLAT_ERR_DECODE,
                  "%s: POST %s: HTTP %ld with an empty body", h->component,
                  path, resp.status);
    goto out;
  }
  json_error_t je;
  *out = json_loadb(resp.body.data, resp.body.len, 0, &je);
  if (!*out) {
    char start[81];
    aip_http_error_text(resp.body.data, resp.body.len, start, sizeof start);
    st = aip_fail(err, AIPLAT_ERR_DECODE,
                  "%s: POST %s: the answer is not JSON (%s at byte %d): \"%s\"",
                  h->component, path, je.text, je.position, start);
  }
out:
  aip_http_resp_free(&resp);
  return st;
}

aiplat_status aip_http_health(aip_http *h, aip_err *err) {
  aip_http_req req = {.method = "GET",
                      .path = "/health",
                      .max_retries = 0,
                      .timeout_ms = HEALTH_TIMEOUT_MAX_MS};
  aip_http_resp resp = {0};
  aiplat_status st = aip_http_do(h, err, &req, &resp);
  if (st != AIPLAT_OK && (resp.status == 404 || resp.status == 405)) {
    aip_http_resp_free(&resp);
    memset(&resp, 0, sizeof resp);
    req.path = "/v1/models";
    req.accept = "application/json";
    st = aip_http_do(h, err, &req, &resp);
  }
  aip_http_resp_free(&resp);
  return st;
}
