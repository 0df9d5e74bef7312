/**
 * @file aiplat/reranker.h
 * @brief Reranker client: scores documents against a query.
 *
 * Two wire shapes are spoken (docs/decisions/0008-http-and-model-clients.md):
 *  - ::AIPLAT_RERANKER_API_COHERE — Cohere, Infinity, vLLM, llama.cpp:
 *    `POST {url}/v1/rerank` (or `/rerank`) with `{"model", "query",
 *    "documents", "top_n"}`, answered `{"results": [{"index",
 *    "relevance_score"}, ...]}`;
 *  - ::AIPLAT_RERANKER_API_TEI — HuggingFace text-embeddings-inference:
 *    `POST {url}/rerank` with `{"query", "texts"}`, answered
 *    `[{"index", "score"}, ...]`;
 *  - ::AIPLAT_RERANKER_API_AUTO (the default) tries `/v1/rerank`, then on
 *    404/405 `/rerank` with `texts`, then on 422 `/rerank` with
 *    `documents`, and keeps what worked for the client's later calls.
 * Either answer shape is accepted whatever was asked. Results are sorted
 * by score, highest first (ties by input order), and cut to top_n.
 *
 * Thread: a client may be shared by threads; results are immutable. The
 * blocking call runs on the calling thread; the asynchronous one on the
 * library's event loop thread, which also runs its completion callback.
 */
#ifndef AIPLAT_RERANKER_H
#define AIPLAT_RERANKER_H

#include "call.h"
#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A reranker client. */
typedef struct aiplat_reranker aiplat_reranker;
/** Scored document positions, best first. */
typedef struct aiplat_reranker_result aiplat_reranker_result;

/** Which reranking API the server speaks; the numbers are pinned. */
typedef enum aiplat_reranker_api {
  AIPLAT_RERANKER_API_AUTO = 0,   /**< find out on the first call */
  AIPLAT_RERANKER_API_COHERE = 1, /**< /v1/rerank, `documents`, `relevance_score` */
  AIPLAT_RERANKER_API_TEI = 2     /**< /rerank, `texts`, bare list of `score` */
} aiplat_reranker_api;

/**
 * Create a client from @p cfg (NULL: the environment): `RERANKER_URL`
 * (required: unset is ::AIPLAT_ERR_CONFIG), `RERANKER_MODEL`,
 * `RERANKER_API_KEY`, `RERANKER_API` (`auto`, `cohere`, `tei`), `HTTP_*`.
 * Free with aiplat_reranker_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_create(aiplat_reranker **out,
                                                aiplat_config *cfg);

/**
 * Destroy a client; no call may be running on it. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_reranker_destroy(aiplat_reranker *c);

/**
 * Set the server URL (copied), with or without a trailing `/v1`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_url(aiplat_reranker *c,
                                                 const char *url);

/**
 * Set the model name (copied; not sent to text-embeddings-inference).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_model(aiplat_reranker *c,
                                                   const char *model);

/**
 * Set the bearer token (copied; never logged). NULL or "" removes it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_api_key(aiplat_reranker *c,
                                                     const char *key);

/**
 * Total time one call may take, retries and waits included (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_timeout_ms(aiplat_reranker *c,
                                                        int64_t ms);

/**
 * Time one connection attempt may take (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_connect_timeout_ms(
    aiplat_reranker *c, int64_t ms);

/**
 * Extra attempts on retryable failures, 0 to 100.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_max_retries(aiplat_reranker *c,
                                                         int retries);

/**
 * Choose the API; AUTO forgets what an earlier call found out.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_set_api(aiplat_reranker *c,
                                                 aiplat_reranker_api api);

/**
 * The API in use: the one set, or the one AUTO found (AUTO before).
 * @since 1.0
 */
AIPLAT_API aiplat_reranker_api aiplat_reranker_get_api(aiplat_reranker *c);

/**
 * Readiness probe: `GET /health`, else `GET /v1/models`; no retries.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_health(aiplat_reranker *c);

/**
 * Stop every call on @p c in progress now. Thread: any.
 * @since 1.0
 */
AIPLAT_API void aiplat_reranker_cancel(aiplat_reranker *c);

/**
 * Copy the detail of the client's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_last_error(aiplat_reranker *c,
                                                    char *buf, size_t buflen);

/**
 * Score @p count documents (UTF-8, read not kept) against @p query.
 * @p top_n 0 keeps every document. On success *@p out is a new result
 * (aiplat_reranker_result_destroy()); NULL on failure.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_rerank(aiplat_reranker *c,
                                                const char *query,
                                                const char *const *documents,
                                                size_t count, size_t top_n,
                                                aiplat_reranker_result **out);

/**
 * Destroy a result. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_reranker_result_destroy(aiplat_reranker_result *r);

/**
 * Number of scored documents (<= top_n when it was set).
 * @since 1.0
 */
AIPLAT_API size_t aiplat_reranker_result_count(const aiplat_reranker_result *r);

/**
 * Input position of the @p i-th best document (i < count), else SIZE_MAX.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_reranker_result_index(const aiplat_reranker_result *r,
                                               size_t i);

/**
 * Score of the @p i-th best document (i < count), else 0.
 * @since 1.0
 */
AIPLAT_API double aiplat_reranker_result_score(const aiplat_reranker_result *r,
                                               size_t i);

/* ---- asynchronous form ------------------------------------------------ */

/**
 * Completion of aiplat_reranker_rerank_async(). Runs once, on the
 * library's event loop thread, and must not block (no blocking library
 * call there: they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed
 * for the callback) explains a failure, "" on success. @p result is the
 * caller's on success (aiplat_reranker_result_destroy()), NULL on failure.
 */
typedef void (*aiplat_reranker_done_fn)(aiplat_status status,
                                        const char *message,
                                        aiplat_reranker_result *result,
                                        void *user_data);

/**
 * aiplat_reranker_rerank() without waiting: returns at once, and @p done
 * gets the scores on the event loop thread, with @p user_data. @p top_n
 * applies to this call only (0 keeps every document). The query and the
 * documents are checked and copied before this returns; AUTO's tries are
 * made one after the other, as in the blocking form. @p call (may be
 * NULL) carries the deadline and the cancel switch and must outlive the
 * call. On an error return nothing is called back.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_reranker_rerank_async(
    aiplat_reranker *c, const char *query, const char *const *documents,
    size_t count, size_t top_n, aiplat_call *call, aiplat_reranker_done_fn done,
    void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_RERANKER_H */
