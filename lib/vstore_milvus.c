/* The Milvus backend of the vector store: Milvus's RESTful API v2
 * (/v2/vectordb/...) on the library's HTTP layer.
 *
 * Decisions and the wire details each one rests on are in
 * docs/decisions/0015-rag.md. In short:
 *  - one collection {id VarChar(512) primary key, vector FloatVector(dim),
 *    text VarChar(65535), source VarChar(4096), metadata JSON}, created with
 *    the schema form and a COSINE index, then loaded;
 *  - writes are `entities/upsert` (an existing id is replaced), in batches;
 *  - Milvus reports most failures as a non-zero `code` inside HTTP 200:
 *    each code becomes an aiplat_status with Milvus's own message, and the
 *    codes Milvus marks retryable (rate limits, not ready) are retried with
 *    backoff;
 *  - every answer shape of the supported versions is accepted: success as
 *    code 0 or 200, search `data` flat or as a list of lists, `distance` or
 *    `score`, ids as numbers or strings, dimensions in `params` or in the
 *    type name ("FloatVector(384)").
 */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "call_internal.h"
#include "http.h"
#include "model_common.h"
#include "vstore_milvus.h"

/* Rows per upsert request, and a soft cap on the request body. */
#define BATCH_ROWS 256u
#define BATCH_BYTES (4u << 20)
/* Milvus's query result window (offset + limit). */
#define QUERY_WINDOW 16384u
#define MSG_MAX 320

static const char API[] = "/v2/vectordb";

typedef struct vmilvus {
  aip_vstore base;
  aip_http *http;
  /* The HTTP layer as the asynchronous requests see it (aip_model_call
   * uses its http and component only). */
  aip_model_base calls;
  char *url;        /* base URL, for messages */
  char *collection; /* MILVUS_COLLECTION */
  char *db;         /* MILVUS_DB, NULL for the default database */
  pthread_mutex_t mu;
  /* What the handle knows of the collection: */
  uint32_t dim; /* its dimension, 0 when not known */
  bool checked; /* its schema was checked against the one written */
  bool seen;    /* it existed at some point (a write now missing it
                   means it was dropped, not never created) */
  /* Retries of Milvus's retryable codes (same settings as HTTP retries). */
  int max_retries;
  int64_t backoff_ms, max_wait_ms;
} vmilvus;

/* ---- filter expressions ---------------------------------------------------
 */

/* Append @s as the inside of a Milvus string literal in double quotes. The
 * expression grammar forbids a raw quote, backslash, CR or LF inside one
 * and knows C escapes (\" \\ \n \r \t) and \uXXXX, so nothing in a value
 * can end the literal or add syntax after it. */
static bool put_literal(aip_buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool ok;
    switch (*p) {
      case '"':
        ok = aip_buf_puts(b, "\\\"");
        break;
      case '\\':
        ok = aip_buf_puts(b, "\\\\");
        break;
      case '\n':
        ok = aip_buf_puts(b, "\\n");
        break;
      case '\r':
        ok = aip_buf_puts(b, "\\r");
        break;
      case '\t':
        ok = aip_buf_puts(b, "\\t");
        break;
      default:
        ok = *p < 0x20 || *p == 0x7f ? aip_buf_printf(b, "\\u%04x", *p)
                                     : aip_buf_putc(b, (char)*p);
    }
    if (!ok) return false;
  }
  return true;
}

aiplat_status aip_milvus_filter(aip_err *err, const char *field,
                                aip_vmatch match, const char *value,
                                char **out) {
  *out = NULL;
  if (!field || !value ||
      (match != AIP_VMATCH_EXACT && match != AIP_VMATCH_PREFIX))
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "milvus: bad filter arguments");
  if (match == AIP_VMATCH_PREFIX && strpbrk(value, "%_\\"))
    return aip_fail(err, AIPLAT_ERR_NOT_SUPPORTED,
                    "milvus: a source prefix holding %%, _ or a backslash "
                    "cannot be matched exactly with LIKE; use an exact "
                    "source");
  aip_buf b = {0};
  bool ok = aip_buf_printf(&b, "%s %s \"", field,
                           match == AIP_VMATCH_EXACT ? "==" : "like") &&
            put_literal(&b, value) &&
            aip_buf_puts(&b, match == AIP_VMATCH_EXACT ? "\"" : "%\"");
  if (!ok) {
    aip_buf_free(&b);
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "milvus: out of memory");
  }
  *out = aip_buf_steal(&b, NULL);
  return AIPLAT_OK;
}

/* ---- errors ---------------------------------------------------------------
 */

/* Milvus has no code of its own for a vector of the wrong dimension: each
 * layer words it in a message under a generic code. The REST layer checks
 * vectors against the schema before the proxy sees them: a search answers
 * 1801 (can only accept json format request) with "dimension: D, but
 * length of []float: N", an upsert 1804 (fail to deal the insert data)
 * with "[]float32 size N doesn't equal to vector dimension D"; behind it
 * the proxy says "is not equal to schema dim" (1100) and the query nodes
 * "dimension mismatch" (65535, 2000). */
static bool dim_mismatch_text(const char *msg) {
  return strstr(msg, "dimension mismatch") ||
         strstr(msg, "is not equal to schema dim") ||
         strstr(msg, "should divide the dim") ||
         strstr(msg, "but length of []float") ||
         strstr(msg, "doesn't equal to vector dimension");
}

/* The status for a Milvus error code (pkg/util/merr, plus the RESTful
 * layer's 18xx). A message naming a dimension mismatch is
 * INVALID_ARGUMENT whatever its code (see dim_mismatch_text). */
static aiplat_status status_for_code(long code, const char *msg) {
  if (dim_mismatch_text(msg)) return AIPLAT_ERR_INVALID_ARGUMENT;
  switch (code) {
    case 1:   /* service not ready */
    case 2:   /* service unavailable */
    case 3:   /* memory limit exceeded */
    case 7:   /* disk limit exceeded */
    case 9:   /* quota exceeded */
    case 12:  /* resource insufficient */
    case 103: /* collection not fully loaded */
    case 106: /* collection on recovering */
      return AIPLAT_ERR_UNAVAILABLE;
    case 4:    /* too many concurrent requests */
    case 8:    /* rate limit exceeded */
    case 1003: /* too many requests (storage) */
    case 1807: /* request is rejected by limiter (REST) */
      return AIPLAT_ERR_RATE_LIMITED;
    case 100:  /* collection not found */
    case 200:  /* partition not found (200 is success only as HTTP-like) */
    case 800:  /* database not found */
    case 1600: /* alias not found */
      return AIPLAT_ERR_NOT_FOUND;
    case 101: /* collection not loaded */
    case 201: /* partition not loaded */
      return AIPLAT_ERR_STATE;
    case 1400: /* not authenticated */
    case 1401: /* privilege not permitted */
    case 1800: /* user hasn't authenticated (REST) */
      return AIPLAT_ERR_AUTH;
    case 1102: /* parameter too large */
      return AIPLAT_ERR_TOO_LARGE;
    case 10001: /* timeout */
      return AIPLAT_ERR_TIMEOUT;
    case 102:  /* too many collections */
    case 105:  /* illegal collection schema */
    case 701:  /* index type not supported */
    case 801:  /* too many databases */
    case 802:  /* invalid database name */
    case 1100: /* invalid parameter */
    case 1101: /* missing parameter */
    case 1700: /* field not found */
    case 1701: /* field name invalid */
    case 1801: /* can only accept json format request */
    case 1802: /* missing required parameters */
    case 1804: /* fail to deal the insert data */
    case 1806: /* primary key type */
      return AIPLAT_ERR_BAD_REQUEST;
    default: /* 5, 2000 (segcore), 65535 (unexpected), ... */
      return AIPLAT_ERR_SERVER;
  }
}

/* Codes Milvus marks retryable: waiting helps. */
static bool retryable_code(long code) {
  return code == 1 || code == 2 || code == 4 || code == 8 || code == 103 ||
         code == 106 || code == 1003 || code == 1807;
}

static bool success_code(long code) {
  /* 0 since 2.4.x; the first 2.4 releases answered HTTP-like 200. */
  return code == 0 || code == 200;
}

/* ---- requests -------------------------------------------------------------
 */

/* A finished call: the parsed answer and Milvus's code. */
typedef struct mresult {
  json_t *root; /* the answer object (success only) */
  long code;    /* Milvus's code (0 on success, -1 when no answer) */
} mresult;

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static uint64_t rng_next(void) {
  static _Thread_local uint64_t x;
  if (!x) x = (uint64_t)aip_now_ns() | 1u;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

/* Full jitter over base * 2^n, capped. */
static int64_t backoff(const vmilvus *m, int n) {
  int64_t cap = m->backoff_ms << (n < 20 ? n : 20);
  if (cap > m->max_wait_ms) cap = m->max_wait_ms;
  return cap > 0 ? (int64_t)(rng_next() % (uint64_t)(cap + 1)) : 0;
}

/* A transport-level failure (no answer, or an HTTP error status): refine
 * the HTTP layer's message where Milvus has something to say. */
static aiplat_status transport_failure(vmilvus *m, aip_err *err,
                                       const char *what, const char *path,
                                       aiplat_status st, aip_http_resp *resp) {
  if (resp->status == 401 || resp->status == 403) {
    char msg[MSG_MAX] = "";
    long code = 0;
    json_t *j = resp->body.len
                    ? json_loadb(resp->body.data, resp->body.len, 0, NULL)
                    : NULL;
    if (j && json_is_object(j)) {
      aip_http_error_json(j, msg, sizeof msg);
      json_t *c = json_object_get(j, "code");
      if (json_is_integer(c)) code = (long)json_integer_value(c);
    } else {
      aip_http_error_text(resp->body.data, resp->body.len, msg, sizeof msg);
    }
    json_decref(j);
    char codebuf[40] = "";
    if (code) snprintf(codebuf, sizeof codebuf, ", Milvus code %ld", code);
    return aip_fail(err, AIPLAT_ERR_AUTH,
                    "milvus: %s: authentication failed (HTTP %ld%s%s%s); "
                    "check MILVUS_TOKEN",
                    what, resp->status, codebuf, msg[0] ? ": " : "", msg);
  }
  if (resp->status == 404 || resp->status == 405)
    return aip_fail(err, AIPLAT_ERR_NOT_SUPPORTED,
                    "milvus: %s: %s%s answered HTTP %ld: no Milvus RESTful "
                    "API v2 there (Milvus 2.4 or later on its port, 19530 by "
                    "default)",
                    what, m->url, path, resp->status);
  (void)st; /* the HTTP layer's message stands: connection, timeout, 5xx */
  return st;
}

aiplat_status aip_milvus_answer(aip_err *err, const char *what,
                                long http_status, const char *body, size_t len,
                                int attempt, json_t **root, long *code,
                                char *msg, size_t msglen) {
  *root = NULL;
  *code = -1;
  if (msg && msglen) msg[0] = '\0';
  json_error_t je;
  json_t *j = body && len ? json_loadb(body, len, 0, &je) : NULL;
  if (!j) {
    char start[96] = "";
    if (body && len) aip_http_error_text(body, len, start, sizeof start);
    return aip_fail(err, AIPLAT_ERR_DECODE,
                    "milvus: %s: the answer (HTTP %ld) is not JSON%s%s%s", what,
                    http_status, body && len ? ": \"" : " (empty)", start,
                    body && len ? "\"" : "");
  }
  json_t *c = json_is_object(j) ? json_object_get(j, "code") : NULL;
  if (!json_is_integer(c)) {
    json_decref(j);
    return aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "milvus: %s: the answer is not a Milvus reply (no "
                    "integer \"code\")",
                    what);
  }
  *code = (long)json_integer_value(c);
  if (success_code(*code)) {
    *root = j;
    *code = 0;
    return AIPLAT_OK;
  }
  char text[MSG_MAX];
  if (!aip_http_error_json(j, text, sizeof text))
    snprintf(text, sizeof text, "(no message)");
  json_decref(j);
  if (msg && msglen) snprintf(msg, msglen, "%s", text);
  char tries[40] = "";
  if (attempt > 0)
    snprintf(tries, sizeof tries, " (after %d attempts)", attempt + 1);
  aiplat_status mapped = status_for_code(*code, text);
  return aip_fail(
      err, mapped, "milvus: %s: %s%s (Milvus code %ld)%s", what,
      mapped == AIPLAT_ERR_INVALID_ARGUMENT ? "dimension mismatch: " : "", text,
      *code, tries);
}

/* The outcome of one request (@st and @resp from the HTTP layer, the
 * detail of a transport failure already in @err): Milvus's code read into
 * @res, its message into @msg. Shared by the blocking and the asynchronous
 * requests. */
static aiplat_status settle(vmilvus *m, aip_err *err, const char *what,
                            const char *path, aiplat_status st,
                            aip_http_resp *resp, int attempt, mresult *res,
                            char *msg, size_t msglen) {
  res->root = NULL;
  res->code = -1;
  if (msg && msglen) msg[0] = '\0';
  if (st != AIPLAT_OK) return transport_failure(m, err, what, path, st, resp);
  return aip_milvus_answer(err, what, resp->status, resp->body.data,
                           resp->body.len, attempt, &res->root, &res->code, msg,
                           msglen);
}

/* After a failed attempt: the wait before the next one, or -1 when the
 * failure stands (not a busy code, or no retry left). */
static int64_t retry_wait(vmilvus *m, aiplat_status st, const mresult *res,
                          int attempt, const char *what, const char *msg) {
  if (st == AIPLAT_OK || !retryable_code(res->code) ||
      attempt >= m->max_retries)
    return -1;
  int64_t wait = backoff(m, attempt);
  if (aip_log_enabled(AIPLAT_LOG_WARNING)) {
    char cs[24], ws[24], as[16];
    snprintf(cs, sizeof cs, "%ld", res->code);
    snprintf(ws, sizeof ws, "%lld", (long long)wait);
    snprintf(as, sizeof as, "%d", attempt + 1);
    aip_log_kv(AIPLAT_LOG_WARNING, "milvus busy, retrying", "operation", what,
               "code", cs, "message", msg, "attempt", as, "wait_ms", ws,
               (const char *)NULL);
  }
  return wait;
}

static aip_http_req post_req(const char *full, const aip_buf *body) {
  return (aip_http_req){.method = "POST",
                        .path = full,
                        .content_type = "application/json",
                        .body = body->data,
                        .body_len = body->len,
                        .accept = "application/json",
                        .max_retries = -1};
}

/* POST @body (JSON text) to API + @path. On success (Milvus code 0/200)
 * res->root holds the answer. On failure the status and message are set
 * (res->code keeps Milvus's code, or -1); res->root stays NULL. */
static aiplat_status call(vmilvus *m, const char *what, const char *path,
                          const aip_buf *body, mresult *res) {
  res->root = NULL;
  res->code = -1;
  char full[64];
  snprintf(full, sizeof full, "%s%s", API, path);
  for (int attempt = 0;; attempt++) {
    aip_http_req req = post_req(full, body);
    aip_http_resp resp = {0};
    aiplat_status st = aip_http_do(m->http, &m->base.err, &req, &resp);
    char msg[MSG_MAX];
    st = settle(m, &m->base.err, what, full, st, &resp, attempt, res, msg,
                sizeof msg);
    aip_http_resp_free(&resp);
    int64_t wait = retry_wait(m, st, res, attempt, what, msg);
    if (wait < 0) return st;
    sleep_ms(wait);
  }
}

/* Start a request body: {"collectionName":"C"[,"dbName":"D"] */
static bool body_start(const vmilvus *m, aip_buf *b) {
  bool ok = aip_buf_puts(b, "{\"collectionName\":\"") &&
            aip_buf_json_escape(b, m->collection, strlen(m->collection)) &&
            aip_buf_putc(b, '"');
  if (ok && m->db)
    ok = aip_buf_puts(b, ",\"dbName\":\"") &&
         aip_buf_json_escape(b, m->db, strlen(m->db)) && aip_buf_putc(b, '"');
  return ok;
}

static aiplat_status oom(aip_err *err) {
  return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "milvus: out of memory");
}

static aiplat_status protocol(aip_err *err, const char *what,
                              const char *detail) {
  return aip_fail(err, AIPLAT_ERR_PROTOCOL, "milvus: %s: unexpected answer: %s",
                  what, detail);
}

/* A simple request: the collection (and database) plus @extra members
 * (",\"k\":v..." or ""). */
static aiplat_status simple(vmilvus *m, const char *what, const char *path,
                            const char *extra, mresult *res) {
  res->root = NULL;
  res->code = -1;
  aip_buf b = {0};
  if (!body_start(m, &b) || !aip_buf_puts(&b, extra) ||
      !aip_buf_putc(&b, '}')) {
    aip_buf_free(&b);
    return oom(&m->base.err);
  }
  aiplat_status st = call(m, what, path, &b, res);
  aip_buf_free(&b);
  return st;
}

/* ---- collection -----------------------------------------------------------
 */

static void remember_dim(vmilvus *m, uint32_t d, bool checked) {
  pthread_mutex_lock(&m->mu);
  m->dim = d;
  m->checked = d && checked;
  m->seen = m->seen || d;
  pthread_mutex_unlock(&m->mu);
}

aiplat_status aip_milvus_read_has(aip_err *err, json_t *root, bool *has) {
  json_t *data = json_object_get(root, "data");
  json_t *h = json_is_object(data) ? json_object_get(data, "has") : data;
  if (!json_is_boolean(h))
    return protocol(err, "has collection", "no boolean \"has\"");
  *has = json_is_true(h);
  return AIPLAT_OK;
}

static aiplat_status has_collection(vmilvus *m, bool *has) {
  mresult r = {NULL, -1};
  aiplat_status st = simple(m, "has collection", "/collections/has", "", &r);
  if (st) return st;
  st = aip_milvus_read_has(&m->base.err, r.root, has);
  json_decref(r.root);
  return st;
}

static const char *field_name(json_t *f) {
  const char *n = json_string_value(json_object_get(f, "name"));
  return n ? n : json_string_value(json_object_get(f, "fieldName"));
}

static const char *field_type(json_t *f) {
  const char *t = json_string_value(json_object_get(f, "type"));
  return t ? t : json_string_value(json_object_get(f, "dataType"));
}

/* A number given as a JSON integer or a decimal string. */
static bool json_uint(json_t *v, uint64_t *out) {
  if (json_is_integer(v) && json_integer_value(v) >= 0) {
    *out = (uint64_t)json_integer_value(v);
    return true;
  }
  const char *s = json_string_value(v);
  if (!s || !*s) return false;
  char *end;
  unsigned long long x = strtoull(s, &end, 10);
  if (*end || !isdigit((unsigned char)s[0])) return false;
  *out = x;
  return true;
}

/* The dimension of a vector field: `params` [{key, value}] (2.4.x+),
 * `elementTypeParams` / `typeParams` {dim}, or the type "FloatVector(N)"
 * of the first 2.4 releases. 0 when none is found. */
static uint32_t field_dim(json_t *f) {
  uint64_t d = 0;
  json_t *p = json_object_get(f, "params");
  if (json_is_array(p)) {
    size_t i;
    json_t *kv;
    json_array_foreach(p, i, kv) {
      const char *k = json_string_value(json_object_get(kv, "key"));
      if (k && strcmp(k, "dim") == 0 &&
          json_uint(json_object_get(kv, "value"), &d))
        return d <= UINT32_MAX ? (uint32_t)d : 0;
    }
  }
  const char *keys[] = {"elementTypeParams", "typeParams"};
  for (size_t i = 0; i < 2; i++) {
    json_t *o = json_object_get(f, keys[i]);
    if (json_is_object(o) && json_uint(json_object_get(o, "dim"), &d))
      return d <= UINT32_MAX ? (uint32_t)d : 0;
  }
  const char *t = field_type(f);
  const char *paren = t ? strchr(t, '(') : NULL;
  if (paren) {
    char *end;
    unsigned long long x = strtoull(paren + 1, &end, 10);
    if (*end == ')' && x <= UINT32_MAX) return (uint32_t)x;
  }
  return 0;
}

static bool type_is(const char *t, const char *want) {
  size_t n = strlen(want);
  return t && strncasecmp(t, want, n) == 0 && (t[n] == '\0' || t[n] == '(');
}

aiplat_status aip_milvus_read_schema(aip_err *err, const char *collection,
                                     json_t *root, uint32_t *dim,
                                     bool *loaded) {
  const char *what = "describe collection";
  json_t *data = json_object_get(root, "data");
  if (!json_is_object(data)) return protocol(err, what, "no \"data\"");
  json_t *fields = json_object_get(data, "fields");
  if (!json_is_array(fields)) return protocol(err, what, "no \"fields\" list");
  static const struct {
    const char *name, *type;
  } need[] = {{"id", "VarChar"},
              {"vector", "FloatVector"},
              {"text", "VarChar"},
              {"source", "VarChar"},
              {"metadata", "JSON"}};
  *dim = 0;
  for (size_t k = 0; k < AIP_ARRAY_LEN(need); k++) {
    json_t *found = NULL, *f;
    size_t i;
    json_array_foreach(fields, i, f) {
      const char *n = field_name(f);
      if (n && strcmp(n, need[k].name) == 0) found = f;
    }
    if (!found || !type_is(field_type(found), need[k].type))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "milvus: collection %s exists with another schema: no "
                      "%s field \"%s\" (this library writes id, vector, text, "
                      "source, metadata; use another MILVUS_COLLECTION)",
                      collection, need[k].type, need[k].name);
    if (k == 0 && json_is_false(json_object_get(found, "primaryKey")))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "milvus: collection %s exists with another schema: "
                      "\"id\" is not its primary key",
                      collection);
    if (k == 1 && !(*dim = field_dim(found)))
      return protocol(err, what, "no dimension for the vector field");
  }
  json_t *idx = json_object_get(data, "indexes");
  if (json_is_array(idx)) {
    size_t i;
    json_t *x;
    json_array_foreach(idx, i, x) {
      const char *fn = json_string_value(json_object_get(x, "fieldName"));
      const char *mt = json_string_value(json_object_get(x, "metricType"));
      if (fn && strcmp(fn, "vector") == 0 && mt && strcasecmp(mt, "COSINE"))
        return aip_fail(err, AIPLAT_ERR_NOT_SUPPORTED,
                        "milvus: collection %s indexes its vectors with "
                        "metric %s; this library needs COSINE",
                        collection, mt);
    }
  }
  const char *state = json_string_value(json_object_get(data, "load"));
  /* Unknown or missing: assume loaded; a search answers code 101 if not. */
  *loaded = !state || strcmp(state, "LoadStateNotLoad") != 0;
  return AIPLAT_OK;
}

static aiplat_status describe(vmilvus *m, uint32_t *dim, bool *loaded) {
  mresult r = {NULL, -1};
  aiplat_status st =
      simple(m, "describe collection", "/collections/describe", "", &r);
  if (st) return st;
  st = aip_milvus_read_schema(&m->base.err, m->collection, r.root, dim, loaded);
  json_decref(r.root);
  return st;
}

static aiplat_status load(vmilvus *m) {
  mresult r = {NULL, -1};
  aiplat_status st = simple(m, "load collection", "/collections/load", "", &r);
  json_decref(r.root);
  return st;
}

static aiplat_status create(vmilvus *m, uint32_t dim) {
  char extra[1024];
  snprintf(extra, sizeof extra,
           ",\"schema\":{\"autoId\":false,\"enableDynamicField\":false,"
           "\"fields\":["
           "{\"fieldName\":\"id\",\"dataType\":\"VarChar\",\"isPrimary\":true,"
           "\"elementTypeParams\":{\"max_length\":\"%u\"}},"
           "{\"fieldName\":\"vector\",\"dataType\":\"FloatVector\","
           "\"elementTypeParams\":{\"dim\":\"%u\"}},"
           "{\"fieldName\":\"text\",\"dataType\":\"VarChar\","
           "\"elementTypeParams\":{\"max_length\":\"%u\"}},"
           "{\"fieldName\":\"source\",\"dataType\":\"VarChar\","
           "\"elementTypeParams\":{\"max_length\":\"%u\"}},"
           "{\"fieldName\":\"metadata\",\"dataType\":\"JSON\","
           "\"elementTypeParams\":{}}]},"
           "\"indexParams\":[{\"fieldName\":\"vector\",\"indexName\":"
           "\"vector\",\"metricType\":\"COSINE\"}]",
           AIP_VSTORE_MAX_ID, dim, AIP_VSTORE_MAX_TEXT, AIP_VSTORE_MAX_SOURCE);
  mresult r = {NULL, -1};
  aiplat_status st =
      simple(m, "create collection", "/collections/create", extra, &r);
  json_decref(r.root);
  if (st == AIPLAT_OK)
    aip_log_kv(AIPLAT_LOG_INFO, "milvus collection created", "collection",
               m->collection, (const char *)NULL);
  return st;
}

static aiplat_status dim_mismatch_err(vmilvus *m, aip_err *err, uint32_t have,
                                     uint32_t dim) {
  return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                  "vstore: dimension mismatch: Milvus collection %s holds "
                  "%u-dimensional vectors, this call has %u",
                  m->collection, have, dim);
}

static aiplat_status dim_mismatch(vmilvus *m, uint32_t have, uint32_t dim) {
  return dim_mismatch_err(m, &m->base.err, have, dim);
}

static aiplat_status m_ensure(aip_vstore *vs, uint32_t dim,
                              aip_vmetric metric) {
  (void)metric; /* cosine, checked by the wrapper */
  vmilvus *m = (vmilvus *)vs;
  bool has = false, loaded = true;
  uint32_t have = 0;
  aiplat_status st = has_collection(m, &has);
  if (st) return st;
  if (!has) {
    aiplat_status cst = create(m, dim);
    char why[AIP_ERRMSG_MAX] = "";
    if (cst) aip_err_copy(&m->base.err, why, sizeof why);
    /* Another client may have created it meanwhile: describe decides. */
    st = describe(m, &have, &loaded);
    if (st && cst) return aip_fail(&m->base.err, cst, "%s", why);
    if (st) return st;
  } else if ((st = describe(m, &have, &loaded))) {
    return st;
  }
  if (have != dim) return dim_mismatch(m, have, dim);
  if (!loaded && (st = load(m))) return st;
  remember_dim(m, dim, true);
  return AIPLAT_OK;
}

/* The dimension of the field "vector" of a described collection, without
 * checking the rest of the schema (a search may read a collection written
 * by something else); 0 when there is none. */
static uint32_t vector_dim(json_t *data) {
  json_t *fields = json_object_get(data, "fields"), *f;
  size_t i;
  json_array_foreach(fields, i, f) {
    const char *n = field_name(f);
    if (n && strcmp(n, "vector") == 0) return field_dim(f);
  }
  return 0;
}

/* Check `dim` against the collection's dimension before a write or a
 * search, so that a mismatch is refused here with both dimensions named.
 * The dimension is the one this handle's ensure set or an earlier call
 * described; when it is not known, or disagrees (the collection may have
 * been recreated since), the collection is described again. A write also
 * has the whole schema checked once. A missing collection is
 * AIPLAT_ERR_NOT_FOUND with *missing set. */
static aiplat_status match_dim(vmilvus *m, uint32_t dim, bool write,
                               bool *missing) {
  *missing = false;
  pthread_mutex_lock(&m->mu);
  bool known = m->dim == dim && (m->checked || !write);
  pthread_mutex_unlock(&m->mu);
  if (known) return AIPLAT_OK;
  bool loaded;
  uint32_t have = 0;
  mresult r = {NULL, -1};
  aiplat_status st =
      simple(m, "describe collection", "/collections/describe", "", &r);
  if (st == AIPLAT_ERR_NOT_FOUND && r.code == 100) {
    remember_dim(m, 0, false);
    *missing = true;
    return st;
  }
  if (st) return st;
  if (write) {
    st = aip_milvus_read_schema(&m->base.err, m->collection, r.root, &have,
                                &loaded);
  } else {
    json_t *data = json_object_get(r.root, "data");
    if (!json_is_object(data))
      st = protocol(&m->base.err, "describe collection", "no \"data\"");
    else
      have = vector_dim(data);
  }
  json_decref(r.root);
  if (st) return st;
  remember_dim(m, have, write);
  /* No dimension found (not a collection of ours): Milvus decides. */
  return !have || have == dim ? AIPLAT_OK : dim_mismatch(m, have, dim);
}

/* After a failed write or search: forget the dimension when Milvus says
 * the collection is gone or has another dimension, so that the next call
 * describes it again. */
static void forget_dim_after(vmilvus *m, aiplat_status st, long code) {
  if (st == AIPLAT_ERR_INVALID_ARGUMENT || code == 100)
    remember_dim(m, 0, false);
}

/* ---- writes ---------------------------------------------------------------
 */

static bool put_str_member(aip_buf *b, const char *key, const char *v) {
  if (!v) v = "";
  return aip_buf_printf(b, ",\"%s\":\"", key) &&
         aip_buf_json_escape(b, v, strlen(v)) && aip_buf_putc(b, '"');
}

static bool put_record(aip_buf *b, const aip_vrecord *r, uint32_t dim) {
  if (!aip_buf_puts(b, "{\"id\":\"") ||
      !aip_buf_json_escape(b, r->id, strlen(r->id)) ||
      !aip_buf_puts(b, "\",\"vector\":["))
    return false;
  for (uint32_t i = 0; i < dim; i++) {
    char num[32];
    int n =
        snprintf(num, sizeof num, i ? ",%.9g" : "%.9g", (double)r->vector[i]);
    if (!aip_buf_append(b, num, (size_t)n)) return false;
  }
  if (!aip_buf_putc(b, ']') || !put_str_member(b, "text", r->text) ||
      !put_str_member(b, "source", r->source) ||
      !aip_buf_puts(b, ",\"metadata\":"))
    return false;
  /* Validated as a JSON object by the wrapper; written back compact. */
  bool ok;
  if (r->metadata && r->metadata[0]) {
    json_t *j = json_loads(r->metadata, 0, NULL);
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    ok = t && aip_buf_puts(b, t);
    free(t);
    json_decref(j);
  } else {
    ok = aip_buf_puts(b, "{}");
  }
  return ok && aip_buf_putc(b, '}');
}

aiplat_status aip_milvus_read_upsert(aip_err *err, json_t *root, size_t n) {
  json_t *data = json_object_get(root, "data");
  json_t *cnt = json_object_get(data, "upsertCount");
  if (!cnt) cnt = json_object_get(data, "insertCount");
  uint64_t c;
  if (cnt && (!json_uint(cnt, &c) || c != n)) {
    char detail[96];
    snprintf(detail, sizeof detail, "%s records upserted of %zu sent",
             json_is_integer(cnt) ? "a different number of" : "no count of", n);
    return protocol(err, "upsert", detail);
  }
  return AIPLAT_OK;
}

/* One upsert request for recs[0..n). */
static aiplat_status upsert_batch(vmilvus *m, aip_buf *b, size_t n, size_t done,
                                  size_t total) {
  mresult r = {NULL, -1};
  aiplat_status st = call(m, "upsert", "/entities/upsert", b, &r);
  if (st) {
    forget_dim_after(m, st, r.code);
    if (done) {
      char msg[AIP_ERRMSG_MAX];
      aip_err_copy(&m->base.err, msg, sizeof msg);
      return aip_fail(&m->base.err, st,
                      "%s; %zu of the %zu records were stored before (an "
                      "upsert is safe to repeat)",
                      msg, done, total);
    }
    return st;
  }
  st = aip_milvus_read_upsert(&m->base.err, r.root, n);
  json_decref(r.root);
  (void)total;
  return st;
}

static aiplat_status m_insert(aip_vstore *vs, const aip_vrecord *recs, size_t n,
                              uint32_t dim) {
  vmilvus *m = (vmilvus *)vs;
  bool missing;
  aiplat_status st = match_dim(m, dim, true, &missing);
  pthread_mutex_lock(&m->mu);
  bool seen = m->seen;
  pthread_mutex_unlock(&m->mu);
  if (missing && !seen)
    return aip_fail(&m->base.err, AIPLAT_ERR_STATE,
                    "vstore: Milvus collection %s does not exist yet (ensure "
                    "it first)",
                    m->collection);
  if (st) return st; /* dropped: Milvus's NOT_FOUND */
  aip_buf b = {0};
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == start) {
      aip_buf_reset(&b);
      if (!body_start(m, &b) || !aip_buf_puts(&b, ",\"data\":[")) goto nomem;
    } else if (!aip_buf_putc(&b, ',')) {
      goto nomem;
    }
    if (!put_record(&b, &recs[i], dim)) goto nomem;
    bool last = i + 1 == n;
    if (last || i + 1 - start >= BATCH_ROWS || b.len >= BATCH_BYTES) {
      if (!aip_buf_puts(&b, "]}")) goto nomem;
      if ((st = upsert_batch(m, &b, i + 1 - start, start, n))) break;
      start = i + 1;
    }
  }
  aip_buf_free(&b);
  return st;
nomem:
  aip_buf_free(&b);
  return oom(&m->base.err);
}

int64_t aip_milvus_read_deleted(json_t *root) {
  uint64_t c;
  json_t *data = json_object_get(root, "data");
  return json_uint(json_object_get(data, "deleteCount"), &c) && c <= INT64_MAX
             ? (int64_t)c
             : -1; /* Milvus does not say */
}

static aiplat_status m_delete(aip_vstore *vs, const aip_vfilter *f,
                              int64_t *deleted) {
  vmilvus *m = (vmilvus *)vs;
  char *expr = NULL;
  aiplat_status st =
      aip_milvus_filter(&m->base.err, "source", f->match, f->source, &expr);
  if (st) return st;
  if (!expr) return oom(&m->base.err);
  aip_buf extra = {0};
  bool ok = aip_buf_puts(&extra, ",\"filter\":\"") &&
            aip_buf_json_escape(&extra, expr, strlen(expr)) &&
            aip_buf_putc(&extra, '"');
  free(expr);
  if (!ok) {
    aip_buf_free(&extra);
    return oom(&m->base.err);
  }
  mresult r = {NULL, -1};
  st = simple(m, "delete", "/entities/delete", extra.data, &r);
  aip_buf_free(&extra);
  if (st == AIPLAT_ERR_NOT_FOUND && r.code == 100) {
    *deleted = 0; /* no collection, nothing to delete */
    return AIPLAT_OK;
  }
  if (st) return st;
  *deleted = aip_milvus_read_deleted(r.root);
  json_decref(r.root);
  return AIPLAT_OK;
}

/* ---- reads ----------------------------------------------------------------
 */

/* A query (exact, by filter): the rows of "data" in *rows (borrowed from
 * res->root, which the caller releases). */
static aiplat_status query(vmilvus *m, const char *what, const char *filter,
                           const char *output, size_t limit, mresult *res,
                           json_t **rows) {
  res->root = NULL;
  res->code = -1;
  aip_buf extra = {0};
  bool ok = aip_buf_puts(&extra, ",\"filter\":\"") &&
            aip_buf_json_escape(&extra, filter, strlen(filter)) &&
            aip_buf_printf(&extra,
                           "\",\"outputFields\":[\"%s\"],\"limit\":%zu,"
                           "\"consistencyLevel\":\"Strong\"",
                           output, limit);
  if (!ok) {
    aip_buf_free(&extra);
    return oom(&m->base.err);
  }
  aiplat_status st = simple(m, what, "/entities/query", extra.data, res);
  aip_buf_free(&extra);
  if (st) return st;
  *rows = json_object_get(res->root, "data");
  if (!json_is_array(*rows)) {
    json_decref(res->root);
    res->root = NULL;
    return protocol(&m->base.err, what, "\"data\" is not a list");
  }
  return AIPLAT_OK;
}

aiplat_status aip_milvus_read_count(aip_err *err, json_t *rows, uint64_t *out) {
  uint64_t c = 0;
  if (json_array_size(rows) != 1 ||
      !json_uint(json_object_get(json_array_get(rows, 0), "count(*)"), &c))
    return protocol(err, "count", "no \"count(*)\"");
  *out = c;
  return AIPLAT_OK;
}

static aiplat_status m_count(aip_vstore *vs, uint64_t *out) {
  vmilvus *m = (vmilvus *)vs;
  mresult r = {NULL, -1};
  json_t *rows = NULL;
  /* limit 0: a count takes no limit (older versions add one otherwise);
   * the filter is required by the first 2.4 releases. */
  aiplat_status st = query(m, "count", "id != \"\"", "count(*)", 0, &r, &rows);
  if (st == AIPLAT_ERR_NOT_FOUND && r.code == 100) {
    *out = 0;
    return AIPLAT_OK;
  }
  if (st) return st;
  st = aip_milvus_read_count(&m->base.err, rows, out);
  json_decref(r.root);
  return st;
}

aiplat_status aip_milvus_read_ids(aip_err *err, json_t *rows, size_t max,
                                  char ***ids, size_t *n) {
  aiplat_status st = AIPLAT_OK;
  size_t k = json_array_size(rows);
  if (k > max)
    return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "vstore: source has more than %zu records", max);
  const char **strs = calloc(k ? k : 1, sizeof *strs);
  size_t *lens = calloc(k ? k : 1, sizeof *lens);
  char(*nums)[24] = calloc(k ? k : 1, sizeof *nums);
  if (!strs || !lens || !nums) {
    st = oom(err);
    goto out;
  }
  for (size_t i = 0; i < k; i++) {
    json_t *id = json_object_get(json_array_get(rows, i), "id");
    if (json_is_string(id)) {
      strs[i] = json_string_value(id);
      lens[i] = json_string_length(id);
    } else if (json_is_integer(id)) {
      lens[i] = (size_t)snprintf(nums[i], sizeof nums[i], "%lld",
                                 (long long)json_integer_value(id));
      strs[i] = nums[i];
    } else {
      st = protocol(err, "list a source's ids", "a row without an id");
      goto out;
    }
  }
  if (k && !(*ids = aip_vstrings_pack(strs, lens, k))) {
    st = oom(err);
    goto out;
  }
  *n = k;
out:
  free(strs);
  free(lens);
  free(nums);
  return st;
}

static aiplat_status m_source_ids(aip_vstore *vs, const char *source,
                                  size_t max, char ***ids, size_t *n) {
  vmilvus *m = (vmilvus *)vs;
  char *expr = NULL;
  aiplat_status st = aip_milvus_filter(&m->base.err, "source", AIP_VMATCH_EXACT,
                                       source, &expr);
  if (st) return st;
  if (!expr) return oom(&m->base.err);
  mresult r = {NULL, -1};
  json_t *rows = NULL;
  st = query(m, "list a source's ids", expr, "id", max + 1, &r, &rows);
  free(expr);
  if (st == AIPLAT_ERR_NOT_FOUND && r.code == 100) return AIPLAT_OK;
  if (st) return st;
  st = aip_milvus_read_ids(&m->base.err, rows, max, ids, n);
  json_decref(r.root);
  return st;
}

/* The hit's id as text: a string, or a number (an Int64 primary key). */
static bool hit_id(json_t *v, const char **s, size_t *len, char num[24]) {
  if (json_is_string(v)) {
    *s = json_string_value(v);
    *len = json_string_length(v);
    return true;
  }
  if (json_is_integer(v)) {
    *len = (size_t)snprintf(num, 24, "%lld", (long long)json_integer_value(v));
    *s = num;
    return true;
  }
  return false;
}

static void hit_str(json_t *o, const char *key, const char **s, size_t *len) {
  json_t *v = json_object_get(o, key);
  *s = json_is_string(v) ? json_string_value(v) : "";
  *len = json_is_string(v) ? json_string_length(v) : 0;
}

static int hit_cmp(const void *a, const void *b) {
  const aip_vhit_src *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
  int c = memcmp(x->id, y->id, n);
  if (c) return c;
  return x->id_len < y->id_len ? -1 : x->id_len > y->id_len;
}

/* Turn search rows into packed hits, best first, ties by id. */
static aiplat_status parse_hits(aip_err *err, json_t *rows, size_t limit,
                                aip_vhit **hits, size_t *n) {
  const char *what = "search";
  size_t k = json_array_size(rows);
  if (!k) return AIPLAT_OK;
  aip_vhit_src *src = calloc(k, sizeof *src);
  char(*nums)[24] = calloc(k, sizeof *nums);
  char **metas = calloc(k, sizeof *metas);
  aiplat_status st = AIPLAT_OK;
  if (!src || !nums || !metas) {
    st = oom(err);
    goto out;
  }
  for (size_t i = 0; i < k; i++) {
    json_t *o = json_array_get(rows, i);
    if (!json_is_object(o)) {
      st = protocol(err, what, "a result that is not an object");
      goto out;
    }
    json_t *sc = json_object_get(o, "distance");
    if (!sc) sc = json_object_get(o, "score");
    double score = json_number_value(sc);
    if (!json_is_number(sc) || !isfinite(score)) {
      st = protocol(err, what, "a result without a numeric \"distance\"");
      goto out;
    }
    if (!hit_id(json_object_get(o, "id"), &src[i].id, &src[i].id_len,
                nums[i])) {
      st = protocol(err, what, "a result without an \"id\"");
      goto out;
    }
    src[i].score = (float)score;
    hit_str(o, "text", &src[i].text, &src[i].text_len);
    hit_str(o, "source", &src[i].source, &src[i].source_len);
    json_t *md = json_object_get(o, "metadata");
    if (json_is_object(md)) {
      if (!(metas[i] = json_dumps(md, JSON_COMPACT))) {
        st = oom(err);
        goto out;
      }
      src[i].metadata = metas[i];
      src[i].metadata_len = strlen(metas[i]);
    } else {
      hit_str(o, "metadata", &src[i].metadata, &src[i].metadata_len);
    }
  }
  qsort(src, k, sizeof *src, hit_cmp);
  if (k > limit) k = limit;
  if (!(*hits = aip_vhits_pack(src, k))) {
    st = oom(err);
    goto out;
  }
  *n = k;
out:
  if (metas)
    for (size_t i = 0; i < json_array_size(rows); i++) free(metas[i]);
  free(metas);
  free(nums);
  free(src);
  return st;
}

aiplat_status aip_milvus_read_hits(aip_err *err, json_t *root, size_t limit,
                                   aip_vhit **hits, size_t *n) {
  json_t *rows = json_object_get(root, "data");
  if (!json_is_array(rows))
    return protocol(err, "search", "\"data\" is not a list");
  /* One query vector: a flat list of hits, or (some versions, several
   * vectors) a list holding one list per vector. */
  if (json_is_array(json_array_get(rows, 0))) rows = json_array_get(rows, 0);
  return parse_hits(err, rows, limit, hits, n);
}

/* The search request's body. */
static aiplat_status search_body(vmilvus *m, aip_err *err,
                                 const float *query_vec, uint32_t dim,
                                 size_t limit, const aip_vfilter *filter,
                                 aip_buf *b) {
  bool ok = body_start(m, b) && aip_buf_puts(b, ",\"data\":[[");
  for (uint32_t i = 0; ok && i < dim; i++)
    ok = aip_buf_printf(b, i ? ",%.9g" : "%.9g", (double)query_vec[i]);
  ok = ok && aip_buf_printf(b,
                            "]],\"annsField\":\"vector\",\"limit\":%zu,"
                            "\"outputFields\":[\"text\",\"source\","
                            "\"metadata\"],\"searchParams\":{\"metricType\":"
                            "\"COSINE\"}",
                            limit);
  if (ok && filter && filter->match != AIP_VMATCH_ANY) {
    char *expr = NULL;
    aiplat_status fst =
        aip_milvus_filter(err, "source", filter->match, filter->source, &expr);
    if (fst || !expr) return fst ? fst : oom(err);
    ok = aip_buf_puts(b, ",\"filter\":\"") &&
         aip_buf_json_escape(b, expr, strlen(expr)) && aip_buf_putc(b, '"');
    free(expr);
  }
  if (!ok || !aip_buf_putc(b, '}')) return oom(err);
  return AIPLAT_OK;
}

/* ---- the asynchronous search ------------------------------------------------
 *
 * The blocking search's steps, each request on the execution core:
 * describe the collection when its dimension is not known, search, and
 * when Milvus says the collection is not loaded, load it and search once
 * more. Milvus's busy codes are retried after a backoff on a loop timer,
 * within the call's deadline. Everything after the start runs on the loop
 * thread. */

enum { PH_DESCRIBE, PH_SEARCH, PH_LOAD };

typedef struct msearch {
  aip_model_call mc; /* the request in flight; its err is this search's */
  vmilvus *m;
  aip_buf search, plain; /* the search body; the collection alone */
  uint32_t dim;
  size_t limit;
  int phase, attempt;
  bool reloaded;
  aip_timer wait;
  aip_vstore_search_done done;
  void *ud;
} msearch;

static const char *phase_what(int phase) {
  return phase == PH_DESCRIBE ? "describe collection"
         : phase == PH_LOAD   ? "load collection"
                              : "search";
}

static const char *phase_path(int phase) {
  return phase == PH_DESCRIBE ? "/v2/vectordb/collections/describe"
         : phase == PH_LOAD   ? "/v2/vectordb/collections/load"
                              : "/v2/vectordb/entities/search";
}

static void msearch_free(msearch *s) {
  aip_model_call_destroy(&s->mc);
  aip_buf_free(&s->search);
  aip_buf_free(&s->plain);
  free(s);
}

static void msearch_end(msearch *s, aiplat_status st, aip_vhit *hits,
                        size_t n) {
  char msg[AIP_ERRMSG_MAX] = "";
  if (st) aip_err_copy(&s->mc.err, msg, sizeof msg);
  s->done(st, msg, hits, n, s->ud);
  msearch_free(s);
}

/* Send the request of the current phase. @err: the caller's record at the
 * start, the search's own later. */
static aiplat_status msearch_send(msearch *s, aip_err *err) {
  aip_http_req req =
      post_req(phase_path(s->phase), s->phase == PH_SEARCH ? &s->search
                                                           : &s->plain);
  return aip_model_call_start(&s->mc, err, &req);
}

/* Loop thread: go on with the next request, or end with its failure. */
static void msearch_next(msearch *s) {
  aiplat_status st = msearch_send(s, &s->mc.err);
  if (st) msearch_end(s, st, NULL, 0);
}

static void msearch_waited(aip_timer *t) {
  msearch *s = (msearch *)(void *)((char *)t - offsetof(msearch, wait));
  msearch_next(s);
}

static void msearch_phase(msearch *s, int phase) {
  s->phase = phase;
  s->attempt = 0;
  msearch_next(s);
}

/* The answer to the describe: the collection's dimension. */
static void msearch_described(msearch *s, aiplat_status st, mresult *r) {
  vmilvus *m = s->m;
  if (st == AIPLAT_ERR_NOT_FOUND && r->code == 100) {
    remember_dim(m, 0, false);
    msearch_end(s, AIPLAT_OK, NULL, 0); /* no collection: no hits */
    return;
  }
  if (st) {
    msearch_end(s, st, NULL, 0);
    return;
  }
  json_t *data = json_object_get(r->root, "data");
  uint32_t have = 0;
  if (!json_is_object(data))
    st = protocol(&s->mc.err, "describe collection", "no \"data\"");
  else
    have = vector_dim(data);
  json_decref(r->root);
  if (!st) remember_dim(m, have, false);
  /* No dimension found (not a collection of ours): Milvus decides. */
  if (!st && have && have != s->dim)
    st = dim_mismatch_err(m, &s->mc.err, have, s->dim);
  if (st)
    msearch_end(s, st, NULL, 0);
  else
    msearch_phase(s, PH_SEARCH);
}

static void msearch_searched(msearch *s, aiplat_status st, mresult *r) {
  vmilvus *m = s->m;
  if (st == AIPLAT_ERR_STATE && r->code == 101 && !s->reloaded) {
    /* Released behind our back (or never loaded): load once, retry. */
    aip_log_kv(AIPLAT_LOG_WARNING, "milvus collection not loaded, loading",
               "collection", m->collection, (const char *)NULL);
    s->reloaded = true;
    msearch_phase(s, PH_LOAD);
    return;
  }
  if (st) forget_dim_after(m, st, r->code);
  if (st == AIPLAT_ERR_NOT_FOUND && r->code == 100) {
    msearch_end(s, AIPLAT_OK, NULL, 0); /* dropped meanwhile: no hits */
    return;
  }
  aip_vhit *hits = NULL;
  size_t n = 0;
  if (!st) {
    st = aip_milvus_read_hits(&s->mc.err, r->root, s->limit, &hits, &n);
    json_decref(r->root);
  }
  msearch_end(s, st, hits, n);
}

static void msearch_answer(aip_model_call *mc) {
  msearch *s = (msearch *)(void *)mc;
  vmilvus *m = s->m;
  const char *what = phase_what(s->phase);
  mresult r;
  char msg[MSG_MAX];
  aiplat_status st = settle(m, &mc->err, what, phase_path(s->phase), mc->st,
                            &mc->resp, s->attempt, &r, msg, sizeof msg);
  aip_http_resp_free(&mc->resp);
  memset(&mc->resp, 0, sizeof mc->resp);
  int64_t wait = retry_wait(m, st, &r, s->attempt, what, msg);
  int64_t deadline = aip_call_deadline_ms(mc->call);
  if (wait >= 0 && (deadline <= 0 || aip_now_ms() + wait < deadline)) {
    s->attempt++;
    aip_timer_start(&s->wait, aip_now_ns() + wait * 1000000);
    return;
  }
  switch (s->phase) {
    case PH_DESCRIBE:
      msearch_described(s, st, &r);
      break;
    case PH_LOAD:
      json_decref(r.root);
      if (st)
        msearch_end(s, st, NULL, 0);
      else
        msearch_phase(s, PH_SEARCH);
      break;
    default:
      msearch_searched(s, st, &r);
  }
}

static aiplat_status m_search_async(aip_vstore *vs, aip_err *err,
                                    const float *query_vec, uint32_t dim,
                                    size_t limit, const aip_vfilter *filter,
                                    aiplat_call *call,
                                    aip_vstore_search_done done, void *ud) {
  vmilvus *m = (vmilvus *)vs;
  msearch *s = calloc(1, sizeof *s);
  if (!s) return oom(err);
  aip_model_call_init(&s->mc, &m->calls, call, msearch_answer);
  s->m = m;
  s->dim = dim;
  s->limit = limit;
  s->done = done;
  s->ud = ud;
  s->wait.fn = msearch_waited;
  aiplat_status st =
      search_body(m, err, query_vec, dim, limit, filter, &s->search);
  if (!st && (!body_start(m, &s->plain) || !aip_buf_putc(&s->plain, '}')))
    st = oom(err);
  if (st) {
    msearch_free(s);
    return st;
  }
  pthread_mutex_lock(&m->mu);
  bool known = m->dim == dim;
  pthread_mutex_unlock(&m->mu);
  s->phase = known ? PH_SEARCH : PH_DESCRIBE;
  if ((st = msearch_send(s, err))) msearch_free(s);
  return st;
}

/* ---- the blocking search: the asynchronous one, waited for ---------------- */

typedef struct msearch_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool ended;
  aiplat_status st;
  char msg[AIP_ERRMSG_MAX];
  aip_vhit *hits;
  size_t n;
} msearch_wait;

static void msearch_waited_for(aiplat_status st, const char *message,
                               aip_vhit *hits, size_t n, void *ud) {
  msearch_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  w->st = st;
  snprintf(w->msg, sizeof w->msg, "%s", message);
  w->hits = hits;
  w->n = n;
  w->ended = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static aiplat_status m_search(aip_vstore *vs, const float *query_vec,
                              uint32_t dim, size_t limit,
                              const aip_vfilter *filter, aip_vhit **hits,
                              size_t *n) {
  vmilvus *m = (vmilvus *)vs;
  if (aip_loop_on_thread())
    return aip_fail(&m->base.err, AIPLAT_ERR_INTERNAL,
                    "milvus: a blocking search cannot run on the event loop "
                    "thread (use the asynchronous form)");
  msearch_wait w = {.ended = false};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  aiplat_status st = m_search_async(vs, &m->base.err, query_vec, dim, limit,
                                    filter, NULL, msearch_waited_for, &w);
  if (!st) {
    pthread_mutex_lock(&w.mu);
    while (!w.ended) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    st = w.st;
    if (st) {
      aip_fail(&m->base.err, st, "%s", w.msg);
    } else {
      *hits = w.hits;
      *n = w.n;
    }
  }
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return st;
}

/* ---- handle ---------------------------------------------------------------
 */

static void m_close(aip_vstore *vs) {
  vmilvus *m = (vmilvus *)vs;
  aip_http_free(m->http);
  free(m->url);
  free(m->collection);
  free(m->db);
  pthread_mutex_destroy(&m->mu);
  aip_err_destroy(&m->base.err);
  free(m);
  aip_global_unref();
}

static const aip_vstore_ops milvus_ops = {
    .name = "milvus",
    .ensure = m_ensure,
    .insert = m_insert,
    .search = m_search,
    .search_async = m_search_async,
    .delete_source = m_delete,
    .count = m_count,
    .source_ids = m_source_ids,
    .close = m_close,
};

const char *aip_vstore_milvus_url(aip_vstore *vs) {
  return vs && vs->ops == &milvus_ops ? ((vmilvus *)vs)->url : NULL;
}

/* ---- configuration --------------------------------------------------------
 */

static aiplat_status cfg_error(aiplat_config *cfg, aiplat_status st) {
  char msg[AIP_ERRMSG_MAX];
  aiplat_config_last_error(cfg, msg, sizeof msg);
  return aip_fail(NULL, st, "milvus: %s", msg);
}

/* Milvus names: a letter or underscore, then letters, digits, underscores;
 * at most 255 bytes. */
static bool valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 255 || isdigit((unsigned char)s[0]))
    return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

static bool valid_host(const char *h) {
  if (!*h || strlen(h) > 253) return false;
  for (const char *p = h; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr(".-_:[]%", *p)) return false;
  return true;
}

/* The base URL from MILVUS_HOST (a host name, an IP literal, or a whole
 * http(s):// URL), MILVUS_PORT and MILVUS_TLS. */
static aiplat_status make_url(aiplat_config *cfg, char **out) {
  const char *host = NULL;
  int64_t port = 0;
  bool tls = false;
  aiplat_status st;
  if ((st = aiplat_config_require(cfg, "MILVUS_HOST", &host)) ||
      (st = aiplat_config_get_int(cfg, "MILVUS_PORT", 1, 65535, &port)) ||
      (st = aiplat_config_get_bool(cfg, "MILVUS_TLS", &tls)))
    return cfg_error(cfg, st);
  if (strncasecmp(host, "http://", 7) == 0 ||
      strncasecmp(host, "https://", 8) == 0) {
    if (tls && strncasecmp(host, "http://", 7) == 0)
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "MILVUS_HOST: an http:// URL while MILVUS_TLS is true");
    *out = aip_strdup(host); /* the URL decides; MILVUS_PORT is not used */
    if (*out && strchr(host, '@'))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "MILVUS_HOST: put credentials in MILVUS_TOKEN, not in "
                      "the URL");
  } else {
    if (!valid_host(host))
      return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                      "MILVUS_HOST: \"%.100s\" is not a host name, an IP "
                      "address or an http(s):// URL",
                      host);
    bool v6 = strchr(host, ':') && host[0] != '[';
    *out = aip_sprintf("%s://%s%s%s:%lld", tls ? "https" : "http",
                       v6 ? "[" : "", host, v6 ? "]" : "", (long long)port);
  }
  return *out ? AIPLAT_OK
              : aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "milvus: out of memory");
}

/* The HTTP_* settings (as every model client reads them). */
static aiplat_status http_settings(vmilvus *m, aiplat_config *cfg) {
  aip_http_settings s;
  aip_http_get_settings(m->http, &s);
  const struct {
    const char *name;
    int64_t *dst;
  } durs[] = {{"HTTP_CONNECT_TIMEOUT", &s.connect_timeout_ms},
              {"HTTP_TIMEOUT", &s.timeout_ms},
              {"HTTP_RETRY_BACKOFF", &s.retry_base_ms},
              {"HTTP_RETRY_MAX_WAIT", &s.retry_max_wait_ms}};
  aiplat_status st;
  for (size_t i = 0; i < AIP_ARRAY_LEN(durs); i++)
    if ((st = aiplat_config_get_duration_ms(cfg, durs[i].name, durs[i].dst)))
      return cfg_error(cfg, st);
  if (s.connect_timeout_ms < 1 || s.timeout_ms < 1)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "milvus: HTTP_CONNECT_TIMEOUT and HTTP_TIMEOUT must be "
                    "more than 0");
  int64_t n;
  if ((st = aiplat_config_get_int(cfg, "HTTP_MAX_RETRIES", 0, 100, &n)))
    return cfg_error(cfg, st);
  s.max_retries = (int)n;
  if ((st = aiplat_config_get_int(cfg, "HTTP_MAX_RESPONSE_BYTES", 1024,
                                  INT64_C(17179869184), &n)))
    return cfg_error(cfg, st);
  s.max_response_bytes = n;
  const char *ca = NULL;
  if ((st = aiplat_config_get_string(cfg, "HTTP_CA_FILE", &ca)))
    return cfg_error(cfg, st);
  if ((st = aip_http_set_ca_file(m->http, NULL, ca)) ||
      (st = aip_http_set_settings(m->http, NULL, &s)))
    return st;
  m->max_retries = s.max_retries;
  m->backoff_ms = s.retry_base_ms;
  m->max_wait_ms = s.retry_max_wait_ms;
  return AIPLAT_OK;
}

static aiplat_status configure(vmilvus *m, aiplat_config *cfg) {
  const char *coll = NULL, *db = NULL, *token = NULL;
  aiplat_status st;
  if ((st = make_url(cfg, &m->url))) return st;
  if (aip_http_set_url(m->http, NULL, m->url) != AIPLAT_OK)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG, "MILVUS_HOST: invalid URL %s",
                    m->url);
  if ((st = aiplat_config_require(cfg, "MILVUS_COLLECTION", &coll)) ||
      (st = aiplat_config_get_string(cfg, "MILVUS_DB", &db)) ||
      (st = aiplat_config_get_string(cfg, "MILVUS_TOKEN", &token)))
    return cfg_error(cfg, st);
  if (!valid_name(coll))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "MILVUS_COLLECTION: \"%.100s\" is not a Milvus name "
                    "(letters, digits and _, not starting with a digit, at "
                    "most 255)",
                    coll);
  if (db && *db && !valid_name(db))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "MILVUS_DB: \"%.100s\" is not a Milvus name", db);
  if (token && strpbrk(token, "\r\n"))
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "MILVUS_TOKEN: contains a line break");
  if (!(m->collection = aip_strdup(coll)) ||
      (db && *db && !(m->db = aip_strdup(db))))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "milvus: out of memory");
  if ((st = aip_http_set_api_key(m->http, NULL, token))) return st;
  return http_settings(m, cfg);
}

aiplat_status aip_vstore_milvus_open(aip_vstore **out, aiplat_config *cfg) {
  if (!out || !cfg)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "milvus: NULL argument");
  *out = NULL;
  aiplat_status st = aip_global_ref();
  if (st) return st;
  vmilvus *m = calloc(1, sizeof *m);
  if (!m || !(m->http = aip_http_new("milvus"))) {
    free(m);
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "milvus: out of memory");
  }
  m->base.ops = &milvus_ops;
  aip_err_init(&m->base.err);
  m->calls.http = m->http;
  m->calls.component = "milvus";
  pthread_mutex_init(&m->mu, NULL);
  if ((st = configure(m, cfg))) {
    m_close(&m->base);
    return st;
  }
  *out = &m->base;
  return AIPLAT_OK;
}
