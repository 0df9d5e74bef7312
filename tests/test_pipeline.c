/* The pipeline client (aiplat/pipeline.h) against the Argo and Kubeflow
 * fakes (tests/fakes): configuration, input checks, phases, the
 * asynchronous forms with their options, deadlines and cancellation. */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness/pipeline_fakes.h"
#include "harness/testutil.h"

#define TOKEN "s3cret-token"

static th_fake *argo, *kfp;
static aiplat_config *cfg;
static aiplat_pipeline *pl;
static char msg[1024];

static void start_fakes(void) {
  const char *a[] = {"--token",    TOKEN,           "--template", "train",
                     "--template", "broken:Failed", "--template", "crash:Error",
                     "--template", "other/train",   NULL};
  const char *k[] = {"--token",
                     TOKEN,
                     "--pipeline",
                     "train",
                     "--pipeline",
                     "broken:FAILED",
                     "--pipeline",
                     "stopped:CANCELED",
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
}

static void stop_fakes(void) {
  th_fake_stop(argo);
  th_fake_stop(kfp);
  argo = kfp = NULL;
}

static void setup(void) {
  ck_assert_ptr_nonnull(argo);
  ck_assert_ptr_nonnull(kfp);
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_reset(kfp));
  static const char *const vars[] = {"ARGO_URL",
                                     "ARGO_NAMESPACE",
                                     "ARGO_TOKEN",
                                     "ARGO_TOKEN_FILE",
                                     "KUBEFLOW_URL",
                                     "KUBEFLOW_TOKEN",
                                     "KUBEFLOW_TOKEN_FILE",
                                     "HTTP_TIMEOUT",
                                     "HTTP_MAX_RETRIES",
                                     "HTTP_CONNECT_TIMEOUT"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "ARGO_URL", th_fake_url(argo)),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "ARGO_TOKEN", TOKEN), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "KUBEFLOW_URL", th_fake_url(kfp)),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "KUBEFLOW_TOKEN", TOKEN), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_TIMEOUT", "5s"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_MAX_RETRIES", "2"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "HTTP_RETRY_BACKOFF", "10ms"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_pipeline_create(&pl, cfg), AIPLAT_OK);
  msg[0] = '\0';
}

static void teardown(void) {
  aiplat_pipeline_destroy(pl);
  aiplat_config_destroy(cfg);
  pl = NULL;
  cfg = NULL;
}

static const char *last(void) {
  aiplat_pipeline_last_error(pl, msg, sizeof msg);
  return msg;
}

/* ---- without a server ---------------------------------------------------- */

START_TEST(phases_and_engines) {
  static const struct {
    aiplat_pipeline_phase phase;
    const char *name;
    bool terminal;
  } cases[] = {{AIPLAT_PIPELINE_UNKNOWN, "unknown", false},
               {AIPLAT_PIPELINE_PENDING, "pending", false},
               {AIPLAT_PIPELINE_RUNNING, "running", false},
               {AIPLAT_PIPELINE_SUCCEEDED, "succeeded", true},
               {AIPLAT_PIPELINE_FAILED, "failed", true},
               {AIPLAT_PIPELINE_ERROR, "error", true},
               {AIPLAT_PIPELINE_CANCELLED, "cancelled", true},
               {AIPLAT_PIPELINE_SKIPPED, "skipped", true},
               {AIPLAT_PIPELINE_CANCELLING, "cancelling", false},
               {AIPLAT_PIPELINE_PAUSED, "paused", false}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_int_eq(cases[i].phase, (int)i); /* pinned numbers */
    ck_assert_str_eq(aiplat_pipeline_phase_str(cases[i].phase), cases[i].name);
    ck_assert(aiplat_pipeline_phase_is_terminal(cases[i].phase) ==
              cases[i].terminal);
  }
  ck_assert_str_eq(aiplat_pipeline_phase_str((aiplat_pipeline_phase)99),
                   "unknown");
  ck_assert(!aiplat_pipeline_phase_is_terminal((aiplat_pipeline_phase)-1));
  aiplat_pipeline_engine e;
  ck_assert_int_eq(aiplat_pipeline_engine_parse("Argo", &e), AIPLAT_OK);
  ck_assert_int_eq(e, AIPLAT_PIPELINE_ARGO);
  ck_assert_int_eq(aiplat_pipeline_engine_parse("KUBEFLOW", &e), AIPLAT_OK);
  ck_assert_int_eq(e, AIPLAT_PIPELINE_KUBEFLOW);
  ck_assert_int_eq(aiplat_pipeline_engine_parse("kfp", &e), AIPLAT_OK);
  ck_assert_int_eq(e, AIPLAT_PIPELINE_KUBEFLOW);
  ck_assert_int_eq(aiplat_pipeline_engine_parse("airflow", &e),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_engine_parse(NULL, &e),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(aiplat_pipeline_engine_str(AIPLAT_PIPELINE_ARGO), "argo");
  ck_assert_str_eq(aiplat_pipeline_engine_str(AIPLAT_PIPELINE_KUBEFLOW),
                   "kubeflow");
  ck_assert_ptr_null(aiplat_pipeline_engine_str((aiplat_pipeline_engine)0));
}
END_TEST

START_TEST(configuration) {
  ck_assert(aiplat_pipeline_engine_configured(pl, AIPLAT_PIPELINE_ARGO));
  ck_assert(aiplat_pipeline_engine_configured(pl, AIPLAT_PIPELINE_KUBEFLOW));
  ck_assert(!aiplat_pipeline_engine_configured(pl, (aiplat_pipeline_engine)7));
  ck_assert(!aiplat_pipeline_engine_configured(NULL, AIPLAT_PIPELINE_ARGO));

  /* an engine without URL is not configured: CONFIG naming the variable */
  aiplat_pipeline *p2 = NULL;
  aiplat_config *c2 = NULL;
  ck_assert_int_eq(aiplat_config_create(&c2), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(c2, "KUBEFLOW_URL", ""), AIPLAT_OK);
  ck_assert_int_eq(aiplat_pipeline_create(&p2, c2), AIPLAT_OK);
  ck_assert(!aiplat_pipeline_engine_configured(p2, AIPLAT_PIPELINE_ARGO));
  ck_assert(!aiplat_pipeline_engine_configured(p2, AIPLAT_PIPELINE_KUBEFLOW));
  char *id = NULL;
  ck_assert_int_eq(aiplat_pipeline_submit(p2, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_CONFIG);
  ck_assert_ptr_null(id);
  aiplat_pipeline_last_error(p2, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "ARGO_URL"));
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(aiplat_pipeline_status(p2, AIPLAT_PIPELINE_KUBEFLOW, "r",
                                          NULL, &ph, NULL, 0),
                   AIPLAT_ERR_CONFIG);
  aiplat_pipeline_last_error(p2, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "KUBEFLOW_URL"));
  aiplat_pipeline_destroy(p2);
  p2 = NULL;

  /* bad settings stop create with the variable's name */
  static const struct {
    const char *name, *value, *expect;
  } bad[] = {{"ARGO_NAMESPACE", "AI/ML", "ARGO_NAMESPACE"},
             {"ARGO_NAMESPACE", "..", "ARGO_NAMESPACE"},
             {"ARGO_URL", "argo-server:2746", "ARGO_URL"},
             {"KUBEFLOW_URL", "nats://x:4222", "KUBEFLOW_URL"},
             {"ARGO_TOKEN_FILE", "/nonexistent/aiplat/token", "ARGO_TOKEN"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aiplat_config *c3 = NULL;
    ck_assert_int_eq(aiplat_config_create(&c3), AIPLAT_OK);
    if (strcmp(bad[i].name, "ARGO_TOKEN_FILE") == 0)
      TH_SETENV(bad[i].name, bad[i].value);
    else
      ck_assert_int_eq(aiplat_config_set(c3, bad[i].name, bad[i].value),
                       AIPLAT_OK);
    ck_assert_int_eq(aiplat_pipeline_create(&p2, c3), AIPLAT_ERR_CONFIG);
    ck_assert_ptr_null(p2);
    aiplat_error_last(msg, sizeof msg);
    ck_assert_msg(strstr(msg, bad[i].expect) != NULL, "%s: %s", bad[i].name,
                  msg);
    /* a secret's value is never repeated */
    ck_assert_ptr_null(strstr(msg, TOKEN));
    aiplat_config_destroy(c3);
    unsetenv("ARGO_TOKEN_FILE");
  }
  aiplat_config_destroy(c2);
  ck_assert_int_eq(aiplat_pipeline_create(NULL, cfg),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_pipeline_destroy(NULL);
  aiplat_pipeline_close(NULL);
}
END_TEST

START_TEST(token_from_file) {
  char path[] = "/tmp/aiplat-token-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, TOKEN "\n", strlen(TOKEN) + 1),
                   (ssize_t)strlen(TOKEN) + 1);
  close(fd);
  TH_SETENV("KUBEFLOW_TOKEN_FILE", path);
  aiplat_pipeline *p2 = NULL;
  ck_assert_int_eq(aiplat_pipeline_create(&p2, NULL), AIPLAT_OK);
  aiplat_pipeline_destroy(p2);
  unsetenv("KUBEFLOW_TOKEN_FILE");
  unlink(path);
}
END_TEST

/* Hostile names never reach a URL: INVALID_ARGUMENT and no request. */
START_TEST(hostile_inputs_send_nothing) {
  static const char *const hostile[] = {
      "a/b", "..",    "../x", "a?b",  "a b",
      "a#b", "a%2Fb", "",     "a\nb", "x/../../api/v1/workflows"};
  char *id = NULL;
  aiplat_pipeline_phase ph;
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    const char *h = hostile[i];
    /* Argo: namespace, template, run id */
    ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                            h, NULL, NULL, 0, &id),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, h, NULL,
                                            NULL, NULL, 0, &id),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, h, NULL,
                                            &ph, msg, sizeof msg),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO,
                                            "train-abcde", h, &ph, NULL, 0),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    /* Kubeflow: pipeline name, namespace, run id */
    ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW, h,
                                            NULL, NULL, NULL, 0, &id),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW,
                                            "train", h, NULL, NULL, 0, &id),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_KUBEFLOW, h,
                                            NULL, &ph, NULL, 0),
                     AIPLAT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(id);
  }
  ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_KUBEFLOW, NULL,
                                          NULL, &ph, NULL, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, NULL, NULL,
                                          NULL, NULL, 0, &id),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "argo"));
  ck_assert_int_eq(th_fake_request_count(argo), 0);
  ck_assert_int_eq(th_fake_request_count(kfp), 0);
}
END_TEST

START_TEST(bad_parameters_send_nothing) {
  char *id = NULL;
  const char *ok_keys[] = {"a", "b"};
  const char *ok_values[] = {"1", "2"};
  static const struct {
    const char *key, *value;
    aiplat_status rc;
  } bad[] = {{"a=b", "v", AIPLAT_ERR_INVALID_ARGUMENT},
             {"", "v", AIPLAT_ERR_INVALID_ARGUMENT},
             {"a b", "v", AIPLAT_ERR_INVALID_ARGUMENT},
             {"a", "dup", AIPLAT_ERR_INVALID_ARGUMENT},
             {"k", "\xff\xfe not utf-8", AIPLAT_ERR_INVALID_ARGUMENT},
             {NULL, "v", AIPLAT_ERR_INVALID_ARGUMENT},
             {"k", NULL, AIPLAT_ERR_INVALID_ARGUMENT}};
  for (int engine = 1; engine <= 2; engine++) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      const char *keys[] = {ok_keys[0], ok_keys[1], bad[i].key};
      const char *values[] = {ok_values[0], ok_values[1], bad[i].value};
      aiplat_status rc =
          aiplat_pipeline_submit(pl, (aiplat_pipeline_engine)engine, "train",
                                 NULL, keys, values, 3, &id);
      ck_assert_msg(rc == bad[i].rc, "engine %d case %zu: %d %s", engine, i, rc,
                    last());
      ck_assert_ptr_null(id);
    }
    ck_assert_int_eq(aiplat_pipeline_submit(pl, (aiplat_pipeline_engine)engine,
                                            "train", NULL, NULL, NULL, 2, &id),
                     AIPLAT_ERR_INVALID_ARGUMENT);
  }
  /* too many, too long */
  static const char *many_k[AIPLAT_PIPELINE_MAX_PARAMS + 1];
  static const char *many_v[AIPLAT_PIPELINE_MAX_PARAMS + 1];
  for (int i = 0; i <= AIPLAT_PIPELINE_MAX_PARAMS; i++) {
    many_k[i] = "k";
    many_v[i] = "v";
  }
  ck_assert_int_eq(
      aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train", NULL, many_k,
                             many_v, AIPLAT_PIPELINE_MAX_PARAMS + 1, &id),
      AIPLAT_ERR_TOO_LARGE);
  size_t big = 300 * 1024;
  char *huge = malloc(big + 1);
  ck_assert_ptr_nonnull(huge);
  memset(huge, 'x', big);
  huge[big] = '\0';
  const char *hk[] = {"k"};
  const char *hv[] = {huge};
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW, "train",
                                          NULL, hk, hv, 1, &id),
                   AIPLAT_ERR_TOO_LARGE);
  free(huge);
  ck_assert_int_eq(th_fake_request_count(argo), 0);
  ck_assert_int_eq(th_fake_request_count(kfp), 0);
}
END_TEST

START_TEST(null_arguments) {
  char *id = NULL;
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(aiplat_pipeline_submit(NULL, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_submit(pl, (aiplat_pipeline_engine)0,
                                          "train", NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_status(NULL, AIPLAT_PIPELINE_ARGO, "x", NULL,
                                          &ph, NULL, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, "x", NULL,
                                          NULL, NULL, 0),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_last_error(NULL, msg, sizeof msg),
                   AIPLAT_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(closed_handle) {
  aiplat_pipeline_close(pl);
  char *id = NULL;
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_CANCELLED);
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_KUBEFLOW, "r",
                                          NULL, &ph, NULL, 0),
                   AIPLAT_ERR_CANCELLED);
  ck_assert_int_eq(th_fake_request_count(argo), 0);
}
END_TEST

/* ---- against the fakes --------------------------------------------------- */

static char *submit_ok(aiplat_pipeline_engine e, const char *name,
                       const char *ns, const char *const *k,
                       const char *const *v, size_t n) {
  char *id = NULL;
  aiplat_status rc = aiplat_pipeline_submit(pl, e, name, ns, k, v, n, &id);
  ck_assert_msg(rc == AIPLAT_OK, "submit %s: %s", name, last());
  ck_assert_ptr_nonnull(id);
  return id;
}

/* Poll until the phases in @want have been seen in order, then check that
 * the terminal phase stays. */
static void expect_phases(aiplat_pipeline_engine e, const char *id,
                          const char *ns, const aiplat_pipeline_phase *want,
                          size_t nwant, const char *msg_part) {
  aiplat_pipeline_phase ph;
  for (size_t i = 0; i < nwant; i++) {
    aiplat_status rc =
        aiplat_pipeline_status(pl, e, id, ns, &ph, msg, sizeof msg);
    ck_assert_msg(rc == AIPLAT_OK, "status %s: %s", id, last());
    ck_assert_msg(ph == want[i], "%s poll %zu: %s, expected %s", id, i,
                  aiplat_pipeline_phase_str(ph),
                  aiplat_pipeline_phase_str(want[i]));
    ck_assert(aiplat_pipeline_phase_is_terminal(ph) == (i == nwant - 1));
  }
  if (msg_part) ck_assert_msg(strstr(msg, msg_part) != NULL, "message %s", msg);
  ck_assert_int_eq(aiplat_pipeline_status(pl, e, id, ns, &ph, NULL, 0),
                   AIPLAT_OK);
  ck_assert_int_eq(ph, want[nwant - 1]);
}

#define PH(...) ((const aiplat_pipeline_phase[]){__VA_ARGS__})
#define NPH(...)                                          \
  (sizeof((const aiplat_pipeline_phase[]){__VA_ARGS__}) / \
   sizeof(aiplat_pipeline_phase))
#define EXPECT(e, id, ns, part, ...) \
  expect_phases(e, id, ns, PH(__VA_ARGS__), NPH(__VA_ARGS__), part)

START_TEST(argo_runs_to_every_end) {
  char *id = submit_ok(AIPLAT_PIPELINE_ARGO, "train", NULL, NULL, NULL, 0);
  ck_assert_int_eq(strncmp(id, "train-", 6), 0);
  ck_assert_int_eq(strlen(id), 11);
  EXPECT(AIPLAT_PIPELINE_ARGO, id, NULL, NULL, AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_RUNNING, AIPLAT_PIPELINE_SUCCEEDED);
  ck_assert_str_eq(msg, "");
  aiplat_free(id);
  id = submit_ok(AIPLAT_PIPELINE_ARGO, "broken", NULL, NULL, NULL, 0);
  EXPECT(AIPLAT_PIPELINE_ARGO, id, NULL, "failed", AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_RUNNING, AIPLAT_PIPELINE_FAILED);
  aiplat_free(id);
  id = submit_ok(AIPLAT_PIPELINE_ARGO, "crash", "ai-ml", NULL, NULL, 0);
  EXPECT(AIPLAT_PIPELINE_ARGO, id, "ai-ml", "exceeded quota",
         AIPLAT_PIPELINE_PENDING, AIPLAT_PIPELINE_RUNNING,
         AIPLAT_PIPELINE_ERROR);
  aiplat_free(id);
  /* another namespace */
  id = submit_ok(AIPLAT_PIPELINE_ARGO, "train", "other", NULL, NULL, 0);
  EXPECT(AIPLAT_PIPELINE_ARGO, id, "other", NULL, AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_RUNNING, AIPLAT_PIPELINE_SUCCEEDED);
  aiplat_free(id);
}
END_TEST

START_TEST(kfp_runs_to_every_end) {
  char *id = submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "train", NULL, NULL, NULL, 0);
  ck_assert_int_eq(strlen(id), 36); /* a UUID */
  EXPECT(AIPLAT_PIPELINE_KUBEFLOW, id, NULL, NULL, AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_RUNNING, AIPLAT_PIPELINE_SUCCEEDED);
  aiplat_free(id);
  id = submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "broken", NULL, NULL, NULL, 0);
  EXPECT(AIPLAT_PIPELINE_KUBEFLOW, id, NULL, "task train failed",
         AIPLAT_PIPELINE_PENDING, AIPLAT_PIPELINE_RUNNING,
         AIPLAT_PIPELINE_FAILED);
  aiplat_free(id);
  id = submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "stopped", NULL, NULL, NULL, 0);
  EXPECT(AIPLAT_PIPELINE_KUBEFLOW, id, NULL, NULL, AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_RUNNING, AIPLAT_PIPELINE_CANCELLING,
         AIPLAT_PIPELINE_CANCELLED);
  aiplat_free(id);
  id = submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "cached", NULL, NULL, NULL, 0);
  EXPECT(AIPLAT_PIPELINE_KUBEFLOW, id, NULL, NULL, AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_SKIPPED);
  aiplat_free(id);
  /* the outcome parameter of the fake selects the end */
  const char *k[] = {"outcome"};
  const char *v[] = {"FAILED"};
  id = submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "train", "team-a", k, v, 1);
  EXPECT(AIPLAT_PIPELINE_KUBEFLOW, id, NULL, NULL, AIPLAT_PIPELINE_PENDING,
         AIPLAT_PIPELINE_RUNNING, AIPLAT_PIPELINE_FAILED);
  aiplat_free(id);
}
END_TEST

static const char *const pkeys[] = {"text", "expr", "uni", "empty", "ctl"};
static const char *const pvals[] = {"hello world", "a=b=c",
                                    "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                    "", "l1\nl2\t\"q\"\\ <&>"};
#define NP (sizeof pkeys / sizeof pkeys[0])

/* The last request the fake received with @method. */
static json_t *last_request(th_fake *f, const char *method, int *count) {
  json_t *all = th_fake_requests(f);
  ck_assert_ptr_nonnull(all);
  if (count) *count = (int)json_array_size(all);
  json_t *found = NULL;
  for (size_t i = json_array_size(all); i-- > 0;) {
    json_t *r = json_array_get(all, i);
    if (strcmp(json_string_value(json_object_get(r, "method")), method) == 0) {
      found = json_incref(r);
      break;
    }
  }
  json_decref(all);
  ck_assert_ptr_nonnull(found);
  return found;
}

START_TEST(argo_parameters_carried_exactly) {
  char *id = submit_ok(AIPLAT_PIPELINE_ARGO, "train", NULL, pkeys, pvals, NP);
  json_t *r = last_request(argo, "POST", NULL);
  ck_assert_str_eq(json_string_value(json_object_get(r, "path")),
                   "/api/v1/workflows/ai-ml/submit");
  json_t *h = json_object_get(r, "headers");
  ck_assert_str_eq(json_string_value(json_object_get(h, "authorization")),
                   "Bearer " TOKEN);
  ck_assert_ptr_nonnull(
      strstr(json_string_value(json_object_get(h, "content-type")),
             "application/json"));
  json_t *body =
      json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
  ck_assert_ptr_nonnull(body);
  ck_assert_str_eq(json_string_value(json_object_get(body, "namespace")),
                   "ai-ml");
  ck_assert_str_eq(json_string_value(json_object_get(body, "resourceKind")),
                   "WorkflowTemplate");
  ck_assert_str_eq(json_string_value(json_object_get(body, "resourceName")),
                   "train");
  json_t *params =
      json_object_get(json_object_get(body, "submitOptions"), "parameters");
  ck_assert_int_eq(json_array_size(params), NP);
  for (size_t i = 0; i < NP; i++) {
    char want[128];
    snprintf(want, sizeof want, "%s=%s", pkeys[i], pvals[i]);
    ck_assert_str_eq(json_string_value(json_array_get(params, i)), want);
  }
  json_decref(body);
  json_decref(r);
  /* the status read asks only for the fields it needs */
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, id, NULL, &ph, NULL, 0),
      AIPLAT_OK);
  r = last_request(argo, "GET", NULL);
  char path[128];
  snprintf(path, sizeof path, "/api/v1/workflows/ai-ml/%s", id);
  ck_assert_str_eq(json_string_value(json_object_get(r, "path")), path);
  ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "query")),
                               "fields=metadata.name"));
  json_decref(r);
  aiplat_free(id);
}
END_TEST

START_TEST(kfp_parameters_carried_exactly) {
  char *id =
      submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "train", NULL, pkeys, pvals, NP);
  int count = 0;
  json_t *r = last_request(kfp, "POST", &count);
  ck_assert_int_eq(count, 2); /* the name lookup, then the run */
  ck_assert_str_eq(json_string_value(json_object_get(r, "path")),
                   "/apis/v2beta1/runs");
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(r, "headers"), "authorization")),
                   "Bearer " TOKEN);
  json_t *body =
      json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
  ck_assert_ptr_nonnull(body);
  ck_assert_int_eq(json_object_size(body), 3); /* no unknown fields */
  ck_assert_int_eq(
      strncmp(json_string_value(json_object_get(body, "display_name")),
              "train ", 6),
      0);
  json_t *params =
      json_object_get(json_object_get(body, "runtime_config"), "parameters");
  ck_assert_int_eq(json_object_size(params), NP);
  for (size_t i = 0; i < NP; i++)
    ck_assert_str_eq(json_string_value(json_object_get(params, pkeys[i])),
                     pvals[i]);
  const char *pid = json_string_value(json_object_get(
      json_object_get(body, "pipeline_version_reference"), "pipeline_id"));
  ck_assert_ptr_nonnull(pid);
  json_decref(r);
  /* the id came from the name lookup */
  json_t *all = th_fake_requests(kfp);
  json_t *lookup = json_array_get(all, 0);
  ck_assert_str_eq(json_string_value(json_object_get(lookup, "path")),
                   "/apis/v2beta1/pipelines/names/train");
  json_decref(all);
  json_decref(body);
  aiplat_free(id);
  /* a namespace goes into the lookup's query */
  id = submit_ok(AIPLAT_PIPELINE_KUBEFLOW, "train", "team-a", NULL, NULL, 0);
  all = th_fake_requests(kfp);
  lookup = json_array_get(all, json_array_size(all) - 2);
  ck_assert_str_eq(json_string_value(json_object_get(lookup, "query")),
                   "namespace=team-a");
  json_decref(all);
  aiplat_free(id);
}
END_TEST

START_TEST(not_found_carries_the_server_message) {
  char *id = NULL;
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "nope",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_null(id);
  ck_assert_ptr_nonnull(
      strstr(last(), "workflowtemplates.argoproj.io \"nope\" not found"));
  aiplat_error_last(msg, sizeof msg); /* the thread's record too */
  ck_assert_ptr_nonnull(strstr(msg, "not found"));
  ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO,
                                          "train-zzzzz", NULL, &ph, NULL, 0),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(
      strstr(last(), "workflows.argoproj.io \"train-zzzzz\" not found"));
  /* a template of another namespace */
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "broken",
                                          "other", NULL, NULL, 0, &id),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW, "nope",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(last(), "Namespace/Pipeline /nope not found"));
  ck_assert_int_eq(th_fake_request_count(kfp), 1); /* no run was attempted */
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_KUBEFLOW,
                             "00000000-0000-4000-8000-000000000000", NULL, &ph,
                             NULL, 0),
      AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(last(), "not found"));
}
END_TEST

/* A handle whose tokens are @argo_token / @kfp_token (NULL: none). */
static aiplat_pipeline *with_tokens(const char *argo_token,
                                    const char *kfp_token) {
  aiplat_config *c = NULL;
  ck_assert_int_eq(aiplat_config_create(&c), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(c, "ARGO_URL", th_fake_url(argo)),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(c, "KUBEFLOW_URL", th_fake_url(kfp)),
                   AIPLAT_OK);
  if (argo_token)
    ck_assert_int_eq(aiplat_config_set(c, "ARGO_TOKEN", argo_token), AIPLAT_OK);
  if (kfp_token)
    ck_assert_int_eq(aiplat_config_set(c, "KUBEFLOW_TOKEN", kfp_token),
                     AIPLAT_OK);
  aiplat_pipeline *p = NULL;
  ck_assert_int_eq(aiplat_pipeline_create(&p, c), AIPLAT_OK);
  aiplat_config_destroy(c);
  return p;
}

START_TEST(bad_tokens_are_auth_errors) {
  aiplat_pipeline *p = with_tokens("wrong-token", "wrong-token");
  char *id = NULL;
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(aiplat_pipeline_submit(p, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_AUTH);
  aiplat_pipeline_last_error(p, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "Unauthorized"));
  ck_assert_ptr_null(strstr(msg, "wrong-token")); /* never echoed */
  ck_assert_int_eq(aiplat_pipeline_submit(p, AIPLAT_PIPELINE_KUBEFLOW, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_AUTH);
  ck_assert_int_eq(aiplat_pipeline_status(p, AIPLAT_PIPELINE_KUBEFLOW, "r",
                                          NULL, &ph, NULL, 0),
                   AIPLAT_ERR_AUTH);
  aiplat_pipeline_destroy(p);
  p = with_tokens(NULL, NULL);
  ck_assert_int_eq(
      aiplat_pipeline_status(p, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0),
      AIPLAT_ERR_AUTH);
  aiplat_pipeline_last_error(p, msg, sizeof msg);
  ck_assert_ptr_nonnull(strstr(msg, "token not valid"));
  aiplat_pipeline_destroy(p);
  /* an Authorization header was sent only when a token was set */
  json_t *r = last_request(argo, "GET", NULL);
  ck_assert_ptr_null(
      json_object_get(json_object_get(r, "headers"), "authorization"));
  json_decref(r);
}
END_TEST

START_TEST(server_errors) {
  aiplat_pipeline_phase ph;
  char *id = submit_ok(AIPLAT_PIPELINE_ARGO, "train", NULL, NULL, NULL, 0);
  /* 500: the server failed; the HTTP layer does not retry it */
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_fault(argo,
                          "{\"kind\":\"status\",\"status\":500,"
                          "\"count\":-1}"));
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, id, NULL, &ph, NULL, 0),
      AIPLAT_ERR_SERVER);
  ck_assert_ptr_nonnull(strstr(last(), "injected internal error"));
  ck_assert_int_eq(th_fake_request_count(argo), 1);
  /* 503: status reads are retried (HTTP_MAX_RETRIES=2), then UNAVAILABLE */
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_fault(argo,
                          "{\"kind\":\"status\",\"status\":503,"
                          "\"count\":-1}"));
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, id, NULL, &ph, NULL, 0),
      AIPLAT_ERR_UNAVAILABLE);
  ck_assert_int_eq(th_fake_request_count(argo), 3);
  /* ... and a submit is sent once */
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_fault(argo,
                          "{\"kind\":\"status\",\"status\":503,"
                          "\"count\":-1}"));
  char *id2 = NULL;
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id2),
                   AIPLAT_ERR_UNAVAILABLE);
  ck_assert_int_eq(th_fake_request_count(argo), 1);
  /* one 503, then the retry succeeds */
  ck_assert(th_fake_reset(argo));
  ck_assert(th_fake_fault(argo, "{\"kind\":\"status\",\"status\":503}"));
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, id, NULL, &ph, NULL, 0),
      AIPLAT_OK);
  ck_assert_int_eq(ph, AIPLAT_PIPELINE_PENDING);
  ck_assert_int_eq(th_fake_request_count(argo), 2);
  /* Kubeflow's 500 with its detail */
  ck_assert(th_fake_fault(kfp, "{\"kind\":\"status\",\"status\":500}"));
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW, "train",
                                          NULL, NULL, NULL, 0, &id2),
                   AIPLAT_ERR_SERVER);
  ck_assert_ptr_null(id2);
  aiplat_free(id);
}
END_TEST

START_TEST(garbage_is_a_protocol_error) {
  aiplat_pipeline_phase ph;
  char *id = NULL;
  static const char *const paths[] = {"/api/v1/workflows/ai-ml/submit",
                                      "/api/v1/workflows/ai-ml/w"};
  ck_assert(th_fake_fault(argo, "{\"kind\":\"garbage\"}"));
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_PROTOCOL);
  ck_assert_ptr_null(id);
  ck_assert(th_fake_fault(argo,
                          "{\"kind\":\"garbage\",\"body\":"
                          "\"<html><body>proxy</body></html>\"}"));
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0),
      AIPLAT_ERR_PROTOCOL);
  ck_assert_int_eq(ph, AIPLAT_PIPELINE_UNKNOWN);
  /* JSON, but not a workflow */
  ck_assert(th_fake_fault(argo, "{\"kind\":\"garbage\",\"body\":\"[1,2]\"}"));
  ck_assert_int_eq(
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0),
      AIPLAT_ERR_PROTOCOL);
  (void)paths;
  /* Kubeflow: the lookup, the run creation, the status */
  ck_assert(th_fake_fault(kfp, "{\"kind\":\"garbage\"}"));
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_PROTOCOL);
  ck_assert(th_fake_fault(kfp,
                          "{\"kind\":\"garbage\",\"method\":\"POST\","
                          "\"body\":\"{\\\"state\\\":\\\"PENDING\\\"}\"}"));
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_KUBEFLOW, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_PROTOCOL);
  ck_assert_ptr_null(id);
  ck_assert(th_fake_fault(kfp, "{\"kind\":\"garbage\",\"body\":\"\"}"));
  ck_assert_int_eq(aiplat_pipeline_status(pl, AIPLAT_PIPELINE_KUBEFLOW, "r",
                                          NULL, &ph, NULL, 0),
                   AIPLAT_ERR_PROTOCOL);
}
END_TEST

START_TEST(slow_answers_time_out) {
  aiplat_config_set(cfg, "HTTP_TIMEOUT", "300ms");
  aiplat_pipeline *p = NULL;
  ck_assert_int_eq(aiplat_pipeline_create(&p, cfg), AIPLAT_OK);
  ck_assert(th_fake_fault(argo, "{\"kind\":\"slow\",\"delay_ms\":3000}"));
  aiplat_pipeline_phase ph;
  int64_t t0 = 0;
  (void)t0;
  ck_assert_int_eq(
      aiplat_pipeline_status(p, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0),
      AIPLAT_ERR_TIMEOUT);
  ck_assert(th_fake_fault(kfp, "{\"kind\":\"slow\",\"delay_ms\":3000}"));
  char *id = NULL;
  ck_assert_int_eq(aiplat_pipeline_submit(p, AIPLAT_PIPELINE_KUBEFLOW, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_TIMEOUT);
  aiplat_pipeline_destroy(p);
}
END_TEST

START_TEST(dropped_connection) {
  ck_assert(th_fake_fault(argo, "{\"kind\":\"drop\",\"count\":-1}"));
  aiplat_pipeline_phase ph;
  aiplat_status rc =
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0);
  ck_assert_msg(rc == AIPLAT_ERR_CONNECTION || rc == AIPLAT_ERR_PROTOCOL,
                "%d: %s", rc, last());
}
END_TEST

typedef struct {
  aiplat_status rc;
} closer_arg;

static void *slow_status(void *ud) {
  closer_arg *a = ud;
  aiplat_pipeline_phase ph;
  a->rc =
      aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0);
  return NULL;
}

START_TEST(close_stops_a_request_in_progress) {
  ck_assert(th_fake_fault(argo, "{\"kind\":\"slow\",\"delay_ms\":4000}"));
  closer_arg a = {AIPLAT_OK};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, slow_status, &a), 0);
  /* let the request reach the fake */
  for (int i = 0; i < 200 && th_fake_request_count(argo) < 1; i++)
    usleep(10000);
  aiplat_pipeline_close(pl);
  pthread_join(t, NULL);
  ck_assert_int_eq(a.rc, AIPLAT_ERR_CANCELLED);
}
END_TEST

START_TEST(bearer_prefixed_token) {
  /* the form argo's CLI documents: ARGO_TOKEN="Bearer xyz" */
  aiplat_pipeline *p = with_tokens("Bearer " TOKEN, TOKEN);
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(
      aiplat_pipeline_status(p, AIPLAT_PIPELINE_ARGO, "w", NULL, &ph, NULL, 0),
      AIPLAT_ERR_NOT_FOUND); /* authenticated, no such run */
  json_t *r = last_request(argo, "GET", NULL);
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(r, "headers"), "authorization")),
                   "Bearer " TOKEN);
  json_decref(r);
  aiplat_pipeline_destroy(p);
}
END_TEST

START_TEST(name_clash_is_exists) {
  /* argo answers 409 AlreadyExists; a fault stands in for the clash */
  ck_assert(th_fake_fault(argo,
                          "{\"kind\":\"status\",\"status\":409,"
                          "\"message\":\"workflows.argoproj.io \\\"w\\\" "
                          "already exists\"}"));
  char *id = NULL;
  ck_assert_int_eq(aiplat_pipeline_submit(pl, AIPLAT_PIPELINE_ARGO, "train",
                                          NULL, NULL, NULL, 0, &id),
                   AIPLAT_ERR_EXISTS);
  ck_assert_ptr_nonnull(strstr(last(), "already exists"));
}
END_TEST

/* ---- asynchronous forms -------------------------------------------------- */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  aiplat_status st;
  char message[1024];
  char run_id[AIPLAT_PIPELINE_MAX_RUN_ID + 1];
  aiplat_pipeline_phase phase;
  char run_msg[512];
  pthread_t caller, callee;
  aiplat_status blocking_rc; /* a blocking call from the callback */
} waiter;

static void waiter_init(waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->caller = pthread_self();
}

static void waiter_wait(waiter *w) {
  pthread_mutex_lock(&w->mu);
  while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  ck_assert_int_eq(w->done, 1);
  ck_assert(!pthread_equal(w->caller, w->callee));
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

static void waiter_wake(waiter *w, aiplat_status st, const char *message) {
  snprintf(w->message, sizeof w->message, "%s", message);
  w->callee = pthread_self();
  pthread_mutex_lock(&w->mu);
  w->st = st;
  w->done++;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void on_submitted(aiplat_status st, const char *message,
                         const char *run_id, void *ud) {
  waiter *w = ud;
  ck_assert(st == AIPLAT_OK ? run_id != NULL && *message == '\0'
                            : run_id == NULL && *message != '\0');
  if (run_id) snprintf(w->run_id, sizeof w->run_id, "%s", run_id);
  aiplat_pipeline_phase ph;
  w->blocking_rc = aiplat_pipeline_status(pl, AIPLAT_PIPELINE_ARGO, "w", NULL,
                                          &ph, NULL, 0);
  waiter_wake(w, st, message);
}

static void on_status(aiplat_status st, const char *message,
                      aiplat_pipeline_phase phase, const char *run_msg,
                      void *ud) {
  waiter *w = ud;
  ck_assert_ptr_nonnull(run_msg);
  w->phase = phase;
  snprintf(w->run_msg, sizeof w->run_msg, "%s", run_msg);
  waiter_wake(w, st, message);
}

static aiplat_status submit_async(aiplat_pipeline_engine e, const char *name,
                                  const aiplat_pipeline_options *o,
                                  aiplat_call *call, waiter *w) {
  waiter_init(w);
  aiplat_status rc =
      aiplat_pipeline_submit_async(pl, e, name, NULL, NULL, 0, o, call,
                                   on_submitted, w);
  if (rc == AIPLAT_OK) waiter_wait(w);
  return rc == AIPLAT_OK ? w->st : rc;
}

static aiplat_status status_async(aiplat_pipeline_engine e, const char *id,
                                  aiplat_call *call, waiter *w) {
  waiter_init(w);
  aiplat_status rc =
      aiplat_pipeline_status_async(pl, e, id, NULL, call, on_status, w);
  if (rc == AIPLAT_OK) waiter_wait(w);
  return rc == AIPLAT_OK ? w->st : rc;
}

/* Poll through the asynchronous form until a terminal phase. */
static aiplat_pipeline_phase run_to_end_async(aiplat_pipeline_engine e,
                                              const char *id) {
  waiter w;
  for (int i = 0; i < 20; i++) {
    ck_assert_msg(status_async(e, id, NULL, &w) == AIPLAT_OK, "%s",
                  w.message);
    if (aiplat_pipeline_phase_is_terminal(w.phase)) return w.phase;
  }
  ck_abort_msg("run %s did not end", id);
  return AIPLAT_PIPELINE_UNKNOWN;
}

START_TEST(async_submit_and_status_on_both_engines) {
  waiter w;
  ck_assert_msg(submit_async(AIPLAT_PIPELINE_ARGO, "train", NULL, NULL, &w) ==
                    AIPLAT_OK,
                "%s", w.message);
  ck_assert_str_eq(w.message, "");
  /* the callback runs on the event loop thread: blocking calls refuse */
  ck_assert_int_eq(w.blocking_rc, AIPLAT_ERR_INTERNAL);
  ck_assert_int_eq(run_to_end_async(AIPLAT_PIPELINE_ARGO, w.run_id),
                   AIPLAT_PIPELINE_SUCCEEDED);
  ck_assert_msg(submit_async(AIPLAT_PIPELINE_KUBEFLOW, "broken", NULL, NULL,
                             &w) == AIPLAT_OK,
                "%s", w.message);
  char id[sizeof w.run_id];
  snprintf(id, sizeof id, "%s", w.run_id);
  ck_assert_int_eq(run_to_end_async(AIPLAT_PIPELINE_KUBEFLOW, id),
                   AIPLAT_PIPELINE_FAILED);
  ck_assert_int_eq(status_async(AIPLAT_PIPELINE_KUBEFLOW, id, NULL, &w),
                   AIPLAT_OK);
  ck_assert_str_eq(w.run_msg, "task train failed");
  /* an unknown run: the server's message, through the callback */
  ck_assert_int_eq(
      status_async(AIPLAT_PIPELINE_ARGO, "no-such-run", NULL, &w),
      AIPLAT_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(w.message, "not found"));
  ck_assert_int_eq(w.phase, AIPLAT_PIPELINE_UNKNOWN);
}
END_TEST

/* The body of the last POST of the Kubeflow fake, parsed. */
static json_t *last_run_body(void) {
  json_t *r = last_request(kfp, "POST", NULL);
  json_t *body = json_loads(json_string_value(json_object_get(r, "body")), 0,
                            NULL);
  json_decref(r);
  ck_assert_ptr_nonnull(body);
  return body;
}

START_TEST(kfp_version_reaches_the_server) {
  aiplat_pipeline_options *o = NULL;
  ck_assert_int_eq(aiplat_pipeline_options_create(&o), AIPLAT_OK);
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, "v2"), AIPLAT_OK);
  waiter w;
  ck_assert_msg(submit_async(AIPLAT_PIPELINE_KUBEFLOW, "model", o, NULL, &w) ==
                    AIPLAT_OK,
                "%s", w.message);
  char id[sizeof w.run_id];
  snprintf(id, sizeof id, "%s", w.run_id);
  /* the lookup of the version by name, as ListPipelineVersions takes it */
  json_t *all = th_fake_requests(kfp);
  ck_assert_int_eq(json_array_size(all), 3);
  json_t *lookup = json_array_get(all, 1);
  const char *path = json_string_value(json_object_get(lookup, "path"));
  const char *query = json_string_value(json_object_get(lookup, "query"));
  ck_assert_msg(strstr(path, "/versions") != NULL, "%s", path);
  ck_assert_msg(strncmp(query, "filter=", 7) == 0 &&
                    strstr(query, "%22string_value%22%3A%22v2%22") != NULL,
                "%s", query);
  json_decref(all);
  json_t *body = last_run_body();
  json_t *ref = json_object_get(body, "pipeline_version_reference");
  const char *pid = json_string_value(json_object_get(ref, "pipeline_id"));
  const char *vid =
      json_string_value(json_object_get(ref, "pipeline_version_id"));
  ck_assert_ptr_nonnull(pid);
  ck_assert_ptr_nonnull(vid);
  ck_assert_str_ne(pid, vid);
  char v2_id[160];
  snprintf(v2_id, sizeof v2_id, "%s", vid);
  json_decref(body);
  /* v2's runs fail in the fake; the latest (v3) succeeds */
  ck_assert_int_eq(run_to_end_async(AIPLAT_PIPELINE_KUBEFLOW, id),
                   AIPLAT_PIPELINE_FAILED);

  ck_assert(th_fake_reset(kfp));
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, NULL), AIPLAT_OK);
  ck_assert_int_eq(
      submit_async(AIPLAT_PIPELINE_KUBEFLOW, "model", o, NULL, &w), AIPLAT_OK);
  ck_assert_int_eq(th_fake_request_count(kfp), 2); /* no version lookup */
  body = last_run_body();
  ref = json_object_get(body, "pipeline_version_reference");
  ck_assert_ptr_null(json_object_get(ref, "pipeline_version_id"));
  json_decref(body);
  snprintf(id, sizeof id, "%s", w.run_id);
  ck_assert_int_eq(run_to_end_async(AIPLAT_PIPELINE_KUBEFLOW, id),
                   AIPLAT_PIPELINE_SUCCEEDED);

  /* a version id (what PipelineTrigger documents) is taken too */
  ck_assert(th_fake_reset(kfp));
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, v2_id), AIPLAT_OK);
  ck_assert_msg(submit_async(AIPLAT_PIPELINE_KUBEFLOW, "model", o, NULL, &w) ==
                    AIPLAT_OK,
                "%s", w.message);
  ck_assert_int_eq(th_fake_request_count(kfp), 4);
  body = last_run_body();
  ref = json_object_get(body, "pipeline_version_reference");
  ck_assert_str_eq(
      json_string_value(json_object_get(ref, "pipeline_version_id")), v2_id);
  json_decref(body);

  /* a version the pipeline does not have: no run is created */
  ck_assert(th_fake_reset(kfp));
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, "v9"), AIPLAT_OK);
  ck_assert_int_eq(
      submit_async(AIPLAT_PIPELINE_KUBEFLOW, "model", o, NULL, &w),
      AIPLAT_ERR_NOT_FOUND);
  ck_assert_msg(strstr(w.message, "\"v9\"") != NULL, "%s", w.message);
  ck_assert_int_eq(th_fake_request_count(kfp), 3);
  json_t *reqs = th_fake_requests(kfp);
  for (size_t i = 0; i < json_array_size(reqs); i++)
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(reqs, i), "method")),
                     "GET");
  json_decref(reqs);
  aiplat_pipeline_options_destroy(o);
}
END_TEST

START_TEST(argo_version_is_refused_before_sending) {
  aiplat_pipeline_options *o = NULL;
  ck_assert_int_eq(aiplat_pipeline_options_create(&o), AIPLAT_OK);
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, "v2"), AIPLAT_OK);
  waiter w;
  ck_assert_int_eq(submit_async(AIPLAT_PIPELINE_ARGO, "train", o, NULL, &w),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(last(), "not versioned"));
  ck_assert_int_eq(w.done, 0);
  ck_assert_int_eq(th_fake_request_count(argo), 0);
  /* options are checked when set */
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, "a/b"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_pipeline_options_set_namespace(o, "Not_A_Label"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  /* a namespace per call */
  ck_assert_int_eq(aiplat_pipeline_options_set_version(o, NULL), AIPLAT_OK);
  ck_assert_int_eq(aiplat_pipeline_options_set_namespace(o, "other"),
                   AIPLAT_OK);
  ck_assert_msg(submit_async(AIPLAT_PIPELINE_ARGO, "train", o, NULL, &w) ==
                    AIPLAT_OK,
                "%s", w.message);
  json_t *r = last_request(argo, "POST", NULL);
  ck_assert_str_eq(json_string_value(json_object_get(r, "path")),
                   "/api/v1/workflows/other/submit");
  json_decref(r);
  ck_assert_int_eq(aiplat_pipeline_submit_async(pl, AIPLAT_PIPELINE_ARGO,
                                                "train", NULL, NULL, 0, NULL,
                                                NULL, NULL, NULL),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_pipeline_options_destroy(o);
}
END_TEST

START_TEST(async_faults) {
  waiter w;
  /* a 500 on the run's creation, after the lookup */
  ck_assert(th_fake_fault(
      kfp, "{\"kind\":\"status\",\"status\":500,\"method\":\"POST\"}"));
  ck_assert_int_eq(submit_async(AIPLAT_PIPELINE_KUBEFLOW, "train", NULL, NULL,
                                &w),
                   AIPLAT_ERR_SERVER);
  ck_assert_ptr_nonnull(strstr(w.message, "500"));
  /* garbage where a workflow should be */
  ck_assert(th_fake_fault(argo, "{\"kind\":\"garbage\"}"));
  ck_assert_int_eq(status_async(AIPLAT_PIPELINE_ARGO, "w", NULL, &w),
                   AIPLAT_ERR_PROTOCOL);
  /* 409 means a name clash here */
  ck_assert(th_fake_fault(argo, "{\"kind\":\"status\",\"status\":409}"));
  ck_assert_int_eq(submit_async(AIPLAT_PIPELINE_ARGO, "train", NULL, NULL, &w),
                   AIPLAT_ERR_EXISTS);
}
END_TEST

START_TEST(async_deadline_bounds_the_call) {
  aiplat_call *call = NULL;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  waiter w;
  /* a slow status read, under HTTP_TIMEOUT (5s) but past the deadline */
  ck_assert(th_fake_fault(argo, "{\"kind\":\"slow\",\"delay_ms\":3000}"));
  ck_assert_int_eq(aiplat_call_set_timeout_ms(call, 300), AIPLAT_OK);
  ck_assert_int_eq(status_async(AIPLAT_PIPELINE_ARGO, "w", call, &w),
                   AIPLAT_ERR_TIMEOUT);
  /* the second request of a Kubeflow submit is slow: the one deadline
   * covers both */
  ck_assert(th_fake_fault(
      kfp, "{\"kind\":\"slow\",\"delay_ms\":3000,\"method\":\"POST\"}"));
  ck_assert_int_eq(aiplat_call_set_timeout_ms(call, 500), AIPLAT_OK);
  ck_assert_int_eq(
      submit_async(AIPLAT_PIPELINE_KUBEFLOW, "train", NULL, call, &w),
      AIPLAT_ERR_TIMEOUT);
  ck_assert_int_eq(th_fake_request_count(kfp), 2);
  /* a deadline already past sends nothing */
  ck_assert(th_fake_reset(argo));
  ck_assert_int_eq(aiplat_call_set_deadline_unix_ms(call, 1000), AIPLAT_OK);
  ck_assert_int_eq(status_async(AIPLAT_PIPELINE_ARGO, "w", call, &w),
                   AIPLAT_ERR_TIMEOUT);
  ck_assert_int_eq(th_fake_request_count(argo), 0);
  aiplat_call_destroy(call);
}
END_TEST

START_TEST(async_cancel_mid_call) {
  aiplat_call *call = NULL;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  ck_assert(th_fake_fault(kfp, "{\"kind\":\"slow\",\"delay_ms\":4000}"));
  waiter w;
  waiter_init(&w);
  ck_assert_int_eq(
      aiplat_pipeline_status_async(pl, AIPLAT_PIPELINE_KUBEFLOW, "r1", NULL,
                                   call, on_status, &w),
      AIPLAT_OK);
  for (int i = 0; i < 200 && th_fake_request_count(kfp) < 1; i++)
    usleep(10000);
  ck_assert_int_eq(th_fake_request_count(kfp), 1);
  aiplat_call_cancel(call);
  waiter_wait(&w);
  ck_assert_int_eq(w.st, AIPLAT_ERR_CANCELLED);
  ck_assert_int_eq(w.done, 1);
  aiplat_call_destroy(call);
  /* closing the handle cancels an asynchronous call too */
  ck_assert(th_fake_fault(argo, "{\"kind\":\"slow\",\"delay_ms\":4000}"));
  waiter_init(&w);
  ck_assert_int_eq(aiplat_pipeline_status_async(pl, AIPLAT_PIPELINE_ARGO, "w",
                                                NULL, NULL, on_status, &w),
                   AIPLAT_OK);
  for (int i = 0; i < 200 && th_fake_request_count(argo) < 1; i++)
    usleep(10000);
  aiplat_pipeline_close(pl);
  waiter_wait(&w);
  ck_assert_int_eq(w.st, AIPLAT_ERR_CANCELLED);
}
END_TEST

START_TEST(engine_phase_names) {
  ck_assert_str_eq(aiplat_pipeline_phase_engine_str(AIPLAT_PIPELINE_ARGO,
                                                    AIPLAT_PIPELINE_RUNNING),
                   "Running");
  ck_assert_str_eq(aiplat_pipeline_phase_engine_str(AIPLAT_PIPELINE_KUBEFLOW,
                                                    AIPLAT_PIPELINE_CANCELLED),
                   "CANCELED");
  ck_assert_str_eq(aiplat_pipeline_phase_engine_str(AIPLAT_PIPELINE_KUBEFLOW,
                                                    AIPLAT_PIPELINE_ERROR),
                   "FAILED");
  ck_assert_str_eq(
      aiplat_pipeline_phase_engine_str(AIPLAT_PIPELINE_ARGO,
                                       (aiplat_pipeline_phase)99),
      "");
  ck_assert_ptr_null(aiplat_pipeline_phase_engine_str(
      (aiplat_pipeline_engine)7, AIPLAT_PIPELINE_RUNNING));
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("pipeline");
  TCase *tc = tcase_create("client");
  tcase_add_unchecked_fixture(tc, start_fakes, stop_fakes);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, phases_and_engines);
  tcase_add_test(tc, configuration);
  tcase_add_test(tc, token_from_file);
  tcase_add_test(tc, hostile_inputs_send_nothing);
  tcase_add_test(tc, bad_parameters_send_nothing);
  tcase_add_test(tc, null_arguments);
  tcase_add_test(tc, closed_handle);
  tcase_add_test(tc, argo_runs_to_every_end);
  tcase_add_test(tc, kfp_runs_to_every_end);
  tcase_add_test(tc, argo_parameters_carried_exactly);
  tcase_add_test(tc, kfp_parameters_carried_exactly);
  tcase_add_test(tc, not_found_carries_the_server_message);
  tcase_add_test(tc, bad_tokens_are_auth_errors);
  tcase_add_test(tc, bearer_prefixed_token);
  tcase_add_test(tc, server_errors);
  tcase_add_test(tc, name_clash_is_exists);
  tcase_add_test(tc, garbage_is_a_protocol_error);
  tcase_add_test(tc, slow_answers_time_out);
  tcase_add_test(tc, dropped_connection);
  tcase_add_test(tc, close_stops_a_request_in_progress);
  tcase_add_test(tc, async_submit_and_status_on_both_engines);
  tcase_add_test(tc, kfp_version_reaches_the_server);
  tcase_add_test(tc, argo_version_is_refused_before_sending);
  tcase_add_test(tc, async_faults);
  tcase_add_test(tc, async_deadline_bounds_the_call);
  tcase_add_test(tc, async_cancel_mid_call);
  tcase_add_test(tc, engine_phase_names);
  suite_add_tcase(s, tc);
  return s;
}
