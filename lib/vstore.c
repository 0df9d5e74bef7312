/* Vector-store interface: argument validation shared by every backend,
 * dispatch, result packing, CRC-32C, backend selection. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "call_internal.h"
#include "utf8.h"
#include "vstore.h"

/* ---- CRC-32C ---------------------------------------------------------------
 * Castagnoli polynomial, reflected (0x82F63B78), as iSCSI, ext4 and SSE4.2
 * use it. Slicing-by-8 in software; the crc32 instruction when present. */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] =
          (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t aip_crc32c_sw(uint32_t crc, const void *data, size_t len) {
  pthread_once(&crc_once, crc_init);
  const unsigned char *p = data;
  crc = ~crc;
  while (len >= 8) {
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                         (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                  (uint32_t)p[7] << 24;
    crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
          crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
          crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
          crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc,
                                                            const void *data,
                                                            size_t len) {
  const unsigned char *p = data;
  uint64_t c = ~crc;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}
#endif

uint32_t aip_crc32c(uint32_t crc, const void *data, size_t len) {
  pthread_once(&crc_once, crc_init);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (crc_hw) return crc32c_hw(crc, data, len);
#endif
  return aip_crc32c_sw(crc, data, len);
}

/* ---- validation ------------------------------------------------------------
 */

static aiplat_status check_vector(aip_err *e, const char *what, const float *v,
                                  uint32_t dim) {
  if (!v)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "vstore: %s: no vector",
                    what);
  double ss = 0;
  for (uint32_t i = 0; i < dim; i++) {
    if (!isfinite(v[i]))
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "vstore: %s: element %u is not a finite number", what, i);
    ss += (double)v[i] * v[i];
  }
  if (!(ss > 0))
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: %s: a zero vector has no cosine similarity", what);
  return AIPLAT_OK;
}

static aiplat_status check_dim(aip_err *e, uint32_t dim) {
  if (dim == 0 || dim > AIP_VSTORE_MAX_DIM)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: dimension %u is outside 1..%u", dim,
                    AIP_VSTORE_MAX_DIM);
  return AIPLAT_OK;
}

static aiplat_status check_text(aip_err *e, const char *what, size_t index,
                                const char *field, const char *s, size_t max) {
  if (!s) return AIPLAT_OK;
  size_t len = strnlen(s, (size_t)max + 1);
  if (len > max)
    return aip_fail(e, AIPLAT_ERR_TOO_LARGE,
                    "vstore: %s %zu: %s is longer than %zu bytes", what, index,
                    field, max);
  if (!aip_utf8_valid(s, len))
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: %s %zu: %s is not valid UTF-8", what, index,
                    field);
  return AIPLAT_OK;
}

static aiplat_status check_record(aip_err *e, const aip_vrecord *r, size_t i,
                                  uint32_t dim) {
  if (!r->id || !r->id[0])
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: record %zu: the id is empty", i);
  aiplat_status st;
  if ((st = check_text(e, "record", i, "id", r->id, AIP_VSTORE_MAX_ID)) ||
      (st = check_text(e, "record", i, "source", r->source,
                       AIP_VSTORE_MAX_SOURCE)) ||
      (st = check_text(e, "record", i, "text", r->text, AIP_VSTORE_MAX_TEXT)) ||
      (st = check_text(e, "record", i, "metadata", r->metadata,
                       AIP_VSTORE_MAX_METADATA)))
    return st;
  char what[48];
  snprintf(what, sizeof what, "record %zu", i);
  if ((st = check_vector(e, what, r->vector, dim))) return st;
  if (r->metadata && r->metadata[0]) {
    json_error_t je;
    json_t *j = json_loads(r->metadata, 0, &je);
    bool obj = j && json_is_object(j);
    json_decref(j);
    if (!obj)
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "vstore: record %zu: metadata is not a JSON object%s%s",
                      i, j ? "" : ": ", j ? "" : je.text);
  }
  return AIPLAT_OK;
}

static aiplat_status check_filter(aip_err *e, const aip_vfilter *f,
                                  bool for_delete) {
  if (!f || f->match == AIP_VMATCH_ANY) {
    if (for_delete)
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "vstore: delete needs a source to match");
    return AIPLAT_OK;
  }
  if (f->match != AIP_VMATCH_EXACT && f->match != AIP_VMATCH_PREFIX)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: unknown source match mode %d", (int)f->match);
  if (!f->source)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: the source filter has no value");
  aiplat_status st =
      check_text(e, "filter", 0, "source", f->source, AIP_VSTORE_MAX_SOURCE);
  if (st) return st;
  if (for_delete && f->match == AIP_VMATCH_PREFIX && !f->source[0])
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: an empty source prefix would delete every record");
  return AIPLAT_OK;
}

/* ---- dispatch --------------------------------------------------------------
 */

#define NEED_HANDLE(vs)                                  \
  do {                                                   \
    if (!(vs))                                           \
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, \
                      "vstore: NULL handle");            \
  } while (0)

aiplat_status aip_vstore_ensure(aip_vstore *vs, uint32_t dim,
                                aip_vmetric metric) {
  NEED_HANDLE(vs);
  aiplat_status st = check_dim(&vs->err, dim);
  if (st) return st;
  if (metric != AIP_VMETRIC_COSINE)
    return aip_fail(&vs->err, AIPLAT_ERR_NOT_SUPPORTED,
                    "vstore: metric %d is not supported (cosine only)",
                    (int)metric);
  return vs->ops->ensure(vs, dim, metric);
}

aiplat_status aip_vstore_insert(aip_vstore *vs, const aip_vrecord *recs,
                                size_t n, uint32_t dim) {
  NEED_HANDLE(vs);
  if (n == 0) return AIPLAT_OK;
  if (!recs)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: no records");
  if (n > AIP_VSTORE_MAX_BATCH)
    return aip_fail(&vs->err, AIPLAT_ERR_TOO_LARGE,
                    "vstore: %zu records in one insert, over %u", n,
                    AIP_VSTORE_MAX_BATCH);
  aiplat_status st = check_dim(&vs->err, dim);
  for (size_t i = 0; !st && i < n; i++)
    st = check_record(&vs->err, &recs[i], i, dim);
  if (st) return st;
  return vs->ops->insert(vs, recs, n, dim);
}

aiplat_status aip_vstore_search(aip_vstore *vs, const float *query,
                                uint32_t dim, size_t limit,
                                const aip_vfilter *filter, aip_vhit **hits,
                                size_t *n) {
  NEED_HANDLE(vs);
  if (!hits || !n)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: search needs somewhere to put the results");
  *hits = NULL;
  *n = 0;
  aiplat_status st = check_dim(&vs->err, dim);
  if (st || (st = check_vector(&vs->err, "query", query, dim)) ||
      (st = check_filter(&vs->err, filter, false)))
    return st;
  if (limit == 0 || limit > AIP_VSTORE_MAX_LIMIT)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: limit %zu is outside 1..%u", limit,
                    AIP_VSTORE_MAX_LIMIT);
  return vs->ops->search(vs, query, dim, limit, filter, hits, n);
}

aiplat_status aip_vstore_search_async(aip_vstore *vs, aip_err *err,
                                      const float *query, uint32_t dim,
                                      size_t limit, const aip_vfilter *filter,
                                      aiplat_call *call,
                                      aip_vstore_search_done done, void *ud) {
  NEED_HANDLE(vs);
  if (!done)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: search needs a completion callback");
  aiplat_status st = check_dim(err, dim);
  if (st || (st = check_vector(err, "query", query, dim)) ||
      (st = check_filter(err, filter, false)))
    return st;
  if (limit == 0 || limit > AIP_VSTORE_MAX_LIMIT)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: limit %zu is outside 1..%u", limit,
                    AIP_VSTORE_MAX_LIMIT);
  if (aiplat_call_cancelled(call))
    return aip_fail(err, AIPLAT_ERR_CANCELLED,
                    "vstore: search: cancelled before it started");
  int64_t deadline = aip_call_deadline_ms(call);
  if (deadline != 0 && deadline <= aip_now_ms())
    return aip_fail(err, AIPLAT_ERR_TIMEOUT,
                    "vstore: search: timed out: the call's deadline passed "
                    "before it started");
  if (vs->ops->search_async)
    return vs->ops->search_async(vs, err, query, dim, limit, filter, call,
                                 done, ud);
  /* No network (the local store): search now, on this thread. */
  aip_vhit *hits = NULL;
  size_t n = 0;
  char msg[AIP_ERRMSG_MAX] = "";
  st = vs->ops->search(vs, query, dim, limit, filter, &hits, &n);
  if (st) aiplat_error_last(msg, sizeof msg);
  done(st, msg, st ? NULL : hits, st ? 0 : n, ud);
  if (st) free(hits);
  return AIPLAT_OK;
}

aiplat_status aip_vstore_delete_source(aip_vstore *vs,
                                       const aip_vfilter *filter,
                                       int64_t *deleted) {
  NEED_HANDLE(vs);
  if (deleted) *deleted = 0;
  aiplat_status st = check_filter(&vs->err, filter, true);
  if (st) return st;
  int64_t d = 0;
  st = vs->ops->delete_source(vs, filter, &d);
  if (!st && deleted) *deleted = d;
  return st;
}

aiplat_status aip_vstore_count(aip_vstore *vs, uint64_t *out) {
  NEED_HANDLE(vs);
  if (!out)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT, "vstore: NULL out");
  return vs->ops->count(vs, out);
}

aiplat_status aip_vstore_source_ids(aip_vstore *vs, const char *source,
                                    size_t max, char ***ids, size_t *n) {
  NEED_HANDLE(vs);
  if (!ids || !n)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: source_ids needs somewhere to put the ids");
  *ids = NULL;
  *n = 0;
  if (!source)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: source_ids needs a source");
  aiplat_status st =
      check_text(&vs->err, "filter", 0, "source", source, AIP_VSTORE_MAX_SOURCE);
  if (st) return st;
  if (max == 0 || max >= AIP_VSTORE_MAX_LIMIT)
    return aip_fail(&vs->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: source_ids: max %zu is outside 1..%u", max,
                    AIP_VSTORE_MAX_LIMIT - 1);
  if (!vs->ops->source_ids)
    return aip_fail(&vs->err, AIPLAT_ERR_NOT_SUPPORTED,
                    "vstore: the %s backend cannot list a source's ids",
                    vs->ops->name);
  return vs->ops->source_ids(vs, source, max, ids, n);
}

const char *aip_vstore_backend(const aip_vstore *vs) {
  return vs ? vs->ops->name : "";
}

aiplat_status aip_vstore_last_error(aip_vstore *vs, char *buf, size_t buflen) {
  if (!vs) {
    if (buf && buflen) buf[0] = '\0';
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return aip_err_copy(&vs->err, buf, buflen);
}

void aip_vstore_close(aip_vstore *vs) {
  if (vs) vs->ops->close(vs);
}

/* ---- results
 * ------------------------------------------------------------------ */

aip_vhit *aip_vhits_pack(const aip_vhit_src *src, size_t n) {
  size_t bytes = n * sizeof(aip_vhit);
  for (size_t i = 0; i < n; i++) {
    size_t meta = src[i].metadata_len ? src[i].metadata_len : 2;
    bytes += src[i].id_len + src[i].text_len + src[i].source_len + meta + 4;
  }
  aip_vhit *h = malloc(bytes ? bytes : 1);
  if (!h) return NULL;
  char *p = (char *)(h + n);
#define PUT(field, s, len)          \
  do {                              \
    h[i].field = p;                 \
    if (len) memcpy(p, (s), (len)); \
    p += (len);                     \
    *p++ = '\0';                    \
  } while (0)
  for (size_t i = 0; i < n; i++) {
    h[i].score = src[i].score;
    PUT(id, src[i].id, src[i].id_len);
    PUT(text, src[i].text, src[i].text_len);
    PUT(source, src[i].source, src[i].source_len);
    if (src[i].metadata_len)
      PUT(metadata, src[i].metadata, src[i].metadata_len);
    else
      PUT(metadata, "{}", 2);
  }
#undef PUT
  return h;
}

char **aip_vstrings_pack(const char *const *strs, const size_t *lens,
                         size_t n) {
  size_t bytes = n * sizeof(char *);
  for (size_t i = 0; i < n; i++) bytes += lens[i] + 1;
  char **a = malloc(bytes ? bytes : 1);
  if (!a) return NULL;
  char *p = (char *)(a + n);
  for (size_t i = 0; i < n; i++) {
    a[i] = p;
    if (lens[i]) memcpy(p, strs[i], lens[i]);
    p += lens[i];
    *p++ = '\0';
  }
  return a;
}

/* ---- selection from configuration
 * ----------------------------------------------- */

aiplat_status aip_vstore_choose(aiplat_config *cfg, bool *milvus,
                               const char **path) {
  if (!cfg || !milvus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "vstore: NULL argument");
  const char *kind = NULL;
  if (path) *path = NULL;
  aiplat_status st = aiplat_config_get_string(cfg, "VECTOR_STORE", &kind);
  if (st) return st;
  if (!kind || !kind[0]) {
    *milvus = aiplat_config_is_set(cfg, "MILVUS_HOST");
  } else if (aip_str_ieq(kind, "local")) {
    *milvus = false;
  } else if (aip_str_ieq(kind, "milvus")) {
    *milvus = true;
  } else {
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "VECTOR_STORE: \"%s\" is neither local nor milvus", kind);
  }
  if (!*milvus && path)
    return aiplat_config_require(cfg, "VECTOR_STORE_PATH", path);
  return AIPLAT_OK;
}

aiplat_status aip_vstore_open_config(aip_vstore **out, aiplat_config *cfg,
                                     bool writable) {
  if (!out || !cfg)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "vstore: NULL argument");
  *out = NULL;
  bool milvus = false;
  const char *path = NULL;
  aiplat_status st = aip_vstore_choose(cfg, &milvus, &path);
  if (st) return st;
  if (milvus) return aip_vstore_milvus_open(out, cfg);
  return aip_vstore_local_open(out, path, writable ? 0 : AIP_VLOCAL_READONLY);
}
