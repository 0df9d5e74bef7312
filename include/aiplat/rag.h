/**
 * @file aiplat/rag.h
 * @brief Retrieval-augmented generation: ingest documents into a vector
 *        store, find the passages that answer a question, and format them
 *        as numbered context for a language model.
 *
 * A RAG handle joins three parts (docs/decisions/0015-rag.md):
 *  - an embeddings client (aiplat/embeddings.h), `EMBEDDINGS_*`;
 *  - a vector store chosen by configuration: Milvus over its REST API v2
 *    (`VECTOR_STORE=milvus`, or `MILVUS_HOST` set and `VECTOR_STORE`
 *    unset; `MILVUS_PORT`, `MILVUS_COLLECTION`, `MILVUS_DB`,
 *    `MILVUS_TOKEN`, `MILVUS_TLS`), else the embedded local store, a file
 *    at `VECTOR_STORE_PATH`;
 *  - optionally a reranker (aiplat/reranker.h), when `RERANKER_URL` is set.
 *
 * **Query**: the question is embedded, the store returns the
 * `RAG_CANDIDATES` closest passages (cosine similarity), the reranker (if
 * any) scores them against the question, and the best `RAG_TOP_K` whose
 * score is at least `RAG_MIN_SCORE` are returned, best first. A result's
 * score is the reranker's relevance score when the results were reranked,
 * else the cosine similarity (-1..1); the cosine similarity is always
 * available as its vector score.
 *
 * **Context**: results become text for a prompt, one passage per block,
 * numbered from 1 with its source:
 * `[1] (source: backups.md) Milvus backups are taken every night ...`,
 * blocks separated by a blank line, whitespace inside a passage collapsed
 * to single spaces, fitted to a budget of `RAG_CONTEXT_CHARS` bytes of
 * UTF-8: whole passages are kept in rank order while they fit, a passage
 * that does not fit is left out (a smaller later one may still fit); only
 * when not even the first passage fits is it cut, at a sentence end if
 * possible, else between words (marked with "…"), never inside a UTF-8
 * sequence.
 *
 * **Ingest**: a document (UTF-8 text, a source name, optional metadata as
 * a JSON object) is split into passages (about 800 bytes, 100 bytes of
 * overlap, at paragraph, sentence or word boundaries), each with an id that
 * is a hash of its source, text, metadata and `EMBEDDINGS_MODEL`: the same
 * content gets the same id. Ingesting a source again compares the stored
 * ids with the new ones: identical means nothing is embedded or written
 * (::AIPLAT_RAG_INGEST_UNCHANGED); otherwise the new passages are embedded
 * and the source's old passages are replaced. A failed ingest can leave a
 * source partly written; ingesting it again completes it.
 *
 * **Local store and several processes**: a handle opens the local store
 * read-only and takes the writer's lock (one writer process at a time)
 * only on its first ingest or delete, so services that only query never
 * block an `aiplat-rag ingest` and see what it commits. A query before the
 * store file exists finds nothing (and logs one warning).
 *
 * Thread: a handle may be shared by threads; queries run in parallel,
 * ingests and deletes on one handle are serialised. Results are immutable
 * and may be read from any thread. Errors: ::AIPLAT_ERR_INVALID_ARGUMENT
 * for bad input (empty question, text that is not UTF-8, metadata that is
 * not a JSON object, a dimension that does not match the store), the
 * embeddings, reranker and store failures as they come (connection,
 * timeout, authentication, ...), with the detail in
 * aiplat_rag_last_error() naming the part that failed.
 */
#ifndef AIPLAT_RAG_H
#define AIPLAT_RAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "common.h"
#include "config.h"
#include "embeddings.h"
#include "reranker.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A RAG handle: embeddings client, vector store, optional reranker. */
typedef struct aiplat_rag aiplat_rag;
/** The passages a query found, best first. */
typedef struct aiplat_rag_results aiplat_rag_results;

/** What an ingest did; the numbers are pinned. */
typedef enum aiplat_rag_ingest_outcome {
  AIPLAT_RAG_INGEST_NEW = 1, /**< the source was not stored before */
  AIPLAT_RAG_INGEST_UNCHANGED =
      2, /**< the same passages were stored: nothing written */
  AIPLAT_RAG_INGEST_REPLACED = 3, /**< the source's passages were replaced */
  AIPLAT_RAG_INGEST_EMPTY =
      4 /**< no text: the source's passages (if any) were removed */
} aiplat_rag_ingest_outcome;

/**
 * Create a handle from @p cfg (NULL: the environment): the embeddings
 * client (`EMBEDDINGS_*`, `HTTP_*`), the vector store (see the file
 * comment), a reranker when `RERANKER_URL` is set, and `RAG_TOP_K`,
 * `RAG_CANDIDATES`, `RAG_MIN_SCORE`, `RAG_CONTEXT_CHARS`. Nothing is sent
 * to a server yet. A bad setting is ::AIPLAT_ERR_CONFIG naming it. Free
 * with aiplat_rag_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_create(aiplat_rag **out,
                                           aiplat_config *cfg);

/**
 * Create a handle on clients the caller made: @p embeddings (required) and
 * @p reranker (NULL: no reranking) are borrowed, not copied: they must
 * outlive the handle and are not destroyed with it. The store and the
 * `RAG_*` settings come from @p cfg (NULL: the environment) as in
 * aiplat_rag_create(); `EMBEDDINGS_MODEL` from it enters the passage ids.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_create_with(aiplat_rag **out,
                                                aiplat_config *cfg,
                                                aiplat_embeddings *embeddings,
                                                aiplat_reranker *reranker);

/**
 * Destroy a handle; no call may be running on it. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_rag_destroy(aiplat_rag *rag);

/**
 * Copy the detail of the handle's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_last_error(aiplat_rag *rag, char *buf,
                                               size_t buflen);

/**
 * The store's backend: "local" or "milvus" (static text; "" for NULL).
 * @since 1.0
 */
AIPLAT_API const char *aiplat_rag_store_backend(const aiplat_rag *rag);

/**
 * True when the handle has a reranker and reranking is on.
 * @since 1.0
 */
AIPLAT_API bool aiplat_rag_reranks(aiplat_rag *rag);

/**
 * Passages a query returns, 1 to 16383 (`RAG_TOP_K`).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_set_top_k(aiplat_rag *rag, size_t k);

/** Candidates fetched from the store before reranking, 1 to 16383
 * (`RAG_CANDIDATES`); a query fetches at least its k.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_set_candidates(aiplat_rag *rag, size_t n);

/** The lowest score a returned passage may have (`RAG_MIN_SCORE`); a
 * finite number.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_set_min_score(aiplat_rag *rag, double min);

/** The context budget in bytes of UTF-8, 16 to 16777216
 * (`RAG_CONTEXT_CHARS`).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_set_context_chars(aiplat_rag *rag,
                                                      size_t chars);

/** Passage size for ingestion: at most @p chunk_chars bytes (32 to 65535,
 * default 800) with about @p overlap bytes shared by consecutive passages
 * of a paragraph (less than half of @p chunk_chars, default 100).
 * Changing them changes the passages, so the next ingest of a source
 * replaces it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_set_chunking(aiplat_rag *rag,
                                                 size_t chunk_chars,
                                                 size_t overlap);

/** Turn reranking off or back on (on needs a reranker:
 * ::AIPLAT_ERR_STATE otherwise).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_set_rerank(aiplat_rag *rag, bool enabled);

/**
 * The passages that best answer @p question (UTF-8, not empty), with the
 * handle's settings. On success *@p out is a new result list (possibly
 * empty), freed with aiplat_rag_results_destroy(); NULL on failure.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_query(aiplat_rag *rag, const char *question,
                                          aiplat_rag_results **out);

/**
 * As aiplat_rag_query() with per-call overrides: @p top_k passages (0: the
 * handle's), only from @p source (exact match; NULL: every source).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_query_filtered(aiplat_rag *rag,
                                                   const char *question,
                                                   size_t top_k,
                                                   const char *source,
                                                   aiplat_rag_results **out);

/**
 * Completion of aiplat_rag_query_async(). Runs once, on the library's
 * event loop thread, and must not block (no blocking library call there:
 * they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed for the
 * callback) explains a failure as aiplat_rag_last_error() would, naming
 * the part that failed ("rag: searching the store: milvus: ..."); "" on
 * success. @p results is the caller's on success (possibly empty; free
 * with aiplat_rag_results_destroy()), NULL on failure.
 */
typedef void (*aiplat_rag_done_fn)(aiplat_status status, const char *message,
                                   aiplat_rag_results *results,
                                   void *user_data);

/**
 * aiplat_rag_query_filtered() without waiting: returns at once, and
 * @p done gets the passages on the event loop thread, with @p user_data.
 * @p top_k (0: the handle's) and @p source (NULL: every source) apply to
 * this call only. The question is checked and copied before this returns,
 * and the settings are read then. The steps (embed the question, search
 * the store, rerank) run one after the other on the library's execution
 * core; no thread waits for a server. A local store is searched on the
 * event loop thread itself (a scan of memory, no I/O).
 *
 * @p call (may be NULL) carries the deadline and the cancel switch for the
 * whole query: each step is bounded by its deadline (with each client's
 * own timeout, the sooner wins), and aiplat_call_cancel() stops the step
 * in progress (its connection closes) so that @p done runs with
 * ::AIPLAT_ERR_CANCELLED; a Milvus retry waiting out a busy answer ends
 * when its wait does. It must outlive the query (destroy it in or after
 * @p done). @p rag must outlive the query too. On an error return nothing
 * is called back and aiplat_rag_last_error() has the detail.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_query_async(aiplat_rag *rag,
                                                const char *question,
                                                size_t top_k,
                                                const char *source,
                                                aiplat_call *call,
                                                aiplat_rag_done_fn done,
                                                void *user_data);

/**
 * Query and format the context in one call, with the handle's budget. On
 * success *@p out is a NUL-terminated string ("" when nothing was found),
 * freed with aiplat_free().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_context(aiplat_rag *rag,
                                            const char *question, char **out);

/**
 * Destroy a result list. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_rag_results_destroy(aiplat_rag_results *r);

/**
 * Number of passages (0 for NULL).
 * @since 1.0
 */
AIPLAT_API size_t aiplat_rag_results_count(const aiplat_rag_results *r);

/**
 * True when a reranker ordered these results (then scores are its).
 * @since 1.0
 */
AIPLAT_API bool aiplat_rag_results_reranked(const aiplat_rag_results *r);

/** Passage @p i's id, or NULL when @p i >= count. Borrowed: valid until
 * the list is destroyed (as are text, source and metadata).
 * @since 1.0
 */
AIPLAT_API const char *aiplat_rag_results_id(const aiplat_rag_results *r,
                                             size_t i);

/**
 * Passage @p i's text, or NULL when @p i >= count.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_rag_results_text(const aiplat_rag_results *r,
                                               size_t i);

/**
 * Passage @p i's source (a file name, a URL), or NULL when out of range.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_rag_results_source(const aiplat_rag_results *r,
                                                 size_t i);

/**
 * Passage @p i's metadata as a JSON object ("{}" when none), or NULL.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_rag_results_metadata(const aiplat_rag_results *r,
                                                   size_t i);

/**
 * Passage @p i's score (see the file comment); 0 when out of range.
 * @since 1.0
 */
AIPLAT_API double aiplat_rag_results_score(const aiplat_rag_results *r,
                                           size_t i);

/**
 * Passage @p i's cosine similarity to the question; 0 when out of range.
 * @since 1.0
 */
AIPLAT_API double aiplat_rag_results_vector_score(const aiplat_rag_results *r,
                                                  size_t i);

/**
 * Format the results as prompt context within @p max_chars bytes (16 to
 * 16777216; see the file comment). On success *@p out is a NUL-terminated
 * string ("" for no results), freed with aiplat_free().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_results_context(const aiplat_rag_results *r,
                                                    size_t max_chars,
                                                    char **out);

/**
 * Ingest one document: @p len bytes of UTF-8 @p text (no NUL bytes; at
 * most 64 MiB) from @p source (1 to 4096 bytes of UTF-8, e.g. a file name
 * or URL; it names the document: ingesting the same source again replaces
 * it), with @p metadata_json (a JSON object stored with every passage;
 * NULL or "" for none). @p chunks (may be NULL) receives the number of
 * passages, @p outcome (may be NULL) what was done. Takes the local
 * store's writer lock on first use (::AIPLAT_ERR_UNAVAILABLE while another
 * process holds it).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_ingest(aiplat_rag *rag, const char *source,
                                           const char *text, size_t len,
                                           const char *metadata_json,
                                           size_t *chunks,
                                           aiplat_rag_ingest_outcome *outcome);

/* clang-format off */
/**
 * Ingest a text or markdown file (UTF-8, at most 64 MiB) under @p source
 * (NULL: the file's name without its directories). A markdown title line
 * (`# Title`) becomes the metadata {"title": "Title"}. A file that is not
 * UTF-8 text (NUL bytes, invalid sequences) is ::AIPLAT_ERR_INVALID_ARGUMENT;
 * a missing one ::AIPLAT_ERR_NOT_FOUND.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_ingest_file(
    aiplat_rag *rag, const char *path, const char *source, size_t *chunks,
    aiplat_rag_ingest_outcome *outcome);
/* clang-format on */

/** Remove every passage of @p source (exact match). Removing a source
 * that is not stored succeeds.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_delete_source(aiplat_rag *rag,
                                                  const char *source);

/**
 * The number of passages in the store.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_count(aiplat_rag *rag, uint64_t *out);

/**
 * Rewrite the local store's file with only its live passages, so that
 * deleted and replaced ones leave the file (a new file, synced, then
 * renamed over the old one: a crash leaves one or the other, whole). Takes
 * the store's writer lock (::AIPLAT_ERR_UNAVAILABLE while another process
 * holds it). @p bytes_before and @p bytes_after (either may be NULL)
 * receive the file's size. Milvus compacts its own segments:
 * ::AIPLAT_ERR_NOT_SUPPORTED.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_compact(aiplat_rag *rag,
                                            uint64_t *bytes_before,
                                            uint64_t *bytes_after);

/**
 * Check the local store's file: every committed record is read and
 * checked (checksums, vectors), without changing the file. @p report
 * receives a JSON object (free with aiplat_free()): `dimension`,
 * `file_bytes`, `committed_bytes`, `records`, `live`, `torn_bytes` (an
 * incomplete tail), `torn_records`, `bad_vectors` (skipped), and `ok`.
 * Returns ::AIPLAT_OK when the file is whole, ::AIPLAT_ERR_CORRUPT (with
 * the report) when a record is damaged, a tail is torn or a vector is bad.
 * A missing file is ::AIPLAT_ERR_NOT_FOUND; Milvus:
 * ::AIPLAT_ERR_NOT_SUPPORTED.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_rag_verify(aiplat_rag *rag, char **report);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_RAG_H */
