/* Test harness: a real nats-server on loopback, on a free port, with
 * JetStream in a temporary directory. Used by every suite that needs NATS.
 *
 *   th_nats *s = th_nats_start(NULL);      // or extra config text
 *   ... th_nats_url(s) ...
 *   th_nats_stop(s);                       // kills it, removes its files
 *
 * The server dies with the process that started it (PR_SET_PDEATHSIG), so a
 * crashed test leaves nothing running. Start it from an unchecked fixture
 * (the parent of Check's forked tests) so it outlives each test's fork. */
#ifndef TH_NATS_HARNESS_H
#define TH_NATS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct th_nats th_nats;

/* Start a server. @extra_conf: config-file text appended to the generated
 * configuration (e.g. "max_payload: 4096"), or NULL. NULL on failure, with
 * the reason on stderr. */
th_nats *th_nats_start(const char *extra_conf);
/* "nats://127.0.0.1:PORT" */
const char *th_nats_url(const th_nats *s);
int th_nats_port(const th_nats *s);
pid_t th_nats_pid(const th_nats *s);
/* Stop the process (SIGTERM, then SIGKILL) but keep its port and storage. */
bool th_nats_kill(th_nats *s);
/* Start it again on the same port with the same JetStream storage. */
bool th_nats_restart(th_nats *s);
/* Stop the server and remove its directory; NULL is a no-op. */
void th_nats_stop(th_nats *s);

/* A cluster of @n (2..5) servers on loopback, routed to each other, each
 * with JetStream in its own directory (server names n1..nN). Fills
 * @nodes[0..n-1]; false on failure (nothing left running). The JetStream
 * meta leader may take a few seconds to be elected after this returns.
 * Each node is stopped, killed and restarted like a single server. */
bool th_nats_cluster_start(th_nats **nodes, int n);
/* "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." of @nodes into @buf. */
const char *th_nats_cluster_urls(th_nats *const *nodes, int n, char *buf,
                                 size_t len);

#endif
