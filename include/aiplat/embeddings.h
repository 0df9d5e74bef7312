/**
 * @file aiplat/embeddings.h
 * @brief Embeddings client for OpenAI-compatible servers (vLLM,
 *        text-embeddings-inference, Infinity, llama.cpp, Ollama, ...).
 *
 * `POST {url}/v1/embeddings` with `{"model", "input": [...],
 * "encoding_format": "float"}`; inputs above the batch size
 * (`EMBEDDINGS_BATCH_SIZE`, 32) are sent in several requests. Vectors come
 * back in the order of the inputs whatever order the server lists them in
 * (`data[].index`); every vector must have the same dimension, and the
 * expected one when set (`EMBEDDINGS_DIMENSION`), else
 * ::AIPLAT_ERR_PROTOCOL. Errors as in aiplat/llm.h.
 *
 * Thread: a client may be shared by threads; results are immutable. The
 * blocking call runs on the calling thread; the asynchronous one on the
 * library's event loop thread, which also runs its completion callback.
 */
#ifndef AIPLAT_EMBEDDINGS_H
#define AIPLAT_EMBEDDINGS_H

#include "call.h"
#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An embeddings client. */
typedef struct aiplat_embeddings aiplat_embeddings;
/** Vectors for a batch of inputs. */
typedef struct aiplat_embeddings_result aiplat_embeddings_result;

/**
 * Create a client from @p cfg (NULL: the environment): `EMBEDDINGS_URL`,
 * `EMBEDDINGS_MODEL`, `EMBEDDINGS_API_KEY`, `EMBEDDINGS_DIMENSION`,
 * `EMBEDDINGS_BATCH_SIZE`, `HTTP_*`. Free with aiplat_embeddings_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_create(aiplat_embeddings **out,
                                                  aiplat_config *cfg);

/**
 * Destroy a client; no call may be running on it. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_embeddings_destroy(aiplat_embeddings *c);

/**
 * Set the server URL (copied), with or without a trailing `/v1`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_url(aiplat_embeddings *c,
                                                   const char *url);

/**
 * Set the model name (copied).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_model(aiplat_embeddings *c,
                                                     const char *model);

/**
 * Set the bearer token (copied; never logged). NULL or "" removes it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_api_key(aiplat_embeddings *c,
                                                       const char *key);

/**
 * Total time one call may take, retries and waits included (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_timeout_ms(aiplat_embeddings *c,
                                                          int64_t ms);

/**
 * Time one connection attempt may take (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_connect_timeout_ms(
    aiplat_embeddings *c, int64_t ms);

/**
 * Extra attempts on retryable failures, 0 to 100.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_max_retries(aiplat_embeddings *c,
                                                           int retries);

/**
 * The dimension every vector must have; 0 accepts the server's.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_expected_dimension(
    aiplat_embeddings *c, size_t dimension);

/**
 * Inputs per request, 1 to 65536.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_set_batch_size(aiplat_embeddings *c,
                                                          size_t batch_size);

/**
 * Readiness probe: `GET /health`, else `GET /v1/models`; no retries.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_health(aiplat_embeddings *c);

/**
 * Stop every call on @p c in progress now. Thread: any.
 * @since 1.0
 */
AIPLAT_API void aiplat_embeddings_cancel(aiplat_embeddings *c);

/**
 * Copy the detail of the client's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_last_error(aiplat_embeddings *c,
                                                      char *buf, size_t buflen);

/**
 * Embed @p count UTF-8 strings (@p count >= 1; the strings are read, not
 * kept). On success *@p out is a new result with one vector per input, in
 * input order (aiplat_embeddings_result_destroy()); NULL on failure.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_embed(aiplat_embeddings *c,
                                                 const char *const *texts,
                                                 size_t count,
                                                 aiplat_embeddings_result **out);

/**
 * Destroy a result. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_embeddings_result_destroy(aiplat_embeddings_result *r);

/**
 * Number of vectors (= inputs).
 * @since 1.0
 */
AIPLAT_API size_t aiplat_embeddings_result_count(const aiplat_embeddings_result *r);

/**
 * Dimension of every vector.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_embeddings_result_dimension(
    const aiplat_embeddings_result *r);

/**
 * Vector @p i (dimension floats), or NULL when @p i >= count. Borrowed:
 * valid until the result is destroyed.
 * @since 1.0
 */
AIPLAT_API const float *aiplat_embeddings_result_vector(
    const aiplat_embeddings_result *r, size_t i);

/**
 * All vectors, row after row (count * dimension floats); borrowed.
 * @since 1.0
 */
AIPLAT_API const float *aiplat_embeddings_result_data(
    const aiplat_embeddings_result *r);

/**
 * `usage.prompt_tokens` summed over the requests, or -1 when unknown.
 * @since 1.0
 */
AIPLAT_API int64_t aiplat_embeddings_result_prompt_tokens(
    const aiplat_embeddings_result *r);

/* ---- asynchronous form ------------------------------------------------ */

/**
 * Completion of aiplat_embeddings_embed_async(). Runs once, on the
 * library's event loop thread, and must not block (no blocking library
 * call there: they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed
 * for the callback) explains a failure, "" on success. @p result is the
 * caller's on success (aiplat_embeddings_result_destroy()), NULL on
 * failure.
 */
typedef void (*aiplat_embeddings_done_fn)(aiplat_status status,
                                          const char *message,
                                          aiplat_embeddings_result *result,
                                          void *user_data);

/**
 * aiplat_embeddings_embed() without waiting: returns at once, and @p done
 * gets the vectors of the @p count inputs (1 for a single text) on the
 * event loop thread, with @p user_data. The texts are checked and copied
 * before this returns; batches are sent one after the other. @p call (may
 * be NULL) carries the deadline and the cancel switch and must outlive the
 * call. On an error return nothing is called back.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_embeddings_embed_async(
    aiplat_embeddings *c, const char *const *texts, size_t count,
    aiplat_call *call, aiplat_embeddings_done_fn done, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_EMBEDDINGS_H */
