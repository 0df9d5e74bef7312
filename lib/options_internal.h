/* The options objects of endpoints, streams, consumers and Key-Value
 * buckets (not installed). Their fields are read by the calls that take
 * them; see docs/decisions/0006-nats-bus.md. */
#ifndef AIPLAT_OPTIONS_INTERNAL_H
#define AIPLAT_OPTIONS_INTERNAL_H

#include "internal.h"

#define AIP_OPT_NAME_MAX 64

struct aiplat_endpoint_options {
  char *queue;            /* NULL: the service name */
  aiplat_msg_type request_type, reply_type;
  char *stream, *durable; /* both set: a JetStream endpoint */
  int max_deliver;
  int64_t nak_first_ms, nak_max_ms;
  int64_t ack_wait_ms;    /* 0: the service's request timeout */
  bool bind_only;
};

struct aiplat_stream_options {
  char **subjects;
  size_t n_subjects;
  int64_t max_age_ms;
  aiplat_bus_retention retention;
  int replicas;
  aiplat_bus_storage storage;
};

struct aiplat_consumer_options {
  char *durable, *filter;
  int64_t ack_wait_ms, max_deliver;
  int64_t backoff_first_ms, backoff_max_ms; /* 0: none */
  int max_in_flight;
};

struct aiplat_kv_options {
  int64_t ttl_ms;
  int history, replicas;
};

/* The defaults of the create functions, for callers given NULL options. */
void aip_endpoint_options_init(struct aiplat_endpoint_options *o);
void aip_kv_options_init(struct aiplat_kv_options *o);

#endif
