/* What the model clients read from a server: pure functions from the bytes
 * of an answer to a result, with no client and no I/O. Each client calls
 * its parser after the HTTP call; tests and the fuzz targets (tests/fuzz/)
 * call them directly. Failures are recorded in @err (may be NULL) and the
 * thread's record, with the same status and message the client returns.
 * Internal, hidden like the rest of the library. */
#ifndef AIPLAT_MODEL_PARSE_H
#define AIPLAT_MODEL_PARSE_H

#include <jansson.h>

#include "aiplat/embeddings.h"
#include "aiplat/llm.h"
#include "aiplat/reranker.h"
#include "aiplat/stt.h"
#include "aiplat/tts.h"
#include "internal.h"

/* A chat.completion object (the JSON of a 2xx answer, or an error object
 * inside one). On success *@out is a new result. */
aiplat_status aip_llm_parse_completion(aip_err *err, json_t *root,
                                       aiplat_llm_result **out);

/* A streamed answer arriving in @n pieces (pieces[i], lens[i] bytes): an
 * event stream of chat.completion.chunk objects ending in [DONE], or one
 * JSON document from a server that ignored "stream". @fn (may be NULL)
 * receives the text as aiplat_llm_stream() delivers it. *@out receives the
 * result, also the partial one after a failure (NULL only without
 * memory). */
aiplat_status aip_llm_parse_stream(aip_err *err, const char *const *pieces,
                                   const size_t *lens, size_t n,
                                   aiplat_llm_token_fn fn, void *user_data,
                                   aiplat_llm_result **out);

/* An /v1/embeddings answer for @count inputs; @expected_dim 0 accepts any
 * dimension. */
aiplat_status aip_embeddings_parse(aip_err *err, json_t *root, size_t count,
                                   size_t expected_dim,
                                   aiplat_embeddings_result **out);

/* A rerank answer for @count documents, either shape; @top_n 0 keeps all. */
aiplat_status aip_reranker_parse(aip_err *err, json_t *root, size_t count,
                                 size_t top_n, aiplat_reranker_result **out);

/* A transcription answer (the body as it came) in response format @f. */
aiplat_status aip_stt_parse(aip_err *err, const char *body, size_t len,
                            aiplat_stt_format f, aiplat_stt_result **out);

/* A speech answer with Content-Type @content_type (may be NULL) arriving in
 * @n pieces. With @fn the audio goes there, else it is collected into
 * *@audio (free()) and *@len. */
aiplat_status aip_tts_parse(aip_err *err, const char *content_type,
                            const char *const *pieces, const size_t *lens,
                            size_t n, aiplat_tts_chunk_fn fn, void *user_data,
                            void **audio, size_t *len);

#endif
