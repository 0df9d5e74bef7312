/* JetStream streams and publishing, and Key-Value buckets. See ADR 0006. */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bus_internal.h"
#include "loop.h"
#include "options_internal.h"
#include "subject_internal.h"

#define NAME_MAX_LEN 64
#define KV_KEY_MAX 256
#define KV_HISTORY_MAX 64

static jsCtx *open_js(aiplat_bus *bus, aip_err *e, const char *what) {
  if (!aip_bus_open_conn(bus, e, what)) return NULL;
  jsCtx *js = aip_bus_js(bus);
  if (!js)
    aip_fail(e, AIPLAT_ERR_NOT_SUPPORTED, "%s: no JetStream context", what);
  return js;
}

/* ---- streams ---------------------------------------------------------------
 */

/* Check the arguments and fill @sc (pointing at them) for creating or
 * updating a stream: file storage, one replica. */
static aiplat_status stream_config(aip_err *e, const char *what,
                                   const char *name,
                                   const char *const *subjects,
                                   size_t n_subjects, int64_t max_age_ms,
                                   aiplat_bus_retention retention,
                                   jsStreamConfig *sc) {
  char label[96];
  snprintf(label, sizeof label, "%s: stream name", what);
  aiplat_status st = aip_name_check(e, label, name, NAME_MAX_LEN);
  if (st) return st;
  if (!subjects || n_subjects == 0 || n_subjects > 1024)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: give 1 to 1024 subjects", what);
  for (size_t i = 0; i < n_subjects; i++)
    if ((st = aip_subject_check(e, what, subjects[i], true))) return st;
  if (max_age_ms < 0 || max_age_ms > INT64_MAX / 1000000)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: max_age_ms out of range", what);
  jsRetentionPolicy policy;
  switch (retention) {
    case AIPLAT_BUS_RETENTION_LIMITS:
      policy = js_LimitsPolicy;
      break;
    case AIPLAT_BUS_RETENTION_WORK_QUEUE:
      policy = js_WorkQueuePolicy;
      break;
    case AIPLAT_BUS_RETENTION_INTEREST:
      policy = js_InterestPolicy;
      break;
    default:
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s: unknown retention %d", what, (int)retention);
  }
  jsStreamConfig_Init(sc);
  sc->Name = name;
  sc->Subjects = (const char **)subjects;
  sc->SubjectsLen = (int)n_subjects;
  sc->MaxAge = max_age_ms * 1000000;
  sc->Retention = policy;
  sc->Storage = js_FileStorage;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_stream_ensure(
    aiplat_bus *bus, const char *name, const char *const *subjects,
    size_t n_subjects, int64_t max_age_ms, aiplat_bus_retention retention) {
  /* Borrows the caller's subjects: the options are read, never kept. */
  struct aiplat_stream_options o = {(char **)subjects, n_subjects, max_age_ms,
                                    retention, 1, AIPLAT_BUS_STORAGE_FILE};
  return aiplat_bus_stream_ensure_with(bus, name, &o);
}

AIPLAT_API aiplat_status aiplat_bus_stream_ensure_with(
    aiplat_bus *bus, const char *name, const aiplat_stream_options *opts) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  aip_err *e = &bus->err;
  if (!opts)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: stream_ensure: options are NULL");
  jsStreamConfig sc;
  aiplat_status st = stream_config(
      e, "bus: stream_ensure", name, (const char *const *)opts->subjects,
      opts->n_subjects, opts->max_age_ms, opts->retention, &sc);
  if (st) return st;
  if (opts->replicas < 1 || opts->replicas > 5)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: stream_ensure: replicas must be 1..5, not %d",
                    opts->replicas);
  sc.Replicas = opts->replicas;
  if (opts->storage == AIPLAT_BUS_STORAGE_MEMORY)
    sc.Storage = js_MemoryStorage;
  else if (opts->storage != AIPLAT_BUS_STORAGE_FILE)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "bus: stream_ensure: unknown storage %d",
                    (int)opts->storage);
  jsCtx *js = open_js(bus, e, "bus: stream_ensure");
  if (!js) return aip_err_copy(e, NULL, 0);
  jsErrCode jerr = 0;
  natsStatus s = js_AddStream(NULL, js, &sc, NULL, &jerr);
  if (s != NATS_OK && jerr == JSStreamNameExistErr) {
    /* It exists with another configuration: bring it to this one. */
    jerr = 0;
    s = js_UpdateStream(NULL, js, &sc, NULL, &jerr);
  }
  if (s != NATS_OK) return aip_bus_fail_nats(e, s, jerr, "bus: stream_ensure");
  return AIPLAT_OK;
}

/* The next '.'-separated token of *@s; *@s becomes NULL after the last. */
static bool next_token(const char **s, const char **tok, size_t *len) {
  if (!*s) return false;
  const char *dot = strchr(*s, '.');
  *tok = *s;
  *len = dot ? (size_t)(dot - *s) : strlen(*s);
  *s = dot ? dot + 1 : NULL;
  return true;
}

static bool is_wildcard(const char *tok, size_t len, char w) {
  return len == 1 && tok[0] == w;
}

/* Whether stream subject @have captures every subject that @want (wildcards
 * allowed) matches. Token by token: a '>' of @have takes whatever is left
 * (one token or more), a '*' one token other than a '>', a literal only the
 * same literal. The server asks the same of a consumer's filter subject. */
static bool subject_covers(const char *have, const char *want) {
  const char *ht, *wt;
  size_t hn, wn;
  for (;;) {
    bool more_have = next_token(&have, &ht, &hn);
    bool more_want = next_token(&want, &wt, &wn);
    if (!more_have || !more_want) return !more_have && !more_want;
    if (is_wildcard(ht, hn, '>')) return true;
    if (is_wildcard(wt, wn, '>')) return false;
    if (is_wildcard(ht, hn, '*')) continue;
    if (is_wildcard(wt, wn, '*') || hn != wn || memcmp(ht, wt, hn) != 0)
      return false;
  }
}

/* "a, b, c" into @buf, cut short (with "...") when it does not fit. */
static void join_subjects(char *buf, size_t cap, const jsStreamConfig *c) {
  size_t used = 0;
  buf[0] = '\0';
  if (c->SubjectsLen <= 0) snprintf(buf, cap, "none");
  for (int i = 0; i < c->SubjectsLen; i++) {
    int n =
        snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", c->Subjects[i]);
    if (n < 0 || (size_t)n >= cap - used) {
      if (cap > 4) memcpy(buf + cap - 4, "...", 4);
      return;
    }
    used += (size_t)n;
  }
}

static const char *retention_name(jsRetentionPolicy p) {
  switch (p) {
    case js_LimitsPolicy:
      return "limits";
    case js_InterestPolicy:
      return "interest";
    case js_WorkQueuePolicy:
      return "workqueue";
  }
  return "unknown";
}

static natsStatus stream_lookup(jsCtx *js, const char *name, jsStreamInfo **si,
                                jsErrCode *jerr) {
  *jerr = 0;
  natsStatus s = js_GetStreamInfo(si, js, name, NULL, jerr);
  if (s != NATS_OK && *jerr == JSStreamNotFoundErr) s = NATS_NOT_FOUND;
  return s;
}

aiplat_status aip_bus_stream_bind(aiplat_bus *bus, const char *what,
                                  const char *name, const char *subject,
                                  aiplat_bus_retention retention,
                                  int replicas, bool bind_only,
                                  int *have_replicas) {
  aip_err *e = &bus->err;
  if (have_replicas) *have_replicas = replicas;
  const char *subjects[] = {subject};
  jsStreamConfig sc;
  aiplat_status st =
      stream_config(e, what, name, subjects, 1, 0, retention, &sc);
  if (st) return st;
  if (replicas < 1 || replicas > 5)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: stream replicas must be 1..5, not %d", what, replicas);
  sc.Replicas = replicas;
  jsCtx *js = open_js(bus, e, what);
  if (!js) return aip_err_copy(e, NULL, 0);
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s = stream_lookup(js, name, &si, &jerr);
  if (s == NATS_NOT_FOUND && bind_only)
    return aip_fail(e, AIPLAT_ERR_NOT_FOUND,
                    "%s: no stream %s, and the endpoint only binds to one: "
                    "create it first",
                    what, name);
  if (s == NATS_NOT_FOUND) {
    char creating[192];
    snprintf(creating, sizeof creating, "%s: create stream %s", what, name);
    jerr = 0;
    s = js_AddStream(NULL, js, &sc, NULL, &jerr);
    if (s == NATS_OK) {
      char nrep[16];
      snprintf(nrep, sizeof nrep, "%d", replicas);
      aip_log_kv(AIPLAT_LOG_INFO, "jetstream stream created", "stream", name,
                 "subject", subject, "retention", retention_name(sc.Retention),
                 "replicas", nrep, NULL);
      return AIPLAT_OK;
    }
    /* Another instance created it since the lookup: bind to that one.
     * While its create is still under way the server may answer that the
     * subjects overlap rather than that the name exists. */
    if (jerr != JSStreamNameExistErr && jerr != JSStreamSubjectOverlapErr)
      return aip_bus_fail_nats(e, s, jerr, creating);
    natsStatus cs = s;
    jsErrCode cerr = jerr;
    for (int i = 0; i < 20; i++) {
      s = stream_lookup(js, name, &si, &jerr);
      if (s != NATS_NOT_FOUND) break;
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (s == NATS_NOT_FOUND) return aip_bus_fail_nats(e, cs, cerr, creating);
  }
  if (s != NATS_OK) return aip_bus_fail_nats(e, s, jerr, what);
  const jsStreamConfig *have = si->Config;
  bool covered = false;
  for (int i = 0; have && i < have->SubjectsLen && !covered; i++)
    covered = subject_covers(have->Subjects[i], subject);
  if (covered) {
    char nrep[16];
    if (have_replicas && have->Replicas > 0) *have_replicas = (int)have->Replicas;
    snprintf(nrep, sizeof nrep, "%ld", (long)have->Replicas);
    aip_log_kv(AIPLAT_LOG_INFO, "jetstream stream found, used as it is",
               "stream", name, "retention", retention_name(have->Retention),
               "replicas", nrep, NULL);
  } else {
    char list[AIP_ERRMSG_MAX];
    if (have)
      join_subjects(list, sizeof list, have);
    else
      snprintf(list, sizeof list, "unknown");
    st = aip_fail(e, AIPLAT_ERR_CONFIG,
                  "%s: stream %s does not capture subject %s, and is left as "
                  "it is: give it a subject covering this one, or use another "
                  "stream (its subjects: %s)",
                  what, name, subject, list);
  }
  jsStreamInfo_Destroy(si);
  return st;
}

AIPLAT_API aiplat_status aiplat_bus_stream_delete(aiplat_bus *bus,
                                                  const char *name) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  aiplat_status st = aip_name_check(
      &bus->err, "bus: stream_delete: stream name", name, NAME_MAX_LEN);
  if (st) return st;
  jsCtx *js = open_js(bus, &bus->err, "bus: stream_delete");
  if (!js) return aip_err_copy(&bus->err, NULL, 0);
  jsErrCode jerr = 0;
  natsStatus s = js_DeleteStream(js, name, NULL, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
    return aip_fail(&bus->err, AIPLAT_ERR_NOT_FOUND,
                    "bus: stream_delete: no stream %s", name);
  if (s != NATS_OK)
    return aip_bus_fail_nats(&bus->err, s, jerr, "bus: stream_delete");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_bus_js_publish(aiplat_bus *bus,
                                               const char *subject,
                                               const void *data, size_t len,
                                               const aiplat_headers *headers,
                                               uint64_t *seq) {
  if (!bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "bus: bus is NULL");
  if (seq) *seq = 0;
  jsCtx *js = open_js(bus, &bus->err, "bus: js_publish");
  if (!js) return aip_err_copy(&bus->err, NULL, 0);
  natsMsg *nm = NULL;
  aiplat_status st = aip_bus_make_msg(bus, &bus->err, bus->nc, subject, NULL,
                                      data, len, headers, &nm);
  if (st) return st;
  jsPubAck *pa = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_PublishMsg(&pa, js, nm, NULL, &jerr);
  natsMsg_Destroy(nm);
  if (s == NATS_NO_RESPONDERS)
    return aip_fail(&bus->err, AIPLAT_ERR_NOT_FOUND,
                    "bus: js_publish: no stream captures subject %s", subject);
  if (s != NATS_OK)
    return aip_bus_fail_nats(&bus->err, s, jerr, "bus: js_publish");
  if (seq) *seq = pa->Sequence;
  jsPubAck_Destroy(pa);
  return AIPLAT_OK;
}

/* ---- Key-Value
 * --------------------------------------------------------------------- */

struct aiplat_kv {
  aip_err err;
  aiplat_bus *bus;
  jsCtx *js; /* its own, when its requests have their own timeout */
  kvStore *store;
  char *bucket;
};

AIPLAT_API aiplat_status aiplat_kv_open(aiplat_kv **out, aiplat_bus *bus,
                                        const char *bucket, int64_t ttl_ms,
                                        int history) {
  struct aiplat_kv_options o = {ttl_ms, history, 1};
  return aiplat_kv_open_with(out, bus, bucket, &o);
}

AIPLAT_API aiplat_status aiplat_kv_open_with(aiplat_kv **out, aiplat_bus *bus,
                                             const char *bucket,
                                             const aiplat_kv_options *opts) {
  struct aiplat_kv_options o;
  aip_kv_options_init(&o);
  if (opts) o = *opts;
  return aip_kv_open(out, bus, bucket, o.ttl_ms, o.history, o.replicas, 0);
}

aiplat_status aip_kv_open(aiplat_kv **out, aiplat_bus *bus, const char *bucket,
                          int64_t ttl_ms, int history, int replicas,
                          int64_t timeout_ms) {
  if (!out || !bus)
    return aip_fail(bus ? &bus->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: open: %s is NULL", out ? "bus" : "out");
  *out = NULL;
  aip_err *e = &bus->err;
  aiplat_status st = aip_name_check(e, "kv: bucket name", bucket, NAME_MAX_LEN);
  if (st) return st;
  if (ttl_ms < 0 || ttl_ms > INT64_MAX / 1000000)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "kv: ttl_ms out of range");
  if (history < 1 || history > KV_HISTORY_MAX)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "kv: history must be 1..%d",
                    KV_HISTORY_MAX);
  if (replicas < 1 || replicas > 5)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: replicas must be 1..5, not %d", replicas);
  if (timeout_ms < 0 || timeout_ms > INT64_MAX / 1000000)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: timeout_ms out of range");
  jsCtx *js = open_js(bus, e, "kv: open");
  if (!js) return aip_err_copy(e, NULL, 0);
  jsCtx *own = NULL;
  natsStatus s = NATS_OK;
  if (timeout_ms > 0) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = timeout_ms;
    s = natsConnection_JetStream(&own, bus->nc, &jo);
    if (s != NATS_OK) return aip_bus_fail_nats(e, s, 0, "kv: open");
    js = own;
  }

  kvStore *store = NULL;
  s = js_KeyValue(&store, js, bucket);
  if (s != NATS_OK) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = (uint8_t)history;
    kc.TTL = ttl_ms * 1000000;
    kc.StorageType = js_FileStorage;
    kc.Replicas = replicas;
    s = js_CreateKeyValue(&store, js, &kc);
    /* Another process may have created it meanwhile: bind to that one. */
    if (s != NATS_OK && js_KeyValue(&store, js, bucket) == NATS_OK) s = NATS_OK;
  }
  if (s != NATS_OK) {
    jsCtx_Destroy(own);
    return aip_bus_fail_nats(e, s, 0, "kv: open");
  }

  aiplat_kv *kv = calloc(1, sizeof *kv);
  if (!kv || !(kv->bucket = aip_strdup(bucket))) {
    free(kv);
    kvStore_Destroy(store);
    jsCtx_Destroy(own);
    return aip_fail(e, AIPLAT_ERR_NO_MEMORY, "kv: out of memory");
  }
  aip_err_init(&kv->err);
  kv->bus = bus;
  aip_bus_ref(bus);
  kv->js = own;
  kv->store = store;
  *out = kv;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_kv_destroy(aiplat_kv *kv) {
  if (!kv) return;
  kvStore_Destroy(kv->store);
  jsCtx_Destroy(kv->js);
  free(kv->bucket);
  aip_err_destroy(&kv->err);
  aiplat_bus *bus = kv->bus;
  free(kv);
  aip_bus_unref(bus);
}

AIPLAT_API aiplat_status aiplat_kv_last_error(aiplat_kv *kv, char *buf,
                                              size_t buflen) {
  if (!kv)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "kv: handle is NULL");
  return aip_err_copy(&kv->err, buf, buflen);
}

static aiplat_status check_key(aip_err *e, const char *key) {
  if (!key || !*key)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "kv: key is empty");
  size_t len = strnlen(key, KV_KEY_MAX + 1);
  if (len > KV_KEY_MAX)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: key is longer than %d bytes", KV_KEY_MAX);
  if (key[0] == '.' || key[len - 1] == '.' || strstr(key, ".."))
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: key may not start or end with '.' or hold '..'");
  for (size_t i = 0; i < len; i++) {
    char c = key[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '=' ||
              c == '/' || c == '.';
    if (!ok)
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "kv: key may hold only A-Z, a-z, 0-9 and -_=/. (bad "
                      "byte at %zu)",
                      i);
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_kv_put(aiplat_kv *kv, const char *key,
                                       const void *data, size_t len,
                                       uint64_t *revision) {
  if (!kv)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "kv: handle is NULL");
  if (revision) *revision = 0;
  aiplat_status st = check_key(&kv->err, key);
  if (st) return st;
  if (!data && len)
    return aip_fail(&kv->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: put: data is NULL but len is %zu", len);
  natsConnection *nc = aip_bus_open_conn(kv->bus, &kv->err, "kv: put");
  if (!nc) return aip_err_copy(&kv->err, NULL, 0);
  int64_t max = natsConnection_GetMaxPayload(nc);
  if (len > INT_MAX || (max > 0 && (int64_t)len > max))
    return aip_fail(&kv->err, AIPLAT_ERR_TOO_LARGE,
                    "kv: put: value of %zu bytes exceeds the server's "
                    "max_payload of %lld bytes",
                    len, (long long)max);
  uint64_t rev = 0;
  natsStatus s = kvStore_Put(&rev, kv->store, key, data, (int)len);
  if (s != NATS_OK) return aip_bus_fail_nats(&kv->err, s, 0, "kv: put");
  if (revision) *revision = rev;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_kv_get(aiplat_kv *kv, const char *key,
                                       void **data, size_t *len) {
  if (!kv)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "kv: handle is NULL");
  if (!data || !len)
    return aip_fail(&kv->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: get: data and len must not be NULL");
  *data = NULL;
  *len = 0;
  aiplat_status st = check_key(&kv->err, key);
  if (st) return st;
  if (!aip_bus_open_conn(kv->bus, &kv->err, "kv: get"))
    return aip_err_copy(&kv->err, NULL, 0);
  kvEntry *entry = NULL;
  natsStatus s = kvStore_Get(&entry, kv->store, key);
  if (s == NATS_NOT_FOUND)
    return aip_fail(&kv->err, AIPLAT_ERR_NOT_FOUND,
                    "kv: no key %s in bucket %s", key, kv->bucket);
  if (s != NATS_OK) return aip_bus_fail_nats(&kv->err, s, 0, "kv: get");
  int n = kvEntry_ValueLen(entry);
  size_t vlen = n > 0 ? (size_t)n : 0;
  char *copy = malloc(vlen + 1);
  if (!copy) {
    kvEntry_Destroy(entry);
    return aip_fail(&kv->err, AIPLAT_ERR_NO_MEMORY, "kv: out of memory");
  }
  if (vlen) memcpy(copy, kvEntry_Value(entry), vlen);
  copy[vlen] = '\0';
  kvEntry_Destroy(entry);
  *data = copy;
  *len = vlen;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_kv_delete(aiplat_kv *kv, const char *key) {
  if (!kv)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "kv: handle is NULL");
  aiplat_status st = check_key(&kv->err, key);
  if (st) return st;
  if (!aip_bus_open_conn(kv->bus, &kv->err, "kv: delete"))
    return aip_err_copy(&kv->err, NULL, 0);
  natsStatus s = kvStore_Delete(kv->store, key);
  if (s != NATS_OK) return aip_bus_fail_nats(&kv->err, s, 0, "kv: delete");
  return AIPLAT_OK;
}

/* ---- asynchronous Key-Value ---------------------------------------------
 *
 * A call is one request and its reply, on the reply subject
 * <inbox>.<token> of the handle's one wildcard subscription. A reply, the
 * deadline or the handle's end finishes a call exactly once: the first of
 * them takes it out of the table, under the handle's lock. A reply is read
 * on the inbox's delivery thread; everything after it (the caller's
 * callback, a retry, the free) runs on the loop thread, as do the timer
 * and the end of a call that timed out. A call's arm task (which starts its
 * timer) is posted under the lock as the call enters the table, so it runs
 * before any end task of the call, which is posted later.
 *
 * An operation (a get or a put) is one call, or three when the first finds
 * no bucket: the bucket is created, and the first call is made again. */

#define AKV_BUCKETS 256
#define AKV_DEFAULT_TIMEOUT_MS 5000
#define AKV_NO_RESPONDERS 503
#define AKV_NOT_FOUND 404
#define AKV_STREAM_NAME_EXISTS 10058
#define AKV_STREAM_NOT_FOUND 10059

/* The requests of an operation: the bucket's stream looked up (once per
 * handle), created when missing, then the get or put itself. */
typedef enum akv_kind { AKV_INFO, AKV_CREATE, AKV_MAIN } akv_kind;

typedef struct akv_call akv_call;

struct aip_akv {
  aiplat_bus *bus;
  char *bucket;
  int64_t ttl_ms;
  int history;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  natsInbox *inbox;
  aiplat_bus_sub *mux;
  uint64_t next;
  akv_call *table[AKV_BUCKETS];
  size_t live; /* calls not freed yet: their end runs on the loop */
  bool closing;
  bool ready;  /* the bucket was seen: no lookup before a call */
  bool direct; /* and it answers direct gets */
};

typedef struct akv_op {
  aip_akv *kv;
  bool put;
  bool create_tried;
  char *key;
  void *val;
  size_t len;
  int64_t deadline_ms;
  aip_akv_fn done;
  void *ud;
} akv_op;

/* What a reply said, read on the delivery thread. */
typedef struct akv_reply {
  int status;      /* of the Status header, 0 when none */
  char desc[128];  /* its Description */
  char kv_op[16];  /* KV-Operation: DEL, PURGE or none */
  uint64_t seq;    /* Nats-Sequence */
  char *data;      /* the payload, NUL-terminated */
  size_t len;
} akv_reply;

struct akv_call {
  akv_call *next; /* in its table bucket */
  aip_akv *kv;
  akv_op *op;
  uint64_t token;
  akv_kind kind;
  bool silent; /* never sent: the end frees it only */
  int64_t deadline_ms;
  aiplat_status st; /* AIPLAT_OK: @r holds the reply */
  char why[128];
  akv_reply r;
  aip_timer timer;
  aip_task arm, end;
};

/* Under kv->mu: true for the one caller that ends @k. */
static bool akv_claim(aip_akv *kv, akv_call *k) {
  akv_call **pp = &kv->table[k->token % AKV_BUCKETS];
  while (*pp && *pp != k) pp = &(*pp)->next;
  if (!*pp) return false;
  *pp = k->next;
  k->next = NULL;
  return true;
}

static void akv_op_end(akv_op *op, aiplat_status st, const char *why,
                       char *data, size_t len, uint64_t rev) {
  op->done(st, why ? why : "", data, len, rev, op->ud);
  free(op->key);
  free(op->val);
  free(op);
}

static aiplat_status akv_send(akv_op *op, akv_kind kind);

/* The get's reply. */
static void akv_got(akv_op *op, akv_reply *r) {
  aip_akv *kv = op->kv;
  char why[AIP_ERRMSG_MAX];
  if (r->status == AKV_NOT_FOUND || strcmp(r->kv_op, "DEL") == 0 ||
      strcmp(r->kv_op, "PURGE") == 0) {
    snprintf(why, sizeof why, "kv: no key %s in bucket %s", op->key,
             kv->bucket);
    akv_op_end(op, AIPLAT_ERR_NOT_FOUND, why, NULL, 0, 0);
  } else if (r->status == AKV_NO_RESPONDERS) {
    snprintf(why, sizeof why,
             "kv: get: bucket %s does not answer direct gets (its stream "
             "does not allow them)",
             kv->bucket);
    akv_op_end(op, AIPLAT_ERR_NOT_SUPPORTED, why, NULL, 0, 0);
  } else if (r->status != 0) {
    snprintf(why, sizeof why, "kv: get: the server answered %d %s", r->status,
             r->desc);
    akv_op_end(op, AIPLAT_ERR_UNAVAILABLE, why, NULL, 0, 0);
  } else {
    char *data = r->data;
    r->data = NULL;
    akv_op_end(op, AIPLAT_OK, "", data, r->len, r->seq);
  }
}

/* A JetStream API answer: AIPLAT_OK, or its error in @why. @seq (when not
 * NULL) receives "seq". A stream that exists already is no error when
 * @exists is not NULL: *@exists tells. */
static aiplat_status akv_api_answer(const akv_reply *r, const char *what,
                                    bool *exists, uint64_t *seq, char *why,
                                    size_t whylen) {
  if (r->status == AKV_NO_RESPONDERS) {
    snprintf(why, whylen, "%s: no JetStream answers on this server", what);
    return AIPLAT_ERR_UNAVAILABLE;
  }
  json_t *root = json_loadb(r->data ? r->data : "", r->len, 0, NULL);
  json_t *err = json_object_get(root, "error");
  aiplat_status st = AIPLAT_OK;
  if (!json_is_object(root)) {
    snprintf(why, whylen, "%s: the server's answer is not JSON", what);
    st = AIPLAT_ERR_UNAVAILABLE;
  } else if (err) {
    json_int_t code = json_integer_value(json_object_get(err, "err_code"));
    const char *d = json_string_value(json_object_get(err, "description"));
    if (exists && code == AKV_STREAM_NAME_EXISTS) {
      *exists = true;
    } else {
      snprintf(why, whylen, "%s: %s (%" JSON_INTEGER_FORMAT ")", what,
               d ? d : "error", code);
      st = AIPLAT_ERR_UNAVAILABLE;
    }
  } else if (seq) {
    *seq = (uint64_t)json_integer_value(json_object_get(root, "seq"));
  }
  json_decref(root);
  return st;
}

/* The lookup's answer: the bucket exists (*@missing false) and whether it
 * answers direct gets, or it does not (*@missing true), or a failure. */
static aiplat_status akv_info_answer(const akv_reply *r, const char *bucket,
                                     bool *missing, bool *direct, char *why,
                                     size_t whylen) {
  char what[96];
  snprintf(what, sizeof what, "kv: bucket %s", bucket);
  if (r->status == AKV_NO_RESPONDERS) {
    snprintf(why, whylen, "%s: no JetStream answers on this server", what);
    return AIPLAT_ERR_UNAVAILABLE;
  }
  json_t *root = json_loadb(r->data ? r->data : "", r->len, 0, NULL);
  json_t *err = json_object_get(root, "error");
  aiplat_status st = AIPLAT_OK;
  if (!json_is_object(root)) {
    snprintf(why, whylen, "%s: the server's answer is not JSON", what);
    st = AIPLAT_ERR_UNAVAILABLE;
  } else if (err && json_integer_value(json_object_get(err, "err_code")) ==
                        AKV_STREAM_NOT_FOUND) {
    *missing = true;
  } else if (err) {
    const char *d = json_string_value(json_object_get(err, "description"));
    snprintf(why, whylen, "%s: %s", what, d ? d : "error");
    st = AIPLAT_ERR_UNAVAILABLE;
  } else {
    json_t *cfg = json_object_get(root, "config");
    *direct = json_is_true(json_object_get(cfg, "allow_direct"));
  }
  json_decref(root);
  return st;
}

static void akv_set_ready(aip_akv *kv, bool direct) {
  pthread_mutex_lock(&kv->mu);
  kv->ready = true;
  kv->direct = direct;
  pthread_mutex_unlock(&kv->mu);
}

/* The step after the lookup or the creation; AIPLAT_OK when a request
 * went out (or @op ended). */
static aiplat_status akv_after_setup(akv_call *k, char *why, size_t whylen) {
  akv_op *op = k->op;
  aip_akv *kv = op->kv;
  aiplat_status st;
  if (k->kind == AKV_INFO) {
    bool missing = false, direct = false;
    st = akv_info_answer(&k->r, kv->bucket, &missing, &direct, why, whylen);
    if (st) return st;
    if (missing && op->create_tried) {
      snprintf(why, whylen, "kv: bucket %s cannot be created", kv->bucket);
      return AIPLAT_ERR_UNAVAILABLE;
    }
    if (missing) {
      op->create_tried = true;
      st = akv_send(op, AKV_CREATE);
    } else {
      akv_set_ready(kv, direct);
      st = akv_send(op, AKV_MAIN);
    }
  } else {
    char what[96];
    snprintf(what, sizeof what, "kv: create bucket %s", kv->bucket);
    bool exists = false;
    st = akv_api_answer(&k->r, what, &exists, NULL, why, whylen);
    if (st) return st;
    if (exists) /* made by another client meanwhile: look it up */
      return akv_send(op, AKV_INFO) ? AIPLAT_ERR_INTERNAL : AIPLAT_OK;
    akv_set_ready(kv, true);
    if (!op->put) {
      /* A new bucket holds no key (and may not answer direct gets yet). */
      snprintf(why, whylen, "kv: no key %s in bucket %s", op->key, kv->bucket);
      return AIPLAT_ERR_NOT_FOUND;
    }
    st = akv_send(op, AKV_MAIN);
  }
  if (st) snprintf(why, whylen, "%s", aip_thread_errmsg());
  return st;
}

/* The next step of an operation after one of its calls ended, on the loop
 * thread. */
static void akv_next(akv_call *k) {
  akv_op *op = k->op;
  char why[AIP_ERRMSG_MAX] = "";
  if (k->st != AIPLAT_OK) {
    akv_op_end(op, k->st, k->why, NULL, 0, 0);
    return;
  }
  aiplat_status st = AIPLAT_OK;
  if (k->kind != AKV_MAIN) {
    if ((st = akv_after_setup(k, why, sizeof why)) != AIPLAT_OK)
      akv_op_end(op, st, why, NULL, 0, 0);
    return;
  }
  if (k->r.status == AKV_NO_RESPONDERS && op->put && !op->create_tried) {
    /* Nothing captures the subject: the bucket is gone. */
    op->create_tried = true;
    if ((st = akv_send(op, AKV_CREATE)) != AIPLAT_OK)
      akv_op_end(op, st, aip_thread_errmsg(), NULL, 0, 0);
    return;
  }
  if (!op->put) {
    akv_got(op, &k->r);
    return;
  }
  uint64_t rev = 0;
  st = akv_api_answer(&k->r, "kv: put", NULL, &rev, why, sizeof why);
  akv_op_end(op, st, why, NULL, 0, rev);
}

static void akv_on_end(aip_task *t) {
  akv_call *k = (akv_call *)((char *)t - offsetof(akv_call, end));
  aip_akv *kv = k->kv;
  aip_timer_stop(&k->timer);
  if (!k->silent) akv_next(k);
  free(k->r.data);
  free(k);
  pthread_mutex_lock(&kv->mu);
  kv->live--;
  pthread_cond_broadcast(&kv->cv);
  pthread_mutex_unlock(&kv->mu);
}

static void akv_on_timer(aip_timer *t) {
  akv_call *k = (akv_call *)((char *)t - offsetof(akv_call, timer));
  pthread_mutex_lock(&k->kv->mu);
  bool mine = akv_claim(k->kv, k);
  pthread_mutex_unlock(&k->kv->mu);
  if (!mine) return; /* its end is posted */
  k->st = AIPLAT_ERR_TIMEOUT;
  snprintf(k->why, sizeof k->why,
           "kv: no answer from the server within the deadline");
  akv_on_end(&k->end);
}

static void akv_on_arm(aip_task *t) {
  akv_call *k = (akv_call *)((char *)t - offsetof(akv_call, arm));
  k->timer.fn = akv_on_timer;
  aip_timer_start(&k->timer, k->deadline_ms * INT64_C(1000000));
}

static void akv_read_reply(aiplat_bus_msg *m, akv_reply *r) {
  const char *v = aip_bus_msg_header_peek(m, "Status");
  if (v) r->status = atoi(v);
  if ((v = aip_bus_msg_header_peek(m, "Description")))
    snprintf(r->desc, sizeof r->desc, "%s", v);
  if ((v = aip_bus_msg_header_peek(m, "KV-Operation")))
    snprintf(r->kv_op, sizeof r->kv_op, "%s", v);
  if ((v = aip_bus_msg_header_peek(m, "Nats-Sequence")))
    r->seq = strtoull(v, NULL, 10);
  size_t len = aiplat_bus_msg_len(m);
  if ((r->data = malloc(len + 1))) {
    if (len) memcpy(r->data, aiplat_bus_msg_data(m), len);
    r->data[len] = '\0';
    r->len = len;
  }
}

/* On the inbox's delivery thread. */
static void akv_on_reply(aiplat_bus_msg *m, void *ud) {
  aip_akv *kv = ud;
  const char *subject = aiplat_bus_msg_subject(m);
  size_t plen = strlen(kv->inbox);
  if (strncmp(subject, kv->inbox, plen) != 0 || subject[plen] != '.') return;
  char *end = NULL;
  uint64_t token = strtoull(subject + plen + 1, &end, 10);
  if (!end || *end) return;
  pthread_mutex_lock(&kv->mu);
  akv_call *k = kv->table[token % AKV_BUCKETS];
  while (k && k->token != token) k = k->next;
  bool mine = k && akv_claim(kv, k);
  pthread_mutex_unlock(&kv->mu);
  if (!mine) return; /* late: the call has ended */
  akv_read_reply(m, &k->r);
  aiplat_error_clear();
  k->st = k->r.data ? AIPLAT_OK : AIPLAT_ERR_NO_MEMORY;
  if (k->st) snprintf(k->why, sizeof k->why, "kv: out of memory");
  k->end.fn = akv_on_end;
  aip_loop_post(&k->end);
}

/* Send one request of @op with its reply on the inbox. */
static aiplat_status akv_request(akv_op *op, akv_kind kind,
                                 const char *subject, const void *body,
                                 size_t len) {
  aip_akv *kv = op->kv;
  natsConnection *nc = aip_bus_open_conn(kv->bus, NULL, "kv");
  if (!nc) return aip_fail(NULL, AIPLAT_ERR_STATE, "%s", aip_thread_errmsg());
  if (op->deadline_ms <= aip_now_ms())
    return aip_fail(NULL, AIPLAT_ERR_TIMEOUT, "kv: the deadline has passed");
  akv_call *k = calloc(1, sizeof *k);
  if (!k) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "kv: out of memory");
  k->kv = kv;
  k->op = op;
  k->kind = kind;
  k->deadline_ms = op->deadline_ms;
  k->arm.fn = akv_on_arm;
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&kv->mu);
  if (kv->closing) st = aip_fail(NULL, AIPLAT_ERR_CLOSED, "kv: closed");
  if (!st && !kv->mux) {
    char filter[96];
    snprintf(filter, sizeof filter, "%s.*", kv->inbox);
    st = aiplat_bus_subscribe(kv->bus, filter, NULL, akv_on_reply, kv,
                              &kv->mux);
  }
  if (!st) {
    k->token = ++kv->next;
    k->next = kv->table[k->token % AKV_BUCKETS];
    kv->table[k->token % AKV_BUCKETS] = k;
    st = aip_loop_post(&k->arm);
    if (st)
      akv_claim(kv, k);
    else
      kv->live++;
  }
  pthread_mutex_unlock(&kv->mu);
  if (st) {
    free(k);
    return st;
  }
  char reply[96];
  snprintf(reply, sizeof reply, "%s.%" PRIu64, kv->inbox, k->token);
  natsStatus s =
      natsConnection_PublishRequest(nc, subject, reply, body, (int)len);
  if (s == NATS_OK) return AIPLAT_OK;
  st = aip_bus_fail_nats(NULL, s, 0, "kv: send");
  pthread_mutex_lock(&kv->mu);
  bool mine = akv_claim(kv, k);
  pthread_mutex_unlock(&kv->mu);
  if (!mine) return AIPLAT_OK; /* the handle's end got there first */
  k->silent = true;
  k->end.fn = akv_on_end;
  aip_loop_post(&k->end);
  return st;
}

/* The stream of a bucket as aiplat_kv_open() makes it, direct get allowed. */
static char *akv_create_body(aip_akv *kv, size_t *len) {
  char *name = aip_sprintf("KV_%s", kv->bucket);
  char *subj = aip_sprintf("$KV.%s.>", kv->bucket);
  json_t *cfg =
      name && subj
          ? json_pack("{s:s, s:[s], s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:i, "
                      "s:b, s:b, s:b}",
                      "name", name, "subjects", subj, "retention", "limits",
                      "max_msgs_per_subject", (json_int_t)kv->history,
                      "max_age", (json_int_t)(kv->ttl_ms * 1000000),
                      "max_bytes", (json_int_t)-1, "max_msg_size",
                      (json_int_t)-1, "discard", "new", "storage", "file",
                      "num_replicas", 1, "allow_rollup_hdrs", 1, "deny_delete",
                      1, "allow_direct", 1)
          : NULL;
  char *body = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
  json_decref(cfg);
  free(name);
  free(subj);
  if (body) *len = strlen(body);
  return body;
}

static aiplat_status akv_send(akv_op *op, akv_kind kind) {
  aip_akv *kv = op->kv;
  pthread_mutex_lock(&kv->mu);
  bool ready = kv->ready, direct = kv->direct;
  pthread_mutex_unlock(&kv->mu);
  if (kind == AKV_MAIN && !ready) kind = AKV_INFO;
  if (kind == AKV_MAIN && !op->put && !direct)
    return aip_fail(NULL, AIPLAT_ERR_NOT_SUPPORTED,
                    "kv: get: bucket %s does not allow direct gets",
                    kv->bucket);
  char *subject = NULL, *body = NULL;
  size_t len = 0;
  if (kind == AKV_INFO) {
    subject = aip_sprintf("$JS.API.STREAM.INFO.KV_%s", kv->bucket);
  } else if (kind == AKV_CREATE) {
    subject = aip_sprintf("$JS.API.STREAM.CREATE.KV_%s", kv->bucket);
    body = akv_create_body(kv, &len);
  } else if (op->put) {
    subject = aip_sprintf("$KV.%s.%s", kv->bucket, op->key);
  } else {
    subject = aip_sprintf("$JS.API.DIRECT.GET.KV_%s", kv->bucket);
    body = aip_sprintf("{\"last_by_subj\":\"$KV.%s.%s\"}", kv->bucket,
                       op->key);
    if (body) len = strlen(body);
  }
  bool need_body = kind == AKV_CREATE || (kind == AKV_MAIN && !op->put);
  aiplat_status st;
  if (!subject || (need_body && !body))
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "kv: out of memory");
  else if (kind == AKV_MAIN && op->put)
    st = akv_request(op, kind, subject, op->val, op->len);
  else
    st = akv_request(op, kind, subject, body, len);
  free(subject);
  free(body);
  return st;
}

aiplat_status aip_akv_create(aip_akv **out, aiplat_bus *bus,
                             const char *bucket, int64_t ttl_ms, int history) {
  if (!out || !bus)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "kv: NULL argument");
  *out = NULL;
  aiplat_status st = aip_name_check(NULL, "kv: bucket name", bucket,
                                    NAME_MAX_LEN);
  if (st) return st;
  if (ttl_ms < 0 || ttl_ms > INT64_MAX / 1000000)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: ttl_ms out of range");
  if (history < 1 || history > KV_HISTORY_MAX)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: history must be 1..%d", KV_HISTORY_MAX);
  aip_akv *kv = calloc(1, sizeof *kv);
  if (!kv || !(kv->bucket = aip_strdup(bucket)) ||
      natsInbox_Create(&kv->inbox) != NATS_OK) {
    if (kv) free(kv->bucket);
    free(kv);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "kv: out of memory");
  }
  kv->bus = bus;
  kv->ttl_ms = ttl_ms;
  kv->history = history;
  pthread_mutex_init(&kv->mu, NULL);
  pthread_cond_init(&kv->cv, NULL);
  aip_bus_ref(bus);
  *out = kv;
  return AIPLAT_OK;
}

void aip_akv_destroy(aip_akv *kv) {
  if (!kv) return;
  akv_call *ended = NULL;
  pthread_mutex_lock(&kv->mu);
  kv->closing = true;
  for (size_t i = 0; i < AKV_BUCKETS; i++)
    while (kv->table[i]) {
      akv_call *k = kv->table[i];
      akv_claim(kv, k);
      k->next = ended;
      ended = k;
    }
  pthread_mutex_unlock(&kv->mu);
  /* No reply reaches a call from here: they are out of the table. */
  aiplat_bus_sub_destroy(kv->mux);
  while (ended) {
    akv_call *k = ended;
    ended = k->next;
    k->st = AIPLAT_ERR_CLOSED;
    snprintf(k->why, sizeof k->why, "kv: closed");
    k->end.fn = akv_on_end;
    aip_loop_post(&k->end);
  }
  pthread_mutex_lock(&kv->mu);
  while (kv->live > 0) pthread_cond_wait(&kv->cv, &kv->mu);
  pthread_mutex_unlock(&kv->mu);
  pthread_cond_destroy(&kv->cv);
  pthread_mutex_destroy(&kv->mu);
  natsInbox_Destroy(kv->inbox);
  free(kv->bucket);
  aiplat_bus *bus = kv->bus;
  free(kv);
  aip_bus_unref(bus);
}

static aiplat_status akv_start(aip_akv *kv, bool put, const char *key,
                               const void *data, size_t len,
                               int64_t deadline_ms, aip_akv_fn done,
                               void *ud) {
  if (!kv || !done)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "kv: NULL argument");
  aiplat_status st = check_key(NULL, key);
  if (st) return st;
  if (put && !data && len)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: put: data is NULL but len is %zu", len);
  natsConnection *nc = aip_bus_open_conn(kv->bus, NULL, "kv");
  if (!nc) return aip_fail(NULL, AIPLAT_ERR_STATE, "%s", aip_thread_errmsg());
  int64_t max = natsConnection_GetMaxPayload(nc);
  if (put && (len > INT_MAX || (max > 0 && (int64_t)len > max)))
    return aip_fail(NULL, AIPLAT_ERR_TOO_LARGE,
                    "kv: put: value of %zu bytes exceeds the server's "
                    "max_payload of %lld bytes",
                    len, (long long)max);
  akv_op *op = calloc(1, sizeof *op);
  if (!op || !(op->key = aip_strdup(key)) ||
      (put && !(op->val = malloc(len ? len : 1)))) {
    if (op) free(op->key);
    free(op);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "kv: out of memory");
  }
  if (put && len) memcpy(op->val, data, len);
  op->kv = kv;
  op->put = put;
  op->len = len;
  op->deadline_ms =
      deadline_ms > 0 ? deadline_ms : aip_now_ms() + AKV_DEFAULT_TIMEOUT_MS;
  op->done = done;
  op->ud = ud;
  if ((st = akv_send(op, AKV_MAIN)) != AIPLAT_OK) {
    free(op->key);
    free(op->val);
    free(op);
  }
  return st;
}

aiplat_status aip_akv_get(aip_akv *kv, const char *key, int64_t deadline_ms,
                          aip_akv_fn done, void *ud) {
  return akv_start(kv, false, key, NULL, 0, deadline_ms, done, ud);
}

aiplat_status aip_akv_put(aip_akv *kv, const char *key, const void *data,
                          size_t len, int64_t deadline_ms, aip_akv_fn done,
                          void *ud) {
  return akv_start(kv, true, key, data, len, deadline_ms, done, ud);
}
