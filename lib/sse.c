/* Incremental server-sent events parser (see sse.h). */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"

#define SSE_DEFAULT_MAX ((size_t)1 << 20)

struct aip_sse {
  aip_sse_fn fn;
  void *ud;
  size_t max;
  aip_buf line; /* a line that began in an earlier chunk */
  aip_buf data; /* the event's data lines, each followed by '\n' */
  aip_buf type; /* the event's `event:` field */
  aip_buf id;   /* the last event ID buffer (persists across events) */
  long retry;
  bool error_field; /* the event had a non-standard `error:` field */
  bool cr;          /* the last byte fed was a CR: skip one LF next */
  int bom;          /* bytes of a leading BOM matched so far; -1 when past */
  aip_sse_rc rc;
  size_t events;
};

static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

aip_sse *aip_sse_new(size_t max_event, aip_sse_fn fn, void *ud) {
  aip_sse *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->fn = fn;
  p->ud = ud;
  p->max = max_event ? max_event : SSE_DEFAULT_MAX;
  p->retry = -1;
  return p;
}

void aip_sse_free(aip_sse *p) {
  if (!p) return;
  aip_buf_free(&p->line);
  aip_buf_free(&p->data);
  aip_buf_free(&p->type);
  aip_buf_free(&p->id);
  free(p);
}

void aip_sse_reset(aip_sse *p) {
  aip_buf_reset(&p->line);
  aip_buf_reset(&p->data);
  aip_buf_reset(&p->type);
  aip_buf_reset(&p->id);
  p->retry = -1;
  p->error_field = false;
  p->cr = false;
  p->bom = 0;
  p->rc = AIP_SSE_OK;
  p->events = 0;
}

size_t aip_sse_event_count(const aip_sse *p) {
  return p->events;
}

static aip_sse_rc fail(aip_sse *p, aip_sse_rc rc) {
  p->rc = rc;
  return rc;
}

static aip_sse_rc dispatch(aip_sse *p) {
  if (p->data.len == 0) { /* nothing to dispatch: forget the type */
    aip_buf_reset(&p->type);
    p->error_field = false;
    return AIP_SSE_OK;
  }
  p->data.len--; /* the '\n' after the last data line */
  p->data.data[p->data.len] = '\0';
  const char *type =
      p->type.len ? p->type.data : (p->error_field ? "error" : "message");
  aip_sse_event ev = {
      .type = type,
      .type_len = p->type.len ? p->type.len : strlen(type),
      .data = p->data.data,
      .data_len = p->data.len,
      .id = p->id.data ? p->id.data : "",
      .retry_ms = p->retry,
  };
  p->events++;
  bool go_on = p->fn ? p->fn(&ev, p->ud) : true;
  aip_buf_reset(&p->data);
  aip_buf_reset(&p->type);
  p->retry = -1;
  p->error_field = false;
  return go_on ? AIP_SSE_OK : fail(p, AIP_SSE_STOPPED);
}

static bool field_is(const char *f, size_t n, const char *name) {
  return strlen(name) == n && memcmp(f, name, n) == 0;
}

static aip_sse_rc set_buf(aip_sse *p, aip_buf *b, const char *v, size_t n) {
  aip_buf_reset(b);
  if (!aip_buf_append(b, v, n)) return fail(p, AIP_SSE_NO_MEMORY);
  return AIP_SSE_OK;
}

static aip_sse_rc process_line(aip_sse *p, const char *s, size_t n) {
  if (n == 0) return dispatch(p);
  if (s[0] == ':') return AIP_SSE_OK; /* comment */
  const char *colon = memchr(s, ':', n);
  size_t flen = colon ? (size_t)(colon - s) : n;
  const char *v = colon ? colon + 1 : s + n;
  size_t vlen = colon ? n - flen - 1 : 0;
  if (vlen > 0 && v[0] == ' ') {
    v++;
    vlen--;
  }
  bool is_error = field_is(s, flen, "error");
  if (field_is(s, flen, "data") || is_error) {
    if (p->data.len + p->type.len + vlen + 1 > p->max)
      return fail(p, AIP_SSE_TOO_LARGE);
    if (!aip_buf_append(&p->data, v, vlen) || !aip_buf_putc(&p->data, '\n'))
      return fail(p, AIP_SSE_NO_MEMORY);
    if (is_error) p->error_field = true;
  } else if (field_is(s, flen, "event")) {
    if (p->data.len + vlen > p->max) return fail(p, AIP_SSE_TOO_LARGE);
    return set_buf(p, &p->type, v, vlen);
  } else if (field_is(s, flen, "id")) {
    if (!memchr(v, '\0', vlen)) return set_buf(p, &p->id, v, vlen);
  } else if (field_is(s, flen, "retry")) {
    long ms = 0;
    size_t i = 0;
    for (; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
      if (ms < 100000000L) ms = ms * 10 + (v[i] - '0');
    if (i == vlen && vlen > 0) p->retry = ms;
  } /* other fields are ignored */
  return AIP_SSE_OK;
}

/* Where the next CR or LF is in [s, s + n), or NULL. memchr is much faster
 * than a byte loop; servers end lines in LF, so the CR search is short. */
static const unsigned char *find_eol(const unsigned char *s, size_t n) {
  const unsigned char *lf = memchr(s, '\n', n);
  size_t upto = lf ? (size_t)(lf - s) : n;
  const unsigned char *cr = memchr(s, '\r', upto);
  return cr ? cr : lf;
}

static aip_sse_rc feed_bytes(aip_sse *p, const unsigned char *b, size_t len) {
  size_t i = 0;
  if (p->cr && len > 0) {
    if (b[0] == '\n') i = 1;
    p->cr = false;
  }
  while (i < len) {
    const unsigned char *eol = find_eol(b + i, len - i);
    if (!eol) { /* the line goes on in the next chunk */
      size_t n = len - i;
      if (p->line.len + n + p->data.len > p->max)
        return fail(p, AIP_SSE_TOO_LARGE);
      if (!aip_buf_append(&p->line, b + i, n))
        return fail(p, AIP_SSE_NO_MEMORY);
      return AIP_SSE_OK;
    }
    size_t j = (size_t)(eol - b);
    aip_sse_rc rc;
    if (p->line.len) {
      if (p->line.len + (j - i) + p->data.len > p->max)
        return fail(p, AIP_SSE_TOO_LARGE);
      if (!aip_buf_append(&p->line, b + i, j - i))
        return fail(p, AIP_SSE_NO_MEMORY);
      rc = process_line(p, p->line.data, p->line.len);
      aip_buf_reset(&p->line);
    } else {
      if ((j - i) + p->data.len > p->max) return fail(p, AIP_SSE_TOO_LARGE);
      rc = process_line(p, (const char *)b + i, j - i);
    }
    if (b[j] == '\r') {
      if (j + 1 < len) {
        if (b[j + 1] == '\n') j++;
      } else {
        p->cr = true;
      }
    }
    i = j + 1;
    if (rc != AIP_SSE_OK) return rc;
  }
  return AIP_SSE_OK;
}

/* The start of the stream matched a BOM's first bytes but no more: those
 * bytes begin the first line (they hold no line break). */
static aip_sse_rc replay_bom(aip_sse *p) {
  size_t matched = p->bom > 0 ? (size_t)p->bom : 0;
  p->bom = -1;
  if (matched == 0) return AIP_SSE_OK;
  if (matched > p->max) return fail(p, AIP_SSE_TOO_LARGE);
  if (!aip_buf_append(&p->line, bom_bytes, matched))
    return fail(p, AIP_SSE_NO_MEMORY);
  return AIP_SSE_OK;
}

aip_sse_rc aip_sse_feed(aip_sse *p, const void *buf, size_t len) {
  if (p->rc != AIP_SSE_OK) return p->rc;
  const unsigned char *b = buf;
  size_t i = 0;
  while (p->bom >= 0 && i < len) {
    if (b[i] == bom_bytes[p->bom]) {
      i++;
      if (++p->bom == 3) p->bom = -1;
      continue;
    }
    aip_sse_rc rc = replay_bom(p); /* not a BOM after all: input */
    if (rc != AIP_SSE_OK) return rc;
  }
  return feed_bytes(p, b + i, len - i);
}

aip_sse_rc aip_sse_finish(aip_sse *p) {
  if (p->rc != AIP_SSE_OK) return p->rc;
  aip_sse_rc rc = replay_bom(p);
  if (rc != AIP_SSE_OK) return rc;
  if (p->line.len) {
    rc = process_line(p, p->line.data, p->line.len);
    aip_buf_reset(&p->line);
    if (rc != AIP_SSE_OK) return rc;
  }
  p->cr = false;
  return dispatch(p);
}
