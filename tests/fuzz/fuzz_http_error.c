/* The server's message from an HTTP error body (lib/http_error.c). Byte 0
 * is the size of the caller's buffer (1..256); the rest is the body. The
 * message must fit the buffer, hold no control characters or doubled,
 * leading or trailing spaces, and be UTF-8 when the body was. */
#include "config.h"
#include "fuzz_util.h"
#include "http.h"

static void check_text(const char *out, size_t outlen, bool got, bool utf8) {
  size_t n = strnlen(out, outlen);
  FUZZ_CHECK(n < outlen);
  FUZZ_CHECK(got == (n > 0));
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)out[i];
    FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    if (c == ' ') FUZZ_CHECK(i > 0 && i + 1 < n && out[i + 1] != ' ');
  }
  if (utf8) FUZZ_CHECK(fuzz_utf8_ok(out, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  size_t outlen = 1 + (size_t)fuzz_byte(&in);
  const char *body = (const char *)in.p;
  bool utf8 = fuzz_utf8_ok(body, in.n);
  char *out = malloc(outlen); /* exact size: overruns are caught */
  if (!out) abort();
  check_text(out, outlen, aip_http_error_text(body, in.n, out, outlen), utf8);

  json_t *root = json_loadb(body, in.n, JSON_DECODE_ANY, NULL);
  if (root) {
    check_text(out, outlen, aip_http_error_json(root, out, outlen), true);
    long code = aip_http_error_code(root);
    FUZZ_CHECK(code == 0 || (code >= 400 && code <= 599));
    aiplat_status st = aip_http_status_for(code);
    FUZZ_CHECK(code == 0 ? st == AIPLAT_ERR_PROTOCOL : st != AIPLAT_OK);
    json_decref(root);
  }
  free(out);
  return 0;
}
