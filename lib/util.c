/* Small helpers: strings, a growable buffer, clocks. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

char *aip_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *aip_strndup(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

char *aip_sprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *out = NULL;
  if (vasprintf(&out, fmt, ap) < 0) out = NULL;
  va_end(ap);
  return out;
}

bool aip_str_replace(char **dst, const char *src) {
  char *copy = NULL;
  if (src && !(copy = strdup(src))) return false;
  free(*dst);
  *dst = copy;
  return true;
}

bool aip_str_ieq(const char *a, const char *b) {
  return a && b && strcasecmp(a, b) == 0;
}

bool aip_buf_reserve(aip_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) return false;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) return false;
  p[b->len] = '\0'; /* a first allocation holds the empty string */
  b->data = p;
  b->cap = cap;
  return true;
}

bool aip_buf_append(aip_buf *b, const void *data, size_t len) {
  if (!aip_buf_reserve(b, len)) return false;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return true;
}

bool aip_buf_puts(aip_buf *b, const char *s) {
  return aip_buf_append(b, s, strlen(s));
}

bool aip_buf_putc(aip_buf *b, char c) { return aip_buf_append(b, &c, 1); }

bool aip_buf_printf(aip_buf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  bool ok = n >= 0 && aip_buf_reserve(b, (size_t)n);
  if (ok) {
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
  return ok;
}

bool aip_buf_json_escape(aip_buf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  if (!aip_buf_reserve(b, len)) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[7];
    const char *out = NULL;
    size_t n = 0;
    switch (c) {
      case '"': out = "\\\""; n = 2; break;
      case '\\': out = "\\\\"; n = 2; break;
      case '\n': out = "\\n"; n = 2; break;
      case '\r': out = "\\r"; n = 2; break;
      case '\t': out = "\\t"; n = 2; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          memcpy(esc, "\\u00", 4);
          esc[4] = hex[c >> 4];
          esc[5] = hex[c & 15];
          out = esc;
          n = 6;
        }
    }
    if (out) {
      if (!aip_buf_append(b, out, n)) return false;
    } else if (!aip_buf_putc(b, (char)c)) {
      return false;
    }
  }
  return true;
}

void aip_buf_reset(aip_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void aip_buf_free(aip_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *aip_buf_steal(aip_buf *b, size_t *len) {
  if (!b->data && !aip_buf_reserve(b, 0)) return NULL;
  if (b->len == 0) b->data[0] = '\0';
  char *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

int64_t aip_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t aip_now_ms(void) { return aip_now_ns() / 1000000; }

int64_t aip_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void aip_format_time_ms(int64_t wall_ms, char *buf, size_t buflen) {
  time_t secs = (time_t)(wall_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[24];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, buflen, "%s.%03dZ", base, (int)(wall_ms % 1000));
}
