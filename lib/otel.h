/* OpenTelemetry traces (internal, not installed): spans, the sampler, a
 * batching processor and an OTLP/HTTP exporter on the execution core.
 *
 * Configured once per process from the standard OTEL_* environment
 * variables (lib/config_table.h). Without OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or with OTEL_SDK_DISABLED=true, or
 * OTEL_TRACES_EXPORTER=none) tracing is off: every function here returns
 * at once and aip_span_begin() returns NULL, which every other function
 * accepts. Design: docs/decisions/0022-opentelemetry-traces.md. */
#ifndef AIPLAT_OTEL_H
#define AIPLAT_OTEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "trace.h"

/* OTLP SpanKind values. */
typedef enum aip_span_kind {
  AIP_SPAN_INTERNAL = 1,
  AIP_SPAN_SERVER = 2,
  AIP_SPAN_CLIENT = 3,
  AIP_SPAN_PRODUCER = 4,
  AIP_SPAN_CONSUMER = 5
} aip_span_kind;

/* A span being recorded. Fields are the processor's and the exporter's;
 * everyone else uses the functions below. */
typedef struct aip_span {
  struct aip_span *next; /* in the processor's queue */
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];
  bool has_parent, remote_parent;
  uint8_t flags;
  uint8_t kind;
  uint8_t status_code; /* OTLP: 0 unset, 1 ok, 2 error */
  const char *status_msg; /* static text */
  char *name;
  int64_t start_unix_ns, end_unix_ns;
  int64_t start_mono_ns;
  aip_buf attrs; /* encoded KeyValue fields (Span.attributes) */
} aip_span;

/* True when spans are recorded and exported (reads the configuration on
 * first use). Cheap after the first call. */
bool aip_otel_enabled(void);

/* The sampler's decision for a trace that starts here (@parent NULL) or
 * continues a caller's (@parent parsed from its traceparent): the flags to
 * carry on (bit 0: sampled). Without tracing, sampled as before. */
uint8_t aip_otel_sample(const aip_trace *t, bool has_parent);

/* A span of @t itself (the request's own span: its span id and parent are
 * those of @t), e.g. the server span of a request. NULL when tracing is off
 * or @t is not sampled. @name is copied. */
aip_span *aip_span_begin_trace(const aip_trace *t, const char *name,
                               aip_span_kind kind);
/* A child span of the calling thread's current span (aip_otel_current),
 * NULL when there is none, tracing is off or the trace is not sampled. */
aip_span *aip_span_begin(const char *name, aip_span_kind kind);

void aip_span_set_str(aip_span *s, const char *key, const char *value);
void aip_span_set_int(aip_span *s, const char *key, int64_t value);
void aip_span_set_double(aip_span *s, const char *key, double value);
void aip_span_set_bool(aip_span *s, const char *key, bool value);
/* server.address / server.port / url.full (user information dropped) of
 * an http(s) URL. */
void aip_span_set_url(aip_span *s, const char *url);
/* AIPLAT_OK: status left unset. Otherwise status ERROR with the status's
 * name as the message and the attributes error.type and aiplat.status. */
void aip_span_set_status(aip_span *s, aiplat_status st);
/* The span's W3C traceparent (for an outgoing request), "" without one. */
void aip_span_traceparent(const aip_span *s, char *buf, size_t buflen);
/* Nanoseconds since the span began (0 for NULL). */
int64_t aip_span_elapsed_ns(const aip_span *s);
/* End the span and hand it to the batch processor (never blocks: when the
 * queue is full the span is dropped and counted). Accepts NULL. */
void aip_span_end(aip_span *s);

/* The calling thread's current span context, which new spans are children
 * of. The previous one is returned for aip_otel_restore. */
typedef struct aip_otel_ctx {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t flags;
  bool set;
} aip_otel_ctx;

aip_otel_ctx aip_otel_enter_trace(const aip_trace *t);
aip_otel_ctx aip_otel_enter(const aip_span *s); /* NULL: no change */
void aip_otel_restore(aip_otel_ctx prev);

/* Export what is queued and wait at most @timeout_ms (< 0: the export
 * timeout) for it to be sent. Not on the loop thread (returns at once). */
void aip_otel_flush(int64_t timeout_ms);
/* The process is shutting down and must be done by @deadline_ms (the
 * aip_now_ms() clock): every later flush, the library's final one
 * included, waits at most until then. */
void aip_otel_shutdown_by(int64_t deadline_ms);
/* The execution core is about to stop: stop the export in progress and its
 * timers (spans still queued are kept for a later loop). */
void aip_otel_detach(void);

/* Append the exporter's Prometheus series to @b (nothing when off). */
bool aip_otel_render_metrics(aip_buf *b);

/* Counters, for tests and the metrics. */
typedef struct aip_otel_stats {
  uint64_t exported;      /* spans the collector accepted */
  uint64_t dropped_queue; /* spans dropped: the queue was full */
  uint64_t dropped_export; /* spans dropped: export failed for good */
  uint64_t export_retries;
  size_t queued;
} aip_otel_stats;
void aip_otel_get_stats(aip_otel_stats *out);

/* ---- spans of the library's own steps -------------------------------------
 * Each returns NULL when there is nothing to record; the ends accept NULL. */

/* The server span of a request: @t is the request's trace (its span id is
 * the span's), @pattern the endpoint's subject, @subject the message's. */
aip_span *aip_otel_server_span(const aip_trace *t, const char *pattern,
                               const char *subject);
void aip_otel_server_end(aip_span *s, aiplat_status st, const char *request_id);
/* An HTTP client call of the current span (HTTP client conventions). */
aip_span *aip_otel_http_begin(const char *method, const char *url);
void aip_otel_http_end(aip_span *s, aiplat_status st, long http_status,
                       int attempts);
/* A NATS request the library makes (messaging conventions). */
aip_span *aip_otel_nats_begin(const char *operation, const char *subject);
/* A model call (GenAI conventions): "chat", "embeddings", "rerank". */
aip_span *aip_otel_genai_begin(const char *operation, const char *model,
                               const char *url);
/* Negative token counts, NULL strings and 0 times are left out. */
void aip_otel_genai_end(aip_span *s, aiplat_status st,
                        const char *response_model, int64_t input_tokens,
                        int64_t output_tokens, const char *finish_reason,
                        int64_t first_token_ns);
/* An internal step of the current span (e.g. "retrieve", "search"). */
aip_span *aip_otel_step_begin(const char *name);
/* Set the status and end. */
void aip_otel_end(aip_span *s, aiplat_status st);

/* ---- the exporter (otel_export.c) ----------------------------------------- */

/* Encode @n ended spans as an OTLP ExportTraceServiceRequest (protobuf)
 * into @out, with the resource attributes already encoded (KeyValue
 * fields). False without memory. */
bool aip_otlp_encode(aip_buf *out, const aip_buf *resource_attrs,
                     aip_span *const *spans, size_t n);
/* Append an OTLP KeyValue field (tag @field) with a string value. */
bool aip_otlp_kv_str(aip_buf *b, int field, const char *key, const char *v,
                     size_t vlen);
bool aip_otlp_kv_int(aip_buf *b, int field, const char *key, int64_t v);
bool aip_otlp_kv_double(aip_buf *b, int field, const char *key, double v);
bool aip_otlp_kv_bool(aip_buf *b, int field, const char *key, bool v);

#endif
