/* voice-assistant: answers spoken questions on ai.voice.user.*.request:
 * speech-to-text, the chat pipeline (retrieval + LLM, aiplat/chat.h), then
 * text-to-speech; the VoiceResponse goes to the reply subject and to
 * ai.voice.response.{requestId}
 * (docs/decisions/0016-chat-and-voice-services.md). */
#include <aiplat/aiplat.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "voice-assistant"

static const char usage[] =
    "Usage: " NAME
    " [--help | --version]\n"
    "\n"
    "Answers VoiceRequest messages on ai.voice.user.*.request (queue "
    "group\n" NAME
    "): the audio is transcribed, answered by the chat pipeline\n"
    "(retrieval + LLM) and the answer spoken; the VoiceResponse goes to the\n"
    "reply subject and ai.voice.response.{requestId}. Configured by the\n"
    "environment only, among others:\n"
    "  NATS_URL                    NATS server (nats://localhost:4222)\n"
    "  STT_URL, STT_MODEL, STT_LANGUAGE   speech-to-text server\n"
    "  TTS_URL, TTS_MODEL, TTS_VOICE      text-to-speech server\n"
    "  VLLM_URL, LLM_MODEL, EMBEDDINGS_URL, VECTOR_STORE_PATH, RAG_TOP_K\n"
    "  CHAT_HISTORY_TURNS, SYSTEM_PROMPT, READY_CHECK_INTERVAL\n"
    "  HEALTH_PORT, WORKERS, REQUEST_TIMEOUT, SHUTDOWN_GRACE, LOG_LEVEL\n"
    "Every setting: README.md, \"Configuration\".\n";

typedef struct app {
  aiplat_chat *chat;
  aiplat_stt *stt;
  aiplat_tts *tts;
} app;

/* The MIME type for audio_format ("" when unknown); raw PCM is wrapped. */
static const char *mime_for(const char *format) {
  static const char *const map[][2] = {{"", ""},
                                       {"wav", "audio/wav"},
                                       {"mp3", "audio/mpeg"},
                                       {"ogg", "audio/ogg"},
                                       {"opus", "audio/ogg"},
                                       {"webm", "audio/webm"},
                                       {"flac", "audio/flac"},
                                       {"mp4", "audio/mp4"},
                                       {"m4a", "audio/mp4"}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(format, map[i][0])) return map[i][1];
  return NULL;
}

/* A WAV header in front of raw 16-bit little-endian mono PCM. */
static uint8_t *wrap_pcm(const uint8_t *pcm, size_t len, uint32_t rate,
                         size_t *out_len) {
  uint8_t *w = malloc(44 + len);
  if (!w) return NULL;
  uint32_t v[] = {
      36 + (uint32_t)len, 16,           1 | (1u << 16), rate, rate * 2,
      2 | (16u << 16),    (uint32_t)len};
  memcpy(w, "RIFF", 4), memcpy(w + 8, "WAVEfmt ", 8), memcpy(w + 36, "data", 4);
  size_t at[] = {4, 16, 20, 24, 28, 32, 40};
  for (size_t i = 0; i < 7; i++)
    for (int b = 0; b < 4; b++)
      w[at[i] + (size_t)b] = (uint8_t)(v[i] >> (8 * b));
  memcpy(w + 44, pcm, len);
  *out_len = 44 + len;
  return w;
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

/* Fail: the error on ai.voice.response.{id} too, then the error reply. */
static aiplat_status fail(aiplat_request *req, const char *subject,
                          aiplat_status code, const char *prefix,
                          const char *why) {
  char text[600];
  snprintf(text, sizeof text, "%s%s", prefix, why);
  aiplat_msg *m = NULL, *e = NULL;
  if (subject &&
      aiplat_msg_create(&m, AIPLAT_MSG_VOICE_RESPONSE) == AIPLAT_OK &&
      aiplat_msg_set_string(m, "request_id", aiplat_request_id(req)) ==
          AIPLAT_OK &&
      aiplat_msg_mutable_message(m, "error", &e) == AIPLAT_OK &&
      aiplat_msg_set_int64(e, "code", code) == AIPLAT_OK &&
      aiplat_msg_set_string(e, "message", text) == AIPLAT_OK)
    aiplat_request_publish(req, subject, m);
  aiplat_msg_destroy(m);
  return aiplat_request_fail(req, code, text);
}

/* The transcript of the request's audio, or a failed request. */
static aiplat_status transcribe(app *a, aiplat_request *req,
                                const char *subject, aiplat_stt_result **out) {
  aiplat_msg *in = aiplat_request_message(req);
  const uint8_t *audio = NULL;
  size_t len = 0, wlen = 0;
  const char *format = "", *lang = "";
  aiplat_msg_get_bytes(in, "audio", &audio, &len);
  aiplat_msg_get_string(in, "audio_format", &format);
  aiplat_msg_get_string(in, "language", &lang);
  if (len == 0)
    return fail(req, subject, AIPLAT_ERR_BAD_REQUEST, "", "audio is empty");
  unsigned rate = 0;
  uint8_t *wav = NULL;
  const char *mime = mime_for(format);
  if (sscanf(format, "pcm_s16le_%u", &rate) == 1 && rate >= 8000 &&
      rate <= 192000) {
    if (!(wav = wrap_pcm(audio, len, rate, &wlen)))
      return fail(req, subject, AIPLAT_ERR_NO_MEMORY, "", "out of memory");
    mime = "audio/wav";
  } else if (!mime) {
    return fail(
        req, subject, AIPLAT_ERR_BAD_REQUEST, "audio_format: ",
        "not one of wav, mp3, ogg, opus, webm, flac, mp4, m4a, pcm_s16le_RATE");
  }
  aiplat_status st =
      aiplat_stt_transcribe(a->stt, wav ? wav : audio, wav ? wlen : len, mime,
                            *lang ? lang : NULL, out);
  free(wav);
  if (st == AIPLAT_OK && strspn(aiplat_stt_result_text(*out), " \t\r\n") ==
                             strlen(aiplat_stt_result_text(*out))) {
    aiplat_stt_result_destroy(*out);
    *out = NULL;
    return fail(req, subject, AIPLAT_ERR_BAD_REQUEST, "",
                "no speech was recognised in the audio");
  }
  if (st == AIPLAT_OK) return AIPLAT_OK;
  char why[512];
  aiplat_stt_last_error(a->stt, why, sizeof why);
  /* The client refusing the audio (unrecognised bytes) is a bad request. */
  if (st == AIPLAT_ERR_INVALID_ARGUMENT) st = AIPLAT_ERR_BAD_REQUEST;
  return fail(req, subject, st, "speech-to-text: ", why);
}

static aiplat_status on_voice(aiplat_request *req, void *ud) {
  app *a = ud;
  aiplat_msg *in = aiplat_request_message(req);
  char *subject = NULL, *user = NULL, why[512];
  if (aiplat_subject_voice_response(&subject, aiplat_request_id(req)) !=
      AIPLAT_OK) {
    aiplat_error_last(why, sizeof why);
    return fail(req, NULL, AIPLAT_ERR_INVALID_ARGUMENT, "request_id: ", why);
  }
  const char *uid = "", *conv = "", *voice = "";
  aiplat_msg_get_string(in, "user_id", &uid);
  aiplat_msg_get_string(in, "conversation_id", &conv);
  aiplat_msg_get_string(in, "voice", &voice);
  aiplat_subject_token_at(&user, aiplat_request_subject(req),
                          3); /* ai.voice.user.{u} */
  aiplat_stt_result *heard = NULL;
  aiplat_msg *creq = NULL, *cresp = NULL, *out = NULL;
  void *audio = NULL;
  char *ctype = NULL, *speak = NULL;
  aiplat_status st;
  if (!user || aiplat_subject_token_check(user) != AIPLAT_OK ||
      (*uid && strcmp(uid, user))) {
    st = fail(req, subject, AIPLAT_ERR_INVALID_ARGUMENT, "",
              user ? "user_id does not match the subject"
                   : "the subject has no valid user id");
    goto out;
  }
  if ((st = transcribe(a, req, subject, &heard)) != AIPLAT_OK) goto out;
  bool rag = true;
  aiplat_msg_get_bool(in, "enable_rag", &rag);
  st = aiplat_msg_create(&creq, AIPLAT_MSG_CHAT_REQUEST);
  if (!st) st = aiplat_msg_set_string(creq, "user_id", user);
  if (!st)
    st = aiplat_msg_set_string(creq, "message", aiplat_stt_result_text(heard));
  if (!st)
    st = aiplat_msg_set_string(creq, "request_id", aiplat_request_id(req));
  if (!st) st = aiplat_msg_set_string(creq, "conversation_id", conv);
  if (!st) st = aiplat_msg_set_bool(creq, "enable_rag", rag);
  if (!st) st = aiplat_chat_answer(a->chat, creq, NULL, NULL, &cresp);
  if (st) {
    aiplat_chat_last_error(a->chat, why, sizeof why);
    st = fail(req, subject, st, "", why);
    goto out;
  }
  const char *text = "";
  aiplat_msg_get_string(cresp, "text", &text);
  size_t alen = 0;
  speak = speakable(text);
  st = aiplat_tts_synthesize(a->tts, speak && *speak ? speak : "No answer.",
                             *voice ? voice : NULL, &audio, &alen, &ctype);
  if (st) {
    aiplat_tts_last_error(a->tts, why, sizeof why);
    st = fail(req, subject, st, "text-to-speech: ", why);
    goto out;
  }
  const char *fmt = strncmp(ctype, "audio/", 6) ? ctype : ctype + 6;
  if (!strcmp(fmt, "x-wav") || !strcmp(fmt, "wave")) fmt = "wav";
  if (!strcmp(fmt, "mpeg")) fmt = "mp3";
  st = aiplat_msg_create(&out, AIPLAT_MSG_VOICE_RESPONSE);
  if (!st)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (!st)
    st =
        aiplat_msg_set_string(out, "transcript", aiplat_stt_result_text(heard));
  if (!st) st = aiplat_msg_set_string(out, "text", text);
  if (!st) st = aiplat_msg_set_bytes(out, "audio", audio, alen);
  if (!st) st = aiplat_msg_set_string(out, "audio_format", fmt);
  if (!st) st = aiplat_msg_set_string(out, "conversation_id", conv);
  if (!st) st = copy_sources(cresp, out);
  if (!st) aiplat_request_publish(req, subject, out);
  if (!st) st = aiplat_request_respond(req, out);
out:
  aiplat_stt_result_destroy(heard);
  aiplat_msg_destroy(creq);
  aiplat_msg_destroy(cresp);
  aiplat_msg_destroy(out);
  aiplat_free(audio);
  aiplat_free(ctype);
  aiplat_free(subject);
  aiplat_free(user);
  free(speak);
  return st;
}

static bool stt_check(char *msg, size_t len, void *ud) {
  bool ok = aiplat_stt_health(((app *)ud)->stt) == AIPLAT_OK;
  if (!ok) aiplat_stt_last_error(((app *)ud)->stt, msg, len);
  return ok;
}

static bool tts_check(char *msg, size_t len, void *ud) {
  bool ok = aiplat_tts_health(((app *)ud)->tts) == AIPLAT_OK;
  if (!ok) aiplat_tts_last_error(((app *)ud)->tts, msg, len);
  return ok;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    bool help = !strcmp(argv[1], "--help");
    if (!strcmp(argv[1], "--version"))
      return printf(NAME " %s\n", aiplat_version_string()) < 0;
    fputs(usage, help ? stdout : stderr);
    return help ? 0 : 2;
  }
  aiplat_config *cfg = NULL;
  aiplat_service *svc = NULL;
  app a = {0};
  int64_t iv = 0;
  char err[512];
  int rc = 2;
  aiplat_status st = aiplat_config_create(&cfg);
  if (!st) st = aiplat_config_validate(cfg);
  if (!st) st = aiplat_config_get_duration_ms(cfg, "READY_CHECK_INTERVAL", &iv);
  bool bad_iv = !st && iv < 10;
  if (bad_iv) st = AIPLAT_ERR_CONFIG;
  if (!st) st = aiplat_chat_create(&a.chat, cfg);
  if (!st) st = aiplat_stt_create(&a.stt, cfg);
  if (!st) st = aiplat_tts_create(&a.tts, cfg);
  if (!st)
    st = aiplat_service_create(&svc, cfg, NAME, aiplat_version_string(),
                               "Spoken questions answered with speech");
  if (!st)
    st = aiplat_service_add_endpoint(
        svc, "voice", aiplat_subject_voice_user_request_filter(), NAME,
        AIPLAT_MSG_VOICE_REQUEST, AIPLAT_MSG_VOICE_RESPONSE, on_voice, &a);
  if (!st) st = aiplat_chat_set_bus(a.chat, aiplat_service_bus(svc));
  if (!st) st = aiplat_chat_add_checks(a.chat, aiplat_service_health(svc), iv);
  if (!st)
    st = aiplat_health_add_cached_check(aiplat_service_health(svc), "stt",
                                        stt_check, &a, iv, 5000);
  if (!st)
    st = aiplat_health_add_cached_check(aiplat_service_health(svc), "tts",
                                        tts_check, &a, iv, 5000);
  if (st == AIPLAT_OK) {
    rc = 0;
    st = aiplat_service_run(svc); /* until SIGTERM */
    if (st != AIPLAT_OK) rc = 1;
  }
  if (st != AIPLAT_OK) {
    if (bad_iv)
      snprintf(err, sizeof err,
               "config: READY_CHECK_INTERVAL must be at least 10ms");
    else
      aiplat_error_last(err, sizeof err);
    fprintf(stderr, NAME ": %s\n", err);
  }
  aiplat_service_destroy(svc); /* first: its health checks use the clients */
  aiplat_chat_destroy(a.chat);
  aiplat_stt_destroy(a.stt);
  aiplat_tts_destroy(a.tts);
  aiplat_config_destroy(cfg);
  return rc;
}
