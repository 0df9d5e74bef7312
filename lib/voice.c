/* The voice pipeline (include/aiplat/voice.h): a VoiceRequest transcribed,
 * answered by the chat pipeline and spoken. Each step reads and fills one
 * voice_call, so the blocking steps can later run one after another on the
 * execution core. */
#include "aiplat/voice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aiplat/chat.h"
#include "aiplat/stt.h"
#include "aiplat/subject.h"
#include "aiplat/tts.h"
#include "audio_format.h"
#include "message_internal.h"
#include "model_metrics.h"

#define PROBE_TIMEOUT_MS 5000

struct aiplat_voice {
  aiplat_chat *chat;
  aiplat_stt *stt;
  aiplat_tts *tts;
  aip_err err;
};

/* One request on its way through the steps. */
typedef struct voice_call {
  aiplat_voice *v;
  aiplat_request *req;
  aiplat_msg *in;
  char *subject; /* ai.voice.response.{request_id}, or NULL */
  char *user;    /* the user of the subject */
  aiplat_stt_result *heard;
  aiplat_msg *answer; /* the ChatResponse */
  void *audio;        /* the spoken answer */
  size_t audio_len;
  char *content_type;
  aiplat_status code; /* the failure, when a step failed */
  char why[AIP_ERRMSG_MAX];
} voice_call;

static aiplat_status step_fail(voice_call *k, aiplat_status code,
                               const char *prefix, const char *why) {
  k->code = code;
  snprintf(k->why, sizeof k->why, "%s%s", prefix, why);
  return code;
}

AIPLAT_API aiplat_status aiplat_voice_create(aiplat_voice **out,
                                             aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "voice: NULL out");
  *out = NULL;
  aiplat_voice *v = calloc(1, sizeof *v);
  if (!v) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "voice: out of memory");
  aip_err_init(&v->err);
  aiplat_status st = aiplat_chat_create(&v->chat, cfg);
  if (!st) st = aiplat_stt_create(&v->stt, cfg);
  if (!st) st = aiplat_tts_create(&v->tts, cfg);
  if (st) {
    aiplat_voice_destroy(v);
    return st;
  }
  *out = v;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_voice_destroy(aiplat_voice *v) {
  if (!v) return;
  aiplat_chat_destroy(v->chat);
  aiplat_stt_destroy(v->stt);
  aiplat_tts_destroy(v->tts);
  aip_err_destroy(&v->err);
  free(v);
}

AIPLAT_API aiplat_status aiplat_voice_last_error(aiplat_voice *v, char *buf,
                                                 size_t buflen) {
  if (!v) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "voice: NULL");
  return aip_err_copy(&v->err, buf, buflen);
}

AIPLAT_API aiplat_status aiplat_voice_set_bus(aiplat_voice *v,
                                              aiplat_bus *bus) {
  if (!v) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "voice: NULL");
  return aiplat_chat_set_bus(v->chat, bus);
}

static bool stt_check(char *msg, size_t len, void *ud) {
  aiplat_voice *v = ud;
  bool ok = aiplat_stt_health(v->stt) == AIPLAT_OK;
  if (!ok) aiplat_stt_last_error(v->stt, msg, len);
  return ok;
}

static bool tts_check(char *msg, size_t len, void *ud) {
  aiplat_voice *v = ud;
  bool ok = aiplat_tts_health(v->tts) == AIPLAT_OK;
  if (!ok) aiplat_tts_last_error(v->tts, msg, len);
  return ok;
}

AIPLAT_API aiplat_status aiplat_voice_add_checks(aiplat_voice *v,
                                                 aiplat_health *health,
                                                 int64_t interval_ms) {
  if (!v || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "voice: NULL pipeline or health");
  aiplat_status st = aiplat_chat_add_checks(v->chat, health, interval_ms);
  if (!st)
    st = aiplat_health_add_cached_check(health, "stt", stt_check, v,
                                        interval_ms, PROBE_TIMEOUT_MS);
  if (!st)
    st = aiplat_health_add_cached_check(health, "tts", tts_check, v,
                                        interval_ms, PROBE_TIMEOUT_MS);
  aip_voice_attach_metrics(v->stt, v->tts, aiplat_health_metrics(health));
  return st;
}

/* ---- the steps ---------------------------------------------------------- */

/* The request id names the response subject; the subject names the user. */
static aiplat_status step_check(voice_call *k) {
  char why[AIP_ERRMSG_MAX - 16];
  if (aiplat_subject_voice_response(&k->subject, aiplat_request_id(k->req)) !=
      AIPLAT_OK) {
    aiplat_error_last(why, sizeof why);
    return step_fail(k, AIPLAT_ERR_INVALID_ARGUMENT, "request_id: ", why);
  }
  const char *uid = "";
  aiplat_msg_get_string(k->in, "user_id", &uid);
  aiplat_subject_token_at(&k->user, aiplat_request_subject(k->req),
                          3); /* ai.voice.user.{u} */
  if (!k->user || aiplat_subject_token_check(k->user) != AIPLAT_OK)
    return step_fail(k, AIPLAT_ERR_INVALID_ARGUMENT, "",
                     "the subject has no valid user id");
  if (*uid && strcmp(uid, k->user) != 0)
    return step_fail(k, AIPLAT_ERR_INVALID_ARGUMENT, "",
                     "user_id does not match the subject");
  return AIPLAT_OK;
}

/* The transcript of the request's audio, in k->heard. */
static aiplat_status step_transcribe(voice_call *k) {
  const uint8_t *bytes = NULL;
  size_t len = 0;
  const char *format = "", *language = "";
  aiplat_msg_get_bytes(k->in, "audio", &bytes, &len);
  aiplat_msg_get_string(k->in, "audio_format", &format);
  aiplat_msg_get_string(k->in, "language", &language);
  aip_audio audio;
  char lang[8], why[AIP_ERRMSG_MAX - 32];
  aiplat_status st =
      aip_audio_prepare(&audio, bytes, len, format, why, sizeof why);
  if (!st)
    st = aip_audio_language(language, lang, sizeof lang, why, sizeof why);
  if (st) {
    aip_audio_release(&audio);
    return step_fail(k, st, "", why);
  }
  st = aiplat_stt_transcribe(k->v->stt, audio.data, audio.len, audio.mime,
                             *lang ? lang : NULL, &k->heard);
  aip_audio_release(&audio);
  if (st) {
    aiplat_stt_last_error(k->v->stt, why, sizeof why);
    /* The client refusing the audio (unrecognised bytes) is a bad request,
     * as the server's refusal is. */
    if (st == AIPLAT_ERR_INVALID_ARGUMENT) st = AIPLAT_ERR_BAD_REQUEST;
    return step_fail(k, st, "speech-to-text: ", why);
  }
  const char *text = aiplat_stt_result_text(k->heard);
  if (strspn(text, " \t\r\n") == strlen(text))
    return step_fail(k, AIPLAT_ERR_BAD_REQUEST, "",
                     "no speech was recognised in the audio");
  return AIPLAT_OK;
}

/* The chat pipeline's answer to the transcript, in k->answer. */
static aiplat_status step_answer(voice_call *k) {
  const char *conv = "";
  bool rag = true;
  aiplat_msg_get_string(k->in, "conversation_id", &conv);
  aiplat_msg_get_bool(k->in, "enable_rag", &rag);
  aiplat_msg *creq = NULL;
  aiplat_status st = aiplat_msg_create(&creq, AIPLAT_MSG_CHAT_REQUEST);
  if (!st) st = aiplat_msg_set_string(creq, "user_id", k->user);
  if (!st)
    st = aiplat_msg_set_string(creq, "message",
                               aiplat_stt_result_text(k->heard));
  if (!st)
    st = aiplat_msg_set_string(creq, "request_id", aiplat_request_id(k->req));
  if (!st) st = aiplat_msg_set_string(creq, "conversation_id", conv);
  if (!st) st = aiplat_msg_set_bool(creq, "enable_rag", rag);
  if (!st) st = aiplat_chat_answer(k->v->chat, creq, NULL, NULL, &k->answer);
  aiplat_msg_destroy(creq);
  if (st) {
    char why[AIP_ERRMSG_MAX];
    aiplat_chat_last_error(k->v->chat, why, sizeof why);
    return step_fail(k, st, "", why);
  }
  return AIPLAT_OK;
}

/* The answer without its citation marks ("[2]"), for speaking. */
static char *speakable(const char *text) {
  char *s = strdup(text), *o = s;
  for (const char *p = text; s && *p; p++) {
    size_t d = p[0] == '[' ? strspn(p + 1, "0123456789") : 0;
    if (d > 0 && p[d + 1] == ']') {
      while (o > s && o[-1] == ' ') o--;
      p += d + 1;
    } else {
      *o++ = *p;
    }
  }
  if (s) *o = '\0';
  return s;
}

/* The answer spoken, in k->audio and k->content_type. */
static aiplat_status step_speak(voice_call *k) {
  const char *text = "", *voice = "";
  aiplat_msg_get_string(k->answer, "text", &text);
  aiplat_msg_get_string(k->in, "voice", &voice);
  char *speak = speakable(text);
  if (!speak) return step_fail(k, AIPLAT_ERR_NO_MEMORY, "", "out of memory");
  aiplat_status st = aiplat_tts_synthesize(
      k->v->tts, *speak ? speak : "No answer.", *voice ? voice : NULL,
      &k->audio, &k->audio_len, &k->content_type);
  free(speak);
  if (st) {
    char why[AIP_ERRMSG_MAX - 32];
    aiplat_tts_last_error(k->v->tts, why, sizeof why);
    return step_fail(k, st, "text-to-speech: ", why);
  }
  return AIPLAT_OK;
}

static aiplat_status copy_sources(aiplat_msg *from, aiplat_msg *to) {
  size_t n = 0;
  aiplat_status st = aiplat_msg_count(from, "sources", &n);
  static const char *const f[] = {"id", "text", "source"};
  for (size_t i = 0; st == AIPLAT_OK && i < n; i++) {
    aiplat_msg *src = NULL, *dst = NULL;
    const char *s = NULL;
    double score = 0;
    st = aiplat_msg_get_item(from, "sources", i, &src);
    if (!st) st = aiplat_msg_add_item(to, "sources", &dst);
    for (size_t j = 0; !st && j < 3; j++) {
      st = aiplat_msg_get_string(src, f[j], &s);
      if (!st) st = aiplat_msg_set_string(dst, f[j], s);
    }
    if (!st) st = aiplat_msg_get_double(src, "score", &score);
    if (!st) st = aiplat_msg_set_double(dst, "score", score);
  }
  return st;
}

/* The VoiceResponse on both subjects. */
static aiplat_status step_reply(voice_call *k) {
  const char *text = "", *conv = "";
  aiplat_msg_get_string(k->answer, "text", &text);
  aiplat_msg_get_string(k->in, "conversation_id", &conv);
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_VOICE_RESPONSE);
  if (!st)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(k->req));
  if (!st)
    st = aiplat_msg_set_string(out, "transcript",
                               aiplat_stt_result_text(k->heard));
  if (!st) st = aiplat_msg_set_string(out, "text", text);
  if (!st) st = aiplat_msg_set_bytes(out, "audio", k->audio, k->audio_len);
  if (!st)
    st = aiplat_msg_set_string(out, "audio_format",
                               aip_audio_format_name(k->content_type));
  if (!st) st = aiplat_msg_set_string(out, "conversation_id", conv);
  if (!st) st = copy_sources(k->answer, out);
  if (!st) aiplat_request_publish(k->req, k->subject, out);
  if (!st) st = aiplat_request_respond(k->req, out);
  aiplat_msg_destroy(out);
  return st;
}

/* The error on ai.voice.response.{id} too, then the error reply. */
static aiplat_status reply_error(voice_call *k) {
  aip_fail(&k->v->err, k->code, "voice: %s", k->why);
  aiplat_msg *m = NULL;
  if (k->subject &&
      aiplat_msg_create(&m, AIPLAT_MSG_VOICE_RESPONSE) == AIPLAT_OK &&
      aiplat_msg_set_string(m, "request_id", aiplat_request_id(k->req)) ==
          AIPLAT_OK &&
      aip_msg_set_error(m, k->code, k->why) == AIPLAT_OK)
    aiplat_request_publish(k->req, k->subject, m);
  aiplat_msg_destroy(m);
  return aiplat_request_fail(k->req, k->code, k->why);
}

AIPLAT_API aiplat_status aiplat_voice_handle_request(aiplat_request *req,
                                                     void *user_data) {
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !user_data || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_VOICE_REQUEST)
    return aip_fail(
        NULL, AIPLAT_ERR_INVALID_ARGUMENT,
        "voice: the endpoint must decode VoiceRequest and have a pipeline");
  voice_call k = {.v = user_data, .req = req, .in = in};
  aiplat_status st = step_check(&k);
  if (!st) st = step_transcribe(&k);
  if (!st) st = step_answer(&k);
  if (!st) st = step_speak(&k);
  st = st ? reply_error(&k) : step_reply(&k);
  aiplat_stt_result_destroy(k.heard);
  aiplat_msg_destroy(k.answer);
  aiplat_free(k.audio);
  aiplat_free(k.content_type);
  aiplat_free(k.subject);
  aiplat_free(k.user);
  return st;
}
