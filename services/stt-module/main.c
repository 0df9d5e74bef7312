/* stt-module: NATS request/reply bridge to an OpenAI-compatible
 * speech-to-text server (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.stt.transcribe   TranscribeRequest -> TranscribeResponse
 *
 * Configured by the environment only: NATS_*, HEALTH_*, WORKERS,
 * REQUEST_TIMEOUT, SHUTDOWN_GRACE, STT_URL, STT_MODEL, STT_API_KEY,
 * STT_API, STT_LANGUAGE, STT_RESPONSE_FORMAT, HTTP_*.
 * All the request handling is the library's (aiplat/voice.h); this is
 * its service. */
#include <stdio.h>

#include "svcutil.h"

#define NAME "stt-module"

static const char ABOUT[] =
    "Bridges NATS to a speech-to-text server: a TranscribeRequest on\n"
    "ai.stt.transcribe is sent to STT_URL (POST /v1/audio/transcriptions, or\n"
    "/inference with STT_API=whispercpp) and answered with a\n"
    "TranscribeResponse (text, language, duration, segments), or with its\n"
    "error set when the audio is empty, of a format the server refuses, or\n"
    "the server fails. Replicas share the subject through the queue group\n"
    "stt-module. /ready checks NATS and the STT server.\n"
    "\n"
    "Configured by the environment only: the settings below (NAME_FILE\n"
    "instead of NAME reads a secret from a file). A wrong setting stops the\n"
    "program at start with one line naming it (exit status 2); SIGTERM or\n"
    "SIGINT shut it down gracefully.\n";

static const char *const SETTINGS[] = {
    "STT_URL", "STT_MODEL", "STT_API_KEY", "STT_API", "STT_LANGUAGE",
    "STT_RESPONSE_FORMAT", "HTTP_CONNECT_TIMEOUT", "HTTP_TIMEOUT",
    "HTTP_MAX_RETRIES", "HTTP_CA_FILE", "SERVICE_NAME", SVCU_COMMON_SETTINGS,
    NULL};

static const svcu_help HELP = {
    "NATS request/reply bridge to a speech-to-text server.", ABOUT, SETTINGS};

int main(int argc, char **argv) {
  int rc = svcu_args(argc, argv, NAME, &HELP);
  if (rc >= 0) return rc;
  svcu_block_signals();
  aiplat_config *cfg = svcu_config(NAME);
  if (!cfg) return SVCU_EXIT_CONFIG;
  aiplat_stt_endpoint *ep = NULL;
  aiplat_service *svc = NULL;
  if (aiplat_stt_endpoint_create(&ep, cfg) != AIPLAT_OK ||
      aiplat_service_create(&svc, cfg, svcu_service_name(cfg, NAME),
                            AIPLAT_VERSION_STRING,
                            "speech-to-text bridge") != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_CONFIG;
  }
  if (rc < 0 &&
      (aiplat_service_add_endpoint(
           svc, "transcribe", aiplat_subject_stt_transcribe(), NULL,
           AIPLAT_MSG_TRANSCRIBE_REQUEST, AIPLAT_MSG_TRANSCRIBE_RESPONSE,
           aiplat_stt_handle_request, ep) != AIPLAT_OK ||
       aiplat_stt_endpoint_add_checks(ep, aiplat_service_health(svc)) !=
           AIPLAT_OK))
    rc = SVCU_EXIT_FAILURE;
  if (rc == SVCU_EXIT_FAILURE) svcu_last_error_line(NAME);
  if (rc < 0) rc = svcu_run(svc, NAME); /* until SIGTERM */
  aiplat_service_destroy(svc);          /* first: its readiness check uses ep */
  aiplat_stt_endpoint_destroy(ep);
  aiplat_config_destroy(cfg);
  return rc;
}
