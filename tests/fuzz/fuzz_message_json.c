/* The message JSON parser: the first byte picks the type, the rest is the
 * JSON text. A message that parses must print JSON that parses back to
 * the same message (a fixed point after one round) and survive the wire
 * format. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  aiplat_msg_type t =
      (aiplat_msg_type)(1 + fuzz_byte(&in) % AIPLAT_MSG_SEGMENT);
  char *text = fuzz_rest_str(&in);
  aiplat_msg *m = NULL;
  aiplat_status st = aiplat_msg_from_json(&m, t, text);
  free(text);
  if (st != AIPLAT_OK) {
    FUZZ_CHECK(st == AIPLAT_ERR_DECODE || st == AIPLAT_ERR_TOO_LARGE);
    FUZZ_CHECK(m == NULL);
    return 0;
  }
  char *j1 = NULL, *j2 = NULL, *j3 = NULL;
  FUZZ_CHECK(aiplat_msg_to_json(m, &j1) == AIPLAT_OK);
  aiplat_msg *m2 = NULL;
  FUZZ_CHECK(aiplat_msg_from_json(&m2, t, j1) == AIPLAT_OK);
  FUZZ_CHECK(aiplat_msg_to_json(m2, &j2) == AIPLAT_OK);
  FUZZ_CHECK(strcmp(j1, j2) == 0);
  uint8_t *e1, *e2;
  size_t l1, l2;
  FUZZ_CHECK(aiplat_msg_encode(m, &e1, &l1) == AIPLAT_OK);
  FUZZ_CHECK(aiplat_msg_encode(m2, &e2, &l2) == AIPLAT_OK);
  FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
  aiplat_msg *d = NULL;
  FUZZ_CHECK(aiplat_msg_decode(&d, t, e1, l1) == AIPLAT_OK);
  FUZZ_CHECK(aiplat_msg_to_json(d, &j3) == AIPLAT_OK);
  FUZZ_CHECK(strcmp(j1, j3) == 0);
  aiplat_msg_destroy(d);
  aiplat_free(e1);
  aiplat_free(e2);
  aiplat_free(j1);
  aiplat_free(j2);
  aiplat_free(j3);
  aiplat_msg_destroy(m2);
  aiplat_msg_destroy(m);
  return 0;
}
