/**
 * @file aiplat/health.h
 * @brief Health HTTP server (/health, /ready, /metrics) and metrics registry.
 *
 * A health handle runs a small HTTP server for Kubernetes probes and
 * Prometheus (docs/decisions/0007-health-and-metrics.md):
 *
 *  - `GET /health`  liveness: 200 `{"status":"ok"}` while the process runs.
 *    It does not depend on readiness checks (a lost dependency must not get
 *    every replica restarted); it fails (503) only after the program calls
 *    aiplat_health_set_live(h, false, ...) or while the server is stopping.
 *  - `GET /ready`   readiness: 200 when the manual gate
 *    (aiplat_health_set_ready()) is open and every registered check passes,
 *    else 503. The JSON body names every check with its result, e.g.
 *    `{"status":"not ready","checks":{"nats":
 *    {"ok":false,"message":"disconnected"}}}`.
 *  - `GET /metrics` the registry in the Prometheus text format 0.0.4.
 *
 * Other paths answer 404, other methods than GET and HEAD 405 with an
 * `Allow: GET, HEAD` header; request bodies are ignored.
 *
 * Settings (aiplat/config.h): `HEALTH_PORT` (default 8080; 0 lets the system
 * choose a free port, see aiplat_health_port()) and `HEALTH_BIND` (default
 * 0.0.0.0; an IPv4 or IPv6 literal, `::` accepts both families).
 *
 * Thread: aiplat_health_start(), aiplat_health_stop() and
 * aiplat_health_destroy() are called by the thread that owns the handle,
 * never at the same time. Every other function may be called from any
 * thread at any time between create and destroy. The server answers on one
 * internal thread of its own.
 */
#ifndef AIPLAT_HEALTH_H
#define AIPLAT_HEALTH_H

#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A health server with its checks and its metrics registry. */
typedef struct aiplat_health aiplat_health;

/** A metrics registry: families of counters, gauges and histograms. */
typedef struct aiplat_metrics aiplat_metrics;

/** One metric family (a name, a type, label names), owned by its registry. */
typedef struct aiplat_metric aiplat_metric;

/** Size of the message buffer a check receives, in bytes. */
#define AIPLAT_HEALTH_MESSAGE_MAX 256

/**
 * A readiness check.
 * @param msg       a buffer of @p msglen bytes (::AIPLAT_HEALTH_MESSAGE_MAX),
 *                  holding "" on entry; the check may write a short
 *                  NUL-terminated explanation (shown for passing and failing
 *                  checks; longer text is cut, invalid UTF-8 replaced)
 * @param msglen    size of @p msg
 * @param user_data as given when the check was added
 * @return true when the component is ready
 * A check added with aiplat_health_add_check() runs at each `/ready`
 * request, on the handle's thread for such checks, and must not block: it
 * reads a state (a flag, a connection status) and returns. `/ready` waits
 * 250 ms at most for these checks; one still running then counts as failing
 * ("no answer within 250 ms"). A check that must do I/O is added with
 * aiplat_health_add_cached_check() instead. A check must not call
 * aiplat_health_add_check(), _add_cached_check(), _stop() or _destroy().
 */
typedef bool (*aiplat_health_check_fn)(char *msg, size_t msglen,
                                       void *user_data);

/**
 * Create a health server (not started) configured from @p cfg.
 *
 * Reads `HEALTH_PORT` (0..65535) and `HEALTH_BIND` (IPv4 or IPv6 literal,
 * optionally in brackets) from @p cfg, or from the environment when @p cfg
 * is NULL; the values are copied, @p cfg may be destroyed afterwards. The
 * handle owns a metrics registry (aiplat_health_metrics()) with the
 * library's own families and the process metrics. The manual readiness gate
 * starts open and liveness starts healthy.
 * @return ::AIPLAT_ERR_CONFIG naming the variable when a setting is invalid,
 * ::AIPLAT_ERR_INVALID_ARGUMENT when @p out is NULL, ::AIPLAT_ERR_NO_MEMORY.
 * Free with aiplat_health_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_create(aiplat_health **out,
                                              aiplat_config *cfg);

/**
 * Stop the server if it runs, stop the checks' threads (waiting for a check
 * that is running to return), and free the handle with its registry.
 * Pointers to metric families of the registry become invalid. NULL is a
 * no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_health_destroy(aiplat_health *h);

/**
 * Bind the configured address and start answering on a thread of the
 * server's own. The port holds up to 4096 connections, at most half the
 * process's soft `RLIMIT_NOFILE`; when that limit is below 8320, it is first
 * raised to the hard limit, for the whole process (as Go's runtime does).
 * A full port drops the connection that has waited longest for a request.
 * @return ::AIPLAT_ERR_IO with a message naming the address (for example
 * "health: cannot listen on 127.0.0.1:8080: Address already in use") when
 * the address cannot be bound, ::AIPLAT_ERR_STATE when already started.
 * A stopped server may be started again.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_start(aiplat_health *h);

/**
 * Stop answering: open connections are closed, the listening socket is
 * released, and the server's thread has ended when this returns.
 * Registered checks and metrics are kept. Stopping a server that does not
 * run is a no-op returning ::AIPLAT_OK.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_stop(aiplat_health *h);

/**
 * The TCP port the server listens on (the system's choice when
 * `HEALTH_PORT` is 0), or 0 when it is not running or @p h is NULL.
 * @since 1.0
 */
AIPLAT_API int aiplat_health_port(aiplat_health *h);

/**
 * Register a readiness check that runs at every `/ready` request; see
 * ::aiplat_health_check_fn for what it may do and on which thread.
 * @param name 1 to 64 characters of `A-Z a-z 0-9 _ . -`, unique in @p h;
 *             copied; the key of the check in the `/ready` body
 * @param fn   the check; @p user_data is passed to it and must stay valid
 *             until aiplat_health_destroy() returns
 * @return ::AIPLAT_ERR_INVALID_ARGUMENT for a bad name or NULL @p fn,
 * ::AIPLAT_ERR_EXISTS when the name is taken, ::AIPLAT_ERR_INTERNAL when the
 * checks' thread cannot be started (with the first such check). A check that
 * takes more than 100 ms is reported once in the log.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_add_check(aiplat_health *h,
                                                 const char *name,
                                                 aiplat_health_check_fn fn,
                                                 void *user_data);

/**
 * Register a readiness check that may block (it probes a server, say): it
 * runs on a thread of its own every @p interval_ms, first right away, and
 * `/ready` reports its latest result without waiting for it. While no
 * result exists yet the check counts as failing ("not checked yet"); when a
 * run has lasted more than @p timeout_ms the check counts as failing
 * ("no answer within N ms") until it returns. The check should still bound
 * its own I/O: aiplat_health_destroy() waits for a running check to return.
 * @param interval_ms 10 .. 86400000
 * @param timeout_ms  1 .. 86400000
 * Other parameters and errors as aiplat_health_add_check(); a thread that
 * cannot be started gives ::AIPLAT_ERR_INTERNAL.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_add_cached_check(
    aiplat_health *h, const char *name, aiplat_health_check_fn fn,
    void *user_data, int64_t interval_ms, int64_t timeout_ms);

/**
 * Open or close the manual readiness gate. While it is closed `/ready`
 * answers 503 with `"reason"` set to @p reason (copied; NULL for none),
 * whatever the checks say: a service closes it while starting and when it
 * begins to drain on SIGTERM.
 * @return ::AIPLAT_ERR_NO_MEMORY when @p reason cannot be copied (the gate
 * is set all the same).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_set_ready(aiplat_health *h, bool ready,
                                                 const char *reason);

/**
 * Declare the process alive or not. After @p live is false `/health`
 * answers 503 `{"status":"failed","reason":...}` so that Kubernetes
 * restarts the container: for a state only a restart cures (a connection
 * closed for good after its reconnection attempts ran out, a worker
 * deadlock detected by a watchdog). @p reason is copied (NULL for none).
 * @return ::AIPLAT_ERR_NO_MEMORY when @p reason cannot be copied (the
 * state is set all the same).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_set_live(aiplat_health *h, bool live,
                                                const char *reason);

/**
 * The handle's metrics registry, rendered at `/metrics`. Borrowed: valid
 * until aiplat_health_destroy(). NULL when @p h is NULL.
 * @since 1.0
 */
AIPLAT_API aiplat_metrics *aiplat_health_metrics(aiplat_health *h);

/**
 * Copy the detail of the handle's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_health_last_error(aiplat_health *h, char *buf,
                                                  size_t buflen);

/* ---- metrics ----------------------------------------------------------- */

/**
 * Create a registry of one's own (a health handle already has one). It
 * renders the process metrics (`process_*`) besides its families.
 * Free with aiplat_metrics_destroy().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metrics_create(aiplat_metrics **out);

/**
 * Free a registry made by aiplat_metrics_create() with all its families.
 * Must not be given the registry of a health handle. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_metrics_destroy(aiplat_metrics *m);

/**
 * Register a counter family (a value that only goes up; by convention its
 * name ends in `_total`).
 * @param name        `[a-zA-Z_:][a-zA-Z0-9_:]*`, at most 200 bytes, not one
 *                    of the `process_*` names the registry renders itself
 * @param help        one line of help (copied, may be NULL or empty)
 * @param label_names @p nlabels names `[a-zA-Z_][a-zA-Z0-9_]*` not
 *                    starting with `__`, distinct, at most 16; copied
 * @param out         receives the family, owned by the registry
 * Registering the same name again with the same type, help and labels
 * returns the same family; anything else under a name in use (or one that
 * would collide with a histogram's `_bucket`, `_sum`, `_count` lines) is
 * ::AIPLAT_ERR_EXISTS. A family without labels shows its 0 right away.
 * At most 1000 families per registry (::AIPLAT_ERR_TOO_LARGE).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metrics_counter(
    aiplat_metrics *m, const char *name, const char *help,
    const char *const *label_names, size_t nlabels, aiplat_metric **out);

/**
 * Register a gauge family (a value that goes up and down); as counter.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metrics_gauge(
    aiplat_metrics *m, const char *name, const char *help,
    const char *const *label_names, size_t nlabels, aiplat_metric **out);

/**
 * Register a histogram family; as counter, plus:
 * @param buckets  @p nbuckets finite upper bounds, strictly increasing (the
 *                 `+Inf` bucket is implicit), at most 64; NULL and 0 give
 *                 the latency defaults in seconds (0.005, 0.01, 0.025, 0.05,
 *                 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
 * The label name `le` is reserved.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metrics_histogram(
    aiplat_metrics *m, const char *name, const char *help,
    const char *const *label_names, size_t nlabels, const double *buckets,
    size_t nbuckets, aiplat_metric **out);

/**
 * Add @p delta to the series of a counter (delta >= 0) or gauge for the
 * given label values (@p nvalues must equal the family's label count;
 * values are any UTF-8 up to 1024 bytes, copied). The series is created on
 * first use; at most 2000 series per family (::AIPLAT_ERR_TOO_LARGE: label
 * values must come from a small set, never from user ids).
 * @return ::AIPLAT_ERR_INVALID_ARGUMENT for a wrong count, a NaN or a
 * negative counter delta, ::AIPLAT_ERR_STATE for a histogram family.
 * Thread: any; lock-free once the series exists.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metric_add(aiplat_metric *metric,
                                           const char *const *label_values,
                                           size_t nvalues, double delta);

/**
 * Set a gauge series to @p value; as aiplat_metric_add().
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metric_set(aiplat_metric *metric,
                                           const char *const *label_values,
                                           size_t nvalues, double value);

/**
 * Record one observation @p value (not NaN) in a histogram series; as
 * aiplat_metric_add(), ::AIPLAT_ERR_STATE for other types.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metric_observe(aiplat_metric *metric,
                                               const char *const *label_values,
                                               size_t nvalues, double value);

/**
 * Render the registry in the Prometheus text format 0.0.4 (what `/metrics`
 * serves with `Content-Type: text/plain; version=0.0.4; charset=utf-8`).
 * @param out receives a NUL-terminated buffer; free it with aiplat_free()
 * @param len receives its length without the NUL (may be NULL)
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metrics_render(aiplat_metrics *m, char **out,
                                               size_t *len);

/**
 * Copy the detail of the registry's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_metrics_last_error(aiplat_metrics *m, char *buf,
                                                   size_t buflen);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_HEALTH_H */
