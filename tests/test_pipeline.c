/* The pipeline client (aiplat/pipeline.h) against the Argo and Kubeflow
 * fakes (tests/fakes): configuration, input checks, phases. */
#include <aiplat/aiplat.h>
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
  ck_assert_int_eq(aiplat_pipeline_create(&p2, c2), AIPLAT_OK);
  ck_assert(!aiplat_pipeline_engine_configured(p2, AIPLAT_PIPELINE_ARGO));
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
  suite_add_tcase(s, tc);
  return s;
}
