/* HTTP status mapping and the server's own message from every error shape
 * the supported model servers send (see http.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http.h"

aiplat_status aip_http_status_for(long s) {
  if (s >= 200 && s < 300) return AIPLAT_OK;
  switch (s) {
    case 401:
    case 403:
      return AIPLAT_ERR_AUTH;
    case 404: /* an unknown model or a wrong URL: no such item (ADR 0008) */
      return AIPLAT_ERR_NOT_FOUND;
    case 408:
      return AIPLAT_ERR_TIMEOUT;
    case 413:
      return AIPLAT_ERR_TOO_LARGE;
    case 429:
      return AIPLAT_ERR_RATE_LIMITED;
    case 503:
      return AIPLAT_ERR_UNAVAILABLE;
    default:
      break;
  }
  if (s >= 400 && s < 500) return AIPLAT_ERR_BAD_REQUEST;
  if (s >= 500 && s < 600) return AIPLAT_ERR_SERVER;
  return AIPLAT_ERR_PROTOCOL; /* 1xx/3xx as a final answer, or nonsense */
}

/* ---- text clean-up --------------------------------------------------------
 */

typedef struct out_text {
  char *p;
  size_t cap; /* including the NUL */
  size_t len;
  bool space; /* the last byte written was a space */
} out_text;

/* Append @s, turning runs of whitespace and control bytes into one space. */
static void put(out_text *o, const char *s, size_t n) {
  for (size_t i = 0; i < n && o->len + 1 < o->cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || c == ' ') {
      if (o->len == 0 || o->space) continue;
      o->p[o->len++] = ' ';
      o->space = true;
    } else {
      o->p[o->len++] = (char)c;
      o->space = false;
    }
  }
  o->p[o->len] = '\0';
}

static void puts_(out_text *o, const char *s) {
  put(o, s, strlen(s));
}

/* Trim a trailing space and never end inside a UTF-8 sequence. */
static bool finish(out_text *o) {
  size_t n = o->len;
  if (n && o->len + 1 >= o->cap) { /* possibly cut: drop a partial char */
    size_t i = n;
    while (i > 0 && ((unsigned char)o->p[i - 1] & 0xC0) == 0x80) i--;
    if (i > 0 && ((unsigned char)o->p[i - 1]) >= 0xC0) {
      unsigned char lead = (unsigned char)o->p[i - 1];
      size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
      if (n - (i - 1) < want) n = i - 1;
    }
  }
  while (n && o->p[n - 1] == ' ') n--;
  o->p[n] = '\0';
  o->len = n;
  return n > 0;
}

/* ---- JSON shapes ----------------------------------------------------------
 */

static bool from_json(out_text *o, json_t *v, int depth);

/* FastAPI / pydantic: {"loc":["body","x"],"msg":"field required"}. */
static bool from_detail_item(out_text *o, json_t *item, int depth) {
  json_t *msg = json_object_get(item, "msg");
  if (!json_is_string(msg)) return from_json(o, item, depth + 1);
  json_t *loc = json_object_get(item, "loc");
  if (json_is_array(loc) && json_array_size(loc) > 0) {
    size_t i;
    json_t *part;
    json_array_foreach(loc, i, part) {
      if (i) puts_(o, ".");
      if (json_is_string(part)) {
        puts_(o, json_string_value(part));
      } else if (json_is_integer(part)) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(part));
        puts_(o, num);
      }
    }
    puts_(o, ": ");
  }
  put(o, json_string_value(msg), json_string_length(msg));
  return true;
}

static bool from_list(out_text *o, json_t *arr, int depth, bool detail) {
  size_t i, before = o->len;
  json_t *item;
  json_array_foreach(arr, i, item) {
    size_t mark = o->len;
    if (o->len > before) puts_(o, "; ");
    bool ok = detail && json_is_object(item) ? from_detail_item(o, item, depth)
                                             : from_json(o, item, depth + 1);
    if (!ok) { /* nothing from this item: undo the separator */
      o->len = mark;
      o->p[o->len] = '\0';
    }
  }
  return o->len > before;
}

static bool from_json(out_text *o, json_t *v, int depth) {
  if (!v || depth > 4) return false;
  if (json_is_string(v)) {
    size_t before = o->len;
    put(o, json_string_value(v), json_string_length(v));
    return o->len > before;
  }
  if (json_is_array(v)) return from_list(o, v, depth, false);
  if (!json_is_object(v)) return false;
  /* In the order a server is most likely to mean as the message. */
  static const char *const keys[] = {"error",   "message", "detail",
                                     "msg",     "errors",  "error_description",
                                     "error_message", /* Kubeflow */
                                     "title",   "reason",
                                     "details"}; /* google.rpc.Status */
  for (size_t i = 0; i < AIP_ARRAY_LEN(keys); i++) {
    json_t *x = json_object_get(v, keys[i]);
    if (!x) continue;
    bool ok = json_is_array(x) ? from_list(o, x, depth, i == 2)
                               : from_json(o, x, depth + 1);
    if (ok) return true;
  }
  return false;
}

bool aip_http_error_json(json_t *root, char *out, size_t outlen) {
  if (!out || outlen == 0) return false;
  out_text o = {out, outlen, 0, false};
  out[0] = '\0';
  from_json(&o, root, 0);
  return finish(&o);
}

long aip_http_error_code(json_t *root) {
  if (!json_is_object(root)) return 0;
  static const char *const keys[] = {"code", "status", "status_code"};
  for (size_t i = 0; i < AIP_ARRAY_LEN(keys); i++) {
    json_t *c = json_object_get(root, keys[i]);
    if (json_is_integer(c)) {
      json_int_t n = json_integer_value(c);
      if (n >= 400 && n <= 599) return (long)n;
    }
  }
  json_t *inner = json_object_get(root, "error");
  return json_is_object(inner) ? aip_http_error_code(inner) : 0;
}

/* ---- HTML and plain text --------------------------------------------------
 */

static const char *find_ci(const char *s, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (strncasecmp(s + i, needle, k) == 0) return s + i;
  return NULL;
}

/* The <title> (or first <h1>) of an HTML page; else its text without tags. */
static void from_html(out_text *o, const char *s, size_t n) {
  static const char *const tags[][2] = {{"<title>", "</title>"},
                                        {"<h1>", "</h1>"}};
  for (size_t t = 0; t < 2; t++) {
    const char *a = find_ci(s, n, tags[t][0]);
    if (!a) continue;
    a += strlen(tags[t][0]);
    const char *b = find_ci(a, n - (size_t)(a - s), tags[t][1]);
    if (b && b > a) {
      put(o, a, (size_t)(b - a));
      if (o->len) return;
    }
  }
  bool in_tag = false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '<')
      in_tag = true;
    else if (s[i] == '>')
      in_tag = false;
    else if (!in_tag)
      put(o, s + i, 1);
    if (!in_tag && s[i] == '>') put(o, " ", 1);
  }
}

bool aip_http_error_text(const char *body, size_t len, char *out,
                         size_t outlen) {
  if (!out || outlen == 0) return false;
  out[0] = '\0';
  if (!body) return false;
  while (len &&
         (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n')) {
    body++;
    len--;
  }
  if (len == 0) return false;
  out_text o = {out, outlen, 0, false};
  if (*body == '{' || *body == '[' || *body == '"') {
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    bool ok = root && from_json(&o, root, 0);
    json_decref(root);
    if (ok) return finish(&o);
    o.len = 0; /* unknown JSON shape or broken JSON: show it as text */
    out[0] = '\0';
  } else if (*body == '<') {
    from_html(&o, body, len);
    if (finish(&o)) return true;
    o.len = 0;
    out[0] = '\0';
  }
  put(&o, body, len);
  return finish(&o);
}
