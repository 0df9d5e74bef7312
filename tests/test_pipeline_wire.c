/* Pipeline wire formats: name checks, request bodies, answers of every
 * shape the engines send (docs/decisions/0012-pipeline-engines.md). */
#include <jansson.h>
#include <string.h>

#include "harness/testutil.h"
#include "pipeline_wire.h"

static aip_err err;

static void setup(void) {
  aip_err_init(&err);
}
static void teardown(void) {
  aip_err_destroy(&err);
}

START_TEST(namespaces) {
  const char *why = NULL;
  ck_assert(aip_pipe_valid_namespace("ai-ml", NULL));
  ck_assert(aip_pipe_valid_namespace("a", NULL));
  ck_assert(aip_pipe_valid_namespace("kubeflow-user-01", NULL));
  static const char *const bad[] = {"",    "AI",  "-a",  "a-",   "a/b",  "..",
                                    "a b", "a?b", "a.b", "a%2f", "a\nb", "é"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    why = NULL;
    ck_assert_msg(!aip_pipe_valid_namespace(bad[i], &why), "%s", bad[i]);
    ck_assert_ptr_nonnull(why);
  }
  ck_assert(!aip_pipe_valid_namespace(NULL, NULL));
  char longer[70];
  memset(longer, 'a', 64);
  longer[64] = '\0';
  ck_assert(!aip_pipe_valid_namespace(longer, NULL));
  longer[63] = '\0';
  ck_assert(aip_pipe_valid_namespace(longer, NULL));
}
END_TEST

START_TEST(k8s_names) {
  ck_assert(aip_pipe_valid_k8s_name("train-model", NULL));
  ck_assert(aip_pipe_valid_k8s_name("train.v2", NULL));
  ck_assert(aip_pipe_valid_k8s_name("train-model-x7k2p", NULL));
  static const char *const bad[] = {"",    "..",   "a..b",   ".a", "a.",
                                    "a/b", "a b",  "a?b",    "A",  "a_b",
                                    "-a",  "a.-b", "../etc", "a#b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!aip_pipe_valid_k8s_name(bad[i], NULL), "%s", bad[i]);
  char big[300];
  memset(big, 'a', 254);
  big[254] = '\0';
  ck_assert(!aip_pipe_valid_k8s_name(big, NULL));
}
END_TEST

START_TEST(kfp_ids_and_keys) {
  ck_assert(
      aip_pipe_valid_kfp_id("3f1c0a52-8f0e-4a57-b2a8-0d0a4c9c1e21", NULL));
  ck_assert(aip_pipe_valid_kfp_id("My_Pipeline.v2", NULL));
  static const char *const bad[] = {"",    "..",    ".",    "a..b", "a/b",
                                    "a b", "a?x=1", "a%2F", "a\tb"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!aip_pipe_valid_kfp_id(bad[i], NULL), "%s", bad[i]);
  ck_assert(aip_pipe_valid_param_key("learning_rate", NULL));
  ck_assert(aip_pipe_valid_param_key("max-epochs", NULL));
  ck_assert(!aip_pipe_valid_param_key("a=b", NULL));
  ck_assert(!aip_pipe_valid_param_key("a b", NULL));
  ck_assert(!aip_pipe_valid_param_key("", NULL));
  ck_assert(!aip_pipe_valid_param_key("a.b", NULL));
}
END_TEST

START_TEST(escaping) {
  aip_buf b = {0};
  ck_assert(aip_pipe_escape(&b, "a-b_c.d~e"));
  ck_assert_str_eq(b.data, "a-b_c.d~e");
  aip_buf_reset(&b);
  ck_assert(aip_pipe_escape(&b, "a/b?c d%..\xc3\xa9"));
  ck_assert_str_eq(b.data, "a%2Fb%3Fc%20d%25..%C3%A9");
  aip_buf_free(&b);
}
END_TEST

START_TEST(argo_body) {
  const char *keys[] = {"epochs", "expr", "text"};
  const char *values[] = {"3", "a=b=c", "line1\n\"quoted\" \xc3\xa9"};
  long bad = 0;
  json_t *j =
      aip_pipe_argo_submit_body("ai-ml", "train", keys, values, 3, &bad);
  ck_assert_ptr_nonnull(j);
  ck_assert_int_eq(bad, -1);
  ck_assert_str_eq(json_string_value(json_object_get(j, "namespace")), "ai-ml");
  ck_assert_str_eq(json_string_value(json_object_get(j, "resourceKind")),
                   "WorkflowTemplate");
  ck_assert_str_eq(json_string_value(json_object_get(j, "resourceName")),
                   "train");
  json_t *p =
      json_object_get(json_object_get(j, "submitOptions"), "parameters");
  ck_assert_int_eq(json_array_size(p), 3);
  ck_assert_str_eq(json_string_value(json_array_get(p, 0)), "epochs=3");
  ck_assert_str_eq(json_string_value(json_array_get(p, 1)), "expr=a=b=c");
  ck_assert_str_eq(json_string_value(json_array_get(p, 2)),
                   "text=line1\n\"quoted\" \xc3\xa9");
  json_decref(j);
  /* no parameters: no "parameters" key at all */
  j = aip_pipe_argo_submit_body("ai-ml", "train", NULL, NULL, 0, &bad);
  ck_assert_ptr_nonnull(j);
  ck_assert_ptr_null(
      json_object_get(json_object_get(j, "submitOptions"), "parameters"));
  json_decref(j);
  /* a value that is not UTF-8 */
  const char *badv[] = {"ok", "\xff\xfe"};
  j = aip_pipe_argo_submit_body("ai-ml", "train", keys, badv, 2, &bad);
  ck_assert_ptr_null(j);
  ck_assert_int_eq(bad, 1);
}
END_TEST

START_TEST(kfp_body) {
  const char *keys[] = {"epochs", "text"};
  const char *values[] = {"3", "x=y \"z\""};
  long bad = 0;
  json_t *j =
      aip_pipe_kfp_run_body("train 2026", "pid-1", keys, values, 2, &bad);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "display_name")),
                   "train 2026");
  ck_assert_str_eq(
      json_string_value(json_object_get(
          json_object_get(j, "pipeline_version_reference"), "pipeline_id")),
      "pid-1");
  json_t *p =
      json_object_get(json_object_get(j, "runtime_config"), "parameters");
  ck_assert_int_eq(json_object_size(p), 2);
  ck_assert_str_eq(json_string_value(json_object_get(p, "epochs")), "3");
  ck_assert_str_eq(json_string_value(json_object_get(p, "text")), "x=y \"z\"");
  json_decref(j);
  const char *badv[] = {"\xc3"};
  ck_assert_ptr_null(aip_pipe_kfp_run_body("n", "p", keys, badv, 1, &bad));
  ck_assert_int_eq(bad, 0);
}
END_TEST

/* The submit answer of argo-server: no phase yet, null times. */
static const char argo_submitted[] =
    "{\"metadata\":{\"generateName\":\"train-\",\"namespace\":\"ai-ml\","
    "\"labels\":{\"workflows.argoproj.io/workflow-template\":\"train\"},"
    "\"name\":\"train-x7k2p\",\"uid\":\"c72d9530-c83f-4116-bad2-e3c9dfb0ad7f\","
    "\"resourceVersion\":\"1003\",\"generation\":1,"
    "\"creationTimestamp\":\"2026-11-26T09:46:05Z\"},"
    "\"spec\":{\"arguments\":{},\"workflowTemplateRef\":{\"name\":\"train\"}},"
    "\"status\":{\"startedAt\":null,\"finishedAt\":null}}";

START_TEST(kfp_versions) {
  /* the filter as the server reads it */
  json_t *f = aip_pipe_kfp_version_filter("v2");
  char *text = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
  ck_assert_str_eq(text, "{\"predicates\":[{\"key\":\"name\",\"operation\":"
                         "\"EQUALS\",\"string_value\":\"v2\"}]}");
  free(text);
  json_decref(f);
  char id[64];
  /* protojson omits an empty list */
  ck_assert_int_eq(
      aip_pipe_kfp_parse_versions(&err, "{}", 2, "p", "v2", id, sizeof id),
      AIPLAT_ERR_NOT_FOUND);
  const char *list =
      "{\"pipeline_versions\":[{\"pipeline_version_id\":\"id-1\",\"name\":"
      "\"v1\"},{\"pipelineVersionId\":\"id-2\",\"displayName\":\"v2\"}],"
      "\"total_size\":2}";
  ck_assert_int_eq(aip_pipe_kfp_parse_versions(&err, list, strlen(list), "p",
                                               "v2", id, sizeof id),
                   AIPLAT_OK);
  ck_assert_str_eq(id, "id-2");
  /* a server that ignored the filter does not pick another version */
  ck_assert_int_eq(aip_pipe_kfp_parse_versions(&err, list, strlen(list), "p",
                                               "v3", id, sizeof id),
                   AIPLAT_ERR_NOT_FOUND);
  const char *bad = "{\"pipeline_versions\":{}}";
  ck_assert_int_eq(aip_pipe_kfp_parse_versions(&err, bad, strlen(bad), "p",
                                               "v3", id, sizeof id),
                   AIPLAT_ERR_PROTOCOL);
  const char *one = "{\"pipeline_id\":\"p1\",\"pipeline_version_id\":\"id-9\"}";
  ck_assert_int_eq(
      aip_pipe_kfp_parse_version(&err, one, strlen(one), "p1", id, sizeof id),
      AIPLAT_OK);
  ck_assert_str_eq(id, "id-9");
  ck_assert_int_eq(
      aip_pipe_kfp_parse_version(&err, one, strlen(one), "p2", id, sizeof id),
      AIPLAT_ERR_PROTOCOL);
  /* the run's reference: pipeline only, or pipeline and version */
  json_t *run = aip_pipe_kfp_run_body("r", NULL, NULL, NULL, 0, NULL);
  ck_assert(aip_pipe_kfp_run_ref(run, "p1", "id-9"));
  json_t *ref = json_object_get(run, "pipeline_version_reference");
  ck_assert_str_eq(json_string_value(json_object_get(ref, "pipeline_id")),
                   "p1");
  ck_assert_str_eq(
      json_string_value(json_object_get(ref, "pipeline_version_id")), "id-9");
  ck_assert(aip_pipe_kfp_run_ref(run, "p1", NULL));
  ck_assert_int_eq(json_object_size(ref), 1);
  json_decref(run);
}
END_TEST

START_TEST(phase_names_both_ways) {
  for (aiplat_pipeline_phase ph = AIPLAT_PIPELINE_UNKNOWN;
       ph <= AIPLAT_PIPELINE_PAUSED; ph++) {
    const char *a = aiplat_pipeline_phase_engine_str(AIPLAT_PIPELINE_ARGO, ph);
    const char *k =
        aiplat_pipeline_phase_engine_str(AIPLAT_PIPELINE_KUBEFLOW, ph);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(k);
    /* a name an engine sends reads back as the phase it names */
    aiplat_pipeline_phase pa = aip_pipe_argo_phase(a);
    ck_assert(pa == ph || pa == AIPLAT_PIPELINE_UNKNOWN ||
              (ph == AIPLAT_PIPELINE_UNKNOWN && pa == AIPLAT_PIPELINE_PENDING));
    aiplat_pipeline_phase pk = aip_pipe_kfp_state(k);
    ck_assert(pk == ph || pk == AIPLAT_PIPELINE_UNKNOWN ||
              (ph == AIPLAT_PIPELINE_ERROR && pk == AIPLAT_PIPELINE_FAILED));
  }
  /* names Argo never sends stay unknown */
  ck_assert_int_eq(aip_pipe_argo_phase("Cancelled"), AIPLAT_PIPELINE_UNKNOWN);
  ck_assert_int_eq(aip_pipe_kfp_state("ERROR"), AIPLAT_PIPELINE_UNKNOWN);
}
END_TEST

START_TEST(argo_workflows) {
  char name[64], msg[64];
  aiplat_pipeline_phase ph = AIPLAT_PIPELINE_UNKNOWN;
  ck_assert_int_eq(
      aip_pipe_argo_parse_workflow(&err, argo_submitted, strlen(argo_submitted),
                                   name, sizeof name, &ph, msg, sizeof msg),
      AIPLAT_OK);
  ck_assert_str_eq(name, "train-x7k2p");
  ck_assert_int_eq(ph, AIPLAT_PIPELINE_PENDING);
  ck_assert_str_eq(msg, "");
  static const struct {
    const char *json;
    aiplat_pipeline_phase phase;
    const char *msg;
  } cases[] = {
      {"{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Running\","
       "\"startedAt\":\"2026-11-26T09:46:05Z\"},\"extra\":[1,2]}",
       AIPLAT_PIPELINE_RUNNING, ""},
      {"{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Failed\","
       "\"message\":\"child 'w-1' failed\"}}",
       AIPLAT_PIPELINE_FAILED, "child 'w-1' failed"},
      {"{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Error\","
       "\"message\":\"line1\\nline2\"}}",
       AIPLAT_PIPELINE_ERROR, "line1 line2"},
      {"{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Succeeded\"}}",
       AIPLAT_PIPELINE_SUCCEEDED, ""},
      {"{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Pending\"}}",
       AIPLAT_PIPELINE_PENDING, ""},
      {"{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Omitted\"}}",
       AIPLAT_PIPELINE_UNKNOWN, ""},
      {"{\"metadata\":{\"name\":\"w\"}}", AIPLAT_PIPELINE_PENDING, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_int_eq(
        aip_pipe_argo_parse_workflow(&err, cases[i].json, strlen(cases[i].json),
                                     NULL, 0, &ph, msg, sizeof msg),
        AIPLAT_OK);
    ck_assert_int_eq(ph, cases[i].phase);
    ck_assert_str_eq(msg, cases[i].msg);
  }
}
END_TEST

START_TEST(argo_bad_answers) {
  static const char *const bad[] = {
      "",
      "garbage",
      "{\"metadata\":{\"name\":\"trunc",
      "[1,2]",
      "{\"status\":{\"phase\":\"Running\"}}",
      "{\"metadata\":{\"name\":\"../x\"}}",
      "{\"metadata\":{\"name\":42}}",
      "{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":3}}",
      "{\"metadata\":{\"name\":\"w\"},\"status\":\"Running\"}",
  };
  char name[64];
  aiplat_pipeline_phase ph;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(aip_pipe_argo_parse_workflow(&err, bad[i], strlen(bad[i]),
                                               name, sizeof name, &ph, NULL,
                                               0) == AIPLAT_ERR_PROTOCOL,
                  "%s", bad[i]);
    ck_assert_ptr_nonnull(strstr(err.msg, "argo"));
  }
  /* a name longer than the caller's buffer */
  const char *ok = "{\"metadata\":{\"name\":\"abcdefgh\"}}";
  ck_assert_int_eq(
      aip_pipe_argo_parse_workflow(&err, ok, strlen(ok), name, 4, &ph, NULL, 0),
      AIPLAT_ERR_PROTOCOL);
}
END_TEST

/* A created run as the Kubeflow Pipelines API server writes it. */
static const char kfp_created[] =
    "{\"experiment_id\":\"f0ab1cbb-dcd6-5c64-9b5d-0d46c40d959e\","
    "\"run_id\":\"f356e482-08ec-439f-be95-a1eac6855d19\","
    "\"display_name\":\"r1\",\"storage_state\":\"AVAILABLE\","
    "\"pipeline_version_reference\":{\"pipeline_id\":\"p\","
    "\"pipeline_version_id\":\"v\"},\"runtime_config\":{\"parameters\":"
    "{\"k\":\"v\",\"n\":3}},\"service_account\":\"pipeline-runner\","
    "\"created_at\":\"2026-11-26T09:47:28Z\",\"scheduled_at\":"
    "\"2026-11-26T09:47:28Z\",\"finished_at\":\"1970-01-01T00:00:00Z\","
    "\"state\":\"PENDING\",\"run_details\":{},\"state_history\":"
    "[{\"update_time\":\"2026-11-26T09:47:28Z\",\"state\":\"PENDING\"}]}";

START_TEST(kfp_runs) {
  char id[64], msg[64];
  aiplat_pipeline_phase ph;
  ck_assert_int_eq(
      aip_pipe_kfp_parse_run(&err, kfp_created, strlen(kfp_created), id,
                             sizeof id, &ph, msg, sizeof msg),
      AIPLAT_OK);
  ck_assert_str_eq(id, "f356e482-08ec-439f-be95-a1eac6855d19");
  ck_assert_int_eq(ph, AIPLAT_PIPELINE_PENDING);
  ck_assert_str_eq(msg, "");
  static const struct {
    const char *json;
    aiplat_pipeline_phase phase;
    const char *msg;
  } cases[] = {
      {"{\"run_id\":\"r\",\"state\":\"RUNNING\"}", AIPLAT_PIPELINE_RUNNING, ""},
      {"{\"run_id\":\"r\",\"state\":\"SUCCEEDED\"}", AIPLAT_PIPELINE_SUCCEEDED,
       ""},
      {"{\"run_id\":\"r\",\"state\":\"SKIPPED\"}", AIPLAT_PIPELINE_SKIPPED, ""},
      {"{\"run_id\":\"r\",\"state\":\"CANCELING\"}", AIPLAT_PIPELINE_CANCELLING,
       ""},
      {"{\"run_id\":\"r\",\"state\":\"CANCELED\"}", AIPLAT_PIPELINE_CANCELLED,
       ""},
      {"{\"run_id\":\"r\",\"state\":\"PAUSED\"}", AIPLAT_PIPELINE_PAUSED, ""},
      {"{\"run_id\":\"r\",\"state\":\"RUNTIME_STATE_UNSPECIFIED\"}",
       AIPLAT_PIPELINE_UNKNOWN, ""},
      {"{\"run_id\":\"r\"}", AIPLAT_PIPELINE_UNKNOWN, ""},
      {"{\"runId\":\"r\",\"state\":5}", AIPLAT_PIPELINE_FAILED, ""},
      {"{\"run_id\":\"r\",\"state\":\"FAILED\",\"error\":{\"code\":2,"
       "\"message\":\"boom\"}}",
       AIPLAT_PIPELINE_FAILED, "boom"},
      {"{\"run_id\":\"r\",\"state\":\"FAILED\",\"state_history\":["
       "{\"state\":\"RUNNING\"},{\"state\":\"FAILED\",\"error\":{\"code\":2,"
       "\"message\":\"task train failed\"}}]}",
       AIPLAT_PIPELINE_FAILED, "task train failed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_int_eq(
        aip_pipe_kfp_parse_run(&err, cases[i].json, strlen(cases[i].json), NULL,
                               0, &ph, msg, sizeof msg),
        AIPLAT_OK);
    ck_assert_int_eq(ph, cases[i].phase);
    ck_assert_str_eq(msg, cases[i].msg);
  }
  static const char *const bad[] = {"",
                                    "<html>",
                                    "{\"state\":\"RUNNING\"}",
                                    "{\"run_id\":\"a/b\"}",
                                    "{\"run_id\":\"r\",\"state\":{}}",
                                    "null"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(
        aip_pipe_kfp_parse_run(&err, bad[i], strlen(bad[i]), id, sizeof id, &ph,
                               NULL, 0) == AIPLAT_ERR_PROTOCOL,
        "%s", bad[i]);
}
END_TEST

START_TEST(kfp_pipelines) {
  char id[64];
  const char *ok =
      "{\"pipeline_id\":\"d5d4af6e-f971-5894-94a8-45db950536fc\","
      "\"display_name\":\"train\",\"name\":\"train\",\"created_at\":\"x\"}";
  ck_assert_int_eq(
      aip_pipe_kfp_parse_pipeline(&err, ok, strlen(ok), id, sizeof id),
      AIPLAT_OK);
  ck_assert_str_eq(id, "d5d4af6e-f971-5894-94a8-45db950536fc");
  const char *bad = "{\"display_name\":\"train\"}";
  ck_assert_int_eq(
      aip_pipe_kfp_parse_pipeline(&err, bad, strlen(bad), id, sizeof id),
      AIPLAT_ERR_PROTOCOL);
}
END_TEST

START_TEST(error_bodies) {
  char out[128];
  int code;
  /* argo-server (grpc-gateway v1, encoding/json) */
  const char *argo =
      "{\"code\":5,\"message\":\"workflowtemplates.argoproj.io \\\"x\\\" not "
      "found\"}";
  ck_assert(aip_pipe_error_message(argo, strlen(argo), out, sizeof out, &code));
  ck_assert_str_eq(out, "workflowtemplates.argoproj.io \"x\" not found");
  ck_assert_int_eq(code, 5);
  /* Kubeflow, grpc-gateway v2 with a google.rpc.Status detail */
  const char *kfp =
      "{\"code\":5,\"message\":\"Failed to get a run: ResourceNotFoundError: "
      "Run r not found\",\"details\":[{\"@type\":\"type.googleapis.com/"
      "google.rpc.Status\",\"code\":5,\"message\":\"Run r not found\"}]}";
  ck_assert(aip_pipe_error_message(kfp, strlen(kfp), out, sizeof out, &code));
  ck_assert_str_eq(
      out, "Failed to get a run: ResourceNotFoundError: Run r not found");
  /* grpc-gateway v1's DefaultHTTPError: "error" repeats the message */
  const char *v1 = "{\"error\":\"boom\",\"code\":13,\"message\":\"boom\"}";
  ck_assert(aip_pipe_error_message(v1, strlen(v1), out, sizeof out, &code));
  ck_assert_str_eq(out, "boom");
  ck_assert_int_eq(code, 13);
  /* Kubeflow's upload/log endpoints */
  const char *up = "{\"error_message\":\"bad file\",\"error_details\":\"x\"}";
  ck_assert(aip_pipe_error_message(up, strlen(up), out, sizeof out, &code));
  ck_assert_str_eq(out, "bad file");
  ck_assert_int_eq(code, -1);
  /* only a detail */
  const char *det = "{\"code\":7,\"details\":[{\"message\":\"denied\"}]}";
  ck_assert(aip_pipe_error_message(det, strlen(det), out, sizeof out, &code));
  ck_assert_str_eq(out, "denied");
  /* a proxy's text, trimmed, control characters replaced */
  const char *txt = "  RBAC: access\tdenied\n";
  ck_assert(aip_pipe_error_message(txt, strlen(txt), out, sizeof out, &code));
  ck_assert_str_eq(out, "RBAC: access denied");
  /* nothing usable */
  ck_assert(!aip_pipe_error_message("{}", 2, out, sizeof out, &code));
  ck_assert(!aip_pipe_error_message("", 0, out, sizeof out, &code));
  ck_assert_str_eq(out, "");
  /* truncation keeps UTF-8 whole: "é" is 2 bytes, a 4-byte buffer holds
   * "a" + "é" and not half of the next one */
  char small[4];
  const char *utf = "\"a\xc3\xa9\xc3\xa9\"";
  ck_assert(
      aip_pipe_error_message(utf, strlen(utf), small, sizeof small, NULL));
  ck_assert_str_eq(small, "a\xc3\xa9");
}
END_TEST

/* A message cut to the caller's buffer, or starting with DEL, is trimmed
 * like a whole one. */
START_TEST(messages_trimmed_after_a_cut) {
  char msg[14];
  aiplat_pipeline_phase ph;
  const char *wf =
      "{\"metadata\":{\"name\":\"w\"},\"status\":{\"phase\":\"Failed\","
      "\"message\":\"child failed\\n exit code 1\"}}";
  ck_assert_int_eq(aip_pipe_argo_parse_workflow(&err, wf, strlen(wf), NULL, 0,
                                                &ph, msg, sizeof msg),
                   AIPLAT_OK);
  ck_assert_str_eq(msg, "child failed");
  char out[32];
  const char *txt = "\x7f Bad Gateway\x7f";
  ck_assert(aip_pipe_error_message(txt, strlen(txt), out, sizeof out, NULL));
  ck_assert_str_eq(out, "Bad Gateway");
}
END_TEST

START_TEST(http_statuses) {
  ck_assert_int_eq(aip_pipe_status_for_http(200), AIPLAT_OK);
  ck_assert_int_eq(aip_pipe_status_for_http(400), AIPLAT_ERR_BAD_REQUEST);
  ck_assert_int_eq(aip_pipe_status_for_http(401), AIPLAT_ERR_AUTH);
  ck_assert_int_eq(aip_pipe_status_for_http(403), AIPLAT_ERR_AUTH);
  ck_assert_int_eq(aip_pipe_status_for_http(404), AIPLAT_ERR_NOT_FOUND);
  ck_assert_int_eq(aip_pipe_status_for_http(409), AIPLAT_ERR_EXISTS);
  ck_assert_int_eq(aip_pipe_status_for_http(429), AIPLAT_ERR_RATE_LIMITED);
  ck_assert_int_eq(aip_pipe_status_for_http(500), AIPLAT_ERR_SERVER);
  ck_assert_int_eq(aip_pipe_status_for_http(501), AIPLAT_ERR_NOT_SUPPORTED);
  ck_assert_int_eq(aip_pipe_status_for_http(503), AIPLAT_ERR_UNAVAILABLE);
  ck_assert_int_eq(aip_pipe_status_for_http(504), AIPLAT_ERR_TIMEOUT);
  ck_assert_int_eq(aip_pipe_status_for_http(418), AIPLAT_ERR_BAD_REQUEST);
  ck_assert_int_eq(aip_pipe_status_for_http(302), AIPLAT_ERR_PROTOCOL);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("pipeline_wire");
  TCase *tc = tcase_create("wire");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, namespaces);
  tcase_add_test(tc, k8s_names);
  tcase_add_test(tc, kfp_ids_and_keys);
  tcase_add_test(tc, escaping);
  tcase_add_test(tc, argo_body);
  tcase_add_test(tc, kfp_body);
  tcase_add_test(tc, kfp_versions);
  tcase_add_test(tc, phase_names_both_ways);
  tcase_add_test(tc, argo_workflows);
  tcase_add_test(tc, argo_bad_answers);
  tcase_add_test(tc, kfp_runs);
  tcase_add_test(tc, kfp_pipelines);
  tcase_add_test(tc, error_bodies);
  tcase_add_test(tc, messages_trimmed_after_a_cut);
  tcase_add_test(tc, http_statuses);
  suite_add_tcase(s, tc);
  return s;
}
