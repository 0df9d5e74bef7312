/* tts-module: NATS request/reply bridge to an OpenAI-compatible
 * text-to-speech server (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.tts.synthesize   SynthesizeRequest -> SynthesizeResponse
 *
 * Configured by the environment only: NATS_*, HEALTH_*, WORKERS,
 * REQUEST_TIMEOUT, SHUTDOWN_GRACE, TTS_URL, TTS_MODEL, TTS_VOICE,
 * TTS_API_KEY, TTS_FORMAT, TTS_SPEED, HTTP_*.
 * All the request handling is the library's (aiplat/voice.h); this is
 * its service. */
#include <stdio.h>

#include "svcutil.h"

#define NAME "tts-module"

static const char ABOUT[] =
    "Bridges NATS to a text-to-speech server: a SynthesizeRequest on\n"
    "ai.tts.synthesize is sent to TTS_URL (POST /v1/audio/speech) and\n"
    "answered with a SynthesizeResponse (audio, content_type), or with its\n"
    "error set when the text is empty or longer than 4096 characters, the\n"
    "voice, format or speed is refused, the audio would not fit in one NATS\n"
    "message (TOO_LARGE), or the server fails. Replicas share the subject\n"
    "through the queue group tts-module. /ready checks NATS and the TTS\n"
    "server. TTS_VOICE, TTS_FORMAT and TTS_SPEED are the defaults of a\n"
    "request that does not name its own.\n"
    "\n"
    "Configured by the environment only: the settings below (NAME_FILE\n"
    "instead of NAME reads a secret from a file). A wrong setting stops the\n"
    "program at start with one line naming it (exit status 2); SIGTERM or\n"
    "SIGINT shut it down gracefully.\n";

static const char *const SETTINGS[] = {
    "TTS_URL", "TTS_MODEL", "TTS_VOICE", "TTS_API_KEY", "TTS_FORMAT",
    "TTS_SPEED", "HTTP_CONNECT_TIMEOUT", "HTTP_TIMEOUT", "HTTP_MAX_RETRIES",
    "HTTP_CA_FILE", "SERVICE_NAME", SVCU_COMMON_SETTINGS, NULL};

static const svcu_help HELP = {
    "NATS request/reply bridge to a text-to-speech server.", ABOUT, SETTINGS};

int main(int argc, char **argv) {
  int rc = svcu_args(argc, argv, NAME, &HELP);
  if (rc >= 0) return rc;
  svcu_block_signals();
  aiplat_config *cfg = svcu_config(NAME);
  if (!cfg) return SVCU_EXIT_CONFIG;
  aiplat_tts_endpoint *ep = NULL;
  aiplat_service *svc = NULL;
  if (aiplat_tts_endpoint_create(&ep, cfg) != AIPLAT_OK ||
      aiplat_service_create(&svc, cfg, svcu_service_name(cfg, NAME),
                            AIPLAT_VERSION_STRING,
                            "text-to-speech bridge") != AIPLAT_OK) {
    svcu_last_error_line(NAME);
    rc = SVCU_EXIT_CONFIG;
  }
  if (rc < 0 &&
      aiplat_tts_endpoint_set_bus(ep, aiplat_service_bus(svc)) != AIPLAT_OK)
    rc = SVCU_EXIT_FAILURE;
  if (rc < 0 &&
      (aiplat_service_add_endpoint(
           svc, "synthesize", aiplat_subject_tts_synthesize(), NULL,
           AIPLAT_MSG_SYNTHESIZE_REQUEST, AIPLAT_MSG_SYNTHESIZE_RESPONSE,
           aiplat_tts_handle_request, ep) != AIPLAT_OK ||
       aiplat_tts_endpoint_add_checks(ep, aiplat_service_health(svc)) !=
           AIPLAT_OK))
    rc = SVCU_EXIT_FAILURE;
  if (rc == SVCU_EXIT_FAILURE) svcu_last_error_line(NAME);
  if (rc < 0) rc = svcu_run(svc, NAME); /* until SIGTERM */
  aiplat_service_destroy(svc);          /* first: its readiness check uses ep */
  aiplat_tts_endpoint_destroy(ep);
  aiplat_config_destroy(cfg);
  return rc;
}
