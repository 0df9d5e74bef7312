/* Text endpoints: /v1/models, /v1/embeddings, /v1/rerank (and /rerank),
 * /v1/chat/completions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "chat.h"
#include "config.h"

#define MAX_EMBED_INPUTS 2048
#define MAX_RERANK_DOCS 10000

/* ---- /v1/models -------------------------------------------------------------
 */

static json_t *model_entry(const char *id, const char *what, time_t created) {
  return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", id, "object",
                   "model", "created", (json_int_t)created, "owned_by",
                   BK_OWNER, "root", id, "description", what);
}

void bk_handle_models(bk_server *s, bk_reply *r) {
  time_t started = (time_t)s->started;
  json_t *data = json_array();
  json_array_append_new(
      data, model_entry(BK_MODEL_CHAT,
                        "extractive responder: quotes the prompt's numbered "
                        "context passages that best match the question; "
                        "generates nothing",
                        started));
  json_array_append_new(
      data, model_entry(BK_MODEL_EMBED,
                        "hashed word unigram/bigram and character trigram "
                        "features, L2-normalised; lexical, not semantic",
                        started));
  json_array_append_new(
      data,
      model_entry(BK_MODEL_RERANK,
                  "BM25 mixed with hashed-embedding cosine; lexical", started));
  /* The engines' pointers are set before ready; read them only after. */
  bool ready = atomic_load(&s->ready);
  if (ready && s->stt)
    json_array_append_new(
        data, model_entry(BK_MODEL_STT,
                          "CMU pocketsphinx 0.8 en-us (English only, 16 kHz, "
                          "WAV 16-bit PCM input)",
                          started));
  if (ready && s->tts) {
    char what[256];
    snprintf(what, sizeof what, "CMU flite voices %s; WAV or PCM output",
             bk_tts_voice_list());
    json_array_append_new(data, model_entry(BK_MODEL_TTS, what, started));
  }
  bk_reply_json(r, 200,
                json_pack("{s:s, s:o, s:s}", "object", "list", "data", data,
                          "backend", BK_HONESTY));
}

/* ---- /v1/embeddings ---------------------------------------------------------
 */

static char *base64_floats(const float *v, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t len = n * 4;
  unsigned char *bytes = calloc(1, len ? len : 1);
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (!bytes || !out) {
    free(bytes);
    free(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) { /* little-endian float32 */
    uint32_t u;
    memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; k++)
      bytes[4 * i + k] = (unsigned char)(u >> (8 * k));
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t x = (uint32_t)bytes[i] << 16;
    if (i + 1 < len) x |= (uint32_t)bytes[i + 1] << 8;
    if (i + 2 < len) x |= bytes[i + 2];
    out[o++] = tab[(x >> 18) & 63];
    out[o++] = tab[(x >> 12) & 63];
    out[o++] = i + 1 < len ? tab[(x >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? tab[x & 63] : '=';
  }
  out[o] = '\0';
  free(bytes);
  return out;
}

void bk_handle_embeddings(bk_server *s, json_t *req, bk_reply *r) {
  const char *model = bk_model_name(s, req, BK_MODEL_EMBED, r);
  if (!model) return;
  json_t *input = json_object_get(req, "input");
  size_t n = 0;
  if (json_is_string(input)) {
    n = 1;
  } else if (json_is_array(input)) {
    n = json_array_size(input);
  } else {
    bk_reply_error(r, 400, "input",
                   "input must be a string or an array of strings");
    return;
  }
  if (n == 0 || n > MAX_EMBED_INPUTS) {
    bk_reply_error(r, 400, "input", "input must hold 1 to %d strings",
                   MAX_EMBED_INPUTS);
    return;
  }
  for (size_t i = 0; json_is_array(input) && i < n; i++) {
    json_t *x = json_array_get(input, i);
    if (!json_is_string(x)) {
      bk_reply_error(r, 400, "input",
                     "input[%zu] is not a string (token-id input is not "
                     "supported by the local backend)",
                     i);
      return;
    }
  }
  json_t *ef = json_object_get(req, "encoding_format");
  bool b64 = false;
  if (ef && !json_is_null(ef)) {
    const char *e = json_string_value(ef);
    if (e && strcmp(e, "base64") == 0) {
      b64 = true;
    } else if (!e || strcmp(e, "float") != 0) {
      bk_reply_error(r, 400, "encoding_format",
                     "encoding_format must be \"float\" or \"base64\"");
      return;
    }
  }
  size_t dim = (size_t)s->opt.embedding_dim;
  json_t *dj = json_object_get(req, "dimensions");
  if (dj && !json_is_null(dj)) {
    if (!json_is_integer(dj) || json_integer_value(dj) < 1 ||
        json_integer_value(dj) > BK_EMBED_MAX_DIM) {
      bk_reply_error(r, 400, "dimensions", "dimensions must be 1..%d",
                     BK_EMBED_MAX_DIM);
      return;
    }
    dim = (size_t)json_integer_value(dj);
  }
  float *vec = malloc(dim * sizeof *vec);
  json_t *data = json_array();
  size_t words = 0;
  for (size_t i = 0; vec && data && i < n; i++) {
    json_t *x = json_is_string(input) ? input : json_array_get(input, i);
    const char *t = json_string_value(x);
    size_t tl = json_string_length(x);
    if (tl == 0) {
      free(vec);
      json_decref(data);
      bk_reply_error(r, 400, "input", "input[%zu] is an empty string", i);
      return;
    }
    words += bk_word_count(t);
    bk_embed(t, tl, vec, dim);
    json_t *emb;
    if (b64) {
      char *e = base64_floats(vec, dim);
      emb = e ? json_string(e) : NULL;
      free(e);
    } else {
      emb = json_array();
      for (size_t k = 0; emb && k < dim; k++)
        json_array_append_new(emb, json_real(vec[k]));
    }
    json_array_append_new(
        data, json_pack("{s:s, s:o, s:I}", "object", "embedding", "embedding",
                        emb, "index", (json_int_t)i));
  }
  free(vec);
  bk_reply_json(
      r, 200,
      json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
                "model", model, "usage", "prompt_tokens", (json_int_t)words,
                "total_tokens", (json_int_t)words));
}

/* ---- /v1/rerank, /rerank ----------------------------------------------------
 */

typedef struct ranked {
  size_t index;
  double score;
} ranked;

static int by_score_desc(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->score != y->score) return x->score < y->score ? 1 : -1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static const char *doc_text(json_t *d) {
  if (json_is_string(d)) return json_string_value(d);
  if (json_is_object(d)) return json_string_value(json_object_get(d, "text"));
  return NULL;
}

void bk_handle_rerank(bk_server *s, json_t *req, bk_reply *r) {
  json_t *texts = json_object_get(req, "texts");
  bool tei = texts != NULL && json_object_get(req, "documents") == NULL;
  const char *model = bk_model_name(s, req, BK_MODEL_RERANK, r);
  if (!model) return;
  const char *query = json_string_value(json_object_get(req, "query"));
  if (!query || !*query) {
    bk_reply_error(r, 400, "query", "query must be a non-empty string");
    return;
  }
  json_t *docs = tei ? texts : json_object_get(req, "documents");
  const char *field = tei ? "texts" : "documents";
  if (!json_is_array(docs) || json_array_size(docs) == 0 ||
      json_array_size(docs) > MAX_RERANK_DOCS) {
    bk_reply_error(r, 400, field, "%s must be an array of 1 to %d strings",
                   field, MAX_RERANK_DOCS);
    return;
  }
  size_t n = json_array_size(docs);
  const char **dv = calloc(n, sizeof *dv);
  double *scores = calloc(n, sizeof *scores);
  ranked *rk = calloc(n, sizeof *rk);
  if (!dv || !scores || !rk) goto oom;
  for (size_t i = 0; i < n; i++) {
    dv[i] = doc_text(json_array_get(docs, i));
    if (!dv[i]) {
      bk_reply_error(r, 400, field,
                     "%s[%zu] must be a string (or an object with \"text\")",
                     field, i);
      goto out;
    }
  }
  size_t top = n;
  json_t *tn = json_object_get(req, "top_n");
  if (tn && !json_is_null(tn)) {
    if (!json_is_integer(tn) || json_integer_value(tn) < 0) {
      bk_reply_error(r, 400, "top_n", "top_n must be a non-negative integer");
      goto out;
    }
    json_int_t t = json_integer_value(tn);
    if (t > 0 && (size_t)t < n) top = (size_t)t;
  }
  if (!bk_rerank_scores(query, dv, n, scores)) goto oom;
  for (size_t i = 0; i < n; i++) rk[i] = (ranked){i, scores[i]};
  qsort(rk, n, sizeof *rk, by_score_desc);
  json_t *results = json_array();
  bool with_text = json_is_true(
      json_object_get(req, tei ? "return_text" : "return_documents"));
  size_t words = bk_word_count(query);
  for (size_t i = 0; i < n; i++) words += bk_word_count(dv[i]);
  for (size_t i = 0; i < top; i++) {
    json_t *o = json_pack("{s:I, s:f}", "index", (json_int_t)rk[i].index,
                          tei ? "score" : "relevance_score", rk[i].score);
    if (o && with_text) {
      if (tei)
        json_object_set_new(o, "text", json_string(dv[rk[i].index]));
      else
        json_object_set_new(o, "document",
                            json_pack("{s:s}", "text", dv[rk[i].index]));
    }
    json_array_append_new(results, o);
  }
  if (tei) {
    bk_reply_json(r, 200, results);
  } else {
    char id[64];
    bk_make_id(s, "rerank", id, sizeof id);
    bk_reply_json(r, 200,
                  json_pack("{s:s, s:s, s:o, s:{s:I}}", "id", id, "model",
                            model, "results", results, "usage", "total_tokens",
                            (json_int_t)words));
  }
  goto out;
oom:
  bk_reply_error(r, 500, NULL, "out of memory");
out:
  free(dv);
  free(scores);
  free(rk);
}

/* ---- /v1/chat/completions
 * ---------------------------------------------------- */

/* The text of a message's content: a string, or the text parts joined. */
static bool content_text(json_t *content, aip_buf *out, const char **bad) {
  if (!content || json_is_null(content)) return true;
  if (json_is_string(content))
    return aip_buf_append(out, json_string_value(content),
                          json_string_length(content));
  if (!json_is_array(content)) {
    *bad = "content must be a string or an array of content parts";
    return false;
  }
  size_t i;
  json_t *part;
  json_array_foreach(content, i, part) {
    const char *type = json_string_value(json_object_get(part, "type"));
    json_t *text = json_object_get(part, "text");
    if (!type || strcmp(type, "text") != 0 || !json_is_string(text)) {
      *bad = "only text content parts are supported by the local backend";
      return false;
    }
    /* Parts are separate blocks: a blank line keeps passages apart. */
    if (out->len && !aip_buf_puts(out, "\n\n")) return false;
    if (!aip_buf_append(out, json_string_value(text), json_string_length(text)))
      return false;
  }
  return true;
}

/* Split the answer into word pieces: each but the first keeps the blank
 * before it, so that the pieces concatenate to the answer exactly. */
static bool split_words(const char *a, bk_strv *out) {
  const char *p = a;
  while (*p) {
    const char *start = p;
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    while (*p && *p != ' ' && *p != '\n' && *p != '\t') p++;
    if (p > start && !bk_strv_push(out, start, (size_t)(p - start)))
      return false;
  }
  return true;
}

static json_t *chunk(const char *id, time_t created, const char *model,
                     json_t *delta, const char *finish, bool usage_null) {
  json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:o}]}", "id",
                        id, "object", "chat.completion.chunk", "created",
                        (json_int_t)created, "model", model, "choices", "index",
                        0, "delta", delta, "logprobs", "finish_reason",
                        finish ? json_string(finish) : json_null());
  if (c && usage_null) json_object_set_new(c, "usage", json_null());
  return c;
}

static bool read_max_tokens(json_t *req, long *out, bk_reply *r) {
  const char *names[] = {"max_completion_tokens", "max_tokens"};
  *out = -1;
  for (size_t i = 0; i < 2; i++) {
    json_t *m = json_object_get(req, names[i]);
    if (!m || json_is_null(m)) continue;
    if (!json_is_integer(m) || json_integer_value(m) < 1) {
      bk_reply_error(r, 400, names[i], "%s must be a positive integer",
                     names[i]);
      return false;
    }
    *out = (long)json_integer_value(m);
    return true;
  }
  return true;
}

void bk_handle_chat(bk_server *s, json_t *req, bk_reply *r) {
  const char *model = bk_model_name(s, req, BK_MODEL_CHAT, r);
  if (!model) return;
  json_t *messages = json_object_get(req, "messages");
  if (!json_is_array(messages) || json_array_size(messages) == 0) {
    bk_reply_error(r, 400, "messages",
                   "messages must be a non-empty array of {role, content}");
    return;
  }
  json_t *nj = json_object_get(req, "n");
  if (nj && !json_is_null(nj) &&
      (!json_is_integer(nj) || json_integer_value(nj) != 1)) {
    bk_reply_error(r, 400, "n", "the local backend returns one choice: n=1");
    return;
  }
  long max_tokens;
  if (!read_max_tokens(req, &max_tokens, r)) return;
  json_t *st = json_object_get(req, "stream");
  if (st && !json_is_boolean(st) && !json_is_null(st)) {
    bk_reply_error(r, 400, "stream", "stream must be a boolean");
    return;
  }
  bool stream = json_is_true(st);
  bool usage_in_stream = json_is_true(
      json_object_get(json_object_get(req, "stream_options"), "include_usage"));

  size_t n = json_array_size(messages);
  bk_chat_msg *msgs = calloc(n, sizeof *msgs);
  aip_buf *texts = calloc(n, sizeof *texts);
  bk_strv pieces = {0};
  char *answer = NULL;
  if (!msgs || !texts) goto oom;
  size_t prompt_words = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_array_get(messages, i);
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!json_is_object(m) || !role) {
      bk_reply_error(r, 400, "messages",
                     "messages[%zu] must be an object with a string role", i);
      goto out;
    }
    const char *bad = NULL;
    if (!content_text(json_object_get(m, "content"), &texts[i], &bad)) {
      if (!bad) goto oom;
      bk_reply_error(r, 400, "messages", "messages[%zu]: %s", i, bad);
      goto out;
    }
    msgs[i].role = role;
    msgs[i].content = texts[i].data ? texts[i].data : "";
    prompt_words += bk_word_count(msgs[i].content);
  }
  answer = bk_chat_answer(msgs, n);
  if (!answer || !split_words(answer, &pieces)) goto oom;
  const char *finish = "stop";
  if (max_tokens > 0 && pieces.n > (size_t)max_tokens) {
    for (size_t i = (size_t)max_tokens; i < pieces.n; i++) free(pieces.v[i]);
    pieces.n = (size_t)max_tokens;
    finish = "length";
  }
  size_t completion = pieces.n;
  char id[64];
  bk_make_id(s, "chatcmpl", id, sizeof id);
  time_t created = time(NULL);
  json_t *usage =
      json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)prompt_words,
                "completion_tokens", (json_int_t)completion, "total_tokens",
                (json_int_t)(prompt_words + completion));
  if (!stream) {
    aip_buf content = {0};
    for (size_t i = 0; i < pieces.n; i++) aip_buf_puts(&content, pieces.v[i]);
    json_t *body = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:n, s:s}], s:o}", "id",
        id, "object", "chat.completion", "created", (json_int_t)created,
        "model", model, "choices", "index", 0, "message", "role", "assistant",
        "content", content.data ? content.data : "", "logprobs",
        "finish_reason", finish, "usage", usage);
    aip_buf_free(&content);
    bk_reply_json(r, 200, body);
    goto out;
  }
  /* Stream: a first chunk with the role, one chunk per word, the last word
   * carrying finish_reason (as vLLM does), then usage if asked, [DONE]. */
  r->sse = true;
  r->status = 200;
  bool ok = bk_reply_event(
      r, chunk(id, created, model,
               json_pack("{s:s, s:s}", "role", "assistant", "content", ""),
               NULL, usage_in_stream));
  for (size_t i = 0; ok && i < pieces.n; i++)
    ok = bk_reply_event(
        r, chunk(id, created, model, json_pack("{s:s}", "content", pieces.v[i]),
                 i + 1 == pieces.n ? finish : NULL, usage_in_stream));
  if (ok && pieces.n == 0)
    ok = bk_reply_event(
        r, chunk(id, created, model, json_object(), finish, usage_in_stream));
  if (ok && usage_in_stream)
    ok = bk_reply_event(
        r, json_pack("{s:s, s:s, s:I, s:s, s:[], s:O}", "id", id, "object",
                     "chat.completion.chunk", "created", (json_int_t)created,
                     "model", model, "choices", "usage", usage));
  json_decref(usage);
  if (ok) ok = bk_reply_event_text(r, "[DONE]");
  if (!ok) goto oom;
  goto out;
oom:
  bk_reply_error(r, 500, NULL, "out of memory");
out:
  for (size_t i = 0; texts && i < n; i++) aip_buf_free(&texts[i]);
  free(texts);
  free(msgs);
  free(answer);
  bk_strv_free(&pieces);
}
