/* Speech-to-text client (aiplat/stt.h). */
#include "aiplat/stt.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "model_common.h"
#include "model_parse.h"
#include "utf8.h"

struct aiplat_stt {
  aip_model_base base;
  aiplat_stt_api api; /* these three under base.mu */
  aiplat_stt_format format;
  char *language;
};

typedef struct segment {
  double start, end;
  char *text;
} segment;

struct aiplat_stt_result {
  char *text;
  char *language;
  double duration;
  size_t nseg;
  segment *seg;
};

/* Per-call settings: NULL / -1 leave the client's. */
struct aiplat_stt_options {
  char *language; /* "" sends none */
  char *prompt;
  int format; /* aiplat_stt_format, or -1 */
};

static const char *const format_names[] = {"json", "verbose_json", "text"};

AIPLAT_API aiplat_status aiplat_stt_create(aiplat_stt **out,
                                           aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL out");
  *out = NULL;
  aiplat_stt *c = calloc(1, sizeof *c);
  if (!c) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  aiplat_status st = aip_model_base_init(&c->base, "stt", cfg, "STT_URL",
                                         "STT_API_KEY", "STT_MODEL", NULL);
  if (st != AIPLAT_OK) {
    free(c);
    return st;
  }
  aiplat_config *own = NULL, *k = aip_model_cfg_begin(cfg, &own);
  const char *api = NULL, *lang = NULL, *fmt = NULL;
  if (!k) {
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
    goto done;
  }
  if ((st = aiplat_config_get_string(k, "STT_API", &api)) != AIPLAT_OK ||
      (st = aiplat_config_get_string(k, "STT_LANGUAGE", &lang)) != AIPLAT_OK ||
      (st = aiplat_config_get_string(k, "STT_RESPONSE_FORMAT", &fmt)) !=
          AIPLAT_OK) {
    aip_model_cfg_fail(&c->base, k, st);
    goto done;
  }
  if (!api || aip_str_ieq(api, "openai")) {
    c->api = AIPLAT_STT_API_OPENAI;
  } else if (aip_str_ieq(api, "whispercpp") ||
             aip_str_ieq(api, "whisper.cpp")) {
    c->api = AIPLAT_STT_API_WHISPER_CPP;
  } else {
    st = aip_fail(&c->base.err, AIPLAT_ERR_CONFIG,
                  "stt: STT_API=\"%.40s\" is not openai or whispercpp", api);
    goto done;
  }
  c->format = AIPLAT_STT_FORMAT_JSON;
  if (fmt) {
    size_t i = 0;
    while (i < AIP_ARRAY_LEN(format_names) &&
           !aip_str_ieq(fmt, format_names[i]))
      i++;
    if (i == AIP_ARRAY_LEN(format_names)) {
      st = aip_fail(&c->base.err, AIPLAT_ERR_CONFIG,
                    "stt: STT_RESPONSE_FORMAT=\"%.40s\" is not json, "
                    "verbose_json or text",
                    fmt);
      goto done;
    }
    c->format = (aiplat_stt_format)i;
  }
  if (lang && *lang && !(c->language = aip_strdup(lang)))
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
done:
  aip_model_cfg_end(own);
  if (st != AIPLAT_OK) {
    aiplat_stt_destroy(c);
    return st;
  }
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_stt_destroy(aiplat_stt *c) {
  if (!c) return;
  aip_model_base_destroy(&c->base);
  free(c->language);
  free(c);
}

/* ---- the entry points every client kind offers (lib/model_common.c) ---- */

AIPLAT_API aiplat_status aiplat_stt_set_url(aiplat_stt *c, const char *url) {
  return aip_model_api_set_url(c ? &c->base : NULL, "stt", url);
}

AIPLAT_API aiplat_status aiplat_stt_set_model(aiplat_stt *c, const char *model) {
  return aip_model_api_set_model(c ? &c->base : NULL, "stt", model);
}

AIPLAT_API aiplat_status aiplat_stt_set_api_key(aiplat_stt *c, const char *key) {
  return aip_model_api_set_api_key(c ? &c->base : NULL, "stt", key);
}

AIPLAT_API aiplat_status aiplat_stt_set_timeout_ms(aiplat_stt *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "stt", AIP_KNOB_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_stt_set_connect_timeout_ms(aiplat_stt *c, int64_t ms) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "stt", AIP_KNOB_CONNECT_TIMEOUT, ms);
}

AIPLAT_API aiplat_status aiplat_stt_set_max_retries(aiplat_stt *c, int retries) {
  return aip_model_api_set_knob(c ? &c->base : NULL, "stt", AIP_KNOB_RETRIES, retries);
}

AIPLAT_API aiplat_status aiplat_stt_health(aiplat_stt *c) {
  return aip_model_api_health(c ? &c->base : NULL, "stt");
}

AIPLAT_API void aiplat_stt_cancel(aiplat_stt *c) { aip_model_api_cancel(c ? &c->base : NULL); }

AIPLAT_API aiplat_status aiplat_stt_last_error(aiplat_stt *c, char *buf, size_t buflen) {
  return aip_model_api_last_error(c ? &c->base : NULL, buf, buflen);
}

aip_model_base *aip_stt_base(aiplat_stt *c) { /* model_metrics.h */
  return c ? &c->base : NULL;
}

AIPLAT_API aiplat_status aiplat_stt_set_api(aiplat_stt *c, aiplat_stt_api api) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL client");
  if (api != AIPLAT_STT_API_OPENAI && api != AIPLAT_STT_API_WHISPER_CPP)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: unknown API %d", (int)api);
  pthread_mutex_lock(&c->base.mu);
  c->api = api;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stt_set_response_format(aiplat_stt *c,
                                                        aiplat_stt_format f) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL client");
  if ((unsigned)f >= AIP_ARRAY_LEN(format_names))
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: unknown response format %d", (int)f);
  pthread_mutex_lock(&c->base.mu);
  c->format = f;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

static bool valid_language(const char *l) {
  size_t n = strlen(l);
  if (n == 0 || n > 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= 'A' && l[i] <= 'Z') ||
          l[i] == '-' || l[i] == '_'))
      return false;
  return true;
}

AIPLAT_API aiplat_status aiplat_stt_set_language(aiplat_stt *c,
                                                 const char *lang) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL client");
  if (lang && !valid_language(lang))
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: language \"%.40s\" is not a language code", lang);
  char *copy = NULL;
  if (lang && !(copy = aip_strdup(lang)))
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  pthread_mutex_lock(&c->base.mu);
  free(c->language);
  c->language = copy;
  pthread_mutex_unlock(&c->base.mu);
  return AIPLAT_OK;
}

/* ---- per-call options -------------------------------------------------------
 */

AIPLAT_API aiplat_status aiplat_stt_options_create(aiplat_stt_options **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL out");
  *out = calloc(1, sizeof **out);
  if (!*out) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  (*out)->format = -1;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_stt_options_destroy(aiplat_stt_options *o) {
  if (!o) return;
  free(o->language);
  free(o->prompt);
  free(o);
}

AIPLAT_API aiplat_status aiplat_stt_options_set_language(aiplat_stt_options *o,
                                                         const char *lang) {
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL options");
  if (lang && *lang && !valid_language(lang))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: language \"%.40s\" is not a language code", lang);
  if (!aip_str_replace(&o->language, lang))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stt_options_set_prompt(aiplat_stt_options *o,
                                                       const char *prompt) {
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL options");
  if (prompt && !aip_utf8_valid(prompt, strlen(prompt)))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: the prompt is not valid UTF-8");
  if (!aip_str_replace(&o->prompt, prompt && *prompt ? prompt : NULL))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stt_options_set_response_format(
    aiplat_stt_options *o, aiplat_stt_format f) {
  if (!o)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL options");
  if ((unsigned)f >= AIP_ARRAY_LEN(format_names))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: unknown response format %d", (int)f);
  o->format = (int)f;
  return AIPLAT_OK;
}

/* ---- result -----------------------------------------------------------------
 */

AIPLAT_API void aiplat_stt_result_destroy(aiplat_stt_result *r) {
  if (!r) return;
  for (size_t i = 0; i < r->nseg; i++) free(r->seg[i].text);
  free(r->seg);
  free(r->text);
  free(r->language);
  free(r);
}
AIPLAT_API const char *aiplat_stt_result_text(const aiplat_stt_result *r) {
  return r && r->text ? r->text : "";
}
AIPLAT_API const char *aiplat_stt_result_language(const aiplat_stt_result *r) {
  return r ? r->language : NULL;
}
AIPLAT_API double aiplat_stt_result_duration(const aiplat_stt_result *r) {
  return r ? r->duration : -1;
}
AIPLAT_API size_t aiplat_stt_result_segment_count(const aiplat_stt_result *r) {
  return r ? r->nseg : 0;
}
AIPLAT_API double aiplat_stt_result_segment_start(const aiplat_stt_result *r,
                                                  size_t i) {
  return r && i < r->nseg ? r->seg[i].start : 0;
}
AIPLAT_API double aiplat_stt_result_segment_end(const aiplat_stt_result *r,
                                                size_t i) {
  return r && i < r->nseg ? r->seg[i].end : 0;
}
AIPLAT_API const char *aiplat_stt_result_segment_text(
    const aiplat_stt_result *r, size_t i) {
  return r && i < r->nseg ? r->seg[i].text : NULL;
}

/* ---- audio type -------------------------------------------------------------
 */

static const struct {
  const char *mime, *ext;
} mime_ext[] = {
    {"audio/wav", "wav"},   {"audio/x-wav", "wav"}, {"audio/wave", "wav"},
    {"audio/mpeg", "mp3"},  {"audio/mp3", "mp3"},   {"audio/ogg", "ogg"},
    {"audio/opus", "opus"}, {"audio/flac", "flac"}, {"audio/x-flac", "flac"},
    {"audio/webm", "webm"}, {"audio/mp4", "m4a"},   {"audio/m4a", "m4a"},
    {"audio/x-m4a", "m4a"}, {"video/webm", "webm"}, {"video/mp4", "mp4"},
    {"audio/aac", "aac"},   {"audio/L16", "pcm"},   {"audio/pcm", "pcm"},
};

static const char *ext_for(const char *mime) {
  size_t n = strcspn(mime, "; ");
  for (size_t i = 0; i < AIP_ARRAY_LEN(mime_ext); i++)
    if (strlen(mime_ext[i].mime) == n &&
        strncasecmp(mime, mime_ext[i].mime, n) == 0)
      return mime_ext[i].ext;
  return "bin";
}

/* The type of well-known containers from their first bytes, or NULL. */
static const char *sniff(const unsigned char *a, size_t n) {
  if (n >= 12 && memcmp(a, "RIFF", 4) == 0 && memcmp(a + 8, "WAVE", 4) == 0)
    return "audio/wav";
  if (n >= 4 && memcmp(a, "OggS", 4) == 0) return "audio/ogg";
  if (n >= 4 && memcmp(a, "fLaC", 4) == 0) return "audio/flac";
  if (n >= 3 && memcmp(a, "ID3", 3) == 0) return "audio/mpeg";
  if (n >= 2 && a[0] == 0xFF && (a[1] & 0xE0) == 0xE0 && (a[1] & 0x06) != 0)
    return "audio/mpeg"; /* an MPEG audio frame header (layer bits set) */
  if (n >= 4 && a[0] == 0x1A && a[1] == 0x45 && a[2] == 0xDF && a[3] == 0xA3)
    return "audio/webm";
  if (n >= 8 && memcmp(a + 4, "ftyp", 4) == 0) return "audio/mp4";
  return NULL;
}

/* ---- transcribe -------------------------------------------------------------
 */

static char *trimmed_copy(const char *s, size_t n) {
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
  while (n && (*s == ' ' || *s == '\n' || *s == '\r')) {
    s++;
    n--;
  }
  return aip_strndup(s, n);
}

static double number_or(json_t *v, double dflt) {
  if (json_is_number(v)) return json_number_value(v);
  if (json_is_string(v)) {
    char *end;
    double d = strtod(json_string_value(v), &end);
    if (end != json_string_value(v)) return d;
  }
  return dflt;
}

static aiplat_status parse_json(aip_err *err, json_t *root,
                                aiplat_stt_result *r) {
  const char *text = aip_json_str(root, "text");
  if (!text) {
    char msg[300];
    if (json_is_object(root) && json_object_get(root, "error") &&
        aip_http_error_json(root, msg, sizeof msg))
      return aip_fail(err, AIPLAT_ERR_SERVER, "stt: %s", msg);
    return aip_fail(err, AIPLAT_ERR_PROTOCOL,
                    "stt: the answer has no \"text\"");
  }
  json_t *t = json_object_get(root, "text");
  if (!(r->text = trimmed_copy(text, json_string_length(t)))) goto nomem;
  const char *lang = aip_json_str(root, "language");
  if (lang && !(r->language = aip_strdup(lang))) goto nomem;
  r->duration = number_or(json_object_get(root, "duration"), -1);
  json_t *segs = json_object_get(root, "segments");
  if (!json_is_array(segs) || json_array_size(segs) == 0) return AIPLAT_OK;
  if (!(r->seg = calloc(json_array_size(segs), sizeof *r->seg))) goto nomem;
  size_t i;
  json_t *s;
  json_array_foreach(segs, i, s) {
    if (!json_is_object(s))
      return aip_fail(err, AIPLAT_ERR_PROTOCOL,
                      "stt: segments[%zu] is not an object", i);
    const char *st = aip_json_str(s, "text");
    r->seg[i].start = number_or(json_object_get(s, "start"), 0);
    r->seg[i].end = number_or(json_object_get(s, "end"), 0);
    if (!(r->seg[i].text = trimmed_copy(st ? st : "", st ? strlen(st) : 0)))
      goto nomem;
    r->nseg = i + 1;
  }
  return AIPLAT_OK;
nomem:
  return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
}

static aiplat_status parse_answer(aip_err *err, const aip_http_resp *resp,
                                  aiplat_stt_format f, aiplat_stt_result *r) {
  const char *b = resp->body.data ? resp->body.data : "";
  size_t n = resp->body.len;
  size_t i = 0;
  while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t'))
    i++;
  bool looks_json = i < n && b[i] == '{';
  if (f == AIPLAT_STT_FORMAT_TEXT && !looks_json) {
    if (!(r->text = trimmed_copy(b, n)))
      return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
    return AIPLAT_OK;
  }
  json_error_t je;
  json_t *root = json_loadb(b, n, 0, &je);
  if (!root) {
    char start[81];
    aip_http_error_text(b, n, start, sizeof start);
    return aip_fail(err, AIPLAT_ERR_DECODE,
                    "stt: the answer is not JSON (%s): \"%s\"", je.text, start);
  }
  aiplat_status st = parse_json(err, root, r);
  json_decref(root);
  return st;
}

/* One request, built from the arguments and the client's settings; its
 * strings are owned here, the audio is the caller's. */
typedef struct stt_req {
  aiplat_stt_format f;
  char filename[16];
  char *model, *lang, *prompt;
  aip_http_part parts[5];
  aip_http_req req;
} stt_req;

static void req_free(stt_req *q) {
  free(q->model);
  free(q->lang);
  free(q->prompt);
}

/* @language: NULL for the client's, "" for none; @format: -1 for the
 * client's. */
static aiplat_status req_build(aiplat_stt *c, aip_err *err, stt_req *q,
                               const void *audio, size_t len,
                               const char *mime_type, const char *language,
                               const char *prompt, int format) {
  if (!audio || len == 0)
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT, "stt: no audio");
  if (language && *language && !valid_language(language))
    return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: language \"%.40s\" is not a language code", language);
  const char *mime = sniff(audio, len);
  if (!mime || strcmp(mime, "audio/wav") != 0) { /* a WAV header always wins */
    if (mime_type && *mime_type) mime = mime_type;
    if (!mime)
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "stt: cannot tell the audio format from its first bytes; "
                      "give its MIME type");
    if (strpbrk(mime, "\r\n\""))
      return aip_fail(err, AIPLAT_ERR_INVALID_ARGUMENT, "stt: bad MIME type");
  }
  snprintf(q->filename, sizeof q->filename, "audio.%s", ext_for(mime));
  pthread_mutex_lock(&c->base.mu);
  aiplat_stt_api api = c->api;
  q->f = format >= 0 ? (aiplat_stt_format)format : c->format;
  const char *want = language ? language : c->language;
  if (want && !*want) want = NULL;
  q->lang = aip_strdup(want);
  bool lang_nomem = want && !q->lang;
  pthread_mutex_unlock(&c->base.mu);
  q->model = aip_model_base_model(&c->base);
  q->prompt = aip_strdup(prompt);
  if (!q->model || lang_nomem || (prompt && !q->prompt))
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  size_t np = 0;
  aip_http_part *p = q->parts;
  p[np++] = (aip_http_part){"file", q->filename, mime, audio, len};
  if (api == AIPLAT_STT_API_OPENAI)
    p[np++] = (aip_http_part){"model", NULL, NULL, q->model, strlen(q->model)};
  if (q->lang)
    p[np++] = (aip_http_part){"language", NULL, NULL, q->lang, strlen(q->lang)};
  if (q->prompt)
    p[np++] =
        (aip_http_part){"prompt", NULL, NULL, q->prompt, strlen(q->prompt)};
  p[np++] = (aip_http_part){"response_format", NULL, NULL, format_names[q->f],
                            strlen(format_names[q->f])};
  q->req = (aip_http_req){
      .method = "POST",
      .path = api == AIPLAT_STT_API_OPENAI ? "/v1/audio/transcriptions"
                                           : "/inference",
      .parts = q->parts,
      .nparts = np,
      .accept = q->f == AIPLAT_STT_FORMAT_TEXT ? "text/plain, application/json"
                                               : "application/json",
      .max_retries = -1};
  return AIPLAT_OK;
}

static aiplat_stt_result *result_new(void) {
  aiplat_stt_result *r = calloc(1, sizeof *r);
  if (r) r->duration = -1;
  return r;
}

AIPLAT_API aiplat_status aiplat_stt_transcribe(aiplat_stt *c, const void *audio,
                                               size_t len,
                                               const char *mime_type,
                                               const char *language,
                                               aiplat_stt_result **out) {
  if (out) *out = NULL;
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL client");
  if (!out || !audio || len == 0)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: no audio or NULL out");
  if (language && !valid_language(language))
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: language \"%.40s\" is not a language code", language);
  stt_req q = {0};
  aip_http_resp resp = {0};
  aiplat_stt_result *r = NULL;
  aiplat_status st =
      req_build(c, &c->base.err, &q, audio, len, mime_type, language, NULL, -1);
  if (st != AIPLAT_OK) goto out;
  if (!(r = result_new())) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
    goto out;
  }
  aip_model_obs obs;
  aip_model_obs_begin(&obs, &c->base, NULL);
  aip_model_obs_bytes(&obs, audio, len); /* WAV: its length, if need be */
  st = aip_http_do(c->base.http, &c->base.err, &q.req, &resp);
  if (st == AIPLAT_OK) st = parse_answer(&c->base.err, &resp, q.f, r);
  aip_model_obs_audio(&obs, st == AIPLAT_OK ? aiplat_stt_result_duration(r) : -1);
  aip_model_obs_end(&obs, st);
  if (st == AIPLAT_OK) {
    *out = r;
    r = NULL;
  }
out:
  aip_http_resp_free(&resp);
  aiplat_stt_result_destroy(r);
  req_free(&q);
  return st;
}

/* ---- asynchronous form ------------------------------------------------------
 */

typedef struct stt_async {
  aip_model_call m;
  aiplat_stt_format f;
  aiplat_stt_done_fn done;
  void *ud;
} stt_async;

/* On the loop thread: parse the answer and call back. */
static void stt_answer(aip_model_call *m) {
  stt_async *a = (stt_async *)(void *)m;
  aiplat_status st = m->st;
  aiplat_stt_result *r = NULL;
  if (st == AIPLAT_OK) {
    if (!(r = result_new()))
      st = aip_fail(&m->err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
    else
      st = parse_answer(&m->err, &m->resp, a->f, r);
  }
  if (st != AIPLAT_OK) {
    aiplat_stt_result_destroy(r);
    r = NULL;
  }
  char msg[AIP_ERRMSG_MAX];
  aip_model_call_message(m, st, msg, sizeof msg);
  aip_model_obs_audio(&m->obs, r ? aiplat_stt_result_duration(r) : -1);
  aip_model_call_end(m, st);
  a->done(st, msg, r, a->ud);
  aip_model_call_destroy(m);
  free(a);
}

AIPLAT_API aiplat_status aiplat_stt_transcribe_async(
    aiplat_stt *c, const void *audio, size_t len, const char *mime_type,
    const aiplat_stt_options *options, aiplat_call *call,
    aiplat_stt_done_fn done, void *user_data) {
  if (!c)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL client");
  if (!done)
    return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: NULL completion callback");
  stt_async *a = calloc(1, sizeof *a);
  if (!a)
    return aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  aip_model_call_init(&a->m, &c->base, call, stt_answer);
  a->done = done;
  a->ud = user_data;
  aip_model_obs_bytes(&a->m.obs, audio, len); /* WAV: its length */
  stt_req q = {0};
  aiplat_status st = req_build(c, &c->base.err, &q, audio, len, mime_type,
                               options ? options->language : NULL,
                               options ? options->prompt : NULL,
                               options ? options->format : -1);
  a->f = q.f;
  if (st == AIPLAT_OK) /* the request and the audio are copied */
    st = aip_model_call_start(&a->m, &c->base.err, &q.req);
  req_free(&q);
  if (st != AIPLAT_OK) {
    aip_model_call_destroy(&a->m);
    free(a);
  }
  return st;
}

/* ---- the answer alone (fuzz targets) ------------------------------------- */

aiplat_status aip_stt_parse(aip_err *err, const char *body, size_t len,
                            aiplat_stt_format f, aiplat_stt_result **out) {
  *out = NULL;
  aip_http_resp resp = {0};
  if (len && !aip_buf_append(&resp.body, body, len))
    return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  aiplat_stt_result *r = result_new();
  aiplat_status st =
      r ? parse_answer(err, &resp, f, r)
        : aip_fail(err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  aip_http_resp_free(&resp);
  if (st == AIPLAT_OK)
    *out = r;
  else
    aiplat_stt_result_destroy(r);
  return st;
}
