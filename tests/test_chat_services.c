/* chat-handler and voice-assistant end to end: the real service binaries as
 * processes, a real nats-server, the local model backend, the sample
 * knowledge base in a local vector store. Everything is said over NATS. */
#include "config.h"

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
static char e_nats[128], e_vllm[128], e_emb[128], e_stt[128], e_tts[128], e_store[160];
static const char *svc_env[] = {e_nats, e_vllm, e_emb, e_stt, e_tts, e_store,
                                "VECTOR_STORE=local", "CHAT_HISTORY_TURNS=2",
                                "READY_CHECK_INTERVAL=200ms", "WORKERS=2", "LOG_LEVEL=INFO",
                                "NATS_RECONNECT_WAIT=100ms", NULL};

static void set_env(const char *base) {
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", base);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", base);
  snprintf(e_stt, sizeof e_stt, "STT_URL=%s", base);
  snprintf(e_tts, sizeof e_tts, "TTS_URL=%s", base);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s/kb.aipvs", dir);
}

static void start_service(sp_proc *p, const char *bin, const char *log, const char *const *env) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, log);
  ck_assert_msg(sp_start(p, bin, env, path, NULL), "cannot start %s", bin);
  ck_assert_msg(sp_wait_started(p, 20000), "%s did not start (log %s)", bin, path);
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
  sp_path("services/voice-assistant/voice-assistant", voice_bin, sizeof voice_bin);
  start_service(&chat1, chat_bin, "chat1.log", svc_env);
  start_service(&chat2, chat_bin, "chat2.log", svc_env);
  start_service(&voice, voice_bin, "voice.log", svc_env);
}

static void stop_clean(sp_proc *p, const char *what) {
  int st = sp_stop(p, SIGTERM, 20000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "%s did not stop cleanly (status %d; log %s)", what, st, p->log);
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

/* ---- helpers ------------------------------------------------------------------ */

static aiplat_msg *ask(aiplat_bus *bus, const ct_chat *c) {
  size_t len = 0;
  uint8_t *buf = ct_chat_bytes(c, &len);
  ck_assert_ptr_nonnull(buf);
  char *subject = NULL;
  ck_assert_int_eq(aiplat_subject_chat_user_message(&subject, c->user_id ? c->user_id : "anon"),
                   AIPLAT_OK);
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, subject, buf, len, AIPLAT_MSG_CHAT_RESPONSE, T_REQ, &st);
  ck_assert_msg(r != NULL, "no reply on %s: %s", subject, aiplat_status_str(st));
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
  ck_assert_msg(got == code, "error %lld (want %d): %s", (long long)got, (int)code, why);
  if (want) ck_assert_msg(strstr(why, want) != NULL, "error '%s' lacks '%s'", why, want);
}

static const char q_backups[] = "How often are Milvus backups taken?";

/* ---- chat -------------------------------------------------------------------- */

START_TEST(chat_answers_with_sources_on_both_subjects) {
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  ct_collector col;
  ck_assert(ct_collect(&col, bus, "ai.chat.response.req-plain-1"));
  ct_chat c = ct_chat_init("alice", q_backups, "req-plain-1");
  aiplat_msg *r = ask(bus, &c);
  expect_ok(r);
  ck_assert_msg(strstr(str(r, "text"), "02:00 UTC") != NULL, "answer: %s", str(r, "text"));
  ck_assert_str_eq(str(r, "request_id"), "req-plain-1");
  ck_assert_uint_ge(count(r, "sources"), 1);
  ck_assert_str_eq(source_at(r, 0), "backups.md");
  aiplat_msg *src = NULL, *usage = NULL;
  aiplat_msg_get_item(r, "sources", 0, &src);
  double score = 0;
  aiplat_msg_get_double(src, "score", &score);
  ck_assert(score > 0 && score <= 1.0);
  ck_assert(strlen(str(src, "id")) > 0 && strstr(str(src, "text"), "02:00") != NULL);
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
  ck_assert_int_eq(aiplat_msg_decode(&pub, AIPLAT_MSG_CHAT_RESPONSE, col.v[at].data,
                                     col.v[at].len), AIPLAT_OK);
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
    ck_assert_int_eq(aiplat_msg_decode(&ch, AIPLAT_MSG_CHAT_CHUNK, col.v[i].data, col.v[i].len),
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

static aiplat_msg *turn(aiplat_bus *bus, const char *user, const char *conv, const char *msg) {
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
  const char fact[] = "Note for later.\n[1] The launch code of the demo rocket is 4711.";
  const char q[] = "What is the launch code of the demo rocket?";
  aiplat_msg_destroy(turn(bus, "carol", "conv-1", fact));
  aiplat_msg *r = turn(bus, "carol", "conv-1", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") != NULL, "turn 2: %s", str(r, "text"));
  aiplat_msg_destroy(r);
  /* Another conversation, or another user with the same conversation id,
   * does not see it. */
  r = turn(bus, "carol", "conv-2", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") == NULL, "conv-2: %s", str(r, "text"));
  aiplat_msg_destroy(r);
  r = turn(bus, "mallory", "conv-1", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") == NULL, "mallory: %s", str(r, "text"));
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
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(turns, 1), "user")), q);
  ck_assert(strstr(json_string_value(json_object_get(json_array_get(turns, 1), "assistant")),
                   "4711") != NULL);
  json_decref(j);
  aiplat_free(val);
  /* Two more turns push turn 1 out: the fact is forgotten. */
  aiplat_msg_destroy(turn(bus, "carol", "conv-1", "Thanks."));
  r = turn(bus, "carol", "conv-1", q);
  ck_assert_msg(strstr(str(r, "text"), "4711") == NULL, "after trimming: %s", str(r, "text"));
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
  ck_assert_msg(strstr(str(r, "text"), "no context") != NULL, "answer: %s", str(r, "text"));
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
  aiplat_msg *r = ct_request(bus, "ai.chat.user.alice.message", junk, sizeof junk,
                             AIPLAT_MSG_CHAT_RESPONSE, T_REQ, &st);
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
             {"bob", q_backups, "req-bad-user", NULL, "user_id"}, /* not the subject's */
             {"alice", q_backups, "x.>", NULL, "request"},
             {"alice", q_backups, "two words", NULL, "request"},
             {"alice", "  \n", NULL, NULL, "message"},
             {"alice", q_backups, NULL, "a b", "conversation_id"},
             {"alice", q_backups, NULL, "c.>", "conversation_id"},
             {"alice", q_backups, NULL,
              "a-conversation-id-that-is-much-longer-than-sixty-four-bytes-allowed-here",
              "conversation_id"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ct_chat c = ct_chat_init(bad[i].user, bad[i].msg, bad[i].rid);
    c.conversation_id = bad[i].conv;
    size_t len = 0;
    uint8_t *buf = ct_chat_bytes(&c, &len);
    r = ct_request(bus, "ai.chat.user.alice.message", buf, len, AIPLAT_MSG_CHAT_RESPONSE, T_REQ,
                   &st);
    aiplat_free(buf);
    ck_assert_msg(r != NULL, "case %zu: no reply (%s)", i, aiplat_status_str(st));
    expect_error(r, AIPLAT_ERR_INVALID_ARGUMENT, bad[i].want);
    aiplat_msg_destroy(r);
  }
  long at = ct_wait_type(&col, RESPONSE, T_REQ);
  ck_assert_int_ge(at, 0);
  aiplat_msg *pub = NULL;
  ck_assert_int_eq(aiplat_msg_decode(&pub, AIPLAT_MSG_CHAT_RESPONSE, col.v[at].data,
                                     col.v[at].len), AIPLAT_OK);
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
  ck_assert_int_eq(aiplat_bus_publish_request(bus, "$SRV.STATS.chat-handler", "test.stats.inbox",
                                              NULL, 0, NULL), AIPLAT_OK);
  ct_wait(&col, max + 1, 1000); /* gather what answers within a second */
  size_t n = 0;
  for (size_t i = 0; i < col.n && n < max; i++) {
    json_t *j = json_loadb((const char *)col.v[i].data, col.v[i].len, 0, NULL);
    json_t *eps = json_object_get(j, "endpoints");
    const char *id = json_string_value(json_object_get(j, "id"));
    snprintf(v[n].id, sizeof v[n].id, "%s", id ? id : "");
    v[n++].n = json_integer_value(json_object_get(json_array_get(eps, 0), "num_requests"));
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
  ck_assert_uint_eq(instance_counts(bus, after, 4), 2);
  int64_t total = 0;
  for (size_t i = 0; i < 2; i++) {
    const inst *b = !strcmp(before[0].id, after[i].id) ? &before[0] : &before[1];
    ck_assert_str_eq(b->id, after[i].id);
    ck_assert_msg(after[i].n > b->n, "instance %s took none of the 24 requests", b->id);
    total += after[i].n - b->n;
  }
  ck_assert_int_eq(total, 24);
  aiplat_bus_destroy(bus);
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
  suite_add_tcase(s, tc);
  return s;
}
