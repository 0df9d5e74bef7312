/* The message decoder: the first byte picks the type, the rest is decoded
 * as protobuf. A message that decodes must encode to its announced size,
 * decode again to the same bytes, and reach a fixed point through JSON. */
#include "fuzz_util.h"

static void check_json(aiplat_msg *m, aiplat_msg_type t) {
  char *json = NULL, *again = NULL;
  FUZZ_CHECK(aiplat_msg_to_json(m, &json) == AIPLAT_OK);
  aiplat_msg *j = NULL;
  /* Unknown fields do not survive JSON; the rest must parse back and
   * print the same. */
  FUZZ_CHECK(aiplat_msg_from_json(&j, t, json) == AIPLAT_OK);
  FUZZ_CHECK(aiplat_msg_to_json(j, &again) == AIPLAT_OK);
  FUZZ_CHECK(strcmp(json, again) == 0);
  char *text = NULL;
  FUZZ_CHECK(aiplat_msg_to_json_flags(
                 m, AIPLAT_MSG_JSON_PRETTY | AIPLAT_MSG_JSON_ELIDE_BYTES,
                 &text) == AIPLAT_OK);
  aiplat_free(text);
  aiplat_msg_destroy(j);
  aiplat_free(again);
  aiplat_free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  if (size < 1) return 0;
  aiplat_msg_type t = (aiplat_msg_type)(1 + data[0] % AIPLAT_MSG_SEGMENT);
  aiplat_msg *m = NULL;
  aiplat_status st = aiplat_msg_decode(&m, t, data + 1, size - 1);
  if (st != AIPLAT_OK) {
    FUZZ_CHECK(st == AIPLAT_ERR_DECODE || st == AIPLAT_ERR_TOO_LARGE);
    FUZZ_CHECK(m == NULL);
    return 0;
  }
  FUZZ_CHECK(aiplat_msg_get_type(m) == t);
  uint8_t *e1, *e2;
  size_t l1, l2, announced;
  FUZZ_CHECK(aiplat_msg_encode(m, &e1, &l1) == AIPLAT_OK);
  FUZZ_CHECK(aiplat_msg_encoded_size(m, &announced) == AIPLAT_OK);
  FUZZ_CHECK(announced == l1);
  aiplat_msg *d = NULL;
  FUZZ_CHECK(aiplat_msg_decode(&d, t, e1, l1) == AIPLAT_OK);
  FUZZ_CHECK(aiplat_msg_encode(d, &e2, &l2) == AIPLAT_OK);
  FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
  aiplat_msg *c = NULL;
  FUZZ_CHECK(aiplat_msg_copy(&c, m) == AIPLAT_OK);
  uint8_t *e3;
  size_t l3;
  FUZZ_CHECK(aiplat_msg_encode(c, &e3, &l3) == AIPLAT_OK);
  FUZZ_CHECK(l1 == l3 && memcmp(e1, e3, l1) == 0);
  check_json(d, t);
  aiplat_free(e1);
  aiplat_free(e2);
  aiplat_free(e3);
  aiplat_msg_destroy(c);
  aiplat_msg_destroy(d);
  aiplat_msg_destroy(m);
  return 0;
}
