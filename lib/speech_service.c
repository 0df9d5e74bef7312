/* The endpoints of the speech bridges (include/aiplat/voice.h):
 * ai.stt.transcribe and ai.tts.synthesize on pools of model clients, with a
 * readiness probe that requests kick when the server looks down. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aiplat/stt.h"
#include "aiplat/tts.h"
#include "aiplat/voice.h"
#include "audio_format.h"
#include "model_metrics.h"

#define PROBE_INTERVAL_MS 10000
#define PROBE_TIMEOUT_MS 3000
/* A short gap after each probe, so that a burst of kicks costs one probe. */
#define PROBE_MIN_GAP_MS 200
/* Longest text synthesised, in characters (OpenAI's speech API limit). */
#define TTS_MAX_TEXT_CHARS 4096
/* Room left in a reply for the protobuf framing and the headers. */
#define REPLY_OVERHEAD 1024

/* ---- a pool of clients ----------------------------------------------------
 * Model clients keep per-call settings (format, speed, timeout) on the
 * handle, so each request takes a client of its own for the call. */

typedef struct pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void **items;
  size_t n_free, n_all;
} pool;

static bool pool_init(pool *p, size_t cap) {
  if (!(p->items = calloc(cap, sizeof *p->items))) return false;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  return true;
}

static void pool_add(pool *p, void *client) {
  p->items[p->n_free++] = client;
  p->n_all++;
}

static void *pool_take(pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->n_free == 0) pthread_cond_wait(&p->cv, &p->mu);
  void *c = p->items[--p->n_free];
  pthread_mutex_unlock(&p->mu);
  return c;
}

static void pool_give(pool *p, void *client) {
  pthread_mutex_lock(&p->mu);
  p->items[p->n_free++] = client;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* The pool's clients (all in it: before the service runs) report to @m. */
static void pool_attach_metrics(pool *p, aiplat_metrics *m, bool tts) {
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < p->n_free; i++)
    aip_model_metrics_attach(tts ? aip_tts_base(p->items[i])
                                 : aip_stt_base(p->items[i]),
                             m);
  pthread_mutex_unlock(&p->mu);
}

/* Every client back in the pool is handed to @destroy. */
static void pool_free(pool *p, void (*destroy)(void *)) {
  if (!p->items) return;
  for (size_t i = 0; i < p->n_free; i++) destroy(p->items[i]);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->items);
}

/* ---- the readiness probe ---------------------------------------------------
 * A thread runs the server's health probe every PROBE_INTERVAL_MS, and soon
 * after a kick; the readiness check reports its latest result at once. */

typedef struct probe {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool (*fn)(char *msg, size_t len, void *ud);
  void (*cancel)(void *ud);
  void *ud;
  bool started, stop, kicked, checked, ok;
  char msg[AIPLAT_HEALTH_MESSAGE_MAX];
} probe;

static void deadline_after(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static void *probe_main(void *arg) {
  probe *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    p->kicked = false;
    pthread_mutex_unlock(&p->mu);
    char msg[AIPLAT_HEALTH_MESSAGE_MAX] = "";
    bool ok = p->fn(msg, sizeof msg, p->ud);
    aiplat_error_clear();
    pthread_mutex_lock(&p->mu);
    if (ok != p->ok || !p->checked)
      aiplat_log(ok ? AIPLAT_LOG_INFO : AIPLAT_LOG_WARNING,
                 ok ? "backend ready" : "backend not ready");
    p->ok = ok;
    p->checked = true;
    snprintf(p->msg, sizeof p->msg, "%s", msg);
    struct timespec ts;
    deadline_after(&ts, PROBE_MIN_GAP_MS);
    while (!p->stop &&
           pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT) {
    }
    deadline_after(&ts, PROBE_INTERVAL_MS - PROBE_MIN_GAP_MS);
    while (!p->stop && !p->kicked &&
           pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void probe_init(probe *p, bool (*fn)(char *, size_t, void *),
                       void (*cancel)(void *), void *ud) {
  p->fn = fn;
  p->cancel = cancel;
  p->ud = ud;
  snprintf(p->msg, sizeof p->msg, "not checked yet");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
}

static aiplat_status probe_start(probe *p) {
  pthread_mutex_lock(&p->mu);
  bool again = p->started;
  p->started = !again && pthread_create(&p->thread, NULL, probe_main, p) == 0;
  bool ok = p->started;
  pthread_mutex_unlock(&p->mu);
  if (again) return aip_fail(NULL, AIPLAT_ERR_EXISTS, "the probe already runs");
  return ok ? AIPLAT_OK
            : aip_fail(NULL, AIPLAT_ERR_INTERNAL,
                       "cannot start the probe's thread");
}

/* Probe again soon when @st says the server may be down, or when it
 * answered while marked down. */
static void probe_note(probe *p, aiplat_status st) {
  bool suspect = st == AIPLAT_ERR_CONNECTION || st == AIPLAT_ERR_TIMEOUT ||
                 st == AIPLAT_ERR_UNAVAILABLE || st == AIPLAT_ERR_SERVER;
  pthread_mutex_lock(&p->mu);
  if (p->started && suspect == p->ok) {
    p->kicked = true;
    pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
}

static bool probe_check(char *msg, size_t msglen, void *user_data) {
  probe *p = user_data;
  pthread_mutex_lock(&p->mu);
  bool ok = p->checked && p->ok;
  snprintf(msg, msglen, "%s", p->msg);
  pthread_mutex_unlock(&p->mu);
  return ok;
}

static void probe_stop(probe *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  bool started = p->started;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (started) {
    if (p->cancel) p->cancel(p->ud);
    pthread_join(p->thread, NULL);
  }
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
}

/* WORKERS and HTTP_TIMEOUT, as the service reads them. */
static aiplat_status read_common(aiplat_config *cfg, int64_t *workers,
                                 int64_t *http_timeout_ms) {
  aiplat_status st = aiplat_config_get_int(cfg, "WORKERS", 1, 1024, workers);
  if (!st)
    st = aiplat_config_get_duration_ms(cfg, "HTTP_TIMEOUT", http_timeout_ms);
  return st;
}

static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/* ---- speech-to-text -------------------------------------------------------
 */

struct aiplat_stt_endpoint {
  pool clients;
  probe probe;
  aiplat_stt *probe_client;
  aiplat_stt_format default_format;
  int64_t http_timeout_ms;
};

static bool stt_format_for(const char *name, aiplat_stt_format def,
                           aiplat_stt_format *out) {
  if (!*name)
    *out = def;
  else if (strcmp(name, "json") == 0)
    *out = AIPLAT_STT_FORMAT_JSON;
  else if (strcmp(name, "verbose_json") == 0)
    *out = AIPLAT_STT_FORMAT_VERBOSE_JSON;
  else if (strcmp(name, "text") == 0)
    *out = AIPLAT_STT_FORMAT_TEXT;
  else
    return false;
  return true;
}

static bool stt_probe(char *msg, size_t msglen, void *user_data) {
  aiplat_stt_endpoint *ep = user_data;
  if (aiplat_stt_health(ep->probe_client) == AIPLAT_OK) {
    snprintf(msg, msglen, "the speech-to-text server answers");
    return true;
  }
  aiplat_stt_last_error(ep->probe_client, msg, msglen);
  return false;
}

static void stt_cancel_probe(void *user_data) {
  aiplat_stt_endpoint *ep = user_data;
  aiplat_stt_cancel(ep->probe_client);
}

static void stt_destroy_client(void *c) {
  aiplat_stt_destroy(c);
}

AIPLAT_API aiplat_status aiplat_stt_endpoint_create(aiplat_stt_endpoint **out,
                                                    aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "stt: NULL out");
  *out = NULL;
  int64_t workers = 0, http_timeout = 0;
  const char *fmt = NULL;
  aiplat_stt_format def = AIPLAT_STT_FORMAT_JSON;
  aiplat_config *own = NULL;
  aiplat_status st = cfg ? AIPLAT_OK : aiplat_config_create(&own);
  if (own) cfg = own;
  if (!st) st = read_common(cfg, &workers, &http_timeout);
  if (!st) st = aiplat_config_get_string(cfg, "STT_RESPONSE_FORMAT", &fmt);
  if (!st && fmt && !stt_format_for(fmt, AIPLAT_STT_FORMAT_JSON, &def))
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "config: STT_RESPONSE_FORMAT must be json, verbose_json or "
                  "text");
  aiplat_stt_endpoint *ep = st ? NULL : calloc(1, sizeof *ep);
  if (!st && (!ep || !pool_init(&ep->clients, (size_t)workers))) {
    free(ep);
    ep = NULL;
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "stt: out of memory");
  }
  if (ep) {
    ep->default_format = def;
    ep->http_timeout_ms = http_timeout;
    probe_init(&ep->probe, stt_probe, stt_cancel_probe, ep);
  }
  for (int64_t i = 0; !st && i <= workers; i++) {
    aiplat_stt *c = NULL;
    st = aiplat_stt_create(&c, cfg);
    if (st) break;
    if (i < workers) {
      pool_add(&ep->clients, c);
      continue;
    }
    ep->probe_client = c;
    aiplat_stt_set_timeout_ms(c, PROBE_TIMEOUT_MS);
    aiplat_stt_set_connect_timeout_ms(c, PROBE_TIMEOUT_MS);
  }
  aiplat_config_destroy(own);
  if (st) {
    aiplat_stt_endpoint_destroy(ep);
    return st;
  }
  *out = ep;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_stt_endpoint_destroy(aiplat_stt_endpoint *ep) {
  if (!ep) return;
  probe_stop(&ep->probe);
  pool_free(&ep->clients, stt_destroy_client);
  aiplat_stt_destroy(ep->probe_client);
  free(ep);
}

AIPLAT_API aiplat_status aiplat_stt_endpoint_add_checks(aiplat_stt_endpoint *ep,
                                                        aiplat_health *health) {
  if (!ep || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: NULL endpoint or health");
  aiplat_status st = probe_start(&ep->probe);
  if (!st) st = aiplat_health_add_check(health, "stt", probe_check, &ep->probe);
  if (!st) pool_attach_metrics(&ep->clients, aiplat_health_metrics(health), false);
  return st;
}

static aiplat_status stt_reply(aiplat_request *req, const aiplat_stt_result *r,
                               const char *asked_language) {
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_TRANSCRIBE_RESPONSE);
  const char *lang = aiplat_stt_result_language(r);
  if (!lang || !*lang) lang = asked_language;
  if (!st)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (!st) st = aiplat_msg_set_string(out, "text", aiplat_stt_result_text(r));
  if (!st && lang && *lang) st = aiplat_msg_set_string(out, "language", lang);
  if (!st && aiplat_stt_result_duration(r) >= 0)
    st = aiplat_msg_set_double(out, "duration_seconds",
                               aiplat_stt_result_duration(r));
  for (size_t i = 0; !st && i < aiplat_stt_result_segment_count(r); i++) {
    aiplat_msg *seg = NULL;
    st = aiplat_msg_add_item(out, "segments", &seg);
    if (!st)
      st = aiplat_msg_set_double(seg, "start",
                                 aiplat_stt_result_segment_start(r, i));
    if (!st)
      st = aiplat_msg_set_double(seg, "end",
                                 aiplat_stt_result_segment_end(r, i));
    if (!st)
      st = aiplat_msg_set_string(seg, "text",
                                 aiplat_stt_result_segment_text(r, i));
  }
  if (!st) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

AIPLAT_API aiplat_status aiplat_stt_handle_request(aiplat_request *req,
                                                   void *user_data) {
  aiplat_stt_endpoint *ep = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !ep || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_TRANSCRIBE_REQUEST)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stt: the endpoint must decode TranscribeRequest and "
                    "have an endpoint handle");
  const uint8_t *bytes = NULL;
  size_t len = 0;
  const char *format = "", *language = "", *rformat = "";
  aiplat_msg_get_bytes(in, "audio", &bytes, &len);
  aiplat_msg_get_string(in, "audio_format", &format);
  aiplat_msg_get_string(in, "language", &language);
  aiplat_msg_get_string(in, "response_format", &rformat);
  aip_audio audio;
  aiplat_stt_format f = ep->default_format;
  char lang[8], why[AIP_ERRMSG_MAX] = "";
  aiplat_status st =
      aip_audio_prepare(&audio, bytes, len, format, why, sizeof why);
  if (!st && !stt_format_for(rformat, ep->default_format, &f)) {
    snprintf(why, sizeof why,
             "response_format is not json, verbose_json or text");
    st = AIPLAT_ERR_INVALID_ARGUMENT;
  }
  if (!st)
    st = aip_audio_language(language, lang, sizeof lang, why, sizeof why);
  int64_t left = aiplat_request_time_left_ms(req);
  if (!st && left <= 0) {
    snprintf(why, sizeof why, "the request's deadline passed");
    st = AIPLAT_ERR_TIMEOUT;
  }
  if (st) {
    aip_audio_release(&audio);
    return aiplat_request_fail(req, st, why);
  }
  aiplat_stt *c = pool_take(&ep->clients);
  aiplat_stt_set_response_format(c, f);
  aiplat_stt_set_timeout_ms(c, min64(left, ep->http_timeout_ms));
  aiplat_stt_result *r = NULL;
  st = aiplat_stt_transcribe(c, audio.data, audio.len, audio.mime,
                             *lang ? lang : NULL, &r);
  if (st) aiplat_stt_last_error(c, why, sizeof why);
  pool_give(&ep->clients, c);
  aip_audio_release(&audio);
  probe_note(&ep->probe, st);
  if (st) return aiplat_request_fail(req, st, why);
  st = stt_reply(req, r, lang);
  aiplat_stt_result_destroy(r);
  return st;
}

/* ---- text-to-speech -------------------------------------------------------
 */

struct aiplat_tts_endpoint {
  pool clients;
  probe probe;
  aiplat_tts *probe_client;
  aiplat_bus *bus;
  char default_format[8];
  double default_speed;
  int64_t http_timeout_ms;
};

/* The formats of OpenAI's speech API. */
static bool tts_known_format(const char *f) {
  static const char *const names[] = {"wav", "mp3",  "opus",
                                      "aac", "flac", "pcm"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(f, names[i]) == 0) return true;
  return false;
}

static bool tts_probe(char *msg, size_t msglen, void *user_data) {
  aiplat_tts_endpoint *ep = user_data;
  if (aiplat_tts_health(ep->probe_client) == AIPLAT_OK) {
    snprintf(msg, msglen, "the text-to-speech server answers");
    return true;
  }
  aiplat_tts_last_error(ep->probe_client, msg, msglen);
  return false;
}

static void tts_cancel_probe(void *user_data) {
  aiplat_tts_endpoint *ep = user_data;
  aiplat_tts_cancel(ep->probe_client);
}

static void tts_destroy_client(void *c) {
  aiplat_tts_destroy(c);
}

AIPLAT_API aiplat_status aiplat_tts_endpoint_create(aiplat_tts_endpoint **out,
                                                    aiplat_config *cfg) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL out");
  *out = NULL;
  int64_t workers = 0, http_timeout = 0;
  const char *fmt = NULL;
  double speed = 1.0;
  aiplat_config *own = NULL;
  aiplat_status st = cfg ? AIPLAT_OK : aiplat_config_create(&own);
  if (own) cfg = own;
  if (!st) st = read_common(cfg, &workers, &http_timeout);
  if (!st) st = aiplat_config_get_string(cfg, "TTS_FORMAT", &fmt);
  if (!st) st = aiplat_config_get_double(cfg, "TTS_SPEED", 0.25, 4.0, &speed);
  if (!fmt) fmt = "wav";
  if (!st && !tts_known_format(fmt))
    st = aip_fail(NULL, AIPLAT_ERR_CONFIG,
                  "config: TTS_FORMAT must be one of wav, mp3, opus, aac, "
                  "flac, pcm");
  aiplat_tts_endpoint *ep = st ? NULL : calloc(1, sizeof *ep);
  if (!st && (!ep || !pool_init(&ep->clients, (size_t)workers))) {
    free(ep);
    ep = NULL;
    st = aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "tts: out of memory");
  }
  if (ep) {
    snprintf(ep->default_format, sizeof ep->default_format, "%s", fmt);
    ep->default_speed = speed;
    ep->http_timeout_ms = http_timeout;
    probe_init(&ep->probe, tts_probe, tts_cancel_probe, ep);
  }
  for (int64_t i = 0; !st && i <= workers; i++) {
    aiplat_tts *c = NULL;
    st = aiplat_tts_create(&c, cfg);
    if (st) break;
    if (i < workers) {
      pool_add(&ep->clients, c);
      continue;
    }
    ep->probe_client = c;
    aiplat_tts_set_timeout_ms(c, PROBE_TIMEOUT_MS);
    aiplat_tts_set_connect_timeout_ms(c, PROBE_TIMEOUT_MS);
  }
  aiplat_config_destroy(own);
  if (st) {
    aiplat_tts_endpoint_destroy(ep);
    return st;
  }
  *out = ep;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_tts_endpoint_destroy(aiplat_tts_endpoint *ep) {
  if (!ep) return;
  probe_stop(&ep->probe);
  pool_free(&ep->clients, tts_destroy_client);
  aiplat_tts_destroy(ep->probe_client);
  free(ep);
}

AIPLAT_API aiplat_status aiplat_tts_endpoint_set_bus(aiplat_tts_endpoint *ep,
                                                     aiplat_bus *bus) {
  if (!ep)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "tts: NULL endpoint");
  ep->bus = bus;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_tts_endpoint_add_checks(aiplat_tts_endpoint *ep,
                                                        aiplat_health *health) {
  if (!ep || !health)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: NULL endpoint or health");
  aiplat_status st = probe_start(&ep->probe);
  if (!st) st = aiplat_health_add_check(health, "tts", probe_check, &ep->probe);
  if (!st) pool_attach_metrics(&ep->clients, aiplat_health_metrics(health), true);
  return st;
}

static bool blank(const char *s) {
  return strspn(s, " \t\n\r\f\v") == strlen(s);
}

static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* The request's checks; the detail in @why. */
static aiplat_status tts_check(aiplat_tts_endpoint *ep, aiplat_msg *in,
                               const char **format, double *speed, char *why,
                               size_t whylen) {
  const char *text = "";
  aiplat_msg_get_string(in, "text", &text);
  aiplat_msg_get_string(in, "format", format);
  aiplat_msg_get_double(in, "speed", speed);
  if (blank(text)) {
    snprintf(why, whylen, "text is empty");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  size_t chars = utf8_chars(text);
  if (chars > TTS_MAX_TEXT_CHARS) {
    snprintf(why, whylen, "text is %zu characters long; the limit is %d", chars,
             TTS_MAX_TEXT_CHARS);
    return AIPLAT_ERR_TOO_LARGE;
  }
  if (**format && !tts_known_format(*format)) {
    snprintf(why, whylen,
             "format is not one of wav, mp3, opus, aac, flac, pcm");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  if (!**format) *format = ep->default_format;
  if (*speed == 0) *speed = ep->default_speed;
  if (!(*speed >= 0.25 && *speed <= 4.0)) {
    snprintf(why, whylen, "speed must be between 0.25 and 4.0");
    return AIPLAT_ERR_INVALID_ARGUMENT;
  }
  return AIPLAT_OK;
}

static aiplat_status tts_reply(aiplat_tts_endpoint *ep, aiplat_request *req,
                               const void *audio, size_t len,
                               const char *ctype) {
  /* Say why instead of letting the publish fail: the caller can send less. */
  int64_t max = ep->bus ? aiplat_bus_max_payload(ep->bus) : 0;
  if (max > 0 && (int64_t)len + REPLY_OVERHEAD > max) {
    char why[200];
    snprintf(why, sizeof why,
             "the audio is %zu bytes, over the %lld-byte NATS max_payload; "
             "send shorter text",
             len, (long long)max);
    return aiplat_request_fail(req, AIPLAT_ERR_TOO_LARGE, why);
  }
  aiplat_msg *out = NULL;
  aiplat_status st = aiplat_msg_create(&out, AIPLAT_MSG_SYNTHESIZE_RESPONSE);
  if (!st)
    st = aiplat_msg_set_string(out, "request_id", aiplat_request_id(req));
  if (!st) st = aiplat_msg_set_bytes(out, "audio", audio, len);
  if (!st) st = aiplat_msg_set_string(out, "content_type", ctype ? ctype : "");
  if (!st) st = aiplat_request_respond(req, out);
  aiplat_msg_destroy(out);
  return st;
}

AIPLAT_API aiplat_status aiplat_tts_handle_request(aiplat_request *req,
                                                   void *user_data) {
  aiplat_tts_endpoint *ep = user_data;
  aiplat_msg *in = aiplat_request_message(req);
  if (!req || !ep || !in ||
      aiplat_msg_get_type(in) != AIPLAT_MSG_SYNTHESIZE_REQUEST)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "tts: the endpoint must decode SynthesizeRequest and "
                    "have an endpoint handle");
  const char *format = "", *text = "", *voice = "";
  double speed = 0;
  char why[AIP_ERRMSG_MAX] = "";
  aiplat_status st = tts_check(ep, in, &format, &speed, why, sizeof why);
  int64_t left = aiplat_request_time_left_ms(req);
  if (!st && left <= 0) {
    snprintf(why, sizeof why, "the request's deadline passed");
    st = AIPLAT_ERR_TIMEOUT;
  }
  if (st) return aiplat_request_fail(req, st, why);
  aiplat_msg_get_string(in, "text", &text);
  aiplat_msg_get_string(in, "voice", &voice);
  aiplat_tts *c = pool_take(&ep->clients);
  void *audio = NULL;
  size_t len = 0;
  char *ctype = NULL;
  st = aiplat_tts_set_format(c, format);
  if (!st) st = aiplat_tts_set_speed(c, speed);
  if (!st) st = aiplat_tts_set_timeout_ms(c, min64(left, ep->http_timeout_ms));
  if (!st) {
    st = aiplat_tts_synthesize(c, text, *voice ? voice : NULL, &audio, &len,
                               &ctype);
    probe_note(&ep->probe, st);
  }
  if (st) aiplat_tts_last_error(c, why, sizeof why);
  pool_give(&ep->clients, c);
  if (!st)
    st = tts_reply(ep, req, audio, len, ctype);
  else
    st = aiplat_request_fail(req, st, why);
  aiplat_free(audio);
  aiplat_free(ctype);
  return st;
}
