/**
 * @file aiplat/pipeline.h
 * @brief Start and follow runs on Argo Workflows and Kubeflow Pipelines.
 *
 * One handle talks to both engines over their REST APIs (decisions in
 * docs/decisions/0012-pipeline-engines.md):
 *  - Argo Workflows: a run is a Workflow submitted from a WorkflowTemplate
 *    (`POST /api/v1/workflows/{namespace}/submit`); its id is the
 *    Workflow's name, which is unique only within its namespace.
 *  - Kubeflow Pipelines (v2beta1): a run of the latest version of a
 *    pipeline found by name (`POST /apis/v2beta1/runs`); its id is the
 *    run's UUID.
 *
 * Settings (aiplat/config.h): ARGO_URL, ARGO_NAMESPACE, ARGO_TOKEN,
 * KUBEFLOW_URL, KUBEFLOW_TOKEN (each token also as NAME_FILE; a token
 * may be given with or without a leading "Bearer "), and the
 * HTTP_CONNECT_TIMEOUT, HTTP_TIMEOUT, HTTP_MAX_RETRIES, HTTP_CA_FILE and
 * HTTP_MAX_RESPONSE_BYTES of every HTTP client of the library. An engine
 * whose URL is unset is not configured: calls for it fail with
 * ::AIPLAT_ERR_CONFIG naming the variable.
 *
 * Names and ids are checked before any request is made: a namespace must
 * be a Kubernetes DNS label, an Argo template or workflow name a DNS
 * subdomain, a Kubeflow pipeline name or run id letters, digits, '.', '_'
 * and '-' without "..": anything else (a '/', a '?', a space, "..") is
 * ::AIPLAT_ERR_INVALID_ARGUMENT and nothing is sent.
 *
 * Errors: ::AIPLAT_ERR_NOT_FOUND (no such template, pipeline or run; the
 * detail carries the server's message), ::AIPLAT_ERR_AUTH (401/403),
 * ::AIPLAT_ERR_EXISTS (409, a name clash), ::AIPLAT_ERR_BAD_REQUEST (other
 * 4xx), ::AIPLAT_ERR_SERVER (5xx), ::AIPLAT_ERR_UNAVAILABLE (503),
 * ::AIPLAT_ERR_TIMEOUT (HTTP_TIMEOUT passed, or 504),
 * ::AIPLAT_ERR_CONNECTION, ::AIPLAT_ERR_PROTOCOL (an answer that is not the
 * engine's JSON), ::AIPLAT_ERR_CANCELLED (aiplat_pipeline_close()). Status
 * reads are retried on connection failures, 429, 502, 503 and 504 as
 * HTTP_MAX_RETRIES says; a submit never is.
 *
 * Thread: a handle may be used by several threads at once; each call makes
 * its own requests. The handle's last error is per handle, the thread's
 * record (aiplat_error_last()) per thread.
 */
#ifndef AIPLAT_PIPELINE_H
#define AIPLAT_PIPELINE_H

#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aiplat_pipeline aiplat_pipeline;

/** The workflow engines. The numbers are part of the ABI. */
typedef enum aiplat_pipeline_engine {
  AIPLAT_PIPELINE_ARGO = 1,    /**< Argo Workflows server */
  AIPLAT_PIPELINE_KUBEFLOW = 2 /**< Kubeflow Pipelines API, v2beta1 */
} aiplat_pipeline_engine;

/**
 * A run's phase, the same for both engines. The numbers are part of the
 * ABI; new phases are only appended.
 *
 * Argo: no phase yet and `Pending` are PENDING, `Running` RUNNING,
 * `Succeeded`, `Failed`, `Error` the terminal phases of the same names.
 * Kubeflow: `PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED`, `SKIPPED`,
 * `CANCELING` (CANCELLING), `CANCELED` (CANCELLED), `PAUSED`. Anything
 * else (`RUNTIME_STATE_UNSPECIFIED`, a phase a newer server invents) is
 * UNKNOWN, which is not terminal.
 */
typedef enum aiplat_pipeline_phase {
  AIPLAT_PIPELINE_UNKNOWN = 0,    /**< not known (yet); not terminal */
  AIPLAT_PIPELINE_PENDING = 1,    /**< accepted, not started */
  AIPLAT_PIPELINE_RUNNING = 2,    /**< started */
  AIPLAT_PIPELINE_SUCCEEDED = 3,  /**< terminal: finished well */
  AIPLAT_PIPELINE_FAILED = 4,     /**< terminal: a step failed */
  AIPLAT_PIPELINE_ERROR = 5,      /**< terminal: the engine could not run it */
  AIPLAT_PIPELINE_CANCELLED = 6,  /**< terminal: stopped on request */
  AIPLAT_PIPELINE_SKIPPED = 7,    /**< terminal: not run (e.g. cached) */
  AIPLAT_PIPELINE_CANCELLING = 8, /**< being stopped; not terminal */
  AIPLAT_PIPELINE_PAUSED = 9      /**< paused, may resume; not terminal */
} aiplat_pipeline_phase;

/** Longest run id the library returns (a Kubernetes name), in bytes. */
#define AIPLAT_PIPELINE_MAX_RUN_ID 253
/** Most parameters one submit takes. */
#define AIPLAT_PIPELINE_MAX_PARAMS 256

/**
 * Create a handle from @p cfg (NULL: a configuration read from the
 * process environment). Neither engine needs to be configured here; an
 * invalid setting that is present (a malformed ARGO_URL, an unreadable
 * ARGO_TOKEN_FILE) is ::AIPLAT_ERR_CONFIG naming the variable. @p cfg is
 * only read during the call. Free the handle with aiplat_pipeline_destroy().
 */
AIPLAT_API aiplat_status aiplat_pipeline_create(aiplat_pipeline **out,
                                                aiplat_config *cfg);

/**
 * Stop every request of the handle in progress, now and later: they
 * return ::AIPLAT_ERR_CANCELLED. Any thread; the handle stays valid until
 * destroyed. NULL is a no-op.
 */
AIPLAT_API void aiplat_pipeline_close(aiplat_pipeline *p);

/** Destroy a handle (no call may be in progress on it). NULL is a no-op. */
AIPLAT_API void aiplat_pipeline_destroy(aiplat_pipeline *p);

/** True when @p engine's URL is configured in this handle. */
AIPLAT_API bool aiplat_pipeline_engine_configured(
    aiplat_pipeline *p, aiplat_pipeline_engine engine);

/**
 * Start a run.
 *
 * @p pipeline is the Argo WorkflowTemplate's name or the Kubeflow
 * pipeline's name (the latest version runs). @p ns is the Argo namespace
 * (NULL: ARGO_NAMESPACE) or the Kubeflow namespace the pipeline is looked
 * up in (NULL: none, as in single-user installations). @p keys and
 * @p values are @p n parameters (both may be NULL when @p n is 0): keys of
 * letters, digits, '_' and '-', unique; values any UTF-8 text, sent as
 * strings, byte for byte. On success *@p run_id_out is the new run's id,
 * to free with aiplat_free().
 *
 * The submit request is sent once, never retried: a retry after an
 * answer that was lost could start the run twice. (For Kubeflow the
 * pipeline lookup before it is a read, retried like one.)
 */
AIPLAT_API aiplat_status aiplat_pipeline_submit(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *pipeline,
    const char *ns, const char *const *keys, const char *const *values,
    size_t n, char **run_id_out);

/**
 * Read a run's phase.
 *
 * @p run_id is what aiplat_pipeline_submit() returned; @p ns the Argo
 * namespace (NULL: ARGO_NAMESPACE; ignored for Kubeflow). *@p phase_out
 * gets the phase. When @p msg is not NULL, the engine's message about the
 * run (why it failed, mostly; often empty) is copied there, always
 * NUL-terminated and cut at @p msglen - 1 bytes.
 */
AIPLAT_API aiplat_status aiplat_pipeline_status(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *run_id,
    const char *ns, aiplat_pipeline_phase *phase_out, char *msg, size_t msglen);

/** True for the phases a run never leaves (SUCCEEDED to SKIPPED). */
AIPLAT_API bool aiplat_pipeline_phase_is_terminal(aiplat_pipeline_phase phase);

/** "pending", "running", ... ("unknown" for values out of range); static. */
AIPLAT_API const char *aiplat_pipeline_phase_str(aiplat_pipeline_phase phase);

/** "argo" or "kubeflow" (NULL for values out of range); static. */
AIPLAT_API const char *aiplat_pipeline_engine_str(
    aiplat_pipeline_engine engine);

/* (kept on the AIPLAT_API line for tests/check-exports.sh) */
/* clang-format off */
/**
 * Parse an engine name as a PipelineTrigger carries it: "argo" or
 * "kubeflow" (also "kfp"), any case. Anything else is
 * ::AIPLAT_ERR_INVALID_ARGUMENT.
 */
AIPLAT_API aiplat_status aiplat_pipeline_engine_parse(
    const char *name, aiplat_pipeline_engine *out);
/* clang-format on */

/** Copy the detail of the handle's last failure into @p buf. */
AIPLAT_API aiplat_status aiplat_pipeline_last_error(aiplat_pipeline *p,
                                                    char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_PIPELINE_H */
