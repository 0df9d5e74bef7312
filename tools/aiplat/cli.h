/* aiplat, the command-line client of the platform: shared declarations.
 * Usage and exit codes: `aiplat --help`, docs/aiplat-cli.md. */
#ifndef AIPLAT_CLI_H
#define AIPLAT_CLI_H

#include <aiplat/aiplat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes a script can rely on: the platform's one convention
 * (aiplat_exit_code in aiplat/common.h, docs/exit-status.md). */
enum {
  CLI_OK = AIPLAT_EXIT_OK,                /* done */
  CLI_ESERVICE = AIPLAT_EXIT_FAILURE,     /* an error reply, a failed run */
  CLI_EUSAGE = AIPLAT_EXIT_USAGE,         /* bad arguments, input too large */
  CLI_ENOREPLY = AIPLAT_EXIT_UNAVAILABLE, /* no server, responder or answer */
  CLI_ECONFIG = AIPLAT_EXIT_CONFIG,       /* a bad setting, refused creds */
  CLI_EIO = AIPLAT_EXIT_IO                /* a file not read or written */
};

/* Which options a subcommand accepts (a bit each). */
enum {
  OPT_SERVER = 1 << 0,
  OPT_TIMEOUT = 1 << 1,
  OPT_JSON = 1 << 2,
  OPT_USER = 1 << 3,
  OPT_CONVERSATION = 1 << 4,
  OPT_NO_RAG = 1 << 5,
  OPT_OUTPUT = 1 << 6,
  OPT_VOICE = 1 << 7,
  OPT_LANGUAGE = 1 << 8,
  OPT_FORMAT = 1 << 9,
  OPT_SPEED = 1 << 10,
  OPT_VERBOSE = 1 << 11,
  OPT_NAMESPACE = 1 << 12,
  OPT_WATCH = 1 << 13,
  OPT_ENGINE = 1 << 14,
  OPT_WAIT = 1 << 15,
  OPT_PIPELINE_VERSION = 1 << 16
};

typedef struct cli {
  /* options */
  unsigned given; /* OPT_* bits seen on the command line */
  const char *server;
  int64_t timeout_ms; /* 0: the command's default */
  bool json;
  const char *user;
  const char *conversation;
  bool no_rag;
  const char *output;
  const char *voice;
  const char *language;
  const char *format;
  double speed;
  bool verbose;
  const char *ns;
  bool watch;
  const char *engine;
  const char *pipeline_version;
  int64_t wait_ms;
  /* positional arguments after the subcommand words */
  char **args;
  int nargs;
  /* the connection, made by cli_connect() */
  aiplat_config *cfg;
  aiplat_bus *bus;
  aiplat_client *client; /* typed requests on bus */
} cli;

/* Print "aiplat: ..." on stderr (one line) and return @code. */
int cli_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A usage error: the message, then a hint to --help; returns CLI_EUSAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The exit code for a failed libaiplat call (bus, config, message). */
int cli_code_for(aiplat_status st);
/* Report the calling thread's last libaiplat error with @what; returns
 * the exit code for @st. */
int cli_fail_last(aiplat_status st, const char *what);

/* Connect to NATS (NATS_URL or --server). Returns CLI_OK or an exit code. */
int cli_connect(cli *c);
void cli_disconnect(cli *c);

/* The command's timeout: --timeout, else @dflt. */
int64_t cli_timeout(const cli *c, int64_t dflt_ms);

/* A fresh random id of 16 hex digits (request ids) into @out[17]. */
void cli_new_id(char out[17]);
/* A fresh inbox subject "_INBOX.<22 characters>" into @out[32]. */
void cli_new_inbox(char out[32]);

/* Send @m as a request on @subject, wait up to @timeout_ms, decode the
 * reply as @reply_type into *@out. On failure prints the reason and
 * returns the exit code (no responder, timeout, too large, ...). */
int cli_request(cli *c, const char *subject, aiplat_msg *m,
                aiplat_msg_type reply_type, int64_t timeout_ms,
                aiplat_msg **out);

/* When @reply carries an error, print it ("aiplat: <what>: CODE: message")
 * and return CLI_ESERVICE; else CLI_OK. */
int cli_check_error(aiplat_msg *reply, const char *what);

/* Print @m as one line of JSON on stdout (bytes fields cleared first when
 * @drop_bytes names one, NULL for none). */
int cli_print_json(aiplat_msg *m, const char *drop_bytes);

/* Read a whole file ("-": standard input) into a malloc'd buffer. */
int cli_read_file(const char *path, uint8_t **data, size_t *len);
/* Write @len bytes to @path ("-": standard output), atomically for files. */
int cli_write_file(const char *path, const void *data, size_t len);

/* Print the sources of a ChatResponse / ChatChunk / VoiceResponse. */
void cli_print_sources(aiplat_msg *m);

/* The audio format named by a file's extension ("wav" by default). */
const char *cli_audio_format(const char *path);

/* Subcommands. */
int cmd_chat(cli *c);
int cmd_voice(cli *c);
int cmd_transcribe(cli *c);
int cmd_speak(cli *c);
int cmd_pipeline_trigger(cli *c);
int cmd_pipeline_status(cli *c);
int cmd_services(cli *c);

#endif
