/* Service binaries as processes, for end-to-end tests and benchmarks: start
 * one with its environment, wait until it serves, read its JSON log, probe
 * its health server, stop it. When the calling program runs under valgrind,
 * the service runs under valgrind too (its exit status says whether memcheck
 * found errors or leaks). */
#ifndef TESTS_SVC_PROC_H
#define TESTS_SVC_PROC_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct sp_proc {
  pid_t pid;
  char log[256];   /* stderr of the service (its JSON log) */
  int health_port; /* from the "service started" record */
  bool valgrind;
  int reaped_status; /* when sp_alive() found it exited: its wait status */
  bool reaped;
} sp_proc;

/* Path of a built program under $top_builddir, e.g.
 * "services/chat-handler/chat-handler" (static buffer per call site: copy). */
const char *sp_path(const char *rel, char *buf, size_t len);

/* Start `binary` with `env` (NAME=VALUE strings, NULL-terminated) added to
 * the environment and HEALTH_PORT=0, HEALTH_BIND=127.0.0.1 unless given;
 * stderr goes to `logpath`. Does not wait. The process gets SIGKILL if the
 * caller dies. */
bool sp_start(sp_proc *p, const char *binary, const char *const *env,
              const char *logpath, const char *const *args);

/* Wait until the log holds "service started" (and read the health port);
 * false when the process exits first or after timeout_ms. */
bool sp_wait_started(sp_proc *p, int timeout_ms);

/* Wait for the process to exit by itself; its wait status, or -1. */
int sp_wait_exit(sp_proc *p, int timeout_ms);

/* Send sig and wait for the exit; the wait status, or -1 (then SIGKILL). */
int sp_stop(sp_proc *p, int sig, int timeout_ms);

/* True while the process runs. */
bool sp_alive(sp_proc *p);

/* The log so far (malloc'd, NUL-terminated), or NULL. */
char *sp_read_log(const sp_proc *p);

/* HTTP status of GET http://127.0.0.1:port/path (0 when no answer); the
 * body (malloc'd) in *body when body is not NULL. */
long sp_http_get(int port, const char *path, char **body);

/* The calling program runs under valgrind. */
bool sp_under_valgrind(void);

#endif
