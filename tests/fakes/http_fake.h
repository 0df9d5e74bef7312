/* A scriptable HTTP server for client tests: libmicrohttpd on 127.0.0.1,
 * a free port, one thread per connection.
 *
 * Each request takes the next scripted response from a queue (hf_push), or
 * asks a handler (hf_set_handler), or gets the default (a 500 saying that
 * nothing was scripted). A response can be delayed, sent in pieces split at
 * any byte offsets with pauses between them, cut off mid-body (the
 * connection is closed), or never sent (the thread waits until hf_stop).
 * Every request is recorded: method, path, headers, body, the parts of a
 * multipart/form-data body (parsed by libmicrohttpd's own parser) and the
 * TCP connection it came on.
 *
 * Stands in only for model servers that cannot run here; the bodies the
 * tests script follow those servers' documented wire formats. */
#ifndef TH_HTTP_FAKE_H
#define TH_HTTP_FAKE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hf_server hf_server;

typedef struct hf_part {
  char *name, *filename, *type;
  char *data;
  size_t len;
} hf_part;

typedef struct hf_header {
  char *name; /* lowercase */
  char *value;
} hf_header;

typedef struct hf_request {
  char *method;
  char *path;
  hf_header *headers;
  size_t nheaders;
  char *body;
  size_t body_len;
  hf_part *parts;
  size_t nparts;
  unsigned long conn_id; /* 1, 2, ... in the order connections were opened */
} hf_request;

#define HF_MAX_HEADERS 8
#define HF_MAX_SPLITS 64

typedef struct hf_response {
  int status;
  const char *content_type;            /* NULL: none */
  const char *headers[HF_MAX_HEADERS]; /* "Name: value" */
  const char *body;                    /* may hold NULs when body_len is set */
  size_t body_len;                     /* 0: strlen(body) */
  size_t split_every;                  /* > 0: pieces of this many bytes */
  size_t splits[HF_MAX_SPLITS];        /* or: pieces end at these offsets */
  size_t nsplits;
  int piece_delay_ms; /* pause before each piece after the first */
  int delay_ms;       /* pause before the status line */
  bool chunked;       /* no Content-Length (chunked encoding) */
  bool cut;           /* close the connection after cut_at body bytes */
  size_t cut_at;
  bool hang;            /* never answer */
  bool hang_after_body; /* send the body, then neither end it nor close */
} hf_response;

/* A response with status, type and body, everything else off. */
hf_response hf_resp(int status, const char *content_type, const char *body);

typedef void (*hf_handler)(const hf_request *req, hf_response *resp, void *ud);

hf_server *hf_start(void);
/* The same over TLS with a PEM certificate and key (kept by the caller
 * until hf_stop); hf_url() is then "https://127.0.0.1:PORT". */
hf_server *hf_start_tls(const char *cert_pem, const char *key_pem);
void hf_stop(hf_server *s);
int hf_port(const hf_server *s);
const char *hf_url(const hf_server *s); /* "http(s)://127.0.0.1:PORT" */

/* Queue a response (copied). */
void hf_push(hf_server *s, const hf_response *r);
/* Answer with @fn when the queue is empty; @fn fills a zeroed response
 * (status 0 means 500); its strings must stay valid until the server
 * stops or be static. */
void hf_set_handler(hf_server *s, hf_handler fn, void *ud);

size_t hf_request_count(hf_server *s);
/* Request @i (0-based), valid until hf_stop; NULL past the end. */
const hf_request *hf_request_at(hf_server *s, size_t i);
unsigned long hf_connection_count(hf_server *s);
/* Connections the server has seen closed (by either side). */
unsigned long hf_closed_count(hf_server *s);
/* Wait (at most @ms) until @n connections have closed; false on timeout. */
bool hf_wait_closed(hf_server *s, unsigned long n, int ms);
/* Wait (at most @ms) until @n requests have arrived; false on timeout. */
bool hf_wait_requests(hf_server *s, size_t n, int ms);

const char *hf_header_get(const hf_request *r, const char *name);
const hf_part *hf_part_get(const hf_request *r, const char *name);

#endif
