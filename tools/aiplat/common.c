/* aiplat: connection, requests, errors, files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void vline(const char *fmt, va_list ap) {
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  for (char *p = line; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
  fprintf(stderr, "aiplat: %s\n", line);
}

int cli_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline(fmt, ap);
  va_end(ap);
  return code;
}

int cli_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline(fmt, ap);
  va_end(ap);
  fputs("Try 'aiplat --help'.\n", stderr);
  return CLI_EUSAGE;
}

int cli_code_for(aiplat_status st) { return aiplat_status_exit_code(st); }

int cli_fail_last(aiplat_status st, const char *what) {
  char why[512];
  aiplat_error_last(why, sizeof why);
  return cli_fail(cli_code_for(st), "%s: %s", what,
                  *why ? why : aiplat_status_str(st));
}

int cli_connect(cli *c) {
  aiplat_status st = aiplat_config_create(&c->cfg);
  if (st == AIPLAT_OK && c->server)
    st = aiplat_config_set(c->cfg, "NATS_URL", c->server);
  char why[512] = "";
  if (st == AIPLAT_OK && (st = aiplat_config_validate(c->cfg)) != AIPLAT_OK)
    aiplat_config_last_error(c->cfg, why, sizeof why);
  else if (st == AIPLAT_OK &&
           (st = aiplat_bus_create(&c->bus, c->cfg)) != AIPLAT_OK)
    aiplat_error_last(why, sizeof why);
  if (st != AIPLAT_OK) {
    if (!*why) aiplat_error_last(why, sizeof why);
    return cli_fail(st == AIPLAT_ERR_NO_MEMORY ? CLI_EIO : CLI_ECONFIG, "%s",
                    why);
  }
  st = aiplat_bus_connect(c->bus);
  if (st != AIPLAT_OK) return cli_fail_last(st, "cannot connect to NATS");
  st = aiplat_client_create(&c->client, c->bus);
  if (st != AIPLAT_OK) return cli_fail_last(st, "cannot make a client");
  return CLI_OK;
}

void cli_disconnect(cli *c) {
  aiplat_client_destroy(c->client);
  c->client = NULL;
  aiplat_bus_destroy(c->bus);
  aiplat_config_destroy(c->cfg);
  c->bus = NULL;
  c->cfg = NULL;
}

int64_t cli_timeout(const cli *c, int64_t dflt_ms) {
  return c->timeout_ms > 0 ? c->timeout_ms : dflt_ms;
}

static void random_bytes(uint8_t *b, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(b + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      for (; got < n; got++) b[got] = (uint8_t)rand(); /* never in practice */
      return;
    }
    got += (size_t)r;
  }
}

void cli_new_id(char out[17]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t b[8];
  random_bytes(b, sizeof b);
  for (size_t i = 0; i < 8; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[16] = '\0';
}

void cli_new_inbox(char out[32]) {
  static const char alnum[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t b[22];
  random_bytes(b, sizeof b);
  memcpy(out, "_INBOX.", 7);
  for (int i = 0; i < 22; i++) out[7 + i] = alnum[b[i] % 62];
  out[29] = '\0';
}

int cli_request(cli *c, const char *subject, aiplat_msg *m,
                aiplat_msg_type reply_type, int64_t timeout_ms,
                aiplat_msg **out) {
  *out = NULL;
  aiplat_client_options *o = NULL;
  aiplat_status st = aiplat_client_options_create(&o);
  if (st == AIPLAT_OK) st = aiplat_client_options_set_timeout_ms(o, timeout_ms);
  if (st != AIPLAT_OK) {
    aiplat_client_options_destroy(o);
    return cli_fail_last(st, "bad request options");
  }
  st = aiplat_client_request(c->client, subject, m, reply_type, o, out);
  aiplat_client_options_destroy(o);
  if (*out) return CLI_OK; /* answered: an error in it is cli_check_error()'s */
  char why[512];
  aiplat_error_last(why, sizeof why);
  if (st == AIPLAT_ERR_UNAVAILABLE)
    return cli_fail(CLI_ENOREPLY, "no service is listening on %s", subject);
  if (st == AIPLAT_ERR_TIMEOUT)
    return cli_fail(CLI_ENOREPLY, "no answer on %s within %lld ms", subject,
                    (long long)timeout_ms);
  if (st == AIPLAT_ERR_TOO_LARGE)
    return cli_fail(CLI_EUSAGE, "the request cannot be sent: %s: send less", why);
  if (st == AIPLAT_ERR_DECODE)
    return cli_fail(CLI_ESERVICE, "the answer on %s is not a %s: %s", subject,
                    aiplat_msg_type_name(reply_type), why);
  return cli_fail(cli_code_for(st), "request failed: %s", why);
}

int cli_check_error(aiplat_msg *reply, const char *what) {
  aiplat_msg *err = NULL;
  if (aiplat_msg_get_message(reply, "error", &err) != AIPLAT_OK || !err)
    return CLI_OK;
  int64_t code = 0;
  const char *text = "";
  aiplat_msg_get_int64(err, "code", &code);
  aiplat_msg_get_string(err, "message", &text);
  return cli_fail(CLI_ESERVICE, "%s: %s: %s", what,
                  aiplat_status_name((aiplat_status)code),
                  *text ? text : "(no message)");
}

int cli_print_json(aiplat_msg *m, const char *drop_bytes) {
  if (drop_bytes) aiplat_msg_clear_field(m, drop_bytes);
  char *json = NULL;
  aiplat_status st = aiplat_msg_to_json(m, &json);
  if (st != AIPLAT_OK) return cli_fail_last(st, "cannot write JSON");
  printf("%s\n", json);
  fflush(stdout);
  aiplat_free(json);
  return CLI_OK;
}

int cli_read_file(const char *path, uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  int fd =
      strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cli_fail(CLI_EIO, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 65536, n = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      if (fd != STDIN_FILENO) close(fd);
      return cli_fail(CLI_EIO, "out of memory reading %s", path);
    }
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) free(buf);
      buf = nb;
      cap *= 2;
      continue;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      if (fd != STDIN_FILENO) close(fd);
      return cli_fail(CLI_EIO, "cannot read %s: %s", path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  if (fd != STDIN_FILENO) close(fd);
  *data = buf;
  *len = n;
  return CLI_OK;
}

static bool write_all(int fd, const uint8_t *p, size_t len) {
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    len -= (size_t)w;
  }
  return true;
}

int cli_write_file(const char *path, const void *data, size_t len) {
  if (strcmp(path, "-") == 0) {
    fflush(stdout);
    if (!write_all(STDOUT_FILENO, data, len))
      return cli_fail(CLI_EIO, "cannot write to standard output: %s",
                      strerror(errno));
    return CLI_OK;
  }
  /* Write beside the target, then rename: a reader never sees half a file. */
  size_t n = strlen(path) + 16;
  char *tmp = malloc(n);
  if (!tmp) return cli_fail(CLI_EIO, "out of memory");
  snprintf(tmp, n, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return cli_fail(CLI_EIO, "cannot write %s: %s", path, strerror(e));
  }
  mode_t mask = umask(0);
  umask(mask);
  bool ok = fchmod(fd, 0666 & ~mask) == 0 && write_all(fd, data, len);
  int e = errno;
  if (close(fd) != 0 && ok) ok = false, e = errno;
  if (ok && rename(tmp, path) != 0) ok = false, e = errno;
  if (!ok) unlink(tmp);
  free(tmp);
  if (!ok) return cli_fail(CLI_EIO, "cannot write %s: %s", path, strerror(e));
  return CLI_OK;
}

void cli_print_sources(aiplat_msg *m) {
  size_t n = 0;
  if (aiplat_msg_count(m, "sources", &n) != AIPLAT_OK || n == 0) return;
  printf("\nSources:\n");
  for (size_t i = 0; i < n; i++) {
    aiplat_msg *s = NULL;
    if (aiplat_msg_get_item(m, "sources", i, &s) != AIPLAT_OK) break;
    const char *src = "", *id = "";
    double score = 0;
    aiplat_msg_get_string(s, "source", &src);
    aiplat_msg_get_string(s, "id", &id);
    aiplat_msg_get_double(s, "score", &score);
    printf("  [%zu] %s (score %.3f)\n", i + 1,
           *src  ? src
           : *id ? id
                 : "(unnamed)",
           score);
  }
}

const char *cli_audio_format(const char *path) {
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash) || !dot[1]) return "";
  static const char *const known[] = {"wav",  "mp3", "ogg", "opus", "flac",
                                      "webm", "m4a", "mp4", "aac"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcasecmp(dot + 1, known[i]) == 0) return known[i];
  return ""; /* let the service recognise it */
}
