/* Prompt context from retrieved passages, and markdown titles; see
 * rag_internal.h and docs/decisions/0015-rag.md. */
#include "config.h"
/* config.h first: its feature macros must precede every system header */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag_internal.h"
#include "utf8.h"

static const char ELLIPSIS[] = "\xe2\x80\xa6"; /* U+2026 */
#define ELLIPSIS_LEN 3u

static bool is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/* Append @s with every run of whitespace and control bytes turned into one
 * space, leading and trailing ones dropped, at most @max bytes, never
 * ending inside a UTF-8 sequence. */
static bool put_clean(aip_buf *b, const char *s, size_t max) {
  size_t start = b->len;
  bool space = false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (is_ws(*p) || *p < 0x20 || *p == 0x7f) {
      space = b->len > start;
      continue;
    }
    if (space) {
      if (b->len - start + 1 > max) break;
      if (!aip_buf_putc(b, ' ')) return false;
      space = false;
    }
    if (b->len - start + 1 > max) break;
    if (!aip_buf_putc(b, (char)*p)) return false;
  }
  /* A cut may have split a sequence: back off to its start. */
  size_t end = b->len;
  while (end > start && ((unsigned char)b->data[end - 1] & 0xC0) == 0x80) end--;
  if (end > start && (unsigned char)b->data[end - 1] >= 0xC0) {
    size_t seq = aip_utf8_seq_len((const unsigned char *)b->data + end - 1,
                                  b->len - (end - 1));
    if (seq == 0) b->len = end - 1;
  }
  while (b->len > start && b->data[b->len - 1] == ' ') b->len--;
  if (b->data) b->data[b->len] = '\0';
  return true;
}

/* Where to cut @s (@n bytes) to keep at most @avail bytes: just after the
 * last sentence end that leaves at least a third of the room used (*whole
 * = true), else at the last space leaving room for the ellipsis, else a
 * hard cut on a UTF-8 boundary. */
static size_t fit_cut(const char *s, size_t n, size_t avail, bool *sentence) {
  *sentence = false;
  size_t best = 0;
  for (size_t i = 0; i < n && i < avail; i++)
    if ((s[i] == '.' || s[i] == '!' || s[i] == '?') &&
        (i + 1 == n || s[i + 1] == ' '))
      best = i + 1;
  if (best && best >= avail / 3) {
    *sentence = true;
    return best;
  }
  if (avail <= ELLIPSIS_LEN) return 0;
  size_t room = avail - ELLIPSIS_LEN;
  if (room >= n) return n; /* cannot happen: the body did not fit */
  for (size_t i = room; i > 0; i--)
    if (s[i] == ' ') {
      if (i >= room / 3) return i;
      break;
    }
  size_t cut = room;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  return cut;
}

aiplat_status aip_rag_context_build(aip_err *err, const aip_rag_passage *p,
                                    size_t n, size_t budget, char **out,
                                    size_t *len) {
  *out = NULL;
  if (budget < AIP_RAG_MIN_CONTEXT || budget > AIP_RAG_MAX_CONTEXT)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "rag: context budget %zu is outside %u..%u", budget,
                    AIP_RAG_MIN_CONTEXT, AIP_RAG_MAX_CONTEXT);
  aip_buf ctx = {0}, head = {0}, body = {0};
  size_t included = 0;
  bool ok = aip_buf_reserve(&ctx, 1);
  for (size_t i = 0; ok && i < n; i++) {
    aip_buf_reset(&head);
    aip_buf_reset(&body);
    ok = aip_buf_printf(&head, "[%zu] ", included + 1);
    if (ok && p[i].source && p[i].source[0]) {
      size_t before = head.len;
      ok = aip_buf_puts(&head, "(source: ") &&
           put_clean(&head, p[i].source, AIP_RAG_SOURCE_SHOWN);
      if (ok && head.len == before + 9) /* nothing printable */
        head.len = before;
      else if (ok)
        ok = aip_buf_puts(&head, ") ");
      if (ok) head.data[head.len] = '\0';
    }
    ok = ok && put_clean(&body, p[i].text ? p[i].text : "", SIZE_MAX);
    if (!ok) break;
    if (body.len == 0) continue; /* nothing to say */
    size_t sep = included ? 2 : 0;
    if (ctx.len + sep + head.len + body.len <= budget) {
      ok = (!sep || aip_buf_puts(&ctx, "\n\n")) &&
           aip_buf_append(&ctx, head.data, head.len) &&
           aip_buf_append(&ctx, body.data, body.len);
      included++;
      continue;
    }
    if (included || head.len >= budget) continue; /* drop it whole */
    /* Not even the best passage fits: cut it. */
    bool sentence;
    size_t cut = fit_cut(body.data, body.len, budget - head.len, &sentence);
    while (cut > 0 && body.data[cut - 1] == ' ') cut--;
    if (cut == 0) continue;
    ok = aip_buf_append(&ctx, head.data, head.len) &&
         aip_buf_append(&ctx, body.data, cut) &&
         (sentence || aip_buf_append(&ctx, ELLIPSIS, ELLIPSIS_LEN));
    included++;
  }
  aip_buf_free(&head);
  aip_buf_free(&body);
  if (!ok) {
    aip_buf_free(&ctx);
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "rag: out of memory");
  }
  if (len) *len = ctx.len;
  *out = aip_buf_steal(&ctx, NULL);
  return AIPLAT_OK;
}

char *aip_rag_markdown_title(const char *text, size_t len) {
  size_t i = 0;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) i = 3; /* BOM */
  for (int lines = 0; i < len && lines < 8; lines++) {
    size_t e = i;
    while (e < len && text[e] != '\n') e++;
    size_t s = i;
    while (s < e && (text[s] == ' ' || text[s] == '\t')) s++;
    i = e + 1;
    if (s == e || (s + 1 == e && text[s] == '\r')) {
      lines--; /* blank lines do not count */
      continue;
    }
    if (e - s < 2 || text[s] != '#' ||
        (text[s + 1] != ' ' && text[s + 1] != '\t'))
      return NULL; /* the first text is not a title */
    char *line = aip_strndup(text + s + 2, e - s - 2);
    if (!line) return NULL;
    aip_buf b = {0};
    bool ok = put_clean(&b, line, AIP_RAG_SOURCE_SHOWN);
    free(line);
    /* "# Title #" closing hashes are decoration. */
    while (ok && b.len && b.data[b.len - 1] == '#') b.len--;
    while (ok && b.len && b.data[b.len - 1] == ' ') b.len--;
    if (!ok || b.len == 0 || !aip_utf8_valid(b.data, b.len)) {
      aip_buf_free(&b);
      return NULL;
    }
    b.data[b.len] = '\0';
    return aip_buf_steal(&b, NULL);
  }
  return NULL;
}
