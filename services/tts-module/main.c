/* tts-module: NATS request/reply bridge to an OpenAI-compatible
 * text-to-speech server (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.tts.synthesize   SynthesizeRequest -> SynthesizeResponse
 *
 * Configured by the environment only: NATS_*, HEALTH_*, WORKERS,
 * REQUEST_TIMEOUT, SHUTDOWN_GRACE, TTS_URL, TTS_MODEL, TTS_VOICE,
 * TTS_API_KEY, TTS_FORMAT, TTS_SPEED, HTTP_*. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcutil.h"

#define NAME "tts-module"
#define PROBE_INTERVAL_MS 10000
#define PROBE_TIMEOUT_MS 3000
/* Longest text synthesised, in characters (OpenAI's speech API limit). */
#define MAX_TEXT_CHARS 4096
/* Room left in a reply for the protobuf framing and the headers. */
#define REPLY_OVERHEAD 1024

typedef struct tts_module {
  svcu_pool *pool;
  svcu_probe *probe;
  aiplat_tts *probe_client;
  aiplat_bus *bus;
  const char *default_format;
  double default_speed;
  int64_t http_timeout_ms;
} tts_module;

static const char HELP[] =
    "Bridges NATS to a text-to-speech server: a SynthesizeRequest on\n"
    "ai.tts.synthesize is sent to TTS_URL (POST /v1/audio/speech) and "
    "answered\n"
    "with a SynthesizeResponse (audio, content_type), or with its error set\n"
    "when the text is empty or longer than 4096 characters, the voice,\n"
    "format or speed is refused, the audio would not fit in one NATS message\n"
    "(TOO_LARGE), or the server fails. Replicas share the subject through\n"
    "the queue group tts-module.\n"
    "\n"
    "Configuration (environment only; NAME_FILE reads a secret from a file):\n"
    "  NATS_URL, NATS_* ......... the NATS connection\n"
    "  TTS_URL ................... text-to-speech server "
    "(http://localhost:8000)\n"
    "  TTS_MODEL, TTS_VOICE, TTS_API_KEY, TTS_FORMAT, TTS_SPEED, HTTP_*\n"
    "                              the client and the defaults of a request\n"
    "  HEALTH_PORT (8080) ........ /health, /ready (NATS and the TTS server),\n"
    "                              /metrics\n"
    "  WORKERS, REQUEST_TIMEOUT, SHUTDOWN_GRACE, LOG_LEVEL\n"
    "A wrong setting stops the program at start with one line naming it\n"
    "(exit status 2); SIGTERM or SIGINT shut it down gracefully.\n";

/* The formats of OpenAI's speech API. */
static bool known_format(const char *f) {
  static const char *const names[] = {"wav", "mp3",  "opus",
                                      "aac", "flac", "pcm"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(f, names[i]) == 0) return true;
  return false;
}

static aiplat_status on_synthesize(aiplat_request *req, void *user_data) {
  tts_module *m = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  const char *text = "", *voice = "", *format = "";
  double speed = 0;
  aiplat_msg_get_string(in, "text", &text);
  aiplat_msg_get_string(in, "voice", &voice);
  aiplat_msg_get_string(in, "format", &format);
  aiplat_msg_get_double(in, "speed", &speed);
  if (svcu_blank(text))
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT,
                               "text is empty");
  size_t chars = svcu_utf8_len(text);
  if (chars > MAX_TEXT_CHARS) {
    char why[160];
    snprintf(why, sizeof why, "text is %zu characters long; the limit is %d",
             chars, MAX_TEXT_CHARS);
    return aiplat_request_fail(req, AIPLAT_ERR_TOO_LARGE, why);
  }
  if (*format && !known_format(format))
    return aiplat_request_fail(
        req, AIPLAT_ERR_INVALID_ARGUMENT,
        "format is not one of wav, mp3, opus, aac, flac, pcm");
  if (speed == 0) speed = m->default_speed;
  if (!(speed >= 0.25 && speed <= 4.0))
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT,
                               "speed must be between 0.25 and 4.0");
  int64_t left = aiplat_request_time_left_ms(req);
  if (left <= 0)
    return aiplat_request_fail(req, AIPLAT_ERR_TIMEOUT,
                               "the request's deadline passed");

  aiplat_tts *c = svcu_pool_take(m->pool);
  char why[512] = "";
  void *audio = NULL;
  size_t len = 0;
  char *ctype = NULL;
  aiplat_status st =
      aiplat_tts_set_format(c, *format ? format : m->default_format);
  if (st == AIPLAT_OK) st = aiplat_tts_set_speed(c, speed);
  if (st == AIPLAT_OK)
    st = aiplat_tts_set_timeout_ms(
        c, left < m->http_timeout_ms ? left : m->http_timeout_ms);
  if (st == AIPLAT_OK) {
    st = aiplat_tts_synthesize(c, text, *voice ? voice : NULL, &audio, &len,
                               &ctype);
    svcu_probe_note(m->probe, st);
  }
  if (st != AIPLAT_OK) aiplat_tts_last_error(c, why, sizeof why);
  svcu_pool_give(m->pool, c);
  if (st != AIPLAT_OK) return aiplat_request_fail(req, st, why);

  /* Say why instead of letting the publish fail: the caller can send less. */
  int64_t max = aiplat_bus_max_payload(m->bus);
  if (max > 0 && (int64_t)len + REPLY_OVERHEAD > max) {
    snprintf(
        why, sizeof why,
        "the audio is %zu bytes, over the %lld-byte NATS max_payload; send "
        "shorter text",
        len, (long long)max);
    st = aiplat_request_fail(req, AIPLAT_ERR_TOO_LARGE, why);
  } else {
    aiplat_msg *out = NULL;
    st = aiplat_msg_create(&out, AIPLAT_MSG_SYNTHESIZE_RESPONSE);
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
    if (st == AIPLAT_OK) st = aiplat_msg_set_bytes(out, "audio", audio, len);
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_string(out, "content_type", ctype ? ctype : "");
    if (st == AIPLAT_OK) st = aiplat_request_respond(req, out);
    aiplat_msg_destroy(out);
  }
  aiplat_free(audio);
  aiplat_free(ctype);
  return st;
}

static bool probe_tts(char *msg, size_t msglen, void *user_data) {
  tts_module *m = user_data;
  if (aiplat_tts_health(m->probe_client) == AIPLAT_OK) {
    snprintf(msg, msglen, "the text-to-speech server answers");
    return true;
  }
  aiplat_tts_last_error(m->probe_client, msg, msglen);
  return false;
}

static void cancel_probe(void *user_data) {
  tts_module *m = user_data;
  aiplat_tts_cancel(m->probe_client);
}

static void destroy_client(void *c) {
  aiplat_tts_destroy(c);
}

static int setup(tts_module *m, aiplat_config *cfg) {
  int64_t workers;
  if (aiplat_config_get_int(cfg, "WORKERS", 1, 1024, &workers) != AIPLAT_OK ||
      aiplat_config_get_duration_ms(cfg, "HTTP_TIMEOUT", &m->http_timeout_ms) !=
          AIPLAT_OK ||
      aiplat_config_get_string(cfg, "TTS_FORMAT", &m->default_format) !=
          AIPLAT_OK ||
      aiplat_config_get_double(cfg, "TTS_SPEED", 0.25, 4.0,
                               &m->default_speed) != AIPLAT_OK)
    return svcu_config_error(cfg, NAME);
  if (!m->default_format) m->default_format = "wav";
  if (!known_format(m->default_format)) {
    svcu_error_line(
        NAME,
        "config: TTS_FORMAT must be one of wav, mp3, opus, aac, flac, pcm");
    return SVCU_EXIT_CONFIG;
  }
  if (!(m->pool = svcu_pool_create((size_t)workers, destroy_client)))
    return SVCU_EXIT_FAILURE;
  for (int64_t i = 0; i <= workers; i++) {
    aiplat_tts *c = NULL;
    if (aiplat_tts_create(&c, cfg) != AIPLAT_OK) {
      svcu_last_error_line(NAME);
      return SVCU_EXIT_CONFIG;
    }
    if (i == workers) {
      m->probe_client = c;
      aiplat_tts_set_timeout_ms(c, PROBE_TIMEOUT_MS);
      aiplat_tts_set_connect_timeout_ms(c, PROBE_TIMEOUT_MS);
    } else {
      svcu_pool_add(m->pool, c);
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  int rc =
      svcu_args(argc, argv, NAME,
                "NATS request/reply bridge to a text-to-speech server.", HELP);
  if (rc >= 0) return rc;
  svcu_block_signals();
  aiplat_config *cfg = svcu_config(NAME);
  if (!cfg) return SVCU_EXIT_CONFIG;
  tts_module m = {0};
  aiplat_service *svc = NULL;
  rc = setup(&m, cfg);
  if (rc < 0 && aiplat_service_create(&svc, cfg, svcu_service_name(cfg, NAME),
                                      AIPLAT_VERSION_STRING,
                                      "text-to-speech bridge") != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_CONFIG;
  }
  if (rc < 0) m.bus = aiplat_service_bus(svc);
  if (rc < 0 &&
      (aiplat_service_add_endpoint(
           svc, "synthesize", aiplat_subject_tts_synthesize(), NULL,
           AIPLAT_MSG_SYNTHESIZE_REQUEST, AIPLAT_MSG_SYNTHESIZE_RESPONSE,
           on_synthesize, &m) != AIPLAT_OK ||
       !(m.probe = svcu_probe_start(probe_tts, cancel_probe, &m,
                                    PROBE_INTERVAL_MS)) ||
       aiplat_service_add_check(svc, "tts", svcu_probe_check, m.probe) !=
           AIPLAT_OK)) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_FAILURE;
  }
  if (rc < 0) rc = svcu_run(svc, NAME); /* until SIGTERM */
  svcu_probe_stop(m.probe);
  aiplat_service_destroy(svc);
  svcu_pool_destroy(m.pool);
  aiplat_tts_destroy(m.probe_client);
  aiplat_config_destroy(cfg);
  return rc;
}
