/* Shared by the chat and voice end-to-end tests and the chat benchmark:
 * the knowledge base in a local store, ChatRequest bytes, and a collector
 * of what arrives on a response subject. */
#ifndef TESTS_CHAT_TESTUTIL_H
#define TESTS_CHAT_TESTUTIL_H

#include <aiplat/aiplat.h>
#include <pthread.h>

/* Ingest every .md file of $top_srcdir/examples/knowledge into a new local
 * vector store at store_path, embedded by the server at embeddings_url.
 * Returns the number of passages, 0 on failure (reason on stderr). */
size_t ct_ingest_knowledge(const char *store_path, const char *embeddings_url);
/* The same for the .md files of dir. */
size_t ct_ingest_dir(const char *dir, const char *store_path,
                     const char *embeddings_url);

/* A ChatRequest; NULL strings and negative numbers are left absent. */
typedef struct ct_chat {
  const char *user_id, *message, *request_id, *conversation_id, *model;
  int enable_rag; /* -1 absent, 0 false, 1 true */
  bool stream;
  double temperature;    /* < 0: absent */
  int max_tokens, top_k; /* < 0: absent */
} ct_chat;

/* Defaults: every optional field absent. */
ct_chat ct_chat_init(const char *user_id, const char *message,
                     const char *request_id);

/* Encoded ChatRequest (aiplat_free()). */
uint8_t *ct_chat_bytes(const ct_chat *c, size_t *len);

/* One message received on a subscription. */
typedef struct ct_got {
  char *type; /* Aiplat-Message-Type header, or NULL */
  uint8_t *data;
  size_t len;
} ct_got;

/* Collects every message of a subscription. */
typedef struct ct_collector {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ct_got *v;
  size_t n, cap;
  aiplat_bus_sub *sub;
} ct_collector;

/* Subscribe `subject` into c (flushes, so publishes after it are seen). */
bool ct_collect(ct_collector *c, aiplat_bus *bus, const char *subject);
/* Wait until c holds at least n messages or timeout_ms passes. */
bool ct_wait(ct_collector *c, size_t n, int timeout_ms);
/* Wait until c holds a message of type `type` (full name); its index or -1. */
long ct_wait_type(ct_collector *c, const char *type, int timeout_ms);
void ct_collector_free(ct_collector *c);

/* Connect a client bus to url. */
aiplat_bus *ct_bus(const char *url);

/* The reply to a request, decoded as `type` (NULL on timeout or decode
 * failure; *st gets the bus status). */
aiplat_msg *ct_request(aiplat_bus *bus, const char *subject, const void *data,
                       size_t len, aiplat_msg_type type, int timeout_ms,
                       aiplat_status *st);

/* The error code of a reply (0 when it has no error), and its message. */
int64_t ct_error(aiplat_msg *reply, const char **message);

#endif
