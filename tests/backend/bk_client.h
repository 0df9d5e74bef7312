/* Helpers of the local model backend's integration test: start and stop the
 * backend binary, HTTP calls through libcurl, WAV building, SSE parsing and
 * word error rate. */
#ifndef BK_CLIENT_H
#define BK_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the backend process ------------------------------------------------- */

typedef struct bkc_proc {
  pid_t pid;
  int port;
  char dir[64];  /* temporary directory (port file, stdout) */
  char base[64]; /* http://127.0.0.1:PORT */
  bool under_valgrind;
} bkc_proc;

/* Path of the built backend binary (from $top_builddir). */
const char *bkc_binary(void);

/* True when this test program itself runs under valgrind. */
bool bkc_running_under_valgrind(void);

/* Start the backend with --port 0 --port-file plus args (NULL-terminated),
 * optionally under valgrind; wait for the port file (not for readiness).
 * Returns false with a message on stderr. */
bool bkc_start(bkc_proc *p, const char *const *args, bool valgrind);

/* Wait until GET /health answers 200; false after timeout_ms. */
bool bkc_wait_ready(bkc_proc *p, int timeout_ms);

/* Send sig, wait up to timeout_ms for the exit; returns the wait status,
 * or -1 when it did not exit (then it is killed). */
int bkc_stop(bkc_proc *p, int sig, int timeout_ms);

/* Content of the process's stdout so far (malloc'd). */
char *bkc_stdout(bkc_proc *p);

/* ---- HTTP -----------------------------------------------------------------
 */

typedef struct bkc_resp {
  CURLcode rc;
  long status;
  char *body; /* NUL-terminated (binary bodies too; len tells) */
  size_t len;
  char *headers; /* raw response headers */
  double seconds;
} bkc_resp;

void bkc_resp_free(bkc_resp *r);

/* A header's value from a response (copied into buf), or NULL. */
const char *bkc_header(const bkc_resp *r, const char *name, char *buf,
                       size_t len);

/* POST body with Content-Type ctype; extra headers NULL-terminated. */
bkc_resp bkc_post(const bkc_proc *p, const char *path, const char *ctype,
                  const void *body, size_t len, const char *const *headers);
bkc_resp bkc_post_json(const bkc_proc *p, const char *path, const char *json,
                       const char *fault);
bkc_resp bkc_get(const bkc_proc *p, const char *path,
                 const char *const *headers);
/* multipart/form-data with a "file" part and name/value pairs (NULL-ended). */
bkc_resp bkc_post_form(const bkc_proc *p, const char *path, const void *file,
                       size_t file_len, const char *const *fields);

/* Parse a JSON body, failing the test when it does not parse. */
json_t *bkc_json(const bkc_resp *r);

/* ---- audio ------------------------------------------------------------------
 */

/* A WAV file in memory: header fields chosen freely (for bad files too). */
uint8_t *bkc_wav(const int16_t *samples, size_t frames, unsigned channels,
                 unsigned rate, unsigned bits, unsigned tag, size_t *len);

/* Mono 16-bit samples of a 16-bit PCM WAV body (malloc'd), or NULL. */
int16_t *bkc_wav_samples(const void *wav, size_t len, unsigned *rate,
                         size_t *n);

/* Read a whole file (malloc'd), or NULL. */
uint8_t *bkc_read_file(const char *path, size_t *len);

/* ---- text
 * -------------------------------------------------------------------- */

/* Word error rate helper: edit distance between the word sequences of ref
 * and hyp (lowercased, punctuation dropped); *ref_words gets the count. */
size_t bkc_word_errors(const char *ref, const char *hyp, size_t *ref_words);

/* Split an SSE body into its data payloads (strict: every event must be
 * "data: ...\n\n"); false when the framing is wrong. */
bool bkc_sse_events(const char *body, size_t len, char ***events, size_t *n);
void bkc_sse_free(char **events, size_t n);

#endif
