/**
 * @file aiplat/message.h
 * @brief The v1 wire messages, read and written by field name.
 *
 * The schema is proto/aiplat/messages/v1/messages.proto (installed under
 * `$(pkg-config --variable=protodir aiplat)`), so programs in other
 * languages may use their own protobuf library instead of this API; the
 * bytes are the same. Decisions and an FFI example:
 * docs/decisions/0005-message-access.md.
 *
 * A message is an opaque ::aiplat_msg handle of one ::aiplat_msg_type.
 * Fields are named as in the .proto file ("user_id", "enable_rag") and read
 * or written with the function of their kind (aiplat_msg_field_info() tells
 * the kind):
 *
 * | kind                   | read / write                                  |
 * |------------------------|-----------------------------------------------|
 * | ::AIPLAT_FIELD_STRING  | aiplat_msg_get_string() / _set_string()       |
 * | ::AIPLAT_FIELD_BYTES   | aiplat_msg_get_bytes() / _set_bytes()         |
 * | ::AIPLAT_FIELD_INT     | aiplat_msg_get_int64() / _set_int64()         |
 * | ::AIPLAT_FIELD_UINT    | aiplat_msg_get_uint64() / _set_uint64()       |
 * |                        | (and the int64 pair while the value fits)     |
 * | ::AIPLAT_FIELD_ENUM    | aiplat_msg_get_int64() / _set_int64()         |
 * | ::AIPLAT_FIELD_DOUBLE  | aiplat_msg_get_double() / _set_double()       |
 * | ::AIPLAT_FIELD_BOOL    | aiplat_msg_get_bool() / _set_bool()           |
 * | ::AIPLAT_FIELD_MESSAGE | aiplat_msg_get_message() / _mutable_message() |
 * | repeated message       | aiplat_msg_count(), _get_item(), _add_item()  |
 * | ::AIPLAT_FIELD_MAP     | aiplat_msg_count(), aiplat_msg_map_*()        |
 *
 * Using the wrong function for a field, or a name the type does not have,
 * fails with ::AIPLAT_ERR_INVALID_ARGUMENT and a message naming the type and
 * the field.
 *
 * Absent fields read as their default: "", empty bytes, 0, false, except
 * `enable_rag` of ChatRequest and VoiceRequest, which reads **true** when
 * absent (the platform's convention). aiplat_msg_has() tells whether a field
 * is present.
 *
 * Ownership: strings and bytes passed in are copied. Strings, bytes and
 * child handles returned are borrowed from the message: they stay valid
 * until that field (or a field holding it) is set, cleared or removed, or
 * the top-level message is destroyed. Buffers returned through `out`
 * pointers of encode and JSON functions are the caller's, released with
 * aiplat_free().
 *
 * Thread: a message and its children belong to one thread at a time;
 * distinct messages may be used on different threads at once.
 */
#ifndef AIPLAT_MESSAGE_H
#define AIPLAT_MESSAGE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A message: a top-level one (created, decoded, copied) or a child
 *  borrowed from its parent. */
typedef struct aiplat_msg aiplat_msg;

/**
 * The message types of aiplat.messages.v1. The numbers are pinned (part of
 * the ABI) and only appended.
 */
typedef enum aiplat_msg_type {
  AIPLAT_MSG_INVALID = 0,
  AIPLAT_MSG_CHAT_REQUEST = 1,        /**< aiplat.messages.v1.ChatRequest */
  AIPLAT_MSG_CHAT_RESPONSE = 2,       /**< aiplat.messages.v1.ChatResponse */
  AIPLAT_MSG_CHAT_CHUNK = 3,          /**< aiplat.messages.v1.ChatChunk */
  AIPLAT_MSG_VOICE_REQUEST = 4,       /**< aiplat.messages.v1.VoiceRequest */
  AIPLAT_MSG_VOICE_RESPONSE = 5,      /**< aiplat.messages.v1.VoiceResponse */
  AIPLAT_MSG_TRANSCRIBE_REQUEST = 6,  /**< ...v1.TranscribeRequest */
  AIPLAT_MSG_TRANSCRIBE_RESPONSE = 7, /**< ...v1.TranscribeResponse */
  AIPLAT_MSG_SYNTHESIZE_REQUEST = 8,  /**< ...v1.SynthesizeRequest */
  AIPLAT_MSG_SYNTHESIZE_RESPONSE = 9, /**< ...v1.SynthesizeResponse */
  AIPLAT_MSG_PIPELINE_TRIGGER = 10,   /**< ...v1.PipelineTrigger */
  AIPLAT_MSG_PIPELINE_STATUS = 11,    /**< ...v1.PipelineStatus */
  AIPLAT_MSG_ERROR = 12,              /**< aiplat.messages.v1.Error */
  AIPLAT_MSG_SOURCE = 13,             /**< aiplat.messages.v1.Source */
  AIPLAT_MSG_USAGE = 14,              /**< aiplat.messages.v1.Usage */
  AIPLAT_MSG_SEGMENT = 15             /**< aiplat.messages.v1.Segment */
} aiplat_msg_type;

/** How a field is read and written (see the table at the top). Pinned. */
typedef enum aiplat_field_kind {
  AIPLAT_FIELD_NONE = 0,
  AIPLAT_FIELD_STRING = 1, /**< UTF-8 text */
  AIPLAT_FIELD_BYTES = 2,  /**< binary data */
  AIPLAT_FIELD_INT = 3,    /**< int32, int64, sint32/64, sfixed32/64 */
  AIPLAT_FIELD_UINT = 4,   /**< uint32, uint64, fixed32/64 */
  AIPLAT_FIELD_DOUBLE = 5, /**< double or float */
  AIPLAT_FIELD_BOOL = 6,
  AIPLAT_FIELD_ENUM = 7,    /**< an enum, read and written as its number */
  AIPLAT_FIELD_MESSAGE = 8, /**< a nested message (single or repeated) */
  AIPLAT_FIELD_MAP = 9      /**< map<string, string> */
} aiplat_field_kind;

/** Flags of aiplat_msg_to_json_flags(); combine with `|`. Pinned. */
typedef enum aiplat_msg_json_flags {
  AIPLAT_MSG_JSON_DEFAULT = 0,
  AIPLAT_MSG_JSON_PRETTY = 1,     /**< indented, one field per line */
  AIPLAT_MSG_JSON_ELIDE_BYTES = 2 /**< bytes as "<N bytes>" (for logs) */
} aiplat_msg_json_flags;

/** Largest encoded message aiplat_msg_decode() accepts: 8 MiB (8388608). */
#define AIPLAT_MSG_MAX_SIZE (8u * 1024u * 1024u)

/* ---- creating and destroying --------------------------------------------- */

/**
 * Create an empty message of @p type (every field absent).
 * Ownership: the caller owns @p *out; free it with aiplat_msg_destroy().
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT (NULL @p out, unknown type),
 * ::AIPLAT_ERR_NO_MEMORY.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_create(aiplat_msg **out,
                                           aiplat_msg_type type);

/**
 * Create an empty message of the type named @p type_name: its full name
 * ("aiplat.messages.v1.ChatRequest") or its short name ("ChatRequest").
 * Errors: ::AIPLAT_ERR_NOT_FOUND for a name that is not a v1 type.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_create_by_name(aiplat_msg **out,
                                                   const char *type_name);

/**
 * Destroy a top-level message with all its children; every pointer
 * borrowed from it becomes invalid. NULL is a no-op, and so is a child
 * handle (children are released with their top-level message).
 * @since 1.0
 */
AIPLAT_API void aiplat_msg_destroy(aiplat_msg *m);

/**
 * A deep copy of @p m (top-level or child) as a new top-level message,
 * including fields unknown to this version. Free it with aiplat_msg_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_copy(aiplat_msg **out, aiplat_msg *m);

/**
 * Copy the detail of the last failure on @p m (or a child) into @p buf
 * (NUL-terminated, truncated to @p buflen - 1) and return its status;
 * ::AIPLAT_OK and "" when nothing failed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_last_error(aiplat_msg *m, char *buf,
                                               size_t buflen);

/* ---- types and introspection --------------------------------------------- */

/**
 * The type of @p m; ::AIPLAT_MSG_INVALID for NULL.
 * @since 1.0
 */
AIPLAT_API aiplat_msg_type aiplat_msg_get_type(aiplat_msg *m);

/** The full protobuf name of @p type ("aiplat.messages.v1.ChatRequest");
 *  static; NULL for a number that is not a type.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_msg_type_name(aiplat_msg_type type);

/**
 * The type whose full or short name is @p name.
 * Errors: ::AIPLAT_ERR_NOT_FOUND (and @p *out = ::AIPLAT_MSG_INVALID).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_type_by_name(const char *name,
                                                 aiplat_msg_type *out);

/**
 * The number of fields of @p type (0 for an invalid type).
 * @since 1.0
 */
AIPLAT_API size_t aiplat_msg_type_field_count(aiplat_msg_type type);

/** The name of field @p index (0-based, in field-number order) of @p type;
 *  static; NULL when out of range.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_msg_type_field_name(aiplat_msg_type type,
                                                  size_t index);

/**
 * Describe field @p field of @p type. Any of the out pointers may be NULL.
 * @p kind: how it is accessed; @p repeated: true for a repeated field (and
 * for a map); @p message_type: for ::AIPLAT_FIELD_MESSAGE, the type of the
 * child, else ::AIPLAT_MSG_INVALID; @p number: the field number.
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT (no such type or field).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_field_info(
    aiplat_msg_type type, const char *field, aiplat_field_kind *kind,
    bool *repeated, aiplat_msg_type *message_type, uint32_t *number);

/* ---- presence ------------------------------------------------------------ */

/**
 * Whether @p field is present in @p m. For `enable_rag`, the overrides of
 * ChatRequest and nested messages: whether it was set (even to its zero
 * value). For other single fields (proto3 implicit presence): whether it
 * differs from its default, which is what gets encoded. For repeated and
 * map fields: whether they have elements. False also for an unknown field
 * name, which is recorded as ::AIPLAT_ERR_INVALID_ARGUMENT in @p m.
 * @since 1.0
 */
AIPLAT_API bool aiplat_msg_has(aiplat_msg *m, const char *field);

/**
 * Make @p field absent: the default value, no element. Borrowed strings,
 * bytes and child handles taken from the field become invalid.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_clear_field(aiplat_msg *m,
                                                const char *field);

/* ---- single fields ------------------------------------------------------- */

/**
 * Read a string field: @p *out is its UTF-8 text, never NULL ("" when
 * absent). Borrowed (see the file comment).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_string(aiplat_msg *m, const char *field,
                                               const char **out);

/**
 * Set a string field to a copy of @p value (NUL-terminated).
 * Errors: ::AIPLAT_ERR_INVALID_ARGUMENT for NULL or invalid UTF-8 (the wire
 * format requires UTF-8; other implementations reject the message).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_set_string(aiplat_msg *m, const char *field,
                                               const char *value);

/**
 * Read a bytes field: @p *data (borrowed, NULL when empty) and @p *len.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_bytes(aiplat_msg *m, const char *field,
                                              const uint8_t **data,
                                              size_t *len);

/**
 * Set a bytes field to a copy of @p len bytes at @p data (NULL if 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_set_bytes(aiplat_msg *m, const char *field,
                                              const uint8_t *data, size_t len);

/**
 * Read an integer or enum field. A uint64 field whose value exceeds
 * INT64_MAX fails with ::AIPLAT_ERR_INVALID_ARGUMENT (use get_uint64).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_int64(aiplat_msg *m, const char *field,
                                              int64_t *out);

/**
 * Set an integer or enum field. The value must fit the field's type
 * (int32: -2^31..2^31-1, unsigned: >= 0, ...), else
 * ::AIPLAT_ERR_INVALID_ARGUMENT. Enum fields accept any int32 (numbers a
 * newer schema may define).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_set_int64(aiplat_msg *m, const char *field,
                                              int64_t value);

/**
 * Read an unsigned field (or a signed one holding a value >= 0).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_uint64(aiplat_msg *m, const char *field,
                                               uint64_t *out);

/**
 * Set an unsigned or signed integer field; the value must fit.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_set_uint64(aiplat_msg *m, const char *field,
                                               uint64_t value);

/**
 * Read a double or float field.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_double(aiplat_msg *m, const char *field,
                                               double *out);

/**
 * Set a double or float field (NaN and infinities are allowed).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_set_double(aiplat_msg *m, const char *field,
                                               double value);

/**
 * Read a bool field (`enable_rag` reads true when absent).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_bool(aiplat_msg *m, const char *field,
                                             bool *out);

/**
 * Set a bool field; `enable_rag` becomes present even when false.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_set_bool(aiplat_msg *m, const char *field,
                                             bool value);

/* ---- nested messages ----------------------------------------------------- */

/**
 * The child message in single message field @p field, or @p *child = NULL
 * when it is absent (the call does not create it). Borrowed: valid until
 * the field is cleared or the top-level message destroyed; never destroy it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_message(aiplat_msg *m,
                                                const char *field,
                                                aiplat_msg **child);

/**
 * The child message in @p field, created empty (and so made present) when
 * absent. Borrowed, as aiplat_msg_get_message().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_mutable_message(aiplat_msg *m,
                                                    const char *field,
                                                    aiplat_msg **child);

/* ---- repeated messages and maps ------------------------------------------ */

/**
 * The number of elements of a repeated or map field.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_count(aiplat_msg *m, const char *field,
                                          size_t *out);

/**
 * Element @p index of a repeated message field, borrowed: valid until it is
 * removed, the field is cleared or the top-level message destroyed (adding
 * elements does not invalidate it).
 * Errors: ::AIPLAT_ERR_NOT_FOUND when @p index >= the count.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_get_item(aiplat_msg *m, const char *field,
                                             size_t index, aiplat_msg **child);

/** Append an empty element to a repeated message field; @p *child is it,
 *  borrowed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_add_item(aiplat_msg *m, const char *field,
                                             aiplat_msg **child);

/** Remove element @p index of a repeated message field; later elements move
 *  down by one and their handles stay valid.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_remove_item(aiplat_msg *m,
                                                const char *field,
                                                size_t index);

/** The key of entry @p index (0-based, in insertion or wire order) of a
 *  map field; borrowed. ::AIPLAT_ERR_NOT_FOUND when out of range.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_map_key(aiplat_msg *m, const char *field,
                                            size_t index, const char **key);

/**
 * The value of entry @p index of a map field; borrowed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_map_value(aiplat_msg *m, const char *field,
                                              size_t index, const char **value);

/**
 * The value for @p key in a map field; borrowed.
 * Errors: ::AIPLAT_ERR_NOT_FOUND (and @p *value = NULL) when there is none.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_map_get(aiplat_msg *m, const char *field,
                                            const char *key,
                                            const char **value);

/** Set @p key to @p value in a map field (both copied, both UTF-8);
 *  replaces an existing entry in place, else appends.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_map_set(aiplat_msg *m, const char *field,
                                            const char *key, const char *value);

/**
 * Remove @p key from a map field. ::AIPLAT_ERR_NOT_FOUND when absent.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_map_remove(aiplat_msg *m, const char *field,
                                               const char *key);

/* ---- wire format --------------------------------------------------------- */

/**
 * Encode @p m (top-level or child) in the protobuf wire format, fields in
 * field-number order, then fields unknown to this version as they arrived.
 * @p *out is allocated (even for an empty message, @p *len = 0) and freed
 * with aiplat_free().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_encode(aiplat_msg *m, uint8_t **out,
                                           size_t *len);

/**
 * The number of bytes aiplat_msg_encode() would produce.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_encoded_size(aiplat_msg *m, size_t *out);

/**
 * Decode @p len bytes at @p data as a message of @p type, accepting at most
 * ::AIPLAT_MSG_MAX_SIZE bytes. Fields unknown to this version are kept and
 * encoded again by aiplat_msg_encode(). Ownership: the caller owns
 * @p *out (aiplat_msg_destroy()); @p data is not kept.
 * Errors (detail in aiplat_error_last(), naming the type and the field):
 * ::AIPLAT_ERR_TOO_LARGE when @p len exceeds the limit or the message would
 * need far more memory than its size (a hostile repetition of empty
 * elements); ::AIPLAT_ERR_DECODE for bytes that are not a valid message of
 * @p type: truncated, a malformed varint or tag, a field with the wrong wire
 * type, a length past the end, a string that is not UTF-8 or contains a NUL
 * byte, protobuf groups.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_decode(aiplat_msg **out,
                                           aiplat_msg_type type,
                                           const uint8_t *data, size_t len);

/** aiplat_msg_decode() with an explicit size limit @p max_size (bytes, at
 *  least 1; above 2^31 - 1 the protobuf limit applies).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_decode_max(aiplat_msg **out,
                                               aiplat_msg_type type,
                                               const uint8_t *data, size_t len,
                                               size_t max_size);

/* ---- JSON
 * -------------------------------------------------------------------- */

/**
 * @p m as compact JSON in the protobuf JSON mapping, with the .proto field
 * names: absent fields are left out, enums are their names (numbers when
 * unknown), bytes are base64 (RFC 4648 with padding), 64-bit integers are
 * JSON numbers, NaN and infinities are "NaN", "Infinity", "-Infinity".
 * Protobuf JSON parsers in other languages read it. @p *out is
 * NUL-terminated, freed with aiplat_free().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_to_json(aiplat_msg *m, char **out);

/** aiplat_msg_to_json() with ::aiplat_msg_json_flags. With
 *  ::AIPLAT_MSG_JSON_ELIDE_BYTES the output is for people, not parsers.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_to_json_flags(aiplat_msg *m, uint32_t flags,
                                                  char **out);

/**
 * Parse @p json (a NUL-terminated JSON object) as a message of @p type.
 * Accepts what aiplat_msg_to_json() writes and the protobuf JSON mapping:
 * .proto or lowerCamelCase names, enums as names or numbers, 64-bit
 * integers as numbers or strings, bytes as standard or URL-safe base64,
 * null for "absent". Ownership: the caller owns @p *out.
 * Errors: ::AIPLAT_ERR_DECODE (not JSON, an unknown field, a value of the
 * wrong type or out of range; the message names the field),
 * ::AIPLAT_ERR_TOO_LARGE (over 2 * ::AIPLAT_MSG_MAX_SIZE bytes).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_msg_from_json(aiplat_msg **out,
                                              aiplat_msg_type type,
                                              const char *json);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_MESSAGE_H */
