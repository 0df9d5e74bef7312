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

int main(int argc, char **argv) {
  int rc =
      svcu_args(argc, argv, NAME,
                "NATS request/reply bridge to a text-to-speech server.", HELP);
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
