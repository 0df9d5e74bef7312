/* aiplat-model-backend: the local development stand-in for the GPU model
 * servers (see docs/decisions/0009-local-model-backend.md). Shared
 * declarations of its modules. */
#ifndef BK_BACKEND_H
#define BK_BACKEND_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "fault.h"
#include "internal.h"
#include "text.h"

/* Model ids served (listed by /v1/models). */
#define BK_MODEL_CHAT "local-extractive-chat"
#define BK_MODEL_EMBED "local-hash-embed"
#define BK_MODEL_RERANK "local-lexical-rerank"
#define BK_MODEL_STT "local-pocketsphinx-en-us"
#define BK_MODEL_TTS "local-flite"
#define BK_OWNER "aiplat-local-backend"
#define BK_HONESTY                                                          \
  "aiplat local model backend: a development stand-in for GPU model "       \
  "servers (not vLLM, not Whisper); CPU engines with small, deterministic " \
  "or extractive behaviour"

/* Largest JSON request body and largest audio upload (OpenAI's limit). */
#define BK_MAX_JSON_BODY (16u << 20)
#define BK_MAX_AUDIO_BODY (25u << 20)

typedef struct bk_options {
  const char *host;
  int port;
  const char *port_file;
  bool no_stt;
  int embedding_dim;
  const char *stt_model_dir;
  int stt_decoders;
  const char *default_voice;
  const char *api_key;
  bool strict_models;
  int load_delay_ms;
  int stream_interval_ms;
  int workers; /* threads answering chat, embeddings and rerank */
} bk_options;

typedef struct bk_stt bk_stt;
typedef struct bk_tts bk_tts;

typedef struct bk_server {
  bk_options opt;
  atomic_int ready;
  atomic_int stopping;
  atomic_ulong seq;
  long started; /* time(NULL) at start: "created" of the models */
  bk_oneshot *oneshot;
  bk_stt *stt;
  bk_tts *tts;
} bk_server;

/* What a handler answers. Either a body or SSE events. */
typedef struct bk_reply {
  unsigned status;
  const char *content_type; /* static string */
  aip_buf body;
  bool chunked;    /* send without Content-Length (chunked) */
  bool sse;        /* events hold the stream's data payloads */
  bk_strv events;  /* each payload without "data: " and "\n\n" */
  int retry_after; /* -1: no header */
  bool is_json;    /* body is JSON (for the malformed fault) */
} bk_reply;

void bk_reply_init(bk_reply *r);
void bk_reply_free(bk_reply *r);
/* 200-or-other JSON answer; takes the reference of body. */
void bk_reply_json(bk_reply *r, unsigned status, json_t *body);
/* OpenAI-shaped error {"error":{"message","type","param","code"}}. */
void bk_reply_error(bk_reply *r, unsigned status, const char *param,
                    const char *fmt, ...) AIP_PRINTF(4, 5);
/* The JSON text of an error object (malloc'd), for in-stream errors. */
char *bk_error_json(unsigned status, const char *param, const char *message);
/* Append one SSE event; takes the reference of obj. */
bool bk_reply_event(bk_reply *r, json_t *obj);
bool bk_reply_event_text(bk_reply *r, const char *payload);

/* A fresh id such as "chatcmpl-local-1f". */
void bk_make_id(bk_server *s, const char *prefix, char *buf, size_t len);

/* The model name to echo for a request, or NULL after answering 404 when
 * --strict-models is on and the name is not served_id. */
const char *bk_model_name(bk_server *s, json_t *req, const char *served_id,
                          bk_reply *r);

/* Multipart form of a transcription request. */
typedef struct bk_form {
  aip_buf file;
  bool have_file;
  char *filename;
  char *model;
  char *language;
  char *response_format;
  char *prompt;
  char *temperature;
  bool words; /* timestamp_granularities[] includes "word" */
  bool too_large;
  bool field_too_large;
} bk_form;

void bk_form_free(bk_form *f);

/* ---- handlers ------------------------------------------------------------ */

void bk_handle_models(bk_server *s, bk_reply *r);
void bk_handle_embeddings(bk_server *s, json_t *req, bk_reply *r);
/* tei: the text-embeddings-inference shape (texts in, bare array out). */
void bk_handle_rerank(bk_server *s, json_t *req, bk_reply *r);
void bk_handle_chat(bk_server *s, json_t *req, bk_reply *r);
void bk_handle_speech(bk_server *s, json_t *req, bk_reply *r);
void bk_handle_transcription(bk_server *s, bk_form *form, bool whisper_cpp,
                             bk_reply *r);

/* ---- engines ---------------------------------------------------------------
 */

/* Speech recognition: n decoders of the pocketsphinx model in model_dir
 * (which holds en-us/, en-us.lm.bin and cmudict-en-us.dict). */
bk_stt *bk_stt_create(const char *model_dir, int n, char *err, size_t errlen);
void bk_stt_destroy(bk_stt *stt);

/* Speech synthesis: every compiled-in flite voice. */
bk_tts *bk_tts_create(const char *default_voice, char *err, size_t errlen);
void bk_tts_destroy(bk_tts *tts);
/* Names of the voices, for --help and /v1/models. */
const char *bk_tts_voice_list(void);

/* ---- the HTTP server -------------------------------------------------------
 */

typedef struct bk_http bk_http;

/* Listen on host:port (0 = any free port); *bound gets the port. Starts the
 * event loop thread (libmicrohttpd), the timer thread and the worker pools. */
bk_http *bk_http_start(bk_server *s, char *err, size_t errlen, int *bound);
/* Connections accepted at most (from the descriptor limit). */
unsigned bk_http_max_connections(const bk_http *h);
/* Answer or cut whatever is waiting (s->stopping must be set), close every
 * connection, join the threads, free. */
void bk_http_stop(bk_http *h);

#endif
