/* The --help and --version of the service programs, on the public API
 * only: a setting's description and default come from the library's table
 * (aiplat_config_setting_description()), so the text cannot drift from the
 * library, laid out so that help2man makes one definition per setting in
 * the manual page's ENVIRONMENT section. Start-up and exit statuses:
 * docs/exit-status.md. Not part of the library. */
#ifndef AIPLAT_SVCHELP_H
#define AIPLAT_SVCHELP_H

#include <aiplat/aiplat.h>
#include <stdio.h>

/* What --help prints after the "Usage:" line: @summary (one line), @about
 * (paragraphs of lines under 80 columns, each ending in a newline), then
 * "Environment:" with one definition per name of @settings (NULL-terminated,
 * each a setting of the library's table): the name, its description and
 * its default. */
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
 * exit status: AIPLAT_EXIT_OK after --help or --version, AIPLAT_EXIT_USAGE
 * for any other argument (the services take none). */
int svcu_args(int argc, char **argv, const char *name, const svcu_help *help);

#endif
