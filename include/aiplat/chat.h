/**
 * @file aiplat/chat.h
 * @brief The chat pipeline: a ChatRequest answered by the LLM with a system
 *        prompt, retrieved context and the conversation's history.
 *
 * What chat-handler and voice-assistant run for each question
 * (docs/decisions/0016-chat-and-voice-services.md):
 *
 *  1. check the request: `message` not blank; `user_id` and
 *     `conversation_id`, when given, valid subject tokens (see
 *     aiplat/subject.h), a conversation id at most 64 bytes (and, with
 *     history on, a user id at most 120 bytes); the overrides
 *     in range (`model` not empty, `temperature` 0..2, `max_tokens` >= 1,
 *     `top_k` 1..100);
 *  2. when `conversation_id` is set and history is on: read the last
 *     `CHAT_HISTORY_TURNS` turns of that user's conversation from a
 *     JetStream Key-Value bucket;
 *  3. when `enable_rag` (absent means true): retrieve `top_k` (default
 *     `RAG_TOP_K`) passages for the message with the RAG API (aiplat/rag.h:
 *     embeddings, vector store, reranker when `RERANKER_URL` is set) and
 *     format them as its numbered context (`[1] (source: ...) ...`) within
 *     `RAG_CONTEXT_CHARS` bytes;
 *  4. ask the LLM: a system message (`SYSTEM_PROMPT`, or a built-in one,
 *     followed by the context), the history as alternating user and
 *     assistant messages, then the message; streamed when a callback is
 *     given;
 *  5. store the new turn (question and answer) and answer with a
 *     ChatResponse: `text`, `sources` (id, text, source, score of each
 *     passage retrieved, best first), `usage`, `model`, `finish_reason`, and
 *     `request_id` and `conversation_id` echoed.
 *
 * ```c
 * aiplat_chat_create(&chat, cfg);                 // LLM, retrieval, prompt
 * aiplat_chat_set_bus(chat, bus);                 // multi-turn (optional)
 * aiplat_chat_answer(chat, request, NULL, NULL, &response);
 * ```
 *
 * Thread: a pipeline may be shared by threads; several answers run at once,
 * each on its caller's thread.
 */
#ifndef AIPLAT_CHAT_H
#define AIPLAT_CHAT_H

#include "bus.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "message.h"
#include "service.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A chat pipeline: its LLM client, retrieval and history settings. */
typedef struct aiplat_chat aiplat_chat;

/**
 * Receives each piece of a streamed answer, in order.
 * @param delta     the new text, UTF-8, NUL-terminated; borrowed for the
 *                  call only
 * @param len       its length in bytes
 * @param user_data as given to aiplat_chat_answer()
 * @return true to go on, false to stop (the answer then fails with
 *         ::AIPLAT_ERR_CANCELLED).
 * Runs on the thread that called aiplat_chat_answer().
 */
typedef bool (*aiplat_chat_delta_fn)(const char *delta, size_t len,
                                     void *user_data);

/**
 * Create a pipeline from @p cfg (NULL: the environment): the LLM client
 * (`VLLM_URL`, `LLM_*`), retrieval (`EMBEDDINGS_*`, `RERANKER_*`,
 * `VECTOR_STORE*`, `MILVUS_*`, `RAG_TOP_K`, `RAG_CONTEXT_CHARS`, ...),
 * `SYSTEM_PROMPT`, `CHAT_HISTORY_TURNS`, `CHAT_HISTORY_TTL`,
 * `CHAT_HISTORY_BUCKET`. Values are copied; @p cfg may be destroyed
 * afterwards. No request is sent, so a pipeline can be created before its
 * servers run; a local store that does not exist yet finds nothing.
 * Errors: ::AIPLAT_ERR_CONFIG naming the variable. Free with
 * aiplat_chat_destroy().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_create(aiplat_chat **out,
                                            aiplat_config *cfg);

/**
 * Destroy a pipeline; no answer may be running on it. NULL is a no-op.
 * @since 1.0
 * @experimental
 */
AIPLAT_API void aiplat_chat_destroy(aiplat_chat *chat);

/**
 * Copy the detail of the pipeline's last failure into @p buf.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_last_error(aiplat_chat *chat, char *buf,
                                                size_t buflen);

/**
 * Replace the system prompt (copied, UTF-8, not empty). Thread: before
 * answers run.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_set_system_prompt(aiplat_chat *chat,
                                                       const char *prompt);

/**
 * Give the pipeline a NATS connection (borrowed: it must stay valid while
 * answers run, and be connected before the first answer; the pipeline may
 * be destroyed after it), normally the service's (aiplat_service_bus()).
 * It keeps conversation history in the
 * JetStream Key-Value bucket `CHAT_HISTORY_BUCKET`, opened (or created
 * with a time to live of `CHAT_HISTORY_TTL`) at the first answer that
 * needs it, and aiplat_chat_handle_request() publishes on it. Without a
 * bus, or with `CHAT_HISTORY_TURNS` 0, every request is a single turn.
 * NULL removes the bus. Thread: before answers run.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_set_bus(aiplat_chat *chat,
                                             aiplat_bus *bus);

/**
 * Register readiness checks on @p health: `llm` (the LLM server's health
 * probe), `embeddings` (the embeddings server's) and, with `RERANKER_URL`,
 * `reranker`, each run every
 * @p interval_ms on a thread of its own (aiplat_health_add_cached_check(),
 * failing when a probe takes over 5 s). @p interval_ms: 10 .. 86400000.
 * The pipeline must outlive @p health's checks: destroy the health handle
 * (or the service owning it) first.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_add_checks(aiplat_chat *chat,
                                                aiplat_health *health,
                                                int64_t interval_ms);

/**
 * Answer @p request, a ChatRequest (borrowed, not changed), as described
 * in the file comment.
 * @param fn        NULL for one whole answer; else the answer is streamed
 *                  and each piece handed to @p fn as it arrives
 * @param user_data given to @p fn
 * @param response  receives a new ChatResponse on success (free with
 *                  aiplat_msg_destroy()); NULL on failure
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT (the request breaks a rule of
 * step 1; the message names the field), the LLM client's errors
 * (::AIPLAT_ERR_CONNECTION, ::AIPLAT_ERR_UNAVAILABLE, ::AIPLAT_ERR_TIMEOUT,
 * ::AIPLAT_ERR_BAD_REQUEST, ...), retrieval's (prefixed "retrieval: "),
 * ::AIPLAT_ERR_UNAVAILABLE when the history cannot be read,
 * ::AIPLAT_ERR_CANCELLED when @p fn stopped the stream. A history that
 * cannot be written after the answer is logged, not failed.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_answer(aiplat_chat *chat,
                                            aiplat_msg *request,
                                            aiplat_chat_delta_fn fn,
                                            void *user_data,
                                            aiplat_msg **response);

/** Header naming the type of each message on `ai.chat.response.{id}`. */
#define AIPLAT_CHAT_TYPE_HEADER "Aiplat-Message-Type"

/**
 * The chat-handler endpoint: an ::aiplat_handler_fn for an endpoint of
 * request type ::AIPLAT_MSG_CHAT_REQUEST and reply type
 * ::AIPLAT_MSG_CHAT_RESPONSE; @p user_data is the ::aiplat_chat, which
 * must have a bus (aiplat_chat_set_bus()) for the response subject.
 *
 * - The request id (aiplat_request_id()) must be a valid subject token: it
 *   names the response subject `ai.chat.response.{request_id}`.
 * - On `ai.chat.user.{user}.message` an empty `user_id` is taken from the
 *   subject, and a different one is refused.
 * - Answer: the ChatResponse goes to the reply subject (when there is one)
 *   and to `ai.chat.response.{request_id}`.
 * - With `stream`, first ChatChunk messages on the response subject, `seq`
 *   0, 1, 2, ... each with a `delta`, as the model produces them; then one
 *   more ChatChunk with `done` true and an empty delta, carrying
 *   `finish_reason`, `usage` and `sources` (or `error` when generation
 *   failed part-way); then the ChatResponse with the whole text as above.
 * - Every message on the response subject carries the header
 *   ::AIPLAT_CHAT_TYPE_HEADER with its full type name
 *   (`aiplat.messages.v1.ChatChunk` or `aiplat.messages.v1.ChatResponse`).
 * - A failure is a ChatResponse with `error` (code, message, retryable) on
 *   the reply subject and, when the request id is valid, on the response
 *   subject: a bad request (::AIPLAT_ERR_INVALID_ARGUMENT), a model server
 *   down (::AIPLAT_ERR_CONNECTION, ::AIPLAT_ERR_UNAVAILABLE), ...
 * - On a JetStream endpoint the handler tells the server every second of
 *   a long streamed answer that it is still working
 *   (aiplat_request_in_progress()); a request delivered again after a
 *   crash is answered again from `seq` 0.
 *
 * The checks, the history read and the retrieval run on the calling thread
 * (a delivery thread of the service); then the request is deferred and the
 * handler returns: the LLM call runs on the library's event loop thread,
 * where the chunks are published, the history saved and the answer sent.
 * The pipeline must outlive the requests in flight: destroy the service
 * before it.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_chat_handle_request(aiplat_request *req,
                                                    void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_CHAT_H */
