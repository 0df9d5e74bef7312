/* Helpers of the bridge and CLI tests: run the built service binaries and
 * the aiplat client as processes, read their logs, probe their health
 * servers. */
#ifndef TB_UTIL_H
#define TB_UTIL_H

#include <aiplat/aiplat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tb_proc {
  pid_t pid;
  char dir[64];  /* temporary directory: log */
  char log[128]; /* stderr + stdout of the process */
  int health_port;
} tb_proc;

/* Path of a built program, relative to $top_builddir (static buffer). */
const char *tb_path(const char *rel);

/* Start a built program (path relative to $top_builddir) with extra
 * environment entries "K=V" (NULL-terminated, may be NULL) and arguments
 * (NULL-terminated, may be NULL); its output goes to p->log. It dies with
 * the test process. */
bool tb_spawn(tb_proc *p, const char *rel, const char *const *env,
              const char *const *args);
/* The same under valgrind (memcheck, leaks are errors: exit status 99). */
bool tb_spawn_valgrind(tb_proc *p, const char *rel, const char *const *env,
                       const char *const *args);

/* True when this test program itself runs under valgrind. */
bool tb_under_valgrind(void);

/* Wait until the service logged "service started"; fills p->health_port.
 * False on timeout or when the process exited. */
bool tb_wait_started(tb_proc *p, int timeout_ms);

/* True while the process runs. */
bool tb_alive(tb_proc *p);

/* Send @sig and wait up to @timeout_ms; the wait status, or -1 when it
 * had to be killed. Removes the log. */
int tb_stop(tb_proc *p, int sig, int timeout_ms);

/* Wait for the process to exit by itself; the wait status or -1. */
int tb_wait_exit(tb_proc *p, int timeout_ms);

/* The log so far (malloc'd, NUL-terminated). */
char *tb_log(tb_proc *p);

/* GET http://127.0.0.1:port/path: the status (0 when unreachable), body
 * into *body when not NULL (malloc'd). */
long tb_http_get(int port, const char *path, char **body);

/* Poll path until it answers @want (up to timeout_ms); the last status. */
long tb_wait_http(int port, const char *path, long want, int timeout_ms);

/* Run tools/aiplat/aiplat with @args (NULL-terminated) and wait. */
typedef struct tb_run {
  int code; /* exit status, or -1 when it did not exit normally */
  char *out, *err;
  size_t out_len;
  double seconds;
} tb_run;
tb_run tb_cli(const char *const *args);
/* The same under valgrind (memcheck; exit status 99 on an error or leak). */
tb_run tb_cli_valgrind(const char *const *args);
void tb_run_free(tb_run *r);

/* Number of lines in @s (a last line without newline counts). */
size_t tb_lines(const char *s);

void tb_sleep_ms(int ms);
int64_t tb_now_ms(void);

/* A connected bus to @url; fails the test otherwise. */
aiplat_bus *tb_bus(const char *url);

/* Send raw bytes as a request and decode the reply as @type. */
aiplat_msg *tb_request_raw(aiplat_bus *bus, const char *subject,
                           const void *data, size_t len, aiplat_msg_type type,
                           int64_t timeout_ms);
/* Encode @m, request, decode as @type (the test fails on a transport error). */
aiplat_msg *tb_request(aiplat_bus *bus, const char *subject, aiplat_msg *m,
                       aiplat_msg_type type, int64_t timeout_ms);
/* The error code of a reply (0 when it has none); its message into msg. */
int64_t tb_error(aiplat_msg *reply, const char **msg);

/* Read a whole file (malloc'd) or NULL. */
uint8_t *tb_read_file(const char *path, size_t *len);
bool tb_write_file(const char *path, const void *data, size_t len);

#endif
