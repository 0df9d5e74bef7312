/* The voice pipeline (include/aiplat/voice.h): a VoiceRequest transcribed,
 * answered by the chat pipeline and spoken. Each step reads and fills one
 * voice_call and starts the next from its completion: the handler checks
 * the request and starts the transcription; the model calls run on the
 * execution core, and so do the chat pipeline's steps (history, retrieval,
 * LLM): the answer starts on the loop thread once the transcript is there,
 * and neither a delivery thread nor the loop thread waits on a server. */
#include "aiplat/voice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aiplat/chat.h"
#include "aiplat/stt.h"
#include "aiplat/subject.h"
#include "aiplat/tts.h"
#include "audio_format.h"
#include "call_internal.h"
#include "chat_internal.h"
#include "message_internal.h"
#include "model_metrics.h"

#define PROBE_TIMEOUT_MS 5000

typedef struct voice_call voice_call;

struct aiplat_voice {
  aiplat_chat *chat;
  aiplat_stt *stt;
  aiplat_tts *tts;
  aip_err err;
};

/* One request on its way through the steps; lives until it completes. */
struct voice_call {
  aiplat_voice *v;
  aiplat_request *req;
  aiplat_msg *in;
  aiplat_call *call; /* the request's deadline; cancelled at shutdown */
  char *subject;     /* ai.voice.response.{request_id}, or NULL */
  char *user;        /* the user of the subject */
  aiplat_stt_result *heard;
  aiplat_msg *creq;   /* the ChatRequest */
  aiplat_msg *answer; /* the ChatResponse */
  void *audio;        /* the spoken answer */
  size_t audio_len;
  char *content_type;
  aiplat_status code; /* the failure, when a step failed */
  char why[AIP_ERRMSG_MAX];
};

static aiplat_status step_fail(voice_call *k, aiplat_status code,
                               const char *prefix, const char *why) {
  k->code = code;
  snprintf(k->why, sizeof k->why, "%s%s", prefix, why);
  return code;
}

/* The answer is spoken in TTS_FORMAT: one of the formats tts-module takes. */
static aiplat_status check_tts_format(aiplat_config *cfg) {
  const char *fmt = NULL;
  aiplat_status st = aiplat_config_get_string(cfg, "TTS_FORMAT", &fmt);
  if (!st && fmt && !aip_audio_tts_format_known(fmt))
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "config: TTS_FORMAT must be one of " AIP_AUDIO_TTS_FORMATS);
  return st;
}

AIPLAT_API aiplat_status aiplat_voice_create(aiplat_voice **out,
                                             aiplat_config *cfg) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "voice: NULL out");
  *out = NULL;
  aiplat_voice *v = calloc(1, sizeof *v);
  if (!v) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "voice: out of memory");
  aip_err_init(&v->err);
  aiplat_config *own = NULL;
  aiplat_status st = cfg ? AIPLAT_OK : aiplat_config_create(&own);
  if (own) cfg = own;
  if (!st) st = check_tts_format(cfg);
  if (!st) st = aiplat_chat_create(&v->chat, cfg);
  if (!st) st = aiplat_stt_create(&v->stt, cfg);
  if (!st) st = aiplat_tts_create(&v->tts, cfg);
  aiplat_config_destroy(own);
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

static void finish(voice_call *k, aiplat_status st);
static void on_heard(aiplat_status st, const char *message,
                     aiplat_stt_result *result, void *ud);

/* The transcription failed. Audio the client cannot recognise is
 * INVALID_ARGUMENT, as stt-module answers it (one rule, audio_format.h);
 * the server's refusal stays BAD_REQUEST. */
static aiplat_status heard_fail(voice_call *k, aiplat_status st,
                                const char *why) {
  return step_fail(k, st, "speech-to-text: ", why);
}

/* Start transcribing the request's audio; on_heard continues. The audio
 * rules (audio_format.h) are checked first. */
static aiplat_status step_transcribe(voice_call *k) {
  const uint8_t *bytes = NULL;
  size_t len = 0;
  const char *format = "", *language = "";
  aiplat_msg_get_bytes(k->in, "audio", &bytes, &len);
  aiplat_msg_get_string(k->in, "audio_format", &format);
  aiplat_msg_get_string(k->in, "language", &language);
  aip_audio audio;
  aiplat_stt_options *opt = NULL;
  char lang[8], why[AIP_ERRMSG_MAX - 32];
  aiplat_status st =
      aip_audio_prepare(&audio, bytes, len, format, why, sizeof why);
  if (!st)
    st = aip_audio_language(language, lang, sizeof lang, why, sizeof why);
  if (st) {
    aip_audio_release(&audio);
    return step_fail(k, st, "", why);
  }
  st = aiplat_stt_options_create(&opt);
  if (!st && *lang) st = aiplat_stt_options_set_language(opt, lang);
  if (!st)
    st = aiplat_stt_transcribe_async(k->v->stt, audio.data, audio.len,
                                     audio.mime, opt, k->call, on_heard, k);
  aiplat_stt_options_destroy(opt);
  aip_audio_release(&audio);
  if (st) {
    aiplat_error_last(why, sizeof why); /* the handle's record is shared */
    return heard_fail(k, st, why);
  }
  return AIPLAT_OK;
}

/* The ChatRequest of the transcript, in k->creq. */
static aiplat_status chat_request(voice_call *k) {
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
  if (st) {
    aiplat_msg_destroy(creq);
    return step_fail(k, st, "voice: ", "cannot build the chat request");
  }
  k->creq = creq;
  return AIPLAT_OK;
}

static void step_answer(voice_call *k);

/* The transcript, on the loop thread: start the answer. */
static void on_heard(aiplat_status st, const char *message,
                     aiplat_stt_result *result, void *ud) {
  voice_call *k = ud;
  k->heard = result;
  if (st) {
    finish(k, heard_fail(k, st, message));
    return;
  }
  const char *text = aiplat_stt_result_text(k->heard);
  if (strspn(text, " \t\r\n") == strlen(text)) {
    finish(k, step_fail(k, AIPLAT_ERR_BAD_REQUEST, "",
                        "no speech was recognised in the audio"));
    return;
  }
  if ((st = chat_request(k)) != AIPLAT_OK) {
    finish(k, st);
    return;
  }
  step_answer(k);
}

static void on_answer(aiplat_status st, const char *why, aiplat_msg *resp,
                      void *ud);

/* Start the chat pipeline's answer, on the loop thread: its steps run on
 * the execution core, bounded by the request's deadline, and on_answer
 * continues. */
static void step_answer(voice_call *k) {
  char why[AIP_ERRMSG_MAX];
  if (aiplat_call_cancelled(k->call)) {
    finish(k, step_fail(k, AIPLAT_ERR_CANCELLED, "",
                        "voice: the service is stopping"));
    return;
  }
  aip_thread_deadline_set(aip_call_deadline_ms(k->call));
  aiplat_status st = aip_chat_answer_async(k->v->chat, k->creq, k->call, NULL,
                                           on_answer, k, why, sizeof why);
  aip_thread_deadline_set(0);
  aiplat_error_clear();
  if (st) finish(k, step_fail(k, st, "", why));
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

static void on_spoken(aiplat_status st, const char *message, void *audio,
                      size_t len, const char *content_type, void *ud);

/* The answer, on the loop thread: start speaking it (on_spoken continues). */
static void on_answer(aiplat_status st, const char *why, aiplat_msg *resp,
                      void *ud) {
  voice_call *k = ud;
  k->answer = resp;
  if (st) {
    finish(k, step_fail(k, st, "", why));
    return;
  }
  const char *text = "", *voice = "";
  aiplat_msg_get_string(k->answer, "text", &text);
  aiplat_msg_get_string(k->in, "voice", &voice);
  char *speak = speakable(text);
  aiplat_tts_options *opt = NULL;
  st = speak ? aiplat_tts_options_create(&opt) : AIPLAT_ERR_NO_MEMORY;
  if (!st && *voice) st = aiplat_tts_options_set_voice(opt, voice);
  if (!st)
    st = aiplat_tts_synthesize_async(k->v->tts, *speak ? speak : "No answer.",
                                     opt, k->call, NULL, on_spoken, k);
  aiplat_tts_options_destroy(opt);
  free(speak);
  if (st) {
    char detail[AIP_ERRMSG_MAX - 32];
    aiplat_error_last(detail, sizeof detail);
    finish(k, step_fail(k, st, "text-to-speech: ", detail));
  }
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
  if (st) step_fail(k, st, "voice: ", "cannot send the answer");
  return st;
}

/* The spoken answer, on the loop thread: reply. */
static void on_spoken(aiplat_status st, const char *message, void *audio,
                      size_t len, const char *content_type, void *ud) {
  voice_call *k = ud;
  k->audio = audio;
  k->audio_len = len;
  if (st) {
    finish(k, step_fail(k, st, "text-to-speech: ", message));
    return;
  }
  if (!(k->content_type = aip_strdup(content_type)) && content_type) {
    finish(k, step_fail(k, AIPLAT_ERR_NO_MEMORY, "", "voice: out of memory"));
    return;
  }
  finish(k, step_reply(k));
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

static void call_free(voice_call *k) {
  aiplat_stt_result_destroy(k->heard);
  aiplat_msg_destroy(k->creq);
  aiplat_msg_destroy(k->answer);
  aiplat_free(k->audio);
  free(k->content_type);
  aiplat_free(k->subject);
  aiplat_free(k->user);
  aiplat_call_destroy(k->call);
  free(k);
}

/* The end of a deferred request, with the reply sent (@st OK) or the
 * failure in k->code and k->why. Any thread. */
static void finish(voice_call *k, aiplat_status st) {
  aiplat_request *req = k->req;
  aiplat_request_set_cancel_callback(req, NULL, NULL);
  if (st) reply_error(k);
  char why[AIP_ERRMSG_MAX];
  snprintf(why, sizeof why, "%s", st ? k->why : "");
  call_free(k);
  aiplat_request_complete(req, st, st ? why : NULL);
}

/* Shutdown past the grace period: the step running stops (its connection
 * closes) and its completion answers the caller with the error. */
static void on_cancel(aiplat_request *req, void *ud) {
  (void)req;
  aiplat_call_cancel(ud);
}

AIPLAT_API aiplat_status aiplat_voice_handle_request(aiplat_request *req,
                                                     void *user_data) {
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !user_data || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_VOICE_REQUEST)
    return aip_fail(
        NULL, AIPLAT_ERR_INVALID_ARGUMENT,
        "voice: the endpoint must decode VoiceRequest and have a pipeline");
  voice_call *k = calloc(1, sizeof *k);
  if (!k || aiplat_call_create(&k->call) != AIPLAT_OK) {
    free(k);
    return aiplat_request_fail(req, AIPLAT_ERR_NO_MEMORY,
                               "voice: out of memory");
  }
  k->v = user_data;
  k->req = req;
  k->in = in;
  aip_call_set_deadline_ms(k->call, aip_request_deadline_ms(req));
  aiplat_status st = step_check(k);
  if (st) {
    st = reply_error(k);
    call_free(k);
    return st;
  }
  /* From here the request finishes from the steps' completions. */
  aiplat_request_defer(req);
  aiplat_request_set_cancel_callback(req, on_cancel, k->call);
  if ((st = step_transcribe(k)) != AIPLAT_OK) finish(k, st);
  return AIPLAT_OK;
}
