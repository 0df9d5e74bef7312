/* The NATS micro service protocol (ADR-32): identity checks and the JSON
 * bodies of the $SRV.PING / INFO / STATS replies. nats.c 3.4.1 has no micro
 * API, so the service framework answers these subjects itself. */
#ifndef AIPLAT_MICRO_H
#define AIPLAT_MICRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIP_MICRO_PING_TYPE "io.nats.micro.v1.ping_response"
#define AIP_MICRO_INFO_TYPE "io.nats.micro.v1.info_response"
#define AIP_MICRO_STATS_TYPE "io.nats.micro.v1.stats_response"
#define AIP_MICRO_ERROR_HEADER "Nats-Service-Error"
#define AIP_MICRO_ERROR_CODE_HEADER "Nats-Service-Error-Code"
#define AIP_MICRO_ID_LEN 22

typedef struct aip_micro_identity {
  const char *name, *id, *version, *description;
} aip_micro_identity;

typedef struct aip_micro_endpoint {
  const char *name, *subject, *queue_group;
  uint64_t num_requests, num_errors;
  int64_t processing_time_ns; /* total */
  const char *last_error;     /* "" when none */
} aip_micro_endpoint;

/* Service and endpoint names: [A-Za-z0-9_-]+ */
bool aip_micro_name_valid(const char *name);
/* A SemVer 2.0 version string. */
bool aip_micro_version_valid(const char *version);
/* A random instance id of AIP_MICRO_ID_LEN base-62 characters. */
void aip_micro_new_id(char out[AIP_MICRO_ID_LEN + 1]);

/* JSON bodies (malloc'd, NUL-terminated); NULL on allocation failure. */
char *aip_micro_ping_json(const aip_micro_identity *id);
char *aip_micro_info_json(const aip_micro_identity *id,
                          const aip_micro_endpoint *eps, size_t n);
char *aip_micro_stats_json(const aip_micro_identity *id, int64_t started_wall_ms,
                           const aip_micro_endpoint *eps, size_t n);

#endif
