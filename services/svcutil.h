/* What the service programs share (the bridges all of it, chat-handler and
 * voice-assistant the --help text),
 * on the public API only: command-line handling, start-up (signals,
 * configuration, the one-line error), a pool of model clients and a
 * backend readiness probe. Not part of the library. */
#ifndef AIPLAT_SVCUTIL_H
#define AIPLAT_SVCUTIL_H

#include <aiplat/aiplat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of the service programs. */
enum { SVCU_EXIT_OK = 0, SVCU_EXIT_FAILURE = 1, SVCU_EXIT_CONFIG = 2 };

/* What --help prints after the "Usage:" line: @summary (one line), @about
 * (paragraphs of lines under 80 columns, each ending in a newline), then
 * "Environment:" with one definition per name of @settings (NULL-terminated,
 * each a setting of the library's table): the name, then its description
 * and default from aiplat_config_setting_description() and
 * aiplat_config_setting_default(), so the text cannot drift from the
 * library. The layout is the one help2man turns into one tagged paragraph
 * per setting in the ENVIRONMENT section of the manual page. */
typedef struct svcu_help {
  const char *summary;
  const char *about;
  const char *const *settings;
} svcu_help;

/* The settings every service reads, for the end of svcu_help.settings. */
#define SVCU_COMMON_SETTINGS                                                \
  "NATS_URL", "NATS_CREDS", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN",     \
      "NATS_TLS_CA", "HEALTH_PORT", "HEALTH_BIND", "WORKERS",               \
      "MAX_IN_FLIGHT", "REQUEST_TIMEOUT", "SHUTDOWN_GRACE", "LOG_LEVEL"

/* Print the --help text of @name to @out. */
void svcu_print_help(FILE *out, const char *name, const svcu_help *help);

/* --help / --version. Returns -1 when the program should go on, else the
 * exit status (0 after --help or --version, 2 for an unknown argument). */
int svcu_args(int argc, char **argv, const char *name, const svcu_help *help);

/* Block SIGINT and SIGTERM in the calling thread, so that every thread
 * started afterwards inherits the mask and only aiplat_service_run() takes
 * them. Call first thing in main(). */
void svcu_block_signals(void);

/* Print "name: text" as one line on stderr (control characters in @text
 * become blanks). */
void svcu_error_line(const char *name, const char *text);

/* Print "name: " + the calling thread's last libaiplat error, one line. */
void svcu_last_error_line(const char *name);

/* The configuration from the environment, validated. NULL after printing
 * the one error line. */
aiplat_config *svcu_config(const char *name);

/* Print "name: " + @cfg's last error, one line; returns SVCU_EXIT_CONFIG. */
int svcu_config_error(aiplat_config *cfg, const char *name);

/* Run @svc until SIGTERM/SIGINT: SVCU_EXIT_OK, or SVCU_EXIT_FAILURE after
 * printing why it could not run. */
int svcu_run(aiplat_service *svc, const char *name);

/* The service name: SERVICE_NAME when set, else @fallback. */
const char *svcu_service_name(aiplat_config *cfg, const char *fallback);

/* ---- a pool of clients ---------------------------------------------------
 * Model clients keep per-call settings (format, speed, timeout) on the
 * handle, so each request takes a client of its own from the pool for the
 * duration of the call. */
typedef struct svcu_pool svcu_pool;
typedef void (*svcu_destroy_fn)(void *client);

/* An empty pool that will hold @cap clients; NULL on ENOMEM. */
svcu_pool *svcu_pool_create(size_t cap, svcu_destroy_fn destroy);
/* Add a client (owned by the pool from now on). */
bool svcu_pool_add(svcu_pool *p, void *client);
/* Take a client, waiting while all are in use. */
void *svcu_pool_take(svcu_pool *p);
/* Give a client back. */
void svcu_pool_give(svcu_pool *p, void *client);
/* Destroy every client (all must have been given back) and the pool. */
void svcu_pool_destroy(svcu_pool *p);

/* ---- a backend readiness probe -------------------------------------------
 * A thread of its own runs @fn every @interval_ms (and soon after a kick),
 * and the readiness check svcu_probe_check() reports the latest result
 * without blocking the health server. A request that fails because the
 * backend is unreachable kicks the probe, so readiness follows within a
 * fraction of a second instead of a whole interval. */
typedef struct svcu_probe svcu_probe;
typedef bool (*svcu_probe_fn)(char *msg, size_t msglen, void *user_data);

/* Start probing (the first probe runs at once). @cancel (may be NULL)
 * interrupts a running probe at stop. NULL on failure. */
svcu_probe *svcu_probe_start(svcu_probe_fn fn, void (*cancel)(void *user_data),
                             void *user_data, int64_t interval_ms);
/* Probe again soon (at most every 200 ms). Any thread. */
void svcu_probe_kick(svcu_probe *p);
/* Kick when @st says the backend may be down (connection, timeout,
 * unavailable, server errors), or when it answered while marked down. */
void svcu_probe_note(svcu_probe *p, aiplat_status st);
/* An aiplat_health_check_fn; user_data is the probe. */
bool svcu_probe_check(char *msg, size_t msglen, void *user_data);
/* Stop the thread (waits for a running probe) and free. NULL is a no-op. */
void svcu_probe_stop(svcu_probe *p);

/* ---- small helpers ------------------------------------------------------- */

/* Number of Unicode code points of a valid UTF-8 string. */
size_t svcu_utf8_len(const char *s);
/* True when @s holds only blanks (or is empty). */
bool svcu_blank(const char *s);

#endif
