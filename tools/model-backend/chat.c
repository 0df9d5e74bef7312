/* Extractive answers from numbered context passages. */
#include "chat.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "internal.h"
#include "text.h"

#define MAX_PICK 3
#define MAX_PASSAGE_NUM 9999

typedef struct sentence {
  char *text; /* whitespace collapsed */
  int num;    /* passage number */
  size_t order;
  bk_strv terms;
  double score;
} sentence;

typedef struct sentences {
  sentence *v;
  size_t n, cap;
} sentences;

/* "[N]" at the start of a line (after blanks): returns N and sets *rest. */
static int passage_marker(const char *line, size_t len, size_t *rest) {
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
  if (i >= len || line[i] != '[') return -1;
  i++;
  size_t d0 = i;
  int num = 0;
  while (i < len && isdigit((unsigned char)line[i]) && i - d0 < 4)
    num = num * 10 + (line[i++] - '0');
  if (i == d0 || i >= len || line[i] != ']') return -1;
  i++;
  while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
  *rest = i;
  return num;
}

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!isspace((unsigned char)s[i])) return false;
  return true;
}

static const char *const labels[] = {
    "question:", "user question:", "q:", "query:"};

/* A line that starts with a question label ("Question: ..."). */
static bool question_label(const char *s, size_t len) {
  while (len > 0 && isspace((unsigned char)*s)) s++, len--;
  for (size_t i = 0; i < AIP_ARRAY_LEN(labels); i++) {
    size_t l = strlen(labels[i]);
    if (len >= l && strncasecmp(s, labels[i], l) == 0) return true;
  }
  return false;
}

static bool source_line(const char *s, size_t len) {
  while (len > 0 && isspace((unsigned char)*s)) s++, len--;
  if (len > 0 && *s == '(') s++, len--;
  return len >= 7 && strncasecmp(s, "source", 6) == 0 &&
         (s[6] == ':' || s[6] == 's' || s[6] == ' ');
}

/* A leading "(source: NAME)" (the context format of aiplat/rag.h): its
 * length with the blanks after it, or 0. It names the passage's source and
 * is not quoted; the rest of the line is the passage. */
static size_t source_prefix(const char *s, size_t len) {
  if (len < 9 || s[0] != '(' || strncasecmp(s + 1, "source", 6) != 0 ||
      (s[7] != ':' && s[7] != 's'))
    return 0;
  const char *close = memchr(s, ')', len);
  if (!close) return 0;
  size_t i = (size_t)(close - s) + 1;
  while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

/* Append text with whitespace runs collapsed to one space. */
static bool append_collapsed(aip_buf *b, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (isspace((unsigned char)c)) {
      if (b->len > 0 && b->data[b->len - 1] != ' ' && !aip_buf_putc(b, ' '))
        return false;
    } else if (!aip_buf_putc(b, c)) {
      return false;
    }
  }
  return true;
}

static bool push_sentence(sentences *ss, const char *s, size_t len, int num) {
  while (len > 0 && isspace((unsigned char)*s)) s++, len--;
  while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
  if (len == 0 || source_line(s, len)) return true;
  if (ss->n == ss->cap) {
    size_t cap = ss->cap ? ss->cap * 2 : 16;
    sentence *v = realloc(ss->v, cap * sizeof *v);
    if (!v) return false;
    ss->v = v;
    ss->cap = cap;
  }
  sentence *x = &ss->v[ss->n];
  memset(x, 0, sizeof *x);
  x->text = aip_strndup(s, len);
  if (!x->text) return false;
  x->num = num;
  x->order = ss->n;
  ss->n++;
  return bk_terms(x->text, len, &x->terms);
}

/* Split one passage's text into sentences at . ! ? followed by a blank. */
static bool split_sentences(sentences *ss, const char *t, int num) {
  size_t len = strlen(t), start = 0;
  for (size_t i = 0; i < len; i++) {
    bool end = (t[i] == '.' || t[i] == '!' || t[i] == '?') &&
               (i + 1 == len || t[i + 1] == ' ');
    if (end) {
      if (!push_sentence(ss, t + start, i + 1 - start, num)) return false;
      start = i + 1;
    }
  }
  return push_sentence(ss, t + start, len - start, num);
}

/* Scan one message: passages go to ss, other lines to other (if given). */
static bool scan_message(const char *content, sentences *ss, aip_buf *other,
                         size_t *n_passages) {
  const char *p = content;
  aip_buf cur = {0};
  int num = -1;
  bool ok = true;
  while (ok && *p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    size_t rest = 0;
    int m = passage_marker(p, len, &rest);
    bool label = question_label(p, len);
    if (m >= 0 || (num >= 0 && (blank(p, len) || label))) {
      if (num >= 0) ok = split_sentences(ss, cur.data ? cur.data : "", num);
      aip_buf_reset(&cur);
      num = -1;
    }
    if (ok && m >= 0 && m <= MAX_PASSAGE_NUM) {
      num = m;
      (*n_passages)++;
      size_t sp = source_prefix(p + rest, len - rest);
      if (sp)
        ok = append_collapsed(&cur, p + rest + sp, len - rest - sp);
      else if (!source_line(p + rest, len - rest))
        ok = append_collapsed(&cur, p + rest, len - rest);
    } else if (ok && num >= 0) {
      if (!source_line(p, len))
        ok = aip_buf_putc(&cur, ' ') && append_collapsed(&cur, p, len);
    } else if (ok && other && !blank(p, len)) {
      ok = aip_buf_append(other, p, len) && aip_buf_putc(other, '\n');
    }
    p = nl ? nl + 1 : p + len;
  }
  if (ok && num >= 0) ok = split_sentences(ss, cur.data ? cur.data : "", num);
  aip_buf_free(&cur);
  return ok;
}

static int by_score(const void *a, const void *b) {
  const sentence *x = a, *y = b;
  if (x->score != y->score) return x->score < y->score ? 1 : -1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static const char *strip_label(const char *q) {
  while (isspace((unsigned char)*q)) q++;
  for (size_t i = 0; i < AIP_ARRAY_LEN(labels); i++) {
    size_t l = strlen(labels[i]);
    if (strncasecmp(q, labels[i], l) == 0) return q + l;
  }
  return q;
}

static bool is_role(const char *r, const char *want) {
  return r && strcmp(r, want) == 0;
}

char *bk_chat_answer(const bk_chat_msg *msgs, size_t n) {
  sentences ss = {0};
  aip_buf question = {0}, ans = {0};
  bk_strv qt = {0}, qu = {0};
  char *result = NULL;
  size_t n_passages = 0;
  size_t last_user = n;
  for (size_t i = 0; i < n; i++)
    if (is_role(msgs[i].role, "user")) last_user = i;
  for (size_t i = 0; i < n; i++) {
    const char *r = msgs[i].role;
    if (!msgs[i].content) continue;
    if (!is_role(r, "system") && !is_role(r, "user") &&
        !is_role(r, "developer"))
      continue;
    if (!scan_message(msgs[i].content, &ss, i == last_user ? &question : NULL,
                      &n_passages))
      goto out;
  }
  if (n_passages == 0 || ss.n == 0) {
    result = aip_strdup(BK_CHAT_NO_CONTEXT);
    goto out;
  }
  const char *q = question.data ? strip_label(question.data) : "";
  if (!bk_terms(q, strlen(q), &qt)) goto out;
  for (size_t i = 0; i < qt.n; i++) {
    bool seen = false;
    for (size_t j = 0; j < qu.n && !seen; j++) seen = !strcmp(qu.v[j], qt.v[i]);
    if (!seen && !bk_strv_push(&qu, qt.v[i], strlen(qt.v[i]))) goto out;
  }
  /* Score: sum over the question's distinct terms found in the sentence of
   * log(1 + N / df), so rare words weigh more than common ones. */
  for (size_t t = 0; t < qu.n; t++) {
    size_t df = 0;
    bool *has = calloc(ss.n, sizeof *has);
    if (!has) goto out;
    for (size_t s = 0; s < ss.n; s++) {
      for (size_t k = 0; k < ss.v[s].terms.n && !has[s]; k++)
        has[s] = strcmp(ss.v[s].terms.v[k], qu.v[t]) == 0;
      df += has[s];
    }
    double idf = df ? log(1.0 + (double)ss.n / (double)df) : 0.0;
    for (size_t s = 0; s < ss.n; s++)
      if (has[s]) ss.v[s].score += idf;
    free(has);
  }
  qsort(ss.v, ss.n, sizeof *ss.v, by_score);
  double best = ss.v[0].score;
  if (best <= 0.0) {
    result = aip_strdup(BK_CHAT_NO_MATCH);
    goto out;
  }
  for (size_t s = 0; s < ss.n && s < MAX_PICK; s++) {
    if (ss.v[s].score < 0.5 * best) break;
    if (ans.len && !aip_buf_putc(&ans, ' ')) goto out;
    if (!aip_buf_printf(&ans, "%s [%d]", ss.v[s].text, ss.v[s].num)) goto out;
  }
  result = aip_buf_steal(&ans, NULL);
out:
  for (size_t s = 0; s < ss.n; s++) {
    free(ss.v[s].text);
    bk_strv_free(&ss.v[s].terms);
  }
  free(ss.v);
  aip_buf_free(&question);
  aip_buf_free(&ans);
  bk_strv_free(&qt);
  bk_strv_free(&qu);
  return result;
}
