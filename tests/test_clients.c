/* The embeddings, reranker, speech-to-text and text-to-speech clients
 * against a loopback HTTP server answering in the wire formats of vLLM,
 * text-embeddings-inference, Infinity, speaches / faster-whisper-server,
 * whisper.cpp's server and OpenAI-compatible speech servers. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fakes/http_fake.h"
#include "harness/testutil.h"

static hf_server *srv;
static aiplat_config *cfg;
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
  static const char *const urls[] = {"EMBEDDINGS_URL", "RERANKER_URL",
                                     "STT_URL", "TTS_URL"};
  for (size_t i = 0; i < 4; i++)
    ck_assert_int_eq(aiplat_config_set(cfg, urls[i], hf_url(srv)), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_RETRY_BACKOFF", "10ms"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "EMBEDDINGS_MODEL", "bge-m3"),
                   AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_config_set(cfg, "RERANKER_MODEL", "bge-reranker-v2-m3"),
      AIPLAT_OK);
}

static void teardown(void) {
  aiplat_config_destroy(cfg);
  hf_stop(srv);
  aiplat_log_reset_level();
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

/* ---- embeddings --------------------------------------------------------- */

START_TEST(embeddings_in_input_order) {
  aiplat_embeddings *e;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  push(200, "application/json",
       "{\"object\":\"list\",\"id\":\"embd-1\",\"created\":1,\"model\":\"bge-"
       "m3\",\"data\":["
       "{\"object\":\"embedding\",\"index\":2,\"embedding\":[2.0,2.5,-2]},"
       "{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.0,0.5,0]},"
       "{\"object\":\"embedding\",\"index\":1,\"embedding\":[1,1.5,-1e-3]}],"
       "\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7,\"completion_"
       "tokens\":0}}");
  const char *texts[] = {"zero", "one", "two"};
  aiplat_embeddings_result *r = NULL;
  ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 3, &r), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_embeddings_result_count(r), 3);
  ck_assert_uint_eq(aiplat_embeddings_result_dimension(r), 3);
  for (size_t i = 0; i < 3; i++) {
    const float *v = aiplat_embeddings_result_vector(r, i);
    ck_assert_float_eq(v[0], (float)i);
    ck_assert_float_eq(v[1], (float)i + 0.5f);
  }
  ck_assert_float_eq(aiplat_embeddings_result_data(r)[8], -2.0f);
  ck_assert_ptr_null(aiplat_embeddings_result_vector(r, 3));
  ck_assert_int_eq(aiplat_embeddings_result_prompt_tokens(r), 7);
  aiplat_embeddings_result_destroy(r);
  json_t *b = request_json(0);
  ck_assert_str_eq(hf_request_at(srv, 0)->path, "/v1/embeddings");
  ck_assert_str_eq(json_string_value(json_object_get(b, "model")), "bge-m3");
  ck_assert_str_eq(json_string_value(json_object_get(b, "encoding_format")),
                   "float");
  ck_assert_str_eq(
      json_string_value(json_array_get(json_object_get(b, "input"), 2)), "two");
  json_decref(b);
  aiplat_embeddings_destroy(e);
}
END_TEST

/* Answers each batch with vectors [global position, input length], in
 * reverse order, the way a server may. */
static void embed_handler(const hf_request *req, hf_response *resp, void *ud) {
  size_t *first = ud;
  json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
  json_t *in = json_object_get(b, "input");
  json_t *data = json_array();
  for (size_t i = json_array_size(in); i-- > 0;)
    json_array_append_new(
        data, json_pack("{s:s,s:i,s:[f,f]}", "object", "embedding", "index",
                        (int)i, "embedding", (double)(*first + i),
                        (double)json_string_length(json_array_get(in, i))));
  *first += json_array_size(in);
  json_t *out = json_pack("{s:s,s:o,s:{s:i}}", "object", "list", "data", data,
                          "usage", "prompt_tokens", 2);
  static char text[4096];
  char *dump = json_dumps(out, JSON_COMPACT);
  snprintf(text, sizeof text, "%s", dump);
  free(dump);
  json_decref(out);
  json_decref(b);
  *resp = hf_resp(200, "application/json", text);
}

START_TEST(embeddings_batches) {
  ck_assert_int_eq(aiplat_config_set(cfg, "EMBEDDINGS_BATCH_SIZE", "2"),
                   AIPLAT_OK);
  aiplat_embeddings *e;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  size_t first = 0;
  hf_set_handler(srv, embed_handler, &first);
  const char *texts[] = {"a", "bb", "ccc", "dddd", "eeeee"};
  aiplat_embeddings_result *r = NULL;
  ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 5, &r), AIPLAT_OK);
  ck_assert_uint_eq(hf_request_count(srv), 3);
  for (size_t i = 0; i < 5; i++) {
    const float *v = aiplat_embeddings_result_vector(r, i);
    ck_assert_float_eq(v[0], (float)i);
    ck_assert_float_eq(v[1], (float)(i + 1));
  }
  ck_assert_int_eq(aiplat_embeddings_result_prompt_tokens(r), 6);
  aiplat_embeddings_result_destroy(r);
  ck_assert_int_eq(aiplat_embeddings_set_batch_size(e, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_embeddings_destroy(e);
}
END_TEST

START_TEST(embeddings_bad_vectors) {
  aiplat_embeddings *e;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  static const struct {
    const char *body;
    const char *text;
  } cases[] = {
      {"{\"data\":[{\"index\":0,\"embedding\":[1,2,3]},{\"index\":1,"
       "\"embedding\":[1,2]}]}",
       "different dimensions"},
      {"{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}",
       "1 vectors for 2 inputs"},
      {"{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":0,\"embedding\":["
       "2]}]}",
       "two vectors for input 0"},
      {"{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":5,\"embedding\":["
       "2]}]}",
       "not an input position"},
      {"{\"data\":[{\"index\":0,\"embedding\":[1,\"x\"]},{\"index\":1,"
       "\"embedding\":[1,2]}]}",
       "is not a number"},
      {"{\"data\":[{\"index\":0,\"embedding\":[]},{\"index\":1,\"embedding\":[]"
       "}]}",
       "empty vector"},
      {"{\"object\":\"list\"}", "no \"data\""},
  };
  const char *texts[] = {"a", "b"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    push(200, "application/json", cases[i].body);
    aiplat_embeddings_result *r = NULL;
    ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 2, &r),
                     AIPLAT_ERR_PROTOCOL);
    ck_assert_ptr_null(r);
    aiplat_embeddings_last_error(e, msg, sizeof msg);
    ck_assert_msg(strstr(msg, cases[i].text), "%s -> %s", cases[i].body, msg);
  }
  /* The expected dimension. */
  ck_assert_int_eq(aiplat_embeddings_set_expected_dimension(e, 4), AIPLAT_OK);
  push(200, "application/json",
       "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]},{\"index\":1,"
       "\"embedding\":[1,2,3]}]}");
  aiplat_embeddings_result *r = NULL;
  ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 2, &r),
                   AIPLAT_ERR_PROTOCOL);
  aiplat_embeddings_last_error(e, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "dimension 3"));
  ck_assert_ptr_nonnull(strstr(msg, "4 is expected"));
  /* base64 vectors (little-endian float32: 1.0, -2.0) are understood. */
  ck_assert_int_eq(aiplat_embeddings_set_expected_dimension(e, 2), AIPLAT_OK);
  push(200, "application/json",
       "{\"data\":[{\"index\":1,\"embedding\":\"AACAPwAAAMA=\"},{\"index\":0,"
       "\"embedding\":"
       "[3,4]}]}");
  ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 2, &r), AIPLAT_OK);
  ck_assert_float_eq(aiplat_embeddings_result_vector(r, 1)[0], 1.0f);
  ck_assert_float_eq(aiplat_embeddings_result_vector(r, 1)[1], -2.0f);
  ck_assert_float_eq(aiplat_embeddings_result_vector(r, 0)[1], 4.0f);
  aiplat_embeddings_result_destroy(r);
  /* A TEI validation error keeps its words. */
  push(413, "application/json",
       "{\"error\":\"batch size 64 > maximum allowed batch size "
       "32\",\"error_type\":\"Validation\"}");
  ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 2, &r),
                   AIPLAT_ERR_TOO_LARGE);
  aiplat_embeddings_last_error(e, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "maximum allowed batch size 32"));
  ck_assert_int_eq(aiplat_embeddings_embed(e, texts, 0, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  const char *bad[] = {"ok", "\xFF"};
  ck_assert_int_eq(aiplat_embeddings_embed(e, bad, 2, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_embeddings_destroy(e);
}
END_TEST

/* ---- reranker ----------------------------------------------------------- */

static const char *docs[] = {"Paris is in France.", "Berlin is in Germany.",
                             "Pizza.", "France's capital is Paris."};

START_TEST(rerank_cohere_shape) {
  ck_assert_int_eq(aiplat_config_set(cfg, "RERANKER_API", "cohere"), AIPLAT_OK);
  aiplat_reranker *rr;
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  push(200, "application/json",
       "{\"id\":\"rerank-1\",\"model\":\"bge-reranker-v2-m3\",\"usage\":{"
       "\"total_tokens\":30},"
       "\"results\":[{\"index\":2,\"document\":{\"text\":\"Pizza.\"},"
       "\"relevance_score\":0.01},"
       "{\"index\":3,\"relevance_score\":0.97},{\"index\":0,\"relevance_"
       "score\":0.93}]}");
  aiplat_reranker_result *r = NULL;
  ck_assert_int_eq(
      aiplat_reranker_rerank(rr, "capital of France?", docs, 4, 2, &r),
      AIPLAT_OK);
  ck_assert_uint_eq(aiplat_reranker_result_count(r), 2);
  ck_assert_uint_eq(aiplat_reranker_result_index(r, 0), 3);
  ck_assert_uint_eq(aiplat_reranker_result_index(r, 1), 0);
  ck_assert(aiplat_reranker_result_score(r, 0) > 0.96);
  ck_assert_uint_eq(aiplat_reranker_result_index(r, 2), SIZE_MAX);
  aiplat_reranker_result_destroy(r);
  ck_assert_str_eq(hf_request_at(srv, 0)->path, "/v1/rerank");
  json_t *b = request_json(0);
  ck_assert_str_eq(json_string_value(json_object_get(b, "model")),
                   "bge-reranker-v2-m3");
  ck_assert_str_eq(json_string_value(json_object_get(b, "query")),
                   "capital of France?");
  ck_assert_uint_eq(json_array_size(json_object_get(b, "documents")), 4);
  ck_assert_int_eq(json_integer_value(json_object_get(b, "top_n")), 2);
  ck_assert_ptr_null(json_object_get(b, "texts"));
  json_decref(b);
  aiplat_reranker_destroy(rr);
}
END_TEST

START_TEST(rerank_tei_shape) {
  aiplat_reranker *rr;
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_set_api(rr, AIPLAT_RERANKER_API_TEI),
                   AIPLAT_OK);
  push(200, "application/json",
       "[{\"index\":1,\"score\":0.002},{\"index\":3,\"score\":0.998},{"
       "\"index\":0,\"score\":0.95},"
       "{\"index\":2,\"score\":0.0001}]");
  aiplat_reranker_result *r = NULL;
  ck_assert_int_eq(
      aiplat_reranker_rerank(rr, "capital of France?", docs, 4, 0, &r),
      AIPLAT_OK);
  ck_assert_uint_eq(aiplat_reranker_result_count(r), 4);
  static const size_t order[] = {3, 0, 1, 2};
  for (size_t i = 0; i < 4; i++)
    ck_assert_uint_eq(aiplat_reranker_result_index(r, i), order[i]);
  aiplat_reranker_result_destroy(r);
  ck_assert_str_eq(hf_request_at(srv, 0)->path, "/rerank");
  json_t *b = request_json(0);
  ck_assert_uint_eq(json_array_size(json_object_get(b, "texts")), 4);
  ck_assert_ptr_null(json_object_get(b, "documents"));
  json_decref(b);
  /* Bad answers. */
  push(200, "application/json", "[{\"index\":9,\"score\":1}]");
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 4, 0, &r),
                   AIPLAT_ERR_PROTOCOL);
  push(200, "application/json",
       "[{\"index\":1,\"score\":1},{\"index\":1,\"score\":0.5}]");
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 4, 0, &r),
                   AIPLAT_ERR_PROTOCOL);
  push(200, "application/json", "[{\"index\":1}]");
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 4, 0, &r),
                   AIPLAT_ERR_PROTOCOL);
  push(200, "application/json", "{\"object\":\"rerank\"}");
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 4, 0, &r),
                   AIPLAT_ERR_PROTOCOL);
  ck_assert_ptr_null(r);
  aiplat_reranker_destroy(rr);
}
END_TEST

START_TEST(rerank_auto_detects_and_remembers) {
  aiplat_reranker *rr;
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_get_api(rr), AIPLAT_RERANKER_API_AUTO);
  /* text-embeddings-inference: no /v1/rerank. */
  push(404, "text/plain", "");
  push(200, "application/json",
       "[{\"index\":0,\"score\":0.5},{\"index\":1,\"score\":0.7}]");
  push(200, "application/json",
       "[{\"index\":0,\"score\":0.9},{\"index\":1,\"score\":0.1}]");
  aiplat_reranker_result *r = NULL;
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 2, 0, &r), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_reranker_result_index(r, 0), 1);
  aiplat_reranker_result_destroy(r);
  ck_assert_int_eq(aiplat_reranker_get_api(rr), AIPLAT_RERANKER_API_TEI);
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 2, 0, &r), AIPLAT_OK);
  aiplat_reranker_result_destroy(r);
  ck_assert_uint_eq(hf_request_count(srv),
                    3); /* the second call went straight to /rerank */
  ck_assert_str_eq(hf_request_at(srv, 2)->path, "/rerank");
  /* Infinity without the /v1 prefix: /rerank wants documents (422 on texts). */
  ck_assert_int_eq(aiplat_reranker_set_api(rr, AIPLAT_RERANKER_API_AUTO),
                   AIPLAT_OK);
  push(404, "application/json", "{\"detail\":\"Not Found\"}");
  push(422, "application/json",
       "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"documents\"],"
       "\"msg\":\"Field "
       "required\"}]}");
  push(200, "application/json",
       "{\"object\":\"rerank\",\"results\":[{\"relevance_score\":0.2,\"index\":"
       "0,\"document\":null},"
       "{\"relevance_score\":0.8,\"index\":1,\"document\":null}],\"model\":"
       "\"m\",\"usage\":{}}");
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 2, 0, &r), AIPLAT_OK);
  ck_assert_uint_eq(aiplat_reranker_result_index(r, 0), 1);
  aiplat_reranker_result_destroy(r);
  ck_assert_int_eq(aiplat_reranker_get_api(rr), AIPLAT_RERANKER_API_COHERE);
  json_t *b = request_json(5);
  ck_assert_str_eq(hf_request_at(srv, 5)->path, "/rerank");
  ck_assert_ptr_nonnull(json_object_get(b, "documents"));
  json_decref(b);
  /* Other failures are not taken for a missing route. */
  ck_assert_int_eq(aiplat_reranker_set_api(rr, AIPLAT_RERANKER_API_AUTO),
                   AIPLAT_OK);
  push(401, "application/json", "{\"error\":{\"message\":\"bad key\"}}");
  ck_assert_int_eq(aiplat_reranker_rerank(rr, "q", docs, 2, 0, &r),
                   AIPLAT_ERR_AUTH);
  ck_assert_uint_eq(hf_request_count(srv), 7);
  aiplat_reranker_destroy(rr);
}
END_TEST

START_TEST(reranker_needs_a_url) {
  aiplat_config *c;
  ck_assert_int_eq(aiplat_config_create(&c), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(c, "RERANKER_URL", NULL), AIPLAT_OK);
  unsetenv("RERANKER_URL");
  aiplat_reranker *rr = NULL;
  ck_assert_int_eq(aiplat_reranker_create(&rr, c), AIPLAT_ERR_CONFIG);
  aiplat_error_last(msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "RERANKER_URL is not set"));
  ck_assert_int_eq(aiplat_config_set(c, "RERANKER_URL", "http://r:1"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(c, "RERANKER_API", "jina"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_create(&rr, c), AIPLAT_ERR_CONFIG);
  aiplat_error_last(msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "RERANKER_API"));
  aiplat_config_destroy(c);
}
END_TEST

/* ---- speech to text ----------------------------------------------------- */

/* A small but real WAV: 16 kHz mono 16-bit, 0.1 s of a ramp. */
static unsigned char *make_wav(size_t *len) {
  size_t samples = 1600, data = samples * 2;
  *len = 44 + data;
  unsigned char *w = calloc(1, *len);
  memcpy(w, "RIFF", 4);
  uint32_t v = (uint32_t)(*len - 8);
  memcpy(w + 4, &v, 4);
  memcpy(w + 8, "WAVEfmt ", 8);
  v = 16;
  memcpy(w + 16, &v, 4);
  uint16_t s = 1;
  memcpy(w + 20, &s, 2); /* PCM */
  memcpy(w + 22, &s, 2); /* mono */
  v = 16000;
  memcpy(w + 24, &v, 4);
  v = 32000;
  memcpy(w + 28, &v, 4);
  s = 2;
  memcpy(w + 32, &s, 2);
  s = 16;
  memcpy(w + 34, &s, 2);
  memcpy(w + 36, "data", 4);
  v = (uint32_t)data;
  memcpy(w + 40, &v, 4);
  for (size_t i = 0; i < samples; i++) {
    int16_t x = (int16_t)((i * 37) % 65536 - 32768);
    memcpy(w + 44 + 2 * i, &x, 2);
  }
  w[44] = '\r'; /* bytes a multipart encoder must not touch */
  w[45] = '\n';
  w[46] = '-';
  w[47] = '-';
  return w;
}

START_TEST(stt_openai_multipart_exact) {
  ck_assert_int_eq(aiplat_config_set(cfg, "STT_LANGUAGE", "en"), AIPLAT_OK);
  aiplat_stt *s;
  ck_assert_int_eq(aiplat_stt_create(&s, cfg), AIPLAT_OK);
  size_t len;
  unsigned char *wav = make_wav(&len);
  push(200, "application/json", "{\"text\":\" Hello world. \"}");
  aiplat_stt_result *r = NULL;
  ck_assert_int_eq(
      aiplat_stt_transcribe(s, wav, len, "application/octet-stream", NULL, &r),
      AIPLAT_OK);
  ck_assert_str_eq(aiplat_stt_result_text(r), "Hello world.");
  ck_assert_ptr_null(aiplat_stt_result_language(r));
  ck_assert(aiplat_stt_result_duration(r) < 0);
  ck_assert_uint_eq(aiplat_stt_result_segment_count(r), 0);
  aiplat_stt_result_destroy(r);
  const hf_request *q = hf_request_at(srv, 0);
  ck_assert_str_eq(q->path, "/v1/audio/transcriptions");
  const hf_part *f = hf_part_get(q, "file");
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(f->filename, "audio.wav");
  ck_assert_str_eq(f->type, "audio/wav"); /* the RIFF header wins */
  ck_assert_uint_eq(f->len, len);
  ck_assert_int_eq(memcmp(f->data, wav, len), 0);
  ck_assert_str_eq(hf_part_get(q, "model")->data, "whisper-1");
  ck_assert_str_eq(hf_part_get(q, "language")->data, "en");
  ck_assert_str_eq(hf_part_get(q, "response_format")->data, "json");
  free(wav);
  aiplat_stt_destroy(s);
}
END_TEST

START_TEST(stt_verbose_json_and_text) {
  aiplat_stt *s;
  ck_assert_int_eq(aiplat_stt_create(&s, cfg), AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_stt_set_response_format(s, AIPLAT_STT_FORMAT_VERBOSE_JSON),
      AIPLAT_OK);
  push(200, "application/json",
       "{\"task\":\"transcribe\",\"language\":\"en\",\"duration\":3.5,\"text\":"
       "\"Hello world. "
       "Bye.\",\"words\":null,\"segments\":[{\"id\":0,\"seek\":0,\"start\":0.0,"
       "\"end\":1.8,"
       "\"text\":\" Hello "
       "world.\",\"tokens\":[50364,2425],\"temperature\":0.0,\"avg_logprob\":"
       "-0.2,\"compression_ratio\":0.9,\"no_speech_prob\":0.01},{\"id\":1,"
       "\"seek\":0,\"start\":"
       "1.8,\"end\":3.5,\"text\":\" Bye.\"}]}");
  const unsigned char mp3[] = {0xFF, 0xFB, 0x90, 0x64, 0x00, 0x00, 0x00, 0x00};
  aiplat_stt_result *r = NULL;
  ck_assert_int_eq(aiplat_stt_transcribe(s, mp3, sizeof mp3, NULL, "de", &r),
                   AIPLAT_OK);
  ck_assert_str_eq(aiplat_stt_result_language(r), "en");
  ck_assert(aiplat_stt_result_duration(r) > 3.4);
  ck_assert_uint_eq(aiplat_stt_result_segment_count(r), 2);
  ck_assert(aiplat_stt_result_segment_end(r, 0) > 1.7);
  ck_assert_str_eq(aiplat_stt_result_segment_text(r, 1), "Bye.");
  ck_assert_ptr_null(aiplat_stt_result_segment_text(r, 2));
  aiplat_stt_result_destroy(r);
  const hf_request *q = hf_request_at(srv, 0);
  ck_assert_str_eq(hf_part_get(q, "file")->type, "audio/mpeg");
  ck_assert_str_eq(hf_part_get(q, "file")->filename, "audio.mp3");
  ck_assert_str_eq(hf_part_get(q, "language")->data, "de");
  ck_assert_str_eq(hf_part_get(q, "response_format")->data, "verbose_json");
  /* text: the body is the transcript. */
  ck_assert_int_eq(aiplat_stt_set_response_format(s, AIPLAT_STT_FORMAT_TEXT),
                   AIPLAT_OK);
  push(200, "text/plain; charset=utf-8", "Guten Tag.\n");
  const unsigned char ogg[] = "OggS\0\2\0\0\0\0";
  ck_assert_int_eq(aiplat_stt_transcribe(s, ogg, sizeof ogg, NULL, NULL, &r),
                   AIPLAT_OK);
  ck_assert_str_eq(aiplat_stt_result_text(r), "Guten Tag.");
  aiplat_stt_result_destroy(r);
  ck_assert_str_eq(hf_part_get(hf_request_at(srv, 1), "file")->type,
                   "audio/ogg");
  /* Unknown bytes without a type are refused before sending. */
  const unsigned char junk[] = "not audio at all";
  ck_assert_int_eq(aiplat_stt_transcribe(s, junk, sizeof junk, NULL, NULL, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_stt_transcribe(s, junk, 0, "audio/wav", NULL, &r),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_stt_transcribe(s, junk, sizeof junk, "audio/webm", "e n", &r),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(hf_request_count(srv), 2);
  /* Errors keep the server's words; a 200 without text is a protocol error. */
  push(422, "application/json",
       "{\"detail\":[{\"loc\":[\"body\",\"file\"],\"msg\":\"Field "
       "required\",\"type\":\"missing\"}]}");
  ck_assert_int_eq(aiplat_stt_transcribe(s, ogg, sizeof ogg, NULL, NULL, &r),
                   AIPLAT_ERR_BAD_REQUEST);
  aiplat_stt_last_error(s, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "body.file: Field required"));
  ck_assert_int_eq(aiplat_stt_set_response_format(s, AIPLAT_STT_FORMAT_JSON),
                   AIPLAT_OK);
  push(200, "application/json", "{\"segments\":[]}");
  ck_assert_int_eq(aiplat_stt_transcribe(s, ogg, sizeof ogg, NULL, NULL, &r),
                   AIPLAT_ERR_PROTOCOL);
  push(200, "application/json", "{\"text\": \"trunc");
  ck_assert_int_eq(aiplat_stt_transcribe(s, ogg, sizeof ogg, NULL, NULL, &r),
                   AIPLAT_ERR_DECODE);
  aiplat_stt_destroy(s);
}
END_TEST

START_TEST(stt_whisper_cpp_inference) {
  ck_assert_int_eq(aiplat_config_set(cfg, "STT_API", "whispercpp"), AIPLAT_OK);
  aiplat_stt *s;
  ck_assert_int_eq(aiplat_stt_create(&s, cfg), AIPLAT_OK);
  size_t len;
  unsigned char *wav = make_wav(&len);
  push(200, "application/json",
       "{\"text\":\" And so my fellow Americans.\\n\"}");
  aiplat_stt_result *r = NULL;
  ck_assert_int_eq(aiplat_stt_transcribe(s, wav, len, NULL, NULL, &r),
                   AIPLAT_OK);
  ck_assert_str_eq(aiplat_stt_result_text(r), "And so my fellow Americans.");
  aiplat_stt_result_destroy(r);
  const hf_request *q = hf_request_at(srv, 0);
  ck_assert_str_eq(q->path, "/inference");
  ck_assert_ptr_null(hf_part_get(q, "model"));
  ck_assert_uint_eq(hf_part_get(q, "file")->len, len);
  ck_assert_int_eq(memcmp(hf_part_get(q, "file")->data, wav, len), 0);
  /* whisper.cpp's own error shape. */
  push(400, "application/json", "{\"error\":\"failed to read WAV file\"}");
  ck_assert_int_eq(aiplat_stt_transcribe(s, wav, len, NULL, NULL, &r),
                   AIPLAT_ERR_BAD_REQUEST);
  aiplat_stt_last_error(s, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "failed to read WAV file"));
  free(wav);
  aiplat_stt_destroy(s);
}
END_TEST

/* ---- text to speech ----------------------------------------------------- */

static unsigned char audio_bytes[20000];

static void fill_audio(void) {
  memcpy(audio_bytes, "RIFF", 4);
  for (size_t i = 4; i < sizeof audio_bytes; i++)
    audio_bytes[i] = (unsigned char)(i * 13 + i / 7);
  audio_bytes[100] = 0;
}

START_TEST(tts_collects_chunked_audio) {
  fill_audio();
  aiplat_tts *t;
  ck_assert_int_eq(aiplat_tts_create(&t, cfg), AIPLAT_OK);
  hf_response r = hf_resp(200, "audio/wav", (const char *)audio_bytes);
  r.body_len = sizeof audio_bytes;
  r.chunked = true;
  r.split_every = 3000;
  r.piece_delay_ms = 5;
  hf_push(srv, &r);
  void *audio = NULL;
  size_t len = 0;
  char *ctype = NULL;
  ck_assert_int_eq(
      aiplat_tts_synthesize(t, "Hallo Welt", NULL, &audio, &len, &ctype),
      AIPLAT_OK);
  ck_assert_uint_eq(len, sizeof audio_bytes);
  ck_assert_int_eq(memcmp(audio, audio_bytes, len), 0);
  ck_assert_str_eq(ctype, "audio/wav");
  aiplat_free(audio);
  aiplat_free(ctype);
  const hf_request *q = hf_request_at(srv, 0);
  ck_assert_str_eq(q->path, "/v1/audio/speech");
  json_t *b = request_json(0);
  ck_assert_str_eq(json_string_value(json_object_get(b, "model")), "tts-1");
  ck_assert_str_eq(json_string_value(json_object_get(b, "input")),
                   "Hallo Welt");
  ck_assert_str_eq(json_string_value(json_object_get(b, "voice")), "rms");
  ck_assert_str_eq(json_string_value(json_object_get(b, "response_format")),
                   "wav");
  ck_assert(json_number_value(json_object_get(b, "speed")) == 1.0);
  json_decref(b);
  /* Per call voice, client format and speed. */
  ck_assert_int_eq(aiplat_tts_set_format(t, "mp3"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_set_speed(t, 1.25), AIPLAT_OK);
  push(200, NULL, "ID3...");
  ck_assert_int_eq(aiplat_tts_synthesize(t, "x", "alloy", &audio, &len, &ctype),
                   AIPLAT_OK);
  ck_assert_str_eq(ctype, "audio/mp3"); /* no Content-Type: from the format */
  aiplat_free(audio);
  aiplat_free(ctype);
  b = request_json(1);
  ck_assert_str_eq(json_string_value(json_object_get(b, "voice")), "alloy");
  ck_assert_str_eq(json_string_value(json_object_get(b, "response_format")),
                   "mp3");
  ck_assert(json_number_value(json_object_get(b, "speed")) == 1.25);
  json_decref(b);
  ck_assert_int_eq(aiplat_tts_set_speed(t, 9), AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_tts_set_format(t, "../x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_tts_destroy(t);
}
END_TEST

typedef struct pieces {
  unsigned char got[sizeof audio_bytes];
  size_t len, calls, stop_after;
} pieces;

static bool on_piece(const void *d, size_t n, void *ud) {
  pieces *p = ud;
  ck_assert_uint_le(p->len + n, sizeof p->got);
  memcpy(p->got + p->len, d, n);
  p->len += n;
  p->calls++;
  return !(p->stop_after && p->calls >= p->stop_after);
}

START_TEST(tts_stream_delivers_pieces) {
  fill_audio();
  aiplat_tts *t;
  ck_assert_int_eq(aiplat_tts_create(&t, cfg), AIPLAT_OK);
  hf_response r = hf_resp(200, "audio/pcm", (const char *)audio_bytes);
  r.body_len = sizeof audio_bytes;
  r.chunked = true;
  r.split_every = 4000;
  r.piece_delay_ms = 30;
  hf_push(srv, &r);
  static pieces p;
  memset(&p, 0, sizeof p);
  char *ctype = NULL;
  ck_assert_int_eq(
      aiplat_tts_synthesize_stream(t, "Hallo", NULL, on_piece, &p, &ctype),
      AIPLAT_OK);
  ck_assert_uint_eq(p.len, sizeof audio_bytes);
  ck_assert_int_eq(memcmp(p.got, audio_bytes, p.len), 0);
  ck_assert_uint_ge(p.calls, 5); /* five pieces, 30 ms apart, arrive apart */
  ck_assert_str_eq(ctype, "audio/pcm");
  aiplat_free(ctype);
  /* Stop after the first piece. */
  hf_push(srv, &r);
  memset(&p, 0, sizeof p);
  p.stop_after = 1;
  ck_assert_int_eq(
      aiplat_tts_synthesize_stream(t, "Hallo", NULL, on_piece, &p, NULL),
      AIPLAT_ERR_CANCELLED);
  ck_assert_uint_eq(p.calls, 1);
  aiplat_tts_destroy(t);
}
END_TEST

static void *cancel_tts(void *arg) {
  usleep(200000);
  aiplat_tts_cancel(arg);
  return NULL;
}

START_TEST(tts_errors_and_cancel) {
  aiplat_tts *t;
  ck_assert_int_eq(aiplat_tts_create(&t, cfg), AIPLAT_OK);
  void *audio = (void *)1;
  size_t len = 1;
  char *ctype = NULL;
  push(200, "application/json",
       "{\"error\":{\"message\":\"voice 'x' not found\"}}");
  ck_assert_int_eq(aiplat_tts_synthesize(t, "hi", NULL, &audio, &len, &ctype),
                   AIPLAT_ERR_PROTOCOL);
  ck_assert_ptr_null(audio);
  ck_assert_uint_eq(len, 0);
  ck_assert_ptr_null(ctype);
  aiplat_tts_last_error(t, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "voice 'x' not found"));
  push(200, "audio/wav", "");
  ck_assert_int_eq(aiplat_tts_synthesize(t, "hi", NULL, &audio, &len, NULL),
                   AIPLAT_ERR_PROTOCOL);
  aiplat_tts_last_error(t, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "no audio"));
  push(400, "application/json", "{\"detail\":\"Input text is empty\"}");
  ck_assert_int_eq(aiplat_tts_synthesize(t, "hi", NULL, &audio, &len, NULL),
                   AIPLAT_ERR_BAD_REQUEST);
  ck_assert_int_eq(aiplat_tts_synthesize(t, "", NULL, &audio, &len, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(hf_request_count(srv), 3);
  /* Cancel a stream from another thread. */
  hf_response r = hf_resp(200, "audio/pcm", "0123456789");
  r.chunked = true;
  r.hang_after_body = true;
  hf_push(srv, &r);
  pthread_t th;
  pthread_create(&th, NULL, cancel_tts, t);
  static pieces p;
  memset(&p, 0, sizeof p);
  int64_t t0 = now_ms();
  ck_assert_int_eq(
      aiplat_tts_synthesize_stream(t, "long text", NULL, on_piece, &p, NULL),
      AIPLAT_ERR_CANCELLED);
  pthread_join(th, NULL);
  ck_assert(now_ms() - t0 < 8000);
  ck_assert_uint_eq(p.len, 10);
  aiplat_tts_destroy(t);
}
END_TEST

START_TEST(every_client_health) {
  aiplat_embeddings *e;
  aiplat_reranker *rr;
  aiplat_stt *s;
  aiplat_tts *t;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_create(&s, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_create(&t, cfg), AIPLAT_OK);
  for (int i = 0; i < 4; i++)
    push(200, "application/json", "{\"status\":\"ok\"}");
  ck_assert_int_eq(aiplat_embeddings_health(e), AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_health(rr), AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_health(s), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_health(t), AIPLAT_OK);
  push(503, "text/plain", "warming up");
  ck_assert_int_eq(aiplat_tts_health(t), AIPLAT_ERR_UNAVAILABLE);
  aiplat_tts_last_error(t, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "warming up"));
  aiplat_embeddings_destroy(e);
  aiplat_reranker_destroy(rr);
  aiplat_stt_destroy(s);
  aiplat_tts_destroy(t);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("clients");
  TCase *tc = tcase_create("clients");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, embeddings_in_input_order);
  tcase_add_test(tc, embeddings_batches);
  tcase_add_test(tc, embeddings_bad_vectors);
  tcase_add_test(tc, rerank_cohere_shape);
  tcase_add_test(tc, rerank_tei_shape);
  tcase_add_test(tc, rerank_auto_detects_and_remembers);
  tcase_add_test(tc, reranker_needs_a_url);
  tcase_add_test(tc, stt_openai_multipart_exact);
  tcase_add_test(tc, stt_verbose_json_and_text);
  tcase_add_test(tc, stt_whisper_cpp_inference);
  tcase_add_test(tc, tts_collects_chunked_audio);
  tcase_add_test(tc, tts_stream_delivers_pieces);
  tcase_add_test(tc, tts_errors_and_cancel);
  tcase_add_test(tc, every_client_health);
  suite_add_tcase(s, tc);
  return s;
}
