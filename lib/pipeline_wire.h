/* The wire formats of Argo Workflows' and Kubeflow Pipelines' REST APIs:
 * name checks, request bodies, answer parsing, error bodies. Pure functions
 * (no I/O), so that every shape can be tested without a server. Shapes and
 * their sources: docs/decisions/0012-pipeline-engines.md. Internal. */
#ifndef AIPLAT_PIPELINE_WIRE_H
#define AIPLAT_PIPELINE_WIRE_H

#include <jansson.h>

#include "aiplat/pipeline.h"
#include "internal.h"

/* Limits of what we send. */
#define AIP_PIPE_MAX_KEY 128
#define AIP_PIPE_MAX_VALUE (256 * 1024)
#define AIP_PIPE_MAX_BODY (1024 * 1024)

/* ---- names ---------------------------------------------------------------
 * Each returns true when @s is acceptable; on false, @why (may be NULL)
 * gets a static reason. */

/* A Kubernetes namespace: a DNS-1123 label, 1..63 of [a-z0-9-], alnum at
 * both ends. */
bool aip_pipe_valid_namespace(const char *s, const char **why);
/* An Argo WorkflowTemplate or Workflow name: a DNS-1123 subdomain, up to
 * 253 bytes of dot-separated labels. */
bool aip_pipe_valid_k8s_name(const char *s, const char **why);
/* A Kubeflow pipeline name or run id: 1..128 of [A-Za-z0-9._-], no "..". */
bool aip_pipe_valid_kfp_id(const char *s, const char **why);
/* A parameter key: 1..128 of [A-Za-z0-9_-]. */
bool aip_pipe_valid_param_key(const char *s, const char **why);

/* Append @s to @b percent-encoded for a path segment or a query value
 * (everything but RFC 3986's unreserved characters). */
bool aip_pipe_escape(aip_buf *b, const char *s);

/* ---- requests ------------------------------------------------------------ */

/* Argo's WorkflowSubmitRequest from a WorkflowTemplate:
 * {"namespace","resourceKind":"WorkflowTemplate","resourceName",
 *  "submitOptions":{"parameters":["k=v",...]}}. NULL on ENOMEM or a value
 * that is not UTF-8 (@bad_index gets its index, else -1). */
json_t *aip_pipe_argo_submit_body(const char *ns, const char *tmpl,
                                  const char *const *keys,
                                  const char *const *values, size_t n,
                                  long *bad_index);

/* Kubeflow's Run for POST /apis/v2beta1/runs:
 * {"display_name","pipeline_version_reference":{"pipeline_id"},
 *  "runtime_config":{"parameters":{k:v,...}}}. Same failure rules.
 * @pipeline_id may be NULL: an empty reference, for aip_pipe_kfp_run_ref()
 * to fill once the id is known. */
json_t *aip_pipe_kfp_run_body(const char *display_name, const char *pipeline_id,
                              const char *const *keys,
                              const char *const *values, size_t n,
                              long *bad_index);

/* Set the Run's pipeline_version_reference to {"pipeline_id"} and, unless
 * @version_id is NULL (the latest version), "pipeline_version_id". */
bool aip_pipe_kfp_run_ref(json_t *run, const char *pipeline_id,
                          const char *version_id);

/* The filter of ListPipelineVersions for a version name (the v2beta1
 * Filter as protojson: {"predicates":[{"key":"name","operation":"EQUALS",
 * "string_value":NAME}]}); the caller URL-encodes its text. */
json_t *aip_pipe_kfp_version_filter(const char *version_name);

/* ---- answers -------------------------------------------------------------
 * Each parses a 2xx body; AIPLAT_ERR_PROTOCOL (with a message in @err)
 * when it is not JSON or lacks what we need. Unknown keys are ignored. */

/* A Workflow: metadata.name (copied into @name, size @namelen), the
 * phase and status.message. @name or @msg may be NULL. */
aiplat_status aip_pipe_argo_parse_workflow(aip_err *err, const char *body,
                                           size_t len, char *name,
                                           size_t namelen,
                                           aiplat_pipeline_phase *phase,
                                           char *msg, size_t msglen);

/* A Pipeline: its pipeline_id. */
aiplat_status aip_pipe_kfp_parse_pipeline(aip_err *err, const char *body,
                                          size_t len, char *id, size_t idlen);

/* A ListPipelineVersionsResponse: the pipeline_version_id of the version
 * named @version (name, else display_name, as servers before the name
 * field send it); NOT_FOUND naming @pipeline and @version when none is. */
aiplat_status aip_pipe_kfp_parse_versions(aip_err *err, const char *body,
                                          size_t len, const char *pipeline,
                                          const char *version, char *id,
                                          size_t idlen);

/* A PipelineVersion (GetPipelineVersion): its pipeline_version_id, which
 * must belong to @pipeline_id when the answer names its pipeline. */
aiplat_status aip_pipe_kfp_parse_version(aip_err *err, const char *body,
                                         size_t len, const char *pipeline_id,
                                         char *id, size_t idlen);

/* A Run: run_id, the phase, and a message (error.message, else the last
 * state_history error's message). */
aiplat_status aip_pipe_kfp_parse_run(aip_err *err, const char *body, size_t len,
                                     char *run_id, size_t run_id_len,
                                     aiplat_pipeline_phase *phase, char *msg,
                                     size_t msglen);

/* ---- phases and errors --------------------------------------------------- */

aiplat_pipeline_phase aip_pipe_argo_phase(const char *phase);
aiplat_pipeline_phase aip_pipe_kfp_state(const char *state);

/* The server's message from an error body: grpc-gateway's google.rpc.Status
 * {"code","message","details"} (and v1's "error" key), Kubeflow's
 * {"error_message","error_details"}, else the body as trimmed text.
 * Control characters become spaces; cut at @outlen - 1. @code_out (may be
 * NULL) gets the gRPC code, or -1. False when nothing usable is there. */
bool aip_pipe_error_message(const char *body, size_t len, char *out,
                            size_t outlen, int *code_out);

/* The status for an HTTP error status of these servers. */
aiplat_status aip_pipe_status_for_http(long http_status);

/* ---- handles ------------------------------------------------------------- */

/* Bound every call of @p's engines (pipeline.c): at most @timeout_ms a
 * call (connection included), at most @max_retries retries (-1: keep).
 * Before any call. */
aiplat_status aip_pipe_limit_http(aiplat_pipeline *p, int64_t timeout_ms,
                                  int max_retries);

#endif
