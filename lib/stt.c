/* Speech-to-text client (aiplat/stt.h). */
#include "aiplat/stt.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "model_common.h"
#include "model_parse.h"

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

AIP_MODEL_COMMON_API(stt)

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

static aiplat_status parse_answer(aip_err *err, const char *b, size_t n,
                                  aiplat_stt_format f, aiplat_stt_result *r) {
  if (!b) b = "";
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

static aiplat_stt_result *result_new(void) {
  aiplat_stt_result *r = calloc(1, sizeof *r);
  if (r) r->duration = -1;
  return r;
}

aiplat_status aip_stt_parse(aip_err *err, const char *body, size_t len,
                            aiplat_stt_format f, aiplat_stt_result **out) {
  *out = NULL;
  aiplat_stt_result *r = result_new();
  if (!r) return aip_fail(err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  aiplat_status st = parse_answer(err, body, len, f, r);
  if (st == AIPLAT_OK)
    *out = r;
  else
    aiplat_stt_result_destroy(r);
  return st;
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
  const char *mime = sniff(audio, len);
  if (!mime || strcmp(mime, "audio/wav") != 0) { /* a WAV header always wins */
    if (mime_type && *mime_type) mime = mime_type;
    if (!mime)
      return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "stt: cannot tell the audio format from its first bytes; "
                      "give its MIME type");
    if (strpbrk(mime, "\r\n\""))
      return aip_fail(&c->base.err, AIPLAT_ERR_INVALID_ARGUMENT,
                      "stt: bad MIME type");
  }
  char filename[16];
  snprintf(filename, sizeof filename, "audio.%s", ext_for(mime));
  pthread_mutex_lock(&c->base.mu);
  aiplat_stt_api api = c->api;
  aiplat_stt_format f = c->format;
  const char *want = language ? language : c->language;
  char *lang = aip_strdup(want);
  bool lang_nomem = want && !lang;
  pthread_mutex_unlock(&c->base.mu);
  char *model = aip_model_base_model(&c->base);
  aip_http_resp resp = {0};
  aiplat_status st;
  if (!model || lang_nomem) {
    st = aip_fail(&c->base.err, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
    goto out;
  }
  aip_http_part parts[4];
  size_t np = 0;
  parts[np++] = (aip_http_part){"file", filename, mime, audio, len};
  if (api == AIPLAT_STT_API_OPENAI)
    parts[np++] = (aip_http_part){"model", NULL, NULL, model, strlen(model)};
  if (lang)
    parts[np++] = (aip_http_part){"language", NULL, NULL, lang, strlen(lang)};
  parts[np++] = (aip_http_part){"response_format", NULL, NULL, format_names[f],
                                strlen(format_names[f])};
  aip_http_req req = {
      .method = "POST",
      .path = api == AIPLAT_STT_API_OPENAI ? "/v1/audio/transcriptions"
                                           : "/inference",
      .parts = parts,
      .nparts = np,
      .accept = f == AIPLAT_STT_FORMAT_TEXT ? "text/plain, application/json"
                                            : "application/json",
      .max_retries = -1};
  st = aip_http_do(c->base.http, &c->base.err, &req, &resp);
  if (st == AIPLAT_OK)
    st = aip_stt_parse(&c->base.err, resp.body.data, resp.body.len, f, out);
out:
  aip_http_resp_free(&resp);
  free(model);
  free(lang);
  return st;
}
