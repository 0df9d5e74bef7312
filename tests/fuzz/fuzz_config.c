/* Configuration values (lib/config.c). Byte 0 picks a setting of the
 * library's table; byte 1 how the value arrives: set on the handle, in the
 * environment, or as a NAME_FILE secret; the rest is the value. Every
 * typed getter and the whole-table validation see it; a secret file's
 * value must come back as the file held it, less one line break. */
#include "config.h"
#include "fuzz_util.h"
#include "internal.h"

static void getters(aiplat_config *cfg, const char *name) {
  const char *s = NULL;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  aiplat_status st = aiplat_config_get_int(cfg, name, -1000, 1000, &i);
  if (st == AIPLAT_OK) FUZZ_CHECK(i >= -1000 && i <= 1000);
  st = aiplat_config_get_double(cfg, name, 0, 2, &d);
  if (st == AIPLAT_OK) FUZZ_CHECK(d >= 0 && d <= 2);
  (void)aiplat_config_get_bool(cfg, name, &b);
  st = aiplat_config_get_duration_ms(cfg, name, &i);
  if (st == AIPLAT_OK) FUZZ_CHECK(i >= 0);
  st = aiplat_config_get_url(cfg, name, &s);
  if (st == AIPLAT_OK) FUZZ_CHECK(s && strstr(s, "://"));
  (void)aiplat_config_require(cfg, name, &s);
  (void)aiplat_config_is_set(cfg, name);
  (void)aiplat_config_validate(cfg);
  char msg[AIP_ERRMSG_MAX];
  (void)aiplat_config_last_error(cfg, msg, sizeof msg);
  FUZZ_CHECK(strnlen(msg, sizeof msg) < sizeof msg);
}

/* What NAME_FILE holding @v (@n bytes) must give. */
static void check_secret(const char *got, aiplat_status st, const uint8_t *v,
                         size_t n) {
  if (n > AIPLAT_CONFIG_MAX_FILE_VALUE || memchr(v, '\0', n)) {
    FUZZ_CHECK(st == AIPLAT_ERR_CONFIG);
    return;
  }
  FUZZ_CHECK(st == AIPLAT_OK && got);
  if (n && v[n - 1] == '\n') n--;
  if (n && v[n - 1] == '\r') n--;
  FUZZ_CHECK(strlen(got) == n && memcmp(got, v, n) == 0);
}

/* The same input must read the same in any environment. */
static void clean_environment(size_t count) {
  static bool done;
  if (done) return;
  done = true;
  for (size_t i = 0; i < count; i++) {
    char var[160];
    snprintf(var, sizeof var, "%s_FILE", aiplat_config_setting_name(i));
    unsetenv(aiplat_config_setting_name(i));
    unsetenv(var);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  size_t count = aiplat_config_setting_count();
  clean_environment(count);
  const char *name = aiplat_config_setting_name(fuzz_byte(&in) % count);
  FUZZ_CHECK(name);
  uint8_t how = fuzz_byte(&in) % 3;
  char *value = fuzz_rest_str(&in);
  int64_t ms;
  if (aiplat_duration_parse_ms(value, &ms) == AIPLAT_OK) FUZZ_CHECK(ms >= 0);
  aiplat_config *cfg = NULL;
  char var[160];
  switch (how) {
    case 0:
      FUZZ_CHECK(aiplat_config_create(&cfg) == AIPLAT_OK);
      if (aiplat_config_set(cfg, name, value) == AIPLAT_OK) getters(cfg, name);
      break;
    case 1:
      setenv(name, value, 1);
      FUZZ_CHECK(aiplat_config_create(&cfg) == AIPLAT_OK);
      getters(cfg, name);
      unsetenv(name);
      break;
    default: {
      snprintf(var, sizeof var, "%s_FILE", name);
      setenv(var, fuzz_scratch_write(in.p, in.n), 1);
      FUZZ_CHECK(aiplat_config_create(&cfg) == AIPLAT_OK);
      const char *got = NULL;
      aiplat_status st = aiplat_config_get_string(cfg, name, &got);
      check_secret(got, st, in.p, in.n);
      if (st == AIPLAT_OK) getters(cfg, name);
      unsetenv(var);
      break;
    }
  }
  aiplat_config_destroy(cfg);
  free(value);
  return 0;
}
