/* Metrics registry and the Prometheus text exposition format 0.0.4. */
#include "config.h" /* autoconf's: before any system header */

/* System and dependency headers, then the library's own. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics.h"

struct aip_series {
  aip_series *next; /* older series; immutable once published */
  const aiplat_metric *family;
  uint64_t hash;
  char **values; /* one per label name */
  char *ltext;   /* rendered `{a="x",b="y"` without the brace, "" if none */
  size_t ltext_len;
  aip_metric_type type;
  _Atomic uint64_t ival;     /* counter: whole increments */
  _Atomic uint64_t dbits;    /* counter: other increments; gauge: value;
                                histogram: sum (bits of a double) */
  _Atomic uint64_t counts[]; /* histogram: per bucket, then the overflow */
};

struct aiplat_metric {
  aiplat_metrics *reg;
  aiplat_metric *next; /* registration order, under reg->mu */
  aip_metric_type type;
  char *name;
  char *help;
  size_t nlabels;
  char **labels;
  size_t nbuckets;
  double *buckets;
  char **le;                  /* the bounds as rendered in le="..." */
  pthread_mutex_t mu;         /* serialises series creation */
  _Atomic(aip_series *) head; /* newest first, read without a lock */
  size_t nseries;             /* under mu */
};

struct aiplat_metrics {
  aip_err err;
  pthread_mutex_t mu; /* family list: registration and rendering */
  aiplat_metric *first;
  aiplat_metric *last;
  size_t nfamilies;
  double start_time;
  bool standalone; /* made by aiplat_metrics_create(), not a health handle */
  _Atomic(aiplat_metric *) std_requests;
  _Atomic(aiplat_metric *) std_errors;
  _Atomic(aiplat_metric *) std_duration;
  _Atomic(aiplat_metric *) std_in_flight;
  _Atomic(aip_series *) std_reconnects;
  _Atomic(aip_series *) std_disconnects;
};

const double aip_metrics_default_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
const size_t aip_metrics_default_nbuckets =
    AIP_ARRAY_LEN(aip_metrics_default_buckets);

/* Names the registry renders itself from the process's state. */
static const char *const process_names[] = {"process_cpu_seconds_total",
                                            "process_open_fds",
                                            "process_max_fds",
                                            "process_virtual_memory_bytes",
                                            "process_resident_memory_bytes",
                                            "process_start_time_seconds"};

/* ---- small helpers ----------------------------------------------------- */

static double bits_to_double(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static uint64_t double_to_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static void atomic_add_double(_Atomic uint64_t *cell, double v) {
  uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
  uint64_t next;
  do {
    next = double_to_bits(bits_to_double(old) + v);
  } while (!atomic_compare_exchange_weak_explicit(
      cell, &old, next, memory_order_relaxed, memory_order_relaxed));
}


static bool valid_metric_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > AIP_METRICS_MAX_NAME) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

static bool valid_label_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > AIP_METRICS_MAX_NAME) return false;
  if (n >= 2 && s[0] == '_' && s[1] == '_') return false; /* reserved */
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

static uint64_t hash_values(const char *const *v, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++) {
      h ^= *p;
      h *= 1099511628211ULL;
    }
    h ^= 0xff; /* separator: ("a","bc") and ("ab","c") differ */
    h *= 1099511628211ULL;
  }
  return h;
}

static const char *type_name(aip_metric_type t) {
  switch (t) {
    case AIP_METRIC_COUNTER:
      return "counter";
    case AIP_METRIC_GAUGE:
      return "gauge";
    default:
      return "histogram";
  }
}

/* ---- series ------------------------------------------------------------ */

static bool put_escaped(aip_buf *b, const char *s, bool quote);
static bool put_double(aip_buf *b, double v);

/* The label set is rendered once, when the series is made: a scrape then
 * copies it instead of formatting it for every line. */
static bool series_render_labels(aip_series *s, const aiplat_metric *f) {
  aip_buf b = {0};
  bool ok = aip_buf_reserve(&b, 0);
  for (size_t i = 0; ok && i < f->nlabels; i++)
    ok = aip_buf_putc(&b, i == 0 ? '{' : ',') &&
         aip_buf_puts(&b, f->labels[i]) && aip_buf_puts(&b, "=\"") &&
         put_escaped(&b, s->values[i], true) && aip_buf_putc(&b, '"');
  if (!ok) {
    aip_buf_free(&b);
    return false;
  }
  s->ltext = aip_buf_steal(&b, &s->ltext_len);
  return true;
}

static void series_free(aip_series *s, size_t nlabels) {
  if (!s) return;
  if (s->values)
    for (size_t i = 0; i < nlabels; i++) free(s->values[i]);
  free(s->values);
  free(s->ltext);
  free(s);
}

static aip_series *series_find(aiplat_metric *f, uint64_t h,
                               const char *const *values) {
  for (aip_series *s = atomic_load_explicit(&f->head, memory_order_acquire); s;
       s = s->next) {
    if (s->hash != h) continue;
    size_t i = 0;
    while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0) i++;
    if (i == f->nlabels) return s;
  }
  return NULL;
}

static aip_series *series_new(aiplat_metric *f, uint64_t h,
                              const char *const *values) {
  size_t ncounts = f->type == AIP_METRIC_HISTOGRAM ? f->nbuckets + 1 : 0;
  aip_series *s = calloc(1, sizeof *s + ncounts * sizeof s->counts[0]);
  if (!s) return NULL;
  s->type = f->type;
  s->hash = h;
  s->family = f;
  if (f->nlabels && !(s->values = calloc(f->nlabels, sizeof *s->values))) {
    free(s);
    return NULL;
  }
  for (size_t i = 0; i < f->nlabels; i++) {
    if (!(s->values[i] = strdup(values[i]))) {
      series_free(s, f->nlabels);
      return NULL;
    }
  }
  if (!series_render_labels(s, f)) {
    series_free(s, f->nlabels);
    return NULL;
  }
  atomic_init(&s->ival, 0);
  atomic_init(&s->dbits, double_to_bits(0.0));
  for (size_t i = 0; i < ncounts; i++) atomic_init(&s->counts[i], 0);
  return s;
}

aiplat_status aip_metric_series_get(aiplat_metric *f, const char *const *values,
                                    size_t n, aip_series **out) {
  aip_err *err = &f->reg->err;
  *out = NULL;
  if (n != f->nlabels)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s has %zu labels, %zu values given", f->name,
                    f->nlabels, n);
  if (n && !values)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: label values are NULL", f->name);
  for (size_t i = 0; i < n; i++) {
    if (!values[i])
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "metrics: %s: value of label %s is NULL", f->name,
                      f->labels[i]);
    size_t len = strlen(values[i]);
    if (len > AIP_METRICS_MAX_VALUE)
      return aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                      "metrics: %s: value of label %s is %zu bytes (limit %d)",
                      f->name, f->labels[i], len, AIP_METRICS_MAX_VALUE);
    if (!aip_utf8_valid(values[i], len))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "metrics: %s: value of label %s is not UTF-8", f->name,
                      f->labels[i]);
  }
  uint64_t h = hash_values(values, n);
  aip_series *s = series_find(f, h, values);
  if (s) {
    *out = s;
    return AIPLAT_OK;
  }
  aiplat_status st = AIPLAT_OK;
  pthread_mutex_lock(&f->mu);
  s = series_find(f, h, values); /* another thread may have won */
  if (!s) {
    if (f->nseries >= AIP_METRICS_MAX_SERIES) {
      st = aip_fail(err, AIPLAT_ERR_TOO_LARGE,
                    "metrics: %s already has %d series: label values must "
                    "come from a small set",
                    f->name, AIP_METRICS_MAX_SERIES);
    } else if (!(s = series_new(f, h, values))) {
      st = aip_fail(err, AIPLAT_ERR_NO_MEMORY, "metrics: %s: out of memory",
                    f->name);
    } else {
      s->next = atomic_load_explicit(&f->head, memory_order_relaxed);
      f->nseries++;
      /* Publish: readers see a fully built series or none. */
      atomic_store_explicit(&f->head, s, memory_order_release);
    }
  }
  pthread_mutex_unlock(&f->mu);
  *out = s;
  return st;
}

aip_series *aip_metric_series(aiplat_metric *f, const char *const *values,
                              size_t n) {
  aip_series *s = NULL;
  if (!f) return NULL;
  aip_metric_series_get(f, values, n, &s);
  return s;
}

void aip_series_inc(aip_series *s, uint64_t n) {
  if (!s) return;
  if (s->type == AIP_METRIC_COUNTER)
    atomic_fetch_add_explicit(&s->ival, n, memory_order_relaxed);
  else if (s->type == AIP_METRIC_GAUGE)
    atomic_add_double(&s->dbits, (double)n);
}

void aip_series_add(aip_series *s, double v) {
  if (!s || isnan(v) || s->type == AIP_METRIC_HISTOGRAM) return;
  if (s->type == AIP_METRIC_COUNTER && !(v >= 0)) return;
  /* Whole increments of a counter stay exact in the integer cell. */
  if (s->type == AIP_METRIC_COUNTER && v < 9007199254740992.0 && v == floor(v))
    atomic_fetch_add_explicit(&s->ival, (uint64_t)v, memory_order_relaxed);
  else
    atomic_add_double(&s->dbits, v);
}

void aip_series_set(aip_series *s, double v) {
  if (!s || s->type != AIP_METRIC_GAUGE) return;
  atomic_store_explicit(&s->dbits, double_to_bits(v), memory_order_relaxed);
}

void aip_series_observe(aip_series *s, double v) {
  if (!s || isnan(v) || s->type != AIP_METRIC_HISTOGRAM) return;
  const aiplat_metric *f = s->family;
  size_t lo = 0, hi = f->nbuckets; /* first bucket with v <= bound */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v <= f->buckets[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  atomic_fetch_add_explicit(&s->counts[lo], 1, memory_order_relaxed);
  atomic_add_double(&s->dbits, v);
}

double aip_series_value(const aip_series *s) {
  if (!s) return 0;
  aip_series *m = (aip_series *)s; /* atomics are read-only here */
  if (s->type == AIP_METRIC_HISTOGRAM) {
    uint64_t n = 0;
    for (size_t i = 0; i <= s->family->nbuckets; i++)
      n += atomic_load_explicit(&m->counts[i], memory_order_relaxed);
    return (double)n;
  }
  double d =
      bits_to_double(atomic_load_explicit(&m->dbits, memory_order_relaxed));
  if (s->type == AIP_METRIC_COUNTER)
    d += (double)atomic_load_explicit(&m->ival, memory_order_relaxed);
  return d;
}

/* ---- families ---------------------------------------------------------- */

static void family_free(aiplat_metric *f) {
  if (!f) return;
  aip_series *s = atomic_load_explicit(&f->head, memory_order_relaxed);
  while (s) {
    aip_series *next = s->next;
    series_free(s, f->nlabels);
    s = next;
  }
  for (size_t i = 0; f->labels && i < f->nlabels; i++) free(f->labels[i]);
  free(f->labels);
  for (size_t i = 0; f->le && i < f->nbuckets; i++) free(f->le[i]);
  free(f->le);
  free(f->buckets);
  free(f->name);
  free(f->help);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

static bool same_family(const aiplat_metric *f, aip_metric_type type,
                        const char *help, const char *const *labels,
                        size_t nlabels, const double *buckets,
                        size_t nbuckets) {
  if (f->type != type || strcmp(f->help, help) != 0 || f->nlabels != nlabels)
    return false;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], labels[i]) != 0) return false;
  if (type != AIP_METRIC_HISTOGRAM) return true;
  if (f->nbuckets != nbuckets) return false;
  for (size_t i = 0; i < nbuckets; i++)
    if (f->buckets[i] != buckets[i]) return false;
  return true;
}

/* Does family @f render a sample line named @name? */
static bool family_renders(const aiplat_metric *f, const char *name) {
  if (strcmp(f->name, name) == 0) return true;
  if (f->type != AIP_METRIC_HISTOGRAM) return false;
  size_t n = strlen(f->name);
  if (strncmp(name, f->name, n) != 0) return false;
  const char *rest = name + n;
  return strcmp(rest, "_bucket") == 0 || strcmp(rest, "_sum") == 0 ||
         strcmp(rest, "_count") == 0;
}

static aiplat_status check_definition(aiplat_metrics *m, aip_metric_type type,
                                      const char *name, const char *help,
                                      const char *const *labels, size_t nlabels,
                                      const double *buckets, size_t nbuckets) {
  aip_err *err = &m->err;
  if (!name || !valid_metric_name(name))
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: invalid metric name \"%.*s\" (expected "
                    "[a-zA-Z_:][a-zA-Z0-9_:]*, at most %d bytes)",
                    64, name ? name : "(null)", AIP_METRICS_MAX_NAME);
  size_t hl = strlen(help);
  if (hl > AIP_METRICS_MAX_HELP || !aip_utf8_valid(help, hl))
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: help must be UTF-8 of at most %d bytes", name,
                    AIP_METRICS_MAX_HELP);
  if (nlabels > AIP_METRICS_MAX_LABELS)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: %zu labels (limit %d)", name, nlabels,
                    AIP_METRICS_MAX_LABELS);
  if (nlabels && !labels)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: label names are NULL", name);
  for (size_t i = 0; i < nlabels; i++) {
    if (!labels[i] || !valid_label_name(labels[i]))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "metrics: %s: invalid label name \"%.*s\" (expected "
                      "[a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                      name, 64, labels[i] ? labels[i] : "(null)");
    if (type == AIP_METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "metrics: %s: label name \"le\" is reserved in "
                      "histograms",
                      name);
    for (size_t j = 0; j < i; j++)
      if (strcmp(labels[i], labels[j]) == 0)
        return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                        "metrics: %s: label name \"%s\" given twice", name,
                        labels[i]);
  }
  if (type != AIP_METRIC_HISTOGRAM) return AIPLAT_OK;
  if (nbuckets > AIP_METRICS_MAX_BUCKETS)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: %zu buckets (limit %d)", name, nbuckets,
                    AIP_METRICS_MAX_BUCKETS);
  for (size_t i = 0; i < nbuckets; i++) {
    if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "metrics: %s: bucket bounds must be finite and "
                      "strictly increasing (bound %zu)",
                      name, i);
  }
  return AIPLAT_OK;
}

aiplat_status aip_metrics_register(aiplat_metrics *m, aip_metric_type type,
                                   const char *name, const char *help,
                                   const char *const *labels, size_t nlabels,
                                   const double *buckets, size_t nbuckets,
                                   aiplat_metric **out) {
  if (!m || !out)
    return aip_fail(m ? &m->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: NULL registry or out");
  *out = NULL;
  if (!help) help = "";
  if (type == AIP_METRIC_HISTOGRAM && (!buckets || nbuckets == 0)) {
    buckets = aip_metrics_default_buckets;
    nbuckets = aip_metrics_default_nbuckets;
  }
  if (type != AIP_METRIC_HISTOGRAM) nbuckets = 0;
  aiplat_status st =
      check_definition(m, type, name, help, labels, nlabels, buckets, nbuckets);
  if (st != AIPLAT_OK) return st;

  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < AIP_ARRAY_LEN(process_names); i++) {
    if (strcmp(name, process_names[i]) == 0) {
      st = aip_fail(&m->err, AIPLAT_ERR_EXISTS,
                    "metrics: %s is a process metric the registry renders "
                    "itself",
                    name);
      goto out;
    }
  }
  aiplat_metric probe_new = {.name = (char *)name, .type = type};
  for (aiplat_metric *f = m->first; f; f = f->next) {
    if (strcmp(f->name, name) == 0) {
      if (same_family(f, type, help, labels, nlabels, buckets, nbuckets)) {
        *out = f;
      } else {
        st = aip_fail(&m->err, AIPLAT_ERR_EXISTS,
                      "metrics: %s is already registered as a %s with other "
                      "help, labels or buckets",
                      name, type_name(f->type));
      }
      goto out;
    }
    if (family_renders(f, name) || family_renders(&probe_new, f->name)) {
      st = aip_fail(&m->err, AIPLAT_ERR_EXISTS,
                    "metrics: %s collides with the lines of %s %s", name,
                    type_name(f->type), f->name);
      goto out;
    }
  }
  if (m->nfamilies >= AIP_METRICS_MAX_FAMILIES) {
    st = aip_fail(&m->err, AIPLAT_ERR_TOO_LARGE,
                  "metrics: registry already has %d families",
                  AIP_METRICS_MAX_FAMILIES);
    goto out;
  }
  aiplat_metric *f = calloc(1, sizeof *f);
  if (!f) goto nomem;
  pthread_mutex_init(&f->mu, NULL);
  atomic_init(&f->head, NULL);
  f->reg = m;
  f->type = type;
  f->nlabels = nlabels;
  f->nbuckets = nbuckets;
  if (!(f->name = strdup(name)) || !(f->help = strdup(help)) ||
      (nlabels && !(f->labels = calloc(nlabels, sizeof *f->labels))) ||
      (nbuckets && !(f->buckets = malloc(nbuckets * sizeof *f->buckets)))) {
    family_free(f);
    goto nomem;
  }
  for (size_t i = 0; i < nlabels; i++) {
    if (!(f->labels[i] = strdup(labels[i]))) {
      family_free(f);
      goto nomem;
    }
  }
  if (nbuckets) memcpy(f->buckets, buckets, nbuckets * sizeof *buckets);
  if (nbuckets && !(f->le = calloc(nbuckets, sizeof *f->le))) {
    family_free(f);
    goto nomem;
  }
  for (size_t i = 0; i < nbuckets; i++) {
    aip_buf lb = {0};
    if (!put_double(&lb, buckets[i])) {
      aip_buf_free(&lb);
      family_free(f);
      goto nomem;
    }
    f->le[i] = aip_buf_steal(&lb, NULL);
  }
  /* A family without labels has exactly one series: show it from now on. */
  if (nlabels == 0) {
    aip_series *s = NULL;
    if (aip_metric_series_get(f, NULL, 0, &s) != AIPLAT_OK) {
      family_free(f);
      goto nomem;
    }
  }
  if (m->last)
    m->last->next = f;
  else
    m->first = f;
  m->last = f;
  m->nfamilies++;
  *out = f;
  goto out;
nomem:
  st = aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "metrics: %s: out of memory",
                name);
out:
  pthread_mutex_unlock(&m->mu);
  return st;
}

/* ---- registry ---------------------------------------------------------- */

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static double process_start_time;

/* The process's start from /proc (boot time + start ticks), so that it is
 * right even when the registry is created late; now as a fallback. */
static void compute_start_time(void) {
  process_start_time = (double)aip_wall_ms() / 1000.0;
  char buf[4096];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return;
  p++;
  unsigned long long ticks = 0;
  /* Field 22 (starttime); field 3 (state) follows the ')'. */
  for (int field = 3; field <= 22; field++) {
    while (*p == ' ') p++;
    if (!*p) return;
    if (field == 22) {
      ticks = strtoull(p, NULL, 10);
      break;
    }
    while (*p && *p != ' ') p++;
  }
  FILE *f = fopen("/proc/stat", "re");
  if (!f) return;
  char line[256];
  unsigned long long btime = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "btime %llu", &btime) == 1) break;
  fclose(f);
  long hz = sysconf(_SC_CLK_TCK);
  if (btime == 0 || hz <= 0) return;
  process_start_time = (double)btime + (double)ticks / (double)hz;
}

aiplat_status aip_metrics_new(aiplat_metrics **out) {
  aiplat_metrics *m = calloc(1, sizeof *m);
  if (!m) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "metrics: out of memory");
  aip_err_init(&m->err);
  pthread_mutex_init(&m->mu, NULL);
  pthread_once(&start_once, compute_start_time);
  m->start_time = process_start_time;
  *out = m;
  return AIPLAT_OK;
}

void aip_metrics_free(aiplat_metrics *m) {
  if (!m) return;
  aiplat_metric *f = m->first;
  while (f) {
    aiplat_metric *next = f->next;
    family_free(f);
    f = next;
  }
  pthread_mutex_destroy(&m->mu);
  aip_err_destroy(&m->err);
  free(m);
}

/* ---- exposition -------------------------------------------------------- */

static bool put_u64(aip_buf *b, uint64_t v) {
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return aip_buf_append(b, tmp + i, sizeof tmp - i);
}

/* Shortest text that reads back as the same double; integers without a
 * fraction; NaN and infinities as the format spells them. */
static bool put_double(aip_buf *b, double v) {
  if (isnan(v)) return aip_buf_puts(b, "NaN");
  if (isinf(v)) return aip_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  if (v == floor(v) && fabs(v) < 1e15) {
    if (v < 0 && !aip_buf_putc(b, '-')) return false;
    return put_u64(b, (uint64_t)fabs(v));
  }
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  return aip_buf_puts(b, tmp);
}

static bool put_escaped(aip_buf *b, const char *s, bool quote) {
  for (; *s; s++) {
    bool ok;
    if (*s == '\\')
      ok = aip_buf_puts(b, "\\\\");
    else if (*s == '\n')
      ok = aip_buf_puts(b, "\\n");
    else if (quote && *s == '"')
      ok = aip_buf_puts(b, "\\\"");
    else
      ok = aip_buf_putc(b, *s);
    if (!ok) return false;
  }
  return true;
}

static bool put_header(aip_buf *b, const char *name, const char *help,
                       const char *type) {
  bool ok = aip_buf_printf(b, "# HELP %s", name);
  if (ok && *help) ok = aip_buf_putc(b, ' ') && put_escaped(b, help, false);
  return ok && aip_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* The series' label set, with le="..." appended for a bucket line. */
static bool put_labels(aip_buf *b, const aip_series *s, const char *le) {
  if (!le)
    return s->ltext_len == 0 ||
           (aip_buf_append(b, s->ltext, s->ltext_len) && aip_buf_putc(b, '}'));
  return (s->ltext_len ? aip_buf_append(b, s->ltext, s->ltext_len) &&
                             aip_buf_putc(b, ',')
                       : aip_buf_putc(b, '{')) &&
         aip_buf_puts(b, "le=\"") && aip_buf_puts(b, le) &&
         aip_buf_puts(b, "\"}");
}

static bool put_series(aip_buf *b, const aiplat_metric *f, aip_series *s) {
  bool ok = true;
  if (f->type != AIP_METRIC_HISTOGRAM) {
    ok = aip_buf_puts(b, f->name) && put_labels(b, s, NULL) &&
         aip_buf_putc(b, ' ');
    uint64_t iv = atomic_load_explicit(&s->ival, memory_order_relaxed);
    double dv =
        bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed));
    if (f->type == AIP_METRIC_COUNTER && dv == 0)
      ok = ok && put_u64(b, iv);
    else if (f->type == AIP_METRIC_COUNTER)
      ok = ok && put_double(b, (double)iv + dv);
    else
      ok = ok && put_double(b, dv);
    return ok && aip_buf_putc(b, '\n');
  }
  /* Each bucket is read once; the running total is both the +Inf bucket
   * and _count, so they agree even while observations arrive. */
  uint64_t cum = 0;
  for (size_t i = 0; ok && i <= f->nbuckets; i++) {
    cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    ok = aip_buf_puts(b, f->name) && aip_buf_puts(b, "_bucket") &&
         put_labels(b, s, i == f->nbuckets ? "+Inf" : f->le[i]) &&
         aip_buf_putc(b, ' ') && put_u64(b, cum) && aip_buf_putc(b, '\n');
  }
  double sum =
      bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed));
  ok = ok && aip_buf_puts(b, f->name) && aip_buf_puts(b, "_sum") &&
       put_labels(b, s, NULL) && aip_buf_putc(b, ' ') && put_double(b, sum) &&
       aip_buf_putc(b, '\n');
  ok = ok && aip_buf_puts(b, f->name) && aip_buf_puts(b, "_count") &&
       put_labels(b, s, NULL) && aip_buf_putc(b, ' ') && put_u64(b, cum) &&
       aip_buf_putc(b, '\n');
  return ok;
}

static bool put_family(aip_buf *b, aiplat_metric *f) {
  if (!put_header(b, f->name, f->help, type_name(f->type))) return false;
  /* The list is newest first; print in creation order. Series are never
   * removed, so the snapshot taken here stays valid. */
  aip_series *head = atomic_load_explicit(&f->head, memory_order_acquire);
  size_t n = 0;
  for (aip_series *s = head; s; s = s->next) n++;
  if (n == 0) return true;
  aip_series **v = malloc(n * sizeof *v);
  if (!v) return false;
  size_t i = n;
  for (aip_series *s = head; s; s = s->next) v[--i] = s;
  bool ok = true;
  for (i = 0; ok && i < n; i++) ok = put_series(b, f, v[i]);
  free(v);
  return ok;
}

static bool put_sample(aip_buf *b, const char *name, const char *help,
                       const char *type, double v) {
  return put_header(b, name, help, type) && aip_buf_printf(b, "%s ", name) &&
         put_double(b, v) && aip_buf_putc(b, '\n');
}

static long count_open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  long n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static bool put_process(aip_buf *b, const aiplat_metrics *m) {
  bool ok = true;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    double cpu =
        (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
        ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    ok = put_sample(b, "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                    "counter", cpu);
  }
  long fds = count_open_fds();
  if (ok && fds >= 0)
    ok = put_sample(b, "process_open_fds", "Number of open file descriptors.",
                    "gauge", (double)fds);
  struct rlimit rl;
  if (ok && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    ok = put_sample(b, "process_max_fds",
                    "Maximum number of open file descriptors.", "gauge",
                    (double)rl.rlim_cur);
  char buf[256];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  unsigned long long size = 0, resident = 0;
  long page = sysconf(_SC_PAGESIZE);
  if (n > 0) {
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) == 2 && page > 0) {
      ok = ok && put_sample(b, "process_virtual_memory_bytes",
                            "Virtual memory size in bytes.", "gauge",
                            (double)size * (double)page);
      ok = ok && put_sample(b, "process_resident_memory_bytes",
                            "Resident memory size in bytes.", "gauge",
                            (double)resident * (double)page);
    }
  }
  return ok && put_sample(b, "process_start_time_seconds",
                          "Start time of the process since unix epoch in "
                          "seconds.",
                          "gauge", m->start_time);
}

bool aip_metrics_render_buf(aiplat_metrics *m, aip_buf *b) {
  bool ok = aip_buf_reserve(b, 8192);
  pthread_mutex_lock(&m->mu);
  for (aiplat_metric *f = m->first; ok && f; f = f->next) ok = put_family(b, f);
  pthread_mutex_unlock(&m->mu);
  return ok && put_process(b, m);
}

/* ---- the library's own metrics ----------------------------------------- */

const char *aip_metrics_status_label(aiplat_status st) {
  static const char *const labels[] = {
      [AIPLAT_OK] = "ok",
      [AIPLAT_ERR_INVALID_ARGUMENT] = "invalid_argument",
      [AIPLAT_ERR_NO_MEMORY] = "no_memory",
      [AIPLAT_ERR_CONFIG] = "config",
      [AIPLAT_ERR_NOT_FOUND] = "not_found",
      [AIPLAT_ERR_IO] = "io",
      [AIPLAT_ERR_TIMEOUT] = "timeout",
      [AIPLAT_ERR_CONNECTION] = "connection",
      [AIPLAT_ERR_PROTOCOL] = "protocol",
      [AIPLAT_ERR_DECODE] = "decode",
      [AIPLAT_ERR_TOO_LARGE] = "too_large",
      [AIPLAT_ERR_BAD_REQUEST] = "bad_request",
      [AIPLAT_ERR_AUTH] = "auth",
      [AIPLAT_ERR_RATE_LIMITED] = "rate_limited",
      [AIPLAT_ERR_SERVER] = "server",
      [AIPLAT_ERR_UNAVAILABLE] = "unavailable",
      [AIPLAT_ERR_CANCELLED] = "cancelled",
      [AIPLAT_ERR_CLOSED] = "closed",
      [AIPLAT_ERR_STATE] = "state",
      [AIPLAT_ERR_BUFFER_TOO_SMALL] = "buffer_too_small",
      [AIPLAT_ERR_NOT_SUPPORTED] = "not_supported",
      [AIPLAT_ERR_CORRUPT] = "corrupt",
      [AIPLAT_ERR_EXISTS] = "exists",
      [AIPLAT_ERR_INTERNAL] = "internal",
  };
  if ((unsigned)st < AIP_ARRAY_LEN(labels) && labels[st]) return labels[st];
  return "unknown";
}

aiplat_status aip_metrics_register_std(aiplat_metrics *m) {
  static const char *const ep[] = {"endpoint"};
  static const char *const ep_err[] = {"endpoint", "error"};
  static const char *const ver[] = {"version"};
  aiplat_metric *req, *err, *dur, *infl, *reconn, *disc, *build;
  aiplat_status st;
  if ((st = aip_metrics_register(m, AIP_METRIC_COUNTER, "aiplat_requests_total",
                                 "Requests handled, by endpoint.", ep, 1, NULL,
                                 0, &req)) ||
      (st = aip_metrics_register(
           m, AIP_METRIC_COUNTER, "aiplat_request_errors_total",
           "Requests that ended in an error, by endpoint and error kind.",
           ep_err, 2, NULL, 0, &err)) ||
      (st = aip_metrics_register(
           m, AIP_METRIC_HISTOGRAM, "aiplat_request_duration_seconds",
           "Time from receiving a request to its reply or ack, by endpoint.",
           ep, 1, NULL, 0, &dur)) ||
      (st = aip_metrics_register(
           m, AIP_METRIC_GAUGE, "aiplat_requests_in_flight",
           "Requests being handled, by endpoint.", ep, 1, NULL, 0, &infl)) ||
      (st = aip_metrics_register(
           m, AIP_METRIC_COUNTER, "aiplat_nats_reconnects_total",
           "Times the NATS connection was re-established.", NULL, 0, NULL, 0,
           &reconn)) ||
      (st = aip_metrics_register(
           m, AIP_METRIC_COUNTER, "aiplat_nats_disconnects_total",
           "Times the NATS connection was lost.", NULL, 0, NULL, 0, &disc)) ||
      (st = aip_metrics_register(
           m, AIP_METRIC_GAUGE, "aiplat_build_info",
           "The libaiplat version in use; the value is always 1.", ver, 1, NULL,
           0, &build)))
    return st;
  const char *version = aiplat_version_string();
  aip_series *bs = aip_metric_series(build, &version, 1);
  if (!bs)
    return aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "metrics: out of memory");
  aip_series_set(bs, 1);
  atomic_store_explicit(&m->std_requests, req, memory_order_release);
  atomic_store_explicit(&m->std_errors, err, memory_order_release);
  atomic_store_explicit(&m->std_duration, dur, memory_order_release);
  atomic_store_explicit(&m->std_in_flight, infl, memory_order_release);
  atomic_store_explicit(&m->std_reconnects, aip_metric_series(reconn, NULL, 0),
                        memory_order_release);
  atomic_store_explicit(&m->std_disconnects, aip_metric_series(disc, NULL, 0),
                        memory_order_release);
  return AIPLAT_OK;
}

aiplat_status aip_metrics_endpoint(aiplat_metrics *m, const char *endpoint,
                                   aip_endpoint_metrics *out) {
  if (!m || !endpoint || !out)
    return aip_fail(m ? &m->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: NULL registry, endpoint or out");
  memset(out, 0, sizeof *out);
  aiplat_status st = aip_metrics_register_std(m);
  if (st != AIPLAT_OK) return st;
  aip_series *req, *infl, *dur;
  if ((st = aip_metric_series_get(atomic_load(&m->std_requests), &endpoint, 1,
                                  &req)) ||
      (st = aip_metric_series_get(atomic_load(&m->std_in_flight), &endpoint, 1,
                                  &infl)) ||
      (st = aip_metric_series_get(atomic_load(&m->std_duration), &endpoint, 1,
                                  &dur)))
    return st;
  out->errors = atomic_load(&m->std_errors);
  out->requests = req;
  out->in_flight = infl;
  out->duration = dur;
  out->endpoint = req->values[0];
  return AIPLAT_OK;
}

void aip_endpoint_begin(const aip_endpoint_metrics *e) {
  if (e) aip_series_add(e->in_flight, 1);
}

void aip_endpoint_end(const aip_endpoint_metrics *e, aiplat_status st,
                      int64_t elapsed_ns) {
  if (!e || !e->requests) return;
  aip_series_add(e->in_flight, -1);
  aip_series_inc(e->requests, 1);
  aip_series_observe(e->duration,
                     (double)(elapsed_ns < 0 ? 0 : elapsed_ns) / 1e9);
  if (st != AIPLAT_OK) {
    const char *values[2] = {e->endpoint, aip_metrics_status_label(st)};
    aip_series_inc(aip_metric_series(e->errors, values, 2), 1);
  }
}

void aip_metrics_nats_reconnected(aiplat_metrics *m) {
  if (m) aip_series_inc(atomic_load(&m->std_reconnects), 1);
}

void aip_metrics_nats_disconnected(aiplat_metrics *m) {
  if (m) aip_series_inc(atomic_load(&m->std_disconnects), 1);
}

/* ---- public API -------------------------------------------------------- */

AIPLAT_API aiplat_status aiplat_metrics_create(aiplat_metrics **out) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "metrics: out is NULL");
  *out = NULL;
  aiplat_status st = aip_global_ref();
  if (st != AIPLAT_OK) return st;
  aiplat_metrics *m = NULL;
  if ((st = aip_metrics_new(&m)) != AIPLAT_OK) {
    aip_global_unref();
    return st;
  }
  m->standalone = true;
  *out = m;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_metrics_destroy(aiplat_metrics *m) {
  if (!m) return;
  if (!m->standalone) {
    /* Freeing a health handle's registry would leave it dangling. */
    aip_log_kv(AIPLAT_LOG_ERROR,
               "metrics: aiplat_metrics_destroy() given a health handle's "
               "registry; ignored",
               (const char *)NULL);
    return;
  }
  aip_metrics_free(m);
  aip_global_unref();
}

AIPLAT_API aiplat_status aiplat_metrics_counter(
    aiplat_metrics *m, const char *name, const char *help,
    const char *const *label_names, size_t nlabels, aiplat_metric **out) {
  return aip_metrics_register(m, AIP_METRIC_COUNTER, name, help, label_names,
                              nlabels, NULL, 0, out);
}

AIPLAT_API aiplat_status aiplat_metrics_gauge(
    aiplat_metrics *m, const char *name, const char *help,
    const char *const *label_names, size_t nlabels, aiplat_metric **out) {
  return aip_metrics_register(m, AIP_METRIC_GAUGE, name, help, label_names,
                              nlabels, NULL, 0, out);
}

AIPLAT_API aiplat_status aiplat_metrics_histogram(
    aiplat_metrics *m, const char *name, const char *help,
    const char *const *label_names, size_t nlabels, const double *buckets,
    size_t nbuckets, aiplat_metric **out) {
  if (!buckets && nbuckets)
    return aip_fail(m ? &m->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %zu buckets given as NULL", nbuckets);
  return aip_metrics_register(m, AIP_METRIC_HISTOGRAM, name, help, label_names,
                              nlabels, buckets, nbuckets, out);
}

/* Common checks of the public updates; on success *out is the series. */
static aiplat_status update_prepare(aiplat_metric *metric,
                                    const char *const *values, size_t n,
                                    double v, bool want_histogram,
                                    const char *what, aip_series **out) {
  if (!metric)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: NULL metric", what);
  aip_err *err = &metric->reg->err;
  if ((metric->type == AIP_METRIC_HISTOGRAM) != want_histogram)
    return aip_fail(err, AIPLAT_ERR_STATE, "metrics: %s: %s is a %s", what,
                    metric->name, type_name(metric->type));
  if (isnan(v))
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: %s: %s: value is NaN", what, metric->name);
  return aip_metric_series_get(metric, values, n, out);
}

AIPLAT_API aiplat_status aiplat_metric_add(aiplat_metric *metric,
                                           const char *const *label_values,
                                           size_t nvalues, double delta) {
  if (metric && metric->type == AIP_METRIC_COUNTER && !(delta >= 0))
    return aip_fail(&metric->reg->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: add: counter %s cannot go down", metric->name);
  aip_series *s = NULL;
  aiplat_status st =
      update_prepare(metric, label_values, nvalues, delta, false, "add", &s);
  if (st == AIPLAT_OK) aip_series_add(s, delta);
  return st;
}

AIPLAT_API aiplat_status aiplat_metric_set(aiplat_metric *metric,
                                           const char *const *label_values,
                                           size_t nvalues, double value) {
  if (metric && metric->type == AIP_METRIC_COUNTER)
    return aip_fail(&metric->reg->err, AIPLAT_ERR_STATE,
                    "metrics: set: %s is a counter", metric->name);
  aip_series *s = NULL;
  aiplat_status st =
      update_prepare(metric, label_values, nvalues, value, false, "set", &s);
  if (st == AIPLAT_OK) aip_series_set(s, value);
  return st;
}

AIPLAT_API aiplat_status aiplat_metric_observe(aiplat_metric *metric,
                                               const char *const *label_values,
                                               size_t nvalues, double value) {
  aip_series *s = NULL;
  aiplat_status st =
      update_prepare(metric, label_values, nvalues, value, true, "observe", &s);
  if (st == AIPLAT_OK) aip_series_observe(s, value);
  return st;
}

AIPLAT_API aiplat_status aiplat_metrics_render(aiplat_metrics *m, char **out,
                                               size_t *len) {
  if (!m || !out)
    return aip_fail(m ? &m->err : NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: render: NULL registry or out");
  aip_buf b = {0};
  if (!aip_metrics_render_buf(m, &b)) {
    aip_buf_free(&b);
    return aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY,
                    "metrics: render: out of memory");
  }
  *out = aip_buf_steal(&b, len);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_metrics_last_error(aiplat_metrics *m, char *buf,
                                                   size_t buflen) {
  if (!m)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "metrics: NULL registry");
  return aip_err_copy(&m->err, buf, buflen);
}
