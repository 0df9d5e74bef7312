/* The text-to-speech client's answers (lib/tts.c). Byte 0: the
 * Content-Type (low two bits) and whether the audio goes to a callback
 * (bit 2); byte 1 seeds where the body is cut into pieces; the rest is
 * the body. Audio must come out exactly as it went in; a JSON answer is a
 * protocol error. */
#include "config.h"
#include "fuzz_util.h"
#include "model_parse.h"

typedef struct sink {
  unsigned char *data;
  size_t len;
} sink;

static bool on_chunk(const void *data, size_t len, void *ud) {
  sink *s = ud;
  unsigned char *p = realloc(s->data, s->len + len + 1);
  if (!p) abort();
  memcpy(p + s->len, data, len);
  s->data = p;
  s->len += len;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const types[] = {NULL, "audio/wav", "application/json",
                                      "Application/JSON; charset=utf-8"};
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  uint8_t mode = fuzz_byte(&in), seed = fuzz_byte(&in);
  const char *ct = types[mode & 3];
  bool json = (mode & 3) >= 2;
  bool streamed = mode & 4;
  fuzz_pieces pc;
  fuzz_split(&pc, in.p, in.n, seed);
  sink s = {0};
  void *audio = NULL;
  size_t len = 0;
  aiplat_status st =
      aip_tts_parse(NULL, ct, pc.p, pc.len, pc.n, streamed ? on_chunk : NULL,
                    &s, &audio, &len);
  if (json && in.n) {
    FUZZ_CHECK(st == AIPLAT_ERR_PROTOCOL && !audio && s.len == 0);
  } else if (in.n == 0) {
    FUZZ_CHECK(st == AIPLAT_ERR_PROTOCOL && !audio);
  } else {
    FUZZ_CHECK(st == AIPLAT_OK);
    const unsigned char *got = streamed ? s.data : audio;
    size_t got_len = streamed ? s.len : len;
    FUZZ_CHECK(got_len == in.n && memcmp(got, in.p, in.n) == 0);
    FUZZ_CHECK(streamed ? !audio : !s.data);
  }
  free(audio);
  free(s.data);
  fuzz_pieces_free(&pc);
  return 0;
}
