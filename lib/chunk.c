/* Document chunking for ingestion; see chunk.h. */
#include "config.h"

#include "chunk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Is a UTF-8 continuation byte: never cut before one. */
static bool is_cont(char c) { return ((unsigned char)c & 0xC0) == 0x80; }

/* A paragraph break: a newline followed by optional blanks and a newline. */
static bool para_break_at(const char *t, size_t i, size_t end) {
  if (t[i] != '\n') return false;
  for (size_t j = i + 1; j < end; j++) {
    if (t[j] == '\n') return true;
    if (t[j] != ' ' && t[j] != '\t' && t[j] != '\r') return false;
  }
  return false;
}

/* Sentence end: . ! ? followed by whitespace (or a closing quote/bracket
 * then whitespace). Returns the index just past the punctuation, or 0. */
static size_t sentence_end_at(const char *t, size_t i, size_t end) {
  if (t[i] != '.' && t[i] != '!' && t[i] != '?') return 0;
  size_t j = i + 1;
  while (j < end && (t[j] == '"' || t[j] == '\'' || t[j] == ')' || t[j] == ']')) j++;
  if (j < end && !is_space(t[j])) return 0;
  return j;
}

static void trim(const char *t, size_t *s, size_t *e) {
  while (*s < *e && is_space(t[*s])) (*s)++;
  while (*e > *s && is_space(t[*e - 1])) (*e)--;
}

/* The best cut in (start, limit]: the last paragraph break, else the last
 * sentence end, else the last whitespace, else a UTF-8-safe hard cut. */
static size_t best_cut(const char *t, size_t start, size_t limit, size_t end) {
  size_t para = 0, sent = 0, space = 0;
  size_t floor = start + (limit - start) / 3; /* avoid tiny chunks */
  for (size_t i = floor; i < limit; i++) {
    if (para_break_at(t, i, end)) para = i;
    size_t se = sentence_end_at(t, i, end);
    if (se && se <= limit) sent = se;
    if (is_space(t[i])) space = i;
  }
  if (para) return para;
  if (sent) return sent;
  if (space) return space;
  size_t cut = limit;
  while (cut > start + 1 && is_cont(t[cut])) cut--;
  return cut;
}

/* Where the next chunk starts so that it overlaps [.., cut) by ~overlap:
 * the first sentence start or word start at or after cut - overlap. */
static size_t overlap_start(const char *t, size_t start, size_t cut, size_t overlap) {
  if (overlap == 0 || cut - start <= overlap) return cut;
  size_t from = cut - overlap;
  for (size_t i = from; i < cut; i++) { /* a sentence start */
    size_t se = sentence_end_at(t, i, cut);
    if (se) {
      size_t j = se;
      while (j < cut && is_space(t[j])) j++;
      if (j < cut) return j;
    }
  }
  for (size_t i = from; i < cut; i++) /* a word start */
    if (i > 0 && is_space(t[i - 1]) && !is_space(t[i])) return i;
  return cut;
}

size_t aip_chunk_text(const char *text, size_t len, size_t max_chars,
                      size_t overlap, aip_chunk **out) {
  if (!text || !out || max_chars < 32 || overlap >= max_chars / 2) return (size_t)-1;
  *out = NULL;
  size_t n = 0, cap = 0;
  aip_chunk *chunks = NULL;
  size_t pos = 0;
  while (pos < len) {
    size_t s = pos, e = len;
    trim(text, &s, &e);
    if (s >= e) break;
    size_t cut, next;
    /* Never let a chunk span a paragraph break when one lies inside. */
    size_t para_end = e;
    for (size_t i = s; i < e && i < s + max_chars; i++)
      if (para_break_at(text, i, e)) { para_end = i; break; }
    if (para_end - s <= max_chars) {
      cut = next = para_end;
    } else {
      cut = best_cut(text, s, s + max_chars, e);
      next = overlap_start(text, s, cut, overlap);
      if (next <= s) next = cut;
    }
    size_t cs = s, ce = cut;
    trim(text, &cs, &ce);
    if (ce > cs) {
      if (n == cap) {
        size_t ncap = cap ? cap * 2 : 16;
        aip_chunk *p = realloc(chunks, ncap * sizeof *p);
        if (!p) {
          free(chunks);
          return (size_t)-1;
        }
        chunks = p;
        cap = ncap;
      }
      chunks[n++] = (aip_chunk){cs, ce - cs};
    }
    pos = next > s ? next : cut;
    if (pos <= s) pos = s + 1; /* progress, always */
  }
  *out = chunks;
  return n;
}

/* Two independent 64-bit FNV-1a style hashes mixed with a finaliser: not
 * cryptographic, only stable and well spread. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static void hash_bytes(uint64_t h[2], const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h[0] = (h[0] ^ p[i]) * 0x100000001b3ULL;
    h[1] = (h[1] ^ p[i]) * 0x00000100000001b3ULL + 0x9e3779b97f4a7c15ULL;
  }
}

void aip_chunk_id(const char *source, const char *text, size_t len, char out[33]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
  const char *src = source ? source : "";
  hash_bytes(h, src, strlen(src));
  hash_bytes(h, "\0", 1); /* separator: ("ab","c") != ("a","bc") */
  hash_bytes(h, text, len);
  uint64_t a = mix64(h[0] ^ (uint64_t)len), b = mix64(h[1] + a);
  for (int i = 0; i < 16; i++) {
    out[i] = hex[(a >> (60 - 4 * i)) & 15];
    out[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
  }
  out[32] = '\0';
}
