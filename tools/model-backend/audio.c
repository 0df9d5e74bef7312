/* WAV parsing and writing, and sample-rate conversion. */
#include "audio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define WAVE_FORMAT_PCM 0x0001
#define WAVE_FORMAT_EXTENSIBLE 0xFFFE
#define BK_MAX_CHANNELS 8
#define BK_MIN_RATE 4000
#define BK_MAX_RATE 192000

void bk_pcm_free(bk_pcm *p) {
  if (!p) return;
  free(p->samples);
  memset(p, 0, sizeof *p);
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* Name a few common containers so that the error tells the caller what
 * they actually sent. */
static const char *sniff_format(const uint8_t *d, size_t len) {
  if (len >= 4 && memcmp(d, "OggS", 4) == 0) return "Ogg";
  if (len >= 4 && memcmp(d, "fLaC", 4) == 0) return "FLAC";
  if (len >= 3 && memcmp(d, "ID3", 3) == 0) return "MP3";
  if (len >= 2 && d[0] == 0xFF && (d[1] & 0xE0) == 0xE0) return "MP3/AAC";
  if (len >= 8 && memcmp(d + 4, "ftyp", 4) == 0) return "MP4/M4A";
  if (len >= 4 && memcmp(d, "\x1a\x45\xdf\xa3", 4) == 0) return "WebM";
  if (len >= 4 && memcmp(d, "RF64", 4) == 0) return "RF64";
  if (len >= 4 && memcmp(d, "RIFX", 4) == 0) return "big-endian RIFX";
  return NULL;
}

#define FAIL(...)                                       \
  do {                                                  \
    if (errlen > 0) snprintf(err, errlen, __VA_ARGS__); \
    return false;                                       \
  } while (0)

bool bk_wav_parse(const uint8_t *data, size_t len, bk_pcm *out, char *err,
                  size_t errlen) {
  memset(out, 0, sizeof *out);
  if (len == 0) FAIL("the audio file is empty");
  if (len < 12 || memcmp(data, "RIFF", 4) != 0 ||
      memcmp(data + 8, "WAVE", 4) != 0) {
    const char *what = sniff_format(data, len);
    if (what)
      FAIL(
          "unsupported audio container %s: this local backend accepts only "
          "RIFF/WAVE files with 16-bit PCM samples",
          what);
    FAIL(
        "not a WAV file (no RIFF/WAVE header): this local backend accepts "
        "only RIFF/WAVE files with 16-bit PCM samples");
  }
  bool have_fmt = false;
  unsigned channels = 0, rate = 0, bits = 0, block = 0, tag = 0;
  const uint8_t *pcm = NULL;
  size_t pcm_len = 0;
  size_t off = 12;
  while (off + 8 <= len) {
    const uint8_t *id = data + off;
    uint32_t size = le32(data + off + 4);
    size_t body = off + 8;
    size_t avail = len - body;
    if (memcmp(id, "fmt ", 4) == 0) {
      if (size < 16 || size > avail) FAIL("WAV 'fmt ' chunk is truncated");
      tag = le16(data + body);
      channels = le16(data + body + 2);
      rate = le32(data + body + 4);
      block = le16(data + body + 12);
      bits = le16(data + body + 14);
      if (tag == WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40) FAIL("WAV extensible 'fmt ' chunk is truncated");
        tag = le16(data + body + 24); /* first bytes of the sub-format GUID */
      }
      have_fmt = true;
    } else if (memcmp(id, "data", 4) == 0) {
      if (!have_fmt) FAIL("WAV 'data' chunk comes before its 'fmt ' chunk");
      /* Streaming writers leave 0xFFFFFFFF; a short file keeps what came. */
      pcm = data + body;
      pcm_len = size > avail ? avail : size;
      break;
    }
    if (size > avail) break;
    off = body + size + (size & 1u);
  }
  if (!have_fmt) FAIL("WAV file has no 'fmt ' chunk");
  if (tag != WAVE_FORMAT_PCM)
    FAIL(
        "compressed or floating-point WAV (format tag 0x%04x) is not "
        "supported: send 16-bit integer PCM",
        tag);
  if (bits != 16)
    FAIL("%u-bit PCM WAV is not supported: send 16-bit PCM", bits);
  if (channels == 0 || channels > BK_MAX_CHANNELS)
    FAIL("WAV with %u channels is not supported (1 to %d)", channels,
         BK_MAX_CHANNELS);
  if (rate < BK_MIN_RATE || rate > BK_MAX_RATE)
    FAIL("WAV sample rate %u Hz is not supported (%d to %d Hz)", rate,
         BK_MIN_RATE, BK_MAX_RATE);
  if (block != channels * 2u)
    FAIL("WAV block alignment %u does not match %u channels of 16 bits", block,
         channels);
  if (!pcm) FAIL("WAV file has no 'data' chunk");
  size_t frames = pcm_len / block;
  if (frames == 0) FAIL("the audio is empty (WAV 'data' chunk has no samples)");
  int16_t *s = malloc(frames * sizeof *s);
  if (!s) FAIL("out of memory");
  for (size_t i = 0; i < frames; i++) {
    const uint8_t *f = pcm + i * block;
    int32_t acc = 0;
    for (unsigned c = 0; c < channels; c++) acc += (int16_t)le16(f + 2 * c);
    s[i] = (int16_t)(acc / (int32_t)channels);
  }
  out->samples = s;
  out->n = frames;
  out->rate = rate;
  out->channels_in = channels;
  return true;
}

void bk_wav_header(uint8_t h[BK_WAV_HEADER_BYTES], unsigned rate,
                   size_t n_samples) {
  uint32_t data = (uint32_t)(n_samples * 2u);
  memcpy(h, "RIFF", 4);
  put32(h + 4, 36u + data);
  memcpy(h + 8, "WAVE", 4);
  memcpy(h + 12, "fmt ", 4);
  put32(h + 16, 16);
  put16(h + 20, WAVE_FORMAT_PCM);
  put16(h + 22, 1);
  put32(h + 24, rate);
  put32(h + 28, rate * 2u);
  put16(h + 32, 2);
  put16(h + 34, 16);
  memcpy(h + 36, "data", 4);
  put32(h + 40, data);
}

/* ---- resampling -------------------------------------------------------- */

/* Zero crossings of the sinc on each side, and table points per crossing. */
#define ZC 16
#define RES 256
/* Pass band as a fraction of the lower Nyquist frequency. */
#define PASS 0.94

static void build_kernel(double *tab) {
  /* tab[i] = sinc(u) * blackman(u / ZC) at u = i / RES, u in [0, ZC]. */
  for (int i = 0; i <= ZC * RES; i++) {
    double u = (double)i / RES;
    double s = i == 0 ? 1.0 : sin(M_PI * u) / (M_PI * u);
    double x = u / ZC;
    double w = 0.42 + 0.5 * cos(M_PI * x) + 0.08 * cos(2.0 * M_PI * x);
    tab[i] = s * w;
  }
}

static double kernel_at(const double *tab, double u) {
  if (u < 0) u = -u;
  double p = u * RES;
  int i = (int)p;
  if (i >= ZC * RES) return 0.0;
  double f = p - i;
  return tab[i] + f * (tab[i + 1] - tab[i]);
}

bool bk_resample(const int16_t *in, size_t n, unsigned in_rate,
                 unsigned out_rate, int16_t **out, size_t *out_n) {
  *out = NULL;
  *out_n = 0;
  if (n == 0) return true;
  if (in_rate == out_rate) {
    *out = malloc(n * sizeof **out);
    if (!*out) return false;
    memcpy(*out, in, n * sizeof **out);
    *out_n = n;
    return true;
  }
  size_t m = (size_t)(((uint64_t)n * out_rate) / in_rate);
  if (m == 0) m = 1;
  int16_t *y = malloc(m * sizeof *y);
  double *tab = malloc((ZC * RES + 1) * sizeof *tab);
  if (!y || !tab) {
    free(y);
    free(tab);
    return false;
  }
  build_kernel(tab);
  /* fc: cut-off in cycles per input sample, relative to input Nyquist. */
  double fc = (out_rate < in_rate ? (double)out_rate / in_rate : 1.0) * PASS;
  double half = ZC / fc;
  for (size_t j = 0; j < m; j++) {
    double t = (double)((uint64_t)j * in_rate) / out_rate;
    long lo = (long)ceil(t - half);
    long hi = (long)floor(t + half);
    if (lo < 0) lo = 0;
    if (hi > (long)n - 1) hi = (long)n - 1;
    double acc = 0.0;
    for (long k = lo; k <= hi; k++)
      acc += in[k] * kernel_at(tab, fc * (t - (double)k));
    acc *= fc;
    if (acc > 32767.0) acc = 32767.0;
    if (acc < -32768.0) acc = -32768.0;
    y[j] = (int16_t)lrint(acc);
  }
  free(tab);
  *out = y;
  *out_n = m;
  return true;
}
