/* Subject checks shared by the bus (not installed). */
#ifndef AIPLAT_SUBJECT_INTERNAL_H
#define AIPLAT_SUBJECT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* Check @subject; on failure record "@what: ..." in @e (may be NULL) and in
 * the thread's record. @filter allows `*` tokens and a final `>`. */
aiplat_status aip_subject_check(aip_err *e, const char *what,
                                const char *subject, bool filter);

/* Check one token of @len bytes; NULL when valid, else a static reason.
 * @at receives the byte offset of the problem. */
const char *aip_token_problem(const char *tok, size_t len, size_t *at);

/* A name for a stream, consumer or KV bucket: 1..@max bytes of
 * [A-Za-z0-9_-]. */
aiplat_status aip_name_check(aip_err *e, const char *what, const char *name,
                             size_t max);

#endif
