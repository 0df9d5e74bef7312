/* The server-sent events parser (lib/sse.c). Byte 0 seeds where the
 * stream is cut into pieces, byte 1 picks the event size cap (low two
 * bits) and after how many events the consumer stops (the rest); the rest
 * is the stream. The events and the outcome must not depend on the cuts,
 * nor on a reset in between, and every event must be well-formed. */
#include "config.h"
#include "fuzz_util.h"
#include "internal.h"
#include "sse.h"

typedef struct seen {
  aip_buf log; /* every event, serialised */
  size_t events, stop_at;
} seen;

static bool on_event(const aip_sse_event *ev, void *ud) {
  seen *s = ud;
  FUZZ_CHECK(ev->type && ev->data && ev->id);
  FUZZ_CHECK(ev->type_len > 0 && ev->type[ev->type_len] == '\0');
  FUZZ_CHECK(!memchr(ev->type, '\r', ev->type_len) &&
             !memchr(ev->type, '\n', ev->type_len));
  FUZZ_CHECK(strpbrk(ev->id, "\r\n") == NULL);
  FUZZ_CHECK(ev->data[ev->data_len] == '\0');
  FUZZ_CHECK(memchr(ev->data, '\r', ev->data_len) == NULL);
  FUZZ_CHECK(ev->retry_ms >= -1);
  char head[64];
  snprintf(head, sizeof head, "|%zu|%ld|", ev->data_len, ev->retry_ms);
  if (!aip_buf_append(&s->log, ev->type, ev->type_len) ||
      !aip_buf_puts(&s->log, head) ||
      !aip_buf_append(&s->log, ev->data, ev->data_len) ||
      !aip_buf_putc(&s->log, '|') || !aip_buf_puts(&s->log, ev->id) ||
      !aip_buf_putc(&s->log, '\n'))
    abort();
  return !s->stop_at || ++s->events < s->stop_at;
}

/* Feed the pieces, then finish; the final status. */
static aip_sse_rc run(aip_sse *p, const fuzz_pieces *pc) {
  aip_sse_rc rc = AIP_SSE_OK;
  for (size_t i = 0; i < pc->n; i++) {
    aip_sse_rc r = aip_sse_feed(p, pc->p[i], pc->len[i]);
    if (rc == AIP_SSE_OK) rc = r;
    FUZZ_CHECK(r == rc); /* once failed, it stays so */
  }
  aip_sse_rc r = aip_sse_finish(p);
  FUZZ_CHECK(rc == AIP_SSE_OK || r == rc);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t caps[] = {0, 16, 64, 1024};
  fuzz_in in = {data, size};
  uint8_t seed = fuzz_byte(&in);
  uint8_t cfg = fuzz_byte(&in);
  size_t max = caps[cfg & 3];
  fuzz_pieces whole, cut;
  fuzz_split(&whole, in.p, in.n, 0);
  fuzz_split(&cut, in.p, in.n, seed);

  seen a = {.stop_at = cfg >> 2}, b = {.stop_at = cfg >> 2};
  aip_sse *pa = aip_sse_new(max, on_event, &a);
  aip_sse *pb = aip_sse_new(max, on_event, &b);
  if (!pa || !pb) abort();
  aip_sse_rc ra = run(pa, &whole);
  aip_sse_rc rb = run(pb, &cut);
  FUZZ_CHECK(ra == rb);
  FUZZ_CHECK(
      a.log.len == b.log.len &&
      (a.log.len == 0 || memcmp(a.log.data, b.log.data, a.log.len) == 0));
  FUZZ_CHECK(aip_sse_event_count(pa) == aip_sse_event_count(pb));

  /* A reset parser is a new parser. */
  aip_sse_reset(pb);
  aip_buf_reset(&b.log);
  b.events = 0;
  FUZZ_CHECK(run(pb, &whole) == ra);
  FUZZ_CHECK(
      a.log.len == b.log.len &&
      (a.log.len == 0 || memcmp(a.log.data, b.log.data, a.log.len) == 0));

  aip_sse_free(pa);
  aip_sse_free(pb);
  aip_buf_free(&a.log);
  aip_buf_free(&b.log);
  fuzz_pieces_free(&whole);
  fuzz_pieces_free(&cut);
  return 0;
}
