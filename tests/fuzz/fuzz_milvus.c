/* Milvus's answers (lib/vstore_milvus.c). Byte 0 picks the operation whose
 * answer is read (the envelope alone, has, describe, upsert, delete,
 * count, list ids, search); byte 1 is its size parameter (1..16: the
 * records upserted, the ids allowed, the hits wanted) and, in its top two
 * bits, the attempt; the rest is the body. What comes out must keep the
 * interface's promises: hits best first and at most the limit, ids at most
 * the maximum, a status only with a message. */
#include <math.h>

#include "config.h"
#include "fuzz_util.h"
#include "vstore_milvus.h"

static void check_hits(json_t *root, size_t limit) {
  aip_vhit *hits = NULL;
  size_t n = 0;
  if (aip_milvus_read_hits(NULL, root, limit, &hits, &n) != AIPLAT_OK) return;
  FUZZ_CHECK(n <= limit && (n == 0) == (hits == NULL));
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(hits[i].id && hits[i].text && hits[i].source &&
               hits[i].metadata);
    FUZZ_CHECK(!isnan(hits[i].score));
    if (i) FUZZ_CHECK(hits[i - 1].score >= hits[i].score);
  }
  free(hits);
}

static void check_ids(json_t *rows, size_t max) {
  char **ids = NULL;
  size_t n = 0;
  if (aip_milvus_read_ids(NULL, rows, max, &ids, &n) != AIPLAT_OK) return;
  FUZZ_CHECK(n <= max && (n == 0) == (ids == NULL));
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(ids[i] && strlen(ids[i]) < SIZE_MAX);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  uint8_t op = fuzz_byte(&in), param = fuzz_byte(&in);
  size_t k = 1 + (param & 15);
  int attempt = param >> 6;
  json_t *root = NULL;
  long code = -2;
  char msg[64];
  aiplat_status st =
      aip_milvus_answer(NULL, "fuzz", 200, (const char *)in.p, in.n, attempt,
                        &root, &code, msg, sizeof msg);
  if (st != AIPLAT_OK) {
    FUZZ_CHECK(!root && code != 0 && strnlen(msg, sizeof msg) < sizeof msg);
    char detail[AIP_ERRMSG_MAX];
    FUZZ_CHECK(aiplat_error_last(detail, sizeof detail) == st);
    FUZZ_CHECK(detail[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(root && code == 0);
  json_t *rows = json_object_get(root, "data");
  bool has = false, loaded = false;
  uint32_t dim = 0;
  uint64_t count = 0;
  switch (op % 8) {
    case 1:
      (void)aip_milvus_read_has(NULL, root, &has);
      break;
    case 2:
      if (aip_milvus_read_schema(NULL, "fuzz", root, &dim, &loaded) ==
          AIPLAT_OK)
        FUZZ_CHECK(dim > 0);
      break;
    case 3:
      (void)aip_milvus_read_upsert(NULL, root, k);
      break;
    case 4:
      FUZZ_CHECK(aip_milvus_read_deleted(root) >= -1);
      break;
    case 5:
      if (json_is_array(rows)) (void)aip_milvus_read_count(NULL, rows, &count);
      break;
    case 6:
      if (json_is_array(rows)) check_ids(rows, k);
      break;
    case 7:
      check_hits(root, k);
      break;
    default:
      break;
  }
  json_decref(root);
  return 0;
}
