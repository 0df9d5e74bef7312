/* The chat-handler endpoint on NATS (aiplat_chat_handle_request): request
 * checks, streamed chunks, the answer on both subjects, error answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aiplat/chat.h"
#include "call_internal.h"
#include "chat_internal.h"
#include "config.h"
#include "message_internal.h"

#define PROGRESS_EVERY_MS 1000

typedef struct chat_call {
  aiplat_request *req;
  aiplat_bus *bus;
  const char *request_id;
  char *subject; /* ai.chat.response.{request_id}, or NULL */
  uint32_t seq;
  int64_t progress_ms;
  bool stream;
  aiplat_call *call; /* the request's deadline; cancelled at shutdown */
} chat_call;

/* Publish on the response subject with the type header and the trace. */
static aiplat_status publish(chat_call *k, aiplat_msg *m) {
  uint8_t *body = NULL;
  size_t len = 0;
  aiplat_headers *h = NULL;
  aiplat_status st = aiplat_msg_encode(m, &body, &len);
  if (!st) st = aiplat_headers_create(&h);
  if (!st)
    st = aiplat_headers_set(h, "traceparent",
                            aiplat_request_traceparent(k->req));
  if (!st)
    st = aiplat_headers_set(h, AIPLAT_CHAT_TYPE_HEADER,
                            aiplat_msg_type_name(aiplat_msg_get_type(m)));
  if (!st) st = aiplat_bus_publish(k->bus, k->subject, body, len, h);
  if (st) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    aip_log_kv(AIPLAT_LOG_WARNING, "could not publish on the response subject",
               "error", why, NULL);
  }
  aiplat_headers_destroy(h);
  aiplat_free(body);
  return st;
}

static aiplat_msg *new_msg(aiplat_msg_type type, const char *request_id) {
  aiplat_msg *m = NULL;
  if (aiplat_msg_create(&m, type) != AIPLAT_OK) return NULL;
  if (aiplat_msg_set_string(m, "request_id", request_id) != AIPLAT_OK) {
    aiplat_msg_destroy(m);
    return NULL;
  }
  return m;
}

/* Fail the request: the error on the response subject too, then the
 * framework's error reply. */
static aiplat_status fail(chat_call *k, aiplat_status code, const char *text) {
  if (k->subject) {
    aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_RESPONSE, k->request_id);
    if (m && aip_msg_set_error(m, code, text) == AIPLAT_OK) publish(k, m);
    aiplat_msg_destroy(m);
  }
  return aiplat_request_fail(k->req, code, text);
}

static bool on_delta(const char *delta, size_t len, void *ud) {
  (void)len;
  chat_call *k = ud;
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_CHUNK, k->request_id);
  if (m && aiplat_msg_set_uint64(m, "seq", k->seq) == AIPLAT_OK &&
      aiplat_msg_set_string(m, "delta", delta) == AIPLAT_OK)
    publish(k, m);
  aiplat_msg_destroy(m);
  k->seq++;
  int64_t now = aip_now_ms();
  if (now - k->progress_ms >= PROGRESS_EVERY_MS) {
    aiplat_request_in_progress(k->req); /* a no-op on core NATS */
    k->progress_ms = now;
  }
  return true;
}

/* Copy `usage` and `sources` of a ChatResponse into the last chunk. */
static aiplat_status copy_summary(aiplat_msg *from, aiplat_msg *to) {
  aiplat_msg *u = NULL, *dst = NULL, *src = NULL;
  aiplat_status st = aiplat_msg_get_message(from, "usage", &u);
  if (!st && u) {
    st = aiplat_msg_mutable_message(to, "usage", &dst);
    static const char *const f[] = {"prompt_tokens", "completion_tokens",
                                    "total_tokens"};
    for (size_t i = 0; !st && i < 3; i++) {
      int64_t v = 0;
      st = aiplat_msg_get_int64(u, f[i], &v);
      if (!st) st = aiplat_msg_set_int64(dst, f[i], v);
    }
  }
  size_t n = 0;
  if (!st) st = aiplat_msg_count(from, "sources", &n);
  for (size_t i = 0; !st && i < n; i++) {
    const char *s = NULL;
    double score = 0;
    st = aiplat_msg_get_item(from, "sources", i, &src);
    if (!st) st = aiplat_msg_add_item(to, "sources", &dst);
    static const char *const f[] = {"id", "text", "source"};
    for (size_t j = 0; !st && j < 3; j++) {
      st = aiplat_msg_get_string(src, f[j], &s);
      if (!st) st = aiplat_msg_set_string(dst, f[j], s);
    }
    if (!st) st = aiplat_msg_get_double(src, "score", &score);
    if (!st) st = aiplat_msg_set_double(dst, "score", score);
  }
  return st;
}

/* The last chunk: done, with the summary or the error. */
static void publish_done(chat_call *k, aiplat_msg *resp, aiplat_status code,
                         const char *why) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_CHUNK, k->request_id);
  aiplat_status st = m ? AIPLAT_OK : AIPLAT_ERR_NO_MEMORY;
  if (!st) st = aiplat_msg_set_uint64(m, "seq", k->seq);
  if (!st) st = aiplat_msg_set_bool(m, "done", true);
  if (!st && resp) {
    const char *finish = "";
    aiplat_msg_get_string(resp, "finish_reason", &finish);
    st = aiplat_msg_set_string(m, "finish_reason", finish);
    if (!st) st = copy_summary(resp, m);
  } else if (!st) {
    st = aip_msg_set_error(m, code, why);
  }
  if (!st) publish(k, m);
  aiplat_msg_destroy(m);
}

/* Shutdown past the grace period: stop the LLM call (its connection
 * closes); on_answer then answers the caller with the error. */
static void on_cancel(aiplat_request *req, void *ud) {
  (void)req;
  aiplat_call_cancel(ud);
}

/* The end of the answer, on the execution core's thread (or the handler's
 * when the answer could not start). */
static void on_answer(aiplat_status st, const char *why, aiplat_msg *resp,
                      void *ud) {
  chat_call *k = ud;
  aiplat_request *req = k->req;
  char sent[AIP_ERRMSG_MAX];
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  if (st) {
    if (k->stream) publish_done(k, NULL, st, why);
    fail(k, st, why);
  } else {
    if (k->stream) publish_done(k, resp, AIPLAT_OK, NULL);
    aiplat_status pub = publish(k, resp);
    if (pub && !aiplat_request_has_reply(req)) {
      /* The response subject is the only answer (durable mode): the
       * request failed, and is delivered again rather than acked. */
      snprintf(sent, sizeof sent, "the answer could not be published: %s",
               aiplat_status_str(pub));
      st = pub;
      why = sent;
    } else {
      st = aiplat_request_respond(req, resp);
    }
  }
  aiplat_msg_destroy(resp);
  aiplat_free(k->subject);
  aiplat_call_destroy(k->call);
  free(k);
  aiplat_request_complete(req, st, why);
}

/* The user id of `ai.chat.user.{user}.message` must be the message's; an
 * empty one is taken from the subject. Other subjects (an endpoint of the
 * embedder's own) leave the message's user id alone. */
static aiplat_status check_user(chat_call *k, aiplat_msg *in, char *why,
                                size_t whylen) {
  static const char prefix[] = "ai.chat.user.", suffix[] = ".message";
  const char *subject = aiplat_request_subject(k->req);
  size_t len = strlen(subject), pl = sizeof prefix - 1, sl = sizeof suffix - 1;
  if (len <= pl + sl || strncmp(subject, prefix, pl) != 0 ||
      strcmp(subject + len - sl, suffix) != 0)
    return AIPLAT_OK;
  char *token = aip_strndup(subject + pl, len - pl - sl);
  if (!token) return AIPLAT_ERR_NO_MEMORY;
  const char *user = "";
  aiplat_msg_get_string(in, "user_id", &user);
  aiplat_status st = AIPLAT_OK;
  if (aiplat_subject_token_check(token) != AIPLAT_OK) {
    char detail[AIP_ERRMSG_MAX - 32];
    aiplat_error_last(detail, sizeof detail);
    snprintf(why, whylen, "the subject's user id: %s", detail);
    st = AIPLAT_ERR_INVALID_ARGUMENT;
  } else if (!*user) {
    st = aiplat_msg_set_string(in, "user_id", token);
  } else if (strcmp(user, token) != 0) {
    snprintf(why, whylen, "user_id does not match the user of the subject");
    st = AIPLAT_ERR_INVALID_ARGUMENT;
  }
  free(token);
  return st;
}

AIPLAT_API aiplat_status aiplat_chat_handle_request(aiplat_request *req,
                                                    void *user_data) {
  aiplat_chat *chat = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !chat || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_CHAT_REQUEST)
    return aip_fail(
        NULL, AIPLAT_ERR_INVALID_ARGUMENT,
        "chat: the endpoint must decode ChatRequest and have a pipeline");
  chat_call k = {.req = req,
                 .request_id = aiplat_request_id(req),
                 .progress_ms = aip_now_ms()};
  k.bus = aip_chat_bus(chat);
  char why[AIP_ERRMSG_MAX];
  if (!k.bus)
    return aiplat_request_fail(req, AIPLAT_ERR_INTERNAL,
                               "chat: the pipeline has no bus");
  if (aiplat_subject_chat_response(&k.subject, k.request_id) != AIPLAT_OK) {
    char detail[AIP_ERRMSG_MAX - 16];
    aiplat_error_last(detail, sizeof detail);
    snprintf(why, sizeof why, "request_id: %s", detail);
    return fail(&k, AIPLAT_ERR_INVALID_ARGUMENT, why);
  }
  aiplat_status st = check_user(&k, in, why, sizeof why);
  if (!st) st = aiplat_msg_set_string(in, "request_id", k.request_id);
  if (st) {
    aiplat_status code = st;
    st = fail(&k, code,
              st == AIPLAT_ERR_INVALID_ARGUMENT ? why : aiplat_status_str(st));
    aiplat_free(k.subject);
    return st;
  }
  bool stream = false;
  aiplat_msg_get_bool(in, "stream", &stream);
  const char *user = "", *conv = "";
  aiplat_msg_get_string(in, "user_id", &user);
  aiplat_msg_get_string(in, "conversation_id", &conv);
  aip_log_kv(AIPLAT_LOG_INFO, "chat request", "user_id", user,
             "conversation_id", conv, "stream", stream ? "true" : "false",
             NULL);
  /* The LLM call runs on the execution core: the request is handed over
   * and finished by on_answer, on the core's thread. */
  chat_call *h = malloc(sizeof *h);
  if (!h || aiplat_call_create(&k.call) != AIPLAT_OK) {
    free(h);
    st = fail(&k, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
    aiplat_free(k.subject);
    return st;
  }
  aip_call_set_deadline_ms(k.call, aip_request_deadline_ms(req));
  k.stream = stream;
  *h = k;
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, h->call);
  st = aip_chat_answer_async(chat, in, h->call, stream ? on_delta : NULL,
                             on_answer, h, why, sizeof why);
  if (st) on_answer(st, why, NULL, h);
  return AIPLAT_OK;
}
