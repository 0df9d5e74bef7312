/* Shared start-up, client pool and readiness probe of the bridge services. */
#include "svcutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The layout of a setting's definition: the name at column 2, the text at
 * HELP_TEXT_COL, lines of at most HELP_WIDTH columns. help2man makes a
 * tagged paragraph of a name followed by two blanks (or alone on its line
 * with the text on the next, indented 20 or more) and takes every following
 * line indented exactly like the text as its continuation. */
#define HELP_TEXT_COL 26
#define HELP_WIDTH 79

/* Index of setting @name in the library's table, or -1. */
static long setting_index(const char *name) {
  size_t n = aiplat_config_setting_count();
  for (size_t i = 0; i < n; i++)
    if (strcmp(aiplat_config_setting_name(i), name) == 0) return (long)i;
  return -1;
}

/* Print @text word by word from column @col, breaking before HELP_WIDTH;
 * continuation lines start at HELP_TEXT_COL. */
static void print_wrapped(FILE *out, const char *text, size_t col) {
  const char *p = text;
  while (*p) {
    while (*p == ' ') p++;
    size_t len = strcspn(p, " ");
    if (len == 0) break;
    if (col > HELP_TEXT_COL && col + 1 + len > HELP_WIDTH) {
      fprintf(out, "\n%*s", HELP_TEXT_COL, "");
      col = HELP_TEXT_COL;
    } else if (col > HELP_TEXT_COL) {
      fputc(' ', out);
      col++;
    }
    fwrite(p, 1, len, out);
    col += len;
    p += len;
  }
  fputc('\n', out);
}

static void print_setting(FILE *out, const char *name) {
  long i = setting_index(name);
  const char *desc = i < 0 ? "(not a setting of this libaiplat)"
                           : aiplat_config_setting_description((size_t)i);
  const char *def = i < 0 ? NULL : aiplat_config_setting_default((size_t)i);
  size_t len = strlen(name);
  if (2 + len + 2 <= HELP_TEXT_COL)
    fprintf(out, "  %-*s", HELP_TEXT_COL - 2, name);
  else
    fprintf(out, "  %s\n%*s", name, HELP_TEXT_COL, "");
  char text[512];
  if (def && *def)
    snprintf(text, sizeof text, "%s (default: %s)", desc, def);
  else
    snprintf(text, sizeof text, "%s", desc);
  print_wrapped(out, text, HELP_TEXT_COL);
}

void svcu_print_help(FILE *out, const char *name, const svcu_help *help) {
  fprintf(out, "Usage: %s [--help] [--version]\n%s\n\n%s\nEnvironment:\n", name,
          help->summary, help->about);
  for (const char *const *s = help->settings; s && *s; s++)
    print_setting(out, *s);
}

int svcu_args(int argc, char **argv, const char *name, const svcu_help *help) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      svcu_print_help(stdout, name, help);
      return SVCU_EXIT_OK;
    }
    if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
      printf("%s %s (libaiplat %s)\n", name, AIPLAT_VERSION_STRING,
             aiplat_version_string());
      return SVCU_EXIT_OK;
    }
    fprintf(stderr,
            "%s: unknown argument '%.64s': the service is configured by "
            "environment variables (see --help)\n",
            name, argv[i]);
    return SVCU_EXIT_CONFIG;
  }
  return -1;
}

void svcu_block_signals(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
}

void svcu_error_line(const char *name, const char *text) {
  char line[1024];
  snprintf(line, sizeof line, "%s", text && *text ? text : "unknown error");
  for (char *p = line; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
  fprintf(stderr, "%s: %s\n", name, line);
}

void svcu_last_error_line(const char *name) {
  char why[512];
  aiplat_status st = aiplat_error_last(why, sizeof why);
  svcu_error_line(name, *why ? why : aiplat_status_str(st));
}

aiplat_config *svcu_config(const char *name) {
  aiplat_config *cfg = NULL;
  if (aiplat_config_create(&cfg) != AIPLAT_OK) {
    svcu_last_error_line(name);
    return NULL;
  }
  if (aiplat_config_validate(cfg) != AIPLAT_OK) {
    svcu_config_error(cfg, name);
    aiplat_config_destroy(cfg);
    return NULL;
  }
  return cfg;
}

int svcu_config_error(aiplat_config *cfg, const char *name) {
  char why[512];
  aiplat_config_last_error(cfg, why, sizeof why);
  svcu_error_line(name, why);
  return SVCU_EXIT_CONFIG;
}

int svcu_run(aiplat_service *svc, const char *name) {
  if (aiplat_service_run(svc) == AIPLAT_OK) return SVCU_EXIT_OK;
  char why[512];
  aiplat_service_last_error(svc, why, sizeof why);
  svcu_error_line(name, why);
  return SVCU_EXIT_FAILURE;
}

const char *svcu_service_name(aiplat_config *cfg, const char *fallback) {
  const char *v = NULL;
  if (aiplat_config_get_string(cfg, "SERVICE_NAME", &v) != AIPLAT_OK || !v ||
      !*v)
    return fallback;
  return v;
}

/* ---- pool ------------------------------------------------------------------
 */

struct svcu_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void **free_items;
  size_t n_free, n_all, cap;
  svcu_destroy_fn destroy;
};

svcu_pool *svcu_pool_create(size_t cap, svcu_destroy_fn destroy) {
  svcu_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->free_items = calloc(cap ? cap : 1, sizeof *p->free_items);
  if (!p->free_items) {
    free(p);
    return NULL;
  }
  p->cap = cap ? cap : 1;
  p->destroy = destroy;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  return p;
}

bool svcu_pool_add(svcu_pool *p, void *client) {
  pthread_mutex_lock(&p->mu);
  bool ok = p->n_all < p->cap;
  if (ok) {
    p->free_items[p->n_free++] = client;
    p->n_all++;
    pthread_cond_signal(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return ok;
}

void *svcu_pool_take(svcu_pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->n_free == 0) pthread_cond_wait(&p->cv, &p->mu);
  void *c = p->free_items[--p->n_free];
  pthread_mutex_unlock(&p->mu);
  return c;
}

void svcu_pool_give(svcu_pool *p, void *client) {
  pthread_mutex_lock(&p->mu);
  p->free_items[p->n_free++] = client;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void svcu_pool_destroy(svcu_pool *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n_free; i++)
    if (p->destroy) p->destroy(p->free_items[i]);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->free_items);
  free(p);
}

/* ---- probe -----------------------------------------------------------------
 */

#define PROBE_MIN_GAP_MS 200

struct svcu_probe {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  svcu_probe_fn fn;
  void (*cancel)(void *ud);
  void *ud;
  int64_t interval_ms;
  bool stop, kicked, checked, ok;
  char msg[AIPLAT_HEALTH_MESSAGE_MAX];
};

static void deadline_after(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static void *probe_main(void *arg) {
  svcu_probe *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    p->kicked = false;
    pthread_mutex_unlock(&p->mu);
    char msg[AIPLAT_HEALTH_MESSAGE_MAX] = "";
    bool ok = p->fn(msg, sizeof msg, p->ud);
    aiplat_error_clear();
    pthread_mutex_lock(&p->mu);
    if (ok != p->ok || !p->checked)
      aiplat_log(ok ? AIPLAT_LOG_INFO : AIPLAT_LOG_WARNING,
                 ok ? "backend ready" : "backend not ready");
    p->ok = ok;
    p->checked = true;
    snprintf(p->msg, sizeof p->msg, "%s", msg);
    /* A short gap first, so that a burst of kicks costs one probe. */
    struct timespec ts;
    deadline_after(&ts, PROBE_MIN_GAP_MS);
    while (!p->stop &&
           pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT) {
    }
    deadline_after(&ts, p->interval_ms - PROBE_MIN_GAP_MS);
    while (!p->stop && !p->kicked &&
           pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

svcu_probe *svcu_probe_start(svcu_probe_fn fn, void (*cancel)(void *user_data),
                             void *user_data, int64_t interval_ms) {
  svcu_probe *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->fn = fn;
  p->cancel = cancel;
  p->ud = user_data;
  p->interval_ms =
      interval_ms > PROBE_MIN_GAP_MS ? interval_ms : PROBE_MIN_GAP_MS + 1;
  snprintf(p->msg, sizeof p->msg, "not checked yet");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  if (pthread_create(&p->thread, NULL, probe_main, p) != 0) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  return p;
}

void svcu_probe_kick(svcu_probe *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->kicked = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void svcu_probe_note(svcu_probe *p, aiplat_status st) {
  if (!p) return;
  bool suspect = st == AIPLAT_ERR_CONNECTION || st == AIPLAT_ERR_TIMEOUT ||
                 st == AIPLAT_ERR_UNAVAILABLE || st == AIPLAT_ERR_SERVER;
  pthread_mutex_lock(&p->mu);
  bool was_ok = p->ok;
  pthread_mutex_unlock(&p->mu);
  if ((suspect && was_ok) || (!suspect && !was_ok)) svcu_probe_kick(p);
}

bool svcu_probe_check(char *msg, size_t msglen, void *user_data) {
  svcu_probe *p = user_data;
  pthread_mutex_lock(&p->mu);
  bool ok = p->checked && p->ok;
  snprintf(msg, msglen, "%s", p->msg);
  pthread_mutex_unlock(&p->mu);
  return ok;
}

void svcu_probe_stop(svcu_probe *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (p->cancel) p->cancel(p->ud);
  pthread_join(p->thread, NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* ---- helpers ---------------------------------------------------------------
 */

size_t svcu_utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

bool svcu_blank(const char *s) {
  for (; s && *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' &&
        *s != '\v')
      return false;
  return true;
}
