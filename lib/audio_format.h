/* The audio-format and language rules of the speech requests, in one place
 * for stt-module and voice-assistant (docs/decisions/0016-chat-and-voice-
 * services.md, "Audio formats and languages"), and the formats asked of
 * the text-to-speech server for tts-module and voice-assistant. Internal. */
#ifndef AIPLAT_AUDIO_FORMAT_H
#define AIPLAT_AUDIO_FORMAT_H

#include "internal.h"

/* Raw PCM rates accepted in `pcm_s16le_RATE`. */
#define AIP_AUDIO_PCM_RATE_MIN 8000
#define AIP_AUDIO_PCM_RATE_MAX 192000

/* The audio of a request, ready for the STT client. */
typedef struct aip_audio {
  const uint8_t *data; /* the caller's bytes, or `owned` */
  size_t len;
  const char *mime;  /* NULL: the client tells the format from the bytes */
  uint32_t pcm_rate; /* the rate of raw PCM that was wrapped, else 0 */
  uint8_t *owned;    /* the WAV made from raw PCM, or NULL */
} aip_audio;

/* Check @audio (@len bytes) declared as @format ("" or NULL: undeclared)
 * and fill @out (release with aip_audio_release, also after a failure).
 * @out borrows @audio unless raw PCM was wrapped.
 * Errors: AIPLAT_ERR_INVALID_ARGUMENT (empty audio, a format not known,
 * a PCM rate out of range, an odd PCM byte count), AIPLAT_ERR_NO_MEMORY;
 * the detail (naming `audio` or `audio_format`) in @why. */
aiplat_status aip_audio_prepare(aip_audio *out, const uint8_t *audio,
                                size_t len, const char *format, char *why,
                                size_t whylen);
void aip_audio_release(aip_audio *a);

/* The language code sent to the STT server for a request's @language: ""
 * for none, else its primary subtag in lower case ("en-US" -> "en"); the
 * code is 2 or 3 letters, optionally followed by subtags of 1 to 8 letters
 * or digits after '-' or '_'. AIPLAT_ERR_INVALID_ARGUMENT otherwise (detail
 * naming `language` in @why). @out holds at least 4 bytes. */
aiplat_status aip_audio_language(const char *language, char *out, size_t outlen,
                                 char *why, size_t whylen);

/* The formats a text-to-speech server is asked for (OpenAI's speech API),
 * for TTS_FORMAT and SynthesizeRequest.format alike. */
#define AIP_AUDIO_TTS_FORMATS "wav, mp3, opus, aac, flac, pcm"
bool aip_audio_tts_format_known(const char *format);

/* The short format name of a content type ("audio/mpeg" -> "mp3",
 * "audio/x-wav" -> "wav"; another "audio/X" -> "X"; else as given). */
const char *aip_audio_format_name(const char *content_type);

/* Raw 16-bit little-endian mono PCM wrapped in a RIFF/WAVE header; NULL
 * when out of memory or @len does not fit a WAV. malloc'd. */
uint8_t *aip_audio_wav_wrap(const uint8_t *pcm, size_t len, uint32_t rate,
                            size_t *out_len);

#endif
