/* POST /v1/audio/transcriptions and whisper.cpp's POST /inference: speech
 * recognition with CMU pocketsphinx 0.8 and its en-us model. */
#include <pocketsphinx.h>
#include <sphinxbase/err.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "audio.h"
#include "backend.h"
#include "config.h"

#define STT_RATE 16000
/* A pause at least this long between words starts a new segment. */
#define SEGMENT_GAP_S 0.5
#define SEGMENT_MAX_WORDS 30

struct bk_stt {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;
  ps_decoder_t **dec;
  cmd_ln_t **cfg;
  bool *busy;
  int frate;
};

static bool exists(const char *dir, const char *name) {
  char path[1024];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &st) == 0;
}

bk_stt *bk_stt_create(const char *dir, int n, char *err, size_t errlen) {
  if (!exists(dir, "en-us/mdef") || !exists(dir, "en-us.lm.bin") ||
      !exists(dir, "cmudict-en-us.dict")) {
    snprintf(err, errlen,
             "pocketsphinx model not found in %s (en-us/, en-us.lm.bin, "
             "cmudict-en-us.dict): install the Debian package "
             "pocketsphinx-en-us, pass --stt-model-dir, or run with --no-stt",
             dir);
    return NULL;
  }
  bk_stt *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->n = n;
  t->dec = calloc((size_t)n, sizeof *t->dec);
  t->cfg = calloc((size_t)n, sizeof *t->cfg);
  t->busy = calloc((size_t)n, sizeof *t->busy);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  if (!t->dec || !t->cfg || !t->busy) {
    snprintf(err, errlen, "out of memory");
    bk_stt_destroy(t);
    return NULL;
  }
  err_set_logfp(NULL); /* pocketsphinx logs a great deal to stderr */
  char hmm[1024], lm[1024], dict[1024];
  snprintf(hmm, sizeof hmm, "%s/en-us", dir);
  snprintf(lm, sizeof lm, "%s/en-us.lm.bin", dir);
  snprintf(dict, sizeof dict, "%s/cmudict-en-us.dict", dir);
  for (int i = 0; i < n; i++) {
    t->cfg[i] = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm,
                            "-dict", dict, NULL);
    t->dec[i] = t->cfg[i] ? ps_init(t->cfg[i]) : NULL;
    if (!t->dec[i]) {
      snprintf(err, errlen, "pocketsphinx could not load the model in %s", dir);
      bk_stt_destroy(t);
      return NULL;
    }
  }
  t->frate = cmd_ln_int32_r(t->cfg[0], "-frate");
  if (t->frate <= 0) t->frate = 100;
  return t;
}

void bk_stt_destroy(bk_stt *t) {
  if (!t) return;
  for (int i = 0; i < t->n; i++) {
    if (t->dec && t->dec[i]) ps_free(t->dec[i]);
    if (t->cfg && t->cfg[i]) cmd_ln_free_r(t->cfg[i]);
  }
  free(t->dec);
  free(t->cfg);
  free(t->busy);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
}

static int acquire(bk_stt *t) {
  pthread_mutex_lock(&t->mu);
  int k = -1;
  while (k < 0) {
    for (int i = 0; i < t->n && k < 0; i++)
      if (!t->busy[i]) k = i;
    if (k < 0) pthread_cond_wait(&t->cv, &t->mu);
  }
  t->busy[k] = true;
  pthread_mutex_unlock(&t->mu);
  return k;
}

static void release(bk_stt *t, int k) {
  pthread_mutex_lock(&t->mu);
  t->busy[k] = false;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

typedef struct word {
  char *text;
  double start, end;
  double logprob;
} word;

typedef struct words {
  word *v;
  size_t n, cap;
} words;

static void words_free(words *w) {
  for (size_t i = 0; i < w->n; i++) free(w->v[i].text);
  free(w->v);
}

static bool words_push(words *w, const char *text, double s, double e,
                       double lp) {
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 32;
    word *v = realloc(w->v, cap * sizeof *v);
    if (!v) return false;
    w->v = v;
    w->cap = cap;
  }
  /* Alternate pronunciations come as "word(2)". */
  size_t len = strcspn(text, "(");
  char *t = aip_strndup(text, len ? len : strlen(text));
  if (!t) return false;
  w->v[w->n++] = (word){t, s, e, lp};
  return true;
}

/* Decode 16 kHz mono audio into words with times. */
static bool decode(bk_stt *t, const int16_t *pcm, size_t n, words *out) {
  int k = acquire(t);
  ps_decoder_t *d = t->dec[k];
  bool ok = ps_start_utt(d) >= 0 &&
            ps_process_raw(d, pcm, n, FALSE, TRUE) >= 0 && ps_end_utt(d) >= 0;
  logmath_t *lmath = ps_get_logmath(d);
  for (ps_seg_t *seg = ok ? ps_seg_iter(d) : NULL; seg;
       seg = ps_seg_next(seg)) {
    const char *w = ps_seg_word(seg);
    if (!w || w[0] == '<' || w[0] == '[') continue; /* silence and fillers */
    int sf, ef;
    ps_seg_frames(seg, &sf, &ef);
    int32 ascr, lscr, lback;
    int32 post = ps_seg_prob(seg, &ascr, &lscr, &lback);
    double lp = logmath_log_to_ln(lmath, post);
    if (!words_push(out, w, (double)sf / t->frate, (double)(ef + 1) / t->frate,
                    lp)) {
      ps_seg_free(seg);
      ok = false;
      break;
    }
  }
  release(t, k);
  return ok;
}

/* ---- response formats -------------------------------------------------------
 */

static void join_words(const words *w, size_t from, size_t to, aip_buf *b) {
  for (size_t i = from; i < to; i++) {
    if (i > from) aip_buf_putc(b, ' ');
    aip_buf_puts(b, w->v[i].text);
  }
}

typedef struct seg_range {
  size_t from, to;
} seg_range;

/* Group words into segments at pauses. Returns the count; *out malloc'd. */
static size_t segments(const words *w, seg_range **out) {
  *out = calloc(w->n ? w->n : 1, sizeof **out);
  if (!*out) return 0;
  size_t ns = 0, start = 0;
  for (size_t i = 1; i <= w->n; i++) {
    bool cut = i == w->n || w->v[i].start - w->v[i - 1].end >= SEGMENT_GAP_S ||
               i - start >= SEGMENT_MAX_WORDS;
    if (cut && i > start) {
      (*out)[ns++] = (seg_range){start, i};
      start = i;
    }
  }
  return ns;
}

static void timestamp(aip_buf *b, double t, char sep) {
  long ms = (long)(t * 1000.0 + 0.5);
  aip_buf_printf(b, "%02ld:%02ld:%02ld%c%03ld", ms / 3600000, ms / 60000 % 60,
                 ms / 1000 % 60, sep, ms % 1000);
}

static void subtitles(const words *w, bool vtt, bk_reply *r) {
  seg_range *sg;
  size_t ns = segments(w, &sg);
  if (vtt) aip_buf_puts(&r->body, "WEBVTT\n\n");
  for (size_t i = 0; i < ns; i++) {
    if (!vtt) aip_buf_printf(&r->body, "%zu\n", i + 1);
    timestamp(&r->body, w->v[sg[i].from].start, vtt ? '.' : ',');
    aip_buf_puts(&r->body, " --> ");
    timestamp(&r->body, w->v[sg[i].to - 1].end, vtt ? '.' : ',');
    aip_buf_putc(&r->body, '\n');
    join_words(w, sg[i].from, sg[i].to, &r->body);
    aip_buf_puts(&r->body, "\n\n");
  }
  free(sg);
  r->content_type = vtt ? "text/vtt" : "application/x-subrip";
  r->is_json = false;
}

static json_t *verbose(const words *w, const char *text, double duration,
                       bool with_words) {
  seg_range *sg;
  size_t ns = segments(w, &sg);
  json_t *segs = json_array();
  for (size_t i = 0; i < ns; i++) {
    aip_buf t = {0};
    aip_buf_putc(&t, ' '); /* Whisper's segment texts start with a blank */
    join_words(w, sg[i].from, sg[i].to, &t);
    double lp = 0.0;
    for (size_t k = sg[i].from; k < sg[i].to; k++) lp += w->v[k].logprob;
    lp /= (double)(sg[i].to - sg[i].from);
    json_array_append_new(
        segs,
        json_pack("{s:I, s:i, s:f, s:f, s:s, s:[], s:f, s:f, s:f, s:f}", "id",
                  (json_int_t)i, "seek", 0, "start", w->v[sg[i].from].start,
                  "end", w->v[sg[i].to - 1].end, "text", t.data, "tokens",
                  "temperature", 0.0, "avg_logprob", lp, "compression_ratio",
                  1.0, "no_speech_prob", 0.0));
    aip_buf_free(&t);
  }
  free(sg);
  json_t *o = json_pack("{s:s, s:s, s:f, s:s, s:o}", "task", "transcribe",
                        "language", "english", "duration", duration, "text",
                        text, "segments", segs);
  if (o && with_words) {
    json_t *wa = json_array();
    for (size_t i = 0; i < w->n; i++)
      json_array_append_new(
          wa, json_pack("{s:s, s:f, s:f}", "word", w->v[i].text, "start",
                        w->v[i].start, "end", w->v[i].end));
    json_object_set_new(o, "words", wa);
  }
  return o;
}

static bool english(const char *lang) {
  if (!lang || !*lang) return true;
  return strcasecmp(lang, "en") == 0 || strncasecmp(lang, "en-", 3) == 0 ||
         strncasecmp(lang, "en_", 3) == 0 || strcasecmp(lang, "english") == 0 ||
         strcasecmp(lang, "auto") == 0;
}

void bk_handle_transcription(bk_server *s, bk_form *f, bool whisper_cpp,
                             bk_reply *r) {
  if (!s->stt) {
    bk_reply_error(r, 404, "model",
                   "speech recognition is not served: the local backend was "
                   "started with --no-stt");
    return;
  }
  if (!whisper_cpp && s->opt.strict_models &&
      (!f->model || strcmp(f->model, BK_MODEL_STT) != 0)) {
    bk_reply_error(r, 404, "model",
                   "The model `%s` does not exist (this local backend serves "
                   "%s here; started with --strict-models).",
                   f->model ? f->model : "", BK_MODEL_STT);
    return;
  }
  const char *fmt =
      f->response_format && *f->response_format ? f->response_format : "json";
  static const char *const formats[] = {"json", "text", "verbose_json", "srt",
                                        "vtt"};
  bool known = false;
  for (size_t i = 0; i < AIP_ARRAY_LEN(formats); i++)
    known = known || strcmp(fmt, formats[i]) == 0;
  if (!known) {
    bk_reply_error(r, 400, "response_format",
                   "response_format '%s' is not supported (json, text, "
                   "verbose_json, srt, vtt)",
                   fmt);
    return;
  }
  if (!english(f->language)) {
    bk_reply_error(r, 400, "language",
                   "language '%s' is not supported: the local backend "
                   "recognises English only (pocketsphinx en-us)",
                   f->language);
    return;
  }
  if (!f->have_file) {
    bk_reply_error(r, 400, "file",
                   "missing 'file' field: send the audio as a multipart "
                   "form field named file");
    return;
  }
  bk_pcm pcm;
  char err[256];
  if (!bk_wav_parse((const uint8_t *)f->file.data, f->file.len, &pcm, err,
                    sizeof err)) {
    bk_reply_error(r, 400, "file", "%s", err);
    return;
  }
  double duration = (double)pcm.n / pcm.rate;
  int16_t *audio = pcm.samples;
  size_t n = pcm.n;
  int16_t *rs = NULL;
  if (pcm.rate != STT_RATE) {
    if (!bk_resample(pcm.samples, pcm.n, pcm.rate, STT_RATE, &rs, &n)) {
      bk_pcm_free(&pcm);
      bk_reply_error(r, 500, NULL, "out of memory");
      return;
    }
    audio = rs;
  }
  words w = {0};
  bool ok = decode(s->stt, audio, n, &w);
  bk_pcm_free(&pcm);
  free(rs);
  if (!ok) {
    words_free(&w);
    bk_reply_error(r, 500, NULL, "pocketsphinx failed to decode the audio");
    return;
  }
  aip_buf text = {0};
  join_words(&w, 0, w.n, &text);
  const char *t = text.data ? text.data : "";
  if (strcmp(fmt, "json") == 0) {
    bk_reply_json(r, 200, json_pack("{s:s}", "text", t));
  } else if (strcmp(fmt, "text") == 0) {
    aip_buf_printf(&r->body, "%s\n", t);
    r->content_type = "text/plain; charset=utf-8";
  } else if (strcmp(fmt, "verbose_json") == 0) {
    bk_reply_json(r, 200, verbose(&w, t, duration, f->words));
  } else {
    subtitles(&w, strcmp(fmt, "vtt") == 0, r);
  }
  aip_buf_free(&text);
  words_free(&w);
}
