/* Conversation history in a JetStream Key-Value bucket.
 *
 * One key per (user, conversation): base64url(user_id) "." base64url(
 * conversation_id), so that two users never share a history whatever ids
 * they choose, and any token is a valid key. The value is JSON:
 * {"turns":[{"user":"...","assistant":"..."}, ...]}, oldest first, at most
 * CHAT_HISTORY_TURNS turns and AIP_CHAT_HISTORY_MAX_BYTES bytes. The
 * bucket's max age (CHAT_HISTORY_TTL) expires a conversation that was not
 * continued: every turn rewrites the value, so the age counts from the last
 * turn. Reads and writes never block: they are the asynchronous Key-Value
 * calls of lib/bus_internal.h, whose ends run on the execution core's loop
 * thread; the blocking forms wait for those. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "chat_internal.h"
#include "config.h"

/* Well below nats-server's default max_payload (1 MB). */
#define AIP_CHAT_HISTORY_MAX_BYTES (256u * 1024u)

struct aip_chat_history {
  char *bucket;
  int max_turns;
  aip_akv *kv; /* the bucket is created by its first use */
};

aiplat_status aip_chat_history_create(aip_chat_history **out, aiplat_bus *bus,
                                      const char *bucket, int64_t ttl_ms,
                                      int max_turns) {
  aip_chat_history *h = calloc(1, sizeof *h);
  if (!h || !(h->bucket = strdup(bucket))) {
    free(h);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  }
  h->max_turns = max_turns;
  aiplat_status st = aip_akv_create(&h->kv, bus, bucket, ttl_ms, 1);
  if (st) {
    free(h->bucket);
    free(h);
    return st;
  }
  *out = h;
  return AIPLAT_OK;
}

void aip_chat_history_destroy(aip_chat_history *h) {
  if (!h) return;
  aip_akv_destroy(h->kv);
  free(h->bucket);
  free(h);
}

static void b64url(aip_buf *b, const char *s) {
  static const char al[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    aip_buf_putc(b, al[(v >> 18) & 63]);
    aip_buf_putc(b, al[(v >> 12) & 63]);
    if (i + 1 < n) aip_buf_putc(b, al[(v >> 6) & 63]);
    if (i + 2 < n) aip_buf_putc(b, al[v & 63]);
  }
}

char *aip_chat_history_key(const char *user_id, const char *conversation_id) {
  aip_buf b = {0};
  /* "_" alone is never the encoding of a non-empty id (lengths 2, 3 or 4k). */
  if (user_id && *user_id)
    b64url(&b, user_id);
  else
    aip_buf_putc(&b, '_');
  aip_buf_putc(&b, '.');
  b64url(&b, conversation_id);
  if (!aip_buf_putc(&b, '\0')) {
    aip_buf_free(&b);
    return NULL;
  }
  return aip_buf_steal(&b, NULL);
}

void aip_chat_turns_free(aip_chat_turn *t, size_t n) {
  for (size_t i = 0; t && i < n; i++) {
    free(t[i].user);
    free(t[i].assistant);
  }
  free(t);
}

/* The turns of a stored value, the newest max_turns of them. */
static aiplat_status decode(aip_chat_history *h, const void *data, size_t len,
                            aip_chat_turn **turns, size_t *n) {
  *turns = NULL;
  *n = 0;
  json_error_t jerr;
  json_t *root = json_loadb(data, len, 0, &jerr);
  json_t *arr = json_object_get(root, "turns");
  if (!json_is_array(arr)) {
    /* A value this code did not write: start the conversation afresh. */
    aip_log_kv(AIPLAT_LOG_WARNING, "conversation history unreadable; ignored",
               "bucket", h->bucket, NULL);
    json_decref(root);
    return AIPLAT_OK;
  }
  size_t cnt = json_array_size(arr);
  aip_chat_turn *t = calloc(cnt ? cnt : 1, sizeof *t);
  if (!t) {
    json_decref(root);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
  }
  size_t k = 0;
  for (size_t i = 0; i < cnt; i++) {
    json_t *e = json_array_get(arr, i);
    const char *u = json_string_value(json_object_get(e, "user"));
    const char *a = json_string_value(json_object_get(e, "assistant"));
    if (!u || !a) continue;
    t[k].user = strdup(u);
    t[k].assistant = strdup(a);
    k++;
    if (!t[k - 1].user || !t[k - 1].assistant) {
      aip_chat_turns_free(t, k);
      json_decref(root);
      return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
    }
  }
  json_decref(root);
  /* Keep the newest max_turns (the setting may have been lowered). */
  size_t keep = (size_t)h->max_turns;
  if (k > keep) {
    size_t drop = k - keep;
    for (size_t i = 0; i < drop; i++) free(t[i].user), free(t[i].assistant);
    memmove(t, t + drop, keep * sizeof *t);
    k = keep;
  }
  *turns = t;
  *n = k;
  return AIPLAT_OK;
}

typedef struct hist_call {
  aip_chat_history *h;
  aip_chat_loaded_fn loaded;
  aip_chat_saved_fn saved;
  void *ud;
} hist_call;

static void on_got(aiplat_status st, const char *why, void *data, size_t len,
                   uint64_t rev, void *ud) {
  (void)rev;
  hist_call *x = ud;
  aip_chat_turn *turns = NULL;
  size_t n = 0;
  char msg[AIP_ERRMSG_MAX] = "";
  if (st == AIPLAT_ERR_NOT_FOUND) {
    st = AIPLAT_OK; /* a new conversation */
  } else if (st) {
    snprintf(msg, sizeof msg, "history: cannot read: %s", why);
    st = AIPLAT_ERR_UNAVAILABLE;
  } else if ((st = decode(x->h, data, len, &turns, &n)) != AIPLAT_OK) {
    snprintf(msg, sizeof msg, "%s", aip_thread_errmsg());
  }
  free(data);
  x->loaded(st, msg, turns, n, x->ud);
  free(x);
}

aiplat_status aip_chat_history_load_async(aip_chat_history *h, const char *key,
                                          int64_t deadline_ms,
                                          aip_chat_loaded_fn done, void *ud) {
  hist_call *x = calloc(1, sizeof *x);
  if (!x) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
  x->h = h;
  x->loaded = done;
  x->ud = ud;
  aiplat_status st = aip_akv_get(h->kv, key, deadline_ms, on_got, x);
  if (st) {
    free(x);
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    return aip_fail(NULL, AIPLAT_ERR_UNAVAILABLE, "history: cannot read: %s",
                    why);
  }
  return AIPLAT_OK;
}

static char *encode(const aip_chat_turn *turns, size_t from, size_t n,
                    const char *user, const char *assistant, size_t *len) {
  json_t *arr = json_array();
  for (size_t i = from; arr && i < n; i++)
    json_array_append_new(arr, json_pack("{s:s, s:s}", "user", turns[i].user,
                                         "assistant", turns[i].assistant));
  if (arr)
    json_array_append_new(
        arr, json_pack("{s:s, s:s}", "user", user, "assistant", assistant));
  json_t *root = arr ? json_pack("{s:o}", "turns", arr) : NULL;
  char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  if (s) *len = strlen(s);
  return s;
}

static void on_put(aiplat_status st, const char *why, void *data,
                   size_t len, uint64_t rev, void *ud) {
  (void)data, (void)len, (void)rev;
  hist_call *x = ud;
  char msg[AIP_ERRMSG_MAX] = "";
  if (st) snprintf(msg, sizeof msg, "history: cannot save: %s", why);
  x->saved(st, msg, x->ud);
  free(x);
}

aiplat_status aip_chat_history_save_async(aip_chat_history *h, const char *key,
                                          const aip_chat_turn *turns, size_t n,
                                          const char *user,
                                          const char *assistant,
                                          int64_t deadline_ms,
                                          aip_chat_saved_fn done, void *ud) {
  /* The new turn plus the newest n - from older ones: max_turns in all. */
  size_t from = n + 1 > (size_t)h->max_turns ? n + 1 - (size_t)h->max_turns : 0;
  size_t len = 0;
  char *s = NULL;
  for (;;) {
    s = encode(turns, from, n, user, assistant, &len);
    if (!s)
      return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
    if (len <= AIP_CHAT_HISTORY_MAX_BYTES) break;
    free(s);
    if (from < n) {
      from++; /* too big: forget the oldest turn */
      continue;
    }
    /* A single turn over the cap: the conversation starts afresh. */
    if (!(s = strdup("{\"turns\":[]}")))
      return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
    len = strlen(s);
    break;
  }
  hist_call *x = calloc(1, sizeof *x);
  aiplat_status st =
      x ? AIPLAT_OK
        : aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
  if (x) {
    x->h = h;
    x->saved = done;
    x->ud = ud;
    st = aip_akv_put(h->kv, key, s, len, deadline_ms, on_put, x);
    if (st) free(x);
  }
  free(s);
  return st;
}

/* ---- the blocking forms ---------------------------------------------------- */

typedef struct hist_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  aiplat_status st;
  char why[AIP_ERRMSG_MAX];
  aip_chat_turn *turns;
  size_t n;
} hist_wait;

static void wait_init(hist_wait *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static void wait_end(hist_wait *w, aiplat_status st, const char *why) {
  pthread_mutex_lock(&w->mu);
  w->st = st;
  snprintf(w->why, sizeof w->why, "%s", why);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Wait for the end; its failure goes to the thread's record. */
static aiplat_status wait_for(hist_wait *w) {
  pthread_mutex_lock(&w->mu);
  while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  return w->st ? aip_fail(NULL, w->st, "%s", w->why) : AIPLAT_OK;
}

static void on_loaded_wait(aiplat_status st, const char *why,
                           aip_chat_turn *turns, size_t n, void *ud) {
  hist_wait *w = ud;
  w->turns = turns;
  w->n = n;
  wait_end(w, st, why);
}

static void on_saved_wait(aiplat_status st, const char *why, void *ud) {
  wait_end(ud, st, why);
}

aiplat_status aip_chat_history_load(aip_chat_history *h, const char *key,
                                    aip_chat_turn **turns, size_t *n) {
  *turns = NULL;
  *n = 0;
  hist_wait w;
  wait_init(&w);
  aiplat_status st = aip_chat_history_load_async(h, key, aip_thread_deadline(),
                                                 on_loaded_wait, &w);
  if (st) {
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return st;
  }
  st = wait_for(&w);
  *turns = w.turns;
  *n = w.n;
  return st;
}

aiplat_status aip_chat_history_save(aip_chat_history *h, const char *key,
                                    const aip_chat_turn *turns, size_t n,
                                    const char *user, const char *assistant) {
  hist_wait w;
  wait_init(&w);
  aiplat_status st =
      aip_chat_history_save_async(h, key, turns, n, user, assistant,
                                  aip_thread_deadline(), on_saved_wait, &w);
  if (st) {
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return st;
  }
  return wait_for(&w);
}
