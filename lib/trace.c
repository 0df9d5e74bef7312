/* W3C trace context: https://www.w3.org/TR/trace-context/ (traceparent). */
#include "config.h"

#include "trace.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"
#include "otel.h"

/* Ids need to be unique, not secret: a per-thread xoshiro256** generator
 * seeded once from getrandom() avoids a system call per request. */
static _Thread_local uint64_t rng[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
  uint64_t result = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
  rng[2] ^= rng[0];
  rng[3] ^= rng[1];
  rng[1] ^= rng[2];
  rng[0] ^= rng[3];
  rng[2] ^= t;
  rng[3] = rotl(rng[3], 45);
  return result;
}

/* A forked child must not repeat its parent's sequence. */
static void rng_forget(void) { rng_seeded = false; }
static void rng_atfork(void) { pthread_atfork(NULL, NULL, rng_forget); }
static pthread_once_t rng_once = PTHREAD_ONCE_INIT;

static void rng_seed(void) {
  pthread_once(&rng_once, rng_atfork);
  uint8_t *p = (uint8_t *)rng;
  size_t n = sizeof rng;
  while (n > 0) {
    ssize_t got = getrandom(p, n, GRND_NONBLOCK);
    if (got <= 0) break;
    p += got;
    n -= (size_t)got;
  }
  if (n > 0) { /* no entropy yet (early boot): time and address */
    uint64_t x = (uint64_t)aip_now_ns() ^ (uint64_t)(uintptr_t)&rng;
    for (int i = 0; i < 4; i++) {
      x += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      rng[i] ^= z ^ (z >> 31);
    }
  }
  if (!(rng[0] | rng[1] | rng[2] | rng[3])) rng[0] = 1;
  rng_seeded = true;
}

void aip_random_bytes(void *buf, size_t n) {
  if (!rng_seeded) rng_seed();
  uint8_t *p = buf;
  while (n > 0) {
    uint64_t r = rng_next();
    size_t k = n < 8 ? n : 8;
    memcpy(p, &r, k);
    p += k;
    n -= k;
  }
}

static bool is_lower_hex(const char *s, size_t n) {
  bool nonzero = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    if (c != '0') nonzero = true;
  }
  return nonzero;
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool aip_trace_parse(const char *h, aip_trace *out) {
  if (!h) return false;
  size_t len = strlen(h);
  if (len < AIP_TRACEPARENT_LEN) return false;
  int v0 = hexval(h[0]), v1 = hexval(h[1]);
  if (v0 < 0 || v1 < 0 || (v0 == 15 && v1 == 15)) return false; /* ff invalid */
  bool v00 = v0 == 0 && v1 == 0;
  if (v00 && len != AIP_TRACEPARENT_LEN) return false;
  if (!v00 && len > AIP_TRACEPARENT_LEN && h[AIP_TRACEPARENT_LEN] != '-') return false;
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  if (!is_lower_hex(h + 3, 32) || !is_lower_hex(h + 36, 16)) return false;
  int f0 = hexval(h[53]), f1 = hexval(h[54]);
  if (f0 < 0 || f1 < 0) return false;
  memcpy(out->trace_id, h + 3, 32);
  out->trace_id[32] = '\0';
  memcpy(out->parent_span_id, h + 36, 16);
  out->parent_span_id[16] = '\0';
  memcpy(out->span_id, out->parent_span_id, 17);
  out->flags = (uint8_t)(f0 << 4 | f1);
  return true;
}

static void hex_random(char *dst, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[16];
  do {
    aip_random_bytes(raw, nbytes);
  } while (!memcmp(raw, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", nbytes));
  for (size_t i = 0; i < nbytes; i++) {
    dst[2 * i] = hex[raw[i] >> 4];
    dst[2 * i + 1] = hex[raw[i] & 15];
  }
  dst[2 * nbytes] = '\0';
}

void aip_trace_continue(const char *parent, aip_trace *out) {
  bool has_parent = aip_trace_parse(parent, out);
  if (!has_parent) {
    hex_random(out->trace_id, 16);
    out->parent_span_id[0] = '\0';
    out->flags = 0x01; /* sampled: the platform records what it starts */
  }
  hex_random(out->span_id, 8);
  /* The sampler's decision travels on in the flags (sampled bit). */
  out->flags = aip_otel_sample(out, has_parent);
}

void aip_trace_format(const aip_trace *t, char *buf, size_t buflen) {
  static const char hex[] = "0123456789abcdef";
  if (buflen < AIP_TRACEPARENT_LEN + 1) {
    if (buflen) buf[0] = '\0';
    return;
  }
  /* "00-" trace "-" span "-" flags, without printf on the request path */
  memcpy(buf, "00-", 3);
  memcpy(buf + 3, t->trace_id, AIP_TRACE_ID_HEX);
  buf[35] = '-';
  memcpy(buf + 36, t->span_id, AIP_SPAN_ID_HEX);
  buf[52] = '-';
  buf[53] = hex[t->flags >> 4];
  buf[54] = hex[t->flags & 15];
  buf[55] = '\0';
}
