/* stt-module: NATS request/reply bridge to an OpenAI-compatible
 * speech-to-text server (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.stt.transcribe   TranscribeRequest -> TranscribeResponse
 *
 * Configured by the environment only: NATS_*, HEALTH_*, WORKERS,
 * REQUEST_TIMEOUT, SHUTDOWN_GRACE, STT_URL, STT_MODEL, STT_API_KEY,
 * STT_API, STT_LANGUAGE, STT_RESPONSE_FORMAT, HTTP_*. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svcutil.h"

#define NAME "stt-module"
#define PROBE_INTERVAL_MS 10000
#define PROBE_TIMEOUT_MS 3000

typedef struct stt_module {
  svcu_pool *pool;
  svcu_probe *probe;
  aiplat_stt *probe_client;
  aiplat_stt_format default_format;
  int64_t http_timeout_ms;
} stt_module;

static const char HELP[] =
    "Bridges NATS to a speech-to-text server: a TranscribeRequest on\n"
    "ai.stt.transcribe is sent to STT_URL (POST /v1/audio/transcriptions, or\n"
    "/inference with STT_API=whispercpp) and answered with a\n"
    "TranscribeResponse (text, language, duration, segments), or with its\n"
    "error set when the audio is empty, of a format the server refuses, or\n"
    "the server fails. Replicas share the subject through the queue group\n"
    "stt-module.\n"
    "\n"
    "Configuration (environment only; NAME_FILE reads a secret from a file):\n"
    "  NATS_URL, NATS_* ......... the NATS connection\n"
    "  STT_URL ................... speech-to-text server "
    "(http://localhost:8000)\n"
    "  STT_MODEL, STT_API_KEY, STT_API (openai|whispercpp), STT_LANGUAGE,\n"
    "  STT_RESPONSE_FORMAT (json|verbose_json|text), HTTP_* ... the client\n"
    "  HEALTH_PORT (8080) ........ /health, /ready (NATS and the STT server),\n"
    "                              /metrics\n"
    "  WORKERS, REQUEST_TIMEOUT, SHUTDOWN_GRACE, LOG_LEVEL\n"
    "A wrong setting stops the program at start with one line naming it\n"
    "(exit status 2); SIGTERM or SIGINT shut it down gracefully.\n";

/* ---- the request ------------------------------------------------------------
 */

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

/* Raw 16-bit little-endian mono PCM wrapped in a RIFF/WAVE header. */
static uint8_t *wav_wrap(const uint8_t *pcm, size_t len, uint32_t rate,
                         size_t *out_len) {
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

/* The MIME type for @fmt ("" lets the client detect it), or a raw PCM rate
 * in *pcm_rate. False for a format this bridge does not know. */
static bool mime_for(const char *fmt, const char **mime, uint32_t *pcm_rate) {
  *mime = NULL;
  *pcm_rate = 0;
  if (!*fmt) return true;
  if (strncasecmp(fmt, "audio/", 6) == 0 ||
      strncasecmp(fmt, "video/", 6) == 0) {
    *mime = fmt;
    return true;
  }
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (strcasecmp(fmt, formats[i].name) == 0) {
      *mime = formats[i].mime;
      return true;
    }
  if (strncasecmp(fmt, "pcm_s16le_", 10) == 0) {
    char *end;
    long rate = strtol(fmt + 10, &end, 10);
    if (*end == '\0' && rate >= 4000 && rate <= 192000) {
      *pcm_rate = (uint32_t)rate;
      return true;
    }
  }
  return false;
}

static bool format_for(const char *name, aiplat_stt_format def,
                       aiplat_stt_format *out) {
  if (!*name)
    *out = def;
  else if (strcmp(name, "json") == 0)
    *out = AIPLAT_STT_FORMAT_JSON;
  else if (strcmp(name, "verbose_json") == 0)
    *out = AIPLAT_STT_FORMAT_VERBOSE_JSON;
  else if (strcmp(name, "text") == 0)
    *out = AIPLAT_STT_FORMAT_TEXT;
  else
    return false;
  return true;
}

/* "en-US" -> "en": servers take ISO 639-1 codes. */
static void primary_language(const char *in, char *out, size_t len) {
  snprintf(out, len, "%s", in);
  out[strcspn(out, "-_")] = '\0';
}

static aiplat_status build_reply(aiplat_request *req,
                                 const aiplat_stt_result *r,
                                 const char *asked_language) {
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_TRANSCRIBE_RESPONSE);
  const char *lang = aiplat_stt_result_language(r);
  if (!lang || !*lang) lang = asked_language;
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (st == AIPLAT_OK)
    st = aiplat_msg_set_string(out, "text", aiplat_stt_result_text(r));
  if (st == AIPLAT_OK && lang)
    st = aiplat_msg_set_string(out, "language", lang);
  if (st == AIPLAT_OK && aiplat_stt_result_duration(r) >= 0)
    st = aiplat_msg_set_double(out, "duration_seconds",
                               aiplat_stt_result_duration(r));
  for (size_t i = 0; st == AIPLAT_OK && i < aiplat_stt_result_segment_count(r);
       i++) {
    aiplat_msg *seg = NULL;
    st = aiplat_msg_add_item(out, "segments", &seg);
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_double(seg, "start",
                                 aiplat_stt_result_segment_start(r, i));
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_double(seg, "end",
                                 aiplat_stt_result_segment_end(r, i));
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_string(seg, "text",
                                 aiplat_stt_result_segment_text(r, i));
  }
  if (st == AIPLAT_OK) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

static aiplat_status on_transcribe(aiplat_request *req, void *user_data) {
  stt_module *m = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  const uint8_t *audio = NULL;
  size_t len = 0;
  const char *fmt = "", *language = "", *rformat = "";
  aiplat_msg_get_bytes(in, "audio", &audio, &len);
  aiplat_msg_get_string(in, "audio_format", &fmt);
  aiplat_msg_get_string(in, "language", &language);
  aiplat_msg_get_string(in, "response_format", &rformat);
  if (len == 0)
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT,
                               "audio is empty");
  const char *mime;
  uint32_t pcm_rate;
  if (!mime_for(fmt, &mime, &pcm_rate))
    return aiplat_request_fail(
        req, AIPLAT_ERR_INVALID_ARGUMENT,
        "audio_format is not one of wav, mp3, ogg, opus, flac, "
        "webm, m4a, mp4, aac, pcm_s16le_RATE or an audio/* type");
  aiplat_stt_format f;
  if (!format_for(rformat, m->default_format, &f))
    return aiplat_request_fail(
        req, AIPLAT_ERR_INVALID_ARGUMENT,
        "response_format is not json, verbose_json or text");
  char lang[40] = "";
  if (*language) primary_language(language, lang, sizeof lang);
  int64_t left = aiplat_request_time_left_ms(req);
  if (left <= 0)
    return aiplat_request_fail(req, AIPLAT_ERR_TIMEOUT,
                               "the request's deadline passed");

  uint8_t *wrapped = NULL;
  if (pcm_rate) {
    if (len % 2 != 0)
      return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT,
                                 "pcm_s16le audio has an odd number of bytes");
    wrapped = wav_wrap(audio, len, pcm_rate, &len);
    if (!wrapped)
      return aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY, "out of memory");
    audio = wrapped;
    mime = "audio/wav";
  }
  aiplat_stt *c = svcu_pool_take(m->pool);
  aiplat_stt_set_response_format(c, f);
  aiplat_stt_set_timeout_ms(
      c, left < m->http_timeout_ms ? left : m->http_timeout_ms);
  aiplat_stt_result *r = NULL;
  aiplat_status st =
      aiplat_stt_transcribe(c, audio, len, mime, *lang ? lang : NULL, &r);
  char why[512] = "";
  if (st != AIPLAT_OK) aiplat_stt_last_error(c, why, sizeof why);
  svcu_pool_give(m->pool, c);
  free(wrapped);
  svcu_probe_note(m->probe, st);
  if (st != AIPLAT_OK) return aiplat_request_fail(req, st, why);
  st = build_reply(req, r, *lang ? lang : NULL);
  aiplat_stt_result_destroy(r);
  return st;
}

/* ---- readiness -------------------------------------------------------------
 */

static bool probe_stt(char *msg, size_t msglen, void *user_data) {
  stt_module *m = user_data;
  if (aiplat_stt_health(m->probe_client) == AIPLAT_OK) {
    snprintf(msg, msglen, "the speech-to-text server answers");
    return true;
  }
  aiplat_stt_last_error(m->probe_client, msg, msglen);
  return false;
}

static void cancel_probe(void *user_data) {
  stt_module *m = user_data;
  aiplat_stt_cancel(m->probe_client);
}

/* ---- main ------------------------------------------------------------------
 */

static void destroy_client(void *c) {
  aiplat_stt_destroy(c);
}

static int setup(stt_module *m, aiplat_config *cfg) {
  int64_t workers;
  const char *fmt = NULL;
  if (aiplat_config_get_int(cfg, "WORKERS", 1, 1024, &workers) != AIPLAT_OK ||
      aiplat_config_get_duration_ms(cfg, "HTTP_TIMEOUT", &m->http_timeout_ms) !=
          AIPLAT_OK ||
      aiplat_config_get_string(cfg, "STT_RESPONSE_FORMAT", &fmt) != AIPLAT_OK)
    return svcu_config_error(cfg, NAME);
  m->default_format = AIPLAT_STT_FORMAT_JSON;
  if (fmt && !format_for(fmt, AIPLAT_STT_FORMAT_JSON, &m->default_format)) {
    svcu_error_line(
        NAME, "config: STT_RESPONSE_FORMAT must be json, verbose_json or text");
    return SVCU_EXIT_CONFIG;
  }
  if (!(m->pool = svcu_pool_create((size_t)workers, destroy_client)))
    return SVCU_EXIT_FAILURE;
  for (int64_t i = 0; i <= workers; i++) {
    aiplat_stt *c = NULL;
    if (aiplat_stt_create(&c, cfg) != AIPLAT_OK) {
      svcu_last_error_line(NAME);
      return SVCU_EXIT_CONFIG;
    }
    if (i == workers) {
      m->probe_client = c;
      aiplat_stt_set_timeout_ms(c, PROBE_TIMEOUT_MS);
      aiplat_stt_set_connect_timeout_ms(c, PROBE_TIMEOUT_MS);
    } else {
      svcu_pool_add(m->pool, c);
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  int rc =
      svcu_args(argc, argv, NAME,
                "NATS request/reply bridge to a speech-to-text server.", HELP);
  if (rc >= 0) return rc;
  svcu_block_signals();
  aiplat_config *cfg = svcu_config(NAME);
  if (!cfg) return SVCU_EXIT_CONFIG;
  stt_module m = {0};
  aiplat_service *svc = NULL;
  rc = setup(&m, cfg);
  if (rc < 0 && aiplat_service_create(&svc, cfg, svcu_service_name(cfg, NAME),
                                      AIPLAT_VERSION_STRING,
                                      "speech-to-text bridge") != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_CONFIG;
  }
  if (rc < 0 &&
      (aiplat_service_add_endpoint(
           svc, "transcribe", aiplat_subject_stt_transcribe(), NULL,
           AIPLAT_MSG_TRANSCRIBE_REQUEST, AIPLAT_MSG_TRANSCRIBE_RESPONSE,
           on_transcribe, &m) != AIPLAT_OK ||
       !(m.probe = svcu_probe_start(probe_stt, cancel_probe, &m,
                                    PROBE_INTERVAL_MS)) ||
       aiplat_service_add_check(svc, "stt", svcu_probe_check, m.probe) !=
           AIPLAT_OK)) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_FAILURE;
  }
  if (rc < 0) rc = svcu_run(svc, NAME); /* until SIGTERM */
  svcu_probe_stop(m.probe);
  aiplat_service_destroy(svc);
  svcu_pool_destroy(m.pool);
  aiplat_stt_destroy(m.probe_client);
  aiplat_config_destroy(cfg);
  return rc;
}
