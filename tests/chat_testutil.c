/* See chat_testutil.h. */
#include "chat_testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

/* ---- the knowledge base ----------------------------------------------------
 */

size_t ct_ingest_knowledge(const char *store_path, const char *embeddings_url) {
  const char *src = getenv("top_srcdir");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/examples/knowledge", src ? src : ".");
  return ct_ingest_dir(dir, store_path, embeddings_url);
}

/* Through the RAG API, as `aiplat-rag ingest DIR` does. */
size_t ct_ingest_dir(const char *dir, const char *store_path,
                     const char *embeddings_url) {
  aiplat_config *cfg = NULL;
  aiplat_rag *rag = NULL;
  size_t total = 0;
  DIR *d = NULL;
  if (aiplat_config_create(&cfg) != AIPLAT_OK ||
      aiplat_config_set(cfg, "EMBEDDINGS_URL", embeddings_url) != AIPLAT_OK ||
      aiplat_config_set(cfg, "VECTOR_STORE", "local") != AIPLAT_OK ||
      aiplat_config_set(cfg, "VECTOR_STORE_PATH", store_path) != AIPLAT_OK ||
      aiplat_rag_create(&rag, cfg) != AIPLAT_OK || !(d = opendir(dir))) {
    char err[512];
    aiplat_error_last(err, sizeof err);
    fprintf(stderr, "ingest: %s\n", err);
    goto out;
  }
  for (struct dirent *e; (e = readdir(d));) {
    size_t l = strlen(e->d_name), n = 0;
    if (l < 4 || strcmp(e->d_name + l - 3, ".md") != 0) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (aiplat_rag_ingest_file(rag, path, NULL, &n, NULL) != AIPLAT_OK) {
      char err[512];
      aiplat_rag_last_error(rag, err, sizeof err);
      fprintf(stderr, "ingest %s: %s\n", path, err);
      total = 0;
      break;
    }
    total += n;
  }
out:
  if (d) closedir(d);
  aiplat_rag_destroy(rag);
  aiplat_config_destroy(cfg);
  return total;
}

/* ---- requests
 * ---------------------------------------------------------------- */

ct_chat ct_chat_init(const char *user_id, const char *message,
                     const char *request_id) {
  return (ct_chat){.user_id = user_id,
                   .message = message,
                   .request_id = request_id,
                   .enable_rag = -1,
                   .temperature = -1,
                   .max_tokens = -1,
                   .top_k = -1};
}

uint8_t *ct_chat_bytes(const ct_chat *c, size_t *len) {
  aiplat_msg *m = NULL;
  uint8_t *out = NULL;
  if (aiplat_msg_create(&m, AIPLAT_MSG_CHAT_REQUEST) != AIPLAT_OK) return NULL;
  const char *names[] = {"user_id", "message", "request_id", "conversation_id",
                         "model"};
  const char *vals[] = {c->user_id, c->message, c->request_id,
                        c->conversation_id, c->model};
  bool ok = true;
  for (size_t i = 0; ok && i < 5; i++)
    if (vals[i]) ok = aiplat_msg_set_string(m, names[i], vals[i]) == AIPLAT_OK;
  if (ok && c->enable_rag >= 0)
    ok = !aiplat_msg_set_bool(m, "enable_rag", c->enable_rag != 0);
  if (ok && c->stream) ok = !aiplat_msg_set_bool(m, "stream", true);
  if (ok && c->temperature >= 0)
    ok = !aiplat_msg_set_double(m, "temperature", c->temperature);
  if (ok && c->max_tokens >= 0)
    ok = !aiplat_msg_set_int64(m, "max_tokens", c->max_tokens);
  if (ok && c->top_k >= 0) ok = !aiplat_msg_set_int64(m, "top_k", c->top_k);
  if (ok && aiplat_msg_encode(m, &out, len) != AIPLAT_OK) out = NULL;
  aiplat_msg_destroy(m);
  return out;
}

/* ---- collecting
 * -------------------------------------------------------------- */

static void on_msg(aiplat_bus_msg *msg, void *ud) {
  ct_collector *c = ud;
  const char *type = NULL;
  if (aiplat_bus_msg_header(msg, AIPLAT_CHAT_TYPE_HEADER, &type) != AIPLAT_OK)
    type = NULL;
  ct_got g = {type ? strdup(type) : NULL, malloc(aiplat_bus_msg_len(msg) + 1),
              aiplat_bus_msg_len(msg)};
  if (g.data) memcpy(g.data, aiplat_bus_msg_data(msg), g.len);
  pthread_mutex_lock(&c->mu);
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->v = realloc(c->v, c->cap * sizeof *c->v);
  }
  c->v[c->n++] = g;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

bool ct_collect(ct_collector *c, aiplat_bus *bus, const char *subject) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  return aiplat_bus_subscribe(bus, subject, NULL, on_msg, c, &c->sub) ==
             AIPLAT_OK &&
         aiplat_bus_flush(bus, 5000) == AIPLAT_OK;
}

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

bool ct_wait(ct_collector *c, size_t n, int timeout_ms) {
  struct timespec ts;
  deadline_in(&ts, timeout_ms);
  pthread_mutex_lock(&c->mu);
  while (c->n < n && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0) {
  }
  bool ok = c->n >= n;
  pthread_mutex_unlock(&c->mu);
  return ok;
}

long ct_wait_type(ct_collector *c, const char *type, int timeout_ms) {
  struct timespec ts;
  deadline_in(&ts, timeout_ms);
  pthread_mutex_lock(&c->mu);
  long found = -1;
  for (size_t i = 0;;) {
    for (; i < c->n && found < 0; i++)
      if (c->v[i].type && !strcmp(c->v[i].type, type)) found = (long)i;
    if (found >= 0 || pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0) break;
  }
  pthread_mutex_unlock(&c->mu);
  return found;
}

void ct_collector_free(ct_collector *c) {
  aiplat_bus_sub_destroy(c->sub);
  for (size_t i = 0; i < c->n; i++) free(c->v[i].type), free(c->v[i].data);
  free(c->v);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

aiplat_bus *ct_bus(const char *url) {
  aiplat_config *cfg = NULL;
  aiplat_bus *bus = NULL;
  if (aiplat_config_create(&cfg) == AIPLAT_OK &&
      aiplat_config_set(cfg, "NATS_URL", url) == 0 &&
      aiplat_bus_create(&bus, cfg) == AIPLAT_OK &&
      aiplat_bus_connect(bus) != AIPLAT_OK) {
    aiplat_bus_destroy(bus);
    bus = NULL;
  }
  aiplat_config_destroy(cfg);
  return bus;
}

aiplat_msg *ct_request(aiplat_bus *bus, const char *subject, const void *data,
                       size_t len, aiplat_msg_type type, int timeout_ms,
                       aiplat_status *st) {
  aiplat_bus_msg *reply = NULL;
  aiplat_msg *m = NULL;
  *st = aiplat_bus_request(bus, subject, data, len, NULL, timeout_ms, &reply);
  if (*st == AIPLAT_OK &&
      aiplat_msg_decode(&m, type, aiplat_bus_msg_data(reply),
                        aiplat_bus_msg_len(reply)) != 0)
    m = NULL;
  aiplat_bus_msg_destroy(reply);
  return m;
}

int64_t ct_error(aiplat_msg *reply, const char **message) {
  aiplat_msg *e = NULL;
  int64_t code = 0;
  if (message) *message = "";
  if (aiplat_msg_get_message(reply, "error", &e) != AIPLAT_OK || !e) return 0;
  aiplat_msg_get_int64(e, "code", &code);
  if (message) aiplat_msg_get_string(e, "message", message);
  return code;
}
