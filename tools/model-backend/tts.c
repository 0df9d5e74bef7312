/* POST /v1/audio/speech: speech synthesis with CMU flite. */
#include <ctype.h>
#include <flite/flite.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audio.h"
#include "backend.h"
#include "config.h"

/* The voice libraries of Debian's flite1-dev export these. */
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
void unregister_cmu_us_rms(cst_voice *v);
void unregister_cmu_us_slt(cst_voice *v);
void unregister_cmu_us_awb(cst_voice *v);
void unregister_cmu_us_kal16(cst_voice *v);
void unregister_cmu_us_kal(cst_voice *v);

#define MAX_INPUT_CHARS 4096
#define PCM_RATE 24000 /* OpenAI's response_format "pcm": 24 kHz s16le */

static const struct {
  const char *name;
  cst_voice *(*reg)(const char *);
  void (*unreg)(cst_voice *);
} catalogue[] = {
    {"rms", register_cmu_us_rms, unregister_cmu_us_rms},
    {"slt", register_cmu_us_slt, unregister_cmu_us_slt},
    {"awb", register_cmu_us_awb, unregister_cmu_us_awb},
    {"kal16", register_cmu_us_kal16, unregister_cmu_us_kal16},
    {"kal", register_cmu_us_kal, unregister_cmu_us_kal},
};
#define N_VOICES (sizeof catalogue / sizeof catalogue[0])

/* OpenAI's voice names: all map to the default voice. */
static const char *const openai_voices[] = {
    "alloy", "ash",  "ballad",  "coral", "echo",  "fable", "nova",
    "onyx",  "sage", "shimmer", "verse", "marin", "cedar",
};

struct bk_tts {
  pthread_mutex_t mu; /* flite voices keep per-call state: one at a time */
  cst_voice *v[N_VOICES];
  size_t def;
};

const char *bk_tts_voice_list(void) {
  return "rms (default), slt, awb, kal16 (16 kHz) and kal (8 kHz)";
}

static int voice_index(const char *name) {
  if (strncasecmp(name, "cmu_us_", 7) == 0) name += 7;
  for (size_t i = 0; i < N_VOICES; i++)
    if (strcasecmp(name, catalogue[i].name) == 0) return (int)i;
  return -1;
}

bk_tts *bk_tts_create(const char *default_voice, char *err, size_t errlen) {
  int def = voice_index(default_voice ? default_voice : "rms");
  if (def < 0) {
    snprintf(err, errlen, "unknown voice '%s' (voices: %s)", default_voice,
             bk_tts_voice_list());
    return NULL;
  }
  bk_tts *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  flite_init();
  for (size_t i = 0; i < N_VOICES; i++) {
    t->v[i] = catalogue[i].reg(NULL);
    if (!t->v[i]) {
      snprintf(err, errlen, "flite could not load voice %s", catalogue[i].name);
      bk_tts_destroy(t);
      return NULL;
    }
  }
  t->def = (size_t)def;
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

void bk_tts_destroy(bk_tts *t) {
  if (!t) return;
  for (size_t i = 0; i < N_VOICES; i++)
    if (t->v[i]) catalogue[i].unreg(t->v[i]);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static bool is_openai_voice(const char *name) {
  for (size_t i = 0; i < sizeof openai_voices / sizeof openai_voices[0]; i++)
    if (strcasecmp(name, openai_voices[i]) == 0) return true;
  return false;
}

static void put_le16(uint8_t *p, int16_t v) {
  p[0] = (uint8_t)((uint16_t)v & 0xff);
  p[1] = (uint8_t)((uint16_t)v >> 8);
}

void bk_handle_speech(bk_server *s, json_t *req, bk_reply *r) {
  bk_tts *t = s->tts;
  if (!bk_model_name(s, req, BK_MODEL_TTS, r)) return;
  json_t *in = json_object_get(req, "input");
  if (!json_is_string(in) || bk_word_count(json_string_value(in)) == 0) {
    bk_reply_error(r, 400, "input", "input must be a string with some text");
    return;
  }
  if (json_string_length(in) > MAX_INPUT_CHARS) {
    bk_reply_error(r, 400, "input", "input is longer than %d characters",
                   MAX_INPUT_CHARS);
    return;
  }
  size_t vi = t->def;
  json_t *vj = json_object_get(req, "voice");
  if (vj && !json_is_null(vj)) {
    const char *name = json_string_value(vj);
    if (!name && json_is_object(vj)) /* newer API: {"id": "..."} */
      name = json_string_value(json_object_get(vj, "id"));
    int k = name ? voice_index(name) : -1;
    if (k >= 0) {
      vi = (size_t)k;
    } else if (!name || !is_openai_voice(name)) {
      bk_reply_error(r, 400, "voice",
                     "unknown voice '%s': this local backend has the flite "
                     "voices %s; OpenAI voice names map to the default",
                     name ? name : "?", bk_tts_voice_list());
      return;
    }
  }
  /* OpenAI's default is mp3, which flite cannot make: default to wav. */
  const char *fmt = "wav";
  json_t *fj = json_object_get(req, "response_format");
  if (fj && !json_is_null(fj)) fmt = json_string_value(fj);
  bool pcm = fmt && strcmp(fmt, "pcm") == 0;
  if (!fmt || (!pcm && strcmp(fmt, "wav") != 0)) {
    bk_reply_error(r, 400, "response_format",
                   "response_format '%s' is not supported by the local backend "
                   "(flite makes PCM audio): use \"wav\" (16-bit mono at the "
                   "voice's rate) or \"pcm\" (16-bit mono at 24 kHz)",
                   fmt ? fmt : "?");
    return;
  }
  const char *sf = json_string_value(json_object_get(req, "stream_format"));
  if (sf && strcmp(sf, "audio") != 0) {
    bk_reply_error(r, 400, "stream_format",
                   "stream_format '%s' is not supported: the local backend "
                   "streams the audio bytes (\"audio\")",
                   sf);
    return;
  }
  double speed = 1.0;
  json_t *sj = json_object_get(req, "speed");
  if (sj && !json_is_null(sj)) {
    if (!json_is_number(sj) || json_number_value(sj) < 0.25 ||
        json_number_value(sj) > 4.0) {
      bk_reply_error(r, 400, "speed", "speed must be a number 0.25..4.0");
      return;
    }
    speed = json_number_value(sj);
  }

  /* An extension some self-hosted TTS servers have: the output rate. */
  unsigned out_rate = pcm ? PCM_RATE : 0;
  json_t *rj = json_object_get(req, "sample_rate");
  if (rj && !json_is_null(rj)) {
    if (!json_is_integer(rj) || json_integer_value(rj) < 8000 ||
        json_integer_value(rj) > 48000) {
      bk_reply_error(r, 400, "sample_rate",
                     "sample_rate must be an integer 8000..48000");
      return;
    }
    out_rate = (unsigned)json_integer_value(rj);
  }

  pthread_mutex_lock(&t->mu);
  /* flite's clustergen voices draw excitation noise from rand(): a fixed
   * seed makes the same request give the same bytes. */
  srand(0x5eed);
  cst_voice *v = t->v[vi];
  feat_set_float(v->features, "duration_stretch", (float)(1.0 / speed));
  cst_wave *w = flite_text_to_wave(json_string_value(in), v);
  pthread_mutex_unlock(&t->mu);
  if (!w || w->num_samples <= 0 || w->num_channels != 1) {
    if (w) delete_wave(w);
    bk_reply_error(r, 500, NULL, "flite produced no audio for this input");
    return;
  }
  int16_t *samples = w->samples;
  size_t n = (size_t)w->num_samples;
  unsigned rate = (unsigned)w->sample_rate;
  int16_t *resampled = NULL;
  if (out_rate && rate != out_rate) {
    if (!bk_resample(samples, n, rate, out_rate, &resampled, &n)) {
      delete_wave(w);
      bk_reply_error(r, 500, NULL, "out of memory");
      return;
    }
    samples = resampled;
    rate = out_rate;
  }
  size_t head = pcm ? 0 : BK_WAV_HEADER_BYTES;
  if (!aip_buf_reserve(&r->body, head + 2 * n)) {
    delete_wave(w);
    free(resampled);
    bk_reply_error(r, 500, NULL, "out of memory");
    return;
  }
  uint8_t *p = (uint8_t *)r->body.data;
  if (!pcm) bk_wav_header(p, rate, n);
  for (size_t i = 0; i < n; i++) put_le16(p + head + 2 * i, samples[i]);
  r->body.len = head + 2 * n;
  r->body.data[r->body.len] = '\0';
  delete_wave(w);
  free(resampled);
  r->status = 200;
  r->content_type = pcm ? "audio/pcm" : "audio/wav";
  r->chunked = true;
  r->is_json = false;
}
