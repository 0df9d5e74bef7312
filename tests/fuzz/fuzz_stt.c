/* The speech-to-text client's answers (lib/stt.c). Byte 0 picks the
 * response format asked for; the rest is the body. */
#include "config.h"
#include "fuzz_util.h"
#include "model_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  aiplat_stt_format f = (aiplat_stt_format)(fuzz_byte(&in) % 3);
  aiplat_stt_result *r = NULL;
  aiplat_status st = aip_stt_parse(NULL, (const char *)in.p, in.n, f, &r);
  FUZZ_CHECK((st == AIPLAT_OK) == (r != NULL));
  if (r) {
    const char *text = aiplat_stt_result_text(r);
    FUZZ_CHECK(text);
    size_t len = strlen(text);
    /* trimmed (a NUL byte in a plain-text body ends the text early) */
    if (len && !memchr(in.p, '\0', in.n))
      FUZZ_CHECK(!strchr(" \r\n", text[0]) && !strchr(" \r\n", text[len - 1]));
    const char *lang = aiplat_stt_result_language(r);
    if (lang) FUZZ_CHECK(strlen(lang) < SIZE_MAX);
    (void)aiplat_stt_result_duration(r);
    size_t n = aiplat_stt_result_segment_count(r);
    for (size_t i = 0; i < n; i++) {
      FUZZ_CHECK(aiplat_stt_result_segment_text(r, i));
      (void)aiplat_stt_result_segment_start(r, i);
      (void)aiplat_stt_result_segment_end(r, i);
    }
    FUZZ_CHECK(aiplat_stt_result_segment_text(r, n) == NULL);
  }
  aiplat_stt_result_destroy(r);
  return 0;
}
