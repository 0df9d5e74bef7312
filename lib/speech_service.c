/* The endpoints of the speech bridges (include/aiplat/voice.h):
 * ai.stt.transcribe and ai.tts.synthesize, each on one model client shared
 * by every request: the handler checks the request and starts the call on
 * the execution core with the request's own options and deadline; the
 * call's completion replies. The readiness probe (lib/probe.h) re-checks
 * at once when a request finds the server down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aiplat/stt.h"
#include "aiplat/tts.h"
#include "aiplat/voice.h"
#include "audio_format.h"
#include "model_metrics.h"
#include "call_internal.h"
#include "probe.h"

#define PROBE_INTERVAL_MS 10000
#define PROBE_TIMEOUT_MS 3000
/* Longest text synthesised, in characters (OpenAI's speech API limit). */
#define TTS_MAX_TEXT_CHARS 4096
/* Room left in a reply for the protobuf framing and the headers. */
#define REPLY_OVERHEAD 1024

/* A request handed over to the execution core: its call, cancelled when
 * the service stops past its grace period. */
typedef struct speech_call {
  aiplat_request *req;
  aiplat_call *call;
  void *ep;
  char lang[8]; /* STT: the language asked for */
} speech_call;

static void on_cancel(aiplat_request *req, void *ud) {
  (void)req;
  aiplat_call_cancel(ud);
}

/* Hand @req over; NULL when out of memory (nothing was changed). */
static speech_call *speech_call_start(aiplat_request *req, void *ep) {
  speech_call *k = calloc(1, sizeof *k);
  if (!k || aiplat_call_create(&k->call) != AIPLAT_OK) {
    free(k);
    return NULL;
  }
  k->req = req;
  k->ep = ep;
  aip_call_set_deadline_ms(k->call, aip_request_deadline_ms(req));
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, k->call);
  return k;
}

/* The end of a handed-over request: @st OK after its reply, else the
 * error reply with @why. Any thread. */
static void speech_call_finish(speech_call *k, aiplat_status st,
                               const char *why) {
  aiplat_request *req = k->req;
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  aiplat_call_destroy(k->call);
  free(k);
  aiplat_request_complete(req, st, why);
}

/* The request's deadline passed before anything was sent. */
static aiplat_status past_deadline(aiplat_request *req, char *why,
                                   size_t whylen) {
  if (aiplat_request_time_left_ms(req) > 0) return AIPLAT_OK;
  snprintf(why, whylen, "the request's deadline passed");
  return AIPLAT_ERR_TIMEOUT;
}

/* ---- speech-to-text -------------------------------------------------------
 */

struct aiplat_stt_endpoint {
  aiplat_stt *client; /* every request's */
  aip_probe *probe;
  aiplat_stt *probe_client;
  aiplat_stt_format default_format;
};

static bool stt_format_for(const char *name, aiplat_stt_format def,
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

static bool stt_probe(char *msg, size_t msglen, void *user_data) {
  aiplat_stt_endpoint *ep = user_data;
  if (aiplat_stt_health(ep->probe_client) == AIPLAT_OK) {
    snprintf(msg, msglen, "the speech-to-text server answers");
    return true;
  }
  aiplat_stt_last_error(ep->probe_client, msg, msglen);
  return false;
}

static void stt_cancel_probe(void *user_data) {
  aiplat_stt_endpoint *ep = user_data;
  aiplat_stt_cancel(ep->probe_client);
}

AIPLAT_API aiplat_status aiplat_stt_endpoint_create(aiplat_stt_endpoint **out,
                                                    aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL out");
  *out = NULL;
  const char *fmt = NULL;
  aiplat_stt_format def = AIPLAT_STT_FORMAT_JSON;
  aiplat_config *own = NULL;
  aiplat_status st = cfg ? AIPLAT_OK : aiplat_config_create(&own);
  if (own) cfg = own;
  if (!st) st = aiplat_config_get_string(cfg, "STT_RESPONSE_FORMAT", &fmt);
  if (!st && fmt && !stt_format_for(fmt, AIPLAT_STT_FORMAT_JSON, &def))
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "config: STT_RESPONSE_FORMAT must be json, verbose_json or "
                  "text");
  aiplat_stt_endpoint *ep = st ? NULL : calloc(1, sizeof *ep);
  if (!st && !ep) st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  if (ep) {
    ep->default_format = def;
  }
  if (!st)
    st = aip_probe_create(&ep->probe, stt_probe, stt_cancel_probe, ep,
                          PROBE_INTERVAL_MS);
  if (!st) st = aiplat_stt_create(&ep->client, cfg);
  if (!st) st = aiplat_stt_create(&ep->probe_client, cfg);
  if (!st) {
    aiplat_stt_set_timeout_ms(ep->probe_client, PROBE_TIMEOUT_MS);
    aiplat_stt_set_connect_timeout_ms(ep->probe_client, PROBE_TIMEOUT_MS);
  }
  aiplat_config_destroy(own);
  if (st) {
    aiplat_stt_endpoint_destroy(ep);
    return st;
  }
  *out = ep;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_stt_endpoint_destroy(aiplat_stt_endpoint *ep) {
  if (!ep) return;
  aip_probe_destroy(ep->probe);
  aiplat_stt_destroy(ep->client);
  aiplat_stt_destroy(ep->probe_client);
  free(ep);
}

AIPLAT_API aiplat_status aiplat_stt_endpoint_add_checks(aiplat_stt_endpoint *ep,
                                                        aiplat_health *health) {
  if (!ep || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: NULL endpoint or health");
  aiplat_status st = aip_probe_add_check(ep->probe, health, "stt");
  if (!st) aip_model_metrics_attach(aip_stt_base(ep->client), aiplat_health_metrics(health));
  return st;
}

static aiplat_status stt_reply(aiplat_request *req, const aiplat_stt_result *r,
                               const char *asked_language) {
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_TRANSCRIBE_RESPONSE);
  const char *lang = aiplat_stt_result_language(r);
  if (!lang || !*lang) lang = asked_language;
  if (!st)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (!st) st = aiplat_msg_set_string(out, "text", aiplat_stt_result_text(r));
  if (!st && lang && *lang) st = aiplat_msg_set_string(out, "language", lang);
  if (!st && aiplat_stt_result_duration(r) >= 0)
    st = aiplat_msg_set_double(out, "duration_seconds",
                               aiplat_stt_result_duration(r));
  for (size_t i = 0; !st && i < aiplat_stt_result_segment_count(r); i++) {
    aiplat_msg *seg = NULL;
    st = aiplat_msg_add_item(out, "segments", &seg);
    if (!st)
      st = aiplat_msg_set_double(seg, "start",
                                 aiplat_stt_result_segment_start(r, i));
    if (!st)
      st = aiplat_msg_set_double(seg, "end",
                                 aiplat_stt_result_segment_end(r, i));
    if (!st)
      st = aiplat_msg_set_string(seg, "text",
                                 aiplat_stt_result_segment_text(r, i));
  }
  if (!st) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

/* The transcript, on the loop thread. */
static void stt_done(aiplat_status st, const char *message,
                     aiplat_stt_result *r, void *ud) {
  speech_call *k = ud;
  aiplat_stt_endpoint *ep = k->ep;
  aip_probe_note(ep->probe, st);
  if (!st) st = stt_reply(k->req, r, k->lang);
  aiplat_stt_result_destroy(r);
  speech_call_finish(k, st, message);
}

/* The options of one transcription from the request; @why on failure. */
static aiplat_status stt_options(aiplat_stt_endpoint *ep, aiplat_msg *in,
                                 const char *lang, aiplat_stt_options **out,
                                 char *why, size_t whylen) {
  const char *rformat = "", *prompt = "";
  aiplat_msg_get_string(in, "response_format", &rformat);
  aiplat_msg_get_string(in, "prompt", &prompt);
  aiplat_stt_format f = ep->default_format;
  if (!stt_format_for(rformat, ep->default_format, &f)) {
    snprintf(why, whylen, "response_format is not json, verbose_json or text");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  aiplat_stt_options *opt = NULL;
  aiplat_status st = aiplat_stt_options_create(&opt);
  if (!st) st = aiplat_stt_options_set_response_format(opt, f);
  if (!st && *lang) st = aiplat_stt_options_set_language(opt, lang);
  if (!st && *prompt) {
    if ((st = aiplat_stt_options_set_prompt(opt, prompt)) != AIPLAT_OK) {
      char detail[AIP_ERRMSG_MAX - 16];
      aiplat_error_last(detail, sizeof detail);
      snprintf(why, whylen, "prompt: %s", detail);
    }
  } else if (st) {
    aiplat_error_last(why, whylen);
  }
  if (st) {
    aiplat_stt_options_destroy(opt);
    return st;
  }
  *out = opt;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stt_handle_request(aiplat_request *req,
                                                   void *user_data) {
  aiplat_stt_endpoint *ep = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !ep || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_TRANSCRIBE_REQUEST)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: the endpoint must decode TranscribeRequest and "
                    "have an endpoint handle");
  const uint8_t *bytes = NULL;
  size_t len = 0;
  const char *format = "", *language = "";
  aiplat_msg_get_bytes(in, "audio", &bytes, &len);
  aiplat_msg_get_string(in, "audio_format", &format);
  aiplat_msg_get_string(in, "language", &language);
  aip_audio audio;
  aiplat_stt_options *opt = NULL;
  char lang[8], why[AIP_ERRMSG_MAX] = "";
  aiplat_status st =
      aip_audio_prepare(&audio, bytes, len, format, why, sizeof why);
  if (!st)
    st = aip_audio_language(language, lang, sizeof lang, why, sizeof why);
  if (!st) st = stt_options(ep, in, lang, &opt, why, sizeof why);
  if (!st) st = past_deadline(req, why, sizeof why);
  speech_call *k = st ? NULL : speech_call_start(req, ep);
  if (!st && !k) {
    snprintf(why, sizeof why, "stt: out of memory");
    st = AIPLAT_ERR_NO_MEMORY;
  }
  if (st) {
    aiplat_stt_options_destroy(opt);
    aip_audio_release(&audio);
    return aiplat_request_fail(req, st, why);
  }
  snprintf(k->lang, sizeof k->lang, "%s", lang);
  st = aiplat_stt_transcribe_async(ep->client, audio.data, audio.len,
                                   audio.mime, opt, k->call, stt_done, k);
  aiplat_stt_options_destroy(opt);
  aip_audio_release(&audio);
  if (st) {
    aiplat_error_last(why, sizeof why); /* the client's record is shared */
    speech_call_finish(k, st, why);
  }
  return AIPLAT_OK;
}

/* ---- text-to-speech -------------------------------------------------------
 */

struct aiplat_tts_endpoint {
  aiplat_tts *client; /* every request's */
  aip_probe *probe;
  aiplat_tts *probe_client;
  aiplat_bus *bus;
  char default_format[8];
  double default_speed;
};

static bool tts_probe(char *msg, size_t msglen, void *user_data) {
  aiplat_tts_endpoint *ep = user_data;
  if (aiplat_tts_health(ep->probe_client) == AIPLAT_OK) {
    snprintf(msg, msglen, "the text-to-speech server answers");
    return true;
  }
  aiplat_tts_last_error(ep->probe_client, msg, msglen);
  return false;
}

static void tts_cancel_probe(void *user_data) {
  aiplat_tts_endpoint *ep = user_data;
  aiplat_tts_cancel(ep->probe_client);
}

AIPLAT_API aiplat_status aiplat_tts_endpoint_create(aiplat_tts_endpoint **out,
                                                    aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL out");
  *out = NULL;
  const char *fmt = NULL;
  double speed = 1.0;
  aiplat_config *own = NULL;
  aiplat_status st = cfg ? AIPLAT_OK : aiplat_config_create(&own);
  if (own) cfg = own;
  if (!st) st = aiplat_config_get_string(cfg, "TTS_FORMAT", &fmt);
  if (!st) st = aiplat_config_get_double(cfg, "TTS_SPEED", 0.25, 4.0, &speed);
  if (!fmt) fmt = "wav";
  if (!st && !aip_audio_tts_format_known(fmt))
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "config: TTS_FORMAT must be one of " AIP_AUDIO_TTS_FORMATS);
  aiplat_tts_endpoint *ep = st ? NULL : calloc(1, sizeof *ep);
  if (!st && !ep) st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  if (ep) {
    snprintf(ep->default_format, sizeof ep->default_format, "%s", fmt);
    ep->default_speed = speed;
  }
  if (!st)
    st = aip_probe_create(&ep->probe, tts_probe, tts_cancel_probe, ep,
                          PROBE_INTERVAL_MS);
  if (!st) st = aiplat_tts_create(&ep->client, cfg);
  if (!st) st = aiplat_tts_create(&ep->probe_client, cfg);
  if (!st) {
    aiplat_tts_set_timeout_ms(ep->probe_client, PROBE_TIMEOUT_MS);
    aiplat_tts_set_connect_timeout_ms(ep->probe_client, PROBE_TIMEOUT_MS);
  }
  aiplat_config_destroy(own);
  if (st) {
    aiplat_tts_endpoint_destroy(ep);
    return st;
  }
  *out = ep;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_tts_endpoint_destroy(aiplat_tts_endpoint *ep) {
  if (!ep) return;
  aip_probe_destroy(ep->probe);
  aiplat_tts_destroy(ep->client);
  aiplat_tts_destroy(ep->probe_client);
  free(ep);
}

AIPLAT_API aiplat_status aiplat_tts_endpoint_set_bus(aiplat_tts_endpoint *ep,
                                                     aiplat_bus *bus) {
  if (!ep)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL endpoint");
  ep->bus = bus;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_tts_endpoint_add_checks(aiplat_tts_endpoint *ep,
                                                        aiplat_health *health) {
  if (!ep || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: NULL endpoint or health");
  aiplat_status st = aip_probe_add_check(ep->probe, health, "tts");
  if (!st) aip_model_metrics_attach(aip_tts_base(ep->client), aiplat_health_metrics(health));
  return st;
}

static bool blank(const char *s) {
  return strspn(s, " \t\n\r\f\v") == strlen(s);
}

static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* The request's checks; the detail in @why. */
static aiplat_status tts_check(aiplat_tts_endpoint *ep, aiplat_msg *in,
                               const char **format, double *speed, char *why,
                               size_t whylen) {
  const char *text = "";
  aiplat_msg_get_string(in, "text", &text);
  aiplat_msg_get_string(in, "format", format);
  aiplat_msg_get_double(in, "speed", speed);
  if (blank(text)) {
    snprintf(why, whylen, "text is empty");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  size_t chars = utf8_chars(text);
  if (chars > TTS_MAX_TEXT_CHARS) {
    snprintf(why, whylen, "text is %zu characters long; the limit is %d", chars,
             TTS_MAX_TEXT_CHARS);
    return AIPLAT_ERR_TOO_LARGE;
  }
  if (**format && !aip_audio_tts_format_known(*format)) {
    snprintf(why, whylen, "format is not one of " AIP_AUDIO_TTS_FORMATS);
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  if (!**format) *format = ep->default_format;
  if (*speed == 0) *speed = ep->default_speed;
  if (!(*speed >= 0.25 && *speed <= 4.0)) {
    snprintf(why, whylen, "speed must be between 0.25 and 4.0");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return AIPLAT_OK;
}

static aiplat_status tts_reply(aiplat_tts_endpoint *ep, aiplat_request *req,
                               const void *audio, size_t len,
                               const char *ctype) {
  /* Say why instead of letting the publish fail: the caller can send less. */
  int64_t max = ep->bus ? aiplat_bus_max_payload(ep->bus) : 0;
  if (max > 0 && (int64_t)len + REPLY_OVERHEAD > max) {
    char why[200];
    snprintf(why, sizeof why,
             "the audio is %zu bytes, over the %lld-byte NATS max_payload; "
             "send shorter text",
             len, (long long)max);
    return aiplat_request_fail(req, AIPLAT_ERR_TOO_LARGE, why);
  }
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_SYNTHESIZE_RESPONSE);
  if (!st)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (!st) st = aiplat_msg_set_bytes(out, "audio", audio, len);
  if (!st) st = aiplat_msg_set_string(out, "content_type", ctype ? ctype : "");
  if (!st) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

/* The audio, on the loop thread. */
static void tts_done(aiplat_status st, const char *message, void *audio,
                     size_t len, const char *ctype, void *ud) {
  speech_call *k = ud;
  aiplat_tts_endpoint *ep = k->ep;
  aip_probe_note(ep->probe, st);
  if (!st) st = tts_reply(ep, k->req, audio, len, ctype);
  aiplat_free(audio);
  speech_call_finish(k, st, message);
}

AIPLAT_API aiplat_status aiplat_tts_handle_request(aiplat_request *req,
                                                   void *user_data) {
  aiplat_tts_endpoint *ep = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !ep || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_SYNTHESIZE_REQUEST)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: the endpoint must decode SynthesizeRequest and "
                    "have an endpoint handle");
  const char *format = "", *text = "", *voice = "";
  double speed = 0;
  char why[AIP_ERRMSG_MAX] = "";
  aiplat_msg_get_string(in, "text", &text);
  aiplat_msg_get_string(in, "voice", &voice);
  aiplat_tts_options *opt = NULL;
  aiplat_status st = tts_check(ep, in, &format, &speed, why, sizeof why);
  if (!st) st = past_deadline(req, why, sizeof why);
  if (!st) {
    st = aiplat_tts_options_create(&opt);
    if (!st) st = aiplat_tts_options_set_format(opt, format);
    if (!st) st = aiplat_tts_options_set_speed(opt, speed);
    if (!st && *voice) st = aiplat_tts_options_set_voice(opt, voice);
    if (st) aiplat_error_last(why, sizeof why);
  }
  speech_call *k = st ? NULL : speech_call_start(req, ep);
  if (!st && !k) {
    snprintf(why, sizeof why, "tts: out of memory");
    st = AIPLAT_ERR_NO_MEMORY;
  }
  if (st) {
    aiplat_tts_options_destroy(opt);
    return aiplat_request_fail(req, st, why);
  }
  st = aiplat_tts_synthesize_async(ep->client, text, opt, k->call, NULL,
                                   tts_done, k);
  aiplat_tts_options_destroy(opt);
  if (st) {
    aiplat_error_last(why, sizeof why); /* the client's record is shared */
    speech_call_finish(k, st, why);
  }
  return AIPLAT_OK;
}
