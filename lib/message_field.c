/* Descriptor-driven access to the fields of protobuf-c messages: the layer
 * under the aiplat_msg handles and the JSON mapping. No handles here; the
 * callers check kinds and ranges and report errors. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "message_internal.h"

/* ---- types --------------------------------------------------------------- */

static const ProtobufCMessageDescriptor *const type_desc[] = {
    [AIPLAT_MSG_CHAT_REQUEST] = &aiplat__messages__v1__chat_request__descriptor,
    [AIPLAT_MSG_CHAT_RESPONSE] =
        &aiplat__messages__v1__chat_response__descriptor,
    [AIPLAT_MSG_CHAT_CHUNK] = &aiplat__messages__v1__chat_chunk__descriptor,
    [AIPLAT_MSG_VOICE_REQUEST] =
        &aiplat__messages__v1__voice_request__descriptor,
    [AIPLAT_MSG_VOICE_RESPONSE] =
        &aiplat__messages__v1__voice_response__descriptor,
    [AIPLAT_MSG_TRANSCRIBE_REQUEST] =
        &aiplat__messages__v1__transcribe_request__descriptor,
    [AIPLAT_MSG_TRANSCRIBE_RESPONSE] =
        &aiplat__messages__v1__transcribe_response__descriptor,
    [AIPLAT_MSG_SYNTHESIZE_REQUEST] =
        &aiplat__messages__v1__synthesize_request__descriptor,
    [AIPLAT_MSG_SYNTHESIZE_RESPONSE] =
        &aiplat__messages__v1__synthesize_response__descriptor,
    [AIPLAT_MSG_PIPELINE_TRIGGER] =
        &aiplat__messages__v1__pipeline_trigger__descriptor,
    [AIPLAT_MSG_PIPELINE_STATUS] =
        &aiplat__messages__v1__pipeline_status__descriptor,
    [AIPLAT_MSG_ERROR] = &aiplat__messages__v1__error__descriptor,
    [AIPLAT_MSG_SOURCE] = &aiplat__messages__v1__source__descriptor,
    [AIPLAT_MSG_USAGE] = &aiplat__messages__v1__usage__descriptor,
    [AIPLAT_MSG_SEGMENT] = &aiplat__messages__v1__segment__descriptor,
};

const ProtobufCMessageDescriptor *aip_msg_descriptor(aiplat_msg_type type) {
  if ((unsigned)type >= AIP_ARRAY_LEN(type_desc)) return NULL;
  return type_desc[type];
}

aiplat_msg_type aip_msg_type_of(const ProtobufCMessageDescriptor *desc) {
  for (size_t i = 1; i < AIP_ARRAY_LEN(type_desc); i++)
    if (type_desc[i] == desc) return (aiplat_msg_type)i;
  return AIPLAT_MSG_INVALID;
}

aiplat_msg_type aip_msg_type_by_name(const char *name) {
  if (!name) return AIPLAT_MSG_INVALID;
  for (size_t i = 1; i < AIP_ARRAY_LEN(type_desc); i++)
    if (strcmp(type_desc[i]->name, name) == 0 ||
        strcmp(type_desc[i]->short_name, name) == 0)
      return (aiplat_msg_type)i;
  return AIPLAT_MSG_INVALID;
}

/* ---- fields -------------------------------------------------------------- */

#define SLOT(pm, off) ((void *)((char *)(pm) + (off)))
#define CSLOT(pm, off) ((const void *)((const char *)(pm) + (off)))

const ProtobufCFieldDescriptor *aip_pb_field(
    const ProtobufCMessageDescriptor *desc, const char *name) {
  if (!name) return NULL;
  return protobuf_c_message_descriptor_get_field_by_name(desc, name);
}

bool aip_msg_field_is_map(const ProtobufCMessageDescriptor *parent,
                          const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED ||
      f->type != PROTOBUF_C_TYPE_MESSAGE)
    return false;
  const ProtobufCMessageDescriptor *e = f->descriptor;
  /* protoc makes map<K,V> name a repeated nested type "<Name>Entry" with
   * key = 1 and value = 2; only map<string, string> is a MAP here. */
  if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
      e->fields[0].type != PROTOBUF_C_TYPE_STRING ||
      e->fields[1].type != PROTOBUF_C_TYPE_STRING ||
      strcmp(e->fields[0].name, "key") != 0 ||
      strcmp(e->fields[1].name, "value") != 0)
    return false;
  size_t plen = strlen(parent->name), slen = strlen(e->short_name);
  return slen > 5 && strcmp(e->short_name + slen - 5, "Entry") == 0 &&
         strncmp(e->name, parent->name, plen) == 0 && e->name[plen] == '.' &&
         strcmp(e->name + plen + 1, e->short_name) == 0;
}

bool aip_msg_field_default_true(const ProtobufCMessageDescriptor *desc,
                                const ProtobufCFieldDescriptor *f) {
  /* The platform's convention: enable_rag is on unless turned off. */
  return f->type == PROTOBUF_C_TYPE_BOOL &&
         (desc == &aiplat__messages__v1__chat_request__descriptor ||
          desc == &aiplat__messages__v1__voice_request__descriptor) &&
         strcmp(f->name, "enable_rag") == 0;
}

aiplat_field_kind aip_pb_kind(const ProtobufCMessageDescriptor *desc,
                              const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
      return AIPLAT_FIELD_STRING;
    case PROTOBUF_C_TYPE_BYTES:
      return AIPLAT_FIELD_BYTES;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return AIPLAT_FIELD_INT;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return AIPLAT_FIELD_UINT;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
      return AIPLAT_FIELD_DOUBLE;
    case PROTOBUF_C_TYPE_BOOL:
      return AIPLAT_FIELD_BOOL;
    case PROTOBUF_C_TYPE_ENUM:
      return AIPLAT_FIELD_ENUM;
    case PROTOBUF_C_TYPE_MESSAGE:
      return aip_msg_field_is_map(desc, f) ? AIPLAT_FIELD_MAP
                                           : AIPLAT_FIELD_MESSAGE;
  }
  return AIPLAT_FIELD_NONE;
}

const char *aip_pb_type_label(const ProtobufCFieldDescriptor *f) {
  static const char *const names[] = {
      [PROTOBUF_C_TYPE_INT32] = "int32",
      [PROTOBUF_C_TYPE_SINT32] = "sint32",
      [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32",
      [PROTOBUF_C_TYPE_INT64] = "int64",
      [PROTOBUF_C_TYPE_SINT64] = "sint64",
      [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
      [PROTOBUF_C_TYPE_UINT32] = "uint32",
      [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
      [PROTOBUF_C_TYPE_UINT64] = "uint64",
      [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
      [PROTOBUF_C_TYPE_FLOAT] = "float",
      [PROTOBUF_C_TYPE_DOUBLE] = "double",
      [PROTOBUF_C_TYPE_BOOL] = "bool",
      [PROTOBUF_C_TYPE_ENUM] = "enum",
      [PROTOBUF_C_TYPE_STRING] = "string",
      [PROTOBUF_C_TYPE_BYTES] = "bytes",
      [PROTOBUF_C_TYPE_MESSAGE] = "message",
  };
  if ((unsigned)f->type < AIP_ARRAY_LEN(names) && names[f->type])
    return names[f->type];
  return "unknown";
}

static size_t elt_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return 8;
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

static uint32_t *oneof_case(ProtobufCMessage *pm,
                            const ProtobufCFieldDescriptor *f) {
  return (uint32_t *)SLOT(pm, f->quantifier_offset);
}

ProtobufCMessage *aip_pb_new(const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *pm = malloc(desc->sizeof_message);
  if (pm) protobuf_c_message_init(desc, pm);
  return pm;
}

/* Free what one stored value of type @f->type owns (not the slot). */
static void free_value(const ProtobufCFieldDescriptor *f, void *slot) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      char *s = *(char **)slot;
      if (s && s != (const char *)f->default_value &&
          s != protobuf_c_empty_string)
        free(s);
      break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      ProtobufCBinaryData *bd = slot;
      const ProtobufCBinaryData *def = f->default_value;
      if (bd->data && (!def || bd->data != def->data)) free(bd->data);
      break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      ProtobufCMessage *sub = *(ProtobufCMessage **)slot;
      if (sub && sub != f->default_value)
        protobuf_c_message_free_unpacked(sub, NULL);
      break;
    }
    default:
      break;
  }
}

/* Reset one single (non-repeated) slot to the field's default. */
static void reset_slot(const ProtobufCFieldDescriptor *f, void *slot) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
      *(char **)slot = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                           ? NULL
                           : (char *)protobuf_c_empty_string;
      break;
    case PROTOBUF_C_TYPE_MESSAGE:
      *(ProtobufCMessage **)slot = NULL;
      break;
    default:
      memset(slot, 0, elt_size(f->type));
      break;
  }
}

bool aip_pb_has(const ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f) {
  const void *slot = CSLOT(pm, f->offset);
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return *(const size_t *)CSLOT(pm, f->quantifier_offset) > 0;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    return *(const uint32_t *)CSLOT(pm, f->quantifier_offset) == f->id;
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)slot;
      return s && s[0];
    }
    case PROTOBUF_C_TYPE_MESSAGE:
      return *(ProtobufCMessage *const *)slot != NULL;
    case PROTOBUF_C_TYPE_BYTES:
      if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        return *(const protobuf_c_boolean *)CSLOT(pm, f->quantifier_offset);
      return ((const ProtobufCBinaryData *)slot)->len > 0;
    default:
      break;
  }
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
    return *(const protobuf_c_boolean *)CSLOT(pm, f->quantifier_offset);
  switch (elt_size(f->type)) {
    case 4:
      if (f->type == PROTOBUF_C_TYPE_FLOAT) return *(const float *)slot != 0;
      return *(const uint32_t *)slot != 0;
    case 8:
      if (f->type == PROTOBUF_C_TYPE_DOUBLE) return *(const double *)slot != 0;
      return *(const uint64_t *)slot != 0;
    default:
      return false;
  }
}

void aip_pb_clear(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f) {
  void *slot = SLOT(pm, f->offset);
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t *n = SLOT(pm, f->quantifier_offset);
    char *arr = *(char **)slot;
    size_t sz = elt_size(f->type);
    for (size_t i = 0; arr && i < *n; i++) free_value(f, arr + i * sz);
    free(arr);
    *(void **)slot = NULL;
    *n = 0;
    return;
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *c = oneof_case(pm, f);
    if (*c != f->id) return;
    free_value(f, slot);
    reset_slot(f, slot);
    *c = 0;
    return;
  }
  free_value(f, slot);
  reset_slot(f, slot);
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
      f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
    *(protobuf_c_boolean *)SLOT(pm, f->quantifier_offset) = 0;
}

/* Make @f's slot ready for a new value: for a oneof member, release what
 * the slot holds (this member's old value or another member's); for other
 * fields, release the old value. Returns the slot. */
static void *prepare_store(ProtobufCMessage *pm,
                           const ProtobufCFieldDescriptor *f) {
  void *slot = SLOT(pm, f->offset);
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *c = oneof_case(pm, f);
    if (*c == f->id) {
      free_value(f, slot);
    } else if (*c != 0) {
      const ProtobufCFieldDescriptor *other =
          protobuf_c_message_descriptor_get_field(pm->descriptor, *c);
      if (other) free_value(other, slot); /* shares the union's storage */
    }
    *c = 0;
    reset_slot(f, slot);
    return slot;
  }
  free_value(f, slot);
  return slot;
}

static void mark_present(ProtobufCMessage *pm,
                         const ProtobufCFieldDescriptor *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *oneof_case(pm, f) = f->id;
  else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
           f->type != PROTOBUF_C_TYPE_STRING &&
           f->type != PROTOBUF_C_TYPE_MESSAGE)
    *(protobuf_c_boolean *)SLOT(pm, f->quantifier_offset) = 1;
}

/* ---- strings and bytes --------------------------------------------------- */

const char *aip_pb_str(const ProtobufCMessage *pm,
                       const ProtobufCFieldDescriptor *f) {
  if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
      *(const uint32_t *)CSLOT(pm, f->quantifier_offset) != f->id)
    return "";
  const char *s = *(char *const *)CSLOT(pm, f->offset);
  return s ? s : "";
}

bool aip_pb_set_str(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                    const char *v, size_t len) {
  char *copy = malloc(len + 1);
  if (!copy) return false;
  memcpy(copy, v, len);
  copy[len] = '\0';
  char **slot = prepare_store(pm, f);
  *slot = copy;
  mark_present(pm, f);
  return true;
}

void aip_pb_bytes(const ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                  const uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
      *(const uint32_t *)CSLOT(pm, f->quantifier_offset) != f->id)
    return;
  const ProtobufCBinaryData *bd = CSLOT(pm, f->offset);
  if (bd->len > 0) {
    *data = bd->data;
    *len = bd->len;
  }
}

bool aip_pb_set_bytes(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                      const uint8_t *data, size_t len) {
  uint8_t *copy = NULL;
  if (len > 0) {
    if (!(copy = malloc(len))) return false;
    memcpy(copy, data, len);
  }
  ProtobufCBinaryData *bd = prepare_store(pm, f);
  bd->data = copy;
  bd->len = len;
  mark_present(pm, f);
  return true;
}

/* ---- numbers ------------------------------------------------------------- */

static bool oneof_absent(const ProtobufCMessage *pm,
                         const ProtobufCFieldDescriptor *f) {
  return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
         *(const uint32_t *)CSLOT(pm, f->quantifier_offset) != f->id;
}

int64_t aip_pb_i64(const ProtobufCMessage *pm,
                   const ProtobufCFieldDescriptor *f) {
  if (oneof_absent(pm, f)) return 0;
  const void *slot = CSLOT(pm, f->offset);
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
      return *(const int32_t *)slot;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return *(const uint32_t *)slot;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return *(const int64_t *)slot;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return (int64_t) * (const uint64_t *)slot;
    default:
      return 0;
  }
}

uint64_t aip_pb_u64(const ProtobufCMessage *pm,
                    const ProtobufCFieldDescriptor *f) {
  if (oneof_absent(pm, f)) return 0;
  const void *slot = CSLOT(pm, f->offset);
  switch (f->type) {
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return *(const uint32_t *)slot;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return *(const uint64_t *)slot;
    default:
      return (uint64_t)aip_pb_i64(pm, f);
  }
}

bool aip_pb_is_unsigned(const ProtobufCFieldDescriptor *f) {
  return f->type == PROTOBUF_C_TYPE_UINT32 ||
         f->type == PROTOBUF_C_TYPE_FIXED32 ||
         f->type == PROTOBUF_C_TYPE_UINT64 ||
         f->type == PROTOBUF_C_TYPE_FIXED64;
}

bool aip_pb_i64_fits(const ProtobufCFieldDescriptor *f, int64_t v) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
      return v >= INT32_MIN && v <= INT32_MAX;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return v >= 0 && v <= (int64_t)UINT32_MAX;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return v >= 0;
    default:
      return true;
  }
}

bool aip_pb_u64_fits(const ProtobufCFieldDescriptor *f, uint64_t v) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return true;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return v <= UINT32_MAX;
    default:
      return v <= INT64_MAX && aip_pb_i64_fits(f, (int64_t)v);
  }
}

void aip_pb_store_int(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                      uint64_t bits) {
  void *slot = prepare_store(pm, f);
  if (elt_size(f->type) == 4) {
    uint32_t v = (uint32_t)bits; /* two's complement truncation: checked */
    memcpy(slot, &v, 4);
  } else {
    memcpy(slot, &bits, 8);
  }
  mark_present(pm, f);
}

double aip_pb_dbl(const ProtobufCMessage *pm,
                  const ProtobufCFieldDescriptor *f) {
  if (oneof_absent(pm, f)) return 0;
  const void *slot = CSLOT(pm, f->offset);
  if (f->type == PROTOBUF_C_TYPE_FLOAT) return *(const float *)slot;
  return *(const double *)slot;
}

void aip_pb_store_dbl(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                      double v) {
  void *slot = prepare_store(pm, f);
  if (f->type == PROTOBUF_C_TYPE_FLOAT)
    *(float *)slot = (float)v;
  else
    *(double *)slot = v;
  mark_present(pm, f);
}

bool aip_pb_bool(const ProtobufCMessage *pm,
                 const ProtobufCFieldDescriptor *f) {
  if (oneof_absent(pm, f)) return aip_msg_field_default_true(pm->descriptor, f);
  return *(const protobuf_c_boolean *)CSLOT(pm, f->offset) != 0;
}

void aip_pb_store_bool(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                       bool v) {
  protobuf_c_boolean *slot = prepare_store(pm, f);
  *slot = v ? 1 : 0;
  mark_present(pm, f);
}

/* ---- message fields ------------------------------------------------------ */

ProtobufCMessage *aip_pb_sub(const ProtobufCMessage *pm,
                             const ProtobufCFieldDescriptor *f) {
  if (oneof_absent(pm, f)) return NULL;
  return *(ProtobufCMessage *const *)CSLOT(pm, f->offset);
}

ProtobufCMessage *aip_pb_mutable_sub(ProtobufCMessage *pm,
                                     const ProtobufCFieldDescriptor *f) {
  ProtobufCMessage *sub = aip_pb_sub(pm, f);
  if (sub) return sub;
  if (!(sub = aip_pb_new(f->descriptor))) return NULL;
  ProtobufCMessage **slot = prepare_store(pm, f);
  *slot = sub;
  mark_present(pm, f);
  return sub;
}

size_t aip_pb_count(const ProtobufCMessage *pm,
                    const ProtobufCFieldDescriptor *f) {
  return *(const size_t *)CSLOT(pm, f->quantifier_offset);
}

ProtobufCMessage *aip_pb_item(const ProtobufCMessage *pm,
                              const ProtobufCFieldDescriptor *f, size_t i) {
  ProtobufCMessage *const *arr =
      *(ProtobufCMessage * *const *)CSLOT(pm, f->offset);
  return arr[i];
}

ProtobufCMessage *aip_pb_add_item(ProtobufCMessage *pm,
                                  const ProtobufCFieldDescriptor *f) {
  size_t *n = SLOT(pm, f->quantifier_offset);
  ProtobufCMessage ***slot = SLOT(pm, f->offset);
  if (*n >= SIZE_MAX / sizeof(ProtobufCMessage *) - 1) return NULL;
  ProtobufCMessage *sub = aip_pb_new(f->descriptor);
  if (!sub) return NULL;
  ProtobufCMessage **arr = realloc(*slot, (*n + 1) * sizeof *arr);
  if (!arr) {
    free(sub);
    return NULL;
  }
  arr[*n] = sub;
  *slot = arr;
  (*n)++;
  return sub;
}

void aip_pb_remove_item(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                        size_t i) {
  size_t *n = SLOT(pm, f->quantifier_offset);
  ProtobufCMessage ***slot = SLOT(pm, f->offset);
  ProtobufCMessage **arr = *slot;
  protobuf_c_message_free_unpacked(arr[i], NULL);
  memmove(arr + i, arr + i + 1, (*n - i - 1) * sizeof *arr);
  if (--*n == 0) {
    free(arr);
    *slot = NULL;
  }
}

/* ---- maps ---------------------------------------------------------------- */

static const char *entry_str(const ProtobufCMessage *e, unsigned idx) {
  const ProtobufCFieldDescriptor *f = &e->descriptor->fields[idx];
  return aip_pb_str(e, f);
}

const char *aip_pb_map_key(const ProtobufCMessage *pm,
                           const ProtobufCFieldDescriptor *f, size_t i) {
  return entry_str(aip_pb_item(pm, f, i), 0);
}

const char *aip_pb_map_value(const ProtobufCMessage *pm,
                             const ProtobufCFieldDescriptor *f, size_t i) {
  return entry_str(aip_pb_item(pm, f, i), 1);
}

/* The index of the last entry with @key, or -1. */
ptrdiff_t aip_pb_map_find(const ProtobufCMessage *pm,
                          const ProtobufCFieldDescriptor *f, const char *key) {
  for (size_t i = aip_pb_count(pm, f); i-- > 0;)
    if (strcmp(aip_pb_map_key(pm, f, i), key) == 0) return (ptrdiff_t)i;
  return -1;
}

bool aip_pb_map_set(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                    const char *key, const char *value) {
  ptrdiff_t at = aip_pb_map_find(pm, f, key);
  ProtobufCMessage *e;
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  if (at >= 0) {
    e = aip_pb_item(pm, f, (size_t)at);
    return aip_pb_set_str(e, vf, value, strlen(value));
  }
  if (!(e = aip_pb_add_item(pm, f))) return false;
  if (!aip_pb_set_str(e, kf, key, strlen(key)) ||
      !aip_pb_set_str(e, vf, value, strlen(value))) {
    aip_pb_remove_item(pm, f, aip_pb_count(pm, f) - 1);
    return false;
  }
  return true;
}

bool aip_pb_map_remove(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                       const char *key) {
  ptrdiff_t at = aip_pb_map_find(pm, f, key);
  if (at < 0) return false;
  aip_pb_remove_item(pm, f, (size_t)at);
  return true;
}

/* Sort entry indices by (key, position) to find duplicates in n log n. */
typedef struct {
  const char *key;
  size_t pos;
} key_pos;

static int key_pos_cmp(const void *a, const void *b) {
  const key_pos *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Keep only the last entry of each key (protobuf's rule for maps),
 * preserving the order of the survivors. */
static bool map_dedupe(ProtobufCMessage *pm,
                       const ProtobufCFieldDescriptor *f) {
  size_t n = aip_pb_count(pm, f);
  if (n < 2) return true;
  key_pos *kp = malloc(n * sizeof *kp);
  bool *drop = calloc(n, sizeof *drop);
  if (!kp || !drop) {
    free(kp);
    free(drop);
    return false;
  }
  for (size_t i = 0; i < n; i++) kp[i] = (key_pos){aip_pb_map_key(pm, f, i), i};
  qsort(kp, n, sizeof *kp, key_pos_cmp);
  for (size_t i = 0; i + 1 < n; i++)
    if (strcmp(kp[i].key, kp[i + 1].key) == 0) drop[kp[i].pos] = true;
  free(kp);
  ProtobufCMessage **arr = *(ProtobufCMessage ***)SLOT(pm, f->offset);
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    if (drop[i])
      protobuf_c_message_free_unpacked(arr[i], NULL);
    else
      arr[out++] = arr[i];
  }
  *(size_t *)SLOT(pm, f->quantifier_offset) = out;
  free(drop);
  return true;
}

bool aip_pb_normalize(ProtobufCMessage *pm) {
  const ProtobufCMessageDescriptor *d = pm->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      if (aip_msg_field_is_map(d, f)) {
        if (!map_dedupe(pm, f)) return false;
        continue;
      }
      for (size_t j = 0; j < aip_pb_count(pm, f); j++)
        if (!aip_pb_normalize(aip_pb_item(pm, f, j))) return false;
    } else {
      ProtobufCMessage *sub = aip_pb_sub(pm, f);
      if (sub && !aip_pb_normalize(sub)) return false;
    }
  }
  return true;
}

bool aip_msg_str_set(char **slot, const char *value) {
  char *copy = NULL;
  if (value && value[0] && !(copy = strdup(value))) return false;
  if (*slot && *slot != protobuf_c_empty_string) free(*slot);
  *slot = copy ? copy : (char *)protobuf_c_empty_string;
  return true;
}
