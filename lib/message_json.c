/* Messages as JSON, in the protobuf JSON mapping with .proto field names.
 *
 * Output is written by hand rather than through jansson so that doubles
 * come out in their shortest exact form (0.7, not 0.69999999999999996) and
 * field order follows the field numbers. Input is parsed with jansson. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "message_internal.h"

/* ---- base64 (RFC 4648) --------------------------------------------------- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool b64_encode(aip_buf *b, const uint8_t *p, size_t n) {
  if (!aip_buf_reserve(b, (n + 2) / 3 * 4)) return false;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char q[4] = {b64[v >> 18], b64[(v >> 12) & 63],
                 i + 1 < n ? b64[(v >> 6) & 63] : '=',
                 i + 2 < n ? b64[v & 63] : '='};
    if (!aip_buf_append(b, q, 4)) return false;
  }
  return true;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62; /* standard or URL-safe */
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* Decode standard or URL-safe base64, padding optional. NULL on bad input
 * (*len = 0) or on ENOMEM (*len = 1). */
static uint8_t *b64_decode(const char *s, size_t n, size_t *len) {
  while (n > 0 && s[n - 1] == '=') n--;
  *len = 0;
  if (n % 4 == 1) return NULL;
  uint8_t *out = malloc(n / 4 * 3 + 3);
  if (!out) {
    *len = 1;
    return NULL;
  }
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  *len = o;
  return out;
}

/* ---- output
 * ------------------------------------------------------------------ */

typedef struct jout {
  aip_buf b;
  uint32_t flags;
  int indent;
  bool ok;
} jout;

static void put(jout *j, const char *s) {
  if (j->ok && !aip_buf_puts(&j->b, s)) j->ok = false;
}

static void newline(jout *j) {
  if (!(j->flags & AIPLAT_MSG_JSON_PRETTY)) return;
  put(j, "\n");
  for (int i = 0; i < j->indent; i++) put(j, "  ");
}

static void put_str(jout *j, const char *s, size_t n) {
  put(j, "\"");
  /* Copy runs that need no escape in one go; escape the rest. */
  size_t i = 0;
  while (j->ok && i < n) {
    size_t run = i;
    while (run < n) {
      unsigned char c = (unsigned char)s[run];
      if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') break;
      run++;
    }
    if (run > i && !aip_buf_append(&j->b, s + i, run - i)) j->ok = false;
    if (run < n && j->ok && !aip_buf_json_escape(&j->b, s + run, 1))
      j->ok = false;
    i = run + 1;
  }
  put(j, "\"");
}

static void put_key(jout *j, bool *first, const char *key) {
  if (!*first) put(j, ",");
  *first = false;
  newline(j);
  put_str(j, key, strlen(key));
  put(j, (j->flags & AIPLAT_MSG_JSON_PRETTY) ? ": " : ":");
}

/* The shortest %g form that reads back as the same double. */
static void put_double(jout *j, double v) {
  if (isnan(v)) {
    put(j, "\"NaN\"");
    return;
  }
  if (isinf(v)) {
    put(j, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  char buf[40];
  /* %g drops trailing zeros, so 15 digits already give "0.7" for 0.7; only
   * values that need more digits to read back take 16 or 17. */
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  put(j, buf);
}

static void put_scalar(jout *j, const ProtobufCMessage *pm,
                       const ProtobufCFieldDescriptor *f) {
  char buf[32];
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = aip_pb_str(pm, f);
      put_str(j, s, strlen(s));
      break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const uint8_t *d;
      size_t n;
      aip_pb_bytes(pm, f, &d, &n);
      if (j->flags & AIPLAT_MSG_JSON_ELIDE_BYTES) {
        snprintf(buf, sizeof buf, "\"<%zu bytes>\"", n);
        put(j, buf);
        break;
      }
      put(j, "\"");
      if (j->ok && !b64_encode(&j->b, d, n)) j->ok = false;
      put(j, "\"");
      break;
    }
    case PROTOBUF_C_TYPE_BOOL:
      put(j, aip_pb_bool(pm, f) ? "true" : "false");
      break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
      put_double(j, aip_pb_dbl(pm, f));
      break;
    case PROTOBUF_C_TYPE_ENUM: {
      int64_t v = aip_pb_i64(pm, f);
      const ProtobufCEnumValue *ev =
          protobuf_c_enum_descriptor_get_value(f->descriptor, (int)v);
      if (ev) {
        put_str(j, ev->name, strlen(ev->name));
      } else {
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        put(j, buf);
      }
      break;
    }
    default:
      if (aip_pb_is_unsigned(f))
        snprintf(buf, sizeof buf, "%llu",
                 (unsigned long long)aip_pb_u64(pm, f));
      else
        snprintf(buf, sizeof buf, "%lld", (long long)aip_pb_i64(pm, f));
      put(j, buf);
      break;
  }
}

static aiplat_status dump(jout *j, const ProtobufCMessage *pm, aip_err *err);

static aiplat_status dump_field(jout *j, const ProtobufCMessage *pm,
                                const ProtobufCFieldDescriptor *f,
                                aip_err *err) {
  const ProtobufCMessageDescriptor *d = pm->descriptor;
  if (f->label != PROTOBUF_C_LABEL_REPEATED) {
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
      put_scalar(j, pm, f);
      return AIPLAT_OK;
    }
    return dump(j, aip_pb_sub(pm, f), err);
  }
  size_t n = aip_pb_count(pm, f);
  if (aip_msg_field_is_map(d, f)) {
    put(j, "{");
    j->indent++;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
      put_key(j, &first, aip_pb_map_key(pm, f, i));
      const char *v = aip_pb_map_value(pm, f, i);
      put_str(j, v, strlen(v));
    }
    j->indent--;
    newline(j);
    put(j, "}");
    return AIPLAT_OK;
  }
  if (f->type != PROTOBUF_C_TYPE_MESSAGE)
    return aip_fail(err, AIPLAT_ERR_NOT_SUPPORTED,
                    "message: JSON of repeated %s field %s.%s is not supported",
                    aip_pb_type_label(f), d->name, f->name);
  put(j, "[");
  j->indent++;
  for (size_t i = 0; i < n; i++) {
    if (i) put(j, ",");
    newline(j);
    aiplat_status st = dump(j, aip_pb_item(pm, f, i), err);
    if (st != AIPLAT_OK) return st;
  }
  j->indent--;
  newline(j);
  put(j, "]");
  return AIPLAT_OK;
}

static aiplat_status dump(jout *j, const ProtobufCMessage *pm, aip_err *err) {
  const ProtobufCMessageDescriptor *d = pm->descriptor;
  bool first = true;
  put(j, "{");
  j->indent++;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (!aip_pb_has(pm, f)) continue;
    put_key(j, &first, f->name);
    aiplat_status st = dump_field(j, pm, f, err);
    if (st != AIPLAT_OK) return st;
  }
  j->indent--;
  if (!first) newline(j);
  put(j, "}");
  return AIPLAT_OK;
}

aiplat_status aip_msg_json_dump(const ProtobufCMessage *pm, uint32_t flags,
                                char **out, aip_err *err) {
  *out = NULL;
  jout j = {.flags = flags, .ok = true};
  aiplat_status st = dump(&j, pm, err);
  if (st == AIPLAT_OK && j.ok && !(*out = aip_buf_steal(&j.b, NULL)))
    j.ok = false;
  if (st == AIPLAT_OK && !j.ok)
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY,
                  "message: out of memory writing JSON of %s",
                  pm->descriptor->name);
  aip_buf_free(&j.b);
  return st;
}

/* ---- input
 * ---------------------------------------------------------------------- */

typedef struct jin {
  aip_err *err;
  const char *type_name;
  char path[256];
} jin;

static aiplat_status jfail(jin *c, const char *fmt, ...) AIP_PRINTF(2, 3);

static aiplat_status jfail(jin *c, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return aip_fail(c->err, AIPLAT_ERR_DECODE, "message: JSON for %s: %s%s%s",
                  c->type_name, c->path, c->path[0] ? ": " : "", what);
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
      return "an integer";
    case JSON_REAL:
      return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    default:
      return "null";
  }
}

/* Field by .proto name or by its lowerCamelCase JSON name. */
static const ProtobufCFieldDescriptor *json_field(
    const ProtobufCMessageDescriptor *d, const char *key) {
  const ProtobufCFieldDescriptor *f = aip_pb_field(d, key);
  if (f) return f;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const char *n = d->fields[i].name, *k = key;
    bool up = false;
    for (; *n; n++) {
      if (*n == '_') {
        up = true;
        continue;
      }
      char want = up && *n >= 'a' && *n <= 'z' ? (char)(*n - 'a' + 'A') : *n;
      up = false;
      if (*k++ != want) break;
    }
    if (!*n && !*k) return &d->fields[i];
  }
  return NULL;
}

static aiplat_status json_text(jin *c, const json_t *v, const char **s,
                               size_t *n) {
  *s = "";
  *n = 0;
  if (!json_is_string(v))
    return jfail(c, "expected a string, got %s", json_kind(v));
  *s = json_string_value(v);
  *n = json_string_length(v);
  if (memchr(*s, 0, *n)) return jfail(c, "a string with a NUL character");
  return AIPLAT_OK;
}

/* An integer from a JSON number, an integral real, or a decimal string. */
static aiplat_status json_int(jin *c, const json_t *v, bool is_unsigned,
                              int64_t *i, uint64_t *u) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    if (is_unsigned && x < 0) return jfail(c, "%lld is below 0", (long long)x);
    *i = x;
    *u = (uint64_t)x;
    return AIPLAT_OK;
  }
  if (json_is_real(v)) {
    double x = json_real_value(v);
    if (x != floor(x) || x < -9.2233720368547758e18 ||
        x >= 1.8446744073709552e19)
      return jfail(c, "%g is not an integer in range", x);
    if (x < 0) {
      if (is_unsigned) return jfail(c, "%g is below 0", x);
      *i = (int64_t)x;
      *u = (uint64_t)*i;
    } else {
      *u = (uint64_t)x;
      *i = (int64_t)*u;
    }
    return AIPLAT_OK;
  }
  if (!json_is_string(v))
    return jfail(c, "expected an integer, got %s", json_kind(v));
  const char *s = json_string_value(v);
  char *end;
  errno = 0;
  if (is_unsigned) {
    if (s[0] == '-') return jfail(c, "\"%s\" is below 0", s);
    *u = strtoull(s, &end, 10);
    *i = (int64_t)*u;
  } else {
    *i = strtoll(s, &end, 10);
    *u = (uint64_t)*i;
  }
  if (errno || end == s || *end || s[0] == ' ')
    return jfail(c, "\"%s\" is not an integer in range", s);
  return AIPLAT_OK;
}

static aiplat_status load_scalar(jin *c, ProtobufCMessage *pm,
                                 const ProtobufCFieldDescriptor *f,
                                 const json_t *v) {
  aiplat_status st;
  const char *s;
  size_t n;
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
      if ((st = json_text(c, v, &s, &n)) != AIPLAT_OK) return st;
      if (!aip_pb_set_str(pm, f, s, n)) goto nomem;
      return AIPLAT_OK;
    case PROTOBUF_C_TYPE_BYTES: {
      if ((st = json_text(c, v, &s, &n)) != AIPLAT_OK) return st;
      size_t len;
      uint8_t *data = b64_decode(s, n, &len);
      if (!data && len) goto nomem;
      if (!data) return jfail(c, "not base64");
      bool ok = aip_pb_set_bytes(pm, f, data, len);
      free(data);
      if (!ok) goto nomem;
      return AIPLAT_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
      if (!json_is_boolean(v))
        return jfail(c, "expected true or false, got %s", json_kind(v));
      aip_pb_store_bool(pm, f, json_is_true(v));
      return AIPLAT_OK;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
      double x;
      if (json_is_number(v)) {
        x = json_number_value(v);
      } else if (json_is_string(v)) {
        s = json_string_value(v);
        char *end;
        if (strcmp(s, "NaN") == 0) {
          x = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
          x = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
          x = -INFINITY;
        } else {
          errno = 0;
          x = strtod(s, &end);
          if (errno || end == s || *end || !isfinite(x))
            return jfail(c, "\"%s\" is not a number", s);
        }
      } else {
        return jfail(c, "expected a number, got %s", json_kind(v));
      }
      aip_pb_store_dbl(pm, f, x);
      return AIPLAT_OK;
    }
    case PROTOBUF_C_TYPE_ENUM:
      if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
                                                         json_string_value(v));
        if (!ev)
          return jfail(c, "\"%s\" is not a value of %s", json_string_value(v),
                       ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
        aip_pb_store_int(pm, f, (uint64_t)(int64_t)ev->value);
        return AIPLAT_OK;
      }
      /* a number: */
      /* fall through */
    default: {
      int64_t i = 0;
      uint64_t u = 0;
      bool uns = aip_pb_is_unsigned(f);
      if ((st = json_int(c, v, uns, &i, &u)) != AIPLAT_OK) return st;
      if (uns ? !aip_pb_u64_fits(f, u) : !aip_pb_i64_fits(f, i))
        return jfail(c, "out of range for %s", aip_pb_type_label(f));
      aip_pb_store_int(pm, f, uns ? u : (uint64_t)i);
      return AIPLAT_OK;
    }
  }
nomem:
  return aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
}

static aiplat_status load(jin *c, ProtobufCMessage *pm, const json_t *obj,
                          int depth);

static aiplat_status load_field(jin *c, ProtobufCMessage *pm,
                                const ProtobufCFieldDescriptor *f,
                                const json_t *v, int depth) {
  const ProtobufCMessageDescriptor *d = pm->descriptor;
  if (f->label != PROTOBUF_C_LABEL_REPEATED) {
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) return load_scalar(c, pm, f, v);
    if (!json_is_object(v))
      return jfail(c, "expected an object, got %s", json_kind(v));
    ProtobufCMessage *sub = aip_pb_mutable_sub(pm, f);
    if (!sub)
      return aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
    return load(c, sub, v, depth + 1);
  }
  if (aip_msg_field_is_map(d, f)) {
    if (!json_is_object(v))
      return jfail(c, "expected an object, got %s", json_kind(v));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
      const char *s;
      size_t n;
      aiplat_status st = json_text(c, val, &s, &n);
      if (st != AIPLAT_OK) return st;
      if (!aip_pb_map_set(pm, f, key, s))
        return aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
    }
    return AIPLAT_OK;
  }
  if (f->type != PROTOBUF_C_TYPE_MESSAGE)
    return aip_fail(c->err, AIPLAT_ERR_NOT_SUPPORTED,
                    "message: JSON of repeated %s field %s.%s is not supported",
                    aip_pb_type_label(f), d->name, f->name);
  if (!json_is_array(v))
    return jfail(c, "expected an array, got %s", json_kind(v));
  size_t i;
  json_t *el;
  size_t plen = strlen(c->path);
  json_array_foreach((json_t *)v, i, el) {
    snprintf(c->path + plen, sizeof c->path - plen, "[%zu]", i);
    if (!json_is_object(el))
      return jfail(c, "expected an object, got %s", json_kind(el));
    ProtobufCMessage *sub = aip_pb_add_item(pm, f);
    if (!sub)
      return aip_fail(c->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
    aiplat_status st = load(c, sub, el, depth + 1);
    if (st != AIPLAT_OK) return st;
  }
  c->path[plen] = '\0';
  return AIPLAT_OK;
}

static aiplat_status load(jin *c, ProtobufCMessage *pm, const json_t *obj,
                          int depth) {
  if (depth > AIP_MSG_MAX_DEPTH) return jfail(c, "nested too deeply");
  const char *key;
  json_t *v;
  size_t plen = strlen(c->path);
  json_object_foreach((json_t *)obj, key, v) {
    const ProtobufCFieldDescriptor *f = json_field(pm->descriptor, key);
    if (!f) return jfail(c, "%s has no field '%s'", pm->descriptor->name, key);
    if (json_is_null(v)) continue; /* null: absent */
    snprintf(c->path + plen, sizeof c->path - plen, "%s%s", plen ? "." : "",
             f->name);
    aiplat_status st = load_field(c, pm, f, v, depth);
    if (st != AIPLAT_OK) return st;
    c->path[plen] = '\0';
  }
  return AIPLAT_OK;
}

aiplat_status aip_msg_json_load(const ProtobufCMessageDescriptor *desc,
                                const char *json, ProtobufCMessage **out,
                                aip_err *err) {
  *out = NULL;
  size_t len = strlen(json);
  if (len > 2 * (size_t)AIPLAT_MSG_MAX_SIZE)
    return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "message: JSON for %s: %zu bytes exceed the limit of %zu",
                    desc->name, len, 2 * (size_t)AIPLAT_MSG_MAX_SIZE);
  json_error_t jerr;
  json_t *root =
      json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (!root)
    return aip_fail(err, AIPLAT_ERR_DECODE,
                    "message: JSON for %s: %s (line %d, column %d)", desc->name,
                    jerr.text, jerr.line, jerr.column);
  jin c = {.err = err, .type_name = desc->name};
  aiplat_status st;
  ProtobufCMessage *pm = NULL;
  if (!json_is_object(root)) {
    st = jfail(&c, "expected an object, got %s", json_kind(root));
  } else if (!(pm = aip_pb_new(desc))) {
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
  } else {
    st = load(&c, pm, root, 0);
  }
  json_decref(root);
  if (st != AIPLAT_OK) {
    if (pm) protobuf_c_message_free_unpacked(pm, NULL);
    return st;
  }
  *out = pm;
  return AIPLAT_OK;
}
