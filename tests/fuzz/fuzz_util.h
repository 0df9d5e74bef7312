/* Shared by the fuzz targets (docs/decisions/0019-fuzzing.md): the entry
 * point libFuzzer calls, reading an input as choices plus data, splitting
 * data into the pieces a network hands over, a scratch file, quiet logs.
 * Every helper is deterministic: an input replays the same way under
 * libFuzzer, under tests/fuzz/standalone.c and under valgrind. */
#ifndef AIPLAT_FUZZ_UTIL_H
#define AIPLAT_FUZZ_UTIL_H

#include <aiplat/aiplat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop with a message: libFuzzer (and the standalone driver) report the
 * abort with the input that caused it. */
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* The input: leading bytes are choices, the rest is data. */
typedef struct fuzz_in {
  const uint8_t *p;
  size_t n;
} fuzz_in;

/* The next byte, 0 when the input is used up. */
static inline uint8_t fuzz_byte(fuzz_in *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

/* The rest as a NUL-terminated copy (free()); NULs inside stay. */
static inline char *fuzz_rest_str(fuzz_in *in) {
  char *s = malloc(in->n + 1);
  if (!s) abort();
  if (in->n) memcpy(s, in->p, in->n);
  s[in->n] = '\0';
  return s;
}

/* Pieces of data as they might arrive from a socket: lengths drawn from a
 * small generator seeded by @seed, so that mutating the data does not move
 * the cuts. Seed 0 keeps the data whole. */
typedef struct fuzz_pieces {
  const char **p;
  size_t *len;
  size_t n;
} fuzz_pieces;

static inline void fuzz_split(fuzz_pieces *out, const uint8_t *data, size_t n,
                              uint8_t seed) {
  out->p = malloc((n ? n : 1) * sizeof *out->p);
  out->len = malloc((n ? n : 1) * sizeof *out->len);
  if (!out->p || !out->len) abort();
  out->n = 0;
  uint32_t x = seed * 2654435761u + 1u;
  for (size_t at = 0; at < n;) {
    size_t take = n - at;
    if (seed) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      /* mostly short pieces, sometimes one byte, sometimes long */
      size_t want = (x & 7) == 0 ? 1 : 1 + (x >> 8) % ((x & 1) ? 7 : 97);
      if (want < take) take = want;
    }
    out->p[out->n] = (const char *)data + at;
    out->len[out->n++] = take;
    at += take;
  }
}

static inline void fuzz_pieces_free(fuzz_pieces *p) {
  free(p->p);
  free(p->len);
}

/* Log records are formatted (that code sees the inputs too) and dropped. */
static inline void fuzz_drop_log(aiplat_log_level level, const char *record,
                                 size_t len, void *user_data) {
  (void)level;
  (void)user_data;
  FUZZ_CHECK(strlen(record) == len);
}

static inline void fuzz_quiet_logs(void) {
  static bool done;
  if (done) return;
  done = true;
  aiplat_log_set_callback(fuzz_drop_log, NULL);
  aiplat_log_set_level(AIPLAT_LOG_DEBUG);
}

/* One scratch file per process, rewritten for each input and removed at
 * exit. */
static char fuzz_scratch[4096];

static inline void fuzz_scratch_remove(void) {
  if (fuzz_scratch[0]) unlink(fuzz_scratch);
}

static inline const char *fuzz_scratch_write(const void *data, size_t n) {
  if (!fuzz_scratch[0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/aiplat-fuzz-XXXXXX",
             dir && *dir ? dir : "/tmp");
    int fd = mkstemp(fuzz_scratch);
    if (fd < 0) abort();
    close(fd);
    atexit(fuzz_scratch_remove);
  }
  FILE *f = fopen(fuzz_scratch, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) abort();
  return fuzz_scratch;
}

/* Is [s, s + n) well-formed UTF-8? (A plain checker, apart from the
 * library's, so that the targets do not test the library with itself.) */
static inline bool fuzz_utf8_ok(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t k;
    unsigned cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      k = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= k) return false;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + j] & 0x3F);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += k + 1;
  }
  return true;
}

#endif
