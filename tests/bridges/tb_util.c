/* Helpers of the bridge and CLI tests. */
#include "tb_util.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void tb_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int64_t tb_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tb_path(const char *rel) {
  static char path[4096];
  const char *top = getenv("top_builddir");
  snprintf(path, sizeof path, "%s/%s", top ? top : ".", rel);
  return path;
}

uint8_t *tb_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 65536, n = 0;
  uint8_t *buf = malloc(cap + 1);
  while (buf) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (n < cap) break;
    cap *= 2;
    uint8_t *nb = realloc(buf, cap + 1);
    if (!nb) free(buf);
    buf = nb;
  }
  fclose(f);
  if (!buf) return NULL;
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

bool tb_write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

bool tb_under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload") != NULL;
}

static bool spawn(tb_proc *p, const char *rel, const char *const *env,
                  const char *const *args, bool valgrind) {
  memset(p, 0, sizeof *p);
  snprintf(p->dir, sizeof p->dir, "/tmp/aiplat-tb-XXXXXX");
  if (!mkdtemp(p->dir)) return false;
  snprintf(p->log, sizeof p->log, "%s/log", p->dir);
  char path[4096], libtool[4096], supp[4200];
  snprintf(path, sizeof path, "%s", tb_path(rel));
  snprintf(libtool, sizeof libtool, "%s", tb_path("libtool"));
  const char *src = getenv("top_srcdir");
  snprintf(supp, sizeof supp, "--suppressions=%s/tests/valgrind.supp",
           src ? src : ".");
  const char *argv[48];
  size_t n = 0;
  if (valgrind) {
    argv[n++] = libtool;
    argv[n++] = "--mode=execute";
    argv[n++] = "valgrind";
    argv[n++] = "--quiet";
    argv[n++] = "--error-exitcode=99";
    argv[n++] = "--leak-check=full";
    argv[n++] = "--errors-for-leak-kinds=definite,indirect";
    argv[n++] = "--show-leak-kinds=definite,indirect";
    argv[n++] = supp;
  }
  argv[n++] = path;
  for (size_t i = 0; args && args[i] && n < 47; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    unsetenv("LD_PRELOAD"); /* this program's valgrind preload */
    for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  p->pid = pid;
  return true;
}

bool tb_spawn(tb_proc *p, const char *rel, const char *const *env,
              const char *const *args) {
  return spawn(p, rel, env, args, false);
}

bool tb_spawn_valgrind(tb_proc *p, const char *rel, const char *const *env,
                       const char *const *args) {
  return spawn(p, rel, env, args, true);
}

char *tb_log(tb_proc *p) {
  size_t len;
  char *s = (char *)tb_read_file(p->log, &len);
  return s ? s : strdup("");
}

bool tb_alive(tb_proc *p) {
  if (p->pid <= 0) return false;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == p->pid) {
    p->pid = -p->pid; /* exited: keep the status out of reach */
    return false;
  }
  return r == 0;
}

bool tb_wait_started(tb_proc *p, int timeout_ms) {
  int64_t end = tb_now_ms() + timeout_ms;
  while (tb_now_ms() < end) {
    char *log = tb_log(p);
    char *line = strstr(log, "\"msg\":\"service started\"");
    if (line) {
      char *hp = strstr(line, "\"health_port\":\"");
      if (hp) p->health_port = atoi(hp + 15);
      free(log);
      return true;
    }
    free(log);
    if (!tb_alive(p)) return false;
    tb_sleep_ms(20);
  }
  return false;
}

int tb_wait_exit(tb_proc *p, int timeout_ms) {
  if (p->pid <= 0) return -1;
  int64_t end = tb_now_ms() + timeout_ms;
  int st = -1;
  while (tb_now_ms() < end) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->pid = 0;
      return st;
    }
    tb_sleep_ms(10);
  }
  return -1;
}

int tb_stop(tb_proc *p, int sig, int timeout_ms) {
  int st = -1;
  if (p->pid > 0) {
    kill(p->pid, sig);
    st = tb_wait_exit(p, timeout_ms);
    if (st == -1 && p->pid > 0) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
    }
  }
  p->pid = 0;
  unlink(p->log);
  rmdir(p->dir);
  return st;
}

/* ---- HTTP ------------------------------------------------------------------
 */

typedef struct buf {
  char *d;
  size_t n;
} buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  buf *b = ud;
  size_t n = size * nmemb;
  char *d = realloc(b->d, b->n + n + 1);
  if (!d) return 0;
  memcpy(d + b->n, ptr, n);
  b->d = d;
  b->n += n;
  d[b->n] = 0;
  return n;
}

long tb_http_get(int port, const char *path, char **body) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *c = curl_easy_init();
  buf b = {0};
  long code = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if (body)
    *body = b.d ? b.d : strdup("");
  else
    free(b.d);
  return code;
}

long tb_wait_http(int port, const char *path, long want, int timeout_ms) {
  int64_t end = tb_now_ms() + timeout_ms;
  long code = 0;
  while (tb_now_ms() < end) {
    code = tb_http_get(port, path, NULL);
    if (code == want) break;
    tb_sleep_ms(50);
  }
  return code;
}

/* ---- the CLI ----------------------------------------------------------------
 */

static tb_run run_cli(const char *const *args, bool valgrind) {
  tb_run r = {.code = -1};
  char dir[] = "/tmp/aiplat-cli-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char out[64], err[64];
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(err, sizeof err, "%s/err", dir);
  char path[4096], libtool[4096], supp[4200];
  snprintf(path, sizeof path, "%s", tb_path("tools/aiplat/aiplat"));
  snprintf(libtool, sizeof libtool, "%s", tb_path("libtool"));
  const char *src = getenv("top_srcdir");
  snprintf(supp, sizeof supp, "--suppressions=%s/tests/valgrind.supp",
           src ? src : ".");
  const char *argv[80];
  size_t n = 0;
  if (valgrind) {
    const char *vg[] = {libtool,
                        "--mode=execute",
                        "valgrind",
                        "--quiet",
                        "--error-exitcode=99",
                        "--leak-check=full",
                        "--errors-for-leak-kinds=definite,indirect",
                        "--show-leak-kinds=definite,indirect",
                        supp};
    for (size_t i = 0; i < sizeof vg / sizeof vg[0]; i++) argv[n++] = vg[i];
  }
  argv[n++] = path;
  for (size_t i = 0; args[i] && n < 79; i++) argv[n++] = args[i];
  argv[n] = NULL;
  int64_t t0 = tb_now_ms();
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fi = open("/dev/null", O_RDONLY);
    if (fo < 0 || fe < 0 || fi < 0) _exit(126);
    dup2(fi, 0), dup2(fo, 1), dup2(fe, 2);
    unsetenv("LD_PRELOAD"); /* not under valgrind: only the test program is */
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int st = 0;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  r.seconds = (double)(tb_now_ms() - t0) / 1000.0;
  if (WIFEXITED(st)) r.code = WEXITSTATUS(st);
  r.out = (char *)tb_read_file(out, &r.out_len);
  size_t elen;
  r.err = (char *)tb_read_file(err, &elen);
  if (!r.out) r.out = strdup("");
  if (!r.err) r.err = strdup("");
  unlink(out);
  unlink(err);
  rmdir(dir);
  return r;
}

tb_run tb_cli(const char *const *args) {
  return run_cli(args, false);
}

tb_run tb_cli_valgrind(const char *const *args) {
  return run_cli(args, true);
}

void tb_run_free(tb_run *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

size_t tb_lines(const char *s) {
  size_t n = 0;
  const char *p = s;
  for (; *p; p++)
    if (*p == '\n') n++;
  if (p > s && p[-1] != '\n') n++;
  return n;
}

/* ---- bus -------------------------------------------------------------------
 */

aiplat_bus *tb_bus(const char *url) {
  aiplat_config *cfg = NULL;
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "NATS_URL", url), AIPLAT_OK);
  aiplat_bus *bus = NULL;
  ck_assert_int_eq(aiplat_bus_create(&bus, cfg), AIPLAT_OK);
  aiplat_config_destroy(cfg);
  ck_assert_int_eq(aiplat_bus_connect(bus), AIPLAT_OK);
  return bus;
}

aiplat_msg *tb_request_raw(aiplat_bus *bus, const char *subject,
                           const void *data, size_t len, aiplat_msg_type type,
                           int64_t timeout_ms) {
  aiplat_bus_msg *reply = NULL;
  aiplat_status st =
      aiplat_bus_request(bus, subject, data, len, NULL, timeout_ms, &reply);
  ck_assert_msg(st == AIPLAT_OK, "request on %s: %s", subject,
                aiplat_status_str(st));
  aiplat_msg *m = NULL;
  st = aiplat_msg_decode(&m, type, aiplat_bus_msg_data(reply),
                         aiplat_bus_msg_len(reply));
  aiplat_bus_msg_destroy(reply);
  ck_assert_int_eq(st, AIPLAT_OK);
  return m;
}

/* Through the client half of the protocol (aiplat/client.h): an error
 * reply is a reply here, the test reads its code with tb_error(). */
aiplat_msg *tb_request(aiplat_bus *bus, const char *subject, aiplat_msg *m,
                       aiplat_msg_type type, int64_t timeout_ms) {
  aiplat_client *c = NULL;
  aiplat_client_options *o = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, bus), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_create(&o), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_set_timeout_ms(o, timeout_ms), AIPLAT_OK);
  aiplat_msg *r = NULL;
  aiplat_status st = aiplat_client_request(c, subject, m, type, o, &r);
  char why[512];
  aiplat_error_last(why, sizeof why);
  aiplat_client_options_destroy(o);
  aiplat_client_destroy(c);
  ck_assert_msg(r != NULL, "request on %s: %s: %s", subject, aiplat_status_name(st), why);
  return r;
}

int64_t tb_error(aiplat_msg *reply, const char **msg) {
  aiplat_msg *e = NULL;
  if (msg) *msg = "";
  if (aiplat_msg_get_message(reply, "error", &e) != AIPLAT_OK || !e) return 0;
  int64_t code = 0;
  aiplat_msg_get_int64(e, "code", &code);
  if (msg) aiplat_msg_get_string(e, "message", msg);
  return code;
}
