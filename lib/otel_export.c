/* OTLP protobuf encoding of finished spans (see otel.h).
 *
 * The few messages the exporter sends are written by hand: field numbers
 * are those of opentelemetry/proto/collector/trace/v1/trace_service.proto,
 * trace/v1/trace.proto, resource/v1/resource.proto and
 * common/v1/common.proto. Attributes are encoded when they are set, so a
 * batch is a concatenation of ready bytes. */
#include "config.h"

#include <string.h>

#include "otel.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static bool put_varint(aip_buf *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = (uint8_t)v;
  return aip_buf_append(b, tmp, n);
}

static bool put_tag(aip_buf *b, int field, int wt) {
  return put_varint(b, (uint64_t)field << 3 | (uint64_t)wt);
}

static bool put_bytes(aip_buf *b, int field, const void *p, size_t n) {
  return put_tag(b, field, WT_LEN) && put_varint(b, n) && aip_buf_append(b, p, n);
}

static bool put_fixed64(aip_buf *b, int field, uint64_t v) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
  return put_tag(b, field, WT_I64) && aip_buf_append(b, le, 8);
}

static bool put_fixed32(aip_buf *b, int field, uint32_t v) {
  uint8_t le[4];
  for (int i = 0; i < 4; i++) le[i] = (uint8_t)(v >> (8 * i));
  return put_tag(b, field, WT_I32) && aip_buf_append(b, le, 4);
}

/* KeyValue{1: key, 2: AnyValue{...}} as field @field, AnyValue's one field
 * written by @put_value of @vlen bytes (tag included). */
static bool kv_head(aip_buf *b, int field, const char *key, size_t any_len) {
  size_t klen = strlen(key);
  size_t kv_len = 1 + varint_len(klen) + klen + 1 + varint_len(any_len) + any_len;
  return put_tag(b, field, WT_LEN) && put_varint(b, kv_len) &&
         put_bytes(b, 1, key, klen) && put_tag(b, 2, WT_LEN) &&
         put_varint(b, any_len);
}

bool aip_otlp_kv_str(aip_buf *b, int field, const char *key, const char *v,
                     size_t vlen) {
  size_t any_len = 1 + varint_len(vlen) + vlen; /* string_value = 1 */
  return kv_head(b, field, key, any_len) && put_bytes(b, 1, v, vlen);
}

bool aip_otlp_kv_int(aip_buf *b, int field, const char *key, int64_t v) {
  size_t any_len = 1 + varint_len((uint64_t)v); /* int_value = 3 */
  return kv_head(b, field, key, any_len) && put_tag(b, 3, WT_VARINT) &&
         put_varint(b, (uint64_t)v);
}

bool aip_otlp_kv_double(aip_buf *b, int field, const char *key, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return kv_head(b, field, key, 9) && put_fixed64(b, 4, bits); /* double_value */
}

bool aip_otlp_kv_bool(aip_buf *b, int field, const char *key, bool v) {
  return kv_head(b, field, key, 2) && put_tag(b, 2, WT_VARINT) && /* bool_value */
         put_varint(b, v ? 1 : 0);
}

/* Span flags: the W3C trace flags, and whether the parent is remote. */
#define SPAN_FLAGS_HAS_IS_REMOTE 0x100u
#define SPAN_FLAGS_IS_REMOTE 0x200u

static bool encode_span(aip_buf *b, const aip_span *s) {
  bool ok = put_bytes(b, 1, s->trace_id, 16) && put_bytes(b, 2, s->span_id, 8);
  if (ok && s->has_parent) ok = put_bytes(b, 4, s->parent_id, 8);
  ok = ok && put_bytes(b, 5, s->name, strlen(s->name)) &&
       put_tag(b, 6, WT_VARINT) && put_varint(b, s->kind) &&
       put_fixed64(b, 7, (uint64_t)s->start_unix_ns) &&
       put_fixed64(b, 8, (uint64_t)s->end_unix_ns) &&
       aip_buf_append(b, s->attrs.data, s->attrs.len);
  if (ok && s->status_code) {
    size_t mlen = s->status_msg ? strlen(s->status_msg) : 0;
    size_t st_len = (mlen ? 1 + varint_len(mlen) + mlen : 0) + 2;
    ok = put_tag(b, 15, WT_LEN) && put_varint(b, st_len) &&
         (!mlen || put_bytes(b, 2, s->status_msg, mlen)) &&
         put_tag(b, 3, WT_VARINT) && put_varint(b, s->status_code);
  }
  uint32_t flags = s->flags | SPAN_FLAGS_HAS_IS_REMOTE;
  if (s->remote_parent) flags |= SPAN_FLAGS_IS_REMOTE;
  return ok && put_fixed32(b, 16, flags);
}

/* Wrap @inner as a length-delimited field @field of @out. */
static bool wrap(aip_buf *out, int field, const aip_buf *inner) {
  return put_bytes(out, field, inner->data, inner->len);
}

bool aip_otlp_encode(aip_buf *out, const aip_buf *resource_attrs,
                     aip_span *const *spans, size_t n) {
  aip_buf one = {0}, scope_spans = {0}, rs = {0};
  bool ok = true;
  /* ScopeSpans{1: InstrumentationScope{1: name, 2: version}, 2: Span...} */
  aip_buf scope = {0};
  const char *ver = aiplat_version_string();
  ok = put_bytes(&scope, 1, "libaiplat", 9) && put_bytes(&scope, 2, ver, strlen(ver)) &&
       wrap(&scope_spans, 1, &scope);
  for (size_t i = 0; ok && i < n; i++) {
    aip_buf_reset(&one);
    ok = encode_span(&one, spans[i]) && wrap(&scope_spans, 2, &one);
  }
  /* ResourceSpans{1: Resource{1: KeyValue...}, 2: ScopeSpans} */
  ok = ok && wrap(&rs, 1, resource_attrs) && wrap(&rs, 2, &scope_spans);
  /* ExportTraceServiceRequest{1: ResourceSpans} */
  ok = ok && wrap(out, 1, &rs);
  aip_buf_free(&scope);
  aip_buf_free(&one);
  aip_buf_free(&scope_spans);
  aip_buf_free(&rs);
  return ok;
}
