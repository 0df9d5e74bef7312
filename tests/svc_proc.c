/* Service binaries as processes; see svc_proc.h. */
#include "svc_proc.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

bool sp_under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload") != NULL;
}

const char *sp_path(const char *rel, char *buf, size_t len) {
  const char *top = getenv("top_builddir");
  snprintf(buf, len, "%s/%s", top ? top : ".", rel);
  return buf;
}

bool sp_start(sp_proc *p, const char *binary, const char *const *env,
              const char *logpath, const char *const *args) {
  memset(p, 0, sizeof *p);
  snprintf(p->log, sizeof p->log, "%s", logpath);
  p->valgrind = sp_under_valgrind();
  const char *argv[48];
  size_t n = 0;
  char libtool[512], supp[512];
  if (p->valgrind) {
    const char *top = getenv("top_builddir"), *src = getenv("top_srcdir");
    snprintf(libtool, sizeof libtool, "%s/libtool", top ? top : ".");
    snprintf(supp, sizeof supp, "--suppressions=%s/tests/valgrind.supp",
             src ? src : ".");
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
  argv[n++] = binary;
  for (size_t i = 0; args && args[i] && n < 46; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    /* The test's own signal mask must not reach the service. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 2);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) dup2(devnull, 0), dup2(devnull, 1);
    setenv("HEALTH_PORT", "0", 1);
    setenv("HEALTH_BIND", "127.0.0.1", 1);
    unsetenv("CK_FORK");
    for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  p->pid = pid;
  return true;
}

char *sp_read_log(const sp_proc *p) {
  FILE *f = fopen(p->log, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
    n += r;
    if (cap - n < 2) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  return buf;
}

bool sp_alive(sp_proc *p) {
  if (p->pid <= 0) return false;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == 0) return true;
  if (r == p->pid) { /* reaped here: keep the status, forget the pid */
    p->reaped_status = st;
    p->reaped = true;
    p->pid = 0;
    return false;
  }
  if (errno != ECHILD) return false;
  /* Not our child (started by a fixture in the parent): ask /proc. */
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)p->pid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *close = strrchr(buf, ')');
  return close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
}

bool sp_wait_started(sp_proc *p, int timeout_ms) {
  if (p->valgrind) timeout_ms *= 10;
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    char *log = sp_read_log(p);
    const char *at = log ? strstr(log, "\"service started\"") : NULL;
    if (at) {
      const char *hp = strstr(at, "\"health_port\":\"");
      p->health_port = hp ? atoi(hp + 15) : 0;
      free(log);
      return true;
    }
    free(log);
    if (!sp_alive(p)) return false;
    nap(20);
  }
  return false;
}

int sp_wait_exit(sp_proc *p, int timeout_ms) {
  if (p->pid <= 0) return p->reaped ? p->reaped_status : -1;
  if (p->valgrind) timeout_ms *= 10;
  int64_t deadline = now_ms() + timeout_ms;
  int st = 0;
  while (now_ms() < deadline) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->pid = 0;
      return st;
    }
    nap(10);
  }
  return -1;
}

int sp_stop(sp_proc *p, int sig, int timeout_ms) {
  if (p->pid <= 0) return p->reaped ? p->reaped_status : -1;
  kill(p->pid, sig);
  int st = sp_wait_exit(p, timeout_ms);
  if (st == -1 && p->pid > 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
  }
  return st;
}

static size_t collect(char *data, size_t size, size_t n, void *ud) {
  char **body = ud;
  size_t old = *body ? strlen(*body) : 0, add = size * n;
  char *nb = realloc(*body, old + add + 1);
  if (!nb) return 0;
  memcpy(nb + old, data, add);
  nb[old + add] = '\0';
  *body = nb;
  return add;
}

long sp_http_get(int port, const char *path, char **body) {
  char url[256], *got = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *c = curl_easy_init();
  if (!c) return 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (body)
    *body = got;
  else
    free(got);
  return status;
}
