/* The asynchronous forms of the embeddings, reranker, speech-to-text and
 * text-to-speech clients against the loopback HTTP server: the fault cases
 * of test_clients.c through the blocking and the asynchronous form alike,
 * per-call settings, deadlines and cancellation through aiplat_call,
 * blocking calls made from a completion callback, and many calls in flight
 * on the one event loop thread. */
#include <aiplat/aiplat.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakes/http_fake.h"
#include "harness/testutil.h"

static hf_server *srv;
static aiplat_config *cfg;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set(const char *name, const char *value) {
  ck_assert_int_eq(aiplat_config_set(cfg, name, value), AIPLAT_OK);
}

static void setup(void) {
  aiplat_log_set_level(AIPLAT_LOG_ERROR);
  srv = hf_start();
  ck_assert_ptr_nonnull(srv);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  static const char *const urls[] = {"EMBEDDINGS_URL", "RERANKER_URL",
                                     "STT_URL", "TTS_URL"};
  for (size_t i = 0; i < 4; i++) set(urls[i], hf_url(srv));
  set("HTTP_RETRY_BACKOFF", "10ms");
  set("HTTP_MAX_RETRIES", "0");
  set("EMBEDDINGS_MODEL", "bge-m3");
  set("RERANKER_MODEL", "bge-reranker-v2-m3");
  set("RERANKER_API", "tei"); /* one request per call unless a test asks */
}

static void teardown(void) {
  aiplat_config_destroy(cfg);
  hf_stop(srv);
  aiplat_log_reset_level();
}

static void push(int status, const char *ctype, const char *body) {
  hf_response r = hf_resp(status, ctype, body);
  hf_push(srv, &r);
}

static json_t *request_json(size_t i) {
  const hf_request *r = hf_request_at(srv, i);
  ck_assert_ptr_nonnull(r);
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  ck_assert_ptr_nonnull(j);
  return j;
}

/* ---- one client of any kind -------------------------------------------- */

enum { EMB, RR, STT, TTS, KINDS };
static const char *const kind_name[] = {"embeddings", "reranker", "stt", "tts"};

typedef struct client {
  int kind;
  aiplat_embeddings *e;
  aiplat_reranker *r;
  aiplat_stt *s;
  aiplat_tts *t;
} client;

static void client_open(client *c, int kind) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  aiplat_status st = kind == EMB   ? aiplat_embeddings_create(&c->e, cfg)
                     : kind == RR  ? aiplat_reranker_create(&c->r, cfg)
                     : kind == STT ? aiplat_stt_create(&c->s, cfg)
                                   : aiplat_tts_create(&c->t, cfg);
  ck_assert_int_eq(st, AIPLAT_OK);
}

static void client_close(client *c) {
  aiplat_embeddings_destroy(c->e);
  aiplat_reranker_destroy(c->r);
  aiplat_stt_destroy(c->s);
  aiplat_tts_destroy(c->t);
}

static aiplat_status client_set_timeout(client *c, int64_t ms) {
  return c->kind == EMB   ? aiplat_embeddings_set_timeout_ms(c->e, ms)
         : c->kind == RR  ? aiplat_reranker_set_timeout_ms(c->r, ms)
         : c->kind == STT ? aiplat_stt_set_timeout_ms(c->s, ms)
                          : aiplat_tts_set_timeout_ms(c->t, ms);
}

static aiplat_status client_set_retries(client *c, int n) {
  return c->kind == EMB   ? aiplat_embeddings_set_max_retries(c->e, n)
         : c->kind == RR  ? aiplat_reranker_set_max_retries(c->r, n)
         : c->kind == STT ? aiplat_stt_set_max_retries(c->s, n)
                          : aiplat_tts_set_max_retries(c->t, n);
}

static void client_cancel(client *c) {
  if (c->kind == EMB) aiplat_embeddings_cancel(c->e);
  if (c->kind == RR) aiplat_reranker_cancel(c->r);
  if (c->kind == STT) aiplat_stt_cancel(c->s);
  if (c->kind == TTS) aiplat_tts_cancel(c->t);
}

static aiplat_status client_last_error(client *c, char *buf, size_t n) {
  return c->kind == EMB   ? aiplat_embeddings_last_error(c->e, buf, n)
         : c->kind == RR  ? aiplat_reranker_last_error(c->r, buf, n)
         : c->kind == STT ? aiplat_stt_last_error(c->s, buf, n)
                          : aiplat_tts_last_error(c->t, buf, n);
}

/* What each kind sends and what a good answer is. */
static const char *const emb_texts[] = {"one"};
static const char *const rr_docs[] = {"Pizza.", "Paris is in France."};
static const unsigned char ogg[] = "OggS\0\2\0\0\0\0";
static const char good_audio[] = "RIFF\x10\0\0\0WAVEfmt ";

static void push_good(int kind) {
  if (kind == EMB)
    push(200, "application/json",
         "{\"data\":[{\"index\":0,\"embedding\":[0.5,1.5]}],"
         "\"usage\":{\"prompt_tokens\":1}}");
  if (kind == RR)
    push(200, "application/json",
         "[{\"index\":0,\"score\":0.1},{\"index\":1,\"score\":0.9}]");
  if (kind == STT) push(200, "application/json", "{\"text\":\" hello \"}");
  if (kind == TTS) {
    hf_response r = hf_resp(200, "audio/wav", good_audio);
    r.body_len = sizeof good_audio - 1;
    hf_push(srv, &r);
  }
}

/* The outcome of one call, either form: status, message and a summary of
 * the result. */
typedef struct outcome {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int calls;
  aiplat_status st;
  char msg[512];
  pthread_t thread; /* that ran the completion */
  size_t count;     /* vectors, scores, audio bytes */
  double first;     /* first float, best index */
  char text[256];   /* transcript or content type */
  size_t chunks;    /* audio pieces handed to a chunk callback */
  size_t chunk_bytes;
  pthread_t chunk_thread;
  size_t stop_after_chunks; /* > 0: the chunk callback stops there */
  client *nest;             /* run a blocking call of this client inside */
  aiplat_status nested;
  char nested_msg[512];
  aiplat_call *destroy_call; /* destroyed inside the completion */
} outcome;

static void outcome_init(outcome *o) {
  memset(o, 0, sizeof *o);
  pthread_mutex_init(&o->mu, NULL);
  pthread_cond_init(&o->cv, NULL);
}

static void outcome_free(outcome *o) {
  pthread_cond_destroy(&o->cv);
  pthread_mutex_destroy(&o->mu);
}

static void outcome_wait(outcome *o) {
  pthread_mutex_lock(&o->mu);
  while (!o->done) pthread_cond_wait(&o->cv, &o->mu);
  pthread_mutex_unlock(&o->mu);
}

static aiplat_status run_blocking(client *c, outcome *o);

/* Every completion ends here (on the loop thread: no ck_assert). */
static void finish(outcome *o, aiplat_status st, const char *message) {
  if (o->nest) {
    outcome in;
    outcome_init(&in);
    o->nested = run_blocking(o->nest, &in);
    snprintf(o->nested_msg, sizeof o->nested_msg, "%s", in.msg);
    outcome_free(&in);
  }
  if (o->destroy_call) aiplat_call_destroy(o->destroy_call);
  pthread_mutex_lock(&o->mu);
  o->st = st;
  snprintf(o->msg, sizeof o->msg, "%s", message ? message : "(null)");
  o->thread = pthread_self();
  o->calls++;
  o->done = true;
  pthread_cond_broadcast(&o->cv);
  pthread_mutex_unlock(&o->mu);
}

static void take_embeddings(outcome *o, aiplat_embeddings_result *r) {
  o->count = aiplat_embeddings_result_count(r);
  const float *v = aiplat_embeddings_result_vector(r, 0);
  o->first = v ? v[0] : -1;
  aiplat_embeddings_result_destroy(r);
}

static void take_rerank(outcome *o, aiplat_reranker_result *r) {
  o->count = aiplat_reranker_result_count(r);
  o->first = (double)aiplat_reranker_result_index(r, 0);
  aiplat_reranker_result_destroy(r);
}

static void take_stt(outcome *o, aiplat_stt_result *r) {
  snprintf(o->text, sizeof o->text, "%s", aiplat_stt_result_text(r));
  o->count = strlen(o->text);
  aiplat_stt_result_destroy(r);
}

static void on_embeddings(aiplat_status st, const char *message,
                          aiplat_embeddings_result *r, void *ud) {
  outcome *o = ud;
  if (r) take_embeddings(o, r);
  finish(o, st, message);
}

static void on_rerank(aiplat_status st, const char *message,
                      aiplat_reranker_result *r, void *ud) {
  outcome *o = ud;
  if (r) take_rerank(o, r);
  finish(o, st, message);
}

static void on_stt(aiplat_status st, const char *message, aiplat_stt_result *r,
                   void *ud) {
  outcome *o = ud;
  if (r) take_stt(o, r);
  finish(o, st, message);
}

static void on_tts(aiplat_status st, const char *message, void *audio,
                   size_t len, const char *ctype, void *ud) {
  outcome *o = ud;
  o->count = len;
  snprintf(o->text, sizeof o->text, "%s", ctype ? ctype : "(null)");
  if (audio && len >= 4 && memcmp(audio, "RIFF", 4) != 0) o->count = 0;
  aiplat_free(audio);
  finish(o, st, message);
}

static bool on_chunk(const void *data, size_t len, void *ud) {
  (void)data;
  outcome *o = ud;
  o->chunks++;
  o->chunk_bytes += len;
  o->chunk_thread = pthread_self();
  return !(o->stop_after_chunks && o->chunks >= o->stop_after_chunks);
}

/* The kind's call in its blocking form, the outcome filled the same way. */
static aiplat_status run_blocking(client *c, outcome *o) {
  aiplat_status st = AIPLAT_OK;
  if (c->kind == EMB) {
    aiplat_embeddings_result *r = NULL;
    st = aiplat_embeddings_embed(c->e, emb_texts, 1, &r);
    if (r) take_embeddings(o, r);
  } else if (c->kind == RR) {
    aiplat_reranker_result *r = NULL;
    st = aiplat_reranker_rerank(c->r, "capital?", rr_docs, 2, 0, &r);
    if (r) take_rerank(o, r);
  } else if (c->kind == STT) {
    aiplat_stt_result *r = NULL;
    st = aiplat_stt_transcribe(c->s, ogg, sizeof ogg, NULL, NULL, &r);
    if (r) take_stt(o, r);
  } else {
    void *audio = NULL;
    size_t len = 0;
    char *ctype = NULL;
    st = aiplat_tts_synthesize(c->t, "hi", NULL, &audio, &len, &ctype);
    o->count = len;
    snprintf(o->text, sizeof o->text, "%s", ctype ? ctype : "(null)");
    aiplat_free(audio);
    aiplat_free(ctype);
  }
  o->st = st;
  o->msg[0] = '\0';
  if (st != AIPLAT_OK) client_last_error(c, o->msg, sizeof o->msg);
  return st;
}

/* Start the kind's asynchronous call; @fn: TTS streams to on_chunk. */
static aiplat_status start(client *c, aiplat_call *call, outcome *o,
                           bool stream) {
  if (c->kind == EMB)
    return aiplat_embeddings_embed_async(c->e, emb_texts, 1, call,
                                         on_embeddings, o);
  if (c->kind == RR)
    return aiplat_reranker_rerank_async(c->r, "capital?", rr_docs, 2, 0, call,
                                        on_rerank, o);
  if (c->kind == STT)
    return aiplat_stt_transcribe_async(c->s, ogg, sizeof ogg, NULL, NULL, call,
                                       on_stt, o);
  return aiplat_tts_synthesize_async(c->t, "hi", NULL, call,
                                     stream ? on_chunk : NULL, on_tts, o);
}

/* The kind's call in either form (@async: start and wait for the
 * completion); o->st and o->msg hold the outcome. */
static aiplat_status run(client *c, bool async, aiplat_call *call, outcome *o) {
  if (!async) return run_blocking(c, o);
  aiplat_status st = start(c, call, o, false);
  if (st != AIPLAT_OK) {
    client_last_error(c, o->msg, sizeof o->msg);
    return o->st = st;
  }
  outcome_wait(o);
  ck_assert_int_eq(o->calls, 1);
  ck_assert(!pthread_equal(o->thread, pthread_self()));
  return o->st;
}

/* The loop tests run each case for every kind (i / 2) in both forms
 * (i % 2: asynchronous). */
#define KIND(i) ((i) / 2)
#define ASYNC(i) ((i) % 2 == 1)
#define FORMS (2 * KINDS)

/* A known message in the handle's record: asynchronous failures must not
 * replace it. */
static void mark_handle(client *c) {
  ck_assert_int_eq(client_set_timeout(c, -1), AIPLAT_ERR_INVALID_ARGUMENT);
}

static void check_handle_marked(client *c, bool async) {
  if (!async) return;
  char buf[512];
  client_last_error(c, buf, sizeof buf);
  ck_assert_msg(strstr(buf, "timeouts must be positive"),
                "an asynchronous failure reached the handle's record: %s", buf);
}

/* ---- the fault cases, both forms ---------------------------------------- */

START_TEST(good_answer) {
  client c;
  client_open(&c, KIND(_i));
  push_good(c.kind);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(run(&c, ASYNC(_i), NULL, &o), AIPLAT_OK);
  ck_assert_str_eq(o.msg, "");
  switch (c.kind) {
    case EMB:
      ck_assert_uint_eq(o.count, 1);
      ck_assert(o.first == 0.5);
      break;
    case RR:
      ck_assert_uint_eq(o.count, 2);
      ck_assert(o.first == 1);
      break;
    case STT:
      ck_assert_str_eq(o.text, "hello");
      break;
    default:
      ck_assert_uint_eq(o.count, sizeof good_audio - 1);
      ck_assert_str_eq(o.text, "audio/wav");
  }
  ck_assert_uint_eq(hf_request_count(srv), 1);
  outcome_free(&o);
  client_close(&c);
}
END_TEST

START_TEST(error_statuses) {
  static const struct {
    int status;
    const char *body;
    aiplat_status want;
  } cases[] = {
      {400, "{\"error\":{\"message\":\"words of 400\"}}",
       AIPLAT_ERR_BAD_REQUEST},
      {401, "{\"error\":\"words of 401\"}", AIPLAT_ERR_AUTH},
      {404, "{\"detail\":\"words of 404\"}", AIPLAT_ERR_NOT_FOUND},
      {422, "{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"words of 422\"}]}",
       AIPLAT_ERR_BAD_REQUEST},
      {429, "{\"message\":\"words of 429\"}", AIPLAT_ERR_RATE_LIMITED},
      {500, "words of 500", AIPLAT_ERR_SERVER},
      {503, "{\"object\":\"error\",\"message\":\"words of 503\"}",
       AIPLAT_ERR_UNAVAILABLE},
  };
  client c;
  client_open(&c, KIND(_i));
  mark_handle(&c);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    push(cases[k].status, "application/json", cases[k].body);
    outcome o;
    outcome_init(&o);
    ck_assert_int_eq(run(&c, ASYNC(_i), NULL, &o), cases[k].want);
    char words[32];
    snprintf(words, sizeof words, "words of %d", cases[k].status);
    ck_assert_msg(strstr(o.msg, words), "%s: %s", kind_name[c.kind], o.msg);
    ck_assert_uint_eq(o.count, 0);
    outcome_free(&o);
    check_handle_marked(&c, ASYNC(_i));
  }
  ck_assert_uint_eq(hf_request_count(srv), sizeof cases / sizeof cases[0]);
  client_close(&c);
}
END_TEST

START_TEST(malformed_bodies) {
  static const struct {
    int kind;
    const char *ctype, *body;
    aiplat_status want;
    const char *words;
  } cases[] = {
      {EMB, "application/json", "not json", AIPLAT_ERR_DECODE, "not JSON"},
      {EMB, "application/json", "{\"object\":\"list\"}", AIPLAT_ERR_PROTOCOL,
       "no \"data\""},
      {EMB, "application/json",
       "{\"data\":[{\"index\":0,\"embedding\":[1,\"x\"]}]}",
       AIPLAT_ERR_PROTOCOL, "is not a number"},
      {EMB, "application/json", "{\"error\":{\"message\":\"inside a 200\"}}",
       AIPLAT_ERR_SERVER, "inside a 200"},
      {RR, "application/json", "[{\"index\":", AIPLAT_ERR_DECODE, "not JSON"},
      {RR, "application/json", "{\"object\":\"rerank\"}", AIPLAT_ERR_PROTOCOL,
       "neither a list"},
      {RR, "application/json", "[{\"index\":7,\"score\":1}]",
       AIPLAT_ERR_PROTOCOL, "no index in [0, 2)"},
      {STT, "application/json", "{\"text\": \"trunc", AIPLAT_ERR_DECODE,
       "not JSON"},
      {STT, "application/json", "{\"segments\":[]}", AIPLAT_ERR_PROTOCOL,
       "no \"text\""},
      {TTS, "application/json", "{\"error\":{\"message\":\"no voice x\"}}",
       AIPLAT_ERR_PROTOCOL, "no voice x"},
      {TTS, "audio/wav", "", AIPLAT_ERR_PROTOCOL, "no audio"},
  };
  client c;
  client_open(&c, KIND(_i));
  mark_handle(&c);
  size_t sent = 0;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (cases[k].kind != c.kind) continue;
    push(200, cases[k].ctype, cases[k].body);
    outcome o;
    outcome_init(&o);
    aiplat_status st = run(&c, ASYNC(_i), NULL, &o);
    ck_assert_msg(st == cases[k].want && strstr(o.msg, cases[k].words),
                  "%s -> %d %s (%zu bytes of %s)", cases[k].body, (int)st,
                  o.msg, o.count, o.text);
    outcome_free(&o);
    check_handle_marked(&c, ASYNC(_i));
    sent++;
  }
  ck_assert_uint_eq(hf_request_count(srv), sent);
  client_close(&c);
}
END_TEST

START_TEST(timeouts) {
  client c;
  client_open(&c, KIND(_i));
  ck_assert_int_eq(client_set_timeout(&c, 300), AIPLAT_OK);
  hf_response r = hf_resp(200, "application/json", "{}");
  r.delay_ms = 5000;
  hf_push(srv, &r);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(run(&c, ASYNC(_i), NULL, &o), AIPLAT_ERR_TIMEOUT);
  ck_assert_ptr_nonnull(strstr(o.msg, "timed out"));
  outcome_free(&o);
  client_close(&c);
}
END_TEST

static void *cancel_client_later(void *arg) {
  client *c = arg;
  hf_wait_requests(srv, 1, 5000);
  client_cancel(c);
  return NULL;
}

START_TEST(client_cancel_stops_it) {
  client c;
  client_open(&c, KIND(_i));
  hf_response r = hf_resp(200, "application/json", "{}");
  r.hang = true;
  hf_push(srv, &r);
  pthread_t th;
  pthread_create(&th, NULL, cancel_client_later, &c);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(run(&c, ASYNC(_i), NULL, &o), AIPLAT_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(o.msg, "cancelled"));
  pthread_join(th, NULL);
  outcome_free(&o);
  client_close(&c);
}
END_TEST

START_TEST(retries) {
  client c;
  client_open(&c, KIND(_i));
  ck_assert_int_eq(client_set_retries(&c, 2), AIPLAT_OK);
  push(503, "text/plain", "warming up");
  hf_response r = hf_resp(429, "text/plain", "slow down");
  r.headers[0] = "Retry-After: 0";
  hf_push(srv, &r);
  push_good(c.kind);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(run(&c, ASYNC(_i), NULL, &o), AIPLAT_OK);
  ck_assert_uint_eq(hf_request_count(srv), 3);
  outcome_free(&o);
  /* Out of retries: the last answer's words. */
  ck_assert_int_eq(client_set_retries(&c, 1), AIPLAT_OK);
  push(503, "text/plain", "warming up");
  push(503, "text/plain", "still warming up");
  outcome_init(&o);
  ck_assert_int_eq(run(&c, ASYNC(_i), NULL, &o), AIPLAT_ERR_UNAVAILABLE);
  ck_assert_ptr_nonnull(strstr(o.msg, "still warming up"));
  ck_assert_ptr_nonnull(strstr(o.msg, "after 2 attempts"));
  ck_assert_uint_eq(hf_request_count(srv), 5);
  outcome_free(&o);
  client_close(&c);
}
END_TEST

/* ---- the per-call object ------------------------------------------------ */

/* A good answer that trickles: a piece every 150 ms. */
static void push_trickle(int kind) {
  static char json[4096];
  const char *body, *ctype = "application/json";
  size_t len;
  if (kind == TTS) {
    static char audio[2000];
    memcpy(audio, "RIFF", 4);
    memset(audio + 4, 'a', sizeof audio - 4);
    body = audio;
    len = sizeof audio;
    ctype = "audio/pcm";
  } else {
    const char *head = kind == EMB  ? "{\"data\":[{\"index\":0,\"embedding\":[1"
                       : kind == RR ? "[{\"index\":0,\"score\":0.5"
                                    : "{\"text\":\"long";
    snprintf(json, sizeof json, "%s%*s%s", head, 1500, "",
             kind == EMB  ? "]}]}"
             : kind == RR ? "}]"
                          : "\"}");
    body = json;
    len = strlen(json);
  }
  hf_response r = hf_resp(200, ctype, body);
  r.body_len = len;
  r.chunked = true;
  r.split_every = 100;
  r.piece_delay_ms = 150;
  hf_push(srv, &r);
}

START_TEST(call_deadline_mid_transfer) {
  client c;
  client_open(&c, (int)_i);
  ck_assert_int_eq(client_set_timeout(&c, 30000), AIPLAT_OK);
  push_trickle(c.kind);
  aiplat_call *call;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  ck_assert_int_eq(aiplat_call_set_timeout_ms(call, 500), AIPLAT_OK);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(start(&c, call, &o, c.kind == TTS), AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_msg(o.st == AIPLAT_ERR_TIMEOUT, "%s: %s", kind_name[c.kind], o.msg);
  ck_assert_ptr_nonnull(strstr(o.msg, "timed out"));
  if (c.kind == TTS) { /* it was mid-transfer: some audio had come */
    ck_assert_uint_gt(o.chunks, 0);
    ck_assert_uint_lt(o.chunk_bytes, 2000);
    ck_assert(pthread_equal(o.chunk_thread, o.thread));
  }
  ck_assert_uint_eq(o.count, 0);
  /* The server sees its connection closed. */
  ck_assert_uint_eq(hf_connection_count(srv), 1);
  ck_assert(hf_wait_closed(srv, 1, 10000));
  ck_assert_uint_eq(hf_request_count(srv), 1);
  aiplat_call_destroy(call);
  outcome_free(&o);
  client_close(&c);
}
END_TEST

START_TEST(call_deadline_in_the_past) {
  client c;
  client_open(&c, (int)_i);
  aiplat_call *call;
  ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
  ck_assert_int_eq(aiplat_call_set_deadline_unix_ms(call, 1000), AIPLAT_OK);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(run(&c, true, call, &o), AIPLAT_ERR_TIMEOUT);
  aiplat_call_destroy(call);
  outcome_free(&o);
  client_close(&c);
}
END_TEST

typedef struct canceller {
  aiplat_call *call;
  int64_t at_ms;
} canceller;

static void *cancel_call_later(void *arg) {
  canceller *k = arg;
  hf_wait_requests(srv, 1, 5000);
  usleep(50000);
  k->at_ms = now_ms();
  aiplat_call_cancel(k->call);
  return NULL;
}

START_TEST(call_cancel_from_another_thread) {
  client c;
  client_open(&c, (int)_i);
  ck_assert_int_eq(client_set_timeout(&c, 60000), AIPLAT_OK);
  hf_response r = hf_resp(200, "application/json", "{}");
  r.hang = true;
  hf_push(srv, &r);
  canceller k = {0};
  ck_assert_int_eq(aiplat_call_create(&k.call), AIPLAT_OK);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(start(&c, k.call, &o, false), AIPLAT_OK);
  pthread_t th;
  pthread_create(&th, NULL, cancel_call_later, &k);
  outcome_wait(&o);
  int64_t took = now_ms() - k.at_ms;
  pthread_join(th, NULL);
  ck_assert_int_eq(o.st, AIPLAT_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(o.msg, "cancelled"));
  ck_assert(aiplat_call_cancelled(k.call));
  ck_assert_msg(took < 3000, "the completion came %lld ms after the cancel",
                (long long)took);
  /* A cancelled call object stops the next call at once too. */
  outcome_free(&o);
  outcome_init(&o);
  ck_assert_int_eq(run(&c, true, k.call, &o), AIPLAT_ERR_CANCELLED);
  aiplat_call_destroy(k.call);
  outcome_free(&o);
  client_close(&c);
}
END_TEST

/* The completion may destroy the call object it was given. */
START_TEST(call_destroyed_in_the_completion) {
  client c;
  client_open(&c, (int)_i);
  for (int round = 0; round < 20; round++) {
    if (round % 2) push_good(c.kind);
    aiplat_call *call;
    ck_assert_int_eq(aiplat_call_create(&call), AIPLAT_OK);
    outcome o;
    outcome_init(&o);
    o.destroy_call = call;
    /* even rounds: nothing scripted, a 500 comes back at once */
    ck_assert_int_eq(run(&c, true, call, &o),
                     round % 2 ? AIPLAT_OK : AIPLAT_ERR_SERVER);
    outcome_free(&o);
  }
  client_close(&c);
}
END_TEST

/* ---- the event loop thread ---------------------------------------------- */

START_TEST(blocking_call_in_a_completion_fails) {
  client c;
  client_open(&c, (int)_i);
  push_good(c.kind);
  outcome o;
  outcome_init(&o);
  o.nest = &c;
  o.nested = AIPLAT_OK;
  ck_assert_int_eq(run(&c, true, NULL, &o), AIPLAT_OK);
  ck_assert_int_eq(o.nested, AIPLAT_ERR_INTERNAL);
  ck_assert_ptr_nonnull(strstr(o.nested_msg, "event loop thread"));
  ck_assert_uint_eq(hf_request_count(srv), 1); /* the nested one never left */
  outcome_free(&o);
  client_close(&c);
}
END_TEST

START_TEST(bad_arguments_call_nothing_back) {
  aiplat_embeddings *e;
  aiplat_reranker *rr;
  aiplat_stt *s;
  aiplat_tts *t;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_create(&s, cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_create(&t, cfg), AIPLAT_OK);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(aiplat_embeddings_set_batch_size(e, 1), AIPLAT_OK);
  const char *bad[] = {"ok", "fine", "\xFF"};
  ck_assert_int_eq(
      aiplat_embeddings_embed_async(e, bad, 3, NULL, on_embeddings, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  char buf[512];
  aiplat_embeddings_last_error(e, buf, sizeof buf);
  ck_assert_ptr_nonnull(strstr(buf, "input 2"));
  ck_assert_int_eq(
      aiplat_embeddings_embed_async(e, bad, 0, NULL, on_embeddings, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_embeddings_embed_async(e, bad, 1, NULL, NULL, &o),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_embeddings_embed_async(NULL, bad, 1, NULL, on_embeddings, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  const char *docs[] = {"a", NULL};
  ck_assert_int_eq(
      aiplat_reranker_rerank_async(rr, "q", docs, 2, 0, NULL, on_rerank, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_reranker_rerank_async(rr, "\xC3", docs, 1, 0, NULL, on_rerank, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  const unsigned char junk[] = "not audio at all";
  ck_assert_int_eq(aiplat_stt_transcribe_async(s, junk, sizeof junk, NULL, NULL,
                                               NULL, on_stt, &o),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_stt_transcribe_async(s, ogg, 0, NULL, NULL, NULL, on_stt, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_tts_synthesize_async(t, "", NULL, NULL, NULL, on_tts, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_tts_synthesize_async(t, "\xFF", NULL, NULL, NULL, on_tts, &o),
      AIPLAT_ERR_INVALID_ARGUMENT);
  aiplat_tts_last_error(t, buf, sizeof buf);
  ck_assert_ptr_nonnull(strstr(buf, "not valid UTF-8"));
  usleep(100000);
  ck_assert_int_eq(o.calls, 0);
  ck_assert_uint_eq(hf_request_count(srv), 0);
  outcome_free(&o);
  aiplat_embeddings_destroy(e);
  aiplat_reranker_destroy(rr);
  aiplat_stt_destroy(s);
  aiplat_tts_destroy(t);
}
END_TEST

/* ---- per-call settings -------------------------------------------------- */

/* Answers each batch with vectors [global position, input length], in
 * reverse order. */
static void embed_handler(const hf_request *req, hf_response *resp, void *ud) {
  size_t *first = ud;
  json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
  json_t *in = json_object_get(b, "input");
  json_t *data = json_array();
  for (size_t i = json_array_size(in); i-- > 0;)
    json_array_append_new(
        data, json_pack("{s:i,s:[f,f]}", "index", (int)i, "embedding",
                        (double)(*first + i),
                        (double)json_string_length(json_array_get(in, i))));
  *first += json_array_size(in);
  json_t *out =
      json_pack("{s:o,s:{s:i}}", "data", data, "usage", "prompt_tokens", 2);
  static char text[4096];
  char *dump = json_dumps(out, JSON_COMPACT);
  snprintf(text, sizeof text, "%s", dump);
  free(dump);
  json_decref(out);
  json_decref(b);
  *resp = hf_resp(200, "application/json", text);
}

typedef struct vectors {
  outcome o;
  float v[5][2];
  int64_t tokens;
} vectors;

static void on_vectors(aiplat_status st, const char *message,
                       aiplat_embeddings_result *r, void *ud) {
  vectors *w = ud;
  for (size_t i = 0; r && i < 5 && i < aiplat_embeddings_result_count(r); i++)
    memcpy(w->v[i], aiplat_embeddings_result_vector(r, i), sizeof w->v[i]);
  w->tokens = aiplat_embeddings_result_prompt_tokens(r);
  w->o.count = aiplat_embeddings_result_count(r);
  aiplat_embeddings_result_destroy(r);
  finish(&w->o, st, message);
}

START_TEST(embeddings_batches_async) {
  set("EMBEDDINGS_BATCH_SIZE", "2");
  aiplat_embeddings *e;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  size_t first = 0;
  hf_set_handler(srv, embed_handler, &first);
  char texts_store[5][8] = {"a", "bb", "ccc", "dddd", "eeeee"};
  const char *texts[5];
  for (int i = 0; i < 5; i++) texts[i] = texts_store[i];
  static vectors w;
  memset(&w, 0, sizeof w);
  outcome_init(&w.o);
  ck_assert_int_eq(
      aiplat_embeddings_embed_async(e, texts, 5, NULL, on_vectors, &w),
      AIPLAT_OK);
  memset(texts_store, 'x', sizeof texts_store); /* copied at the start */
  outcome_wait(&w.o);
  ck_assert_int_eq(w.o.st, AIPLAT_OK);
  ck_assert_uint_eq(w.o.count, 5);
  ck_assert_uint_eq(hf_request_count(srv), 3);
  for (size_t i = 0; i < 5; i++) {
    ck_assert_float_eq(w.v[i][0], (float)i);
    ck_assert_float_eq(w.v[i][1], (float)(i + 1));
  }
  ck_assert_int_eq(w.tokens, 6);
  /* A failure in the second batch ends the call there. */
  hf_set_handler(srv, NULL, NULL);
  first = 0;
  push(200, "application/json",
       "{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":1,"
       "\"embedding\":[2]}]}");
  push(400, "application/json", "{\"error\":\"second batch refused\"}");
  outcome_free(&w.o);
  memset(&w, 0, sizeof w);
  outcome_init(&w.o);
  const char *again[] = {"a", "b", "c", "d", "e"};
  ck_assert_int_eq(
      aiplat_embeddings_embed_async(e, again, 5, NULL, on_vectors, &w),
      AIPLAT_OK);
  outcome_wait(&w.o);
  ck_assert_int_eq(w.o.st, AIPLAT_ERR_BAD_REQUEST);
  ck_assert_ptr_nonnull(strstr(w.o.msg, "second batch refused"));
  ck_assert_uint_eq(w.o.count, 0);
  ck_assert_uint_eq(hf_request_count(srv), 5);
  outcome_free(&w.o);
  aiplat_embeddings_destroy(e);
}
END_TEST

START_TEST(rerank_async_top_n_and_auto) {
  set("RERANKER_API", "auto");
  aiplat_reranker *rr;
  ck_assert_int_eq(aiplat_reranker_create(&rr, cfg), AIPLAT_OK);
  /* text-embeddings-inference found through the tries, top_n per call */
  push(404, "text/plain", "");
  push(200, "application/json",
       "[{\"index\":0,\"score\":0.5},{\"index\":1,\"score\":0.7},"
       "{\"index\":2,\"score\":0.1}]");
  const char *docs[] = {"a", "b", "c"};
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(
      aiplat_reranker_rerank_async(rr, "q", docs, 3, 1, NULL, on_rerank, &o),
      AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_OK);
  ck_assert_uint_eq(o.count, 1);
  ck_assert(o.first == 1);
  ck_assert_int_eq(aiplat_reranker_get_api(rr), AIPLAT_RERANKER_API_TEI);
  ck_assert_str_eq(hf_request_at(srv, 0)->path, "/v1/rerank");
  ck_assert_str_eq(hf_request_at(srv, 1)->path, "/rerank");
  outcome_free(&o);
  /* Cohere's shape: top_n goes to the server. */
  ck_assert_int_eq(aiplat_reranker_set_api(rr, AIPLAT_RERANKER_API_COHERE),
                   AIPLAT_OK);
  push(200, "application/json",
       "{\"results\":[{\"index\":2,\"relevance_score\":0.9},"
       "{\"index\":0,\"relevance_score\":0.3}]}");
  outcome_init(&o);
  ck_assert_int_eq(
      aiplat_reranker_rerank_async(rr, "q", docs, 3, 2, NULL, on_rerank, &o),
      AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_OK);
  ck_assert_uint_eq(o.count, 2);
  ck_assert(o.first == 2);
  json_t *b = request_json(2);
  ck_assert_int_eq(json_integer_value(json_object_get(b, "top_n")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(b, "model")),
                   "bge-reranker-v2-m3");
  json_decref(b);
  /* Infinity without /v1 after a 404, 422 from the TEI try. */
  ck_assert_int_eq(aiplat_reranker_set_api(rr, AIPLAT_RERANKER_API_AUTO),
                   AIPLAT_OK);
  push(404, "application/json", "{\"detail\":\"Not Found\"}");
  push(422, "application/json",
       "{\"detail\":[{\"loc\":[\"body\",\"documents\"],\"msg\":\"Field "
       "required\"}]}");
  push(404, "application/json", "{\"detail\":\"Not Found either\"}");
  outcome_free(&o);
  outcome_init(&o);
  ck_assert_int_eq(
      aiplat_reranker_rerank_async(rr, "q", docs, 3, 0, NULL, on_rerank, &o),
      AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_ERR_BAD_REQUEST); /* the TEI try said more */
  ck_assert_ptr_nonnull(strstr(o.msg, "Field required"));
  ck_assert_uint_eq(hf_request_count(srv), 6);
  outcome_free(&o);
  aiplat_reranker_destroy(rr);
}
END_TEST

START_TEST(stt_async_options) {
  set("STT_LANGUAGE", "en");
  aiplat_stt *s;
  ck_assert_int_eq(aiplat_stt_create(&s, cfg), AIPLAT_OK);
  aiplat_stt_options *opt;
  ck_assert_int_eq(aiplat_stt_options_create(&opt), AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_options_set_language(opt, "de"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_options_set_prompt(opt, "Grüße, Zoë."),
                   AIPLAT_OK);
  ck_assert_int_eq(
      aiplat_stt_options_set_response_format(opt, AIPLAT_STT_FORMAT_TEXT),
      AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_options_set_language(opt, "d e"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_stt_options_set_prompt(opt, "\xFF"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(
      aiplat_stt_options_set_response_format(opt, (aiplat_stt_format)7),
      AIPLAT_ERR_INVALID_ARGUMENT);
  push(200, "text/plain", "Guten Tag.\n");
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(aiplat_stt_transcribe_async(s, ogg, sizeof ogg, NULL, opt,
                                               NULL, on_stt, &o),
                   AIPLAT_OK);
  aiplat_stt_options_destroy(opt); /* read at the start */
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_OK);
  ck_assert_str_eq(o.text, "Guten Tag.");
  const hf_request *q = hf_request_at(srv, 0);
  ck_assert_str_eq(q->path, "/v1/audio/transcriptions");
  ck_assert_str_eq(hf_part_get(q, "language")->data, "de");
  ck_assert_str_eq(hf_part_get(q, "prompt")->data, "Grüße, Zoë.");
  ck_assert_str_eq(hf_part_get(q, "response_format")->data, "text");
  ck_assert_str_eq(hf_part_get(q, "file")->type, "audio/ogg");
  ck_assert_str_eq(hf_part_get(q, "model")->data, "whisper-1");
  outcome_free(&o);
  /* No options: the client's; "" language: none, the server detects. */
  push(200, "application/json", "{\"text\":\"a\"}");
  push(200, "application/json", "{\"text\":\"b\"}");
  ck_assert_int_eq(aiplat_stt_options_create(&opt), AIPLAT_OK);
  ck_assert_int_eq(aiplat_stt_options_set_language(opt, ""), AIPLAT_OK);
  for (int k = 0; k < 2; k++) {
    outcome_init(&o);
    ck_assert_int_eq(
        aiplat_stt_transcribe_async(s, ogg, sizeof ogg, NULL, k ? opt : NULL,
                                    NULL, on_stt, &o),
        AIPLAT_OK);
    outcome_wait(&o);
    ck_assert_int_eq(o.st, AIPLAT_OK);
    outcome_free(&o);
  }
  q = hf_request_at(srv, 1);
  ck_assert_str_eq(hf_part_get(q, "language")->data, "en");
  ck_assert_ptr_null(hf_part_get(q, "prompt"));
  ck_assert_str_eq(hf_part_get(q, "response_format")->data, "json");
  ck_assert_ptr_null(hf_part_get(hf_request_at(srv, 2), "language"));
  aiplat_stt_options_destroy(opt);
  aiplat_stt_destroy(s);
}
END_TEST

START_TEST(tts_async_options_and_stream) {
  aiplat_tts *t;
  ck_assert_int_eq(aiplat_tts_create(&t, cfg), AIPLAT_OK);
  aiplat_tts_options *opt;
  ck_assert_int_eq(aiplat_tts_options_create(&opt), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_options_set_voice(opt, "alloy"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_options_set_format(opt, "mp3"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_options_set_speed(opt, 1.5), AIPLAT_OK);
  ck_assert_int_eq(aiplat_tts_options_set_speed(opt, 9),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_tts_options_set_format(opt, "../x"),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(aiplat_tts_options_set_voice(opt, ""),
                   AIPLAT_ERR_INVALID_ARGUMENT);
  /* Collected: the audio is the callback's to free. No type: the format. */
  static char audio[6000];
  memcpy(audio, "RIFF", 4);
  for (size_t i = 4; i < sizeof audio; i++) audio[i] = (char)(i * 7);
  hf_response r = hf_resp(200, NULL, audio);
  r.body_len = sizeof audio;
  r.chunked = true;
  r.split_every = 1000;
  hf_push(srv, &r);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(
      aiplat_tts_synthesize_async(t, "Hallo", opt, NULL, NULL, on_tts, &o),
      AIPLAT_OK);
  aiplat_tts_options_destroy(opt);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_OK);
  ck_assert_uint_eq(o.count, sizeof audio);
  ck_assert_str_eq(o.text, "audio/mp3");
  json_t *b = request_json(0);
  ck_assert_str_eq(json_string_value(json_object_get(b, "voice")), "alloy");
  ck_assert_str_eq(json_string_value(json_object_get(b, "response_format")),
                   "mp3");
  ck_assert(json_number_value(json_object_get(b, "speed")) == 1.5);
  ck_assert_str_eq(json_string_value(json_object_get(b, "input")), "Hallo");
  json_decref(b);
  outcome_free(&o);
  /* Streamed: pieces on the loop thread, the total at the end. */
  r.content_type = "audio/pcm";
  r.piece_delay_ms = 20;
  hf_push(srv, &r);
  outcome_init(&o);
  ck_assert_int_eq(
      aiplat_tts_synthesize_async(t, "Hallo", NULL, NULL, on_chunk, on_tts, &o),
      AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_OK);
  ck_assert_uint_eq(o.chunk_bytes, sizeof audio);
  ck_assert_uint_eq(o.count, sizeof audio);
  ck_assert_uint_ge(o.chunks, 2);
  ck_assert(pthread_equal(o.chunk_thread, o.thread));
  ck_assert_str_eq(o.text, "audio/pcm");
  b = request_json(1);
  ck_assert_str_eq(json_string_value(json_object_get(b, "voice")), "rms");
  ck_assert_str_eq(json_string_value(json_object_get(b, "response_format")),
                   "wav");
  json_decref(b);
  outcome_free(&o);
  /* The chunk callback stops it. */
  hf_push(srv, &r);
  outcome_init(&o);
  o.stop_after_chunks = 1;
  ck_assert_int_eq(
      aiplat_tts_synthesize_async(t, "Hallo", NULL, NULL, on_chunk, on_tts, &o),
      AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(o.msg, "stopped by the callback"));
  ck_assert_uint_eq(o.chunks, 1);
  ck_assert_uint_eq(o.count, 0);
  ck_assert_str_eq(o.text, "(null)");
  outcome_free(&o);
  aiplat_tts_destroy(t);
}
END_TEST

/* ---- many calls in flight ----------------------------------------------- */

#define IN_FLIGHT 200

/* The server of the concurrency test runs in a child process so that its
 * threads (one per connection) do not count: it holds every request until
 * IN_FLIGHT have arrived, which only happens when they are all in flight at
 * once. */
typedef struct barrier_srv {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t arrived;
} barrier_srv;

static void barrier_handler(const hf_request *req, hf_response *resp,
                            void *ud) {
  (void)req;
  barrier_srv *b = ud;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  pthread_mutex_lock(&b->mu);
  b->arrived++;
  pthread_cond_broadcast(&b->cv);
  bool all = true;
  while (b->arrived < IN_FLIGHT)
    if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0) {
      all = false;
      break;
    }
  pthread_mutex_unlock(&b->mu);
  *resp = all ? hf_resp(200, "application/json",
                        "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}")
              : hf_resp(503, "text/plain", "not all calls were in flight");
}

static pid_t start_child_server(int *port) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* gone with the test, also when an assertion ends it early */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    close(fds[0]);
    static barrier_srv b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                            0};
    hf_server *s = hf_start();
    int p = s ? hf_port(s) : 0;
    if (s) hf_set_handler(s, barrier_handler, &b);
    if (write(fds[1], &p, sizeof p) != sizeof p) _exit(1);
    for (;;) pause(); /* until the test kills it */
  }
  close(fds[1]);
  ck_assert_int_eq(read(fds[0], port, sizeof *port), (ssize_t)sizeof *port);
  close(fds[0]);
  ck_assert_int_gt(*port, 0);
  return pid;
}

static int thread_count(void) {
  FILE *f = fopen("/proc/self/status", "r");
  ck_assert_ptr_nonnull(f);
  char line[256];
  int n = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  fclose(f);
  return n;
}

typedef struct crowd {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t done, ok;
  char first_error[512];
} crowd;

static void on_crowd(aiplat_status st, const char *message,
                     aiplat_embeddings_result *r, void *ud) {
  crowd *c = ud;
  bool good = st == AIPLAT_OK && aiplat_embeddings_result_dimension(r) == 3;
  aiplat_embeddings_result_destroy(r);
  pthread_mutex_lock(&c->mu);
  if (good) c->ok++;
  if (!good && !c->first_error[0])
    snprintf(c->first_error, sizeof c->first_error, "%s", message);
  c->done++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

START_TEST(many_embeddings_in_flight_on_one_thread) {
  int port = 0;
  pid_t child = start_child_server(&port);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  set("HTTP_TIMEOUT", "90s");
  aiplat_embeddings *e;
  ck_assert_int_eq(aiplat_embeddings_create(&e, cfg), AIPLAT_OK);
  /* The event loop thread starts with the first call: one that needs no
   * server thread here (nothing listens on port 1). */
  ck_assert_int_eq(aiplat_embeddings_set_url(e, "http://127.0.0.1:1"),
                   AIPLAT_OK);
  outcome o;
  outcome_init(&o);
  ck_assert_int_eq(
      aiplat_embeddings_embed_async(e, emb_texts, 1, NULL, on_embeddings, &o),
      AIPLAT_OK);
  outcome_wait(&o);
  ck_assert_int_eq(o.st, AIPLAT_ERR_CONNECTION);
  outcome_free(&o);
  ck_assert_int_eq(aiplat_embeddings_set_url(e, url), AIPLAT_OK);
  int before = thread_count();
  static crowd c;
  memset(&c, 0, sizeof c);
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  for (int i = 0; i < IN_FLIGHT; i++)
    ck_assert_int_eq(
        aiplat_embeddings_embed_async(e, emb_texts, 1, NULL, on_crowd, &c),
        AIPLAT_OK);
  int most = thread_count();
  pthread_mutex_lock(&c.mu);
  while (c.done < IN_FLIGHT) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += 20 * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
      t.tv_sec++;
      t.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c.cv, &c.mu, &t);
    pthread_mutex_unlock(&c.mu);
    int n = thread_count();
    if (n > most) most = n;
    pthread_mutex_lock(&c.mu);
  }
  pthread_mutex_unlock(&c.mu);
  int after = thread_count();
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  ck_assert_msg(c.ok == IN_FLIGHT, "%zu of %d calls succeeded; first error: %s",
                c.ok, IN_FLIGHT, c.first_error);
  ck_assert_int_eq(most, before);
  ck_assert_int_eq(after, before);
  pthread_cond_destroy(&c.cv);
  pthread_mutex_destroy(&c.mu);
  aiplat_embeddings_destroy(e);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("clients_async");
  TCase *tc = tcase_create("both_forms");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, good_answer, 0, FORMS);
  tcase_add_loop_test(tc, error_statuses, 0, FORMS);
  tcase_add_loop_test(tc, malformed_bodies, 0, FORMS);
  tcase_add_loop_test(tc, timeouts, 0, FORMS);
  tcase_add_loop_test(tc, client_cancel_stops_it, 0, FORMS);
  tcase_add_loop_test(tc, retries, 0, FORMS);
  suite_add_tcase(s, tc);
  tc = tcase_create("async");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, call_deadline_mid_transfer, 0, KINDS);
  tcase_add_loop_test(tc, call_deadline_in_the_past, 0, KINDS);
  tcase_add_loop_test(tc, call_cancel_from_another_thread, 0, KINDS);
  tcase_add_loop_test(tc, call_destroyed_in_the_completion, 0, KINDS);
  tcase_add_loop_test(tc, blocking_call_in_a_completion_fails, 0, KINDS);
  tcase_add_test(tc, bad_arguments_call_nothing_back);
  tcase_add_test(tc, embeddings_batches_async);
  tcase_add_test(tc, rerank_async_top_n_and_auto);
  tcase_add_test(tc, stt_async_options);
  tcase_add_test(tc, tts_async_options_and_stream);
  tcase_add_test(tc, many_embeddings_in_flight_on_one_thread);
  suite_add_tcase(s, tc);
  return s;
}
