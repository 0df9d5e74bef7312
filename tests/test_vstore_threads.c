/* Vector store concurrency: threads searching while one thread appends,
 * replaces and deletes, through the same handle and through a read-only
 * handle on the same file (as another process would). Every answer must
 * be consistent: a published record is found, a record's fields belong
 * together, scores are ordered. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <pthread.h>
#include <stdatomic.h>

#include "vstore_testutil.h"

#define DIM 32
#define BATCHES 60
#define READERS 3

static void setup(void) {
  vt_setup();
}
static void teardown(void) {
  vt_cleanup();
}

typedef struct shared {
  aip_vstore *writer, *reader;
  atomic_uint published; /* records id0..id<published-1> are committed */
  atomic_bool done;
  atomic_uint failures, searches;
  char first_failure[256];
  pthread_mutex_t mu;
} shared;

static void record_failure(shared *sh, const char *what, unsigned k) {
  if (atomic_fetch_add(&sh->failures, 1) == 0) {
    pthread_mutex_lock(&sh->mu);
    snprintf(sh->first_failure, sizeof sh->first_failure, "%s (k=%u)", what, k);
    pthread_mutex_unlock(&sh->mu);
  }
}

static void *writer_main(void *arg) {
  shared *sh = arg;
  unsigned next = 0;
  uint64_t seed = 5;
  float v[8][DIM];
  char ids[8][16], texts[8][16];
  aip_vrecord r[8];
  for (int b = 0; b < BATCHES && !atomic_load(&sh->failures); b++) {
    size_t n = 1 + vt_rand(&seed) % 8;
    bool tmp = b % 5 == 4; /* now and then a batch that is deleted again */
    for (size_t i = 0; i < n; i++) {
      unsigned k = tmp ? 100000 + (unsigned)(b * 8 + i) : next + (unsigned)i;
      vt_vec(v[i], DIM, k);
      snprintf(ids[i], sizeof ids[i], "id%u", k);
      snprintf(texts[i], sizeof texts[i], "text %u", k);
      r[i] =
          (aip_vrecord){ids[i], v[i], texts[i], tmp ? "tmp" : "stable", NULL};
    }
    if (aip_vstore_insert(sh->writer, r, n, DIM)) {
      record_failure(sh, "insert failed", 0);
      break;
    }
    if (tmp) {
      aip_vfilter f = {AIP_VMATCH_EXACT, "tmp"};
      int64_t d;
      if (aip_vstore_delete_source(sh->writer, &f, &d) || d != (int64_t)n)
        record_failure(sh, "delete failed", (unsigned)n);
      continue;
    }
    /* re-inserting a record unchanged must not disturb a reader */
    if (aip_vstore_insert(sh->writer, &r[0], 1, DIM))
      record_failure(sh, "re-insert failed", next);
    next += (unsigned)n;
    atomic_store(&sh->published, next);
  }
  atomic_store(&sh->done, true);
  return NULL;
}

static void check_hits(shared *sh, const aip_vhit *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned id;
    char want[32];
    if (sscanf(h[i].id, "id%u", &id) != 1) {
      record_failure(sh, "bad id", 0);
      return;
    }
    snprintf(want, sizeof want, "text %u", id);
    if (strcmp(h[i].text, want))
      record_failure(sh, "text does not match id", id);
    if (strcmp(h[i].source, id >= 100000 ? "tmp" : "stable"))
      record_failure(sh, "source does not match id", id);
    if (strcmp(h[i].metadata, "{}")) record_failure(sh, "metadata", id);
    if (i && h[i - 1].score < h[i].score) record_failure(sh, "order", id);
  }
}

static void *reader_main(void *arg) {
  shared *sh = arg;
  uint64_t seed = (uint64_t)(uintptr_t)&seed;
  uint64_t last_count = 0;
  while (!atomic_load(&sh->done) && !atomic_load(&sh->failures)) {
    unsigned pub = atomic_load(&sh->published);
    float q[DIM];
    aip_vhit *h = NULL;
    size_t n = 0;
    if (pub) {
      unsigned k = (unsigned)(vt_rand(&seed) % pub);
      vt_vec(q, DIM, k);
      aip_vfilter f = {AIP_VMATCH_EXACT, "stable"};
      if (aip_vstore_search(sh->reader, q, DIM, 3, &f, &h, &n)) {
        record_failure(sh, "search failed", k);
        break;
      }
      char want[16];
      snprintf(want, sizeof want, "id%u", k);
      if (n == 0 || strcmp(h[0].id, want) || h[0].score < 0.9999f)
        record_failure(sh, "a published record was not found first", k);
      check_hits(sh, h, n);
      free(h);
    }
    vt_vec(q, DIM, vt_rand(&seed));
    if (aip_vstore_search(sh->reader, q, DIM, 5, NULL, &h, &n)) {
      record_failure(sh, "search failed", 0);
      break;
    }
    check_hits(sh, h, n);
    free(h);
    uint64_t c;
    if (aip_vstore_count(sh->reader, &c)) record_failure(sh, "count failed", 0);
    /* stable records only grow; at most one tmp batch (8) is live */
    if (c + 8 < last_count) record_failure(sh, "count went back", (unsigned)c);
    if (c < pub)
      record_failure(sh, "count below the published records", (unsigned)c);
    last_count = c;
    atomic_fetch_add(&sh->searches, 1);
  }
  return NULL;
}

static void run(bool separate_reader) {
  shared sh = {0};
  pthread_mutex_init(&sh.mu, NULL);
  const char *path = vt_path("conc");
  sh.writer = vt_open(path, 0);
  ck_assert_int_eq(aip_vstore_ensure(sh.writer, DIM, AIP_VMETRIC_COSINE),
                   AIPLAT_OK);
  sh.reader = separate_reader ? vt_open(path, AIP_VLOCAL_READONLY) : sh.writer;
  pthread_t w, r[READERS];
  for (int i = 0; i < READERS; i++)
    ck_assert_int_eq(pthread_create(&r[i], NULL, reader_main, &sh), 0);
  ck_assert_int_eq(pthread_create(&w, NULL, writer_main, &sh), 0);
  pthread_join(w, NULL);
  for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
  ck_assert_msg(atomic_load(&sh.failures) == 0, "%u failures, first: %s",
                atomic_load(&sh.failures), sh.first_failure);
  ck_assert_uint_gt(atomic_load(&sh.searches), 0);
  unsigned pub = atomic_load(&sh.published);
  ck_assert_uint_eq(vt_count(sh.reader), pub);
  if (separate_reader) aip_vstore_close(sh.reader);
  aip_vstore_close(sh.writer);
  /* and it all reads back */
  aip_vstore *vs = vt_open(path, AIP_VLOCAL_READONLY);
  ck_assert_uint_eq(vt_count(vs), pub);
  for (unsigned k = 0; k < pub; k += 7) vt_assert_finds(vs, DIM, k);
  aip_vstore_close(vs);
  pthread_mutex_destroy(&sh.mu);
}

START_TEST(readers_during_appends_same_handle) {
  run(false);
}
END_TEST

START_TEST(readers_during_appends_read_only_handle) {
  run(true);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("vstore_threads");
  TCase *tc = tcase_create("threads");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, readers_during_appends_same_handle);
  tcase_add_test(tc, readers_during_appends_read_only_handle);
  suite_add_tcase(s, tc);
  return s;
}
