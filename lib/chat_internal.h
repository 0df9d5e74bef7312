/* The chat pipeline's pieces (include/aiplat/chat.h). Internal. */
#ifndef AIPLAT_CHAT_INTERNAL_H
#define AIPLAT_CHAT_INTERNAL_H

#include "internal.h"

/* Longest conversation id, and longest user id when history is kept: the
 * Key-Value key is base64url(user) "." base64url(conversation), at most
 * 256 bytes. */
#define AIP_CHAT_CONV_MAX 64
#define AIP_CHAT_USER_MAX 120
#define AIP_CHAT_TOP_K_MAX 100

/* ---- retrieval -------------------------------------------------------- */

typedef struct aip_chat_passage {
  char *id, *text, *source;
  double score;
} aip_chat_passage;

typedef struct aip_chat_retriever aip_chat_retriever;

aiplat_status aip_chat_retriever_create(aip_chat_retriever **out,
                                        aiplat_config *cfg);
void aip_chat_retriever_destroy(aip_chat_retriever *r);
/* The pipeline's model clients and retrieval report to @m (the health
 * server's registry: model_metrics.h). */
void aip_chat_attach_metrics(aiplat_llm *llm, aip_chat_retriever *r,
                             aiplat_metrics *m);
/* The readiness probe of the embeddings server. */
aiplat_status aip_chat_retriever_health(aip_chat_retriever *r);
/* Whether RERANKER_URL gave a reranker, and its readiness probe. */
bool aip_chat_retriever_has_reranker(aip_chat_retriever *r);
aiplat_status aip_chat_retriever_reranker_health(aip_chat_retriever *r);
/* The best `top_k` passages for `query` (aiplat_rag_query_filtered) in
 * *passages (*n of them, best first) and their numbered context fitted into
 * `budget` bytes (aiplat_rag_results_context: "[1] (source: s) text\n\n[2]
 * ..."). On failure the thread's record has the detail. */
aiplat_status aip_chat_retrieve(aip_chat_retriever *r, const char *query,
                                int top_k, size_t budget,
                                aip_chat_passage **passages, size_t *n,
                                char **context);
/* The end of aip_chat_retrieve_async(), on the execution core's thread:
 * the passages and the context (the callee's: aip_chat_passages_free(),
 * free()), or the failure in @why ("rag: <the part>: ..."). */
typedef void (*aip_chat_retrieved_fn)(aiplat_status st, const char *why,
                                      aip_chat_passage *passages, size_t n,
                                      char *context, void *ud);
/* aip_chat_retrieve() without waiting (aiplat_rag_query_async): @call
 * bounds and cancels every step. On AIPLAT_OK @done runs once; on failure
 * never, and the thread's record has the detail. */
aiplat_status aip_chat_retrieve_async(aip_chat_retriever *r, const char *query,
                                      int top_k, size_t budget,
                                      aiplat_call *call,
                                      aip_chat_retrieved_fn done, void *ud);
void aip_chat_passages_free(aip_chat_passage *p, size_t n);

/* ---- history ------------------------------------------------------------ */

typedef struct aip_chat_turn {
  char *user, *assistant;
} aip_chat_turn;

typedef struct aip_chat_history aip_chat_history;

aiplat_status aip_chat_history_create(aip_chat_history **out, aiplat_bus *bus,
                                      const char *bucket, int64_t ttl_ms,
                                      int max_turns);
void aip_chat_history_destroy(aip_chat_history *h);
/* The Key-Value key of a conversation: base64url(user or "") "."
 * base64url(conversation), malloc'd; NULL when out of memory. */
char *aip_chat_history_key(const char *user_id, const char *conversation_id);
/* The end of an asynchronous load, on the execution core's loop thread:
 * the turns (the callee's: aip_chat_turns_free()) or the failure in @why
 * ("history: cannot read: ..."). */
typedef void (*aip_chat_loaded_fn)(aiplat_status st, const char *why,
                                   aip_chat_turn *turns, size_t n, void *ud);
/* The end of an asynchronous save, on the loop thread. */
typedef void (*aip_chat_saved_fn)(aiplat_status st, const char *why, void *ud);
/* Load without blocking, bounded by @deadline_ms (aip_now_ms() clock, 0:
 * the Key-Value default). On AIPLAT_OK @done runs once; on failure never,
 * and the thread's record has the detail. The bucket is created when
 * missing. */
aiplat_status aip_chat_history_load_async(aip_chat_history *h, const char *key,
                                          int64_t deadline_ms,
                                          aip_chat_loaded_fn done, void *ud);
/* Append a turn to `turns` and store the last max_turns of them, without
 * blocking (@turns and the strings are copied before this returns). */
aiplat_status aip_chat_history_save_async(aip_chat_history *h, const char *key,
                                          const aip_chat_turn *turns, size_t n,
                                          const char *user,
                                          const char *assistant,
                                          int64_t deadline_ms,
                                          aip_chat_saved_fn done, void *ud);
/* The blocking forms (not on the loop thread), bounded by the thread's
 * request deadline. The turns stored under `key`, oldest first (none when
 * absent). */
aiplat_status aip_chat_history_load(aip_chat_history *h, const char *key,
                                    aip_chat_turn **turns, size_t *n);
/* Append a turn to `turns` and store the last max_turns of them. */
aiplat_status aip_chat_history_save(aip_chat_history *h, const char *key,
                                    const aip_chat_turn *turns, size_t n,
                                    const char *user, const char *assistant);
void aip_chat_turns_free(aip_chat_turn *t, size_t n);

/* The end of an asynchronous answer, on the execution core's thread:
 * @response (the callee's, NULL on failure) or @why. */
typedef void (*aip_chat_done_fn)(aiplat_status st, const char *why,
                                 aiplat_msg *response, void *ud);
/* aiplat_chat_answer() with the retrieval and the LLM call on the
 * execution core, both bounded and cancelled by @call. Returns at once
 * after the checks and the history (on this thread); @done runs once
 * unless this returns an error (the detail in @why).
 * @request must live until @done. */
aiplat_status aip_chat_answer_async(aiplat_chat *c, aiplat_msg *request,
                                    aiplat_call *call,
                                    aiplat_chat_delta_fn fn,
                                    aip_chat_done_fn done, void *user_data,
                                    char *why, size_t whylen);

/* The bus given to aiplat_chat_set_bus(), or NULL. */
aiplat_bus *aip_chat_bus(aiplat_chat *c);

#endif
