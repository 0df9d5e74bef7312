/* What the Milvus backend reads from Milvus's answers (vstore_milvus.c):
 * pure functions, no handle and no I/O, so that tests and the fuzz
 * targets (tests/fuzz/) reach every answer shape without a server.
 * Failures are recorded in @err (may be NULL) and the thread's record,
 * with the status and message the backend returns. Internal. */
#ifndef AIPLAT_VSTORE_MILVUS_H
#define AIPLAT_VSTORE_MILVUS_H

#include <jansson.h>

#include "vstore.h"

/* A 2xx answer (@len bytes at @body, HTTP status @http_status) to the
 * operation @what, after @attempt earlier tries. Milvus code 0 or 200:
 * AIPLAT_OK and *@root the answer (json_decref()). Any other code: its
 * status (see the ADR), *@code the code and @msg (may be NULL) Milvus's own
 * message. Not JSON or no integer "code": AIPLAT_ERR_DECODE or
 * AIPLAT_ERR_PROTOCOL with *@code -1. */
aiplat_status aip_milvus_answer(aip_err *err, const char *what,
                                long http_status, const char *body, size_t len,
                                int attempt, json_t **root, long *code,
                                char *msg, size_t msglen);

/* collections/has: data.has (or data itself) as a boolean. */
aiplat_status aip_milvus_read_has(aip_err *err, json_t *root, bool *has);

/* collections/describe: the schema must be the one this backend writes
 * (@collection names it in messages); *@dim its dimension, *@loaded
 * whether it is loaded. */
aiplat_status aip_milvus_read_schema(aip_err *err, const char *collection,
                                     json_t *root, uint32_t *dim, bool *loaded);

/* entities/upsert of @n records: a count, when there is one, must be @n. */
aiplat_status aip_milvus_read_upsert(aip_err *err, json_t *root, size_t n);

/* entities/delete: the count deleted, or -1 when the answer does not say. */
int64_t aip_milvus_read_deleted(json_t *root);

/* entities/query rows (the answer's "data" list) of a count(*). */
aiplat_status aip_milvus_read_count(aip_err *err, json_t *rows, uint64_t *out);

/* entities/query rows of a source's ids, at most @max of them: packed as
 * aip_vstore_source_ids() returns them. */
aiplat_status aip_milvus_read_ids(aip_err *err, json_t *rows, size_t max,
                                  char ***ids, size_t *n);

/* entities/search: at most @limit hits, best first, packed as
 * aip_vstore_search() returns them (*@hits NULL when *@n is 0). */
aiplat_status aip_milvus_read_hits(aip_err *err, json_t *root, size_t limit,
                                   aip_vhit **hits, size_t *n);

#endif
