/* The wire side of messages: a strict walk over untrusted bytes before
 * protobuf-c sees them, then unpack and pack.
 *
 * protobuf-c 1.4.1 rejects most malformed input, but silently: one NULL for
 * every reason. It also accepts a few things other implementations refuse
 * (a bool with any wire type, strings that are not UTF-8, 10-byte varints
 * with overflow bits) and has no bound on the memory a small message may
 * expand to. The walk below gives each refusal a message naming the type,
 * the field and the byte offset, and estimates that memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "message_internal.h"

/* Bytes malloc adds to each block, and protobuf-c's scratch per field
 * occurrence (a 32-byte ScannedMember in slabs that double in size). */
#define MALLOC_OVERHEAD 16u
#define SCAN_COST 64u


/* ---- the walk ------------------------------------------------------------ */

typedef struct wctx {
  aip_err *err;
  const char *type_name;
  const uint8_t *base;
  const char *path[AIP_MSG_MAX_DEPTH + 1];
  int depth;
  uint64_t mem; /* estimated bytes protobuf-c keeps after unpacking */
  uint64_t budget;
} wctx;

static aiplat_status wfail(wctx *c, aiplat_status code, const uint8_t *at,
                           const char *fmt, ...) AIP_PRINTF(4, 5);

static aiplat_status wfail(wctx *c, aiplat_status code, const uint8_t *at,
                           const char *fmt, ...) {
  char what[256], path[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  size_t used = 0;
  path[0] = '\0';
  for (int i = 0; i < c->depth && used < sizeof path; i++) {
    int n = snprintf(path + used, sizeof path - used, "%s%s", i ? "." : "",
                     c->path[i]);
    if (n < 0) break;
    used += (size_t)n;
  }
  return aip_fail(c->err, code,
                  "message: cannot decode %s: %s%s%s%s at byte %zu",
                  c->type_name, c->depth ? "in " : "", path,
                  c->depth ? ": " : "", what, (size_t)(at - c->base));
}

/* A varint at p (at most 10 bytes, no bits beyond 64). Returns its length,
 * 0 when truncated, -1 when malformed. */
static int read_varint(const uint8_t *p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    if (p + i >= end) return 0;
    uint8_t b = p[i];
    if (i == 9 && b > 1) return -1;
    v |= (uint64_t)(b & 0x7F) << (7 * i);
    if (!(b & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  return -1;
}

static int wire_type_of(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
      return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return PROTOBUF_C_WIRE_TYPE_64BIT;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
      return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    default:
      return PROTOBUF_C_WIRE_TYPE_VARINT;
  }
}

static const char *wire_type_name(int wt) {
  static const char *const names[] = {"varint",           "64-bit",
                                      "length-delimited", "group start",
                                      "group end",        "32-bit"};
  return wt >= 0 && wt < 6 ? names[wt] : "invalid";
}

static uint64_t scalar_size(ProtobufCType t) {
  switch (wire_type_of(t)) {
    case PROTOBUF_C_WIRE_TYPE_32BIT:
      return 4;
    case PROTOBUF_C_WIRE_TYPE_64BIT:
      return 8;
    default:
      return t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_UINT64 ||
                     t == PROTOBUF_C_TYPE_SINT64
                 ? 8
                 : 4;
  }
}

/* A packed run of scalars: every element well formed. */
static aiplat_status check_packed(wctx *c, const ProtobufCFieldDescriptor *f,
                                  const uint8_t *p, const uint8_t *end) {
  uint64_t count = 0;
  int wt = wire_type_of(f->type);
  size_t len = (size_t)(end - p);
  if (wt == PROTOBUF_C_WIRE_TYPE_32BIT || wt == PROTOBUF_C_WIRE_TYPE_64BIT) {
    size_t sz = wt == PROTOBUF_C_WIRE_TYPE_32BIT ? 4 : 8;
    if (len % sz)
      return wfail(c, AIPLAT_ERR_DECODE, p,
                   "field '%s': packed length %zu is not a multiple of %zu",
                   f->name, len, sz);
    count = len / sz;
  } else {
    while (p < end) {
      uint64_t v;
      int n = read_varint(p, end, &v);
      if (n <= 0)
        return wfail(c, AIPLAT_ERR_DECODE, p,
                     "field '%s': malformed varint in a packed run", f->name);
      p += n;
      count++;
    }
  }
  c->mem += count * scalar_size(f->type);
  return AIPLAT_OK;
}

static aiplat_status walk(wctx *c, const ProtobufCMessageDescriptor *d,
                          const uint8_t *p, const uint8_t *end,
                          uint64_t *scratch);

static aiplat_status check_known(wctx *c, const ProtobufCFieldDescriptor *f,
                                 int wt, const uint8_t *at, const uint8_t *p,
                                 const uint8_t *end, uint64_t *child_scratch) {
  bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
  int want = wire_type_of(f->type);
  bool packed = repeated && want != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED &&
                wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
  if (wt != want && !packed)
    return wfail(c, AIPLAT_ERR_DECODE, at,
                 "field '%s' (number %u, %s) has wire type %d (%s), expected "
                 "%d (%s)",
                 f->name, f->id,
                 f->type == PROTOBUF_C_TYPE_MESSAGE  ? "message"
                 : f->type == PROTOBUF_C_TYPE_STRING ? "string"
                                                     : "scalar",
                 wt, wire_type_name(wt), want, wire_type_name(want));
  if (packed) return check_packed(c, f, p, end);
  size_t len = (size_t)(end - p);
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      size_t bad = 0;
      if (memchr(p, 0, len))
        return wfail(c, AIPLAT_ERR_DECODE, at,
                     "string field '%s' contains a NUL byte", f->name);
      if (!aip_utf8_check((const char *)p, len, &bad))
        return wfail(c, AIPLAT_ERR_DECODE, p + bad,
                     "string field '%s' is not valid UTF-8", f->name);
      c->mem += len + 1 + MALLOC_OVERHEAD + (repeated ? sizeof(char *) : 0);
      return AIPLAT_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
      c->mem +=
          len + MALLOC_OVERHEAD + (repeated ? sizeof(ProtobufCBinaryData) : 0);
      return AIPLAT_OK;
    case PROTOBUF_C_TYPE_MESSAGE: {
      if (c->depth >= AIP_MSG_MAX_DEPTH)
        return wfail(c, AIPLAT_ERR_DECODE, at, "nested deeper than %d levels",
                     AIP_MSG_MAX_DEPTH);
      c->path[c->depth++] = f->name;
      uint64_t scratch = 0;
      aiplat_status st = walk(c, f->descriptor, p, end, &scratch);
      c->depth--;
      if (st != AIPLAT_OK) return st;
      if (scratch > *child_scratch) *child_scratch = scratch;
      if (repeated) c->mem += sizeof(ProtobufCMessage *);
      return AIPLAT_OK;
    }
    default:
      if (repeated) c->mem += scalar_size(f->type);
      return AIPLAT_OK;
  }
}

/* Walk one message's fields in [p, end). *scratch receives the peak of
 * protobuf-c's temporary memory for it and its children. */
static aiplat_status walk(wctx *c, const ProtobufCMessageDescriptor *d,
                          const uint8_t *p, const uint8_t *end,
                          uint64_t *scratch) {
  uint64_t occurrences = 0, child_scratch = 0;
  c->mem += d->sizeof_message + MALLOC_OVERHEAD;
  while (p < end) {
    const uint8_t *at = p;
    uint64_t tag, v;
    int n = read_varint(p, end, &tag);
    if (n == 0) return wfail(c, AIPLAT_ERR_DECODE, at, "truncated field tag");
    if (n < 0 || n > 5 || tag > UINT32_MAX)
      return wfail(c, AIPLAT_ERR_DECODE, at, "malformed field tag");
    p += n;
    uint32_t num = (uint32_t)(tag >> 3);
    int wt = (int)(tag & 7);
    if (num == 0) return wfail(c, AIPLAT_ERR_DECODE, at, "field number 0");
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(d, num);
    const char *fname = f ? f->name : "(unknown)";
    const uint8_t *payload = p;
    switch (wt) {
      case PROTOBUF_C_WIRE_TYPE_VARINT:
        n = read_varint(p, end, &v);
        if (n == 0)
          return wfail(c, AIPLAT_ERR_DECODE, p,
                       "truncated varint of field %u '%s'", num, fname);
        if (n < 0)
          return wfail(c, AIPLAT_ERR_DECODE, p,
                       "malformed varint of field %u '%s'", num, fname);
        p += n;
        break;
      case PROTOBUF_C_WIRE_TYPE_64BIT:
      case PROTOBUF_C_WIRE_TYPE_32BIT: {
        size_t sz = wt == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
        if ((size_t)(end - p) < sz)
          return wfail(c, AIPLAT_ERR_DECODE, p,
                       "truncated %zu-byte value of field %u '%s'", sz, num,
                       fname);
        p += sz;
        break;
      }
      case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
        n = read_varint(p, end, &v);
        if (n == 0)
          return wfail(c, AIPLAT_ERR_DECODE, p,
                       "truncated length of field %u '%s'", num, fname);
        if (n < 0 || n > 5)
          return wfail(c, AIPLAT_ERR_DECODE, p,
                       "malformed length of field %u '%s'", num, fname);
        p += n;
        if (v > (uint64_t)(end - p))
          return wfail(c, AIPLAT_ERR_DECODE, at,
                       "field %u '%s' declares %llu bytes but %zu remain", num,
                       fname, (unsigned long long)v, (size_t)(end - p));
        payload = p;
        p += v;
        break;
      case 3:
      case 4:
        return wfail(c, AIPLAT_ERR_DECODE, at,
                     "field %u uses protobuf groups (wire type %d), which "
                     "proto3 does not have",
                     num, wt);
      default:
        return wfail(c, AIPLAT_ERR_DECODE, at,
                     "invalid wire type %d of field %u", wt, num);
    }
    occurrences++;
    if (f) {
      aiplat_status st = check_known(c, f, wt, at, payload, p, &child_scratch);
      if (st != AIPLAT_OK) return st;
    } else {
      c->mem += sizeof(ProtobufCMessageUnknownField) + (uint64_t)(p - payload) +
                MALLOC_OVERHEAD;
    }
    if (c->mem > c->budget)
      return wfail(c, AIPLAT_ERR_TOO_LARGE, at,
                   "it would need more than %llu bytes of memory",
                   (unsigned long long)c->budget);
  }
  *scratch = occurrences * SCAN_COST + child_scratch;
  return AIPLAT_OK;
}

aiplat_status aip_msg_wire_check(const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *data, size_t len,
                                 aip_err *err) {
  wctx c = {.err = err, .type_name = desc->name, .base = data};
  c.budget = (uint64_t)AIP_MSG_MEM_FACTOR * len + AIP_MSG_MEM_SLACK;
  uint64_t scratch = 0;
  aiplat_status st = walk(&c, desc, data, data + len, &scratch);
  if (st != AIPLAT_OK) return st;
  if (c.mem + scratch > c.budget)
    return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "message: cannot decode %s: its %zu bytes would need about "
                    "%llu bytes of memory (limit %llu)",
                    desc->name, len, (unsigned long long)(c.mem + scratch),
                    (unsigned long long)c.budget);
  return AIPLAT_OK;
}

aiplat_status aip_msg_unpack(const ProtobufCMessageDescriptor *desc,
                             const uint8_t *data, size_t len, size_t max_size,
                             ProtobufCMessage **out, aip_err *err) {
  static const uint8_t empty[1];
  *out = NULL;
  if (!data && len)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: decoding %s: NULL data with length %zu",
                    desc->name, len);
  if (len > max_size)
    return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "message: cannot decode %s: %zu bytes exceed the limit of "
                    "%zu",
                    desc->name, len, max_size);
  if (len > INT32_MAX)
    return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "message: cannot decode %s: %zu bytes exceed protobuf's "
                    "2 GiB limit",
                    desc->name, len);
  if (!data) data = empty;
  aiplat_status st = aip_msg_wire_check(desc, data, len, err);
  if (st != AIPLAT_OK) return st;
  ProtobufCMessage *pm = protobuf_c_message_unpack(desc, NULL, len, data);
  if (!pm)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY,
                    "message: cannot decode %s: protobuf-c failed to unpack "
                    "%zu checked bytes (out of memory)",
                    desc->name, len);
  if (!aip_pb_normalize(pm)) {
    protobuf_c_message_free_unpacked(pm, NULL);
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY,
                    "message: cannot decode %s: out of memory", desc->name);
  }
  *out = pm;
  return AIPLAT_OK;
}

aiplat_status aip_msg_pack(const ProtobufCMessage *pm, uint8_t **out,
                           size_t *len, aip_err *err) {
  *out = NULL;
  *len = 0;
  if (!protobuf_c_message_check(pm))
    return aip_fail(err, AIPLAT_ERR_INTERNAL,
                    "message: %s is inconsistent (a NULL where a value is "
                    "required)",
                    pm->descriptor ? pm->descriptor->name : "(no descriptor)");
  size_t n = protobuf_c_message_get_packed_size(pm);
  if (n > INT32_MAX)
    return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "message: %s would encode to %zu bytes, over protobuf's "
                    "2 GiB limit",
                    pm->descriptor->name, n);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY,
                    "message: no memory to encode %s (%zu bytes)",
                    pm->descriptor->name, n);
  size_t w = protobuf_c_message_pack(pm, buf);
  if (w != n) {
    free(buf);
    return aip_fail(err, AIPLAT_ERR_INTERNAL,
                    "message: %s packed to %zu bytes, expected %zu",
                    pm->descriptor->name, w, n);
  }
  *out = buf;
  *len = n;
  return AIPLAT_OK;
}
