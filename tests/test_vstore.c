/* Vector store: the interface, the local store's behaviour, exact top-k
 * against a brute-force reference, deletes, replaces, filters, validation,
 * locking, read-only refresh, compaction, selection from configuration. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <float.h>
#include <math.h>
#include <pthread.h>

#include "utf8.h"
#include "vstore_testutil.h"

static void setup(void) {
  vt_setup();
}
static void teardown(void) {
  vt_cleanup();
}

/* ---- helpers
 * ------------------------------------------------------------------- */

START_TEST(crc32c_known_values) {
  ck_assert_uint_eq(aip_crc32c(0, "123456789", 9), 0xE3069283u);
  ck_assert_uint_eq(aip_crc32c_sw(0, "123456789", 9), 0xE3069283u);
  ck_assert_uint_eq(aip_crc32c(0, "", 0), 0);
  unsigned char zeros[32] = {0};
  ck_assert_uint_eq(aip_crc32c_sw(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 */
  unsigned char buf[300];
  uint64_t s = 7;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)vt_rand(&s);
  for (size_t off = 0; off < 9; off++)
    for (size_t len = 0; len + off <= sizeof buf; len += 13) {
      uint32_t a = aip_crc32c(0, buf + off, len);
      ck_assert_uint_eq(a, aip_crc32c_sw(0, buf + off, len));
      /* chaining: crc(x ++ y) == crc(crc(x), y) */
      size_t cut = len / 3;
      ck_assert_uint_eq(a, aip_crc32c(aip_crc32c(0, buf + off, cut),
                                      buf + off + cut, len - cut));
    }
}
END_TEST

START_TEST(utf8_validation) {
  ck_assert(aip_utf8_valid("plain", 5));
  ck_assert(aip_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
  ck_assert(!aip_utf8_valid("\xc0\xaf", 2));         /* overlong */
  ck_assert(!aip_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  ck_assert(!aip_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  ck_assert(!aip_utf8_valid("\xe2\x82", 2));         /* truncated */
  ck_assert(!aip_utf8_valid("\x80", 1));
  ck_assert(!aip_utf8_valid("\xff", 1));
}
END_TEST

/* ---- round trip
 * ---------------------------------------------------------------- */

START_TEST(round_trip_survives_reopen) {
  const char *path = vt_path("kb.aipvs");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_str_eq(aip_vstore_backend(vs), "local");
  ck_assert_int_eq(aip_vstore_ensure(vs, 16, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_ensure(vs, 16, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float v[3][16];
  for (int i = 0; i < 3; i++) vt_vec(v[i], 16, 100 + (unsigned)i);
  aip_vrecord recs[3] = {
      {"a1", v[0], "alpha text", "docs/a.md", "{\"page\":1}"},
      {"b2", v[1], "beta text", "docs/b.md", NULL},
      {"c3", v[2], "", NULL, ""},
  };
  ck_assert_int_eq(aip_vstore_insert(vs, recs, 3, 16), AIPLAT_OK);
  ck_assert_uint_eq(vt_count(vs), 3);

  for (int pass = 0; pass < 3; pass++) {
    size_t n;
    aip_vhit *h;
    ck_assert_int_eq(aip_vstore_search(vs, v[0], 16, 10, NULL, &h, &n),
                     AIPLAT_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(h[0].id, "a1");
    ck_assert_str_eq(h[0].text, "alpha text");
    ck_assert_str_eq(h[0].source, "docs/a.md");
    ck_assert_str_eq(h[0].metadata, "{\"page\":1}");
    ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-6f);
    ck_assert(h[0].score >= h[1].score && h[1].score >= h[2].score);
    for (size_t i = 1; i < n; i++) {
      if (!strcmp(h[i].id, "b2")) ck_assert_str_eq(h[i].metadata, "{}");
      if (!strcmp(h[i].id, "c3")) {
        ck_assert_str_eq(h[i].text, "");
        ck_assert_str_eq(h[i].source, "");
        ck_assert_str_eq(h[i].metadata, "{}");
      }
    }
    free(h);
    aip_vstore_close(vs);
    /* reopen writable, then read-only */
    vs = vt_open(path, pass == 0 ? 0 : AIP_VLOCAL_READONLY);
    ck_assert_uint_eq(vt_count(vs), 3);
    aip_vlocal_report r = vt_report(vs);
    ck_assert_uint_eq(r.dim, 16);
    ck_assert_uint_eq(r.torn_bytes, 0);
    ck_assert(!r.truncated);
  }
  aip_vstore_close(vs);
}
END_TEST

START_TEST(scores_are_cosine_and_independent_of_scale) {
  aip_vstore *vs = vt_open(vt_path("kb"), 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 2, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float x[2] = {1, 0}, y[2] = {0, 5}, d[2] = {3, 3}, o[2] = {-2, 0};
  aip_vrecord r[4] = {{"x", x, "", "", NULL},
                      {"y", y, "", "", NULL},
                      {"d", d, "", "", NULL},
                      {"o", o, "", "", NULL}};
  ck_assert_int_eq(aip_vstore_insert(vs, r, 4, 2), AIPLAT_OK);
  float q[2] = {1000, 0};
  aip_vhit *h;
  size_t n;
  ck_assert_int_eq(aip_vstore_search(vs, q, 2, 4, NULL, &h, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 4);
  ck_assert_str_eq(h[0].id, "x");
  ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-6f);
  ck_assert_str_eq(h[1].id, "d");
  ck_assert_float_eq_tol(h[1].score, (float)M_SQRT1_2, 1e-6f);
  ck_assert_str_eq(h[2].id, "y");
  ck_assert_float_eq_tol(h[2].score, 0.0f, 1e-6f);
  ck_assert_str_eq(h[3].id, "o");
  ck_assert_float_eq_tol(h[3].score, -1.0f, 1e-6f);
  free(h);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(tiny_vectors_score_like_any_other) {
  /* Subnormal floats: finite and not zero, so accepted, but the inverse
   * of their norm does not fit a float. */
  const char *path = vt_path("tiny");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float t[4] = {1e-40f, 0, 0, 0}, u[4] = {0, 3e-41f, 0, 4e-41f},
        w[4] = {-1, 0, 0, 0};
  aip_vrecord r[3] = {
      {"t", t, "", "", NULL}, {"u", u, "", "", NULL}, {"w", w, "", "", NULL}};
  ck_assert_int_eq(aip_vstore_insert(vs, r, 3, 4), AIPLAT_OK);
  for (int pass = 0; pass < 2; pass++) {
    float q[4] = {1, 0, 0, 0};
    aip_vhit *h;
    size_t n;
    ck_assert_int_eq(aip_vstore_search(vs, q, 4, 3, NULL, &h, &n), AIPLAT_OK);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++)
      ck_assert_msg(isfinite(h[i].score), "%s: %f", h[i].id,
                    (double)h[i].score);
    ck_assert_str_eq(h[0].id, "t");
    ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-6f);
    ck_assert_str_eq(h[1].id, "u");
    ck_assert_float_eq_tol(h[1].score, 0.0f, 1e-6f);
    ck_assert_str_eq(h[2].id, "w");
    ck_assert_float_eq_tol(h[2].score, -1.0f, 1e-6f);
    free(h);
    /* and a tiny query */
    float tq[4] = {0, 6e-42f, 0, 8e-42f};
    ck_assert_int_eq(aip_vstore_search(vs, tq, 4, 1, NULL, &h, &n), AIPLAT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(h[0].id, "u");
    ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-6f);
    free(h);
    aip_vstore_close(vs);
    vs = vt_open(path, AIP_VLOCAL_READONLY); /* loaded from the file */
  }
  aip_vstore_close(vs);
}
END_TEST

START_TEST(largest_dimension) {
  const uint32_t dim = AIP_VSTORE_MAX_DIM;
  const char *path = vt_path("wide");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, dim, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float *v = malloc(3 * dim * sizeof *v);
  uint64_t seed = 3;
  for (size_t i = 0; i < 3 * (size_t)dim; i++)
    v[i] = (float)(vt_rand(&seed) % 1000) / 1000.0f - 0.5f;
  aip_vrecord r[3] = {{"w0", v, "zero", "", NULL},
                      {"w1", v + dim, "one", "", NULL},
                      {"w2", v + 2 * dim, "two", "", NULL}};
  ck_assert_int_eq(aip_vstore_insert(vs, r, 3, dim), AIPLAT_OK);
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < 3; i++) {
      aip_vhit *h;
      size_t n;
      ck_assert_int_eq(aip_vstore_search(vs, v + i * dim, dim, 1, NULL, &h, &n),
                       AIPLAT_OK);
      ck_assert_uint_eq(n, 1);
      ck_assert_str_eq(h[0].id, r[i].id);
      ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-5f);
      free(h);
    }
    aip_vstore_close(vs);
    vs = vt_open(path, AIP_VLOCAL_READONLY);
  }
  aip_vstore_close(vs);
  free(v);
}
END_TEST

/* ---- exact top-k against brute force
 * --------------------------------------------- */

typedef struct ref {
  double score;
  char id[16];
} ref;

static int ref_cmp(const void *a, const void *b) {
  const ref *x = a, *y = b;
  if (x->score != y->score) return x->score < y->score ? 1 : -1;
  return strcmp(x->id, y->id);
}

START_TEST(top_k_matches_brute_force) {
  static const uint32_t dims[] = {1, 3, 8, 17, 64, 385};
  static const size_t ks[] = {1, 2, 5, 10, 64, 199, 200, 500};
  const size_t N = 200;
  uint32_t dim = dims[_i];
  char name[32];
  snprintf(name, sizeof name, "bf%u", dim);
  aip_vstore *vs = vt_open(vt_path(name), 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, dim, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float *vecs = malloc(N * dim * sizeof *vecs);
  char(*ids)[16] = malloc(N * sizeof *ids);
  aip_vrecord *recs = calloc(N, sizeof *recs);
  uint64_t seed = 1234 + dim;
  for (size_t i = 0; i < N; i++) {
    for (uint32_t j = 0; j < dim; j++)
      vecs[i * dim + j] =
          (float)((int64_t)(vt_rand(&seed) % 2001) - 1000) / 997.0f;
    if (dim == 1 && vecs[i] == 0) vecs[i] = 1; /* no zero vectors */
    snprintf(ids[i], sizeof ids[i], "r%03zu", (i * 7919) % N);
    recs[i] = (aip_vrecord){ids[i], vecs + i * dim, ids[i], "s", NULL};
  }
  /* several batches, so that rows come from different records */
  for (size_t i = 0; i < N; i += 50)
    ck_assert_int_eq(aip_vstore_insert(vs, recs + i, 50, dim), AIPLAT_OK);
  ref *rf = malloc(N * sizeof *rf);
  float *q = malloc(dim * sizeof *q);
  for (int round = 0; round < 2; round++) {
    for (int t = 0; t < 5; t++) {
      for (uint32_t j = 0; j < dim; j++)
        q[j] = (float)((int64_t)(vt_rand(&seed) % 2001) - 1000) / 997.0f;
      q[0] = q[0] == 0 ? 0.5f : q[0];
      double qn = 0;
      for (uint32_t j = 0; j < dim; j++) qn += (double)q[j] * q[j];
      for (size_t i = 0; i < N; i++) {
        double d = 0, vn = 0;
        for (uint32_t j = 0; j < dim; j++) {
          d += (double)q[j] * vecs[i * dim + j];
          vn += (double)vecs[i * dim + j] * vecs[i * dim + j];
        }
        rf[i].score = d / sqrt(qn * vn);
        memcpy(rf[i].id, ids[i], sizeof rf[i].id);
      }
      qsort(rf, N, sizeof *rf, ref_cmp);
      size_t rank_of[200]; /* ids are r000..r199 */
      for (size_t i = 0; i < N; i++)
        rank_of[strtoul(rf[i].id + 1, NULL, 10)] = i;
      for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        size_t k = ks[ki], n;
        aip_vhit *h;
        ck_assert_int_eq(aip_vstore_search(vs, q, dim, k, NULL, &h, &n),
                         AIPLAT_OK);
        ck_assert_uint_eq(n, k < N ? k : N);
        for (size_t i = 0; i < n; i++) {
          /* the score at each rank is the reference's, and the id there
           * is one whose reference score equals it (exact up to float
           * rounding: ties may swap only within 1e-5) */
          ck_assert_msg(fabs(h[i].score - rf[i].score) < 1e-5,
                        "dim %u k %zu rank %zu: %f vs %f", dim, k, i,
                        h[i].score, rf[i].score);
          size_t at = rank_of[strtoul(h[i].id + 1, NULL, 10)];
          ck_assert_str_eq(rf[at].id, h[i].id);
          ck_assert(fabs(rf[at].score - rf[i].score) < 1e-5);
          if (i) ck_assert(h[i - 1].score >= h[i].score);
          ck_assert_str_eq(h[i].text, h[i].id);
        }
        free(h);
      }
    }
    /* the same answers after a reopen (rows rebuilt from the file) */
    aip_vstore_close(vs);
    vs = vt_open(vt_path(name), AIP_VLOCAL_READONLY);
  }
  aip_vstore_close(vs);
  free(q);
  free(rf);
  free(recs);
  free(ids);
  free(vecs);
}
END_TEST

START_TEST(ties_are_ordered_by_id) {
  aip_vstore *vs = vt_open(vt_path("ties"), 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float same[4] = {0.5f, -1, 2, 0.25f}, other[4] = {-1, 0, 0, 0};
  static const char *ids[] = {"m", "c", "x", "a", "k", "b"};
  for (size_t i = 0; i < 6; i++) {
    aip_vrecord r = {ids[i], same, "t", "s", NULL};
    ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 4), AIPLAT_OK);
  }
  aip_vrecord o = {"0far", other, "t", "s", NULL};
  ck_assert_int_eq(aip_vstore_insert(vs, &o, 1, 4), AIPLAT_OK);
  /* move rows around: delete-and-reinsert changes the row order */
  aip_vfilter f = {AIP_VMATCH_EXACT, "s"};
  int64_t del;
  for (int round = 0; round < 3; round++) {
    for (size_t k = 1; k <= 7; k++) {
      aip_vhit *h;
      size_t n;
      ck_assert_int_eq(aip_vstore_search(vs, same, 4, k, NULL, &h, &n),
                       AIPLAT_OK);
      ck_assert_uint_eq(n, k);
      static const char *want[] = {"a", "b", "c", "k", "m", "x", "0far"};
      for (size_t i = 0; i < n; i++) ck_assert_str_eq(h[i].id, want[i]);
      free(h);
    }
    if (round == 0) {
      ck_assert_int_eq(aip_vstore_delete_source(vs, &f, &del), AIPLAT_OK);
      ck_assert_int_eq(del, 7);
      for (size_t i = 6; i-- > 0;) {
        aip_vrecord r = {ids[i], same, "t", "s", NULL};
        ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 4), AIPLAT_OK);
      }
      ck_assert_int_eq(aip_vstore_insert(vs, &o, 1, 4), AIPLAT_OK);
    } else {
      aip_vstore_close(vs);
      vs = vt_open(vt_path("ties"), 0);
    }
  }
  aip_vstore_close(vs);
}
END_TEST

/* ---- dimensions, states
 * --------------------------------------------------------- */

START_TEST(dimension_mismatch_names_both) {
  const char *path = vt_path("dim");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  vt_put(vs, 8, 1, "s");
  aip_vstore_close(vs);
  vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 16, AIP_VMETRIC_COSINE),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "8-dimensional"));
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "has 16"));
  float v[16];
  vt_vec(v, 16, 3);
  aip_vrecord r = {"x", v, "t", "s", NULL};
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 16),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "8-dimensional"));
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "has 16"));
  aip_vhit *h = (aip_vhit *)1;
  size_t n = 9;
  ck_assert_int_eq(aip_vstore_search(vs, v, 16, 3, NULL, &h, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(h);
  ck_assert_uint_eq(n, 0);
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "has 16"));
  /* the thread record carries it too */
  char msg[256];
  ck_assert_int_eq(aiplat_error_last(msg, sizeof msg),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(msg, "8-dimensional"));
  ck_assert_uint_eq(vt_count(vs), 1);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, 2), AIPLAT_ERR_NOT_SUPPORTED);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(store_without_collection) {
  aip_vstore *vs = vt_open(vt_path("new"), 0);
  ck_assert_uint_eq(vt_count(vs), 0);
  ck_assert_uint_eq(vt_report(vs).dim, 0);
  size_t n = 5;
  aip_vhit *h = vt_search(vs, 8, 1, 5, NULL, &n);
  ck_assert_ptr_null(h);
  ck_assert_uint_eq(n, 0);
  float v[8];
  vt_vec(v, 8, 1);
  aip_vrecord r = {"x", v, "t", "s", NULL};
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 8), AIPLAT_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "ensure"));
  aip_vfilter f = {AIP_VMATCH_EXACT, "s"};
  int64_t d = 7;
  ck_assert_int_eq(aip_vstore_delete_source(vs, &f, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 0);
  /* nothing written until the collection exists */
  ck_assert_uint_eq(vt_file_size(vt_path("new")), 0);
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 0, 8), AIPLAT_OK);
  aip_vstore_close(vs);
}
END_TEST

/* ---- replace, delete, filter
 * ----------------------------------------------------- */

START_TEST(same_id_replaces_and_identical_is_not_rewritten) {
  const char *path = vt_path("rep");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float v1[8], v2[8];
  vt_vec(v1, 8, 1);
  vt_vec(v2, 8, 2);
  aip_vrecord r = {"hash-1", v1, "first", "a", NULL};
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 8), AIPLAT_OK);
  r.text = "second";
  r.vector = v2;
  r.source = "b";
  r.metadata = "{\"v\":2}";
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 8), AIPLAT_OK);
  ck_assert_uint_eq(vt_count(vs), 1);
  /* the same id twice in one batch: the last one wins */
  aip_vrecord two[2] = {{"dup", v1, "one", "a", NULL},
                        {"dup", v2, "two", "a", NULL}};
  ck_assert_int_eq(aip_vstore_insert(vs, two, 2, 8), AIPLAT_OK);
  ck_assert_uint_eq(vt_count(vs), 2);
  for (int pass = 0; pass < 2; pass++) {
    aip_vhit *h;
    size_t n;
    ck_assert_int_eq(aip_vstore_search(vs, v1, 8, 5, NULL, &h, &n), AIPLAT_OK);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
      if (!strcmp(h[i].id, "hash-1")) {
        ck_assert_str_eq(h[i].text, "second");
        ck_assert_str_eq(h[i].source, "b");
        ck_assert_str_eq(h[i].metadata, "{\"v\":2}");
      } else {
        ck_assert_str_eq(h[i].id, "dup");
        ck_assert_str_eq(h[i].text, "two");
      }
    }
    free(h);
    aip_vfilter fa = {AIP_VMATCH_EXACT, "a"}, fb = {AIP_VMATCH_EXACT, "b"};
    h = vt_search(vs, 8, 1, 5, &fa, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(h[0].id, "dup");
    free(h);
    h = vt_search(vs, 8, 1, 5, &fb, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(h[0].id, "hash-1");
    free(h);
    aip_vstore_close(vs);
    vs = vt_open(path, 0);
  }
  /* re-ingesting identical content writes nothing */
  uint64_t size = vt_file_size(path);
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 8), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_insert(vs, &two[1], 1, 8), AIPLAT_OK);
  ck_assert_uint_eq(vt_file_size(path), size);
  ck_assert_uint_eq(vt_report(vs).unchanged, 2);
  /* a change in any field is written */
  r.metadata = "{\"v\":3}";
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 8), AIPLAT_OK);
  ck_assert_uint_gt(vt_file_size(path), size);
  ck_assert_uint_eq(vt_count(vs), 2);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(delete_by_source_exact_and_prefix) {
  const char *path = vt_path("del");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  vt_put(vs, 8, 1, "docs/a.md");
  vt_put(vs, 8, 2, "docs/a.md");
  vt_put(vs, 8, 3, "docs/b.md");
  vt_put(vs, 8, 4, "docs");
  vt_put(vs, 8, 5, "other/c.md");
  vt_put(vs, 8, 6, "");
  int64_t d = -5;
  aip_vfilter f = {AIP_VMATCH_EXACT, "docs/a.md"};
  ck_assert_int_eq(aip_vstore_delete_source(vs, &f, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 2);
  ck_assert_uint_eq(vt_count(vs), 4);
  /* nothing matches: nothing written */
  uint64_t size = vt_file_size(path);
  ck_assert_int_eq(aip_vstore_delete_source(vs, &f, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 0);
  ck_assert_uint_eq(vt_file_size(path), size);
  /* a prefix: "docs/" takes docs/b.md, not "docs" */
  aip_vfilter p = {AIP_VMATCH_PREFIX, "docs/"};
  ck_assert_int_eq(aip_vstore_delete_source(vs, &p, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 1);
  /* re-inserting a deleted id brings it back */
  vt_put(vs, 8, 1, "docs/a.md");
  aip_vstore_close(vs);
  vs = vt_open(path, AIP_VLOCAL_READONLY);
  ck_assert_uint_eq(vt_count(vs), 4);
  size_t n;
  aip_vhit *h = vt_search(vs, 8, 1, 10, NULL, &n);
  ck_assert_uint_eq(n, 4);
  for (size_t i = 0; i < n; i++) {
    ck_assert_str_ne(h[i].id, "id2");
    ck_assert_str_ne(h[i].id, "id3");
  }
  free(h);
  vt_assert_finds(vs, 8, 1);
  vt_assert_finds(vs, 8, 4);
  vt_assert_finds(vs, 8, 6);
  aip_vstore_close(vs);
  vs = vt_open(path, 0);
  aip_vfilter e = {AIP_VMATCH_EXACT, ""};
  ck_assert_int_eq(aip_vstore_delete_source(vs, &e, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 1);
  aip_vfilter all = {AIP_VMATCH_PREFIX, ""};
  ck_assert_int_eq(aip_vstore_delete_source(vs, &all, &d),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_delete_source(vs, NULL, &d),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(vt_count(vs), 3);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(source_ids_list_a_source) {
  const char *path = vt_path("ids");
  aip_vstore *vs = vt_open(path, 0);
  char **ids = (char **)1;
  size_t n = 9;
  /* No collection yet: none. */
  ck_assert_int_eq(aip_vstore_source_ids(vs, "a.md", 10, &ids, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert_ptr_null(ids);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  vt_put(vs, 8, 1, "a.md");
  vt_put(vs, 8, 2, "b.md");
  vt_put(vs, 8, 3, "a.md");
  vt_put(vs, 8, 4, "a.mdx");
  ck_assert_int_eq(aip_vstore_source_ids(vs, "a.md", 10, &ids, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 2);
  bool one = false, three = false;
  for (size_t i = 0; i < n; i++) {
    one |= strcmp(ids[i], "id1") == 0;
    three |= strcmp(ids[i], "id3") == 0;
  }
  ck_assert(one && three);
  free(ids);
  ck_assert_int_eq(aip_vstore_source_ids(vs, "a.md", 1, &ids, &n),
                   AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(aip_vstore_source_ids(vs, "a.md", 0, &ids, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aip_vstore_source_ids(vs, "a.md", AIP_VSTORE_MAX_LIMIT, &ids, &n),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_source_ids(vs, "\xff", 10, &ids, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_source_ids(vs, NULL, 10, &ids, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_source_ids(vs, "nothing", 10, &ids, &n),
                   AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  /* A reader sees what the writer committed, and deletions. */
  aip_vstore *r = vt_open(path, AIP_VLOCAL_READONLY);
  aip_vfilter f = {AIP_VMATCH_EXACT, "a.md"};
  ck_assert_int_eq(aip_vstore_delete_source(vs, &f, NULL), AIPLAT_OK);
  vt_put(vs, 8, 5, "a.md");
  ck_assert_int_eq(aip_vstore_source_ids(r, "a.md", 10, &ids, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(ids[0], "id5");
  free(ids);
  aip_vstore_close(r);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(search_filters_on_source) {
  aip_vstore *vs = vt_open(vt_path("flt"), 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  static const char *src[] = {"web/x", "web/y", "file/z", "web", ""};
  for (unsigned k = 0; k < 50; k++) vt_put(vs, 8, k, src[k % 5]);
  struct {
    aip_vmatch m;
    const char *s;
    size_t expect;
  } cases[] = {
      {AIP_VMATCH_EXACT, "web/x", 10}, {AIP_VMATCH_EXACT, "web", 10},
      {AIP_VMATCH_PREFIX, "web", 30},  {AIP_VMATCH_PREFIX, "web/", 20},
      {AIP_VMATCH_EXACT, "", 10},      {AIP_VMATCH_PREFIX, "", 50},
      {AIP_VMATCH_EXACT, "nope", 0},   {AIP_VMATCH_PREFIX, "web/x/", 0},
      {AIP_VMATCH_ANY, NULL, 50},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    aip_vfilter f = {cases[c].m, cases[c].s};
    size_t n;
    aip_vhit *h = vt_search(vs, 8, 3, 100, &f, &n);
    ck_assert_msg(n == cases[c].expect, "case %zu: %zu hits", c, n);
    for (size_t i = 0; i < n; i++) {
      if (cases[c].m == AIP_VMATCH_EXACT)
        ck_assert_str_eq(h[i].source, cases[c].s);
      if (cases[c].m == AIP_VMATCH_PREFIX)
        ck_assert(!strncmp(h[i].source, cases[c].s, strlen(cases[c].s)));
    }
    /* a filtered top-k is the filtered brute force: best first */
    for (size_t i = 1; i < n; i++) ck_assert(h[i - 1].score >= h[i].score);
    free(h);
  }
  /* limit smaller than the matches */
  aip_vfilter f = {AIP_VMATCH_PREFIX, "web/"};
  size_t n;
  aip_vhit *h = vt_search(vs, 8, 7, 3, &f, &n);
  ck_assert_uint_eq(n, 3);
  free(h);
  aip_vstore_close(vs);
}
END_TEST

/* ---- validation
 * ----------------------------------------------------------------- */

START_TEST(non_finite_vectors_are_refused) {
  aip_vstore *vs = vt_open(vt_path("nonfinite"), 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float ok[4] = {1, 2, 3, 4};
  const struct {
    float v[4];
    const char *element;
  } bad[] = {
      {{NAN, 1, 1, 1}, "element 0"},
      {{1, 1, 1, -NAN}, "element 3"},
      {{1, INFINITY, 1, 1}, "element 1"},
      {{1, 1, -INFINITY, 1}, "element 2"},
      {{FLT_MAX, 1, INFINITY, NAN}, "element 2"},
  };
  for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
    aip_vrecord r[2] = {{"fine", ok, "", "", NULL},
                        {"x", bad[c].v, "", "", NULL}};
    ck_assert_int_eq(aip_vstore_insert(vs, r, 2, 4),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(vt_err(vs), "record 1") &&
                      strstr(vt_err(vs), bad[c].element) &&
                      strstr(vt_err(vs), "not a finite number"),
                  "case %zu: %s", c, vt_err(vs));
    aip_vhit *h = (aip_vhit *)1;
    size_t n = 9;
    ck_assert_int_eq(aip_vstore_search(vs, bad[c].v, 4, 3, NULL, &h, &n),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(vt_err(vs), "query") &&
                      strstr(vt_err(vs), bad[c].element) &&
                      strstr(vt_err(vs), "not a finite number"),
                  "case %zu: %s", c, vt_err(vs));
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(n, 0);
  }
  ck_assert_uint_eq(vt_count(vs), 0); /* nothing of a refused batch */
  aip_vstore_close(vs);
}
END_TEST

START_TEST(bad_arguments_are_refused_clearly) {
  aip_vstore *vs = vt_open(vt_path("bad"), 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float ok[4] = {1, 2, 3, 4}, zero[4] = {0}, nan[4] = {1, NAN, 0, 0},
        inf[4] = {INFINITY, 0, 0, 0};
  char longid[AIP_VSTORE_MAX_ID + 2];
  memset(longid, 'x', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  struct {
    aip_vrecord r;
    aiplat_status st;
    const char *msg;
  } cases[] = {
      {{"", ok, "", "", NULL}, AIPLAT_ERR_INVALID_ARGUMENT, "id is empty"},
      {{NULL, ok, "", "", NULL}, AIPLAT_ERR_INVALID_ARGUMENT, "id is empty"},
      {{longid, ok, "", "", NULL}, AIPLAT_ERR_TOO_LARGE, "id is longer"},
      {{"a", NULL, "", "", NULL}, AIPLAT_ERR_INVALID_ARGUMENT, "no vector"},
      {{"a", zero, "", "", NULL}, AIPLAT_ERR_INVALID_ARGUMENT, "zero vector"},
      {{"a", nan, "", "", NULL}, AIPLAT_ERR_INVALID_ARGUMENT, "element 1"},
      {{"a", inf, "", "", NULL}, AIPLAT_ERR_INVALID_ARGUMENT, "element 0"},
      {{"a", ok, "bad \xc3(", "", NULL},
       AIPLAT_ERR_INVALID_ARGUMENT,
       "text is not valid UTF-8"},
      {{"a", ok, "", "\xff", NULL},
       AIPLAT_ERR_INVALID_ARGUMENT,
       "source is not valid UTF-8"},
      {{"a", ok, "", "", "{broken"},
       AIPLAT_ERR_INVALID_ARGUMENT,
       "not a JSON object"},
      {{"a", ok, "", "", "[1,2]"},
       AIPLAT_ERR_INVALID_ARGUMENT,
       "not a JSON object"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    aip_vrecord two[2] = {{"fine", ok, "", "", NULL}, cases[c].r};
    aiplat_status st = aip_vstore_insert(vs, two, 2, 4);
    ck_assert_msg(st == cases[c].st, "case %zu: %s", c, aiplat_status_str(st));
    ck_assert_msg(strstr(vt_err(vs), cases[c].msg), "case %zu: %s", c,
                  vt_err(vs));
    ck_assert_ptr_nonnull(strstr(vt_err(vs), "record 1"));
  }
  ck_assert_uint_eq(vt_count(vs), 0); /* all or nothing */
  char *big = malloc(AIP_VSTORE_MAX_TEXT + 2);
  memset(big, 'a', AIP_VSTORE_MAX_TEXT + 1);
  big[AIP_VSTORE_MAX_TEXT + 1] = '\0';
  aip_vrecord r = {"a", ok, big, "", NULL};
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 4), AIPLAT_ERR_TOO_LARGE);
  big[AIP_VSTORE_MAX_TEXT] = '\0'; /* exactly at the limit: fine */
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 4), AIPLAT_OK);
  free(big);
  ck_assert_int_eq(aip_vstore_insert(vs, NULL, 1, 4),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_insert(vs, &r, AIP_VSTORE_MAX_BATCH + 1, 4),
                   AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_insert(NULL, &r, 1, 4),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_ensure(vs, 0, AIP_VMETRIC_COSINE),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aip_vstore_ensure(vs, AIP_VSTORE_MAX_DIM + 1, AIP_VMETRIC_COSINE),
      AIPLAT_ERR_INVALID_ARGUMENT);

  aip_vhit *h;
  size_t n;
  ck_assert_int_eq(aip_vstore_search(vs, ok, 4, 0, NULL, &h, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aip_vstore_search(vs, ok, 4, AIP_VSTORE_MAX_LIMIT + 1, NULL, &h, &n),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_search(vs, zero, 4, 1, NULL, &h, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(vt_err(vs), "query"));
  ck_assert_int_eq(aip_vstore_search(vs, NULL, 4, 1, NULL, &h, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_search(vs, ok, 4, 1, NULL, NULL, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aip_vfilter f1 = {AIP_VMATCH_EXACT, NULL}, f2 = {(aip_vmatch)9, "x"};
  ck_assert_int_eq(aip_vstore_search(vs, ok, 4, 1, &f1, &h, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_search(vs, ok, 4, 1, &f2, &h, &n),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aip_vstore_search(vs, ok, 4, AIP_VSTORE_MAX_LIMIT, NULL, &h, &n),
      AIPLAT_OK);
  ck_assert_uint_eq(n, 1);
  free(h);
  uint64_t c;
  ck_assert_int_eq(aip_vstore_count(vs, NULL), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_count(NULL, &c), AIPLAT_ERR_INVALID_ARGUMENT);
  aip_vstore_close(vs);
  aip_vstore_close(NULL);

  aip_vstore *x = (aip_vstore *)1;
  ck_assert_int_eq(aip_vstore_local_open(&x, "", 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(x);
  ck_assert_int_eq(aip_vstore_local_open(&x, NULL, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_local_open(NULL, "x", 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_local_open(&x, vt_path("f"), 0x100),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aip_vstore_local_open(&x, vt_path("missing"), AIP_VLOCAL_READONLY),
      AIPLAT_ERR_NOT_FOUND);
  ck_assert_int_eq(aip_vstore_local_open(&x, vt_dir, AIP_VLOCAL_READONLY),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aip_vstore_local_open(&x, vt_dir, 0), AIPLAT_ERR_IO);
  ck_assert_int_eq(aip_vstore_local_open(&x, "/nonexistent-dir/kb", 0),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(x);
}
END_TEST

/* ---- modes: one writer, read-only readers
 * ------------------------------------------ */

START_TEST(one_writer_at_a_time) {
  const char *path = vt_path("lock");
  aip_vstore *w = vt_open(path, 0), *w2 = NULL;
  ck_assert_int_eq(aip_vstore_ensure(w, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_local_open(&w2, path, 0), AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_nonnull(strstr(vt_err(NULL), "open for writing elsewhere"));
  ck_assert_ptr_null(w2);
  aip_vstore *r = vt_open(path, AIP_VLOCAL_READONLY);
  float v[8];
  vt_vec(v, 8, 1);
  aip_vrecord rec = {"x", v, "t", "s", NULL};
  ck_assert_int_eq(aip_vstore_insert(r, &rec, 1, 8), AIPLAT_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(vt_err(r), "read-only"));
  aip_vfilter f = {AIP_VMATCH_EXACT, "s"};
  ck_assert_int_eq(aip_vstore_delete_source(r, &f, NULL), AIPLAT_ERR_STATE);
  ck_assert_int_eq(aip_vstore_local_compact(r), AIPLAT_ERR_STATE);
  aip_vstore_close(w);
  w2 = vt_open(path, 0);
  aip_vstore_close(w2);
  aip_vstore_close(r);
}
END_TEST

START_TEST(readers_see_what_the_writer_commits) {
  const char *path = vt_path("live");
  aip_vstore *w = vt_open(path, 0);
  aip_vstore *r = vt_open(path, AIP_VLOCAL_READONLY); /* empty file yet */
  ck_assert_uint_eq(vt_count(r), 0);
  ck_assert_int_eq(aip_vstore_ensure(r, 8, AIP_VMETRIC_COSINE),
                   AIPLAT_ERR_STATE);
  ck_assert_int_eq(aip_vstore_ensure(w, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  ck_assert_uint_eq(vt_count(r), 0);
  for (unsigned k = 0; k < 20; k++) {
    vt_put(w, 8, k, k % 2 ? "odd" : "even");
    ck_assert_uint_eq(vt_count(r), k + 1);
    vt_assert_finds(r, 8, k);
  }
  aip_vfilter f = {AIP_VMATCH_EXACT, "odd"};
  int64_t d;
  ck_assert_int_eq(aip_vstore_delete_source(w, &f, &d), AIPLAT_OK);
  ck_assert_int_eq(d, 10);
  ck_assert_uint_eq(vt_count(r), 10);
  /* the writer compacts: the reader follows the new file */
  uint64_t before = vt_file_size(path);
  ck_assert_int_eq(aip_vstore_local_compact(w), AIPLAT_OK);
  ck_assert_uint_lt(vt_file_size(path), before);
  vt_put(w, 8, 100, "even");
  ck_assert_uint_eq(vt_count(r), 11);
  vt_assert_finds(r, 8, 100);
  vt_assert_finds(r, 8, 0);
  ck_assert_int_eq(aip_vstore_local_refresh(r), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_local_refresh(w), AIPLAT_OK);
  aip_vstore_close(w);
  aip_vstore_close(r);
}
END_TEST

START_TEST(compaction_keeps_the_live_records) {
  const char *path = vt_path("cmp");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, 8, AIP_VMETRIC_COSINE), AIPLAT_OK);
  for (unsigned k = 0; k < 30; k++) vt_put(vs, 8, k, k < 10 ? "gone" : "kept");
  for (unsigned k = 10; k < 20; k++) vt_put(vs, 8, k + 1000, "kept");
  float v[8];
  vt_vec(v, 8, 25);
  aip_vrecord r = {"id25", v, "text 25", "kept", "{\"replaced\":true}"};
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, 8), AIPLAT_OK);
  aip_vfilter f = {AIP_VMATCH_EXACT, "gone"};
  ck_assert_int_eq(aip_vstore_delete_source(vs, &f, NULL), AIPLAT_OK);
  uint64_t live = vt_count(vs), before = vt_file_size(path);
  ck_assert_uint_eq(live, 30);
  ck_assert_int_eq(aip_vstore_local_compact(vs), AIPLAT_OK);
  ck_assert_uint_lt(vt_file_size(path), before);
  ck_assert_uint_eq(vt_count(vs), live);
  vt_put(vs, 8, 5000, "new");
  for (int pass = 0; pass < 2; pass++) {
    ck_assert_uint_eq(vt_count(vs), live + 1);
    for (unsigned k = 10; k < 30; k++) vt_assert_finds(vs, 8, k);
    vt_assert_finds(vs, 8, 5000);
    aip_vfilter g = {AIP_VMATCH_EXACT, "gone"};
    size_t n;
    aip_vhit *h = vt_search(vs, 8, 1, 10, &g, &n);
    ck_assert_uint_eq(n, 0);
    free(h);
    h = vt_search(vs, 8, 25, 1, NULL, &n);
    ck_assert_str_eq(h[0].metadata, "{\"replaced\":true}");
    free(h);
    aip_vstore_close(vs);
    vs = vt_open(path, 0);
  }
  ck_assert_int_ne(access(vt_path("cmp.compact"), F_OK), 0);
  aip_vstore_close(vs);
}
END_TEST

/* ---- configuration
 * ------------------------------------------------------------------- */

START_TEST(open_from_configuration) {
  aiplat_config *cfg;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  aip_vstore *vs = NULL;
  ck_assert_int_eq(
      aiplat_config_set(cfg, "VECTOR_STORE_PATH", vt_path("cfg.aipvs")),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "local"), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, true), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_backend(vs), "local");
  ck_assert_int_eq(aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE), AIPLAT_OK);
  aip_vstore_close(vs);
  ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, false), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_ensure(vs, 4, AIP_VMETRIC_COSINE), AIPLAT_OK);
  aip_vstore_close(vs);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "milvus"), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, false), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_backend(vs), "milvus"); /* nothing sent yet */
  aip_vstore_close(vs);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "redis"), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, false), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_nonnull(strstr(vt_err(NULL), "VECTOR_STORE"));
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", NULL), AIPLAT_OK);
  if (!getenv("MILVUS_HOST")) {
    ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, false), AIPLAT_OK);
    aip_vstore_close(vs);
  }
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", "milvus.ai-ml"),
                   AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, false), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_backend(vs), "milvus");
  ck_assert_str_eq(aip_vstore_milvus_url(vs), "http://milvus.ai-ml:19530");
  aip_vstore_close(vs);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "local"), AIPLAT_OK);
  ck_assert_int_eq(aip_vstore_open_config(&vs, cfg, false), AIPLAT_OK);
  ck_assert_str_eq(aip_vstore_backend(vs), "local");
  aip_vstore_close(vs);
  vs = NULL;
  ck_assert_int_eq(aip_vstore_open_config(&vs, NULL, false),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_config_destroy(cfg);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("vstore");
  TCase *tc = tcase_create("vstore");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, crc32c_known_values);
  tcase_add_test(tc, utf8_validation);
  tcase_add_test(tc, round_trip_survives_reopen);
  tcase_add_test(tc, scores_are_cosine_and_independent_of_scale);
  tcase_add_test(tc, tiny_vectors_score_like_any_other);
  tcase_add_test(tc, largest_dimension);
  tcase_add_loop_test(tc, top_k_matches_brute_force, 0, 6);
  tcase_add_test(tc, ties_are_ordered_by_id);
  tcase_add_test(tc, dimension_mismatch_names_both);
  tcase_add_test(tc, store_without_collection);
  tcase_add_test(tc, same_id_replaces_and_identical_is_not_rewritten);
  tcase_add_test(tc, delete_by_source_exact_and_prefix);
  tcase_add_test(tc, source_ids_list_a_source);
  tcase_add_test(tc, search_filters_on_source);
  tcase_add_test(tc, bad_arguments_are_refused_clearly);
  tcase_add_test(tc, non_finite_vectors_are_refused);
  tcase_add_test(tc, one_writer_at_a_time);
  tcase_add_test(tc, readers_see_what_the_writer_commits);
  tcase_add_test(tc, compaction_keeps_the_live_records);
  tcase_add_test(tc, open_from_configuration);
  suite_add_tcase(s, tc);
  return s;
}
