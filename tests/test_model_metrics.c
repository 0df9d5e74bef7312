/* The model and retrieval metrics at /metrics, end to end: a real
 * chat-handler and voice-assistant over a real nats-server and the local
 * model backend (strict about model names, so a wrong one fails). The
 * counts, token sums and histogram counts must match what the replies
 * said, and the page must pass `promtool check metrics` when promtool is
 * installed (Debian package prometheus; CI sets AIPLAT_REQUIRE_PROMTOOL=1
 * so that there a missing promtool fails instead of skipping). */
#include <aiplat/aiplat.h>
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "chat_testutil.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"
#include "svc_proc.h"

#define T_REQ 20000
#define LLM "local-extractive-chat"

static th_nats *nats;
static bkc_proc B;
static char dir[64];
static sp_proc chat, voice;

static char e_nats[128], e_vllm[128], e_emb[128], e_stt[128], e_tts[128],
    e_store[160];
static const char *svc_env[] = {e_nats,
                                e_vllm,
                                e_emb,
                                e_stt,
                                e_tts,
                                e_store,
                                "VECTOR_STORE=local",
                                "LLM_MODEL=" LLM,
                                "EMBEDDINGS_MODEL=local-hash-embed",
                                "STT_MODEL=local-pocketsphinx-en-us",
                                "TTS_MODEL=local-flite",
                                "READY_CHECK_INTERVAL=200ms",
                                "WORKERS=2",
                                "LOG_LEVEL=INFO",
                                NULL};

static void start_service(sp_proc *p, const char *rel, const char *log) {
  char bin[1024], path[256];
  sp_path(rel, bin, sizeof bin);
  snprintf(path, sizeof path, "%s/%s", dir, log);
  ck_assert_msg(sp_start(p, bin, svc_env, path, NULL), "cannot start %s", bin);
  ck_assert_msg(sp_wait_started(p, 20000), "%s did not start (log %s)", bin,
                path);
}

static void up(void) {
  setenv("LOG_LEVEL", "WARNING", 1);
  setenv("EMBEDDINGS_MODEL", "local-hash-embed", 1); /* the ingest's */
  nats = th_nats_start(NULL);
  ck_assert_ptr_nonnull(nats);
  static const char *const args[] = {"--strict-models", NULL};
  ck_assert_msg(bkc_start(&B, args, false), "backend did not start");
  ck_assert_msg(bkc_wait_ready(&B, 60000), "backend not ready");
  snprintf(dir, sizeof dir, "/tmp/aiplat-mm-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", B.base);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", B.base);
  snprintf(e_stt, sizeof e_stt, "STT_URL=%s", B.base);
  snprintf(e_tts, sizeof e_tts, "TTS_URL=%s", B.base);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s/kb.aipvs", dir);
  char store[128];
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
  ck_assert_uint_gt(ct_ingest_knowledge(store, B.base), 5);
  start_service(&chat, "services/chat-handler/chat-handler", "chat.log");
  start_service(&voice, "services/voice-assistant/voice-assistant",
                "voice.log");
}

static void down(void) {
  int st = sp_stop(&chat, SIGTERM, 20000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  st = sp_stop(&voice, SIGTERM, 20000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  bkc_stop(&B, SIGTERM, 20000);
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* ---- reading the page ----------------------------------------------------
 */

/* The value of the sample whose name and labels are exactly @series (as
 * rendered: `name{a="x",b="y"}`); NAN when absent. */
static double sample(const char *page, const char *series) {
  size_t n = strlen(series);
  for (const char *p = page; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
  return NAN;
}

static char *scrape(int port) {
  char *body = NULL;
  ck_assert_int_eq(sp_http_get(port, "/metrics", &body), 200);
  ck_assert_ptr_nonnull(body);
  return body;
}

static void expect(const char *page, const char *series, double want) {
  double got = sample(page, series);
  ck_assert_msg(got == want, "%s is %g, want %g", series, got, want);
}

static void expect_positive(const char *page, const char *series) {
  double got = sample(page, series);
  ck_assert_msg(got > 0, "%s is %g, want > 0", series, got);
}

/* `promtool check metrics` on @page: 0 when clean, 77 when promtool is
 * missing (and allowed to be), else a failure with its output. */
static void promtool_check(const char *page) {
  if (system("command -v promtool >/dev/null 2>&1") != 0) {
    ck_assert_msg(!getenv("AIPLAT_REQUIRE_PROMTOOL"),
                  "promtool is required here: apt-get install prometheus");
    fprintf(stderr,
            "SKIP promtool check metrics: promtool not installed "
            "(Debian package prometheus)\n");
    return;
  }
  char path[128], cmd[512];
  snprintf(path, sizeof path, "%s/metrics.txt", dir);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(page, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", path,
           path);
  int rc = system(cmd);
  snprintf(cmd, sizeof cmd, "cat %s.out >&2", path);
  if (rc != 0) ck_assert_int_eq(system(cmd), 0);
  ck_assert_msg(rc == 0, "promtool check metrics failed (output above)");
}

/* ---- requests -----------------------------------------------------------
 */

static aiplat_msg *ask(aiplat_bus *bus, const char *rid, bool stream,
                       const char *model) {
  ct_chat c = ct_chat_init("mia", "How often are Milvus backups taken?", rid);
  c.stream = stream;
  c.model = model;
  size_t len = 0;
  uint8_t *buf = ct_chat_bytes(&c, &len);
  ck_assert_ptr_nonnull(buf);
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, "ai.chat.user.mia.message", buf, len,
                             AIPLAT_MSG_CHAT_RESPONSE, T_REQ, &st);
  ck_assert_msg(r != NULL, "no reply: %s", aiplat_status_str(st));
  aiplat_free(buf);
  return r;
}

static int64_t usage(aiplat_msg *r, const char *field) {
  aiplat_msg *u = NULL;
  int64_t v = -1;
  ck_assert_int_eq(aiplat_msg_get_message(r, "usage", &u), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_get_int64(u, field, &v), AIPLAT_OK);
  return v;
}

#define L(name) name "{server=\"llm\",model=\"" LLM "\"}"

START_TEST(chat_calls_are_counted_with_their_tokens) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  int64_t in = 0, out = 0;
  for (int i = 0; i < 4; i++) { /* two whole answers, two streamed */
    char rid[32];
    snprintf(rid, sizeof rid, "mm-%d", i);
    aiplat_msg *r = ask(bus, rid, i >= 2, NULL);
    const char *why = NULL;
    ck_assert_msg(ct_error(r, &why) == 0, "error reply: %s", why);
    in += usage(r, "prompt_tokens");
    out += usage(r, "completion_tokens");
    aiplat_msg_destroy(r);
  }
  ck_assert_int_gt(in, 0);
  ck_assert_int_gt(out, 0);
  /* a model the backend does not serve: a failed call, counted by kind */
  aiplat_msg *r = ask(bus, "mm-bad", false, "no-such-model");
  ck_assert_int_ne(ct_error(r, NULL), 0);
  aiplat_msg_destroy(r);
  aiplat_bus_destroy(bus);

  char *page = scrape(chat.health_port);
  expect(page, L("aiplat_model_requests_total"), 4);
  expect(page, L("aiplat_model_input_tokens_total"), (double)in);
  expect(page, L("aiplat_model_output_tokens_total"), (double)out);
  expect(page, L("aiplat_model_requests_in_flight"), 0);
  expect(page, L("aiplat_model_request_duration_seconds_count"), 4);
  expect(page, L("aiplat_model_output_tokens_per_second_count"), 4);
  /* only the streamed calls have a first token */
  expect(page, L("aiplat_model_time_to_first_token_seconds_count"), 2);
  expect(page,
         "aiplat_model_time_to_first_token_seconds_bucket{server=\"llm\","
         "model=\"" LLM "\",le=\"+Inf\"}",
         2);
  expect(page,
         "aiplat_model_request_errors_total{server=\"llm\","
         "model=\"no-such-model\",error=\"not_found\"}",
         1);
  expect(page,
         "aiplat_model_requests_total{server=\"llm\",model=\"no-such-model\"}",
         1);
  /* each question was embedded once and searched once */
  expect(page,
         "aiplat_model_requests_total{server=\"embeddings\","
         "model=\"local-hash-embed\"}",
         5);
  expect_positive(page,
                  "aiplat_model_input_tokens_total{server=\"embeddings\","
                  "model=\"local-hash-embed\"}");
  expect(page, "aiplat_retrieval_requests_total{store=\"local\"}", 5);
  expect(page, "aiplat_retrieval_duration_seconds_count{store=\"local\"}", 5);
  expect_positive(page, "aiplat_retrieval_hits_total{store=\"local\"}");
  expect(page, "aiplat_retrieval_misses_total{store=\"local\"}", 0);
  promtool_check(page);
  free(page);
}
END_TEST

/* A spoken question: the backend's own speech engine reads it. */
static uint8_t *speak(const char *text, size_t *len) {
  char json[512];
  snprintf(json, sizeof json,
           "{\"model\":\"local-flite\",\"input\":\"%s\","
           "\"response_format\":\"wav\"}",
           text);
  bkc_resp r = bkc_post_json(&B, "/v1/audio/speech", json, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert(r.len > 44 && memcmp(r.body, "RIFF", 4) == 0);
  uint8_t *wav = malloc(r.len);
  memcpy(wav, r.body, r.len);
  *len = r.len;
  bkc_resp_free(&r);
  return wav;
}

START_TEST(speech_seconds_are_counted) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  size_t wlen = 0;
  uint8_t *wav = speak("how often are milvus backups taken", &wlen);
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_VOICE_REQUEST), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "user_id", "mia"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", "mm-v"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "audio_format", "wav"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_bytes(m, "audio", wav, wlen), AIPLAT_OK);
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, &len), AIPLAT_OK);
  aiplat_msg_destroy(m);
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, "ai.voice.user.mia.request", buf, len,
                             AIPLAT_MSG_VOICE_RESPONSE, T_REQ * 2, &st);
  ck_assert_msg(r != NULL, "no voice reply: %s", aiplat_status_str(st));
  const char *why = NULL;
  ck_assert_msg(ct_error(r, &why) == 0, "error reply: %s", why);
  aiplat_msg_destroy(r);
  aiplat_free(buf);
  free(wav);
  aiplat_bus_destroy(bus);

  char *page = scrape(voice.health_port);
  expect(page,
         "aiplat_model_requests_total{server=\"stt\","
         "model=\"local-pocketsphinx-en-us\"}",
         1);
  expect(page,
         "aiplat_model_requests_total{server=\"tts\",model=\"local-flite\"}",
         1);
  expect_positive(page,
                  "aiplat_model_audio_transcribed_seconds_total{server=\"stt\","
                  "model=\"local-pocketsphinx-en-us\"}");
  expect_positive(page,
                  "aiplat_model_audio_synthesized_seconds_total{server=\"tts\","
                  "model=\"local-flite\"}");
  expect(page, L("aiplat_model_requests_total"), 1);
  promtool_check(page);
  free(page);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("model_metrics");
  TCase *tc = tcase_create("services");
  tcase_add_unchecked_fixture(tc, up, down);
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, chat_calls_are_counted_with_their_tokens);
  tcase_add_test(tc, speech_seconds_are_counted);
  suite_add_tcase(s, tc);
  return s;
}
