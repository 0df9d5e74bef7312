/* Metrics registry: the internal API the service framework uses.
 *
 * A registry holds metric families (counters, gauges, histograms), each with
 * fixed label names; a family holds one series per distinct tuple of label
 * values. Series are created on first use and live as long as the registry,
 * so a pointer to one may be cached and updated without any lookup: that is
 * the hot path (one atomic add for a counter, two for a histogram plus a
 * compare-and-swap for its sum). Lookups of a series by label values read a
 * lock-free list; only creating a series takes the family's mutex.
 *
 * The public face of the same objects is in include/aiplat/health.h
 * (aiplat_metrics_*, aiplat_metric_*).
 * docs/decisions/0007-health-and-metrics.md explains the choices. Not
 * installed. */
#ifndef AIPLAT_METRICS_H
#define AIPLAT_METRICS_H

#include <stdint.h>

#include "aiplat/health.h"
#include "internal.h"
#include "utf8.h"

typedef enum aip_metric_type {
  AIP_METRIC_COUNTER,
  AIP_METRIC_GAUGE,
  AIP_METRIC_HISTOGRAM
} aip_metric_type;

/* Limits that keep a registry bounded whatever its callers do. */
#define AIP_METRICS_MAX_NAME 200      /* bytes of a metric or label name */
#define AIP_METRICS_MAX_HELP 1024     /* bytes of a help text */
#define AIP_METRICS_MAX_LABELS 16     /* label names per family */
#define AIP_METRICS_MAX_VALUE 1024    /* bytes of one label value */
#define AIP_METRICS_MAX_SERIES 2000   /* series per family */
#define AIP_METRICS_MAX_FAMILIES 1000 /* families per registry */
#define AIP_METRICS_MAX_BUCKETS 64    /* finite buckets per histogram */

/* One series: a counter, gauge or histogram for one tuple of label values. */
typedef struct aip_series aip_series;

/* Create / free a registry (aiplat_metrics_create() and the health handle
 * use these; the global reference is the caller's business). */
aiplat_status aip_metrics_new(aiplat_metrics **out);
void aip_metrics_free(aiplat_metrics *m);

/* Default buckets of request latency histograms, in seconds. */
extern const double aip_metrics_default_buckets[];
extern const size_t aip_metrics_default_nbuckets;

/* Register a family (or return the identical one registered before).
 * @buckets may be NULL for the defaults; ignored unless a histogram. */
aiplat_status aip_metrics_register(aiplat_metrics *m, aip_metric_type type,
                                   const char *name, const char *help,
                                   const char *const *label_names,
                                   size_t nlabels, const double *buckets,
                                   size_t nbuckets, aiplat_metric **out);

/* The series of @metric for these label values, created on first use.
 * NULL on failure (wrong count, value too long, too many series, no memory)
 * with the detail recorded in the registry and the thread. */
aip_series *aip_metric_series(aiplat_metric *metric,
                              const char *const *label_values, size_t nvalues);

/* As aip_metric_series() with the failure's status. */
aiplat_status aip_metric_series_get(aiplat_metric *metric,
                                    const char *const *label_values,
                                    size_t nvalues, aip_series **out);

/* Hot-path updates on a cached series; thread-safe, lock-free. The caller
 * uses the update that matches the family's type (checked by the public
 * wrappers, trusted here). */
void aip_series_inc(aip_series *s, uint64_t n);   /* counter, gauge */
void aip_series_add(aip_series *s, double v);     /* counter (v >= 0), gauge */
void aip_series_set(aip_series *s, double v);     /* gauge */
void aip_series_observe(aip_series *s, double v); /* histogram; NaN ignored */

/* Current value of a counter or gauge series, count of a histogram one. */
double aip_series_value(const aip_series *s);

/* Append the whole registry in the Prometheus text format 0.0.4 to @b.
 * Safe while other threads update; each histogram's +Inf bucket always
 * equals its _count. False only on out of memory. */
bool aip_metrics_render_buf(aiplat_metrics *m, aip_buf *b);

/* ---- the library's own metrics, fed by the service framework ---------- */

/* Status code as a short label value: "timeout", "decode", ... ("unknown"
 * for codes this build does not know). Static. */
const char *aip_metrics_status_label(aiplat_status st);

/* Series of one endpoint (a handler's subject pattern or name: a bounded
 * set, never a concrete subject carrying a user id). Pointers owned by the
 * registry, valid until it is destroyed; copy the struct freely. */
typedef struct aip_endpoint_metrics {
  aiplat_metric *errors; /* aiplat_request_errors_total{endpoint,error} */
  aip_series *requests;  /* aiplat_requests_total{endpoint} */
  aip_series *in_flight; /* aiplat_requests_in_flight{endpoint} */
  aip_series *duration;  /* aiplat_request_duration_seconds{endpoint} */
  const char *endpoint;  /* the label value, owned by the series */
} aip_endpoint_metrics;

/* Register the library's families (idempotent): aiplat_requests_total,
 * aiplat_request_errors_total, aiplat_request_duration_seconds,
 * aiplat_requests_in_flight, aiplat_nats_reconnects_total,
 * aiplat_nats_disconnects_total, aiplat_build_info. */
aiplat_status aip_metrics_register_std(aiplat_metrics *m);

/* Resolve the series of @endpoint once; the framework keeps the result. */
aiplat_status aip_metrics_endpoint(aiplat_metrics *m, const char *endpoint,
                                   aip_endpoint_metrics *out);

/* A request began: in-flight + 1. */
void aip_endpoint_begin(const aip_endpoint_metrics *e);

/* A request ended after @elapsed_ns with status @st: in-flight - 1,
 * requests + 1, the duration observed, and for st != AIPLAT_OK the error
 * counter of that status + 1. */
void aip_endpoint_end(const aip_endpoint_metrics *e, aiplat_status st,
                      int64_t elapsed_ns);

/* The NATS connection was re-established / was lost (callbacks of the
 * bus). No-ops before aip_metrics_register_std(). */
void aip_metrics_nats_reconnected(aiplat_metrics *m);
void aip_metrics_nats_disconnected(aiplat_metrics *m);

#endif /* AIPLAT_METRICS_H */
