/* Subjects (lib/subject.c), checked against a reference written from the
 * rules in aiplat/subject.h: tokens of 1..256 bytes of UTF-8 without
 * whitespace, control characters, '.', '*' or '>'; at most 2048 bytes in
 * all; a filter may have '*' tokens and a final '>'. Byte 0 picks a token
 * index; the rest is the subject. Checks, joins, builders and token_at
 * must agree with the reference and with each other. */
#include "config.h"
#include "fuzz_util.h"
#include "subject_internal.h"

static bool ref_token(const char *t, size_t n) {
  if (n == 0 || n > AIPLAT_SUBJECT_TOKEN_MAX || !fuzz_utf8_ok(t, n))
    return false;
  const unsigned char *p = (const unsigned char *)t;
  for (size_t i = 0; i < n; i++) {
    if (p[i] <= 0x20 || p[i] == 0x7f || p[i] == '.' || p[i] == '*' ||
        p[i] == '>')
      return false;
    /* U+0080..U+009F are C2 80..C2 9F */
    if (p[i] == 0xC2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
      return false;
  }
  return true;
}

static bool ref_subject(const char *s, bool filter) {
  size_t total = strlen(s);
  if (total == 0 || total > AIPLAT_SUBJECT_MAX) return false;
  for (const char *p = s;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    bool ok = ref_token(p, n) ||
              (filter && n == 1 && (*p == '*' || (*p == '>' && !dot)));
    if (!ok) return false;
    if (!dot) return true;
    p = dot + 1;
  }
}

static bool ref_name(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
      return false;
  return true;
}

/* The tokens of @s (split at '.', empty ones kept), joined again. */
static void check_join(const char *s, bool valid) {
  size_t n = 1;
  for (const char *p = s; *p; p++) n += *p == '.';
  char *copy = strdup(s);
  const char **tok = malloc(n * sizeof *tok);
  if (!copy || !tok) abort();
  size_t k = 0;
  for (char *p = copy;;) {
    tok[k++] = p;
    char *dot = strchr(p, '.');
    if (!dot) break;
    *dot = '\0';
    p = dot + 1;
  }
  FUZZ_CHECK(k == n);
  char *joined = NULL;
  aiplat_status st = aiplat_subject_join(&joined, tok, n);
  FUZZ_CHECK((st == AIPLAT_OK) == valid);
  if (joined) FUZZ_CHECK(strcmp(joined, s) == 0);
  aiplat_free(joined);
  free(tok);
  free(copy);
}

static void check_token_at(const char *s, size_t index) {
  char *tok = NULL;
  aiplat_status st = aiplat_subject_token_at(&tok, s, index);
  if (!ref_subject(s, true)) {
    FUZZ_CHECK(st == AIPLAT_ERR_INVALID_ARGUMENT && !tok);
    return;
  }
  const char *p = s;
  for (size_t i = 0; p && i < index; i++) {
    p = strchr(p, '.');
    if (p) p++;
  }
  if (!p) {
    FUZZ_CHECK(st == AIPLAT_ERR_NOT_FOUND && !tok);
    return;
  }
  FUZZ_CHECK(st == AIPLAT_OK);
  size_t n = strcspn(p, ".");
  FUZZ_CHECK(strlen(tok) == n && memcmp(tok, p, n) == 0);
  aiplat_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  size_t index = fuzz_byte(&in) % 8;
  char *s = fuzz_rest_str(&in);
  bool plain = ref_subject(s, false), filter = ref_subject(s, true);
  FUZZ_CHECK((aiplat_subject_validate(s) == AIPLAT_OK) == plain);
  FUZZ_CHECK((aiplat_subject_validate_filter(s) == AIPLAT_OK) == filter);
  FUZZ_CHECK((aip_subject_check(NULL, "fuzz", s, false) == AIPLAT_OK) == plain);
  check_join(s, plain);
  check_token_at(s, index);

  size_t len = strlen(s), at = 0;
  bool tok_ok = ref_token(s, len);
  FUZZ_CHECK((aip_token_problem(s, len, &at) == NULL) == tok_ok);
  FUZZ_CHECK(tok_ok || at <= len);
  FUZZ_CHECK((aiplat_subject_token_check(s) == AIPLAT_OK) == tok_ok);
  char *built = NULL;
  aiplat_status st = aiplat_subject_chat_user_message(&built, s);
  FUZZ_CHECK((st == AIPLAT_OK) == tok_ok);
  if (built) FUZZ_CHECK(ref_subject(built, false));
  aiplat_free(built);
  FUZZ_CHECK((aip_name_check(NULL, "name", s, 32) == AIPLAT_OK) ==
             ref_name(s, 32));
  free(s);
  return 0;
}
