/* voice-assistant, stt-module and tts-module on the execution core: the
 * service binaries as processes, a real nats-server and slow model servers
 * (a scripted HTTP server answering each call after a pause). Many requests
 * at once finish in about one request's time with a constant thread count;
 * a caller's deadline that passes mid-step ends the backend transfer (the
 * server sees its connection close) and the caller gets TIMEOUT; the prompt
 * of a TranscribeRequest reaches the speech-to-text server. */
#include <aiplat/aiplat.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chat_testutil.h"
#include "fakes/http_fake.h"
#include "harness/nats_harness.h"
#include "harness/testutil.h"
#include "svc_proc.h"

#define STEP_MS 300 /* each model server's pause */

static th_nats *nats;
static hf_server *srv;
static char dir[64], e_nats[128], e_url[3][128];
static uint8_t wav[44 + 3200];

/* How the scripted servers answer: a pause before the whole answer, or
 * (slow_llm) an answer that trickles for seconds. */
static atomic_int stt_ms = STEP_MS, llm_ms = STEP_MS, tts_ms = STEP_MS;
static atomic_bool slow_llm, slow_stt;

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

static void put_le(uint8_t *p, uint32_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* 0.1 s of 16 kHz mono silence as a WAV file. */
static void make_wav(void) {
  size_t data = sizeof wav - 44;
  memcpy(wav, "RIFF", 4);
  put_le(wav + 4, (uint32_t)(36 + data), 4);
  memcpy(wav + 8, "WAVEfmt ", 8);
  put_le(wav + 16, 16, 4);
  put_le(wav + 20, 1, 2);
  put_le(wav + 22, 1, 2);
  put_le(wav + 24, 16000, 4);
  put_le(wav + 28, 32000, 4);
  put_le(wav + 32, 2, 2);
  put_le(wav + 34, 16, 2);
  memcpy(wav + 36, "data", 4);
  put_le(wav + 40, (uint32_t)data, 4);
}

static const char stt_body[] = "{\"text\":\"how often are backups taken\"}";
static const char llm_body[] =
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Backups run nightly at 02:00 UTC [1].\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":7,\"total_tokens\":12}}";
static char long_body[4096];

/* A body that comes 100 bytes every 150 ms (about 6 s in all). */
static void trickle(hf_response *r) {
  r->body = long_body;
  r->body_len = strlen(long_body);
  r->chunked = true;
  r->split_every = 100;
  r->piece_delay_ms = 150;
}

static void on_http(const hf_request *q, hf_response *r, void *ud) {
  (void)ud;
  if (strcmp(q->method, "GET") == 0) {
    *r = hf_resp(200, "application/json", "{\"object\":\"list\",\"data\":[]}");
  } else if (strstr(q->path, "/audio/transcriptions")) {
    *r = hf_resp(200, "application/json", stt_body);
    r->delay_ms = atomic_load(&stt_ms);
    if (atomic_load(&slow_stt)) trickle(r);
  } else if (strstr(q->path, "/chat/completions")) {
    *r = hf_resp(200, "application/json", llm_body);
    r->delay_ms = atomic_load(&llm_ms);
    if (atomic_load(&slow_llm)) trickle(r);
  } else if (strstr(q->path, "/audio/speech")) {
    *r = hf_resp(200, "audio/wav", (const char *)wav);
    r->body_len = sizeof wav;
    r->delay_ms = atomic_load(&tts_ms);
  } else {
    *r = hf_resp(404, "application/json", "{\"error\":\"not here\"}");
  }
}

static void up(void) {
  setenv("LOG_LEVEL", "WARNING", 1);
  nats = th_nats_start(NULL);
  ck_assert_ptr_nonnull(nats);
  make_wav();
  /* a JSON string that is a valid answer once whole */
  snprintf(long_body, sizeof long_body, "{\"text\":\"%*s\"}", 800, "");
  snprintf(dir, sizeof dir, "/tmp/aiplat-speechconc-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
}

/* The scripted servers run in the test's own process (a forked one). */
static void srv_up(void) {
  srv = hf_start();
  ck_assert_ptr_nonnull(srv);
  hf_set_handler(srv, on_http, NULL);
  const char *vars[] = {"STT_URL", "TTS_URL", "VLLM_URL"};
  for (int i = 0; i < 3; i++)
    snprintf(e_url[i], sizeof e_url[i], "%s=%s", vars[i], hf_url(srv));
}

static void srv_down(void) {
  hf_stop(srv);
  srv = NULL;
}

static void down(void) {
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* A service binary against the scripted servers, two delivery threads. */
static void start(sp_proc *p, const char *rel, const char *name) {
  static char e_emb[128];
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", hf_url(srv));
  const char *env[] = {e_nats,     e_url[0],          e_url[1],
                       e_url[2],   e_emb,             "WORKERS=2",
                       "REQUEST_TIMEOUT=60s",         "HTTP_MAX_RETRIES=0",
                       "READY_CHECK_INTERVAL=1h",     "LOG_LEVEL=INFO",
                       NULL};
  char bin[1024], log[160];
  sp_path(rel, bin, sizeof bin);
  snprintf(log, sizeof log, "%s/%s.log", dir, name);
  ck_assert(sp_start(p, bin, env, log, NULL));
  ck_assert_msg(sp_wait_started(p, 20000), "%s did not start (%s)", rel, log);
}

static void stop(sp_proc *p) {
  int st = sp_stop(p, SIGTERM, 30000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "exit status %d (log %s)", st, p->log);
}

/* ---- requests and their replies ------------------------------------------ */

typedef enum kind { VOICE, STT, TTS } kind;

static const aiplat_msg_type reply_type[] = {AIPLAT_MSG_VOICE_RESPONSE,
                                             AIPLAT_MSG_TRANSCRIBE_RESPONSE,
                                             AIPLAT_MSG_SYNTHESIZE_RESPONSE};

typedef struct tally {
  kind k;
  atomic_int ok, errors, timeouts;
  char first_error[256];
} tally;

static void on_reply(aiplat_bus_msg *m, void *ud) {
  tally *t = ud;
  aiplat_msg *r = NULL;
  if (aiplat_msg_decode(&r, reply_type[t->k], aiplat_bus_msg_data(m),
                        aiplat_bus_msg_len(m)) != AIPLAT_OK) {
    atomic_fetch_add(&t->errors, 1);
    return;
  }
  const char *why = NULL;
  int64_t code = ct_error(r, &why);
  const uint8_t *audio = NULL;
  size_t alen = 0;
  const char *text = "";
  aiplat_msg_get_string(r, "text", &text);
  if (t->k != STT) aiplat_msg_get_bytes(r, "audio", &audio, &alen);
  if (code == 0 && (t->k == STT ? *text != '\0' : alen == sizeof wav)) {
    atomic_fetch_add(&t->ok, 1);
  } else {
    if (code == AIPLAT_ERR_TIMEOUT) atomic_fetch_add(&t->timeouts, 1);
    if (atomic_fetch_add(&t->errors, 1) == 0)
      snprintf(t->first_error, sizeof t->first_error, "%lld: %s",
               (long long)code, why ? why : "no audio or text");
  }
  aiplat_msg_destroy(r);
}

/* The encoded request @i of @k (aiplat_free()). */
static uint8_t *request_bytes(kind k, const char *rid, const char *prompt,
                              size_t *len) {
  static const aiplat_msg_type type[] = {AIPLAT_MSG_VOICE_REQUEST,
                                         AIPLAT_MSG_TRANSCRIBE_REQUEST,
                                         AIPLAT_MSG_SYNTHESIZE_REQUEST};
  aiplat_msg *m = NULL;
  ck_assert_int_eq(aiplat_msg_create(&m, type[k]), AIPLAT_OK);
  ck_assert_int_eq(aiplat_msg_set_string(m, "request_id", rid), AIPLAT_OK);
  if (k == TTS) {
    ck_assert_int_eq(aiplat_msg_set_string(m, "text", "Backups run nightly."),
                     AIPLAT_OK);
  } else {
    ck_assert_int_eq(aiplat_msg_set_bytes(m, "audio", wav, sizeof wav),
                     AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_string(m, "audio_format", "wav"),
                     AIPLAT_OK);
    ck_assert_int_eq(aiplat_msg_set_string(m, "language", "en-US"), AIPLAT_OK);
  }
  if (k == VOICE)
    ck_assert_int_eq(aiplat_msg_set_bool(m, "enable_rag", false), AIPLAT_OK);
  if (prompt)
    ck_assert_int_eq(aiplat_msg_set_string(m, "prompt", prompt), AIPLAT_OK);
  uint8_t *buf = NULL;
  ck_assert_int_eq(aiplat_msg_encode(m, &buf, len), AIPLAT_OK);
  aiplat_msg_destroy(m);
  return buf;
}

static const char *subject_of(kind k) {
  return k == VOICE ? "ai.voice.user.load.request"
         : k == STT ? aiplat_subject_stt_transcribe()
                    : aiplat_subject_tts_synthesize();
}

static void send_many(aiplat_bus *bus, kind k, int n, const char *tag,
                      aiplat_headers *h) {
  for (int i = 0; i < n; i++) {
    char rid[48], inbox[64];
    snprintf(rid, sizeof rid, "%s-%d", tag, i);
    snprintf(inbox, sizeof inbox, "test.inbox.%s.%d", tag, i);
    size_t len = 0;
    uint8_t *buf = request_bytes(k, rid, NULL, &len);
    ck_assert_int_eq(
        aiplat_bus_publish_request(bus, subject_of(k), inbox, buf, len, h),
        AIPLAT_OK);
    aiplat_free(buf);
  }
  ck_assert_int_eq(aiplat_bus_flush(bus, 10000), AIPLAT_OK);
}

static aiplat_bus_sub *listen(aiplat_bus *bus, const char *tag, tally *t) {
  char subject[64];
  snprintf(subject, sizeof subject, "test.inbox.%s.>", tag);
  aiplat_bus_sub *sub = NULL;
  ck_assert_int_eq(aiplat_bus_subscribe(bus, subject, NULL, on_reply, t, &sub),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_bus_flush(bus, 5000), AIPLAT_OK);
  return sub;
}

static bool wait_answers(tally *t, int n, int64_t ms, pid_t pid, int *peak) {
  int64_t until = now_ms() + ms;
  while (atomic_load(&t->ok) + atomic_load(&t->errors) < n &&
         now_ms() < until) {
    int th = threads_of(pid);
    if (peak && th > *peak) *peak = th;
    usleep(20000);
  }
  return atomic_load(&t->ok) + atomic_load(&t->errors) >= n;
}

/* N requests at once to @rel: every one answered within a few step times
 * (each request would hold a delivery thread for its whole time before:
 * N / WORKERS times as long), with no thread added. */
static void many_at_once(kind k, const char *rel, const char *tag,
                         int steps) {
  int n = sp_under_valgrind() ? 40 : 200;
  sp_proc p;
  start(&p, rel, tag);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  tally t = {.k = k};
  aiplat_bus_sub *sub = listen(bus, tag, &t);
  /* One request first, so every lazily made thread exists. */
  int64_t t0 = now_ms();
  send_many(bus, k, 1, tag, NULL);
  ck_assert(wait_answers(&t, 1, 30000, p.pid, NULL));
  int64_t solo = now_ms() - t0;
  ck_assert_msg(atomic_load(&t.ok) == 1, "the first request failed: %s",
                t.first_error);
  int before = threads_of(p.pid), peak = before;
  ck_assert_int_gt(before, 0);
  atomic_store(&t.ok, 0);
  t0 = now_ms();
  send_many(bus, k, n, tag, NULL);
  wait_answers(&t, n, sp_under_valgrind() ? 240000 : 60000, p.pid, &peak);
  int64_t took = now_ms() - t0;
  ck_assert_msg(atomic_load(&t.ok) == n, "%d of %d answered, %d errors (%s)",
                atomic_load(&t.ok), n, atomic_load(&t.errors), t.first_error);
  ck_assert_msg(peak == before, "threads: %d before, %d with %d in flight",
                before, peak, n);
  fprintf(stderr, "%s: %d requests in %lld ms (one alone: %lld ms)\n", tag, n,
          (long long)took, (long long)solo);
  if (!sp_under_valgrind()) /* one at a time per thread: >= 30 s */
    ck_assert_msg(took < steps * STEP_MS * 5 + 2000,
                  "%d requests took %lld ms; one takes %d ms", n,
                  (long long)took, steps * STEP_MS);
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  stop(&p);
}

START_TEST(voice_requests_at_once_with_constant_threads) {
  many_at_once(VOICE, "services/voice-assistant/voice-assistant", "voice", 3);
}
END_TEST

START_TEST(stt_requests_at_once_with_constant_threads) {
  many_at_once(STT, "services/stt-module/stt-module", "stt", 1);
}
END_TEST

START_TEST(tts_requests_at_once_with_constant_threads) {
  many_at_once(TTS, "services/tts-module/tts-module", "tts", 1);
}
END_TEST

/* ---- a deadline that passes mid-step -------------------------------------- */

/* One request of @k with 700 ms to live while a model server trickles its
 * answer: TIMEOUT soon after, and the server sees its connection close. */
static void deadline_mid_step(kind k, const char *rel, const char *tag,
                              atomic_bool *slow) {
  sp_proc p;
  start(&p, rel, tag);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  tally t = {.k = k};
  aiplat_bus_sub *sub = listen(bus, tag, &t);
  atomic_store(slow, true);
  size_t asked = hf_request_count(srv);
  unsigned long closed = hf_closed_count(srv);
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%lld",
           (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 + 700);
  ck_assert_int_eq(aiplat_headers_set(h, "Aiplat-Deadline", deadline),
                   AIPLAT_OK);
  int64_t t0 = now_ms();
  send_many(bus, k, 1, tag, h);
  aiplat_headers_destroy(h);
  wait_answers(&t, 1, 10000, p.pid, NULL);
  int64_t took = now_ms() - t0;
  atomic_store(slow, false);
  ck_assert_msg(atomic_load(&t.timeouts) == 1, "want TIMEOUT; ok %d (%s)",
                atomic_load(&t.ok), t.first_error);
  ck_assert_msg(took < 3000, "TIMEOUT after %lld ms", (long long)took);
  ck_assert_uint_gt(hf_request_count(srv), asked);
  ck_assert_msg(hf_wait_closed(srv, closed + 1, 5000),
                "the model server's connection stayed open");
  aiplat_bus_sub_destroy(sub);
  aiplat_bus_destroy(bus);
  stop(&p);
}

START_TEST(voice_deadline_mid_answer_closes_the_connection) {
  deadline_mid_step(VOICE, "services/voice-assistant/voice-assistant",
                    "voicelate", &slow_llm);
}
END_TEST

START_TEST(stt_deadline_mid_transcription_closes_the_connection) {
  deadline_mid_step(STT, "services/stt-module/stt-module", "sttlate",
                    &slow_stt);
}
END_TEST

/* ---- the prompt -------------------------------------------------------------- */

START_TEST(transcribe_prompt_reaches_the_server) {
  sp_proc p;
  start(&p, "services/stt-module/stt-module", "prompt");
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  size_t asked = hf_request_count(srv), len = 0;
  uint8_t *buf = request_bytes(STT, "p-1", "Milvus, Zoë and NATS.", &len);
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, aiplat_subject_stt_transcribe(), buf, len,
                             AIPLAT_MSG_TRANSCRIBE_RESPONSE, 20000, &st);
  aiplat_free(buf);
  ck_assert_msg(r != NULL, "no reply: %s", aiplat_status_str(st));
  const char *why = NULL;
  ck_assert_msg(ct_error(r, &why) == 0, "error reply: %s", why);
  aiplat_msg_destroy(r);
  const hf_request *q = NULL;
  for (size_t i = asked; i < hf_request_count(srv); i++) {
    const hf_request *x = hf_request_at(srv, i);
    if (strstr(x->path, "/audio/transcriptions")) q = x;
  }
  ck_assert_ptr_nonnull(q);
  const hf_part *prompt = hf_part_get(q, "prompt");
  ck_assert_ptr_nonnull(prompt);
  ck_assert_str_eq(prompt->data, "Milvus, Zoë and NATS.");
  ck_assert_str_eq(hf_part_get(q, "language")->data, "en");
  aiplat_bus_destroy(bus);
  stop(&p);
}
END_TEST

/* ---- the audio rules ------------------------------------------------------- */

/* voice-assistant asks for its answers in the formats tts-module takes. */
START_TEST(voice_refuses_a_tts_format_tts_module_refuses) {
  const char *bins[] = {"services/voice-assistant/voice-assistant",
                        "services/tts-module/tts-module"};
  for (size_t i = 0; i < 2; i++) {
    const char *env[] = {e_nats, e_url[0], e_url[1], e_url[2],
                         "TTS_FORMAT=midi", NULL};
    char bin[1024], log[160];
    sp_path(bins[i], bin, sizeof bin);
    snprintf(log, sizeof log, "%s/format-%zu.log", dir, i);
    sp_proc p;
    ck_assert(sp_start(&p, bin, env, log, NULL));
    int st = sp_wait_exit(&p, 20000);
    if (st == -1) sp_stop(&p, SIGKILL, 5000);
    char *out = sp_read_log(&p);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 4,
                  "%s with TTS_FORMAT=midi: status %d (%s)", bins[i], st, out);
    ck_assert_msg(out && strstr(out, "TTS_FORMAT"), "%s: %s", bins[i], out);
    free(out);
  }
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("speech_concurrency");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_unchecked_fixture(tc, up, down);
  tcase_add_checked_fixture(tc, srv_up, srv_down);
  tcase_add_test(tc, transcribe_prompt_reaches_the_server);
  tcase_add_test(tc, voice_refuses_a_tts_format_tts_module_refuses);
  tcase_add_test(tc, voice_requests_at_once_with_constant_threads);
  tcase_add_test(tc, stt_requests_at_once_with_constant_threads);
  tcase_add_test(tc, tts_requests_at_once_with_constant_threads);
  tcase_add_test(tc, voice_deadline_mid_answer_closes_the_connection);
  tcase_add_test(tc, stt_deadline_mid_transcription_closes_the_connection);
  suite_add_tcase(s, tc);
  return s;
}
