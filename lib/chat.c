/* The chat pipeline; see include/aiplat/chat.h and
 * docs/decisions/0016-chat-and-voice-services.md. */
#include "aiplat/chat.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call_internal.h"
#include "chat_internal.h"
#include "config.h"
#include "utf8.h"

#define CHECK_TIMEOUT_MS 5000

/* The built-in system prompt. The context follows it after a blank line. */
static const char default_prompt[] =
    "You are the AI platform's assistant. Answer the user's question from the "
    "numbered context passages when they hold the answer, and cite each "
    "passage "
    "you use as [N]. When the context does not answer the question, say so "
    "plainly instead of guessing. Be brief.";

struct aiplat_chat {
  aip_err err;
  aiplat_llm *llm;
  aip_chat_retriever *retriever;
  aip_chat_history *history; /* NULL: single turns only */
  aiplat_bus *bus;           /* borrowed */
  char *prompt;
  char *bucket;
  int64_t top_k, context_chars, history_turns, history_ttl_ms;
};

/* Fail with the thread's last message under a prefix. */
static aiplat_status fail_last(aiplat_chat *c, aiplat_status st,
                               const char *prefix) {
  char why[AIP_ERRMSG_MAX];
  aiplat_error_last(why, sizeof why);
  return aip_fail(&c->err, st, "%s%s", prefix, why);
}

static aiplat_status read_settings(aiplat_chat *c, aiplat_config *cfg) {
  const char *prompt = NULL, *bucket = NULL;
  aiplat_status st =
      aiplat_config_get_int(cfg, "RAG_TOP_K", 1, AIP_CHAT_TOP_K_MAX, &c->top_k);
  if (!st)
    st = aiplat_config_get_int(cfg, "RAG_CONTEXT_CHARS", 64, 16 * 1024 * 1024,
                               &c->context_chars);
  if (!st)
    st = aiplat_config_get_int(cfg, "CHAT_HISTORY_TURNS", 0, 1000,
                               &c->history_turns);
  if (!st)
    st = aiplat_config_get_duration_ms(cfg, "CHAT_HISTORY_TTL",
                                       &c->history_ttl_ms);
  if (!st && c->history_ttl_ms < 1000)
    return aip_fail(NULL, AIPLAT_ERR_CONFIG,
                    "config: CHAT_HISTORY_TTL must be at least 1s");
  if (!st) st = aiplat_config_get_string(cfg, "SYSTEM_PROMPT", &prompt);
  if (!st) st = aiplat_config_get_string(cfg, "CHAT_HISTORY_BUCKET", &bucket);
  if (st) return st;
  if (!bucket || !*bucket || strlen(bucket) > 64 ||
      strspn(
          bucket,
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
          strlen(bucket))
    return aip_fail(
        NULL, AIPLAT_ERR_CONFIG,
        "config: CHAT_HISTORY_BUCKET must be 1-64 characters of A-Z, a-z, 0-9, "
        "'_' or '-'");
  c->prompt = strdup(prompt && *prompt ? prompt : default_prompt);
  c->bucket = strdup(bucket);
  if (!c->prompt || !c->bucket)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_chat_create(aiplat_chat **out,
                                            aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "chat: out is NULL");
  *out = NULL;
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) return st;
  aiplat_chat *c = calloc(1, sizeof *c);
  if (!c) {
    aip_global_unref();
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  }
  aip_err_init(&c->err);
  aiplat_config *own = NULL;
  if (!cfg) {
    st = aiplat_config_create(&own);
    cfg = own;
  }
  if (!st) st = read_settings(c, cfg);
  if (!st) st = aiplat_llm_create(&c->llm, cfg);
  if (!st) st = aip_chat_retriever_create(&c->retriever, cfg);
  aiplat_config_destroy(own);
  if (st != AIPLAT_OK) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    aiplat_chat_destroy(c);
    return aip_fail(NULL, st, "%s", why);
  }
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_chat_destroy(aiplat_chat *c) {
  if (!c) return;
  aip_chat_history_destroy(c->history);
  aip_chat_retriever_destroy(c->retriever);
  aiplat_llm_destroy(c->llm);
  free(c->prompt);
  free(c->bucket);
  aip_err_destroy(&c->err);
  free(c);
  aip_global_unref();
}

AIPLAT_API aiplat_status aiplat_chat_last_error(aiplat_chat *c, char *buf,
                                                size_t buflen) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "chat: NULL handle");
  return aip_err_copy(&c->err, buf, buflen);
}

AIPLAT_API aiplat_status aiplat_chat_set_system_prompt(aiplat_chat *c,
                                                       const char *prompt) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "chat: NULL handle");
  if (!prompt || !*prompt || !aip_utf8_valid(prompt, strlen(prompt)))
    return aip_fail(&c->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "chat: the system prompt must be non-empty UTF-8");
  if (!aip_str_replace(&c->prompt, prompt))
    return aip_fail(&c->err, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_chat_set_bus(aiplat_chat *c, aiplat_bus *bus) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "chat: NULL handle");
  aip_chat_history_destroy(c->history);
  c->history = NULL;
  c->bus = bus;
  if (!bus || c->history_turns == 0) return AIPLAT_OK;
  aiplat_status st = aip_chat_history_create(
      &c->history, bus, c->bucket, c->history_ttl_ms, (int)c->history_turns);
  return st ? fail_last(c, st, "") : AIPLAT_OK;
}

/* ---- readiness ------------------------------------------------------------
 */

static bool report(aiplat_status st, char *msg, size_t msglen,
                   const char *ok_text) {
  if (st == AIPLAT_OK) {
    snprintf(msg, msglen, "%s", ok_text);
    return true;
  }
  char why[AIP_ERRMSG_MAX];
  aiplat_error_last(why, sizeof why);
  snprintf(msg, msglen, "%s", why);
  return false;
}

static bool llm_check(char *msg, size_t msglen, void *ud) {
  aiplat_chat *c = ud;
  return report(aiplat_llm_health(c->llm), msg, msglen, "LLM server answers");
}

static bool embeddings_check(char *msg, size_t msglen, void *ud) {
  aiplat_chat *c = ud;
  return report(aip_chat_retriever_health(c->retriever), msg, msglen,
                "embeddings server answers");
}

static bool reranker_check(char *msg, size_t msglen, void *ud) {
  aiplat_chat *c = ud;
  return report(aip_chat_retriever_reranker_health(c->retriever), msg, msglen,
                "reranker answers");
}

AIPLAT_API aiplat_status aiplat_chat_add_checks(aiplat_chat *c,
                                                aiplat_health *health,
                                                int64_t interval_ms) {
  if (!c || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "chat: NULL argument");
  aiplat_status st = aiplat_health_add_cached_check(
      health, "llm", llm_check, c, interval_ms, CHECK_TIMEOUT_MS);
  if (!st)
    st = aiplat_health_add_cached_check(health, "embeddings", embeddings_check,
                                        c, interval_ms, CHECK_TIMEOUT_MS);
  if (!st && aip_chat_retriever_has_reranker(c->retriever))
    st = aiplat_health_add_cached_check(health, "reranker", reranker_check, c,
                                        interval_ms, CHECK_TIMEOUT_MS);
  if (!st) aip_chat_attach_metrics(c->llm, c->retriever, aiplat_health_metrics(health));
  return st ? fail_last(c, st, "chat: ") : AIPLAT_OK;
}

/* ---- answering -------------------------------------------------------------
 */

typedef struct answer_ctx {
  aiplat_msg *req;
  const char *message, *user_id, *conversation_id, *request_id;
  bool enable_rag;
  int64_t top_k;
  char *history_key;
  aip_chat_turn *turns;
  size_t n_turns;
  aip_chat_passage *passages;
  size_t n_passages;
  char *context;
  aiplat_llm_request *llm_req;
  aiplat_llm_result *result;
} answer_ctx;

static bool blank(const char *s) {
  for (; *s; s++)
    if (!isspace((unsigned char)*s)) return false;
  return true;
}

static aiplat_status bad(aiplat_chat *c, const char *field, const char *why) {
  return aip_fail(&c->err, AIPLAT_ERR_INVALID_ARGUMENT, "chat: %s %s", field,
                  why);
}

/* Step 1: read and check the request and its overrides. */
static aiplat_status check_request(aiplat_chat *c, answer_ctx *a) {
  aiplat_msg *m = a->req;
  aiplat_status st = aiplat_msg_get_string(m, "message", &a->message);
  if (!st) st = aiplat_msg_get_string(m, "user_id", &a->user_id);
  if (!st)
    st = aiplat_msg_get_string(m, "conversation_id", &a->conversation_id);
  if (!st) st = aiplat_msg_get_string(m, "request_id", &a->request_id);
  if (!st) st = aiplat_msg_get_bool(m, "enable_rag", &a->enable_rag);
  if (st)
    return fail_last(c, AIPLAT_ERR_INVALID_ARGUMENT,
                     "chat: not a ChatRequest: ");
  if (blank(a->message)) return bad(c, "message", "is empty");
  if (*a->user_id && aiplat_subject_token_check(a->user_id) != AIPLAT_OK)
    return fail_last(c, AIPLAT_ERR_INVALID_ARGUMENT, "chat: user_id: ");
  if (*a->conversation_id) {
    if (aiplat_subject_token_check(a->conversation_id) != AIPLAT_OK)
      return fail_last(c, AIPLAT_ERR_INVALID_ARGUMENT,
                       "chat: conversation_id: ");
    if (strlen(a->conversation_id) > AIP_CHAT_CONV_MAX)
      return bad(c, "conversation_id", "is longer than 64 bytes");
    if (c->history && strlen(a->user_id) > AIP_CHAT_USER_MAX)
      return bad(c, "user_id",
                 "is longer than 120 bytes, too long for conversation history");
  }
  a->top_k = c->top_k;
  if (aiplat_msg_has(m, "top_k")) {
    aiplat_msg_get_int64(m, "top_k", &a->top_k);
    if (a->top_k < 1 || a->top_k > AIP_CHAT_TOP_K_MAX)
      return bad(c, "top_k", "must be 1..100");
  }
  if (aiplat_msg_has(m, "model")) {
    const char *model = "";
    aiplat_msg_get_string(m, "model", &model);
    if (blank(model)) return bad(c, "model", "is empty");
    if (aiplat_llm_request_set_model(a->llm_req, model))
      return fail_last(c, AIPLAT_ERR_INVALID_ARGUMENT, "chat: model: ");
  }
  if (aiplat_msg_has(m, "temperature")) {
    double t = 0;
    aiplat_msg_get_double(m, "temperature", &t);
    if (!(t >= 0.0 && t <= 2.0)) return bad(c, "temperature", "must be 0..2");
    aiplat_llm_request_set_temperature(a->llm_req, t);
  }
  if (aiplat_msg_has(m, "max_tokens")) {
    int64_t mt = 0;
    aiplat_msg_get_int64(m, "max_tokens", &mt);
    if (mt < 1) return bad(c, "max_tokens", "must be at least 1");
    aiplat_llm_request_set_max_tokens(a->llm_req, (int32_t)mt);
  }
  return AIPLAT_OK;
}

/* Step 2: the conversation's earlier turns. */
static aiplat_status load_history(aiplat_chat *c, answer_ctx *a) {
  if (!c->history || !*a->conversation_id) return AIPLAT_OK;
  a->history_key = aip_chat_history_key(a->user_id, a->conversation_id);
  if (!a->history_key)
    return aip_fail(&c->err, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  aiplat_status st =
      aip_chat_history_load(c->history, a->history_key, &a->turns, &a->n_turns);
  return st ? fail_last(c, st, "chat: ") : AIPLAT_OK;
}

/* Step 4: the LLM request's messages (after the retrieval, step 3). */
static aiplat_status add_messages(aiplat_chat *c, answer_ctx *a) {
  aiplat_status st;
  char *system =
      a->n_passages
          ? aip_sprintf("%s\n\nContext:\n%s", c->prompt, a->context)
          : aip_sprintf(
                "%s%s", c->prompt,
                a->enable_rag ? "\n\nContext: no passage was found." : "");
  if (!system)
    return aip_fail(&c->err, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  st = aiplat_llm_request_add_message(a->llm_req, "system", system);
  free(system);
  for (size_t i = 0; !st && i < a->n_turns; i++) {
    st = aiplat_llm_request_add_message(a->llm_req, "user", a->turns[i].user);
    if (!st)
      st = aiplat_llm_request_add_message(a->llm_req, "assistant",
                                          a->turns[i].assistant);
  }
  if (!st) st = aiplat_llm_request_add_message(a->llm_req, "user", a->message);
  return st ? fail_last(c, st, "chat: ") : AIPLAT_OK;
}

/* Steps 2-4, blocking: history, retrieval, the LLM request's messages. */
static aiplat_status build_prompt(aiplat_chat *c, answer_ctx *a) {
  aiplat_status st = load_history(c, a);
  if (st) return st;
  if (a->enable_rag) {
    st = aip_chat_retrieve(c->retriever, a->message, (int)a->top_k,
                           (size_t)c->context_chars, &a->passages,
                           &a->n_passages, &a->context);
    if (st) return fail_last(c, st, "retrieval: ");
  }
  return add_messages(c, a);
}

/* Step 5: the ChatResponse. */
static aiplat_status build_response(aiplat_chat *c, answer_ctx *a,
                                    aiplat_msg **out) {
  aiplat_msg *r = NULL, *child = NULL;
  const aiplat_llm_result *res = a->result;
  aiplat_status st = aiplat_msg_create(&r, AIPLAT_MSG_CHAT_RESPONSE);
  if (!st) st = aiplat_msg_set_string(r, "request_id", a->request_id);
  if (!st) st = aiplat_msg_set_string(r, "conversation_id", a->conversation_id);
  if (!st) st = aiplat_msg_set_string(r, "text", aiplat_llm_result_text(res));
  const char *model = aiplat_llm_result_model(res);
  if (!st && model) st = aiplat_msg_set_string(r, "model", model);
  const char *finish = aiplat_llm_result_finish_reason(res);
  if (!st && finish) st = aiplat_msg_set_string(r, "finish_reason", finish);
  int64_t pt = aiplat_llm_result_prompt_tokens(res),
          ct = aiplat_llm_result_completion_tokens(res),
          tt = aiplat_llm_result_total_tokens(res);
  if (!st && (pt >= 0 || ct >= 0 || tt >= 0)) {
    st = aiplat_msg_mutable_message(r, "usage", &child);
    if (!st && pt >= 0) st = aiplat_msg_set_int64(child, "prompt_tokens", pt);
    if (!st && ct >= 0)
      st = aiplat_msg_set_int64(child, "completion_tokens", ct);
    if (!st && tt >= 0) st = aiplat_msg_set_int64(child, "total_tokens", tt);
  }
  for (size_t i = 0; !st && i < a->n_passages; i++) {
    st = aiplat_msg_add_item(r, "sources", &child);
    if (!st) st = aiplat_msg_set_string(child, "id", a->passages[i].id);
    if (!st) st = aiplat_msg_set_string(child, "text", a->passages[i].text);
    if (!st) st = aiplat_msg_set_string(child, "source", a->passages[i].source);
    if (!st) st = aiplat_msg_set_double(child, "score", a->passages[i].score);
  }
  if (st) {
    aiplat_msg_destroy(r);
    return fail_last(c, st, "chat: cannot build the response: ");
  }
  *out = r;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_chat_answer(aiplat_chat *c, aiplat_msg *request,
                                            aiplat_chat_delta_fn fn,
                                            void *user_data,
                                            aiplat_msg **response) {
  if (response) *response = NULL;
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "chat: NULL handle");
  if (!request || !response)
    return aip_fail(&c->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "chat: NULL request or response");
  if (aiplat_msg_get_type(request) != AIPLAT_MSG_CHAT_REQUEST)
    return aip_fail(&c->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "chat: the request is not a ChatRequest");
  answer_ctx a = {.req = request};
  aiplat_status st = aiplat_llm_request_create(&a.llm_req);
  if (st) st = fail_last(c, st, "chat: ");
  if (!st) st = check_request(c, &a);
  if (!st) st = build_prompt(c, &a);
  if (!st) {
    st = fn ? aiplat_llm_stream(c->llm, a.llm_req, fn, user_data, &a.result)
            : aiplat_llm_complete(c->llm, a.llm_req, &a.result);
    if (st) st = fail_last(c, st, "");
  }
  if (!st && a.history_key) {
    aiplat_status hs =
        aip_chat_history_save(c->history, a.history_key, a.turns, a.n_turns,
                              a.message, aiplat_llm_result_text(a.result));
    if (hs != AIPLAT_OK) {
      char why[AIP_ERRMSG_MAX];
      aiplat_error_last(why, sizeof why);
      aip_log_kv(AIPLAT_LOG_WARNING, "conversation history not saved", "error",
                 why, NULL);
      aiplat_error_clear();
    }
  }
  if (!st) st = build_response(c, &a, response);
  aiplat_llm_result_destroy(a.result);
  aiplat_llm_request_destroy(a.llm_req);
  aip_chat_passages_free(a.passages, a.n_passages);
  aip_chat_turns_free(a.turns, a.n_turns);
  free(a.context);
  free(a.history_key);
  return st;
}

aiplat_bus *aip_chat_bus(aiplat_chat *c) {
  return c->bus;
}

/* ---- the asynchronous answer ---------------------------------------------
 *
 * The request checks run on the caller's thread; the history's load, the
 * retrieval's steps (embed, search, rerank), the LLM call and the history's
 * save run on the execution core one after the other, all bounded by the
 * request's aiplat_call (the model calls are cancelled by it too), and the
 * end (the ChatResponse built) on its loop thread. Nothing waits. */

typedef struct async_answer {
  aiplat_chat *c;
  answer_ctx a;
  aiplat_call *call;
  aip_chat_done_fn done;
  aiplat_chat_delta_fn delta;
  void *ud; /* of done and delta */
} async_answer;

static bool on_llm_delta(const char *text, size_t len, void *ud) {
  async_answer *x = ud;
  return x->delta(text, len, x->ud);
}

static void answer_ctx_free(answer_ctx *a) {
  aiplat_llm_result_destroy(a->result);
  aiplat_llm_request_destroy(a->llm_req);
  aip_chat_passages_free(a->passages, a->n_passages);
  aip_chat_turns_free(a->turns, a->n_turns);
  free(a->context);
  free(a->history_key);
}

static void async_free(async_answer *x) {
  answer_ctx_free(&x->a);
  free(x);
}

/* The end: the ChatResponse. */
static void respond(async_answer *x) {
  char why[AIP_ERRMSG_MAX] = "";
  aiplat_msg *response = NULL;
  aiplat_status st = build_response(x->c, &x->a, &response);
  if (st != AIPLAT_OK) aiplat_error_last(why, sizeof why);
  x->done(st, why, response, x->ud);
  async_free(x);
}

static void history_not_saved(const char *why) {
  aip_log_kv(AIPLAT_LOG_WARNING, "conversation history not saved", "error",
             why, NULL);
  aiplat_error_clear();
}

/* The turn stored, on the loop thread (a failure is only logged). */
static void on_saved(aiplat_status st, const char *why, void *ud) {
  if (st) history_not_saved(why);
  respond(ud);
}

static void on_llm_done(aiplat_status st, const char *message,
                        aiplat_llm_result *result, void *ud) {
  async_answer *x = ud;
  answer_ctx *a = &x->a;
  a->result = result;
  if (st != AIPLAT_OK) {
    x->done(st, message, NULL, x->ud);
    async_free(x);
    return;
  }
  if (!a->history_key) {
    respond(x);
    return;
  }
  st = aip_chat_history_save_async(
      x->c->history, a->history_key, a->turns, a->n_turns, a->message,
      aiplat_llm_result_text(a->result), aip_call_deadline_ms(x->call),
      on_saved, x);
  if (st) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    history_not_saved(why);
    respond(x);
  }
}

/* Step 4 and the LLM call. On failure the thread's record has the detail
 * and nothing runs. */
static aiplat_status start_llm(async_answer *x) {
  aiplat_chat *c = x->c;
  answer_ctx *a = &x->a;
  aiplat_status st = add_messages(c, a);
  if (st) return st;
  st = x->delta ? aiplat_llm_stream_async(c->llm, a->llm_req, x->call,
                                          on_llm_delta, on_llm_done, x)
                : aiplat_llm_complete_async(c->llm, a->llm_req, x->call,
                                            on_llm_done, x);
  return st ? fail_last(c, st, "") : AIPLAT_OK;
}

/* The end of the retrieval, on the loop thread: the LLM call next. */
static void on_retrieved(aiplat_status st, const char *why,
                         aip_chat_passage *passages, size_t n, char *context,
                         void *ud) {
  async_answer *x = ud;
  answer_ctx *a = &x->a;
  char msg[AIP_ERRMSG_MAX];
  if (st) {
    snprintf(msg, sizeof msg, "retrieval: %s", why);
    aip_fail(&x->c->err, st, "%s", msg);
  } else {
    a->passages = passages;
    a->n_passages = n;
    a->context = context;
    if ((st = start_llm(x)) == AIPLAT_OK) return; /* on_llm_done owns x */
    aiplat_error_last(msg, sizeof msg);
  }
  x->done(st, msg, NULL, x->ud);
  async_free(x);
}

/* Step 3 (the retrieval, when asked for) or straight to step 4. On failure
 * the thread's record has the detail and nothing runs. */
static aiplat_status start_prompt(async_answer *x) {
  aiplat_chat *c = x->c;
  answer_ctx *a = &x->a;
  if (!a->enable_rag) return start_llm(x);
  aiplat_status st = aip_chat_retrieve_async(
      c->retriever, a->message, (int)a->top_k, (size_t)c->context_chars,
      x->call, on_retrieved, x);
  return st ? fail_last(c, st, "retrieval: ") : AIPLAT_OK;
}

/* The earlier turns, on the loop thread: the prompt next. */
static void on_history(aiplat_status st, const char *why,
                       aip_chat_turn *turns, size_t n, void *ud) {
  async_answer *x = ud;
  char msg[AIP_ERRMSG_MAX];
  x->a.turns = turns;
  x->a.n_turns = n;
  if (st) {
    snprintf(msg, sizeof msg, "chat: %s", why);
    aip_fail(&x->c->err, st, "%s", msg);
  } else {
    if ((st = start_prompt(x)) == AIPLAT_OK) return; /* the next step owns x */
    aiplat_error_last(msg, sizeof msg);
  }
  x->done(st, msg, NULL, x->ud);
  async_free(x);
}

aiplat_status aip_chat_answer_async(aiplat_chat *c, aiplat_msg *request,
                                    aiplat_call *call,
                                    aiplat_chat_delta_fn fn,
                                    aip_chat_done_fn done, void *user_data,
                                    char *why, size_t whylen) {
  async_answer *x = calloc(1, sizeof *x);
  if (!x) {
    snprintf(why, whylen, "chat: out of memory");
    return AIPLAT_ERR_NO_MEMORY;
  }
  x->c = c;
  x->call = call;
  x->done = done;
  x->delta = fn;
  x->ud = user_data;
  answer_ctx *a = &x->a;
  a->req = request;
  aiplat_status st = aiplat_llm_request_create(&a->llm_req);
  if (st) st = fail_last(c, st, "chat: ");
  if (!st) st = check_request(c, a);
  if (!st && c->history && *a->conversation_id) {
    a->history_key = aip_chat_history_key(a->user_id, a->conversation_id);
    st = a->history_key
             ? aip_chat_history_load_async(c->history, a->history_key,
                                           aip_call_deadline_ms(call),
                                           on_history, x)
             : aip_fail(&c->err, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
    if (!st) return AIPLAT_OK; /* on_history owns x now */
    if (a->history_key) st = fail_last(c, st, "chat: ");
  } else if (!st) {
    if ((st = start_prompt(x)) == AIPLAT_OK) return AIPLAT_OK;
  }
  aiplat_error_last(why, whylen);
  async_free(x);
  return st;
}
