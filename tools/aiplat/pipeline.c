/* aiplat pipeline trigger / status, with --watch.
 *
 * Watching: subscribe to ai.pipeline.status.{runId} first, then ask the
 * bridge for the run's current state (ai.pipeline.query), so no change
 * between the two is lost; then print each new phase until a terminal one.
 * The bridge is asked again every REQUERY_MS in case an event was missed
 * (a bridge restart, a slow consumer). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

#define DEFAULT_TIMEOUT_MS 60000
#define REQUERY_MS 30000

static void print_status(cli *c, aiplat_msg *m) {
  if (c->json) {
    cli_print_json(m, NULL);
    return;
  }
  const char *run = "", *engine = "", *phase = "", *msg = "";
  aiplat_msg_get_string(m, "run_id", &run);
  aiplat_msg_get_string(m, "engine", &engine);
  aiplat_msg_get_string(m, "phase", &phase);
  aiplat_msg_get_string(m, "message", &msg);
  printf("%s\t%s\t%s%s%s\n", run, engine, *phase ? phase : "-",
         *msg ? "\t" : "", msg);
  fflush(stdout);
}

/* Terminal phases that mean success. */
static bool succeeded(aiplat_msg *m) {
  const char *phase = "";
  aiplat_msg_get_string(m, "phase", &phase);
  return !aiplat_msg_has(m, "error") && (strcasecmp(phase, "Succeeded") == 0 ||
                                         strcasecmp(phase, "SKIPPED") == 0);
}

static int terminal_rc(aiplat_msg *m) {
  if (succeeded(m)) return CLI_OK;
  const char *run = "", *phase = "";
  aiplat_msg_get_string(m, "run_id", &run);
  aiplat_msg_get_string(m, "phase", &phase);
  if (aiplat_msg_has(m, "error")) return cli_check_error(m, run);
  return cli_fail(CLI_ESERVICE, "run %s ended %s", run,
                  *phase ? phase : "without a phase");
}

/* ---- events ----------------------------------------------------------------
 */

typedef struct events {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  aiplat_msg **q;
  size_t n, cap;
} events;

static void on_status(aiplat_bus_msg *msg, void *ud) {
  events *ev = ud;
  aiplat_msg *m = NULL;
  if (aiplat_msg_decode(&m, AIPLAT_MSG_PIPELINE_STATUS,
                        aiplat_bus_msg_data(msg),
                        aiplat_bus_msg_len(msg)) != AIPLAT_OK) {
    aiplat_error_clear();
    return;
  }
  pthread_mutex_lock(&ev->mu);
  if (ev->n == ev->cap) {
    size_t cap = ev->cap ? ev->cap * 2 : 16;
    aiplat_msg **q = realloc(ev->q, cap * sizeof *q);
    if (q) ev->q = q, ev->cap = cap;
  }
  if (ev->n < ev->cap) ev->q[ev->n++] = m, m = NULL;
  pthread_cond_signal(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
  aiplat_msg_destroy(m);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static aiplat_msg *next_status(events *ev, int64_t deadline) {
  pthread_mutex_lock(&ev->mu);
  while (ev->n == 0) {
    int64_t left = deadline - now_ms();
    if (left <= 0) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
  }
  aiplat_msg *m = NULL;
  if (ev->n) {
    m = ev->q[0];
    memmove(ev->q, ev->q + 1, (ev->n - 1) * sizeof *ev->q);
    ev->n--;
  }
  pthread_mutex_unlock(&ev->mu);
  return m;
}

/* Ask the bridge for the state of @run. */
static int query(cli *c, const char *run, const char *engine,
                 int64_t timeout_ms, aiplat_msg **out) {
  aiplat_msg *req = NULL;
  char id[17];
  cli_new_id(id);
  aiplat_status st = aiplat_msg_create(&req, AIPLAT_MSG_PIPELINE_STATUS);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "request_id", id);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "run_id", run);
  if (st == AIPLAT_OK && engine && *engine)
    st = aiplat_msg_set_string(req, "engine", engine);
  int rc =
      st == AIPLAT_OK ? CLI_OK : cli_fail_last(st, "cannot build the query");
  if (rc == CLI_OK)
    rc = cli_request(c, aiplat_subject_pipeline_query(), req,
                     AIPLAT_MSG_PIPELINE_STATUS, timeout_ms, out);
  aiplat_msg_destroy(req);
  if (rc == CLI_OK) rc = cli_check_error(*out, run);
  return rc;
}

static int watch(cli *c, const char *run, const char *engine) {
  char *subject = NULL;
  if (aiplat_subject_pipeline_status(&subject, run) != AIPLAT_OK)
    return cli_fail_last(AIPLAT_ERR_INVALID_ARGUMENT, "the run id");
  events ev = {.q = NULL};
  pthread_mutex_init(&ev.mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ev.cv, &ca);
  pthread_condattr_destroy(&ca);
  aiplat_bus_sub *sub = NULL;
  aiplat_status st =
      aiplat_bus_subscribe(c->bus, subject, NULL, on_status, &ev, &sub);
  if (st == AIPLAT_OK) st = aiplat_bus_flush(c->bus, 5000);
  int rc = st == AIPLAT_OK ? CLI_OK : cli_fail_last(st, "cannot subscribe");
  int64_t end = c->timeout_ms > 0 ? now_ms() + c->timeout_ms : INT64_MAX;
  char last_phase[128] = "";
  bool first = true;
  aiplat_msg *m = NULL;
  while (rc == CLI_OK) {
    int64_t left = end - now_ms();
    if (left <= 0) {
      rc = cli_fail(CLI_ENOREPLY, "run %s did not end within the timeout", run);
      break;
    }
    if (first) {
      rc = query(c, run, engine,
                 left < DEFAULT_TIMEOUT_MS ? left : DEFAULT_TIMEOUT_MS, &m);
      first = false;
      if (rc != CLI_OK) break;
    } else {
      int64_t until = now_ms() + REQUERY_MS;
      m = next_status(&ev, until < end ? until : end);
      if (!m) { /* quiet for a while: ask again */
        first = true;
        continue;
      }
    }
    const char *phase = "";
    bool terminal = false;
    aiplat_msg_get_string(m, "phase", &phase);
    aiplat_msg_get_bool(m, "terminal", &terminal);
    if (terminal || strcmp(phase, last_phase) != 0) print_status(c, m);
    snprintf(last_phase, sizeof last_phase, "%s", phase);
    if (terminal) {
      rc = terminal_rc(m);
      break;
    }
    aiplat_msg_destroy(m);
    m = NULL;
  }
  aiplat_msg_destroy(m);
  aiplat_bus_sub_destroy(sub);
  for (size_t i = 0; i < ev.n; i++) aiplat_msg_destroy(ev.q[i]);
  free(ev.q);
  pthread_cond_destroy(&ev.cv);
  pthread_mutex_destroy(&ev.mu);
  aiplat_free(subject);
  return rc;
}

int cmd_pipeline_trigger(cli *c) {
  const char *engine = c->args[0], *pipeline = c->args[1];
  if (!*engine || !*pipeline)
    return cli_usage("ENGINE and PIPELINE must not be empty");
  char id[17];
  cli_new_id(id);
  aiplat_msg *req = NULL, *resp = NULL;
  aiplat_status st = aiplat_msg_create(&req, AIPLAT_MSG_PIPELINE_TRIGGER);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "request_id", id);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "engine", engine);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "pipeline", pipeline);
  if (st == AIPLAT_OK && c->ns)
    st = aiplat_msg_set_string(req, "namespace", c->ns);
  if (st == AIPLAT_OK && c->pipeline_version)
    st = aiplat_msg_set_string(req, "pipeline_version", c->pipeline_version);
  int rc = st == AIPLAT_OK
               ? CLI_OK
               : cli_fail_last(st, "cannot build the PipelineTrigger");
  for (int i = 2; rc == CLI_OK && i < c->nargs; i++) {
    char *eq = strchr(c->args[i], '=');
    if (!eq || eq == c->args[i]) {
      rc = cli_usage("parameter '%.64s' is not KEY=VALUE", c->args[i]);
      break;
    }
    *eq = '\0';
    st = aiplat_msg_map_set(req, "parameters", c->args[i], eq + 1);
    *eq = '=';
    if (st != AIPLAT_OK) rc = cli_fail_last(st, "parameter");
  }
  if (rc == CLI_OK) rc = cli_connect(c);
  int64_t timeout =
      c->watch ? DEFAULT_TIMEOUT_MS : cli_timeout(c, DEFAULT_TIMEOUT_MS);
  if (rc == CLI_OK)
    rc = cli_request(c, aiplat_subject_pipeline_trigger(), req,
                     AIPLAT_MSG_PIPELINE_STATUS, timeout, &resp);
  if (rc == CLI_OK) rc = cli_check_error(resp, "pipeline trigger");
  if (rc == CLI_OK) {
    const char *run = "", *eng = "";
    aiplat_msg_get_string(resp, "run_id", &run);
    aiplat_msg_get_string(resp, "engine", &eng);
    if (!*run)
      rc = cli_fail(CLI_ESERVICE, "pipeline trigger: the answer has no run_id");
    else if (!c->watch)
      print_status(c, resp);
    else
      rc = watch(c, run, *eng ? eng : engine);
  }
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(resp);
  return rc;
}

int cmd_pipeline_status(cli *c) {
  const char *run = c->args[0];
  if (aiplat_subject_token_check(run) != AIPLAT_OK)
    return cli_usage("'%.64s' is not a run id", run);
  int rc = cli_connect(c);
  if (rc != CLI_OK) return rc;
  if (c->watch) return watch(c, run, c->engine);
  aiplat_msg *resp = NULL;
  rc = query(c, run, c->engine, cli_timeout(c, DEFAULT_TIMEOUT_MS), &resp);
  if (rc == CLI_OK) print_status(c, resp);
  aiplat_msg_destroy(resp);
  return rc;
}
