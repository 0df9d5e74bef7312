/* Metrics of the model clients and of retrieval, in a registry the client
 * was attached to (usually the health server's, so they appear at
 * /metrics). Internal; docs/metrics.md lists the families.
 *
 * A client is attached once (aip_model_metrics_attach()); until then every
 * call here is a no-op, so clients used without a service cost nothing.
 * Each call observes one client call: aip_model_obs_begin() resolves its
 * series (one lock-free lookup per family) and counts it in flight; the
 * updates after that are atomic operations on those series, cheap enough
 * for the event loop's thread. Every begun observation must be ended
 * exactly once (aip_model_obs_end()). */
#ifndef AIPLAT_MODEL_METRICS_H
#define AIPLAT_MODEL_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "aiplat/embeddings.h"
#include "aiplat/health.h"
#include "aiplat/llm.h"
#include "aiplat/rag.h"
#include "aiplat/reranker.h"
#include "aiplat/stt.h"
#include "aiplat/tts.h"
#include "metrics.h"

typedef struct aip_model_base aip_model_base;

/* The families of one registry, shared by the clients attached to it. */
typedef struct aip_model_families aip_model_families;

/* Register the model and retrieval families in @m (idempotent) and attach
 * the client of @b to it. A client already attached keeps its registry.
 * Failures are logged and leave the client without metrics. */
void aip_model_metrics_attach(aip_model_base *b, aiplat_metrics *m);
/* Release what attaching allocated (aip_model_base_destroy()). */
void aip_model_metrics_detach(aip_model_base *b);

/* The client structure of each kind (defined by AIP_MODEL_COMMON_API). */
aip_model_base *aip_llm_base(aiplat_llm *c);
aip_model_base *aip_embeddings_base(aiplat_embeddings *c);
aip_model_base *aip_reranker_base(aiplat_reranker *c);
aip_model_base *aip_stt_base(aiplat_stt *c);
aip_model_base *aip_tts_base(aiplat_tts *c);

/* One observed client call. Zero-initialised it is inert. */
typedef struct aip_model_obs {
  const aip_model_families *f; /* NULL: not observed */
  const char *server;          /* the client's kind (static) */
  char *model;                 /* label value, for the error series */
  aip_series *requests, *duration, *ttft, *tps, *in_tokens, *out_tokens,
      *in_flight, *audio;
  int64_t start_ns, first_ns;
  int64_t in_tokens_n, out_tokens_n; /* < 0: unknown */
  double audio_seconds;              /* < 0: unknown */
  uint64_t bytes;                    /* audio bytes seen (tts) */
  uint8_t head[64];                  /* the audio's first bytes (tts) */
  size_t head_len;
} aip_model_obs;

/* Begin observing a call of @b for @model (NULL: the client's model). */
void aip_model_obs_begin(aip_model_obs *o, aip_model_base *b,
                         const char *model);
/* The first token arrived (streamed answers); later calls do nothing. */
void aip_model_obs_first(aip_model_obs *o);
/* Token counts from the server's usage (< 0: unknown). */
void aip_model_obs_tokens(aip_model_obs *o, int64_t input, int64_t output);
/* Audio went by (synthesized, or sent to be transcribed): counted, and its
 * header kept to tell the duration at the end (WAV only) when the server
 * did not say it (aip_model_obs_audio()). */
void aip_model_obs_bytes(aip_model_obs *o, const void *data, size_t len);
/* Seconds of audio transcribed (stt; < 0: unknown). */
void aip_model_obs_audio(aip_model_obs *o, double seconds);
/* The call ended with @st: every series updated, the observation inert. */
void aip_model_obs_end(aip_model_obs *o, aiplat_status st);
/* The call did not happen after all (refused before sending): no longer in
 * flight, and not counted. */
void aip_model_obs_abandon(aip_model_obs *o);
/* The same with the usage of an LLM result (may be NULL). */
void aip_model_obs_end_llm(aip_model_obs *o, aiplat_status st,
                           const aiplat_llm_result *res);

/* Seconds of audio in a RIFF/WAVE stream of @total bytes whose first
 * @len bytes are @head; < 0 when that is not a WAV header. */
double aip_model_wav_seconds(const uint8_t *head, size_t len, uint64_t total);

/* ---- retrieval ------------------------------------------------------------ */

typedef struct aip_retrieval_metrics aip_retrieval_metrics;

/* The series of a RAG handle in @m for its store (@store: "local",
 * "milvus"). NULL on failure (logged). Free with
 * aip_retrieval_metrics_free(). */
aip_retrieval_metrics *aip_retrieval_metrics_new(aiplat_metrics *m,
                                                 const char *store);
void aip_retrieval_metrics_free(aip_retrieval_metrics *r);
/* The start of a query, for aip_retrieval_observe(): the monotonic clock. */
int64_t aip_retrieval_start(const aip_retrieval_metrics *r);
/* A query begun at @start_ns ended with @st and @res (hits counted). */
void aip_retrieval_observe(const aip_retrieval_metrics *r, int64_t start_ns,
                           aiplat_status st, const aiplat_rag_results *res);

/* Attach a RAG handle's clients (@rr may be NULL) and its retrieval
 * (@slot, the handle's) to @m; a slot already set is kept. */
void aip_retrieval_attach(_Atomic(aip_retrieval_metrics *) *slot,
                          aiplat_embeddings *emb, aiplat_reranker *rr,
                          aiplat_metrics *m, const char *store);
/* The voice pipeline's speech clients report to @m. */
void aip_voice_attach_metrics(aiplat_stt *stt, aiplat_tts *tts,
                              aiplat_metrics *m);
/* rag.c: aip_retrieval_attach() with the handle's own parts. */
void aip_rag_attach_metrics(aiplat_rag *rag, aiplat_metrics *m);

#endif
