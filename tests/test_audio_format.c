/* The audio-format and language rules of speech requests (lib/audio_format.h):
 * one table of cases, as stt-module and voice-assistant apply them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_format.h"
#include "harness/testutil.h"

static const uint8_t SOUND[6] = {1, 2, 3, 4, 5, 6};

static const struct {
  const char *format;
  size_t len; /* bytes of SOUND (0: empty audio) */
  aiplat_status want;
  const char *mime; /* expected MIME type (NULL: detect) */
  uint32_t rate;    /* expected wrapped PCM rate */
  const char *why;  /* part of the refusal */
} formats[] = {
    {"", 6, AIPLAT_OK, NULL, 0, NULL},
    {NULL, 6, AIPLAT_OK, NULL, 0, NULL},
    {"wav", 6, AIPLAT_OK, "audio/wav", 0, NULL},
    {"WAVE", 6, AIPLAT_OK, "audio/wav", 0, NULL},
    {"mp3", 6, AIPLAT_OK, "audio/mpeg", 0, NULL},
    {"ogg", 6, AIPLAT_OK, "audio/ogg", 0, NULL},
    {"opus", 6, AIPLAT_OK, "audio/ogg", 0, NULL},
    {"flac", 6, AIPLAT_OK, "audio/flac", 0, NULL},
    {"webm", 6, AIPLAT_OK, "audio/webm", 0, NULL},
    {"m4a", 6, AIPLAT_OK, "audio/mp4", 0, NULL},
    {"mp4", 6, AIPLAT_OK, "audio/mp4", 0, NULL},
    {"aac", 6, AIPLAT_OK, "audio/aac", 0, NULL},
    {"audio/x-custom", 6, AIPLAT_OK, "audio/x-custom", 0, NULL},
    {"video/webm", 6, AIPLAT_OK, "video/webm", 0, NULL},
    {"audio/", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    {"audio/x\"y", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    {"aiff", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    {"midi", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    /* raw PCM: 8000 to 192000 Hz, whole 16-bit samples */
    {"pcm_s16le_8000", 6, AIPLAT_OK, "audio/wav", 8000, NULL},
    {"pcm_s16le_16000", 6, AIPLAT_OK, "audio/wav", 16000, NULL},
    {"PCM_S16LE_22050", 6, AIPLAT_OK, "audio/wav", 22050, NULL},
    {"pcm_s16le_192000", 6, AIPLAT_OK, "audio/wav", 192000, NULL},
    {"pcm_s16le_7999", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "8000"},
    {"pcm_s16le_4000", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    {"pcm_s16le_192001", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "192000"},
    {"pcm_s16le_12", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    {"pcm_s16le_", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio_format"},
    {"pcm_s16le_+16000", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0,
     "audio_format"},
    {"pcm_s16le_16000x", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0,
     "audio_format"},
    {"pcm_s16le_0016000", 6, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0,
     "audio_format"},
    {"pcm_s16le_16000", 5, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "odd"},
    /* empty audio: whatever the format */
    {"wav", 0, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio is empty"},
    {"", 0, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio is empty"},
    {"aiff", 0, AIPLAT_ERR_INVALID_ARGUMENT, NULL, 0, "audio is empty"},
};

START_TEST(audio_formats) {
  int i = _i;
  aip_audio a;
  char why[256] = "";
  aiplat_status st =
      aip_audio_prepare(&a, formats[i].len ? SOUND : NULL, formats[i].len,
                        formats[i].format, why, sizeof why);
  ck_assert_msg(st == formats[i].want, "%s: %s", formats[i].format,
                aiplat_status_str(st));
  if (st != AIPLAT_OK) {
    ck_assert_msg(strstr(why, formats[i].why), "%s: %s", formats[i].format,
                  why);
  } else {
    if (formats[i].mime)
      ck_assert_str_eq(a.mime, formats[i].mime);
    else
      ck_assert_ptr_null(a.mime);
    ck_assert_uint_eq(a.pcm_rate, formats[i].rate);
    if (formats[i].rate) {
      ck_assert_uint_eq(a.len, 44 + formats[i].len);
      ck_assert_int_eq(memcmp(a.data, "RIFF", 4), 0);
      ck_assert_int_eq(memcmp(a.data + 44, SOUND, formats[i].len), 0);
    } else {
      ck_assert_ptr_eq(a.data, SOUND);
      ck_assert_uint_eq(a.len, formats[i].len);
    }
  }
  aip_audio_release(&a);
}
END_TEST

static const struct {
  const char *language;
  aiplat_status want;
  const char *sent;
} languages[] = {
    {NULL, AIPLAT_OK, ""},
    {"", AIPLAT_OK, ""},
    {"en", AIPLAT_OK, "en"},
    {"EN", AIPLAT_OK, "en"},
    {"en-US", AIPLAT_OK, "en"},
    {"de_CH", AIPLAT_OK, "de"},
    {"yue", AIPLAT_OK, "yue"},
    {"zh-Hant-TW", AIPLAT_OK, "zh"},
    {"es-419", AIPLAT_OK, "es"},
    {"e", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"english", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"en-", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"en--US", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"en-toolongsubtag", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"en\"; rm", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"en US", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
    {"12", AIPLAT_ERR_INVALID_ARGUMENT, NULL},
};

START_TEST(language_codes) {
  int i = _i;
  char out[8] = "x", why[256] = "";
  aiplat_status st = aip_audio_language(languages[i].language, out, sizeof out,
                                        why, sizeof why);
  ck_assert_msg(st == languages[i].want, "%s: %s", languages[i].language,
                aiplat_status_str(st));
  if (st == AIPLAT_OK)
    ck_assert_str_eq(out, languages[i].sent);
  else
    ck_assert_ptr_nonnull(strstr(why, "language"));
}
END_TEST

START_TEST(content_types_name_formats) {
  ck_assert_str_eq(aip_audio_format_name("audio/mpeg"), "mp3");
  ck_assert_str_eq(aip_audio_format_name("audio/x-wav"), "wav");
  ck_assert_str_eq(aip_audio_format_name("audio/wave"), "wav");
  ck_assert_str_eq(aip_audio_format_name("audio/wav; codecs=1"), "wav");
  ck_assert_str_eq(aip_audio_format_name("audio/ogg"), "ogg");
  ck_assert_str_eq(aip_audio_format_name("application/octet-stream"),
                   "application/octet-stream");
  ck_assert_str_eq(aip_audio_format_name(NULL), "");
}
END_TEST

START_TEST(tts_formats_are_those_of_the_speech_api) {
  const char *ok[] = {"wav", "mp3", "opus", "aac", "flac", "pcm"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    ck_assert_msg(aip_audio_tts_format_known(ok[i]), "%s", ok[i]);
  const char *bad[] = {"midi", "WAV", "", "ogg", "pcm_s16le_16000", NULL};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!aip_audio_tts_format_known(bad[i]), "%s",
                  bad[i] ? bad[i] : "NULL");
}
END_TEST

START_TEST(wav_header_describes_the_pcm) {
  size_t len = 0;
  uint8_t *w = aip_audio_wav_wrap(SOUND, 6, 16000, &len);
  ck_assert_ptr_nonnull(w);
  ck_assert_uint_eq(len, 50);
  ck_assert_int_eq(memcmp(w + 8, "WAVEfmt ", 8), 0);
  ck_assert_uint_eq(w[4], 42); /* RIFF size: 36 + data */
  ck_assert_uint_eq(w[22], 1); /* mono */
  ck_assert_uint_eq(w[24] | w[25] << 8 | w[26] << 16, 16000);
  ck_assert_uint_eq(w[28] | w[29] << 8 | w[30] << 16, 32000);
  ck_assert_uint_eq(w[34], 16); /* bits per sample */
  ck_assert_uint_eq(w[40], 6);  /* data size */
  free(w);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("audio_format");
  TCase *tc = tcase_create("audio_format");
  tcase_add_loop_test(tc, audio_formats, 0,
                      (int)(sizeof formats / sizeof formats[0]));
  tcase_add_loop_test(tc, language_codes, 0,
                      (int)(sizeof languages / sizeof languages[0]));
  tcase_add_test(tc, content_types_name_formats);
  tcase_add_test(tc, tts_formats_are_those_of_the_speech_api);
  tcase_add_test(tc, wav_header_describes_the_pcm);
  suite_add_tcase(s, tc);
  return s;
}
