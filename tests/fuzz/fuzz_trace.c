/* W3C trace context (lib/trace.c): a traceparent header value, checked
 * against a reference written from the specification's rules (version 00
 * exactly 55 bytes; a higher version may go on after a '-'; lowercase hex
 * ids that are not all zeros; version ff invalid). What parses must format
 * to the same ids and flags as version 00, and continuing it keeps the
 * trace. */
#include "config.h"
#include "fuzz_util.h"
#include "trace.h"

static bool hex(const char *s, size_t n, bool nonzero) {
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
    any |= s[i] != '0';
  }
  return any || !nonzero;
}

static bool ref_parse(const char *h) {
  size_t n = strlen(h);
  if (n < 55 || !hex(h, 2, false) || memcmp(h, "ff", 2) == 0) return false;
  bool v00 = memcmp(h, "00", 2) == 0;
  if (v00 && n != 55) return false;
  if (!v00 && n > 55 && h[55] != '-') return false;
  return h[2] == '-' && h[35] == '-' && h[52] == '-' && hex(h + 3, 32, true) &&
         hex(h + 36, 16, true) && hex(h + 53, 2, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  char *h = fuzz_rest_str(&in);
  aip_trace t;
  memset(&t, 0xAA, sizeof t);
  bool ok = aip_trace_parse(h, &t);
  FUZZ_CHECK(ok == ref_parse(h));
  char buf[AIP_TRACEPARENT_LEN + 1];
  if (ok) {
    FUZZ_CHECK(strlen(t.trace_id) == 32 && strlen(t.span_id) == 16);
    FUZZ_CHECK(strcmp(t.span_id, t.parent_span_id) == 0);
    aip_trace_format(&t, buf, sizeof buf);
    FUZZ_CHECK(memcmp(buf, "00", 2) == 0 && memcmp(buf + 2, h + 2, 53) == 0);
    aip_trace again;
    FUZZ_CHECK(aip_trace_parse(buf, &again));
    FUZZ_CHECK(strcmp(again.trace_id, t.trace_id) == 0 &&
               strcmp(again.span_id, t.span_id) == 0 && again.flags == t.flags);
  }
  aip_trace c;
  aip_trace_continue(h, &c);
  FUZZ_CHECK(strlen(c.trace_id) == 32 && strlen(c.span_id) == 16);
  FUZZ_CHECK(hex(c.trace_id, 32, true) && hex(c.span_id, 16, true));
  if (ok) {
    FUZZ_CHECK(strcmp(c.trace_id, t.trace_id) == 0);
    FUZZ_CHECK(strcmp(c.parent_span_id, t.span_id) == 0);
  } else {
    FUZZ_CHECK(c.parent_span_id[0] == '\0');
  }
  aip_trace_format(&c, buf, sizeof buf);
  FUZZ_CHECK(strlen(buf) == AIP_TRACEPARENT_LEN && ref_parse(buf));
  char small[8];
  aip_trace_format(&c, small, sizeof small);
  FUZZ_CHECK(small[0] == '\0');
  free(h);
  return 0;
}
