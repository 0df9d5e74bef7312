/* Benchmark of chat-handler (not part of `make check`; `make bench-chat`).
 *
 * Starts a nats-server, the local model backend (whose extractive "model"
 * answers in well under a millisecond, so what is measured is the platform,
 * not a model), the sample knowledge base in a local store, and the real
 * chat-handler and voice-assistant binaries. Prints, from one run:
 *  - requests/s and p50/p99 latency of a question asked
 *      (a) of the LLM client directly (aiplat_llm_complete, no NATS),
 *      (b) of the LLM client and retrieval directly (embed + search, then
 *          the completion: what the pipeline does, without NATS),
 *      (c) through chat-handler over NATS with enable_rag = false,
 *      (d) through chat-handler with enable_rag = true,
 *    one request in flight (latency) and CONC in flight (throughput);
 *  - the idle memory of each service binary: VmRSS and the private
 *    anonymous memory (smaps_rollup "Anonymous"), after start and after
 *    the load;
 *  - with the model backend killed: how long an error reply takes.
 *
 *   bench/bench_chat [-n REQUESTS] [-c CONCURRENCY]
 */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "chat_internal.h"
#include "chat_testutil.h"
#include "config.h"
#include "harness/nats_harness.h"
#include "svc_proc.h"

static const char question[] = "How often are Milvus backups taken?";

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- what one request is --------------------------------------------------
 */

typedef enum { DIRECT_LLM, DIRECT_RAG_LLM, SVC_NORAG, SVC_RAG } mode;
static const char *const mode_name[] = {
    "LLM client directly            ", "retrieval + LLM client directly",
    "chat-handler, enable_rag=false ", "chat-handler, enable_rag=true  "};

typedef struct ctx {
  aiplat_llm *llm;
  aip_chat_retriever *retriever;
  aiplat_bus *bus;
  uint8_t *req_norag, *req_rag;
  size_t len_norag, len_rag;
} ctx;

static bool one(ctx *c, mode m) {
  if (m == SVC_NORAG || m == SVC_RAG) {
    aiplat_bus_msg *reply = NULL;
    bool rag = m == SVC_RAG;
    aiplat_status st = aiplat_bus_request(
        c->bus, "ai.chat.user.bench.message", rag ? c->req_rag : c->req_norag,
        rag ? c->len_rag : c->len_norag, NULL, 30000, &reply);
    aiplat_bus_msg_destroy(reply);
    return st == AIPLAT_OK;
  }
  aiplat_llm_request *r = NULL;
  aiplat_llm_result *res = NULL;
  aip_chat_passage *p = NULL;
  size_t n = 0;
  char *context = NULL;
  bool ok = aiplat_llm_request_create(&r) == AIPLAT_OK;
  if (ok && m == DIRECT_RAG_LLM)
    ok = aip_chat_retrieve(c->retriever, question, 5, 4000, &p, &n, &context) ==
         AIPLAT_OK;
  ok = ok &&
       aiplat_llm_request_add_message(r, "system",
                                      context ? context : "Be brief.") == 0 &&
       aiplat_llm_request_add_message(r, "user", question) == 0 &&
       aiplat_llm_complete(c->llm, r, &res) == AIPLAT_OK;
  aiplat_llm_result_destroy(res);
  aiplat_llm_request_destroy(r);
  aip_chat_passages_free(p, n);
  free(context);
  return ok;
}

typedef struct run {
  ctx *c;
  mode m;
  int n;
  double *lat;
  atomic_int next, errors;
} run;

static void *worker(void *arg) {
  run *r = arg;
  for (int i; (i = atomic_fetch_add(&r->next, 1)) < r->n;) {
    double t0 = now_us();
    if (!one(r->c, r->m)) atomic_fetch_add(&r->errors, 1);
    r->lat[i] = now_us() - t0;
  }
  return NULL;
}

/* n requests with conc in flight; prints req/s, p50, p99. */
static void measure(ctx *c, mode m, int n, int conc) {
  for (int i = 0; i < 20; i++) one(c, m); /* warm connections and caches */
  run r = {.c = c, .m = m, .n = n, .lat = calloc((size_t)n, sizeof(double))};
  pthread_t th[64];
  double t0 = now_us();
  for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, worker, &r);
  for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
  double secs = (now_us() - t0) / 1e6;
  qsort(r.lat, (size_t)n, sizeof(double), cmp_d);
  printf("  %s  %2d in flight: %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms%s\n",
         mode_name[m], conc, n / secs, r.lat[n / 2] / 1e3,
         r.lat[(size_t)(n * 0.99)] / 1e3,
         atomic_load(&r.errors) ? "  (ERRORS)" : "");
  free(r.lat);
}

/* ---- memory
 * ------------------------------------------------------------------ */

static long field_kb(const char *path, const char *name) {
  FILE *f = fopen(path, "r");
  char line[256];
  long v = -1;
  size_t l = strlen(name);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, name, l) && line[l] == ':') v = atol(line + l + 1);
  if (f) fclose(f);
  return v;
}

static void memory(const char *what, pid_t pid) {
  char status[64], rollup[64];
  snprintf(status, sizeof status, "/proc/%d/status", (int)pid);
  snprintf(rollup, sizeof rollup, "/proc/%d/smaps_rollup", (int)pid);
  printf("  %-28s VmRSS %6ld KiB   private anonymous %6ld KiB   threads %ld\n",
         what, field_kb(status, "VmRSS"), field_kb(rollup, "Anonymous"),
         field_kb(status, "Threads"));
}

int main(int argc, char **argv) {
  int n = 2000, conc = 8;
  for (int o; (o = getopt(argc, argv, "n:c:")) != -1;) {
    if (o == 'n')
      n = atoi(optarg);
    else if (o == 'c')
      conc = atoi(optarg);
    else
      return fprintf(stderr,
                     "usage: bench_chat [-n REQUESTS] [-c CONCURRENCY]\n"),
             2;
  }
  if (n < 100 || conc < 1 || conc > 64)
    return fprintf(stderr, "bench_chat: bad -n or -c\n"), 2;
  setenv("LOG_LEVEL", "WARNING", 1);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  th_nats *nats = th_nats_start(NULL);
  bkc_proc b;
  char dir[] = "/tmp/aiplat-bench-chat-XXXXXX";
  if (!nats || !bkc_start(&b, NULL, false) || !bkc_wait_ready(&b, 60000) ||
      !mkdtemp(dir))
    return fprintf(stderr,
                   "bench_chat: cannot start nats-server or the backend\n"),
           1;
  char store[128], e_nats[128], e_llm[128], e_emb[128], e_store[160],
      e_stt[128], e_tts[128];
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
  size_t passages = ct_ingest_knowledge(store, b.base);
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_llm, sizeof e_llm, "VLLM_URL=%s", b.base);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", b.base);
  snprintf(e_stt, sizeof e_stt, "STT_URL=%s", b.base);
  snprintf(e_tts, sizeof e_tts, "TTS_URL=%s", b.base);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s", store);
  const char *env[] = {e_nats,
                       e_llm,
                       e_emb,
                       e_stt,
                       e_tts,
                       e_store,
                       "VECTOR_STORE=local",
                       "CHAT_HISTORY_TURNS=0",
                       "LOG_LEVEL=INFO",
                       NULL};
  char bin_chat[1024], bin_voice[1024], log_chat[128], log_voice[128];
  snprintf(log_chat, sizeof log_chat, "%s/chat.log", dir);
  snprintf(log_voice, sizeof log_voice, "%s/voice.log", dir);
  sp_proc chat, voice;
  if (!passages ||
      !sp_start(&chat,
                sp_path("services/chat-handler/chat-handler", bin_chat,
                        sizeof bin_chat),
                env, log_chat, NULL) ||
      !sp_wait_started(&chat, 20000) ||
      !sp_start(&voice,
                sp_path("services/voice-assistant/voice-assistant", bin_voice,
                        sizeof bin_voice),
                env, log_voice, NULL) ||
      !sp_wait_started(&voice, 20000))
    return fprintf(stderr, "bench_chat: the services did not start\n"), 1;

  ctx c = {0};
  aiplat_config *cfg = NULL;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "VLLM_URL", b.base);
  aiplat_config_set(cfg, "EMBEDDINGS_URL", b.base);
  aiplat_config_set(cfg, "VECTOR_STORE", "local");
  aiplat_config_set(cfg, "VECTOR_STORE_PATH", store);
  aiplat_llm_create(&c.llm, cfg);
  aip_chat_retriever_create(&c.retriever, cfg);
  c.bus = ct_bus(th_nats_url(nats));
  ct_chat q = ct_chat_init("bench", question, NULL);
  q.enable_rag = 0;
  c.req_norag = ct_chat_bytes(&q, &c.len_norag);
  q.enable_rag = 1;
  c.req_rag = ct_chat_bytes(&q, &c.len_rag);

  printf(
      "bench_chat: %d requests per line, local model backend, %zu passages, "
      "chat-handler with WORKERS=4\n",
      n, passages);
  printf("idle, after start:\n");
  memory("chat-handler", chat.pid);
  memory("voice-assistant", voice.pid);
  printf("latency (one request in flight) and throughput (%d in flight):\n",
         conc);
  for (mode m = DIRECT_LLM; m <= SVC_RAG; m++) {
    measure(&c, m, n, 1);
    measure(&c, m, n, conc);
  }
  sleep(1);
  printf("idle, after the load:\n");
  memory("chat-handler", chat.pid);
  memory("voice-assistant", voice.pid);

  /* A model server that went away: how fast the caller hears of it. */
  bkc_stop(&b, SIGKILL, 5000);
  for (int rag = 0; rag < 2; rag++) {
    double worst = 0, sum = 0;
    int errors = 0;
    for (int i = 0; i < 5; i++) {
      aiplat_status st;
      double t0 = now_us();
      aiplat_msg *r = ct_request(
          c.bus, "ai.chat.user.bench.message", rag ? c.req_rag : c.req_norag,
          rag ? c.len_rag : c.len_norag, AIPLAT_MSG_CHAT_RESPONSE, 60000, &st);
      double ms = (now_us() - t0) / 1e3;
      errors += r && ct_error(r, NULL) != 0;
      aiplat_msg_destroy(r);
      sum += ms;
      worst = ms > worst ? ms : worst;
    }
    printf(
        "model server down, enable_rag=%s: %d/5 error replies, mean %.0f ms, "
        "worst %.0f ms\n",
        rag ? "true " : "false", errors, sum / 5, worst);
  }

  aiplat_free(c.req_norag);
  aiplat_free(c.req_rag);
  aiplat_bus_destroy(c.bus);
  aip_chat_retriever_destroy(c.retriever);
  aiplat_llm_destroy(c.llm);
  aiplat_config_destroy(cfg);
  sp_stop(&chat, SIGTERM, 20000);
  sp_stop(&voice, SIGTERM, 20000);
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  curl_global_cleanup();
  return 0;
}
