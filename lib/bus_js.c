/* JetStream streams and publishing, and Key-Value buckets. See ADR 0006. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_internal.h"
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

static aiplat_status check_key(aiplat_kv *kv, const char *key) {
  if (!key || !*key)
    return aip_fail(&kv->err, AIPLAT_ERR_INVALID_ARGUMENT, "kv: key is empty");
  size_t len = strnlen(key, KV_KEY_MAX + 1);
  if (len > KV_KEY_MAX)
    return aip_fail(&kv->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: key is longer than %d bytes", KV_KEY_MAX);
  if (key[0] == '.' || key[len - 1] == '.' || strstr(key, ".."))
    return aip_fail(&kv->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv: key may not start or end with '.' or hold '..'");
  for (size_t i = 0; i < len; i++) {
    char c = key[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '=' ||
              c == '/' || c == '.';
    if (!ok)
      return aip_fail(&kv->err, AIPLAT_ERR_INVALID_ARGUMENT,
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
  aiplat_status st = check_key(kv, key);
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
  aiplat_status st = check_key(kv, key);
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
  aiplat_status st = check_key(kv, key);
  if (st) return st;
  if (!aip_bus_open_conn(kv->bus, &kv->err, "kv: delete"))
    return aip_err_copy(&kv->err, NULL, 0);
  natsStatus s = kvStore_Delete(kv->store, key);
  if (s != NATS_OK) return aip_bus_fail_nats(&kv->err, s, 0, "kv: delete");
  return AIPLAT_OK;
}
