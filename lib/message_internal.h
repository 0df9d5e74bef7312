/* Internal side of the message component: the generated protobuf-c structs
 * behind an aiplat_msg, for C code in the library (the service framework,
 * the services' handlers). Not installed.
 *
 * Ownership rules for code that touches the generated structs directly
 * (docs/decisions/0005-message-access.md):
 *  - Everything a message points to is allocated with malloc() (protobuf-c's
 *    default allocator) and owned by the message, which is released with
 *    protobuf_c_message_free_unpacked(pm, NULL).
 *  - A string field holds a malloc'd NUL-terminated UTF-8 copy or the
 *    field's default (protobuf_c_empty_string); use aip_msg_str_set().
 *  - A presence field (`oneof _name { T name = N; }`) is present when its
 *    `_name_case` equals the field number.
 */
#ifndef AIPLAT_MESSAGE_INTERNAL_H
#define AIPLAT_MESSAGE_INTERNAL_H

#include <protobuf-c/protobuf-c.h>

#include "aiplat/messages/v1/messages.pb-c.h"
#include "internal.h"
#include "utf8.h"

/* Heuristic bounds of a decode: the memory protobuf-c may allocate for a
 * message is capped at AIP_MSG_MEM_FACTOR * its size + AIP_MSG_MEM_SLACK.
 * Real messages stay under 4x their size; a hostile run of empty elements
 * would reach 70x. */
#define AIP_MSG_MEM_FACTOR 4
#define AIP_MSG_MEM_SLACK (4u * 1024u * 1024u)
/* Nesting deeper than this is refused (the v1 schema nests 3 levels). */
#define AIP_MSG_MAX_DEPTH 32

/* The descriptor of a type; NULL for an invalid one. */
const ProtobufCMessageDescriptor *aip_msg_descriptor(aiplat_msg_type type);
/* The type of a descriptor; AIPLAT_MSG_INVALID when it is not a v1 type. */
aiplat_msg_type aip_msg_type_of(const ProtobufCMessageDescriptor *desc);

/* The generated struct behind a handle (top-level or child); borrowed. */
ProtobufCMessage *aip_msg_pb(aiplat_msg *m);
/* Wrap @pm (a v1 message following the rules above) in a new top-level
 * handle that owns it. On failure @pm is NOT freed. */
aiplat_status aip_msg_wrap(aiplat_msg **out, ProtobufCMessage *pm);
/* Take the generated struct out of a top-level handle and destroy the
 * handle; the caller frees it with protobuf_c_message_free_unpacked().
 * NULL for a child handle. */
ProtobufCMessage *aip_msg_release(aiplat_msg *m);

/* Check @len bytes against @desc: the wire walk of aiplat_msg_decode()
 * (tags, varints, wire types, lengths, UTF-8, memory estimate). @type_name
 * names the message in error messages. Records failures in @err. */
aiplat_status aip_msg_wire_check(const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *data, size_t len, aip_err *err);
/* Check and unpack @len bytes (at most @max_size) into a generated struct
 * (*out, freed with protobuf_c_message_free_unpacked(*out, NULL)). */
aiplat_status aip_msg_unpack(const ProtobufCMessageDescriptor *desc,
                             const uint8_t *data, size_t len, size_t max_size,
                             ProtobufCMessage **out, aip_err *err);
/* Pack a generated struct into a malloc'd buffer (*out, never NULL on
 * success). */
aiplat_status aip_msg_pack(const ProtobufCMessage *pm, uint8_t **out,
                           size_t *len, aip_err *err);

/* Replace a (non-oneof) string field's value with a copy of @value (NULL:
 * the empty default); frees the old value unless it is the default. False
 * on ENOMEM. Not for presence fields: protobuf-c would not encode the
 * default pointer. */
bool aip_msg_str_set(char **slot, const char *value);

/* Set the `error` child of a reply message (any v1 reply type) to @code and
 * @text. AIPLAT_ERR_INVALID_ARGUMENT when @reply has no `error` field. */
aiplat_status aip_msg_set_error(aiplat_msg *reply, aiplat_status code,
                                const char *text);

/* enable_rag: absent means true. */
static inline bool aip_chat_request_enable_rag(
    const Aiplat__Messages__V1__ChatRequest *r) {
  return r->_enable_rag_case ==
                 AIPLAT__MESSAGES__V1__CHAT_REQUEST___ENABLE_RAG_ENABLE_RAG
             ? (bool)r->enable_rag
             : true;
}

static inline bool aip_voice_request_enable_rag(
    const Aiplat__Messages__V1__VoiceRequest *r) {
  return r->_enable_rag_case ==
                 AIPLAT__MESSAGES__V1__VOICE_REQUEST___ENABLE_RAG_ENABLE_RAG
             ? (bool)r->enable_rag
             : true;
}

/* ---- raw field access (lib/message_field.c) ------------------------------
 * On generated structs, by descriptor. The callers check that the field
 * has the right kind and label and that values fit. */
aiplat_msg_type aip_msg_type_by_name(const char *name);
const ProtobufCFieldDescriptor *aip_pb_field(
    const ProtobufCMessageDescriptor *desc, const char *name);
aiplat_field_kind aip_pb_kind(const ProtobufCMessageDescriptor *desc,
                              const ProtobufCFieldDescriptor *f);
const char *aip_pb_type_label(const ProtobufCFieldDescriptor *f);
ProtobufCMessage *aip_pb_new(const ProtobufCMessageDescriptor *desc);
bool aip_pb_has(const ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f);
void aip_pb_clear(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f);
const char *aip_pb_str(const ProtobufCMessage *pm,
                       const ProtobufCFieldDescriptor *f);
bool aip_pb_set_str(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                    const char *v, size_t len);
void aip_pb_bytes(const ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                  const uint8_t **data, size_t *len);
bool aip_pb_set_bytes(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                      const uint8_t *data, size_t len);
bool aip_pb_is_unsigned(const ProtobufCFieldDescriptor *f);
int64_t aip_pb_i64(const ProtobufCMessage *pm,
                   const ProtobufCFieldDescriptor *f);
uint64_t aip_pb_u64(const ProtobufCMessage *pm,
                    const ProtobufCFieldDescriptor *f);
bool aip_pb_i64_fits(const ProtobufCFieldDescriptor *f, int64_t v);
bool aip_pb_u64_fits(const ProtobufCFieldDescriptor *f, uint64_t v);
/* Store an integer (its two's-complement bits; checked to fit). */
void aip_pb_store_int(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                      uint64_t bits);
double aip_pb_dbl(const ProtobufCMessage *pm,
                  const ProtobufCFieldDescriptor *f);
void aip_pb_store_dbl(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                      double v);
bool aip_pb_bool(const ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f);
void aip_pb_store_bool(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                       bool v);
ProtobufCMessage *aip_pb_sub(const ProtobufCMessage *pm,
                             const ProtobufCFieldDescriptor *f);
ProtobufCMessage *aip_pb_mutable_sub(ProtobufCMessage *pm,
                                     const ProtobufCFieldDescriptor *f);
size_t aip_pb_count(const ProtobufCMessage *pm,
                    const ProtobufCFieldDescriptor *f);
ProtobufCMessage *aip_pb_item(const ProtobufCMessage *pm,
                              const ProtobufCFieldDescriptor *f, size_t i);
ProtobufCMessage *aip_pb_add_item(ProtobufCMessage *pm,
                                  const ProtobufCFieldDescriptor *f);
void aip_pb_remove_item(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                        size_t i);
const char *aip_pb_map_key(const ProtobufCMessage *pm,
                           const ProtobufCFieldDescriptor *f, size_t i);
const char *aip_pb_map_value(const ProtobufCMessage *pm,
                             const ProtobufCFieldDescriptor *f, size_t i);
ptrdiff_t aip_pb_map_find(const ProtobufCMessage *pm,
                          const ProtobufCFieldDescriptor *f, const char *key);
bool aip_pb_map_set(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                    const char *key, const char *value);
bool aip_pb_map_remove(ProtobufCMessage *pm, const ProtobufCFieldDescriptor *f,
                       const char *key);
/* After unpacking: keep the last entry of each map key. False on ENOMEM. */
bool aip_pb_normalize(ProtobufCMessage *pm);

/* JSON (lib/message_json.c). */
aiplat_status aip_msg_json_dump(const ProtobufCMessage *pm, uint32_t flags,
                                char **out, aip_err *err);
aiplat_status aip_msg_json_load(const ProtobufCMessageDescriptor *desc,
                                const char *json, ProtobufCMessage **out,
                                aip_err *err);

/* Field helpers shared by message.c and message_json.c. */
bool aip_msg_field_is_map(const ProtobufCMessageDescriptor *parent,
                          const ProtobufCFieldDescriptor *f);
/* True for the fields that read true when absent (enable_rag). */
bool aip_msg_field_default_true(const ProtobufCMessageDescriptor *desc,
                                const ProtobufCFieldDescriptor *f);

#endif /* AIPLAT_MESSAGE_INTERNAL_H */
