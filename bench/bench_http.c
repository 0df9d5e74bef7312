/* Benchmarks of the HTTP layer (built by `make check`, run by
 * `make bench-http`; never part of the test suite):
 *  1. SSE parser throughput in MB/s over a large synthetic chat stream, fed
 *     in 16 KiB chunks (what libcurl hands over) and in 64-byte chunks;
 *  2. LLM client requests/s against the loopback test server, reusing the
 *     kept-alive connection versus a new connection per request (the
 *     server answers "Connection: close"), sequential and from 4 threads.
 * Usage: bench_http [requests]   (default 2000) */
#include <aiplat/aiplat.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fakes/http_fake.h"
#include "internal.h"
#include "sse.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- SSE ---------------------------------------------------------------- */

static bool count_event(const aip_sse_event *ev, void *ud) {
  size_t *n = ud;
  *n += ev->data_len > 0;
  return true;
}

static double sse_run(const char *data, size_t len, size_t chunk, size_t *events) {
  size_t n = 0;
  aip_sse *p = aip_sse_new(0, count_event, &n);
  double t0 = now_s();
  for (size_t off = 0; off < len; off += chunk)
    aip_sse_feed(p, data + off, len - off < chunk ? len - off : chunk);
  aip_sse_finish(p);
  double dt = now_s() - t0;
  aip_sse_free(p);
  *events = n;
  return dt;
}

static void bench_sse(void) {
  aip_buf b = {0};
  size_t events = 0;
  while (b.len < (size_t)64 << 20) {
    aip_buf_printf(&b,
                   "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
                   "\"created\":1732612345,\"model\":\"qwen2.5-7b\",\"choices\":[{\"index\":0,"
                   "\"delta\":{\"content\":\" token%zu\"},\"logprobs\":null,"
                   "\"finish_reason\":null}]}\n\n",
                   events++);
  }
  aip_buf_puts(&b, "data: [DONE]\n\n");
  const size_t chunks[] = {16384, 64};
  for (size_t c = 0; c < 2; c++) {
    double best = 1e9;
    size_t n = 0;
    size_t len = c == 0 ? b.len : b.len / 8;
    for (int round = 0; round < 3; round++) {
      double dt = sse_run(b.data, len, chunks[c], &n);
      if (dt < best) best = dt;
    }
    printf("sse: %6.1f MB in %5zu-byte chunks: %8.1f MB/s, %9.0f events/s (%zu events)\n",
           (double)len / 1e6, chunks[c], (double)len / 1e6 / best, (double)n / best, n);
  }
  aip_buf_free(&b);
}

/* ---- LLM requests ------------------------------------------------------- */

static const char completion[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
    "\"total_tokens\":11}}";

static void answer(const hf_request *req, hf_response *r, void *ud) {
  (void)req;
  *r = hf_resp(200, "application/json", completion);
  if (*(bool *)ud) r->headers[0] = "Connection: close";
}

typedef struct job {
  aiplat_llm *llm;
  aiplat_llm_request *req;
  int n;
  int fails;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  for (int i = 0; i < j->n; i++) {
    aiplat_llm_result *res = NULL;
    if (aiplat_llm_complete(j->llm, j->req, &res) != AIPLAT_OK) j->fails++;
    aiplat_llm_result_destroy(res);
  }
  return NULL;
}

static void bench_llm(int total) {
  static bool close_each;
  hf_server *srv = hf_start();
  if (!srv) exit(1);
  hf_set_handler(srv, answer, &close_each);
  aiplat_config *cfg;
  aiplat_config_create(&cfg);
  aiplat_config_set(cfg, "VLLM_URL", hf_url(srv));
  aiplat_config_set(cfg, "HTTP_MAX_RETRIES", "0");
  aiplat_llm *llm;
  if (aiplat_llm_create(&llm, cfg) != AIPLAT_OK) exit(1);
  aiplat_llm_request *req;
  aiplat_llm_request_create(&req);
  aiplat_llm_request_add_message(req, "user", "Hello?");
  for (int mode = 0; mode < 2; mode++) {
    close_each = mode == 1;
    for (int threads = 1; threads <= 4; threads += 3) {
      unsigned long conns0 = hf_connection_count(srv);
      job jobs[4];
      pthread_t t[4];
      double t0 = now_s();
      for (int i = 0; i < threads; i++) {
        jobs[i] = (job){llm, req, total / threads, 0};
        pthread_create(&t[i], NULL, run_job, &jobs[i]);
      }
      int fails = 0;
      for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        fails += jobs[i].fails;
      }
      double dt = now_s() - t0;
      int done = (total / threads) * threads;
      printf("llm: %-27s %d thread%s: %8.0f requests/s (%d requests, %lu connections, %d "
             "failed)\n",
             close_each ? "new connection per request," : "connection reuse,", threads,
             threads > 1 ? "s" : " ", done / dt, done, hf_connection_count(srv) - conns0,
             fails);
    }
  }
  aiplat_llm_request_destroy(req);
  aiplat_llm_destroy(llm);
  aiplat_config_destroy(cfg);
  hf_stop(srv);
}

int main(int argc, char **argv) {
  int total = argc > 1 ? atoi(argv[1]) : 2000;
  if (total < 4) total = 4;
  aiplat_log_set_level(AIPLAT_LOG_ERROR);
  aip_global_ref();
  bench_sse();
  bench_llm(total);
  aip_global_unref();
  return 0;
}
