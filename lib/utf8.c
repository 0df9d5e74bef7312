/* UTF-8 validation; see utf8.h. */
#include "config.h"

#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t aip_utf8_decode(const unsigned char *s, size_t left, uint32_t *out) {
  unsigned char c = s[0];
  size_t n;
  uint32_t cp;
  if (c < 0x80) {
    *out = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (left < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  /* Overlong forms, UTF-16 surrogates and values past U+10FFFF. */
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  *out = cp;
  return n;
}

size_t aip_utf8_seq_len(const unsigned char *s, size_t left) {
  uint32_t cp;
  return aip_utf8_decode(s, left, &cp);
}

bool aip_utf8_check(const char *s, size_t len, size_t *bad) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    /* Most text is ASCII: skip it eight bytes at a time. */
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (w & UINT64_C(0x8080808080808080)) break;
      p += 8;
    }
    if (p == end) break;
    size_t n = aip_utf8_seq_len(p, (size_t)(end - p));
    if (n == 0) {
      if (bad) *bad = (size_t)(p - (const unsigned char *)s);
      return false;
    }
    p += n;
  }
  return true;
}

bool aip_utf8_valid(const char *s, size_t len) {
  return aip_utf8_check(s, len, NULL);
}
