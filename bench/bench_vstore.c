/* Benchmark of the local vector store (not part of `make check`).
 *
 *   make bench-vstore                      # 100000 x 384, 200 queries, top 5
 *   make bench-vstore BENCH_VSTORE_ARGS="-n 20000 -d 768 -q 100 -k 10"
 *
 * Prints, from one run:
 *  - insert throughput (records/s) for batches of 1000, 100 and 1 record
 *    (every batch is made durable with fdatasync);
 *  - open/load time of the file (page cache warm);
 *  - query latency, single thread (median, p99), and the time to read the
 *    same vectors once (a tight sum over the store's own matrix: the
 *    memory-bandwidth floor), with the ratio of the two;
 *  - for the record, the same scan done in place over the records in the
 *    mmap'd file (the layout not chosen; see ADR 0010).
 */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vstore.h"

static double now_ms(void) {
  return (double)aip_now_ns() / 1e6;
}

static uint64_t rng(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

static void fill(float *v, size_t n, uint64_t *s) {
  for (size_t i = 0; i < n; i++)
    v[i] = (float)((double)(rng(s) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p) {
  qsort(v, n, sizeof *v, cmp_d);
  size_t i = (size_t)ceil(p * (double)n) - 1;
  return v[i >= n ? n - 1 : i];
}

static void die(aip_vstore *vs, const char *what) {
  char msg[512];
  if (vs)
    aip_vstore_last_error(vs, msg, sizeof msg);
  else
    aiplat_error_last(msg, sizeof msg);
  fprintf(stderr, "bench_vstore: %s: %s\n", what, msg);
  exit(1);
}

/* Insert records [from, to) in batches of `batch`; records/s. */
static double insert_range(aip_vstore *vs, const float *vecs, uint32_t dim,
                           size_t from, size_t to, size_t batch) {
  aip_vrecord *r = calloc(batch, sizeof *r);
  char(*ids)[24] = malloc(batch * sizeof *ids);
  char(*src)[48] = malloc(batch * sizeof *src);
  static const char filler[] =
      "A passage of roughly the length a chunker produces for retrieval, "
      "padded to about one hundred and sixty bytes of text per record here.";
  double t0 = now_ms();
  for (size_t i = from; i < to; i += batch) {
    size_t n = to - i < batch ? to - i : batch;
    for (size_t j = 0; j < n; j++) {
      snprintf(ids[j], sizeof ids[j], "doc-%zu", i + j);
      snprintf(src[j], sizeof src[j], "corpus/file-%zu.md", (i + j) / 50);
      r[j] = (aip_vrecord){ids[j], vecs + (i + j) * dim, filler, src[j], NULL};
    }
    if (aip_vstore_insert(vs, r, n, dim)) die(vs, "insert");
  }
  double ms = now_ms() - t0;
  free(r);
  free(ids);
  free(src);
  return (double)(to - from) / (ms / 1000.0);
}

/* The layout not chosen: dot products over the vectors where they sit in
 * the file's records (a stride of one record), through the mapping. */
static double inplace_scan_ms(const char *path, uint32_t dim, const float *q,
                              double *best) {
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) return -1;
  const unsigned char *m =
      mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return -1;
  size_t off = 64, n = 0;
  const float **rows =
      malloc(((size_t)st.st_size / (48 + 4 * dim) + 1) * sizeof *rows);
  while (off + 48 <= (size_t)st.st_size) {
    uint32_t total;
    memcpy(&total, m + off + 8, 4);
    if (m[off + 12] == 1)
      rows[n++] = (const float *)(const void *)(m + off + 48);
    off += total;
  }
  double t0 = now_ms(), top = -2;
  for (size_t i = 0; i < n; i++) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float *v = rows[i];
    for (uint32_t j = 0; j + 4 <= dim; j += 4) {
      s0 += q[j] * v[j];
      s1 += q[j + 1] * v[j + 1];
      s2 += q[j + 2] * v[j + 2];
      s3 += q[j + 3] * v[j + 3];
    }
    double s = (double)s0 + s1 + s2 + s3;
    if (s > top) top = s;
  }
  double ms = now_ms() - t0;
  *best = top;
  free(rows);
  munmap((void *)m, (size_t)st.st_size);
  return ms;
}

int main(int argc, char **argv) {
  size_t N = 100000, Q = 200, K = 5;
  uint32_t dim = 384;
  const char *path = NULL;
  int opt;
  while ((opt = getopt(argc, argv, "n:d:q:k:f:")) != -1) {
    switch (opt) {
      case 'n':
        N = strtoul(optarg, NULL, 10);
        break;
      case 'd':
        dim = (uint32_t)strtoul(optarg, NULL, 10);
        break;
      case 'q':
        Q = strtoul(optarg, NULL, 10);
        break;
      case 'k':
        K = strtoul(optarg, NULL, 10);
        break;
      case 'f':
        path = optarg;
        break;
      default:
        fprintf(stderr,
                "usage: bench_vstore [-n records] [-d dim] [-q queries] [-k "
                "top] [-f file]\n");
        return 2;
    }
  }
  if (N < 2000 || !dim || dim % 4 || !Q || !K) {
    fprintf(stderr,
            "bench_vstore: need -n >= 2000, -d a multiple of 4, -q, -k > 0\n");
    return 2;
  }
  char tmp[] = "/tmp/aiplat-bench-vstore-XXXXXX";
  char file[128];
  if (!path) {
    if (!mkdtemp(tmp)) return 1;
    snprintf(file, sizeof file, "%s/bench.aipvs", tmp);
    path = file;
  } else {
    unlink(path);
  }
  aiplat_log_set_level(AIPLAT_LOG_ERROR);
  float *vecs = malloc((size_t)N * dim * sizeof *vecs);
  uint64_t seed = 42;
  fill(vecs, (size_t)N * dim, &seed);

  printf(
      "local vector store: %zu records x %u dims, top %zu, %zu queries, file "
      "%s\n",
      N, dim, K, Q, path);
  aip_vstore *vs = NULL;
  if (aip_vstore_local_open(&vs, path, 0)) die(NULL, "open");
  if (aip_vstore_ensure(vs, dim, AIP_VMETRIC_COSINE)) die(vs, "ensure");
  /* the first N - 1100 records in batches of 1000, then 1000 more in
   * batches of 100, then 100 one at a time */
  size_t a = N - 1100, b = N - 100;
  double r1000 = insert_range(vs, vecs, dim, 0, a, 1000);
  double r100 = insert_range(vs, vecs, dim, a, b, 100);
  double r1 = insert_range(vs, vecs, dim, b, N, 1);
  printf(
      "insert: %.0f records/s (batches of 1000), %.0f (batches of 100), %.0f "
      "(one at a time); each batch fdatasync'ed\n",
      r1000, r100, r1);
  aip_vstore_close(vs);
  struct stat st;
  stat(path, &st);

  double open_ms[3];
  for (int i = 0; i < 3; i++) {
    double t0 = now_ms();
    if (aip_vstore_local_open(&vs, path, AIP_VLOCAL_READONLY))
      die(NULL, "reopen");
    open_ms[i] = now_ms() - t0;
    if (i < 2) aip_vstore_close(vs);
  }
  uint64_t count;
  aip_vstore_count(vs, &count);
  printf(
      "open/load: %.1f ms (median of 3, warm page cache) for a %.1f MB file, "
      "%llu live records\n",
      pct(open_ms, 3, 0.5), (double)st.st_size / 1e6,
      (unsigned long long)count);

  /* floor: read every stored vector once */
  size_t F = 30;
  double *floor_ms = malloc(F * sizeof *floor_ms), sink = 0;
  for (size_t i = 0; i < F; i++) {
    double t0 = now_ms();
    sink += aip_vstore_local_sum_vectors(vs);
    floor_ms[i] = now_ms() - t0;
  }
  double *lat = malloc(Q * sizeof *lat);
  float *q = malloc(dim * sizeof *q);
  seed = 7;
  for (size_t i = 0; i < Q; i++) {
    fill(q, dim, &seed);
    aip_vhit *h;
    size_t n;
    double t0 = now_ms();
    if (aip_vstore_search(vs, q, dim, K, NULL, &h, &n)) die(vs, "search");
    lat[i] = now_ms() - t0;
    sink += h[0].score;
    free(h);
  }
  double fmed = pct(floor_ms, F, 0.5);
  double qmed = pct(lat, Q, 0.5), q99 = pct(lat, Q, 0.99);
  double mb = (double)count * dim * 4 / 1e6;
  printf(
      "query: median %.2f ms, p99 %.2f ms (single thread, top %zu of %llu)\n",
      qmed, q99, K, (unsigned long long)count);
  printf(
      "floor: %.2f ms to read the same %.1f MB of vectors once (median of %zu; "
      "%.1f GB/s)\n",
      fmed, mb, F, mb / fmed);
  printf("ratio: median query / floor = %.2fx (target <= 1.5x)\n", qmed / fmed);

  /* a filtered query: one source of 50 records */
  aip_vfilter f = {AIP_VMATCH_EXACT, "corpus/file-7.md"};
  double t0 = now_ms();
  aip_vhit *h;
  size_t n;
  if (aip_vstore_search(vs, q, dim, K, &f, &h, &n)) die(vs, "filtered search");
  printf(
      "filtered query (exact source, 50 of %llu records): %.2f ms, %zu hits\n",
      (unsigned long long)count, now_ms() - t0, n);
  free(h);

  double best = 0, inpl[5];
  for (int i = 0; i < 5; i++) {
    inpl[i] = inplace_scan_ms(path, dim, q, &best);
    sink += best;
  }
  printf(
      "in-place scan over the file's records (mmap, record stride): %.2f ms "
      "(median of 5), %.2fx the floor\n",
      pct(inpl, 5, 0.5), pct(inpl, 5, 0.5) / fmed);
  aip_vstore_close(vs);
  if (path == file) {
    unlink(path);
    rmdir(tmp);
  }
  free(vecs);
  free(floor_ms);
  free(lat);
  free(q);
  return sink == 12345.678 ? 3 : 0; /* keep the sums alive */
}
