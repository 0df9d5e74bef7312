/* Test harness: the Argo Workflows and Kubeflow Pipelines fakes
 * (tests/fakes/argo_fake.py, kfp_fake.py) as child processes on loopback.
 *
 *   const char *args[] = {"--template", "train", NULL};
 *   th_fake *f = th_fake_start("argo_fake.py", args);
 *   ... th_fake_url(f) ...   th_fake_fault(f, "{\"kind\":\"slow\"}");
 *   json_t *reqs = th_fake_requests(f);   // what the fake received
 *   th_fake_stop(f);
 *
 * The fake dies with the process that started it (PR_SET_PDEATHSIG). Start
 * it from an unchecked fixture so that it outlives each test's fork; its
 * state (runs, faults, the request record) is shared by the tests, so each
 * test calls th_fake_reset() first. */
#ifndef TH_PIPELINE_FAKES_H
#define TH_PIPELINE_FAKES_H

#include <jansson.h>
#include <stdbool.h>

typedef struct th_fake th_fake;

/* Start tests/fakes/@script with @args (NULL-terminated, may be NULL).
 * NULL on failure, with the reason on stderr. */
th_fake *th_fake_start(const char *script, const char *const *args);
/* "http://127.0.0.1:PORT" */
const char *th_fake_url(const th_fake *f);
int th_fake_port(const th_fake *f);
/* Arm a fault (the JSON of pipeline_fake_base.py's /_fake/fault). */
bool th_fake_fault(th_fake *f, const char *json);
/* Forget requests and faults. */
bool th_fake_reset(th_fake *f);
/* The requests received since the last reset: a JSON array of
 * {method, path, query, headers, body} (new reference), or NULL. */
json_t *th_fake_requests(th_fake *f);
/* How many requests were received since the last reset (-1 on error). */
int th_fake_request_count(th_fake *f);
/* Stop the process; NULL is a no-op. */
void th_fake_stop(th_fake *f);

#endif
