/* Settings from the environment and NAME_FILE secrets, typed and validated. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_table.h"
#include "internal.h"

enum ctype { T_STR, T_INT, T_DBL, T_BOOL, T_DUR, T_URL, T_URLS, T_LEVEL };

typedef struct setting {
  const char *name;
  const char *def;
  enum ctype type;
  bool secret;
  const char *desc;
} setting;

#define AIP_ROW(n, d, t, s, desc) {#n, d, T_##t, s, desc},
static const setting table[] = {AIP_CONFIG_TABLE(AIP_ROW)};
#undef AIP_ROW

/* Ranges checked by aiplat_config_validate() for numeric settings. */
static const struct {
  const char *name;
  double min, max;
} ranges[] = {
    {"HEALTH_PORT", 0, 65535},         {"MILVUS_PORT", 1, 65535},
    {"WORKERS", 1, 1024},              {"NATS_MAX_RECONNECTS", -1, INT_MAX},
    {"LLM_MAX_TOKENS", 1, 1000000},    {"LLM_TEMPERATURE", 0, 2},
    {"HTTP_MAX_RETRIES", 0, 100},      {"HTTP_MAX_RESPONSE_BYTES", 1024, 17179869184.0},
    {"RAG_TOP_K", 1, 1000},            {"RAG_CANDIDATES", 1, 10000},
    {"RAG_MIN_SCORE", -1, 1},          {"RAG_CONTEXT_CHARS", 100, 10000000},
    {"CHAT_HISTORY_TURNS", 0, 1000},
};

/* One resolved value. Nodes are never freed before the handle, so strings
 * handed out stay valid even after aiplat_config_set() replaces them. */
typedef struct node {
  struct node *next;
  char *name;
  char *value;     /* NULL: no value and no default */
  bool explicit_;  /* from the environment, a file or set() */
} node;

struct aiplat_config {
  pthread_mutex_t mu;
  node *nodes;
  aip_err err;
};

static const setting *find_setting(const char *name) {
  for (size_t i = 0; i < AIP_ARRAY_LEN(table); i++)
    if (strcmp(table[i].name, name) == 0) return &table[i];
  return NULL;
}

AIPLAT_API bool aiplat_config_is_secret(const char *name) {
  if (!name) return false;
  const setting *s = find_setting(name);
  return s ? s->secret : aiplat_log_key_is_secret(name);
}

AIPLAT_API size_t aiplat_config_setting_count(void) {
  return AIP_ARRAY_LEN(table);
}
AIPLAT_API const char *aiplat_config_setting_name(size_t i) {
  return i < AIP_ARRAY_LEN(table) ? table[i].name : NULL;
}
AIPLAT_API const char *aiplat_config_setting_default(size_t i) {
  return i < AIP_ARRAY_LEN(table) ? table[i].def : NULL;
}
AIPLAT_API const char *aiplat_config_setting_description(size_t i) {
  return i < AIP_ARRAY_LEN(table) ? table[i].desc : NULL;
}

AIPLAT_API aiplat_status aiplat_config_create(aiplat_config **out) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  *out = NULL;
  aiplat_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "config: out of memory");
  pthread_mutex_init(&cfg->mu, NULL);
  aip_err_init(&cfg->err);
  *out = cfg;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_config_destroy(aiplat_config *cfg) {
  if (!cfg) return;
  for (node *n = cfg->nodes, *next; n; n = next) {
    next = n->next;
    free(n->name);
    free(n->value);
    free(n);
  }
  pthread_mutex_destroy(&cfg->mu);
  aip_err_destroy(&cfg->err);
  free(cfg);
}

static node *find_node(aiplat_config *cfg, const char *name) {
  for (node *n = cfg->nodes; n; n = n->next)
    if (strcmp(n->name, name) == 0) return n;
  return NULL;
}

static node *push_node(aiplat_config *cfg, const char *name, const char *value,
                       bool explicit_) {
  node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->name = strdup(name);
  n->value = value ? strdup(value) : NULL;
  if (!n->name || (value && !n->value)) {
    free(n->name);
    free(n->value);
    free(n);
    return NULL;
  }
  n->explicit_ = explicit_;
  n->next = cfg->nodes;
  cfg->nodes = n;
  return n;
}

static bool valid_name(const char *name) {
  if (!name || !*name || strlen(name) > 128) return false;
  for (const char *p = name; *p; p++)
    if (!(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
      return false;
  return true;
}

/* Read NAME_FILE's content into *out (malloc'd). */
static aiplat_status read_file_value(aiplat_config *cfg, const char *name,
                                     const char *path, char **out) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                    "config: %s_FILE: cannot read %s: %s", name, path,
                    strerror(errno));
  aip_buf b = {0};
  char chunk[4096];
  size_t n;
  aiplat_status st = AIPLAT_OK;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > AIPLAT_CONFIG_MAX_FILE_VALUE) {
      st = aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                    "config: %s_FILE: %s is longer than %d bytes", name, path,
                    AIPLAT_CONFIG_MAX_FILE_VALUE);
      goto out;
    }
    if (!aip_buf_append(&b, chunk, n)) {
      st = aip_fail(&cfg->err, AIPLAT_ERR_NO_MEMORY, "config: out of memory");
      goto out;
    }
  }
  if (ferror(f)) {
    st = aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                  "config: %s_FILE: cannot read %s: %s", name, path,
                  strerror(errno));
    goto out;
  }
  if (!aip_buf_reserve(&b, 0)) {
    st = aip_fail(&cfg->err, AIPLAT_ERR_NO_MEMORY, "config: out of memory");
    goto out;
  }
  if (memchr(b.data, '\0', b.len)) {
    st = aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                  "config: %s_FILE: %s contains a NUL byte", name, path);
    goto out;
  }
  if (b.len && b.data[b.len - 1] == '\n') b.data[--b.len] = '\0';
  if (b.len && b.data[b.len - 1] == '\r') b.data[--b.len] = '\0';
  *out = aip_buf_steal(&b, NULL);
out:
  fclose(f);
  aip_buf_free(&b);
  return st;
}

/* Find or resolve @name; the caller holds cfg->mu. */
static aiplat_status resolve(aiplat_config *cfg, const char *name, node **out) {
  if (!valid_name(name))
    return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "config: invalid setting name (use A-Z, 0-9 and _)");
  node *n = find_node(cfg, name);
  if (n) {
    *out = n;
    return AIPLAT_OK;
  }
  const char *env = getenv(name);
  char file_var[160];
  snprintf(file_var, sizeof file_var, "%s_FILE", name);
  const char *path = getenv(file_var);
  char *file_value = NULL;
  if (env && path)
    return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                    "config: both %s and %s are set; set only one", name,
                    file_var);
  if (env && strlen(env) > AIPLAT_CONFIG_MAX_VALUE)
    return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                    "config: %s is longer than %d bytes", name,
                    AIPLAT_CONFIG_MAX_VALUE);
  if (path) {
    aiplat_status st = read_file_value(cfg, name, path, &file_value);
    if (st != AIPLAT_OK) return st;
  }
  const setting *s = find_setting(name);
  const char *value = path ? file_value : env ? env : s ? s->def : NULL;
  n = push_node(cfg, name, value, env || path);
  free(file_value);
  if (!n) return aip_fail(&cfg->err, AIPLAT_ERR_NO_MEMORY, "config: out of memory");
  *out = n;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_config_set(aiplat_config *cfg, const char *name,
                                           const char *value) {
  if (!cfg) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "config: NULL handle");
  if (!valid_name(name))
    return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "config: invalid setting name (use A-Z, 0-9 and _)");
  if (value && strlen(value) > AIPLAT_CONFIG_MAX_VALUE)
    return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                    "config: %s is longer than %d bytes", name,
                    AIPLAT_CONFIG_MAX_VALUE);
  const setting *s = find_setting(name);
  pthread_mutex_lock(&cfg->mu);
  node *n = push_node(cfg, name, value ? value : s ? s->def : NULL, value != NULL);
  pthread_mutex_unlock(&cfg->mu);
  if (!n) return aip_fail(&cfg->err, AIPLAT_ERR_NO_MEMORY, "config: out of memory");
  return AIPLAT_OK;
}

/* Resolve under the lock and hand out the borrowed value. */
static aiplat_status lookup(aiplat_config *cfg, const char *name,
                            const char **value, bool *explicit_) {
  if (!cfg) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "config: NULL handle");
  node *n = NULL;
  pthread_mutex_lock(&cfg->mu);
  aiplat_status st = resolve(cfg, name, &n);
  pthread_mutex_unlock(&cfg->mu);
  if (st != AIPLAT_OK) return st;
  *value = n->value;
  if (explicit_) *explicit_ = n->explicit_;
  return AIPLAT_OK;
}

AIPLAT_API bool aiplat_config_is_set(aiplat_config *cfg, const char *name) {
  const char *v;
  bool ex = false;
  return lookup(cfg, name, &v, &ex) == AIPLAT_OK && ex;
}

AIPLAT_API aiplat_status aiplat_config_get_string(aiplat_config *cfg,
                                                  const char *name,
                                                  const char **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  *out = NULL;
  return lookup(cfg, name, out, NULL);
}

AIPLAT_API aiplat_status aiplat_config_require(aiplat_config *cfg,
                                               const char *name,
                                               const char **out) {
  const char *v = NULL;
  aiplat_status st = aiplat_config_get_string(cfg, name, &v);
  if (st != AIPLAT_OK) return st;
  if (!v || !*v)
    return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG,
                    "config: %s is required but not set", name);
  if (out) *out = v;
  return AIPLAT_OK;
}

/* "NAME=\"value\"" or "NAME (secret)" for messages. */
static void describe(const char *name, const char *value, char *buf, size_t n) {
  if (aiplat_config_is_secret(name))
    snprintf(buf, n, "%s (value hidden: secret)", name);
  else
    snprintf(buf, n, "%s=\"%.200s\"", name, value);
}

static aiplat_status bad_value(aiplat_config *cfg, const char *name,
                               const char *value, const char *what) {
  char d[300];
  describe(name, value, d, sizeof d);
  return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG, "config: %s: %s", d, what);
}

/* Copy without surrounding whitespace into buf; false if it does not fit. */
static bool trimmed(const char *v, char *buf, size_t n) {
  while (isspace((unsigned char)*v)) v++;
  size_t len = strlen(v);
  while (len && isspace((unsigned char)v[len - 1])) len--;
  if (len >= n) return false;
  memcpy(buf, v, len);
  buf[len] = '\0';
  return true;
}

static aiplat_status missing(aiplat_config *cfg, const char *name) {
  return aip_fail(&cfg->err, AIPLAT_ERR_CONFIG, "config: %s is not set", name);
}

AIPLAT_API aiplat_status aiplat_config_get_int(aiplat_config *cfg,
                                               const char *name, int64_t min,
                                               int64_t max, int64_t *out) {
  const char *v;
  aiplat_status st = aiplat_config_get_string(cfg, name, &v);
  if (st != AIPLAT_OK) return st;
  if (!out) return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  if (!v || !*v) return missing(cfg, name);
  char t[64];
  if (!trimmed(v, t, sizeof t)) return bad_value(cfg, name, v, "not an integer");
  char *end;
  errno = 0;
  long long x = strtoll(t, &end, 10);
  if (end == t || *end) return bad_value(cfg, name, v, "not an integer");
  char what[128];
  if (errno == ERANGE || x < min || x > max) {
    snprintf(what, sizeof what, "out of range [%lld, %lld]", (long long)min,
             (long long)max);
    return bad_value(cfg, name, v, what);
  }
  *out = x;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_config_get_double(aiplat_config *cfg,
                                                  const char *name, double min,
                                                  double max, double *out) {
  const char *v;
  aiplat_status st = aiplat_config_get_string(cfg, name, &v);
  if (st != AIPLAT_OK) return st;
  if (!out) return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  if (!v || !*v) return missing(cfg, name);
  char t[64];
  if (!trimmed(v, t, sizeof t)) return bad_value(cfg, name, v, "not a number");
  char *end;
  errno = 0;
  double x = strtod(t, &end);
  if (end == t || *end || !isfinite(x)) return bad_value(cfg, name, v, "not a number");
  if (x < min || x > max) {
    char what[128];
    snprintf(what, sizeof what, "out of range [%g, %g]", min, max);
    return bad_value(cfg, name, v, what);
  }
  *out = x;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_config_get_bool(aiplat_config *cfg,
                                                const char *name, bool *out) {
  static const char *const yes[] = {"true", "1", "yes", "on"};
  static const char *const no[] = {"false", "0", "no", "off"};
  const char *v;
  aiplat_status st = aiplat_config_get_string(cfg, name, &v);
  if (st != AIPLAT_OK) return st;
  if (!out) return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  if (!v || !*v) return missing(cfg, name);
  char t[16];
  if (trimmed(v, t, sizeof t)) {
    for (size_t i = 0; i < AIP_ARRAY_LEN(yes); i++) {
      if (aip_str_ieq(t, yes[i])) return *out = true, AIPLAT_OK;
      if (aip_str_ieq(t, no[i])) return *out = false, AIPLAT_OK;
    }
  }
  return bad_value(cfg, name, v, "not a boolean (true/false, 1/0, yes/no, on/off)");
}

/* Rounds a non-negative count of milliseconds to the nearest integer,
 * halves away from zero, as llround() would; by hand so that an -O2 build
 * needs nothing from libm. The caller bounds @p x below 9.2e15. */
static int64_t round_ms(double x) {
  int64_t r = (int64_t)x; /* truncates; x - r is exact below 2^53 */
  if (x - (double)r >= 0.5) r++;
  return r;
}

AIPLAT_API aiplat_status aiplat_duration_parse_ms(const char *text,
                                                  int64_t *out) {
  static const char *const why =
      "duration: expected a number with a unit, e.g. 30s, 500ms, 1m30s";
  if (!text || !out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "duration: NULL");
  const char *p = text;
  while (isspace((unsigned char)*p)) p++;
  if (!*p) return aip_fail(NULL, AIPLAT_ERR_CONFIG, "%s", why);
  double total = 0;
  while (*p && !isspace((unsigned char)*p)) {
    /* digits [. digits]: no sign, exponent or hex, unlike strtod */
    double x = 0, scale = 1;
    bool digits = false, frac = false;
    for (; isdigit((unsigned char)*p) || (*p == '.' && !frac); p++) {
      if (*p == '.') { frac = true; continue; }
      digits = true;
      if (frac) x += (scale /= 10) * (*p - '0');
      else x = x * 10 + (*p - '0');
    }
    if (!digits || x > 9.2e15)
      return aip_fail(NULL, AIPLAT_ERR_CONFIG, "%s", why);
    double unit;
    if (strncmp(p, "ms", 2) == 0) unit = 1, p += 2;
    else if (*p == 's') unit = 1000, p++;
    else if (*p == 'm') unit = 60000, p++;
    else if (*p == 'h') unit = 3600000, p++;
    else return aip_fail(NULL, AIPLAT_ERR_CONFIG, "%s", why);
    total += x * unit;
    if (total > 9.2e15)
      return aip_fail(NULL, AIPLAT_ERR_CONFIG, "duration: too large");
  }
  while (isspace((unsigned char)*p)) p++;
  if (*p) return aip_fail(NULL, AIPLAT_ERR_CONFIG, "%s", why);
  *out = round_ms(total);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_config_get_duration_ms(aiplat_config *cfg,
                                                       const char *name,
                                                       int64_t *out) {
  const char *v;
  aiplat_status st = aiplat_config_get_string(cfg, name, &v);
  if (st != AIPLAT_OK) return st;
  if (!out) return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  if (!v || !*v) return missing(cfg, name);
  if (aiplat_duration_parse_ms(v, out) != AIPLAT_OK)
    return bad_value(cfg, name, v,
                     "not a duration (a number with a unit: 30s, 500ms, 2m, 1h30m)");
  return AIPLAT_OK;
}

/* Validate one URL of [start, start+len); NULL when good, else the reason. */
static const char *url_problem(const char *u, size_t len) {
  static const char *const schemes[] = {"http", "https", "nats", "tls", "ws", "wss"};
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < len; i++)
    if (u[i] == ':' && u[i + 1] == '/' && u[i + 2] == '/') { sep = u + i; break; }
  if (!sep) return "not an absolute URL (scheme://host[:port])";
  bool known = false;
  for (size_t i = 0; i < AIP_ARRAY_LEN(schemes); i++)
    if ((size_t)(sep - u) == strlen(schemes[i]) &&
        strncmp(u, schemes[i], strlen(schemes[i])) == 0)
      known = true;
  if (!known) return "unsupported scheme (http, https, nats, tls, ws, wss)";
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
      return "contains whitespace or control characters";
  const char *h = sep + 3, *end = u + len;
  const char *path = memchr(h, '/', (size_t)(end - h));
  const char *hend = path ? path : end;
  const char *at = NULL;
  for (const char *q = h; q < hend; q++)
    if (*q == '@') at = q;
  if (at) h = at + 1;
  if (h == hend) return "has no host";
  const char *port = NULL;
  if (*h == '[') {
    const char *rb = memchr(h, ']', (size_t)(hend - h));
    if (!rb) return "has an unterminated IPv6 address";
    if (rb + 1 < hend) {
      if (rb[1] != ':') return "has a malformed host";
      port = rb + 2;
    }
  } else {
    for (const char *q = h; q < hend; q++) {
      if (*q == ':') { port = q + 1; break; }
      if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
        return "has a malformed host";
    }
    if (port == h + 1) return "has no host";
  }
  if (port) {
    if (port == hend) return "has an empty port";
    long pv = 0;
    for (const char *q = port; q < hend; q++) {
      if (!isdigit((unsigned char)*q)) return "has a non-numeric port";
      pv = pv * 10 + (*q - '0');
      if (pv > 65535) break;
    }
    if (pv < 1 || pv > 65535) return "has a port outside 1..65535";
  }
  return NULL;
}

static aiplat_status check_urls(aiplat_config *cfg, const char *name,
                                const char *v, bool many) {
  const char *p = v;
  do {
    while (isspace((unsigned char)*p)) p++;
    const char *comma = many ? strchr(p, ',') : NULL;
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) len--;
    const char *why = len ? url_problem(p, len) : "has an empty URL";
    if (why) return bad_value(cfg, name, v, why);
    p = comma ? comma + 1 : NULL;
  } while (p);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_config_get_url(aiplat_config *cfg,
                                               const char *name,
                                               const char **out) {
  const char *v;
  aiplat_status st = aiplat_config_get_string(cfg, name, &v);
  if (st != AIPLAT_OK) return st;
  if (!out) return aip_fail(&cfg->err, AIPLAT_ERR_INVALID_ARGUMENT, "config: out is NULL");
  if (!v || !*v) return missing(cfg, name);
  st = check_urls(cfg, name, v, false);
  if (st == AIPLAT_OK) *out = v;
  return st;
}

static void range_of(const char *name, double *min, double *max) {
  for (size_t i = 0; i < AIP_ARRAY_LEN(ranges); i++)
    if (strcmp(ranges[i].name, name) == 0) {
      *min = ranges[i].min;
      *max = ranges[i].max;
      return;
    }
}

AIPLAT_API aiplat_status aiplat_config_validate(aiplat_config *cfg) {
  if (!cfg) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "config: NULL handle");
  for (size_t i = 0; i < AIP_ARRAY_LEN(table); i++) {
    const setting *s = &table[i];
    const char *v;
    aiplat_status st = aiplat_config_get_string(cfg, s->name, &v);
    if (st != AIPLAT_OK) return st;
    if (!v || (!*v && s->type != T_STR)) continue;
    double min = -9.2e18, max = 9.2e18;
    range_of(s->name, &min, &max);
    int64_t iv;
    double dv;
    bool bv;
    aiplat_log_level lv;
    switch (s->type) {
      case T_STR: st = AIPLAT_OK; break;
      case T_INT: st = aiplat_config_get_int(cfg, s->name, (int64_t)min, (int64_t)max, &iv); break;
      case T_DBL: st = aiplat_config_get_double(cfg, s->name, min, max, &dv); break;
      case T_BOOL: st = aiplat_config_get_bool(cfg, s->name, &bv); break;
      case T_DUR: st = aiplat_config_get_duration_ms(cfg, s->name, &iv); break;
      case T_URL: st = check_urls(cfg, s->name, v, false); break;
      case T_URLS: st = check_urls(cfg, s->name, v, true); break;
      case T_LEVEL:
        st = aiplat_log_level_parse(v, &lv);
        if (st != AIPLAT_OK)
          st = bad_value(cfg, s->name, v, "not a log level (DEBUG, INFO, WARNING, WARN, ERROR)");
        break;
    }
    if (st != AIPLAT_OK) return st;
    if (strcmp(s->name, "VECTOR_STORE") == 0 && strcmp(v, "local") != 0 &&
        strcmp(v, "milvus") != 0)
      return bad_value(cfg, s->name, v, "expected local or milvus");
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_config_last_error(aiplat_config *cfg,
                                                  char *buf, size_t buflen) {
  if (!cfg) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "config: NULL handle");
  return aip_err_copy(&cfg->err, buf, buflen);
}
