/* Internal vector-store interface (docs/decisions/0010-local-vector-store.md).
 *
 * One vtable, several backends: the embedded local store (vstore_local.c, a
 * file on disk, the default) and, later, Milvus over its REST API v2. The
 * RAG layer talks only to this interface. Not installed.
 *
 * Model: one collection of records {id, vector, text, source, metadata}
 * compared by cosine similarity. An id is a stable key chosen by the caller
 * (the RAG layer passes a content hash): inserting an id that exists
 * replaces the old record (Milvus: "upsert"), so re-ingesting the same
 * content never duplicates it.
 *
 * Every operation is thread-safe on one handle. Failures record their
 * detail in the handle (aip_vstore_last_error) and the thread record.
 */
#ifndef AIPLAT_VSTORE_INTERNAL_H
#define AIPLAT_VSTORE_INTERNAL_H

#include "aiplat/call.h"
#include "internal.h"

/* Limits shared by every backend, so that changing backend never changes
 * what is accepted. They are what the Milvus backend's collection holds:
 * VarChar primary key (max_length 512), VarChar source (4096) and text
 * (65535, Milvus's VarChar ceiling), a JSON field (65536 bytes), a float
 * vector of at most 32768 dimensions, a search limit (topk) of 16384. */
#define AIP_VSTORE_MAX_DIM 32768u
#define AIP_VSTORE_MAX_ID 512u
#define AIP_VSTORE_MAX_SOURCE 4096u
#define AIP_VSTORE_MAX_TEXT 65535u
#define AIP_VSTORE_MAX_METADATA 65536u
#define AIP_VSTORE_MAX_LIMIT 16384u
/* Records in one insert call. */
#define AIP_VSTORE_MAX_BATCH 65536u

typedef struct aip_vstore aip_vstore;

/* Similarity metric of a collection. Only cosine for now; the numbers are
 * stored in files and never reused. */
typedef enum aip_vmetric { AIP_VMETRIC_COSINE = 1 } aip_vmetric;

/* One record to insert. Strings are NUL-terminated UTF-8 and copied. */
typedef struct aip_vrecord {
  const char *id;       /* 1..AIP_VSTORE_MAX_ID bytes */
  const float *vector;  /* `dim` finite floats, not all zero */
  const char *text;     /* the passage; NULL means "" */
  const char *source;   /* where it came from (file, URL); NULL means "" */
  const char *metadata; /* a JSON object; NULL or "" means none */
} aip_vrecord;

/* How a source filter matches. */
typedef enum aip_vmatch {
  AIP_VMATCH_ANY = 0,   /* no filter */
  AIP_VMATCH_EXACT = 1, /* source == value (Milvus: source == "v") */
  AIP_VMATCH_PREFIX = 2 /* source starts with value (Milvus: like "v%") */
} aip_vmatch;

typedef struct aip_vfilter {
  aip_vmatch match;
  const char *source; /* required unless match is AIP_VMATCH_ANY */
} aip_vfilter;

/* One search result. Strings are NUL-terminated and live in the same
 * allocation as the array (see aip_vstore_search). */
typedef struct aip_vhit {
  const char *id;
  float score; /* cosine similarity in [-1, 1], higher is closer */
  const char *text;
  const char *source;
  const char *metadata; /* a JSON object, "{}" when the record had none */
} aip_vhit;

/* ---- the interface ------------------------------------------------------ */

/* Create the collection if it does not exist, with `dim` and `metric`; if
 * it exists, check that they match (AIPLAT_ERR_INVALID_ARGUMENT naming both
 * dimensions when they do not). */
aiplat_status aip_vstore_ensure(aip_vstore *vs, uint32_t dim,
                                aip_vmetric metric);

/* Insert (or replace, by id) `n` records of `dim` floats, all or none: when
 * it returns AIPLAT_OK the batch is durable; on failure none of it is
 * visible (the local store may still hold it after a failed sync, see the
 * ADR). Records are validated first; the message names the bad one. */
aiplat_status aip_vstore_insert(aip_vstore *vs, const aip_vrecord *recs,
                                size_t n, uint32_t dim);

/* The `limit` records closest to `query` (`dim` floats), best first; ties
 * in score are ordered by id (bytewise, ascending). `filter` may be NULL.
 * On success *hits is one allocation holding the array and its strings,
 * released with free() (aiplat_free() for a caller outside the library);
 * *n may be less than `limit`, and *hits is NULL when *n is 0. A store that
 * has no collection yet answers with no hits. */
aiplat_status aip_vstore_search(aip_vstore *vs, const float *query,
                                uint32_t dim, size_t limit,
                                const aip_vfilter *filter, aip_vhit **hits,
                                size_t *n);

/* The end of an asynchronous search: as aip_vstore_search(), with the
 * detail of a failure in @message (borrowed for the callback; "" on
 * success). @hits (NULL when @n is 0) is the callee's: free(). */
typedef void (*aip_vstore_search_done)(aiplat_status st, const char *message,
                                       aip_vhit *hits, size_t n, void *ud);

/* aip_vstore_search() without waiting. The arguments are checked and
 * copied before it returns. On AIPLAT_OK @done runs exactly once; on
 * failure it never runs and @err (may be NULL: the thread's record only)
 * has the detail. @call (may be NULL) bounds the search with its deadline
 * and stops it when cancelled; a call already cancelled or past its
 * deadline fails here (CANCELLED, TIMEOUT).
 *
 * Which thread runs @done depends on the backend:
 *  - Milvus: the execution core's loop thread (the requests run there);
 *  - the local store (no network, a scan of memory): the calling thread,
 *    before this returns. Called on the loop thread (as the RAG query's
 *    steps are), the scan runs there: a search of the local store costs
 *    the loop about the time of one scan (docs/decisions/0020).
 * The handle's own record (aip_vstore_last_error) is not touched. */
aiplat_status aip_vstore_search_async(aip_vstore *vs, aip_err *err,
                                      const float *query, uint32_t dim,
                                      size_t limit, const aip_vfilter *filter,
                                      aiplat_call *call,
                                      aip_vstore_search_done done, void *ud);

/* Delete every record whose source matches `filter` (EXACT or PREFIX; an
 * empty prefix is refused: it would delete everything). *deleted (may be
 * NULL) receives the number deleted, or -1 when the backend cannot tell
 * (Milvus's delete answers without a count). */
aiplat_status aip_vstore_delete_source(aip_vstore *vs,
                                       const aip_vfilter *filter,
                                       int64_t *deleted);

/* The number of live records. */
aiplat_status aip_vstore_count(aip_vstore *vs, uint64_t *out);

/* The ids of the live records whose source is exactly `source`, at most
 * `max` (1..AIP_VSTORE_MAX_LIMIT - 1) of them: AIPLAT_ERR_TOO_LARGE when
 * there are more. In no particular order. On success *ids is one
 * allocation holding the array and its strings, released with free(), and
 * NULL when *n is 0. A store without a collection has none. (The RAG layer
 * uses it to see whether a re-ingested document changed.) */
aiplat_status aip_vstore_source_ids(aip_vstore *vs, const char *source,
                                    size_t max, char ***ids, size_t *n);

/* The backend's name: "local" or "milvus". */
const char *aip_vstore_backend(const aip_vstore *vs);

/* Copy the handle's last failure into buf (see aiplat_config_last_error). */
aiplat_status aip_vstore_last_error(aip_vstore *vs, char *buf, size_t buflen);

/* Release the handle (the local store releases its file lock). NULL ok. */
void aip_vstore_close(aip_vstore *vs);

/* Open the store the configuration names: VECTOR_STORE=local|milvus, or
 * by default milvus when MILVUS_HOST is set explicitly, else local at
 * VECTOR_STORE_PATH. `writable` opens the local store for writing (one
 * writer process at a time); a Milvus handle always reads and writes. */
aiplat_status aip_vstore_open_config(aip_vstore **out, aiplat_config *cfg,
                                     bool writable);

/* The choice aip_vstore_open_config() makes, without opening: *milvus, and
 * for the local store its VECTOR_STORE_PATH in *path (borrowed from cfg;
 * @path may be NULL). AIPLAT_ERR_CONFIG for a bad VECTOR_STORE. */
aiplat_status aip_vstore_choose(aiplat_config *cfg, bool *milvus,
                                const char **path);

/* ---- the local store ---------------------------------------------------- */

enum {
  /* Open without writing: no file lock, the file is never modified (a torn
   * tail is ignored, not truncated), and batches another process commits
   * become visible on the next search or aip_vstore_local_refresh(). */
  AIP_VLOCAL_READONLY = 1u << 0,
  /* Skip damaged records in the middle of the file instead of failing with
   * AIPLAT_ERR_CORRUPT (reported in the open report). A writable salvage
   * open then compacts the file, dropping the damage for good. */
  AIP_VLOCAL_SALVAGE = 1u << 1
};

/* What opening (and refreshing) found. */
typedef struct aip_vlocal_report {
  uint32_t dim;             /* 0: no collection yet (a new or empty file) */
  uint64_t file_bytes;      /* file size found at open */
  uint64_t committed_bytes; /* end of the last committed batch */
  uint64_t records;         /* committed records read (all kinds) */
  uint64_t live;            /* live records now */
  uint64_t torn_bytes;      /* incomplete tail after the last commit */
  uint64_t torn_records;    /* complete records inside that tail, dropped */
  bool truncated;           /* the tail was cut off (writable open) */
  uint64_t damaged_regions; /* salvage: damaged regions skipped */
  uint64_t damaged_bytes;   /* salvage: bytes skipped */
  uint64_t unchanged;       /* inserts skipped since open: identical record */
  /* Committed puts read whose vector is not finite or is all zero (a
   * damaged file, another writer): ignored, and their ids read as missing
   * (a put replaces its id). Inserts never write such a vector. */
  uint64_t bad_vectors;
} aip_vlocal_report;

/* Open (creating it when writable) the store file at `path`. A writable
 * open takes an exclusive advisory lock (flock): a second writer gets
 * AIPLAT_ERR_UNAVAILABLE. A file that is not a store is
 * AIPLAT_ERR_CORRUPT and is left untouched; damage before the last
 * committed batch is AIPLAT_ERR_CORRUPT unless AIP_VLOCAL_SALVAGE; a torn
 * tail is dropped with a WARNING log and counted in the report. */
aiplat_status aip_vstore_local_open(aip_vstore **out, const char *path,
                                    unsigned flags);

/* The open report, with the live count and skip counter brought up to
 * date. `vs` must be a local store (else AIPLAT_ERR_INVALID_ARGUMENT). */
aiplat_status aip_vstore_local_report(aip_vstore *vs, aip_vlocal_report *out);

/* Read-only handle: pick up what a writer process committed since (also
 * done by every search). Writable handle: nothing to do. */
aiplat_status aip_vstore_local_refresh(aip_vstore *vs);

/* Writable handle: rewrite the file with only the live records (atomic
 * replace: a new file, fdatasync, rename, directory fsync). */
aiplat_status aip_vstore_local_compact(aip_vstore *vs);

/* For the benchmark: read every stored vector once (a sum over the same
 * matrix a search scans), the memory-bandwidth floor of a search. */
double aip_vstore_local_sum_vectors(aip_vstore *vs);

/* ---- helpers shared by the backends (vstore.c) --------------------------- */

/* CRC-32C (Castagnoli), continuing from `crc` (0 to start). Uses the
 * SSE4.2 instruction when the CPU has it. */
uint32_t aip_crc32c(uint32_t crc, const void *data, size_t len);
/* The portable table version, for tests. */
uint32_t aip_crc32c_sw(uint32_t crc, const void *data, size_t len);

/* ---- backend plumbing -----------------------------------------------------
 */

typedef struct aip_vstore_ops {
  const char *name;
  aiplat_status (*ensure)(aip_vstore *vs, uint32_t dim, aip_vmetric metric);
  aiplat_status (*insert)(aip_vstore *vs, const aip_vrecord *recs, size_t n,
                          uint32_t dim);
  aiplat_status (*search)(aip_vstore *vs, const float *query, uint32_t dim,
                          size_t limit, const aip_vfilter *filter,
                          aip_vhit **hits, size_t *n);
  /* NULL: aip_vstore_search_async() runs `search` inline. Arguments are
   * checked; @err as in aip_vstore_search_async(). */
  aiplat_status (*search_async)(aip_vstore *vs, aip_err *err,
                                const float *query, uint32_t dim, size_t limit,
                                const aip_vfilter *filter, aiplat_call *call,
                                aip_vstore_search_done done, void *ud);
  aiplat_status (*delete_source)(aip_vstore *vs, const aip_vfilter *filter,
                                 int64_t *deleted);
  aiplat_status (*count)(aip_vstore *vs, uint64_t *out);
  aiplat_status (*source_ids)(aip_vstore *vs, const char *source, size_t max,
                              char ***ids, size_t *n);
  void (*close)(aip_vstore *vs);
} aip_vstore_ops;

/* The common head of every backend's handle. Backends embed it first. The
 * wrappers in vstore.c validate arguments before calling the ops, so
 * backends receive only well-formed records and queries. */
struct aip_vstore {
  const aip_vstore_ops *ops;
  aip_err err;
};

/* Packs search results into one allocation (backends use it). */
typedef struct aip_vhit_src {
  float score;
  const char *id, *text, *source, *metadata; /* not NUL-terminated */
  size_t id_len, text_len, source_len, metadata_len;
} aip_vhit_src;
aip_vhit *aip_vhits_pack(const aip_vhit_src *src, size_t n);

/* Packs `n` strings (`lens[i]` bytes each, not NUL-terminated) into one
 * allocation: the array of pointers, then the NUL-terminated copies. */
char **aip_vstrings_pack(const char *const *strs, const size_t *lens, size_t n);

/* ---- the Milvus backend (vstore_milvus.c) -------------------------------- */

/* Open a handle on Milvus's REST API v2 from MILVUS_HOST, MILVUS_PORT,
 * MILVUS_TLS, MILVUS_DB, MILVUS_COLLECTION, MILVUS_TOKEN (or
 * MILVUS_TOKEN_FILE) and the HTTP_* settings. Nothing is sent yet: the
 * first operation talks to the server. See
 * docs/decisions/0015-rag.md. */
aiplat_status aip_vstore_milvus_open(aip_vstore **out, aiplat_config *cfg);

/* The base URL a Milvus handle talks to (borrowed), for messages and tests;
 * NULL for another backend. */
const char *aip_vstore_milvus_url(aip_vstore *vs);

/* Build a Milvus boolean expression comparing a VarChar field with a
 * string: `field == "value"` (EXACT) or `field like "value%"` (PREFIX),
 * the value escaped so that it can never end the literal early. PREFIX
 * with a value holding a LIKE wildcard (%, _) or a backslash is
 * AIPLAT_ERR_NOT_SUPPORTED (versions disagree on escaping inside LIKE).
 * On success *out is a new string (free()). */
aiplat_status aip_milvus_filter(aip_err *err, const char *field,
                                aip_vmatch match, const char *value,
                                char **out);

#endif /* AIPLAT_VSTORE_INTERNAL_H */
