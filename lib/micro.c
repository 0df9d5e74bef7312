/* NATS micro protocol bodies; see micro.h. Field names and types follow
 * ADR-32 as the reference implementations emit them: durations are integer
 * nanoseconds, `started` is RFC 3339 UTC, `metadata` is always an object. */
#include "config.h"

#include "micro.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "trace.h"

bool aip_micro_name_valid(const char *name) {
  if (!name || !*name) return false;
  for (const char *p = name; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') return false;
  return true;
}

/* numeric identifier: 0 or no leading zero */
static const char *semver_num(const char *p) {
  if (!isdigit((unsigned char)*p)) return NULL;
  if (*p == '0') return isdigit((unsigned char)p[1]) ? NULL : p + 1;
  while (isdigit((unsigned char)*p)) p++;
  return p;
}

/* dot-separated identifiers of [0-9A-Za-z-]; for pre-release, numeric ones
 * have no leading zero. */
static const char *semver_idents(const char *p, bool prerelease) {
  for (;;) {
    const char *s = p;
    bool digits_only = true;
    while (isalnum((unsigned char)*p) || *p == '-') {
      if (!isdigit((unsigned char)*p)) digits_only = false;
      p++;
    }
    if (p == s) return NULL;
    if (prerelease && digits_only && *s == '0' && p - s > 1) return NULL;
    if (*p != '.') return p;
    p++;
  }
}

bool aip_micro_version_valid(const char *v) {
  if (!v) return false;
  const char *p = v;
  for (int i = 0; i < 3; i++) {
    if (!(p = semver_num(p))) return false;
    if (i < 2) {
      if (*p != '.') return false;
      p++;
    }
  }
  if (*p == '-' && !(p = semver_idents(p + 1, true))) return false;
  if (*p == '+' && !(p = semver_idents(p + 1, false))) return false;
  return *p == '\0';
}

void aip_micro_new_id(char out[AIP_MICRO_ID_LEN + 1]) {
  static const char alphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t raw[AIP_MICRO_ID_LEN];
  aip_random_bytes(raw, sizeof raw);
  for (size_t i = 0; i < AIP_MICRO_ID_LEN; i++) out[i] = alphabet[raw[i] % 62];
  out[AIP_MICRO_ID_LEN] = '\0';
}

static json_t *identity(const aip_micro_identity *id, const char *type) {
  return json_pack("{s:s, s:s, s:s, s:s, s:{}}", "name", id->name, "id", id->id,
                   "version", id->version, "type", type, "metadata");
}

static char *dump(json_t *j) {
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  return s;
}

char *aip_micro_ping_json(const aip_micro_identity *id) {
  return dump(identity(id, AIP_MICRO_PING_TYPE));
}

char *aip_micro_info_json(const aip_micro_identity *id,
                          const aip_micro_endpoint *eps, size_t n) {
  json_t *j = identity(id, AIP_MICRO_INFO_TYPE);
  json_t *arr = json_array();
  if (!j || !arr) goto fail;
  json_object_set_new(j, "description", json_string(id->description ? id->description : ""));
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:{}}", "name", eps[i].name,
                                         "subject", eps[i].subject, "queue_group",
                                         eps[i].queue_group, "metadata"));
  json_object_set_new(j, "endpoints", arr);
  return dump(j);
fail:
  json_decref(arr);
  json_decref(j);
  return NULL;
}

char *aip_micro_stats_json(const aip_micro_identity *id, int64_t started_wall_ms,
                           const aip_micro_endpoint *eps, size_t n) {
  json_t *j = identity(id, AIP_MICRO_STATS_TYPE);
  json_t *arr = json_array();
  if (!j || !arr) goto fail;
  char started[40];
  aip_format_time_ms(started_wall_ms, started, sizeof started);
  json_object_set_new(j, "started", json_string(started));
  for (size_t i = 0; i < n; i++) {
    const aip_micro_endpoint *e = &eps[i];
    int64_t avg = e->num_requests ? e->processing_time_ns / (int64_t)e->num_requests : 0;
    json_array_append_new(
        arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I}", "name", e->name,
                       "subject", e->subject, "queue_group", e->queue_group,
                       "num_requests", (json_int_t)e->num_requests, "num_errors",
                       (json_int_t)e->num_errors, "last_error",
                       e->last_error ? e->last_error : "", "processing_time",
                       (json_int_t)e->processing_time_ns, "average_processing_time",
                       (json_int_t)avg));
  }
  json_object_set_new(j, "endpoints", arr);
  return dump(j);
fail:
  json_decref(arr);
  json_decref(j);
  return NULL;
}
