/* Helpers of the local model backend's integration test. */
#include "bk_client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

const char *bkc_binary(void) {
  static char path[4096];
  const char *top = getenv("top_builddir");
  snprintf(path, sizeof path, "%s/tools/model-backend/aiplat-model-backend",
           top ? top : ".");
  return path;
}

bool bkc_running_under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload") != NULL;
}

uint8_t *bkc_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      uint8_t *nb = realloc(buf, cap + 1);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    if (r == 0) break;
    n += r;
  }
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

bool bkc_start(bkc_proc *p, const char *const *args, bool valgrind) {
  memset(p, 0, sizeof *p);
  snprintf(p->dir, sizeof p->dir, "/tmp/aiplat-bk-XXXXXX");
  if (!mkdtemp(p->dir)) {
    perror("mkdtemp");
    return false;
  }
  char port_file[128], out_file[128];
  snprintf(port_file, sizeof port_file, "%s/port", p->dir);
  snprintf(out_file, sizeof out_file, "%s/stdout", p->dir);
  const char *argv[64];
  size_t n = 0;
  const char *top = getenv("top_srcdir");
  static char supp[4200];
  snprintf(supp, sizeof supp, "--suppressions=%s/tests/valgrind.supp",
           top ? top : ".");
  if (valgrind) {
    argv[n++] = "valgrind";
    argv[n++] = "--quiet";
    argv[n++] = "--error-exitcode=99";
    argv[n++] = "--leak-check=full";
    argv[n++] = "--errors-for-leak-kinds=definite,indirect";
    argv[n++] = "--show-leak-kinds=definite,indirect";
    argv[n++] = supp;
  }
  argv[n++] = bkc_binary();
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--port-file";
  argv[n++] = port_file;
  for (size_t i = 0; args && args[i] && n < 62; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 1);
    if (!getenv("BKC_VERBOSE")) setenv("LOG_LEVEL", "WARNING", 1);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  p->pid = pid;
  p->under_valgrind = valgrind;
  int64_t deadline = now_ms() + (valgrind ? 120000 : 30000);
  while (now_ms() < deadline) {
    size_t len;
    uint8_t *s = bkc_read_file(port_file, &len);
    if (s) {
      p->port = atoi((char *)s);
      free(s);
      snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
      return p->port > 0;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      fprintf(stderr, "backend exited early (status %d)\n", st);
      p->pid = 0;
      return false;
    }
    sleep_ms(20);
  }
  fprintf(stderr, "backend did not write its port file\n");
  return false;
}

bool bkc_wait_ready(bkc_proc *p, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    bkc_resp r = bkc_get(p, "/health", NULL);
    long st = r.status;
    bkc_resp_free(&r);
    if (st == 200) return true;
    sleep_ms(50);
  }
  return false;
}

int bkc_stop(bkc_proc *p, int sig, int timeout_ms) {
  if (p->pid <= 0) return -1;
  kill(p->pid, sig);
  int64_t deadline = now_ms() + timeout_ms;
  int st = -1;
  while (now_ms() < deadline) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) break;
    sleep_ms(20);
  }
  if (now_ms() >= deadline) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    st = -1;
  }
  p->pid = 0;
  char path[128];
  snprintf(path, sizeof path, "%s/stdout", p->dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/port", p->dir);
  unlink(path);
  rmdir(p->dir);
  return st;
}

char *bkc_stdout(bkc_proc *p) {
  char path[128];
  snprintf(path, sizeof path, "%s/stdout", p->dir);
  size_t len;
  return (char *)bkc_read_file(path, &len);
}

/* ---- HTTP -------------------------------------------------------------------
 */

typedef struct grow {
  char *data;
  size_t len, cap;
} grow;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  grow *g = ud;
  size_t n = size * nmemb;
  if (g->len + n + 1 > g->cap) {
    size_t cap = g->cap ? g->cap : 4096;
    while (cap < g->len + n + 1) cap *= 2;
    char *d = realloc(g->data, cap);
    if (!d) return 0;
    g->data = d;
    g->cap = cap;
  }
  memcpy(g->data + g->len, ptr, n);
  g->len += n;
  g->data[g->len] = 0;
  return n;
}

void bkc_resp_free(bkc_resp *r) {
  free(r->body);
  free(r->headers);
  memset(r, 0, sizeof *r);
}

const char *bkc_header(const bkc_resp *r, const char *name, char *buf,
                       size_t len) {
  const char *found = NULL;
  size_t nl = strlen(name);
  for (const char *p = r->headers; p && *p;) {
    const char *eol = strstr(p, "\r\n");
    size_t ll = eol ? (size_t)(eol - p) : strlen(p);
    if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t vl = ll - (size_t)(v - p);
      if (vl >= len) vl = len - 1;
      memcpy(buf, v, vl);
      buf[vl] = 0;
      found = buf;
    }
    p = eol ? eol + 2 : p + ll;
  }
  return found;
}

static bkc_resp perform(CURL *c, struct curl_slist *hl) {
  bkc_resp r;
  memset(&r, 0, sizeof r);
  grow body = {0}, head = {0};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (hl) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  int64_t t0 = now_ms();
  r.rc = curl_easy_perform(c);
  r.seconds = (double)(now_ms() - t0) / 1000.0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  r.body = body.data ? body.data : calloc(1, 1);
  r.len = body.len;
  r.headers = head.data ? head.data : calloc(1, 1);
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  return r;
}

static CURL *easy(const bkc_proc *p, const char *path) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", p->base, path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  return c;
}

static struct curl_slist *headers(struct curl_slist *hl,
                                  const char *const *extra) {
  for (size_t i = 0; extra && extra[i]; i++)
    hl = curl_slist_append(hl, extra[i]);
  return hl;
}

bkc_resp bkc_post(const bkc_proc *p, const char *path, const char *ctype,
                  const void *body, size_t len, const char *const *extra) {
  CURL *c = easy(p, path);
  char ct[256];
  snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
  struct curl_slist *hl = curl_slist_append(NULL, ct);
  hl = curl_slist_append(hl, "Expect:");
  hl = headers(hl, extra);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  return perform(c, hl);
}

bkc_resp bkc_post_json(const bkc_proc *p, const char *path, const char *json,
                       const char *fault) {
  char fh[512];
  const char *extra[2] = {NULL, NULL};
  if (fault) {
    snprintf(fh, sizeof fh, "X-Aiplat-Fault: %s", fault);
    extra[0] = fh;
  }
  return bkc_post(p, path, "application/json", json, strlen(json), extra);
}

bkc_resp bkc_get(const bkc_proc *p, const char *path,
                 const char *const *extra) {
  CURL *c = easy(p, path);
  return perform(c, headers(NULL, extra));
}

bkc_resp bkc_post_form(const bkc_proc *p, const char *path, const void *file,
                       size_t file_len, const char *const *fields) {
  CURL *c = easy(p, path);
  curl_mime *m = curl_mime_init(c);
  if (file) {
    curl_mimepart *part = curl_mime_addpart(m);
    curl_mime_name(part, "file");
    curl_mime_data(part, file, file_len);
    curl_mime_filename(part, "audio.wav");
    curl_mime_type(part, "audio/wav");
  }
  for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
    curl_mimepart *part = curl_mime_addpart(m);
    curl_mime_name(part, fields[i]);
    curl_mime_data(part, fields[i + 1], CURL_ZERO_TERMINATED);
  }
  curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
  bkc_resp r = perform(c, curl_slist_append(NULL, "Expect:"));
  curl_mime_free(m);
  return r;
}

json_t *bkc_json(const bkc_resp *r) {
  json_error_t e;
  json_t *j = json_loadb(r->body, r->len, 0, &e);
  if (!j)
    fprintf(stderr, "unparsable body (%s): %.300s\n", e.text,
            r->body ? r->body : "");
  return j;
}

/* ---- audio -----------------------------------------------------------------
 */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

uint8_t *bkc_wav(const int16_t *s, size_t frames, unsigned channels,
                 unsigned rate, unsigned bits, unsigned tag, size_t *len) {
  size_t bps = bits / 8 ? bits / 8 : 1;
  size_t data = frames * channels * bps;
  uint8_t *w = calloc(1, 44 + data + 1);
  if (!w) return NULL;
  memcpy(w, "RIFF", 4);
  put32(w + 4, (uint32_t)(36 + data));
  memcpy(w + 8, "WAVEfmt ", 8);
  put32(w + 16, 16);
  put16(w + 20, (uint16_t)tag);
  put16(w + 22, (uint16_t)channels);
  put32(w + 24, rate);
  put32(w + 28, (uint32_t)(rate * channels * bps));
  put16(w + 32, (uint16_t)(channels * bps));
  put16(w + 34, (uint16_t)bits);
  memcpy(w + 36, "data", 4);
  put32(w + 40, (uint32_t)data);
  for (size_t i = 0; s && i < frames * channels; i++) {
    if (bps == 2)
      put16(w + 44 + 2 * i, (uint16_t)s[i]);
    else
      w[44 + i] = (uint8_t)((s[i] >> 8) + 128);
  }
  *len = 44 + data;
  return w;
}

int16_t *bkc_wav_samples(const void *wav, size_t len, unsigned *rate,
                         size_t *n) {
  const uint8_t *w = wav;
  if (len < 44 || memcmp(w, "RIFF", 4) || memcmp(w + 8, "WAVE", 4)) return NULL;
  size_t off = 12;
  unsigned ch = 0, bits = 0;
  while (off + 8 <= len) {
    uint32_t sz = (uint32_t)w[off + 4] | (uint32_t)w[off + 5] << 8 |
                  (uint32_t)w[off + 6] << 16 | (uint32_t)w[off + 7] << 24;
    if (!memcmp(w + off, "fmt ", 4)) {
      ch = (unsigned)(w[off + 10] | w[off + 11] << 8);
      *rate = (unsigned)w[off + 12] | (unsigned)w[off + 13] << 8 |
              (unsigned)w[off + 14] << 16;
      bits = (unsigned)(w[off + 22] | w[off + 23] << 8);
    } else if (!memcmp(w + off, "data", 4)) {
      if (ch != 1 || bits != 16) return NULL;
      size_t avail = len - off - 8;
      if (sz > avail) sz = (uint32_t)avail;
      *n = sz / 2;
      int16_t *s = malloc(*n * 2 + 2);
      for (size_t i = 0; s && i < *n; i++)
        s[i] = (int16_t)(w[off + 8 + 2 * i] | w[off + 9 + 2 * i] << 8);
      return s;
    }
    off += 8 + sz + (sz & 1);
  }
  return NULL;
}

/* ---- text
 * -------------------------------------------------------------------- */

static void *grow_or_die(void *p, size_t size) {
  void *n = realloc(p, size);
  if (!n) abort();
  return n;
}

static size_t words_of(const char *s, char ***out) {
  size_t n = 0, cap = 16;
  char **v = malloc(cap * sizeof *v);
  const char *p = s;
  while (p && *p) {
    while (*p && !isalnum((unsigned char)*p)) p++;
    if (!*p) break;
    char w[128];
    size_t k = 0;
    while (*p && (isalnum((unsigned char)*p) || *p == '\'')) {
      if (*p != '\'' && k < sizeof w - 1)
        w[k++] = (char)tolower((unsigned char)*p);
      p++;
    }
    w[k] = 0;
    if (n == cap) v = grow_or_die(v, (cap *= 2) * sizeof *v);
    v[n++] = strdup(w);
  }
  *out = v;
  return n;
}

size_t bkc_word_errors(const char *ref, const char *hyp, size_t *ref_words) {
  char **r, **h;
  size_t nr = words_of(ref, &r), nh = words_of(hyp, &h);
  size_t *prev = malloc((nh + 1) * sizeof *prev);
  size_t *cur = malloc((nh + 1) * sizeof *cur);
  for (size_t j = 0; j <= nh; j++) prev[j] = j;
  for (size_t i = 1; i <= nr; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= nh; j++) {
      size_t sub = prev[j - 1] + (strcmp(r[i - 1], h[j - 1]) != 0);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    size_t *t = prev;
    prev = cur;
    cur = t;
  }
  size_t d = prev[nh];
  for (size_t i = 0; i < nr; i++) free(r[i]);
  for (size_t j = 0; j < nh; j++) free(h[j]);
  free(r);
  free(h);
  free(prev);
  free(cur);
  *ref_words = nr;
  return d;
}

bool bkc_sse_events(const char *body, size_t len, char ***events, size_t *n) {
  size_t cap = 16, k = 0;
  char **v = malloc(cap * sizeof *v);
  size_t i = 0;
  bool ok = true;
  while (i < len) {
    if (len - i < 6 || memcmp(body + i, "data: ", 6) != 0) {
      ok = false;
      break;
    }
    const char *start = body + i + 6;
    const char *end = strstr(start, "\n\n");
    if (!end || memchr(start, '\n', (size_t)(end - start))) {
      ok = false;
      break;
    }
    if (k == cap) v = grow_or_die(v, (cap *= 2) * sizeof *v);
    v[k++] = strndup(start, (size_t)(end - start));
    i = (size_t)(end - body) + 2;
  }
  *events = v;
  *n = k;
  return ok;
}

void bkc_sse_free(char **events, size_t n) {
  for (size_t i = 0; i < n; i++) free(events[i]);
  free(events);
}
