/* pipeline-bridge end to end: the service binary as a process, a real
 * nats-server, the Argo Workflows and Kubeflow Pipelines fakes
 * (tests/fakes) and the aiplat client: trigger, every phase event in order
 * to a terminal one, queries, missing pipelines, bad tokens, unknown
 * engines, lost runs, the watch limit, shutdown while watching, a
 * pipeline version, many triggers at once against a slow engine. */
#include <aiplat/aiplat.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bridges/tb_util.h"
#include "harness/nats_harness.h"
#include "harness/pipeline_fakes.h"
#include "harness/testutil.h"

#define ATOKEN "argo-token-123"
#define KTOKEN "kfp-token-456"

static th_nats *server;
static th_fake *argo, *kfp;
static tb_proc BRIDGE;
static char env_nats[128], env_argo[128], env_kfp[128];

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
  const char *a[] = {"--token",    ATOKEN,        "--template",
                     "train",      "--template",  "broken:Failed",
                     "--template", "crash:Error", "--running-steps",
                     "3",          NULL};
  const char *k[] = {"--token",
                     KTOKEN,
                     "--pipeline",
                     "train",
                     "--pipeline",
                     "broken:FAILED",
                     "--pipeline",
                     "cached:SKIPPED",
                     "--pipeline",
                     "model",
                     "--version",
                     "model:v2:FAILED",
                     "--version",
                     "model:v3",
                     "--failed-message",
                     "task train failed",
                     NULL};
  argo = th_fake_start("argo_fake.py", a);
  kfp = th_fake_start("kfp_fake.py", k);
  ck_assert_ptr_nonnull(argo);
  ck_assert_ptr_nonnull(kfp);
  snprintf(env_nats, sizeof env_nats, "NATS_URL=%s", th_nats_url(server));
  snprintf(env_argo, sizeof env_argo, "ARGO_URL=%s", th_fake_url(argo));
  snprintf(env_kfp, sizeof env_kfp, "KUBEFLOW_URL=%s", th_fake_url(kfp));
  const char *env[] = {env_nats,
                       env_argo,
                       "ARGO_TOKEN=" ATOKEN,
                       env_kfp,
                       "KUBEFLOW_TOKEN=" KTOKEN,
                       "PIPELINE_POLL_INTERVAL=100ms",
                       "HEALTH_PORT=0",
                       "LOG_LEVEL=INFO",
                       NULL};
  ck_assert(
      tb_spawn(&BRIDGE, "services/pipeline-bridge/pipeline-bridge", env, NULL));
  ck_assert_msg(tb_wait_started(&BRIDGE, 30000),
                "pipeline-bridge did not start");
  setenv("NATS_URL", th_nats_url(server), 1);
}

static void teardown(void) {
  int st = tb_stop(&BRIDGE, SIGTERM, 20000);
  th_fake_stop(argo);
  th_fake_stop(kfp);
  th_nats_stop(server);
  curl_global_cleanup();
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "bridge exit %d", st);
}

/* ---- events
 * -------------------------------------------------------------------- */

typedef struct events {
  pthread_mutex_t mu;
  aiplat_msg *ev[64];
  size_t n;
} events;

static void on_event(aiplat_bus_msg *msg, void *ud) {
  events *e = ud;
  aiplat_msg *m = NULL;
  if (aiplat_msg_decode(&m, AIPLAT_MSG_PIPELINE_STATUS,
                        aiplat_bus_msg_data(msg),
                        aiplat_bus_msg_len(msg)) != AIPLAT_OK)
    return;
  pthread_mutex_lock(&e->mu);
  if (e->n < 64) e->ev[e->n++] = m, m = NULL;
  pthread_mutex_unlock(&e->mu);
  aiplat_msg_destroy(m);
}

static const char *str(aiplat_msg *m, const char *field) {
  const char *s = "";
  aiplat_msg_get_string(m, field, &s);
  return s;
}

static bool is_terminal(aiplat_msg *m) {
  bool t = false;
  aiplat_msg_get_bool(m, "terminal", &t);
  return t;
}

/* Wait for the terminal event of @run; the events of @run in order, as
 * "phase,phase,...". */
static void phases_of(events *e, const char *run, char *out, size_t len,
                      int timeout_ms) {
  int64_t end = tb_now_ms() + timeout_ms;
  out[0] = '\0';
  for (;;) {
    pthread_mutex_lock(&e->mu);
    bool done = false;
    out[0] = '\0';
    for (size_t i = 0; i < e->n; i++) {
      if (strcmp(str(e->ev[i], "run_id"), run) != 0) continue;
      if (*out) strncat(out, ",", len - strlen(out) - 1);
      strncat(out, str(e->ev[i], "phase"), len - strlen(out) - 1);
      if (is_terminal(e->ev[i])) done = true;
    }
    pthread_mutex_unlock(&e->mu);
    if (done || tb_now_ms() > end) return;
    tb_sleep_ms(20);
  }
}

static aiplat_msg *last_event(events *e, const char *run) {
  aiplat_msg *found = NULL;
  pthread_mutex_lock(&e->mu);
  for (size_t i = 0; i < e->n; i++)
    if (strcmp(str(e->ev[i], "run_id"), run) == 0) found = e->ev[i];
  pthread_mutex_unlock(&e->mu);
  return found;
}

static void events_free(events *e) {
  for (size_t i = 0; i < e->n; i++) aiplat_msg_destroy(e->ev[i]);
}

static aiplat_msg *trigger_msg(const char *engine, const char *pipeline) {
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_PIPELINE_TRIGGER),
                   AIPLAT_OK);
  aiplat_msg_set_string(m, "request_id", "req-42");
  aiplat_msg_set_string(m, "engine", engine);
  aiplat_msg_set_string(m, "pipeline", pipeline);
  return m;
}

static aiplat_msg *trigger(aiplat_bus *bus, aiplat_msg *m) {
  aiplat_msg *r = tb_request(bus, aiplat_subject_pipeline_trigger(), m,
                             AIPLAT_MSG_PIPELINE_STATUS, 20000);
  aiplat_msg_destroy(m);
  return r;
}

static void expect_refusal(aiplat_bus *bus, aiplat_msg *m, int64_t code,
                           const char *want) {
  aiplat_msg *r = trigger(bus, m);
  const char *msg;
  int64_t got = tb_error(r, &msg);
  ck_assert_msg(got == code, "error %lld (want %lld): %s", (long long)got,
                (long long)code, msg);
  if (want) ck_assert_msg(strstr(msg, want), "'%s' lacks '%s'", msg, want);
  ck_assert_str_eq(str(r, "run_id"), "");
  aiplat_msg_destroy(r);
}

/* ---- trigger and follow
 * -------------------------------------------------------- */

static void run_to_the_end(const char *engine, const char *pipeline,
                           const char *want, const char *want_message) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  events e = {.n = 0};
  pthread_mutex_init(&e.mu, NULL);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "ai.pipeline.status.*", NULL,
                                        on_event, &e, &sub),
                   AIPLAT_OK);
  aiplat_bus_flush(bus, 2000);
  aiplat_msg *m = trigger_msg(engine, pipeline);
  aiplat_msg_map_set(m, "parameters", "epochs", "3");
  aiplat_msg_map_set(m, "parameters", "note", "a b=c");
  aiplat_msg *r = trigger(bus, m);
  const char *msg;
  ck_assert_msg(tb_error(r, &msg) == 0, "trigger %s %s: %s", engine, pipeline,
                msg);
  char run[300];
  snprintf(run, sizeof run, "%s", str(r, "run_id"));
  ck_assert_str_ne(run, "");
  ck_assert_str_eq(str(r, "request_id"), "req-42");
  ck_assert_str_eq(str(r, "engine"), engine);
  ck_assert_str_eq(str(r, "pipeline"), pipeline);
  ck_assert(!is_terminal(r));
  aiplat_msg_destroy(r);

  char phases[256];
  phases_of(&e, run, phases, sizeof phases, 15000);
  ck_assert_msg(strcmp(phases, want) == 0, "%s %s: events %s, want %s", engine,
                pipeline, phases, want);
  aiplat_msg *last = last_event(&e, run);
  ck_assert(is_terminal(last));
  int64_t created = 0, finished = 0;
  aiplat_msg_get_int64(last, "created_at_ms", &created);
  aiplat_msg_get_int64(last, "finished_at_ms", &finished);
  ck_assert(created > 0 && finished >= created);
  ck_assert_str_eq(str(last, "request_id"), "req-42");
  if (want_message) ck_assert_str_eq(str(last, "message"), want_message);
  aiplat_bus_sub_destroy(sub);
  events_free(&e);
  aiplat_bus_destroy(bus);
}

START_TEST(argo_trigger_then_every_phase_in_order) {
  ck_assert(th_fake_reset(argo));
  run_to_the_end("argo", "train", "Pending,Running,Succeeded", NULL);
  /* the parameters reached the engine as Argo's "k=v" strings */
  json_t *reqs = th_fake_requests(argo);
  bool seen = false;
  size_t i;
  json_t *q;
  json_array_foreach(reqs, i, q) {
    const char *path = json_string_value(json_object_get(q, "path"));
    if (path && strstr(path, "/submit")) {
      const char *body = json_string_value(json_object_get(q, "body"));
      seen = body && strstr(body, "\"epochs=3\"") &&
             strstr(body, "\"note=a b=c\"");
    }
  }
  json_decref(reqs);
  ck_assert(seen);
  run_to_the_end("argo", "broken", "Pending,Running,Failed", NULL);
  run_to_the_end("argo", "crash", "Pending,Running,Error", NULL);
}
END_TEST

START_TEST(kubeflow_trigger_then_every_phase_in_order) {
  run_to_the_end("kubeflow", "train", "PENDING,RUNNING,SUCCEEDED", NULL);
  run_to_the_end("kubeflow", "broken", "PENDING,RUNNING,FAILED",
                 "task train failed");
  run_to_the_end("kubeflow", "cached", "PENDING,SKIPPED", NULL);
}
END_TEST

START_TEST(refusals) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_reset(kfp));
  expect_refusal(bus, trigger_msg("argo", "no-such-template"),
                 AIPLAT_ERR_NOT_FOUND, "\"no-such-template\" not found");
  expect_refusal(bus, trigger_msg("kubeflow", "no-such-pipeline"),
                 AIPLAT_ERR_NOT_FOUND, "no-such-pipeline");
  int before_a = th_fake_request_count(argo),
      before_k = th_fake_request_count(kfp);
  expect_refusal(bus, trigger_msg("spark", "train"), AIPLAT_ERR_NOT_SUPPORTED,
                 "spark");
  expect_refusal(bus, trigger_msg("", "train"), AIPLAT_ERR_NOT_SUPPORTED, NULL);
  expect_refusal(bus, trigger_msg("argo", ""), AIPLAT_ERR_INVALID_ARGUMENT,
                 "empty");
  expect_refusal(bus, trigger_msg("argo", "my.template"),
                 AIPLAT_ERR_INVALID_ARGUMENT, "subject");
  expect_refusal(bus, trigger_msg("argo", "../etc"),
                 AIPLAT_ERR_INVALID_ARGUMENT, NULL);
  expect_refusal(bus, trigger_msg("kubeflow", "train?x=1"),
                 AIPLAT_ERR_INVALID_ARGUMENT, NULL);
  /* Argo templates have no versions: refused before anything is sent */
  aiplat_msg *m = trigger_msg("argo", "train");
  aiplat_msg_set_string(m, "pipeline_version", "v7");
  expect_refusal(bus, m, AIPLAT_ERR_INVALID_ARGUMENT, "not versioned");
  m = trigger_msg("kubeflow", "model");
  aiplat_msg_set_string(m, "pipeline_version", "v/7");
  expect_refusal(bus, m, AIPLAT_ERR_INVALID_ARGUMENT, "version");
  m = trigger_msg("argo", "train");
  aiplat_msg_map_set(m, "parameters", "bad key!", "x");
  expect_refusal(bus, m, AIPLAT_ERR_INVALID_ARGUMENT, NULL);
  m = trigger_msg("argo", "train");
  aiplat_msg_set_string(m, "namespace", "Not_A_Label");
  expect_refusal(bus, m, AIPLAT_ERR_INVALID_ARGUMENT, "namespace");
  /* nothing reached the engines for requests refused before the call */
  ck_assert_int_eq(th_fake_request_count(argo), before_a);
  ck_assert_int_eq(th_fake_request_count(kfp), before_k);
  static const uint8_t garbage[] = {0x22, 0x05, 'x'};
  aiplat_msg *r =
      tb_request_raw(bus, aiplat_subject_pipeline_trigger(), garbage,
                     sizeof garbage, AIPLAT_MSG_PIPELINE_STATUS, 10000);
  ck_assert_int_eq(tb_error(r, NULL), AIPLAT_ERR_DECODE);
  aiplat_msg_destroy(r);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(queries_and_lost_runs) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  /* a run this bridge did not start: asked of the engines */
  aiplat_config *cfg = NULL;
  aiplat_pipeline *pl = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  aiplat_config_set(cfg, "ARGO_URL", th_fake_url(argo));
  aiplat_config_set(cfg, "ARGO_TOKEN", ATOKEN);
  ck_assert_int_eq(aiplat_pipeline_create(&pl, cfg), AIPLAT_OK);
  char *run = NULL;
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &run),
                   AIPLAT_OK);
  tb_run c =
      tb_cli((const char *[]){"pipeline", "status", run, "--json", NULL});
  ck_assert_msg(c.code == 0, "%s", c.err);
  json_t *j = json_loads(c.out, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "engine")), "argo");
  ck_assert_str_eq(json_string_value(json_object_get(j, "run_id")), run);
  json_decref(j);
  tb_run_free(&c);
  aiplat_free(run);
  aiplat_pipeline_destroy(pl);
  aiplat_config_destroy(cfg);

  c = tb_cli((const char *[]){"pipeline", "status", "no-such-run", NULL});
  ck_assert_int_eq(c.code, 1);
  ck_assert_ptr_nonnull(strstr(c.err, "NOT_FOUND"));
  tb_run_free(&c);
  c = tb_cli(
      (const char *[]){"pipeline", "status", "x", "--engine", "spark", NULL});
  ck_assert_int_eq(c.code, 1);
  ck_assert_ptr_nonnull(strstr(c.err, "NOT_SUPPORTED"));
  tb_run_free(&c);

  /* a run that disappears while watched: a terminal event with the error */
  events e = {.n = 0};
  pthread_mutex_init(&e.mu, NULL);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "ai.pipeline.status.*", NULL,
                                        on_event, &e, &sub),
                   AIPLAT_OK);
  aiplat_bus_flush(bus, 2000);
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_fault(
      argo,
      "{\"kind\":\"status\",\"status\":404,\"method\":\"GET\","
      "\"path\":\"/api/v1/workflows/ai-ml/train-\",\"count\":-1}"));
  aiplat_msg *r = trigger(bus, trigger_msg("argo", "train"));
  ck_assert_int_eq(tb_error(r, NULL), 0);
  char id[300];
  snprintf(id, sizeof id, "%s", str(r, "run_id"));
  aiplat_msg_destroy(r);
  char phases[128];
  phases_of(&e, id, phases, sizeof phases, 10000);
  aiplat_msg *last = last_event(&e, id);
  ck_assert_ptr_nonnull(last);
  ck_assert(is_terminal(last));
  const char *msg;
  ck_assert_int_eq(tb_error(last, &msg), AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(msg, "lost"));
  ck_assert(th_fake_reset(argo));
  /* the bridge remembers it: a query answers from memory */
  c = tb_cli((const char *[]){"pipeline", "status", id, "--watch", NULL});
  ck_assert_int_eq(c.code, 1);
  ck_assert_ptr_nonnull(strstr(c.err, "lost"));
  tb_run_free(&c);
  aiplat_bus_sub_destroy(sub);
  events_free(&e);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(cli_trigger_and_watch) {
  tb_run c = tb_cli((const char *[]){"pipeline", "trigger", "argo", "train",
                                     "epochs=2", "--watch", NULL});
  ck_assert_msg(c.code == 0, "%d: %s", c.code, c.err);
  ck_assert_ptr_nonnull(strstr(c.out, "\targo\tPending\n"));
  ck_assert_ptr_nonnull(strstr(c.out, "\targo\tRunning\n"));
  ck_assert_ptr_nonnull(strstr(c.out, "\targo\tSucceeded\n"));
  ck_assert_uint_eq(tb_lines(c.out), 3);
  tb_run_free(&c);

  c = tb_cli((const char *[]){"pipeline", "trigger", "kubeflow", "broken",
                              "--watch", "--json", NULL});
  ck_assert_int_eq(c.code, 1);
  ck_assert_ptr_nonnull(strstr(c.err, "ended FAILED"));
  ck_assert_uint_eq(tb_lines(c.out), 3);
  for (char *line = strtok(c.out, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *j = json_loads(line, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "engine")),
                     "kubeflow");
    json_decref(j);
  }
  tb_run_free(&c);

  c = tb_cli((const char *[]){"pipeline", "trigger", "argo", "train", NULL});
  ck_assert_int_eq(c.code, 0);
  ck_assert_uint_eq(tb_lines(c.out), 1);
  char run[300];
  ck_assert_int_eq(sscanf(c.out, "%299[^\t]", run), 1);
  tb_run_free(&c);
  c = tb_cli((const char *[]){"pipeline", "status", run, "--watch", "--timeout",
                              "20s", NULL});
  ck_assert_int_eq(c.code, 0);
  ck_assert_ptr_nonnull(strstr(c.out, "Succeeded"));
  tb_run_free(&c);

  c = tb_cli(
      (const char *[]){"pipeline", "trigger", "argo", "nothing-here", NULL});
  ck_assert_int_eq(c.code, 1);
  ck_assert_ptr_nonnull(strstr(c.err, "NOT_FOUND"));
  tb_run_free(&c);
  c = tb_cli((const char *[]){"pipeline", "trigger", "spark", "x", NULL});
  ck_assert_int_eq(c.code, 1);
  ck_assert_ptr_nonnull(strstr(c.err, "NOT_SUPPORTED"));
  tb_run_free(&c);

  /* readiness names both engines */
  char *body = NULL;
  ck_assert_int_eq(tb_http_get(BRIDGE.health_port, "/ready", &body), 200);
  ck_assert_ptr_nonnull(strstr(body, "\"argo\":{\"ok\":true"));
  ck_assert_ptr_nonnull(strstr(body, "\"kubeflow\":{\"ok\":true"));
  free(body);
}
END_TEST

/* ---- bridges of their own
 * --------------------------------------------------------- */

START_TEST(bad_token_is_refused_and_not_ready) {
  th_nats *own = th_nats_start(NULL);
  ck_assert_ptr_nonnull(own);
  char nats[128];
  snprintf(nats, sizeof nats, "NATS_URL=%s", th_nats_url(own));
  const char *env[] = {
      nats, env_argo, "ARGO_TOKEN=wrong", "HEALTH_PORT=0", "LOG_LEVEL=INFO",
      NULL};
  tb_proc p;
  ck_assert(
      tb_spawn(&p, "services/pipeline-bridge/pipeline-bridge", env, NULL));
  ck_assert(tb_wait_started(&p, 30000));
  aiplat_bus *bus = tb_bus(th_nats_url(own));
  expect_refusal(bus, trigger_msg("argo", "train"), AIPLAT_ERR_AUTH, NULL);
  /* only Argo is configured here */
  expect_refusal(bus, trigger_msg("kubeflow", "train"),
                 AIPLAT_ERR_NOT_SUPPORTED, "KUBEFLOW_URL");
  ck_assert_int_eq(tb_wait_http(p.health_port, "/ready", 503, 5000), 503);
  char *body = NULL;
  tb_http_get(p.health_port, "/ready", &body);
  ck_assert_ptr_nonnull(strstr(body, "\"argo\":{\"ok\":false"));
  ck_assert_ptr_null(strstr(body, "kubeflow"));
  free(body);
  aiplat_bus_destroy(bus);
  int st = tb_stop(&p, SIGTERM, 20000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  th_nats_stop(own);
}
END_TEST

/* 256 runs watched at once, the 257th refused, then SIGTERM while they are
 * all still running: a clean, prompt exit (under valgrind too when this
 * program runs under it). */
START_TEST(watch_limit_and_shutdown_while_watching) {
  th_nats *own = th_nats_start(NULL);
  ck_assert_ptr_nonnull(own);
  char nats[128];
  snprintf(nats, sizeof nats, "NATS_URL=%s", th_nats_url(own));
  const char *env[] = {nats,
                       env_argo,
                       "ARGO_TOKEN=" ATOKEN,
                       "PIPELINE_POLL_INTERVAL=1h",
                       "HEALTH_PORT=0",
                       "LOG_LEVEL=INFO",
                       "WORKERS=8",
                       NULL};
  tb_proc p;
  bool vg = tb_under_valgrind();
  ck_assert(
      vg ? tb_spawn_valgrind(&p, "services/pipeline-bridge/pipeline-bridge",
                             env, NULL)
         : tb_spawn(&p, "services/pipeline-bridge/pipeline-bridge", env, NULL));
  ck_assert(tb_wait_started(&p, vg ? 120000 : 30000));
  aiplat_bus *bus = tb_bus(th_nats_url(own));
  int64_t t0 = tb_now_ms();
  for (int i = 0; i < 256; i++) {
    aiplat_msg *r = trigger(bus, trigger_msg("argo", "train"));
    const char *msg;
    ck_assert_msg(tb_error(r, &msg) == 0, "run %d: %s", i, msg);
    aiplat_msg_destroy(r);
  }
  printf("256 triggers in %lld ms\n", (long long)(tb_now_ms() - t0));
  expect_refusal(bus, trigger_msg("argo", "train"), AIPLAT_ERR_UNAVAILABLE,
                 "256 runs");
  aiplat_bus_destroy(bus);
  t0 = tb_now_ms();
  int st = tb_stop(&p, SIGTERM, vg ? 60000 : 20000);
  int64_t took = tb_now_ms() - t0;
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "exit status %d", st);
  if (!vg) ck_assert_msg(took < 5000, "shutdown took %lld ms", (long long)took);
  th_nats_stop(own);
}
END_TEST

START_TEST(kubeflow_pipeline_version) {
  ck_assert(th_fake_reset(kfp));
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  events e = {.n = 0};
  pthread_mutex_init(&e.mu, NULL);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "ai.pipeline.status.*", NULL,
                                        on_event, &e, &sub),
                   AIPLAT_OK);
  aiplat_bus_flush(bus, 2000);
  aiplat_msg *m = trigger_msg("kubeflow", "model");
  aiplat_msg_set_string(m, "pipeline_version", "v2");
  aiplat_msg *r = trigger(bus, m);
  const char *msg;
  ck_assert_msg(tb_error(r, &msg) == 0, "trigger: %s", msg);
  char run[300];
  snprintf(run, sizeof run, "%s", str(r, "run_id"));
  aiplat_msg_destroy(r);
  /* the run names the version the fake knows by that name */
  json_t *reqs = th_fake_requests(kfp);
  const char *vid = NULL;
  size_t i;
  json_t *q;
  json_array_foreach(reqs, i, q) {
    if (strcmp(json_string_value(json_object_get(q, "method")), "POST"))
      continue;
    json_t *body = json_loads(
        json_string_value(json_object_get(q, "body")), 0, NULL);
    json_t *ref = json_object_get(body, "pipeline_version_reference");
    vid = json_string_value(json_object_get(ref, "pipeline_version_id"));
    ck_assert_ptr_nonnull(vid);
    ck_assert_ptr_nonnull(json_object_get(ref, "pipeline_id"));
    json_decref(body);
  }
  json_decref(reqs);
  ck_assert_ptr_nonnull(vid);
  /* v2 is the failing version; the latest would succeed */
  char phases[256];
  phases_of(&e, run, phases, sizeof phases, 15000);
  ck_assert_msg(strcmp(phases, "PENDING,RUNNING,FAILED") == 0, "events %s",
                phases);
  /* a version the pipeline does not have */
  m = trigger_msg("kubeflow", "model");
  aiplat_msg_set_string(m, "pipeline_version", "v7");
  expect_refusal(bus, m, AIPLAT_ERR_NOT_FOUND, "\"v7\"");
  aiplat_bus_sub_destroy(sub);
  events_free(&e);
  aiplat_bus_destroy(bus);
}
END_TEST

/* Threads of a process, from /proc. */
static int threads_of(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  int n = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  fclose(f);
  return n;
}

#define CONCURRENT 32
#define SLOW_MS 1000

typedef struct {
  aiplat_bus *bus;
  int64_t code;
  char run[300];
} concurrent_arg;

static void *trigger_one(void *ud) {
  concurrent_arg *a = ud;
  aiplat_msg *r = trigger(a->bus, trigger_msg("kubeflow", "train"));
  const char *msg;
  a->code = tb_error(r, &msg);
  snprintf(a->run, sizeof a->run, "%s", str(r, "run_id"));
  aiplat_msg_destroy(r);
  return NULL;
}

START_TEST(many_triggers_against_a_slow_engine) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  /* warm: every thread the bridge starts lazily is there */
  aiplat_msg *r = trigger(bus, trigger_msg("kubeflow", "train"));
  ck_assert_int_eq(tb_error(r, NULL), 0);
  aiplat_msg_destroy(r);
  int before = threads_of(BRIDGE.pid);
  ck_assert_int_gt(before, 0);
  ck_assert(th_fake_reset(kfp));
  char fault[128];
  snprintf(fault, sizeof fault,
           "{\"kind\":\"slow\",\"delay_ms\":%d,\"count\":-1,"
           "\"method\":\"POST\"}",
           SLOW_MS);
  ck_assert(th_fake_fault(kfp, fault));
  concurrent_arg args[CONCURRENT];
  pthread_t t[CONCURRENT];
  int64_t t0 = tb_now_ms();
  for (int i = 0; i < CONCURRENT; i++) {
    args[i] = (concurrent_arg){.bus = bus, .code = -1};
    ck_assert_int_eq(pthread_create(&t[i], NULL, trigger_one, &args[i]), 0);
  }
  /* while the submits wait on the engine: no thread more */
  int most = before;
  for (int i = 0; i < 10; i++) {
    tb_sleep_ms(SLOW_MS / 20);
    int n = threads_of(BRIDGE.pid);
    if (n > most) most = n;
  }
  for (int i = 0; i < CONCURRENT; i++) pthread_join(t[i], NULL);
  int64_t took = tb_now_ms() - t0;
  ck_assert(th_fake_reset(kfp));
  for (int i = 0; i < CONCURRENT; i++) {
    ck_assert_int_eq(args[i].code, 0);
    ck_assert_str_ne(args[i].run, "");
  }
  fprintf(stderr, "%d triggers against a %d ms engine: %lld ms, threads %d "
          "before, at most %d while waiting\n",
          CONCURRENT, SLOW_MS, (long long)took, before, most);
  ck_assert_msg(most <= before, "threads: %d before, %d while waiting", before,
                most);
  /* one latency, not CONCURRENT / WORKERS of them (8 at WORKERS=4) */
  if (!tb_under_valgrind())
    ck_assert_msg(took < 2 * SLOW_MS, "%d triggers took %lld ms", CONCURRENT,
                (long long)took);
  aiplat_bus_destroy(bus);
}
END_TEST

/* The bridge stops at start with one line naming @var and exit status
 * @code (docs/exit-status.md). */
static void expect_exit_line(const char *const *env, const char *const *argv,
                             int code, const char *var) {
  tb_proc p;
  ck_assert(
      tb_spawn(&p, "services/pipeline-bridge/pipeline-bridge", env, argv));
  int st = tb_wait_exit(&p, 20000);
  char *log = tb_log(&p);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == code,
                "status %d, not exit %d: %s", st, code, log);
  if (code == 4) /* nothing else was started: the one line alone */
    ck_assert_msg(tb_lines(log) == 1, "not one line: %s", log);
  if (var)
    ck_assert_msg(strstr(log, var) != NULL, "does not name %s: %s", var, log);
  free(log);
  tb_stop(&p, SIGKILL, 1000);
}

static void expect_config_line(const char *const *env, const char *var) {
  expect_exit_line(env, NULL, 4, var);
}

START_TEST(bad_configuration_is_one_line) {
  expect_config_line((const char *[]){env_nats, "HEALTH_PORT=0", NULL},
                     "ARGO_URL");
  expect_config_line((const char *[]){env_nats, "ARGO_URL=argo:2746", NULL},
                     "ARGO_URL");
  expect_config_line(
      (const char *[]){env_nats, env_argo, "PIPELINE_POLL_INTERVAL=fast", NULL},
      "PIPELINE_POLL_INTERVAL");
  expect_config_line((const char *[]){env_nats, env_argo,
                                      "ARGO_TOKEN_FILE=/nonexistent", NULL},
                     "ARGO_TOKEN");
  expect_config_line(
      (const char *[]){env_nats, env_kfp, "SHUTDOWN_GRACE=-3", NULL},
      "SHUTDOWN_GRACE");
}
END_TEST

/* The one start-up convention: a bad command line is 2, no NATS server at
 * start 3 (unavailable), an address the health server cannot bind 5. */
START_TEST(start_up_exit_statuses) {
  expect_exit_line((const char *[]){env_nats, env_argo, NULL},
                   (const char *[]){"--port", "9", NULL}, 2, NULL);
  expect_exit_line((const char *[]){"NATS_URL=nats://127.0.0.1:1", env_argo,
                                    "NATS_CONNECT_TIMEOUT=1s",
                                    "NATS_MAX_RECONNECTS=0", "HEALTH_PORT=0",
                                    NULL},
                   NULL, 3, "nats");
  expect_exit_line((const char *[]){env_nats, env_argo, "HEALTH_BIND=192.0.2.1",
                                    "HEALTH_PORT=1", NULL},
                   NULL, 5, "health");
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("pipeline-bridge");
  TCase *tc = tcase_create("bridge");
  tcase_set_timeout(tc, 180);
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_add_test(tc, argo_trigger_then_every_phase_in_order);
  tcase_add_test(tc, kubeflow_trigger_then_every_phase_in_order);
  tcase_add_test(tc, refusals);
  tcase_add_test(tc, kubeflow_pipeline_version);
  tcase_add_test(tc, many_triggers_against_a_slow_engine);
  tcase_add_test(tc, queries_and_lost_runs);
  tcase_add_test(tc, cli_trigger_and_watch);
  tcase_add_test(tc, bad_token_is_refused_and_not_ready);
  tcase_add_test(tc, watch_limit_and_shutdown_while_watching);
  tcase_add_test(tc, bad_configuration_is_one_line);
  tcase_add_test(tc, start_up_exit_statuses);
  suite_add_tcase(s, tc);
  return s;
}
