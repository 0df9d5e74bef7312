/* Helper server processes for tests; see backend_harness.h. */
#define _GNU_SOURCE
#include "backend_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct th_server {
  pid_t pid;
  int port;
  char dir[64];
  char url[64];
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (n < cap) break;
    char *nb = realloc(buf, cap * 2 + 1);
    if (!nb) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  return buf;
}

/* ---- a tiny HTTP client -------------------------------------------------- */

static bool send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

int th_http(int port, const char *method, const char *path, const char *body,
            char **body_out, int timeout_ms) {
  if (body_out) *body_out = NULL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return 0;
  }
  size_t blen = body ? strlen(body) : 0;
  char head[512];
  int hn = snprintf(head, sizeof head,
                    "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: "
                    "application/json\r\nContent-Length: %zu\r\n\r\n",
                    method, path, blen);
  if (!send_all(fd, head, (size_t)hn) || (blen && !send_all(fd, body, blen))) {
    close(fd);
    return 0;
  }
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    close(fd);
    return 0;
  }
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int left = (int)(deadline - now_ms());
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, left) <= 0) break;
    if (n == cap) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) break;
      buf = nb;
      cap *= 2;
    }
    ssize_t r = recv(fd, buf + n, cap - n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  int status = 0;
  if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1) status = 0;
  char *sep = strstr(buf, "\r\n\r\n");
  if (body_out && sep) *body_out = strdup(sep + 4);
  free(buf);
  return status;
}

/* ---- processes ------------------------------------------------------------
 */

th_server *th_server_start(const char *const *argv, const char *port_flag,
                           const char *health_path, int timeout_ms) {
  th_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  snprintf(s->dir, sizeof s->dir, "/tmp/aiplat-srv-XXXXXX");
  if (!mkdtemp(s->dir)) {
    perror("mkdtemp");
    free(s);
    return NULL;
  }
  char port_file[128], log_file[128];
  snprintf(port_file, sizeof port_file, "%s/port", s->dir);
  snprintf(log_file, sizeof log_file, "%s/log", s->dir);
  const char *args[64];
  size_t n = 0;
  for (; n < 60 && argv[n]; n++) args[n] = argv[n];
  args[n++] = port_flag;
  args[n++] = port_file;
  args[n] = NULL;
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    rmdir(s->dir);
    free(s);
    return NULL;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    /* The child is a normal program even when this one runs under
     * valgrind: do not let the preloads follow it. */
    unsetenv("LD_PRELOAD");
    if (!getenv("TH_VERBOSE")) setenv("LOG_LEVEL", "WARNING", 1);
    execvp(args[0], (char *const *)args);
    fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  s->pid = pid;
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    char *p = read_file(port_file);
    if (p) {
      s->port = atoi(p);
      free(p);
      break;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      char *log = read_file(log_file);
      fprintf(stderr, "%s exited early (status %d): %s\n", args[0], st,
              log ? log : "");
      free(log);
      s->pid = 0;
      th_server_stop(s);
      return NULL;
    }
    sleep_ms(10);
  }
  if (s->port <= 0) {
    fprintf(stderr, "%s did not write its port file\n", args[0]);
    th_server_stop(s);
    return NULL;
  }
  snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
  while (health_path && now_ms() < deadline) {
    if (th_http(s->port, "GET", health_path, NULL, NULL, 2000) == 200) return s;
    sleep_ms(20);
  }
  if (health_path) {
    fprintf(stderr, "%s did not become ready\n", args[0]);
    th_server_stop(s);
    return NULL;
  }
  return s;
}

th_server *th_backend_start(const char *const *extra_args) {
  static char bin[4096];
  const char *top = getenv("top_builddir");
  snprintf(bin, sizeof bin, "%s/tools/model-backend/aiplat-model-backend",
           top ? top : ".");
  const char *argv[48] = {bin, "--port", "0", "--no-stt"};
  size_t n = 4;
  for (size_t i = 0; extra_args && extra_args[i] && n < 46; i++)
    argv[n++] = extra_args[i];
  argv[n] = NULL;
  return th_server_start(argv, "--port-file", "/health", 30000);
}

static const char *python3(void) {
  const char *p = getenv("PYTHON3");
  return p && *p ? p : "python3";
}

bool th_have_python3(void) {
  const char *p = python3();
  if (strchr(p, '/')) return access(p, X_OK) == 0;
  const char *path = getenv("PATH");
  if (!path) return false;
  char *copy = strdup(path), *save = NULL;
  bool found = false;
  for (char *d = strtok_r(copy, ":", &save); d && !found;
       d = strtok_r(NULL, ":", &save)) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", *d ? d : ".", p);
    found = access(full, X_OK) == 0;
  }
  free(copy);
  return found;
}

th_server *th_milvus_fake_start(void) {
  static char script[4096];
  const char *top = getenv("top_srcdir");
  snprintf(script, sizeof script, "%s/tests/fakes/milvus_fake.py",
           top ? top : ".");
  const char *argv[] = {python3(), script, NULL};
  return th_server_start(argv, "--port-file", "/healthz", 30000);
}

const char *th_server_url(const th_server *s) {
  return s->url;
}
int th_server_port(const th_server *s) {
  return s->port;
}
const char *th_server_host(const th_server *s) {
  (void)s;
  return "127.0.0.1";
}
pid_t th_server_pid(const th_server *s) {
  return s->pid;
}

char *th_server_log(const th_server *s) {
  char path[128];
  snprintf(path, sizeof path, "%s/log", s->dir);
  return read_file(path);
}

int th_server_stop(th_server *s) {
  if (!s) return -1;
  int st = -1;
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    int64_t deadline = now_ms() + 10000;
    bool done = false;
    while (now_ms() < deadline) {
      if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
        done = true;
        break;
      }
      sleep_ms(10);
    }
    if (!done) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
      st = -1;
    }
  }
  char path[128];
  snprintf(path, sizeof path, "%s/port", s->dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/log", s->dir);
  unlink(path);
  rmdir(s->dir);
  free(s);
  return st;
}
