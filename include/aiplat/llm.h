/**
 * @file aiplat/llm.h
 * @brief Chat completions client for OpenAI-compatible servers (vLLM,
 *        llama.cpp server, Ollama, ...), plain and streamed.
 *
 * The client sends `POST {url}/v1/chat/completions`. `VLLM_URL` may be
 * given with or without a trailing `/v1`. Connection reuse, timeouts,
 * retries (connect errors, 429, 502, 503, 504, honouring `Retry-After`),
 * the response size cap and TLS are those of every model client
 * (docs/decisions/0008-http-and-model-clients.md).
 *
 * Errors: ::AIPLAT_ERR_CONNECTION, ::AIPLAT_ERR_TIMEOUT,
 * ::AIPLAT_ERR_BAD_REQUEST (400, 422 and other 4xx), ::AIPLAT_ERR_NOT_FOUND
 * (404, e.g. an unknown model), ::AIPLAT_ERR_AUTH (401/403),
 * ::AIPLAT_ERR_RATE_LIMITED (429), ::AIPLAT_ERR_SERVER (500, 502, 504, an
 * error inside a stream), ::AIPLAT_ERR_UNAVAILABLE (503),
 * ::AIPLAT_ERR_DECODE (a body that is not JSON), ::AIPLAT_ERR_PROTOCOL
 * (JSON of the wrong shape, a stream cut short), ::AIPLAT_ERR_TOO_LARGE,
 * ::AIPLAT_ERR_CANCELLED. The message carries the server's own words.
 *
 * Thread: a client may be shared by threads. Every call is a transfer on
 * the library's event loop thread: a blocking call waits for it on the
 * calling thread, which also runs its stream callback (and fails with
 * ::AIPLAT_ERR_INTERNAL on the loop thread itself); an asynchronous call's
 * callbacks run on the loop thread. A request object must not be changed
 * while a blocking call uses it (the asynchronous forms copy it).
 */
#ifndef AIPLAT_LLM_H
#define AIPLAT_LLM_H

#include "call.h"
#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A chat completions client. */
typedef struct aiplat_llm aiplat_llm;
/** One chat completion request: messages and sampling parameters. */
typedef struct aiplat_llm_request aiplat_llm_request;
/** The answer: text, finish reason, token usage. */
typedef struct aiplat_llm_result aiplat_llm_result;

/**
 * Receives each piece of generated text of a stream, in order.
 * @param delta     the new text, UTF-8, NUL-terminated; borrowed for the
 *                  call only
 * @param len       its length in bytes
 * @param user_data as given to aiplat_llm_stream()
 * @return true to go on, false to stop the stream (the call then returns
 *         ::AIPLAT_ERR_CANCELLED and the connection is closed).
 * Runs on the thread that called aiplat_llm_stream().
 */
typedef bool (*aiplat_llm_token_fn)(const char *delta, size_t len,
                                    void *user_data);

/**
 * Create a client from @p cfg (NULL: read the environment): `VLLM_URL`,
 * `LLM_MODEL`, `LLM_API_KEY` (or `LLM_API_KEY_FILE`), `LLM_TIMEOUT`,
 * `LLM_MAX_TOKENS`, `LLM_TEMPERATURE` and the `HTTP_*` settings.
 * ::AIPLAT_ERR_CONFIG names the variable at fault. No request is sent.
 * Free with aiplat_llm_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_create(aiplat_llm **out, aiplat_config *cfg);

/**
 * Destroy a client; no call may be running on it. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_llm_destroy(aiplat_llm *c);

/**
 * Set the server URL (copied); `http(s)://host[:port][/prefix][/v1]`.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_url(aiplat_llm *c, const char *url);

/**
 * Set the default model name (copied).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_model(aiplat_llm *c, const char *model);

/**
 * Set the bearer token (copied; never logged). NULL or "" removes it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_api_key(aiplat_llm *c, const char *key);

/**
 * Total time one call may take, retries and waits included (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_timeout_ms(aiplat_llm *c, int64_t ms);

/**
 * Time one connection attempt may take (> 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_connect_timeout_ms(aiplat_llm *c,
                                                           int64_t ms);

/**
 * Longest silence inside a stream before ::AIPLAT_ERR_TIMEOUT; 0: none.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_stream_idle_timeout_ms(aiplat_llm *c,
                                                               int64_t ms);

/**
 * Extra attempts on retryable failures, 0 to 100.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_set_max_retries(aiplat_llm *c, int retries);

/**
 * Readiness probe: `GET /health`, or `GET /v1/models` when the server has
 * no /health (Ollama). ::AIPLAT_OK when it answers 2xx; no retries; at
 * most 10 s.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_health(aiplat_llm *c);

/**
 * Stop every call on @p c in progress now (also a wait between retries);
 * they return ::AIPLAT_ERR_CANCELLED promptly. Later calls are not
 * affected. Thread: any, typically not the one running the call.
 * @since 1.0
 */
AIPLAT_API void aiplat_llm_cancel(aiplat_llm *c);

/**
 * Copy the detail of the client's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_last_error(aiplat_llm *c, char *buf,
                                               size_t buflen);

/**
 * Send a completion request and wait for the whole answer.
 * On success *@p out is a new result (aiplat_llm_result_destroy()); on
 * failure it is NULL.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_complete(aiplat_llm *c,
                                             const aiplat_llm_request *req,
                                             aiplat_llm_result **out);

/**
 * Send a streamed completion request (`"stream": true`, with
 * `stream_options.include_usage`) and hand each text delta to @p fn as it
 * arrives. Ends at `data: [DONE]`; an error event inside the stream fails
 * the call with the server's message; a stream that ends without `[DONE]`
 * and without a finish reason is ::AIPLAT_ERR_PROTOCOL.
 * *@p out is set whenever the request was sent, on failure too, and holds
 * the text received so far; destroy it in every case (NULL otherwise).
 * @p out may be NULL when the result is not wanted.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_stream(aiplat_llm *c,
                                           const aiplat_llm_request *req,
                                           aiplat_llm_token_fn fn,
                                           void *user_data,
                                           aiplat_llm_result **out);

/**
 * Create an empty request. Free with aiplat_llm_request_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_create(aiplat_llm_request **out);

/**
 * Destroy a request. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_llm_request_destroy(aiplat_llm_request *req);

/**
 * Append a message (both strings copied). @p role is a lowercase word
 * such as `system`, `user`, `assistant` or `tool`; @p content is UTF-8
 * (::AIPLAT_ERR_INVALID_ARGUMENT otherwise).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_add_message(aiplat_llm_request *req,
                                                        const char *role,
                                                        const char *content);

/**
 * Remove every message (the parameters stay).
 * @since 1.0
 */
AIPLAT_API void aiplat_llm_request_clear_messages(aiplat_llm_request *req);

/**
 * Number of messages appended.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_llm_request_message_count(const aiplat_llm_request *req);

/**
 * Use @p model (copied) instead of the client's; NULL restores it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_set_model(aiplat_llm_request *req,
                                                      const char *model);

/**
 * `max_tokens`, >= 1; 0 restores the client's default (`LLM_MAX_TOKENS`).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_set_max_tokens(aiplat_llm_request *req,
                                                           int32_t max_tokens);

/**
 * `temperature` in [0, 2]; a negative value restores the default.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_set_temperature(aiplat_llm_request *req,
                                                            double temperature);

/**
 * `top_p` in (0, 1]; a negative value leaves it to the server.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_set_top_p(aiplat_llm_request *req,
                                                      double top_p);

/**
 * Append a stop sequence (copied, non-empty UTF-8).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_add_stop(aiplat_llm_request *req,
                                                     const char *stop);

/**
 * Send `seed` for reproducible sampling.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_set_seed(aiplat_llm_request *req,
                                                     int64_t seed);

/**
 * Copy the detail of the request's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_request_last_error(aiplat_llm_request *req,
                                                       char *buf, size_t buflen);

/**
 * Destroy a result. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_llm_result_destroy(aiplat_llm_result *r);

/**
 * The generated text, NUL-terminated, never NULL; borrowed from @p r.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_llm_result_text(const aiplat_llm_result *r);

/**
 * Length of the text in bytes.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_llm_result_text_len(const aiplat_llm_result *r);

/**
 * `stop`, `length`, ... or NULL when the server gave none; borrowed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_llm_result_finish_reason(const aiplat_llm_result *r);

/**
 * The model that answered, or NULL; borrowed.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_llm_result_model(const aiplat_llm_result *r);

/**
 * `usage.prompt_tokens`, or -1 when the server did not say.
 * @since 1.0
 */
AIPLAT_API int64_t aiplat_llm_result_prompt_tokens(const aiplat_llm_result *r);

/**
 * `usage.completion_tokens`, or -1 when the server did not say.
 * @since 1.0
 */
AIPLAT_API int64_t aiplat_llm_result_completion_tokens(const aiplat_llm_result *r);

/**
 * `usage.total_tokens`, or -1 when the server did not say.
 * @since 1.0
 */
AIPLAT_API int64_t aiplat_llm_result_total_tokens(const aiplat_llm_result *r);

/* ---- asynchronous forms ---------------------------------------------- */

/**
 * Completion of an asynchronous LLM call. Runs once, on the library's
 * event loop thread, and must not block (no blocking library call there:
 * they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed for the
 * callback) explains a failure, "" on success. @p result (may be NULL when
 * out of memory) is the caller's, also after a failure (the text received
 * so far): release it with aiplat_llm_result_destroy().
 */
typedef void (*aiplat_llm_done_fn)(aiplat_status status, const char *message,
                                   aiplat_llm_result *result, void *user_data);

/**
 * aiplat_llm_stream() without waiting: returns at once; @p fn (may be
 * NULL) gets each piece of text and @p done the end, both on the event
 * loop thread, with @p user_data. @p call (may be NULL) carries the
 * deadline and the cancel switch and must outlive the call. @p r is copied
 * before this returns. On an error return nothing is called back.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_stream_async(aiplat_llm *c,
                                                 const aiplat_llm_request *r,
                                                 aiplat_call *call,
                                                 aiplat_llm_token_fn fn,
                                                 aiplat_llm_done_fn done,
                                                 void *user_data);

/**
 * aiplat_llm_complete() without waiting; as aiplat_llm_stream_async().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_llm_complete_async(aiplat_llm *c,
                                                   const aiplat_llm_request *r,
                                                   aiplat_call *call,
                                                   aiplat_llm_done_fn done,
                                                   void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_LLM_H */
