/* voice-assistant: answers spoken questions on ai.voice.user.*.request:
 * speech-to-text, the chat pipeline (retrieval + LLM, aiplat/chat.h), then
 * text-to-speech; the VoiceResponse goes to the reply subject and to
 * ai.voice.response.{requestId}
 * (docs/decisions/0016-chat-and-voice-services.md). All the logic is the
 * library's voice pipeline (aiplat/voice.h); this is its service.
 * Start-up and exit statuses: docs/exit-status.md. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>

#include "../svchelp.h"

#define NAME "voice-assistant"

static const char ABOUT[] =
    "Answers VoiceRequest messages on ai.voice.user.*.request (queue "
    "group\n" NAME
    "): the audio is transcribed, answered by the chat pipeline\n"
    "(retrieval + LLM) and the answer spoken; the VoiceResponse goes to the\n"
    "reply subject and ai.voice.response.{requestId}.\n"
    "\n"
    "Configured by the environment only: the settings below (NAME_FILE\n"
    "instead of NAME reads a secret from a file); every setting is in\n"
    "README.md, \"Configuration\". A wrong setting stops the program at\n"
    "start with one line naming it (exit status 4).\n";

static const char *const SETTINGS[] = {
    "STT_URL", "STT_MODEL", "STT_API_KEY", "STT_API", "STT_LANGUAGE",
    "TTS_URL", "TTS_MODEL", "TTS_VOICE", "TTS_API_KEY", "TTS_FORMAT",
    "TTS_SPEED", "VLLM_URL", "LLM_MODEL", "LLM_API_KEY", "LLM_MAX_TOKENS",
    "LLM_TIMEOUT", "EMBEDDINGS_URL", "EMBEDDINGS_MODEL", "RERANKER_URL",
    "VECTOR_STORE", "VECTOR_STORE_PATH", "MILVUS_HOST", "RAG_TOP_K",
    "RAG_CONTEXT_CHARS", "SYSTEM_PROMPT", "CHAT_HISTORY_TURNS",
    "READY_CHECK_INTERVAL", SVCU_COMMON_SETTINGS, NULL};

static const svcu_help HELP = {
    "Voice service: speech to text, retrieval, LLM, text to speech.", ABOUT,
    SETTINGS};

/* One line on stderr with the thread's last error; its exit status
 * (docs/exit-status.md). */
static int die(void) {
  char err[512];
  aiplat_status st = aiplat_error_last(err, sizeof err);
  for (char *p = err; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  fprintf(stderr, NAME ": %s\n", *err ? err : aiplat_status_str(st));
  return st ? aiplat_status_exit_code(st) : AIPLAT_EXIT_FAILURE;
}

/* Serve until SIGTERM or SIGINT: 0, or 1 when the shutdown was not clean. */
static int serve(aiplat_service *svc) {
  if (aiplat_service_run(svc) == AIPLAT_OK) return AIPLAT_EXIT_OK;
  char err[512];
  aiplat_service_last_error(svc, err, sizeof err);
  fprintf(stderr, NAME ": %s\n", err);
  return AIPLAT_EXIT_FAILURE;
}

int main(int argc, char **argv) {
  int rc0 = svcu_args(argc, argv, NAME, &HELP);
  if (rc0 >= 0) return rc0;
  aiplat_config *cfg = NULL;
  aiplat_service *svc = NULL;
  aiplat_voice *voice = NULL;
  const char *name = NULL;
  int64_t iv = 0;
  aiplat_status st = aiplat_config_create(&cfg);
  if (!st) st = aiplat_config_validate(cfg);
  if (!st) st = aiplat_config_get_string(cfg, "SERVICE_NAME", &name);
  if (!st) st = aiplat_config_get_duration_ms(cfg, "READY_CHECK_INTERVAL", &iv);
  int rc = -1;
  if (!st && iv < 10) { /* the probes' shortest interval */
    fputs(NAME ": config: READY_CHECK_INTERVAL must be at least 10ms\n", stderr);
    rc = AIPLAT_EXIT_CONFIG;
    st = AIPLAT_ERR_CONFIG;
  }
  if (!st) st = aiplat_voice_create(&voice, cfg);
  if (!st)
    st = aiplat_service_create(&svc, cfg, name && *name ? name : NAME,
                               aiplat_version_string(),
                               "Spoken questions answered with speech");
  if (!st)
    st = aiplat_service_add_endpoint(
        svc, "voice", aiplat_subject_voice_user_request_filter(), NAME,
        AIPLAT_MSG_VOICE_REQUEST, AIPLAT_MSG_VOICE_RESPONSE,
        aiplat_voice_handle_request, voice);
  if (!st) st = aiplat_voice_set_bus(voice, aiplat_service_bus(svc));
  if (!st) st = aiplat_voice_add_checks(voice, aiplat_service_health(svc), iv);
  if (!st) st = aiplat_service_start(svc); /* NATS, the health port */
  if (rc < 0) rc = st ? die() : serve(svc); /* until SIGTERM */
  aiplat_service_destroy(svc); /* first: its health checks use the pipeline */
  aiplat_voice_destroy(voice);
  aiplat_config_destroy(cfg);
  return rc;
}
