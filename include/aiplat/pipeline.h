/**
 * @file aiplat/pipeline.h
 * @brief Start and follow runs on Argo Workflows and Kubeflow Pipelines.
 *
 * One handle talks to both engines over their REST APIs (decisions in
 * docs/decisions/0012-pipeline-engines.md):
 *  - Argo Workflows: a run is a Workflow submitted from a WorkflowTemplate
 *    (`POST /api/v1/workflows/{namespace}/submit`); its id is the
 *    Workflow's name, which is unique only within its namespace.
 *  - Kubeflow Pipelines (v2beta1): a run of a pipeline found by name, of
 *    its latest version or of one chosen per call
 *    (aiplat_pipeline_options_set_version()) (`POST /apis/v2beta1/runs`);
 *    its id is the run's UUID.
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
 * record (aiplat_error_last()) per thread. The blocking calls run on the
 * calling thread (they wait for the asynchronous ones, and are refused on
 * the library's event loop thread); the asynchronous calls run on the
 * event loop thread, which also runs their completion callbacks.
 */
#ifndef AIPLAT_PIPELINE_H
#define AIPLAT_PIPELINE_H

#include "bus.h"
#include "call.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "service.h"

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
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_create(aiplat_pipeline **out,
                                                aiplat_config *cfg);

/**
 * Stop every request of the handle in progress, now and later: they
 * return ::AIPLAT_ERR_CANCELLED. Any thread; the handle stays valid until
 * destroyed. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_pipeline_close(aiplat_pipeline *p);

/**
 * Destroy a handle (no call may be in progress on it). NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_pipeline_destroy(aiplat_pipeline *p);

/**
 * True when @p engine's URL is configured in this handle.
 * @since 1.0
 */
AIPLAT_API bool aiplat_pipeline_engine_configured(
    aiplat_pipeline *p, aiplat_pipeline_engine engine);

/**
 * Start a run.
 *
 * @p pipeline is the Argo WorkflowTemplate's name or the Kubeflow
 * pipeline's name (the latest version runs; another version:
 * aiplat_pipeline_submit_async() with aiplat_pipeline_options_set_version()). @p ns is the Argo namespace
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
 * @since 1.0
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
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_status(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *run_id,
    const char *ns, aiplat_pipeline_phase *phase_out, char *msg, size_t msglen);

/* ---- per-call options and asynchronous forms ------------------------- */

/** What one call may choose instead of the handle's defaults. */
typedef struct aiplat_pipeline_options aiplat_pipeline_options;

/** Options that keep every default (ARGO_NAMESPACE, the latest version).
 * Free with aiplat_pipeline_options_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_options_create(
    aiplat_pipeline_options **out);

/**
 * Destroy options. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_pipeline_options_destroy(
    aiplat_pipeline_options *options);

/**
 * The namespace (copied): Argo's namespace of the template and the run,
 * Kubeflow's namespace the pipeline is looked up in. Must be a Kubernetes
 * DNS label (else ::AIPLAT_ERR_INVALID_ARGUMENT); NULL or "" restores the
 * default (ARGO_NAMESPACE; none for Kubeflow).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_options_set_namespace(
    aiplat_pipeline_options *options, const char *ns);

/**
 * The pipeline version to run, by name or id (copied); NULL or "" runs
 * the latest version. Kubeflow: the pipeline's version of that name, else
 * the one with that id (::AIPLAT_ERR_NOT_FOUND when it has neither);
 * letters, digits, '.', '_' and '-' without "..". Argo: WorkflowTemplates have no versions, so a submit
 * with a version is ::AIPLAT_ERR_INVALID_ARGUMENT and nothing is sent
 * (name the versioned template itself as the pipeline). Status calls
 * ignore it.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_options_set_version(
    aiplat_pipeline_options *options, const char *version);

/**
 * Completion of aiplat_pipeline_submit_async(). Runs once, on the
 * library's event loop thread, and must not block (no blocking library
 * call there: they fail with ::AIPLAT_ERR_INTERNAL). @p message (borrowed
 * for the callback) explains a failure, "" on success. @p run_id (borrowed
 * for the callback: copy it to keep it) is the new run's id on success,
 * NULL on failure.
 */
typedef void (*aiplat_pipeline_submit_done_fn)(aiplat_status status,
                                               const char *message,
                                               const char *run_id,
                                               void *user_data);

/**
 * aiplat_pipeline_submit() without waiting: returns at once, and @p done
 * gets the new run's id on the event loop thread, with @p user_data. The
 * names and parameters are checked and copied before this returns;
 * @p options (may be NULL: the defaults) are read before this returns.
 * @p call (may be NULL) carries the deadline and the cancel switch and
 * must outlive the call; the deadline bounds every request of the call
 * (for Kubeflow the pipeline and version lookups and the run's creation),
 * together with HTTP_TIMEOUT. The submit request is sent once: cancelled
 * or timed out after it was sent, the run may have started all the same.
 * On an error return nothing is called back and the handle's last error
 * has the detail.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_submit_async(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *pipeline,
    const char *const *keys, const char *const *values, size_t n,
    const aiplat_pipeline_options *options, aiplat_call *call,
    aiplat_pipeline_submit_done_fn done, void *user_data);

/**
 * Completion of aiplat_pipeline_status_async(). Runs once, on the
 * library's event loop thread, and must not block. @p message (borrowed)
 * explains a failure, "" on success. On success @p phase is the run's
 * phase and @p run_message (borrowed, never NULL) the engine's message
 * about the run (often ""); on failure ::AIPLAT_PIPELINE_UNKNOWN and "".
 */
typedef void (*aiplat_pipeline_status_done_fn)(aiplat_status status,
                                               const char *message,
                                               aiplat_pipeline_phase phase,
                                               const char *run_message,
                                               void *user_data);

/**
 * aiplat_pipeline_status() without waiting: returns at once, and @p done
 * gets the phase on the event loop thread, with @p user_data. @p run_id is
 * checked and copied before this returns; the namespace comes from
 * @p options (may be NULL: ARGO_NAMESPACE; ignored for Kubeflow). @p call
 * (may be NULL) carries the deadline and the cancel switch and must
 * outlive the call. On an error return nothing is called back.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_status_async(
    aiplat_pipeline *p, aiplat_pipeline_engine engine, const char *run_id,
    const aiplat_pipeline_options *options, aiplat_call *call,
    aiplat_pipeline_status_done_fn done, void *user_data);

/**
 * True for the phases a run never leaves (SUCCEEDED to SKIPPED).
 * @since 1.0
 */
AIPLAT_API bool aiplat_pipeline_phase_is_terminal(aiplat_pipeline_phase phase);

/**
 * The name of a phase: "pending", "running", ... ("unknown" for values
 * out of range); static.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_pipeline_phase_str(aiplat_pipeline_phase phase);

/**
 * The name of an engine: "argo" or "kubeflow" (NULL for values out of
 * range); static.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_pipeline_engine_str(
    aiplat_pipeline_engine engine);

/**
 * The phase as @p engine spells it on its wire ("Running" for Argo,
 * "RUNNING" for Kubeflow), for events that carry the engine's own name.
 * Phases an engine has no name for get one in its style (Argo
 * "Cancelled"; Kubeflow's ERROR is "FAILED", UNKNOWN
 * "RUNTIME_STATE_UNSPECIFIED", Argo's UNKNOWN ""). Static; NULL for an
 * unknown engine.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_pipeline_phase_engine_str(
    aiplat_pipeline_engine engine, aiplat_pipeline_phase phase);

/* (kept on the AIPLAT_API line for tests/check-exports.sh) */
/* clang-format off */
/**
 * Parse an engine name as a PipelineTrigger carries it: "argo" or
 * "kubeflow" (also "kfp"), any case. Anything else is
 * ::AIPLAT_ERR_INVALID_ARGUMENT.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_engine_parse(
    const char *name, aiplat_pipeline_engine *out);
/* clang-format on */

/**
 * Copy the detail of the handle's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_pipeline_last_error(aiplat_pipeline *p,
                                                    char *buf, size_t buflen);

/* ---- the pipeline-bridge endpoint ----------------------------------------
 *
 * What pipeline-bridge runs (docs/decisions/0017-bridges-and-cli.md): the
 * service is configuration, one endpoint handle, two endpoints and `run`:
 *
 *   aiplat_pipeline_endpoint_create(&ep, cfg);
 *   aiplat_service_add_endpoint(svc, "trigger",
 *       aiplat_subject_pipeline_trigger(), NULL,
 *       AIPLAT_MSG_PIPELINE_TRIGGER, AIPLAT_MSG_PIPELINE_STATUS,
 *       aiplat_pipeline_handle_trigger, ep);
 *   aiplat_service_add_endpoint(svc, "query",
 *       aiplat_subject_pipeline_query(), NULL,
 *       AIPLAT_MSG_PIPELINE_STATUS, AIPLAT_MSG_PIPELINE_STATUS,
 *       aiplat_pipeline_handle_query, ep);
 *   aiplat_pipeline_endpoint_set_bus(ep, aiplat_service_bus(svc));
 *   aiplat_pipeline_endpoint_add_checks(ep, aiplat_service_health(svc));
 *   aiplat_service_run(svc);
 *   aiplat_pipeline_endpoint_close(ep);   // before the bus goes
 *   aiplat_service_destroy(svc);
 *   aiplat_pipeline_endpoint_destroy(ep);
 *
 * Thread: the handlers check a request on the thread that calls them (a
 * delivery thread), hand it over with aiplat_request_defer() and return;
 * the engine calls run on the library's event loop thread, bounded by the
 * request's deadline and cancelled when the service stops past its grace
 * period, and their completions reply. The run watcher is a thread of the
 * endpoint; the readiness probes a thread each. */

/** The pipeline-bridge endpoint: the engines, the run watcher, probes. */
typedef struct aiplat_pipeline_endpoint aiplat_pipeline_endpoint;

/**
 * Create the pipeline-bridge endpoint from @p cfg (NULL: the environment):
 * a pipeline handle (the settings of aiplat_pipeline_create()), of which
 * at least one engine must be configured (`ARGO_URL` or `KUBEFLOW_URL`),
 * and the run watcher, which polls every watched run each
 * `PIPELINE_POLL_INTERVAL` (above 0; default 5 s), each poll bounded by
 * `HTTP_TIMEOUT` and at most 10 s. Values are copied; @p cfg may be
 * destroyed afterwards. No request is sent. Errors: ::AIPLAT_ERR_CONFIG
 * naming the variable (detail in the thread's last error). Free with
 * aiplat_pipeline_endpoint_destroy().
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_pipeline_endpoint_create(
    aiplat_pipeline_endpoint **out, aiplat_config *cfg);

/**
 * Give the endpoint the NATS connection its PipelineStatus events go out
 * on (`ai.pipeline.status.{runId}`; borrowed: it must stay valid until
 * aiplat_pipeline_endpoint_close()). Without one, events are logged and
 * dropped. Thread: any.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_pipeline_endpoint_set_bus(
    aiplat_pipeline_endpoint *ep, aiplat_bus *bus);

/**
 * Register the readiness checks `argo` and `kubeflow` (each configured
 * engine's) on @p health: reading a run that does not exist proves the
 * engine answers and takes the token. The probe runs on a thread of its
 * own every 10 s (3 s timeout, no retries), and again at once (at most
 * every 200 ms) when a request finds the engine unreachable, or reachable
 * while marked down. The checks never block. Once per endpoint
 * (::AIPLAT_ERR_EXISTS). The endpoint must outlive @p health's checks.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_pipeline_endpoint_add_checks(
    aiplat_pipeline_endpoint *ep, aiplat_health *health);

/**
 * Stop following runs: polls in flight are cancelled and waited for, the
 * runs still watched are logged, and no event is published afterwards, so
 * that the bus may be destroyed. Queries of runs the endpoint knows still
 * answer. Call it after aiplat_service_run() returns. Idempotent; NULL is
 * a no-op.
 * @since 1.0
 * @experimental
 */
AIPLAT_API void aiplat_pipeline_endpoint_close(aiplat_pipeline_endpoint *ep);

/**
 * Close (aiplat_pipeline_endpoint_close()), stop the probes and free. No
 * request may be running on the endpoint, and the health handle holding
 * its checks must be destroyed first. NULL is a no-op.
 * @since 1.0
 * @experimental
 */
AIPLAT_API void aiplat_pipeline_endpoint_destroy(aiplat_pipeline_endpoint *ep);

/**
 * The trigger endpoint: an ::aiplat_handler_fn for request type
 * ::AIPLAT_MSG_PIPELINE_TRIGGER and reply type ::AIPLAT_MSG_PIPELINE_STATUS
 * (`ai.pipeline.trigger`); @p user_data is the ::aiplat_pipeline_endpoint.
 * Checks: `engine` `argo` or `kubeflow` and configured
 * (::AIPLAT_ERR_NOT_SUPPORTED), `pipeline` not empty and, for Argo, a valid
 * subject token (::AIPLAT_ERR_INVALID_ARGUMENT), at most 256
 * `parameters` (::AIPLAT_ERR_TOO_LARGE), fewer than 256 runs watched
 * (::AIPLAT_ERR_UNAVAILABLE). Then an Argo WorkflowTemplate is submitted
 * or a Kubeflow run created (of `pipeline_version`, else the latest), in
 * `namespace` (else `ARGO_NAMESPACE`). The reply is a PipelineStatus with
 * the run id; the run's first event follows on
 * `ai.pipeline.status.{runId}`, then one per phase change until a
 * terminal phase (`terminal` set; a run lost to NOT_FOUND or AUTH, or to
 * 10 minutes of failed polls, ends with `error` set). Engine failures are
 * the reply's `error` (NOT_FOUND, AUTH, ... with the engine's message).
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_pipeline_handle_trigger(aiplat_request *req,
                                                        void *user_data);

/**
 * The query endpoint: an ::aiplat_handler_fn for request and reply type
 * ::AIPLAT_MSG_PIPELINE_STATUS (`ai.pipeline.query`); @p user_data is the
 * ::aiplat_pipeline_endpoint. The request's `run_id` (not empty) and
 * optional `engine` name the run; a run this endpoint started (watched,
 * or among the last 256 finished) is answered from memory, any other is
 * asked of the engines (the one named, else each configured one in turn).
 * No such run is ::AIPLAT_ERR_NOT_FOUND.
 * @since 1.0
 * @experimental
 */
AIPLAT_API aiplat_status aiplat_pipeline_handle_query(aiplat_request *req,
                                                      void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_PIPELINE_H */
