/* The embeddings client's answers (lib/embeddings.c). Byte 0: the number
 * of inputs (1..8); byte 1: the expected dimension (0..7, 0: any); the
 * rest is the body. An accepted answer has one vector of the same
 * dimension for every input. */
#include "config.h"
#include "fuzz_util.h"
#include "model_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  size_t count = 1 + fuzz_byte(&in) % 8;
  size_t expected = fuzz_byte(&in) % 8;
  json_t *root = json_loadb((const char *)in.p, in.n, 0, NULL);
  if (!root) return 0;
  aiplat_embeddings_result *r = NULL;
  aiplat_status st = aip_embeddings_parse(NULL, root, count, expected, &r);
  FUZZ_CHECK((st == AIPLAT_OK) == (r != NULL));
  if (r) {
    FUZZ_CHECK(aiplat_embeddings_result_count(r) == count);
    size_t dim = aiplat_embeddings_result_dimension(r);
    FUZZ_CHECK(dim > 0 && (!expected || dim == expected));
    float sum = 0;
    for (size_t i = 0; i < count; i++) {
      const float *v = aiplat_embeddings_result_vector(r, i);
      FUZZ_CHECK(v);
      for (size_t k = 0; k < dim; k++) sum += v[k];
    }
    FUZZ_CHECK(aiplat_embeddings_result_vector(r, count) == NULL);
    FUZZ_CHECK(aiplat_embeddings_result_data(r) != NULL);
    (void)sum;
    (void)aiplat_embeddings_result_prompt_tokens(r);
  }
  aiplat_embeddings_result_destroy(r);
  json_decref(root);
  return 0;
}
