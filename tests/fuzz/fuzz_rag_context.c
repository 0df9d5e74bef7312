/* Prompt context from retrieved passages and markdown titles
 * (lib/rag_context.c). Byte 0 sets the budget (16..2056 bytes); the rest
 * holds passages separated by 0x1E, each "source 0x1F text" (or only
 * text). The context must fit the budget, hold no control characters but
 * the blank line between passages, and stay UTF-8 when the passages were;
 * a title is short, clean text. */
#include "config.h"
#include "fuzz_util.h"
#include "rag_internal.h"

static void check_clean(const char *s, size_t n, bool utf8, bool lines) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (lines && c == '\n') continue;
    FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  }
  if (utf8) FUZZ_CHECK(fuzz_utf8_ok(s, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  size_t budget = AIP_RAG_MIN_CONTEXT + 8 * (size_t)fuzz_byte(&in);
  char *all = fuzz_rest_str(&in);
  bool utf8 = fuzz_utf8_ok(all, strlen(all));

  char *title = aip_rag_markdown_title(all, strlen(all));
  if (title) {
    size_t n = strlen(title);
    FUZZ_CHECK(n > 0 && n <= AIP_RAG_SOURCE_SHOWN);
    check_clean(title, n, true, false);
    FUZZ_CHECK(title[0] != ' ' && title[n - 1] != ' ');
  }
  free(title);

  size_t cap = 1;
  for (const char *p = all; *p; p++) cap += *p == 0x1e;
  aip_rag_passage *ps = calloc(cap, sizeof *ps);
  if (!ps) abort();
  size_t n = 0;
  for (char *p = all;;) {
    char *end = strchr(p, 0x1e);
    if (end) *end = '\0';
    char *sep = strchr(p, 0x1f);
    if (sep) {
      *sep = '\0';
      ps[n++] = (aip_rag_passage){p, sep + 1};
    } else {
      ps[n++] = (aip_rag_passage){NULL, p};
    }
    if (!end) break;
    p = end + 1;
  }
  char *out = NULL;
  size_t len = 0;
  FUZZ_CHECK(aip_rag_context_build(NULL, ps, n, budget, &out, &len) ==
             AIPLAT_OK);
  FUZZ_CHECK(out && strlen(out) == len && len <= budget);
  check_clean(out, len, utf8, true);
  free(out);
  free(ps);
  free(all);
  return 0;
}
