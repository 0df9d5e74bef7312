/* The audio-format and language rules of speech requests (audio_format.h). */
#include "audio_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
  const char *name, *mime;
} formats[] = {
    {"wav", "audio/wav"},   {"wave", "audio/wav"},  {"mp3", "audio/mpeg"},
    {"mpeg", "audio/mpeg"}, {"ogg", "audio/ogg"},   {"opus", "audio/ogg"},
    {"flac", "audio/flac"}, {"webm", "audio/webm"}, {"m4a", "audio/mp4"},
    {"mp4", "audio/mp4"},   {"aac", "audio/aac"},
};

static void put_le(uint8_t *p, uint32_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint8_t *aip_audio_wav_wrap(const uint8_t *pcm, size_t len, uint32_t rate,
                            size_t *out_len) {
  if (len > UINT32_MAX - 44) return NULL;
  uint8_t *w = malloc(44 + len);
  if (!w) return NULL;
  memcpy(w, "RIFF", 4);
  put_le(w + 4, (uint32_t)(36 + len), 4);
  memcpy(w + 8, "WAVEfmt ", 8);
  put_le(w + 16, 16, 4);
  put_le(w + 20, 1, 2); /* PCM */
  put_le(w + 22, 1, 2); /* mono */
  put_le(w + 24, rate, 4);
  put_le(w + 28, rate * 2, 4);
  put_le(w + 32, 2, 2);
  put_le(w + 34, 16, 2);
  memcpy(w + 36, "data", 4);
  put_le(w + 40, (uint32_t)len, 4);
  memcpy(w + 44, pcm, len);
  *out_len = 44 + len;
  return w;
}

/* The rate of "pcm_s16le_RATE" in range, else 0. */
static uint32_t pcm_rate_of(const char *fmt) {
  if (strncasecmp(fmt, "pcm_s16le_", 10) != 0) return 0;
  const char *p = fmt + 10;
  if (strspn(p, "0123456789") != strlen(p) || !*p || strlen(p) > 6) return 0;
  long rate = strtol(p, NULL, 10);
  return rate >= AIP_AUDIO_PCM_RATE_MIN && rate <= AIP_AUDIO_PCM_RATE_MAX
             ? (uint32_t)rate
             : 0;
}

static bool known_mime(const char *fmt, const char **mime) {
  if (strncasecmp(fmt, "audio/", 6) == 0 ||
      strncasecmp(fmt, "video/", 6) == 0) {
    /* The type goes into a multipart header: no quotes or line breaks. */
    if (!fmt[6] || strpbrk(fmt, "\r\n\"")) return false;
    *mime = fmt;
    return true;
  }
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (strcasecmp(fmt, formats[i].name) == 0) {
      *mime = formats[i].mime;
      return true;
    }
  return false;
}

aiplat_status aip_audio_prepare(aip_audio *out, const uint8_t *audio,
                                size_t len, const char *format, char *why,
                                size_t whylen) {
  memset(out, 0, sizeof *out);
  if (!format) format = "";
  if (!audio || len == 0) {
    snprintf(why, whylen, "audio is empty");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  out->data = audio;
  out->len = len;
  if (!*format || known_mime(format, &out->mime)) return AIPLAT_OK;
  uint32_t rate = pcm_rate_of(format);
  if (!rate) {
    snprintf(why, whylen,
             "audio_format is not one of wav, mp3, ogg, opus, flac, webm, "
             "m4a, mp4, aac, pcm_s16le_RATE (RATE %d to %d) or an audio/* "
             "type",
             AIP_AUDIO_PCM_RATE_MIN, AIP_AUDIO_PCM_RATE_MAX);
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  if (len % 2 != 0) {
    snprintf(why, whylen, "pcm_s16le audio has an odd number of bytes");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  if (!(out->owned = aip_audio_wav_wrap(audio, len, rate, &out->len))) {
    snprintf(why, whylen, "out of memory");
    return AIPLAT_ERR_NO_MEMORY;
  }
  out->data = out->owned;
  out->mime = "audio/wav";
  out->pcm_rate = rate;
  return AIPLAT_OK;
}

void aip_audio_release(aip_audio *a) {
  if (!a) return;
  free(a->owned);
  memset(a, 0, sizeof *a);
}

static bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c) {
  return is_alpha(c) || (c >= '0' && c <= '9');
}

aiplat_status aip_audio_language(const char *language, char *out, size_t outlen,
                                 char *why, size_t whylen) {
  if (outlen) *out = '\0';
  if (!language || !*language) return AIPLAT_OK;
  size_t n = 0;
  while (is_alpha(language[n])) n++;
  bool ok = (n == 2 || n == 3) && n < outlen;
  for (const char *p = language + n; ok && *p;) {
    if (*p != '-' && *p != '_') {
      ok = false;
      break;
    }
    size_t k = 0;
    while (is_alnum(p[1 + k])) k++;
    ok = k >= 1 && k <= 8;
    p += 1 + k;
  }
  if (!ok) {
    snprintf(why, whylen,
             "language \"%.40s\" is not a language code (such as en or "
             "en-US)",
             language);
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = (char)(language[i] | 0x20); /* ASCII lower case */
  out[n] = '\0';
  return AIPLAT_OK;
}

bool aip_audio_tts_format_known(const char *format) {
  static const char *const names[] = {"wav", "mp3",  "opus",
                                      "aac", "flac", "pcm"};
  for (size_t i = 0; format && i < sizeof names / sizeof names[0]; i++)
    if (strcmp(format, names[i]) == 0) return true;
  return false;
}

const char *aip_audio_format_name(const char *content_type) {
  static const struct {
    const char *type, *name;
  } names[] = {{"audio/mpeg", "mp3"}, {"audio/mp3", "mp3"},
               {"audio/wav", "wav"},  {"audio/x-wav", "wav"},
               {"audio/wave", "wav"}, {"audio/vnd.wave", "wav"}};
  if (!content_type) return "";
  size_t len = strcspn(content_type, ";");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i].type) == len &&
        strncasecmp(content_type, names[i].type, len) == 0)
      return names[i].name;
  return strncasecmp(content_type, "audio/", 6) == 0 ? content_type + 6
                                                     : content_type;
}
