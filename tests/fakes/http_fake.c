/* Scriptable loopback HTTP server for the client tests (see http_fake.h). */
#include "fakes/http_fake.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef struct scripted {
  struct scripted *next;
  hf_response r; /* strings below are owned copies */
  char *body;
  char *ctype;
  char *headers[HF_MAX_HEADERS];
} scripted;

struct hf_server {
  struct MHD_Daemon *d;
  int port;
  char url[64];
  pthread_mutex_t mu;
  pthread_cond_t cv; /* requests arrived, or stopping */
  bool stopping;
  scripted *head, *tail;
  hf_handler handler;
  void *handler_ud;
  hf_request **reqs;
  size_t nreqs, cap;
  unsigned long conns;
  unsigned long closed;
};

typedef struct req_ctx {
  hf_request *req;
  struct MHD_PostProcessor *pp;
} req_ctx;

typedef struct body_ctx {
  hf_server *s;
  scripted *sc; /* owned */
  size_t len;
  size_t ends[HF_MAX_SPLITS + 1];
  size_t nends;
  size_t piece;
  long delayed_piece;
} body_ctx;

hf_response hf_resp(int status, const char *content_type, const char *body) {
  hf_response r;
  memset(&r, 0, sizeof r);
  r.status = status;
  r.content_type = content_type;
  r.body = body;
  return r;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static scripted *copy_response(const hf_response *r) {
  scripted *sc = calloc(1, sizeof *sc);
  sc->r = *r;
  size_t len = r->body ? (r->body_len ? r->body_len : strlen(r->body)) : 0;
  sc->body = malloc(len + 1);
  if (len) memcpy(sc->body, r->body, len);
  sc->body[len] = '\0';
  sc->r.body = sc->body;
  sc->r.body_len = len;
  sc->ctype = dup_or_null(r->content_type);
  sc->r.content_type = sc->ctype;
  for (int i = 0; i < HF_MAX_HEADERS; i++) {
    sc->headers[i] = dup_or_null(r->headers[i]);
    sc->r.headers[i] = sc->headers[i];
  }
  if (sc->r.status == 0) sc->r.status = 500;
  return sc;
}

static void free_scripted(scripted *sc) {
  if (!sc) return;
  free(sc->body);
  free(sc->ctype);
  for (int i = 0; i < HF_MAX_HEADERS; i++) free(sc->headers[i]);
  free(sc);
}

static void free_request(hf_request *r) {
  if (!r) return;
  free(r->method);
  free(r->path);
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  free(r->body);
  for (size_t i = 0; i < r->nparts; i++) {
    free(r->parts[i].name);
    free(r->parts[i].filename);
    free(r->parts[i].type);
    free(r->parts[i].data);
  }
  free(r->parts);
  free(r);
}

/* CLOCK_REALTIME @ms from now, for pthread_cond_timedwait. */
static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Sleep @ms unless the server stops; false when stopping. */
static bool nap(hf_server *s, int ms) {
  struct timespec ts;
  deadline_in(&ts, ms);
  pthread_mutex_lock(&s->mu);
  while (!s->stopping)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
  bool ok = !s->stopping;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static void wait_stop(hf_server *s) {
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

/* ---- body reader ------------------------------------------------------------
 */

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  body_ctx *b = cls;
  const hf_response *r = &b->sc->r;
  if (pos >= b->len) {
    if (r->hang_after_body) {
      wait_stop(b->s);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  if (r->cut && pos >= r->cut_at) return MHD_CONTENT_READER_END_WITH_ERROR;
  while (b->piece < b->nends && b->ends[b->piece] <= pos) b->piece++;
  size_t start = b->piece == 0 ? 0 : b->ends[b->piece - 1];
  if (pos > 0 && pos == start && (long)b->piece != b->delayed_piece &&
      r->piece_delay_ms > 0) {
    b->delayed_piece = (long)b->piece;
    if (!nap(b->s, r->piece_delay_ms)) return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  size_t end = b->ends[b->piece];
  if (r->cut && end > r->cut_at) end = r->cut_at;
  size_t n = end - pos;
  if (n > max) n = max;
  memcpy(buf, b->sc->body + pos, n);
  return (ssize_t)n;
}

static void reader_free(void *cls) {
  body_ctx *b = cls;
  free_scripted(b->sc);
  free(b);
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static enum MHD_Result send_response(hf_server *s, struct MHD_Connection *conn,
                                     scripted *sc) {
  hf_response *r = &sc->r;
  if (r->hang) {
    wait_stop(s);
    free_scripted(sc);
    return MHD_NO;
  }
  if (r->delay_ms > 0 && !nap(s, r->delay_ms)) {
    free_scripted(sc);
    return MHD_NO;
  }
  body_ctx *b = calloc(1, sizeof *b);
  b->s = s;
  b->sc = sc;
  b->len = r->body_len;
  b->delayed_piece = -1;
  if (r->split_every > 0) {
    for (size_t off = r->split_every; off < b->len && b->nends < HF_MAX_SPLITS;
         off += r->split_every)
      b->ends[b->nends++] = off;
  } else {
    for (size_t i = 0; i < r->nsplits && i < HF_MAX_SPLITS; i++)
      if (r->splits[i] > 0 && r->splits[i] < b->len)
        b->ends[b->nends++] = r->splits[i];
    qsort(b->ends, b->nends, sizeof b->ends[0], cmp_size);
  }
  b->ends[b->nends++] = b->len;
  bool unknown = r->chunked || r->hang_after_body;
  struct MHD_Response *resp = MHD_create_response_from_callback(
      unknown ? MHD_SIZE_UNKNOWN : b->len, 4096, reader, b, reader_free);
  if (!resp) {
    reader_free(b);
    return MHD_NO;
  }
  if (r->content_type)
    MHD_add_response_header(resp, "Content-Type", r->content_type);
  for (int i = 0; i < HF_MAX_HEADERS; i++) {
    const char *h = r->headers[i];
    const char *colon = h ? strchr(h, ':') : NULL;
    if (!colon) continue;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(colon - h), h);
    const char *v = colon + 1;
    while (*v == ' ') v++;
    MHD_add_response_header(resp, name, v);
  }
  enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ---- request ----------------------------------------------------------------
 */

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value) {
  (void)kind;
  hf_request *r = cls;
  r->headers = realloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
  char *name = strdup(key);
  for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);
  r->headers[r->nheaders].name = name;
  r->headers[r->nheaders].value = strdup(value ? value : "");
  r->nheaders++;
  return MHD_YES;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *filename,
                               const char *content_type,
                               const char *transfer_encoding, const char *data,
                               uint64_t off, size_t size) {
  (void)kind;
  (void)transfer_encoding;
  hf_request *r = cls;
  hf_part *p = r->nparts ? &r->parts[r->nparts - 1] : NULL;
  if (!p || off == 0 || strcmp(p->name, key) != 0) {
    r->parts = realloc(r->parts, (r->nparts + 1) * sizeof *r->parts);
    p = &r->parts[r->nparts++];
    memset(p, 0, sizeof *p);
    p->name = strdup(key);
    p->filename = dup_or_null(filename);
    p->type = dup_or_null(content_type);
  }
  p->data = realloc(p->data, p->len + size + 1);
  if (size) memcpy(p->data + p->len, data, size);
  p->len += size;
  p->data[p->len] = '\0';
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  hf_server *s = cls;
  req_ctx *x = *con_cls;
  if (!x) {
    x = calloc(1, sizeof *x);
    x->req = calloc(1, sizeof *x->req);
    x->req->method = strdup(method);
    x->req->path = strdup(url);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    x->req->conn_id = ci ? (unsigned long)(uintptr_t)ci->socket_context : 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, on_header, x->req);
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0)
      x->pp = MHD_create_post_processor(conn, 65536, on_part, x->req);
    *con_cls = x;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    hf_request *r = x->req;
    r->body = realloc(r->body, r->body_len + *upload_size + 1);
    memcpy(r->body + r->body_len, upload, *upload_size);
    r->body_len += *upload_size;
    r->body[r->body_len] = '\0';
    if (x->pp) MHD_post_process(x->pp, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (x->pp) {
    MHD_destroy_post_processor(x->pp);
    x->pp = NULL;
  }
  hf_request *req = x->req;
  x->req = NULL;
  if (!req->body) req->body = calloc(1, 1);
  pthread_mutex_lock(&s->mu);
  if (s->nreqs == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->reqs = realloc(s->reqs, s->cap * sizeof *s->reqs);
  }
  s->reqs[s->nreqs++] = req;
  scripted *sc = s->head;
  if (sc) {
    s->head = sc->next;
    if (!s->head) s->tail = NULL;
  }
  hf_handler fn = s->handler;
  void *ud = s->handler_ud;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (!sc) {
    hf_response r =
        hf_resp(500, "application/json",
                "{\"error\":{\"message\":\"no response scripted\"}}");
    if (fn) {
      r = hf_resp(0, NULL, NULL);
      fn(req, &r, ud);
    }
    sc = copy_response(&r);
  }
  return send_response(s, conn, sc);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  req_ctx *x = *con_cls;
  if (!x) return;
  if (x->pp) MHD_destroy_post_processor(x->pp);
  free_request(x->req);
  free(x);
  *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  (void)conn;
  hf_server *s = cls;
  pthread_mutex_lock(&s->mu);
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    *socket_context = (void *)(uintptr_t)++s->conns;
  } else {
    s->closed++;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
}

/* ---- server -----------------------------------------------------------------
 */

hf_server *hf_start(void) {
  return hf_start_tls(NULL, NULL);
}

hf_server *hf_start_tls(const char *cert_pem, const char *key_pem) {
  hf_server *s = calloc(1, sizeof *s);
  bool tls = cert_pem && key_pem;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags =
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
  if (tls)
    s->d =
        MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, s,
                         MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                         on_connection, s, MHD_OPTION_HTTPS_MEM_KEY, key_pem,
                         MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
  else
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
  if (!s->d) {
    fprintf(stderr, "http_fake: cannot start libmicrohttpd\n");
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
  }
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : 0;
  snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", tls ? "https" : "http",
           s->port);
  return s;
}

void hf_stop(hf_server *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  MHD_stop_daemon(s->d);
  while (s->head) {
    scripted *n = s->head->next;
    free_scripted(s->head);
    s->head = n;
  }
  for (size_t i = 0; i < s->nreqs; i++) free_request(s->reqs[i]);
  free(s->reqs);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int hf_port(const hf_server *s) {
  return s->port;
}
const char *hf_url(const hf_server *s) {
  return s->url;
}

void hf_push(hf_server *s, const hf_response *r) {
  scripted *sc = copy_response(r);
  pthread_mutex_lock(&s->mu);
  if (s->tail)
    s->tail->next = sc;
  else
    s->head = sc;
  s->tail = sc;
  pthread_mutex_unlock(&s->mu);
}

void hf_set_handler(hf_server *s, hf_handler fn, void *ud) {
  pthread_mutex_lock(&s->mu);
  s->handler = fn;
  s->handler_ud = ud;
  pthread_mutex_unlock(&s->mu);
}

size_t hf_request_count(hf_server *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->nreqs;
  pthread_mutex_unlock(&s->mu);
  return n;
}

const hf_request *hf_request_at(hf_server *s, size_t i) {
  pthread_mutex_lock(&s->mu);
  const hf_request *r = i < s->nreqs ? s->reqs[i] : NULL;
  pthread_mutex_unlock(&s->mu);
  return r;
}

unsigned long hf_connection_count(hf_server *s) {
  pthread_mutex_lock(&s->mu);
  unsigned long n = s->conns;
  pthread_mutex_unlock(&s->mu);
  return n;
}

unsigned long hf_closed_count(hf_server *s) {
  pthread_mutex_lock(&s->mu);
  unsigned long n = s->closed;
  pthread_mutex_unlock(&s->mu);
  return n;
}

bool hf_wait_closed(hf_server *s, unsigned long n, int ms) {
  struct timespec ts;
  deadline_in(&ts, ms);
  pthread_mutex_lock(&s->mu);
  while (s->closed < n)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
  bool ok = s->closed >= n;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

bool hf_wait_requests(hf_server *s, size_t n, int ms) {
  struct timespec ts;
  deadline_in(&ts, ms);
  pthread_mutex_lock(&s->mu);
  while (s->nreqs < n)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
  bool ok = s->nreqs >= n;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

const char *hf_header_get(const hf_request *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}

const hf_part *hf_part_get(const hf_request *r, const char *name) {
  for (size_t i = 0; i < r->nparts; i++)
    if (strcmp(r->parts[i].name, name) == 0) return &r->parts[i];
  return NULL;
}
