/* The aiplat client against a real nats-server and stand-in services run
 * in this process on the service framework (chat-handler and
 * voice-assistant live on their own branch): streamed chat, voice, error
 * replies, timeouts, no responders, discovery of several instances, usage
 * and configuration errors, with the exit codes a script relies on. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bridges/tb_util.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"

static th_nats *server;

typedef struct svc_run {
  aiplat_config *cfg;
  aiplat_service *svc;
  pthread_t thread;
} svc_run;

static svc_run CHAT, VOICE, DISCO[2];

static void *run_thread(void *arg) {
  svc_run *r = arg;
  aiplat_service_run(r->svc);
  return NULL;
}

static bool start(svc_run *r, const char *name, const char *ep,
                  const char *subject, aiplat_msg_type in, aiplat_msg_type out,
                  aiplat_handler_fn fn) {
  if (aiplat_config_create(&r->cfg) != AIPLAT_OK) return false;
  aiplat_config_set(r->cfg, "NATS_URL", th_nats_url(server));
  aiplat_config_set(r->cfg, "HEALTH_PORT", "0");
  aiplat_config_set(r->cfg, "LOG_LEVEL", "WARNING");
  return aiplat_service_create(&r->svc, r->cfg, name, "1.2.3",
                               "test stand-in") == AIPLAT_OK &&
         aiplat_service_set_handle_signals(r->svc, false) == AIPLAT_OK &&
         aiplat_service_add_endpoint(r->svc, ep, subject, NULL, in, out, fn,
                                     NULL) == AIPLAT_OK &&
         aiplat_service_start(r->svc) == AIPLAT_OK &&
         pthread_create(&r->thread, NULL, run_thread, r) == 0;
}

static void stop(svc_run *r) {
  aiplat_service_stop(r->svc);
  pthread_join(r->thread, NULL);
  aiplat_service_destroy(r->svc);
  aiplat_config_destroy(r->cfg);
}

/* ---- stand-ins
 * ------------------------------------------------------------------ */

static void add_source(aiplat_msg *m, const char *src, double score) {
  aiplat_msg *s = NULL;
  aiplat_msg_add_item(m, "sources", &s);
  aiplat_msg_set_string(s, "id", "7");
  aiplat_msg_set_string(s, "source", src);
  aiplat_msg_set_string(s, "text", "a passage");
  aiplat_msg_set_double(s, "score", score);
}

/* Streams its answer in three chunks plus a final one, then replies. */
static aiplat_status on_chat(aiplat_request *req, void *ud) {
  (void)ud;
  aiplat_msg *in = aiplat_request_message(req);
  const char *text = "", *user = "", *conv = "";
  bool rag = true, stream = false;
  aiplat_msg_get_string(in, "message", &text);
  aiplat_msg_get_string(in, "user_id", &user);
  aiplat_msg_get_string(in, "conversation_id", &conv);
  aiplat_msg_get_bool(in, "enable_rag", &rag);
  aiplat_msg_get_bool(in, "stream", &stream);
  if (strcmp(text, "fail please") == 0)
    return aiplat_request_fail(req, AIPLAT_ERR_BAD_REQUEST,
                               "the model refused");
  /* A streamed request may land in a stream: JetStream deduplicates it by
   * its Nats-Msg-Id, which must be the request id. */
  const char *msg_id = aiplat_request_header(req, "Nats-Msg-Id");
  if (stream && (!msg_id || strcmp(msg_id, aiplat_request_id(req)) != 0))
    return aiplat_request_fail(req, AIPLAT_ERR_BAD_REQUEST,
                               "Nats-Msg-Id is not the request id");
  if (strcmp(text, "be slow") == 0) tb_sleep_ms(2500);
  char answer[512];
  snprintf(answer, sizeof answer, "You said %s, %s (rag %s%s%s).", text, user,
           rag ? "on" : "off", *conv ? ", conversation " : "", conv);
  char *subject = NULL;
  aiplat_subject_chat_response(&subject, aiplat_request_id(req));
  size_t n = strlen(answer), cut[4] = {0, n / 3, 2 * n / 3, n};
  for (int i = 0; stream && i < 4; i++) {
    aiplat_msg *c = NULL;
    aiplat_msg_create(&c, AIPLAT_MSG_CHAT_CHUNK);
    aiplat_msg_set_string(c, "request_id", aiplat_request_id(req));
    aiplat_msg_set_uint64(c, "seq", (uint64_t)i);
    if (i < 3) {
      char piece[512];
      snprintf(piece, sizeof piece, "%.*s", (int)(cut[i + 1] - cut[i]),
               answer + cut[i]);
      aiplat_msg_set_string(c, "delta", piece);
    } else {
      aiplat_msg_set_bool(c, "done", true);
      aiplat_msg_set_string(c, "finish_reason", "stop");
      add_source(c, "handbook.md", 0.875);
    }
    aiplat_request_publish(req, subject, c);
    aiplat_msg_destroy(c);
    tb_sleep_ms(20);
  }
  aiplat_free(subject);
  aiplat_msg *out = NULL;
  aiplat_msg_create(&out, AIPLAT_MSG_CHAT_RESPONSE);
  aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  aiplat_msg_set_string(out, "text", answer);
  add_source(out, "handbook.md", 0.875);
  aiplat_status st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

static aiplat_status on_voice(aiplat_request *req, void *ud) {
  (void)ud;
  aiplat_msg *in = aiplat_request_message(req);
  const uint8_t *audio = NULL;
  size_t len = 0;
  const char *fmt = "", *voice = "";
  aiplat_msg_get_bytes(in, "audio", &audio, &len);
  aiplat_msg_get_string(in, "audio_format", &fmt);
  aiplat_msg_get_string(in, "voice", &voice);
  if (len < 4 || memcmp(audio, "RIFF", 4) != 0)
    return aiplat_request_fail(req, AIPLAT_ERR_INVALID_ARGUMENT, "not a WAV");
  char heard[128];
  snprintf(heard, sizeof heard, "%zu bytes of %s", len, *fmt ? fmt : "?");
  aiplat_msg *out = NULL;
  aiplat_msg_create(&out, AIPLAT_MSG_VOICE_RESPONSE);
  aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  aiplat_msg_set_string(out, "transcript", heard);
  aiplat_msg_set_string(out, "text", *voice ? voice : "default voice");
  aiplat_msg_set_bytes(out, "audio", (const uint8_t *)"RIFF-answer", 11);
  aiplat_msg_set_string(out, "audio_format", "wav");
  add_source(out, "faq.md", 0.5);
  aiplat_status st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

static aiplat_status on_disco(aiplat_request *req, void *ud) {
  (void)ud;
  return aiplat_request_respond_bytes(req, "pong", 4);
}

static char tmpdir[64];

/* The stand-ins run in a process of their own: a forked test must not
 * inherit a running NATS client (its threads do not survive the fork, its
 * memory looks leaked). */
static pid_t stand_ins;

static void run_stand_ins(int ready_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, NULL);
  bool ok =
      start(&CHAT, "chat-stand-in", "chat", "ai.chat.user.*.message",
            AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE, on_chat) &&
      start(&VOICE, "voice-stand-in", "voice", "ai.voice.user.*.request",
            AIPLAT_MSG_VOICE_REQUEST, AIPLAT_MSG_VOICE_RESPONSE, on_voice) &&
      start(&DISCO[0], "disco", "ping", "test.disco", AIPLAT_MSG_INVALID,
            AIPLAT_MSG_INVALID, on_disco) &&
      start(&DISCO[1], "disco", "ping", "test.disco", AIPLAT_MSG_INVALID,
            AIPLAT_MSG_INVALID, on_disco);
  if (!ok) _exit(2);
  /* Six requests the instances share, counted by services_lists_... */
  aiplat_config *cfg = NULL;
  aiplat_bus *bus = NULL;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "NATS_URL", th_nats_url(server));
  if (aiplat_bus_create(&bus, cfg) != AIPLAT_OK ||
      aiplat_bus_connect(bus) != AIPLAT_OK)
    _exit(3);
  for (int i = 0; i < 6; i++) {
    aiplat_bus_msg *m = NULL;
    if (aiplat_bus_request(bus, "test.disco", "x", 1, NULL, 5000, &m) !=
        AIPLAT_OK)
      _exit(4);
    aiplat_bus_msg_destroy(m);
  }
  aiplat_bus_destroy(bus);
  aiplat_config_destroy(cfg);
  if (write(ready_fd, "1", 1) != 1) _exit(5);
  close(ready_fd);
  int sig = 0;
  sigwait(&term, &sig);
  stop(&CHAT);
  stop(&VOICE);
  stop(&DISCO[0]);
  stop(&DISCO[1]);
  exit(0);
}

static void setup(void) {
  server = th_nats_start(NULL);
  ck_assert_ptr_nonnull(server);
  setenv("NATS_URL", th_nats_url(server), 1);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  fflush(NULL);
  stand_ins = fork();
  ck_assert_int_ge(stand_ins, 0);
  if (stand_ins == 0) {
    close(fds[0]);
    run_stand_ins(fds[1]);
  }
  close(fds[1]);
  char c = 0;
  ck_assert_msg(read(fds[0], &c, 1) == 1,
                "the stand-in services did not start");
  close(fds[0]);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aiplat-cli-t-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  kill(stand_ins, SIGTERM);
  int st = -1;
  waitpid(stand_ins, &st, 0);
  th_nats_stop(server);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "stand-in services: status %d", st);
}

static const char *tmp(const char *name) {
  static char path[4][128];
  static int i;
  i = (i + 1) % 4;
  snprintf(path[i], sizeof path[i], "%s/%s", tmpdir, name);
  return path[i];
}

/* ---- chat
 * ------------------------------------------------------------------------- */

START_TEST(chat_streams_the_answer_then_the_sources) {
  tb_run r = tb_cli((const char *[]){"chat", "hello", NULL});
  ck_assert_msg(r.code == 0, "%d: %s", r.code, r.err);
  ck_assert_str_eq(r.out,
                   "You said hello, cli (rag on).\n"
                   "\n"
                   "Sources:\n"
                   "  [1] handbook.md (score 0.875)\n");
  ck_assert_str_eq(r.err, "");
  tb_run_free(&r);

  r = tb_cli((const char *[]){"chat", "--no-rag", "-u", "alice",
                              "--conversation", "c-9", "--", "-dash first",
                              NULL});
  ck_assert_msg(r.code == 0, "%d: %s", r.code, r.err);
  ck_assert_ptr_nonnull(strstr(
      r.out, "You said -dash first, alice (rag off, conversation c-9)."));
  tb_run_free(&r);

  r = tb_cli((const char *[]){"chat", "hi", "--json", NULL});
  ck_assert_int_eq(r.code, 0);
  ck_assert_uint_eq(tb_lines(r.out), 1);
  json_t *j = json_loads(r.out, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
                   "You said hi, cli (rag on).");
  ck_assert_uint_eq(json_array_size(json_object_get(j, "sources")), 1);
  json_decref(j);
  tb_run_free(&r);
}
END_TEST

START_TEST(chat_errors_timeouts_and_hostile_users) {
  tb_run r = tb_cli((const char *[]){"chat", "fail please", NULL});
  ck_assert_int_eq(r.code, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "BAD_REQUEST: the model refused"));
  ck_assert_uint_eq(tb_lines(r.err), 1);
  tb_run_free(&r);

  r = tb_cli((const char *[]){"chat", "be slow", "--timeout", "500ms", NULL});
  ck_assert_int_eq(r.code, 3);
  ck_assert(r.seconds < 2.4);
  tb_run_free(&r);

  const char *hostile[] = {"a.b", "*", ">", "a b", ""};
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    r = tb_cli((const char *[]){"chat", "hi", "--user", hostile[i], NULL});
    ck_assert_msg(r.code == 2, "user '%s': %d", hostile[i], r.code);
    tb_run_free(&r);
  }
  r = tb_cli((const char *[]){"chat", "", NULL});
  ck_assert_int_eq(r.code, 2);
  tb_run_free(&r);
}
END_TEST

/* ---- voice
 * ------------------------------------------------------------------------ */

START_TEST(voice_prints_transcript_and_writes_audio) {
  ck_assert(tb_write_file(tmp("q.wav"), "RIFF....WAVEdata", 16));
  tb_run r = tb_cli((const char *[]){"voice", tmp("q.wav"), "-o", tmp("a.wav"),
                                     "--voice", "slt", NULL});
  ck_assert_msg(r.code == 0, "%d: %s", r.code, r.err);
  ck_assert_ptr_nonnull(
      strstr(r.out, "Transcript: 16 bytes of wav\nAnswer: slt\n"));
  ck_assert_ptr_nonnull(strstr(r.out, "[1] faq.md"));
  tb_run_free(&r);
  size_t len = 0;
  uint8_t *a = tb_read_file(tmp("a.wav"), &len);
  ck_assert_ptr_nonnull(a);
  ck_assert_uint_eq(len, 11);
  ck_assert_int_eq(memcmp(a, "RIFF-answer", 11), 0);
  free(a);

  r = tb_cli((const char *[]){"voice", tmp("q.wav"), "--json", NULL});
  ck_assert_int_eq(r.code, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "transcript")),
                   "16 bytes of wav");
  ck_assert_ptr_null(json_object_get(j, "audio"));
  json_decref(j);
  tb_run_free(&r);

  ck_assert(tb_write_file(tmp("q.ogg"), "OggS-not-a-wav", 14));
  r = tb_cli((const char *[]){"voice", tmp("q.ogg"), NULL});
  ck_assert_int_eq(r.code, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "INVALID_ARGUMENT"));
  tb_run_free(&r);
  r = tb_cli((const char *[]){"voice", tmp("none.wav"), NULL});
  ck_assert_int_eq(r.code, 5);
  tb_run_free(&r);
}
END_TEST

/* ---- discovery
 * -------------------------------------------------------------------- */

START_TEST(services_lists_two_instances_with_their_counts) {
  tb_run r = tb_cli((const char *[]){"services", "disco", "--json", NULL});
  ck_assert_msg(r.code == 0, "%s", r.err);
  ck_assert_uint_eq(tb_lines(r.out), 2);
  long total = 0;
  char id0[64] = "";
  for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *j = json_loads(line, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "disco");
    ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "1.2.3");
    const char *id = json_string_value(json_object_get(j, "id"));
    ck_assert_str_ne(id, id0);
    snprintf(id0, sizeof id0, "%s", id);
    json_t *ep = json_array_get(json_object_get(j, "endpoints"), 0);
    total += (long)json_integer_value(json_object_get(ep, "num_requests"));
    json_decref(j);
  }
  ck_assert_int_eq(total, 6);
  tb_run_free(&r);

  r = tb_cli((const char *[]){"services", "--wait", "300ms", NULL});
  ck_assert_int_eq(r.code, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "NAME"));
  ck_assert_ptr_nonnull(strstr(r.out, "chat-stand-in"));
  ck_assert_ptr_nonnull(strstr(r.out, "voice-stand-in"));
  ck_assert_ptr_nonnull(strstr(r.out, "test.disco"));
  ck_assert_uint_eq(tb_lines(r.out), 5);
  tb_run_free(&r);

  r = tb_cli((const char *[]){"services", "nobody-here", NULL});
  ck_assert_int_eq(r.code, 3);
  tb_run_free(&r);
  r = tb_cli((const char *[]){"services", "a.b", NULL});
  ck_assert_int_eq(r.code, 2);
  tb_run_free(&r);
}
END_TEST

/* ---- usage, configuration, no answer
 * ------------------------------------------------ */

START_TEST(usage_configuration_and_no_answer_exit_codes) {
  struct {
    const char *args[8];
    int code;
  } cases[] = {
      {{NULL}, 2},
      {{"dance", NULL}, 2},
      {{"pipeline", NULL}, 2},
      {{"pipeline", "run", "x", NULL}, 2},
      {{"pipeline", "trigger", "argo", NULL}, 2},
      {{"pipeline", "trigger", "argo", "p", "novalue", NULL}, 2},
      {{"pipeline", "status", "a.b", NULL}, 2},
      {{"chat", "a", "b", NULL}, 2},
      {{"chat", "a", "--bogus", NULL}, 2},
      {{"chat", "a", "--timeout", "soon", NULL}, 2},
      {{"chat", "a", "--output", "x", NULL}, 2},
      {{"speak", "x", "-o", NULL}, 2},
      {{"services", "--wait", "-1s", NULL}, 2},
      {{"--help", NULL}, 0},
      {{"--version", NULL}, 0},
      {{"-s", "not a url", "chat", "hi", NULL}, 4},
      {{"-s", "nats://127.0.0.1:1", "chat", "hi", NULL}, 3},
      {{"transcribe", "/dev/null", "--format", "wav", NULL},
       2},                                        /* empty input */
      {{"pipeline", "status", "run-1", NULL}, 3}, /* no bridge here */
      {{"pipeline", "trigger", "argo", "etl", "a=1", NULL}, 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tb_run r = tb_cli(cases[i].args);
    ck_assert_msg(r.code == cases[i].code,
                  "case %zu (%s %s): exit %d, want %d: %s", i,
                  cases[i].args[0] ? cases[i].args[0] : "",
                  cases[i].args[0] && cases[i].args[1] ? cases[i].args[1] : "",
                  r.code, cases[i].code, r.err);
    if (cases[i].code == 2 && i > 0)
      ck_assert_ptr_nonnull(strstr(r.err, "aiplat: "));
    if (cases[i].code == 3 || cases[i].code == 4)
      ck_assert_msg(tb_lines(r.err) == 1, "case %zu: %s", i, r.err);
    tb_run_free(&r);
  }
  tb_run r = tb_cli((const char *[]){"--help", NULL});
  ck_assert_ptr_nonnull(strstr(r.out, "Exit status:"));
  ck_assert_ptr_nonnull(strstr(r.out, "  3  no answer"));
  tb_run_free(&r);

  /* a transcribe request where no stt-module listens */
  ck_assert(tb_write_file(tmp("s.wav"), "RIFF", 4));
  r = tb_cli((const char *[]){"transcribe", tmp("s.wav"), NULL});
  ck_assert_int_eq(r.code, 3);
  ck_assert_ptr_nonnull(
      strstr(r.err, "no service is listening on ai.stt.transcribe"));
  tb_run_free(&r);
}
END_TEST

/* The client's own memory: the main paths run under valgrind when this
 * program does (make check-valgrind), natively otherwise. */
START_TEST(client_paths_are_clean) {
  bool vg = tb_under_valgrind();
  tb_run (*run)(const char *const *) = vg ? tb_cli_valgrind : tb_cli;
  ck_assert(tb_write_file(tmp("v.wav"), "RIFF....WAVEdata", 16));
  struct {
    const char *args[8];
    int code;
  } cases[] = {
      {{"chat", "hello", NULL}, 0},
      {{"chat", "fail please", NULL}, 1},
      {{"chat", "be slow", "--timeout", "1s", NULL}, 3},
      {{"voice", tmp("v.wav"), "-o", tmp("out.wav"), NULL}, 0},
      {{"services", "--json", NULL}, 0},
      {{"pipeline", "status", "r-1", NULL}, 3},
      {{"speak", "x", NULL}, 2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tb_run r = run(cases[i].args);
    ck_assert_msg(r.code == cases[i].code,
                  "case %zu: exit %d (99: valgrind): %s", i, r.code, r.err);
    tb_run_free(&r);
  }
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("cli");
  tcase_set_timeout(tc, 90);
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_add_test(tc, chat_streams_the_answer_then_the_sources);
  tcase_add_test(tc, chat_errors_timeouts_and_hostile_users);
  tcase_add_test(tc, voice_prints_transcript_and_writes_audio);
  tcase_add_test(tc, services_lists_two_instances_with_their_counts);
  tcase_add_test(tc, usage_configuration_and_no_answer_exit_codes);
  tcase_add_test(tc, client_paths_are_clean);
  suite_add_tcase(s, tc);
  return s;
}
