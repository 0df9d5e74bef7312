/* libFuzzer target for the message decoder: the first byte picks the
 * type, the rest is decoded. A message that decodes must encode, decode
 * again to the same bytes, and convert to JSON and back.
 * Build and run: make fuzz-message && tests/fuzz/fuzz_message
 * -max_total_time=60 */
#include <aiplat/aiplat.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  aiplat_msg_type t = (aiplat_msg_type)(1 + data[0] % AIPLAT_MSG_SEGMENT);
  aiplat_msg *m = NULL;
  aiplat_status st = aiplat_msg_decode(&m, t, data + 1, size - 1);
  if (st != AIPLAT_OK) {
    if (st != AIPLAT_ERR_DECODE && st != AIPLAT_ERR_TOO_LARGE) abort();
    return 0;
  }
  uint8_t *e1, *e2;
  size_t l1, l2;
  if (aiplat_msg_encode(m, &e1, &l1) != AIPLAT_OK) abort();
  aiplat_msg *d = NULL;
  if (aiplat_msg_decode(&d, t, e1, l1) != AIPLAT_OK) abort();
  if (aiplat_msg_encode(d, &e2, &l2) != AIPLAT_OK) abort();
  if (l1 != l2 || memcmp(e1, e2, l1) != 0) abort();
  char *json;
  if (aiplat_msg_to_json(d, &json) != AIPLAT_OK) abort();
  aiplat_msg *j = NULL;
  /* Unknown fields do not survive JSON; the rest must parse back. */
  if (aiplat_msg_from_json(&j, t, json) != AIPLAT_OK) abort();
  aiplat_msg_destroy(j);
  aiplat_free(json);
  aiplat_free(e1);
  aiplat_free(e2);
  aiplat_msg_destroy(d);
  aiplat_msg_destroy(m);
  return 0;
}
