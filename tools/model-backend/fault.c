/* Fault specifications and one-shot counters. */
#include "fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define ONESHOT_MAX 4096

void bk_fault_init(bk_fault *f) {
  memset(f, 0, sizeof *f);
  f->retry_after = -1;
  f->truncate = -1;
  f->cut = -1;
  f->interval_ms = -1;
  f->stream_error = -1;
}

static bool parse_long(const char *v, long min, long max, long *out) {
  if (!v || !*v) return false;
  errno = 0;
  char *end;
  long x = strtol(v, &end, 10);
  if (errno || *end || x < min || x > max) return false;
  *out = x;
  return true;
}

static bool key_ok(const char *k) {
  size_t n = strlen(k);
  if (n == 0 || n > BK_FAULT_KEY_MAX) return false;
  for (const char *p = k; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

static const char *const names[] = {
    "delay", "status",   "retry_after",  "malformed",  "truncate", "cut",
    "split", "interval", "stream_error", "fail_first", "key",
};

bool bk_fault_is_name(const char *name) {
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) return true;
  return false;
}

#define BAD(...)                                        \
  do {                                                  \
    if (errlen > 0) snprintf(err, errlen, __VA_ARGS__); \
    return false;                                       \
  } while (0)

bool bk_fault_set(bk_fault *f, const char *name, const char *value, char *err,
                  size_t errlen) {
  long x = 0;
  bool flag_on = !value || !*value || strcmp(value, "1") == 0 ||
                 strcmp(value, "true") == 0;
  if (strcmp(name, "delay") == 0) {
    if (!parse_long(value, 0, 60000, &x))
      BAD("fault delay needs milliseconds 0..60000");
    f->delay_ms = (int)x;
  } else if (strcmp(name, "status") == 0) {
    if (!parse_long(value, 400, 599, &x))
      BAD("fault status needs an HTTP status 400..599");
    f->status = (int)x;
  } else if (strcmp(name, "retry_after") == 0) {
    if (!parse_long(value, 0, 86400, &x))
      BAD("fault retry_after needs seconds 0..86400");
    f->retry_after = (int)x;
  } else if (strcmp(name, "malformed") == 0) {
    if (!flag_on && strcmp(value, "0") != 0 && strcmp(value, "false") != 0)
      BAD("fault malformed takes no value (or 1/0)");
    f->malformed = flag_on;
  } else if (strcmp(name, "truncate") == 0) {
    if (!parse_long(value, 0, 1L << 30, &x))
      BAD("fault truncate needs a byte count");
    f->truncate = x;
  } else if (strcmp(name, "cut") == 0) {
    if (!value || !*value)
      x = BK_CUT_HALF;
    else if (!parse_long(value, 0, 1000000, &x))
      BAD("fault cut takes an event count (or nothing: half)");
    f->cut = x;
  } else if (strcmp(name, "split") == 0) {
    if (!parse_long(value, 1, 65536, &x))
      BAD("fault split needs bytes per write 1..65536");
    f->split = (int)x;
  } else if (strcmp(name, "interval") == 0) {
    if (!parse_long(value, 0, 10000, &x))
      BAD("fault interval needs milliseconds 0..10000");
    f->interval_ms = (int)x;
  } else if (strcmp(name, "stream_error") == 0) {
    if (!parse_long(value, 0, 1000000, &x))
      BAD("fault stream_error needs an event count");
    f->stream_error = x;
  } else if (strcmp(name, "fail_first") == 0) {
    if (!parse_long(value, 1, 1000, &x))
      BAD("fault fail_first needs a request count 1..1000");
    f->fail_first = (int)x;
  } else if (strcmp(name, "key") == 0) {
    if (!value || !key_ok(value))
      BAD("fault key needs 1..128 characters of [A-Za-z0-9._:-]");
    snprintf(f->key, sizeof f->key, "%s", value);
  } else {
    BAD("unknown fault '%.40s' (known: delay, status, retry_after, malformed, "
        "truncate, cut, split, interval, stream_error, fail_first, key)",
        name);
  }
  f->any = true;
  return true;
}

bool bk_fault_parse(bk_fault *f, const char *spec, char *err, size_t errlen) {
  if (!spec) return true;
  char *copy = strdup(spec);
  if (!copy) BAD("out of memory");
  bool ok = true;
  char *save = NULL;
  for (char *item = strtok_r(copy, ";,& \t", &save); ok && item;
       item = strtok_r(NULL, ";,& \t", &save)) {
    char *eq = strchr(item, '=');
    if (eq) *eq = '\0';
    ok = bk_fault_set(f, item, eq ? eq + 1 : NULL, err, errlen);
  }
  free(copy);
  return ok;
}

bool bk_fault_check(const bk_fault *f, char *err, size_t errlen) {
  if (f->fail_first > 0 && !f->key[0])
    BAD("fault fail_first needs key=K to name its counter");
  if (f->key[0] && f->fail_first == 0)
    BAD("fault key is only meaningful with fail_first=N");
  return true;
}

bool bk_fault_has_failure(const bk_fault *f) {
  return f->status || f->malformed || f->truncate >= 0 || f->cut != -1 ||
         f->stream_error >= 0;
}

/* ---- one-shot counters -------------------------------------------------- */

typedef struct oneshot_entry {
  char key[BK_FAULT_KEY_MAX + 1];
  int count;
  unsigned long stamp;
} oneshot_entry;

struct bk_oneshot {
  pthread_mutex_t mu;
  oneshot_entry *v;
  size_t n;
  unsigned long clock;
};

bk_oneshot *bk_oneshot_create(void) {
  bk_oneshot *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->v = calloc(ONESHOT_MAX, sizeof *t->v);
  if (!t->v) {
    free(t);
    return NULL;
  }
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

void bk_oneshot_destroy(bk_oneshot *t) {
  if (!t) return;
  pthread_mutex_destroy(&t->mu);
  free(t->v);
  free(t);
}

bool bk_oneshot_take(bk_oneshot *t, const char *key, int n) {
  pthread_mutex_lock(&t->mu);
  oneshot_entry *e = NULL;
  for (size_t i = 0; i < t->n && !e; i++)
    if (strcmp(t->v[i].key, key) == 0) e = &t->v[i];
  if (!e) {
    if (t->n < ONESHOT_MAX) {
      e = &t->v[t->n++];
    } else { /* forget the least recently used key */
      e = &t->v[0];
      for (size_t i = 1; i < t->n; i++)
        if (t->v[i].stamp < e->stamp) e = &t->v[i];
    }
    snprintf(e->key, sizeof e->key, "%s", key);
    e->count = 0;
  }
  e->stamp = ++t->clock;
  bool fail = e->count < n;
  if (e->count < n) e->count++;
  pthread_mutex_unlock(&t->mu);
  return fail;
}
