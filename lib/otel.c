/* OpenTelemetry traces: configuration, the sampler, spans and the batching
 * processor with its OTLP/HTTP export on the execution core (see otel.h and
 * docs/decisions/0022-opentelemetry-traces.md).
 *
 * A finished span goes into a bounded queue under a mutex (the only cost on
 * a request's path besides building the span). The loop thread takes
 * batches from it and POSTs them one at a time; while an export is slow or
 * failing the queue fills and later spans are dropped and counted, so a
 * request never waits for the collector. */
#include "config.h"

#include "otel.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "loop.h"

#define ATTR_FIELD 9     /* Span.attributes */
#define RES_ATTR_FIELD 1 /* Resource.attributes */
#define MAX_ATTRS_BYTES 8192
#define MAX_ATTEMPTS 5
#define RETRY_BASE_MS 1000
#define RETRY_MAX_MS 30000

typedef enum sampler_kind {
  SAMPLE_ALWAYS_ON,
  SAMPLE_ALWAYS_OFF,
  SAMPLE_RATIO
} sampler_kind;

typedef struct otel {
  /* set once at configuration */
  bool enabled;
  bool parent_based;
  sampler_kind root;
  uint64_t ratio_bound; /* sampled when (low 63 bits of the id) < bound */
  char *url;            /* the traces endpoint */
  char *display;        /* url without user information */
  struct curl_slist *headers; /* Content-Type and OTEL_EXPORTER_OTLP_HEADERS */
  aip_buf resource;           /* encoded Resource.attributes */
  int64_t timeout_ms, delay_ms;
  size_t max_queue, batch;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* an export ended, or the queue emptied */
  aip_span *head, *tail;
  size_t count;
  bool kick_posted; /* kick_task is queued */
  bool pending;     /* the loop will look at the queue again (timer or export) */
  bool busy;        /* an export is in flight or waiting to retry */
  bool attached;    /* the loop has state of ours */
  int flushing;     /* flush() callers waiting */
  int64_t flush_deadline_ms;
  aip_otel_stats stats;

  /* loop thread only */
  aip_task kick_task, detach_task;
  aip_timer delay_timer, retry_timer;
  aip_transfer xfer;
  bool delay_armed;
  aip_buf body;
  size_t batch_n;
  int attempt;
  bool failing; /* the last export failed: log the next success */
} otel;

static otel the;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ---- configuration ------------------------------------------------------ */

static void otel_warn(const char *msg, const char *setting, const char *why) {
  aip_log_kv(AIPLAT_LOG_WARNING, msg, "component", "otel", "setting", setting,
             "reason", why, (const char *)NULL);
}

static const char *cfg_str(aiplat_config *cfg, const char *name) {
  const char *v = NULL;
  if (aiplat_config_get_string(cfg, name, &v) != AIPLAT_OK) return NULL;
  return v && *v ? v : NULL;
}

static int hexdig(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Trimmed and percent-decoded copy of [p, p + n). */
static char *decode_part(const char *p, size_t n) {
  while (n && (*p == ' ' || *p == '\t')) p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  char *out = malloc(n + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    int h, l;
    if (p[i] == '%' && i + 2 < n && (h = hexdig(p[i + 1])) >= 0 &&
        (l = hexdig(p[i + 2])) >= 0) {
      *o++ = (char)(h << 4 | l);
      i += 2;
    } else {
      *o++ = p[i];
    }
  }
  *o = '\0';
  return out;
}

typedef bool (*pair_fn)(const char *key, const char *value, void *ud);

/* "k1=v1,k2=v2" (W3C baggage-like, values percent-encoded). Malformed
 * members are skipped; false when @fn fails. */
static bool each_pair(const char *list, pair_fn fn, void *ud) {
  const char *p = list;
  while (p && *p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', n);
    if (eq) {
      char *k = decode_part(p, (size_t)(eq - p));
      char *v = decode_part(eq + 1, n - (size_t)(eq - p) - 1);
      bool ok = !k || !v || !*k || fn(k, v, ud);
      free(k);
      if (v) {
        memset(v, 0, strlen(v)); /* header values may be secrets */
        free(v);
      }
      if (!ok) return false;
    }
    p = end ? end + 1 : NULL;
  }
  return true;
}

static bool add_header(const char *k, const char *v, void *ud) {
  (void)ud;
  if (strpbrk(k, "\r\n:") || strpbrk(v, "\r\n")) return true;
  char *line = aip_sprintf("%s: %s", k, v);
  if (!line) return false;
  struct curl_slist *l = curl_slist_append(the.headers, line);
  memset(line, 0, strlen(line));
  free(line);
  if (!l) return false;
  the.headers = l;
  return true;
}

typedef struct res_ctx {
  const char *service_name; /* OTEL_SERVICE_NAME wins over the list's */
  const char *list_name;
  char *list_name_copy;
} res_ctx;

static bool add_resource(const char *k, const char *v, void *ud) {
  res_ctx *r = ud;
  if (strcmp(k, "service.name") == 0) {
    free(r->list_name_copy);
    r->list_name_copy = aip_strdup(v);
    return true;
  }
  return aip_otlp_kv_str(&the.resource, RES_ATTR_FIELD, k, v, strlen(v));
}

static bool set_sampler(const char *name, const char *arg) {
  double ratio = 1.0;
  if (arg) {
    char *end = NULL;
    errno = 0;
    ratio = strtod(arg, &end);
    if (errno || end == arg || *end || !(ratio >= 0.0 && ratio <= 1.0)) {
      otel_warn("tracing: sampler argument is not a ratio in [0, 1], using 1.0",
                "OTEL_TRACES_SAMPLER_ARG", arg);
      ratio = 1.0;
    }
  }
  the.parent_based = strncmp(name, "parentbased_", 12) == 0;
  const char *root = the.parent_based ? name + 12 : name;
  if (strcmp(root, "always_on") == 0) {
    the.root = SAMPLE_ALWAYS_ON;
  } else if (strcmp(root, "always_off") == 0) {
    the.root = SAMPLE_ALWAYS_OFF;
  } else if (strcmp(root, "traceidratio") == 0) {
    the.root = SAMPLE_RATIO;
    the.ratio_bound = ratio >= 1.0 ? UINT64_MAX
                                   : (uint64_t)(ratio * 9223372036854775808.0);
  } else {
    otel_warn("tracing: unknown sampler, using parentbased_always_on",
              "OTEL_TRACES_SAMPLER", name);
    the.parent_based = true;
    the.root = SAMPLE_ALWAYS_ON;
  }
  return true;
}

static char *traces_url(aiplat_config *cfg) {
  const char *u = cfg_str(cfg, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  if (u) return aip_strdup(u); /* used as it is, by the spec */
  u = cfg_str(cfg, "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (!u) return NULL;
  size_t n = strlen(u);
  while (n && u[n - 1] == '/') n--;
  return aip_sprintf("%.*s/v1/traces", (int)n, u);
}

static char *redact(const char *url) {
  const char *p = strstr(url, "://");
  if (!p) return aip_strdup(url);
  p += 3;
  const char *slash = strchr(p, '/');
  const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
  if (!at) return aip_strdup(url);
  return aip_sprintf("%.*s%s", (int)(p - url), url, at + 1);
}

static int64_t cfg_int(aiplat_config *cfg, const char *name, int64_t min,
                       int64_t max, int64_t dflt) {
  int64_t v = dflt;
  if (!cfg_str(cfg, name)) return dflt;
  if (aiplat_config_get_int(cfg, name, min, max, &v) != AIPLAT_OK) {
    otel_warn("tracing: setting ignored", name, "not an integer in range");
    return dflt;
  }
  return v;
}

static bool configure(aiplat_config *cfg) {
  bool off = false;
  if (cfg_str(cfg, "OTEL_SDK_DISABLED") &&
      aiplat_config_get_bool(cfg, "OTEL_SDK_DISABLED", &off) != AIPLAT_OK)
    off = false;
  const char *exporter = cfg_str(cfg, "OTEL_TRACES_EXPORTER");
  if (off || (exporter && strcmp(exporter, "none") == 0)) return false;
  if (exporter && strcmp(exporter, "otlp") != 0)
    otel_warn("tracing: only the otlp exporter is built in, using it",
              "OTEL_TRACES_EXPORTER", exporter);
  the.url = traces_url(cfg);
  if (!the.url) return false; /* nothing set: no exporter */
  the.display = redact(the.url);
  const char *proto = cfg_str(cfg, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
  if (!proto) proto = cfg_str(cfg, "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (proto && strcmp(proto, "http/protobuf") != 0)
    otel_warn("tracing: only http/protobuf is built in, using it",
              "OTEL_EXPORTER_OTLP_PROTOCOL", proto);
  if (!add_header("Content-Type", "application/x-protobuf", NULL) ||
      !add_header("Expect", "", NULL) ||
      !each_pair(cfg_str(cfg, "OTEL_EXPORTER_OTLP_HEADERS"), add_header, NULL) ||
      !each_pair(cfg_str(cfg, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"), add_header,
                 NULL))
    return false;
  int64_t t = cfg_int(cfg, "OTEL_EXPORTER_OTLP_TIMEOUT", 1, 600000, 10000);
  the.timeout_ms = cfg_int(cfg, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 1, 600000, t);
  the.delay_ms = cfg_int(cfg, "OTEL_BSP_SCHEDULE_DELAY", 0, 3600000, 5000);
  the.max_queue = (size_t)cfg_int(cfg, "OTEL_BSP_MAX_QUEUE_SIZE", 1, 1 << 24, 2048);
  the.batch = (size_t)cfg_int(cfg, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 1 << 24, 512);
  if (the.batch > the.max_queue) the.batch = the.max_queue;
  const char *sampler = cfg_str(cfg, "OTEL_TRACES_SAMPLER");
  set_sampler(sampler ? sampler : "parentbased_always_on",
              cfg_str(cfg, "OTEL_TRACES_SAMPLER_ARG"));
  /* Resource: service.name, the SDK's identity, OTEL_RESOURCE_ATTRIBUTES. */
  res_ctx r = {0};
  if (!each_pair(cfg_str(cfg, "OTEL_RESOURCE_ATTRIBUTES"), add_resource, &r)) {
    free(r.list_name_copy);
    return false;
  }
  const char *svc = cfg_str(cfg, "OTEL_SERVICE_NAME");
  if (!svc) svc = r.list_name_copy;
  if (!svc) svc = cfg_str(cfg, "SERVICE_NAME");
  if (!svc) svc = "unknown_service";
  const char *ver = aiplat_version_string();
  bool ok = aip_otlp_kv_str(&the.resource, RES_ATTR_FIELD, "service.name", svc,
                            strlen(svc)) &&
            aip_otlp_kv_str(&the.resource, RES_ATTR_FIELD, "telemetry.sdk.name",
                            "libaiplat", 9) &&
            aip_otlp_kv_str(&the.resource, RES_ATTR_FIELD,
                            "telemetry.sdk.version", ver, strlen(ver));
  free(r.list_name_copy);
  return ok;
}

static void init_once(void) {
  pthread_mutex_init(&the.mu, NULL);
  pthread_cond_init(&the.cv, NULL);
  aiplat_config *cfg = NULL;
  if (aiplat_config_create(&cfg) != AIPLAT_OK) return;
  the.enabled = configure(cfg);
  aiplat_config_destroy(cfg);
  if (the.enabled) {
    char delay[24];
    snprintf(delay, sizeof delay, "%lld", (long long)the.delay_ms);
    /* The endpoint without user information; headers are never logged. */
    aip_log_kv(AIPLAT_LOG_INFO, "tracing: exporting spans", "component", "otel",
               "endpoint", the.display, "schedule_delay_ms", delay,
               (const char *)NULL);
  }
}

bool aip_otel_enabled(void) {
  pthread_once(&once, init_once);
  return the.enabled;
}

/* ---- sampling ----------------------------------------------------------- */

static void hex_to_bytes(const char *hex, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int h = hexdig(hex[2 * i]), l = hexdig(hex[2 * i + 1]);
    out[i] = (uint8_t)((h < 0 ? 0 : h) << 4 | (l < 0 ? 0 : l));
  }
}

uint8_t aip_otel_sample(const aip_trace *t, bool has_parent) {
  if (!aip_otel_enabled()) return has_parent ? t->flags : 0x01;
  if (has_parent && the.parent_based) return t->flags;
  uint8_t keep = t->flags & (uint8_t)~1u;
  switch (the.root) {
    case SAMPLE_ALWAYS_ON:
      return keep | 1;
    case SAMPLE_ALWAYS_OFF:
      return keep;
    default: {
      uint8_t id[16];
      hex_to_bytes(t->trace_id, id, 16);
      uint64_t lo = 0;
      for (int i = 8; i < 16; i++) lo = lo << 8 | id[i];
      bool yes = the.ratio_bound == UINT64_MAX || (lo >> 1) < the.ratio_bound;
      return keep | (yes ? 1 : 0);
    }
  }
}

/* ---- the current span of a thread --------------------------------------- */

static _Thread_local aip_otel_ctx current;

aip_otel_ctx aip_otel_enter_trace(const aip_trace *t) {
  aip_otel_ctx prev = current;
  if (!t || !aip_otel_enabled()) return prev;
  hex_to_bytes(t->trace_id, current.trace_id, 16);
  hex_to_bytes(t->span_id, current.span_id, 8);
  current.flags = t->flags;
  current.set = true;
  return prev;
}

aip_otel_ctx aip_otel_enter(const aip_span *s) {
  aip_otel_ctx prev = current;
  if (!s) return prev;
  memcpy(current.trace_id, s->trace_id, 16);
  memcpy(current.span_id, s->span_id, 8);
  current.flags = s->flags;
  current.set = true;
  return prev;
}

void aip_otel_restore(aip_otel_ctx prev) { current = prev; }

/* ---- spans -------------------------------------------------------------- */

static int64_t unix_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static aip_span *span_new(const char *name, aip_span_kind kind) {
  aip_span *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->name = aip_strdup(name ? name : "");
  if (!s->name) {
    free(s);
    return NULL;
  }
  s->kind = (uint8_t)kind;
  aip_buf_reserve(&s->attrs, 384); /* the usual attributes, one allocation */
  s->start_unix_ns = unix_ns();
  s->start_mono_ns = aip_now_ns();
  return s;
}

static void span_free(aip_span *s) {
  if (!s) return;
  free(s->name);
  aip_buf_free(&s->attrs);
  free(s);
}

aip_span *aip_span_begin_trace(const aip_trace *t, const char *name,
                               aip_span_kind kind) {
  if (!t || !aip_otel_enabled() || !(t->flags & 1)) return NULL;
  aip_span *s = span_new(name, kind);
  if (!s) return NULL;
  hex_to_bytes(t->trace_id, s->trace_id, 16);
  hex_to_bytes(t->span_id, s->span_id, 8);
  if (t->parent_span_id[0]) {
    hex_to_bytes(t->parent_span_id, s->parent_id, 8);
    s->has_parent = s->remote_parent = true;
  }
  s->flags = t->flags;
  return s;
}

aip_span *aip_span_begin(const char *name, aip_span_kind kind) {
  if (!current.set || !(current.flags & 1) || !aip_otel_enabled()) return NULL;
  aip_span *s = span_new(name, kind);
  if (!s) return NULL;
  memcpy(s->trace_id, current.trace_id, 16);
  memcpy(s->parent_id, current.span_id, 8);
  s->has_parent = true;
  s->flags = current.flags;
  do {
    aip_random_bytes(s->span_id, 8);
  } while (!memcmp(s->span_id, "\0\0\0\0\0\0\0\0", 8));
  return s;
}

/* Attributes past the cap are dropped: a span stays small. */
static bool attr_room(aip_span *s) {
  return s && s->attrs.len < MAX_ATTRS_BYTES;
}

void aip_span_set_str(aip_span *s, const char *key, const char *value) {
  if (attr_room(s) && value) {
    size_t n = strlen(value);
    aip_otlp_kv_str(&s->attrs, ATTR_FIELD, key, value, n < 1024 ? n : 1024);
  }
}

void aip_span_set_int(aip_span *s, const char *key, int64_t value) {
  if (attr_room(s)) aip_otlp_kv_int(&s->attrs, ATTR_FIELD, key, value);
}

void aip_span_set_double(aip_span *s, const char *key, double value) {
  if (attr_room(s)) aip_otlp_kv_double(&s->attrs, ATTR_FIELD, key, value);
}

void aip_span_set_bool(aip_span *s, const char *key, bool value) {
  if (attr_room(s)) aip_otlp_kv_bool(&s->attrs, ATTR_FIELD, key, value);
}

void aip_span_set_url(aip_span *s, const char *url) {
  if (!s || !url) return;
  char *clean = redact(url);
  if (!clean) return;
  aip_span_set_str(s, "url.full", clean);
  const char *host = strstr(clean, "://");
  if (host) {
    host += 3;
    size_t n = strcspn(host, "/");
    const char *colon = NULL;
    if (*host == '[') { /* [v6]:port */
      const char *rb = memchr(host, ']', n);
      if (rb && rb + 1 < host + n && rb[1] == ':') colon = rb + 1;
    } else {
      colon = memchr(host, ':', n);
    }
    size_t hn = colon ? (size_t)(colon - host) : n;
    char hb[256];
    if (hn < sizeof hb) {
      memcpy(hb, host, hn);
      hb[hn] = '\0';
      aip_span_set_str(s, "server.address", hb);
    }
    long port = colon ? strtol(colon + 1, NULL, 10)
                : strncasecmp(clean, "https", 5) == 0 ? 443
                                                      : 80;
    if (port > 0) aip_span_set_int(s, "server.port", port);
  }
  free(clean);
}

void aip_span_set_status(aip_span *s, aiplat_status st) {
  if (!s || st == AIPLAT_OK) return;
  s->status_code = 2;
  s->status_msg = aiplat_status_str(st);
  aip_span_set_str(s, "error.type", aiplat_status_str(st));
  aip_span_set_int(s, "aiplat.status", (int64_t)st);
}

void aip_span_traceparent(const aip_span *s, char *buf, size_t buflen) {
  static const char hex[] = "0123456789abcdef";
  if (!s || buflen < AIP_TRACEPARENT_LEN + 1) {
    if (buflen) buf[0] = '\0';
    return;
  }
  aip_trace t;
  for (int i = 0; i < 16; i++) {
    t.trace_id[2 * i] = hex[s->trace_id[i] >> 4];
    t.trace_id[2 * i + 1] = hex[s->trace_id[i] & 15];
  }
  for (int i = 0; i < 8; i++) {
    t.span_id[2 * i] = hex[s->span_id[i] >> 4];
    t.span_id[2 * i + 1] = hex[s->span_id[i] & 15];
  }
  t.flags = s->flags;
  aip_trace_format(&t, buf, buflen);
}

int64_t aip_span_elapsed_ns(const aip_span *s) {
  return s ? aip_now_ns() - s->start_mono_ns : 0;
}

/* ---- the batch processor ------------------------------------------------ */

static void kick_fn(aip_task *t);
static void process(void);

void aip_span_end(aip_span *s) {
  if (!s) return;
  s->end_unix_ns = s->start_unix_ns + aip_span_elapsed_ns(s);
  bool post = false;
  pthread_mutex_lock(&the.mu);
  if (the.count >= the.max_queue) {
    the.stats.dropped_queue++;
    pthread_mutex_unlock(&the.mu);
    span_free(s);
    return;
  }
  if (the.tail)
    the.tail->next = s;
  else
    the.head = s;
  the.tail = s;
  the.count++;
  if (!the.kick_posted &&
      (!the.pending || (the.count >= the.batch && !the.busy))) {
    the.kick_posted = true;
    post = true;
  }
  pthread_mutex_unlock(&the.mu);
  if (post) {
    the.kick_task.fn = kick_fn;
    if (aip_loop_post(&the.kick_task) != AIPLAT_OK) {
      pthread_mutex_lock(&the.mu);
      the.kick_posted = false;
      pthread_mutex_unlock(&the.mu);
    }
  }
}

static void log_export(const char *msg, size_t n, const char *reason) {
  if (!aip_log_enabled(AIPLAT_LOG_WARNING)) return;
  char spans[24];
  snprintf(spans, sizeof spans, "%zu", n);
  aip_log_kv(AIPLAT_LOG_WARNING, msg, "component", "otel", "endpoint",
             the.display, "spans", spans, "reason", reason, (const char *)NULL);
}

static void export_over(void) {
  aip_buf_free(&the.body);
  the.batch_n = 0;
  pthread_mutex_lock(&the.mu);
  the.busy = false;
  the.pending = false;
  pthread_cond_broadcast(&the.cv);
  pthread_mutex_unlock(&the.mu);
  process();
}

static void attempt_start(void);

static void on_retry_timer(aip_timer *t) {
  (void)t;
  attempt_start();
}

static size_t discard_body(char *b, size_t sz, size_t n, void *ud) {
  (void)b;
  (void)ud;
  return sz * n;
}

static bool retryable(long code) {
  return code == 429 || code == 502 || code == 503 || code == 504;
}

static void attempt_done(aip_transfer *x, CURLcode cc) {
  long code = 0;
  curl_off_t retry_after = -1;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry_after);
  aip_loop_easy_put(x->easy);
  x->easy = NULL;
  char reason[64];
  if (cc == CURLE_OK && code >= 200 && code < 300) {
    pthread_mutex_lock(&the.mu);
    the.stats.exported += the.batch_n;
    pthread_mutex_unlock(&the.mu);
    if (the.failing) {
      the.failing = false;
      log_export("tracing: export works again", the.batch_n, "ok");
    }
    export_over();
    return;
  }
  if (cc != CURLE_OK)
    snprintf(reason, sizeof reason, "%s", curl_easy_strerror(cc));
  else
    snprintf(reason, sizeof reason, "HTTP %ld", code);
  /* OTLP/HTTP: 429, 502, 503, 504 and failures to reach the collector are
   * retried with backoff (Retry-After when given); anything else is final. */
  bool again = cc != CURLE_OK || retryable(code);
  int64_t wait = RETRY_BASE_MS << (the.attempt < 5 ? the.attempt : 5);
  uint8_t r;
  aip_random_bytes(&r, 1);
  wait = wait / 2 + (wait / 2) * r / 255; /* jitter */
  if (cc == CURLE_OK && retry_after >= 0) wait = (int64_t)retry_after * 1000;
  if (wait > RETRY_MAX_MS) wait = RETRY_MAX_MS;
  pthread_mutex_lock(&the.mu);
  if (the.flushing && aip_now_ms() + wait > the.flush_deadline_ms) again = false;
  pthread_mutex_unlock(&the.mu);
  if (again && ++the.attempt < MAX_ATTEMPTS) {
    pthread_mutex_lock(&the.mu);
    the.stats.export_retries++;
    pthread_mutex_unlock(&the.mu);
    if (!the.failing) {
      the.failing = true;
      log_export("tracing: export failed, retrying", the.batch_n, reason);
    }
    the.retry_timer.fn = on_retry_timer;
    aip_timer_start(&the.retry_timer, aip_now_ns() + wait * 1000000);
    return;
  }
  the.failing = true;
  log_export("tracing: export failed, spans dropped", the.batch_n, reason);
  pthread_mutex_lock(&the.mu);
  the.stats.dropped_export += the.batch_n;
  pthread_mutex_unlock(&the.mu);
  export_over();
}

static void attempt_start(void) {
  CURL *e = aip_loop_easy_get();
  if (!e) {
    attempt_done(&the.xfer, CURLE_OUT_OF_MEMORY);
    return;
  }
  curl_easy_setopt(e, CURLOPT_URL, the.url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)the.timeout_ms);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, the.headers);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, the.body.data ? the.body.data : "");
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)the.body.len);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
  const char *ca = getenv("OTEL_EXPORTER_OTLP_CERTIFICATE");
  if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
  the.xfer.easy = e;
  the.xfer.done = attempt_done;
  if (!aip_loop_add_transfer(&the.xfer)) attempt_done(&the.xfer, CURLE_FAILED_INIT);
}

static void export_start(void) {
  aip_span *batch[1024], **spans = batch;
  size_t want = the.batch;
  if (want > AIP_ARRAY_LEN(batch)) {
    spans = malloc(want * sizeof *spans);
    if (!spans) {
      spans = batch;
      want = AIP_ARRAY_LEN(batch);
    }
  }
  size_t n = 0;
  pthread_mutex_lock(&the.mu);
  while (the.head && n < want) {
    spans[n++] = the.head;
    the.head = the.head->next;
  }
  if (!the.head) the.tail = NULL;
  the.count -= n;
  the.busy = the.pending = true;
  pthread_mutex_unlock(&the.mu);
  aip_buf_reset(&the.body);
  bool ok = aip_otlp_encode(&the.body, &the.resource, spans, n);
  for (size_t i = 0; i < n; i++) span_free(spans[i]);
  if (spans != batch) free(spans);
  the.batch_n = n;
  the.attempt = 0;
  if (!ok) {
    pthread_mutex_lock(&the.mu);
    the.stats.dropped_export += n;
    pthread_mutex_unlock(&the.mu);
    export_over();
    return;
  }
  attempt_start();
}

static void on_delay_timer(aip_timer *t) {
  (void)t;
  the.delay_armed = false;
  pthread_mutex_lock(&the.mu);
  bool any = the.count > 0 && !the.busy;
  if (!any && !the.busy) the.pending = false;
  pthread_mutex_unlock(&the.mu);
  if (any) export_start();
}

/* On the loop: export now when a batch is full or a flush waits, otherwise
 * come back after the schedule delay. */
static void process(void) {
  pthread_mutex_lock(&the.mu);
  if (the.busy) {
    pthread_mutex_unlock(&the.mu);
    return;
  }
  size_t n = the.count;
  bool now = n >= the.batch || (n > 0 && the.flushing > 0);
  if (n == 0) {
    the.pending = false;
    pthread_cond_broadcast(&the.cv);
  } else {
    the.pending = true;
  }
  pthread_mutex_unlock(&the.mu);
  if (now) {
    if (the.delay_armed) aip_timer_stop(&the.delay_timer);
    the.delay_armed = false;
    export_start();
  } else if (n > 0 && !the.delay_armed) {
    the.delay_timer.fn = on_delay_timer;
    the.delay_armed = true;
    aip_timer_start(&the.delay_timer, aip_now_ns() + the.delay_ms * 1000000);
  } else if (n == 0 && the.delay_armed) {
    aip_timer_stop(&the.delay_timer);
    the.delay_armed = false;
  }
}

static void kick_fn(aip_task *t) {
  (void)t;
  pthread_mutex_lock(&the.mu);
  the.kick_posted = false;
  the.attached = true;
  pthread_mutex_unlock(&the.mu);
  process();
}

static _Atomic int64_t shutdown_deadline_ms; /* 0: none */

void aip_otel_shutdown_by(int64_t deadline_ms) {
  int64_t cur = atomic_load(&shutdown_deadline_ms);
  if (cur == 0 || deadline_ms < cur) atomic_store(&shutdown_deadline_ms, deadline_ms);
}

void aip_otel_flush(int64_t timeout_ms) {
  if (!aip_otel_enabled() || aip_loop_on_thread()) return;
  if (timeout_ms < 0) timeout_ms = the.timeout_ms;
  int64_t by = atomic_load(&shutdown_deadline_ms);
  if (by != 0) {
    int64_t left = by - aip_now_ms();
    if (left < timeout_ms) timeout_ms = left > 0 ? left : 0;
  }
  if (timeout_ms == 0) return; /* nothing left to wait: what is queued is dropped */
  pthread_mutex_lock(&the.mu);
  if (the.count == 0 && !the.busy) {
    pthread_mutex_unlock(&the.mu);
    return;
  }
  int64_t deadline = aip_now_ms() + timeout_ms;
  if (the.flushing == 0 || deadline > the.flush_deadline_ms)
    the.flush_deadline_ms = deadline;
  the.flushing++;
  bool post = !the.kick_posted;
  the.kick_posted = true;
  pthread_mutex_unlock(&the.mu);
  the.kick_task.fn = kick_fn;
  if (post && aip_loop_post(&the.kick_task) != AIPLAT_OK) {
    pthread_mutex_lock(&the.mu);
    the.kick_posted = false;
    the.flushing--;
    pthread_mutex_unlock(&the.mu);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t ns = (int64_t)ts.tv_nsec + (timeout_ms % 1000) * 1000000;
  ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&the.mu);
  while ((the.count > 0 || the.busy || the.kick_posted) &&
         pthread_cond_timedwait(&the.cv, &the.mu, &ts) != ETIMEDOUT) {
  }
  the.flushing--;
  pthread_mutex_unlock(&the.mu);
}

static void detach_fn(aip_task *t) {
  (void)t;
  if (the.xfer.active) {
    aip_loop_remove_transfer(&the.xfer);
    aip_loop_easy_put(the.xfer.easy);
    the.xfer.easy = NULL;
  }
  aip_timer_stop(&the.delay_timer);
  aip_timer_stop(&the.retry_timer);
  the.delay_armed = false;
  pthread_mutex_lock(&the.mu);
  if (the.busy) the.stats.dropped_export += the.batch_n;
  the.busy = the.pending = the.attached = false;
  pthread_cond_broadcast(&the.cv);
  pthread_mutex_unlock(&the.mu);
  aip_buf_free(&the.body);
  the.batch_n = 0;
}

void aip_otel_detach(void) {
  if (!aip_otel_enabled()) return;
  pthread_mutex_lock(&the.mu);
  bool ours = the.attached || the.kick_posted;
  pthread_mutex_unlock(&the.mu);
  if (!ours) return;
  if (aip_loop_on_thread()) {
    detach_fn(&the.detach_task);
    return;
  }
  the.detach_task.fn = detach_fn;
  aip_loop_post(&the.detach_task); /* runs before the loop stops */
}

void aip_otel_get_stats(aip_otel_stats *out) {
  memset(out, 0, sizeof *out);
  if (!aip_otel_enabled()) return;
  pthread_mutex_lock(&the.mu);
  *out = the.stats;
  out->queued = the.count;
  pthread_mutex_unlock(&the.mu);
}

bool aip_otel_render_metrics(aip_buf *b) {
  if (!aip_otel_enabled()) return true;
  aip_otel_stats s;
  aip_otel_get_stats(&s);
  return aip_buf_printf(
      b,
      "# HELP aiplat_trace_spans_exported_total Spans the OTLP collector "
      "accepted.\n"
      "# TYPE aiplat_trace_spans_exported_total counter\n"
      "aiplat_trace_spans_exported_total %llu\n"
      "# HELP aiplat_trace_spans_dropped_total Spans not exported: the "
      "queue was full, or the export failed for good.\n"
      "# TYPE aiplat_trace_spans_dropped_total counter\n"
      "aiplat_trace_spans_dropped_total{reason=\"queue_full\"} %llu\n"
      "aiplat_trace_spans_dropped_total{reason=\"export_failed\"} %llu\n"
      "# HELP aiplat_trace_export_retries_total Export attempts retried.\n"
      "# TYPE aiplat_trace_export_retries_total counter\n"
      "aiplat_trace_export_retries_total %llu\n"
      "# HELP aiplat_trace_queue_spans Spans waiting to be exported.\n"
      "# TYPE aiplat_trace_queue_spans gauge\n"
      "aiplat_trace_queue_spans %zu\n",
      (unsigned long long)s.exported, (unsigned long long)s.dropped_queue,
      (unsigned long long)s.dropped_export,
      (unsigned long long)s.export_retries, s.queued);
}

/* ---- spans of the library's own steps ------------------------------------ */

aip_span *aip_otel_server_span(const aip_trace *t, const char *pattern,
                               const char *subject) {
  if (!t || !(t->flags & 1) || !aip_otel_enabled()) return NULL;
  char name[256];
  snprintf(name, sizeof name, "process %s", pattern ? pattern : "");
  aip_span *s = aip_span_begin_trace(t, name, AIP_SPAN_SERVER);
  aip_span_set_str(s, "messaging.system", "nats");
  aip_span_set_str(s, "messaging.operation.name", "process");
  aip_span_set_str(s, "messaging.operation.type", "process");
  aip_span_set_str(s, "messaging.destination.name", subject);
  aip_span_set_str(s, "messaging.destination.template", pattern);
  return s;
}

void aip_otel_server_end(aip_span *s, aiplat_status st, const char *request_id) {
  if (!s) return;
  aip_span_set_str(s, "aiplat.request_id", request_id);
  aip_span_set_status(s, st);
  aip_span_end(s);
}

aip_span *aip_otel_http_begin(const char *method, const char *url) {
  aip_span *s = aip_span_begin(method, AIP_SPAN_CLIENT);
  aip_span_set_str(s, "http.request.method", method);
  aip_span_set_url(s, url);
  return s;
}

void aip_otel_http_end(aip_span *s, aiplat_status st, long http_status,
                       int attempts) {
  if (!s) return;
  if (http_status > 0) aip_span_set_int(s, "http.response.status_code", http_status);
  if (attempts > 1) aip_span_set_int(s, "http.request.resend_count", attempts - 1);
  aip_span_set_status(s, st);
  aip_span_end(s);
}

aip_span *aip_otel_nats_begin(const char *operation, const char *subject) {
  if (!current.set) return NULL;
  char name[256];
  snprintf(name, sizeof name, "%s %s", operation, subject ? subject : "");
  aip_span *s = aip_span_begin(name, AIP_SPAN_CLIENT);
  aip_span_set_str(s, "messaging.system", "nats");
  aip_span_set_str(s, "messaging.operation.name", operation);
  aip_span_set_str(s, "messaging.operation.type", "send");
  aip_span_set_str(s, "messaging.destination.name", subject);
  return s;
}

void aip_otel_end(aip_span *s, aiplat_status st) {
  if (!s) return;
  aip_span_set_status(s, st);
  aip_span_end(s);
}

aip_span *aip_otel_genai_begin(const char *operation, const char *model,
                               const char *url) {
  if (!current.set) return NULL;
  char name[256];
  snprintf(name, sizeof name, "%s %s", operation, model ? model : "");
  aip_span *s = aip_span_begin(name, AIP_SPAN_CLIENT);
  aip_span_set_str(s, "gen_ai.operation.name", operation);
  aip_span_set_str(s, "gen_ai.provider.name", "openai");
  aip_span_set_str(s, "gen_ai.request.model", model);
  aip_span_set_url(s, url);
  return s;
}

void aip_otel_genai_end(aip_span *s, aiplat_status st, const char *response_model,
                        int64_t input_tokens, int64_t output_tokens,
                        const char *finish_reason, int64_t first_token_ns) {
  if (!s) return;
  aip_span_set_str(s, "gen_ai.response.model", response_model);
  if (input_tokens >= 0) aip_span_set_int(s, "gen_ai.usage.input_tokens", input_tokens);
  if (output_tokens >= 0) aip_span_set_int(s, "gen_ai.usage.output_tokens", output_tokens);
  if (finish_reason) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", finish_reason);
    /* a string array in the conventions; one value here */
    aip_span_set_str(s, "gen_ai.response.finish_reasons", buf);
  }
  if (first_token_ns > 0)
    aip_span_set_double(s, "gen_ai.response.time_to_first_chunk",
                        (double)first_token_ns / 1e9);
  aip_span_set_status(s, st);
  aip_span_end(s);
}

aip_span *aip_otel_step_begin(const char *name) {
  if (!current.set) return NULL;
  return aip_span_begin(name, AIP_SPAN_INTERNAL);
}
