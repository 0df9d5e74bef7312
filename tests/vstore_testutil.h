/* Helpers shared by the vector-store tests: temporary files, deterministic
 * vectors, file surgery. */
#ifndef TH_VSTORE_TESTUTIL_H
#define TH_VSTORE_TESTUTIL_H

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/testutil.h"
#include "vstore.h"

/* A fresh temporary directory per test; files inside are removed at the
 * end by vt_cleanup(). */
static char vt_dir[64];

static inline void vt_setup(void) {
  snprintf(vt_dir, sizeof vt_dir, "/tmp/aiplat-vstore-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(vt_dir));
}

static inline int vt_rm(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* In-process removal: a fork per test (system("rm")) costs seconds under
 * valgrind. */
static inline void vt_cleanup(void) {
  ck_assert_int_eq(nftw(vt_dir, vt_rm, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* A path inside the test directory (static buffer per call site slot). */
static inline const char *vt_path(const char *name) {
  static char bufs[8][128];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", vt_dir, name);
  return b;
}

/* xorshift64*: deterministic data from a seed. */
static inline uint64_t vt_rand(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

/* A vector in [-1, 1)^dim, a function of seed only. */
static inline void vt_vec(float *v, uint32_t dim, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint32_t i = 0; i < dim; i++)
    v[i] =
        (float)((double)(vt_rand(&s) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static inline uint64_t vt_file_size(const char *path) {
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  return (uint64_t)st.st_size;
}

/* Whole file into memory (free it). */
static inline unsigned char *vt_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static inline void vt_write_file(const char *path, const void *data,
                                 size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  if (len) ck_assert_uint_eq(fwrite(data, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
}

/* Open a local store, failing the test with the message when it fails. */
static inline aip_vstore *vt_open(const char *path, unsigned flags) {
  aip_vstore *vs = NULL;
  aiplat_status st = aip_vstore_local_open(&vs, path, flags);
  char msg[512];
  aiplat_error_last(msg, sizeof msg);
  ck_assert_msg(st == AIPLAT_OK, "open %s: %s: %s", path, aiplat_status_str(st),
                msg);
  return vs;
}

static inline uint64_t vt_count(aip_vstore *vs) {
  uint64_t n = 0;
  ck_assert_int_eq(aip_vstore_count(vs, &n), AIPLAT_OK);
  return n;
}

static inline aip_vlocal_report vt_report(aip_vstore *vs) {
  aip_vlocal_report r;
  ck_assert_int_eq(aip_vstore_local_report(vs, &r), AIPLAT_OK);
  return r;
}

static inline const char *vt_err(aip_vstore *vs) {
  static char msg[512];
  if (vs)
    aip_vstore_last_error(vs, msg, sizeof msg);
  else
    aiplat_error_last(msg, sizeof msg);
  return msg;
}

/* Insert one record "id<k>" with the vector of seed k, text "text <k>",
 * source `src`, as its own batch. */
static inline void vt_put(aip_vstore *vs, uint32_t dim, unsigned k,
                          const char *src) {
  float v[512];
  char id[32], text[32];
  ck_assert_uint_le(dim, 512);
  vt_vec(v, dim, k);
  snprintf(id, sizeof id, "id%u", k);
  snprintf(text, sizeof text, "text %u", k);
  aip_vrecord r = {id, v, text, src, NULL};
  aiplat_status st = aip_vstore_insert(vs, &r, 1, dim);
  ck_assert_msg(st == AIPLAT_OK, "insert: %s", vt_err(vs));
}

/* Search with the vector of seed k; returns the hits (free them). */
static inline aip_vhit *vt_search(aip_vstore *vs, uint32_t dim, unsigned k,
                                  size_t limit, const aip_vfilter *f,
                                  size_t *n) {
  float v[512];
  vt_vec(v, dim, k);
  aip_vhit *h = NULL;
  aiplat_status st = aip_vstore_search(vs, v, dim, limit, f, &h, n);
  ck_assert_msg(st == AIPLAT_OK, "search: %s", vt_err(vs));
  return h;
}

/* The record with seed k is found first, with its text. */
static inline void vt_assert_finds(aip_vstore *vs, uint32_t dim, unsigned k) {
  size_t n;
  aip_vhit *h = vt_search(vs, dim, k, 1, NULL, &n);
  char id[32], text[32];
  snprintf(id, sizeof id, "id%u", k);
  snprintf(text, sizeof text, "text %u", k);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(h[0].id, id);
  ck_assert_str_eq(h[0].text, text);
  ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-5f);
  free(h);
}

#endif
