/* A backend readiness probe (internal): a thread of its own runs a blocking
 * probe of a server every interval, and the readiness check reports the
 * latest result at once without blocking the health server. A request
 * whose outcome contradicts that result (the server unreachable while
 * marked ready, or answering while marked down) asks for an immediate
 * re-check: the probe runs again at once, at most every
 * AIP_PROBE_MIN_GAP_MS, so that /ready follows within a fraction of a
 * second instead of a whole interval. The speech and pipeline endpoints
 * use it (docs/decisions/0017-bridges-and-cli.md). */
#ifndef AIP_PROBE_H
#define AIP_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aiplat/common.h"
#include "aiplat/health.h"

/* The shortest time between two probes: a burst of requests that all find
 * the server down costs one probe. */
#define AIP_PROBE_MIN_GAP_MS 200

typedef struct aip_probe aip_probe;

/* Probe the server; true when it is ready, with a short explanation in
 * @msg either way. Runs on the probe's thread and may block (bound it). */
typedef bool (*aip_probe_fn)(char *msg, size_t msglen, void *user_data);

/* A probe of @fn every @interval_ms (at least AIP_PROBE_MIN_GAP_MS + 1),
 * not started. @cancel (may be NULL) interrupts a running @fn when the
 * probe is destroyed. ENOMEM only. */
aiplat_status aip_probe_create(aip_probe **out, aip_probe_fn fn,
                               void (*cancel)(void *user_data),
                               void *user_data, int64_t interval_ms);

/* Start the thread (the first probe runs at once) and register the
 * readiness check @name on @health. Once per probe (AIPLAT_ERR_EXISTS). */
aiplat_status aip_probe_add_check(aip_probe *p, aiplat_health *health,
                                  const char *name);

/* A request's outcome @st: re-check at once when it says the server may be
 * down (connection, timeout, unavailable, server error) while the probe
 * says ready, or that it answers while the probe says not ready. Cheap;
 * any thread; a no-op before the probe runs. */
void aip_probe_note(aip_probe *p, aiplat_status st);

/* Re-check at once (within AIP_PROBE_MIN_GAP_MS of the last probe). */
void aip_probe_kick(aip_probe *p);

/* The latest result; false until the first probe has returned. */
bool aip_probe_ready(aip_probe *p);

/* How many probes have returned (tests). */
uint64_t aip_probe_count(aip_probe *p);

/* Stop the thread (cancelling and waiting for a running probe) and free.
 * The health handle holding the check must be destroyed first. NULL is a
 * no-op. */
void aip_probe_destroy(aip_probe *p);

#endif
