/* Fault injection for the local model backend: the grammar of a fault
 * specification and the table behind one-shot ("fail the first N") faults.
 *
 * A specification is a list of items separated by ';', ',', '&' or blanks;
 * each item is NAME or NAME=VALUE:
 *
 *   delay=MS          wait MS milliseconds (0..60000) before answering
 *   status=CODE       answer CODE (400..599) with an OpenAI-shaped error body
 *   retry_after=S     add "Retry-After: S" (0..86400) to the answer
 *   malformed         a 200 whose JSON body does not parse (in a stream: one
 *                     event whose JSON does not parse, the rest intact)
 *   truncate=BYTES    send BYTES of the body then close the connection; the
 *                     Content-Length (when there is one) promises the whole
 *   cut[=EVENTS]      streams: close after EVENTS events (half of them when
 *                     no value), without [DONE]; other bodies: close after
 *                     half of the body
 *   split=BYTES       write the body BYTES (1..65536) at a time, each write
 *                     its own HTTP chunk, pausing between writes (see
 *                     interval; 2 ms unless given)
 *   interval=MS       pause MS (0..10000) between writes of the body
 *   stream_error=EVENTS  streams: after EVENTS events send an error event
 *                     ({"error":{...}}) then [DONE]
 *   fail_first=N      with key=K: the first N (1..1000) requests carrying the
 *                     same key get the other faults of the list (a 503 when
 *                     the list has no status, malformed, truncate, cut or
 *                     stream_error); later ones get none
 *   key=K             names a fail_first counter (1..128 of [A-Za-z0-9._:-])
 *
 * Unknown names and values out of range are errors (the request gets a 400
 * naming the item), so that a typo never passes silently.
 */
#ifndef BK_FAULT_H
#define BK_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#define BK_FAULT_KEY_MAX 128
#define BK_CUT_HALF (-2L)

typedef struct bk_fault {
  bool any;        /* some item was given */
  int delay_ms;    /* 0 none */
  int status;      /* 0 none */
  int retry_after; /* -1 none */
  bool malformed;
  long truncate;     /* -1 none */
  long cut;          /* -1 none, BK_CUT_HALF: half of the events */
  int split;         /* 0 none */
  int interval_ms;   /* -1 unset */
  long stream_error; /* -1 none */
  int fail_first;    /* 0 none */
  char key[BK_FAULT_KEY_MAX + 1];
} bk_fault;

void bk_fault_init(bk_fault *f);

/* Apply one item; false with a message in err when it is not valid. */
bool bk_fault_set(bk_fault *f, const char *name, const char *value, char *err,
                  size_t errlen);

/* Apply every item of a specification (see above). */
bool bk_fault_parse(bk_fault *f, const char *spec, char *err, size_t errlen);

/* True when name is one of the item names above. */
bool bk_fault_is_name(const char *name);

/* After parsing: check combinations (fail_first needs key). */
bool bk_fault_check(const bk_fault *f, char *err, size_t errlen);

/* True when the list holds a fault that changes the answer itself (status,
 * malformed, truncate, cut, stream_error). */
bool bk_fault_has_failure(const bk_fault *f);

/* Counters of fail_first keys, shared by all requests (thread-safe). */
typedef struct bk_oneshot bk_oneshot;

bk_oneshot *bk_oneshot_create(void);
void bk_oneshot_destroy(bk_oneshot *t);

/* Count one request under key; true while it is among the first n. The
 * table keeps at most 4096 keys and forgets the oldest beyond. */
bool bk_oneshot_take(bk_oneshot *t, const char *key, int n);

#endif
