/* The reranker client's answers (lib/reranker.c). Byte 0: the number of
 * documents (1..16); byte 1: top_n (0..16, 0: all); the rest is the body.
 * An accepted answer ranks distinct documents, best first, at most top_n. */
#include "config.h"
#include "fuzz_util.h"
#include "model_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  size_t count = 1 + fuzz_byte(&in) % 16;
  size_t top_n = fuzz_byte(&in) % 17;
  json_t *root = json_loadb((const char *)in.p, in.n, 0, NULL);
  if (!root) return 0;
  aiplat_reranker_result *r = NULL;
  aiplat_status st = aip_reranker_parse(NULL, root, count, top_n, &r);
  FUZZ_CHECK((st == AIPLAT_OK) == (r != NULL));
  if (r) {
    size_t n = aiplat_reranker_result_count(r);
    FUZZ_CHECK(n <= count && (!top_n || n <= top_n));
    bool seen[16] = {false};
    for (size_t i = 0; i < n; i++) {
      size_t k = aiplat_reranker_result_index(r, i);
      FUZZ_CHECK(k < count && !seen[k]);
      seen[k] = true;
      if (i)
        FUZZ_CHECK(aiplat_reranker_result_score(r, i - 1) >=
                   aiplat_reranker_result_score(r, i));
    }
    FUZZ_CHECK(aiplat_reranker_result_index(r, n) == SIZE_MAX);
  }
  aiplat_reranker_result_destroy(r);
  json_decref(root);
  return 0;
}
