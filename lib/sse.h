/* Incremental parser of server-sent events (text/event-stream), internal.
 *
 * Follows the WHATWG "event stream interpretation" with two deliberate
 * tolerances (docs/decisions/0008-http-and-model-clients.md):
 *  - at end of input, a pending event is dispatched even without the final
 *    blank line (servers that close right after the last `data:` line);
 *  - a non-standard `error:` field (llama.cpp's server sends its streaming
 *    errors so) is kept like `data:` and marks the event type "error" unless
 *    an `event:` field names another type.
 *
 * Bytes may arrive split anywhere: inside a field name, a value, a UTF-8
 * sequence or between the CR and LF of a line break. Lines end in CRLF, LF
 * or CR. A UTF-8 byte order mark at the very start is skipped. Comment lines
 * (starting with ':') are ignored. One event (its data plus the line being
 * read) is capped at max_event bytes. The parser does not validate UTF-8;
 * the consumer decodes the data (the model clients parse it as JSON). */
#ifndef AIPLAT_SSE_H
#define AIPLAT_SSE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct aip_sse_event {
  const char *type; /* the `event:` field, or "message"; NUL-terminated */
  size_t type_len;  /* its length: a type may hold NUL bytes, compare it all */
  const char *data; /* data lines joined with '\n'; NUL-terminated */
  size_t data_len;
  const char *id; /* the last event ID seen so far (may be ""); persists */
  long retry_ms;  /* a valid `retry:` of this event, or -1 */
} aip_sse_event;

/* Called for each event; the event and its strings are borrowed for the
 * call only. Return true to go on, false to stop the parser. */
typedef bool (*aip_sse_fn)(const aip_sse_event *ev, void *ud);

typedef enum aip_sse_rc {
  AIP_SSE_OK = 0,
  AIP_SSE_STOPPED,   /* the callback returned false; the parser stays stopped */
  AIP_SSE_TOO_LARGE, /* an event is over max_event bytes; parser unusable */
  AIP_SSE_NO_MEMORY
} aip_sse_rc;

typedef struct aip_sse aip_sse;

/* A new parser; max_event 0 means 1 MiB. NULL on ENOMEM. */
aip_sse *aip_sse_new(size_t max_event, aip_sse_fn fn, void *ud);
void aip_sse_free(aip_sse *p);
/* Forget everything (including the last event ID) and start again. */
void aip_sse_reset(aip_sse *p);
/* Feed the next bytes. Events complete in them are dispatched before the
 * call returns. After a non-OK return further feeds return the same code. */
aip_sse_rc aip_sse_feed(aip_sse *p, const void *buf, size_t len);
/* End of input: finish a last line without a line break and dispatch a
 * pending event. */
aip_sse_rc aip_sse_finish(aip_sse *p);
/* Events dispatched so far. */
size_t aip_sse_event_count(const aip_sse *p);

#endif
