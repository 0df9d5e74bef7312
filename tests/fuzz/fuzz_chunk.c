/* Chunking documents for ingestion (lib/chunk.c). Byte 0 sets the chunk
 * size (32..1052 bytes), byte 1 the overlap (below half of it); the rest
 * is the document. Chunks must lie inside the document in order, be
 * trimmed, fit the size, never cut a UTF-8 sequence of a UTF-8 document,
 * and together hold every non-blank byte. */
#include "chunk.h"
#include "config.h"
#include "fuzz_util.h"

static bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static bool cont(char c) {
  return ((unsigned char)c & 0xC0) == 0x80;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  size_t max = 32 + 4 * (size_t)fuzz_byte(&in);
  size_t overlap = fuzz_byte(&in) % (max / 2);
  const char *t = (const char *)in.p;
  size_t len = in.n;
  bool utf8 = fuzz_utf8_ok(t, len);
  aip_chunk *c = NULL;
  size_t n = aip_chunk_text(t ? t : "", len, max, overlap, &c);
  FUZZ_CHECK(n != (size_t)-1);
  unsigned char *covered = calloc(len ? len : 1, 1);
  if (!covered) abort();
  for (size_t i = 0; i < n; i++) {
    size_t a = c[i].offset, b = a + c[i].len;
    FUZZ_CHECK(c[i].len > 0 && c[i].len <= max && b <= len);
    FUZZ_CHECK(!blank(t[a]) && !blank(t[b - 1]));
    if (i) FUZZ_CHECK(a > c[i - 1].offset);
    if (utf8) FUZZ_CHECK(!cont(t[a]) && (b == len || !cont(t[b])));
    memset(covered + a, 1, c[i].len);
    char id[33], again[33];
    aip_chunk_id("src", t + a, c[i].len, id);
    aip_chunk_id("src", t + a, c[i].len, again);
    FUZZ_CHECK(strlen(id) == 32 && strcmp(id, again) == 0);
  }
  for (size_t i = 0; i < len; i++) FUZZ_CHECK(covered[i] || blank(t[i]));
  free(covered);
  free(c);
  return 0;
}
