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

/* Per-call settings: NULL / 0 leave the client's. */
struct aiplat_tts_options {
  char *voice;
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

/* ---- the entry points every client kind offers (lib/model_common.c) ---- */

AIPLAT_API aiplat_status aiplat_tts_set_url(aiplat_tts *c, const char *url) {
  return aip_model_api_set_url(c ? &c->base : NULL, "tts", url);
}

AIPLAT_API aiplat_status aiplat_tts_set_model(aiplat_tts *c, const char *model) {
  return aip_model_api_set_model(c ? &c->base : NULL, "tts", model);
}

AIPLAT_API aiplat_status aiplat_tts_set_api_key(aiplat_tts *c, const char *key) {
  return aip_model_api_set_api_key(c ? &c->base : NULL, "tts", key);
}

AIPLAT_API aiplat_status aiplat_tts_set_timeout_ms(aiplat_tts *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "tts", AIP_KNOB_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_tts_set_connect_timeout_ms(aiplat_tts *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "tts", AIP_KNOB_CONNECT_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_tts_set_max_retries(aiplat_tts *c, int retries) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "tts", AIP_KNOB_RETRIES, retries);
}

AIPLAT_API aiplat_status aiplat_tts_health(aiplat_tts *c) {
  return aip_model_api_health(c ? &c->base : NULL, "tts");
}

AIPLAT_API void aiplat_tts_cancel(aiplat_tts *c) { aip_model_api_cancel(c ? &c->base : NULL); }

AIPLAT_API aiplat_status aiplat_tts_last_error(aiplat_tts *c, char *buf, size_t buflen) {
  return aip_model_api_last_error(c ? &c->base : NULL, buf, buflen);
}

aip_model_base *aip_tts_base(aiplat_tts *c) { /* model_metrics.h */
  return c ? &c->base : NULL;
}

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

/* ---- per-call options -------------------------------------------------------
 */

AIPLAT_API aiplat_status aiplat_tts_options_create(aiplat_tts_options **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL out");
  *out = calloc(1, sizeof **out);
  if (!*out) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_tts_options_destroy(aiplat_tts_options *o) {
  if (!o) return;
  free(o->voice);
  free(o->format);
  free(o);
}

AIPLAT_API aiplat_status aiplat_tts_options_set_voice(aiplat_tts_options *o,
                                                      const char *voice) {
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL options");
  if (voice && !*voice)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: empty voice");
  if (!aip_str_replace(&o->voice, voice))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_tts_options_set_format(aiplat_tts_options *o,
                                                       const char *format) {
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL options");
  if (format && !valid_format(format))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: \"%.40s\" is not a format name such as wav or mp3",
                    format);
  if (!aip_str_replace(&o->format, format))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_tts_options_set_speed(aiplat_tts_options *o,
                                                      double speed) {
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL options");
  if (speed != 0 && !valid_speed(speed))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: speed must be in [0.25, 4.0]");
  o->speed = speed;
  return AIPLAT_OK;
}

/* ---- synthesis --------------------------------------------------------------
 */

typedef struct tts_ctx {
  aip_err *err;           /* the handle's (blocking) or the call's own */
  aip_http_resp resp;     /* blocking: the sink reads its content type */
  aip_model_call *m;      /* async: the call, whose request has the type */
  aiplat_tts_chunk_fn fn; /* NULL: collect into audio */
  void *ud;
  aip_buf audio;
  bool first_seen, json; /* a JSON document came instead of audio */
  aip_buf json_body;
  size_t total;
  char *format; /* asked for */
  aip_model_obs *obs; /* the call's metrics, or NULL */
} tts_ctx;

static aiplat_status on_audio(const char *data, size_t len, void *ud) {
  tts_ctx *x = ud;
  if (!x->first_seen) {
    x->first_seen = true;
    const char *ct =
        x->m ? aip_http_call_content_type(x->m->running) : x->resp.content_type;
    x->json = ct && strncasecmp(ct, "application/json", 16) == 0;
  }
  aiplat_status st = AIPLAT_OK;
  if (x->json) {
    size_t room = x->json_body.len < JSON_ANSWER_MAX
                      ? JSON_ANSWER_MAX - x->json_body.len
                      : 0;
    if (room && !aip_buf_append(&x->json_body, data, len < room ? len : room))
      st = aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  } else {
    x->total += len;
    if (x->obs) aip_model_obs_bytes(x->obs, data, len);
    if (x->fn) {
      if (!x->fn(data, len, x->ud))
        st = aip_fail(x->err, AIPLAT_ERR_CANCELLED,
                      "tts: the audio stream was stopped by the callback");
    } else if (!aip_buf_append(&x->audio, data, len)) {
      st = aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
    }
  }
  if (st != AIPLAT_OK && x->m) x->m->sink_st = st;
  return st;
}

/* The request body for @text with the voice, format and speed of the call
 * (NULL / 0: the client's); x->format gets the format. */
static char *make_body(aiplat_tts *c, tts_ctx *x, const char *text,
                       const char *voice_arg, const char *format_arg,
                       double speed_arg, aiplat_status *st) {
  *st = AIPLAT_OK;
  if (!text || !*text) {
    *st = aip_fail(x->err, AIPLAT_ERR_INVALID_ARGUMENT, "tts: empty text");
    return NULL;
  }
  if (voice_arg && !*voice_arg) {
    *st = aip_fail(x->err, AIPLAT_ERR_INVALID_ARGUMENT, "tts: empty voice");
    return NULL;
  }
  pthread_mutex_lock(&c->base.mu);
  char *voice = aip_strdup(voice_arg ? voice_arg : c->voice);
  x->format = aip_strdup(format_arg ? format_arg : c->format);
  double speed = speed_arg > 0 ? speed_arg : c->speed;
  pthread_mutex_unlock(&c->base.mu);
  char *model = aip_model_base_model(&c->base);
  char *body_text = NULL;
  json_t *body = json_object();
  if (!voice || !x->format || !model || !body ||
      json_object_set_new(body, "model", json_string(model)) ||
      json_object_set_new(body, "voice", json_string(voice)) ||
      json_object_set_new(body, "response_format", json_string(x->format)) ||
      json_object_set_new(body, "speed", json_real(speed))) {
    *st = aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  } else if ((*st = aip_json_add_str(&c->base, x->err, body, "input", text,
                                     "the text")) == AIPLAT_OK &&
             !(body_text = json_dumps(body, JSON_COMPACT))) {
    *st = aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
  json_decref(body);
  free(voice);
  free(model);
  return body_text;
}

static aip_http_req make_req(const char *body_text, tts_ctx *x) {
  return (aip_http_req){.method = "POST",
                        .path = "/v1/audio/speech",
                        .content_type = "application/json",
                        .body = body_text,
                        .body_len = strlen(body_text),
                        .accept = "audio/*, application/octet-stream",
                        .stream = true,
                        .sink = on_audio,
                        .sink_ud = x,
                        .max_retries = -1};
}

/* After a 2xx answer: was it audio? *@content_type (may be NULL) gets the
 * server's type or audio/<format>. */
static aiplat_status finish_answer(tts_ctx *x, const char *server_type,
                                   char **content_type) {
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
  if (content_type) {
    *content_type = server_type ? aip_strdup(server_type)
                                : aip_sprintf("audio/%s", x->format);
    if (!*content_type)
      return aip_fail(x->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
  return AIPLAT_OK;
}

static void ctx_free(tts_ctx *x) {
  aip_http_resp_free(&x->resp);
  aip_buf_free(&x->json_body);
  aip_buf_free(&x->audio);
  free(x->format);
}

static aiplat_status run(aiplat_tts *c, const char *text, const char *voice_arg,
                         tts_ctx *x, char **content_type) {
  if (content_type) *content_type = NULL;
  x->err = &c->base.err;
  aiplat_status st;
  char *body_text = make_body(c, x, text, voice_arg, NULL, 0, &st);
  if (!body_text) return st;
  aip_http_req req = make_req(body_text, x);
  aip_model_obs obs;
  aip_model_obs_begin(&obs, &c->base, NULL);
  x->obs = &obs;
  st = aip_http_do(c->base.http, &c->base.err, &req, &x->resp);
  if (st == AIPLAT_OK)
    st = finish_answer(x, x->resp.content_type, content_type);
  aip_model_obs_end(&obs, st);
  x->obs = NULL;
  free(body_text);
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
  aiplat_status st = run(c, text, voice, &x, content_type);
  if (st == AIPLAT_OK) {
    *audio = aip_buf_steal(&x.audio, len);
    if (!*audio) {
      if (content_type) {
        free(*content_type);
        *content_type = NULL;
      }
      st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
    }
  }
  ctx_free(&x);
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
  aiplat_status st = run(c, text, voice, &x, content_type);
  ctx_free(&x);
  return st;
}

/* ---- asynchronous form ------------------------------------------------------
 */

typedef struct tts_async {
  aip_model_call m;
  tts_ctx x;
  aiplat_tts_done_fn done;
  void *ud;
} tts_async;

static void tts_async_free(tts_async *a) {
  ctx_free(&a->x);
  aip_model_call_destroy(&a->m);
  free(a);
}

/* On the loop thread: check the answer and call back. */
static void tts_answer(aip_model_call *m) {
  tts_async *a = (tts_async *)(void *)m;
  tts_ctx *x = &a->x;
  aiplat_status st = m->st;
  char *ctype = NULL;
  void *audio = NULL;
  size_t len = 0;
  if (st == AIPLAT_OK) st = finish_answer(x, m->resp.content_type, &ctype);
  if (st == AIPLAT_OK && !x->fn && !(audio = aip_buf_steal(&x->audio, &len)))
    st = aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  if (st != AIPLAT_OK) {
    free(ctype);
    ctype = NULL;
    len = 0;
  } else if (x->fn) {
    len = x->total;
  }
  char msg[AIP_ERRMSG_MAX];
  aip_model_call_message(m, st, msg, sizeof msg);
  aip_model_call_end(m, st);
  a->done(st, msg, audio, len, ctype, a->ud);
  free(ctype);
  tts_async_free(a);
}

AIPLAT_API aiplat_status aiplat_tts_synthesize_async(
    aiplat_tts *c, const char *text, const aiplat_tts_options *options,
    aiplat_call *call, aiplat_tts_chunk_fn fn, aiplat_tts_done_fn done,
    void *user_data) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL client");
  if (!done)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: NULL completion callback");
  tts_async *a = calloc(1, sizeof *a);
  if (!a)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  aip_model_call_init(&a->m, &c->base, call, tts_answer);
  a->done = done;
  a->ud = user_data;
  tts_ctx *x = &a->x;
  x->err = &c->base.err; /* while starting, on the caller's thread */
  x->m = &a->m;
  x->obs = &a->m.obs;
  x->fn = fn;
  x->ud = user_data;
  aiplat_status st;
  char *body_text = make_body(c, x, text, options ? options->voice : NULL,
                              options ? options->format : NULL,
                              options ? options->speed : 0, &st);
  if (body_text) {
    aip_http_req req = make_req(body_text, x);
    x->err = &a->m.err; /* the sink's detail belongs to the call */
    st = aip_model_call_start(&a->m, &c->base.err, &req);
    free(body_text);
  }
  if (st != AIPLAT_OK) tts_async_free(a);
  return st;
}

/* ---- the answer alone (fuzz targets) ------------------------------------- */

aiplat_status aip_tts_parse(aip_err *err, const char *content_type,
                            const char *const *pieces, const size_t *lens,
                            size_t n, aiplat_tts_chunk_fn fn, void *user_data,
                            void **audio, size_t *len) {
  if (audio) *audio = NULL;
  if (len) *len = 0;
  tts_ctx x = {.err = err, .fn = fn, .ud = user_data};
  aiplat_status st = AIPLAT_OK;
  if (content_type && !(x.resp.content_type = aip_strdup(content_type)))
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  if (st == AIPLAT_OK && !(x.format = aip_strdup("wav")))
    st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  for (size_t i = 0; st == AIPLAT_OK && i < n; i++)
    st = on_audio(pieces[i], lens[i], &x);
  if (st == AIPLAT_OK) st = finish_answer(&x, content_type, NULL);
  if (st == AIPLAT_OK && !fn && audio && len) {
    *audio = aip_buf_steal(&x.audio, len);
    if (!*audio) st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
  ctx_free(&x);
  return st;
}
