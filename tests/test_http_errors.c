/* The server's own message from every error shape the supported model
 * servers send, and the status mapping. Bodies as those servers write them
 * (vLLM, llama.cpp, Ollama, text-embeddings-inference, Infinity, FastAPI /
 * speaches, whisper.cpp, proxies). */
#include <string.h>

#include "harness/testutil.h"
#include "http.h"

static const struct {
  const char *server, *body, *expect;
} shapes[] = {
    {"OpenAI / vLLM >= 0.6 nested",
     "{\"error\":{\"message\":\"The model `gpt-x` does not "
     "exist.\",\"type\":\"NotFoundError\","
     "\"param\":null,\"code\":404}}",
     "The model `gpt-x` does not exist."},
    {"vLLM flat ErrorResponse",
     "{\"object\":\"error\",\"message\":\"This model's maximum context length "
     "is 4096 tokens.\","
     "\"type\":\"BadRequestError\",\"param\":null,\"code\":400}",
     "This model's maximum context length is 4096 tokens."},
    {"llama.cpp server",
     "{\"error\":{\"code\":503,\"message\":\"Loading "
     "model\",\"type\":\"unavailable_error\"}}",
     "Loading model"},
    {"llama.cpp streamed error payload",
     "{\"code\":400,\"message\":\"the request exceeds the available context "
     "size\","
     "\"type\":\"exceed_context_size_error\"}",
     "the request exceeds the available context size"},
    {"Ollama native",
     "{\"error\":\"model \\\"llama3\\\" not found, try pulling it first\"}",
     "model \"llama3\" not found, try pulling it first"},
    {"Ollama OpenAI compat",
     "{\"error\":{\"message\":\"model is "
     "required\",\"type\":\"api_error\",\"param\":null,"
     "\"code\":null}}",
     "model is required"},
    {"text-embeddings-inference",
     "{\"error\":\"Input validation error: `inputs` must have less than 512 "
     "tokens\","
     "\"error_type\":\"Validation\"}",
     "Input validation error: `inputs` must have less than 512 tokens"},
    {"TEI OpenAI compat",
     "{\"message\":\"batch size 64 > maximum allowed batch size 32\","
     "\"code\":422,\"type\":\"Validation\"}",
     "batch size 64 > maximum allowed batch size 32"},
    {"FastAPI detail string", "{\"detail\":\"Not Found\"}", "Not Found"},
    {"FastAPI validation list",
     "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"model\"],\"msg\":"
     "\"Field "
     "required\",\"input\":null},{\"type\":\"string_type\",\"loc\":[\"body\","
     "\"input\",0],"
     "\"msg\":\"Input should be a valid string\"}]}",
     "body.model: Field required; body.input.0: Input should be a valid "
     "string"},
    {"FastAPI detail object", "{\"detail\":{\"message\":\"voice not found\"}}",
     "voice not found"},
    {"whisper.cpp server", "{\"error\":\"no 'file' field in the request\"}",
     "no 'file' field in the request"},
    {"JSON string root", "\"upstream connect error\"",
     "upstream connect error"},
    {"plain text", "  Internal Server Error\r\n", "Internal Server Error"},
    {"nginx HTML",
     "<html>\r\n<head><title>502 Bad "
     "Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
     "Bad "
     "Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</"
     "html>\r\n",
     "502 Bad Gateway"},
    {"HTML without title", "<p>Service <b>unavailable</b></p>",
     "Service unavailable"},
    {"control characters", "line one\n\tline\x01two", "line one line two"},
    {"errors list", "{\"errors\":[\"first\",{\"message\":\"second\"}]}",
     "first; second"},
    {"broken JSON shown as text", "{\"error\": {\"message\": \"cut",
     "{\"error\": {\"message\": \"cut"},
    {"unknown JSON shape shown as text", "{\"status\":\"fail\",\"n\":3}",
     "{\"status\":\"fail\",\"n\":3}"},
    {"error null, message set", "{\"error\":null,\"message\":\"m\"}", "m"},
};

START_TEST(every_shape) {
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    char out[256];
    bool ok = aip_http_error_text(shapes[i].body, strlen(shapes[i].body), out,
                                  sizeof out);
    ck_assert_msg(ok, "%s: nothing extracted", shapes[i].server);
    ck_assert_msg(strcmp(out, shapes[i].expect) == 0,
                  "%s: got \"%s\" expected \"%s\"", shapes[i].server, out,
                  shapes[i].expect);
  }
}
END_TEST

START_TEST(empty_and_blank) {
  char out[64] = "x";
  ck_assert(!aip_http_error_text(NULL, 0, out, sizeof out));
  ck_assert_str_eq(out, "");
  ck_assert(!aip_http_error_text("", 0, out, sizeof out));
  ck_assert(!aip_http_error_text(" \r\n\t", 4, out, sizeof out));
  ck_assert(!aip_http_error_text("{}", 2, out, sizeof out) ||
            strcmp(out, "{}") == 0);
  ck_assert(!aip_http_error_text("x", 1, out, 0));
}
END_TEST

START_TEST(cut_without_splitting_utf8) {
  /* 10 bytes of room: "ab" + three 3-byte euro signs would need 11. */
  const char *body = "{\"message\":\"ab\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\"}";
  char out[10];
  ck_assert(aip_http_error_text(body, strlen(body), out, sizeof out));
  ck_assert_str_eq(out, "ab\xE2\x82\xAC\xE2\x82\xAC");
  /* A long plain body is cut at the buffer. */
  char big[1000];
  memset(big, 'z', sizeof big);
  char small[33];
  ck_assert(aip_http_error_text(big, sizeof big, small, sizeof small));
  ck_assert_uint_eq(strlen(small), 32);
}
END_TEST

START_TEST(status_codes) {
  static const struct {
    long http;
    aiplat_status st;
  } map[] = {
      {200, AIPLAT_OK},
      {204, AIPLAT_OK},
      {400, AIPLAT_ERR_BAD_REQUEST},
      {401, AIPLAT_ERR_AUTH},
      {403, AIPLAT_ERR_AUTH},
      {404, AIPLAT_ERR_NOT_FOUND},
      {405, AIPLAT_ERR_BAD_REQUEST},
      {408, AIPLAT_ERR_TIMEOUT},
      {413, AIPLAT_ERR_TOO_LARGE},
      {422, AIPLAT_ERR_BAD_REQUEST},
      {429, AIPLAT_ERR_RATE_LIMITED},
      {500, AIPLAT_ERR_SERVER},
      {501, AIPLAT_ERR_SERVER},
      {502, AIPLAT_ERR_SERVER},
      {503, AIPLAT_ERR_UNAVAILABLE},
      {504, AIPLAT_ERR_SERVER},
      {302, AIPLAT_ERR_PROTOCOL},
      {0, AIPLAT_ERR_PROTOCOL},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    ck_assert_msg(aip_http_status_for(map[i].http) == map[i].st, "HTTP %ld",
                  map[i].http);
}
END_TEST

START_TEST(error_codes_inside_json) {
  json_t *j = json_loads("{\"error\":{\"message\":\"slow down\",\"code\":429}}",
                         0, NULL);
  ck_assert_int_eq(aip_http_error_code(j), 429);
  json_decref(j);
  j = json_loads("{\"object\":\"error\",\"message\":\"m\",\"code\":400}", 0,
                 NULL);
  ck_assert_int_eq(aip_http_error_code(j), 400);
  json_decref(j);
  j = json_loads("{\"error\":{\"message\":\"m\",\"code\":\"invalid_api_key\"}}",
                 0, NULL);
  ck_assert_int_eq(aip_http_error_code(j), 0);
  json_decref(j);
  j = json_loads("{\"error\":{\"code\":7}}", 0, NULL);
  ck_assert_int_eq(aip_http_error_code(j), 0);
  json_decref(j);
  ck_assert_int_eq(aip_http_error_code(NULL), 0);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("http_errors");
  TCase *tc = tcase_create("http_errors");
  tcase_add_test(tc, every_shape);
  tcase_add_test(tc, empty_and_blank);
  tcase_add_test(tc, cut_without_splitting_utf8);
  tcase_add_test(tc, status_codes);
  tcase_add_test(tc, error_codes_inside_json);
  suite_add_tcase(s, tc);
  return s;
}
