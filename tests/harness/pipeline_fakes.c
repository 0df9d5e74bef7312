/* The Argo and Kubeflow fakes as child processes; see pipeline_fakes.h. */
#define _GNU_SOURCE
#include "pipeline_fakes.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct th_fake {
  pid_t pid;
  int port;
  char dir[256];
  char url[64];
};

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int read_port(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int port = -1;
  if (fscanf(f, "%d", &port) != 1) port = -1;
  fclose(f);
  return port;
}

th_fake *th_fake_start(const char *script, const char *const *args) {
  th_fake *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  const char *tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/aiplat-fake-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f->dir)) {
    fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
    free(f);
    return NULL;
  }
  char path[512], port_file[300], log[300];
  const char *src = getenv("top_srcdir");
  snprintf(path, sizeof path, "%s/tests/fakes/%s", src && *src ? src : ".",
           script);
  snprintf(port_file, sizeof port_file, "%s/port", f->dir);
  snprintf(log, sizeof log, "%s/fake.log", f->dir);
  const char *python = getenv("PYTHON");
  if (!python || !*python) python = "python3";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    th_fake_stop(f);
    return NULL;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
    const char *argv[64];
    int i = 0;
    argv[i++] = python;
    argv[i++] = path;
    argv[i++] = "--port-file";
    argv[i++] = port_file;
    for (int j = 0; args && args[j] && i < 63; j++) argv[i++] = args[j];
    argv[i] = NULL;
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  f->pid = pid;
  for (int waited = 0; waited < 10000; waited += 10) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      fprintf(stderr, "harness: %s exited at start; see %s\n", script, log);
      f->pid = 0;
      th_fake_stop(f);
      return NULL;
    }
    int port = read_port(port_file);
    if (port > 0) {
      f->port = port;
      snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", port);
      return f;
    }
    sleep_ms(10);
  }
  fprintf(stderr, "harness: %s did not start within 10 s\n", script);
  th_fake_stop(f);
  return NULL;
}

const char *th_fake_url(const th_fake *f) {
  return f->url;
}
int th_fake_port(const th_fake *f) {
  return f->port;
}

typedef struct {
  char *data;
  size_t len;
} th_body;

static size_t collect(char *p, size_t size, size_t n, void *ud) {
  th_body *b = ud;
  char *grown = realloc(b->data, b->len + size * n + 1);
  if (!grown) return 0;
  b->data = grown;
  memcpy(b->data + b->len, p, size * n);
  b->len += size * n;
  b->data[b->len] = '\0';
  return size * n;
}

/* A control request to the fake; the answer's body (free()) or NULL. */
static char *control(th_fake *f, const char *method, const char *path,
                     const char *body) {
  CURL *c = curl_easy_init();
  if (!c) return NULL;
  char url[128];
  snprintf(url, sizeof url, "%s%s", f->url, path);
  th_body out = {0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  long status = 0;
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK || status != 200) {
    fprintf(stderr, "harness: %s %s: curl %d, HTTP %ld\n", method, path,
            (int)rc, status);
    free(out.data);
    return NULL;
  }
  if (!out.data) out.data = calloc(1, 1);
  return out.data;
}

bool th_fake_fault(th_fake *f, const char *json) {
  char *r = control(f, "POST", "/_fake/fault", json);
  free(r);
  return r != NULL;
}

bool th_fake_reset(th_fake *f) {
  char *r = control(f, "POST", "/_fake/reset", "{}");
  free(r);
  return r != NULL;
}

json_t *th_fake_requests(th_fake *f) {
  char *r = control(f, "GET", "/_fake/requests", NULL);
  if (!r) return NULL;
  json_t *root = json_loads(r, 0, NULL);
  free(r);
  json_t *reqs = json_incref(json_object_get(root, "requests"));
  json_decref(root);
  return reqs;
}

int th_fake_request_count(th_fake *f) {
  json_t *r = th_fake_requests(f);
  int n = r ? (int)json_array_size(r) : -1;
  json_decref(r);
  return n;
}

static void rm_dir(const char *dir) {
  char path[320];
  static const char *const files[] = {"port", "port.tmp", "fake.log"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

void th_fake_stop(th_fake *f) {
  if (!f) return;
  if (f->pid > 0) {
    kill(f->pid, SIGTERM);
    int waited = 0;
    while (waitpid(f->pid, NULL, WNOHANG) != f->pid) {
      if (waited >= 5000) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        break;
      }
      sleep_ms(10);
      waited += 10;
    }
  }
  rm_dir(f->dir);
  free(f);
}
