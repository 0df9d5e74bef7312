/* pipeline-bridge: starts Argo Workflows and Kubeflow Pipelines runs for
 * NATS requests and follows them (docs/decisions/0017-bridges-and-cli.md).
 *
 *   ai.pipeline.trigger        PipelineTrigger -> PipelineStatus (the run id)
 *   ai.pipeline.status.{run}   PipelineStatus events until a terminal phase
 *   ai.pipeline.query          PipelineStatus {run_id} -> PipelineStatus
 *
 * All the request handling and the run watcher are the library's
 * pipeline endpoint (aiplat/pipeline.h); this is its service. Start-up and
 * exit statuses: docs/exit-status.md. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>

#include "../svchelp.h"

#define NAME "pipeline-bridge"

static const char ABOUT[] =
    "Starts pipeline runs for NATS requests and follows them:\n"
    "  ai.pipeline.trigger       a PipelineTrigger (engine argo or kubeflow,\n"
    "                            pipeline, namespace, parameters) submits an\n"
    "                            Argo WorkflowTemplate or creates a Kubeflow\n"
    "                            run; the reply is a PipelineStatus with the\n"
    "                            run id\n"
    "  ai.pipeline.status.RUN    PipelineStatus events: the first at the\n"
    "                            trigger, then one per phase change (polled\n"
    "                            every PIPELINE_POLL_INTERVAL) until a\n"
    "                            terminal phase (terminal = true)\n"
    "  ai.pipeline.query         a PipelineStatus with run_id (and engine)\n"
    "                            is answered with the run's state\n"
    "\n"
    "Error replies: NOT_SUPPORTED (unknown or unconfigured engine),\n"
    "NOT_FOUND (no such template, pipeline or run: the engine's message),\n"
    "AUTH (token refused), UNAVAILABLE (256 runs watched already), ...\n"
    "/ready checks NATS and each configured engine; at least one of ARGO_URL\n"
    "and KUBEFLOW_URL must be set.\n"
    "\n"
    "Configured by the environment only: the settings below (NAME_FILE\n"
    "instead of NAME reads a secret from a file). A wrong setting stops the\n"
    "program at start with one line naming it (exit status 4); SIGTERM or\n"
    "SIGINT shut it down gracefully.\n";

static const char *const SETTINGS[] = {
    "ARGO_URL", "ARGO_NAMESPACE", "ARGO_TOKEN", "KUBEFLOW_URL",
    "KUBEFLOW_TOKEN", "PIPELINE_POLL_INTERVAL", "HTTP_CONNECT_TIMEOUT",
    "HTTP_TIMEOUT", "HTTP_MAX_RETRIES", "HTTP_CA_FILE", "SERVICE_NAME",
    SVCU_COMMON_SETTINGS, NULL};

static const svcu_help HELP = {
    "Starts Argo Workflows and Kubeflow Pipelines runs for NATS requests.",
    ABOUT, SETTINGS};

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
  aiplat_pipeline_endpoint *ep = NULL;
  aiplat_service *svc = NULL;
  const char *name = NULL; /* SERVICE_NAME, else NAME */
  aiplat_status st = aiplat_config_create(&cfg);
  if (!st) st = aiplat_config_validate(cfg);
  if (!st) st = aiplat_config_get_string(cfg, "SERVICE_NAME", &name);
  if (!st) st = aiplat_pipeline_endpoint_create(&ep, cfg);
  if (!st)
    st = aiplat_service_create(&svc, cfg, name && *name ? name : NAME,
                               aiplat_version_string(),
                               "Argo Workflows and Kubeflow Pipelines bridge");
  if (!st)
    st = aiplat_service_add_endpoint(
        svc, "trigger", aiplat_subject_pipeline_trigger(), NULL,
        AIPLAT_MSG_PIPELINE_TRIGGER, AIPLAT_MSG_PIPELINE_STATUS,
        aiplat_pipeline_handle_trigger, ep);
  if (!st)
    st = aiplat_service_add_endpoint(
        svc, "query", aiplat_subject_pipeline_query(), NULL,
        AIPLAT_MSG_PIPELINE_STATUS, AIPLAT_MSG_PIPELINE_STATUS,
        aiplat_pipeline_handle_query, ep);
  if (!st) st = aiplat_pipeline_endpoint_set_bus(ep, aiplat_service_bus(svc));
  if (!st)
    st = aiplat_pipeline_endpoint_add_checks(ep, aiplat_service_health(svc));
  if (!st) st = aiplat_service_start(svc); /* NATS, the health port */
  int rc = st ? die() : serve(svc);        /* until SIGTERM */
  aiplat_pipeline_endpoint_close(ep); /* no event once the bus is gone */
  aiplat_service_destroy(svc);        /* then its checks, which use ep */
  aiplat_pipeline_endpoint_destroy(ep);
  aiplat_config_destroy(cfg);
  return rc;
}
