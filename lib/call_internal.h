/* The per-call object inside the library. Internal. */
#ifndef AIPLAT_CALL_INTERNAL_H
#define AIPLAT_CALL_INTERNAL_H

#include "aiplat/call.h"
#include "http.h"

/* The deadline on the aip_now_ms() clock, 0 when none (NULL: none). */
int64_t aip_call_deadline_ms(aiplat_call *c);
void aip_call_set_deadline_ms(aiplat_call *c, int64_t deadline_ms);
/* Tie a started HTTP call (its reference is taken over) to @c, so that
 * aiplat_call_cancel() reaches it; NULL @c just drops the reference. */
void aip_call_bind(aiplat_call *c, aip_http_call *h);
/* The call has ended: forget it. */
void aip_call_unbind(aiplat_call *c);
/* Tie a running call of another kind to @c: aiplat_call_cancel() calls
 * @fn(@arg) (at once when already cancelled), under the call's lock, so
 * @fn must only flag or post and must not call back into @c. After
 * aip_call_unbind_hook() returns, @fn is not running and not called. */
void aip_call_bind_hook(aiplat_call *c, void (*fn)(void *), void *arg);
void aip_call_unbind_hook(aiplat_call *c);

#endif
