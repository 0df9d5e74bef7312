/* Messages through the public API: every type and field kind, presence,
 * unknown fields, hostile bytes, size limits, type errors, maps, repeated
 * fields, JSON. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/testutil.h"

#define LAST_TYPE AIPLAT_MSG_SEGMENT

static char errbuf[512];

static const char *last_error(void) {
  aiplat_error_last(errbuf, sizeof errbuf);
  return errbuf;
}

static const char *msg_error(aiplat_msg *m) {
  aiplat_msg_last_error(m, errbuf, sizeof errbuf);
  return errbuf;
}

#define ASSERT_CONTAINS(hay, needle)                                           \
  ck_assert_msg(strstr((hay), (needle)) != NULL, "'%s' not in '%s'", (needle), \
                (hay))

static aiplat_msg *new_msg(aiplat_msg_type t) {
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, t), AIPLAT_OK);
  ck_assert_ptr_nonnull(m);
  return m;
}

static uint8_t *encode(aiplat_msg *m, size_t *len) {
  uint8_t *buf = NULL;
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, len), AIPLAT_OK);
  ck_assert_ptr_nonnull(buf);
  size_t sz;
  ck_assert_int_eq(aiplat_msg_encoded_size(m, &sz), AIPLAT_OK);
  ck_assert_uint_eq(sz, *len);
  return buf;
}

static aiplat_msg *decode_ok(aiplat_msg_type t, const uint8_t *b, size_t n) {
  aiplat_msg *m = NULL;
  aiplat_status st = aiplat_msg_decode(&m, t, b, n);
  ck_assert_msg(st == AIPLAT_OK, "decode: %s", last_error());
  return m;
}

/* ---- generic fill and verify over every field ---------------------------- */

/* Whether an INT field took the 64-bit test value (int32 ones refuse it). */
static bool took_wide(aiplat_msg *m, const char *name) {
  return strstr(name, "_at_ms") != NULL &&
         aiplat_msg_get_type(m) == AIPLAT_MSG_PIPELINE_STATUS;
}

static void expect_string(const char *name, int seed, char *buf, size_t n) {
  snprintf(buf, n, "%s-%d-\xc3\xbc\xe2\x9c\x93", name, seed); /* ü ✓ */
}

static size_t expect_bytes(int seed, uint32_t number, uint8_t *buf) {
  size_t n = 5 + (size_t)seed % 7;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 37 + number + seed);
  buf[0] = 0;
  buf[1] = 0xff;
  return n;
}

static int kinds_seen;

static void fill(aiplat_msg *m, int seed) {
  aiplat_msg_type t = aiplat_msg_get_type(m);
  size_t nf = aiplat_msg_type_field_count(t);
  ck_assert_uint_gt(nf, 0);
  for (size_t i = 0; i < nf; i++) {
    const char *name = aiplat_msg_type_field_name(t, i);
    aiplat_field_kind kind;
    bool rep;
    aiplat_msg_type mt;
    uint32_t num;
    ck_assert_int_eq(aiplat_msg_field_info(t, name, &kind, &rep, &mt, &num),
                     AIPLAT_OK);
    kinds_seen |= 1 << kind;
    char s[128];
    uint8_t b[16];
    aiplat_msg *child;
    switch (kind) {
      case AIPLAT_FIELD_STRING:
        expect_string(name, seed, s, sizeof s);
        ck_assert_int_eq(aiplat_msg_set_string(m, name, s), AIPLAT_OK);
        break;
      case AIPLAT_FIELD_BYTES:
        ck_assert_int_eq(
            aiplat_msg_set_bytes(m, name, b, expect_bytes(seed, num, b)),
            AIPLAT_OK);
        break;
      case AIPLAT_FIELD_INT:
        if (took_wide(m, name))
          ck_assert_int_eq(
              aiplat_msg_set_int64(m, name, 1700000000123LL + seed), AIPLAT_OK);
        else
          ck_assert_int_eq(
              aiplat_msg_set_int64(m, name, -(int64_t)(num * 1000 + seed)),
              AIPLAT_OK);
        break;
      case AIPLAT_FIELD_UINT:
        ck_assert_int_eq(
            aiplat_msg_set_uint64(m, name, 4000000000u + (uint64_t)seed),
            AIPLAT_OK);
        break;
      case AIPLAT_FIELD_ENUM:
        ck_assert_int_eq(aiplat_msg_set_int64(m, name, 9 + seed % 3),
                         AIPLAT_OK);
        break;
      case AIPLAT_FIELD_DOUBLE:
        ck_assert_int_eq(
            aiplat_msg_set_double(m, name, 0.1 * (num + seed) + 1e-9),
            AIPLAT_OK);
        break;
      case AIPLAT_FIELD_BOOL:
        /* enable_rag: false is the interesting value (absent reads true). */
        ck_assert_int_eq(
            aiplat_msg_set_bool(m, name, strcmp(name, "enable_rag") != 0),
            AIPLAT_OK);
        break;
      case AIPLAT_FIELD_MESSAGE:
        if (rep) {
          for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(aiplat_msg_add_item(m, name, &child), AIPLAT_OK);
            ck_assert_int_eq(aiplat_msg_get_type(child), mt);
            fill(child, seed + 10 + k);
          }
        } else {
          ck_assert_int_eq(aiplat_msg_mutable_message(m, name, &child),
                           AIPLAT_OK);
          ck_assert_int_eq(aiplat_msg_get_type(child), mt);
          fill(child, seed + 1);
        }
        break;
      case AIPLAT_FIELD_MAP:
        for (int k = 0; k < 3; k++) {
          char key[16];
          snprintf(key, sizeof key, "k%d", k);
          snprintf(s, sizeof s, "v%d-%d", k, seed);
          ck_assert_int_eq(aiplat_msg_map_set(m, name, key, s), AIPLAT_OK);
        }
        break;
      default:
        ck_abort_msg("field %s has no kind", name);
    }
  }
}

static void verify(aiplat_msg *m, int seed) {
  aiplat_msg_type t = aiplat_msg_get_type(m);
  size_t nf = aiplat_msg_type_field_count(t);
  for (size_t i = 0; i < nf; i++) {
    const char *name = aiplat_msg_type_field_name(t, i);
    aiplat_field_kind kind;
    bool rep, bv;
    uint32_t num;
    ck_assert_int_eq(aiplat_msg_field_info(t, name, &kind, &rep, NULL, &num),
                     AIPLAT_OK);
    char s[128];
    uint8_t b[16];
    const char *str;
    const uint8_t *data;
    size_t len, n;
    int64_t iv;
    uint64_t uv;
    double dv;
    aiplat_msg *child;
    /* Everything was set to a non-default value, except enable_rag=false,
     * which is present all the same. */
    ck_assert_msg(aiplat_msg_has(m, name), "%s.%s absent",
                  aiplat_msg_type_name(t), name);
    switch (kind) {
      case AIPLAT_FIELD_STRING:
        expect_string(name, seed, s, sizeof s);
        ck_assert_int_eq(aiplat_msg_get_string(m, name, &str), AIPLAT_OK);
        ck_assert_str_eq(str, s);
        break;
      case AIPLAT_FIELD_BYTES:
        n = expect_bytes(seed, num, b);
        ck_assert_int_eq(aiplat_msg_get_bytes(m, name, &data, &len), AIPLAT_OK);
        ck_assert_uint_eq(len, n);
        ck_assert_mem_eq(data, b, n);
        break;
      case AIPLAT_FIELD_INT:
        ck_assert_int_eq(aiplat_msg_get_int64(m, name, &iv), AIPLAT_OK);
        if (took_wide(m, name))
          ck_assert_int_eq(iv, 1700000000123LL + seed);
        else
          ck_assert_int_eq(iv, -(int64_t)(num * 1000 + seed));
        break;
      case AIPLAT_FIELD_UINT:
        ck_assert_int_eq(aiplat_msg_get_uint64(m, name, &uv), AIPLAT_OK);
        ck_assert_uint_eq(uv, 4000000000u + (uint64_t)seed);
        ck_assert_int_eq(aiplat_msg_get_int64(m, name, &iv), AIPLAT_OK);
        ck_assert_int_eq(iv, 4000000000LL + seed);
        break;
      case AIPLAT_FIELD_ENUM:
        ck_assert_int_eq(aiplat_msg_get_int64(m, name, &iv), AIPLAT_OK);
        ck_assert_int_eq(iv, 9 + seed % 3);
        break;
      case AIPLAT_FIELD_DOUBLE:
        ck_assert_int_eq(aiplat_msg_get_double(m, name, &dv), AIPLAT_OK);
        ck_assert(dv == 0.1 * (num + seed) + 1e-9);
        break;
      case AIPLAT_FIELD_BOOL:
        ck_assert_int_eq(aiplat_msg_get_bool(m, name, &bv), AIPLAT_OK);
        ck_assert(bv == (strcmp(name, "enable_rag") != 0));
        break;
      case AIPLAT_FIELD_MESSAGE:
        if (rep) {
          ck_assert_int_eq(aiplat_msg_count(m, name, &n), AIPLAT_OK);
          ck_assert_uint_eq(n, 2);
          for (size_t k = 0; k < 2; k++) {
            ck_assert_int_eq(aiplat_msg_get_item(m, name, k, &child),
                             AIPLAT_OK);
            verify(child, seed + 10 + (int)k);
          }
        } else {
          ck_assert_int_eq(aiplat_msg_get_message(m, name, &child), AIPLAT_OK);
          ck_assert_ptr_nonnull(child);
          verify(child, seed + 1);
        }
        break;
      case AIPLAT_FIELD_MAP:
        ck_assert_int_eq(aiplat_msg_count(m, name, &n), AIPLAT_OK);
        ck_assert_uint_eq(n, 3);
        for (size_t k = 0; k < 3; k++) {
          char key[16];
          snprintf(key, sizeof key, "k%zu", k);
          snprintf(s, sizeof s, "v%zu-%d", k, seed);
          ck_assert_int_eq(aiplat_msg_map_key(m, name, k, &str), AIPLAT_OK);
          ck_assert_str_eq(str, key);
          ck_assert_int_eq(aiplat_msg_map_value(m, name, k, &str), AIPLAT_OK);
          ck_assert_str_eq(str, s);
          ck_assert_int_eq(aiplat_msg_map_get(m, name, key, &str), AIPLAT_OK);
          ck_assert_str_eq(str, s);
        }
        break;
      default:
        ck_abort();
    }
  }
}

static aiplat_msg *filled(aiplat_msg_type t, int seed) {
  aiplat_msg *m = new_msg(t);
  fill(m, seed);
  return m;
}

START_TEST(round_trip_every_type_and_kind) {
  kinds_seen = 0;
  for (int t = 1; t <= LAST_TYPE; t++) {
    aiplat_msg *m = filled((aiplat_msg_type)t, t);
    verify(m, t);
    size_t len, len2;
    uint8_t *buf = encode(m, &len);
    ck_assert_uint_gt(len, 0);
    aiplat_msg *d = decode_ok((aiplat_msg_type)t, buf, len);
    ck_assert_int_eq(aiplat_msg_get_type(d), t);
    verify(d, t);
    uint8_t *buf2 = encode(d, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    aiplat_free(buf);
    aiplat_free(buf2);
    aiplat_msg_destroy(d);
    aiplat_msg_destroy(m);
  }
  /* The schema uses every kind the API has. */
  for (int k = AIPLAT_FIELD_STRING; k <= AIPLAT_FIELD_MAP; k++)
    ck_assert_msg(kinds_seen & (1 << k), "kind %d not exercised", k);
}
END_TEST

/* The field numbers are the wire contract: pin them with bytes computed by
 * hand from the .proto file. */
START_TEST(golden_bytes) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_REQUEST);
  ck_assert_int_eq(aiplat_msg_set_string(m, "user_id", "u"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "message", "hi"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_bool(m, "enable_rag", false), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", "r"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_int64(m, "max_tokens", 300), AIPLAT_OK);
  static const uint8_t want[] = {0x0a, 1,    'u', 0x12, 2,    'h',  'i', 0x18,
                                 0x00, 0x22, 1,   'r',  0x48, 0xac, 0x02};
  size_t len;
  uint8_t *buf = encode(m, &len);
  ck_assert_uint_eq(len, sizeof want);
  ck_assert_mem_eq(buf, want, sizeof want);
  aiplat_free(buf);
  aiplat_msg_destroy(m);

  m = new_msg(AIPLAT_MSG_PIPELINE_TRIGGER);
  ck_assert_int_eq(aiplat_msg_set_string(m, "engine", "argo"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_map_set(m, "parameters", "k", "v"), AIPLAT_OK);
  static const uint8_t want2[] = {0x12, 4,    'a', 'r', 'g',  'o', 0x2a,
                                  6,    0x0a, 1,   'k', 0x12, 1,   'v'};
  buf = encode(m, &len);
  ck_assert_uint_eq(len, sizeof want2);
  ck_assert_mem_eq(buf, want2, sizeof want2);
  aiplat_free(buf);
  aiplat_msg_destroy(m);

  m = new_msg(AIPLAT_MSG_ERROR);
  ck_assert_int_eq(aiplat_msg_set_int64(m, "code", AIPLAT_ERR_DECODE),
                   AIPLAT_OK);
  static const uint8_t want3[] = {0x08, 9};
  buf = encode(m, &len);
  ck_assert_uint_eq(len, sizeof want3);
  ck_assert_mem_eq(buf, want3, sizeof want3);
  aiplat_free(buf);
  aiplat_msg_destroy(m);
}
END_TEST

/* ---- presence ------------------------------------------------------------ */

static bool get_bool(aiplat_msg *m, const char *f) {
  bool v = false;
  ck_assert_int_eq(aiplat_msg_get_bool(m, f, &v), AIPLAT_OK);
  return v;
}

START_TEST(enable_rag_defaults_to_true) {
  static const aiplat_msg_type types[] = {AIPLAT_MSG_CHAT_REQUEST,
                                          AIPLAT_MSG_VOICE_REQUEST};
  for (size_t i = 0; i < 2; i++) {
    aiplat_msg *m = new_msg(types[i]);
    ck_assert(!aiplat_msg_has(m, "enable_rag"));
    ck_assert(get_bool(m, "enable_rag"));
    size_t len;
    uint8_t *buf = encode(m, &len);
    ck_assert_uint_eq(len, 0);
    aiplat_free(buf);
    aiplat_msg *d = decode_ok(types[i], (const uint8_t *)"", 0);
    ck_assert(get_bool(d, "enable_rag"));
    ck_assert(!aiplat_msg_has(d, "enable_rag"));
    aiplat_msg_destroy(d);

    ck_assert_int_eq(aiplat_msg_set_bool(m, "enable_rag", false), AIPLAT_OK);
    ck_assert(aiplat_msg_has(m, "enable_rag"));
    ck_assert(!get_bool(m, "enable_rag"));
    buf = encode(m, &len);
    ck_assert_uint_eq(len, 2); /* tag + 0: sent although false */
    d = decode_ok(types[i], buf, len);
    ck_assert(aiplat_msg_has(d, "enable_rag"));
    ck_assert(!get_bool(d, "enable_rag"));
    aiplat_msg_destroy(d);
    aiplat_free(buf);

    ck_assert_int_eq(aiplat_msg_set_bool(m, "enable_rag", true), AIPLAT_OK);
    ck_assert(aiplat_msg_has(m, "enable_rag"));
    ck_assert(get_bool(m, "enable_rag"));
    ck_assert_int_eq(aiplat_msg_clear_field(m, "enable_rag"), AIPLAT_OK);
    ck_assert(!aiplat_msg_has(m, "enable_rag"));
    ck_assert(get_bool(m, "enable_rag"));
    aiplat_msg_destroy(m);
  }
  /* An explicit false from another implementation (field 3, varint 0). */
  static const uint8_t off[] = {0x18, 0x00};
  aiplat_msg *d = decode_ok(AIPLAT_MSG_CHAT_REQUEST, off, sizeof off);
  ck_assert(!get_bool(d, "enable_rag"));
  aiplat_msg_destroy(d);
}
END_TEST

START_TEST(optional_overrides_keep_zero) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_REQUEST);
  static const char *const opt[] = {"model", "temperature", "max_tokens",
                                    "top_k"};
  for (size_t i = 0; i < 4; i++) ck_assert(!aiplat_msg_has(m, opt[i]));
  ck_assert_int_eq(aiplat_msg_set_double(m, "temperature", 0.0), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_int64(m, "top_k", 0), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "model", ""), AIPLAT_OK);
  size_t len;
  uint8_t *buf = encode(m, &len);
  aiplat_msg *d = decode_ok(AIPLAT_MSG_CHAT_REQUEST, buf, len);
  ck_assert(aiplat_msg_has(d, "temperature"));
  ck_assert(aiplat_msg_has(d, "top_k"));
  ck_assert(aiplat_msg_has(d, "model"));
  ck_assert(!aiplat_msg_has(d, "max_tokens"));
  double t = 1;
  ck_assert_int_eq(aiplat_msg_get_double(d, "temperature", &t), AIPLAT_OK);
  ck_assert(t == 0.0);
  const char *s = NULL;
  ck_assert_int_eq(aiplat_msg_get_string(d, "model", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "");
  ck_assert_int_eq(aiplat_msg_clear_field(d, "model"), AIPLAT_OK);
  ck_assert(!aiplat_msg_has(d, "model"));
  ck_assert_int_eq(aiplat_msg_get_string(d, "model", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "");
  aiplat_free(buf);
  aiplat_msg_destroy(d);

  /* Implicit presence: zero values are not sent and read as absent. */
  ck_assert_int_eq(aiplat_msg_set_string(m, "user_id", ""), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_bool(m, "stream", false), AIPLAT_OK);
  ck_assert(!aiplat_msg_has(m, "user_id"));
  ck_assert(!aiplat_msg_has(m, "stream"));
  ck_assert_int_eq(aiplat_msg_set_bool(m, "stream", true), AIPLAT_OK);
  ck_assert(aiplat_msg_has(m, "stream"));
  aiplat_msg_destroy(m);

  /* Nested messages: present once created, even when empty. */
  m = new_msg(AIPLAT_MSG_CHAT_RESPONSE);
  aiplat_msg *u = (aiplat_msg *)1;
  ck_assert_int_eq(aiplat_msg_get_message(m, "usage", &u), AIPLAT_OK);
  ck_assert_ptr_null(u);
  ck_assert(!aiplat_msg_has(m, "usage"));
  ck_assert_int_eq(aiplat_msg_mutable_message(m, "usage", &u), AIPLAT_OK);
  ck_assert(aiplat_msg_has(m, "usage"));
  buf = encode(m, &len);
  ck_assert_uint_eq(len, 2);
  d = decode_ok(AIPLAT_MSG_CHAT_RESPONSE, buf, len);
  ck_assert(aiplat_msg_has(d, "usage"));
  aiplat_free(buf);
  aiplat_msg_destroy(d);
  aiplat_msg_destroy(m);
}
END_TEST

/* ---- unknown fields ------------------------------------------------------ */

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle,
                     size_t k) {
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(hay + i, needle, k) == 0) return true;
  return false;
}

START_TEST(unknown_fields_survive) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_REQUEST);
  ck_assert_int_eq(aiplat_msg_set_string(m, "message", "hello"), AIPLAT_OK);
  size_t len;
  uint8_t *buf = encode(m, &len);
  aiplat_msg_destroy(m);
  /* A newer peer's fields: 99 (string), 100 (varint 150), 101 (fixed64). */
  static const uint8_t extra[] = {0x9a, 0x06, 6,    'f',  'u',  't',  'u',  'r',
                                  'e',  0xa0, 0x06, 0x96, 0x01, 0xa9, 0x06, 1,
                                  2,    3,    4,    5,    6,    7,    8};
  uint8_t *wire = malloc(len + sizeof extra);
  memcpy(wire, extra, sizeof extra); /* before the known field, even */
  memcpy(wire + sizeof extra, buf, len);
  aiplat_msg *d = decode_ok(AIPLAT_MSG_CHAT_REQUEST, wire, len + sizeof extra);
  const char *s;
  ck_assert_int_eq(aiplat_msg_get_string(d, "message", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "hello");
  /* Change a known field; the unknown ones still go out. */
  ck_assert_int_eq(aiplat_msg_set_string(d, "user_id", "u1"), AIPLAT_OK);
  size_t len2;
  uint8_t *out = encode(d, &len2);
  ck_assert_uint_eq(len2, len + sizeof extra + 4);
  ck_assert(contains(out, len2, extra, sizeof extra));
  /* A copy keeps them too. */
  aiplat_msg *c;
  ck_assert_int_eq(aiplat_msg_copy(&c, d), AIPLAT_OK);
  size_t len3;
  uint8_t *out3 = encode(c, &len3);
  ck_assert_uint_eq(len3, len2);
  ck_assert_mem_eq(out3, out, len2);
  aiplat_free(out3);
  aiplat_msg_destroy(c);
  aiplat_free(out);
  aiplat_msg_destroy(d);
  free(wire);
  aiplat_free(buf);

  /* Inside a nested message: ChatResponse.sources[0] with field 50. */
  static const uint8_t nested[] = {0x1a, 8,    0x0a, 1,   'x',
                                   0x92, 0x03, 2,    'n', 'w'};
  d = decode_ok(AIPLAT_MSG_CHAT_RESPONSE, nested, sizeof nested);
  aiplat_msg *src;
  ck_assert_int_eq(aiplat_msg_get_item(d, "sources", 0, &src), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_double(src, "score", 0.5), AIPLAT_OK);
  out = encode(d, &len2);
  static const uint8_t unk[] = {0x92, 0x03, 2, 'n', 'w'};
  ck_assert(contains(out, len2, unk, sizeof unk));
  aiplat_msg *d2 = decode_ok(AIPLAT_MSG_CHAT_RESPONSE, out, len2);
  ck_assert_int_eq(aiplat_msg_get_item(d2, "sources", 0, &src), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_string(src, "id", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "x");
  aiplat_msg_destroy(d2);
  aiplat_free(out);
  aiplat_msg_destroy(d);

  /* A newer ErrorCode value is kept as its number. */
  static const uint8_t code[] = {0x08, 0xe8, 0x07}; /* 1000 */
  d = decode_ok(AIPLAT_MSG_ERROR, code, sizeof code);
  int64_t v;
  ck_assert_int_eq(aiplat_msg_get_int64(d, "code", &v), AIPLAT_OK);
  ck_assert_int_eq(v, 1000);
  char *json;
  ck_assert_int_eq(aiplat_msg_to_json(d, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"code\":1000}");
  aiplat_free(json);
  aiplat_msg_destroy(d);
}
END_TEST

/* ---- truncation
 * -------------------------------------------------------------- */

/* Offsets where a top-level field ends, walked independently of the code
 * under test. */
static size_t boundaries(const uint8_t *b, size_t len, size_t *out) {
  size_t n = 0, i = 0;
  out[n++] = 0;
  while (i < len) {
    uint64_t tag = 0;
    for (int s = 0;; s += 7) {
      tag |= (uint64_t)(b[i] & 0x7f) << s;
      if (!(b[i++] & 0x80)) break;
    }
    uint64_t v = 0;
    switch (tag & 7) {
      case 0:
        while (b[i++] & 0x80) {
        }
        break;
      case 1:
        i += 8;
        break;
      case 5:
        i += 4;
        break;
      case 2:
        for (int s = 0;; s += 7) {
          v |= (uint64_t)(b[i] & 0x7f) << s;
          if (!(b[i++] & 0x80)) break;
        }
        i += v;
        break;
      default:
        ck_abort_msg("unexpected wire type");
    }
    out[n++] = i;
  }
  ck_assert_uint_eq(i, len);
  return n;
}

static void truncate_everywhere(aiplat_msg_type t, aiplat_msg *m) {
  size_t len;
  uint8_t *buf = encode(m, &len);
  size_t *bd = malloc((len + 1) * sizeof *bd);
  size_t nb = boundaries(buf, len, bd), next = 0, accepted = 0;
  for (size_t k = 0; k <= len; k++) {
    /* A fresh copy of exactly k bytes, so that ASan sees any over-read. */
    uint8_t *cut = malloc(k ? k : 1);
    memcpy(cut, buf, k);
    aiplat_msg *d = NULL;
    aiplat_status st = aiplat_msg_decode(&d, t, cut, k);
    bool at_boundary = next < nb && bd[next] == k;
    if (at_boundary) {
      next++;
      ck_assert_msg(st == AIPLAT_OK, "prefix %zu of %zu: %s", k, len,
                    last_error());
      /* A prefix ending on a field is a valid shorter message: the same
       * bytes come back. */
      size_t l2;
      uint8_t *again = encode(d, &l2);
      ck_assert_uint_eq(l2, k);
      ck_assert_mem_eq(again, buf, k);
      aiplat_free(again);
      accepted++;
    } else {
      ck_assert_msg(st == AIPLAT_ERR_DECODE, "prefix %zu of %zu gave %d", k,
                    len, st);
      ck_assert_ptr_null(d);
      ASSERT_CONTAINS(last_error(), aiplat_msg_type_name(t));
    }
    aiplat_msg_destroy(d);
    free(cut);
  }
  ck_assert_uint_eq(accepted, nb);
  free(bd);
  aiplat_free(buf);
}

START_TEST(truncated_at_every_byte) {
  for (int t = 1; t <= LAST_TYPE; t++) {
    aiplat_msg *m = filled((aiplat_msg_type)t, 3);
    truncate_everywhere((aiplat_msg_type)t, m);
    aiplat_msg_destroy(m);
  }
}
END_TEST

/* ---- hostile bytes
 * --------------------------------------------------------------- */

typedef struct bad_case {
  const char *what;
  aiplat_msg_type type;
  const char *bytes;
  size_t len;
  const char *expect; /* a piece of the error message */
} bad_case;

#define B(s) s, sizeof(s) - 1

static const bad_case bad_cases[] = {
    {"varint of 11 bytes", AIPLAT_MSG_CHAT_REQUEST,
     B("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), "malformed varint"},
    {"varint beyond 64 bits", AIPLAT_MSG_CHAT_REQUEST,
     B("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"), "malformed varint"},
    {"truncated varint", AIPLAT_MSG_CHAT_REQUEST, B("\x18\xff\xff"),
     "truncated varint"},
    {"truncated tag", AIPLAT_MSG_CHAT_REQUEST, B("\x80"),
     "truncated field tag"},
    {"tag of 6 bytes", AIPLAT_MSG_CHAT_REQUEST,
     B("\x80\x80\x80\x80\x80\x01\x00"), "malformed field tag"},
    {"field number 0", AIPLAT_MSG_CHAT_REQUEST, B("\x00\x00"),
     "field number 0"},
    {"string sent as varint", AIPLAT_MSG_CHAT_REQUEST, B("\x08\x01"),
     "wire type 0"},
    {"bool sent length-delimited", AIPLAT_MSG_CHAT_REQUEST, B("\x1a\x01\x01"),
     "'enable_rag'"},
    {"double sent as varint", AIPLAT_MSG_SOURCE, B("\x20\x01"), "'score'"},
    {"message sent as fixed32", AIPLAT_MSG_CHAT_RESPONSE,
     B("\x25\x01\x02\x03\x04"), "'usage'"},
    {"length past the end", AIPLAT_MSG_CHAT_REQUEST,
     B("\x0a\xff\xff\xff\xff\x07"
       "a"),
     "declares 2147483647 bytes but 1 remain"},
    {"length of 6 bytes", AIPLAT_MSG_CHAT_REQUEST,
     B("\x0a\x80\x80\x80\x80\x80\x00"), "malformed length"},
    {"truncated length", AIPLAT_MSG_CHAT_REQUEST, B("\x0a\x80"),
     "truncated length"},
    {"group start", AIPLAT_MSG_CHAT_REQUEST, B("\x0b\x0c"), "groups"},
    {"group end", AIPLAT_MSG_CHAT_REQUEST, B("\x0c"), "groups"},
    {"wire type 6", AIPLAT_MSG_CHAT_REQUEST, B("\x0e"), "invalid wire type 6"},
    {"wire type 7", AIPLAT_MSG_CHAT_REQUEST, B("\x0f"), "invalid wire type 7"},
    {"truncated fixed64", AIPLAT_MSG_SOURCE, B("\x21\x01\x02\x03"),
     "truncated 8-byte value"},
    {"truncated fixed32 of an unknown field", AIPLAT_MSG_SOURCE, B("\x7d\x01"),
     "truncated 4-byte value"},
    {"unknown field past the end", AIPLAT_MSG_SOURCE,
     B("\x7a\x05"
       "ab"),
     "declares 5 bytes"},
    {"bad UTF-8", AIPLAT_MSG_CHAT_REQUEST, B("\x12\x02\xc3\x28"), "UTF-8"},
    {"overlong UTF-8", AIPLAT_MSG_CHAT_REQUEST, B("\x12\x02\xc0\xaf"), "UTF-8"},
    {"UTF-16 surrogate", AIPLAT_MSG_CHAT_REQUEST, B("\x12\x03\xed\xa0\x80"),
     "UTF-8"},
    {"beyond U+10FFFF", AIPLAT_MSG_CHAT_REQUEST, B("\x12\x04\xf4\x90\x80\x80"),
     "UTF-8"},
    {"truncated UTF-8", AIPLAT_MSG_CHAT_REQUEST,
     B("\x12\x02"
       "a\xe2"),
     "UTF-8"},
    {"NUL in a string", AIPLAT_MSG_CHAT_REQUEST,
     B("\x12\x03"
       "a\0b"),
     "NUL"},
    {"bad UTF-8 in a map key", AIPLAT_MSG_PIPELINE_TRIGGER,
     B("\x2a\x04\x0a\x02\xff\xfe"), "in parameters"},
    {"nested: bad UTF-8 in sources[].text", AIPLAT_MSG_CHAT_RESPONSE,
     B("\x1a\x03\x12\x01\x80"), "in sources: string field 'text'"},
    {"nested: truncated inside usage", AIPLAT_MSG_CHAT_RESPONSE,
     B("\x22\x02\x08\x80"), "in usage: truncated varint"},
    {"nested length past the parent's end", AIPLAT_MSG_CHAT_RESPONSE,
     B("\x1a\x03\x12\x05"
       "a"),
     "in sources"},
};

START_TEST(malformed_input_rejected) {
  const bad_case *c = &bad_cases[_i];
  aiplat_msg *d = (aiplat_msg *)1;
  aiplat_error_clear();
  aiplat_status st =
      aiplat_msg_decode(&d, c->type, (const uint8_t *)c->bytes, c->len);
  ck_assert_msg(st == AIPLAT_ERR_DECODE, "%s: status %d (%s)", c->what, st,
                last_error());
  ck_assert_ptr_null(d);
  ASSERT_CONTAINS(last_error(), aiplat_msg_type_name(c->type));
  ASSERT_CONTAINS(last_error(), c->expect);
  ASSERT_CONTAINS(last_error(), "at byte");
}
END_TEST

static uint64_t rng_state;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Decoding must either fail cleanly or yield a message that encodes and
 * decodes again to the same bytes. */
static void decode_any(aiplat_msg_type t, const uint8_t *b, size_t n, int *ok) {
  aiplat_msg *d = NULL;
  aiplat_status st = aiplat_msg_decode(&d, t, b, n);
  if (st != AIPLAT_OK) {
    ck_assert_msg(st == AIPLAT_ERR_DECODE || st == AIPLAT_ERR_TOO_LARGE,
                  "status %d", st);
    ck_assert_ptr_null(d);
    return;
  }
  (*ok)++;
  size_t l1, l2;
  uint8_t *e1 = encode(d, &l1);
  aiplat_msg *d2 = decode_ok(t, e1, l1);
  uint8_t *e2 = encode(d2, &l2);
  ck_assert_uint_eq(l1, l2);
  ck_assert_mem_eq(e1, e2, l1);
  char *json;
  ck_assert_int_eq(aiplat_msg_to_json(d2, &json), AIPLAT_OK);
  aiplat_free(json);
  aiplat_free(e1);
  aiplat_free(e2);
  aiplat_msg_destroy(d2);
  aiplat_msg_destroy(d);
}

START_TEST(random_garbage_never_crashes) {
  int ok = 0;
  uint8_t buf[300];
  for (uint64_t seed = 1; seed <= 4000; seed++) {
    rng_state = seed * 0x9E3779B97F4A7C15ull;
    size_t n = rng() % sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng();
    decode_any((aiplat_msg_type)(1 + seed % LAST_TYPE), buf, n, &ok);
  }
  /* Mutations of valid encodings reach deeper than pure noise. */
  for (uint64_t seed = 1; seed <= 3000; seed++) {
    rng_state = seed * 0xD1B54A32D192ED03ull;
    aiplat_msg_type t = (aiplat_msg_type)(1 + seed % LAST_TYPE);
    aiplat_msg *m = filled(t, (int)(seed % 5));
    size_t len;
    uint8_t *b = encode(m, &len);
    int flips = 1 + (int)(rng() % 4);
    for (int k = 0; k < flips && len; k++) {
      size_t at = rng() % len;
      switch (rng() % 3) {
        case 0:
          b[at] ^= (uint8_t)(1u << (rng() % 8));
          break;
        case 1:
          b[at] = (uint8_t)rng();
          break;
        default:
          len = at;
          break; /* cut */
      }
    }
    decode_any(t, b, len, &ok);
    aiplat_free(b);
    aiplat_msg_destroy(m);
  }
  ck_assert_int_gt(ok, 0); /* some inputs do decode */
}
END_TEST

/* ---- size limits
 * ---------------------------------------------------------------- */

START_TEST(size_cap) {
  size_t n = AIPLAT_MSG_MAX_SIZE;
  uint8_t *big = calloc(1, n + 1);
  /* VoiceRequest.audio (field 3) filling exactly AIPLAT_MSG_MAX_SIZE bytes:
   * tag, a 4-byte length, then the audio. */
  size_t audio = n - 5;
  big[0] = 0x1a;
  big[1] = (uint8_t)(0x80 | (audio & 0x7f));
  big[2] = (uint8_t)(0x80 | ((audio >> 7) & 0x7f));
  big[3] = (uint8_t)(0x80 | ((audio >> 14) & 0x7f));
  big[4] = (uint8_t)(audio >> 21);
  aiplat_msg *d = decode_ok(AIPLAT_MSG_VOICE_REQUEST, big, n);
  const uint8_t *data;
  size_t len;
  ck_assert_int_eq(aiplat_msg_get_bytes(d, "audio", &data, &len), AIPLAT_OK);
  ck_assert_uint_eq(len, audio);
  aiplat_msg_destroy(d);

  d = (aiplat_msg *)1;
  ck_assert_int_eq(aiplat_msg_decode(&d, AIPLAT_MSG_VOICE_REQUEST, big, n + 1),
                   AIPLAT_ERR_TOO_LARGE);
  ck_assert_ptr_null(d);
  ASSERT_CONTAINS(last_error(), "aiplat.messages.v1.VoiceRequest");
  ASSERT_CONTAINS(last_error(), "8388609 bytes exceed the limit of 8388608");

  /* A per-call limit, both ways. */
  ck_assert_int_eq(
      aiplat_msg_decode_max(&d, AIPLAT_MSG_VOICE_REQUEST, big, n, n - 1),
      AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(
      aiplat_msg_decode_max(&d, AIPLAT_MSG_VOICE_REQUEST, big, n + 1, n + 1),
      AIPLAT_ERR_DECODE); /* allowed, but a stray 0 byte at the end */
  static const uint8_t small[] = {0x0a, 1, 'u'};
  ck_assert_int_eq(
      aiplat_msg_decode_max(&d, AIPLAT_MSG_VOICE_REQUEST, small, 3, 2),
      AIPLAT_ERR_TOO_LARGE);
  ck_assert_int_eq(
      aiplat_msg_decode_max(&d, AIPLAT_MSG_VOICE_REQUEST, small, 3, 3),
      AIPLAT_OK);
  aiplat_msg_destroy(d);
  ck_assert_int_eq(
      aiplat_msg_decode_max(&d, AIPLAT_MSG_VOICE_REQUEST, small, 3, 0),
      AIPLAT_ERR_INVALID_ARGUMENT);
  free(big);
}
END_TEST

/* Two bytes on the wire may cost a hundred in memory: a run of empty
 * elements is refused before protobuf-c allocates it. */
START_TEST(memory_amplification_refused) {
  size_t count = 1000000, n = 2 * count;
  uint8_t *b = malloc(n);
  for (size_t i = 0; i < count; i++) {
    b[2 * i] = 0x1a; /* ChatResponse.sources, empty */
    b[2 * i + 1] = 0;
  }
  aiplat_msg *d = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&d, AIPLAT_MSG_CHAT_RESPONSE, b, n),
                   AIPLAT_ERR_TOO_LARGE);
  ASSERT_CONTAINS(last_error(), "memory");
  ASSERT_CONTAINS(last_error(), "ChatResponse");
  /* The same with unknown fields (field 99, varint 0). */
  for (size_t i = 0; i + 3 <= n; i += 3) {
    b[i] = 0x98;
    b[i + 1] = 0x06;
    b[i + 2] = 0;
  }
  ck_assert_int_eq(
      aiplat_msg_decode(&d, AIPLAT_MSG_CHAT_RESPONSE, b, n / 3 * 3),
      AIPLAT_ERR_TOO_LARGE);
  free(b);

  /* Real messages pass: 20 sources of 1 KiB, 5000 short segments. */
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_RESPONSE), *c;
  char text[1025];
  memset(text, 'a', 1024);
  text[1024] = '\0';
  for (int i = 0; i < 20; i++) {
    ck_assert_int_eq(aiplat_msg_add_item(m, "sources", &c), AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_string(c, "text", text), AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_double(c, "score", 0.5), AIPLAT_OK);
  }
  size_t len;
  uint8_t *e = encode(m, &len);
  d = decode_ok(AIPLAT_MSG_CHAT_RESPONSE, e, len);
  aiplat_msg_destroy(d);
  aiplat_free(e);
  aiplat_msg_destroy(m);
  m = new_msg(AIPLAT_MSG_TRANSCRIBE_RESPONSE);
  for (int i = 0; i < 5000; i++) {
    ck_assert_int_eq(aiplat_msg_add_item(m, "segments", &c), AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_double(c, "start", i * 3.0), AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_double(c, "end", i * 3.0 + 2.5), AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_string(c, "text", "a few words here"),
                     AIPLAT_OK);
  }
  e = encode(m, &len);
  d = decode_ok(AIPLAT_MSG_TRANSCRIBE_RESPONSE, e, len);
  size_t cnt;
  ck_assert_int_eq(aiplat_msg_count(d, "segments", &cnt), AIPLAT_OK);
  ck_assert_uint_eq(cnt, 5000);
  aiplat_msg_destroy(d);
  aiplat_free(e);
  aiplat_msg_destroy(m);
}
END_TEST

/* ---- type errors
 * ------------------------------------------------------------------ */

static void expect_invalid(aiplat_msg *m, aiplat_status st, const char *field,
                           const char *hint) {
  ck_assert_int_eq(st, AIPLAT_ERR_INVALID_ARGUMENT);
  char thread_msg[512];
  ck_assert_int_eq(aiplat_error_last(thread_msg, sizeof thread_msg),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_last_error(m, errbuf, sizeof errbuf),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(thread_msg, errbuf);
  ASSERT_CONTAINS(errbuf, aiplat_msg_type_name(aiplat_msg_get_type(m)));
  ASSERT_CONTAINS(errbuf, field);
  if (hint) ASSERT_CONTAINS(errbuf, hint);
}

START_TEST(type_mismatch_errors) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_REQUEST);
  const char *s;
  int64_t i;
  uint64_t u;
  double d;
  bool b;
  const uint8_t *data;
  size_t n;
  aiplat_msg *c;
  expect_invalid(m, aiplat_msg_set_string(m, "max_tokens", "9"), "max_tokens",
                 "aiplat_msg_set_int64");
  expect_invalid(m, aiplat_msg_get_string(m, "max_tokens", &s), "max_tokens",
                 "int32");
  expect_invalid(m, aiplat_msg_get_int64(m, "message", &i), "message",
                 "aiplat_msg_get_string");
  expect_invalid(m, aiplat_msg_set_bool(m, "temperature", true), "temperature",
                 "double");
  expect_invalid(m, aiplat_msg_get_double(m, "stream", &d), "stream", "bool");
  expect_invalid(m, aiplat_msg_get_bytes(m, "message", &data, &n), "message",
                 "string");
  expect_invalid(m, aiplat_msg_set_uint64(m, "user_id", 1), "user_id", NULL);
  expect_invalid(m, aiplat_msg_get_message(m, "user_id", &c), "user_id", NULL);
  expect_invalid(m, aiplat_msg_count(m, "user_id", &n), "user_id",
                 "not a repeated");
  expect_invalid(m, aiplat_msg_get_bool(m, "no_such_field", &b),
                 "'no_such_field'", "has no field");
  expect_invalid(m, aiplat_msg_set_string(m, "message", NULL), "message",
                 "NULL");
  expect_invalid(m, aiplat_msg_set_string(m, "message", "\xff"), "message",
                 "UTF-8");
  expect_invalid(m, aiplat_msg_get_string(m, NULL, &s), "", "NULL field name");
  ck_assert(!aiplat_msg_has(m, "bogus"));
  expect_invalid(m, AIPLAT_ERR_INVALID_ARGUMENT, "bogus", "has no field");

  /* Ranges. */
  expect_invalid(m, aiplat_msg_set_int64(m, "max_tokens", INT64_C(2147483648)),
                 "max_tokens", "does not fit");
  ck_assert_int_eq(aiplat_msg_set_int64(m, "max_tokens", INT32_MIN), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_uint64(m, "max_tokens", &u),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_set_uint64(m, "max_tokens", 7), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_uint64(m, "max_tokens", &u), AIPLAT_OK);
  ck_assert_uint_eq(u, 7);
  aiplat_msg_destroy(m);

  m = new_msg(AIPLAT_MSG_CHAT_CHUNK);
  expect_invalid(m, aiplat_msg_set_int64(m, "seq", -1), "seq", "uint32");
  expect_invalid(m, aiplat_msg_set_uint64(m, "seq", UINT64_C(4294967296)),
                 "seq", "does not fit");
  ck_assert_int_eq(aiplat_msg_set_uint64(m, "seq", UINT32_MAX), AIPLAT_OK);
  expect_invalid(m, aiplat_msg_get_item(m, "usage", 0, &c), "usage",
                 "aiplat_msg_get_message");
  expect_invalid(m, aiplat_msg_get_message(m, "sources", &c), "sources",
                 "aiplat_msg_get_item");
  expect_invalid(m, aiplat_msg_map_get(m, "sources", "k", &s), "sources",
                 "repeated message");
  aiplat_msg_destroy(m);

  m = new_msg(AIPLAT_MSG_PIPELINE_TRIGGER);
  expect_invalid(m, aiplat_msg_add_item(m, "parameters", &c), "parameters",
                 "aiplat_msg_map_set");
  expect_invalid(m, aiplat_msg_map_set(m, "parameters", "k", "\xc0\x80"),
                 "parameters", "UTF-8");
  expect_invalid(m, aiplat_msg_map_set(m, "parameters", NULL, "v"),
                 "parameters", "NULL");
  aiplat_msg_destroy(m);

  m = new_msg(AIPLAT_MSG_ERROR);
  ck_assert_int_eq(aiplat_msg_set_int64(m, "code", -5),
                   AIPLAT_OK); /* open enum */
  expect_invalid(m, aiplat_msg_set_int64(m, "code", INT64_C(1) << 31), "code",
                 "enum");
  aiplat_msg_destroy(m);

  /* NULL handles and outputs. */
  ck_assert_int_eq(aiplat_msg_set_string(NULL, "x", "y"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_create(NULL, AIPLAT_MSG_USAGE),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_create(&m, (aiplat_msg_type)99),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(aiplat_msg_decode(&m, AIPLAT_MSG_INVALID, NULL, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_decode(&m, AIPLAT_MSG_USAGE, NULL, 4),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_get_type(NULL), AIPLAT_MSG_INVALID);
  ck_assert(!aiplat_msg_has(NULL, "x"));
  aiplat_msg_destroy(NULL);
  ck_assert_int_eq(aiplat_msg_last_error(NULL, errbuf, sizeof errbuf),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- repeated fields and child handles ----------------------------------- */

static void add_source(aiplat_msg *m, const char *id, double score) {
  aiplat_msg *c;
  ck_assert_int_eq(aiplat_msg_add_item(m, "sources", &c), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(c, "id", id), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_double(c, "score", score), AIPLAT_OK);
}

static const char *source_id(aiplat_msg *m, size_t i) {
  aiplat_msg *c;
  const char *s;
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", i, &c), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_string(c, "id", &s), AIPLAT_OK);
  return s;
}

START_TEST(repeated_access) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_CHAT_RESPONSE), *c0, *c2, *again;
  add_source(m, "a", 0.9);
  add_source(m, "b", 0.8);
  add_source(m, "c", 0.7);
  size_t n;
  ck_assert_int_eq(aiplat_msg_count(m, "sources", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", 0, &c0), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", 2, &c2), AIPLAT_OK);
  /* The same element gives the same handle. */
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", 2, &again), AIPLAT_OK);
  ck_assert_ptr_eq(again, c2);
  ck_assert_int_eq(aiplat_msg_remove_item(m, "sources", 1), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_count(m, "sources", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(source_id(m, 0), "a");
  ck_assert_str_eq(source_id(m, 1), "c");
  /* Handles of the elements that stayed are still good. */
  const char *s;
  ck_assert_int_eq(aiplat_msg_get_string(c2, "id", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "c");
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", 1, &again), AIPLAT_OK);
  ck_assert_ptr_eq(again, c2);
  /* Destroying a child does nothing; it stays usable. */
  aiplat_msg_destroy(c0);
  ck_assert_int_eq(aiplat_msg_set_string(c0, "text", "still here"), AIPLAT_OK);
  /* Out of range. */
  aiplat_msg *c = (aiplat_msg *)1;
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", 2, &c),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(c);
  ASSERT_CONTAINS(msg_error(m), "index 2");
  ck_assert_int_eq(aiplat_msg_remove_item(m, "sources", 5),
                   AIPLAT_ERR_NOT_FOUND);
  /* A child's child. */
  aiplat_msg *err, *copy;
  ck_assert_int_eq(aiplat_msg_mutable_message(m, "error", &err), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(err, "message", "boom"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_copy(&copy, err), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_type(copy), AIPLAT_MSG_ERROR);
  ck_assert_int_eq(aiplat_msg_clear_field(m, "error"), AIPLAT_OK);
  ck_assert(!aiplat_msg_has(m, "error"));
  ck_assert_int_eq(aiplat_msg_get_string(copy, "message", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "boom"); /* the copy is independent */
  aiplat_msg_destroy(copy);
  ck_assert_int_eq(aiplat_msg_clear_field(m, "sources"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_count(m, "sources", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert(!aiplat_msg_has(m, "sources"));
  aiplat_msg_destroy(m);
}
END_TEST

/* Many children: handles stay distinct and right through removals. */
START_TEST(many_child_handles) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_TRANSCRIBE_RESPONSE), *c;
  enum { N = 3000 };
  static aiplat_msg *h[N];
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(aiplat_msg_add_item(m, "segments", &h[i]), AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_double(h[i], "start", i), AIPLAT_OK);
  }
  /* Remove every third element, from the end. */
  for (int i = N - 1; i >= 0; i--)
    if (i % 3 == 0)
      ck_assert_int_eq(aiplat_msg_remove_item(m, "segments", (size_t)i),
                       AIPLAT_OK);
  size_t n;
  ck_assert_int_eq(aiplat_msg_count(m, "segments", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, N - N / 3);
  size_t k = 0;
  for (int i = 0; i < N; i++) {
    if (i % 3 == 0) continue;
    double v;
    ck_assert_int_eq(aiplat_msg_get_item(m, "segments", k++, &c), AIPLAT_OK);
    ck_assert_ptr_eq(c, h[i]);
    ck_assert_int_eq(aiplat_msg_get_double(c, "start", &v), AIPLAT_OK);
    ck_assert(v == i);
  }
  aiplat_msg_destroy(m);
}
END_TEST

/* ---- maps
 * --------------------------------------------------------------------- */

START_TEST(map_access) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_PIPELINE_TRIGGER);
  const char *s = "x";
  size_t n;
  ck_assert_int_eq(aiplat_msg_map_get(m, "parameters", "a", &s),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(aiplat_msg_map_set(m, "parameters", "a", "1"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_map_set(m, "parameters", "b", "2"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_map_set(m, "parameters", "c", ""), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_map_set(m, "parameters", "a", "one"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_count(m, "parameters", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(aiplat_msg_map_key(m, "parameters", 0, &s), AIPLAT_OK);
  ck_assert_str_eq(s, "a"); /* replaced in place */
  ck_assert_int_eq(aiplat_msg_map_value(m, "parameters", 0, &s), AIPLAT_OK);
  ck_assert_str_eq(s, "one");
  ck_assert_int_eq(aiplat_msg_map_get(m, "parameters", "c", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "");
  ck_assert_int_eq(aiplat_msg_map_key(m, "parameters", 3, &s),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_int_eq(aiplat_msg_map_remove(m, "parameters", "b"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_map_remove(m, "parameters", "b"),
                   AIPLAT_ERR_NOT_FOUND);
  ASSERT_CONTAINS(msg_error(m), "no key 'b'");
  ck_assert_int_eq(aiplat_msg_count(m, "parameters", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 2);
  char *json;
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"parameters\":{\"a\":\"one\",\"c\":\"\"}}");
  aiplat_free(json);
  aiplat_msg_destroy(m);

  /* On the wire a key may repeat: the last one wins, once. */
  static const uint8_t dup[] = {0x2a, 6, 0x0a, 1, 'k', 0x12, 1, '1',
                                0x2a, 6, 0x0a, 1, 'j', 0x12, 1, '2',
                                0x2a, 6, 0x0a, 1, 'k', 0x12, 1, '3',
                                0x2a, 3, 0x0a, 1, 'e'}; /* no value */
  m = decode_ok(AIPLAT_MSG_PIPELINE_TRIGGER, dup, sizeof dup);
  ck_assert_int_eq(aiplat_msg_count(m, "parameters", &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(aiplat_msg_map_get(m, "parameters", "k", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "3");
  ck_assert_int_eq(aiplat_msg_map_key(m, "parameters", 0, &s), AIPLAT_OK);
  ck_assert_str_eq(s, "j");
  ck_assert_int_eq(aiplat_msg_map_get(m, "parameters", "e", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "");
  aiplat_msg_destroy(m);
}
END_TEST

/* ---- JSON
 * ------------------------------------------------------------------------ */

START_TEST(json_parses_back) {
  for (int t = 1; t <= LAST_TYPE; t++) {
    aiplat_msg *m = filled((aiplat_msg_type)t, t);
    char *json, *pretty;
    ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(root != NULL, "%s: %s", jerr.text, json);
    ck_assert(json_is_object(root));
    /* Every field is there under its .proto name. */
    size_t nf = aiplat_msg_type_field_count((aiplat_msg_type)t);
    ck_assert_uint_eq(json_object_size(root), nf);
    for (size_t i = 0; i < nf; i++)
      ck_assert_ptr_nonnull(json_object_get(
          root, aiplat_msg_type_field_name((aiplat_msg_type)t, i)));
    ck_assert_int_eq(
        aiplat_msg_to_json_flags(m, AIPLAT_MSG_JSON_PRETTY, &pretty),
        AIPLAT_OK);
    ck_assert_ptr_nonnull(strchr(pretty, '\n'));
    json_t *proot = json_loads(pretty, 0, &jerr);
    ck_assert_ptr_nonnull(proot);
    ck_assert(json_equal(root, proot));
    /* And it reads back into the same message. */
    aiplat_msg *back;
    ck_assert_msg(
        aiplat_msg_from_json(&back, (aiplat_msg_type)t, json) == AIPLAT_OK,
        "from_json: %s", last_error());
    verify(back, t);
    size_t l1, l2;
    uint8_t *e1 = encode(m, &l1), *e2 = encode(back, &l2);
    ck_assert_uint_eq(l1, l2);
    ck_assert_mem_eq(e1, e2, l1);
    aiplat_free(e1);
    aiplat_free(e2);
    aiplat_msg_destroy(back);
    json_decref(root);
    json_decref(proot);
    aiplat_free(json);
    aiplat_free(pretty);
    aiplat_msg_destroy(m);
  }
}
END_TEST

START_TEST(json_values) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_SYNTHESIZE_RESPONSE), *e;
  static const uint8_t audio[] = {0x00, 0x01, 0xff, 0xfe};
  ck_assert_int_eq(aiplat_msg_set_bytes(m, "audio", audio, 4), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "content_type", "a\"b\\c\n\x01"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_mutable_message(m, "error", &e), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_int64(e, "code", AIPLAT_ERR_RATE_LIMITED),
                   AIPLAT_OK);
  char *json;
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(
      json,
      "{\"audio\":\"AAH//g==\",\"content_type\":\"a\\\"b\\\\c\\n\\u0001\","
      "\"error\":{\"code\":\"ERROR_CODE_RATE_LIMITED\"}}");
  aiplat_free(json);
  ck_assert_int_eq(
      aiplat_msg_to_json_flags(m, AIPLAT_MSG_JSON_ELIDE_BYTES, &json),
      AIPLAT_OK);
  ASSERT_CONTAINS(json, "\"audio\":\"<4 bytes>\"");
  aiplat_free(json);
  aiplat_msg_destroy(m);

  m = new_msg(AIPLAT_MSG_SOURCE);
  ck_assert_int_eq(aiplat_msg_set_double(m, "score", NAN), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"score\":\"NaN\"}");
  aiplat_free(json);
  ck_assert_int_eq(aiplat_msg_set_double(m, "score", -INFINITY), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"score\":\"-Infinity\"}");
  aiplat_free(json);
  ck_assert_int_eq(aiplat_msg_set_double(m, "score", 0.7), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"score\":0.7}"); /* shortest exact form */
  aiplat_free(json);
  ck_assert_int_eq(aiplat_msg_set_double(m, "score", 0.1 + 0.2), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"score\":0.30000000000000004}");
  aiplat_free(json);
  aiplat_msg_destroy(m);

  /* An empty message, and enable_rag=false (present, so written). */
  m = new_msg(AIPLAT_MSG_CHAT_REQUEST);
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{}");
  aiplat_free(json);
  ck_assert_int_eq(aiplat_msg_set_bool(m, "enable_rag", false), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_to_json(m, &json), AIPLAT_OK);
  ck_assert_str_eq(json, "{\"enable_rag\":false}");
  aiplat_free(json);
  aiplat_msg_destroy(m);
}
END_TEST

START_TEST(json_input) {
  aiplat_msg *m;
  const char *s;
  int64_t v;
  uint64_t u;
  double d;
  ck_assert_int_eq(
      aiplat_msg_from_json(&m, AIPLAT_MSG_CHAT_REQUEST,
                           "{\"userId\":\"u\",\"message\":\"hi \\u00fc\","
                           "\"enableRag\":false,\"max_tokens\":\"42\","
                           "\"temperature\":1,\"model\":null}"),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_string(m, "user_id", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "u");
  ck_assert_int_eq(aiplat_msg_get_string(m, "message", &s), AIPLAT_OK);
  ck_assert_str_eq(s, "hi \xc3\xbc");
  ck_assert(!get_bool(m, "enable_rag"));
  ck_assert_int_eq(aiplat_msg_get_int64(m, "max_tokens", &v), AIPLAT_OK);
  ck_assert_int_eq(v, 42);
  ck_assert_int_eq(aiplat_msg_get_double(m, "temperature", &d), AIPLAT_OK);
  ck_assert(d == 1.0);
  ck_assert(!aiplat_msg_has(m, "model"));
  aiplat_msg_destroy(m);

  ck_assert_int_eq(
      aiplat_msg_from_json(&m, AIPLAT_MSG_CHAT_CHUNK,
                           "{\"seq\":4294967295,\"error\":{\"code\":"
                           "13,\"retryable\":true},\"usage\":{}}"),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_uint64(m, "seq", &u), AIPLAT_OK);
  ck_assert_uint_eq(u, UINT32_MAX);
  ck_assert(aiplat_msg_has(m, "usage"));
  aiplat_msg_destroy(m);

  ck_assert_int_eq(
      aiplat_msg_from_json(&m, AIPLAT_MSG_VOICE_REQUEST,
                           "{\"audio\":\"AAH__g\",\"enable_rag\":true}"),
      AIPLAT_OK); /* URL-safe, unpadded */
  const uint8_t *data;
  size_t n;
  ck_assert_int_eq(aiplat_msg_get_bytes(m, "audio", &data, &n), AIPLAT_OK);
  ck_assert_uint_eq(n, 4);
  ck_assert_mem_eq(data, "\x00\x01\xff\xfe", 4);
  aiplat_msg_destroy(m);

  static const struct {
    aiplat_msg_type type;
    const char *json, *expect;
  } bad[] = {
      {AIPLAT_MSG_CHAT_REQUEST, "{\"nope\":1}", "has no field 'nope'"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"message\":1}",
       "message: expected a string"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"max_tokens\":2147483648}", "out of range"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"max_tokens\":1.5}", "not an integer"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"max_tokens\":\"12x\"}", "not an integer"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"stream\":1}", "expected true or false"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"message\":\"a\\u0000b\"}", "NUL"},
      {AIPLAT_MSG_CHAT_REQUEST, "[1]", "expected an object"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"message\":", "line 1"},
      {AIPLAT_MSG_CHAT_REQUEST, "{\"message\":\"a\",\"message\":\"b\"}",
       "duplicate"},
      {AIPLAT_MSG_CHAT_CHUNK, "{\"seq\":-1}", "below 0"},
      {AIPLAT_MSG_VOICE_REQUEST, "{\"audio\":\"*\"}", "not base64"},
      {AIPLAT_MSG_ERROR, "{\"code\":\"ERROR_CODE_NOPE\"}", "not a value"},
      {AIPLAT_MSG_CHAT_RESPONSE, "{\"sources\":[{\"score\":\"x\"}]}",
       "sources[0].score"},
      {AIPLAT_MSG_CHAT_RESPONSE, "{\"sources\":{}}", "expected an array"},
      {AIPLAT_MSG_PIPELINE_TRIGGER, "{\"parameters\":{\"a\":1}}",
       "expected a string"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    m = (aiplat_msg *)1;
    ck_assert_msg(
        aiplat_msg_from_json(&m, bad[i].type, bad[i].json) == AIPLAT_ERR_DECODE,
        "%s accepted", bad[i].json);
    ck_assert_ptr_null(m);
    ASSERT_CONTAINS(last_error(), bad[i].expect);
    ASSERT_CONTAINS(last_error(), aiplat_msg_type_name(bad[i].type));
  }
}
END_TEST

/* ---- introspection
 * ------------------------------------------------------------- */

START_TEST(introspection) {
  ck_assert_str_eq(aiplat_msg_type_name(AIPLAT_MSG_CHAT_REQUEST),
                   "aiplat.messages.v1.ChatRequest");
  ck_assert_str_eq(aiplat_msg_type_name(AIPLAT_MSG_SEGMENT),
                   "aiplat.messages.v1.Segment");
  ck_assert_ptr_null(aiplat_msg_type_name(AIPLAT_MSG_INVALID));
  ck_assert_ptr_null(aiplat_msg_type_name((aiplat_msg_type)(LAST_TYPE + 1)));
  for (int t = 1; t <= LAST_TYPE; t++) {
    aiplat_msg_type back;
    ck_assert_int_eq(aiplat_msg_type_by_name(
                         aiplat_msg_type_name((aiplat_msg_type)t), &back),
                     AIPLAT_OK);
    ck_assert_int_eq(back, t);
    aiplat_msg *m;
    ck_assert_int_eq(
        aiplat_msg_create_by_name(&m, aiplat_msg_type_name((aiplat_msg_type)t)),
        AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_get_type(m), t);
    aiplat_msg_destroy(m);
  }
  aiplat_msg_type t;
  ck_assert_int_eq(aiplat_msg_type_by_name("PipelineStatus", &t), AIPLAT_OK);
  ck_assert_int_eq(t, AIPLAT_MSG_PIPELINE_STATUS);
  ck_assert_int_eq(aiplat_msg_type_by_name("aiplat.messages.v1.Nope", &t),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_int_eq(t, AIPLAT_MSG_INVALID);
  aiplat_msg *m = (aiplat_msg *)1;
  ck_assert_int_eq(aiplat_msg_create_by_name(&m, "ChatRequestX"),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(m);
  /* The .proto order, field numbers and kinds. */
  ck_assert_uint_eq(aiplat_msg_type_field_count(AIPLAT_MSG_CHAT_REQUEST), 10);
  ck_assert_str_eq(aiplat_msg_type_field_name(AIPLAT_MSG_CHAT_REQUEST, 0),
                   "user_id");
  ck_assert_str_eq(aiplat_msg_type_field_name(AIPLAT_MSG_CHAT_REQUEST, 2),
                   "enable_rag");
  ck_assert_ptr_null(aiplat_msg_type_field_name(AIPLAT_MSG_CHAT_REQUEST, 10));
  ck_assert_uint_eq(aiplat_msg_type_field_count(AIPLAT_MSG_INVALID), 0);
  aiplat_field_kind k;
  bool rep;
  aiplat_msg_type mt;
  uint32_t num;
  ck_assert_int_eq(aiplat_msg_field_info(AIPLAT_MSG_CHAT_RESPONSE, "sources",
                                         &k, &rep, &mt, &num),
                   AIPLAT_OK);
  ck_assert_int_eq(k, AIPLAT_FIELD_MESSAGE);
  ck_assert(rep);
  ck_assert_int_eq(mt, AIPLAT_MSG_SOURCE);
  ck_assert_uint_eq(num, 3);
  ck_assert_int_eq(aiplat_msg_field_info(AIPLAT_MSG_PIPELINE_TRIGGER,
                                         "parameters", &k, &rep, &mt, &num),
                   AIPLAT_OK);
  ck_assert_int_eq(k, AIPLAT_FIELD_MAP);
  ck_assert(rep);
  ck_assert_int_eq(mt, AIPLAT_MSG_INVALID);
  ck_assert_uint_eq(num, 5);
  ck_assert_int_eq(aiplat_msg_field_info(AIPLAT_MSG_PIPELINE_TRIGGER,
                                         "namespace", &k, NULL, NULL, NULL),
                   AIPLAT_OK);
  ck_assert_int_eq(k, AIPLAT_FIELD_STRING);
  ck_assert_int_eq(
      aiplat_msg_field_info(AIPLAT_MSG_ERROR, "code", &k, &rep, NULL, &num),
      AIPLAT_OK);
  ck_assert_int_eq(k, AIPLAT_FIELD_ENUM);
  ck_assert(!rep);
  ck_assert_int_eq(
      aiplat_msg_field_info(AIPLAT_MSG_ERROR, "nope", &k, NULL, NULL, NULL),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ASSERT_CONTAINS(last_error(), "aiplat.messages.v1.Error has no field 'nope'");
  ck_assert_int_eq(
      aiplat_msg_field_info((aiplat_msg_type)0, "x", &k, NULL, NULL, NULL),
      AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(empty_and_copies) {
  aiplat_msg *m = new_msg(AIPLAT_MSG_USAGE), *c;
  size_t len = 9;
  uint8_t *buf = encode(m, &len);
  ck_assert_uint_eq(len, 0);
  aiplat_free(buf);
  ck_assert_int_eq(aiplat_msg_decode(&c, AIPLAT_MSG_USAGE, NULL, 0), AIPLAT_OK);
  aiplat_msg_destroy(c);
  ck_assert_int_eq(aiplat_msg_set_int64(m, "total_tokens", 12), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_copy(&c, m), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_int64(m, "total_tokens", 13), AIPLAT_OK);
  int64_t v;
  ck_assert_int_eq(aiplat_msg_get_int64(c, "total_tokens", &v), AIPLAT_OK);
  ck_assert_int_eq(v, 12);
  aiplat_msg_destroy(c);
  aiplat_msg_destroy(m);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("message");
  TCase *tc = tcase_create("api");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, round_trip_every_type_and_kind);
  tcase_add_test(tc, golden_bytes);
  tcase_add_test(tc, enable_rag_defaults_to_true);
  tcase_add_test(tc, optional_overrides_keep_zero);
  tcase_add_test(tc, unknown_fields_survive);
  tcase_add_test(tc, type_mismatch_errors);
  tcase_add_test(tc, repeated_access);
  tcase_add_test(tc, many_child_handles);
  tcase_add_test(tc, map_access);
  tcase_add_test(tc, json_parses_back);
  tcase_add_test(tc, json_values);
  tcase_add_test(tc, json_input);
  tcase_add_test(tc, introspection);
  tcase_add_test(tc, empty_and_copies);
  suite_add_tcase(s, tc);
  TCase *hostile = tcase_create("hostile");
  tcase_set_timeout(hostile, 120);
  tcase_add_test(hostile, truncated_at_every_byte);
  tcase_add_loop_test(hostile, malformed_input_rejected, 0,
                      (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(hostile, random_garbage_never_crashes);
  tcase_add_test(hostile, size_cap);
  tcase_add_test(hostile, memory_amplification_refused);
  suite_add_tcase(s, hostile);
  return s;
}
