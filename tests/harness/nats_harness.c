/* A real nats-server for tests; see nats_harness.h. */
#define _GNU_SOURCE
#include "nats_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct th_nats {
  pid_t pid;
  int port;
  char dir[256];
  char url[64];
  char conf[300];
  bool has_conf;
};

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static const char *server_path(void) {
  const char *p = getenv("NATS_SERVER");
  return (p && *p && strcmp(p, "no") != 0) ? p : "nats-server";
}

static bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

/* Read the port nats-server wrote to DIR/nats-server_PID.ports. */
static int read_ports_file(const th_nats *s) {
  char path[400];
  snprintf(path, sizeof path, "%s/nats-server_%d.ports", s->dir, (int)s->pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[2048];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* {"nats":["nats://127.0.0.1:PORT"],...}: the port follows the last ':'
   * before the URL's closing quote. */
  /* "tls://" when the configuration enables TLS. */
  const char *url = strstr(buf, "nats://");
  if (!url) url = strstr(buf, "tls://");
  if (!url) return -1;
  const char *colon = NULL;
  for (const char *c = strstr(url, "://") + 3; *c && *c != '"'; c++)
    if (*c == ':') colon = c;
  return colon ? atoi(colon + 1) : -1;
}

static bool spawn(th_nats *s) {
  char port[16], sd[300];
  snprintf(port, sizeof port, "%d", s->port > 0 ? s->port : -1);
  snprintf(sd, sizeof sd, "%s/js", s->dir);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    char log[320];
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    const char *argv[16];
    int i = 0;
    argv[i++] = server_path();
    argv[i++] = "-a";
    argv[i++] = "127.0.0.1";
    argv[i++] = "-p";
    argv[i++] = port;
    argv[i++] = "-js";
    argv[i++] = "-sd";
    argv[i++] = sd;
    argv[i++] = "--ports_file_dir";
    argv[i++] = s->dir;
    if (s->has_conf) {
      argv[i++] = "-c";
      argv[i++] = s->conf;
    }
    argv[i] = NULL;
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  s->pid = pid;
  for (int waited = 0; waited < 10000; waited += 10) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      fprintf(stderr, "harness: nats-server (%s) exited at start; see %s/server.log\n",
              server_path(), s->dir);
      s->pid = 0;
      return false;
    }
    int p = s->port > 0 ? s->port : read_ports_file(s);
    if (p > 0 && port_open(p)) {
      s->port = p;
      snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", p);
      return true;
    }
    sleep_ms(10);
  }
  fprintf(stderr, "harness: nats-server did not start within 10 s\n");
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  s->pid = 0;
  return false;
}

th_nats *th_nats_start(const char *extra_conf) {
  th_nats *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/aiplat-nats-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(s->dir)) {
    fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
    free(s);
    return NULL;
  }
  if (extra_conf) {
    snprintf(s->conf, sizeof s->conf, "%s/nats.conf", s->dir);
    FILE *f = fopen(s->conf, "w");
    if (!f) {
      th_nats_stop(s);
      return NULL;
    }
    fprintf(f, "%s\n", extra_conf);
    fclose(f);
    s->has_conf = true;
  }
  if (!spawn(s)) {
    th_nats_stop(s);
    return NULL;
  }
  return s;
}

const char *th_nats_url(const th_nats *s) { return s->url; }
int th_nats_port(const th_nats *s) { return s->port; }
pid_t th_nats_pid(const th_nats *s) { return s->pid; }

bool th_nats_kill(th_nats *s) {
  if (!s || s->pid <= 0) return false;
  kill(s->pid, SIGTERM);
  for (int waited = 0; waited < 5000; waited += 10) {
    if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
      s->pid = 0;
      return true;
    }
    sleep_ms(10);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
  return true;
}

bool th_nats_restart(th_nats *s) {
  if (!s) return false;
  if (s->pid > 0) th_nats_kill(s);
  /* The port may sit in TIME_WAIT; nats-server sets SO_REUSEADDR. */
  for (int attempt = 0; attempt < 50; attempt++) {
    if (spawn(s)) return true;
    sleep_ms(100);
  }
  return false;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  remove(path);
  return 0;
}

void th_nats_stop(th_nats *s) {
  if (!s) return;
  if (s->pid > 0) th_nats_kill(s);
  if (s->dir[0] && !getenv("TH_KEEP_NATS_DIR"))
    nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(s);
}

/* A port nobody listens on now (the kernel's choice for an ephemeral bind). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

bool th_nats_cluster_start(th_nats **nodes, int n) {
  if (n < 2 || n > 5) return false;
  int route[5];
  for (int i = 0; i < n; i++)
    if ((route[i] = free_port()) <= 0) return false;
  for (int i = 0; i < n; i++) nodes[i] = NULL;
  for (int i = 0; i < n; i++) {
    char conf[1024], routes[512] = "";
    size_t used = 0;
    for (int j = 0; j < n; j++)
      if (j != i)
        used += (size_t)snprintf(routes + used, sizeof routes - used,
                                 "%snats-route://127.0.0.1:%d", used ? ", " : "",
                                 route[j]);
    snprintf(conf, sizeof conf,
             "server_name: n%d\n"
             "cluster {\n  name: aiplat-test\n  listen: 127.0.0.1:%d\n"
             "  routes: [ %s]\n}\n",
             i + 1, route[i], routes);
    if (!(nodes[i] = th_nats_start(conf))) {
      for (int j = 0; j < i; j++) th_nats_stop(nodes[j]), nodes[j] = NULL;
      return false;
    }
  }
  return true;
}

const char *th_nats_cluster_urls(th_nats *const *nodes, int n, char *buf,
                                 size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
                             th_nats_url(nodes[i]));
  return buf;
}
