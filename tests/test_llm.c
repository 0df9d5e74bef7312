/* The public LLM client against a loopback HTTP server speaking the
 * OpenAI chat completions wire format as vLLM, llama.cpp and Ollama send
 * it: plain and streamed answers, every error shape, stream faults. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fakes/http_fake.h"
#include "harness/testutil.h"

static hf_server *srv;
static aiplat_config *cfg;
static aiplat_llm *llm;
static aiplat_llm_request *req;
static char msg[512];

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
  aiplat_log_set_level(AIPLAT_LOG_ERROR);
  srv = hf_start();
  ck_assert_ptr_nonnull(srv);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  char url[96];
  snprintf(url, sizeof url, "%s/v1", hf_url(srv));
  ck_assert_int_eq(aiplat_config_set(cfg, "VLLM_URL", url), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "LLM_MODEL", "qwen2.5-7b"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_RETRY_BACKOFF", "10ms"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "LLM_TIMEOUT", "10s"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_create(&llm, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_create(&req), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_add_message(req, "system", "Be brief."),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_add_message(req, "user", "Hi \xC3\xA9"),
                   AIPLAT_OK);
}

static void teardown(void) {
  aiplat_llm_request_destroy(req);
  aiplat_llm_destroy(llm);
  aiplat_config_destroy(cfg);
  hf_stop(srv);
  aiplat_log_reset_level();
}

static const char *errmsg(void) {
  aiplat_llm_last_error(llm, msg, sizeof msg);
  return msg;
}

static void push(int status, const char *ctype, const char *body) {
  hf_response r = hf_resp(status, ctype, body);
  hf_push(srv, &r);
}

static json_t *request_json(size_t i) {
  const hf_request *r = hf_request_at(srv, i);
  ck_assert_ptr_nonnull(r);
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  ck_assert_ptr_nonnull(j);
  return j;
}

static const char completion[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
    "\"model\":\"qwen2.5-7b\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
    "\"Hello "
    "there!\",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"stop\","
    "\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":9,\"completion_"
    "tokens\":3,"
    "\"total_tokens\":12,\"prompt_tokens_details\":null},\"prompt_logprobs\":"
    "null,"
    "\"kv_transfer_params\":null}";

/* ---- complete ----------------------------------------------------------- */

START_TEST(complete_answer_and_request_body) {
  push(200, "application/json", completion);
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_complete(llm, req, &res), AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_text(res), "Hello there!");
  ck_assert_uint_eq(aiplat_llm_result_text_len(res), 12);
  ck_assert_str_eq(aiplat_llm_result_finish_reason(res), "stop");
  ck_assert_str_eq(aiplat_llm_result_model(res), "qwen2.5-7b");
  ck_assert_int_eq(aiplat_llm_result_prompt_tokens(res), 9);
  ck_assert_int_eq(aiplat_llm_result_completion_tokens(res), 3);
  ck_assert_int_eq(aiplat_llm_result_total_tokens(res), 12);
  aiplat_llm_result_destroy(res);
  const hf_request *r = hf_request_at(srv, 0);
  ck_assert_str_eq(r->path, "/v1/chat/completions");
  ck_assert_ptr_null(hf_header_get(r, "authorization"));
  json_t *b = request_json(0);
  ck_assert_str_eq(json_string_value(json_object_get(b, "model")),
                   "qwen2.5-7b");
  ck_assert(json_is_false(json_object_get(b, "stream")));
  ck_assert_int_eq(json_integer_value(json_object_get(b, "max_tokens")), 512);
  ck_assert(json_real_value(json_object_get(b, "temperature")) > 0.69);
  ck_assert_ptr_null(json_object_get(b, "top_p"));
  ck_assert_ptr_null(json_object_get(b, "stop"));
  ck_assert_ptr_null(json_object_get(b, "seed"));
  json_t *m = json_object_get(b, "messages");
  ck_assert_uint_eq(json_array_size(m), 2);
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(m, 0), "role")),
      "system");
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(m, 1), "content")),
      "Hi \xC3\xA9");
  json_decref(b);
}
END_TEST

START_TEST(request_parameters) {
  ck_assert_int_eq(aiplat_llm_request_set_model(req, "other"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_set_max_tokens(req, 64), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_set_temperature(req, 0), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_set_top_p(req, 0.9), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_add_stop(req, "\n\n"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_add_stop(req, "END"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_request_set_seed(req, 42), AIPLAT_OK);
  ck_assert_int_eq(aiplat_llm_set_api_key(llm, "sk-xyz"), AIPLAT_OK);
  push(200, "application/json", completion);
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_complete(llm, req, &res), AIPLAT_OK);
  aiplat_llm_result_destroy(res);
  json_t *b = request_json(0);
  ck_assert_str_eq(json_string_value(json_object_get(b, "model")), "other");
  ck_assert_int_eq(json_integer_value(json_object_get(b, "max_tokens")), 64);
  ck_assert(json_number_value(json_object_get(b, "temperature")) == 0);
  ck_assert(json_number_value(json_object_get(b, "top_p")) > 0.89);
  ck_assert_uint_eq(json_array_size(json_object_get(b, "stop")), 2);
  ck_assert_int_eq(json_integer_value(json_object_get(b, "seed")), 42);
  json_decref(b);
  ck_assert_str_eq(hf_header_get(hf_request_at(srv, 0), "authorization"),
                   "Bearer sk-xyz");
  /* Bad parameters are refused before anything is sent. */
  ck_assert_int_eq(aiplat_llm_request_add_message(req, "User", "x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_request_add_message(req, "", "x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_request_add_message(req, "user", "bad \xC3"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_llm_request_last_error(req, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "UTF-8"));
  ck_assert_int_eq(aiplat_llm_request_set_temperature(req, 3),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_request_set_top_p(req, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_request_set_max_tokens(req, -1),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_request_add_stop(req, ""),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(aiplat_llm_request_message_count(req), 2);
  aiplat_llm_request_clear_messages(req);
  ck_assert_int_eq(aiplat_llm_complete(llm, req, &res),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(res);
  ck_assert_uint_eq(hf_request_count(srv), 1);
}
END_TEST

START_TEST(error_shapes_map_to_status_and_message) {
  static const struct {
    int http;
    const char *body;
    aiplat_status st;
    const char *text;
  } cases[] = {
      {404,
       "{\"error\":{\"message\":\"The model `nope` does not exist.\",\"type\":"
       "\"NotFoundError\",\"param\":null,\"code\":404}}",
       AIPLAT_ERR_NOT_FOUND, "The model `nope` does not exist."},
      {400,
       "{\"object\":\"error\",\"message\":\"maximum context length is 4096 "
       "tokens\","
       "\"type\":\"BadRequestError\",\"param\":null,\"code\":400}",
       AIPLAT_ERR_BAD_REQUEST, "maximum context length is 4096 tokens"},
      {401,
       "{\"error\":{\"message\":\"Invalid API "
       "Key\",\"type\":\"authentication_error\"}}",
       AIPLAT_ERR_AUTH, "Invalid API Key"},
      {403, "Forbidden", AIPLAT_ERR_AUTH, "Forbidden"},
      {422,
       "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"messages\"],"
       "\"msg\":"
       "\"Field required\"}]}",
       AIPLAT_ERR_BAD_REQUEST, "body.messages: Field required"},
      {429, "{\"error\":\"server busy, please try again\"}",
       AIPLAT_ERR_RATE_LIMITED, "server busy, please try again"},
      {500, "Internal Server Error", AIPLAT_ERR_SERVER,
       "Internal Server Error"},
      {502, "<html><head><title>502 Bad Gateway</title></head></html>",
       AIPLAT_ERR_SERVER, "502 Bad Gateway"},
      {503,
       "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":"
       "\"unavailable_error\"}}",
       AIPLAT_ERR_UNAVAILABLE, "Loading model"},
      {504, "", AIPLAT_ERR_SERVER, "HTTP 504 with no message"},
  };
  ck_assert_int_eq(aiplat_llm_set_max_retries(llm, 0), AIPLAT_OK);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    push(cases[i].http,
         cases[i].body[0] == '{' ? "application/json" : "text/html",
         cases[i].body);
    aiplat_llm_result *res = (aiplat_llm_result *)1;
    ck_assert_int_eq(aiplat_llm_complete(llm, req, &res), cases[i].st);
    ck_assert_ptr_null(res);
    ck_assert_msg(strstr(errmsg(), cases[i].text), "HTTP %d: %s", cases[i].http,
                  msg);
    char tmsg[512];
    ck_assert_int_eq(aiplat_error_last(tmsg, sizeof tmsg), cases[i].st);
    ck_assert_str_eq(tmsg, msg);
  }
}
END_TEST

START_TEST(bad_answers) {
  static const struct {
    const char *body;
    aiplat_status st;
    const char *text;
  } cases[] = {
      {"{\"object\":\"chat.completion\",\"choices\":[]}", AIPLAT_ERR_PROTOCOL,
       "no \"choices\""},
      {"{\"choices\":[{\"index\":0,\"message\":{\"content\":42}}]}",
       AIPLAT_ERR_PROTOCOL, "not a string"},
      {"{\"choices\":[{\"index\":0,\"message\":{\"content\":\"Hel",
       AIPLAT_ERR_DECODE, "not JSON"},
      {"Hello, I am not JSON", AIPLAT_ERR_DECODE, "not JSON"},
      {"{\"error\":{\"message\":\"engine died\",\"code\":500}}",
       AIPLAT_ERR_SERVER, "engine died"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    push(200, "application/json", cases[i].body);
    aiplat_llm_result *res = NULL;
    ck_assert_msg(aiplat_llm_complete(llm, req, &res) == cases[i].st, "%s",
                  cases[i].body);
    ck_assert_ptr_null(res);
    ck_assert_msg(strstr(errmsg(), cases[i].text), "%s -> %s", cases[i].body,
                  msg);
  }
  /* content null (a tool call) is an empty text, not an error. */
  push(200, "application/json",
       "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
       "\"content\":null},"
       "\"finish_reason\":\"tool_calls\"}]}");
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_complete(llm, req, &res), AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_text(res), "");
  ck_assert_str_eq(aiplat_llm_result_finish_reason(res), "tool_calls");
  ck_assert_int_eq(aiplat_llm_result_total_tokens(res), -1);
  aiplat_llm_result_destroy(res);
}
END_TEST

/* ---- stream ------------------------------------------------------------- */

typedef struct deltas {
  char text[4096];
  size_t n;
  size_t stop_after; /* 0: never */
} deltas;

static bool on_delta(const char *d, size_t len, void *ud) {
  deltas *x = ud;
  ck_assert_uint_eq(strlen(d), len);
  strncat(x->text, d, sizeof x->text - strlen(x->text) - 1);
  x->n++;
  return !(x->stop_after && x->n >= x->stop_after);
}

#define CHUNK(content)                                                         \
  "data: "                                                                     \
  "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"         \
  "\"model\":"                                                                 \
  "\"qwen2.5-7b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" content \
  "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"

static const char good_stream[] =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    CHUNK("Gr\xC3\xBC\xC3\x9F") CHUNK(" Gott") CHUNK(" \xE2\x82\xAC\xF0\x9F\x98\x80")
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    ": usage follows\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{"
    "\"prompt_tokens\":20,\"completion_tokens\":4,\"total_tokens\":24}}\n\n"
    "data: [DONE]\n\n";

START_TEST(stream_split_at_odd_offsets) {
  hf_response r = hf_resp(200, "text/event-stream; charset=utf-8", good_stream);
  r.chunked = true;
  size_t cuts[] = {1,   7,   60,  61,  133, 190, 191, 192,
                   250, 251, 300, 377, 420, 421, 500};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
    r.splits[r.nsplits++] = cuts[i];
  /* cut inside the euro sign and the emoji as well */
  const char *euro = strstr(good_stream, "\xE2\x82\xAC");
  r.splits[r.nsplits++] = (size_t)(euro - good_stream) + 1;
  r.splits[r.nsplits++] = (size_t)(euro - good_stream) + 5;
  r.piece_delay_ms = 3;
  hf_push(srv, &r);
  deltas d = {"", 0, 0};
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_stream(llm, req, on_delta, &d, &res), AIPLAT_OK);
  ck_assert_str_eq(d.text,
                   "Gr\xC3\xBC\xC3\x9F Gott \xE2\x82\xAC\xF0\x9F\x98\x80");
  ck_assert_uint_eq(d.n, 3); /* the empty first delta is not handed out */
  ck_assert_str_eq(aiplat_llm_result_text(res), d.text);
  ck_assert_str_eq(aiplat_llm_result_finish_reason(res), "stop");
  ck_assert_int_eq(aiplat_llm_result_prompt_tokens(res), 20);
  ck_assert_int_eq(aiplat_llm_result_total_tokens(res), 24);
  aiplat_llm_result_destroy(res);
  json_t *b = request_json(0);
  ck_assert(json_is_true(json_object_get(b, "stream")));
  ck_assert(json_is_true(
      json_object_get(json_object_get(b, "stream_options"), "include_usage")));
  json_decref(b);
  ck_assert_str_eq(hf_header_get(hf_request_at(srv, 0), "accept"),
                   "text/event-stream");
}
END_TEST

/* A stream that never carries text (a role, then a finish reason) has an
 * empty text, not what the memory held before. */
START_TEST(stream_without_text) {
  mallopt(M_PERTURB, 0x5a); /* fresh allocations are not zeroed */
  hf_response r =
      hf_resp(200, "text/event-stream",
              "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
              "\"assistant\"}}]}\n\n"
              "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
              "\"length\"}]}\n\n"
              "data: [DONE]\n\n");
  r.chunked = true;
  hf_push(srv, &r);
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_llm_result_text_len(res), 0);
  ck_assert_str_eq(aiplat_llm_result_text(res), "");
  ck_assert_str_eq(aiplat_llm_result_finish_reason(res), "length");
  aiplat_llm_result_destroy(res);
}
END_TEST

/* An event type is all of its bytes: "message" or "error" followed by a
 * NUL byte and more is another type, which a client ignores. */
START_TEST(stream_event_type_with_nul) {
  static const char body[] =
      CHUNK("a") "event: message\0x\n" CHUNK("b") "event: error\0x\n"
      "data: not an error\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
      "\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  hf_response r = hf_resp(200, "text/event-stream", body);
  r.body_len = sizeof body - 1;
  r.chunked = true;
  hf_push(srv, &r);
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res), AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_text(res), "a");
  aiplat_llm_result_destroy(res);
}
END_TEST

/* Blank bytes arriving before the first line are part of the stream
 * however they are cut: "\tdata: ..." is a line of an unknown field, also
 * when the tab comes alone. */
START_TEST(stream_leading_blank_piece) {
  static const char body[] = "\tdata: {not json\n\n" CHUNK("a")
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
      "\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  hf_response r = hf_resp(200, "text/event-stream", body);
  r.chunked = true;
  r.splits[r.nsplits++] = 1;
  r.piece_delay_ms = 20;
  hf_push(srv, &r);
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res), AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_text(res), "a");
  aiplat_llm_result_destroy(res);
}
END_TEST

START_TEST(stream_callback_stops_promptly) {
  hf_response r = hf_resp(200, "text/event-stream",
                          CHUNK("one") CHUNK("two") CHUNK("three"));
  r.chunked = true;
  r.hang_after_body = true; /* the server would go on forever */
  hf_push(srv, &r);
  push(200, "text/plain", "spare"); /* a retry would get this */
  deltas d = {"", 0, 2};
  aiplat_llm_result *res = NULL;
  int64_t t0 = now_ms();
  ck_assert_int_eq(aiplat_llm_stream(llm, req, on_delta, &d, &res),
                   AIPLAT_ERR_CANCELLED);
  ck_assert(now_ms() - t0 < 8000); /* not a hang; wide for valgrind */
  ck_assert_str_eq(aiplat_llm_result_text(res), "onetwo");
  ck_assert_ptr_nonnull(strstr(errmsg(), "stopped by the callback"));
  aiplat_llm_result_destroy(res);
  ck_assert_uint_eq(hf_request_count(srv), 1);
}
END_TEST

START_TEST(stream_error_events) {
  static const struct {
    const char *event;
    aiplat_status st;
    const char *text;
  } cases[] = {
      /* vLLM */
      {"data: {\"error\":{\"object\":\"error\",\"message\":\"prompt too "
       "long\",\"type\":"
       "\"BadRequestError\",\"param\":null,\"code\":400}}\n\n",
       AIPLAT_ERR_BAD_REQUEST, "prompt too long"},
      /* older vLLM: the flat ErrorResponse */
      {"data: {\"object\":\"error\",\"message\":\"engine "
       "dead\",\"type\":\"InternalServerError\","
       "\"code\":500}\n\n",
       AIPLAT_ERR_SERVER, "engine dead"},
      /* llama.cpp */
      {"error: {\"code\":400,\"message\":\"the request exceeds the available "
       "context size\","
       "\"type\":\"exceed_context_size_error\"}\n\n",
       AIPLAT_ERR_BAD_REQUEST, "exceeds the available context size"},
      /* a named error event with a string */
      {"event: error\ndata: upstream went away\n\n", AIPLAT_ERR_SERVER,
       "upstream went away"},
      /* Ollama's OpenAI compatibility layer */
      {"data: {\"error\":{\"message\":\"model runner "
       "crashed\",\"type\":\"api_error\","
       "\"param\":null,\"code\":null}}\n\n",
       AIPLAT_ERR_SERVER, "model runner crashed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char body[1024];
    snprintf(body, sizeof body, "%s%s", CHUNK("partial"), cases[i].event);
    hf_response r = hf_resp(200, "text/event-stream", body);
    r.chunked = true;
    hf_push(srv, &r);
    deltas d = {"", 0, 0};
    aiplat_llm_result *res = NULL;
    ck_assert_int_eq(aiplat_llm_stream(llm, req, on_delta, &d, &res),
                     cases[i].st);
    ck_assert_msg(strstr(errmsg(), cases[i].text), "%zu: %s", i, msg);
    ck_assert_str_eq(aiplat_llm_result_text(res), "partial");
    aiplat_llm_result_destroy(res);
  }
}
END_TEST

START_TEST(stream_end_without_done) {
  /* Neither [DONE] nor a finish_reason: cut short. */
  hf_response r =
      hf_resp(200, "text/event-stream", CHUNK("half") CHUNK(" an answer"));
  r.chunked = true;
  hf_push(srv, &r);
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res),
                   AIPLAT_ERR_PROTOCOL);
  ck_assert_str_eq(aiplat_llm_result_text(res), "half an answer");
  ck_assert_ptr_nonnull(strstr(errmsg(), "without [DONE]"));
  aiplat_llm_result_destroy(res);
  /* A finish_reason without [DONE] is a complete answer. */
  r = hf_resp(200, "text/event-stream",
              CHUNK("all") "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                           "\"length\"}]}");
  hf_push(srv, &r);
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res), AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_finish_reason(res), "length");
  aiplat_llm_result_destroy(res);
  /* The connection cut mid-event: connection lost, the text so far kept. */
  r = hf_resp(200, "text/event-stream", CHUNK("kept") CHUNK("lost"));
  r.chunked = true;
  r.cut = true;
  r.cut_at = strlen(CHUNK("kept")) + 20;
  hf_push(srv, &r);
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res),
                   AIPLAT_ERR_CONNECTION);
  ck_assert_str_eq(aiplat_llm_result_text(res), "kept");
  aiplat_llm_result_destroy(res);
  /* Garbage inside an event. */
  r = hf_resp(200, "text/event-stream", CHUNK("ok") "data: {not json\n\n");
  hf_push(srv, &r);
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res),
                   AIPLAT_ERR_DECODE);
  ck_assert_ptr_nonnull(strstr(errmsg(), "not JSON"));
  aiplat_llm_result_destroy(res);
  /* out may be NULL. */
  r = hf_resp(200, "text/event-stream", CHUNK("x") "data: [DONE]\n\n");
  hf_push(srv, &r);
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, NULL), AIPLAT_OK);
}
END_TEST

START_TEST(stream_without_text_is_an_empty_answer) {
  /* Fresh heap blocks are filled with a non-zero byte, so an answer
   * buffer that was never terminated shows up as garbage text. */
  mallopt(M_PERTURB, 0x5a);
  const char *bodies[] = {
      /* finish_reason "length" before any text */
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
      "\"assistant\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
      /* an empty reply */
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},"
      "\"finish_reason\":null}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
      "\"stop\"}]}\n\ndata: [DONE]\n\n",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    hf_response r = hf_resp(200, "text/event-stream", bodies[i]);
    hf_push(srv, &r);
    aiplat_llm_result *res = NULL;
    ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res), AIPLAT_OK);
    ck_assert_uint_eq(aiplat_llm_result_text_len(res), 0);
    ck_assert_str_eq(aiplat_llm_result_text(res), "");
    aiplat_llm_result_destroy(res);
  }
  /* The plain (non-streamed) form too. */
  push(200, "application/json",
       "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
       "\"content\":\"\"},\"finish_reason\":\"length\"}]}");
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_complete(llm, req, &res), AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_text(res), "");
  aiplat_llm_result_destroy(res);
  mallopt(M_PERTURB, 0);
}
END_TEST

START_TEST(stream_retried_before_it_starts) {
  hf_response busy = hf_resp(429, "application/json",
                             "{\"error\":{\"message\":\"queue full\"}}");
  busy.headers[0] = "Retry-After: 0";
  hf_push(srv, &busy);
  hf_response r = hf_resp(200, "text/event-stream", good_stream);
  hf_push(srv, &r);
  deltas d = {"", 0, 0};
  ck_assert_int_eq(aiplat_llm_stream(llm, req, on_delta, &d, NULL), AIPLAT_OK);
  ck_assert_uint_eq(hf_request_count(srv), 2);
  ck_assert_uint_eq(d.n, 3);
}
END_TEST

START_TEST(stream_server_ignores_stream_flag) {
  push(200, "application/json", completion);
  deltas d = {"", 0, 0};
  aiplat_llm_result *res = NULL;
  ck_assert_int_eq(aiplat_llm_stream(llm, req, on_delta, &d, &res), AIPLAT_OK);
  ck_assert_str_eq(d.text, "Hello there!");
  ck_assert_uint_eq(d.n, 1);
  ck_assert_int_eq(aiplat_llm_result_total_tokens(res), 12);
  aiplat_llm_result_destroy(res);
}
END_TEST

static void *cancel_soon(void *arg) {
  usleep(250000);
  aiplat_llm_cancel(arg);
  return NULL;
}

START_TEST(cancel_stream_from_another_thread) {
  hf_response r = hf_resp(200, "text/event-stream",
                          CHUNK("a") CHUNK("b") CHUNK("c") CHUNK("d"));
  r.chunked = true;
  r.split_every = strlen(CHUNK("a"));
  r.piece_delay_ms = 100;
  r.hang_after_body = true;
  hf_push(srv, &r);
  pthread_t t;
  pthread_create(&t, NULL, cancel_soon, llm);
  deltas d = {"", 0, 0};
  aiplat_llm_result *res = NULL;
  int64_t t0 = now_ms();
  ck_assert_int_eq(aiplat_llm_stream(llm, req, on_delta, &d, &res),
                   AIPLAT_ERR_CANCELLED);
  int64_t took = now_ms() - t0;
  pthread_join(t, NULL);
  ck_assert_msg(took >= 200 && took < 8000, "took %lld ms", (long long)took);
  ck_assert_uint_ge(d.n, 1);
  ck_assert_uint_lt(d.n, 4);
  ck_assert_str_eq(aiplat_llm_result_text(res), d.text);
  aiplat_llm_result_destroy(res);
}
END_TEST

START_TEST(stream_idle_timeout) {
  hf_response r = hf_resp(200, "text/event-stream", CHUNK("slow"));
  r.chunked = true;
  r.hang_after_body = true;
  hf_push(srv, &r);
  ck_assert_int_eq(aiplat_llm_set_stream_idle_timeout_ms(llm, 300), AIPLAT_OK);
  aiplat_llm_result *res = NULL;
  int64_t t0 = now_ms();
  ck_assert_int_eq(aiplat_llm_stream(llm, req, NULL, NULL, &res),
                   AIPLAT_ERR_TIMEOUT);
  ck_assert(now_ms() - t0 < 8000);
  ck_assert_str_eq(aiplat_llm_result_text(res), "slow");
  aiplat_llm_result_destroy(res);
}
END_TEST

/* ---- config and health -------------------------------------------------- */

/* ---- asynchronous forms ----------------------------------------------------- */

typedef struct waitdone {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  aiplat_status st;
  char msg[512];
  aiplat_llm_result *res;
  pthread_t thread; /* where the completion ran */
  deltas d;
  bool try_blocking; /* call a blocking form from the completion */
  aiplat_status blocking_st;
} waitdone;

static bool on_async_delta(const char *t, size_t len, void *ud) {
  return on_delta(t, len, &((waitdone *)ud)->d);
}

static void on_async_done(aiplat_status st, const char *message, aiplat_llm_result *res,
                          void *ud) {
  waitdone *w = ud;
  if (w->try_blocking) {
    aiplat_llm_result *r2 = NULL;
    w->blocking_st = aiplat_llm_complete(llm, req, &r2);
    aiplat_llm_result_destroy(r2);
  }
  pthread_mutex_lock(&w->mu);
  w->st = st;
  snprintf(w->msg, sizeof w->msg, "%s", message);
  w->res = res;
  w->thread = pthread_self();
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void wait_done(waitdone *w) {
  pthread_mutex_lock(&w->mu);
  while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static waitdone *waitdone_new(void) {
  waitdone *w = calloc(1, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  return w;
}

static void waitdone_free(waitdone *w) {
  aiplat_llm_result_destroy(w->res);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

START_TEST(async_stream_and_complete) {
  hf_response r = hf_resp(200, "text/event-stream", good_stream);
  r.chunked = true;
  r.split_every = 7;
  hf_push(srv, &r);
  waitdone *w = waitdone_new();
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, NULL, on_async_delta, on_async_done, w),
                   AIPLAT_OK);
  wait_done(w);
  ck_assert_int_eq(w->st, AIPLAT_OK);
  ck_assert_str_eq(w->msg, "");
  ck_assert_str_eq(w->d.text, "Gr\xC3\xBC\xC3\x9F Gott \xE2\x82\xAC\xF0\x9F\x98\x80");
  ck_assert_str_eq(aiplat_llm_result_text(w->res), w->d.text);
  ck_assert_int_eq(aiplat_llm_result_total_tokens(w->res), 24);
  ck_assert(!pthread_equal(w->thread, pthread_self())); /* the loop thread */
  waitdone_free(w);
  /* The whole answer, asynchronously. */
  push(200, "application/json", completion);
  w = waitdone_new();
  ck_assert_int_eq(aiplat_llm_complete_async(llm, req, NULL, on_async_done, w), AIPLAT_OK);
  wait_done(w);
  ck_assert_int_eq(w->st, AIPLAT_OK);
  ck_assert_str_eq(aiplat_llm_result_text(w->res), "Hello there!");
  json_t *b = request_json(1);
  ck_assert(json_is_false(json_object_get(b, "stream")));
  json_decref(b);
  waitdone_free(w);
  /* Bad arguments are refused at once; nothing is called back. */
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, NULL, NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(async_faults_match_the_blocking_form) {
  static const struct {
    int status;
    const char *ctype, *body;
    aiplat_status st;
    const char *text;
  } cases[] = {
      {400, "application/json", "{\"object\":\"error\",\"message\":\"too long\",\"code\":400}",
       AIPLAT_ERR_BAD_REQUEST, "too long"},
      {401, "application/json", "{\"error\":{\"message\":\"bad key\"}}", AIPLAT_ERR_AUTH,
       "bad key"},
      {200, "text/event-stream", CHUNK("ok") "data: {not json\n\n", AIPLAT_ERR_DECODE,
       "not JSON"},
      {200, "text/event-stream", CHUNK("half"), AIPLAT_ERR_PROTOCOL, "without [DONE]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    push(cases[i].status, cases[i].ctype, cases[i].body);
    waitdone *w = waitdone_new();
    ck_assert_int_eq(aiplat_llm_stream_async(llm, req, NULL, NULL, on_async_done, w),
                     AIPLAT_OK);
    wait_done(w);
    ck_assert_msg(w->st == cases[i].st, "case %zu: %s", i, aiplat_status_str(w->st));
    ck_assert_msg(strstr(w->msg, cases[i].text) != NULL, "case %zu: %s", i, w->msg);
    waitdone_free(w);
  }
  /* A 503 is retried, then answered. */
  push(503, "application/json", "{\"error\":{\"message\":\"busy\"}}");
  hf_response r = hf_resp(200, "text/event-stream", good_stream);
  hf_push(srv, &r);
  waitdone *w = waitdone_new();
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, NULL, NULL, on_async_done, w), AIPLAT_OK);
  wait_done(w);
  ck_assert_int_eq(w->st, AIPLAT_OK);
  waitdone_free(w);
}
END_TEST

static void *cancel_later(void *arg) {
  usleep(200000);
  aiplat_call_cancel(arg);
  return NULL;
}

START_TEST(async_call_deadline_and_cancel) {
  /* A stream that would take 40 x 200 ms. */
  static char body[8192];
  body[0] = '\0';
  for (int i = 0; i < 40; i++) strcat(body, CHUNK("word "));
  strcat(body, "data: [DONE]\n\n");
  hf_response r = hf_resp(200, "text/event-stream", body);
  r.chunked = true;
  r.split_every = strlen(CHUNK("word "));
  r.piece_delay_ms = 200;
  hf_push(srv, &r);
  aiplat_call *call = NULL;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  ck_assert_int_eq(aiplat_call_set_timeout_ms(call, 0), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_call_set_timeout_ms(call, 500), AIPLAT_OK);
  waitdone *w = waitdone_new();
  int64_t t0 = now_ms();
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, call, on_async_delta, on_async_done, w),
                   AIPLAT_OK);
  wait_done(w);
  int64_t took = now_ms() - t0;
  ck_assert_int_eq(w->st, AIPLAT_ERR_TIMEOUT);
  ck_assert_msg(took >= 400 && took < 4000, "TIMEOUT after %lld ms", (long long)took);
  ck_assert_uint_gt(w->d.n, 0); /* it was mid-stream */
  ck_assert_uint_lt(w->d.n, 40);
  waitdone_free(w);
  aiplat_call_destroy(call);
  /* Cancelled from another thread. */
  hf_push(srv, &r);
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  w = waitdone_new();
  pthread_t t;
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, call, NULL, on_async_done, w), AIPLAT_OK);
  pthread_create(&t, NULL, cancel_later, call);
  wait_done(w);
  pthread_join(t, NULL);
  ck_assert_int_eq(w->st, AIPLAT_ERR_CANCELLED);
  ck_assert(aiplat_call_cancelled(call));
  waitdone_free(w);
  /* A cancelled call object stops the next call at once. */
  w = waitdone_new();
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, call, NULL, on_async_done, w), AIPLAT_OK);
  wait_done(w);
  ck_assert_int_eq(w->st, AIPLAT_ERR_CANCELLED);
  waitdone_free(w);
  aiplat_call_destroy(call);
  /* A deadline already past (Unix ms 1) times out without waiting. */
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  ck_assert_int_eq(aiplat_call_set_deadline_unix_ms(call, 1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_call_set_deadline_unix_ms(call, INT64_MAX), AIPLAT_OK);
  ck_assert_int_eq(aiplat_call_set_deadline_unix_ms(call, 1), AIPLAT_OK);
  hf_push(srv, &r);
  w = waitdone_new();
  t0 = now_ms();
  ck_assert_int_eq(aiplat_llm_stream_async(llm, req, call, NULL, on_async_done, w), AIPLAT_OK);
  wait_done(w);
  ck_assert_int_eq(w->st, AIPLAT_ERR_TIMEOUT);
  ck_assert(now_ms() - t0 < 2000);
  waitdone_free(w);
  aiplat_call_destroy(call);
}
END_TEST

START_TEST(blocking_call_from_a_completion_is_refused) {
  push(200, "application/json", completion);
  waitdone *w = waitdone_new();
  w->try_blocking = true;
  ck_assert_int_eq(aiplat_llm_complete_async(llm, req, NULL, on_async_done, w), AIPLAT_OK);
  wait_done(w);
  ck_assert_int_eq(w->st, AIPLAT_OK);
  ck_assert_int_eq(w->blocking_st, AIPLAT_ERR_INTERNAL);
  waitdone_free(w);
}
END_TEST

START_TEST(config_errors_name_the_variable) {
  static const struct {
    const char *name, *value, *text;
  } bad[] = {{"VLLM_URL", "localhost:8000", "VLLM_URL"},
             {"LLM_MAX_TOKENS", "0", "LLM_MAX_TOKENS"},
             {"LLM_TIMEOUT", "soon", "LLM_TIMEOUT"},
             {"LLM_TEMPERATURE", "9", "LLM_TEMPERATURE"},
             {"HTTP_MAX_RETRIES", "-2", "HTTP_MAX_RETRIES"},
             {"LLM_MODEL", "", "LLM_MODEL"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aiplat_config *c;
    ck_assert_int_eq(aiplat_config_create(&c), AIPLAT_OK);
    ck_assert_int_eq(aiplat_config_set(c, bad[i].name, bad[i].value),
                     AIPLAT_OK);
    aiplat_llm *l = (aiplat_llm *)1;
    ck_assert_int_eq(aiplat_llm_create(&l, c), AIPLAT_ERR_CONFIG);
    ck_assert_ptr_null(l);
    char tmsg[512];
    aiplat_error_last(tmsg, sizeof tmsg);
    ck_assert_msg(strstr(tmsg, bad[i].text), "%s: %s", bad[i].name, tmsg);
    aiplat_config_destroy(c);
  }
}
END_TEST

START_TEST(api_key_from_file_and_health) {
  char path[] = "/tmp/aiplat-llm-key-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "sk-from-file\n", 13), 13);
  close(fd);
  TH_SETENV("LLM_API_KEY_FILE", path);
  TH_SETENV("VLLM_URL", hf_url(srv));
  aiplat_llm *l;
  ck_assert_int_eq(aiplat_llm_create(&l, NULL), AIPLAT_OK);
  TH_UNSETENV("LLM_API_KEY_FILE");
  TH_UNSETENV("VLLM_URL");
  unlink(path);
  push(200, NULL, "");
  ck_assert_int_eq(aiplat_llm_health(l), AIPLAT_OK);
  const hf_request *r = hf_request_at(srv, 0);
  ck_assert_str_eq(r->path, "/health");
  ck_assert_str_eq(hf_header_get(r, "authorization"), "Bearer sk-from-file");
  aiplat_llm_destroy(l);
  /* Setters check their input. */
  ck_assert_int_eq(aiplat_llm_set_timeout_ms(llm, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_set_max_retries(llm, 101),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_set_url(llm, "nope"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_set_model(llm, ""), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_llm_set_url(NULL, "http://x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_llm_cancel(NULL);
  aiplat_llm_destroy(NULL);
  ck_assert_int_eq(aiplat_llm_complete(NULL, req, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("llm");
  TCase *tc = tcase_create("llm");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, complete_answer_and_request_body);
  tcase_add_test(tc, request_parameters);
  tcase_add_test(tc, error_shapes_map_to_status_and_message);
  tcase_add_test(tc, bad_answers);
  tcase_add_test(tc, stream_split_at_odd_offsets);
  tcase_add_test(tc, stream_without_text);
  tcase_add_test(tc, stream_event_type_with_nul);
  tcase_add_test(tc, stream_leading_blank_piece);
  tcase_add_test(tc, stream_callback_stops_promptly);
  tcase_add_test(tc, stream_error_events);
  tcase_add_test(tc, stream_end_without_done);
  tcase_add_test(tc, stream_without_text_is_an_empty_answer);
  tcase_add_test(tc, stream_retried_before_it_starts);
  tcase_add_test(tc, stream_server_ignores_stream_flag);
  tcase_add_test(tc, cancel_stream_from_another_thread);
  tcase_add_test(tc, stream_idle_timeout);
  tcase_add_test(tc, async_stream_and_complete);
  tcase_add_test(tc, async_faults_match_the_blocking_form);
  tcase_add_test(tc, async_call_deadline_and_cancel);
  tcase_add_test(tc, blocking_call_from_a_completion_is_refused);
  tcase_add_test(tc, config_errors_name_the_variable);
  tcase_add_test(tc, api_key_from_file_and_health);
  suite_add_tcase(s, tc);
  return s;
}
