/* echo_service: the smallest complete libaiplat service.
 *
 * Shows: a service handle, one typed endpoint (ChatRequest -> ChatResponse),
 * an error reply for a bad request, the request's id and trace in logs, and
 * a graceful shutdown on SIGTERM/SIGINT. Configuration comes from the
 * environment: NATS_URL, HEALTH_PORT, WORKERS, SHUTDOWN_GRACE, ...
 *
 *   NATS_URL=nats://127.0.0.1:4222 HEALTH_PORT=8081 ./echo_service
 *   ./requester demo.echo "hello"
 *
 * The header `Echo-Delay-Ms: N` makes the handler sleep N ms first (to see
 * graceful shutdown keep an in-flight request). */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static aiplat_status on_echo(aiplat_request *req, void *user_data) {
  (void)user_data;
  aiplat_msg *in = aiplat_request_message(req);
  const char *text = NULL;
  aiplat_msg_get_string(in, "message", &text);
  if (!text || !*text)
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT, "message is empty");

  const char *delay = aiplat_request_header(req, "Echo-Delay-Ms");
  if (delay) {
    long ms = strtol(delay, NULL, 10);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }

  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_CHAT_RESPONSE);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(out, "text", text);
  if (st == AIPLAT_OK) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  aiplat_log(AIPLAT_LOG_INFO, "echoed");
  return st;
}

int main(void) {
  aiplat_config *cfg = NULL;
  aiplat_service *svc = NULL;
  char err[512];
  if (aiplat_config_create(&cfg) != AIPLAT_OK ||
      aiplat_service_create(&svc, cfg, "echo", "1.0.0", "echoes chat messages") != AIPLAT_OK ||
      aiplat_service_add_endpoint(svc, "echo", "demo.echo", NULL, AIPLAT_MSG_CHAT_REQUEST,
                                  AIPLAT_MSG_CHAT_RESPONSE, on_echo, NULL) != AIPLAT_OK) {
    aiplat_error_last(err, sizeof err);
    fprintf(stderr, "echo_service: %s\n", err);
    aiplat_config_destroy(cfg);
    return 2;
  }
  aiplat_status st = aiplat_service_run(svc); /* until SIGTERM / SIGINT */
  if (st != AIPLAT_OK) {
    aiplat_service_last_error(svc, err, sizeof err);
    fprintf(stderr, "echo_service: %s\n", err);
  }
  aiplat_service_destroy(svc);
  aiplat_config_destroy(cfg);
  return st == AIPLAT_OK ? 0 : 1;
}
