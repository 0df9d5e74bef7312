/* WAV parsing and writing, and sample-rate conversion, for the local model
 * backend. Pure functions: no global state, safe from any thread. */
#ifndef BK_AUDIO_H
#define BK_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Mono 16-bit PCM at some rate. */
typedef struct bk_pcm {
  int16_t *samples; /* malloc'd */
  size_t n;
  unsigned rate;
  unsigned channels_in; /* channels of the source before the downmix */
} bk_pcm;

void bk_pcm_free(bk_pcm *p);

/* Parse a RIFF/WAVE file holding 16-bit integer PCM (mono, or several
 * channels that are averaged into one). On failure returns false and
 * writes a one-sentence reason into err (never NULL when errlen > 0). */
bool bk_wav_parse(const uint8_t *data, size_t len, bk_pcm *out, char *err,
                  size_t errlen);

/* Size of the canonical header bk_wav_header writes. */
#define BK_WAV_HEADER_BYTES 44

/* A 44-byte RIFF/WAVE header for n_samples of mono 16-bit PCM at rate. */
void bk_wav_header(uint8_t out[BK_WAV_HEADER_BYTES], unsigned rate,
                   size_t n_samples);

/* Convert in[0..n) at in_rate to out_rate with a windowed-sinc low-pass
 * (cut-off just below the lower Nyquist frequency), so downsampling does
 * not alias. *out is malloc'd (NULL with *out_n == 0 for empty input).
 * Returns false only when memory runs out. */
bool bk_resample(const int16_t *in, size_t n, unsigned in_rate,
                 unsigned out_rate, int16_t **out, size_t *out_n);

#endif
