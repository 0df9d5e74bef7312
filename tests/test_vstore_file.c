/* Vector store file: torn tails (a crash at every byte of the last
 * record), corrupted bytes, damage in the middle, files that are not
 * stores, empty files, an unfinished creation, a full disk. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>

#include "vstore_testutil.h"

#define DIM 4

static unsigned char *orig; /* the reference file */
static size_t orig_len;
static uint64_t last_start; /* offset of the last batch (record 4 alone) */
static uint64_t mid_start;  /* offset of the batch before: records 5..7 */

static void setup(void) {
  vt_setup();
  aiplat_log_set_level(AIPLAT_LOG_ERROR); /* the expected warnings */
}

static void teardown(void) {
  free(orig);
  orig = NULL;
  aiplat_log_reset_level();
  vt_cleanup();
}

/* The reference store: batch A = records 1..3, batch B = records 5..7,
 * batch C = record 4 alone (the last one). */
static void make_reference(void) {
  const char *path = vt_path("ref");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  float v[7][DIM];
  char ids[7][8], texts[7][16];
  aip_vrecord r[7];
  for (unsigned k = 1; k <= 7; k++) {
    vt_vec(v[k - 1], DIM, k);
    snprintf(ids[k - 1], 8, "id%u", k);
    snprintf(texts[k - 1], 16, "text %u", k);
    r[k - 1] = (aip_vrecord){ids[k - 1], v[k - 1], texts[k - 1], "src", NULL};
  }
  ck_assert_int_eq(aip_vstore_insert(vs, r, 3, DIM), AIPLAT_OK);
  mid_start = vt_report(vs).committed_bytes;
  ck_assert_int_eq(aip_vstore_insert(vs, r + 4, 3, DIM), AIPLAT_OK);
  last_start = vt_report(vs).committed_bytes;
  ck_assert_int_eq(aip_vstore_insert(vs, r + 3, 1, DIM), AIPLAT_OK);
  aip_vstore_close(vs);
  orig = vt_read_file(path, &orig_len);
  ck_assert_uint_gt(orig_len, last_start);
}

static void assert_records(aip_vstore *vs, const unsigned *ks, size_t n) {
  ck_assert_uint_eq(vt_count(vs), n);
  for (size_t i = 0; i < n; i++) vt_assert_finds(vs, DIM, ks[i]);
}

static const unsigned ALL[] = {1, 2, 3, 5, 6, 7, 4};

/* ---- torn tails
 * ----------------------------------------------------------------------- */

START_TEST(torn_last_record_at_every_byte) {
  make_reference();
  const char *path = vt_path("torn");
  for (size_t cut = last_start + 1; cut < orig_len; cut++) {
    vt_write_file(path, orig, cut);
    /* read-only: the tail is ignored and the file left alone */
    aip_vstore *vs = vt_open(path, AIP_VLOCAL_READONLY);
    assert_records(vs, ALL, 6);
    aip_vlocal_report r = vt_report(vs);
    ck_assert_uint_eq(r.torn_bytes, cut - last_start);
    ck_assert(!r.truncated);
    aip_vstore_close(vs);
    ck_assert_uint_eq(vt_file_size(path), cut);
    /* writable: cut off, and the store goes on */
    vs = vt_open(path, 0);
    assert_records(vs, ALL, 6);
    r = vt_report(vs);
    ck_assert_uint_eq(r.torn_bytes, cut - last_start);
    ck_assert_uint_eq(r.torn_records, 0);
    ck_assert(r.truncated);
    ck_assert_uint_eq(vt_file_size(path), last_start);
    vt_put(vs, DIM, 4, "src");
    aip_vstore_close(vs);
    vs = vt_open(path, AIP_VLOCAL_READONLY);
    assert_records(vs, ALL, 7);
    ck_assert_uint_eq(vt_report(vs).torn_bytes, 0);
    aip_vstore_close(vs);
  }
  /* a cut exactly at a record boundary is a clean file */
  vt_write_file(path, orig, last_start);
  aip_vstore *vs = vt_open(path, 0);
  assert_records(vs, ALL, 6);
  ck_assert(!vt_report(vs).truncated);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(torn_batch_is_dropped_whole) {
  make_reference();
  const char *path = vt_path("tornbatch");
  /* Cut inside the third record of batch B: its first two records are
   * complete but not committed, so the whole batch goes. */
  size_t rec = (last_start - mid_start) / 3;
  size_t cut = mid_start + 2 * rec + rec / 2;
  vt_write_file(path, orig, cut);
  aip_vstore *vs = vt_open(path, 0);
  assert_records(vs, ALL, 3);
  aip_vlocal_report r = vt_report(vs);
  ck_assert_uint_eq(r.torn_records, 2);
  ck_assert_uint_eq(r.torn_bytes, cut - mid_start);
  ck_assert_uint_eq(vt_file_size(path), mid_start);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(corrupt_byte_in_last_record_drops_it) {
  make_reference();
  const char *path = vt_path("flip");
  unsigned char *b = malloc(orig_len);
  for (size_t at = last_start; at < orig_len; at++) {
    memcpy(b, orig, orig_len);
    b[at] ^= 0x5A;
    vt_write_file(path, b, orig_len);
    aip_vstore *vs = NULL;
    aiplat_status st = aip_vstore_local_open(&vs, path, 0);
    ck_assert_msg(st == AIPLAT_OK, "byte %zu: %s", at, vt_err(NULL));
    assert_records(vs, ALL, 6);
    ck_assert(vt_report(vs).truncated);
    aip_vstore_close(vs);
    ck_assert_uint_eq(vt_file_size(path), last_start);
  }
  free(b);
}
END_TEST

START_TEST(garbage_or_zeros_after_the_last_batch) {
  make_reference();
  const char *path = vt_path("tail");
  size_t extra = 5000;
  unsigned char *b = calloc(1, orig_len + extra);
  memcpy(b, orig, orig_len);
  for (int kind = 0; kind < 3; kind++) {
    uint64_t s = 99;
    for (size_t i = 0; i < extra; i++)
      b[orig_len + i] = kind == 0   ? 0
                        : kind == 1 ? (unsigned char)vt_rand(&s)
                                    : 'V';
    vt_write_file(path, b, orig_len + extra);
    aip_vstore *vs = vt_open(path, 0);
    assert_records(vs, ALL, 7);
    ck_assert_uint_eq(vt_report(vs).torn_bytes, extra);
    aip_vstore_close(vs);
    ck_assert_uint_eq(vt_file_size(path), orig_len);
  }
  free(b);
}
END_TEST

START_TEST(reader_follows_a_tail_rewritten_to_the_same_length) {
  make_reference();
  const char *path = vt_path("rewrite");
  unsigned char *b = malloc(orig_len);
  memcpy(b, orig, orig_len);
  b[orig_len - 20] ^= 1; /* the last record is torn (bad checksum) */
  vt_write_file(path, b, orig_len);
  free(b);
  struct timespec past[2] = {{1000000, 0}, {1000000, 0}};
  ck_assert_int_eq(utimensat(AT_FDCWD, path, past, 0), 0);
  aip_vstore *r = vt_open(path, AIP_VLOCAL_READONLY);
  assert_records(r, ALL, 6);
  /* a new writer cuts the tail and writes a record of the same length */
  aip_vstore *w = vt_open(path, 0);
  vt_put(w, DIM, 4, "src");
  ck_assert_uint_eq(vt_file_size(path), orig_len);
  assert_records(r, ALL, 7);
  aip_vstore_close(w);
  aip_vstore_close(r);
}
END_TEST

/* ---- damage in the middle
 * ------------------------------------------------------------ */

START_TEST(damage_before_a_later_batch_is_corruption) {
  make_reference();
  const char *path = vt_path("mid");
  size_t rec = (last_start - mid_start) / 3;
  /* every byte of the second record of batch B (followed by batch C) */
  for (size_t at = mid_start + rec; at < mid_start + 2 * rec; at++) {
    unsigned char *b = malloc(orig_len);
    memcpy(b, orig, orig_len);
    b[at] ^= 0x01;
    vt_write_file(path, b, orig_len);
    for (int ro = 0; ro < 2; ro++) {
      aip_vstore *vs = NULL;
      aiplat_status st =
          aip_vstore_local_open(&vs, path, ro ? AIP_VLOCAL_READONLY : 0);
      ck_assert_msg(st == AIPLAT_ERR_CORRUPT, "byte %zu: %s", at,
                    aiplat_status_str(st));
      ck_assert_ptr_null(vs);
      char want[64];
      snprintf(want, sizeof want, "offset %zu", (size_t)(mid_start + rec));
      ck_assert_msg(strstr(vt_err(NULL), want), "%s", vt_err(NULL));
      ck_assert_ptr_nonnull(strstr(vt_err(NULL), "salvage"));
    }
    /* the file was not touched */
    size_t len;
    unsigned char *now = vt_read_file(path, &len);
    ck_assert_uint_eq(len, orig_len);
    ck_assert(memcmp(now, b, len) == 0);
    free(now);
    free(b);
  }
}
END_TEST

START_TEST(salvage_skips_the_damage) {
  make_reference();
  const char *path = vt_path("salv");
  size_t rec = (last_start - mid_start) / 3;
  unsigned char *b = malloc(orig_len);
  memcpy(b, orig, orig_len);
  b[mid_start + rec + 50] ^= 0xFF; /* inside record 6 */
  vt_write_file(path, b, orig_len);
  free(b);
  static const unsigned left[] = {1, 2, 3, 5, 7, 4};
  aip_vstore *vs = vt_open(path, AIP_VLOCAL_READONLY | AIP_VLOCAL_SALVAGE);
  assert_records(vs, left, 6);
  aip_vlocal_report r = vt_report(vs);
  ck_assert_uint_eq(r.damaged_regions, 1);
  ck_assert_uint_eq(r.damaged_bytes, rec);
  aip_vstore_close(vs);
  ck_assert_uint_eq(vt_file_size(path), orig_len); /* read-only: untouched */
  /* writable salvage rewrites the file without the damage */
  vs = vt_open(path, AIP_VLOCAL_SALVAGE);
  assert_records(vs, left, 6);
  aip_vstore_close(vs);
  vs = vt_open(path, 0);
  assert_records(vs, left, 6);
  ck_assert_uint_eq(vt_report(vs).damaged_regions, 0);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(batch_without_its_commit_before_a_later_batch) {
  make_reference();
  /* Records 1..3 (batch A) have the same size; copying record 2 over
   * record 3 leaves batch A with good records but no COMMIT, followed by
   * batch B: not a torn write, corruption. */
  size_t rec = (mid_start - 64) / 3;
  unsigned char *b = malloc(orig_len);
  memcpy(b, orig, orig_len);
  memcpy(b + 64 + 2 * rec, b + 64 + rec, rec);
  const char *path = vt_path("nocommit");
  vt_write_file(path, b, orig_len);
  free(b);
  aip_vstore *vs = NULL;
  ck_assert_int_eq(aip_vstore_local_open(&vs, path, 0), AIPLAT_ERR_CORRUPT);
  char want[64];
  snprintf(want, sizeof want, "offset %zu", (size_t)mid_start);
  ck_assert_msg(strstr(vt_err(NULL), want), "%s", vt_err(NULL));
  ck_assert_uint_eq(vt_file_size(path), orig_len);
  /* salvage keeps every good record, record 2's copy included */
  vs = vt_open(path, AIP_VLOCAL_READONLY | AIP_VLOCAL_SALVAGE);
  static const unsigned left[] = {1, 2, 5, 6, 7, 4};
  assert_records(vs, left, 6);
  aip_vlocal_report r = vt_report(vs);
  ck_assert_uint_eq(r.damaged_regions, 1);
  ck_assert_uint_eq(r.damaged_bytes, 0);
  aip_vstore_close(vs);
}
END_TEST

/* ---- not a store, empty, unfinished creation, other versions
 * ------------------------------ */

START_TEST(a_file_that_is_not_a_store) {
  const char *path = vt_path("notes.txt");
  static const char *texts[] = {
      ("These are my notes, not a vector store. They go on for a while so "
       "that the file is longer than a header.\n"),
      "short\n",
      "x",
  };
  for (size_t i = 0; i < 3; i++) {
    vt_write_file(path, texts[i], strlen(texts[i]));
    for (int ro = 0; ro < 2; ro++) {
      aip_vstore *vs = NULL;
      ck_assert_int_eq(
          aip_vstore_local_open(&vs, path, ro ? AIP_VLOCAL_READONLY : 0),
          AIPLAT_ERR_CORRUPT);
      ck_assert_ptr_nonnull(
          strstr(vt_err(NULL), "is not a libaiplat vector store"));
      ck_assert_ptr_nonnull(strstr(vt_err(NULL), path));
      size_t len;
      unsigned char *now = vt_read_file(path, &len);
      ck_assert_uint_eq(len, strlen(texts[i]));
      ck_assert(memcmp(now, texts[i], len) == 0);
      free(now);
    }
  }
}
END_TEST

static void write_header(const char *path, uint32_t version, uint32_t dim,
                         uint32_t metric, bool good_crc) {
  unsigned char h[64] = {'A', 'I', 'P', 'L', 'A', 'T', 'V', 'S'};
  h[8] = (unsigned char)version;
  h[12] = 64;
  h[16] = (unsigned char)dim;
  h[17] = (unsigned char)(dim >> 8);
  h[20] = (unsigned char)metric;
  h[24] = 16;
  uint32_t c = aip_crc32c(0, h, 60) ^ (good_crc ? 0 : 1);
  for (int i = 0; i < 4; i++) h[60 + i] = (unsigned char)(c >> (8 * i));
  vt_write_file(path, h, 64);
}

START_TEST(headers_checked) {
  const char *path = vt_path("hdr");
  aip_vstore *vs = NULL;
  write_header(path, 1, 300, 1, true);
  vs = vt_open(path, 0);
  ck_assert_uint_eq(vt_report(vs).dim, 300);
  aip_vstore_close(vs);
  write_header(path, 1, 300, 1, false);
  ck_assert_int_eq(aip_vstore_local_open(&vs, path, 0), AIPLAT_ERR_CORRUPT);
  ck_assert_ptr_nonnull(strstr(vt_err(NULL), "checksum"));
  write_header(path, 2, 300, 1, true);
  ck_assert_int_eq(aip_vstore_local_open(&vs, path, 0),
                   AIPLAT_ERR_NOT_SUPPORTED);
  ck_assert_ptr_nonnull(strstr(vt_err(NULL), "version 2"));
  write_header(path, 1, 300, 2, true);
  ck_assert_int_eq(aip_vstore_local_open(&vs, path, 0),
                   AIPLAT_ERR_NOT_SUPPORTED);
  write_header(path, 1, 0, 1, true);
  ck_assert_int_eq(aip_vstore_local_open(&vs, path, 0), AIPLAT_ERR_CORRUPT);
  ck_assert_uint_eq(vt_file_size(path), 64);
}
END_TEST

START_TEST(an_empty_file) {
  const char *path = vt_path("empty");
  vt_write_file(path, "", 0);
  aip_vstore *vs = vt_open(path, AIP_VLOCAL_READONLY);
  ck_assert_uint_eq(vt_count(vs), 0);
  size_t n;
  aip_vhit *h = vt_search(vs, DIM, 1, 3, NULL, &n);
  ck_assert_uint_eq(n, 0);
  ck_assert_ptr_null(h);
  aip_vstore_close(vs);
  vs = vt_open(path, 0);
  ck_assert_uint_eq(vt_report(vs).dim, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  vt_put(vs, DIM, 1, "s");
  aip_vstore_close(vs);
  vs = vt_open(path, AIP_VLOCAL_READONLY);
  static const unsigned one[] = {1};
  assert_records(vs, one, 1);
  aip_vstore_close(vs);
}
END_TEST

START_TEST(an_unfinished_creation) {
  make_reference();
  const char *path = vt_path("half");
  for (size_t len = 1; len < 64; len += 9) {
    vt_write_file(path, orig, len); /* part of a real header */
    aip_vstore *vs = vt_open(path, AIP_VLOCAL_READONLY);
    ck_assert_uint_eq(vt_count(vs), 0);
    ck_assert_uint_eq(vt_report(vs).torn_bytes, len);
    aip_vstore_close(vs);
    ck_assert_uint_eq(vt_file_size(path), len);
    vs = vt_open(path, 0);
    ck_assert(vt_report(vs).truncated);
    ck_assert_uint_eq(vt_file_size(path), 0);
    ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
    vt_put(vs, DIM, 2, "s");
    aip_vstore_close(vs);
    vs = vt_open(path, 0);
    static const unsigned two[] = {2};
    assert_records(vs, two, 1);
    aip_vstore_close(vs);
  }
}
END_TEST

/* A vector so small that the inverse of its norm is beyond a float is
 * normalised like any other. */
START_TEST(a_tiny_vector) {
  const char *path = vt_path("tiny");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  static const float tiny[DIM] = {1e-40f, 0.0f, 0.0f, 0.0f};
  aip_vrecord r = {"tiny", tiny, "t", "s", NULL};
  ck_assert_int_eq(aip_vstore_insert(vs, &r, 1, DIM), AIPLAT_OK);
  static const float q[DIM] = {1.0f, 0.0f, 0.0f, 0.0f};
  for (int reopen = 0; reopen < 2; reopen++) {
    if (reopen) {
      aip_vstore_close(vs);
      vs = vt_open(path, AIP_VLOCAL_READONLY);
    }
    aip_vhit *h = NULL;
    size_t n = 0;
    ck_assert_int_eq(aip_vstore_search(vs, q, DIM, 1, NULL, &h, &n), AIPLAT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-5f);
    free(h);
  }
  aip_vstore_close(vs);
}
END_TEST

/* A record another writer stored with a vector that cannot be normalised
 * (NaN, infinities) is kept with a zero row: it scores 0, never NaN. */
START_TEST(a_vector_that_is_not_finite) {
  const char *path = vt_path("nan");
  aip_vstore *vs = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(vs, DIM, AIP_VMETRIC_COSINE), AIPLAT_OK);
  vt_put(vs, DIM, 1, "s");
  vt_put(vs, DIM, 2, "s");
  aip_vstore_close(vs);
  size_t len;
  unsigned char *f = vt_read_file(path, &len);
  /* the first record: after the 64-byte header, its vector after the
   * 48-byte record header; then its CRC again (over all but the CRC) */
  unsigned char *rec = f + 64, *vec = rec + 48;
  static const float bad[DIM] = {NAN, INFINITY, 1.0f, 0.0f};
  memcpy(vec, bad, sizeof bad);
  uint32_t total = (uint32_t)rec[8] | (uint32_t)rec[9] << 8 |
                   (uint32_t)rec[10] << 16 | (uint32_t)rec[11] << 24;
  uint32_t crc = aip_crc32c(aip_crc32c(0, rec, 4), rec + 8, total - 8);
  for (int i = 0; i < 4; i++) rec[4 + i] = (unsigned char)(crc >> (8 * i));
  vt_write_file(path, f, len);
  free(f);
  vs = vt_open(path, AIP_VLOCAL_READONLY);
  ck_assert_uint_eq(vt_count(vs), 2);
  size_t n;
  aip_vhit *h = vt_search(vs, DIM, 2, 2, NULL, &n);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(h[0].id, "id2");
  ck_assert_float_eq_tol(h[0].score, 1.0f, 1e-5f);
  ck_assert_str_eq(h[1].id, "id1");
  ck_assert_msg(h[1].score == 0.0f, "score %g", (double)h[1].score);
  free(h);
  aip_vstore_close(vs);
}
END_TEST

/* ---- a full disk
 * -----------------------------------------------------------------------------
 */

START_TEST(full_disk_fails_cleanly) {
  make_reference();
  const char *path = vt_path("full");
  vt_write_file(path, orig, orig_len);
  aip_vstore *vs = vt_open(path, 0);
  /* A batch of 20 records that cannot fit under a file-size limit set
   * just above the current size: the write stops part way with EFBIG. */
  float v[20][DIM];
  char ids[20][8];
  aip_vrecord r[20];
  for (unsigned i = 0; i < 20; i++) {
    vt_vec(v[i], DIM, 100 + i);
    snprintf(ids[i], 8, "id%u", 100 + i);
    r[i] = (aip_vrecord){ids[i], v[i], "text", "src", NULL};
  }
  struct rlimit old, lim;
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = orig_len + 300;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  /* No ck_assert while the limit holds: Check (fork mode) writes each
   * assertion's location to its own message file, which the limit would
   * cut short. */
  int set_rc = setrlimit(RLIMIT_FSIZE, &lim);
  aiplat_status st = aip_vstore_insert(vs, r, 20, DIM);
  char msg[512];
  aip_vstore_last_error(vs, msg, sizeof msg);
  int restore_rc = setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, prev);
  ck_assert_int_eq(set_rc, 0);
  ck_assert_int_eq(restore_rc, 0);
  ck_assert_int_eq(st, AIPLAT_ERR_IO);
  ck_assert_msg(strstr(msg, strerror(EFBIG)), "%s", msg);
  ck_assert_ptr_nonnull(strstr(msg, "was not stored"));
  /* the part that was written is gone, the store works and writes on */
  ck_assert_uint_eq(vt_file_size(path), orig_len);
  assert_records(vs, ALL, 7);
  vt_put(vs, DIM, 200, "src");
  aip_vstore_close(vs);
  vs = vt_open(path, 0);
  static const unsigned after[] = {1, 2, 3, 4, 5, 6, 7, 200};
  assert_records(vs, after, 8);
  ck_assert_uint_eq(vt_report(vs).torn_bytes, 0);
  aip_vstore_close(vs);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("vstore_file");
  TCase *tc = tcase_create("file");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, torn_last_record_at_every_byte);
  tcase_add_test(tc, torn_batch_is_dropped_whole);
  tcase_add_test(tc, corrupt_byte_in_last_record_drops_it);
  tcase_add_test(tc, garbage_or_zeros_after_the_last_batch);
  tcase_add_test(tc, reader_follows_a_tail_rewritten_to_the_same_length);
  tcase_add_test(tc, damage_before_a_later_batch_is_corruption);
  tcase_add_test(tc, salvage_skips_the_damage);
  tcase_add_test(tc, batch_without_its_commit_before_a_later_batch);
  tcase_add_test(tc, a_file_that_is_not_a_store);
  tcase_add_test(tc, headers_checked);
  tcase_add_test(tc, an_empty_file);
  tcase_add_test(tc, an_unfinished_creation);
  tcase_add_test(tc, a_vector_that_is_not_finite);
  tcase_add_test(tc, a_tiny_vector);
  tcase_add_test(tc, full_disk_fails_cleanly);
  suite_add_tcase(s, tc);
  return s;
}
