/* Lexical text processing for the local model backend: tokens, content
 * terms, hashed embeddings and a lexical reranker. Pure functions, safe
 * from any thread. */
#ifndef BK_TEXT_H
#define BK_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* A growable vector of malloc'd strings. */
typedef struct bk_strv {
  char **v;
  size_t n, cap;
} bk_strv;

bool bk_strv_push(bk_strv *sv, const char *s, size_t len);
void bk_strv_free(bk_strv *sv);

/* Lowercased word tokens: maximal runs of ASCII letters and digits and of
 * non-ASCII bytes (so UTF-8 words stay whole). */
bool bk_tokenize(const char *text, size_t len, bk_strv *out);

/* Light English suffix stripping, in place ("passages" -> "passag",
 * "policies" -> "polici" alike for query and document). */
void bk_stem(char *w);

/* True for common English function words. */
bool bk_stopword(const char *w);

/* Content terms: tokens that are not stop words, stemmed. */
bool bk_terms(const char *text, size_t len, bk_strv *out);

/* Whitespace-separated words: the backend's "token" count. */
size_t bk_word_count(const char *text);

#define BK_EMBED_DEFAULT_DIM 384
#define BK_EMBED_MAX_DIM 8192

/* Deterministic embedding of text into vec[0..dim): signed feature hashing
 * of lowercased word unigrams and bigrams and of character trigrams of each
 * word, L2-normalised. Text without any word gets a vector from its bytes,
 * so the result is never the zero vector for non-empty text. */
void bk_embed(const char *text, size_t len, float *vec, size_t dim);

/* Cosine of two L2-normalised vectors (their dot product). */
double bk_dot(const float *a, const float *b, size_t dim);

/* Relevance in [0, 1] of each of docs[0..n) to query: BM25 over content
 * terms (IDF from the documents themselves) mixed with the cosine of the
 * hashed embeddings. Returns false only when memory runs out. */
bool bk_rerank_scores(const char *query, const char *const *docs, size_t n,
                      double *scores);

#endif
