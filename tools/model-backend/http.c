/* The HTTP side of the local model backend: routing, request bodies,
 * replies and fault injection, all on one event loop thread that drives
 * libmicrohttpd (epoll). Nothing blocks that thread: a request waiting for
 * an injected delay, a stream waiting for its next event and a request being
 * answered by a model handler are suspended connections, resumed by the
 * timer thread or by the worker that answered (sched.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "sched.h"

#define FAULT_HEADER "X-Aiplat-Fault"
#define POST_BUFFER 65536
#define WRITE_BLOCK 16384
/* Chunked bodies are read straight into the connection's write buffer: the
 * response's own block only serves HTTP/1.0 clients, so keep it small. */
#define CHUNKED_BLOCK 1024
#define DEFAULT_SPLIT_INTERVAL_MS 2
#define FORM_FIELD_MAX 1024
/* Connections at most, and memory per connection (MHD's pool: request
 * headers, the read buffer, the write buffer of a chunk). */
#define MAX_CONNECTIONS 16384
/* Descriptors kept for the engines, the logs, the port file. */
#define SPARE_FDS 64
#define CONNECTION_MEMORY (16u * 1024u)
#define LISTEN_BACKLOG 4096

struct bk_http {
  bk_server *s;
  struct MHD_Daemon *d;
  bk_timer *timer;
  bk_pool *text;  /* chat, embeddings, rerank */
  bk_pool *audio; /* speech synthesis and recognition: slow, and a request
                     may wait for a free decoder */
  unsigned max_connections;
  /* The event loop: waits on MHD's epoll descriptor and on wake_fd, which
   * every resume writes (once until the loop has seen it: kicked). */
  pthread_t loop;
  bool loop_started;
  atomic_bool loop_stop;
  atomic_bool kicked;
  int epoll_fd; /* MHD's */
  int wake_fd;
};

/* Resume a suspended connection from any thread and wake the loop. MHD
 * notes the resume and signals its own descriptor, but the loop must also
 * learn about a resume that lands while MHD is running, after MHD looked
 * for resumed connections: wake_fd is written after the resume and cleared
 * before MHD runs, so no resume is left waiting. */
static void resume(bk_http *h, struct MHD_Connection *mc) {
  MHD_resume_connection(mc);
  if (!atomic_exchange(&h->kicked, true)) {
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0) {
      /* the counter is full: the loop is already woken */
    }
  }
}

/* ---- replies ---------------------------------------------------------------
 */

void bk_reply_init(bk_reply *r) {
  memset(r, 0, sizeof *r);
  r->status = 200;
  r->content_type = "application/json";
  r->retry_after = -1;
}

void bk_reply_free(bk_reply *r) {
  aip_buf_free(&r->body);
  bk_strv_free(&r->events);
}

static char *dump(json_t *j) {
  return json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
}

void bk_reply_json(bk_reply *r, unsigned status, json_t *body) {
  aip_buf_reset(&r->body);
  r->status = status;
  r->content_type = "application/json";
  r->is_json = true;
  r->sse = false;
  char *s = body ? dump(body) : NULL;
  json_decref(body);
  if (!s || !aip_buf_puts(&r->body, s)) {
    aip_buf_reset(&r->body);
    r->status = 500;
    aip_buf_puts(&r->body, "{\"error\":{\"message\":\"out of memory\"}}");
  }
  free(s);
}

static const char *error_type(unsigned status) {
  switch (status) {
    case 400:
      return "BadRequestError";
    case 401:
      return "AuthenticationError";
    case 403:
      return "PermissionDeniedError";
    case 404:
      return "NotFoundError";
    case 405:
      return "MethodNotAllowedError";
    case 408:
      return "TimeoutError";
    case 409:
      return "ConflictError";
    case 413:
      return "RequestTooLargeError";
    case 422:
      return "UnprocessableEntityError";
    case 429:
      return "RateLimitError";
    case 500:
      return "InternalServerError";
    case 501:
      return "NotImplementedError";
    case 502:
      return "BadGatewayError";
    case 503:
      return "ServiceUnavailableError";
    case 504:
      return "GatewayTimeoutError";
    default:
      return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

static json_t *error_object(unsigned status, const char *param,
                            const char *message) {
  return json_pack("{s:{s:s, s:s, s:o, s:i}}", "error", "message", message,
                   "type", error_type(status), "param",
                   param ? json_string(param) : json_null(), "code",
                   (int)status);
}

char *bk_error_json(unsigned status, const char *param, const char *message) {
  json_t *j = error_object(status, param, message);
  char *s = j ? dump(j) : NULL;
  json_decref(j);
  return s;
}

void bk_reply_error(bk_reply *r, unsigned status, const char *param,
                    const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bk_strv_free(&r->events);
  r->chunked = false;
  bk_reply_json(r, status, error_object(status, param, msg));
}

bool bk_reply_event(bk_reply *r, json_t *obj) {
  char *s = obj ? dump(obj) : NULL;
  json_decref(obj);
  bool ok = s && bk_strv_push(&r->events, s, strlen(s));
  free(s);
  return ok;
}

bool bk_reply_event_text(bk_reply *r, const char *payload) {
  return bk_strv_push(&r->events, payload, strlen(payload));
}

void bk_make_id(bk_server *s, const char *prefix, char *buf, size_t len) {
  unsigned long n = atomic_fetch_add(&s->seq, 1) + 1;
  snprintf(buf, len, "%s-local-%lx", prefix, n);
}

const char *bk_model_name(bk_server *s, json_t *req, const char *served_id,
                          bk_reply *r) {
  json_t *m = json_object_get(req, "model");
  const char *name = json_is_string(m) ? json_string_value(m) : NULL;
  if (m && !json_is_string(m) && !json_is_null(m)) {
    bk_reply_error(r, 400, "model", "model must be a string");
    return NULL;
  }
  if (s->opt.strict_models && (!name || strcmp(name, served_id) != 0)) {
    bk_reply_error(r, 404, "model",
                   "The model `%s` does not exist (this local backend serves "
                   "%s here; started with --strict-models).",
                   name ? name : "", served_id);
    return NULL;
  }
  return name && *name ? name : served_id;
}

void bk_form_free(bk_form *f) {
  aip_buf_free(&f->file);
  free(f->filename);
  free(f->model);
  free(f->language);
  free(f->response_format);
  free(f->prompt);
  free(f->temperature);
  memset(f, 0, sizeof *f);
}

/* ---- routes ----------------------------------------------------------------
 */

typedef enum route {
  R_UNKNOWN,
  R_ROOT,
  R_HEALTH,
  R_MODELS,
  R_CHAT,
  R_EMBED,
  R_RERANK,
  R_SPEECH,
  R_TRANSCRIBE,
  R_INFERENCE
} route;

static const struct {
  const char *path;
  route r;
  bool post;
} routes[] = {
    {"/", R_ROOT, false},
    {"/health", R_HEALTH, false},
    {"/v1/models", R_MODELS, false},
    {"/v1/chat/completions", R_CHAT, true},
    {"/v1/embeddings", R_EMBED, true},
    {"/v1/rerank", R_RERANK, true},
    {"/v2/rerank", R_RERANK, true},
    {"/rerank", R_RERANK, true},
    {"/v1/audio/speech", R_SPEECH, true},
    {"/v1/audio/transcriptions", R_TRANSCRIBE, true},
    {"/inference", R_INFERENCE, true},
};

static int find_route(const char *url) {
  for (size_t i = 0; i < AIP_ARRAY_LEN(routes); i++)
    if (strcmp(url, routes[i].path) == 0) return (int)i;
  return -1;
}

/* ---- per-request state -----------------------------------------------------
 */

typedef enum conn_state {
  CS_NEW,     /* request complete, not looked at yet */
  CS_READY,   /* admitted (past any injected delay): to be answered */
  CS_WORKING, /* suspended: a worker is answering */
  CS_DONE     /* reply holds the answer */
} conn_state;

typedef struct conn {
  bk_http *h;
  struct MHD_Connection *mc;
  bk_fault fault_spec;
  bk_reply reply;
  struct sender *sd; /* the reply's bytes, once prepared (NULL: no memory) */
  bk_job job;
  struct MHD_PostProcessor *pp;
  bk_form form;
  aip_buf body;
  int64_t t0;
  conn_state state;
  int route_i; /* index into routes, -1 unknown */
  unsigned status;
  bool prepared;
  bool multipart;
  bool pp_failed;
  bool too_large;
  char method[16];
  char path[128];
  char fault[256];
} conn;

static void sender_free(void *cls);

static void conn_free(conn *c) {
  if (!c) return;
  if (c->sd) sender_free(c->sd);
  if (c->pp) MHD_destroy_post_processor(c->pp);
  bk_form_free(&c->form);
  aip_buf_free(&c->body);
  bk_reply_free(&c->reply);
  free(c);
}

static bool set_field(char **dst, const char *data, uint64_t off, size_t size,
                      bool *too_large) {
  size_t have = *dst ? strlen(*dst) : 0;
  if (off != have || have + size > FORM_FIELD_MAX) {
    *too_large = true;
    return false;
  }
  char *n = realloc(*dst, have + size + 1);
  if (!n) return false;
  memcpy(n + have, data, size);
  n[have + size] = '\0';
  *dst = n;
  return true;
}

static enum MHD_Result on_post_field(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *filename,
                                     const char *content_type,
                                     const char *transfer_encoding,
                                     const char *data, uint64_t off,
                                     size_t size) {
  bk_form *f = cls;
  (void)kind;
  (void)content_type;
  (void)transfer_encoding;
  if (!key) return MHD_YES;
  if (strcmp(key, "file") == 0) {
    if (!f->have_file && filename) f->filename = aip_strdup(filename);
    f->have_file = true;
    if (f->file.len + size > BK_MAX_AUDIO_BODY) {
      f->too_large = true;
      return MHD_NO;
    }
    if (size && !aip_buf_append(&f->file, data, size)) return MHD_NO;
    return MHD_YES;
  }
  char **dst = NULL;
  if (strcmp(key, "model") == 0) dst = &f->model;
  if (strcmp(key, "language") == 0) dst = &f->language;
  if (strcmp(key, "response_format") == 0) dst = &f->response_format;
  if (strcmp(key, "prompt") == 0) dst = &f->prompt;
  if (strcmp(key, "temperature") == 0) dst = &f->temperature;
  if (strcmp(key, "timestamp_granularities[]") == 0 ||
      strcmp(key, "timestamp_granularities") == 0) {
    if (size >= 4 && memcmp(data, "word", 4) == 0) f->words = true;
    return MHD_YES;
  }
  if (!dst) return MHD_YES; /* fields this backend does not use */
  return set_field(dst, data, off, size, &f->field_too_large) ? MHD_YES
                                                              : MHD_NO;
}

/* ---- faults from the request ------------------------------------------------
 */

typedef struct fault_ctx {
  bk_fault *f;
  char *err;
  size_t errlen;
  bool ok;
} fault_ctx;

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value) {
  fault_ctx *fc = cls;
  (void)kind;
  if (!fc->ok || !key) return MHD_YES;
  if (strcmp(key, "fault") == 0)
    fc->ok = bk_fault_parse(fc->f, value, fc->err, fc->errlen);
  else if (bk_fault_is_name(key))
    fc->ok = bk_fault_set(fc->f, key, value, fc->err, fc->errlen);
  return MHD_YES;
}

static bool read_faults(struct MHD_Connection *mc, conn *c, bk_fault *f,
                        char *err, size_t errlen) {
  bk_fault_init(f);
  const char *h =
      MHD_lookup_connection_value(mc, MHD_HEADER_KIND, FAULT_HEADER);
  if (h) snprintf(c->fault, sizeof c->fault, "%s", h);
  if (h && !bk_fault_parse(f, h, err, errlen)) return false;
  fault_ctx fc = {f, err, errlen, true};
  MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, on_query_arg, &fc);
  if (!fc.ok) return false;
  return bk_fault_check(f, err, errlen);
}

/* ---- sending ----------------------------------------------------------------
 */

typedef struct sender {
  bk_server *s;
  bk_http *h;
  struct MHD_Connection *mc;
  uint64_t paused_at; /* position whose pause has started (0: none) */
  int64_t due_ms;     /* when the write at paused_at may go */
  char *data;
  size_t len;
  size_t *marks; /* ends of natural writes (SSE events), ascending */
  size_t n_marks, mark_i;
  size_t split;
  int interval_ms;
  size_t limit;      /* bytes to send before closing */
  bool abort_at_end; /* close without a proper end */
  bool chunked;      /* no Content-Length */
} sender;

static void sender_free(void *cls) {
  sender *sd = cls;
  free(sd->data);
  free(sd->marks);
  free(sd);
}

static void sender_suspend(void *cls) {
  sender *sd = cls;
  MHD_suspend_connection(sd->mc);
}

/* The connection is suspended, so its response and this sender live. */
static void sender_resume(void *cls) {
  sender *sd = cls;
  resume(sd->h, sd->mc);
}

static ssize_t sender_read(void *cls, uint64_t pos, char *buf, size_t max) {
  sender *sd = cls;
  if (pos >= sd->limit)
    return sd->abort_at_end ? MHD_CONTENT_READER_END_WITH_ERROR
                            : MHD_CONTENT_READER_END_OF_STREAM;
  if (atomic_load(&sd->s->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (pos > 0 && sd->interval_ms > 0) {
    /* Pause before this write: the connection sleeps in the timer, MHD calls
     * again for the same position once it is resumed. */
    int64_t now = aip_now_ms();
    if (sd->paused_at != pos) {
      sd->paused_at = pos;
      sd->due_ms = now + sd->interval_ms;
    }
    if (now < sd->due_ms) {
      if (!bk_timer_at(sd->h->timer, sd->due_ms, sender_suspend, sender_resume,
                       sd))
        return MHD_CONTENT_READER_END_WITH_ERROR; /* stopping */
      return 0;
    }
  }
  size_t n = sd->limit - (size_t)pos;
  if (n > max) n = max;
  if (n > WRITE_BLOCK) n = WRITE_BLOCK;
  if (sd->split && n > sd->split) n = sd->split;
  while (sd->mark_i < sd->n_marks && sd->marks[sd->mark_i] <= pos) sd->mark_i++;
  if (sd->mark_i < sd->n_marks && sd->marks[sd->mark_i] - pos < n)
    n = sd->marks[sd->mark_i] - (size_t)pos;
  memcpy(buf, sd->data + pos, n);
  return (ssize_t)n;
}

#define BROKEN_CHUNK                                                        \
  "{\"id\":\"chatcmpl-local-broken\",\"object\":\"chat.completion.chunk\"," \
  "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"unterminated"

/* Apply the stream faults to the events and serialise them. */
static bool build_sse(bk_reply *r, const bk_fault *f, sender *sd) {
  bk_strv *ev = &r->events;
  size_t n = ev->n;
  bool has_done = n > 0 && strcmp(ev->v[n - 1], "[DONE]") == 0;
  size_t body_events = has_done ? n - 1 : n;
  size_t keep = n;
  bool add_error = false;
  if (f->stream_error >= 0) {
    keep = (size_t)f->stream_error < body_events ? (size_t)f->stream_error
                                                 : body_events;
    add_error = true;
  }
  if (f->cut != -1) {
    size_t want = f->cut == BK_CUT_HALF ? body_events / 2 : (size_t)f->cut;
    size_t k = want < body_events ? want : body_events;
    if (k < keep) keep = k;
    sd->abort_at_end = true;
    add_error = false;
  }
  size_t broken = f->malformed && body_events > 0 ? body_events / 2 : SIZE_MAX;
  aip_buf b = {0};
  size_t cap = keep + 3;
  sd->marks = calloc(cap, sizeof *sd->marks);
  if (!sd->marks) return false;
  bool ok = true;
  for (size_t i = 0; ok && i < keep; i++) {
    if (sd->abort_at_end || add_error) {
      if (i >= body_events) break; /* drop [DONE] */
    }
    const char *payload = i == broken ? BROKEN_CHUNK : ev->v[i];
    ok = aip_buf_printf(&b, "data: %s\n\n", payload);
    sd->marks[sd->n_marks++] = b.len;
  }
  if (ok && add_error) {
    char *e = bk_error_json(500, NULL,
                            "injected fault: the engine failed in the middle "
                            "of the stream");
    ok = e && aip_buf_printf(&b, "data: %s\n\n", e);
    free(e);
    sd->marks[sd->n_marks++] = b.len;
    ok = ok && aip_buf_puts(&b, "data: [DONE]\n\n");
    sd->marks[sd->n_marks++] = b.len;
  }
  if (!ok) {
    aip_buf_free(&b);
    return false;
  }
  sd->data = aip_buf_steal(&b, &sd->len);
  if (!sd->data) return false;
  /* The stream lives as long as its pauses: drop the buffer's slack. */
  char *fit = realloc(sd->data, sd->len + 1);
  if (fit) sd->data = fit;
  return true;
}

/* The bytes to send for a reply, its faults applied: the body or the events
 * move into the sender (r keeps its status and headers). Built where the
 * reply was made, so a burst of replies does not hold events and bytes
 * both. NULL when memory runs out. */
static sender *sender_make(bk_http *h, struct MHD_Connection *mc, bk_reply *r,
                           const bk_fault *f) {
  bk_server *s = h->s;
  sender *sd = calloc(1, sizeof *sd);
  if (!sd) return NULL;
  sd->s = s;
  sd->h = h;
  sd->mc = mc;
  sd->chunked = r->chunked || r->sse;
  if (r->sse && r->status == 200) {
    if (!build_sse(r, f, sd)) {
      sender_free(sd);
      return NULL;
    }
    sd->interval_ms = s->opt.stream_interval_ms;
    bk_strv_free(&r->events);
  } else {
    if (f->malformed && r->status == 200 && r->body.len > 0) {
      if (r->is_json) {
        r->body.len = r->body.len / 2; /* half a JSON document */
        r->body.data[r->body.len] = '\0';
      } else { /* binary bodies: spoil the header */
        size_t k = r->body.len < 16 ? r->body.len : 16;
        memset(r->body.data, 'X', k);
      }
    }
    sd->data = aip_buf_steal(&r->body, &sd->len);
    if (!sd->data) {
      sender_free(sd);
      return NULL;
    }
  }
  sd->limit = sd->len;
  if (!r->sse && f->cut != -1 && r->status == 200) {
    sd->limit = sd->len / 2;
    sd->abort_at_end = true;
  }
  if (f->truncate >= 0 && r->status == 200) {
    size_t t = (size_t)f->truncate;
    if (sd->len > 0 && t >= sd->len) t = sd->len - 1;
    if (t < sd->limit) sd->limit = t;
    sd->abort_at_end = true;
  }
  if (f->split > 0) {
    sd->split = (size_t)f->split;
    sd->interval_ms = DEFAULT_SPLIT_INTERVAL_MS;
  }
  if (f->interval_ms >= 0) sd->interval_ms = f->interval_ms;
  return sd;
}

/* The response for sd (which it takes, freed in any case) with r's
 * headers. */
static struct MHD_Response *make_response(sender *sd, const bk_reply *r,
                                          const bk_fault *f) {
  uint64_t size = sd->chunked ? MHD_SIZE_UNKNOWN : (uint64_t)sd->len;
  size_t block = sd->len < WRITE_BLOCK ? sd->len : WRITE_BLOCK;
  if (sd->chunked) block = CHUNKED_BLOCK;
  struct MHD_Response *resp = MHD_create_response_from_callback(
      size, block > 0 ? block : 1, sender_read, sd, sender_free);
  if (!resp) {
    sender_free(sd);
    return NULL;
  }
  MHD_add_response_header(
      resp, MHD_HTTP_HEADER_CONTENT_TYPE,
      r->sse && r->status == 200 ? "text/event-stream" : r->content_type);
  if (r->sse && r->status == 200)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header(resp, "X-Aiplat-Backend",
                          "local development stand-in");
  int ra = f->retry_after >= 0 ? f->retry_after : r->retry_after;
  if (ra >= 0) {
    char v[16];
    snprintf(v, sizeof v, "%d", ra);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
  }
  return resp;
}

/* ---- request handling
 * -------------------------------------------------------- */

static bool authorized(bk_server *s, struct MHD_Connection *mc) {
  if (!s->opt.api_key) return true;
  const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
  h += 7;
  while (*h == ' ') h++;
  /* Compare without an early exit. */
  size_t a = strlen(h), b = strlen(s->opt.api_key);
  unsigned char diff = (unsigned char)(a != b);
  for (size_t i = 0; i < a && i < b; i++)
    diff |= (unsigned char)(h[i] ^ s->opt.api_key[i]);
  return diff == 0;
}

static json_t *parse_json_body(conn *c, bk_reply *r) {
  if (c->too_large) {
    bk_reply_error(r, 413, NULL, "request body is larger than %u bytes",
                   BK_MAX_JSON_BODY);
    return NULL;
  }
  if (c->body.len == 0) {
    bk_reply_error(r, 400, NULL,
                   "request body is empty: expected a JSON object");
    return NULL;
  }
  json_error_t je;
  json_t *j = json_loadb(c->body.data, c->body.len, 0, &je);
  if (!j) {
    bk_reply_error(r, 400, NULL, "invalid JSON body: %s (line %d, column %d)",
                   je.text, je.line, je.column);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    bk_reply_error(r, 400, NULL, "JSON body must be an object");
    return NULL;
  }
  return j;
}

static void handle_form(bk_server *s, conn *c, bool whisper_cpp, bk_reply *r) {
  if (!c->multipart) {
    bk_reply_error(r, 400, "file",
                   "expected a multipart/form-data body (with a boundary) "
                   "holding the audio in a 'file' field");
    return;
  }
  if (c->form.too_large) {
    bk_reply_error(r, 413, "file", "audio file is larger than %u bytes",
                   BK_MAX_AUDIO_BODY);
    return;
  }
  if (c->form.field_too_large) {
    bk_reply_error(r, 400, NULL, "a form field is longer than %d bytes",
                   FORM_FIELD_MAX);
    return;
  }
  if (c->pp_failed) {
    bk_reply_error(r, 400, NULL,
                   "malformed multipart/form-data body (could not parse it "
                   "up to its closing boundary)");
    return;
  }
  bk_handle_transcription(s, &c->form, whisper_cpp, r);
}

static void handle_root(bk_reply *r) {
  r->content_type = "text/plain; charset=utf-8";
  aip_buf_puts(&r->body, BK_HONESTY
               ".\nEndpoints: GET /health, GET /v1/models, POST "
               "/v1/chat/completions, /v1/embeddings, /v1/rerank, /rerank, "
               "/v1/audio/speech, /v1/audio/transcriptions, /inference.\n");
}

static void dispatch(bk_server *s, conn *c, route rt, bk_reply *r) {
  if (rt == R_ROOT) return handle_root(r);
  if (rt == R_HEALTH) {
    if (!atomic_load(&s->ready)) {
      r->retry_after = 1;
      bk_reply_error(r, 503, NULL, "loading models");
      return;
    }
    r->content_type = "text/plain"; /* 200 with an empty body, like vLLM */
    return;
  }
  if (rt == R_MODELS) return bk_handle_models(s, r);
  if (!atomic_load(&s->ready)) {
    r->retry_after = 1;
    bk_reply_error(r, 503, NULL,
                   "the local model backend is still loading its models");
    return;
  }
  if (rt == R_TRANSCRIBE || rt == R_INFERENCE)
    return handle_form(s, c, rt == R_INFERENCE, r);
  json_t *req = parse_json_body(c, r);
  if (!req) return;
  switch (rt) {
    case R_CHAT:
      bk_handle_chat(s, req, r);
      break;
    case R_EMBED:
      bk_handle_embeddings(s, req, r);
      break;
    case R_RERANK:
      bk_handle_rerank(s, req, r);
      break;
    case R_SPEECH:
      bk_handle_speech(s, req, r);
      break;
    default:
      bk_reply_error(r, 404, NULL, "not found");
      break;
  }
  json_decref(req);
}

/* Look at a complete request: false with an error in c->reply when it is
 * refused (route, method, key, fault specification); else c->fault_spec
 * holds its faults, a fail_first key consumed. */
static bool admit(bk_server *s, struct MHD_Connection *mc, conn *c) {
  bk_reply *r = &c->reply;
  char err[256];
  if (c->route_i < 0) {
    bk_reply_error(r, 404, NULL, "no such endpoint: %s %s", c->method, c->path);
    return false;
  }
  if (routes[c->route_i].post != (strcmp(c->method, "POST") == 0) &&
      !(strcmp(c->method, "HEAD") == 0 && !routes[c->route_i].post)) {
    bk_reply_error(r, 405, NULL, "method %s is not allowed on %s", c->method,
                   c->path);
    return false;
  }
  if (routes[c->route_i].r != R_HEALTH && routes[c->route_i].r != R_ROOT &&
      !authorized(s, mc)) {
    bk_reply_error(r, 401, NULL,
                   "missing or wrong API key (Authorization: Bearer KEY)");
    return false;
  }
  if (!read_faults(mc, c, &c->fault_spec, err, sizeof err)) {
    bk_reply_error(r, 400, FAULT_HEADER, "%s", err);
    bk_fault_init(&c->fault_spec);
    return false;
  }
  bk_fault *f = &c->fault_spec;
  if (f->fail_first > 0) {
    if (!bk_oneshot_take(s->oneshot, f->key, f->fail_first)) {
      bk_fault_init(f); /* past the first N: no fault */
    } else if (!bk_fault_has_failure(f)) {
      f->status = 503;
    }
  }
  return true;
}

static bk_pool *pool_for(bk_http *h, route rt) {
  switch (rt) {
    case R_CHAT:
    case R_EMBED:
    case R_RERANK:
      return h->text;
    case R_SPEECH:
    case R_TRANSCRIBE:
    case R_INFERENCE:
      return h->audio;
    default:
      return NULL; /* cheap: answered on the loop thread */
  }
}

static void conn_suspend(void *arg) {
  conn *c = arg;
  MHD_suspend_connection(c->mc);
}

static void conn_resume(void *arg) {
  conn *c = arg;
  resume(c->h, c->mc);
}

/* Turn c->reply into the bytes to send. */
static void prepare(conn *c) {
  c->sd = sender_make(c->h, c->mc, &c->reply, &c->fault_spec);
  c->prepared = true;
}

/* Answer into c->reply and prepare it; the request body is not needed
 * after that (a stream may stay open for long). */
static void run_handler(bk_server *s, conn *c) {
  dispatch(s, c, routes[c->route_i].r, &c->reply);
  aip_buf_free(&c->body);
  bk_form_free(&c->form);
  prepare(c);
}

/* On a worker: answer, then hand the connection back to the loop
 * thread, which sends the reply (CS_DONE). */
static void conn_work(void *arg) {
  conn *c = arg;
  bk_server *s = c->h->s;
  if (atomic_load(&s->stopping))
    bk_reply_error(&c->reply, 503, NULL, "the backend is shutting down");
  else
    run_handler(s, c);
  c->state = CS_DONE;
  resume(c->h, c->mc);
}

static enum MHD_Result send_reply(struct MHD_Connection *mc, conn *c) {
  c->status = c->reply.status;
  if (!c->prepared) prepare(c);
  sender *sd = c->sd;
  c->sd = NULL;
  struct MHD_Response *resp =
      sd ? make_response(sd, &c->reply, &c->fault_spec) : NULL;
  bk_reply_free(&c->reply);
  if (!resp) return MHD_NO;
  enum MHD_Result ret = MHD_queue_response(mc, c->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Called when the request is complete, and again after each resume. */
static enum MHD_Result answer(bk_http *h, struct MHD_Connection *mc, conn *c) {
  bk_server *s = h->s;
  if (c->state == CS_NEW) {
    c->state = CS_READY;
    if (!admit(s, mc, c)) {
      c->state = CS_DONE;
    } else if (c->fault_spec.delay_ms > 0 &&
               bk_timer_at(h->timer, aip_now_ms() + c->fault_spec.delay_ms,
                           conn_suspend, conn_resume, c)) {
      return MHD_YES; /* resumed when the delay is over */
    }
  }
  if (c->state == CS_READY) {
    const bk_fault *f = &c->fault_spec;
    route rt = routes[c->route_i].r;
    bk_pool *pool = pool_for(h, rt);
    c->state = CS_DONE;
    if (atomic_load(&s->stopping)) {
      bk_reply_error(&c->reply, 503, NULL, "the backend is shutting down");
    } else if (f->status) {
      bk_reply_error(&c->reply, (unsigned)f->status, NULL,
                     "injected fault: status %d (%s: %s)", f->status,
                     FAULT_HEADER, c->fault[0] ? c->fault : "query string");
    } else if (!pool) {
      run_handler(s, c);
    } else {
      c->state = CS_WORKING;
      c->job.run = conn_work;
      c->job.arg = c;
      if (bk_pool_submit(pool, &c->job, conn_suspend))
        return MHD_YES; /* resumed by the worker */
      c->state = CS_DONE;
      bk_reply_error(&c->reply, 503, NULL, "the backend is shutting down");
    }
  }
  if (c->state != CS_DONE) return MHD_NO; /* not reached: suspended */
  return send_reply(mc, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  bk_http *h = cls;
  conn *c = *con_cls;
  (void)version;
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) return MHD_NO;
    c->h = h;
    c->mc = mc;
    bk_reply_init(&c->reply);
    bk_fault_init(&c->fault_spec);
    c->t0 = aip_now_ms();
    c->route_i = find_route(url);
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->path, sizeof c->path, "%s", url);
    *con_cls = c;
    if (c->route_i >= 0 && strcmp(method, "POST") == 0 &&
        (routes[c->route_i].r == R_TRANSCRIBE ||
         routes[c->route_i].r == R_INFERENCE)) {
      const char *ct = MHD_lookup_connection_value(
          mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
      if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        c->pp =
            MHD_create_post_processor(mc, POST_BUFFER, on_post_field, &c->form);
        c->multipart = c->pp != NULL;
      }
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (c->pp) {
      if (!c->pp_failed && !c->form.too_large &&
          MHD_post_process(c->pp, upload, *upload_size) != MHD_YES)
        c->pp_failed = true;
    } else if (!c->too_large) {
      if (c->body.len + *upload_size > BK_MAX_JSON_BODY) {
        c->too_large = true;
        aip_buf_free(&c->body);
      } else if (!aip_buf_append(&c->body, upload, *upload_size)) {
        return MHD_NO;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (c->pp) {
    /* MHD_NO here means the body ended before its closing boundary. */
    if (MHD_destroy_post_processor(c->pp) != MHD_YES) c->pp_failed = true;
    c->pp = NULL;
  }
  return answer(h, mc, c);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)mc;
  conn *c = *con_cls;
  if (!c) return;
  char status[8], ms[24];
  snprintf(status, sizeof status, "%u", c->status);
  snprintf(ms, sizeof ms, "%" PRId64, aip_now_ms() - c->t0);
  const char *end = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
                    : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT
                        ? "client_abort"
                    : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                    : "closed";
  if (c->fault[0])
    aip_log_kv(AIPLAT_LOG_INFO, "request", "method", c->method, "path", c->path,
               "status", status, "duration_ms", ms, "end", end, "fault",
               c->fault, (const char *)NULL);
  else
    aip_log_kv(AIPLAT_LOG_INFO, "request", "method", c->method, "path", c->path,
               "status", status, "duration_ms", ms, "end", end,
               (const char *)NULL);
  conn_free(c);
  *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  /* Closing after an application error is how injected truncations and
   * cuts end: not worth a warning. */
  aiplat_log_level lv = strstr(msg, "application error generating response")
                            ? AIPLAT_LOG_DEBUG
                            : AIPLAT_LOG_WARNING;
  aip_log_kv(lv, "libmicrohttpd", "detail", msg, (const char *)NULL);
}

/* ---- the daemon -------------------------------------------------------------
 */

/* Connections the descriptor limit leaves room for, at most
 * MAX_CONNECTIONS (main raises the soft limit to the hard one). */
static unsigned connection_cap(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return MAX_CONNECTIONS;
  if (rl.rlim_cur <= (rlim_t)SPARE_FDS * 2) return SPARE_FDS;
  rlim_t n = rl.rlim_cur - SPARE_FDS;
  return n < MAX_CONNECTIONS ? (unsigned)n : MAX_CONNECTIONS;
}

/* The event loop. MHD's own polling thread is not used: in libmicrohttpd
 * 0.9.75 it can sleep until the next connection timeout (minutes) with
 * connections ready to be processed, when one wait returned a full batch of
 * events (128) and the next finds none. Here MHD only runs without waiting
 * (MHD_run), and this thread waits for its descriptor instead. */
static void *loop_main(void *arg) {
  bk_http *h = arg;
  struct pollfd pf[2] = {{h->epoll_fd, POLLIN, 0}, {h->wake_fd, POLLIN, 0}};
  while (!atomic_load(&h->loop_stop)) {
    MHD_UNSIGNED_LONG_LONG to = 0;
    int ms = -1; /* no connection has a deadline */
    if (MHD_get_timeout(h->d, &to) == MHD_YES)
      ms = to < (MHD_UNSIGNED_LONG_LONG)INT_MAX ? (int)to : INT_MAX;
    if (poll(pf, 2, ms) < 0 && errno != EINTR) {
      aip_log_kv(AIPLAT_LOG_ERROR, "event loop: poll failed", "error",
                 strerror(errno), (const char *)NULL);
      break;
    }
    atomic_store(&h->kicked, false);
    uint64_t n;
    if (read(h->wake_fd, &n, sizeof n) < 0) {
      /* EAGAIN: no resume since the last pass */
    }
    MHD_run(h->d);
  }
  return NULL;
}

static void loop_end(bk_http *h) {
  if (!h->loop_started) return;
  atomic_store(&h->loop_stop, true);
  atomic_store(&h->kicked, false);
  uint64_t one = 1;
  if (write(h->wake_fd, &one, sizeof one) < 0) {
    /* the counter is full: the loop is already woken */
  }
  pthread_join(h->loop, NULL);
  h->loop_started = false;
}

static void http_free(bk_http *h) {
  if (h->d) {
    /* Resume everything suspended while the loop still runs: closing the
     * pools answers their queued requests, closing the timer fires every
     * pending wait. No connection is then suspended when MHD stops (it
     * requires that); the ones resumed last are closed by MHD itself. */
    bk_pool_close(h->text);
    bk_pool_close(h->audio);
    bk_timer_close(h->timer);
    loop_end(h);
    MHD_stop_daemon(h->d);
  }
  bk_pool_destroy(h->text);
  bk_pool_destroy(h->audio);
  bk_timer_destroy(h->timer);
  if (h->wake_fd >= 0) close(h->wake_fd);
  free(h);
}

bk_http *bk_http_start(bk_server *s, char *err, size_t errlen, int *bound) {
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[8];
  snprintf(port, sizeof port, "%d", s->opt.port);
  int rc = getaddrinfo(s->opt.host, port, &hints, &ai);
  if (rc != 0 || !ai) {
    snprintf(err, errlen, "cannot resolve --host %s: %s", s->opt.host,
             gai_strerror(rc));
    return NULL;
  }
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  bk_http *h = calloc(1, sizeof *h);
  if (h) {
    h->s = s;
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    h->timer = bk_timer_create();
    h->text = bk_pool_create(s->opt.workers);
    h->audio = bk_pool_create((s->opt.no_stt ? 0 : s->opt.stt_decoders) + 1);
  }
  if (!h || h->wake_fd < 0 || !h->timer || !h->text || !h->audio) {
    freeaddrinfo(ai);
    if (h) http_free(h);
    snprintf(err, errlen, "cannot start threads (out of memory?)");
    return NULL;
  }
  h->max_connections = connection_cap();
  h->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_CONNECTION_LIMIT,
      h->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)CONNECTION_MEMORY, MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)LISTEN_BACKLOG, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!h->d) {
    http_free(h);
    snprintf(err, errlen, "cannot listen on %s:%d (address in use?)",
             s->opt.host, s->opt.port);
    return NULL;
  }
  const union MHD_DaemonInfo *ep =
      MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
  h->epoll_fd = ep ? ep->epoll_fd : -1;
  if (h->epoll_fd < 0 || pthread_create(&h->loop, NULL, loop_main, h) != 0) {
    http_free(h);
    snprintf(err, errlen, "cannot start the event loop");
    return NULL;
  }
  h->loop_started = true;
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
  struct sockaddr_storage ss = {0};
  socklen_t sl = sizeof ss;
  *bound = s->opt.port;
  if (info && getsockname(info->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      *bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return h;
}

unsigned bk_http_max_connections(const bk_http *h) {
  return h->max_connections;
}

void bk_http_stop(bk_http *h) {
  if (!h) return;
  http_free(h);
}
