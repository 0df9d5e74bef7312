/* Loading a local vector store file (lib/vstore_local.c). Byte 0: bit 0
 * opens for writing (else read-only), bit 1 salvages damage, bit 2 fixes
 * the checksums first (so that mutations reach the records' meaning, not
 * only the CRC checks); the rest is the file. Whatever opens must answer
 * count, search and id listings consistently; a writable open must leave
 * a file that opens again with the same records, before and after a
 * compaction. */
#include "config.h"
#include "fuzz_util.h"
#include "vstore.h"

#define HDR 64u
#define REC_HDR 48u
#define REC_MAGIC 0x31525356u

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Give the header and every record that looks like one a good CRC, walking
 * the file as the loader does (records on 16-byte boundaries). */
static void fix_checksums(uint8_t *f, size_t n) {
  if (n < HDR) return;
  put32(f + 60, aip_crc32c(0, f, 60));
  for (size_t off = HDR; off + REC_HDR <= n;) {
    uint32_t total = get32(f + off + 8);
    if (get32(f + off) != REC_MAGIC || total < REC_HDR || total % 16 ||
        total > n - off) {
      off += 16;
      continue;
    }
    uint32_t crc =
        aip_crc32c(aip_crc32c(0, f + off, 4), f + off + 8, total - 8);
    put32(f + off + 4, crc);
    off += total;
  }
}

/* Count, search and list on an open store; the live count. */
static uint64_t exercise(aip_vstore *vs) {
  aip_vlocal_report rep;
  FUZZ_CHECK(aip_vstore_local_report(vs, &rep) == AIPLAT_OK);
  uint64_t live = 0;
  FUZZ_CHECK(aip_vstore_count(vs, &live) == AIPLAT_OK);
  FUZZ_CHECK(live == rep.live);
  if (!rep.dim) {
    FUZZ_CHECK(live == 0);
    return 0;
  }
  FUZZ_CHECK(aip_vstore_ensure(vs, rep.dim, AIP_VMETRIC_COSINE) == AIPLAT_OK);
  float *q = malloc(rep.dim * sizeof *q);
  if (!q) abort();
  for (uint32_t i = 0; i < rep.dim; i++) q[i] = (float)(i % 3) - 0.5f;
  q[0] = 1.0f;
  aip_vhit *hits = NULL;
  size_t n = 0;
  if (aip_vstore_search(vs, q, rep.dim, 8, NULL, &hits, &n) == AIPLAT_OK) {
    FUZZ_CHECK(n <= 8 && n <= live);
    for (size_t i = 0; i < n; i++) {
      FUZZ_CHECK(hits[i].id && hits[i].text && hits[i].source &&
                 hits[i].metadata);
      FUZZ_CHECK(hits[i].score >= -1.001f && hits[i].score <= 1.001f);
      if (i) FUZZ_CHECK(hits[i - 1].score >= hits[i].score);
    }
    /* A hit's source lists its ids. (Not always this hit's: a record
     * another writer stored with a NUL byte in its strings is handed out
     * cut at the NUL, like every string of the interface.) */
    if (n) {
      char **ids = NULL;
      size_t k = 0;
      aiplat_status st =
          aip_vstore_source_ids(vs, hits[0].source, 64, &ids, &k);
      FUZZ_CHECK(st == AIPLAT_OK || st == AIPLAT_ERR_TOO_LARGE ||
                 st == AIPLAT_ERR_INVALID_ARGUMENT);
      FUZZ_CHECK(st != AIPLAT_OK || (k == 0) == (ids == NULL));
      for (size_t i = 0; st == AIPLAT_OK && i < k; i++)
        FUZZ_CHECK(ids[i] && strlen(ids[i]) <= AIP_VSTORE_MAX_ID);
      free(ids);
    }
    free(hits);
  }
  free(q);
  return live;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  uint8_t mode = fuzz_byte(&in);
  uint8_t *file = malloc(in.n ? in.n : 1);
  if (!file) abort();
  if (in.n) memcpy(file, in.p, in.n);
  if (mode & 4) fix_checksums(file, in.n);
  const char *path = fuzz_scratch_write(file, in.n);
  free(file);

  bool writable = mode & 1;
  unsigned flags = (writable ? 0 : AIP_VLOCAL_READONLY) |
                   (mode & 2 ? AIP_VLOCAL_SALVAGE : 0);
  aip_vstore *vs = NULL;
  aiplat_status st = aip_vstore_local_open(&vs, path, flags);
  if (st != AIPLAT_OK) {
    FUZZ_CHECK(vs == NULL);
    FUZZ_CHECK(st == AIPLAT_ERR_CORRUPT || st == AIPLAT_ERR_NOT_SUPPORTED ||
               st == AIPLAT_ERR_NO_MEMORY);
    return 0;
  }
  uint64_t live = exercise(vs);
  if (!writable) {
    FUZZ_CHECK(aip_vstore_local_refresh(vs) == AIPLAT_OK);
    FUZZ_CHECK(exercise(vs) == live);
    aip_vstore_close(vs);
    return 0;
  }
  /* A record more; then what the writable open left behind opens cleanly
   * with the same records, and so does its compaction. */
  aip_vlocal_report rep;
  FUZZ_CHECK(aip_vstore_local_report(vs, &rep) == AIPLAT_OK);
  uint32_t dim = rep.dim ? rep.dim : 3;
  float *v = calloc(dim, sizeof *v);
  if (!v) abort();
  v[0] = 1.0f;
  aip_vrecord r = {.id = "fuzz", .vector = v, .text = "t", .source = "s"};
  FUZZ_CHECK(aip_vstore_ensure(vs, dim, AIP_VMETRIC_COSINE) == AIPLAT_OK);
  FUZZ_CHECK(aip_vstore_insert(vs, &r, 1, dim) == AIPLAT_OK);
  free(v);
  uint64_t now = exercise(vs);
  FUZZ_CHECK(now == live || now == live + 1);
  aip_vstore_close(vs);
  FUZZ_CHECK(aip_vstore_local_open(&vs, path, 0) == AIPLAT_OK);
  FUZZ_CHECK(exercise(vs) == now);
  FUZZ_CHECK(aip_vstore_local_compact(vs) == AIPLAT_OK);
  FUZZ_CHECK(exercise(vs) == now);
  aip_vstore_close(vs);
  FUZZ_CHECK(aip_vstore_local_open(&vs, path, AIP_VLOCAL_READONLY) ==
             AIPLAT_OK);
  FUZZ_CHECK(exercise(vs) == now);
  FUZZ_CHECK(aip_vstore_local_report(vs, &rep) == AIPLAT_OK);
  FUZZ_CHECK(rep.torn_bytes == 0 && rep.damaged_regions == 0);
  aip_vstore_close(vs);
  return 0;
}
