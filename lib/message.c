/* Message handles: an aiplat_msg wraps a protobuf-c message of a v1 type;
 * fields are reached by name through the descriptors
 * (docs/decisions/0005-message-access.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "message_internal.h"

struct aiplat_msg {
  aip_err err;
  ProtobufCMessage *pm;
  aiplat_msg *root; /* itself for a top-level message */
  /* Top-level only: the child handles handed out, keyed by the address of
   * their protobuf-c message (open addressing, linear probing). */
  aiplat_msg **kids;
  size_t kids_cap; /* 0 or a power of two */
  size_t kids_n;
};

/* ---- child handles ------------------------------------------------------- */

static size_t kid_slot(const aiplat_msg *root, const ProtobufCMessage *pm) {
  uint64_t h = (uint64_t)(uintptr_t)pm;
  h ^= h >> 17;
  h *= UINT64_C(0x9E3779B97F4A7C15);
  return (size_t)(h >> 32) & (root->kids_cap - 1);
}

static aiplat_msg *kid_find(aiplat_msg *root, const ProtobufCMessage *pm) {
  if (root->kids_n == 0) return NULL;
  for (size_t i = kid_slot(root, pm);; i = (i + 1) & (root->kids_cap - 1)) {
    aiplat_msg *k = root->kids[i];
    if (!k) return NULL;
    if (k->pm == pm) return k;
  }
}

static void kid_free(aiplat_msg *k) {
  aip_err_destroy(&k->err);
  free(k);
}

static bool kid_insert(aiplat_msg *root, aiplat_msg *k) {
  if ((root->kids_n + 1) * 2 > root->kids_cap) {
    size_t cap = root->kids_cap ? root->kids_cap * 2 : 16;
    aiplat_msg **old = root->kids;
    size_t old_cap = root->kids_cap;
    aiplat_msg **kids = calloc(cap, sizeof *kids);
    if (!kids) return false;
    root->kids = kids;
    root->kids_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
      if (!old[i]) continue;
      size_t j = kid_slot(root, old[i]->pm);
      while (kids[j]) j = (j + 1) & (cap - 1);
      kids[j] = old[i];
    }
    free(old);
  }
  size_t j = kid_slot(root, k->pm);
  while (root->kids[j]) j = (j + 1) & (root->kids_cap - 1);
  root->kids[j] = k;
  root->kids_n++;
  return true;
}

/* Remove and free the handle of @pm, if any (backward-shift deletion keeps
 * every probe chain unbroken). */
static void kid_remove(aiplat_msg *root, const ProtobufCMessage *pm) {
  if (root->kids_n == 0) return;
  size_t mask = root->kids_cap - 1, i = kid_slot(root, pm);
  for (;; i = (i + 1) & mask) {
    if (!root->kids[i]) return;
    if (root->kids[i]->pm == pm) break;
  }
  kid_free(root->kids[i]);
  root->kids[i] = NULL;
  root->kids_n--;
  for (size_t j = (i + 1) & mask; root->kids[j]; j = (j + 1) & mask) {
    size_t home = kid_slot(root, root->kids[j]->pm);
    /* Move kids[j] into the hole unless its home lies in (i, j]. */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    root->kids[i] = root->kids[j];
    root->kids[j] = NULL;
    i = j;
  }
}

/* Forget the handles of @pm and of every message below it. */
static void forget_subtree(aiplat_msg *root, const ProtobufCMessage *pm) {
  if (root->kids_n == 0 || !pm) return;
  kid_remove(root, pm);
  const ProtobufCMessageDescriptor *d = pm->descriptor;
  for (unsigned i = 0; i < d->n_fields && root->kids_n; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || aip_msg_field_is_map(d, f))
      continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      for (size_t j = 0; j < aip_pb_count(pm, f); j++)
        forget_subtree(root, aip_pb_item(pm, f, j));
    } else {
      forget_subtree(root, aip_pb_sub(pm, f));
    }
  }
}

static void forget_all(aiplat_msg *root) {
  for (size_t i = 0; i < root->kids_cap; i++)
    if (root->kids[i]) kid_free(root->kids[i]);
  free(root->kids);
  root->kids = NULL;
  root->kids_cap = root->kids_n = 0;
}

/* The handle of child message @pm of @m's tree, made on first use. */
static aiplat_status kid_get(aiplat_msg *m, ProtobufCMessage *pm,
                             aiplat_msg **out) {
  aiplat_msg *root = m->root, *k = kid_find(root, pm);
  if (!k) {
    if (!(k = calloc(1, sizeof *k)))
      return aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
    aip_err_init(&k->err);
    k->pm = pm;
    k->root = root;
    if (!kid_insert(root, k)) {
      kid_free(k);
      return aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
    }
  }
  *out = k;
  return AIPLAT_OK;
}

/* ---- top-level handles --------------------------------------------------- */

static aiplat_status null_arg(const char *fn) {
  return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                  "message: %s: NULL argument", fn);
}

aiplat_status aip_msg_wrap(aiplat_msg **out, ProtobufCMessage *pm) {
  if (!out || !pm) return null_arg("wrap");
  *out = NULL;
  if (aip_msg_type_of(pm->descriptor) == AIPLAT_MSG_INVALID)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %s is not an aiplat.messages.v1 type",
                    pm->descriptor ? pm->descriptor->name : "(no descriptor)");
  aiplat_msg *m = calloc(1, sizeof *m);
  if (!m) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) {
    free(m);
    return st;
  }
  aip_err_init(&m->err);
  m->pm = pm;
  m->root = m;
  *out = m;
  return AIPLAT_OK;
}

ProtobufCMessage *aip_msg_pb(aiplat_msg *m) {
  return m ? m->pm : NULL;
}

ProtobufCMessage *aip_msg_release(aiplat_msg *m) {
  if (!m || m->root != m) return NULL;
  ProtobufCMessage *pm = m->pm;
  forget_all(m);
  aip_err_destroy(&m->err);
  free(m);
  aip_global_unref();
  return pm;
}

static aiplat_status create_desc(aiplat_msg **out,
                                 const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *pm = aip_pb_new(desc);
  if (!pm)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "message: out of memory");
  aiplat_status st = aip_msg_wrap(out, pm);
  if (st != AIPLAT_OK) free(pm);
  return st;
}

AIPLAT_API aiplat_status aiplat_msg_create(aiplat_msg **out,
                                           aiplat_msg_type type) {
  if (!out) return null_arg("aiplat_msg_create");
  *out = NULL;
  const ProtobufCMessageDescriptor *desc = aip_msg_descriptor(type);
  if (!desc)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %d is not a message type", (int)type);
  return create_desc(out, desc);
}

AIPLAT_API aiplat_status aiplat_msg_create_by_name(aiplat_msg **out,
                                                   const char *type_name) {
  if (!out || !type_name) return null_arg("aiplat_msg_create_by_name");
  *out = NULL;
  aiplat_msg_type t = aip_msg_type_by_name(type_name);
  if (t == AIPLAT_MSG_INVALID)
    return aip_fail(NULL, AIPLAT_ERR_NOT_FOUND,
                    "message: no message type named '%s'", type_name);
  return create_desc(out, aip_msg_descriptor(t));
}

AIPLAT_API void aiplat_msg_destroy(aiplat_msg *m) {
  ProtobufCMessage *pm = aip_msg_release(m);
  if (pm) protobuf_c_message_free_unpacked(pm, NULL);
}

AIPLAT_API aiplat_status aiplat_msg_copy(aiplat_msg **out, aiplat_msg *m) {
  if (!out || !m) return null_arg("aiplat_msg_copy");
  *out = NULL;
  uint8_t *buf;
  size_t len;
  aiplat_status st = aip_msg_pack(m->pm, &buf, &len, &m->err);
  if (st != AIPLAT_OK) return st;
  /* Our own encoding: no need for the hostile-input walk. */
  ProtobufCMessage *pm =
      protobuf_c_message_unpack(m->pm->descriptor, NULL, len, buf);
  free(buf);
  if (!pm)
    return aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY,
                    "message: out of memory copying %s",
                    m->pm->descriptor->name);
  st = aip_msg_wrap(out, pm);
  if (st != AIPLAT_OK) protobuf_c_message_free_unpacked(pm, NULL);
  return st;
}

AIPLAT_API aiplat_status aiplat_msg_last_error(aiplat_msg *m, char *buf,
                                               size_t buflen) {
  if (!m) {
    if (buf && buflen) buf[0] = '\0';
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return aip_err_copy(&m->err, buf, buflen);
}

/* ---- introspection ------------------------------------------------------- */

AIPLAT_API aiplat_msg_type aiplat_msg_get_type(aiplat_msg *m) {
  return m ? aip_msg_type_of(m->pm->descriptor) : AIPLAT_MSG_INVALID;
}

AIPLAT_API const char *aiplat_msg_type_name(aiplat_msg_type type) {
  const ProtobufCMessageDescriptor *d = aip_msg_descriptor(type);
  return d ? d->name : NULL;
}

AIPLAT_API aiplat_status aiplat_msg_type_by_name(const char *name,
                                                 aiplat_msg_type *out) {
  if (!out) return null_arg("aiplat_msg_type_by_name");
  *out = aip_msg_type_by_name(name);
  if (*out == AIPLAT_MSG_INVALID)
    return aip_fail(NULL, AIPLAT_ERR_NOT_FOUND,
                    "message: no message type named '%s'",
                    name ? name : "(null)");
  return AIPLAT_OK;
}

AIPLAT_API size_t aiplat_msg_type_field_count(aiplat_msg_type type) {
  const ProtobufCMessageDescriptor *d = aip_msg_descriptor(type);
  return d ? d->n_fields : 0;
}

AIPLAT_API const char *aiplat_msg_type_field_name(aiplat_msg_type type,
                                                  size_t index) {
  const ProtobufCMessageDescriptor *d = aip_msg_descriptor(type);
  return d && index < d->n_fields ? d->fields[index].name : NULL;
}

AIPLAT_API aiplat_status aiplat_msg_field_info(
    aiplat_msg_type type, const char *field, aiplat_field_kind *kind,
    bool *repeated, aiplat_msg_type *message_type, uint32_t *number) {
  const ProtobufCMessageDescriptor *d = aip_msg_descriptor(type);
  if (!d)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %d is not a message type", (int)type);
  const ProtobufCFieldDescriptor *f = aip_pb_field(d, field);
  if (!f)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %s has no field '%s'", d->name,
                    field ? field : "(null)");
  aiplat_field_kind k = aip_pb_kind(d, f);
  if (kind) *kind = k;
  if (repeated) *repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
  if (message_type)
    *message_type = k == AIPLAT_FIELD_MESSAGE ? aip_msg_type_of(f->descriptor)
                                              : AIPLAT_MSG_INVALID;
  if (number) *number = f->id;
  return AIPLAT_OK;
}

/* ---- field lookup with kind checks --------------------------------------- */

/* What a caller may do with a field: the access family of its kind. */
enum access {
  ACC_STRING,
  ACC_BYTES,
  ACC_INT, /* get/set_int64 and get/set_uint64 */
  ACC_DOUBLE,
  ACC_BOOL,
  ACC_MESSAGE, /* single message */
  ACC_LIST,    /* repeated message */
  ACC_MAP,
  ACC_ANY
};

static const char *access_hint(const ProtobufCMessageDescriptor *d,
                               const ProtobufCFieldDescriptor *f) {
  if (aip_msg_field_is_map(d, f))
    return "aiplat_msg_map_get / aiplat_msg_map_set";
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return f->type == PROTOBUF_C_TYPE_MESSAGE
               ? "aiplat_msg_count / aiplat_msg_get_item / aiplat_msg_add_item"
               : "aiplat_msg_count";
  switch (aip_pb_kind(d, f)) {
    case AIPLAT_FIELD_STRING:
      return "aiplat_msg_get_string / aiplat_msg_set_string";
    case AIPLAT_FIELD_BYTES:
      return "aiplat_msg_get_bytes / aiplat_msg_set_bytes";
    case AIPLAT_FIELD_INT:
    case AIPLAT_FIELD_ENUM:
      return "aiplat_msg_get_int64 / aiplat_msg_set_int64";
    case AIPLAT_FIELD_UINT:
      return "aiplat_msg_get_uint64 / aiplat_msg_set_uint64";
    case AIPLAT_FIELD_DOUBLE:
      return "aiplat_msg_get_double / aiplat_msg_set_double";
    case AIPLAT_FIELD_BOOL:
      return "aiplat_msg_get_bool / aiplat_msg_set_bool";
    default:
      return "aiplat_msg_get_message / aiplat_msg_mutable_message";
  }
}

static void describe(const ProtobufCMessageDescriptor *d,
                     const ProtobufCFieldDescriptor *f, char *buf, size_t n) {
  if (aip_msg_field_is_map(d, f)) {
    snprintf(buf, n, "a map<string, string>");
    return;
  }
  const char *rep = f->label == PROTOBUF_C_LABEL_REPEATED ? "repeated " : "";
  if (f->type == PROTOBUF_C_TYPE_MESSAGE)
    snprintf(buf, n, "a %smessage %s", rep,
             ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name);
  else if (f->type == PROTOBUF_C_TYPE_ENUM)
    snprintf(buf, n, "a %senum %s", rep,
             ((const ProtobufCEnumDescriptor *)f->descriptor)->short_name);
  else
    snprintf(
        buf, n, "%s %s%s",
        f->type == PROTOBUF_C_TYPE_INT32 || f->type == PROTOBUF_C_TYPE_INT64
            ? "an"
            : "a",
        rep, aip_pb_type_label(f));
}

static bool access_ok(const ProtobufCMessageDescriptor *d,
                      const ProtobufCFieldDescriptor *f, enum access a) {
  bool rep = f->label == PROTOBUF_C_LABEL_REPEATED;
  aiplat_field_kind k = aip_pb_kind(d, f);
  switch (a) {
    case ACC_ANY:
      return true;
    case ACC_MAP:
      return k == AIPLAT_FIELD_MAP;
    case ACC_LIST:
      return rep && k == AIPLAT_FIELD_MESSAGE;
    case ACC_MESSAGE:
      return !rep && k == AIPLAT_FIELD_MESSAGE;
    default:
      break;
  }
  if (rep) return false;
  switch (a) {
    case ACC_STRING:
      return k == AIPLAT_FIELD_STRING;
    case ACC_BYTES:
      return k == AIPLAT_FIELD_BYTES;
    case ACC_INT:
      return k == AIPLAT_FIELD_INT || k == AIPLAT_FIELD_UINT ||
             k == AIPLAT_FIELD_ENUM;
    case ACC_DOUBLE:
      return k == AIPLAT_FIELD_DOUBLE;
    case ACC_BOOL:
      return k == AIPLAT_FIELD_BOOL;
    default:
      return false;
  }
}

/* Find @field in @m for the access family @a; @fn names the caller. NULL
 * (the failure recorded, always AIPLAT_ERR_INVALID_ARGUMENT) when the
 * handle, the name or the kind is wrong. */
static const ProtobufCFieldDescriptor *lookup(aiplat_msg *m, const char *field,
                                              enum access a, const char *fn) {
  if (!m) {
    null_arg(fn);
    return NULL;
  }
  const ProtobufCMessageDescriptor *d = m->pm->descriptor;
  if (!field) {
    aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
             "message: %s: NULL field name (%s)", fn, d->name);
    return NULL;
  }
  const ProtobufCFieldDescriptor *f = aip_pb_field(d, field);
  if (!f) {
    aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
             "message: %s has no field '%s'", d->name, field);
    return NULL;
  }
  if (!access_ok(d, f, a)) {
    char what[96];
    describe(d, f, what, sizeof what);
    aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
             "message: %s.%s is %s field; %s cannot access it (use %s)",
             d->name, field, what, fn, access_hint(d, f));
    return NULL;
  }
  return f;
}

#define LOOKUP(m, field, acc, fn)                                \
  const ProtobufCFieldDescriptor *f = lookup(m, field, acc, fn); \
  if (!f) return AIPLAT_ERR_INVALID_ARGUMENT

static aiplat_status no_memory(aiplat_msg *m) {
  return aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "message: out of memory (%s)",
                  m->pm->descriptor->name);
}

static aiplat_status check_utf8(aiplat_msg *m, const char *field,
                                const char *what, const char *s) {
  size_t bad;
  if (aip_utf8_check(s, strlen(s), &bad)) return AIPLAT_OK;
  return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                  "message: %s for %s.%s is not valid UTF-8 (byte %zu)", what,
                  m->pm->descriptor->name, field, bad);
}

/* ---- presence ------------------------------------------------------------ */

AIPLAT_API bool aiplat_msg_has(aiplat_msg *m, const char *field) {
  const ProtobufCFieldDescriptor *f =
      lookup(m, field, ACC_ANY, "aiplat_msg_has");
  return f && aip_pb_has(m->pm, f);
}

/* Forget the handles below a message field before it is freed. */
static void forget_field(aiplat_msg *m, const ProtobufCFieldDescriptor *f) {
  if (f->type != PROTOBUF_C_TYPE_MESSAGE) return;
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (aip_msg_field_is_map(m->pm->descriptor, f)) return;
    for (size_t i = 0; i < aip_pb_count(m->pm, f); i++)
      forget_subtree(m->root, aip_pb_item(m->pm, f, i));
  } else {
    forget_subtree(m->root, aip_pb_sub(m->pm, f));
  }
}

/* Setting a member of a oneof releases the member set before; forget the
 * handles below it if it was a message. (The v1 schema's oneofs have one
 * member each; this keeps handles right if that changes.) */
static void forget_oneof_sibling(aiplat_msg *m,
                                 const ProtobufCFieldDescriptor *f) {
  if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return;
  uint32_t set =
      *(const uint32_t *)((const char *)m->pm + f->quantifier_offset);
  if (set == 0 || set == f->id) return;
  const ProtobufCFieldDescriptor *other =
      protobuf_c_message_descriptor_get_field(m->pm->descriptor, set);
  if (other) forget_field(m, other);
}

AIPLAT_API aiplat_status aiplat_msg_clear_field(aiplat_msg *m,
                                                const char *field) {
  LOOKUP(m, field, ACC_ANY, "aiplat_msg_clear_field");
  forget_field(m, f);
  aip_pb_clear(m->pm, f);
  return AIPLAT_OK;
}

/* ---- single fields ------------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_msg_get_string(aiplat_msg *m, const char *field,
                                               const char **out) {
  if (!out) return null_arg("aiplat_msg_get_string");
  *out = NULL;
  LOOKUP(m, field, ACC_STRING, "aiplat_msg_get_string");
  *out = aip_pb_str(m->pm, f);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_set_string(aiplat_msg *m, const char *field,
                                               const char *value) {
  LOOKUP(m, field, ACC_STRING, "aiplat_msg_set_string");
  if (!value)
    return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: NULL value for %s.%s (aiplat_msg_clear_field "
                    "makes a field absent)",
                    m->pm->descriptor->name, field);
  aiplat_status st = check_utf8(m, field, "the value", value);
  if (st != AIPLAT_OK) return st;
  forget_oneof_sibling(m, f);
  if (!aip_pb_set_str(m->pm, f, value, strlen(value))) return no_memory(m);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_get_bytes(aiplat_msg *m, const char *field,
                                              const uint8_t **data,
                                              size_t *len) {
  if (!data || !len) return null_arg("aiplat_msg_get_bytes");
  *data = NULL;
  *len = 0;
  LOOKUP(m, field, ACC_BYTES, "aiplat_msg_get_bytes");
  aip_pb_bytes(m->pm, f, data, len);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_set_bytes(aiplat_msg *m, const char *field,
                                              const uint8_t *data, size_t len) {
  LOOKUP(m, field, ACC_BYTES, "aiplat_msg_set_bytes");
  if (!data && len)
    return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: NULL data with length %zu for %s.%s", len,
                    m->pm->descriptor->name, field);
  forget_oneof_sibling(m, f);
  if (!aip_pb_set_bytes(m->pm, f, data, len)) return no_memory(m);
  return AIPLAT_OK;
}

static aiplat_status out_of_range(aiplat_msg *m,
                                  const ProtobufCFieldDescriptor *f,
                                  const char *value) {
  return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                  "message: %s does not fit %s.%s (%s)", value,
                  m->pm->descriptor->name, f->name, aip_pb_type_label(f));
}

AIPLAT_API aiplat_status aiplat_msg_get_int64(aiplat_msg *m, const char *field,
                                              int64_t *out) {
  if (!out) return null_arg("aiplat_msg_get_int64");
  *out = 0;
  LOOKUP(m, field, ACC_INT, "aiplat_msg_get_int64");
  if (aip_pb_is_unsigned(f)) {
    uint64_t u = aip_pb_u64(m->pm, f);
    if (u > INT64_MAX) {
      char buf[32];
      snprintf(buf, sizeof buf, "%llu", (unsigned long long)u);
      return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "message: %s.%s holds %s, over INT64_MAX (use "
                      "aiplat_msg_get_uint64)",
                      m->pm->descriptor->name, field, buf);
    }
    *out = (int64_t)u;
    return AIPLAT_OK;
  }
  *out = aip_pb_i64(m->pm, f);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_set_int64(aiplat_msg *m, const char *field,
                                              int64_t value) {
  LOOKUP(m, field, ACC_INT, "aiplat_msg_set_int64");
  if (!aip_pb_i64_fits(f, value)) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    return out_of_range(m, f, buf);
  }
  forget_oneof_sibling(m, f);
  aip_pb_store_int(m->pm, f, (uint64_t)value);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_get_uint64(aiplat_msg *m, const char *field,
                                               uint64_t *out) {
  if (!out) return null_arg("aiplat_msg_get_uint64");
  *out = 0;
  LOOKUP(m, field, ACC_INT, "aiplat_msg_get_uint64");
  if (aip_pb_is_unsigned(f)) {
    *out = aip_pb_u64(m->pm, f);
    return AIPLAT_OK;
  }
  int64_t v = aip_pb_i64(m->pm, f);
  if (v < 0)
    return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %s.%s holds %lld, below 0 (use "
                    "aiplat_msg_get_int64)",
                    m->pm->descriptor->name, field, (long long)v);
  *out = (uint64_t)v;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_set_uint64(aiplat_msg *m, const char *field,
                                               uint64_t value) {
  LOOKUP(m, field, ACC_INT, "aiplat_msg_set_uint64");
  if (!aip_pb_u64_fits(f, value)) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)value);
    return out_of_range(m, f, buf);
  }
  forget_oneof_sibling(m, f);
  aip_pb_store_int(m->pm, f, value);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_get_double(aiplat_msg *m, const char *field,
                                               double *out) {
  if (!out) return null_arg("aiplat_msg_get_double");
  *out = 0;
  LOOKUP(m, field, ACC_DOUBLE, "aiplat_msg_get_double");
  *out = aip_pb_dbl(m->pm, f);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_set_double(aiplat_msg *m, const char *field,
                                               double value) {
  LOOKUP(m, field, ACC_DOUBLE, "aiplat_msg_set_double");
  forget_oneof_sibling(m, f);
  aip_pb_store_dbl(m->pm, f, value);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_get_bool(aiplat_msg *m, const char *field,
                                             bool *out) {
  if (!out) return null_arg("aiplat_msg_get_bool");
  *out = false;
  LOOKUP(m, field, ACC_BOOL, "aiplat_msg_get_bool");
  *out = aip_pb_bool(m->pm, f);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_set_bool(aiplat_msg *m, const char *field,
                                             bool value) {
  LOOKUP(m, field, ACC_BOOL, "aiplat_msg_set_bool");
  forget_oneof_sibling(m, f);
  aip_pb_store_bool(m->pm, f, value);
  return AIPLAT_OK;
}

/* ---- nested messages ----------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_msg_get_message(aiplat_msg *m,
                                                const char *field,
                                                aiplat_msg **child) {
  if (!child) return null_arg("aiplat_msg_get_message");
  *child = NULL;
  LOOKUP(m, field, ACC_MESSAGE, "aiplat_msg_get_message");
  ProtobufCMessage *sub = aip_pb_sub(m->pm, f);
  return sub ? kid_get(m, sub, child) : AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_mutable_message(aiplat_msg *m,
                                                    const char *field,
                                                    aiplat_msg **child) {
  if (!child) return null_arg("aiplat_msg_mutable_message");
  *child = NULL;
  LOOKUP(m, field, ACC_MESSAGE, "aiplat_msg_mutable_message");
  forget_oneof_sibling(m, f);
  ProtobufCMessage *sub = aip_pb_mutable_sub(m->pm, f);
  if (!sub) return no_memory(m);
  return kid_get(m, sub, child);
}

/* ---- repeated messages and maps ------------------------------------------ */

AIPLAT_API aiplat_status aiplat_msg_count(aiplat_msg *m, const char *field,
                                          size_t *out) {
  if (!out) return null_arg("aiplat_msg_count");
  *out = 0;
  LOOKUP(m, field, ACC_ANY, "aiplat_msg_count");
  if (f->label != PROTOBUF_C_LABEL_REPEATED)
    return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %s.%s is not a repeated or map field; "
                    "aiplat_msg_count cannot access it (use %s)",
                    m->pm->descriptor->name, field,
                    access_hint(m->pm->descriptor, f));
  *out = aip_pb_count(m->pm, f);
  return AIPLAT_OK;
}

static aiplat_status bad_index(aiplat_msg *m, const char *field, size_t index,
                               size_t count) {
  return aip_fail(&m->err, AIPLAT_ERR_NOT_FOUND,
                  "message: index %zu of %s.%s is out of range (%zu elements)",
                  index, m->pm->descriptor->name, field, count);
}

AIPLAT_API aiplat_status aiplat_msg_get_item(aiplat_msg *m, const char *field,
                                             size_t index, aiplat_msg **child) {
  if (!child) return null_arg("aiplat_msg_get_item");
  *child = NULL;
  LOOKUP(m, field, ACC_LIST, "aiplat_msg_get_item");
  size_t n = aip_pb_count(m->pm, f);
  if (index >= n) return bad_index(m, field, index, n);
  return kid_get(m, aip_pb_item(m->pm, f, index), child);
}

AIPLAT_API aiplat_status aiplat_msg_add_item(aiplat_msg *m, const char *field,
                                             aiplat_msg **child) {
  if (!child) return null_arg("aiplat_msg_add_item");
  *child = NULL;
  LOOKUP(m, field, ACC_LIST, "aiplat_msg_add_item");
  ProtobufCMessage *sub = aip_pb_add_item(m->pm, f);
  if (!sub) return no_memory(m);
  aiplat_status st = kid_get(m, sub, child);
  if (st != AIPLAT_OK) aip_pb_remove_item(m->pm, f, aip_pb_count(m->pm, f) - 1);
  return st;
}

AIPLAT_API aiplat_status aiplat_msg_remove_item(aiplat_msg *m,
                                                const char *field,
                                                size_t index) {
  LOOKUP(m, field, ACC_LIST, "aiplat_msg_remove_item");
  size_t n = aip_pb_count(m->pm, f);
  if (index >= n) return bad_index(m, field, index, n);
  forget_subtree(m->root, aip_pb_item(m->pm, f, index));
  aip_pb_remove_item(m->pm, f, index);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_map_key(aiplat_msg *m, const char *field,
                                            size_t index, const char **key) {
  if (!key) return null_arg("aiplat_msg_map_key");
  *key = NULL;
  LOOKUP(m, field, ACC_MAP, "aiplat_msg_map_key");
  size_t n = aip_pb_count(m->pm, f);
  if (index >= n) return bad_index(m, field, index, n);
  *key = aip_pb_map_key(m->pm, f, index);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_map_value(aiplat_msg *m, const char *field,
                                              size_t index,
                                              const char **value) {
  if (!value) return null_arg("aiplat_msg_map_value");
  *value = NULL;
  LOOKUP(m, field, ACC_MAP, "aiplat_msg_map_value");
  size_t n = aip_pb_count(m->pm, f);
  if (index >= n) return bad_index(m, field, index, n);
  *value = aip_pb_map_value(m->pm, f, index);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_map_get(aiplat_msg *m, const char *field,
                                            const char *key,
                                            const char **value) {
  if (!value || !key) return null_arg("aiplat_msg_map_get");
  *value = NULL;
  LOOKUP(m, field, ACC_MAP, "aiplat_msg_map_get");
  ptrdiff_t at = aip_pb_map_find(m->pm, f, key);
  if (at < 0)
    return aip_fail(&m->err, AIPLAT_ERR_NOT_FOUND,
                    "message: %s.%s has no key '%s'", m->pm->descriptor->name,
                    field, key);
  *value = aip_pb_map_value(m->pm, f, (size_t)at);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_map_set(aiplat_msg *m, const char *field,
                                            const char *key,
                                            const char *value) {
  LOOKUP(m, field, ACC_MAP, "aiplat_msg_map_set");
  if (!key || !value)
    return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: NULL key or value for %s.%s",
                    m->pm->descriptor->name, field);
  aiplat_status st = check_utf8(m, field, "a key", key);
  if (st == AIPLAT_OK) st = check_utf8(m, field, "a value", value);
  if (st != AIPLAT_OK) return st;
  if (!aip_pb_map_set(m->pm, f, key, value)) return no_memory(m);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_map_remove(aiplat_msg *m, const char *field,
                                               const char *key) {
  LOOKUP(m, field, ACC_MAP, "aiplat_msg_map_remove");
  if (!key)
    return aip_fail(&m->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: NULL key for %s.%s", m->pm->descriptor->name,
                    field);
  if (!aip_pb_map_remove(m->pm, f, key))
    return aip_fail(&m->err, AIPLAT_ERR_NOT_FOUND,
                    "message: %s.%s has no key '%s'", m->pm->descriptor->name,
                    field, key);
  return AIPLAT_OK;
}

/* ---- wire format
 * --------------------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_msg_encode(aiplat_msg *m, uint8_t **out,
                                           size_t *len) {
  if (!m || !out || !len) return null_arg("aiplat_msg_encode");
  return aip_msg_pack(m->pm, out, len, &m->err);
}

AIPLAT_API aiplat_status aiplat_msg_encoded_size(aiplat_msg *m, size_t *out) {
  if (!m || !out) return null_arg("aiplat_msg_encoded_size");
  *out = 0;
  if (!protobuf_c_message_check(m->pm))
    return aip_fail(&m->err, AIPLAT_ERR_INTERNAL,
                    "message: %s is inconsistent (a NULL where a value is "
                    "required)",
                    m->pm->descriptor->name);
  *out = protobuf_c_message_get_packed_size(m->pm);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_msg_decode_max(aiplat_msg **out,
                                               aiplat_msg_type type,
                                               const uint8_t *data, size_t len,
                                               size_t max_size) {
  if (!out) return null_arg("aiplat_msg_decode");
  *out = NULL;
  const ProtobufCMessageDescriptor *desc = aip_msg_descriptor(type);
  if (!desc)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: decode: %d is not a message type", (int)type);
  if (max_size == 0)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: decode of %s: a size limit of 0", desc->name);
  ProtobufCMessage *pm;
  aiplat_status st = aip_msg_unpack(desc, data, len, max_size, &pm, NULL);
  if (st != AIPLAT_OK) return st;
  st = aip_msg_wrap(out, pm);
  if (st != AIPLAT_OK) protobuf_c_message_free_unpacked(pm, NULL);
  return st;
}

AIPLAT_API aiplat_status aiplat_msg_decode(aiplat_msg **out,
                                           aiplat_msg_type type,
                                           const uint8_t *data, size_t len) {
  return aiplat_msg_decode_max(out, type, data, len, AIPLAT_MSG_MAX_SIZE);
}

/* ---- JSON
 * ------------------------------------------------------------------------ */

AIPLAT_API aiplat_status aiplat_msg_to_json(aiplat_msg *m, char **out) {
  if (!m || !out) return null_arg("aiplat_msg_to_json");
  return aip_msg_json_dump(m->pm, AIPLAT_MSG_JSON_DEFAULT, out, &m->err);
}

AIPLAT_API aiplat_status aiplat_msg_to_json_flags(aiplat_msg *m, uint32_t flags,
                                                  char **out) {
  if (!m || !out) return null_arg("aiplat_msg_to_json_flags");
  return aip_msg_json_dump(m->pm, flags, out, &m->err);
}

AIPLAT_API aiplat_status aiplat_msg_from_json(aiplat_msg **out,
                                              aiplat_msg_type type,
                                              const char *json) {
  if (!out || !json) return null_arg("aiplat_msg_from_json");
  *out = NULL;
  const ProtobufCMessageDescriptor *desc = aip_msg_descriptor(type);
  if (!desc)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: from_json: %d is not a message type", (int)type);
  ProtobufCMessage *pm;
  aiplat_status st = aip_msg_json_load(desc, json, &pm, NULL);
  if (st != AIPLAT_OK) return st;
  st = aip_msg_wrap(out, pm);
  if (st != AIPLAT_OK) protobuf_c_message_free_unpacked(pm, NULL);
  return st;
}

/* ---- helpers for the library
 * -------------------------------------------------------- */

aiplat_status aip_msg_set_error(aiplat_msg *reply, aiplat_status code,
                                const char *text) {
  aiplat_msg *err = NULL;
  aiplat_status st = aiplat_msg_mutable_message(reply, "error", &err);
  if (st != AIPLAT_OK || !err) return st != AIPLAT_OK ? st : no_memory(reply);
  if (err->pm->descriptor != &aiplat__messages__v1__error__descriptor)
    return aip_fail(&reply->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "message: %s.error is not an Error",
                    reply->pm->descriptor->name);
  Aiplat__Messages__V1__Error *e = (Aiplat__Messages__V1__Error *)err->pm;
  e->code = (Aiplat__Messages__V1__ErrorCode)code;
  e->retryable = code == AIPLAT_ERR_TIMEOUT || code == AIPLAT_ERR_CONNECTION ||
                 code == AIPLAT_ERR_RATE_LIMITED ||
                 code == AIPLAT_ERR_UNAVAILABLE;
  /* The wire needs UTF-8: anything else in the text becomes '?'. */
  char *copy = aip_strdup(text ? text : "");
  if (!copy) return no_memory(reply);
  size_t len = strlen(copy), off = 0, bad;
  while (!aip_utf8_check(copy + off, len - off, &bad)) {
    copy[off + bad] = '?';
    off += bad + 1;
  }
  bool ok = aip_msg_str_set(&e->message, copy);
  free(copy);
  return ok ? AIPLAT_OK : no_memory(reply);
}
