/* Conversation history in a JetStream Key-Value bucket.
 *
 * One key per (user, conversation): base64url(user_id) "." base64url(
 * conversation_id), so that two users never share a history whatever ids
 * they choose, and any token is a valid key. The value is JSON:
 * {"turns":[{"user":"...","assistant":"..."}, ...]}, oldest first, at most
 * CHAT_HISTORY_TURNS turns and AIP_CHAT_HISTORY_MAX_BYTES bytes. The
 * bucket's max age (CHAT_HISTORY_TTL) expires a conversation that was not
 * continued: every turn rewrites the value, so the age counts from the last
 * turn. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "config.h"

/* Well below nats-server's default max_payload (1 MB). */
#define AIP_CHAT_HISTORY_MAX_BYTES (256u * 1024u)

struct aip_chat_history {
  aiplat_bus *bus;
  char *bucket;
  int64_t ttl_ms;
  int max_turns;
  pthread_mutex_t mu;
  aiplat_kv *kv; /* opened at first use */
};

aiplat_status aip_chat_history_create(aip_chat_history **out, aiplat_bus *bus,
                                      const char *bucket, int64_t ttl_ms,
                                      int max_turns) {
  aip_chat_history *h = calloc(1, sizeof *h);
  if (!h || !(h->bucket = strdup(bucket))) {
    free(h);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "chat: out of memory");
  }
  h->bus = bus;
  h->ttl_ms = ttl_ms;
  h->max_turns = max_turns;
  pthread_mutex_init(&h->mu, NULL);
  *out = h;
  return AIPLAT_OK;
}

void aip_chat_history_destroy(aip_chat_history *h) {
  if (!h) return;
  aiplat_kv_destroy(h->kv);
  pthread_mutex_destroy(&h->mu);
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

static aiplat_status open_kv(aip_chat_history *h, aiplat_kv **kv) {
  pthread_mutex_lock(&h->mu);
  aiplat_status st = AIPLAT_OK;
  if (!h->kv) {
    st = aiplat_kv_open(&h->kv, h->bus, h->bucket, h->ttl_ms, 1);
    if (st != AIPLAT_OK) {
      char why[AIP_ERRMSG_MAX];
      aiplat_error_last(why, sizeof why);
      st = aip_fail(NULL, AIPLAT_ERR_UNAVAILABLE,
                    "history: cannot open the Key-Value bucket %s: %s",
                    h->bucket, why);
    }
  }
  *kv = h->kv;
  pthread_mutex_unlock(&h->mu);
  return st;
}

void aip_chat_turns_free(aip_chat_turn *t, size_t n) {
  for (size_t i = 0; t && i < n; i++) {
    free(t[i].user);
    free(t[i].assistant);
  }
  free(t);
}

aiplat_status aip_chat_history_load(aip_chat_history *h, const char *key,
                                    aip_chat_turn **turns, size_t *n) {
  *turns = NULL;
  *n = 0;
  aiplat_kv *kv = NULL;
  aiplat_status st = open_kv(h, &kv);
  if (st != AIPLAT_OK) return st;
  void *data = NULL;
  size_t len = 0;
  st = aiplat_kv_get(kv, key, &data, &len);
  if (st == AIPLAT_ERR_NOT_FOUND) {
    aiplat_error_clear();
    return AIPLAT_OK;
  }
  if (st != AIPLAT_OK) {
    char why[AIP_ERRMSG_MAX];
    aiplat_error_last(why, sizeof why);
    return aip_fail(NULL, AIPLAT_ERR_UNAVAILABLE, "history: cannot read: %s",
                    why);
  }
  json_error_t jerr;
  json_t *root = json_loadb(data, len, 0, &jerr);
  aiplat_free(data);
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

aiplat_status aip_chat_history_save(aip_chat_history *h, const char *key,
                                    const aip_chat_turn *turns, size_t n,
                                    const char *user, const char *assistant) {
  aiplat_kv *kv = NULL;
  aiplat_status st = open_kv(h, &kv);
  if (st != AIPLAT_OK) return st;
  /* The new turn plus the newest n - from older ones: max_turns in all. */
  size_t from = n + 1 > (size_t)h->max_turns ? n + 1 - (size_t)h->max_turns : 0;
  for (;;) {
    size_t len = 0;
    char *s = encode(turns, from, n, user, assistant, &len);
    if (!s)
      return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "history: out of memory");
    if (len > AIP_CHAT_HISTORY_MAX_BYTES && from < n) {
      free(s);
      from++; /* too big: forget the oldest turn */
      continue;
    }
    if (len > AIP_CHAT_HISTORY_MAX_BYTES) {
      free(s);
      /* A single turn over the cap: the conversation starts afresh. */
      st = aiplat_kv_delete(kv, key);
      if (st == AIPLAT_ERR_NOT_FOUND) st = AIPLAT_OK;
      return st;
    }
    st = aiplat_kv_put(kv, key, s, len, NULL);
    free(s);
    return st;
  }
}
