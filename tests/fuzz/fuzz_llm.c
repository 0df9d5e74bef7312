/* The LLM client's answers (lib/llm.c). Byte 0: bit 0 picks a streamed
 * answer (else a chat.completion body); byte 1 seeds where a stream is cut
 * into pieces; byte 2 is after how many pieces of text the token callback
 * stops the stream (0: never). The rest is the body. A stream must give
 * the same outcome whole and in pieces, and the text delivered to the
 * callback must be the result's text. */
#include "config.h"
#include "fuzz_util.h"
#include "model_parse.h"

typedef struct tokens {
  char *text;
  size_t len, calls, stop_at;
} tokens;

static bool on_token(const char *delta, size_t len, void *ud) {
  tokens *t = ud;
  FUZZ_CHECK(delta && len > 0);
  char *p = realloc(t->text, t->len + len + 1);
  if (!p) abort();
  memcpy(p + t->len, delta, len);
  t->text = p;
  t->len += len;
  return !t->stop_at || ++t->calls < t->stop_at;
}

static void check_result(const aiplat_llm_result *r) {
  const char *text = aiplat_llm_result_text(r);
  FUZZ_CHECK(text && strlen(text) == aiplat_llm_result_text_len(r));
  const char *fr = aiplat_llm_result_finish_reason(r);
  const char *model = aiplat_llm_result_model(r);
  if (fr) FUZZ_CHECK(strlen(fr) < SIZE_MAX);
  if (model) FUZZ_CHECK(strlen(model) < SIZE_MAX);
  (void)aiplat_llm_result_prompt_tokens(r);
  (void)aiplat_llm_result_completion_tokens(r);
  (void)aiplat_llm_result_total_tokens(r);
}

static void completion(const uint8_t *body, size_t len) {
  json_t *root = json_loadb((const char *)body, len, 0, NULL);
  if (!root) return; /* the HTTP layer refuses it before the client sees it */
  aiplat_llm_result *r = NULL;
  aiplat_status st = aip_llm_parse_completion(NULL, root, &r);
  FUZZ_CHECK((st == AIPLAT_OK) == (r != NULL));
  if (r) check_result(r);
  aiplat_llm_result_destroy(r);
  json_decref(root);
}

static aiplat_status stream(const fuzz_pieces *pc, uint8_t stop_at,
                            aiplat_llm_result **r) {
  tokens t = {.stop_at = stop_at};
  aiplat_status st =
      aip_llm_parse_stream(NULL, pc->p, pc->len, pc->n, on_token, &t, r);
  FUZZ_CHECK(*r != NULL);
  check_result(*r);
  FUZZ_CHECK(t.len == aiplat_llm_result_text_len(*r));
  FUZZ_CHECK(t.len == 0 ||
             memcmp(t.text, aiplat_llm_result_text(*r), t.len) == 0);
  if (st == AIPLAT_ERR_CANCELLED) FUZZ_CHECK(stop_at && t.calls == stop_at);
  free(t.text);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  uint8_t mode = fuzz_byte(&in), seed = fuzz_byte(&in), stop = fuzz_byte(&in);
  if (!(mode & 1)) {
    completion(in.p, in.n);
    return 0;
  }
  fuzz_pieces whole, cut;
  fuzz_split(&whole, in.p, in.n, 0);
  fuzz_split(&cut, in.p, in.n, seed);
  aiplat_llm_result *a = NULL, *b = NULL;
  aiplat_status sa = stream(&whole, stop, &a);
  aiplat_status sb = stream(&cut, stop, &b);
  FUZZ_CHECK(sa == sb);
  FUZZ_CHECK(aiplat_llm_result_text_len(a) == aiplat_llm_result_text_len(b));
  FUZZ_CHECK(memcmp(aiplat_llm_result_text(a), aiplat_llm_result_text(b),
                    aiplat_llm_result_text_len(a)) == 0);
  aiplat_llm_result_destroy(a);
  aiplat_llm_result_destroy(b);
  fuzz_pieces_free(&whole);
  fuzz_pieces_free(&cut);
  return 0;
}
