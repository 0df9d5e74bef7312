/* nkeys: derive the public user key from a user seed, which nats.c 3.4.1
 * cannot do (natsOptions_SetNKey wants both). Encoding (nats-io/nkeys):
 * base32 (RFC 4648, no padding) of prefix bytes + 32-byte key + CRC-16
 * XMODEM (little-endian). The Ed25519 public key comes from OpenSSL. */
#include "config.h"

#include <openssl/evp.h>
#include <string.h>

#include "bus_internal.h"

#define PREFIX_SEED (18 << 3) /* 'S' */
#define PREFIX_USER (20 << 3) /* 'U' */

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint16_t crc16(const unsigned char *p, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= (uint16_t)(p[i] << 8);
    for (int b = 0; b < 8; b++)
      crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                           : (uint16_t)(crc << 1);
  }
  return crc;
}

static bool b32_encode(const unsigned char *in, size_t n, char *out,
                       size_t outlen) {
  size_t need = (n * 8 + 4) / 5;
  if (outlen < need + 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 5) {
      out[w++] = b32[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out[w++] = b32[(acc << (5 - bits)) & 31];
  out[w] = '\0';
  return true;
}

/* Decode; false on a character outside the alphabet or too long. */
static bool b32_decode(const char *in, unsigned char *out, size_t outmax,
                       size_t *outlen) {
  uint32_t acc = 0;
  int bits = 0;
  size_t w = 0;
  for (const char *p = in; *p; p++) {
    const char *q = strchr(b32, *p);
    if (!q || !*p) return false;
    acc = (acc << 5) | (uint32_t)(q - b32);
    bits += 5;
    if (bits >= 8) {
      if (w == outmax) return false;
      out[w++] = (unsigned char)(acc >> (bits - 8));
      bits -= 8;
    }
  }
  *outlen = w;
  return true;
}

static bool ed25519_public(const unsigned char seed[32],
                           unsigned char pub[32]) {
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  if (!k) return false;
  size_t n = 32;
  bool ok = EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == 32;
  EVP_PKEY_free(k);
  return ok;
}

bool aip_nkey_public_from_seed(const char *seed, char *pub, size_t publen) {
  unsigned char raw[40];
  size_t n = 0;
  bool ok = false;
  unsigned char key[35];
  if (!seed || strlen(seed) != 58 || !b32_decode(seed, raw, sizeof raw, &n) ||
      n != 36)
    goto out;
  uint16_t crc = (uint16_t)(raw[34] | (raw[35] << 8));
  if (crc16(raw, 34) != crc) goto out;
  unsigned b1 = raw[0] & 248u;
  unsigned b2 = ((raw[0] & 7u) << 5) | ((raw[1] & 248u) >> 3);
  if (b1 != PREFIX_SEED || b2 != PREFIX_USER) goto out;
  key[0] = PREFIX_USER;
  if (!ed25519_public(raw + 2, key + 1)) goto out;
  crc = crc16(key, 33);
  key[33] = (unsigned char)(crc & 0xff);
  key[34] = (unsigned char)(crc >> 8);
  ok = b32_encode(key, 35, pub, publen);
out:
  OPENSSL_cleanse(raw, sizeof raw);
  return ok;
}

bool aip_nkey_encode_seed(const unsigned char rawseed[32], char *seed,
                          size_t seedlen) {
  unsigned char raw[36];
  raw[0] = (unsigned char)(PREFIX_SEED | (PREFIX_USER >> 5));
  raw[1] = (unsigned char)((PREFIX_USER & 31) << 3);
  memcpy(raw + 2, rawseed, 32);
  uint16_t crc = crc16(raw, 34);
  raw[34] = (unsigned char)(crc & 0xff);
  raw[35] = (unsigned char)(crc >> 8);
  bool ok = b32_encode(raw, 36, seed, seedlen);
  OPENSSL_cleanse(raw, sizeof raw);
  return ok;
}
