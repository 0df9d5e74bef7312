/* Options objects for what will grow: endpoints, streams, consumers and
 * Key-Value buckets. Setters check their value at once, so that the call
 * taking the options fails only on what depends on the server. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "options_internal.h"
#include "subject_internal.h"

#define WEEK_MS (7 * 24 * 3600 * INT64_C(1000))
#define HOUR_MS (3600 * INT64_C(1000))
#define DELIVER_MAX 1000
#define SUBJECTS_MAX 1024
#define IN_FLIGHT_MAX 65536
#define KV_HISTORY_MAX 64

#define NEED(o, what)                                                  \
  do {                                                                 \
    if (!(o))                                                          \
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "%s: options " \
                      "are NULL", what);                               \
  } while (0)

/* Replace *@slot with a copy of @s (NULL allowed). */
static aiplat_status set_string(char **slot, const char *s) {
  char *copy = NULL;
  if (s && !(copy = strdup(s)))
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  free(*slot);
  *slot = copy;
  return AIPLAT_OK;
}

/* ---- endpoints ------------------------------------------------------------ */

void aip_endpoint_options_init(struct aiplat_endpoint_options *o) {
  memset(o, 0, sizeof *o);
  o->request_type = AIPLAT_MSG_INVALID;
  o->reply_type = AIPLAT_MSG_INVALID;
  o->max_deliver = 5;
  o->nak_first_ms = 1000;
  o->nak_max_ms = 30000;
}

AIPLAT_API aiplat_status aiplat_endpoint_options_create(
    aiplat_endpoint_options **out) {
  NEED(out, "endpoint_options_create: out");
  *out = malloc(sizeof **out);
  if (!*out)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  aip_endpoint_options_init(*out);
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_endpoint_options_destroy(aiplat_endpoint_options *opts) {
  if (!opts) return;
  free(opts->queue);
  free(opts->stream);
  free(opts->durable);
  free(opts);
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_queue_group(
    aiplat_endpoint_options *opts, const char *queue_group) {
  NEED(opts, "endpoint_options_set_queue_group");
  if (queue_group && aip_subject_check(NULL, "endpoint options: queue group",
                                       queue_group, false))
    return AIPLAT_ERR_INVALID_ARGUMENT;
  return set_string(&opts->queue, queue_group);
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_types(
    aiplat_endpoint_options *opts, aiplat_msg_type request_type,
    aiplat_msg_type reply_type) {
  NEED(opts, "endpoint_options_set_types");
  aiplat_msg_type t[2] = {request_type, reply_type};
  for (int i = 0; i < 2; i++)
    if (t[i] != AIPLAT_MSG_INVALID && !aiplat_msg_type_name(t[i]))
      return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                      "endpoint options: unknown %s type %d",
                      i ? "reply" : "request", (int)t[i]);
  opts->request_type = request_type;
  opts->reply_type = reply_type;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_jetstream(
    aiplat_endpoint_options *opts, const char *stream, const char *durable) {
  NEED(opts, "endpoint_options_set_jetstream");
  aiplat_status st;
  if ((st = aip_name_check(NULL, "endpoint options: stream name", stream,
                           AIP_OPT_NAME_MAX)) ||
      (st = aip_name_check(NULL, "endpoint options: durable name", durable,
                           AIP_OPT_NAME_MAX)))
    return st;
  char *s = strdup(stream), *d = strdup(durable);
  if (!s || !d) {
    free(s);
    free(d);
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  }
  free(opts->stream);
  free(opts->durable);
  opts->stream = s;
  opts->durable = d;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_max_deliver(
    aiplat_endpoint_options *opts, int max_deliver) {
  NEED(opts, "endpoint_options_set_max_deliver");
  if (max_deliver < 1 || max_deliver > DELIVER_MAX)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "endpoint options: max deliver must be 1..%d, not %d",
                    DELIVER_MAX, max_deliver);
  opts->max_deliver = max_deliver;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_nak_backoff_ms(
    aiplat_endpoint_options *opts, int64_t first_ms, int64_t max_ms) {
  NEED(opts, "endpoint_options_set_nak_backoff_ms");
  if (first_ms < 1 || max_ms < first_ms || max_ms > HOUR_MS)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "endpoint options: nak backoff needs 1 <= first <= max "
                    "<= %lld ms, not %lld and %lld",
                    (long long)HOUR_MS, (long long)first_ms, (long long)max_ms);
  opts->nak_first_ms = first_ms;
  opts->nak_max_ms = max_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_ack_wait_ms(
    aiplat_endpoint_options *opts, int64_t ack_wait_ms) {
  NEED(opts, "endpoint_options_set_ack_wait_ms");
  if (ack_wait_ms < 0 || ack_wait_ms > WEEK_MS)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "endpoint options: ack wait must be 0..%lld ms, not %lld",
                    (long long)WEEK_MS, (long long)ack_wait_ms);
  opts->ack_wait_ms = ack_wait_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_endpoint_options_set_bind_only(
    aiplat_endpoint_options *opts, bool bind_only) {
  NEED(opts, "endpoint_options_set_bind_only");
  opts->bind_only = bind_only;
  return AIPLAT_OK;
}

/* ---- streams -------------------------------------------------------------- */

static void free_subjects(aiplat_stream_options *o) {
  for (size_t i = 0; i < o->n_subjects; i++) free(o->subjects[i]);
  free(o->subjects);
  o->subjects = NULL;
  o->n_subjects = 0;
}

AIPLAT_API aiplat_status aiplat_stream_options_create(
    aiplat_stream_options **out) {
  NEED(out, "stream_options_create: out");
  *out = calloc(1, sizeof **out);
  if (!*out)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  (*out)->retention = AIPLAT_BUS_RETENTION_LIMITS;
  (*out)->replicas = 1;
  (*out)->storage = AIPLAT_BUS_STORAGE_FILE;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_stream_options_destroy(aiplat_stream_options *opts) {
  if (!opts) return;
  free_subjects(opts);
  free(opts);
}

AIPLAT_API aiplat_status aiplat_stream_options_set_subjects(
    aiplat_stream_options *opts, const char *const *subjects,
    size_t n_subjects) {
  NEED(opts, "stream_options_set_subjects");
  if (!subjects || n_subjects == 0 || n_subjects > SUBJECTS_MAX)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stream options: give 1 to %d subjects", SUBJECTS_MAX);
  aiplat_status st;
  for (size_t i = 0; i < n_subjects; i++)
    if ((st = aip_subject_check(NULL, "stream options", subjects[i], true)))
      return st;
  char **copy = calloc(n_subjects, sizeof *copy);
  if (!copy)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  for (size_t i = 0; i < n_subjects; i++) {
    if (!(copy[i] = strdup(subjects[i]))) {
      for (size_t j = 0; j < i; j++) free(copy[j]);
      free(copy);
      return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
    }
  }
  free_subjects(opts);
  opts->subjects = copy;
  opts->n_subjects = n_subjects;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stream_options_set_max_age_ms(
    aiplat_stream_options *opts, int64_t max_age_ms) {
  NEED(opts, "stream_options_set_max_age_ms");
  if (max_age_ms < 0 || max_age_ms > INT64_MAX / 1000000)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stream options: max age out of range: %lld",
                    (long long)max_age_ms);
  opts->max_age_ms = max_age_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stream_options_set_retention(
    aiplat_stream_options *opts, aiplat_bus_retention retention) {
  NEED(opts, "stream_options_set_retention");
  if (retention != AIPLAT_BUS_RETENTION_LIMITS &&
      retention != AIPLAT_BUS_RETENTION_WORK_QUEUE &&
      retention != AIPLAT_BUS_RETENTION_INTEREST)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stream options: unknown retention %d", (int)retention);
  opts->retention = retention;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stream_options_set_replicas(
    aiplat_stream_options *opts, int replicas) {
  NEED(opts, "stream_options_set_replicas");
  if (replicas < 1 || replicas > 5)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stream options: replicas must be 1..5, not %d", replicas);
  opts->replicas = replicas;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_stream_options_set_storage(
    aiplat_stream_options *opts, aiplat_bus_storage storage) {
  NEED(opts, "stream_options_set_storage");
  if (storage != AIPLAT_BUS_STORAGE_FILE && storage != AIPLAT_BUS_STORAGE_MEMORY)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "stream options: unknown storage %d", (int)storage);
  opts->storage = storage;
  return AIPLAT_OK;
}

/* ---- consumers ------------------------------------------------------------ */

AIPLAT_API aiplat_status aiplat_consumer_options_create(
    aiplat_consumer_options **out) {
  NEED(out, "consumer_options_create: out");
  *out = calloc(1, sizeof **out);
  if (!*out)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  (*out)->ack_wait_ms = 30000;
  (*out)->max_deliver = -1;
  (*out)->max_in_flight = 64;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_consumer_options_destroy(aiplat_consumer_options *opts) {
  if (!opts) return;
  free(opts->durable);
  free(opts->filter);
  free(opts);
}

AIPLAT_API aiplat_status aiplat_consumer_options_set_durable(
    aiplat_consumer_options *opts, const char *durable) {
  NEED(opts, "consumer_options_set_durable");
  aiplat_status st = aip_name_check(NULL, "consumer options: durable name",
                                    durable, AIP_OPT_NAME_MAX);
  if (st) return st;
  return set_string(&opts->durable, durable);
}

AIPLAT_API aiplat_status aiplat_consumer_options_set_filter_subject(
    aiplat_consumer_options *opts, const char *filter_subject) {
  NEED(opts, "consumer_options_set_filter_subject");
  if (filter_subject &&
      aip_subject_check(NULL, "consumer options", filter_subject, true))
    return AIPLAT_ERR_INVALID_ARGUMENT;
  return set_string(&opts->filter, filter_subject);
}

AIPLAT_API aiplat_status aiplat_consumer_options_set_ack_wait_ms(
    aiplat_consumer_options *opts, int64_t ack_wait_ms) {
  NEED(opts, "consumer_options_set_ack_wait_ms");
  if (ack_wait_ms < 1 || ack_wait_ms > WEEK_MS)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "consumer options: ack wait must be 1..%lld ms, not %lld",
                    (long long)WEEK_MS, (long long)ack_wait_ms);
  opts->ack_wait_ms = ack_wait_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_consumer_options_set_max_deliver(
    aiplat_consumer_options *opts, int64_t max_deliver) {
  NEED(opts, "consumer_options_set_max_deliver");
  if (max_deliver == 0 || max_deliver < -1)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "consumer options: max deliver must be -1 or at least 1, "
                    "not %lld", (long long)max_deliver);
  opts->max_deliver = max_deliver;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_consumer_options_set_backoff_ms(
    aiplat_consumer_options *opts, int64_t first_ms, int64_t max_ms) {
  NEED(opts, "consumer_options_set_backoff_ms");
  bool clear = first_ms == 0 && max_ms == 0;
  if (!clear && (first_ms < 1 || max_ms < first_ms || max_ms > WEEK_MS))
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "consumer options: backoff needs 1 <= first <= max <= "
                    "%lld ms (or 0 and 0), not %lld and %lld",
                    (long long)WEEK_MS, (long long)first_ms, (long long)max_ms);
  opts->backoff_first_ms = first_ms;
  opts->backoff_max_ms = max_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_consumer_options_set_max_in_flight(
    aiplat_consumer_options *opts, int max_in_flight) {
  NEED(opts, "consumer_options_set_max_in_flight");
  if (max_in_flight < 1 || max_in_flight > IN_FLIGHT_MAX)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "consumer options: max in flight must be 1..%d, not %d",
                    IN_FLIGHT_MAX, max_in_flight);
  opts->max_in_flight = max_in_flight;
  return AIPLAT_OK;
}

/* ---- Key-Value ------------------------------------------------------------ */

void aip_kv_options_init(struct aiplat_kv_options *o) {
  o->ttl_ms = 0;
  o->history = 1;
  o->replicas = 1;
}

AIPLAT_API aiplat_status aiplat_kv_options_create(aiplat_kv_options **out) {
  NEED(out, "kv_options_create: out");
  *out = malloc(sizeof **out);
  if (!*out)
    return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "options: out of memory");
  aip_kv_options_init(*out);
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_kv_options_destroy(aiplat_kv_options *opts) {
  free(opts);
}

AIPLAT_API aiplat_status aiplat_kv_options_set_ttl_ms(aiplat_kv_options *opts,
                                                      int64_t ttl_ms) {
  NEED(opts, "kv_options_set_ttl_ms");
  if (ttl_ms < 0 || ttl_ms > INT64_MAX / 1000000)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv options: ttl out of range: %lld", (long long)ttl_ms);
  opts->ttl_ms = ttl_ms;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_kv_options_set_history(aiplat_kv_options *opts,
                                                       int history) {
  NEED(opts, "kv_options_set_history");
  if (history < 1 || history > KV_HISTORY_MAX)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv options: history must be 1..%d, not %d", KV_HISTORY_MAX,
                    history);
  opts->history = history;
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_kv_options_set_replicas(
    aiplat_kv_options *opts, int replicas) {
  NEED(opts, "kv_options_set_replicas");
  if (replicas < 1 || replicas > 5)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "kv options: replicas must be 1..5, not %d", replicas);
  opts->replicas = replicas;
  return AIPLAT_OK;
}
