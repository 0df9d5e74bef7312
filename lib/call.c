/* The per-call object (include/aiplat/call.h): a deadline and a cancel
 * switch shared by the caller's thread and the execution core. */
#include <stdatomic.h>
#include <stdlib.h>

#include "aiplat/call.h"
#include "call_internal.h"
#include "config.h"

struct aiplat_call {
  pthread_mutex_t mu;
  int64_t deadline_ms; /* aip_now_ms() clock; 0: none */
  bool cancelled;
  aip_http_call *running; /* referenced while bound */
  void (*hook)(void *);   /* another kind of running call (a bus request) */
  void *hook_arg;
};

AIPLAT_API aiplat_status aiplat_call_create(aiplat_call **out) {
  if (!out) return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT, "call: NULL out");
  aiplat_call *c = calloc(1, sizeof *c);
  if (!c) return aip_fail(NULL, AIPLAT_ERR_NO_MEMORY, "call: out of memory");
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_call_destroy(aiplat_call *c) {
  if (!c) return;
  aip_http_call_release(c->running);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

AIPLAT_API aiplat_status aiplat_call_set_timeout_ms(aiplat_call *c, int64_t ms) {
  if (!c || ms <= 0 || ms > INT64_C(7) * 24 * 3600 * 1000)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "call: the timeout must be 1 ms .. 7 days");
  pthread_mutex_lock(&c->mu);
  c->deadline_ms = aip_now_ms() + ms;
  pthread_mutex_unlock(&c->mu);
  return AIPLAT_OK;
}

AIPLAT_API aiplat_status aiplat_call_set_deadline_unix_ms(aiplat_call *c,
                                                          int64_t unix_ms) {
  if (!c || unix_ms <= 0)
    return aip_fail(NULL, AIPLAT_ERR_INVALID_ARGUMENT,
                    "call: the deadline must be a positive Unix time in ms");
  /* compared before it is converted, so no value can overflow */
  int64_t now_wall = aip_wall_ms(), now = aip_now_ms();
  int64_t left = unix_ms > now_wall ? unix_ms - now_wall : 0;
  if (left > INT64_C(7) * 24 * 3600 * 1000) left = INT64_C(7) * 24 * 3600 * 1000;
  pthread_mutex_lock(&c->mu);
  c->deadline_ms = now + (left > 0 ? left : -1);
  pthread_mutex_unlock(&c->mu);
  return AIPLAT_OK;
}

AIPLAT_API void aiplat_call_cancel(aiplat_call *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->cancelled = true;
  if (c->running) aip_http_call_cancel(c->running, AIPLAT_ERR_CANCELLED);
  if (c->hook) c->hook(c->hook_arg);
  pthread_mutex_unlock(&c->mu);
}

AIPLAT_API bool aiplat_call_cancelled(const aiplat_call *c) {
  if (!c) return false;
  aiplat_call *m = (aiplat_call *)c;
  pthread_mutex_lock(&m->mu);
  bool v = m->cancelled;
  pthread_mutex_unlock(&m->mu);
  return v;
}

int64_t aip_call_deadline_ms(aiplat_call *c) {
  if (!c) return 0;
  pthread_mutex_lock(&c->mu);
  int64_t d = c->deadline_ms;
  pthread_mutex_unlock(&c->mu);
  return d;
}

void aip_call_set_deadline_ms(aiplat_call *c, int64_t deadline_ms) {
  pthread_mutex_lock(&c->mu);
  c->deadline_ms = deadline_ms;
  pthread_mutex_unlock(&c->mu);
}

void aip_call_bind(aiplat_call *c, aip_http_call *h) {
  if (!c) {
    aip_http_call_release(h);
    return;
  }
  pthread_mutex_lock(&c->mu);
  aip_http_call *old = c->running;
  c->running = h;
  if (c->cancelled) aip_http_call_cancel(h, AIPLAT_ERR_CANCELLED);
  pthread_mutex_unlock(&c->mu);
  aip_http_call_release(old);
}

void aip_call_unbind(aiplat_call *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  aip_http_call *old = c->running;
  c->running = NULL;
  pthread_mutex_unlock(&c->mu);
  aip_http_call_release(old);
}

void aip_call_bind_hook(aiplat_call *c, void (*fn)(void *), void *arg) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->hook = fn;
  c->hook_arg = arg;
  if (c->cancelled) fn(arg);
  pthread_mutex_unlock(&c->mu);
}

void aip_call_unbind_hook(aiplat_call *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->hook = NULL;
  c->hook_arg = NULL;
  pthread_mutex_unlock(&c->mu);
}
