/* Metrics of the model clients and of retrieval (see model_metrics.h). */
#include "model_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "model_common.h"

struct aip_model_families {
  aiplat_metric *requests, *errors, *duration, *ttft, *tps, *in_tokens,
      *out_tokens, *in_flight, *transcribed, *synthesized;
};

/* Time to first token: from a few ms (a warm small model) to the 120 s of
 * LLM_TIMEOUT. */
static const double ttft_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75,
                                      1,    2.5,   5,    10,  30,   60,  120};
/* Output tokens per second of one answer: a CPU model to a batched GPU. */
static const double tps_buckets[] = {1,   2,   5,    10,   20,  35,
                                     50,  75,  100,  150,  200, 300,
                                     500, 750, 1000, 2000, 5000};

static const char *const model_labels[] = {"server", "model"};
static const char *const model_error_labels[] = {"server", "model", "error"};

static aiplat_status reg(aiplat_metrics *m, aip_metric_type type,
                         const char *name, const char *help, size_t nlabels,
                         const double *buckets, size_t nbuckets,
                         aiplat_metric **out) {
  return aip_metrics_register(
      m, type, name, help, nlabels == 3 ? model_error_labels : model_labels,
      nlabels, buckets, nbuckets, out);
}

static aiplat_status register_model(aiplat_metrics *m,
                                    aip_model_families *f) {
  aiplat_status st;
  if ((st = reg(m, AIP_METRIC_COUNTER, "aiplat_model_requests_total",
                "Calls to a model server, by client kind (server) and model.",
                2, NULL, 0, &f->requests)) ||
      (st = reg(m, AIP_METRIC_COUNTER, "aiplat_model_request_errors_total",
                "Calls to a model server that failed, by error kind.", 3, NULL,
                0, &f->errors)) ||
      (st = reg(m, AIP_METRIC_HISTOGRAM,
                "aiplat_model_request_duration_seconds",
                "Time of a whole call to a model server, answer included.", 2,
                NULL, 0, &f->duration)) ||
      (st = reg(m, AIP_METRIC_HISTOGRAM,
                "aiplat_model_time_to_first_token_seconds",
                "Time from sending a streamed LLM request to its first token.",
                2, ttft_buckets, AIP_ARRAY_LEN(ttft_buckets), &f->ttft)) ||
      (st = reg(m, AIP_METRIC_HISTOGRAM,
                "aiplat_model_output_tokens_per_second",
                "Output tokens per second of one answer, from its first token "
                "when streamed.",
                2, tps_buckets, AIP_ARRAY_LEN(tps_buckets), &f->tps)) ||
      (st = reg(m, AIP_METRIC_COUNTER, "aiplat_model_input_tokens_total",
                "Input (prompt) tokens the model servers reported.", 2, NULL, 0,
                &f->in_tokens)) ||
      (st = reg(m, AIP_METRIC_COUNTER, "aiplat_model_output_tokens_total",
                "Output (completion) tokens the model servers reported.", 2,
                NULL, 0, &f->out_tokens)) ||
      (st = reg(m, AIP_METRIC_GAUGE, "aiplat_model_requests_in_flight",
                "Calls to a model server under way.", 2, NULL, 0,
                &f->in_flight)) ||
      (st = reg(m, AIP_METRIC_COUNTER,
                "aiplat_model_audio_transcribed_seconds_total",
                "Seconds of audio transcribed (as the STT server reported).",
                2, NULL, 0, &f->transcribed)) ||
      (st = reg(m, AIP_METRIC_COUNTER,
                "aiplat_model_audio_synthesized_seconds_total",
                "Seconds of audio synthesized (WAV answers).", 2, NULL, 0,
                &f->synthesized)))
    return st;
  return AIPLAT_OK;
}

static void log_failure(const char *what) {
  char why[AIP_ERRMSG_MAX];
  aiplat_error_last(why, sizeof why);
  aip_log_kv(AIPLAT_LOG_WARNING, "metrics: left out", "what", what, "error",
             why, NULL);
}

void aip_model_metrics_attach(aip_model_base *b, aiplat_metrics *m) {
  if (!b || !m || atomic_load(&b->metrics)) return;
  aip_model_families *f = calloc(1, sizeof *f);
  if (!f || register_model(m, f) != AIPLAT_OK) {
    if (!f) aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "metrics: out of memory");
    log_failure(b->component);
    free(f);
    return;
  }
  aip_model_families *none = NULL;
  if (!atomic_compare_exchange_strong(&b->metrics, &none, f)) free(f);
}

void aip_model_metrics_detach(aip_model_base *b) {
  free(atomic_exchange(&b->metrics, NULL));
}

/* ---- one call --------------------------------------------------------------
 */

void aip_model_obs_begin(aip_model_obs *o, aip_model_base *b,
                         const char *model) {
  memset(o, 0, sizeof *o);
  o->in_tokens_n = o->out_tokens_n = -1;
  o->audio_seconds = -1;
  const aip_model_families *f = b ? atomic_load(&b->metrics) : NULL;
  if (!f) return;
  o->model = model && *model ? aip_strdup(model) : aip_model_base_model(b);
  if (!o->model) return;
  const char *lv[] = {b->component, o->model};
  aiplat_metric *audio = strcmp(b->component, "stt") == 0   ? f->transcribed
                         : strcmp(b->component, "tts") == 0 ? f->synthesized
                                                            : NULL;
  if (!(o->requests = aip_metric_series(f->requests, lv, 2)) ||
      !(o->duration = aip_metric_series(f->duration, lv, 2)) ||
      !(o->ttft = aip_metric_series(f->ttft, lv, 2)) ||
      !(o->tps = aip_metric_series(f->tps, lv, 2)) ||
      !(o->in_tokens = aip_metric_series(f->in_tokens, lv, 2)) ||
      !(o->out_tokens = aip_metric_series(f->out_tokens, lv, 2)) ||
      !(o->in_flight = aip_metric_series(f->in_flight, lv, 2)) ||
      (audio && !(o->audio = aip_metric_series(audio, lv, 2)))) {
    free(o->model);
    o->model = NULL;
    return;
  }
  o->f = f;
  o->server = b->component;
  o->start_ns = aip_now_ns();
  aip_series_add(o->in_flight, 1);
}

void aip_model_obs_first(aip_model_obs *o) {
  if (o->f && !o->first_ns) o->first_ns = aip_now_ns();
}

void aip_model_obs_tokens(aip_model_obs *o, int64_t input, int64_t output) {
  o->in_tokens_n = input;
  o->out_tokens_n = output;
}

void aip_model_obs_bytes(aip_model_obs *o, const void *data, size_t len) {
  if (!o->f) return;
  if (o->head_len < sizeof o->head) {
    size_t n = sizeof o->head - o->head_len;
    if (n > len) n = len;
    memcpy(o->head + o->head_len, data, n);
    o->head_len += n;
  }
  o->bytes += len;
}

void aip_model_obs_audio(aip_model_obs *o, double seconds) {
  o->audio_seconds = seconds;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

double aip_model_wav_seconds(const uint8_t *head, size_t len, uint64_t total) {
  if (len < 12 || memcmp(head, "RIFF", 4) != 0 ||
      memcmp(head + 8, "WAVE", 4) != 0)
    return -1;
  uint32_t byte_rate = 0;
  size_t pos = 12;
  while (pos + 8 <= len) {
    uint32_t size = le32(head + pos + 4);
    if (memcmp(head + pos, "fmt ", 4) == 0 && pos + 20 <= len)
      byte_rate = le32(head + pos + 16);
    if (memcmp(head + pos, "data", 4) == 0) {
      if (!byte_rate || total < pos + 8) return -1;
      return (double)(total - (pos + 8)) / byte_rate;
    }
    if (size > len) break; /* the data chunk lies beyond the head */
    pos += 8 + (size_t)size + (size & 1);
  }
  return -1;
}

void aip_model_obs_end(aip_model_obs *o, aiplat_status st) {
  if (!o->f) return;
  int64_t now = aip_now_ns();
  aip_series_add(o->in_flight, -1);
  aip_series_inc(o->requests, 1);
  aip_series_observe(o->duration, (double)(now - o->start_ns) / 1e9);
  if (st != AIPLAT_OK) {
    const char *lv[] = {o->server, o->model, aip_metrics_status_label(st)};
    aip_series *e = aip_metric_series(o->f->errors, lv, 3);
    if (e) aip_series_inc(e, 1);
  } else {
    if (o->first_ns)
      aip_series_observe(o->ttft, (double)(o->first_ns - o->start_ns) / 1e9);
    if (o->in_tokens_n > 0) aip_series_inc(o->in_tokens, (uint64_t)o->in_tokens_n);
    if (o->out_tokens_n > 0) {
      aip_series_inc(o->out_tokens, (uint64_t)o->out_tokens_n);
      /* a stream's rate counts from its first token (decoding alone); a
       * first token at the very end (one event) leaves the whole call */
      int64_t from = o->first_ns && now - o->first_ns >= 1000000
                         ? o->first_ns
                         : o->start_ns;
      if (now > from)
        aip_series_observe(o->tps,
                           (double)o->out_tokens_n * 1e9 / (double)(now - from));
    }
    double audio = o->audio_seconds;
    if (audio < 0 && o->bytes)
      audio = aip_model_wav_seconds(o->head, o->head_len, o->bytes);
    if (o->audio && audio > 0) aip_series_add(o->audio, audio);
  }
  free(o->model);
  o->model = NULL;
  o->f = NULL;
}

void aip_model_obs_abandon(aip_model_obs *o) {
  if (!o->f) return;
  aip_series_add(o->in_flight, -1);
  free(o->model);
  o->model = NULL;
  o->f = NULL;
}

void aip_model_obs_end_llm(aip_model_obs *o, aiplat_status st,
                           const aiplat_llm_result *res) {
  if (res)
    aip_model_obs_tokens(o, aiplat_llm_result_prompt_tokens(res),
                         aiplat_llm_result_completion_tokens(res));
  aip_model_obs_end(o, st);
}

/* ---- retrieval -------------------------------------------------------------
 */

struct aip_retrieval_metrics {
  aiplat_metric *errors;
  aip_series *requests, *duration, *hits, *misses;
  char *store;
};

aip_retrieval_metrics *aip_retrieval_metrics_new(aiplat_metrics *m,
                                                 const char *store) {
  static const char *const l[] = {"store"};
  static const char *const le[] = {"store", "error"};
  aip_retrieval_metrics *r = calloc(1, sizeof *r);
  aiplat_metric *req, *dur, *hits, *misses;
  const char *lv[] = {store};
  if (!r || !(r->store = aip_strdup(store))) {
    aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "metrics: out of memory");
    goto fail;
  }
  if (aip_metrics_register(m, AIP_METRIC_COUNTER,
                           "aiplat_retrieval_requests_total",
                           "Retrieval queries, by vector store.", l, 1, NULL, 0,
                           &req) ||
      aip_metrics_register(m, AIP_METRIC_COUNTER,
                           "aiplat_retrieval_errors_total",
                           "Retrieval queries that failed, by error kind.", le,
                           2, NULL, 0, &r->errors) ||
      aip_metrics_register(
          m, AIP_METRIC_HISTOGRAM, "aiplat_retrieval_duration_seconds",
          "Time of a retrieval query: embedding, search and reranking.", l, 1,
          NULL, 0, &dur) ||
      aip_metrics_register(m, AIP_METRIC_COUNTER, "aiplat_retrieval_hits_total",
                           "Passages the retrieval queries returned.", l, 1,
                           NULL, 0, &hits) ||
      aip_metrics_register(m, AIP_METRIC_COUNTER,
                           "aiplat_retrieval_misses_total",
                           "Retrieval queries that returned no passage.", l, 1,
                           NULL, 0, &misses) ||
      !(r->requests = aip_metric_series(req, lv, 1)) ||
      !(r->duration = aip_metric_series(dur, lv, 1)) ||
      !(r->hits = aip_metric_series(hits, lv, 1)) ||
      !(r->misses = aip_metric_series(misses, lv, 1)))
    goto fail;
  return r;
fail:
  log_failure("retrieval");
  aip_retrieval_metrics_free(r);
  return NULL;
}

void aip_retrieval_metrics_free(aip_retrieval_metrics *r) {
  if (!r) return;
  free(r->store);
  free(r);
}

int64_t aip_retrieval_start(const aip_retrieval_metrics *r) {
  return r ? aip_now_ns() : 0;
}

void aip_retrieval_observe(const aip_retrieval_metrics *r, int64_t start_ns,
                           aiplat_status st, const aiplat_rag_results *res) {
  if (!r) return;
  aip_series_inc(r->requests, 1);
  aip_series_observe(r->duration, (double)(aip_now_ns() - start_ns) / 1e9);
  if (st != AIPLAT_OK) {
    const char *lv[] = {r->store, aip_metrics_status_label(st)};
    aip_series *e = aip_metric_series(r->errors, lv, 2);
    if (e) aip_series_inc(e, 1);
    return;
  }
  size_t n = aiplat_rag_results_count(res);
  if (n)
    aip_series_inc(r->hits, n);
  else
    aip_series_inc(r->misses, 1);
}

void aip_retrieval_attach(_Atomic(aip_retrieval_metrics *) *slot,
                          aiplat_embeddings *emb, aiplat_reranker *rr,
                          aiplat_metrics *m, const char *store) {
  if (!m) return;
  aip_model_metrics_attach(aip_embeddings_base(emb), m);
  aip_model_metrics_attach(aip_reranker_base(rr), m);
  if (atomic_load(slot)) return;
  aip_retrieval_metrics *r = aip_retrieval_metrics_new(m, store), *none = NULL;
  if (r && !atomic_compare_exchange_strong(slot, &none, r))
    aip_retrieval_metrics_free(r);
}

void aip_voice_attach_metrics(aiplat_stt *stt, aiplat_tts *tts,
                              aiplat_metrics *m) {
  aip_model_metrics_attach(aip_stt_base(stt), m);
  aip_model_metrics_attach(aip_tts_base(tts), m);
}
