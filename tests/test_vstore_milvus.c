/* The Milvus backend of the vector store against the REST API v2 fake
 * (tests/fakes/milvus_fake.py): schema, upsert, search, filters, and every
 * error path (HTTP 401, codes inside HTTP 200, garbage, timeouts). */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/backend_harness.h"
#include "harness/testutil.h"
#include "vstore.h"

static th_server *F; /* the fake, shared by every test */

static void fake_up(void) {
  ck_assert_msg(th_have_python3(),
                "python3 is needed for the Milvus fake (set PYTHON3)");
  F = th_milvus_fake_start();
  ck_assert_msg(F != NULL, "the Milvus fake did not start");
}

static void fake_down(void) {
  th_server_stop(F);
  F = NULL;
}

/* ---- helpers ---------------------------------------------------------------
 */

static void ctl(const char *json) {
  char *body = NULL;
  int st =
      th_http(th_server_port(F), "POST", "/fake/control", json, &body, 10000);
  ck_assert_msg(st == 200, "control %s: %d %s", json, st, body ? body : "");
  free(body);
}

/* A POST straight to the fake's API (to set up collections ourselves). */
static json_t *api(const char *path, const char *json) {
  char full[128], *body = NULL;
  snprintf(full, sizeof full, "/v2/vectordb%s", path);
  int st = th_http(th_server_port(F), "POST", full, json, &body, 10000);
  ck_assert_int_eq(st, 200);
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  ck_assert_ptr_nonnull(j);
  return j;
}

static void api_ok(const char *path, const char *json) {
  json_t *j = api(path, json);
  ck_assert_msg(json_integer_value(json_object_get(j, "code")) == 0, "%s: %s",
                path, json_string_value(json_object_get(j, "message")));
  json_decref(j);
}

static json_t *fake_state(void) {
  char *body = NULL;
  ck_assert_int_eq(
      th_http(th_server_port(F), "GET", "/fake/state", NULL, &body, 10000),
      200);
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  ck_assert_ptr_nonnull(j);
  return j;
}

static long requests(const char *path) {
  json_t *s = fake_state();
  char full[128];
  snprintf(full, sizeof full, "/v2/vectordb%s", path);
  long n = (long)json_integer_value(
      json_object_get(json_object_get(s, "requests"), full));
  json_decref(s);
  return n;
}

static void reset(void) {
  ctl("{\"reset\":true}");
}

static aiplat_config *config(void) {
  aiplat_config *cfg;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  char port[16];
  snprintf(port, sizeof port, "%d", th_server_port(F));
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", "127.0.0.1"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_PORT", port), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_COLLECTION", "kb"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_RETRY_BACKOFF", "5ms"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_RETRY_MAX_WAIT", "20ms"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_MAX_RETRIES", "2"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_TIMEOUT", "10s"), AIPLAT_OK);
  return cfg;
}

static aip_vstore *open_cfg(aiplat_config *cfg) {
  aip_vstore *vs = NULL;
  ck_assert_int_eq(aip_vstore_milvus_open(&vs, cfg), AIPLAT_OK);
  return vs;
}

static aip_vstore *open_default(void) {
  aiplat_config *cfg = config();
  aip_vstore *vs = open_cfg(cfg);
  aiplat_config_destroy(cfg);
  return vs;
}

static char errbuf[AIP_ERRMSG_MAX];
static const char *err_of(aip_vstore *vs) {
  aip_vstore_last_error(vs, errbuf, sizeof errbuf);
  return errbuf;
}

#define ASSERT_ERR(vs, call, status, needle)                     \
  do {                                                           \
    aiplat_status st_ = (call);                                  \
    const char *nd_ = (needle);                                  \
    ck_assert_msg(st_ == (status), "%s: got %s (%s)", #call,     \
                  aiplat_status_str(st_), err_of(vs));           \
    if (nd_)                                                     \
      ck_assert_msg(strstr(err_of(vs), nd_) != NULL,             \
                    "message \"%s\" lacks \"%s\"", errbuf, nd_); \
  } while (0)

/* Deterministic vectors. */
static uint64_t rng = 88172645463325252ull;
static float frand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
}

#define DIM 8
typedef struct recset {
  size_t n;
  float *vec;
  char (*ids)[32];
  char (*texts)[48];
  aip_vrecord *recs;
} recset;

static recset make_recs(size_t n, const char *prefix, const char *source) {
  recset r = {n, calloc(n * DIM, sizeof(float)), calloc(n, 32), calloc(n, 48),
              calloc(n, sizeof(aip_vrecord))};
  for (size_t i = 0; i < n; i++) {
    for (size_t d = 0; d < DIM; d++) r.vec[i * DIM + d] = frand();
    snprintf(r.ids[i], 32, "%s%04zu", prefix, i);
    snprintf(r.texts[i], 48, "passage %zu of %s", i, source);
    r.recs[i] = (aip_vrecord){r.ids[i], &r.vec[i * DIM], r.texts[i], source,
                              i % 2 ? "{\"k\":1,\"s\":\"x\"}" : NULL};
  }
  return r;
}

static void free_recs(recset *r) {
  free(r->vec);
  free(r->ids);
  free(r->texts);
  free(r->recs);
}

static double cosine(const float *a, const float *b) {
  double d = 0, na = 0, nb = 0;
  for (size_t i = 0; i < DIM; i++) {
    d += (double)a[i] * b[i];
    na += (double)a[i] * a[i];
    nb += (double)b[i] * b[i];
  }
  return d / sqrt(na * nb);
}

static uint64_t count_of(aip_vstore *vs) {
  uint64_t n = 0;
  ck_assert_int_eq(aip_vstore_count(vs, &n), AIPLAT_OK);
  return n;
}

static const char SCHEMA_FIELDS[] =
    "{\"fieldName\":\"id\",\"dataType\":\"VarChar\",\"isPrimary\":true,"
    "\"elementTypeParams\":{\"max_length\":512}},"
    "{\"fieldName\":\"vector\",\"dataType\":\"FloatVector\","
    "\"elementTypeParams\":{\"dim\":%d}},"
    "{\"fieldName\":\"text\",\"dataType\":\"VarChar\",\"elementTypeParams\":{"
    "\"max_length\":65535}},"
    "{\"fieldName\":\"source\",\"dataType\":\"VarChar\","
    "\"elementTypeParams\":{\"max_length\":4096}},"
    "{\"fieldName\":\"metadata\",\"dataType\":\"JSON\"}";

/* Create "kb" behind the client's back with this dimension and metric. */
static void create_kb(int dim, const char *metric) {
  char fields[1024], body[2048];
  snprintf(fields, sizeof fields, SCHEMA_FIELDS, dim);
  snprintf(body, sizeof body,
           "{\"collectionName\":\"kb\",\"schema\":{\"fields\":[%s]},"
           "\"indexParams\":[{\"fieldName\":\"vector\",\"indexName\":"
           "\"vector\",\"metricType\":\"%s\"}]}",
           fields, metric);
  api_ok("/collections/create", body);
}

/* ---- no server needed ------------------------------------------------------
 */

START_TEST(filter_expressions_escape_everything) {
  char *f = NULL;
  ck_assert_int_eq(
      aip_milvus_filter(NULL, "source", AIP_VMATCH_EXACT, "backups.md", &f),
      AIPLAT_OK);
  ck_assert_str_eq(f, "source == \"backups.md\"");
  free(f);
  ck_assert_int_eq(aip_milvus_filter(NULL, "source", AIP_VMATCH_EXACT,
                                     "a\"b\\c\nd\re\tf\001g\x7fh", &f),
                   AIPLAT_OK);
  ck_assert_str_eq(f, "source == \"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\"");
  free(f);
  /* A would-be injection stays inside the literal. */
  ck_assert_int_eq(aip_milvus_filter(NULL, "source", AIP_VMATCH_EXACT,
                                     "x\" or source != \"", &f),
                   AIPLAT_OK);
  ck_assert_str_eq(f, "source == \"x\\\" or source != \\\"\"");
  free(f);
  ck_assert_int_eq(aip_milvus_filter(NULL, "source", AIP_VMATCH_EXACT,
                                     "\xc3\xbcn\xc3\xaf", &f),
                   AIPLAT_OK);
  ck_assert_str_eq(f, "source == \"\xc3\xbcn\xc3\xaf\"");
  free(f);
  ck_assert_int_eq(
      aip_milvus_filter(NULL, "source", AIP_VMATCH_PREFIX, "docs/", &f),
      AIPLAT_OK);
  ck_assert_str_eq(f, "source like \"docs/%\"");
  free(f);
  ck_assert_int_eq(
      aip_milvus_filter(NULL, "source", AIP_VMATCH_PREFIX, "50%", &f),
      AIPLAT_ERR_NOT_SUPPORTED);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(
      aip_milvus_filter(NULL, "source", AIP_VMATCH_PREFIX, "a_b", &f),
      AIPLAT_ERR_NOT_SUPPORTED);
  ck_assert_int_eq(aip_milvus_filter(NULL, "source", AIP_VMATCH_ANY, "x", &f),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

static aiplat_status open_with(const char *name, const char *value,
                               aip_vstore **vs) {
  aiplat_config *cfg;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", "milvus.ai-ml"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, name, value), AIPLAT_OK);
  *vs = NULL;
  aiplat_status st = aip_vstore_milvus_open(vs, cfg);
  aiplat_config_destroy(cfg);
  return st;
}

START_TEST(configuration) {
  aip_vstore *vs;
  ck_assert_int_eq(open_with("MILVUS_PORT", "19531", &vs), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_milvus_url(vs), "http://milvus.ai-ml:19531");
  ck_assert_str_eq(aip_vstore_backend(vs), "milvus");
  aip_vstore_close(vs);
  ck_assert_int_eq(open_with("MILVUS_TLS", "true", &vs), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_milvus_url(vs), "https://milvus.ai-ml:19530");
  aip_vstore_close(vs);
  ck_assert_int_eq(open_with("MILVUS_HOST", "::1", &vs), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_milvus_url(vs), "http://[::1]:19530");
  aip_vstore_close(vs);
  ck_assert_int_eq(open_with("MILVUS_HOST", "https://m.example:443", &vs),
                   AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_milvus_url(vs), "https://m.example:443");
  aip_vstore_close(vs);
  ck_assert_ptr_null(aip_vstore_milvus_url(NULL));

  const struct {
    const char *name, *value, *needle;
  } bad[] = {
      {"MILVUS_HOST", "bad host", "MILVUS_HOST"},
      {"MILVUS_HOST", "m/x", "MILVUS_HOST"},
      {"MILVUS_HOST", "http://root:pw@m:19530", "MILVUS_TOKEN"},
      {"MILVUS_PORT", "0", "MILVUS_PORT"},
      {"MILVUS_PORT", "70000", "MILVUS_PORT"},
      {"MILVUS_TLS", "maybe", "MILVUS_TLS"},
      {"MILVUS_COLLECTION", "1kb", "MILVUS_COLLECTION"},
      {"MILVUS_COLLECTION", "kb-prod", "MILVUS_COLLECTION"},
      {"MILVUS_COLLECTION", "kb\" or 1", "MILVUS_COLLECTION"},
      {"MILVUS_DB", "a b", "MILVUS_DB"},
      {"MILVUS_TOKEN", "root:pw\nX-Evil: 1", "MILVUS_TOKEN"},
      {"HTTP_TIMEOUT", "0s", "HTTP_TIMEOUT"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(
        open_with(bad[i].name, bad[i].value, &vs) == AIPLAT_ERR_CONFIG,
        "%s=%s accepted", bad[i].name, bad[i].value);
    ck_assert_ptr_null(vs);
    char msg[AIP_ERRMSG_MAX];
    aiplat_error_last(msg, sizeof msg);
    ck_assert_msg(strstr(msg, bad[i].needle), "%s", msg);
    ck_assert(strstr(msg, "pw\n") == NULL);
  }
  /* Nothing listens on the default port of this host name: the first
   * operation fails, not the open. */
  ck_assert_int_eq(open_with("MILVUS_HOST", "127.0.0.1", &vs), AIPLAT_OK);
  aip_vstore_close(vs);
  ck_assert_int_eq(aip_vstore_milvus_open(NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- against the fake -------------------------------------------------------
 */

START_TEST(ensure_creates_the_collection) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  json_t *s = fake_state();
  json_t *kb = json_object_get(json_object_get(s, "collections"), "kb");
  ck_assert_ptr_nonnull(kb);
  ck_assert(json_is_true(json_object_get(kb, "loaded")));
  ck_assert(json_is_false(json_object_get(kb, "dynamic")));
  ck_assert_str_eq(json_string_value(
                       json_object_get(json_object_get(kb, "index"), "vector")),
                   "COSINE");
  static const struct {
    const char *name, *type, *param;
    int value;
  } want[] = {{"id", "VarChar", "max_length", 512},
              {"vector", "FloatVector", "dim", DIM},
              {"text", "VarChar", "max_length", 65535},
              {"source", "VarChar", "max_length", 4096},
              {"metadata", "JSON", NULL, 0}};
  json_t *fields = json_object_get(kb, "fields");
  ck_assert_uint_eq(json_array_size(fields), 5);
  for (size_t i = 0; i < 5; i++) {
    json_t *f = json_array_get(fields, i);
    ck_assert_str_eq(json_string_value(json_object_get(f, "name")),
                     want[i].name);
    ck_assert_str_eq(json_string_value(json_object_get(f, "type")),
                     want[i].type);
    ck_assert(json_is_boolean(json_object_get(f, "primary")));
    ck_assert_int_eq(json_is_true(json_object_get(f, "primary")), i == 0);
    ck_assert(json_is_false(json_object_get(f, "auto_id")));
    if (want[i].param)
      ck_assert_int_eq(json_integer_value(json_object_get(
                           json_object_get(f, "params"), want[i].param)),
                       want[i].value);
  }
  json_decref(s);
  ck_assert_int_eq(requests("/collections/create"), 1);
  /* Again: exists with the same dimension, nothing created. */
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ck_assert_int_eq(requests("/collections/create"), 1);
  ASSERT_ERR(vs, aip_vstore_ensure(vs, 16, AIP_VMETRIC_COSINE),
             AIPLAT_ERR_INVALID_ARGUMENT, "dimension mismatch");
  ck_assert(strstr(errbuf, "8-dimensional") && strstr(errbuf, "has 16"));
  aip_vstore_close(vs);

  /* A second client sees the collection and its dimension. */
  vs = open_default();
  recset r = make_recs(3, "a", "s");
  ck_assert_int_eq(aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_OK);
  ASSERT_ERR(vs, aip_vstore_insert(vs, r.recs, 1, 4),
             AIPLAT_ERR_INVALID_ARGUMENT, "has 4");
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(ensure_checks_an_existing_collection) {
  reset();
  aip_vstore *vs = open_default();
  /* The quick form: Int64 id, no text/source/metadata fields. */
  api_ok("/collections/create", "{\"collectionName\":\"kb\",\"dimension\":8}");
  ASSERT_ERR(vs, aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE),
             AIPLAT_ERR_INVALID_ARGUMENT, "another schema");
  ck_assert(strstr(errbuf, "\"text\"") || strstr(errbuf, "\"id\""));
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  create_kb(DIM, "L2");
  ASSERT_ERR(vs, aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE),
             AIPLAT_ERR_NOT_SUPPORTED, "metric L2");
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  /* Released: ensure loads it. */
  create_kb(DIM, "COSINE");
  ctl("{\"release\":\"kb\"}");
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ck_assert_int_eq(requests("/collections/load"), 1);
  json_t *s = fake_state();
  ck_assert(json_is_true(json_object_get(
      json_object_get(json_object_get(s, "collections"), "kb"), "loaded")));
  json_decref(s);
  /* The first 2.4 releases: success code 200, "FloatVector(8)". */
  ctl("{\"style\":{\"success_code\":200,\"describe\":\"typename\"}}");
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ASSERT_ERR(vs, aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE),
             AIPLAT_ERR_INVALID_ARGUMENT, "8-dimensional");
  aip_vstore_close(vs);
}
END_TEST

/* Search results equal a brute-force cosine ranking. */
static void check_ranking(aip_vstore *vs, const recset *r, const float *q,
                          size_t limit) {
  aip_vhit *h = NULL;
  size_t n = 0;
  ck_assert_int_eq(aip_vstore_search(vs, q, DIM, limit, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, limit < r->n ? limit : r->n);
  for (size_t i = 0; i < n; i++) {
    /* No record outside the results beats the last one. */
    if (i) ck_assert(h[i].score <= h[i - 1].score);
    const char *id = h[i].id;
    size_t k = (size_t)atoi(id + 1);
    ck_assert_double_eq_tol(h[i].score, cosine(&r->vec[k * DIM], q), 1e-5);
  }
  for (size_t k = 0; k < r->n; k++) {
    bool in = false;
    for (size_t i = 0; i < n; i++) in |= strcmp(h[i].id, r->ids[k]) == 0;
    if (!in) ck_assert(cosine(&r->vec[k * DIM], q) <= h[n - 1].score + 1e-5);
  }
  free(h);
}

START_TEST(upsert_search_and_replace) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  recset r = make_recs(50, "a", "doc.md");
  ck_assert_int_eq(aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_OK);
  ck_assert_uint_eq(count_of(vs), 50);
  check_ranking(vs, &r, &r.vec[3 * DIM], 5);
  check_ranking(vs, &r, &r.vec[17 * DIM], 50);
  check_ranking(vs, &r, &r.vec[0], 100);

  aip_vhit *h = NULL;
  size_t n = 0;
  ck_assert_int_eq(aip_vstore_search(vs, &r.vec[3 * DIM], DIM, 1, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(h[0].id, "a0003");
  ck_assert_str_eq(h[0].text, "passage 3 of doc.md");
  ck_assert_str_eq(h[0].source, "doc.md");
  ck_assert_str_eq(h[0].metadata, "{\"k\":1,\"s\":\"x\"}");
  ck_assert_double_eq_tol(h[0].score, 1.0, 1e-5);
  free(h);
  ck_assert_int_eq(aip_vstore_search(vs, &r.vec[4 * DIM], DIM, 1, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_str_eq(h[0].metadata, "{}");
  free(h);

  /* The same id again replaces (upsert): count unchanged, new text. */
  r.recs[3].text = "replaced passage";
  ck_assert_int_eq(aip_vstore_insert(vs, &r.recs[3], 1, DIM), AIPLAT_OK);
  ck_assert_uint_eq(count_of(vs), 50);
  ck_assert_int_eq(aip_vstore_search(vs, &r.vec[3 * DIM], DIM, 1, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_str_eq(h[0].text, "replaced passage");
  free(h);
  ck_assert_int_eq(requests("/entities/insert"), 0); /* only upserts */

  /* Batches: 600 records in ceil(600 / 256) = 3 requests. */
  long before = requests("/entities/upsert");
  recset big = make_recs(600, "b", "big.md");
  ck_assert_int_eq(aip_vstore_insert(vs, big.recs, big.n, DIM), AIPLAT_OK);
  ck_assert_int_eq(requests("/entities/upsert") - before, 3);
  ck_assert_uint_eq(count_of(vs), 650);
  free_recs(&big);
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(batch_failure_reports_progress) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  recset big = make_recs(600, "b", "big.md");
  /* The first upsert goes through, the second fails. */
  ck_assert_int_eq(aip_vstore_insert(vs, big.recs, 1, DIM), AIPLAT_OK);
  ctl("{\"fault\":{\"path\":\"/v2/vectordb/entities/upsert\",\"kind\":"
      "\"slow\",\"delay_ms\":1,\"count\":1}}");
  ctl("{\"fault\":{\"path\":\"/v2/vectordb/entities/upsert\",\"kind\":"
      "\"code\",\"code\":65535,\"message\":\"segment lacks\",\"count\":1}}");
  ASSERT_ERR(vs, aip_vstore_insert(vs, big.recs, big.n, DIM), AIPLAT_ERR_SERVER,
             "segment lacks");
  ck_assert_msg(strstr(errbuf, "256 of the 600 records were stored"), "%s",
                errbuf);
  ck_assert(strstr(errbuf, "65535"));
  ck_assert_uint_eq(count_of(vs), 256);
  free_recs(&big);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(answer_shapes_of_every_version) {
  const char *styles[] = {
      "{\"search_shape\":\"nested\"}",
      "{\"score_key\":\"score\",\"topks\":true}",
      "{\"success_code\":200,\"describe\":\"typename\",\"search_shape\":"
      "\"nested\"}",
  };
  for (size_t i = 0; i < 3; i++) {
    reset();
    ctl("{\"style\":{}}");
    char c[256];
    snprintf(c, sizeof c, "{\"style\":%s}", styles[i]);
    ctl(c);
    aip_vstore *vs = open_default();
    ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
    recset r = make_recs(20, "a", "doc.md");
    ck_assert_int_eq(aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_OK);
    check_ranking(vs, &r, &r.vec[5 * DIM], 4);
    ck_assert_uint_eq(count_of(vs), 20);
    free_recs(&r);
    aip_vstore_close(vs);
  }
  /* An Int64 primary key comes back as numbers: taken as text. */
  reset();
  api_ok("/collections/create",
         "{\"collectionName\":\"kb\",\"schema\":{\"fields\":[{\"fieldName\":"
         "\"id\",\"dataType\":\"Int64\",\"isPrimary\":true,"
         "\"elementTypeParams\":{}},{\"fieldName\":\"vector\",\"dataType\":"
         "\"FloatVector\",\"elementTypeParams\":{\"dim\":2}},{\"fieldName\":"
         "\"text\",\"dataType\":\"VarChar\",\"elementTypeParams\":{\"max_"
         "length\":100}}]},\"indexParams\":[{\"fieldName\":\"vector\","
         "\"indexName\":\"vector\",\"metricType\":\"COSINE\"}]}");
  api_ok("/entities/insert",
         "{\"collectionName\":\"kb\",\"data\":[{\"id\":42,\"vector\":[1,0],"
         "\"text\":\"t\"},{\"id\":7,\"vector\":[0,1],\"text\":\"u\"}]}");
  aip_vstore *vs = open_default();
  float q[2] = {1, 0.01f};
  aip_vhit *h = NULL;
  size_t n = 0;
  ck_assert_int_eq(aip_vstore_search(vs, q, 2, 5, NULL, &h, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(h[0].id, "42");
  ck_assert_str_eq(h[0].text, "t");
  ck_assert_str_eq(h[0].source, ""); /* no such field: empty */
  ck_assert_str_eq(h[1].id, "7");
  free(h);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(filters_never_inject) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  const char *sources[] = {"plain.md",
                           "a\"b",
                           "x\" or source != \"",
                           "back\\slash",
                           "new\nline",
                           "\xc3\xbcn\xc3\xaf code",
                           "tab\there",
                           "docs/one.md",
                           "docs/two.md",
                           "x"};
  const size_t ns = sizeof sources / sizeof sources[0];
  recset sets[10];
  for (size_t i = 0; i < ns; i++) {
    char prefix[4] = {(char)('a' + i), 0};
    sets[i] = make_recs(3, prefix, sources[i]);
    ck_assert_int_eq(aip_vstore_insert(vs, sets[i].recs, 3, DIM), AIPLAT_OK);
  }
  ck_assert_uint_eq(count_of(vs), 3 * ns);
  for (size_t i = 0; i < ns; i++) {
    aip_vfilter f = {AIP_VMATCH_EXACT, sources[i]};
    aip_vhit *h = NULL;
    size_t n = 0;
    ck_assert_int_eq(aip_vstore_search(vs, sets[0].vec, DIM, 100, &f, &h, &n),
                     AIPLAT_OK);
    ck_assert_msg(n == 3, "source %zu: %zu hits", i, n);
    for (size_t k = 0; k < n; k++) ck_assert_str_eq(h[k].source, sources[i]);
    free(h);
    char **ids = NULL;
    ck_assert_int_eq(aip_vstore_source_ids(vs, sources[i], 100, &ids, &n),
                     AIPLAT_OK);
    ck_assert_uint_eq(n, 3);
    for (size_t k = 0; k < n; k++) ck_assert_int_eq(ids[k][0], 'a' + (int)i);
    free(ids);
  }
  aip_vfilter pre = {AIP_VMATCH_PREFIX, "docs/"};
  aip_vhit *h = NULL;
  size_t n = 0;
  ck_assert_int_eq(aip_vstore_search(vs, sets[0].vec, DIM, 100, &pre, &h, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 6);
  free(h);
  aip_vfilter wild = {AIP_VMATCH_PREFIX, "do%"};
  ASSERT_ERR(vs, aip_vstore_search(vs, sets[0].vec, DIM, 100, &wild, &h, &n),
             AIPLAT_ERR_NOT_SUPPORTED, "LIKE");
  /* Delete the hostile one: only its three records go. */
  aip_vfilter del = {AIP_VMATCH_EXACT, sources[2]};
  int64_t deleted = 0;
  ck_assert_int_eq(aip_vstore_delete_source(vs, &del, &deleted), AIPLAT_OK);
  ck_assert_int_eq(deleted, -1); /* Milvus does not count */
  ck_assert_uint_eq(count_of(vs), 3 * ns - 3);
  ck_assert_int_eq(aip_vstore_delete_source(vs, &pre, NULL), AIPLAT_OK);
  ck_assert_uint_eq(count_of(vs), 3 * ns - 9);
  char **ids = NULL;
  ck_assert_int_eq(aip_vstore_source_ids(vs, "docs/one.md", 100, &ids, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert_ptr_null(ids);
  ASSERT_ERR(vs, aip_vstore_source_ids(vs, "plain.md", 2, &ids, &n),
             AIPLAT_ERR_TOO_LARGE, "more than 2");
  for (size_t i = 0; i < ns; i++) free_recs(&sets[i]);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(no_collection_yet) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_uint_eq(count_of(vs), 0);
  float q[DIM] = {1};
  aip_vhit *h = NULL;
  size_t n = 9;
  ck_assert_int_eq(aip_vstore_search(vs, q, DIM, 3, NULL, &h, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert_ptr_null(h);
  aip_vfilter f = {AIP_VMATCH_EXACT, "x"};
  int64_t d = 5;
  ck_assert_int_eq(aip_vstore_delete_source(vs, &f, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 0);
  char **ids = NULL;
  ck_assert_int_eq(aip_vstore_source_ids(vs, "x", 10, &ids, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  recset r = make_recs(2, "a", "s");
  ASSERT_ERR(vs, aip_vstore_insert(vs, r.recs, 2, DIM), AIPLAT_ERR_STATE,
             "ensure it first");
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(authentication) {
  reset();
  ctl("{\"token\":\"root:Milvus\"}");
  aiplat_config *cfg = config();
  aip_vstore *vs = open_cfg(cfg);
  ASSERT_ERR(vs, aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE),
             AIPLAT_ERR_AUTH, "user hasn't authenticated");
  ck_assert(strstr(errbuf, "HTTP 401") && strstr(errbuf, "1800") &&
            strstr(errbuf, "MILVUS_TOKEN"));
  aip_vstore_close(vs);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_TOKEN", "root:wrong-pw"),
                   AIPLAT_OK);
  vs = open_cfg(cfg);
  uint64_t c;
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_AUTH, "401");
  ck_assert_msg(strstr(errbuf, "wrong-pw") == NULL, "token leaked: %s", errbuf);
  aip_vstore_close(vs);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_TOKEN", "root:Milvus"),
                   AIPLAT_OK);
  vs = open_cfg(cfg);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  aip_vstore_close(vs);
  json_t *s = fake_state();
  ck_assert_str_eq(
      json_string_value(json_object_get(json_object_get(s, "auth"),
                                        "/v2/vectordb/collections/describe")),
      "Bearer root:Milvus");
  json_decref(s);
  aiplat_config_destroy(cfg);
  /* From a mounted secret: MILVUS_TOKEN_FILE. */
  char path[] = "/tmp/aiplat-milvus-token-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "root:Milvus\n", 12), 12);
  close(fd);
  TH_SETENV("MILVUS_TOKEN_FILE", path);
  cfg = config();
  vs = open_cfg(cfg);
  ck_assert_int_eq(aip_vstore_count(vs, &c), AIPLAT_OK);
  aip_vstore_close(vs);
  aiplat_config_destroy(cfg);
  TH_UNSETENV("MILVUS_TOKEN_FILE");
  unlink(path);
  /* 401 inside HTTP 200 (a proxy in front): still an auth failure. */
  ctl("{\"token\":null}");
  ctl("{\"fault\":{\"kind\":\"code\",\"code\":1800,\"message\":\"user "
      "hasn't authenticated\"}}");
  vs = open_default();
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_AUTH, "1800");
  aip_vstore_close(vs);
}
END_TEST

START_TEST(errors_inside_http_200) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  recset r = make_recs(4, "a", "s");
  ck_assert_int_eq(aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_OK);
  aip_vhit *h = NULL;
  size_t n = 0;
  uint64_t c;
  const struct {
    long code;
    const char *path, *message;
    aiplat_status want;
  } cases[] = {
      {100, "upsert", "collection not found[database=default][collection=kb]",
       AIPLAT_ERR_NOT_FOUND},
      {1100, "upsert",
       "the dim (4) of field data(vector) is not equal to schema dim (8): "
       "invalid parameter[expected=8][actual=4]",
       AIPLAT_ERR_INVALID_ARGUMENT},
      {65535, "search",
       "fail to search on QueryNode 1: worker(1) query failed: vector "
       "dimension mismatch, expected vector size(byte) 32, actual 16.",
       AIPLAT_ERR_INVALID_ARGUMENT},
      /* The REST layer's own checks (Milvus 2.4 to 2.6). */
      {1801, "search",
       "can only accept json format request, error: dimension: 16, but "
       "length of []float: 8: invalid parameter[expected=FloatVector]"
       "[actual=[[1, 0, 0, 0, 0, 0, 0, 0]]]",
       AIPLAT_ERR_INVALID_ARGUMENT},
      {1801, "search",
       "can only accept json format request, error: []float32 size 8 "
       "doesn't equal to vector dimension 16 of FloatVector",
       AIPLAT_ERR_INVALID_ARGUMENT},
      {1804, "upsert",
       "fail to deal the insert data, error: []float32 size 8 doesn't "
       "equal to vector dimension 16 of FloatVector",
       AIPLAT_ERR_INVALID_ARGUMENT},
      /* The same codes for anything else stay a bad request. */
      {1801, "search",
       "can only accept json format request, error: invalid search params",
       AIPLAT_ERR_BAD_REQUEST},
      {1804, "upsert",
       "fail to deal the insert data, error: missing vector field: vector",
       AIPLAT_ERR_BAD_REQUEST},
      {65535, "search", "unexpected error", AIPLAT_ERR_SERVER},
      {2000, "search", "segcore error", AIPLAT_ERR_SERVER},
      {1802, "query", "missing required parameters", AIPLAT_ERR_BAD_REQUEST},
      {1100, "query", "failed to create query plan: cannot parse expression: x",
       AIPLAT_ERR_BAD_REQUEST},
      {1401, "query", "privilege not permitted", AIPLAT_ERR_AUTH},
      {9, "upsert", "quota exceeded[reason=disk quota exceeded]",
       AIPLAT_ERR_UNAVAILABLE},
      {10001, "search", "context deadline exceeded", AIPLAT_ERR_TIMEOUT},
      {1102, "upsert", "parameter too large", AIPLAT_ERR_TOO_LARGE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char f[512];
    snprintf(f, sizeof f,
             "{\"fault\":{\"path\":\"/v2/vectordb/entities/%s\",\"kind\":"
             "\"code\",\"code\":%ld,\"message\":\"%s\"}}",
             cases[i].path, cases[i].code, cases[i].message);
    ctl(f);
    aiplat_status st;
    if (strcmp(cases[i].path, "upsert") == 0)
      st = aip_vstore_insert(vs, r.recs, r.n, DIM);
    else if (strcmp(cases[i].path, "search") == 0)
      st = aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n);
    else
      st = aip_vstore_count(vs, &c);
    ck_assert_msg(st == cases[i].want, "case %zu: %s (%s)", i,
                  aiplat_status_str(st), err_of(vs));
    char code[32];
    snprintf(code, sizeof code, "Milvus code %ld", cases[i].code);
    ck_assert_msg(strstr(err_of(vs), code) && strstr(errbuf, "milvus: "),
                  "case %zu: %s", i, errbuf);
    /* Milvus's own words are in the message. */
    char head[24];
    snprintf(head, sizeof head, "%.20s", cases[i].message);
    ck_assert_msg(strstr(errbuf, head), "case %zu: %s", i, errbuf);
  }
  /* Control bytes and a huge message: cleaned and cut. */
  char big[6000] =
      "{\"fault\":{\"kind\":\"code\",\"code\":65535,\"message\":"
      "\"bad\\u0001\\nthing ";
  size_t len = strlen(big);
  memset(big + len, 'z', 5000);
  strcpy(big + len + 5000, "\"}}");
  ctl(big);
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_SERVER, "bad");
  ck_assert_uint_lt(strlen(errbuf), AIP_ERRMSG_MAX);
  for (const char *p = errbuf; *p; p++)
    ck_assert_int_ge((unsigned char)*p, 0x20);
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(a_query_only_handle_learns_the_dimension) {
  reset();
  aip_vstore *w = open_default();
  ck_assert_int_eq(aip_vstore_ensure(w, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  recset r = make_recs(4, "a", "s");
  ck_assert_int_eq(aip_vstore_insert(w, r.recs, r.n, DIM), AIPLAT_OK);
  aip_vstore_close(w);

  /* A handle that never ensures: its first search describes the
   * collection once, and a vector of another dimension is refused here,
   * naming both, without a search request. */
  aip_vstore *vs = open_default();
  float q4[4] = {1, 0, 0, 0};
  aip_vhit *h = NULL;
  size_t n = 0;
  long describes = requests("/collections/describe");
  long searches = requests("/entities/search");
  ASSERT_ERR(vs, aip_vstore_search(vs, q4, 4, 3, NULL, &h, &n),
             AIPLAT_ERR_INVALID_ARGUMENT,
             "holds 8-dimensional vectors, this call has 4");
  ck_assert_int_eq(requests("/collections/describe"), describes + 1);
  ck_assert_int_eq(requests("/entities/search"), searches);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
                     AIPLAT_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(h[0].id, "a0000");
    free(h);
  }
  ck_assert_int_eq(requests("/collections/describe"), describes + 1);

  /* Recreated with 4 dimensions behind its back: the search reaches
   * Milvus, which refuses it inside HTTP 200 with code 1801. */
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  create_kb(4, "COSINE");
  searches = requests("/entities/search");
  ASSERT_ERR(vs, aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
             AIPLAT_ERR_INVALID_ARGUMENT,
             "dimension: 4, but length of []float: 8");
  ck_assert_ptr_nonnull(strstr(errbuf, "Milvus code 1801"));
  ck_assert_int_eq(requests("/entities/search"), searches + 1);
  /* It forgets what it knew: the next call is checked here again. */
  ASSERT_ERR(vs, aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
             AIPLAT_ERR_INVALID_ARGUMENT,
             "holds 4-dimensional vectors, this call has 8");
  ck_assert_int_eq(requests("/entities/search"), searches + 1);
  ck_assert_int_eq(aip_vstore_search(vs, q4, 4, 3, NULL, &h, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);

  /* Recreated with 8 again: a dimension the handle believes wrong is
   * described again before it is refused. */
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  create_kb(DIM, "COSINE");
  ck_assert_int_eq(aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  /* Gone: no hits, and nothing remembered. */
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  ck_assert_int_eq(aip_vstore_search(vs, q4, 4, 3, NULL, &h, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(non_finite_vectors_never_reach_milvus) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  recset r = make_recs(3, "a", "s");
  const float bad[] = {NAN, INFINITY, -INFINITY};
  long upserts = requests("/entities/upsert");
  long searches = requests("/entities/search");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    float keep = r.vec[2 * DIM + 5];
    r.vec[2 * DIM + 5] = bad[i]; /* record 2, element 5 */
    ASSERT_ERR(vs, aip_vstore_insert(vs, r.recs, r.n, DIM),
               AIPLAT_ERR_INVALID_ARGUMENT, "record 2: element 5");
    ck_assert_ptr_nonnull(strstr(errbuf, "not a finite number"));
    aip_vhit *h = NULL;
    size_t n = 0;
    ASSERT_ERR(vs, aip_vstore_search(vs, &r.vec[2 * DIM], DIM, 3, NULL, &h, &n),
               AIPLAT_ERR_INVALID_ARGUMENT, "query: element 5");
    r.vec[2 * DIM + 5] = keep;
  }
  ck_assert_int_eq(requests("/entities/upsert"), upserts);
  ck_assert_int_eq(requests("/entities/search"), searches);
  ck_assert_uint_eq(count_of(vs), 0);
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(real_mismatches_and_missing_things) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  /* Someone recreates the collection with 4 dimensions behind our back. */
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  create_kb(4, "COSINE");
  recset r = make_recs(2, "a", "s");
  /* The handle still believes 8: Milvus refuses the rows... */
  ASSERT_ERR(vs, aip_vstore_insert(vs, r.recs, r.n, DIM),
             AIPLAT_ERR_INVALID_ARGUMENT,
             "[]float32 size 8 doesn't equal to vector dimension 4");
  ck_assert_ptr_nonnull(strstr(errbuf, "Milvus code 1804"));
  /* ...and the next call describes the collection again. */
  aip_vhit *h = NULL;
  size_t n = 0;
  long searches = requests("/entities/search");
  ASSERT_ERR(vs, aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
             AIPLAT_ERR_INVALID_ARGUMENT,
             "holds 4-dimensional vectors, this call has 8");
  ck_assert_int_eq(requests("/entities/search"), searches);
  /* Dropped: writes say so; reads find nothing. */
  api_ok("/collections/drop", "{\"collectionName\":\"kb\"}");
  ASSERT_ERR(vs, aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_ERR_NOT_FOUND,
             "[collection=kb]");
  ck_assert_int_eq(aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  aip_vstore_close(vs);
  /* Released: a search loads it once and goes on. */
  vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_OK);
  ctl("{\"release\":\"kb\"}");
  long loads = requests("/collections/load");
  ck_assert_int_eq(aip_vstore_search(vs, r.vec, DIM, 3, NULL, &h, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 2);
  free(h);
  ck_assert_int_eq(requests("/collections/load"), loads + 1);
  aip_vstore_close(vs);
  /* A database that does not exist. */
  aiplat_config *cfg = config();
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_DB", "nope"), AIPLAT_OK);
  vs = open_cfg(cfg);
  ASSERT_ERR(vs, aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE),
             AIPLAT_ERR_NOT_FOUND, "database not found[database=nope]");
  aip_vstore_close(vs);
  ctl("{\"create_db\":\"team\"}");
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_DB", "team"), AIPLAT_OK);
  vs = open_cfg(cfg);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  aip_vstore_close(vs);
  json_t *s = fake_state();
  ck_assert_ptr_nonnull(
      json_object_get(json_object_get(s, "collections"), "team.kb"));
  json_decref(s);
  aiplat_config_destroy(cfg);
  free_recs(&r);
}
END_TEST

START_TEST(retries_on_busy_codes) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  uint64_t c;
  /* Rate limited once: retried, then fine. */
  ctl("{\"fault\":{\"path\":\"/v2/vectordb/entities/query\",\"kind\":"
      "\"code\",\"code\":8,\"message\":\"rate limit exceeded[rate=0.5]\"}}");
  long before = requests("/entities/query");
  ck_assert_int_eq(aip_vstore_count(vs, &c), AIPLAT_OK);
  ck_assert_int_eq(requests("/entities/query") - before, 2);
  /* Always: gives up after HTTP_MAX_RETRIES (2) retries. */
  ctl("{\"fault\":{\"path\":\"/v2/vectordb/entities/query\",\"kind\":"
      "\"code\",\"code\":8,\"message\":\"rate limit exceeded\",\"count\":5}}");
  before = requests("/entities/query");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_RATE_LIMITED,
             "rate limit exceeded");
  ck_assert(strstr(errbuf, "after 3 attempts"));
  ck_assert_int_eq(requests("/entities/query") - before, 3);
  ctl("{\"reset\":true}");
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ctl("{\"fault\":{\"kind\":\"code\",\"code\":1,\"message\":\"service not "
      "ready\",\"count\":3}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_UNAVAILABLE,
             "service not ready");
  /* HTTP 503 is retried by the HTTP layer. */
  ctl("{\"fault\":{\"kind\":\"http503\"}}");
  ck_assert_int_eq(aip_vstore_count(vs, &c), AIPLAT_OK);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(transport_failures) {
  reset();
  aiplat_config *cfg = config();
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_TIMEOUT", "400ms"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_MAX_RETRIES", "0"), AIPLAT_OK);
  aip_vstore *vs = open_cfg(cfg);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  uint64_t c;
  ctl("{\"fault\":{\"kind\":\"http500\"}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_SERVER, "HTTP 500");
  ctl("{\"fault\":{\"kind\":\"garbage\"}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_DECODE, "not JSON");
  ctl("{\"fault\":{\"kind\":\"empty\"}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_DECODE, "empty");
  ctl("{\"fault\":{\"kind\":\"nocode\"}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_PROTOCOL, "code");
  ctl("{\"fault\":{\"kind\":\"badshape\"}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_PROTOCOL, "count");
  float q[DIM] = {1};
  aip_vhit *h = NULL;
  size_t n = 0;
  ctl("{\"fault\":{\"kind\":\"badshape\"}}");
  ASSERT_ERR(vs, aip_vstore_search(vs, q, DIM, 2, NULL, &h, &n),
             AIPLAT_ERR_PROTOCOL, "search");
  ctl("{\"fault\":{\"kind\":\"slow\",\"delay_ms\":1500}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_TIMEOUT, "timed out");
  ctl("{\"fault\":{\"kind\":\"close\"}}");
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_CONNECTION, NULL);
  ck_assert_int_eq(aip_vstore_count(vs, &c), AIPLAT_OK); /* recovers */
  aip_vstore_close(vs);

  /* Something that is not Milvus's REST v2 (a 404 page). */
  char url[128];
  snprintf(url, sizeof url, "%s/not-milvus", th_server_url(F));
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", url), AIPLAT_OK);
  vs = open_cfg(cfg);
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_NOT_SUPPORTED,
             "no Milvus RESTful API v2");
  aip_vstore_close(vs);
  /* Nobody listening. */
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", "127.0.0.1"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_PORT", "1"), AIPLAT_OK);
  vs = open_cfg(cfg);
  ASSERT_ERR(vs, aip_vstore_count(vs, &c), AIPLAT_ERR_CONNECTION,
             "cannot connect");
  aip_vstore_close(vs);
  aiplat_config_destroy(cfg);
}
END_TEST

/* ---- threads --------------------------------------------------------------
 */

typedef struct worker {
  aip_vstore *vs;
  const recset *r;
  int fails;
} worker;

static void *searcher(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 15; i++) {
    aip_vhit *h = NULL;
    size_t n = 0;
    if (aip_vstore_search(w->vs, &w->r->vec[(size_t)i % w->r->n * DIM], DIM, 3,
                          NULL, &h, &n) != AIPLAT_OK ||
        n != 3)
      w->fails++;
    free(h);
  }
  return NULL;
}

START_TEST(shared_by_threads) {
  reset();
  aip_vstore *vs = open_default();
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  recset r = make_recs(30, "a", "s");
  ck_assert_int_eq(aip_vstore_insert(vs, r.recs, r.n, DIM), AIPLAT_OK);
  pthread_t t[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){vs, &r, 0};
    ck_assert_int_eq(pthread_create(&t[i], NULL, searcher, &w[i]), 0);
  }
  recset more = make_recs(30, "b", "t");
  ck_assert_int_eq(aip_vstore_insert(vs, more.recs, more.n, DIM), AIPLAT_OK);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(w[i].fails, 0);
  }
  ck_assert_uint_eq(count_of(vs), 60);
  free_recs(&more);
  free_recs(&r);
  aip_vstore_close(vs);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("vstore_milvus");
  TCase *pure = tcase_create("pure");
  tcase_add_test(pure, filter_expressions_escape_everything);
  tcase_add_test(pure, configuration);
  suite_add_tcase(s, pure);
  TCase *tc = tcase_create("fake");
  tcase_add_unchecked_fixture(tc, fake_up, fake_down);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, ensure_creates_the_collection);
  tcase_add_test(tc, ensure_checks_an_existing_collection);
  tcase_add_test(tc, upsert_search_and_replace);
  tcase_add_test(tc, batch_failure_reports_progress);
  tcase_add_test(tc, answer_shapes_of_every_version);
  tcase_add_test(tc, filters_never_inject);
  tcase_add_test(tc, no_collection_yet);
  tcase_add_test(tc, authentication);
  tcase_add_test(tc, errors_inside_http_200);
  tcase_add_test(tc, real_mismatches_and_missing_things);
  tcase_add_test(tc, a_query_only_handle_learns_the_dimension);
  tcase_add_test(tc, non_finite_vectors_never_reach_milvus);
  tcase_add_test(tc, retries_on_busy_codes);
  tcase_add_test(tc, transport_failures);
  tcase_add_test(tc, shared_by_threads);
  suite_add_tcase(s, tc);
  return s;
}
