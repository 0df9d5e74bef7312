/* Text-to-speech client (aiplat/tts.h). */
#include "aiplat/tts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "model_common.h"
#include "model_parse.h"

#define JSON_ANSWER_MAX 65536

struct aiplat_tts {
  aip_model_base base;
  char *voice; /* these three under base.mu */
  char *format;
  double speed;
};

static bool valid_format(const char *f) {
  size_t n = f ? strlen(f) : 0;
  if (n == 0 || n > 16) return false;
  for (size_t i = 0; i < n; i++)
    if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') ||
          f[i] == '_'))
      return false;
  return true;
}

static bool valid_speed(double s) {
  return !isnan(s) && s >= 0.25 && s <= 4.0;
}

AIPLAT_API aiplat_status aiplat_tts_create(aiplat_tts **out,
                                           aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL out");
  *out = NULL;
  aiplat_tts *c = calloc(1, sizeof *c);
  if (!c) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  aiplat_status st = aip_model_base_init(&c->base, "tts", cfg, "TTS_URL",
                                         "TTS_API_KEY", "TTS_MODEL", NULL);
  if (st != AIPLAT_OK) {
    free(c);
    return st;
  }
  aiplat_config *own = NULL, *k = aip_model_cfg_begin(cfg, &own);
  const char *voice = NULL, *format = NULL;
  if (!k) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
    goto done;
  }
  if ((st = aiplat_config_get_string(k, "TTS_VOICE", &voice)) != AIPLAT_OK ||
      (st = aiplat_config_get_string(k, "TTS_FORMAT", &format)) != AIPLAT_OK ||
      (st = aiplat_config_get_double(k, "TTS_SPEED", 0.25, 4.0, &c->speed)) !=
          AIPLAT_OK) {
    aip_model_cfg_fail(&c->base, k, st);
    goto done;
  }
  if (!voice || !*voice) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_CONFIG, "tts: TTS_VOICE is not set");
  } else if (!valid_format(format)) {
    st = aip_fail(
        &c->base.err, AIPLAT_ERR_CONFIG,
        "tts: TTS_FORMAT=\"%.40s\" is not a format name such as wav or mp3",
        format ? format : "");
  } else if (!(c->voice = aip_strdup(voice)) ||
             !(c->format = aip_strdup(format))) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
done:
  aip_model_cfg_end(own);
  if (st != AIPLAT_OK) {
    aiplat_tts_destroy(c);
    return st;
  }
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_tts_destroy(aiplat_tts *c) {
  if (!c) return;
  aip_model_base_destroy(&c->base);
  free(c->voice);
  free(c->format);
  free(c);
}

AIP_MODEL_COMMON_API(tts)

AIPLAT_API aiplat_status aiplat_tts_set_stream_idle_timeout_ms(aiplat_tts *c,
                                                               int64_t ms) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  return aip_model_base_set(&c->base, AIP_KNOB_IDLE_TIMEOUT, ms);
}

static aiplat_status set_string(aiplat_tts *c, char **dst, const char *v) {
  char *copy = aip_strdup(v);
  if (!copy)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  pthread_mutex_lock(&c->base.mu);
  free(*dst);
  *dst = copy;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_tts_set_voice(aiplat_tts *c,
                                              const char *voice) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  if (!voice || !*voice)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: empty voice");
  return set_string(c, &c->voice, voice);
}

AIPLAT_API aiplat_status aiplat_tts_set_format(aiplat_tts *c,
                                               const char *format) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  if (!valid_format(format))
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: \"%.40s\" is not a format name such as wav or mp3",
                    format ? format : "(null)");
  return set_string(c, &c->format, format);
}

AIPLAT_API aiplat_status aiplat_tts_set_speed(aiplat_tts *c, double speed) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  if (!valid_speed(speed))
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: speed must be in [0.25, 4.0]");
  pthread_mutex_lock(&c->base.mu);
  c->speed = speed;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

/* ---- synthesis --------------------------------------------------------------
 */

typedef struct tts_ctx {
  aip_err *err;
  aip_http_resp resp;     /* the sink reads its content type */
  const char *type;       /* the content type when not from resp (parsing) */
  aiplat_tts_chunk_fn fn; /* NULL: collect into audio */
  void *ud;
  aip_buf audio;
  bool first_seen, json; /* a JSON document came instead of audio */
  aip_buf json_body;
  size_t total;
} tts_ctx;

static aiplat_status on_audio(const char *data, size_t len, void *ud) {
  tts_ctx *x = ud;
  if (!x->first_seen) {
    x->first_seen = true;
    const char *ct = x->type ? x->type : x->resp.content_type;
    x->json = ct && strncasecmp(ct, "application/json", 16) == 0;
  }
  if (x->json) {
    size_t room = x->json_body.len < JSON_ANSWER_MAX
                      ? JSON_ANSWER_MAX - x->json_body.len
                      : 0;
    if (room && !aip_buf_append(&x->json_body, data, len < room ? len : room))
      return aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
    return AIPLAT_OK;
  }
  x->total += len;
  if (x->fn) {
    if (!x->fn(data, len, x->ud))
      return aip_fail(x->err, AIPLAT_ERR_CANCELLED,
                      "tts: the audio stream was stopped by the callback");
    return AIPLAT_OK;
  }
  if (!aip_buf_append(&x->audio, data, len))
    return aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  return AIPLAT_OK;
}

/* The whole answer has arrived: was it audio? */
static aiplat_status audio_end(tts_ctx *x) {
  if (x->json) {
    char msg[300];
    if (!aip_http_error_text(x->json_body.data, x->json_body.len, msg,
                             sizeof msg))
      snprintf(msg, sizeof msg, "no message");
    return aip_fail(x->err, AIPLAT_ERR_PROTOCOL,
                    "tts: the server answered JSON instead of audio: %s", msg);
  }
  if (x->total == 0)
    return aip_fail(x->err, AIPLAT_ERR_PROTOCOL,
                    "tts: the server sent no audio");
  return AIPLAT_OK;
}

/* Hand the collected audio to *@audio when @st is AIPLAT_OK. */
static aiplat_status take_audio(tts_ctx *x, aiplat_status st, void **audio,
                                size_t *len) {
  if (st == AIPLAT_OK && audio) {
    *audio = aip_buf_steal(&x->audio, len);
    if (!*audio)
      st = aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
  aip_buf_free(&x->audio);
  return st;
}

aiplat_status aip_tts_parse(aip_err *err, const char *content_type,
                            const char *const *pieces, const size_t *lens,
                            size_t n, aiplat_tts_chunk_fn fn, void *user_data,
                            void **audio, size_t *len) {
  if (audio) *audio = NULL;
  if (len) *len = 0;
  tts_ctx x = {.err = err, .type = content_type, .fn = fn, .ud = user_data};
  aiplat_status st = AIPLAT_OK;
  for (size_t i = 0; st == AIPLAT_OK && i < n; i++)
    st = on_audio(pieces[i], lens[i], &x);
  if (st == AIPLAT_OK) st = audio_end(&x);
  aip_buf_free(&x.json_body);
  return take_audio(&x, st, fn ? NULL : audio, len);
}

static aiplat_status run(aiplat_tts *c, const char *text, const char *voice_arg,
                         tts_ctx *x, char **content_type) {
  if (content_type) *content_type = NULL;
  if (!text || !*text)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: empty text");
  if (voice_arg && !*voice_arg)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: empty voice");
  pthread_mutex_lock(&c->base.mu);
  char *voice = aip_strdup(voice_arg ? voice_arg : c->voice);
  char *format = aip_strdup(c->format);
  double speed = c->speed;
  pthread_mutex_unlock(&c->base.mu);
  char *model = aip_model_base_model(&c->base);
  char *body_text = NULL;
  aiplat_status st = AIPLAT_OK;
  json_t *body = json_object();
  aip_http_resp *resp = &x->resp;
  if (!voice || !format || !model || !body ||
      json_object_set_new(body, "model", json_string(model)) ||
      json_object_set_new(body, "voice", json_string(voice)) ||
      json_object_set_new(body, "response_format", json_string(format)) ||
      json_object_set_new(body, "speed", json_real(speed))) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
    goto out;
  }
  if ((st = aip_json_add_str(&c->base, body, "input", text, "the text")) !=
      AIPLAT_OK)
    goto out;
  if (!(body_text = json_dumps(body, JSON_COMPACT))) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
    goto out;
  }
  x->err = &c->base.err;
  aip_http_req req = {.method = "POST",
                      .path = "/v1/audio/speech",
                      .content_type = "application/json",
                      .body = body_text,
                      .body_len = strlen(body_text),
                      .accept = "audio/*, application/octet-stream",
                      .stream = true,
                      .sink = on_audio,
                      .sink_ud = x,
                      .max_retries = -1};
  st = aip_http_do(c->base.http, &c->base.err, &req, resp);
  if (st == AIPLAT_OK) st = audio_end(x);
  if (st != AIPLAT_OK) goto out;
  if (content_type) {
    *content_type = resp->content_type ? aip_strdup(resp->content_type)
                                       : aip_sprintf("audio/%s", format);
    if (!*content_type)
      st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
out:
  aip_http_resp_free(resp);
  aip_buf_free(&x->json_body);
  json_decref(body);
  free(body_text);
  free(voice);
  free(format);
  free(model);
  return st;
}

AIPLAT_API aiplat_status aiplat_tts_synthesize(aiplat_tts *c, const char *text,
                                               const char *voice, void **audio,
                                               size_t *len,
                                               char **content_type) {
  if (audio) *audio = NULL;
  if (len) *len = 0;
  if (content_type) *content_type = NULL;
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  if (!audio || !len)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: NULL audio or len");
  tts_ctx x = {0};
  aiplat_status st =
      take_audio(&x, run(c, text, voice, &x, content_type), audio, len);
  if (st != AIPLAT_OK && content_type) {
    free(*content_type);
    *content_type = NULL;
  }
  return st;
}

AIPLAT_API aiplat_status aiplat_tts_synthesize_stream(
    aiplat_tts *c, const char *text, const char *voice, aiplat_tts_chunk_fn fn,
    void *ud, char **content_type) {
  if (content_type) *content_type = NULL;
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  if (!fn)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: NULL callback");
  tts_ctx x = {.fn = fn, .ud = ud};
  return run(c, text, voice, &x, content_type);
}
