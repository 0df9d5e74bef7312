/* chat-handler on the execution core: a real nats-server, the local model
 * backend and the service binary as a process. Many requests at once with
 * a constant thread count; a caller's deadline that passes mid-stream ends
 * the backend transfer (the backend sees its client go) and the caller gets
 * TIMEOUT; SIGTERM with requests in flight answers every one. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chat_internal.h"
#include "chat_testutil.h"
#include "harness/backend_harness.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"
#include "svc_proc.h"

static th_nats *nats;
static sp_proc backend;
static char dir[64], bk_url[64], chat_bin[1024], bk_bin[1024];

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Threads of a process, from /proc. */
static int threads_of(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  fclose(f);
  return n;
}

/* A backend streaming one word every @interval ms; its own log shows how
 * each request ended. */
static void start_backend(sp_proc *p, const char *name, const char *interval, char *url,
                          size_t urllen) {
  char port_file[128], log[128];
  snprintf(port_file, sizeof port_file, "%s/%s.port", dir, name);
  snprintf(log, sizeof log, "%s/%s.log", dir, name);
  const char *env[] = {"LOG_LEVEL=INFO", NULL};
  const char *args[] = {"--port", "0", "--port-file", port_file, "--no-stt",
                        "--stream-interval-ms", interval, NULL};
  ck_assert(sp_start(p, bk_bin, env, log, args));
  int port = 0;
  for (int i = 0; i < 600 && port == 0; i++) {
    FILE *f = fopen(port_file, "r");
    if (f) {
      if (fscanf(f, "%d", &port) != 1) port = 0;
      fclose(f);
    }
    if (!port) usleep(50000);
  }
  ck_assert_int_gt(port, 0);
  snprintf(url, urllen, "http://127.0.0.1:%d", port);
}

static void up(void) {
  setenv("LOG_LEVEL", "WARNING", 1);
  nats = th_nats_start(NULL);
  ck_assert_ptr_nonnull(nats);
  snprintf(dir, sizeof dir, "/tmp/aiplat-conc-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  sp_path("services/chat-handler/chat-handler", chat_bin, sizeof chat_bin);
  sp_path("tools/model-backend/aiplat-model-backend", bk_bin, sizeof bk_bin);
  start_backend(&backend, "backend", "25", bk_url, sizeof bk_url);
}

static void down(void) {
  sp_stop(&backend, SIGTERM, 20000);
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void start_chat_on(sp_proc *p, const char *name, const char *extra, const char *llm) {
  static char e_nats[128], e_vllm[128], e_emb[128], e_store[160];
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", llm);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", llm);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s/kb.aipvs", dir);
  const char *env[] = {e_nats, e_vllm, e_emb, e_store, "VECTOR_STORE=local",
                       "LOG_LEVEL=INFO", extra, NULL};
  char log[160];
  snprintf(log, sizeof log, "%s/%s.log", dir, name);
  ck_assert(sp_start(p, chat_bin, env, log, NULL));
  ck_assert_msg(sp_wait_started(p, 20000), "chat-handler did not start (%s)", log);
}

static void start_chat(sp_proc *p, const char *name, const char *extra) {
  start_chat_on(p, name, extra, bk_url);
}

/* Replies to many requests, by inbox. */
typedef struct tally {
  atomic_int ok, errors, timeouts;
  char first_error[256];
} tally;

static void on_reply(aiplat_bus_msg *m, void *ud) {
  tally *t = ud;
  aiplat_msg *r = NULL;
  if (aiplat_msg_decode(&r, AIPLAT_MSG_CHAT_RESPONSE, aiplat_bus_msg_data(m),
                        aiplat_bus_msg_len(m)) != AIPLAT_OK) {
    atomic_fetch_add(&t->errors, 1);
    return;
  }
  const char *why = NULL;
  int64_t code = ct_error(r, &why);
  const char *text = "";
  aiplat_msg_get_string(r, "text", &text);
  if (code == 0 && *text) {
    atomic_fetch_add(&t->ok, 1);
  } else {
    if (code == AIPLAT_ERR_TIMEOUT) atomic_fetch_add(&t->timeouts, 1);
    if (atomic_fetch_add(&t->errors, 1) == 0)
      snprintf(t->first_error, sizeof t->first_error, "%lld: %s", (long long)code,
               why ? why : "empty answer");
  }
  aiplat_msg_destroy(r);
}

static void send_many_rag(aiplat_bus *bus, int n, const char *tag, aiplat_headers *h,
                          bool stream, bool rag) {
  for (int i = 0; i < n; i++) {
    char rid[48], inbox[64];
    snprintf(rid, sizeof rid, "%s-%d", tag, i);
    snprintf(inbox, sizeof inbox, "test.inbox.%s.%d", tag, i);
    ct_chat c = ct_chat_init("load", "What does the platform use for messaging?", rid);
    c.enable_rag = rag;
    c.stream = stream;
    size_t len = 0;
    uint8_t *buf = ct_chat_bytes(&c, &len);
    ck_assert_int_eq(aiplat_bus_publish_request(bus, "ai.chat.user.load.message", inbox, buf,
                                                len, h),
                     AIPLAT_OK);
    aiplat_free(buf);
  }
  ck_assert_int_eq(aiplat_bus_flush(bus, 10000), AIPLAT_OK);
}

static void send_many(aiplat_bus *bus, int n, const char *tag, aiplat_headers *h, bool stream) {
  send_many_rag(bus, n, tag, h, stream, false);
}

START_TEST(a_thousand_requests_at_once_with_constant_threads) {
  int n = sp_under_valgrind() ? 100 : 1000;
  sp_proc chat;
  start_chat(&chat, "load", "REQUEST_TIMEOUT=60s");
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  tally t = {0};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "test.inbox.many.>", NULL, on_reply, &t, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  /* One request first, so every lazily made thread exists. */
  send_many(bus, 1, "many", NULL, false);
  for (int i = 0; i < 600 && atomic_load(&t.ok) + atomic_load(&t.errors) < 1; i++)
    usleep(50000);
  ck_assert_msg(atomic_load(&t.ok) == 1, "the first request failed: %s", t.first_error);
  int before = threads_of(chat.pid);
  ck_assert_int_gt(before, 0);
  atomic_store(&t.ok, 0);
  send_many(bus, n, "many", NULL, false);
  int peak = before;
  int64_t until = now_ms() + (sp_under_valgrind() ? 240000 : 60000);
  while (atomic_load(&t.ok) + atomic_load(&t.errors) < n && now_ms() < until) {
    int th = threads_of(chat.pid);
    if (th > peak) peak = th;
    usleep(20000);
  }
  ck_assert_msg(atomic_load(&t.ok) == n, "%d of %d answered, %d errors (first: %s)",
                atomic_load(&t.ok), n, atomic_load(&t.errors), t.first_error);
  ck_assert_msg(peak == before, "threads: %d before, %d with %d requests in flight", before,
                peak, n);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  int st = sp_stop(&chat, SIGTERM, 30000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}
END_TEST

/* Each request with a conversation of its own: the history is read and
 * written on the execution core, with no thread added. */
START_TEST(requests_with_history_at_once_with_constant_threads) {
  int n = sp_under_valgrind() ? 50 : 200;
  sp_proc chat;
  start_chat(&chat, "history", "CHAT_HISTORY_TURNS=2");
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  tally t = {0};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "test.inbox.hist.>", NULL, on_reply, &t, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  int before = 0, peak = 0;
  /* Round 0 first, so every lazily made thread (and the bucket) exists;
   * round 1 continues the same conversations. */
  for (int round = 0; round < 3; round++) {
    int count = round == 0 ? 1 : n;
    atomic_store(&t.ok, 0);
    for (int i = 0; i < count; i++) {
      char rid[48], inbox[64], conv[32];
      snprintf(rid, sizeof rid, "hist-%d-%d", round, i);
      snprintf(inbox, sizeof inbox, "test.inbox.hist.%d.%d", round, i);
      snprintf(conv, sizeof conv, "conv-%d", i);
      ct_chat c = ct_chat_init("load", "What does the platform use for messaging?", rid);
      c.enable_rag = false;
      c.conversation_id = conv;
      size_t len = 0;
      uint8_t *buf = ct_chat_bytes(&c, &len);
      ck_assert_int_eq(aiplat_bus_publish_request(bus, "ai.chat.user.load.message", inbox,
                                                  buf, len, NULL),
                       AIPLAT_OK);
      aiplat_free(buf);
    }
    ck_assert_int_eq(aiplat_bus_flush(bus, 10000), AIPLAT_OK);
    if (round == 0) {
      for (int i = 0; i < 600 && atomic_load(&t.ok) + atomic_load(&t.errors) < 1; i++)
        usleep(50000);
      ck_assert_msg(atomic_load(&t.ok) == 1, "the first request failed: %s", t.first_error);
      before = peak = threads_of(chat.pid);
      ck_assert_int_gt(before, 0);
      continue;
    }
    int64_t until = now_ms() + (sp_under_valgrind() ? 240000 : 60000);
    while (atomic_load(&t.ok) + atomic_load(&t.errors) < n && now_ms() < until) {
      int th = threads_of(chat.pid);
      if (th > peak) peak = th;
      usleep(20000);
    }
    ck_assert_msg(atomic_load(&t.ok) == n, "round %d: %d of %d answered, %d errors (first: %s)",
                  round, atomic_load(&t.ok), n, atomic_load(&t.errors), t.first_error);
  }
  ck_assert_msg(peak == before, "threads: %d before, %d with %d requests in flight", before,
                peak, n);
  /* Every conversation holds its two turns. */
  aiplat_kv *kv = NULL;
  ck_assert_int_eq(aiplat_kv_open(&kv, bus, "chat-history", 0, 1), AIPLAT_OK);
  for (int i = 0; i < n; i += n / 10) {
    char conv[32];
    snprintf(conv, sizeof conv, "conv-%d", i);
    char *key = aip_chat_history_key("load", conv);
    void *val = NULL;
    size_t len = 0;
    ck_assert_int_eq(aiplat_kv_get(kv, key, &val, &len), AIPLAT_OK);
    json_t *j = json_loadb(val, len, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "turns")), 2);
    json_decref(j);
    aiplat_free(val);
    free(key);
  }
  aiplat_kv_destroy(kv);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  int st = sp_stop(&chat, SIGTERM, 30000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}
END_TEST

/* How many requests the backend logged as ended before their answer was
 * whole (the client went away, or the write to it failed). */
static int backend_client_aborts(sp_proc *b) {
  char *log = sp_read_log(b);
  int n = 0;
  for (const char *p = log; p && (p = strstr(p, "\"end\":\"")); p++)
    if (strncmp(p + 7, "client_abort\"", 13) == 0 || strncmp(p + 7, "closed\"", 7) == 0) n++;
  free(log);
  return n;
}

START_TEST(a_deadline_mid_stream_closes_the_backend_connection) {
  /* The answer takes 300 ms a word; the caller waits 400 ms. */
  sp_proc slow, chat;
  char slow_url[64];
  start_backend(&slow, "slow", "300", slow_url, sizeof slow_url);
  start_chat_on(&chat, "deadline", "REQUEST_TIMEOUT=60s", slow_url);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  int aborts_before = backend_client_aborts(&slow);
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%lld",
           (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + 400);
  aiplat_headers_set(h, "Aiplat-Deadline", deadline);
  tally t = {0};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "test.inbox.late.>", NULL, on_reply, &t, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  int64_t t0 = now_ms();
  send_many(bus, 1, "late", h, true); /* streamed: word by word */
  aiplat_headers_destroy(h);
  for (int i = 0; i < 400 && atomic_load(&t.errors) + atomic_load(&t.ok) == 0; i++)
    usleep(10000);
  int64_t took = now_ms() - t0;
  ck_assert_msg(atomic_load(&t.timeouts) == 1, "want TIMEOUT; ok %d, errors %d (%s)",
                atomic_load(&t.ok), atomic_load(&t.errors), t.first_error);
  ck_assert_msg(took < 3000, "TIMEOUT after %lld ms", (long long)took);
  /* The backend saw its client go, mid-stream. */
  int aborts = 0;
  for (int i = 0; i < 500 && (aborts = backend_client_aborts(&slow)) == aborts_before; i++)
    usleep(10000);
  ck_assert_int_eq(aborts, aborts_before + 1);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  int st = sp_stop(&chat, SIGTERM, 30000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
  sp_stop(&slow, SIGTERM, 20000);
}
END_TEST

START_TEST(sigterm_answers_every_request_in_flight) {
  int n = sp_under_valgrind() ? 50 : 500;
  sp_proc chat;
  /* A grace shorter than the answers: those cut off get an error. */
  start_chat(&chat, "term", "SHUTDOWN_GRACE=300ms");
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  tally t = {0};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "test.inbox.term.>", NULL, on_reply, &t, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  send_many(bus, n, "term", NULL, true); /* streamed: about 1 s each */
  usleep(200000);
  ck_assert_int_eq(kill(chat.pid, SIGTERM), 0);
  int st = sp_wait_exit(&chat, 30000);
  ck_assert_msg(st != -1 && WIFEXITED(st), "exit status %d", st);
  for (int i = 0; i < 500 && atomic_load(&t.ok) + atomic_load(&t.errors) < n; i++)
    usleep(10000);
  ck_assert_msg(atomic_load(&t.ok) + atomic_load(&t.errors) == n,
                "%d answered and %d errors of %d", atomic_load(&t.ok), atomic_load(&t.errors),
                n);
  ck_assert_int_gt(atomic_load(&t.errors), 0); /* the grace was too short */
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
}
END_TEST

/* Retrieval on, against a Milvus whose every search takes a second: the
 * requests wait for it together on the execution core, not one after the
 * other on the two delivery threads. */
START_TEST(slow_retrieval_does_not_hold_the_delivery_threads) {
  int n = sp_under_valgrind() ? 16 : 64;
  const int delay_ms = 1000;
  th_server *mv = th_milvus_fake_start();
  ck_assert_msg(mv != NULL, "the Milvus fake did not start");
  char port[16];
  snprintf(port, sizeof port, "%d", th_server_port(mv));
  /* A knowledge base of one document, embedded by the same backend. */
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "EMBEDDINGS_URL", bk_url), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "milvus"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_HOST", "127.0.0.1"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "MILVUS_PORT", port), AIPLAT_OK);
  aiplat_rag *rag = NULL;
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  const char *doc = "The platform uses NATS for messaging between its services.";
  ck_assert_int_eq(aiplat_rag_ingest(rag, "messaging.md", doc, strlen(doc), NULL, NULL, NULL),
                   AIPLAT_OK);
  aiplat_rag_destroy(rag);

  static char e_nats[128], e_url[128], e_emb[128], e_port[32];
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_url, sizeof e_url, "VLLM_URL=%s", bk_url);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", bk_url);
  snprintf(e_port, sizeof e_port, "MILVUS_PORT=%s", port);
  const char *env[] = {e_nats, e_url, e_emb, "VECTOR_STORE=milvus", "MILVUS_HOST=127.0.0.1",
                       e_port, "WORKERS=2", "REQUEST_TIMEOUT=60s", "LOG_LEVEL=INFO", NULL};
  char log[160];
  snprintf(log, sizeof log, "%s/rag.log", dir);
  sp_proc chat;
  ck_assert(sp_start(&chat, chat_bin, env, log, NULL));
  ck_assert_msg(sp_wait_started(&chat, 20000), "chat-handler did not start (%s)", log);

  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  tally t = {0};
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, "test.inbox.rag.>", NULL, on_reply, &t, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  /* One request first, so every lazily made thread exists. */
  send_many_rag(bus, 1, "rag", NULL, false, true);
  for (int i = 0; i < 600 && atomic_load(&t.ok) + atomic_load(&t.errors) < 1; i++)
    usleep(50000);
  ck_assert_msg(atomic_load(&t.ok) == 1, "the first request failed: %s", t.first_error);
  int before = threads_of(chat.pid);
  ck_assert_int_gt(before, 0);
  atomic_store(&t.ok, 0);
  char fault[200];
  snprintf(fault, sizeof fault,
           "{\"fault\":{\"path\":\"/v2/vectordb/entities/search\",\"kind\":\"slow\","
           "\"delay_ms\":%d,\"count\":%d}}",
           delay_ms, n);
  ck_assert_int_eq(th_http(th_server_port(mv), "POST", "/fake/control", fault, NULL, 5000), 200);
  int64_t t0 = now_ms();
  send_many_rag(bus, n, "rag", NULL, false, true);
  int peak = before;
  int64_t until = now_ms() + (sp_under_valgrind() ? 240000 : 60000);
  while (atomic_load(&t.ok) + atomic_load(&t.errors) < n && now_ms() < until) {
    int th = threads_of(chat.pid);
    if (th > peak) peak = th;
    usleep(20000);
  }
  int64_t took = now_ms() - t0;
  ck_assert_msg(atomic_load(&t.ok) == n, "%d of %d answered, %d errors (first: %s)",
                atomic_load(&t.ok), n, atomic_load(&t.errors), t.first_error);
  ck_assert_msg(peak == before, "threads: %d before, %d with %d requests in flight", before,
                peak, n);
  /* Two delivery threads waiting for each search would need n / 2 s. */
  int64_t bound = sp_under_valgrind() ? 6 * delay_ms : 5 * delay_ms;
  ck_assert_msg(took < bound, "%d requests with a %d ms search took %lld ms", n, delay_ms,
                (long long)took);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  int st = sp_stop(&chat, SIGTERM, 30000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
  th_server_stop(mv);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("chat_concurrency");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_unchecked_fixture(tc, up, down);
  tcase_add_test(tc, a_thousand_requests_at_once_with_constant_threads);
  tcase_add_test(tc, requests_with_history_at_once_with_constant_threads);
  tcase_add_test(tc, a_deadline_mid_stream_closes_the_backend_connection);
  tcase_add_test(tc, sigterm_answers_every_request_in_flight);
  tcase_add_test(tc, slow_retrieval_does_not_hold_the_delivery_threads);
  suite_add_tcase(s, tc);
  return s;
}
