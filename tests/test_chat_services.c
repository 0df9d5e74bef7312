/* chat-handler and voice-assistant end to end: the real service binaries as
 * processes, a real nats-server, the local model backend, the sample
 * knowledge base in a local vector store. Everything is said over NATS. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "chat_internal.h"
#include "chat_testutil.h"
#include "config.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"
#include "svc_proc.h"

#define T_REQ 20000 /* ms a test waits for a reply */
#define CHUNK "aiplat.messages.v1.ChatChunk"
#define RESPONSE "aiplat.messages.v1.ChatResponse"

static th_nats *nats;
static bkc_proc B;
static char dir[64];
static sp_proc chat1, chat2, voice;
static char chat_bin[1024], voice_bin[1024];

/* Environment of the services of the shared fixture (putenv keeps them). */
static char e_nats[128], e_vllm[128], e_emb[128], e_stt[128], e_tts[128],
    e_store[160];
static const char *svc_env[] = {e_nats,
                                e_vllm,
                                e_emb,
                                e_stt,
                                e_tts,
                                e_store,
                                "VECTOR_STORE=local",
                                "CHAT_HISTORY_TURNS=2",
                                "READY_CHECK_INTERVAL=200ms",
                                "WORKERS=2",
                                "LOG_LEVEL=INFO",
                                "NATS_RECONNECT_WAIT=100ms",
                                NULL};

static void set_env(const char *base) {
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", base);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", base);
  snprintf(e_stt, sizeof e_stt, "STT_URL=%s", base);
  snprintf(e_tts, sizeof e_tts, "TTS_URL=%s", base);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s/kb.aipvs", dir);
}

static void start_service(sp_proc *p, const char *bin, const char *log,
                          const char *const *env) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, log);
  ck_assert_msg(sp_start(p, bin, env, path, NULL), "cannot start %s", bin);
  ck_assert_msg(sp_wait_started(p, 20000), "%s did not start (log %s)", bin,
                path);
}

static void up(void) {
  setenv("LOG_LEVEL", "WARNING", 1); /* this program's own clients */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  nats = th_nats_start(NULL);
  ck_assert_ptr_nonnull(nats);
  ck_assert_msg(bkc_start(&B, NULL, false), "backend did not start");
  ck_assert_msg(bkc_wait_ready(&B, 60000), "backend not ready");
  snprintf(dir, sizeof dir, "/tmp/aiplat-chat-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  set_env(B.base);
  char store[128];
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
  ck_assert_uint_gt(ct_ingest_knowledge(store, B.base), 5);
  sp_path("services/chat-handler/chat-handler", chat_bin, sizeof chat_bin);
  sp_path("services/voice-assistant/voice-assistant", voice_bin,
          sizeof voice_bin);
  start_service(&chat1, chat_bin, "chat1.log", svc_env);
  start_service(&chat2, chat_bin, "chat2.log", svc_env);
  start_service(&voice, voice_bin, "voice.log", svc_env);
}

static void stop_clean(sp_proc *p, const char *what) {
  int st = sp_stop(p, SIGTERM, 20000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "%s did not stop cleanly (status %d; log %s)", what, st,
                p->log);
}

static void down(void) {
  stop_clean(&chat1, "chat-handler 1");
  stop_clean(&chat2, "chat-handler 2");
  stop_clean(&voice, "voice-assistant");
  bkc_stop(&B, SIGTERM, 20000);
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
  curl_global_cleanup();
}

/* ---- helpers
 * ------------------------------------------------------------------ */

static aiplat_msg *ask(aiplat_bus *bus, const ct_chat *c) {
  size_t len = 0;
  uint8_t *buf = ct_chat_bytes(c, &len);
  ck_assert_ptr_nonnull(buf);
  char *subject = NULL;
  ck_assert_int_eq(aiplat_subject_chat_user_message(
                       &subject, c->user_id ? c->user_id : "anon"),
                   AIPLAT_OK);
  aiplat_status st;
  aiplat_msg *r =
      ct_request(bus, subject, buf, len, AIPLAT_MSG_CHAT_RESPONSE, T_REQ, &st);
  ck_assert_msg(r != NULL, "no reply on %s: %s", subject,
                aiplat_status_str(st));
  aiplat_free(subject);
  aiplat_free(buf);
  return r;
}

static const char *str(aiplat_msg *m, const char *field) {
  const char *s = NULL;
  ck_assert_int_eq(aiplat_msg_get_string(m, field, &s), AIPLAT_OK);
  return s;
}

static const char *source_at(aiplat_msg *m, size_t i) {
  aiplat_msg *s = NULL;
  ck_assert_int_eq(aiplat_msg_get_item(m, "sources", i, &s), AIPLAT_OK);
  return str(s, "source");
}

static size_t count(aiplat_msg *m, const char *field) {
  size_t n = 0;
  ck_assert_int_eq(aiplat_msg_count(m, field, &n), AIPLAT_OK);
  return n;
}

static void expect_ok(aiplat_msg *r) {
  const char *why = NULL;
  int64_t code = ct_error(r, &why);
  ck_assert_msg(code == 0, "error reply %lld: %s", (long long)code, why);
}

static void expect_error(aiplat_msg *r, aiplat_status code, const char *want) {
  const char *why = NULL;
  int64_t got = ct_error(r, &why);
  ck_assert_msg(got == code, "error %lld (want %d): %s", (long long)got,
                (int)code, why);
  if (want)
    ck_assert_msg(strstr(why, want) != NULL, "error '%s' lacks '%s'", why,
                  want);
}

static const char q_backups[] = "How often are Milvus backups taken?";

/* ---- chat
 * -------------------------------------------------------------------- */

START_TEST(chat_answers_with_sources_on_both_subjects) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.chat.response.req-plain-1"));
  ct_chat c = ct_chat_init("alice", q_backups, "req-plain-1");
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_msg(strstr(str(r, "text"), "02:00 UTC") != NULL, "answer: %s",
                str(r, "text"));
  ck_assert_str_eq(str(r, "request_id"), "req-plain-1");
  ck_assert_uint_ge(count(r, "sources"), 1);
  ck_assert_str_eq(source_at(r, 0), "backups.md");
  aiplat_msg *src = NULL, *usage = NULL;
  aiplat_msg_get_item(r, "sources", 0, &src);
  double score = 0;
  aiplat_msg_get_double(src, "score", &score);
  ck_assert(score > 0 && score <= 1.0);
  ck_assert(strlen(str(src, "id")) > 0 &&
            strstr(str(src, "text"), "02:00") != NULL);
  ck_assert_str_eq(str(r, "finish_reason"), "stop");
  ck_assert(strlen(str(r, "model")) > 0);
  ck_assert_int_eq(aiplat_msg_get_message(r, "usage", &usage), AIPLAT_OK);
  int64_t total = 0;
  aiplat_msg_get_int64(usage, "total_tokens", &total);
  ck_assert_int_gt(total, 10);
  /* The same answer on ai.chat.response.{requestId}, typed. */
  long at = ct_wait_type(&col, RESPONSE, T_REQ);
  ck_assert_int_ge(at, 0);
  aiplat_msg *pub = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&pub, AIPLAT_MSG_CHAT_RESPONSE,
                                     col.v[at].data, col.v[at].len),
                   AIPLAT_OK);
  ck_assert_str_eq(str(pub, "text"), str(r, "text"));
  aiplat_msg_destroy(pub);
  aiplat_msg_destroy(r);
  ct_collector_free(&col);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(chat_streams_chunks_in_order_then_the_response) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.chat.response.req-stream-1"));
  ct_chat c = ct_chat_init("alice", q_backups, "req-stream-1");
  c.stream = true;
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_int_ge(ct_wait_type(&col, RESPONSE, T_REQ), 0);
  /* chunks 0..n-1 with deltas, the done chunk, then the ChatResponse */
  char text[4096] = "";
  size_t n = col.n;
  ck_assert_uint_ge(n, 4);
  for (size_t i = 0; i + 1 < n; i++) {
    ck_assert_str_eq(col.v[i].type, CHUNK);
    aiplat_msg *ch = NULL;
    ck_assert_int_eq(aiplat_msg_decode(&ch, AIPLAT_MSG_CHAT_CHUNK,
                                       col.v[i].data, col.v[i].len),
                     AIPLAT_OK);
    uint64_t seq = 99999;
    bool done = false;
    aiplat_msg_get_uint64(ch, "seq", &seq);
    aiplat_msg_get_bool(ch, "done", &done);
    ck_assert_uint_eq(seq, i);
    ck_assert_str_eq(str(ch, "request_id"), "req-stream-1");
    ck_assert_int_eq(done, i + 2 == n);
    if (!done) {
      ck_assert(strlen(str(ch, "delta")) > 0);
      strncat(text, str(ch, "delta"), sizeof text - strlen(text) - 1);
    } else {
      ck_assert_str_eq(str(ch, "finish_reason"), "stop");
      ck_assert_str_eq(source_at(ch, 0), "backups.md");
      ck_assert(aiplat_msg_has(ch, "usage"));
      ck_assert(!aiplat_msg_has(ch, "error"));
    }
    aiplat_msg_destroy(ch);
  }
  ck_assert_str_eq(col.v[n - 1].type, RESPONSE);
  ck_assert_str_eq(text, str(r, "text"));
  ck_assert(strstr(text, "02:00 UTC") != NULL);
  aiplat_msg_destroy(r);
  ct_collector_free(&col);
  aiplat_bus_destroy(bus);
}
END_TEST

static aiplat_msg *turn(aiplat_bus *bus, const char *user, const char *conv,
                        const char *msg) {
  ct_chat c = ct_chat_init(user, msg, NULL);
  c.conversation_id = conv;
  c.enable_rag = 0;
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_str_eq(str(r, "conversation_id"), conv);
  return r;
}

START_TEST(chat_history_carries_earlier_turns) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  /* The extractive model quotes numbered passages of user messages: a
   * passage given in turn 1 answers a question of turn 2 only if turn 1
   * was sent with it. */
  const char fact[] =
      "Note for later.\n[1] The launch code of the demo rocket is 4711.";
  const char q[] = "What is the launch code of the demo rocket?";
  aiplat_msg_destroy(turn(bus, "carol", "conv-1", fact));
  aiplat_msg *r = turn(bus, "carol", "conv-1", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") != NULL, "turn 2: %s",
                str(r, "text"));
  aiplat_msg_destroy(r);
  /* Another conversation, or another user with the same conversation id,
   * does not see it. */
  r = turn(bus, "carol", "conv-2", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") == NULL, "conv-2: %s",
                str(r, "text"));
  aiplat_msg_destroy(r);
  r = turn(bus, "mallory", "conv-1", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") == NULL, "mallory: %s",
                str(r, "text"));
  aiplat_msg_destroy(r);
  /* The bucket holds the last CHAT_HISTORY_TURNS (2) turns, answers too. */
  aiplat_kv *kv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "chat-history", 0, 1), AIPLAT_OK);
  char *key = aip_chat_history_key("carol", "conv-1");
  void *val = NULL;
  size_t len = 0;
  ck_assert_int_eq(aiplat_kv_get(kv, key, &val, &len), AIPLAT_OK);
  json_t *j = json_loads(val, 0, NULL);
  json_t *turns = json_object_get(j, "turns");
  ck_assert_uint_eq(json_array_size(turns), 2);
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(turns, 1), "user")), q);
  ck_assert(strstr(json_string_value(
                       json_object_get(json_array_get(turns, 1), "assistant")),
                   "4711") != NULL);
  json_decref(j);
  aiplat_free(val);
  /* Two more turns push turn 1 out: the fact is forgotten. */
  aiplat_msg_destroy(turn(bus, "carol", "conv-1", "Thanks."));
  r = turn(bus, "carol", "conv-1", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") == NULL, "after trimming: %s",
                str(r, "text"));
  aiplat_msg_destroy(r);
  free(key);
  aiplat_kv_destroy(kv);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(chat_without_rag_has_no_sources) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ct_chat c = ct_chat_init("alice", q_backups, NULL);
  c.enable_rag = 0;
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_uint_eq(count(r, "sources"), 0);
  /* No passage reached the model: the local backend says it has no context. */
  ck_assert_msg(strstr(str(r, "text"), "no context") != NULL, "answer: %s",
                str(r, "text"));
  ck_assert(strlen(str(r, "request_id")) > 0); /* generated */
  aiplat_msg_destroy(r);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(chat_honours_per_request_overrides) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ct_chat c = ct_chat_init("alice", q_backups, NULL);
  c.model = "override-model";
  c.max_tokens = 3;
  c.top_k = 1;
  c.temperature = 0.2;
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_str_eq(str(r, "model"), "override-model");
  ck_assert_str_eq(str(r, "finish_reason"), "length");
  ck_assert_uint_eq(count(r, "sources"), 1);
  aiplat_msg *u = NULL;
  int64_t words = 0;
  aiplat_msg_get_message(r, "usage", &u);
  aiplat_msg_get_int64(u, "completion_tokens", &words);
  ck_assert_int_eq(words, 3);
  aiplat_msg_destroy(r);
  struct {
    int top_k, max_tokens;
    double temperature;
    const char *model, *want;
  } bad[] = {{0, -1, -1, NULL, "top_k"},
             {101, -1, -1, NULL, "top_k"},
             {-1, 0, -1, NULL, "max_tokens"},
             {-1, -1, 2.5, NULL, "temperature"},
             {-1, -1, -1, " ", "model"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = ct_chat_init("alice", q_backups, NULL);
    c.top_k = bad[i].top_k;
    c.max_tokens = bad[i].max_tokens;
    c.temperature = bad[i].temperature;
    c.model = bad[i].model;
    r = ask(bus, &c);
    expect_error(r, AIPLAT_ERR_INVALID_ARGUMENT, bad[i].want);
    aiplat_msg_destroy(r);
  }
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(chat_refuses_bad_input_with_error_replies) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  aiplat_status st;
  /* Undecodable bytes. */
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
  aiplat_msg *r = ct_request(bus, "ai.chat.user.alice.message", junk,
                             sizeof junk, AIPLAT_MSG_CHAT_RESPONSE, T_REQ, &st);
  ck_assert_ptr_nonnull(r);
  expect_error(r, AIPLAT_ERR_DECODE, NULL);
  aiplat_msg_destroy(r);
  /* Hostile ids and empty fields; the error also reaches the response
   * subject when the request id is usable. */
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.chat.response.req-bad-user"));
  struct {
    const char *user, *msg, *rid, *conv, *want;
  } bad[] = {{"bob.*", q_backups, NULL, NULL, "user_id"},
             {"bob", q_backups, "req-bad-user", NULL,
              "user_id"}, /* not the subject's */
             {"alice", q_backups, "x.>", NULL, "request"},
             {"alice", q_backups, "two words", NULL, "request"},
             {"alice", "  \n", NULL, NULL, "message"},
             {"alice", q_backups, NULL, "a b", "conversation_id"},
             {"alice", q_backups, NULL, "c.>", "conversation_id"},
             {"alice", q_backups, NULL,
              "a-conversation-id-that-is-much-longer-than-sixty-four-bytes-"
              "allowed-here",
              "conversation_id"},
             {NULL, q_backups, NULL, "conv", "user_id"}};
  /* A user id too long for a history key (the last case). */
  char long_user[131], long_subject[160];
  memset(long_user, 'u', 130);
  long_user[130] = '\0';
  snprintf(long_subject, sizeof long_subject, "ai.chat.user.%s.message",
           long_user);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ct_chat c = ct_chat_init(bad[i].user ? bad[i].user : long_user, bad[i].msg,
                             bad[i].rid);
    c.conversation_id = bad[i].conv;
    size_t len = 0;
    uint8_t *buf = ct_chat_bytes(&c, &len);
    r = ct_request(bus,
                   bad[i].user ? "ai.chat.user.alice.message" : long_subject,
                   buf, len, AIPLAT_MSG_CHAT_RESPONSE, T_REQ, &st);
    aiplat_free(buf);
    ck_assert_msg(r != NULL, "case %zu: no reply (%s)", i,
                  aiplat_status_str(st));
    expect_error(r, AIPLAT_ERR_INVALID_ARGUMENT, bad[i].want);
    aiplat_msg_destroy(r);
  }
  long at = ct_wait_type(&col, RESPONSE, T_REQ);
  ck_assert_int_ge(at, 0);
  aiplat_msg *pub = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&pub, AIPLAT_MSG_CHAT_RESPONSE,
                                     col.v[at].data, col.v[at].len),
                   AIPLAT_OK);
  expect_error(pub, AIPLAT_ERR_INVALID_ARGUMENT, "user_id");
  aiplat_msg_destroy(pub);
  ct_collector_free(&col);
  /* The services are still there. */
  ct_chat c = ct_chat_init("alice", q_backups, NULL);
  r = ask(bus, &c);
  expect_ok(r);
  aiplat_msg_destroy(r);
  ck_assert(sp_alive(&chat1) && sp_alive(&chat2));
  aiplat_bus_destroy(bus);
}
END_TEST

/* num_requests of every chat-handler instance by id, from $SRV.STATS. */
typedef struct inst {
  char id[64];
  int64_t n;
} inst;

static size_t instance_counts(aiplat_bus *bus, inst *v, size_t max) {
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "test.stats.inbox"));
  ck_assert_int_eq(
      aiplat_bus_publish_request(bus, "$SRV.STATS.chat-handler",
                                 "test.stats.inbox", NULL, 0, NULL),
      AIPLAT_OK);
  ct_wait(&col, max + 1, 1000); /* gather what answers within a second */
  size_t n = 0;
  for (size_t i = 0; i < col.n && n < max; i++) {
    json_t *j = json_loadb((const char *)col.v[i].data, col.v[i].len, 0, NULL);
    json_t *eps = json_object_get(j, "endpoints");
    const char *id = json_string_value(json_object_get(j, "id"));
    snprintf(v[n].id, sizeof v[n].id, "%s", id ? id : "");
    v[n++].n = json_integer_value(
        json_object_get(json_array_get(eps, 0), "num_requests"));
    json_decref(j);
  }
  ct_collector_free(&col);
  return n;
}

START_TEST(two_instances_share_the_load) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  inst before[4], after[4];
  ck_assert_uint_eq(instance_counts(bus, before, 4), 2);
  for (int i = 0; i < 24; i++) {
    ct_chat c = ct_chat_init("dave", "What does the backup job write?", NULL);
    aiplat_msg *r = ask(bus, &c);
    expect_ok(r);
    aiplat_msg_destroy(r);
  }
  /* Statistics are counted just after the reply: ask until they settle. */
  int64_t total = 0;
  for (int tries = 0; tries < 20 && total != 24; tries++) {
    ck_assert_uint_eq(instance_counts(bus, after, 4), 2);
    total = 0;
    for (size_t i = 0; i < 2; i++) {
      const inst *b =
          !strcmp(before[0].id, after[i].id) ? &before[0] : &before[1];
      ck_assert_str_eq(b->id, after[i].id);
      total += after[i].n - b->n;
    }
  }
  ck_assert_int_eq(total, 24);
  for (size_t i = 0; i < 2; i++) {
    const inst *b =
        !strcmp(before[0].id, after[i].id) ? &before[0] : &before[1];
    ck_assert_msg(after[i].n > b->n, "instance %s took none of the 24 requests",
                  b->id);
  }
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- voice
 * ------------------------------------------------------------------- */

/* A spoken question: the backend's own speech engine reads it. */
static uint8_t *speak(const char *text, size_t *len) {
  char json[512];
  snprintf(json, sizeof json,
           "{\"model\":\"tts-1\",\"input\":\"%s\",\"response_format\":\"wav\"}",
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

static const char *next_voice; /* the next request's voice, or NULL */

static aiplat_msg *ask_voice(aiplat_bus *bus, const char *subject,
                             const char *user, const char *rid,
                             const uint8_t *audio, size_t alen,
                             const char *format) {
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, AIPLAT_MSG_VOICE_REQUEST), AIPLAT_OK);
  if (next_voice)
    ck_assert_int_eq(aiplat_msg_set_string(m, "voice", next_voice), AIPLAT_OK);
  next_voice = NULL;
  if (user)
    ck_assert_int_eq(aiplat_msg_set_string(m, "user_id", user), AIPLAT_OK);
  if (rid)
    ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", rid), AIPLAT_OK);
  if (format)
    ck_assert_int_eq(aiplat_msg_set_string(m, "audio_format", format),
                     AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_bytes(m, "audio", audio, alen), AIPLAT_OK);
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, &len), AIPLAT_OK);
  aiplat_msg_destroy(m);
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, subject, buf, len, AIPLAT_MSG_VOICE_RESPONSE,
                             T_REQ * 2, &st);
  ck_assert_msg(r != NULL, "no voice reply: %s", aiplat_status_str(st));
  aiplat_free(buf);
  return r;
}

START_TEST(voice_round_trip_speech_to_speech) {
  /* Ready: NATS and its four model servers answer. */
  char *body = NULL;
  long ready = 0;
  for (int i = 0; i < 100 && ready != 200; i++, usleep(50000)) {
    free(body);
    ready = sp_http_get(voice.health_port, "/ready", &body);
  }
  ck_assert_int_eq(ready, 200);
  const char *checks[] = {"\"nats\"", "\"llm\"", "\"embeddings\"", "\"stt\"",
                          "\"tts\""};
  for (size_t i = 0; i < 5; i++)
    ck_assert_msg(strstr(body, checks[i]) != NULL, "/ready lacks %s: %s",
                  checks[i], body);
  free(body);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.voice.response.voice-1"));
  size_t wlen = 0;
  uint8_t *wav = speak("how often are milvus backups taken", &wlen);
  aiplat_msg *r = ask_voice(bus, "ai.voice.user.erin.request", "erin",
                            "voice-1", wav, wlen, "wav");
  expect_ok(r);
  const char *heard = str(r, "transcript");
  ck_assert_msg(strstr(heard, "backups") != NULL, "transcript: %s", heard);
  char heard_copy[256];
  snprintf(heard_copy, sizeof heard_copy, "%s", heard);
  ck_assert_msg(strstr(str(r, "text"), "02:00 UTC") != NULL, "answer: %s",
                str(r, "text"));
  ck_assert_str_eq(source_at(r, 0), "backups.md");
  ck_assert_str_eq(str(r, "audio_format"), "wav");
  ck_assert_str_eq(str(r, "request_id"), "voice-1");
  const uint8_t *audio = NULL;
  size_t alen = 0;
  ck_assert_int_eq(aiplat_msg_get_bytes(r, "audio", &audio, &alen), AIPLAT_OK);
  ck_assert(alen > 16000 && memcmp(audio, "RIFF", 4) == 0);
  /* The spoken answer says what the text says: transcribe it back. */
  const char *fields[] = {"model", "whisper-1", NULL};
  bkc_resp t =
      bkc_post_form(&B, "/v1/audio/transcriptions", audio, alen, fields);
  ck_assert_int_eq(t.status, 200);
  ck_assert_msg(strstr(t.body, "backup") != NULL, "spoken answer heard as: %s",
                t.body);
  bkc_resp_free(&t);
  ck_assert(ct_wait(&col, 1, T_REQ));
  aiplat_msg *pub = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&pub, AIPLAT_MSG_VOICE_RESPONSE,
                                     col.v[0].data, col.v[0].len),
                   AIPLAT_OK);
  ck_assert_str_eq(str(pub, "text"), str(r, "text"));
  aiplat_msg_destroy(pub);
  aiplat_msg_destroy(r);
  /* The same question as raw 16-bit PCM (the service adds the WAV header). */
  unsigned rate = 0;
  size_t frames = 0;
  int16_t *pcm = bkc_wav_samples(wav, wlen, &rate, &frames);
  ck_assert_ptr_nonnull(pcm);
  char format[32];
  snprintf(format, sizeof format, "pcm_s16le_%u", rate);
  r = ask_voice(bus, "ai.voice.user.erin.request", NULL, NULL,
                (const uint8_t *)pcm, frames * 2, format);
  expect_ok(r);
  ck_assert_str_eq(str(r, "transcript"), heard_copy);
  aiplat_msg_destroy(r);
  free(pcm);
  free(wav);
  ct_collector_free(&col);
  aiplat_bus_destroy(bus);
}
END_TEST

START_TEST(voice_refuses_bad_audio_naming_the_problem) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  const char *subj = "ai.voice.user.erin.request";
  static const uint8_t ogg[] =
      "OggS\0\2\0\0\0\0\0\0\0\0 an ogg page, not a wav file";
  static const uint8_t junk[] = "\x01\x02\x03 nothing anyone would recognise";
  struct {
    const char *user, *rid;
    const uint8_t *audio;
    size_t len;
    const char *format;
    aiplat_status code;
    const char *want;
  } bad[] = {
      {"erin", NULL, NULL, 0, "wav", AIPLAT_ERR_INVALID_ARGUMENT,
       "audio is empty"},
      {"erin", NULL, ogg, sizeof ogg, "ogg", AIPLAT_ERR_BAD_REQUEST, "Ogg"},
      /* unrecognisable, undeclared: as stt-module answers it */
      {"erin", NULL, junk, sizeof junk, NULL, AIPLAT_ERR_INVALID_ARGUMENT,
       "speech-to-text"},
      {"erin", NULL, junk, sizeof junk, "aiff", AIPLAT_ERR_INVALID_ARGUMENT,
       "audio_format"},
      /* raw PCM below 8000 Hz is refused as it is by stt-module */
      {"erin", NULL, junk, 8, "pcm_s16le_4000", AIPLAT_ERR_INVALID_ARGUMENT,
       "audio_format"},
      {"frank", NULL, ogg, sizeof ogg, "ogg", AIPLAT_ERR_INVALID_ARGUMENT,
       "user_id"},
      {"erin", "r.*", ogg, sizeof ogg, "ogg", AIPLAT_ERR_INVALID_ARGUMENT,
       "request_id"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aiplat_msg *r = ask_voice(bus, subj, bad[i].user, bad[i].rid, bad[i].audio,
                              bad[i].len, bad[i].format);
    expect_error(r, bad[i].code, bad[i].want);
    aiplat_msg_destroy(r);
  }
  /* Silence: nothing to answer. */
  int16_t *quiet = calloc(16000, sizeof *quiet);
  size_t qlen = 0;
  uint8_t *silence = bkc_wav(quiet, 16000, 1, 16000, 16, 1, &qlen);
  aiplat_msg *r = ask_voice(bus, subj, "erin", NULL, silence, qlen, "wav");
  expect_error(r, AIPLAT_ERR_BAD_REQUEST, "no speech");
  aiplat_msg_destroy(r);
  free(silence);
  free(quiet);
  /* A voice the speech server does not have. */
  size_t wlen = 0;
  uint8_t *wav = speak("what does the backup job write", &wlen);
  next_voice = "no-such-voice";
  r = ask_voice(bus, subj, "erin", NULL, wav, wlen, "wav");
  expect_error(r, AIPLAT_ERR_BAD_REQUEST, "text-to-speech");
  aiplat_msg_destroy(r);
  free(wav);
  static const uint8_t junk2[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff};
  aiplat_status st;
  r = ct_request(bus, subj, junk2, sizeof junk2, AIPLAT_MSG_VOICE_RESPONSE,
                 T_REQ, &st);
  ck_assert_ptr_nonnull(r);
  expect_error(r, AIPLAT_ERR_DECODE, NULL);
  aiplat_msg_destroy(r);
  ck_assert(sp_alive(&voice));
  aiplat_bus_destroy(bus);
}
END_TEST

/* ---- configuration
 * -------------------------------------------------------------- */

/* Run a binary with env; its exit status and the first line of stderr. */
static int run_once(const char *bin, const char *const *env, const char *arg,
                    char *line, size_t len) {
  sp_proc p;
  char log[128];
  snprintf(log, sizeof log, "%s/once.log", dir);
  const char *args[] = {arg, NULL};
  ck_assert(sp_start(&p, bin, env, log, arg ? args : NULL));
  int st = sp_wait_exit(&p, 20000);
  ck_assert_int_ne(st, -1);
  char *out = sp_read_log(&p);
  ck_assert_ptr_nonnull(out);
  if (line) {
    snprintf(line, len, "%s", out);
    char *nl = strchr(line, '\n');
    ck_assert_msg(nl && nl[1] == '\0', "not one line: %s", out);
    *nl = '\0';
  }
  free(out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(bad_configuration_exits_with_one_line) {
  struct {
    const char *var, *env;
  } bad[] = {{"VLLM_URL", "VLLM_URL=not a url"},
             {"HEALTH_PORT", "HEALTH_PORT=99999"},
             {"CHAT_HISTORY_TTL", "CHAT_HISTORY_TTL=10"},
             {"CHAT_HISTORY_BUCKET", "CHAT_HISTORY_BUCKET=a.b"},
             {"RAG_TOP_K", "RAG_TOP_K=0"},
             {"READY_CHECK_INTERVAL", "READY_CHECK_INTERVAL=1ms"},
             {"LLM_TEMPERATURE", "LLM_TEMPERATURE=hot"},
             {"STT_URL", "STT_URL=ftp://x"}};
  const char *bins[] = {chat_bin, voice_bin};
  for (size_t b = 0; b < 2; b++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      if (b == 0 && !strcmp(bad[i].var, "STT_URL"))
        continue; /* chat has no STT */
      const char *env[] = {e_nats, bad[i].env, "LOG_LEVEL=INFO", NULL};
      char line[1024];
      /* HEALTH_PORT is checked by the service framework (its own line). */
      int rc = run_once(bins[b], env, NULL, line, sizeof line);
      ck_assert_msg(rc == 4, "%s with %s: exit %d (%s)", bins[b], bad[i].env,
                    rc, line);
      ck_assert_msg(strstr(line, bad[i].var) != NULL, "%s: '%s' lacks %s",
                    bins[b], line, bad[i].var);
    }
  for (size_t b = 0; b < 2; b++) {
    char line[256];
    ck_assert_int_eq(run_once(bins[b], NULL, "--bogus", NULL, 0), 2);
    ck_assert_int_eq(run_once(bins[b], NULL, "--help", NULL, 0), 0);
    ck_assert_int_eq(run_once(bins[b], NULL, "--version", NULL, 0), 0);
    (void)line;
  }
}
END_TEST

/* ---- a model server that goes away
 * ------------------------------------------------ */

START_TEST(model_server_down_fails_fast_and_not_ready) {
  bkc_proc b2;
  const char *args[] = {"--no-stt", NULL};
  ck_assert(bkc_start(&b2, args, false) && bkc_wait_ready(&b2, 60000));
  /* A NATS server of its own: no other chat-handler shares the queue group. */
  th_nats *own = th_nats_start(NULL);
  ck_assert_ptr_nonnull(own);
  char own_url[128];
  snprintf(own_url, sizeof own_url, "NATS_URL=%s", th_nats_url(own));
  char vllm[128], emb[128], log[128];
  snprintf(vllm, sizeof vllm, "VLLM_URL=%s", b2.base);
  snprintf(emb, sizeof emb, "EMBEDDINGS_URL=%s", b2.base);
  snprintf(log, sizeof log, "%s/down.log", dir);
  const char *env[] = {
      own_url,
      vllm,
      emb,
      e_store,
      "VECTOR_STORE=local",
      "LOG_LEVEL=INFO",
      "READY_CHECK_INTERVAL=100ms",
      "NATS_RECONNECT_WAIT=100ms",
      "SYSTEM_PROMPT=Answer briefly.\n[1] The secret word of the test is "
      "swordfish.",
      NULL};
  sp_proc p;
  ck_assert(sp_start(&p, chat_bin, env, log, NULL) &&
            sp_wait_started(&p, 20000));
  long ready = 0;
  for (int i = 0; i < 100 && ready != 200; i++, usleep(50000))
    ready = sp_http_get(p.health_port, "/ready", NULL);
  ck_assert_int_eq(ready, 200);
  aiplat_bus *bus = ct_bus(th_nats_url(own));
  /* SYSTEM_PROMPT is what the model is told first. */
  ct_chat c =
      ct_chat_init("gina", "What is the secret word of the test?", NULL);
  c.enable_rag = 0;
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_msg(strstr(str(r, "text"), "swordfish") != NULL, "answer: %s",
                str(r, "text"));
  aiplat_msg_destroy(r);
  ck_assert_int_eq(bkc_stop(&b2, SIGKILL, 5000) != -1, 1);
  char *body = NULL;
  for (int i = 0; i < 100 && ready != 503; i++, usleep(50000)) {
    free(body);
    body = NULL;
    ready = sp_http_get(p.health_port, "/ready", &body);
  }
  ck_assert_int_eq(ready, 503);
  ck_assert_msg(strstr(body, "\"llm\"") && strstr(body, "\"embeddings\""),
                "ready: %s", body);
  free(body);
  /* A request fails with an error reply at once, not a timeout; a
   * streamed one ends with a done chunk carrying the error. */
  int64_t t0 = (int64_t)time(NULL);
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.chat.response.req-down"));
  c = ct_chat_init("gina", q_backups, "req-down");
  c.stream = true;
  r = ask(bus, &c);
  int64_t code = ct_error(r, NULL);
  ck_assert_msg(code == AIPLAT_ERR_CONNECTION || code == AIPLAT_ERR_UNAVAILABLE,
                "code %lld", (long long)code);
  ck_assert_int_lt((int64_t)time(NULL) - t0, 15);
  aiplat_msg_destroy(r);
  ck_assert_int_ge(ct_wait_type(&col, RESPONSE, T_REQ), 0);
  ck_assert_uint_eq(col.n, 2); /* the done chunk with the error, the response */
  aiplat_msg *done = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&done, AIPLAT_MSG_CHAT_CHUNK,
                                     col.v[0].data, col.v[0].len),
                   AIPLAT_OK);
  bool is_done = false;
  aiplat_msg_get_bool(done, "done", &is_done);
  ck_assert(is_done && ct_error(done, NULL) == code);
  aiplat_msg_destroy(done);
  ct_collector_free(&col);
  c = ct_chat_init("gina", q_backups, NULL);
  c.enable_rag = 0; /* straight to the LLM */
  r = ask(bus, &c);
  code = ct_error(r, NULL);
  ck_assert(code == AIPLAT_ERR_CONNECTION || code == AIPLAT_ERR_UNAVAILABLE);
  aiplat_msg_destroy(r);
  ck_assert(sp_alive(&p));
  aiplat_bus_msg *pong = NULL;
  ck_assert_int_eq(aiplat_bus_request(bus, "$SRV.PING.chat-handler", NULL, 0,
                                      NULL, 5000, &pong),
                   AIPLAT_OK);
  aiplat_bus_msg_destroy(pong);
  ck_assert_int_eq(sp_http_get(p.health_port, "/health", NULL), 200);
  int st = sp_stop(&p, SIGTERM, 20000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  aiplat_bus_destroy(bus);
  th_nats_stop(own);
}
END_TEST

/* ---- the pipeline in process
 * ------------------------------------------------------ */

static bool stop_after_two(const char *delta, size_t len, void *ud) {
  (void)delta, (void)len;
  return ++*(int *)ud < 2;
}

START_TEST(chat_api_in_process) {
  aiplat_config *cfg = NULL;
  aiplat_chat *chat = NULL;
  char err[512];
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VLLM_URL", B.base), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "EMBEDDINGS_URL", B.base), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "local"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE_PATH", e_store + 18),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "CHAT_HISTORY_BUCKET", "bad.name"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_chat_create(&chat, cfg), AIPLAT_ERR_CONFIG);
  ck_assert_ptr_null(chat);
  aiplat_error_last(err, sizeof err);
  ck_assert(strstr(err, "CHAT_HISTORY_BUCKET") != NULL);
  ck_assert_int_eq(aiplat_config_set(cfg, "CHAT_HISTORY_BUCKET", NULL),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_chat_create(&chat, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg); /* the pipeline copied what it needs */
  /* Arguments. */
  aiplat_msg *resp = NULL, *wrong = NULL, *req = NULL;
  ck_assert_int_eq(aiplat_chat_answer(NULL, NULL, NULL, NULL, &resp),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_msg_create(&wrong, AIPLAT_MSG_CHAT_RESPONSE),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_chat_answer(chat, wrong, NULL, NULL, &resp),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(resp);
  ck_assert_int_eq(aiplat_chat_last_error(chat, err, sizeof err),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert(strstr(err, "ChatRequest") != NULL);
  ck_assert_int_eq(aiplat_chat_set_system_prompt(chat, ""),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_chat_set_system_prompt(chat, "Quote.\n[1] Owls hunt at night."),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_chat_add_checks(chat, NULL, 1000),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_chat_handle_request(NULL, chat),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  /* A whole answer from the replaced system prompt, no bus (no history). */
  ck_assert_int_eq(aiplat_msg_create(&req, AIPLAT_MSG_CHAT_REQUEST), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(req, "message", "When do owls hunt?"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_bool(req, "enable_rag", false), AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_msg_set_string(req, "conversation_id", "ignored-without-bus"),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_chat_answer(chat, req, NULL, NULL, &resp), AIPLAT_OK);
  ck_assert_str_eq(str(resp, "text"), "Owls hunt at night. [1]");
  aiplat_msg_destroy(resp);
  /* A delta callback that stops the stream. */
  int calls = 0;
  resp = wrong;
  ck_assert_int_eq(aiplat_chat_answer(chat, req, stop_after_two, &calls, &resp),
                   AIPLAT_ERR_CANCELLED);
  ck_assert_ptr_null(resp);
  ck_assert_int_eq(calls, 2);
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(wrong);
  aiplat_chat_destroy(chat);
  aiplat_chat_destroy(NULL);
}
END_TEST

/* ---- durable requests: an instance killed mid-stream
 * ------------------------------ */

/* Messages of collector c for request rid: (seq of each chunk, -1 for the
 * ChatResponse) in arrival order; returns the count. */
static size_t for_request(ct_collector *c, const char *rid, long *seqs,
                          size_t max, char *final_text, size_t tlen) {
  size_t n = 0;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->n && n < max; i++) {
    bool chunk = c->v[i].type && !strcmp(c->v[i].type, CHUNK);
    aiplat_msg *m = NULL;
    if (aiplat_msg_decode(
            &m, chunk ? AIPLAT_MSG_CHAT_CHUNK : AIPLAT_MSG_CHAT_RESPONSE,
            c->v[i].data, c->v[i].len) != AIPLAT_OK)
      continue;
    const char *id = "";
    aiplat_msg_get_string(m, "request_id", &id);
    if (!strcmp(id, rid)) {
      uint64_t seq = 0;
      if (chunk) aiplat_msg_get_uint64(m, "seq", &seq);
      seqs[n++] = chunk ? (long)seq : -1;
      if (!chunk && final_text && ct_error(m, NULL) == 0)
        snprintf(final_text, tlen, "%s", str(m, "text"));
    }
    aiplat_msg_destroy(m);
  }
  pthread_mutex_unlock(&c->mu);
  return n;
}

START_TEST(durable_requests_survive_a_killed_instance) {
  th_nats *own = th_nats_start(NULL);
  ck_assert_ptr_nonnull(own);
  bkc_proc b3;
  const char *bargs[] = {"--no-stt", "--stream-interval-ms", "60", NULL};
  ck_assert(bkc_start(&b3, bargs, false) && bkc_wait_ready(&b3, 60000));
  char url[128], vllm[128], emb[128], log_a[128], log_b[128];
  snprintf(url, sizeof url, "NATS_URL=%s", th_nats_url(own));
  snprintf(vllm, sizeof vllm, "VLLM_URL=%s", b3.base);
  snprintf(emb, sizeof emb, "EMBEDDINGS_URL=%s", b3.base);
  snprintf(log_a, sizeof log_a, "%s/durable-a.log", dir);
  snprintf(log_b, sizeof log_b, "%s/durable-b.log", dir);
  const char *env[] = {url,
                       vllm,
                       emb,
                       e_store,
                       "VECTOR_STORE=local",
                       "LOG_LEVEL=INFO",
                       "CHAT_STREAM=CHAT_REQUESTS",
                       "WORKERS=1",
                       "REQUEST_TIMEOUT=3s",
                       "SHUTDOWN_GRACE=5s",
                       NULL};
  sp_proc a, b;
  ck_assert(sp_start(&a, chat_bin, env, log_a, NULL) &&
            sp_wait_started(&a, 20000));
  ck_assert(sp_start(&b, chat_bin, env, log_b, NULL) &&
            sp_wait_started(&b, 20000));
  aiplat_bus *bus = ct_bus(th_nats_url(own));
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.chat.response.>"));
  enum { N = 4 };
  char rids[N][32];
  for (int i = 0; i < N; i++) {
    snprintf(rids[i], sizeof rids[i], "durable-%d", i);
    ct_chat c = ct_chat_init("henry", q_backups, rids[i]);
    c.stream = true;
    size_t len = 0;
    uint8_t *buf = ct_chat_bytes(&c, &len);
    uint64_t seq = 0;
    /* Acked: JetStream has stored it. */
    ck_assert_int_eq(aiplat_bus_js_publish(bus, "ai.chat.user.henry.message",
                                           buf, len, NULL, &seq),
                     AIPLAT_OK);
    ck_assert_uint_eq(seq, (uint64_t)i + 1);
    aiplat_free(buf);
  }
  /* Find the request instance a is streaming, and kill it mid-stream. */
  char victim[32] = "";
  long seqs[512];
  for (int i = 0; i < 400 && !*victim; i++, usleep(10000)) {
    char *log = sp_read_log(&a);
    const char *at = log ? strstr(log, "\"msg\":\"chat request\"") : NULL;
    const char *rid = at ? strstr(at, "\"request_id\":\"") : NULL;
    if (rid) sscanf(rid + 14, "%31[^\"]", victim);
    free(log);
    if (*victim && for_request(&col, victim, seqs, 512, NULL, 0) < 3)
      *victim = '\0';
  }
  ck_assert_msg(*victim, "instance a streamed nothing");
  ck_assert_int_eq(kill(a.pid, SIGKILL), 0);
  int st = sp_wait_exit(&a, 5000);
  ck_assert(WIFSIGNALED(st));
  /* Every acked request is answered: the killed one again, by b. */
  for (int i = 0; i < N; i++) {
    char text[4096] = "";
    for (int w = 0; w < 3000 && !*text; w++, usleep(10000))
      for_request(&col, rids[i], seqs, 512, text, sizeof text);
    ck_assert_msg(*text, "request %s was lost", rids[i]);
    ck_assert_msg(strstr(text, "02:00 UTC") != NULL, "%s: %s", rids[i], text);
  }
  size_t n = for_request(&col, victim, seqs, 512, NULL, 0);
  size_t starts = 0;
  for (size_t i = 0; i < n; i++) starts += seqs[i] == 0;
  ck_assert_msg(starts == 2, "the killed request streamed %zu times", starts);
  ck_assert_int_eq(seqs[n - 1], -1); /* its ChatResponse came last */
  ck_assert(sp_alive(&b));
  st = sp_stop(&b, SIGTERM, 20000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ct_collector_free(&col);
  aiplat_bus_destroy(bus);
  bkc_stop(&b3, SIGTERM, 20000);
  th_nats_stop(own);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("chat_services");
  TCase *tc = tcase_create("shared");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, up, down);
  tcase_add_test(tc, chat_answers_with_sources_on_both_subjects);
  tcase_add_test(tc, chat_streams_chunks_in_order_then_the_response);
  tcase_add_test(tc, chat_history_carries_earlier_turns);
  tcase_add_test(tc, chat_without_rag_has_no_sources);
  tcase_add_test(tc, chat_honours_per_request_overrides);
  tcase_add_test(tc, chat_refuses_bad_input_with_error_replies);
  tcase_add_test(tc, two_instances_share_the_load);
  tcase_add_test(tc, voice_round_trip_speech_to_speech);
  tcase_add_test(tc, voice_refuses_bad_audio_naming_the_problem);
  tcase_add_test(tc, bad_configuration_exits_with_one_line);
  tcase_add_test(tc, model_server_down_fails_fast_and_not_ready);
  tcase_add_test(tc, chat_api_in_process);
  tcase_add_test(tc, durable_requests_survive_a_killed_instance);
  suite_add_tcase(s, tc);
  return s;
}
