/* Test helper: convert a message between JSON and the wire format through
 * the public API, for tests that compare with other protobuf
 * implementations.
 *   msg_codec TYPE to-binary < message.json > message.bin
 *   msg_codec TYPE to-json   < message.bin  > message.json
 *   msg_codec TYPE reencode  < message.bin  > message.bin (decode + encode)
 * TYPE is a full or short type name. Exit 1 with the error on stderr. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(size_t *len) {
  size_t cap = 1 << 16, n = 0;
  unsigned char *buf = malloc(cap + 1);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
    n += got;
    if (n == cap) {
      unsigned char *p = realloc(buf, cap * 2 + 1);
      if (!p) {
        free(buf);
        return NULL;
      }
      buf = p;
      cap *= 2;
    }
  }
  if (buf) buf[n] = '\0';
  *len = n;
  return buf;
}

static int fail(const char *what) {
  char buf[512];
  aiplat_error_last(buf, sizeof buf);
  fprintf(stderr, "msg_codec: %s: %s\n", what, buf);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: msg_codec TYPE to-binary|to-json|reencode\n");
    return 2;
  }
  aiplat_msg_type type;
  if (aiplat_msg_type_by_name(argv[1], &type) != AIPLAT_OK)
    return fail(argv[1]);
  size_t len;
  unsigned char *in = slurp(&len);
  if (!in) return fail("read");
  aiplat_msg *m = NULL;
  int rc = 0;
  if (strcmp(argv[2], "to-binary") == 0) {
    uint8_t *out;
    size_t n;
    if (aiplat_msg_from_json(&m, type, (const char *)in) != AIPLAT_OK)
      rc = fail("from_json");
    else if (aiplat_msg_encode(m, &out, &n) != AIPLAT_OK)
      rc = fail("encode");
    else {
      fwrite(out, 1, n, stdout);
      aiplat_free(out);
    }
  } else if (strcmp(argv[2], "to-json") == 0) {
    char *out;
    if (aiplat_msg_decode(&m, type, in, len) != AIPLAT_OK)
      rc = fail("decode");
    else if (aiplat_msg_to_json(m, &out) != AIPLAT_OK)
      rc = fail("to_json");
    else {
      fputs(out, stdout);
      aiplat_free(out);
    }
  } else if (strcmp(argv[2], "reencode") == 0) {
    uint8_t *out;
    size_t n;
    if (aiplat_msg_decode(&m, type, in, len) != AIPLAT_OK)
      rc = fail("decode");
    else if (aiplat_msg_encode(m, &out, &n) != AIPLAT_OK)
      rc = fail("encode");
    else {
      fwrite(out, 1, n, stdout);
      aiplat_free(out);
    }
  } else {
    fprintf(stderr, "msg_codec: unknown direction %s\n", argv[2]);
    rc = 2;
  }
  aiplat_msg_destroy(m);
  free(in);
  return rc;
}
