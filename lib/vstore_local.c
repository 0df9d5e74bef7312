/* The embedded local vector store: one append-only file, an in-memory
 * matrix of normalised vectors, exact top-k by cosine similarity.
 *
 * File format, crash-safety argument and concurrency model:
 * docs/decisions/0010-local-vector-store.md. In short:
 *  - a 64-byte header, then records aligned to 16 bytes, each with its
 *    length and a CRC-32C over everything but the CRC field;
 *  - records are written in batches; every record names the offset where
 *    its batch starts and the last one carries the COMMIT flag; a batch is
 *    written with pwrite at the committed end and made durable with
 *    fdatasync before the next one starts;
 *  - on open, everything after the last complete committed batch is a torn
 *    tail (cut off by a writable open); damage before it is corruption.
 *
 * Locks: `wmu` serialises everything that changes the file, the index or
 * the mapping; `rw` is taken for reading by searches and for writing only
 * to publish a change, so searches run while a batch is written and synced
 * and never see a record before it is complete and durable.
 */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vstore.h"

/* ---- format ----------------------------------------------------------------
 */

#define HDR_SIZE 64u
static const unsigned char HDR_MAGIC[8] = {'A', 'I', 'P', 'L',
                                           'A', 'T', 'V', 'S'};
#define FORMAT_VERSION 1u
#define REC_MAGIC 0x31525356u /* the bytes "VSR1" */
#define REC_ALIGN 16u
#define REC_HDR 48u
#define REC_PUT 1u
#define REC_DEL_SOURCE 3u
#define REC_DEL_PREFIX 4u
#define FLAG_COMMIT 1u
/* The largest record the limits allow. */
#define REC_MAX                                                             \
  ((REC_HDR + 4u * AIP_VSTORE_MAX_DIM + AIP_VSTORE_MAX_ID +                 \
    AIP_VSTORE_MAX_SOURCE + AIP_VSTORE_MAX_TEXT + AIP_VSTORE_MAX_METADATA + \
    REC_ALIGN - 1) &                                                        \
   ~(REC_ALIGN - 1))
/* Bytes one insert may add to the file (all or nothing). */
#define BATCH_MAX_BYTES (256u << 20)
/* Size of a block of matrix rows (rows are never moved by growth). */
#define BLOCK_BYTES (4u << 20)
#define SCAN_CHUNK (4u << 20)

#define LITTLE_ENDIAN_HOST (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

static inline uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t get64(const unsigned char *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}
static inline void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}
static inline void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t align_up(uint64_t n, uint64_t a) {
  return (n + a - 1) & ~(a - 1);
}

static size_t rec_size(uint32_t dim, size_t idl, size_t sl, size_t tl,
                       size_t ml) {
  return (size_t)align_up(REC_HDR + 4u * (uint64_t)dim + idl + sl + tl + ml,
                          REC_ALIGN);
}

static uint32_t rec_crc(const unsigned char *p, size_t total) {
  return aip_crc32c(aip_crc32c(0, p, 4), p + 8, total - 8);
}

/* A parsed record; the pointer is into a scan buffer, a batch or the map. */
typedef struct rview {
  const unsigned char *p;
  uint32_t total, dim, idl, sl, tl, ml;
  unsigned type, flags;
  uint64_t batch;
} rview;

static void rv_parse(rview *rv, const unsigned char *p) {
  rv->p = p;
  rv->total = get32(p + 8);
  rv->type = p[12];
  rv->flags = p[13];
  rv->batch = get64(p + 16);
  rv->dim = get32(p + 24);
  rv->idl = get32(p + 28);
  rv->sl = get32(p + 32);
  rv->tl = get32(p + 36);
  rv->ml = get32(p + 40);
}
static inline const unsigned char *rv_id(const rview *rv) {
  return rv->p + REC_HDR + 4u * (size_t)rv->dim;
}
static inline const unsigned char *rv_src(const rview *rv) {
  return rv_id(rv) + rv->idl;
}
static inline const unsigned char *rv_text(const rview *rv) {
  return rv_src(rv) + rv->sl;
}
static inline const unsigned char *rv_meta(const rview *rv) {
  return rv_text(rv) + rv->tl;
}

/* Everything but the CRC: lengths agree, the kind is known, the limits
 * hold, the batch start is plausible. */
static bool rv_sane(const rview *rv, uint32_t dim, uint64_t off) {
  const unsigned char *p = rv->p;
  if ((rv->flags & ~FLAG_COMMIT) || p[14] || p[15] || get32(p + 44))
    return false;
  if (rv->batch < HDR_SIZE || rv->batch > off) return false;
  if (rv->type == REC_PUT) {
    if (rv->dim != dim || rv->idl == 0 || rv->idl > AIP_VSTORE_MAX_ID ||
        rv->sl > AIP_VSTORE_MAX_SOURCE || rv->tl > AIP_VSTORE_MAX_TEXT ||
        rv->ml > AIP_VSTORE_MAX_METADATA)
      return false;
  } else if (rv->type == REC_DEL_SOURCE || rv->type == REC_DEL_PREFIX) {
    if (rv->dim || rv->idl || rv->tl || rv->ml ||
        rv->sl > AIP_VSTORE_MAX_SOURCE)
      return false;
  } else {
    return false;
  }
  return rv->total == rec_size(rv->dim, rv->idl, rv->sl, rv->tl, rv->ml);
}

/* Encode one record at p (exactly rec_size bytes). */
static void rec_encode(unsigned char *p, size_t total, unsigned type,
                       unsigned flags, uint64_t batch, uint32_t dim,
                       const float *vec, const char *id, size_t idl,
                       const char *src, size_t sl, const char *text, size_t tl,
                       const char *meta, size_t ml) {
  memset(p, 0, REC_HDR);
  put32(p, REC_MAGIC);
  put32(p + 8, (uint32_t)total);
  p[12] = (unsigned char)type;
  p[13] = (unsigned char)flags;
  put64(p + 16, batch);
  put32(p + 24, dim);
  put32(p + 28, (uint32_t)idl);
  put32(p + 32, (uint32_t)sl);
  put32(p + 36, (uint32_t)tl);
  put32(p + 40, (uint32_t)ml);
  unsigned char *q = p + REC_HDR;
#if LITTLE_ENDIAN_HOST
  if (dim) memcpy(q, vec, 4u * (size_t)dim);
  q += 4u * (size_t)dim;
#else
  for (uint32_t i = 0; i < dim; i++, q += 4) {
    uint32_t u;
    memcpy(&u, &vec[i], 4);
    put32(q, u);
  }
#endif
  if (idl) memcpy(q, id, idl);
  q += idl;
  if (sl) memcpy(q, src, sl);
  q += sl;
  if (tl) memcpy(q, text, tl);
  q += tl;
  if (ml) memcpy(q, meta, ml);
  q += ml;
  memset(q, 0, (size_t)(p + total - q));
  put32(p + 4, rec_crc(p, total));
}

static void hdr_encode(unsigned char h[HDR_SIZE], uint32_t dim) {
  memset(h, 0, HDR_SIZE);
  memcpy(h, HDR_MAGIC, 8);
  put32(h + 8, FORMAT_VERSION);
  put32(h + 12, HDR_SIZE);
  put32(h + 16, dim);
  put32(h + 20, AIP_VMETRIC_COSINE);
  put32(h + 24, REC_ALIGN);
  put32(h + 60, aip_crc32c(0, h, 60));
}

/* ---- index structures
 * -------------------------------------------------------- */

/* One live record: row r of the matrix. */
typedef struct lrow {
  uint64_t off;    /* where its record is in the file */
  uint32_t src;    /* index into the source table */
  uint32_t hash;   /* hash of its id */
  uint32_t id_len; /* bytes of its id */
} lrow;

typedef struct lsource {
  char *s;
  uint32_t len, hash;
  uint64_t refs; /* live rows with this source */
} lsource;

/* Open addressing, linear probing, backward-shift deletion. A slot holds
 * (hash << 32 | value); value 0 is an empty slot, so values are index + 1. */
typedef struct htab {
  uint64_t *slots;
  size_t cap, n;
} htab;

typedef struct lstate {
  int fd;
  dev_t dev;
  ino_t ino;
  const unsigned char *map;
  size_t map_len;
  uint32_t dim, stride; /* stride: floats per matrix row, a multiple of 8 */
  size_t block_rows;    /* rows per block, a power of two */
  unsigned block_shift;
  uint64_t end;       /* end of the last committed batch */
  uint64_t seen_size; /* file size at the last scan (read-only refresh) */
  struct timespec seen_mtime; /* and its modification time */
  lrow *rows;
  size_t nrows, rows_cap;
  float **blocks;
  size_t nblocks, blocks_cap;
  htab ids;
  lsource *srcs;
  size_t nsrcs, srcs_cap, last_src;
  htab src_tab;
  aip_vlocal_report rep;
} lstate;

typedef struct vlocal {
  aip_vstore base;
  char *path;
  unsigned flags;
  pthread_mutex_t wmu; /* changes to the file, the index and the mapping */
  pthread_rwlock_t rw; /* searches read; publishing writes */
  bool broken;         /* a failed write left the file in doubt: reopen */
  /* A read-only refresh that failed, not retried until the file changes. */
  uint64_t bad_size;
  ino_t bad_ino;
  aiplat_status bad_status;
  uint64_t unchanged; /* inserts skipped because identical */
  lstate s;
} vlocal;

static inline uint32_t hash_bytes(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return (uint32_t)(h ^ (h >> 32));
}

static inline float *row_vec(const lstate *s, size_t r) {
  return s->blocks[r >> s->block_shift] +
         (r & (s->block_rows - 1)) * (size_t)s->stride;
}

static inline const unsigned char *row_id(const lstate *s, size_t r) {
  return s->map + s->rows[r].off + REC_HDR + 4u * (size_t)s->dim;
}

static bool id_eq(const lstate *s, uint32_t val, const void *key, size_t len) {
  const lrow *r = &s->rows[val - 1];
  return r->id_len == len && memcmp(row_id(s, val - 1), key, len) == 0;
}

static bool src_eq(const lstate *s, uint32_t val, const void *key, size_t len) {
  const lsource *x = &s->srcs[val - 1];
  return x->len == len && memcmp(x->s, key, len) == 0;
}

typedef bool (*ht_eq_fn)(const lstate *s, uint32_t val, const void *key,
                         size_t len);

static uint32_t ht_find(const htab *t, uint32_t h, ht_eq_fn eq, const lstate *s,
                        const void *key, size_t len) {
  if (!t->cap) return 0;
  size_t m = t->cap - 1;
  for (size_t i = h & m;; i = (i + 1) & m) {
    uint64_t e = t->slots[i];
    uint32_t val = (uint32_t)e;
    if (!val) return 0;
    if ((uint32_t)(e >> 32) == h && eq(s, val, key, len)) return val;
  }
}

static bool ht_reserve(htab *t, size_t n) {
  if (n <= t->cap / 2) return true;
  size_t cap = t->cap ? t->cap : 16;
  while (cap / 2 < n) cap *= 2;
  uint64_t *sl = calloc(cap, sizeof *sl);
  if (!sl) return false;
  for (size_t i = 0; i < t->cap; i++) {
    uint64_t e = t->slots[i];
    if (!(uint32_t)e) continue;
    size_t j = (uint32_t)(e >> 32) & (cap - 1);
    while (sl[j]) j = (j + 1) & (cap - 1);
    sl[j] = e;
  }
  free(t->slots);
  t->slots = sl;
  t->cap = cap;
  return true;
}

/* Capacity must have been reserved. */
static void ht_insert(htab *t, uint32_t h, uint32_t val) {
  size_t m = t->cap - 1, i = h & m;
  while (t->slots[i]) i = (i + 1) & m;
  t->slots[i] = (uint64_t)h << 32 | val;
  t->n++;
}

static size_t ht_slot_of(const htab *t, uint32_t h, uint32_t val) {
  size_t m = t->cap - 1, i = h & m;
  while ((uint32_t)t->slots[i] != val) i = (i + 1) & m;
  return i;
}

static void ht_remove(htab *t, uint32_t h, uint32_t val) {
  size_t m = t->cap - 1, i = ht_slot_of(t, h, val), j = i;
  for (;;) {
    j = (j + 1) & m;
    uint64_t e = t->slots[j];
    if (!(uint32_t)e) break;
    size_t k = (uint32_t)(e >> 32) & m;
    /* The entry at j may move back to i unless its home k lies in (i, j]. */
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    t->slots[i] = e;
    i = j;
  }
  t->slots[i] = 0;
  t->n--;
}

static void ht_revalue(htab *t, uint32_t h, uint32_t oldv, uint32_t newv) {
  t->slots[ht_slot_of(t, h, oldv)] = (uint64_t)h << 32 | newv;
}

/* ---- state: capacity, sources, rows
 * ------------------------------------------ */

static void state_set_dim(lstate *s, uint32_t dim) {
  s->dim = dim;
  s->stride = (uint32_t)align_up(dim, 8);
  size_t rows = BLOCK_BYTES / ((size_t)s->stride * sizeof(float));
  unsigned shift = 0;
  while (((size_t)2 << shift) <= rows) shift++;
  s->block_shift = rows ? shift : 0;
  s->block_rows = (size_t)1 << s->block_shift;
}

/* Room for `extra` more rows: row array, matrix blocks, id table. */
static bool state_reserve(lstate *s, size_t extra) {
  size_t need = s->nrows + extra;
  if (need >= UINT32_MAX) return false;
  if (need > s->rows_cap) {
    size_t cap = s->rows_cap ? s->rows_cap : 64;
    while (cap < need) cap *= 2;
    lrow *r = realloc(s->rows, cap * sizeof *r);
    if (!r) return false;
    s->rows = r;
    s->rows_cap = cap;
  }
  size_t nb = (need + s->block_rows - 1) >> s->block_shift;
  if (nb > s->blocks_cap) {
    size_t cap = s->blocks_cap ? s->blocks_cap : 8;
    while (cap < nb) cap *= 2;
    float **b = realloc(s->blocks, cap * sizeof *b);
    if (!b) return false;
    s->blocks = b;
    s->blocks_cap = cap;
  }
  while (s->nblocks < nb) {
    size_t bytes = s->block_rows * (size_t)s->stride * sizeof(float);
    float *blk = aligned_alloc(64, (size_t)align_up(bytes, 64));
    if (!blk) return false;
    s->blocks[s->nblocks++] = blk;
  }
  return ht_reserve(&s->ids, need);
}

static int64_t src_lookup(const lstate *s, const void *str, size_t len) {
  uint32_t v = ht_find(&s->src_tab, hash_bytes(str, len), src_eq, s, str, len);
  return v ? (int64_t)v - 1 : -1;
}

/* The index of a source string, adding it when new; -1 when out of memory.
 * Chunks of one document come together: the last answer is tried first. */
static int64_t src_intern(lstate *s, const void *str, size_t len) {
  if (s->last_src < s->nsrcs && s->srcs[s->last_src].len == len &&
      !memcmp(s->srcs[s->last_src].s, str, len))
    return (int64_t)s->last_src;
  uint32_t h = hash_bytes(str, len);
  uint32_t v = ht_find(&s->src_tab, h, src_eq, s, str, len);
  if (v) return (int64_t)(s->last_src = v - 1);
  if (s->nsrcs + 1 >= UINT32_MAX) return -1;
  if (s->nsrcs == s->srcs_cap) {
    size_t cap = s->srcs_cap ? s->srcs_cap * 2 : 16;
    lsource *x = realloc(s->srcs, cap * sizeof *x);
    if (!x) return -1;
    s->srcs = x;
    s->srcs_cap = cap;
  }
  if (!ht_reserve(&s->src_tab, s->nsrcs + 1)) return -1;
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  if (len) memcpy(copy, str, len);
  copy[len] = '\0';
  lsource *x = &s->srcs[s->nsrcs];
  x->s = copy;
  x->len = (uint32_t)len;
  x->hash = h;
  x->refs = 0;
  ht_insert(&s->src_tab, h, (uint32_t)++s->nsrcs);
  return (int64_t)(s->last_src = s->nsrcs - 1);
}

/* Four-lane float vectors (see the search kernel below). */
typedef float v4f __attribute__((vector_size(16)));
/* An unaligned load (memcpy keeps it free of aliasing and alignment
 * assumptions; compilers emit one vector load). */
#define LOAD4(dst, p) memcpy(&(dst), (p), sizeof(v4f))

/* Normalise a stored vector (little-endian floats) into a matrix row. */
static void load_row(const lstate *s, float *dst, const unsigned char *vec) {
  uint32_t dim = s->dim;
#if LITTLE_ENDIAN_HOST
  memcpy(dst, vec, 4u * (size_t)dim);
#else
  for (uint32_t i = 0; i < dim; i++) {
    uint32_t u = get32(vec + 4u * i);
    memcpy(&dst[i], &u, 4);
  }
#endif
  for (uint32_t i = dim; i < s->stride; i++) dst[i] = 0.0f;
  /* The norm in double (squares of large floats overflow a float), with
   * four independent sums so that the adds pipeline. */
  double ss0 = 0, ss1 = 0, ss2 = 0, ss3 = 0;
  for (uint32_t i = 0; i < s->stride; i += 4) {
    ss0 += (double)dst[i] * dst[i];
    ss1 += (double)dst[i + 1] * dst[i + 1];
    ss2 += (double)dst[i + 2] * dst[i + 2];
    ss3 += (double)dst[i + 3] * dst[i + 3];
  }
  double ss = (ss0 + ss1) + (ss2 + ss3);
  /* Validated on insert: finite and not all zero. A record that is not (a
   * file written by something else) is kept with a zero row. */
  if (!(ss > 0 && ss < 1e300)) { /* NaN times 0 is NaN: clear it */
    memset(dst, 0, (size_t)s->stride * sizeof(float));
    return;
  }
  double invd = 1.0 / sqrt(ss);
  if (invd > FLT_MAX) { /* a tiny vector: its inverse norm is no float */
    for (uint32_t i = 0; i < dim; i++) dst[i] = (float)(dst[i] * invd);
    return;
  }
  float inv = (float)invd;
  v4f x, f = {inv, inv, inv, inv};
  for (uint32_t i = 0; i < s->stride; i += 4) {
    LOAD4(x, dst + i);
    x *= f;
    memcpy(dst + i, &x, sizeof x);
  }
}

static void remove_row(lstate *s, size_t r) {
  lrow *row = &s->rows[r];
  ht_remove(&s->ids, row->hash, (uint32_t)r + 1);
  s->srcs[row->src].refs--;
  size_t last = s->nrows - 1;
  if (r != last) {
    memcpy(row_vec(s, r), row_vec(s, last), (size_t)s->stride * sizeof(float));
    s->rows[r] = s->rows[last];
    ht_revalue(&s->ids, s->rows[r].hash, (uint32_t)last + 1, (uint32_t)r + 1);
  }
  s->nrows--;
}

static bool src_matches(const lsource *x, unsigned type, const void *str,
                        size_t len) {
  if (type == REC_DEL_SOURCE) return x->len == len && !memcmp(x->s, str, len);
  return x->len >= len && !memcmp(x->s, str, len);
}

/* Rows a deletion record removes (or would remove). */
static size_t del_apply(lstate *s, unsigned type, const void *str, size_t len,
                        bool dry_run) {
  size_t n = 0;
  if (type == REC_DEL_SOURCE) {
    int64_t si = src_lookup(s, str, len);
    if (si < 0 || s->srcs[si].refs == 0) return 0;
    if (dry_run) return (size_t)s->srcs[si].refs;
  }
  for (size_t r = s->nrows; r-- > 0;) {
    if (!src_matches(&s->srcs[s->rows[r].src], type, str, len)) continue;
    n++;
    if (!dry_run) remove_row(s, r);
  }
  return n;
}

/* Apply one committed record at file offset `off`. `si` is its source
 * index when the caller interned it already, else -1. Capacity for one
 * more row must be reserved for a PUT. */
static aiplat_status apply(lstate *s, const rview *rv, uint64_t off,
                           int64_t si) {
  if (rv->type != REC_PUT) {
    del_apply(s, rv->type, rv_src(rv), rv->sl, false);
    return AIPLAT_OK;
  }
  if (si < 0 && (si = src_intern(s, rv_src(rv), rv->sl)) < 0)
    return AIPLAT_ERR_NO_MEMORY;
  const unsigned char *id = rv_id(rv);
  uint32_t h = hash_bytes(id, rv->idl);
  uint32_t v = ht_find(&s->ids, h, id_eq, s, id, rv->idl);
  size_t r;
  if (v) {
    r = v - 1;
    s->srcs[s->rows[r].src].refs--;
  } else {
    r = s->nrows++;
    ht_insert(&s->ids, h, (uint32_t)r + 1);
  }
  s->rows[r] = (lrow){off, (uint32_t)si, h, rv->idl};
  s->srcs[si].refs++;
  load_row(s, row_vec(s, r), rv->p + REC_HDR);
  return AIPLAT_OK;
}

static void state_free(lstate *s) {
  if (s->map) munmap((void *)s->map, s->map_len);
  if (s->fd >= 0) close(s->fd);
  for (size_t i = 0; i < s->nblocks; i++) free(s->blocks[i]);
  free(s->blocks);
  free(s->rows);
  free(s->ids.slots);
  for (size_t i = 0; i < s->nsrcs; i++) free(s->srcs[i].s);
  free(s->srcs);
  free(s->src_tab.slots);
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

/* Map at least `need` bytes of the file (more, to leave room to grow;
 * mapping past the end of the file is allowed, touching it is not, and
 * nothing here touches bytes past the committed end). */
static aiplat_status state_map(lstate *s, uint64_t need, aip_err *e,
                               const char *path) {
  if (need <= s->map_len) return AIPLAT_OK;
  long pg = sysconf(_SC_PAGESIZE);
  uint64_t len = align_up(need + need / 2 + (1u << 20), (uint64_t)pg);
  if (len > SIZE_MAX)
    return aip_fail(e, AIPLAT_ERR_TOO_LARGE, "vstore: %s is too large to map",
                    path);
  void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, s->fd, 0);
  if (m == MAP_FAILED)
    return aip_fail(e, errno == ENOMEM ? AIPLAT_ERR_NO_MEMORY : AIPLAT_ERR_IO,
                    "vstore: mapping %s: %s", path, strerror(errno));
  if (s->map) munmap((void *)s->map, s->map_len);
  s->map = m;
  s->map_len = (size_t)len;
  return AIPLAT_OK;
}

/* ---- file helpers
 * --------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t n, uint64_t off) {
  const unsigned char *p = buf;
  while (n) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

static int read_full(int fd, void *buf, size_t n, uint64_t off, size_t *got) {
  unsigned char *p = buf;
  *got = 0;
  while (*got < n) {
    ssize_t r = pread(fd, p + *got, n - *got, (off_t)(off + *got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) break;
    *got += (size_t)r;
  }
  return 0;
}

static int fsync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir =
      slash ? aip_strndup(path, slash == path ? 1 : (size_t)(slash - path))
            : aip_strdup(".");
  if (!dir) return ENOMEM;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0) return errno;
  int rc = fsync(fd) ? errno : 0;
  close(fd);
  return rc == EINVAL ? 0 : rc; /* some file systems cannot sync a directory */
}

/* ---- scanning
 * ------------------------------------------------------------------- */

/* A read window over the file, filled with pread: scanning never touches
 * the mapping, because bytes past the committed end may be cut off by a
 * writer process meanwhile (reading them through a mapping would raise
 * SIGBUS; pread just comes back short). */
typedef struct scanbuf {
  int fd;
  unsigned char *buf;
  size_t cap, len;
  uint64_t off;
} scanbuf;

/* Bytes [off, off + n) of the file (off + n <= size), or NULL when the file
 * ends before them. */
static const unsigned char *sb_get(scanbuf *b, uint64_t off, size_t n,
                                   uint64_t size, int *err) {
  if (off >= b->off && off + n <= b->off + b->len)
    return b->buf + (off - b->off);
  size_t want = n > SCAN_CHUNK ? n : SCAN_CHUNK;
  if (want > size - off) want = (size_t)(size - off);
  if (want > b->cap) {
    unsigned char *nb = realloc(b->buf, want);
    if (!nb) {
      *err = ENOMEM;
      return NULL;
    }
    b->buf = nb;
    b->cap = want;
  }
  size_t got;
  b->off = off;
  b->len = 0;
  if ((*err = read_full(b->fd, b->buf, want, off, &got))) return NULL;
  b->len = got;
  return got >= n ? b->buf : NULL;
}

enum { SCAN_OK, SCAN_SHORT, SCAN_BAD };

/* Read and check the record at `off`. */
static int sb_record(scanbuf *b, uint32_t dim, uint64_t off, uint64_t size,
                     rview *rv, int *err) {
  if (size - off < REC_HDR) return SCAN_SHORT;
  const unsigned char *p = sb_get(b, off, REC_HDR, size, err);
  if (!p) return SCAN_SHORT;
  if (get32(p) != REC_MAGIC) return SCAN_BAD;
  uint32_t total = get32(p + 8);
  if (total < REC_HDR || total % REC_ALIGN || total > REC_MAX) return SCAN_BAD;
  if (total > size - off) return SCAN_SHORT;
  if (!(p = sb_get(b, off, total, size, err))) return SCAN_SHORT;
  rv_parse(rv, p);
  if (get32(p + 4) != rec_crc(p, total) || !rv_sane(rv, dim, off))
    return SCAN_BAD;
  return SCAN_OK;
}

/* The first aligned offset in [from, size) holding a good record; 0 when
 * there is none (0 is the header, never a record). */
static uint64_t resync(scanbuf *b, uint32_t dim, uint64_t from, uint64_t size,
                       rview *rv, int *err) {
  for (uint64_t p = from; p + REC_HDR <= size && !*err; p += REC_ALIGN) {
    const unsigned char *m = sb_get(b, p, 4, size, err);
    if (!m || get32(m) != REC_MAGIC) continue;
    if (sb_record(b, dim, p, size, rv, err) == SCAN_OK) return p;
  }
  return 0;
}

typedef struct range {
  uint64_t a, b;
} range;

typedef struct scan_out {
  uint64_t committed; /* end of the last committed batch */
  uint64_t records, puts;
  uint64_t torn_bytes, torn_records;
  uint64_t damaged_regions, damaged_bytes;
  uint64_t damage_off, evidence_off; /* for the corruption message */
  range *ranges;                     /* committed records to apply */
  size_t nranges, cap;
} scan_out;

static bool add_range(scan_out *o, uint64_t a, uint64_t b) {
  if (a == b) return true;
  if (o->nranges && o->ranges[o->nranges - 1].b == a) {
    o->ranges[o->nranges - 1].b = b;
    return true;
  }
  if (o->nranges == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 8;
    range *r = realloc(o->ranges, cap * sizeof *r);
    if (!r) return false;
    o->ranges = r;
    o->cap = cap;
  }
  o->ranges[o->nranges++] = (range){a, b};
  return true;
}

/* Pass 1: walk the records in [from, size), checking each, and find what
 * is committed. A bad or short record at X, in the batch that started at
 * B, is a torn tail unless a good record further on belongs to a batch
 * that started after B: batches are synced one after the other, so such a
 * record proves the batch at B was durable, and X is damage. */
static aiplat_status pass1(vlocal *v, lstate *s, uint64_t from, uint64_t size,
                           scan_out *o) {
  scanbuf sb = {.fd = s->fd};
  uint64_t off = from, batch = from, rstart = from;
  uint64_t pend = 0, pend_puts = 0;
  int err = 0;
  aiplat_status st = AIPLAT_OK;
  o->committed = from;
  while (off < size) {
    rview rv;
    int k = sb_record(&sb, s->dim, off, size, &rv, &err);
    if (err) break;
    if (k == SCAN_OK && rv.batch == batch) {
      off += rv.total;
      pend++;
      pend_puts += rv.type == REC_PUT;
      if (rv.flags & FLAG_COMMIT) {
        if (!add_range(o, rstart, off)) {
          err = ENOMEM;
          break;
        }
        o->records += pend;
        o->puts += pend_puts;
        pend = pend_puts = 0;
        o->committed = batch = rstart = off;
      }
      continue;
    }
    /* Damage at off. A good record there that belongs to another batch
     * (the batch before it never committed) is its own resync point. */
    rview nx = rv;
    uint64_t first =
        k == SCAN_OK ? off
                     : resync(&sb, s->dim, off + REC_ALIGN, size, &nx, &err);
    uint64_t p = first, evidence = 0;
    while (p && !err) {
      if (nx.batch > batch) {
        evidence = p;
        break;
      }
      p = resync(&sb, s->dim, p + nx.total, size, &nx, &err);
    }
    if (err) break;
    if (!evidence) break; /* a torn tail */
    if (!(v->flags & AIP_VLOCAL_SALVAGE)) {
      o->damage_off = off;
      o->evidence_off = evidence;
      st = AIPLAT_ERR_CORRUPT;
      break;
    }
    /* Salvage: keep the good part of the damaged batch, skip the damage. */
    if (!add_range(o, rstart, off)) {
      err = ENOMEM;
      break;
    }
    o->records += pend;
    o->puts += pend_puts;
    pend = pend_puts = 0;
    o->committed = off;
    o->damaged_regions++;
    o->damaged_bytes += first - off;
    sb_record(&sb, s->dim, first, size, &nx, &err);
    off = rstart = first;
    batch = nx.batch;
  }
  free(sb.buf);
  if (err)
    return aip_fail(&v->base.err,
                    err == ENOMEM ? AIPLAT_ERR_NO_MEMORY : AIPLAT_ERR_IO,
                    "vstore: reading %s: %s", v->path, strerror(err));
  if (st == AIPLAT_ERR_CORRUPT)
    return aip_fail(&v->base.err, st,
                    "vstore: %s is damaged: the record at offset %llu is bad "
                    "but a later batch (record at offset %llu) was committed "
                    "after it; re-ingest into a new file, or open with "
                    "salvage to skip the damage",
                    v->path, (unsigned long long)o->damage_off,
                    (unsigned long long)o->evidence_off);
  o->torn_bytes = size - o->committed;
  o->torn_records = pend;
  return AIPLAT_OK;
}

/* Pass 2: apply the committed ranges from the mapping (committed bytes are
 * never cut off, so the mapping is safe here). */
static aiplat_status pass2(vlocal *v, lstate *s, const scan_out *o) {
  if (!o->nranges) return AIPLAT_OK;
  aiplat_status st =
      state_map(s, o->ranges[o->nranges - 1].b, &v->base.err, v->path);
  if (st) return st;
  if (o->puts > SIZE_MAX || !state_reserve(s, (size_t)o->puts))
    return aip_fail(&v->base.err, AIPLAT_ERR_NO_MEMORY,
                    "vstore: no memory to load %s", v->path);
  for (size_t i = 0; i < o->nranges; i++) {
    for (uint64_t off = o->ranges[i].a; off < o->ranges[i].b;) {
      rview rv;
      rv_parse(&rv, s->map + off);
      if (apply(s, &rv, off, -1))
        return aip_fail(&v->base.err, AIPLAT_ERR_NO_MEMORY,
                        "vstore: no memory to load %s", v->path);
      off += rv.total;
    }
  }
  return AIPLAT_OK;
}

static void log_tail(const vlocal *v, const scan_out *o, bool cut) {
  char off[24], bytes[24], recs[24];
  snprintf(off, sizeof off, "%llu", (unsigned long long)o->committed);
  snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)o->torn_bytes);
  snprintf(recs, sizeof recs, "%llu", (unsigned long long)o->torn_records);
  aip_log_kv(cut ? AIPLAT_LOG_WARNING : AIPLAT_LOG_INFO,
             cut ? "vector store: cut off an incomplete tail (a write that "
                   "did not finish)"
                 : "vector store: ignoring an incomplete tail (a write in "
                   "progress or unfinished)",
             "path", v->path, "offset", off, "bytes", bytes,
             "complete_records_dropped", recs, (const char *)NULL);
}

/* Scan [from, size) and apply what is committed; cut a torn tail off when
 * writable. */
static aiplat_status scan_apply(vlocal *v, lstate *s, uint64_t from,
                                uint64_t size, bool at_open) {
  scan_out o = {0};
  aiplat_status st = pass1(v, s, from, size, &o);
  if (!st) st = pass2(v, s, &o);
  if (!st && o.torn_bytes) {
    bool cut = !(v->flags & AIP_VLOCAL_READONLY);
    if (cut) {
      if (ftruncate(s->fd, (off_t)o.committed) || fdatasync(s->fd))
        st = aip_fail(&v->base.err, AIPLAT_ERR_IO,
                      "vstore: cutting the incomplete tail of %s: %s", v->path,
                      strerror(errno));
      else
        s->rep.truncated = true;
    }
    if (at_open || cut) log_tail(v, &o, cut);
  }
  if (!st) {
    s->end = o.committed;
    s->seen_size = size;
    s->rep.records += o.records;
    s->rep.committed_bytes = o.committed;
    if (at_open) {
      s->rep.torn_bytes = o.torn_bytes;
      s->rep.torn_records = o.torn_records;
    }
    s->rep.damaged_regions += o.damaged_regions;
    s->rep.damaged_bytes += o.damaged_bytes;
  }
  free(o.ranges);
  return st;
}

static aiplat_status read_header(vlocal *v, lstate *s, uint64_t size) {
  unsigned char h[HDR_SIZE];
  size_t got;
  size_t n = size < HDR_SIZE ? (size_t)size : HDR_SIZE;
  int err = read_full(s->fd, h, n, 0, &got);
  if (err)
    return aip_fail(&v->base.err, AIPLAT_ERR_IO, "vstore: reading %s: %s",
                    v->path, strerror(err));
  if (got < HDR_SIZE) {
    /* Shorter than a header: a creation that did not finish if what is
     * there is the start of our magic; anything else is not ours. */
    if (got == 0) return AIPLAT_OK;
    if (memcmp(h, HDR_MAGIC, got < 8 ? got : 8) != 0)
      return aip_fail(&v->base.err, AIPLAT_ERR_CORRUPT,
                      "vstore: %s is not a libaiplat vector store (no "
                      "header); the file was left as it is",
                      v->path);
    s->rep.torn_bytes = got;
    if (!(v->flags & AIP_VLOCAL_READONLY)) {
      if (ftruncate(s->fd, 0) || fdatasync(s->fd))
        return aip_fail(&v->base.err, AIPLAT_ERR_IO, "vstore: resetting %s: %s",
                        v->path, strerror(errno));
      s->rep.truncated = true;
      aip_log_kv(AIPLAT_LOG_WARNING,
                 "vector store: reset a file whose creation did not finish",
                 "path", v->path, (const char *)NULL);
    }
    return AIPLAT_OK;
  }
  if (memcmp(h, HDR_MAGIC, 8) != 0)
    return aip_fail(&v->base.err, AIPLAT_ERR_CORRUPT,
                    "vstore: %s is not a libaiplat vector store (bad magic); "
                    "the file was left as it is",
                    v->path);
  if (get32(h + 60) != aip_crc32c(0, h, 60))
    return aip_fail(&v->base.err, AIPLAT_ERR_CORRUPT,
                    "vstore: the header of %s fails its checksum", v->path);
  uint32_t version = get32(h + 8), dim = get32(h + 16);
  if (version != FORMAT_VERSION)
    return aip_fail(&v->base.err, AIPLAT_ERR_NOT_SUPPORTED,
                    "vstore: %s has format version %u; this library reads "
                    "version %u",
                    v->path, version, FORMAT_VERSION);
  if (get32(h + 12) != HDR_SIZE || get32(h + 24) != REC_ALIGN || dim == 0 ||
      dim > AIP_VSTORE_MAX_DIM)
    return aip_fail(&v->base.err, AIPLAT_ERR_CORRUPT,
                    "vstore: the header of %s is inconsistent", v->path);
  if (get32(h + 20) != AIP_VMETRIC_COSINE)
    return aip_fail(&v->base.err, AIPLAT_ERR_NOT_SUPPORTED,
                    "vstore: %s uses metric %u; this library has cosine (1) "
                    "only",
                    v->path, get32(h + 20));
  state_set_dim(s, dim);
  s->end = HDR_SIZE;
  return AIPLAT_OK;
}

/* Read the file behind s->fd from the start. */
static aiplat_status state_load(vlocal *v, lstate *s) {
  struct stat sta;
  if (fstat(s->fd, &sta))
    return aip_fail(&v->base.err, AIPLAT_ERR_IO, "vstore: %s: %s", v->path,
                    strerror(errno));
  if (!S_ISREG(sta.st_mode))
    return aip_fail(&v->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: %s is not a regular file", v->path);
  s->dev = sta.st_dev;
  s->ino = sta.st_ino;
  s->seen_mtime = sta.st_mtim;
  uint64_t size = (uint64_t)sta.st_size;
  s->rep.file_bytes = size;
  s->seen_size = size;
  aiplat_status st = read_header(v, s, size);
  if (st || !s->dim) return st;
  return scan_apply(v, s, HDR_SIZE, size, true);
}

/* Open `path` for this handle's mode; a writer takes the lock, and checks
 * that the file it locked is still the one at `path` (a compaction may
 * have replaced it in between). */
static aiplat_status open_fd(vlocal *v, int *out) {
  bool ro = v->flags & AIP_VLOCAL_READONLY;
  for (int attempt = 0; attempt < 16; attempt++) {
    int fd = ro ? open(v->path, O_RDONLY | O_CLOEXEC)
                : open(v->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      return aip_fail(&v->base.err,
                      errno == ENOENT ? AIPLAT_ERR_NOT_FOUND : AIPLAT_ERR_IO,
                      "vstore: opening %s: %s", v->path, strerror(errno));
    if (ro) {
      *out = fd;
      return AIPLAT_OK;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
      int e = errno;
      close(fd);
      if (e == EWOULDBLOCK)
        return aip_fail(&v->base.err, AIPLAT_ERR_UNAVAILABLE,
                        "vstore: %s is open for writing elsewhere (one "
                        "writer at a time; readers may open it read-only)",
                        v->path);
      return aip_fail(&v->base.err, AIPLAT_ERR_IO, "vstore: locking %s: %s",
                      v->path, strerror(e));
    }
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(v->path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
      *out = fd;
      return AIPLAT_OK;
    }
    close(fd);
  }
  return aip_fail(&v->base.err, AIPLAT_ERR_IO,
                  "vstore: %s keeps being replaced while opening", v->path);
}

/* ---- read-only refresh
 * ----------------------------------------------------------- */

static aiplat_status refresh_scan(vlocal *v, bool replaced, uint64_t size,
                                  struct timespec mtime);

static aiplat_status refresh_locked(vlocal *v) {
  lstate *s = &v->s;
  struct stat now, cur;
  if (stat(v->path, &now))
    return aip_fail(&v->base.err,
                    errno == ENOENT ? AIPLAT_ERR_NOT_FOUND : AIPLAT_ERR_IO,
                    "vstore: %s: %s", v->path, strerror(errno));
  if (fstat(s->fd, &cur))
    return aip_fail(&v->base.err, AIPLAT_ERR_IO, "vstore: %s: %s", v->path,
                    strerror(errno));
  bool replaced = now.st_dev != s->dev || now.st_ino != s->ino;
  uint64_t size = (uint64_t)cur.st_size;
  /* The size alone could miss a tail cut off and rewritten to the same
   * length by a new writer; the modification time catches that. */
  if (!replaced && size == s->seen_size &&
      cur.st_mtim.tv_sec == s->seen_mtime.tv_sec &&
      cur.st_mtim.tv_nsec == s->seen_mtime.tv_nsec)
    return AIPLAT_OK;
  if (v->bad_status && v->bad_size == size && v->bad_ino == now.st_ino)
    return v->bad_status; /* the same failure as last time */
  aiplat_status st = refresh_scan(v, replaced, size, cur.st_mtim);
  v->bad_status = st;
  v->bad_size = size;
  v->bad_ino = now.st_ino;
  if (st)
    aip_log_kv(AIPLAT_LOG_WARNING,
               "vector store: cannot pick up new records; serving the ones "
               "loaded before",
               "path", v->path, "error", aip_thread_errmsg(),
               (const char *)NULL);
  return st;
}

static aiplat_status refresh_scan(vlocal *v, bool replaced, uint64_t size,
                                  struct timespec mtime) {
  lstate *s = &v->s;
  aiplat_status st;
  if (!replaced && size >= s->end && s->dim) {
    pthread_rwlock_wrlock(&v->rw);
    st = scan_apply(v, s, s->end, size, false);
    if (!st) s->seen_mtime = mtime;
    pthread_rwlock_unlock(&v->rw);
    if (st != AIPLAT_ERR_NO_MEMORY) return st;
    /* A failed apply may have left part of a batch in: reload. */
  }
  /* Replaced (compacted), shrunk, created since, or inconsistent: load
   * afresh and swap. */
  lstate fresh = {.fd = -1};
  st = open_fd(v, &fresh.fd);
  if (!st) st = state_load(v, &fresh);
  if (st) {
    state_free(&fresh);
    return st;
  }
  pthread_rwlock_wrlock(&v->rw);
  lstate old = *s;
  *s = fresh;
  pthread_rwlock_unlock(&v->rw);
  state_free(&old);
  return AIPLAT_OK;
}

aiplat_status aip_vstore_local_refresh(aip_vstore *vs);

/* ---- operations
 * -------------------------------------------------------------------- */

static aiplat_status writable(vlocal *v) {
  if (v->flags & AIP_VLOCAL_READONLY)
    return aip_fail(&v->base.err, AIPLAT_ERR_STATE,
                    "vstore: %s is open read-only", v->path);
  if (v->broken)
    return aip_fail(&v->base.err, AIPLAT_ERR_STATE,
                    "vstore: an earlier write to %s failed in a way that "
                    "only reopening the store recovers from",
                    v->path);
  return AIPLAT_OK;
}

static aiplat_status dim_mismatch(vlocal *v, uint32_t asked) {
  return aip_fail(&v->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                  "vstore: dimension mismatch: %s holds %u-dimensional "
                  "vectors, this call has %u",
                  v->path, v->s.dim, asked);
}

static aiplat_status l_ensure(aip_vstore *vs, uint32_t dim,
                              aip_vmetric metric) {
  (void)metric; /* cosine, checked by the wrapper */
  vlocal *v = (vlocal *)vs;
  pthread_mutex_lock(&v->wmu);
  aiplat_status st = AIPLAT_OK;
  if (v->s.dim) {
    if (v->s.dim != dim) st = dim_mismatch(v, dim);
    goto out;
  }
  if ((st = writable(v))) goto out;
  unsigned char h[HDR_SIZE];
  hdr_encode(h, dim);
  int err = write_all(v->s.fd, h, HDR_SIZE, 0);
  if (!err && fdatasync(v->s.fd)) err = errno;
  if (!err) err = fsync_parent(v->path);
  if (err) {
    if (ftruncate(v->s.fd, 0)) v->broken = true;
    st = aip_fail(&v->base.err, AIPLAT_ERR_IO,
                  "vstore: writing the header of %s: %s", v->path,
                  strerror(err));
    goto out;
  }
  pthread_rwlock_wrlock(&v->rw);
  state_set_dim(&v->s, dim);
  v->s.end = v->s.seen_size = HDR_SIZE;
  pthread_rwlock_unlock(&v->rw);
out:
  pthread_mutex_unlock(&v->wmu);
  return st;
}

/* True when the live record with this id holds exactly these values. */
static bool same_as_stored(const lstate *s, const aip_vrecord *r, size_t idl,
                           size_t sl, size_t tl, size_t ml) {
  uint32_t v = ht_find(&s->ids, hash_bytes(r->id, idl), id_eq, s, r->id, idl);
  if (!v) return false;
  rview rv;
  rv_parse(&rv, s->map + s->rows[v - 1].off);
  if (rv.sl != sl || rv.tl != tl || rv.ml != ml) return false;
#if LITTLE_ENDIAN_HOST
  if (memcmp(rv.p + REC_HDR, r->vector, 4u * (size_t)s->dim) != 0) return false;
#else
  for (uint32_t i = 0; i < s->dim; i++) {
    uint32_t u;
    memcpy(&u, &r->vector[i], 4);
    if (get32(rv.p + REC_HDR + 4u * i) != u) return false;
  }
#endif
  return !memcmp(rv_src(&rv), r->source ? r->source : "", sl) &&
         !memcmp(rv_text(&rv), r->text ? r->text : "", tl) &&
         !memcmp(rv_meta(&rv), r->metadata ? r->metadata : "", ml);
}

/* Write a prepared batch at the committed end and sync it. On failure,
 * cut the file back; when even that fails, the handle is broken. */
static aiplat_status write_batch(vlocal *v, const unsigned char *buf,
                                 size_t len, size_t nrec) {
  lstate *s = &v->s;
  int err = write_all(s->fd, buf, len, s->end);
  if (err) {
    if (ftruncate(s->fd, (off_t)s->end)) v->broken = true;
    return aip_fail(&v->base.err, AIPLAT_ERR_IO,
                    "vstore: writing to %s: %s (the batch of %zu records "
                    "was not stored)",
                    v->path, strerror(err), nrec);
  }
  if (fdatasync(s->fd)) {
    /* The batch is complete in the page cache but its durability is
     * unknown; the file keeps it (readers elsewhere may already see it),
     * this handle stops writing, and a reopen decides. */
    err = errno;
    v->broken = true;
    return aip_fail(&v->base.err, AIPLAT_ERR_IO,
                    "vstore: syncing %s: %s (the batch of %zu records may "
                    "or may not be stored; reopen the store)",
                    v->path, strerror(err), nrec);
  }
  return AIPLAT_OK;
}

typedef struct penc {
  size_t idl, sl, tl, ml, size;
  int64_t si;
} penc;

static aiplat_status l_insert(aip_vstore *vs, const aip_vrecord *recs, size_t n,
                              uint32_t dim) {
  vlocal *v = (vlocal *)vs;
  lstate *s = &v->s;
  aiplat_status st;
  penc *pe = NULL;
  unsigned char *buf = NULL;
  pthread_mutex_lock(&v->wmu);
  if ((st = writable(v))) goto out;
  if (!s->dim) {
    st =
        aip_fail(&v->base.err, AIPLAT_ERR_STATE,
                 "vstore: %s has no collection yet (ensure it first)", v->path);
    goto out;
  }
  if (dim != s->dim) {
    st = dim_mismatch(v, dim);
    goto out;
  }
  if (!(pe = calloc(n, sizeof *pe))) goto oom;
  /* Measure, and drop records identical to what is stored (re-ingesting
   * unchanged content writes nothing). Under wmu the index is stable. */
  uint64_t bytes = 0;
  size_t keep = 0, last = 0;
  for (size_t i = 0; i < n; i++) {
    const aip_vrecord *r = &recs[i];
    penc *e = &pe[i];
    e->idl = strlen(r->id);
    e->sl = r->source ? strlen(r->source) : 0;
    e->tl = r->text ? strlen(r->text) : 0;
    e->ml = r->metadata ? strlen(r->metadata) : 0;
    if (same_as_stored(s, r, e->idl, e->sl, e->tl, e->ml)) {
      v->unchanged++;
      continue;
    }
    e->size = rec_size(dim, e->idl, e->sl, e->tl, e->ml);
    bytes += e->size;
    keep++;
    last = i;
  }
  if (!keep) goto out;
  if (bytes > BATCH_MAX_BYTES) {
    st = aip_fail(&v->base.err, AIPLAT_ERR_TOO_LARGE,
                  "vstore: the batch is %llu bytes, over the %u-byte limit "
                  "of one insert; split it",
                  (unsigned long long)bytes, BATCH_MAX_BYTES);
    goto out;
  }
  /* Capacity, sources and mapping first, so that publishing cannot fail. */
  pthread_rwlock_wrlock(&v->rw);
  bool ok = state_reserve(s, keep);
  for (size_t i = 0; ok && i < n; i++)
    if (pe[i].size)
      ok = (pe[i].si = src_intern(s, recs[i].source ? recs[i].source : "",
                                  pe[i].sl)) >= 0;
  if (ok) st = state_map(s, s->end + bytes, &v->base.err, v->path);
  pthread_rwlock_unlock(&v->rw);
  if (!ok) goto oom;
  if (st) goto out;
  if (!(buf = malloc((size_t)bytes))) goto oom;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    const aip_vrecord *r = &recs[i];
    const penc *e = &pe[i];
    if (!e->size) continue;
    rec_encode(buf + at, e->size, REC_PUT, i == last ? FLAG_COMMIT : 0, s->end,
               dim, r->vector, r->id, e->idl, r->source, e->sl, r->text, e->tl,
               r->metadata, e->ml);
    at += e->size;
  }
  if ((st = write_batch(v, buf, (size_t)bytes, keep))) goto out;
  pthread_rwlock_wrlock(&v->rw);
  at = 0;
  for (size_t i = 0; i < n; i++) {
    if (!pe[i].size) continue;
    rview rv;
    rv_parse(&rv, buf + at);
    apply(s, &rv, s->end + at, pe[i].si);
    at += pe[i].size;
  }
  s->end += bytes;
  s->seen_size = s->end;
  s->rep.records += keep;
  s->rep.committed_bytes = s->end;
  pthread_rwlock_unlock(&v->rw);
  goto out;
oom:
  st = aip_fail(&v->base.err, AIPLAT_ERR_NO_MEMORY,
                "vstore: no memory to insert %zu records", n);
out:
  pthread_mutex_unlock(&v->wmu);
  free(buf);
  free(pe);
  return st;
}

static aiplat_status l_delete(aip_vstore *vs, const aip_vfilter *f,
                              int64_t *deleted) {
  vlocal *v = (vlocal *)vs;
  lstate *s = &v->s;
  unsigned type =
      f->match == AIP_VMATCH_EXACT ? REC_DEL_SOURCE : REC_DEL_PREFIX;
  size_t sl = strlen(f->source);
  aiplat_status st;
  pthread_mutex_lock(&v->wmu);
  if ((st = writable(v))) goto out;
  size_t n = s->dim ? del_apply(s, type, f->source, sl, true) : 0;
  if (n == 0) goto out; /* nothing to delete: nothing written */
  size_t size = rec_size(0, 0, sl, 0, 0);
  unsigned char rec[REC_HDR + AIP_VSTORE_MAX_SOURCE + REC_ALIGN];
  rec_encode(rec, size, type, FLAG_COMMIT, s->end, 0, NULL, NULL, 0, f->source,
             sl, NULL, 0, NULL, 0);
  pthread_rwlock_wrlock(&v->rw);
  st = state_map(s, s->end + size, &v->base.err, v->path);
  pthread_rwlock_unlock(&v->rw);
  if (st || (st = write_batch(v, rec, size, 1))) goto out;
  pthread_rwlock_wrlock(&v->rw);
  del_apply(s, type, f->source, sl, false);
  s->end += size;
  s->seen_size = s->end;
  s->rep.records++;
  s->rep.committed_bytes = s->end;
  pthread_rwlock_unlock(&v->rw);
  *deleted = (int64_t)n;
out:
  pthread_mutex_unlock(&v->wmu);
  return st;
}

static aiplat_status l_count(aip_vstore *vs, uint64_t *out) {
  vlocal *v = (vlocal *)vs;
  if (v->flags & AIP_VLOCAL_READONLY) aip_vstore_local_refresh(vs);
  pthread_rwlock_rdlock(&v->rw);
  *out = v->s.nrows;
  pthread_rwlock_unlock(&v->rw);
  return AIPLAT_OK;
}

static aiplat_status l_source_ids(aip_vstore *vs, const char *source,
                                  size_t max, char ***ids, size_t *n) {
  vlocal *v = (vlocal *)vs;
  if (v->flags & AIP_VLOCAL_READONLY) aip_vstore_local_refresh(vs);
  aiplat_status st = AIPLAT_OK;
  const char **strs = NULL;
  size_t *lens = NULL, k = 0;
  pthread_rwlock_rdlock(&v->rw);
  const lstate *s = &v->s;
  int64_t si = s->nrows ? src_lookup(s, source, strlen(source)) : -1;
  if (si < 0 || !s->srcs[si].refs) goto out;
  if (s->srcs[si].refs > max) {
    st = aip_fail(&v->base.err, AIPLAT_ERR_TOO_LARGE,
                  "vstore: source has %llu records, more than %zu",
                  (unsigned long long)s->srcs[si].refs, max);
    goto out;
  }
  size_t want = (size_t)s->srcs[si].refs;
  strs = malloc(want * sizeof *strs);
  lens = malloc(want * sizeof *lens);
  if (!strs || !lens) goto oom;
  for (size_t r = 0; r < s->nrows && k < want; r++) {
    if (s->rows[r].src != (uint32_t)si) continue;
    strs[k] = (const char *)row_id(s, r);
    lens[k++] = s->rows[r].id_len;
  }
  if (!(*ids = aip_vstrings_pack(strs, lens, k))) goto oom;
  *n = k;
  goto out;
oom:
  st = aip_fail(&v->base.err, AIPLAT_ERR_NO_MEMORY,
                "vstore: no memory to list a source's ids");
out:
  pthread_rwlock_unlock(&v->rw);
  free(strs);
  free(lens);
  return st;
}

/* ---- search
 * --------------------------------------------------------------------- */

/* The kernel uses v4f (above): one SSE register on baseline x86-64, one
 * NEON register on arm64; GCC and clang emit plain vector code for it. */

/* Dot product of two rows of `stride` floats, with four independent
 * accumulators so that the multiply-adds pipeline. */
static inline float dot(const float *a, const float *b, size_t stride) {
  v4f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  v4f a0, a1, a2, a3, b0, b1, b2, b3;
  size_t i = 0;
  for (; i + 16 <= stride; i += 16) {
    LOAD4(a0, a + i);
    LOAD4(b0, b + i);
    LOAD4(a1, a + i + 4);
    LOAD4(b1, b + i + 4);
    LOAD4(a2, a + i + 8);
    LOAD4(b2, b + i + 8);
    LOAD4(a3, a + i + 12);
    LOAD4(b3, b + i + 12);
    s0 += a0 * b0;
    s1 += a1 * b1;
    s2 += a2 * b2;
    s3 += a3 * b3;
  }
  if (i < stride) {
    LOAD4(a0, a + i);
    LOAD4(b0, b + i);
    LOAD4(a1, a + i + 4);
    LOAD4(b1, b + i + 4);
    s0 += a0 * b0;
    s1 += a1 * b1;
  }
  v4f t = (s0 + s1) + (s2 + s3);
  return (t[0] + t[1]) + (t[2] + t[3]);
}

typedef struct hent {
  float score;
  uint32_t row;
} hent;

static int id_cmp(const lstate *s, uint32_t a, uint32_t b) {
  size_t la = s->rows[a].id_len, lb = s->rows[b].id_len;
  int c = memcmp(row_id(s, a), row_id(s, b), la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

/* a ranks below b: lower score, or the same score and a larger id. */
static inline bool worse(const lstate *s, hent a, hent b) {
  return a.score < b.score ||
         (a.score == b.score && id_cmp(s, a.row, b.row) > 0);
}

static void sift_down(const lstate *s, hent *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && worse(s, h[l], h[m])) m = l;
    if (l + 1 < n && worse(s, h[l + 1], h[m])) m = l + 1;
    if (m == i) return;
    hent t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void sift_up(const lstate *s, hent *h, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!worse(s, h[i], h[p])) return;
    hent t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

/* The bounded min-heap: its root is the worst of the best k so far. */
static inline void consider(const lstate *s, hent *h, size_t *n, size_t k,
                            float score, uint32_t row) {
  hent e = {score, row};
  if (*n < k) {
    h[*n] = e;
    sift_up(s, h, (*n)++);
  } else if (worse(s, h[0], e)) {
    h[0] = e;
    sift_down(s, h, k, 0);
  }
}

static void scan_rows(const lstate *s, const float *q,
                      const unsigned char *mask, hent *h, size_t *hn,
                      size_t k) {
  size_t stride = s->stride;
  for (size_t b = 0, r = 0; r < s->nrows; b++) {
    const float *m = s->blocks[b];
    size_t end = r + s->block_rows < s->nrows ? r + s->block_rows : s->nrows;
    for (; r < end; r++, m += stride) {
      if (mask && !mask[s->rows[r].src]) continue;
      float sc = dot(q, m, stride);
      if (*hn == k && sc < h[0].score) continue; /* the common case */
      consider(s, h, hn, k, sc, (uint32_t)r);
    }
  }
}

/* Which sources pass the filter: NULL for no filter; *none when nothing
 * can match. */
static aiplat_status filter_mask(const lstate *s, const aip_vfilter *f,
                                 unsigned char **mask, bool *none) {
  *mask = NULL;
  *none = false;
  if (!f || f->match == AIP_VMATCH_ANY) return AIPLAT_OK;
  size_t len = strlen(f->source);
  if (!(*mask = calloc(s->nsrcs ? s->nsrcs : 1, 1)))
    return AIPLAT_ERR_NO_MEMORY;
  unsigned type =
      f->match == AIP_VMATCH_EXACT ? REC_DEL_SOURCE : REC_DEL_PREFIX;
  bool any = false;
  if (type == REC_DEL_SOURCE) {
    int64_t si = src_lookup(s, f->source, len);
    if (si >= 0 && s->srcs[si].refs) (*mask)[si] = any = 1;
  } else {
    for (size_t i = 0; i < s->nsrcs; i++)
      if (s->srcs[i].refs && src_matches(&s->srcs[i], type, f->source, len))
        (*mask)[i] = any = 1;
  }
  *none = !any;
  return AIPLAT_OK;
}

static aiplat_status l_search(aip_vstore *vs, const float *query, uint32_t dim,
                              size_t limit, const aip_vfilter *filter,
                              aip_vhit **hits, size_t *n) {
  vlocal *v = (vlocal *)vs;
  if (v->flags & AIP_VLOCAL_READONLY) aip_vstore_local_refresh(vs);
  float *q = NULL;
  hent *h = NULL;
  unsigned char *mask = NULL;
  aip_vhit_src *src = NULL;
  aiplat_status st = AIPLAT_OK;
  pthread_rwlock_rdlock(&v->rw);
  const lstate *s = &v->s;
  if (!s->dim || !s->nrows) goto out; /* nothing stored: no hits */
  if (dim != s->dim) {
    st = dim_mismatch(v, dim);
    goto out;
  }
  bool none;
  if (filter_mask(s, filter, &mask, &none)) goto oom;
  if (none) goto out;
  size_t k = limit < s->nrows ? limit : s->nrows;
  q = aligned_alloc(64,
                    (size_t)align_up((size_t)s->stride * sizeof(float), 64));
  h = malloc(k * sizeof *h);
  if (!q || !h) goto oom;
  double ss = 0;
  for (uint32_t i = 0; i < dim; i++) ss += (double)query[i] * query[i];
  double inv = 1.0 / sqrt(ss);
  for (uint32_t i = 0; i < s->stride; i++)
    q[i] = i < dim ? (float)(query[i] * inv) : 0.0f;
  size_t hn = 0;
  scan_rows(s, q, mask, h, &hn, k);
  if (!hn) goto out;
  if (!(src = calloc(hn, sizeof *src))) goto oom;
  for (size_t i = hn; i-- > 0;) { /* pop the worst into the last place */
    hent e = h[0];
    h[0] = h[i];
    sift_down(s, h, i, 0);
    rview rv;
    rv_parse(&rv, s->map + s->rows[e.row].off);
    src[i] = (aip_vhit_src){e.score,
                            (const char *)rv_id(&rv),
                            (const char *)rv_text(&rv),
                            (const char *)rv_src(&rv),
                            (const char *)rv_meta(&rv),
                            rv.idl,
                            rv.tl,
                            rv.sl,
                            rv.ml};
  }
  if (!(*hits = aip_vhits_pack(src, hn))) goto oom;
  *n = hn;
  goto out;
oom:
  st = aip_fail(&v->base.err, AIPLAT_ERR_NO_MEMORY,
                "vstore: no memory to search");
out:
  pthread_rwlock_unlock(&v->rw);
  free(src);
  free(mask);
  free(h);
  free(q);
  return st;
}

/* ---- compaction
 * ------------------------------------------------------------------ */

static int cmp_u64pair(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Write the live records, in file order, as one batch into `fd`; fills
 * newoff[row] with each row's new offset. */
static int compact_write(lstate *s, int fd, uint64_t *newoff, uint64_t *end) {
  unsigned char h[HDR_SIZE];
  hdr_encode(h, s->dim);
  int err = write_all(fd, h, HDR_SIZE, 0);
  uint64_t *order = malloc((s->nrows ? s->nrows : 1) * 2 * sizeof *order);
  unsigned char *buf = malloc(SCAN_CHUNK + REC_MAX);
  if (!order || !buf) err = ENOMEM;
  for (size_t r = 0; !err && r < s->nrows; r++) {
    order[2 * r] = s->rows[r].off;
    order[2 * r + 1] = r;
  }
  if (!err) qsort(order, s->nrows, 2 * sizeof *order, cmp_u64pair);
  uint64_t at = HDR_SIZE;
  size_t used = 0;
  for (size_t i = 0; !err && i < s->nrows; i++) {
    size_t r = (size_t)order[2 * i + 1];
    rview rv;
    rv_parse(&rv, s->map + s->rows[r].off);
    unsigned char *p = buf + used;
    memcpy(p, rv.p, rv.total);
    put64(p + 16, HDR_SIZE);
    p[13] = i + 1 == s->nrows ? FLAG_COMMIT : 0;
    put32(p + 4, rec_crc(p, rv.total));
    newoff[r] = at + used;
    used += rv.total;
    if (used >= SCAN_CHUNK || i + 1 == s->nrows) {
      err = write_all(fd, buf, used, at);
      at += used;
      used = 0;
    }
  }
  if (!err && fdatasync(fd)) err = errno;
  free(order);
  free(buf);
  *end = at;
  return err;
}

static aiplat_status compact_locked(vlocal *v) {
  lstate *s = &v->s;
  aiplat_status st = writable(v);
  if (st || !s->dim) return st;
  char *tmp = aip_sprintf("%s.compact", v->path);
  uint64_t *newoff = calloc(s->nrows ? s->nrows : 1, sizeof *newoff);
  lstate next = *s; /* shares the index; only fd, map and offsets change */
  next.fd = -1;
  next.map = NULL;
  next.map_len = 0;
  int err = 0;
  if (!tmp || !newoff) err = ENOMEM;
  struct stat sta;
  if (!err && fstat(s->fd, &sta)) err = errno;
  if (!err && (next.fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                              sta.st_mode & 07777)) < 0)
    err = errno;
  if (!err && flock(next.fd, LOCK_EX | LOCK_NB)) err = errno;
  uint64_t end = HDR_SIZE;
  if (!err) err = compact_write(s, next.fd, newoff, &end);
  if (!err && state_map(&next, end, &v->base.err, v->path)) err = ENOMEM;
  if (!err && rename(tmp, v->path)) err = errno;
  if (err) {
    if (next.fd >= 0) {
      close(next.fd);
      unlink(tmp);
    }
    if (next.map) munmap((void *)next.map, next.map_len);
    st = aip_fail(&v->base.err,
                  err == ENOMEM ? AIPLAT_ERR_NO_MEMORY : AIPLAT_ERR_IO,
                  "vstore: compacting %s: %s (the store is unchanged)", v->path,
                  strerror(err));
    goto done;
  }
  fsync_parent(v->path);
  struct stat now;
  if (fstat(next.fd, &now) == 0) {
    next.dev = now.st_dev;
    next.ino = now.st_ino;
  }
  pthread_rwlock_wrlock(&v->rw);
  int oldfd = s->fd;
  const unsigned char *oldmap = s->map;
  size_t oldlen = s->map_len;
  s->fd = next.fd;
  s->dev = next.dev;
  s->ino = next.ino;
  s->map = next.map;
  s->map_len = next.map_len;
  for (size_t r = 0; r < s->nrows; r++) s->rows[r].off = newoff[r];
  s->end = s->seen_size = end;
  s->rep.committed_bytes = end;
  pthread_rwlock_unlock(&v->rw);
  munmap((void *)oldmap, oldlen);
  close(oldfd);
done:
  free(newoff);
  free(tmp);
  return st;
}

/* ---- handle
 * ------------------------------------------------------------------------ */

static void l_close(aip_vstore *vs) {
  vlocal *v = (vlocal *)vs;
  state_free(&v->s);
  pthread_rwlock_destroy(&v->rw);
  pthread_mutex_destroy(&v->wmu);
  aip_err_destroy(&v->base.err);
  free(v->path);
  free(v);
  aip_global_unref();
}

static const aip_vstore_ops local_ops = {
    .name = "local",
    .ensure = l_ensure,
    .insert = l_insert,
    .search = l_search,
    .delete_source = l_delete,
    .count = l_count,
    .source_ids = l_source_ids,
    .close = l_close,
};

static vlocal *as_local(aip_vstore *vs) {
  return vs && vs->ops == &local_ops ? (vlocal *)vs : NULL;
}

aiplat_status aip_vstore_local_open(aip_vstore **out, const char *path,
                                    unsigned flags) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "vstore: NULL out");
  *out = NULL;
  if (!path || !path[0])
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: the store needs a file path (VECTOR_STORE_PATH)");
  if (flags & ~(unsigned)(AIP_VLOCAL_READONLY | AIP_VLOCAL_SALVAGE))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: unknown open flags 0x%x", flags);
  aiplat_status st = aip_global_ref();
  if (st) return st;
  vlocal *v = calloc(1, sizeof *v);
  if (!v || !(v->path = aip_strdup(path))) {
    free(v);
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "vstore: no memory");
  }
  v->base.ops = &local_ops;
  aip_err_init(&v->base.err);
  pthread_mutex_init(&v->wmu, NULL);
  /* glibc's default rwlock lets a stream of readers starve a writer;
   * searches are frequent and publishing is short, so prefer the writer. */
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init(&ra);
#if defined(__GLIBC__)
  pthread_rwlockattr_setkind_np(&ra,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
  pthread_rwlock_init(&v->rw, &ra);
  pthread_rwlockattr_destroy(&ra);
  v->flags = flags;
  v->s.fd = -1;
  st = open_fd(v, &v->s.fd);
  if (!st) st = state_load(v, &v->s);
  if (!st && (flags & AIP_VLOCAL_SALVAGE) && !(flags & AIP_VLOCAL_READONLY) &&
      v->s.rep.damaged_regions)
    st = compact_locked(v);
  if (st) {
    /* Keep the detail for the caller after the handle is gone. */
    char msg[AIP_ERRMSG_MAX];
    aip_err_copy(&v->base.err, msg, sizeof msg);
    l_close(&v->base);
    return aip_fail(NULL, st, "%s", msg);
  }
  *out = &v->base;
  return AIPLAT_OK;
}

aiplat_status aip_vstore_local_report(aip_vstore *vs, aip_vlocal_report *out) {
  vlocal *v = as_local(vs);
  if (!v || !out)
    return aip_fail(vs ? &vs->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: not a local store");
  pthread_mutex_lock(&v->wmu);
  pthread_rwlock_rdlock(&v->rw);
  *out = v->s.rep;
  out->dim = v->s.dim;
  out->live = v->s.nrows;
  out->committed_bytes = v->s.end;
  out->unchanged = v->unchanged;
  pthread_rwlock_unlock(&v->rw);
  pthread_mutex_unlock(&v->wmu);
  return AIPLAT_OK;
}

aiplat_status aip_vstore_local_refresh(aip_vstore *vs) {
  vlocal *v = as_local(vs);
  if (!v)
    return aip_fail(vs ? &vs->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: not a local store");
  if (!(v->flags & AIP_VLOCAL_READONLY)) return AIPLAT_OK;
  pthread_mutex_lock(&v->wmu);
  aiplat_status st = refresh_locked(v);
  pthread_mutex_unlock(&v->wmu);
  return st;
}

aiplat_status aip_vstore_local_compact(aip_vstore *vs) {
  vlocal *v = as_local(vs);
  if (!v)
    return aip_fail(vs ? &vs->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "vstore: not a local store");
  pthread_mutex_lock(&v->wmu);
  aiplat_status st = compact_locked(v);
  pthread_mutex_unlock(&v->wmu);
  return st;
}

double aip_vstore_local_sum_vectors(aip_vstore *vs) {
  vlocal *v = as_local(vs);
  if (!v) return 0;
  pthread_rwlock_rdlock(&v->rw);
  const lstate *s = &v->s;
  v4f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x0, x1, x2, x3;
  for (size_t b = 0, r = 0; r < s->nrows; b++) {
    size_t rows = s->nrows - r < s->block_rows ? s->nrows - r : s->block_rows;
    const float *m = s->blocks[b], *e = m + rows * (size_t)s->stride;
    for (; m + 16 <= e; m += 16) {
      LOAD4(x0, m);
      LOAD4(x1, m + 4);
      LOAD4(x2, m + 8);
      LOAD4(x3, m + 12);
      s0 += x0;
      s1 += x1;
      s2 += x2;
      s3 += x3;
    }
    for (; m < e; m += 4) {
      LOAD4(x0, m);
      s0 += x0;
    }
    r += rows;
  }
  pthread_rwlock_unlock(&v->rw);
  v4f t = (s0 + s1) + (s2 + s3);
  return (double)t[0] + t[1] + t[2] + t[3];
}
