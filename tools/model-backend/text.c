/* Tokens, content terms, hashed embeddings and a lexical reranker. */
#include "text.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

bool bk_strv_push(bk_strv *sv, const char *s, size_t len) {
  if (sv->n == sv->cap) {
    size_t cap = sv->cap ? sv->cap * 2 : 16;
    char **v = realloc(sv->v, cap * sizeof *v);
    if (!v) return false;
    sv->v = v;
    sv->cap = cap;
  }
  char *c = malloc(len + 1);
  if (!c) return false;
  memcpy(c, s, len);
  c[len] = '\0';
  sv->v[sv->n++] = c;
  return true;
}

void bk_strv_free(bk_strv *sv) {
  if (!sv) return;
  for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
  free(sv->v);
  memset(sv, 0, sizeof *sv);
}

static bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c >= 0x80;
}

bool bk_tokenize(const char *text, size_t len, bk_strv *out) {
  size_t i = 0;
  while (i < len) {
    while (i < len && !word_byte((unsigned char)text[i])) i++;
    size_t start = i;
    while (i < len && word_byte((unsigned char)text[i])) i++;
    if (i > start) {
      if (!bk_strv_push(out, text + start, i - start)) return false;
      char *w = out->v[out->n - 1];
      for (char *p = w; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
  }
  return true;
}

static bool ends_with(const char *w, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n > k && memcmp(w + n - k, suf, k) == 0;
}

void bk_stem(char *w) {
  size_t n = strlen(w);
  if (n <= 3) return;
  if (ends_with(w, n, "ies") && n > 4) {
    w[n - 3] = 'y';
    w[n - 2] = '\0';
  } else if (ends_with(w, n, "sses")) {
    w[n - 2] = '\0';
  } else if (ends_with(w, n, "ing") && n > 5) {
    w[n - 3] = '\0';
  } else if (ends_with(w, n, "ed") && n > 4) {
    w[n - 2] = '\0';
  } else if (w[n - 1] == 's' && !ends_with(w, n, "ss") &&
             !ends_with(w, n, "us") && !ends_with(w, n, "is")) {
    w[n - 1] = '\0';
  }
}

static const char *const stopwords[] = {
    "a",      "about", "above", "after", "again",  "all",   "also",    "am",
    "an",     "and",   "any",   "are",   "as",     "at",    "be",      "been",
    "being",  "but",   "by",    "can",   "could",  "did",   "do",      "does",
    "doing",  "for",   "from",  "had",   "has",    "have",  "having",  "he",
    "her",    "here",  "hers",  "him",   "his",    "how",   "i",       "if",
    "in",     "into",  "is",    "it",    "its",    "just",  "me",      "more",
    "most",   "my",    "no",    "nor",   "not",    "of",    "on",      "once",
    "only",   "or",    "other", "our",   "ours",   "out",   "over",    "own",
    "please", "s",     "same",  "she",   "should", "so",    "some",    "such",
    "t",      "tell",  "than",  "that",  "the",    "their", "theirs",  "them",
    "then",   "there", "these", "they",  "this",   "those", "through", "to",
    "too",    "under", "until", "up",    "very",   "was",   "we",      "were",
    "what",   "when",  "where", "which", "while",  "who",   "whom",    "why",
    "will",   "with",  "would", "you",   "your",   "yours",
};

bool bk_stopword(const char *w) {
  size_t lo = 0, hi = sizeof stopwords / sizeof stopwords[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(w, stopwords[mid]);
    if (c == 0) return true;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return false;
}

bool bk_terms(const char *text, size_t len, bk_strv *out) {
  bk_strv toks = {0};
  if (!bk_tokenize(text, len, &toks)) {
    bk_strv_free(&toks);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; ok && i < toks.n; i++) {
    if (bk_stopword(toks.v[i])) continue;
    bk_stem(toks.v[i]);
    ok = bk_strv_push(out, toks.v[i], strlen(toks.v[i]));
  }
  bk_strv_free(&toks);
  return ok;
}

size_t bk_word_count(const char *text) {
  size_t n = 0;
  bool in = false;
  for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
    bool sp = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
              *p == '\f' || *p == '\v';
    if (!sp && !in) n++;
    in = !sp;
  }
  return n;
}

/* ---- hashed embeddings -------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

/* Add weight w of the feature (kind, a[, b]) to vec. */
static void add_feature(float *vec, size_t dim, char kind, const char *a,
                        size_t alen, const char *b, size_t blen, float w) {
  uint64_t h = fnv1a(0xcbf29ce484222325ull, &kind, 1);
  h = fnv1a(h, a, alen);
  if (b) {
    h = fnv1a(h, " ", 1);
    h = fnv1a(h, b, blen);
  }
  h = mix64(h);
  size_t idx = (size_t)(h % dim);
  vec[idx] += (h >> 63) ? -w : w;
}

#define W_UNIGRAM 1.0f
#define W_STOPWORD 0.3f
#define W_BIGRAM 0.6f
#define W_TRIGRAM 0.4f

void bk_embed(const char *text, size_t len, float *vec, size_t dim) {
  memset(vec, 0, dim * sizeof *vec);
  bk_strv toks = {0};
  bool ok = bk_tokenize(text, len, &toks);
  if (ok && toks.n > 0) {
    for (size_t i = 0; i < toks.n; i++) {
      const char *w = toks.v[i];
      size_t wl = strlen(w);
      add_feature(vec, dim, 'u', w, wl, NULL, 0,
                  bk_stopword(w) ? W_STOPWORD : W_UNIGRAM);
      if (i + 1 < toks.n)
        add_feature(vec, dim, 'b', w, wl, toks.v[i + 1], strlen(toks.v[i + 1]),
                    W_BIGRAM);
      /* Character trigrams of "^word$" tie inflections together. */
      char pad[66];
      size_t pl = wl > 62 ? 62 : wl;
      pad[0] = '^';
      memcpy(pad + 1, w, pl);
      pad[pl + 1] = '$';
      for (size_t k = 0; k + 3 <= pl + 2; k++)
        add_feature(vec, dim, 't', pad + k, 3, NULL, 0, W_TRIGRAM);
    }
  } else if (len > 0) {
    /* No words (punctuation, symbols): still a stable, non-zero vector. */
    for (size_t k = 0; k < len; k++)
      add_feature(vec, dim, 'c', text + k, len - k < 3 ? len - k : 3, NULL, 0,
                  1.0f);
  }
  bk_strv_free(&toks);
  double norm = 0.0;
  for (size_t i = 0; i < dim; i++) norm += (double)vec[i] * vec[i];
  if (norm > 0.0) {
    float inv = (float)(1.0 / sqrt(norm));
    for (size_t i = 0; i < dim; i++) vec[i] *= inv;
  }
}

double bk_dot(const float *a, const float *b, size_t dim) {
  double s = 0.0;
  for (size_t i = 0; i < dim; i++) s += (double)a[i] * b[i];
  return s;
}

/* ---- reranking ---------------------------------------------------------- */

#define BM25_K1 1.2
#define BM25_B 0.75
#define RERANK_DIM 256
/* Share of BM25 in the mixed score; the rest is the embedding cosine. */
#define W_BM25 0.7

static bool has_term(const bk_strv *sv, const char *t) {
  for (size_t i = 0; i < sv->n; i++)
    if (strcmp(sv->v[i], t) == 0) return true;
  return false;
}

static size_t count_term(const bk_strv *sv, const char *t) {
  size_t c = 0;
  for (size_t i = 0; i < sv->n; i++) c += strcmp(sv->v[i], t) == 0;
  return c;
}

bool bk_rerank_scores(const char *query, const char *const *docs, size_t n,
                      double *scores) {
  bool ok = false;
  bk_strv q = {0}, qu = {0};
  bk_strv *dt = calloc(n ? n : 1, sizeof *dt);
  float *qv = malloc(RERANK_DIM * sizeof *qv);
  float *dv = malloc(RERANK_DIM * sizeof *dv);
  if (!dt || !qv || !dv || !bk_terms(query, strlen(query), &q)) goto out;
  for (size_t i = 0; i < q.n; i++)
    if (!has_term(&qu, q.v[i]) && !bk_strv_push(&qu, q.v[i], strlen(q.v[i])))
      goto out;
  double avg = 0.0;
  for (size_t d = 0; d < n; d++) {
    if (!bk_terms(docs[d], strlen(docs[d]), &dt[d])) goto out;
    avg += (double)dt[d].n;
  }
  avg = n ? avg / (double)n : 0.0;
  if (avg <= 0.0) avg = 1.0;
  bk_embed(query, strlen(query), qv, RERANK_DIM);
  for (size_t d = 0; d < n; d++) {
    double bm = 0.0;
    for (size_t t = 0; t < qu.n; t++) {
      size_t df = 0;
      for (size_t e = 0; e < n; e++) df += has_term(&dt[e], qu.v[t]);
      double tf = (double)count_term(&dt[d], qu.v[t]);
      if (tf == 0.0) continue;
      double idf =
          log(1.0 + ((double)n - (double)df + 0.5) / ((double)df + 0.5));
      bm += idf * tf * (BM25_K1 + 1.0) /
            (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * (double)dt[d].n / avg));
    }
    bk_embed(docs[d], strlen(docs[d]), dv, RERANK_DIM);
    double cos = bk_dot(qv, dv, RERANK_DIM);
    if (cos < 0.0) cos = 0.0;
    scores[d] = W_BM25 * (1.0 - exp(-bm)) + (1.0 - W_BM25) * cos;
  }
  ok = true;
out:
  for (size_t d = 0; dt && d < n; d++) bk_strv_free(&dt[d]);
  free(dt);
  free(qv);
  free(dv);
  bk_strv_free(&q);
  bk_strv_free(&qu);
  return ok;
}
