/* stt-module and tts-module end to end: the real service binaries as
 * processes, a real nats-server (max_payload 256 KiB), the local model
 * backend (flite, pocketsphinx) and the aiplat client. */
#include <aiplat/aiplat.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "bridges/tb_util.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"

#define MAX_PAYLOAD 262144
#define SENTENCE "hello world this is a test of the platform"

static th_nats *server;
static bkc_proc B;
static tb_proc STT, TTS;
static char nats_env[128], stt_env[128], tts_env[128];
static char tmpdir[64];

/* The environment of a service process (static strings, putenv'd). */
static const char *const *service_env(const char *url_env) {
  static const char *env[8];
  env[0] = nats_env;
  env[1] = url_env;
  env[2] = "HEALTH_PORT=0";
  env[3] = "LOG_LEVEL=INFO";
  env[4] = "HTTP_MAX_RETRIES=1";
  env[5] = "SHUTDOWN_GRACE=5s";
  env[6] = NULL;
  return env;
}

static void start_service(tb_proc *p, const char *rel, const char *url_env) {
  ck_assert_msg(tb_spawn(p, rel, service_env(url_env), NULL), "cannot start %s",
                rel);
  ck_assert_msg(tb_wait_started(p, 30000), "%s did not start", rel);
}

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  server = th_nats_start("max_payload: 262144");
  ck_assert_ptr_nonnull(server);
  ck_assert_msg(bkc_start(&B, NULL, false), "backend did not start");
  ck_assert_msg(bkc_wait_ready(&B, 60000), "backend not ready");
  snprintf(nats_env, sizeof nats_env, "NATS_URL=%s", th_nats_url(server));
  snprintf(stt_env, sizeof stt_env, "STT_URL=%s", B.base);
  snprintf(tts_env, sizeof tts_env, "TTS_URL=%s", B.base);
  start_service(&STT, "services/stt-module/stt-module", stt_env);
  start_service(&TTS, "services/tts-module/tts-module", tts_env);
  setenv("NATS_URL", th_nats_url(server), 1);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aiplat-speech-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  int a = tb_stop(&STT, SIGTERM, 20000), b = tb_stop(&TTS, SIGTERM, 20000);
  bkc_stop(&B, SIGTERM, 20000);
  th_nats_stop(server);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  curl_global_cleanup();
  ck_assert_msg(a != -1 && WIFEXITED(a) && WEXITSTATUS(a) == 0,
                "stt-module exit %d", a);
  ck_assert_msg(b != -1 && WIFEXITED(b) && WEXITSTATUS(b) == 0,
                "tts-module exit %d", b);
}

static const char *tmp(const char *name) {
  static char path[4][128];
  static int i;
  i = (i + 1) % 4;
  snprintf(path[i], sizeof path[i], "%s/%s", tmpdir, name);
  return path[i];
}

/* ---- helpers ----------------------------------------------------------------
 */

static aiplat_msg *transcribe_req(const void *audio, size_t len,
                                  const char *fmt) {
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_TRANSCRIBE_REQUEST),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", "t-1"), AIPLAT_OK);
  if (len)
    ck_assert_int_eq(aiplat_msg_set_bytes(m, "audio", audio, len), AIPLAT_OK);
  if (fmt)
    ck_assert_int_eq(aiplat_msg_set_string(m, "audio_format", fmt), AIPLAT_OK);
  return m;
}

static aiplat_msg *synth_req(const char *text) {
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_SYNTHESIZE_REQUEST),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", "s-1"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "text", text), AIPLAT_OK);
  return m;
}

/* Request, expect an error reply with @code whose message contains @want. */
static void expect_error(aiplat_bus *bus, const char *subject, aiplat_msg *req,
                         aiplat_msg_type type, int64_t code, const char *want) {
  aiplat_msg *r = tb_request(bus, subject, req, type, 30000);
  const char *msg = NULL;
  int64_t got = tb_error(r, &msg);
  ck_assert_msg(got == code, "error %lld (want %lld): %s", (long long)got,
                (long long)code, msg);
  if (want)
    ck_assert_msg(strstr(msg, want), "message '%s' lacks '%s'", msg, want);
  const char *rid = NULL;
  aiplat_msg_get_string(r, "request_id", &rid);
  ck_assert_msg(strcmp(rid, "t-1") == 0 || strcmp(rid, "s-1") == 0,
                "request id '%s'", rid);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
}

static uint8_t *synthesize(aiplat_bus *bus, const char *text, size_t *len) {
  aiplat_msg *req = synth_req(text);
  aiplat_msg *r = tb_request(bus, aiplat_subject_tts_synthesize(), req,
                             AIPLAT_MSG_SYNTHESIZE_RESPONSE, 30000);
  const char *msg;
  ck_assert_msg(tb_error(r, &msg) == 0, "synthesize: %s", msg);
  const uint8_t *a = NULL;
  ck_assert_int_eq(aiplat_msg_get_bytes(r, "audio", &a, len), AIPLAT_OK);
  ck_assert_uint_gt(*len, 44);
  uint8_t *copy = malloc(*len);
  memcpy(copy, a, *len);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
  return copy;
}

/* ---- the round trip --------------------------------------------------------
 */

START_TEST(speak_then_transcribe_recovers_the_words) {
  const char *wav = tmp("hello.wav");
  tb_run r = tb_cli((const char *[]){"speak", SENTENCE, "-o", wav, NULL});
  ck_assert_msg(r.code == 0, "speak: %d %s", r.code, r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "audio/wav"));
  tb_run_free(&r);
  size_t len = 0;
  uint8_t *audio = tb_read_file(wav, &len);
  ck_assert_ptr_nonnull(audio);
  ck_assert_int_eq(memcmp(audio, "RIFF", 4), 0);
  free(audio);

  r = tb_cli((const char *[]){"transcribe", wav, NULL});
  ck_assert_msg(r.code == 0, "transcribe: %d %s", r.code, r.err);
  size_t words = 0, errors = bkc_word_errors(SENTENCE, r.out, &words);
  ck_assert_msg(errors <= 1, "heard '%s' for '%s'", r.out, SENTENCE);
  ck_assert_uint_eq(tb_lines(r.out), 1);
  tb_run_free(&r);

  /* verbose_json through the bridge: language, duration, segments */
  r = tb_cli((const char *[]){"transcribe", "--json", wav, NULL});
  ck_assert_int_eq(r.code, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  ck_assert_msg(j != NULL, "not JSON: %s", r.out);
  ck_assert(json_number_value(json_object_get(j, "duration_seconds")) > 1.0);
  ck_assert_uint_ge(json_array_size(json_object_get(j, "segments")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(j, "language")),
                   "english");
  json_decref(j);
  tb_run_free(&r);

  r = tb_cli((const char *[]){"transcribe", "-v", wav, NULL});
  ck_assert_int_eq(r.code, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "duration:"));
  ck_assert_ptr_nonnull(strstr(r.out, "] "));
  tb_run_free(&r);

  /* audio to standard output */
  r = tb_cli((const char *[]){"speak", "one two three", "-o", "-", "--voice",
                              "slt", NULL});
  ck_assert_int_eq(r.code, 0);
  ck_assert_uint_gt(r.out_len, 44);
  ck_assert_int_eq(memcmp(r.out, "RIFF", 4), 0);
  tb_run_free(&r);
}
END_TEST

/* Raw PCM (pcm_s16le_RATE) is wrapped into a WAV by the bridge. */
START_TEST(raw_pcm_is_transcribed) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  size_t len = 0;
  uint8_t *wav = synthesize(bus, SENTENCE, &len);
  unsigned rate =
      wav[24] | wav[25] << 8 | wav[26] << 16 | (unsigned)wav[27] << 24;
  ck_assert_int_eq(memcmp(wav + 36, "data", 4), 0);
  char fmt[32];
  snprintf(fmt, sizeof fmt, "pcm_s16le_%u", rate);
  aiplat_msg *req = transcribe_req(wav + 44, len - 44, fmt);
  aiplat_msg *r = tb_request(bus, aiplat_subject_stt_transcribe(), req,
                             AIPLAT_MSG_TRANSCRIBE_RESPONSE, 30000);
  const char *msg, *text = "";
  ck_assert_msg(tb_error(r, &msg) == 0, "%s", msg);
  aiplat_msg_get_string(r, "text", &text);
  size_t words;
  ck_assert_msg(bkc_word_errors(SENTENCE, text, &words) <= 1, "heard '%s'",
                text);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
  /* an odd byte count cannot be 16-bit samples */
  expect_error(
      bus, aiplat_subject_stt_transcribe(), transcribe_req(wav + 44, 101, fmt),
      AIPLAT_MSG_TRANSCRIBE_RESPONSE, AIPLAT_ERR_INVALID_ARGUMENT, "odd");
  free(wav);
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- bad input
 * ---------------------------------------------------------------- */

START_TEST(bad_transcribe_requests_get_error_replies) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  const char *subj = aiplat_subject_stt_transcribe();
  /* bytes that are not a TranscribeRequest: an error reply with the micro
   * protocol headers, not silence */
  static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
  aiplat_bus_msg *raw = NULL;
  ck_assert_int_eq(
      aiplat_bus_request(bus, subj, garbage, sizeof garbage, NULL, 10000, &raw),
      AIPLAT_OK);
  const char *code = NULL;
  ck_assert_int_eq(aiplat_bus_msg_header(raw, "Nats-Service-Error-Code", &code),
                   AIPLAT_OK);
  ck_assert_str_eq(code, "400");
  aiplat_msg *r = NULL;
  ck_assert_int_eq(
      aiplat_msg_decode(&r, AIPLAT_MSG_TRANSCRIBE_RESPONSE,
                        aiplat_bus_msg_data(raw), aiplat_bus_msg_len(raw)),
      AIPLAT_OK);
  ck_assert_int_eq(tb_error(r, NULL), AIPLAT_ERR_DECODE);
  aiplat_msg_destroy(r);
  aiplat_bus_msg_destroy(raw);

  expect_error(bus, subj, transcribe_req(NULL, 0, "wav"),
               AIPLAT_MSG_TRANSCRIBE_RESPONSE, AIPLAT_ERR_INVALID_ARGUMENT,
               "empty");
  uint8_t junk[4000];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 11);
  /* declared WAV, not a WAV: the STT server refuses it and says why */
  expect_error(bus, subj, transcribe_req(junk, sizeof junk, "wav"),
               AIPLAT_MSG_TRANSCRIBE_RESPONSE, AIPLAT_ERR_BAD_REQUEST, "RIFF");
  /* undeclared and unrecognisable */
  expect_error(bus, subj, transcribe_req(junk, sizeof junk, NULL),
               AIPLAT_MSG_TRANSCRIBE_RESPONSE, AIPLAT_ERR_INVALID_ARGUMENT,
               "format");
  /* a format the bridge does not know */
  expect_error(bus, subj, transcribe_req(junk, sizeof junk, "midi"),
               AIPLAT_MSG_TRANSCRIBE_RESPONSE, AIPLAT_ERR_INVALID_ARGUMENT,
               "audio_format");
  expect_error(bus, subj, transcribe_req(junk, sizeof junk, "pcm_s16le_12"),
               AIPLAT_MSG_TRANSCRIBE_RESPONSE, AIPLAT_ERR_INVALID_ARGUMENT,
               "audio_format");
  aiplat_msg *m = transcribe_req(junk, sizeof junk, "wav");
  aiplat_msg_set_string(m, "response_format", "srt-ish");
  expect_error(bus, subj, m, AIPLAT_MSG_TRANSCRIBE_RESPONSE,
               AIPLAT_ERR_INVALID_ARGUMENT, "response_format");
  /* a real WAV in a language the server does not speak */
  size_t len;
  uint8_t *wav = synthesize(bus, "good morning", &len);
  m = transcribe_req(wav, len, "wav");
  aiplat_msg_set_string(m, "language", "de-CH");
  expect_error(bus, subj, m, AIPLAT_MSG_TRANSCRIBE_RESPONSE,
               AIPLAT_ERR_BAD_REQUEST, NULL);
  m = transcribe_req(wav, len, "wav");
  aiplat_msg_set_string(m, "language", "en\"; rm");
  expect_error(bus, subj, m, AIPLAT_MSG_TRANSCRIBE_RESPONSE,
               AIPLAT_ERR_INVALID_ARGUMENT, "language");
  free(wav);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(bad_synthesize_requests_get_error_replies) {
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  const char *subj = aiplat_subject_tts_synthesize();
  static const uint8_t garbage[] = {0x12, 0x80};
  aiplat_msg *r = tb_request_raw(bus, subj, garbage, sizeof garbage,
                                 AIPLAT_MSG_SYNTHESIZE_RESPONSE, 10000);
  ck_assert_int_eq(tb_error(r, NULL), AIPLAT_ERR_DECODE);
  aiplat_msg_destroy(r);
  expect_error(bus, subj, synth_req(""), AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_INVALID_ARGUMENT, "empty");
  expect_error(bus, subj, synth_req(" \t\n "), AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_INVALID_ARGUMENT, "empty");
  char *longtext = malloc(4098);
  memset(longtext, 'a', 4097);
  longtext[4097] = '\0';
  expect_error(bus, subj, synth_req(longtext), AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_TOO_LARGE, "4097 characters");
  free(longtext);
  aiplat_msg *m = synth_req("hello");
  aiplat_msg_set_string(m, "voice", "nobody");
  expect_error(bus, subj, m, AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_BAD_REQUEST, "voice");
  m = synth_req("hello");
  aiplat_msg_set_double(m, "speed", 9.0);
  expect_error(bus, subj, m, AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_INVALID_ARGUMENT, "speed");
  m = synth_req("hello");
  aiplat_msg_set_string(m, "format", "mp3"); /* flite makes wav and pcm only */
  expect_error(bus, subj, m, AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_BAD_REQUEST, NULL);
  m = synth_req("hello");
  aiplat_msg_set_string(m, "format", "tape");
  expect_error(bus, subj, m, AIPLAT_MSG_SYNTHESIZE_RESPONSE,
               AIPLAT_ERR_INVALID_ARGUMENT, NULL);
  /* pcm at a chosen speed works */
  m = synth_req("hello there");
  aiplat_msg_set_string(m, "format", "pcm");
  aiplat_msg_set_double(m, "speed", 2.0);
  r = tb_request(bus, subj, m, AIPLAT_MSG_SYNTHESIZE_RESPONSE, 30000);
  ck_assert_int_eq(tb_error(r, NULL), 0);
  const char *ctype = "";
  aiplat_msg_get_string(r, "content_type", &ctype);
  ck_assert_ptr_nonnull(strstr(ctype, "pcm"));
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(m);
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- NATS max_payload
 * ----------------------------------------------------------- */

START_TEST(audio_over_max_payload_is_an_error_not_silence) {
  /* ~70 words of speech: well over 256 KiB of 16 kHz WAV */
  char text[2048] = "";
  for (int i = 0; i < 7; i++)
    strcat(text,
           "the quick brown fox jumps over the lazy dog near the river bank. ");
  aiplat_bus *bus = tb_bus(th_nats_url(server));
  expect_error(bus, aiplat_subject_tts_synthesize(), synth_req(text),
               AIPLAT_MSG_SYNTHESIZE_RESPONSE, AIPLAT_ERR_TOO_LARGE,
               "max_payload");
  aiplat_bus_destroy(bus);
  tb_run r =
      tb_cli((const char *[]){"speak", text, "-o", tmp("long.wav"), NULL});
  ck_assert_int_eq(r.code, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "TOO_LARGE"));
  ck_assert_uint_eq(tb_lines(r.err), 1);
  tb_run_free(&r);
  ck_assert_int_ne(access(tmp("long.wav"), F_OK), 0);

  /* input over max_payload: the client refuses it with a clear line */
  size_t big = MAX_PAYLOAD + 1000;
  uint8_t *data = calloc(1, big);
  memcpy(data, "RIFF", 4);
  ck_assert(tb_write_file(tmp("big.wav"), data, big));
  free(data);
  r = tb_cli((const char *[]){"transcribe", tmp("big.wav"), NULL});
  ck_assert_int_eq(r.code, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "max_payload"));
  tb_run_free(&r);
}
END_TEST

/* ---- the CLI's exit codes around speech
 * ---------------------------------------- */

START_TEST(cli_exit_codes) {
  /* no chat-handler or voice-assistant here: NATS says "no responders" */
  tb_run n = tb_cli((const char *[]){"chat", "anyone?", NULL});
  ck_assert_int_eq(n.code, 3);
  ck_assert_ptr_nonnull(strstr(n.err, "no service is listening"));
  ck_assert(n.seconds < 5);
  tb_run_free(&n);
  tb_run r = tb_cli((const char *[]){"transcribe", tmp("missing.wav"), NULL});
  ck_assert_int_eq(r.code, 5);
  tb_run_free(&r);
  r = tb_cli(
      (const char *[]){"speak", "hi", "-o", "/nonexistent-dir/x.wav", NULL});
  ck_assert_int_eq(r.code, 5);
  tb_run_free(&r);
  r = tb_cli((const char *[]){"speak", "hi", NULL});
  ck_assert_int_eq(r.code, 2);
  tb_run_free(&r);
  r = tb_cli((const char *[]){"speak", "hi", "-o", tmp("x.wav"), "--speed", "7",
                              NULL});
  ck_assert_int_eq(r.code, 2);
  tb_run_free(&r);
  r = tb_cli((const char *[]){"transcribe", tmp("x.wav"), "--watch", NULL});
  ck_assert_int_eq(r.code, 2);
  tb_run_free(&r);
  ck_assert(tb_write_file(tmp("empty.wav"), "", 0));
  r = tb_cli((const char *[]){"transcribe", tmp("empty.wav"), NULL});
  ck_assert_int_eq(r.code, 2);
  tb_run_free(&r);
  ck_assert(tb_write_file(tmp("junk.wav"), "not audio at all, not at all", 28));
  r = tb_cli((const char *[]){"transcribe", tmp("junk.wav"), NULL});
  ck_assert_int_eq(r.code, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "BAD_REQUEST"));
  tb_run_free(&r);
  r = tb_cli(
      (const char *[]){"--json", "speak", "hello", "-o", tmp("ok.wav"), NULL});
  ck_assert_int_eq(r.code, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "content_type")),
                   "audio/wav");
  ck_assert_ptr_null(json_object_get(j, "audio"));
  json_decref(j);
  tb_run_free(&r);
}
END_TEST

/* ---- discovery
 * ------------------------------------------------------------------ */

START_TEST(services_lists_every_instance) {
  tb_proc second;
  start_service(&second, "services/stt-module/stt-module", stt_env);
  tb_run r = tb_cli((const char *[]){"services", "--json", NULL});
  ck_assert_msg(r.code == 0, "%s", r.err);
  int stt = 0, tts = 0;
  char ids[2][64] = {"", ""};
  for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *j = json_loads(line, 0, NULL);
    ck_assert_ptr_nonnull(j);
    const char *name = json_string_value(json_object_get(j, "name"));
    if (strcmp(name, "stt-module") == 0 && stt < 2)
      snprintf(ids[stt++], sizeof ids[0], "%s",
               json_string_value(json_object_get(j, "id")));
    else if (strcmp(name, "tts-module") == 0)
      tts++;
    json_decref(j);
  }
  ck_assert_int_eq(stt, 2);
  ck_assert_int_eq(tts, 1);
  ck_assert_str_ne(ids[0], ids[1]);
  tb_run_free(&r);

  r = tb_cli((const char *[]){"services", "stt-module", NULL});
  ck_assert_int_eq(r.code, 0);
  ck_assert_uint_eq(tb_lines(r.out), 3); /* header + one line per instance */
  ck_assert_ptr_nonnull(strstr(r.out, "ai.stt.transcribe"));
  ck_assert_ptr_null(strstr(r.out, "tts-module"));
  tb_run_free(&r);
  int st = tb_stop(&second, SIGTERM, 20000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* ---- a model server that goes away
 * ---------------------------------------------- */

START_TEST(backend_down_error_reply_not_ready_still_alive) {
  /* A world of its own: NATS, a backend, one stt-module and one tts-module. */
  th_nats *own = th_nats_start(NULL);
  ck_assert_ptr_nonnull(own);
  bkc_proc b2;
  ck_assert(bkc_start(&b2, NULL, false));
  ck_assert(bkc_wait_ready(&b2, 60000));
  char nats[128], surl[128], turl[128], port[16];
  snprintf(nats, sizeof nats, "NATS_URL=%s", th_nats_url(own));
  snprintf(surl, sizeof surl, "STT_URL=%s", b2.base);
  snprintf(turl, sizeof turl, "TTS_URL=%s", b2.base);
  snprintf(port, sizeof port, "%d", b2.port);
  tb_proc p[2];
  const char *env0[] = {
      nats, surl, "HEALTH_PORT=0", "LOG_LEVEL=INFO", "HTTP_MAX_RETRIES=1",
      NULL};
  const char *env1[] = {
      nats, turl, "HEALTH_PORT=0", "LOG_LEVEL=INFO", "HTTP_MAX_RETRIES=1",
      NULL};
  ck_assert(tb_spawn(&p[0], "services/stt-module/stt-module", env0, NULL));
  ck_assert(tb_spawn(&p[1], "services/tts-module/tts-module", env1, NULL));
  for (int i = 0; i < 2; i++) {
    ck_assert(tb_wait_started(&p[i], 30000));
    ck_assert_int_eq(tb_wait_http(p[i].health_port, "/ready", 200, 5000), 200);
  }
  aiplat_bus *bus = tb_bus(th_nats_url(own));
  size_t len;
  uint8_t *wav = synthesize(bus, "are you there", &len);
  bkc_stop(&b2, SIGKILL, 5000);

  int64_t t0 = tb_now_ms();
  aiplat_msg *req = synth_req("are you still there");
  aiplat_msg *r = tb_request(bus, aiplat_subject_tts_synthesize(), req,
                             AIPLAT_MSG_SYNTHESIZE_RESPONSE, 10000);
  ck_assert_int_eq(tb_error(r, NULL), AIPLAT_ERR_CONNECTION);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
  req = transcribe_req(wav, len, "wav");
  r = tb_request(bus, aiplat_subject_stt_transcribe(), req,
                 AIPLAT_MSG_TRANSCRIBE_RESPONSE, 10000);
  ck_assert_int_eq(tb_error(r, NULL), AIPLAT_ERR_CONNECTION);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
  int64_t took = tb_now_ms() - t0;
  printf("backend down: two error replies in %lld ms\n", (long long)took);
  ck_assert_msg(took < 8000, "error replies took %lld ms", (long long)took);

  const char *check[] = {"\"stt\":{\"ok\":false", "\"tts\":{\"ok\":false"};
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(tb_wait_http(p[i].health_port, "/ready", 503, 3000), 503);
    char *body = NULL;
    ck_assert_int_eq(tb_http_get(p[i].health_port, "/ready", &body), 503);
    ck_assert_msg(strstr(body, check[i]), "%s", body);
    free(body);
    ck_assert_int_eq(tb_http_get(p[i].health_port, "/health", NULL), 200);
    ck_assert(tb_alive(&p[i]));
  }

  /* The backend comes back on its port: the first answered request makes
   * the bridge probe again at once, readiness follows. */
  ck_assert(bkc_start(&b2, (const char *[]){"--port", port, NULL}, false));
  ck_assert(bkc_wait_ready(&b2, 60000));
  req = transcribe_req(wav, len, "wav");
  r = tb_request(bus, aiplat_subject_stt_transcribe(), req,
                 AIPLAT_MSG_TRANSCRIBE_RESPONSE, 30000);
  ck_assert_int_eq(tb_error(r, NULL), 0);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
  ck_assert_int_eq(tb_wait_http(p[0].health_port, "/ready", 200, 3000), 200);
  free(wav);
  aiplat_bus_destroy(bus);
  for (int i = 0; i < 2; i++) {
    int st = tb_stop(&p[i], SIGTERM, 20000);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  bkc_stop(&b2, SIGTERM, 20000);
  th_nats_stop(own);
}
END_TEST

/* ---- configuration
 * --------------------------------------------------------------- */

static void expect_config_line(const char *rel, const char *setting,
                               const char *var) {
  tb_proc p;
  const char *env[] = {nats_env, "HEALTH_PORT=0", setting, NULL};
  ck_assert(tb_spawn(&p, rel, env, NULL));
  int st = tb_wait_exit(&p, 20000);
  char *log = tb_log(&p);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 4,
                "%s with %s: status %d", rel, setting, st);
  ck_assert_msg(tb_lines(log) == 1, "%s with %s: not one line: %s", rel,
                setting, log);
  ck_assert_msg(strstr(log, var) != NULL, "%s: line does not name %s: %s", rel,
                var, log);
  free(log);
  tb_stop(&p, SIGKILL, 1000);
}

START_TEST(bad_configuration_is_one_line) {
  const char *stt = "services/stt-module/stt-module",
             *tts = "services/tts-module/tts-module";
  expect_config_line(stt, "STT_API=telepathy", "STT_API");
  expect_config_line(stt, "STT_URL=not a url", "STT_URL");
  expect_config_line(stt, "STT_RESPONSE_FORMAT=srt", "STT_RESPONSE_FORMAT");
  expect_config_line(stt, "WORKERS=0", "WORKERS");
  expect_config_line(tts, "TTS_SPEED=9", "TTS_SPEED");
  expect_config_line(tts, "HEALTH_PORT=eighty", "HEALTH_PORT");
  expect_config_line(tts, "NATS_URL=nowhere", "NATS_URL");
  expect_config_line(tts, "TTS_FORMAT=tape", "TTS_FORMAT");

  tb_proc p;
  ck_assert(tb_spawn(&p, stt, NULL, (const char *[]){"--version", NULL}));
  int st = tb_wait_exit(&p, 10000);
  char *log = tb_log(&p);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert_ptr_nonnull(strstr(log, "stt-module "));
  free(log);
  tb_stop(&p, SIGKILL, 1000);
  ck_assert(tb_spawn(&p, tts, NULL, (const char *[]){"--help", NULL}));
  st = tb_wait_exit(&p, 10000);
  log = tb_log(&p);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert_ptr_nonnull(strstr(log, "TTS_URL"));
  free(log);
  tb_stop(&p, SIGKILL, 1000);
  ck_assert(tb_spawn(&p, tts, NULL, (const char *[]){"--port", "9", NULL}));
  st = tb_wait_exit(&p, 10000);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
  tb_stop(&p, SIGKILL, 1000);
}
END_TEST

/* Both modules in a NATS of their own, under valgrind when this program
 * runs under it: good and bad requests, then SIGTERM, a clean exit. */
START_TEST(modules_are_clean_and_stop_on_sigterm) {
  th_nats *own = th_nats_start(NULL);
  ck_assert_ptr_nonnull(own);
  char nats[128];
  snprintf(nats, sizeof nats, "NATS_URL=%s", th_nats_url(own));
  const char *env0[] = {nats,        stt_env, "HEALTH_PORT=0", "LOG_LEVEL=INFO",
                        "WORKERS=2", NULL};
  const char *env1[] = {nats,        tts_env, "HEALTH_PORT=0", "LOG_LEVEL=INFO",
                        "WORKERS=2", NULL};
  bool vg = tb_under_valgrind();
  tb_proc p[2];
  const char *rel[2] = {"services/stt-module/stt-module",
                        "services/tts-module/tts-module"};
  const char *const *envs[2] = {env0, env1};
  for (int i = 0; i < 2; i++) {
    ck_assert(vg ? tb_spawn_valgrind(&p[i], rel[i], envs[i], NULL)
                 : tb_spawn(&p[i], rel[i], envs[i], NULL));
    ck_assert_msg(tb_wait_started(&p[i], vg ? 120000 : 30000), "%s", rel[i]);
  }
  aiplat_bus *bus = tb_bus(th_nats_url(own));
  size_t len;
  uint8_t *wav = synthesize(bus, "good evening", &len);
  aiplat_msg *req = transcribe_req(wav, len, "wav");
  aiplat_msg_set_string(req, "response_format", "verbose_json");
  aiplat_msg *r = tb_request(bus, aiplat_subject_stt_transcribe(), req,
                             AIPLAT_MSG_TRANSCRIBE_RESPONSE, 60000);
  ck_assert_int_eq(tb_error(r, NULL), 0);
  aiplat_msg_destroy(r);
  aiplat_msg_destroy(req);
  expect_error(bus, aiplat_subject_stt_transcribe(),
               transcribe_req(wav, 10, "wav"), AIPLAT_MSG_TRANSCRIBE_RESPONSE,
               AIPLAT_ERR_BAD_REQUEST, NULL);
  expect_error(bus, aiplat_subject_tts_synthesize(), synth_req(""),
               AIPLAT_MSG_SYNTHESIZE_RESPONSE, AIPLAT_ERR_INVALID_ARGUMENT,
               NULL);
  static const uint8_t garbage[] = {0xff, 0xff};
  r = tb_request_raw(bus, aiplat_subject_tts_synthesize(), garbage,
                     sizeof garbage, AIPLAT_MSG_SYNTHESIZE_RESPONSE, 30000);
  ck_assert_int_eq(tb_error(r, NULL), AIPLAT_ERR_DECODE);
  aiplat_msg_destroy(r);
  free(wav);
  aiplat_bus_destroy(bus);
  for (int i = 0; i < 2; i++) {
    int st = tb_stop(&p[i], SIGTERM, vg ? 60000 : 20000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "%s: exit %d (99: valgrind found errors or leaks)", rel[i],
                  st == -1 ? -1 : WEXITSTATUS(st));
  }
  th_nats_stop(own);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("speech-bridges");
  TCase *tc = tcase_create("speech");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_add_test(tc, speak_then_transcribe_recovers_the_words);
  tcase_add_test(tc, raw_pcm_is_transcribed);
  tcase_add_test(tc, bad_transcribe_requests_get_error_replies);
  tcase_add_test(tc, bad_synthesize_requests_get_error_replies);
  tcase_add_test(tc, audio_over_max_payload_is_an_error_not_silence);
  tcase_add_test(tc, cli_exit_codes);
  tcase_add_test(tc, services_lists_every_instance);
  tcase_add_test(tc, backend_down_error_reply_not_ready_still_alive);
  tcase_add_test(tc, bad_configuration_is_one_line);
  tcase_add_test(tc, modules_are_clean_and_stop_on_sigterm);
  suite_add_tcase(s, tc);
  return s;
}
