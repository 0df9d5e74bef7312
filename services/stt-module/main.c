/* stt-module: NATS request/reply bridge to an OpenAI-compatible
 * speech-to-text server (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.stt.transcribe   TranscribeRequest -> TranscribeResponse
 *
 * Configured by the environment only: NATS_*, HEALTH_*, WORKERS,
 * REQUEST_TIMEOUT, SHUTDOWN_GRACE, STT_URL, STT_MODEL, STT_API_KEY,
 * STT_API, STT_LANGUAGE, STT_RESPONSE_FORMAT, HTTP_*.
 * All the request handling is the library's (aiplat/voice.h); this is
 * its service. Start-up and exit statuses: docs/exit-status.md. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>

#include "../svchelp.h"

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
    "program at start with one line naming it (exit status 4); SIGTERM or\n"
    "SIGINT shut it down gracefully.\n";

static const char *const SETTINGS[] = {
    "STT_URL", "STT_MODEL", "STT_API_KEY", "STT_API", "STT_LANGUAGE",
    "STT_RESPONSE_FORMAT", "HTTP_CONNECT_TIMEOUT", "HTTP_TIMEOUT",
    "HTTP_MAX_RETRIES", "HTTP_CA_FILE", "SERVICE_NAME", SVCU_COMMON_SETTINGS,
    NULL};

static const svcu_help HELP = {
    "NATS request/reply bridge to a speech-to-text server.", ABOUT, SETTINGS};

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
  aiplat_stt_endpoint *ep = NULL;
  aiplat_service *svc = NULL;
  const char *name = NULL; /* SERVICE_NAME, else NAME */
  aiplat_status st = aiplat_config_create(&cfg);
  if (!st) st = aiplat_config_validate(cfg);
  if (!st) st = aiplat_config_get_string(cfg, "SERVICE_NAME", &name);
  if (!st) st = aiplat_stt_endpoint_create(&ep, cfg);
  if (!st)
    st = aiplat_service_create(&svc, cfg, name && *name ? name : NAME,
                               aiplat_version_string(), "speech-to-text bridge");
  if (!st)
    st = aiplat_service_add_endpoint(svc, "transcribe", aiplat_subject_stt_transcribe(), NULL,
                                     AIPLAT_MSG_TRANSCRIBE_REQUEST,
                                     AIPLAT_MSG_TRANSCRIBE_RESPONSE,
                                     aiplat_stt_handle_request, ep);
  if (!st) st = aiplat_stt_endpoint_add_checks(ep, aiplat_service_health(svc));
  if (!st) st = aiplat_service_start(svc); /* NATS, the health port */
  int rc = st ? die() : serve(svc);        /* until SIGTERM */
  aiplat_service_destroy(svc); /* first: its readiness check uses ep */
  aiplat_stt_endpoint_destroy(ep);
  aiplat_config_destroy(cfg);
  return rc;
}
