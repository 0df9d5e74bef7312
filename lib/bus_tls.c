/* A guard against a crash at exit with nats.c 3.4.1 and OpenSSL >= 1.1.
 *
 * When nats.c has used TLS, its exit handler calls
 * sk_SSL_COMP_free(SSL_COMP_get_compression_methods()), freeing a stack that
 * OpenSSL still owns; OpenSSL's own exit handler frees it again and the
 * process crashes in OPENSSL_cleanup(). It happens whenever OpenSSL was
 * initialised before nats.c, as libcurl does in aiplat_init(). Our handler,
 * registered after nats.c's and so run before it, takes the stack out of
 * OpenSSL's hands and frees it once: both later calls then see NULL. */
#include "config.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>

#include "bus_internal.h"

static void free_comp(SSL_COMP *c) {
  OPENSSL_free(c);
}

static void release_compression_methods(void) {
  /* Make sure OpenSSL's lazy load has happened, so it cannot run later and
   * hand nats.c a fresh stack behind OpenSSL's back. */
  (void)SSL_COMP_get_compression_methods();
  STACK_OF(SSL_COMP) *old = SSL_COMP_set0_compression_methods(NULL);
  sk_SSL_COMP_pop_free(old, free_comp);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_guard(void) {
  atexit(release_compression_methods);
}

void aip_bus_tls_exit_guard(void) {
  pthread_once(&once, register_guard);
}
