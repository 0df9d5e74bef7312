/* Units of the local model backend without engines or HTTP: WAV parsing,
 * resampling, fault specifications, text features, the extractive chat, the
 * timer and the worker pools. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "chat.h"
#include "config.h"
#include "fault.h"
#include "harness/testutil.h"
#include "internal.h"
#include "sched.h"
#include "text.h"

/* ---- WAV -------------------------------------------------------------------
 */

static void p32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void p16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* Build a WAV: optional chunk before fmt, fmt of fmt_size bytes. */
static uint8_t *wav(size_t *len, unsigned tag, unsigned ch, unsigned rate,
                    unsigned bits, const int16_t *s, size_t frames,
                    bool extensible, unsigned sub_tag, bool list_first,
                    uint32_t data_size_override) {
  uint8_t *w = calloc(1, 200 + frames * ch * 2);
  size_t o = 12;
  memcpy(w, "RIFF", 4);
  memcpy(w + 8, "WAVE", 4);
  if (list_first) { /* an odd-sized chunk, padded */
    memcpy(w + o, "LIST", 4);
    p32(w + o + 4, 3);
    memcpy(w + o + 8, "abc", 3);
    o += 8 + 4;
  }
  uint32_t fs = extensible ? 40 : 16;
  memcpy(w + o, "fmt ", 4);
  p32(w + o + 4, fs);
  p16(w + o + 8, (uint16_t)(extensible ? 0xFFFE : tag));
  p16(w + o + 10, (uint16_t)ch);
  p32(w + o + 12, rate);
  p32(w + o + 16, rate * ch * bits / 8);
  p16(w + o + 20, (uint16_t)(ch * bits / 8));
  p16(w + o + 22, (uint16_t)bits);
  if (extensible) {
    p16(w + o + 24, 22);
    p16(w + o + 26, (uint16_t)bits);
    p16(w + o + 32, (uint16_t)sub_tag);
  }
  o += 8 + fs;
  memcpy(w + o, "data", 4);
  size_t data = frames * ch * 2;
  p32(w + o + 4, data_size_override ? data_size_override : (uint32_t)data);
  o += 8;
  for (size_t i = 0; i < frames * ch; i++) p16(w + o + 2 * i, (uint16_t)s[i]);
  o += data;
  p32(w + 4, (uint32_t)(o - 8));
  *len = o;
  return w;
}

static void expect_bad(const uint8_t *d, size_t len, const char *want) {
  bk_pcm p;
  char err[256];
  ck_assert(!bk_wav_parse(d, len, &p, err, sizeof err));
  ck_assert_msg(strstr(err, want) != NULL, "'%s' lacks '%s'", err, want);
  ck_assert_ptr_null(p.samples);
}

START_TEST(wav_good_files) {
  int16_t s[8] = {1, -2, 3, -4, 1000, 3000, -32768, 32767};
  size_t len;
  bk_pcm p;
  char err[256];
  uint8_t *w = wav(&len, 1, 1, 16000, 16, s, 8, false, 0, false, 0);
  ck_assert(bk_wav_parse(w, len, &p, err, sizeof err));
  ck_assert_uint_eq(p.n, 8);
  ck_assert_uint_eq(p.rate, 16000);
  ck_assert_int_eq(p.samples[6], -32768);
  bk_pcm_free(&p);
  free(w);
  /* Stereo is averaged; a padded odd chunk before fmt is skipped. */
  w = wav(&len, 1, 2, 44100, 16, s, 4, false, 0, true, 0);
  ck_assert(bk_wav_parse(w, len, &p, err, sizeof err));
  ck_assert_uint_eq(p.n, 4);
  ck_assert_uint_eq(p.channels_in, 2);
  ck_assert_int_eq(p.samples[0], 0);    /* (1 + -2) / 2 */
  ck_assert_int_eq(p.samples[2], 2000); /* (1000 + 3000) / 2 */
  ck_assert_int_eq(p.samples[3], 0);    /* (-32768 + 32767) / 2 */
  bk_pcm_free(&p);
  free(w);
  /* WAVE_FORMAT_EXTENSIBLE with a PCM sub-format. */
  w = wav(&len, 1, 1, 48000, 16, s, 8, true, 1, false, 0);
  ck_assert(bk_wav_parse(w, len, &p, err, sizeof err));
  ck_assert_uint_eq(p.n, 8);
  bk_pcm_free(&p);
  free(w);
  /* A streaming writer's data size of 0xFFFFFFFF: take what is there. */
  w = wav(&len, 1, 1, 16000, 16, s, 8, false, 0, false, 0xFFFFFFFFu);
  ck_assert(bk_wav_parse(w, len, &p, err, sizeof err));
  ck_assert_uint_eq(p.n, 8);
  bk_pcm_free(&p);
  free(w);
  /* Round trip through the writer's header. */
  uint8_t h[BK_WAV_HEADER_BYTES + 16];
  bk_wav_header(h, 22050, 8);
  for (int i = 0; i < 8; i++) p16(h + 44 + 2 * i, (uint16_t)s[i]);
  ck_assert(bk_wav_parse(h, sizeof h, &p, err, sizeof err));
  ck_assert_uint_eq(p.rate, 22050);
  ck_assert_int_eq(p.samples[5], 3000);
  bk_pcm_free(&p);
}
END_TEST

START_TEST(wav_bad_files) {
  int16_t s[4] = {1, 2, 3, 4};
  size_t len;
  expect_bad((const uint8_t *)"", 0, "empty");
  expect_bad((const uint8_t *)"hello", 5, "not a WAV");
  expect_bad((const uint8_t *)"ID3\3\0\0\0\0\0\0\0\0", 12, "MP3");
  expect_bad((const uint8_t *)"fLaC\0\0\0\0\0\0\0\0", 12, "FLAC");
  expect_bad((const uint8_t *)"RIFF\0\0\0\0AVI ", 12, "not a WAV");
  uint8_t *w = wav(&len, 1, 1, 16000, 8, s, 4, false, 0, false, 0);
  expect_bad(w, len, "8-bit PCM");
  free(w);
  w = wav(&len, 3, 1, 16000, 32, s, 2, false, 0, false, 0);
  expect_bad(w, len, "format tag 0x0003");
  free(w);
  w = wav(&len, 0x55, 1, 16000, 16, s, 4, false, 0, false, 0);
  expect_bad(w, len, "format tag 0x0055");
  free(w);
  w = wav(&len, 1, 1, 16000, 16, s, 4, true, 3, false, 0);
  expect_bad(w, len, "format tag 0x0003");
  free(w);
  w = wav(&len, 1, 1, 16000, 16, NULL, 0, false, 0, false, 0);
  expect_bad(w, len, "empty");
  free(w);
  w = wav(&len, 1, 9, 16000, 16, NULL, 0, false, 0, false, 0);
  expect_bad(w, len, "9 channels");
  free(w);
  w = wav(&len, 1, 1, 1000, 16, s, 4, false, 0, false, 0);
  expect_bad(w, len, "sample rate 1000");
  free(w);
  w = wav(&len, 1, 1, 16000, 16, s, 4, false, 0, false, 0);
  expect_bad(w, 30, "truncated");       /* cut inside 'fmt ' */
  expect_bad(w, 36, "no 'data' chunk"); /* fmt complete, no data */
  memcpy(w + 12, "fmX ", 4);
  expect_bad(w, len, "'data' chunk comes before its 'fmt '");
  expect_bad(w, 36, "no 'fmt ' chunk");
  free(w);
}
END_TEST

START_TEST(wav_random_bytes_never_crash) {
  /* Hostile input after a valid-looking preamble: parse or refuse, never
   * read out of bounds (ASan and valgrind watch this). */
  unsigned seed = 12345;
  for (int round = 0; round < 3000; round++) {
    size_t len = 12 + (size_t)(rand_r(&seed) % 120);
    uint8_t *d = malloc(len);
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)rand_r(&seed);
    memcpy(d, "RIFF", 4);
    memcpy(d + 8, "WAVE", 4);
    if (round % 2 && len >= 36) {
      memcpy(d + 12, "fmt ", 4);
      p32(d + 16, 16);
    }
    bk_pcm p;
    char err[128];
    if (bk_wav_parse(d, len, &p, err, sizeof err)) {
      ck_assert(p.n > 0);
      bk_pcm_free(&p);
    } else {
      ck_assert(strlen(err) > 0);
    }
    free(d);
  }
}
END_TEST

/* ---- resampling
 * --------------------------------------------------------------- */

static int16_t *tone(double hz, unsigned rate, size_t n, double amp) {
  int16_t *s = malloc(n * sizeof *s);
  for (size_t i = 0; i < n; i++)
    s[i] = (int16_t)lrint(amp * sin(2 * M_PI * hz * (double)i / rate));
  return s;
}

static double rms_mid(const int16_t *s, size_t n) {
  double a = 0;
  size_t from = n / 4, to = 3 * n / 4; /* away from the edges */
  for (size_t i = from; i < to; i++) a += (double)s[i] * s[i];
  return sqrt(a / (double)(to - from));
}

/* Correlation of s with a sine of hz (amplitude of that component). */
static double component(const int16_t *s, size_t n, unsigned rate, double hz) {
  double re = 0, im = 0;
  size_t from = n / 4, to = 3 * n / 4;
  for (size_t i = from; i < to; i++) {
    re += s[i] * cos(2 * M_PI * hz * (double)i / rate);
    im += s[i] * sin(2 * M_PI * hz * (double)i / rate);
  }
  return 2 * sqrt(re * re + im * im) / (double)(to - from);
}

START_TEST(resample_keeps_passband) {
  const unsigned rates[] = {8000, 22050, 24000, 44100, 48000};
  for (size_t k = 0; k < 5; k++) {
    size_t n = rates[k]; /* one second */
    int16_t *in = tone(1000, rates[k], n, 10000), *out;
    size_t m;
    ck_assert(bk_resample(in, n, rates[k], 16000, &out, &m));
    ck_assert_uint_eq(m, 16000);
    double a = component(out, m, 16000, 1000);
    ck_assert_msg(fabs(a - 10000) < 200, "%u Hz: 1 kHz amplitude %f", rates[k],
                  a);
    free(in);
    free(out);
  }
}
END_TEST

START_TEST(resample_removes_aliases) {
  /* 12 kHz at 48 kHz would fold to 4 kHz at 16 kHz without a filter. */
  int16_t *in = tone(12000, 48000, 48000, 10000), *out;
  size_t m;
  ck_assert(bk_resample(in, 48000, 48000, 16000, &out, &m));
  double alias = component(out, m, 16000, 4000);
  printf("resample 48k->16k: 12 kHz tone leaves %.1f (of 10000) at 4 kHz\n",
         alias);
  ck_assert_msg(alias < 10, "alias amplitude %f", alias);
  ck_assert(rms_mid(out, m) < 20);
  free(in);
  free(out);
  /* 7.8 kHz at 44.1 kHz is above the 7.52 kHz pass band: attenuated. */
  in = tone(7900, 44100, 44100, 10000);
  ck_assert(bk_resample(in, 44100, 44100, 16000, &out, &m));
  ck_assert_msg(rms_mid(out, m) < 3000, "rms %f", rms_mid(out, m));
  free(in);
  free(out);
}
END_TEST

START_TEST(resample_edges) {
  int16_t *out;
  size_t m;
  ck_assert(bk_resample(NULL, 0, 48000, 16000, &out, &m));
  ck_assert_ptr_null(out);
  ck_assert_uint_eq(m, 0);
  int16_t one[1] = {1234};
  ck_assert(bk_resample(one, 1, 16000, 16000, &out, &m));
  ck_assert_uint_eq(m, 1);
  ck_assert_int_eq(out[0], 1234);
  free(out);
  ck_assert(bk_resample(one, 1, 48000, 16000, &out, &m));
  ck_assert_uint_eq(m, 1);
  free(out);
  /* Full-scale square waves must clip, not wrap around. */
  int16_t sq[4800];
  for (int i = 0; i < 4800; i++) sq[i] = (i / 24) % 2 ? 32767 : -32768;
  ck_assert(bk_resample(sq, 4800, 48000, 16000, &out, &m));
  for (size_t i = 0; i < m; i++) ck_assert(out[i] >= -32768 && out[i] <= 32767);
  free(out);
}
END_TEST

/* ---- faults
 * ---------------------------------------------------------------------- */

START_TEST(fault_grammar) {
  bk_fault f;
  char err[256];
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f, "delay=100; status=503, retry_after=2", err,
                           sizeof err));
  ck_assert_int_eq(f.delay_ms, 100);
  ck_assert_int_eq(f.status, 503);
  ck_assert_int_eq(f.retry_after, 2);
  ck_assert(f.any && bk_fault_has_failure(&f));
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f,
                           "split=7&interval=3 malformed cut=4 "
                           "stream_error=2 truncate=9",
                           err, sizeof err));
  ck_assert_int_eq(f.split, 7);
  ck_assert_int_eq(f.interval_ms, 3);
  ck_assert(f.malformed);
  ck_assert_int_eq(f.cut, 4);
  ck_assert_int_eq(f.stream_error, 2);
  ck_assert_int_eq(f.truncate, 9);
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f, "fail_first=2;key=abc-1.x:y", err, sizeof err));
  ck_assert(bk_fault_check(&f, err, sizeof err));
  ck_assert(!bk_fault_has_failure(&f));
  ck_assert_str_eq(f.key, "abc-1.x:y");
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f, "cut", err, sizeof err));
  ck_assert_int_eq(f.cut, BK_CUT_HALF);
  ck_assert(bk_fault_has_failure(&f));
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f, "", err, sizeof err));
  ck_assert(!f.any);
  ck_assert(bk_fault_parse(&f, NULL, err, sizeof err));

  const char *bad[][2] = {
      {"bogus=1", "unknown fault 'bogus'"},
      {"status=200", "400..599"},
      {"status=600", "400..599"},
      {"delay=-1", "delay"},
      {"delay=60001", "delay"},
      {"delay=1x", "delay"},
      {"split=0", "split"},
      {"split=65537", "split"},
      {"fail_first=0", "fail_first"},
      {"malformed=maybe", "malformed"},
      {"key=", "key"},
      {"key=a b", "unknown fault 'b'"},
      {"key=a/b", "key"},
      {"retry_after", "retry_after"},
      {"cut=x", "cut takes"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    bk_fault_init(&f);
    ck_assert_msg(!bk_fault_parse(&f, bad[i][0], err, sizeof err), "%s",
                  bad[i][0]);
    ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
  }
  char longkey[200];
  memset(longkey, 'k', sizeof longkey);
  longkey[sizeof longkey - 1] = 0;
  bk_fault_init(&f);
  ck_assert(!bk_fault_set(&f, "key", longkey, err, sizeof err));
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f, "fail_first=1", err, sizeof err));
  ck_assert(!bk_fault_check(&f, err, sizeof err));
  ck_assert(strstr(err, "needs key") != NULL);
  bk_fault_init(&f);
  ck_assert(bk_fault_parse(&f, "key=x", err, sizeof err));
  ck_assert(!bk_fault_check(&f, err, sizeof err));
  ck_assert(bk_fault_is_name("stream_error"));
  ck_assert(!bk_fault_is_name("model"));
}
END_TEST

START_TEST(oneshot_counts_per_key) {
  bk_oneshot *t = bk_oneshot_create();
  ck_assert_ptr_nonnull(t);
  ck_assert(bk_oneshot_take(t, "a", 2));
  ck_assert(bk_oneshot_take(t, "b", 1));
  ck_assert(bk_oneshot_take(t, "a", 2));
  ck_assert(!bk_oneshot_take(t, "a", 2));
  ck_assert(!bk_oneshot_take(t, "b", 1));
  ck_assert(!bk_oneshot_take(t, "a", 2));
  /* More keys than the table holds: the oldest are forgotten, no crash. */
  char k[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "k%d", i);
    ck_assert(bk_oneshot_take(t, k, 1));
  }
  ck_assert(!bk_oneshot_take(t, "k4999", 1));
  bk_oneshot_destroy(t);
  bk_oneshot_destroy(NULL);
}
END_TEST

/* ---- text
 * -------------------------------------------------------------------------- */

START_TEST(tokens_terms_words) {
  bk_strv v = {0};
  const char *t = "Hello, World! It's 2024 -- caf\xc3\xa9 ok";
  ck_assert(bk_tokenize(t, strlen(t), &v));
  const char *want[] = {"hello", "world",       "it", "s",
                        "2024",  "caf\xc3\xa9", "ok"};
  ck_assert_uint_eq(v.n, 7);
  for (size_t i = 0; i < 7; i++) ck_assert_str_eq(v.v[i], want[i]);
  bk_strv_free(&v);
  t = "The policies for passages and the vacation policy";
  ck_assert(bk_terms(t, strlen(t), &v));
  const char *terms[] = {"policy", "passage", "vacation", "policy"};
  ck_assert_uint_eq(v.n, 4);
  for (size_t i = 0; i < 4; i++) ck_assert_str_eq(v.v[i], terms[i]);
  bk_strv_free(&v);
  /* The stop word table is searched by bisection: its ends and middle. */
  const char *stops[] = {"a",     "about", "the",    "is", "yours",
                         "would", "own",   "please", "he", "hers"};
  for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
    ck_assert_msg(bk_stopword(stops[i]), "%s", stops[i]);
  ck_assert(!bk_stopword("vacation"));
  ck_assert(!bk_stopword("zzz"));
  ck_assert(!bk_stopword(""));
  ck_assert_uint_eq(bk_word_count("  one two\tthree\n four  "), 4);
  ck_assert_uint_eq(bk_word_count(""), 0);
  ck_assert_uint_eq(bk_word_count(NULL), 0);
  char w[16];
  strcpy(w, "running");
  bk_stem(w);
  ck_assert_str_eq(w, "runn");
  strcpy(w, "class");
  bk_stem(w);
  ck_assert_str_eq(w, "class");
  strcpy(w, "bus");
  bk_stem(w);
  ck_assert_str_eq(w, "bus");
}
END_TEST

static double cos_of(const char *a, const char *b, size_t dim) {
  float *x = malloc(dim * sizeof *x), *y = malloc(dim * sizeof *y);
  bk_embed(a, strlen(a), x, dim);
  bk_embed(b, strlen(b), y, dim);
  double c = bk_dot(x, y, dim);
  free(x);
  free(y);
  return c;
}

START_TEST(embeddings_properties) {
  float a[384], b[384];
  const char *t = "The quick brown fox";
  bk_embed(t, strlen(t), a, 384);
  bk_embed(t, strlen(t), b, 384);
  ck_assert(memcmp(a, b, sizeof a) == 0);
  ck_assert(fabs(bk_dot(a, a, 384) - 1.0) < 1e-5);
  bk_embed("THE QUICK BROWN FOX!", 20, b, 384); /* case and punctuation */
  ck_assert(bk_dot(a, b, 384) > 0.999);
  bk_embed("!!!", 3, b, 384); /* no words: still a unit vector */
  ck_assert(fabs(bk_dot(b, b, 384) - 1.0) < 1e-5);
  double same_topic = cos_of("employees get vacation days every year",
                             "how many vacation days do employees get", 384);
  double inflected = cos_of("the vacation policy", "vacations policies", 384);
  double other = cos_of("employees get vacation days every year",
                        "the parking garage is on elm street", 384);
  printf("embed cos: topic %.3f inflected %.3f other %.3f\n", same_topic,
         inflected, other);
  ck_assert(same_topic > other + 0.3);
  ck_assert(inflected > 0.2);
  ck_assert(fabs(other) < 0.2);
  float one[1];
  bk_embed("x", 1, one, 1);
  ck_assert(fabs(fabs(one[0]) - 1.0f) < 1e-6);
}
END_TEST

START_TEST(rerank_scores_order) {
  const char *docs[] = {"Lunch is served at noon in the cafeteria.",
                        "The vacation policy grants 25 days of leave.",
                        "Parking is free.", ""};
  double sc[4];
  ck_assert(bk_rerank_scores("vacation policy days", docs, 4, sc));
  ck_assert(sc[1] > sc[0] && sc[1] > sc[2] && sc[1] > sc[3]);
  for (int i = 0; i < 4; i++) ck_assert(sc[i] >= 0.0 && sc[i] <= 1.0);
  ck_assert(bk_rerank_scores("the of and", docs, 4, sc)); /* stop words only */
  for (int i = 0; i < 4; i++) ck_assert(sc[i] >= 0.0 && sc[i] <= 1.0);
}
END_TEST

/* ---- chat
 * -----------------------------------------------------------------------------
 */

static char *answer2(const char *sys, const char *user) {
  bk_chat_msg m[2] = {{"system", sys}, {"user", user}};
  char *a = bk_chat_answer(m, 2);
  ck_assert_ptr_nonnull(a);
  return a;
}

START_TEST(chat_picks_best_passage) {
  char *a = answer2(
      "Use the context.\n[1] The office opens at 9am.\n"
      "[2] Source: hr.pdf\nVacation: employees get 25 days per year. Unused "
      "days expire in March.\n[3] Parking is on Elm Street.",
      "How many vacation days do employees get?");
  ck_assert_str_eq(a, "Vacation: employees get 25 days per year. [2]");
  free(a);
  /* Multi-line passage; the question after a blank line in the user
   * message; a label; several sentences picked. */
  bk_chat_msg m[3] = {
      {"system", "You answer with citations."},
      {"assistant", "[9] Old answer about parking must be ignored."},
      {"user",
       "[4] The red team ships on Monday.\n   The red team reviews on "
       "Friday.\n[5] The blue team rests.\n\nQuestion: When does the red "
       "team ship and review?"}};
  a = bk_chat_answer(m, 3);
  ck_assert_ptr_nonnull(a);
  ck_assert(strstr(a, "The red team ships on Monday. [4]") != NULL);
  ck_assert(strstr(a, "The red team reviews on Friday. [4]") != NULL);
  ck_assert(strstr(a, "[9]") == NULL && strstr(a, "[5]") == NULL);
  free(a);
  /* A "Question:" line ends a passage even without a blank line. */
  a = answer2("Context follows.",
              "[1] Paris is the capital of France.\n[2] Berlin is the capital "
              "of Germany.\nQuestion: What is the capital of Germany?");
  ck_assert_str_eq(a, "Berlin is the capital of Germany. [2]");
  free(a);
  /* aiplat/rag.h's context: "[N] (source: NAME) text" on one line. */
  a = answer2("Context:\n[1] (source: backups.md) Milvus backups are taken at "
              "night. Restores take an hour.\n\n[2] (source: pets.md) Cats sleep.",
              "When are Milvus backups taken?");
  ck_assert_str_eq(a, "Milvus backups are taken at night. [1]");
  free(a);
}
END_TEST

START_TEST(chat_no_context_or_no_match) {
  char *a = answer2("Be helpful.", "What is the capital of France?");
  ck_assert_str_eq(a, BK_CHAT_NO_CONTEXT);
  free(a);
  a = answer2("[1] Paris is in France.",
              "Tell me about quantum chromodynamics");
  ck_assert_str_eq(a, BK_CHAT_NO_MATCH);
  free(a);
  /* Markers that are not passages: five digits, empty, not at line start. */
  a = answer2("[12345] x y z.\n[] nothing.\nsee [1] inline", "x y z?");
  ck_assert_str_eq(a, BK_CHAT_NO_CONTEXT);
  free(a);
  bk_chat_msg m[2] = {{"system", NULL}, {"user", ""}};
  a = bk_chat_answer(m, 2);
  ck_assert_str_eq(a, BK_CHAT_NO_CONTEXT);
  free(a);
  a = bk_chat_answer(NULL, 0);
  ck_assert_str_eq(a, BK_CHAT_NO_CONTEXT);
  free(a);
  /* A passage with only a source line has nothing to quote. */
  a = answer2("[1] Source: a.pdf", "source?");
  ck_assert_str_eq(a, BK_CHAT_NO_CONTEXT);
  free(a);
}
END_TEST

/* ---- timer and worker pools -------------------------------------------------
 */

/* What the callbacks saw: the order entries fired or jobs ran, and the
 * arms. */
typedef struct log_t {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int order[6000];
  size_t n, armed, armed_elsewhere;
  pthread_t caller;
} log_t;

typedef struct item {
  log_t *log;
  int64_t due;
  bk_job job;
  int id;
  bool fired_before_arm;
  bool armed;
} item;

static void log_init(log_t *l) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->caller = pthread_self();
}

static void log_destroy(log_t *l) {
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
}

static void on_arm(void *arg) {
  item *it = arg;
  it->armed = true;
  it->log->armed++;
  if (!pthread_equal(pthread_self(), it->log->caller))
    it->log->armed_elsewhere++;
}

static void on_fire(void *arg) {
  item *it = arg;
  pthread_mutex_lock(&it->log->mu);
  if (!it->armed) it->fired_before_arm = true;
  it->log->order[it->log->n++] = it->id;
  pthread_cond_broadcast(&it->log->cv);
  pthread_mutex_unlock(&it->log->mu);
}

static void wait_count(log_t *l, size_t n) {
  pthread_mutex_lock(&l->mu);
  while (l->n < n) pthread_cond_wait(&l->cv, &l->mu);
  pthread_mutex_unlock(&l->mu);
}

START_TEST(timer_fires_in_due_order) {
  bk_timer *t = bk_timer_create();
  ck_assert_ptr_nonnull(t);
  log_t l;
  log_init(&l);
  /* Added out of order; ties fire in the order they were added. */
  int64_t base = aip_now_ms() + 200;
  const int64_t offs[] = {40, 10, 30, 10, 0, 20};
  const int want[] = {4, 1, 3, 5, 2, 0};
  item it[6];
  for (int i = 0; i < 6; i++) {
    it[i] = (item){.log = &l, .id = i, .due = base + offs[i]};
    ck_assert(bk_timer_at(t, it[i].due, on_arm, on_fire, &it[i]));
  }
  ck_assert_uint_eq(l.armed, 6);
  ck_assert_uint_eq(l.armed_elsewhere, 0);
  wait_count(&l, 6);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(l.order[i], want[i]);
    ck_assert(!it[i].fired_before_arm);
  }
  ck_assert_uint_eq(bk_timer_pending(t), 0);
  bk_timer_destroy(t);
  log_destroy(&l);
}
END_TEST

START_TEST(timer_many_entries_keep_order) {
  enum { N = 5000 };
  bk_timer *t = bk_timer_create();
  log_t l;
  log_init(&l);
  item *it = calloc(N, sizeof *it);
  /* Far enough ahead that all are added before the first is due (valgrind
   * is slow). */
  int64_t base = aip_now_ms() + 1000;
  unsigned seed = 7;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    it[i] = (item){.log = &l, .id = i, .due = base + (seed >> 16) % 100};
    ck_assert(bk_timer_at(t, it[i].due, NULL, on_fire, &it[i]));
  }
  wait_count(&l, N);
  for (int i = 1; i < N; i++) {
    const item *a = &it[l.order[i - 1]], *b = &it[l.order[i]];
    ck_assert(a->due < b->due || (a->due == b->due && a->id < b->id));
  }
  bk_timer_destroy(t);
  free(it);
  log_destroy(&l);
}
END_TEST

START_TEST(timer_close_fires_pending_then_refuses) {
  bk_timer *t = bk_timer_create();
  log_t l;
  log_init(&l);
  item it[3];
  for (int i = 0; i < 3; i++) {
    it[i] = (item){.log = &l, .id = i, .due = aip_now_ms() + 60000};
    ck_assert(bk_timer_at(t, it[i].due, on_arm, on_fire, &it[i]));
  }
  ck_assert_uint_eq(bk_timer_pending(t), 3);
  bk_timer_close(t); /* does not wait the minute */
  ck_assert_uint_eq(l.n, 3);
  ck_assert_uint_eq(bk_timer_pending(t), 0);
  item late = {.log = &l, .id = 9};
  ck_assert(!bk_timer_at(t, aip_now_ms(), on_arm, on_fire, &late));
  ck_assert(!late.armed);
  bk_timer_close(t);
  bk_timer_destroy(t);
  bk_timer_destroy(NULL);
  log_destroy(&l);
}
END_TEST

static void run_job(void *arg) {
  on_fire(arg);
}

START_TEST(pool_runs_jobs_in_order_and_drains) {
  ck_assert_ptr_null(bk_pool_create(0));
  ck_assert_ptr_null(bk_pool_create(65));
  log_t l;
  log_init(&l);
  enum { N = 2000 };
  item *it = calloc(N, sizeof *it);
  /* One worker: first in, first out. */
  bk_pool *p = bk_pool_create(1);
  ck_assert_ptr_nonnull(p);
  for (int i = 0; i < N; i++) {
    it[i] = (item){.log = &l, .id = i, .job = {run_job, &it[i], NULL}};
    ck_assert(bk_pool_submit(p, &it[i].job, on_arm));
  }
  bk_pool_close(p); /* runs what is queued */
  ck_assert_uint_eq(l.n, N);
  ck_assert_uint_eq(l.armed, N);
  ck_assert_uint_eq(l.armed_elsewhere, 0);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(l.order[i], i);
    ck_assert(!it[i].fired_before_arm);
  }
  item late = {.log = &l, .id = -1, .job = {run_job, &late, NULL}};
  ck_assert(!bk_pool_submit(p, &late.job, on_arm));
  ck_assert(!late.armed);
  bk_pool_destroy(p);
  /* Several workers: every job runs once. */
  log_destroy(&l);
  log_init(&l);
  p = bk_pool_create(4);
  for (int i = 0; i < N; i++) {
    it[i] = (item){.log = &l, .id = i, .job = {run_job, &it[i], NULL}};
    ck_assert(bk_pool_submit(p, &it[i].job, NULL));
  }
  wait_count(&l, N);
  bk_pool_destroy(p);
  bk_pool_destroy(NULL);
  static char seen[N];
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < N; i++) seen[l.order[i]]++;
  for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
  free(it);
  log_destroy(&l);
}
END_TEST

Suite *make_suite(void) {
  Suite *s = suite_create("model-backend-units");
  TCase *tc = tcase_create("audio");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, wav_good_files);
  tcase_add_test(tc, wav_bad_files);
  tcase_add_test(tc, wav_random_bytes_never_crash);
  tcase_add_test(tc, resample_keeps_passband);
  tcase_add_test(tc, resample_removes_aliases);
  tcase_add_test(tc, resample_edges);
  suite_add_tcase(s, tc);
  tc = tcase_create("faults");
  tcase_add_test(tc, fault_grammar);
  tcase_add_test(tc, oneshot_counts_per_key);
  suite_add_tcase(s, tc);
  tc = tcase_create("text");
  tcase_add_test(tc, tokens_terms_words);
  tcase_add_test(tc, embeddings_properties);
  tcase_add_test(tc, rerank_scores_order);
  tcase_add_test(tc, chat_picks_best_passage);
  tcase_add_test(tc, chat_no_context_or_no_match);
  suite_add_tcase(s, tc);
  tc = tcase_create("sched");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, timer_fires_in_due_order);
  tcase_add_test(tc, timer_many_entries_keep_order);
  tcase_add_test(tc, timer_close_fires_pending_then_refuses);
  tcase_add_test(tc, pool_runs_jobs_in_order_and_drains);
  suite_add_tcase(s, tc);
  return s;
}
