/* Test harness: helper server processes on loopback that announce their
 * port in a file: the local model backend (tools/model-backend) and the
 * test fakes written as programs (tests/fakes/milvus_fake.py).
 *
 *   th_server *b = th_backend_start(NULL);   // aiplat-model-backend --no-stt
 *   ... th_server_url(b) ...                  // "http://127.0.0.1:PORT"
 *   th_server_stop(b);                        // SIGTERM, wait, clean up
 *
 * The process dies with the process that started it (PR_SET_PDEATHSIG), so a
 * crashed test leaves nothing running. Start it from an unchecked fixture
 * (the parent of Check's forked tests) so it outlives each test's fork.
 * The child is never run under valgrind (this process may be). Only libc:
 * readiness is checked with a plain HTTP/1.0 GET on a socket. */
#ifndef TH_BACKEND_HARNESS_H
#define TH_BACKEND_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct th_server th_server;

/* Start argv[0] (searched in PATH when it has no '/') with argv[1..] plus
 * `port_flag FILE`, wait until FILE holds a port and, when @health_path is
 * not NULL, until GET @health_path answers 200. NULL on failure (reason on
 * stderr). The child's stdout and stderr go to a log file in its temporary
 * directory (th_server_log); LOG_LEVEL=WARNING unless TH_VERBOSE is set. */
th_server *th_server_start(const char *const *argv, const char *port_flag,
                           const char *health_path, int timeout_ms);

/* The local model backend of this build ($top_builddir/tools/model-backend/
 * aiplat-model-backend) with --port 0 --no-stt and @extra_args
 * (NULL-terminated, may be NULL), ready on /health. */
th_server *th_backend_start(const char *const *extra_args);

/* The Milvus REST v2 fake ($top_srcdir/tests/fakes/milvus_fake.py, run by
 * $PYTHON3 or python3). NULL when it cannot start. */
th_server *th_milvus_fake_start(void);

/* True when a python3 interpreter can be found (PYTHON3 or PATH). */
bool th_have_python3(void);

const char *th_server_url(const th_server *s); /* http://127.0.0.1:PORT */
int th_server_port(const th_server *s);
const char *th_server_host(const th_server *s); /* "127.0.0.1" */
pid_t th_server_pid(const th_server *s);
/* The child's output so far (malloc'd, NUL-terminated), or NULL. */
char *th_server_log(const th_server *s);

/* SIGTERM, wait up to 10 s (then SIGKILL), remove its files. Returns the
 * wait status, or -1 when it had to be killed. NULL is a no-op (-1). */
int th_server_stop(th_server *s);

/* A plain HTTP/1.0 request to 127.0.0.1:port (no TLS, small bodies):
 * returns the status (0 when no answer) and, when @body_out is not NULL,
 * the response body (malloc'd). For test control endpoints. */
int th_http(int port, const char *method, const char *path, const char *body,
            char **body_out, int timeout_ms);

#endif
