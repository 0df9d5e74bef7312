/* Subjects: token and subject validation, builders for the seed subjects. */
#include "config.h"

#include "aiplat/subject.h"

#include <stdlib.h>
#include <string.h>

#include "subject_internal.h"
#include "utf8.h"

const char *aip_token_problem(const char *tok, size_t len, size_t *at) {
  *at = 0;
  if (len == 0) return "is empty";
  if (len > AIPLAT_SUBJECT_TOKEN_MAX) {
    *at = AIPLAT_SUBJECT_TOKEN_MAX;
    return "is longer than 256 bytes";
  }
  const unsigned char *p = (const unsigned char *)tok;
  for (size_t i = 0; i < len;) {
    uint32_t cp = p[i];
    size_t n = 1;
    if (cp >= 0x80) n = aip_utf8_decode(p + i, len - i, &cp); /* ASCII: as is */
    *at = i;
    if (n == 0) return "is not valid UTF-8";
    if (cp <= 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
      return "contains whitespace or a control character";
    if (cp == '.') return "contains '.' (a subject level separator)";
    if (cp == '*' || cp == '>') return "contains a wildcard ('*' or '>')";
    i += n;
  }
  return NULL;
}

AIPLAT_API aiplat_status aiplat_subject_token_check(const char *token) {
  if (!token)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "subject: token is NULL");
  size_t len = strnlen(token, AIPLAT_SUBJECT_TOKEN_MAX + 1);
  size_t at;
  const char *why = aip_token_problem(token, len, &at);
  if (why)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "subject: token %s (at byte %zu)", why, at);
  return AIPLAT_OK;
}

aiplat_status aip_subject_check(aip_err *e, const char *what,
                                const char *subject, bool filter) {
  if (!subject)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "%s: subject is NULL",
                    what);
  size_t total = strnlen(subject, AIPLAT_SUBJECT_MAX + 1);
  if (total == 0)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "%s: subject is empty",
                    what);
  if (total > AIPLAT_SUBJECT_MAX)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s: subject is longer than %d bytes", what,
                    AIPLAT_SUBJECT_MAX);
  const char *p = subject;
  for (size_t index = 0;; index++) {
    const char *dot = memchr(p, '.', total - (size_t)(p - subject));
    size_t len = dot ? (size_t)(dot - p) : total - (size_t)(p - subject);
    bool last = dot == NULL;
    if (filter && len == 1 && (*p == '*' || (*p == '>' && last))) {
      /* a whole-token wildcard */
    } else if (filter && len == 1 && *p == '>') {
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s: subject token %zu: '>' is allowed only as the "
                      "last token",
                      what, index);
    } else {
      size_t at;
      const char *why = aip_token_problem(p, len, &at);
      if (why)
        return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                        "%s: subject token %zu %s (at byte %zu of the subject)",
                        what, index, why, (size_t)(p - subject) + at);
    }
    if (last) break;
    p = dot + 1;
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_subject_validate(const char *subject) {
  return aip_subject_check(NULL, "subject", subject, false);
}

AIPLAT_API aiplat_status aiplat_subject_validate_filter(const char *subject) {
  return aip_subject_check(NULL, "subject", subject, true);
}

aiplat_status aip_name_check(aip_err *e, const char *what, const char *name,
                             size_t max) {
  if (!name || !*name)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT, "%s is empty", what);
  size_t len = strnlen(name, max + 1);
  if (len > max)
    return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                    "%s is longer than %zu bytes", what, max);
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok)
      return aip_fail(e, AIPLAT_ERR_INVALID_ARGUMENT,
                      "%s may hold only A-Z, a-z, 0-9, '_' and '-' (bad byte "
                      "at %zu)",
                      what, i);
  }
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_subject_join(char **out,
                                             const char *const *tokens,
                                             size_t n) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "subject: out is NULL");
  *out = NULL;
  if (n == 0 || !tokens)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "subject: no tokens to join");
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (!tokens[i])
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                      "subject: token %zu is NULL", i);
    size_t len = strnlen(tokens[i], AIPLAT_SUBJECT_TOKEN_MAX + 1);
    size_t at;
    const char *why = aip_token_problem(tokens[i], len, &at);
    if (why)
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                      "subject: token %zu %s (at byte %zu)", i, why, at);
    total += len + 1;
  }
  if (total - 1 > AIPLAT_SUBJECT_MAX)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "subject: joined subject is longer than %d bytes",
                    AIPLAT_SUBJECT_MAX);
  char *s = malloc(total);
  if (!s) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "subject: out of memory");
  char *w = s;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(tokens[i]);
    memcpy(w, tokens[i], len);
    w += len;
    *w++ = i + 1 < n ? '.' : '\0';
  }
  *out = s;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_subject_build(char **out, const char *domain,
                                              const char *scope,
                                              const char *action) {
  const char *t[] = {"ai", domain, scope, action};
  return aiplat_subject_join(out, t, 4);
}

AIPLAT_API aiplat_status aiplat_subject_chat_user_message(char **out,
                                                          const char *user_id) {
  const char *t[] = {"ai", "chat", "user", user_id, "message"};
  return aiplat_subject_join(out, t, 5);
}

AIPLAT_API aiplat_status aiplat_subject_chat_response(char **out,
                                                      const char *request_id) {
  return aiplat_subject_build(out, "chat", "response", request_id);
}

AIPLAT_API aiplat_status
aiplat_subject_voice_user_request(char **out, const char *user_id) {
  const char *t[] = {"ai", "voice", "user", user_id, "request"};
  return aiplat_subject_join(out, t, 5);
}

AIPLAT_API aiplat_status aiplat_subject_voice_response(char **out,
                                                       const char *request_id) {
  return aiplat_subject_build(out, "voice", "response", request_id);
}

AIPLAT_API aiplat_status aiplat_subject_pipeline_status(char **out,
                                                        const char *run_id) {
  return aiplat_subject_build(out, "pipeline", "status", run_id);
}

AIPLAT_API const char *aiplat_subject_pipeline_trigger(void) {
  return "ai.pipeline.trigger";
}

AIPLAT_API const char *aiplat_subject_pipeline_query(void) {
  return "ai.pipeline.query";
}

AIPLAT_API const char *aiplat_subject_stt_transcribe(void) {
  return "ai.stt.transcribe";
}

AIPLAT_API const char *aiplat_subject_tts_synthesize(void) {
  return "ai.tts.synthesize";
}

AIPLAT_API const char *aiplat_subject_chat_user_message_filter(void) {
  return "ai.chat.user.*.message";
}

AIPLAT_API const char *aiplat_subject_voice_user_request_filter(void) {
  return "ai.voice.user.*.request";
}

AIPLAT_API aiplat_status aiplat_subject_token_at(char **out,
                                                 const char *subject,
                                                 size_t index) {
  if (!out)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "subject: out is NULL");
  *out = NULL;
  aiplat_status st = aip_subject_check(NULL, "subject", subject, true);
  if (st != AIPLAT_OK) return st;
  const char *p = subject;
  for (size_t i = 0; i < index; i++) {
    p = strchr(p, '.');
    if (!p)
      return aip_fail(NULL, AIPLAT_ERR_NOT_FOUND,
                      "subject: has fewer than %zu tokens", index + 1);
    p++;
  }
  const char *dot = strchr(p, '.');
  char *tok = aip_strndup(p, dot ? (size_t)(dot - p) : strlen(p));
  if (!tok)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "subject: out of memory");
  *out = tok;
  return AIPLAT_OK;
}
