/* W3C trace context (traceparent) for requests carried over NATS headers. */
#ifndef AIPLAT_TRACE_H
#define AIPLAT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIP_TRACE_ID_HEX 32
#define AIP_SPAN_ID_HEX 16
/* "00-" + 32 + "-" + 16 + "-" + 2 */
#define AIP_TRACEPARENT_LEN 55

typedef struct aip_trace {
  char trace_id[AIP_TRACE_ID_HEX + 1];
  char span_id[AIP_SPAN_ID_HEX + 1];        /* this hop's span */
  char parent_span_id[AIP_SPAN_ID_HEX + 1]; /* "" when the trace starts here */
  uint8_t flags;
} aip_trace;

/* Parse a traceparent header value (version 00, or a higher version read as
 * 00 per the spec's forward-compatibility rule). False when malformed or when
 * the ids are all zeros. */
bool aip_trace_parse(const char *header, aip_trace *out);
/* Continue @parent (may be NULL or invalid: start a new trace) with a new
 * span id. */
void aip_trace_continue(const char *parent_header, aip_trace *out);
/* Format as a traceparent value into buf (>= AIP_TRACEPARENT_LEN + 1). */
void aip_trace_format(const aip_trace *t, char *buf, size_t buflen);
/* Fill @n bytes with unpredictable-enough data for ids (a per-thread
 * generator seeded from getrandom(); not for secrets). */
void aip_random_bytes(void *buf, size_t n);

#endif
