/* Benchmark: many chat requests at once (not part of `make check`).
 *
 *   make bench-concurrency                    N = 1 64 256 1024 4096
 *   make bench-concurrency BENCH_CONC_N="1 64 256"
 *   GO_CHAT=/tmp/aiplat-anchors/go-chat/go-chat make bench-concurrency
 *   make bench-concurrency BENCH_CONCURRENCY_ARGS='-n "1 64" -v 0'
 *
 *   bench/bench_concurrency [-n "N ..."] [-v VOICE_N] [-i MS] [-t SECONDS]
 *                           [-g GO_CHAT]
 *     -n  the burst sizes (default: BENCH_CONC_N, else 1 64 256 1024 4096)
 *     -v  the voice row's N (default: BENCH_CONC_VOICE_N, else 64; 0: none)
 *     -i  the backend's pause between streamed words (default 50 ms)
 *     -t  how long one burst may take (default: BENCH_CONC_TIMEOUT, else
 *         180 s); requests not answered by then count as errors
 *     -g  the Go reference chat service (default: GO_CHAT; none: no Go rows)
 *   Run it from the build directory with top_builddir and top_srcdir set,
 *   as the make target does. It takes about three minutes up to N = 256
 *   with the voice row; the backend must hold N connections for the
 *   larger N (each request holds one while its answer streams).
 *
 * What it starts: a nats-server (tests/harness), the local model backend
 * streaming one word every 50 ms (--stream-interval-ms 50 --no-stt), the
 * sample knowledge (examples/knowledge) in a local store, and chat-handler
 * with its default configuration: only where its servers are,
 * HEALTH_PORT=0 and LOG_LEVEL=WARNING (a request, retried, tells when it
 * serves). The soft RLIMIT_NOFILE is raised to the hard limit first; the
 * services inherit it.
 *
 * Rows: chat-handler for retrieval off and on, whole and streamed answers
 * (ChatRequest.stream: ChatChunks on ai.chat.response.{request_id}, then the
 * ChatResponse reply), each N. A row measures the solo latency (the median
 * of three requests sent one at a time), then sends N requests at once,
 * published with reply inboxes that one wildcard subscription collects. A
 * request's latency runs from its send to its reply; a streamed request
 * counts as answered only with its done chunk. Per row: solo, p50, p99,
 * max, p99/solo, the first chunk's p99 (streamed; p50 too in the JSON),
 * errors (error replies and requests not answered in time), the replier's
 * RSS before and at its peak (VmHWM reset through /proc/PID/clear_refs
 * before the burst, and VmRSS sampled every 20 ms), its threads before and
 * at their peak (sampled), and its CPU time (utime + stime) over the burst
 * divided by N; that counts in clock ticks (10 ms), so it means something
 * from tens of requests on.
 *
 * With GO_CHAT, the Go reference chat service (../shared/anchors/go-chat:
 * NATS_URL and VLLM_URL; it answers ai.chat.user.*.message, reads the LLM
 * as a stream and replies with the whole answer, no retrieval) gets the
 * retrieval-off whole-answer rows, against the same backend, after
 * chat-handler has stopped (both use the queue group "chat-handler").
 *
 * Read the whole-answer rows knowing that the local backend paces only
 * streamed answers: chat-handler asks for a whole completion when the
 * request is not streamed, and that one comes at once. The Go service
 * always streams from the backend: its rows compare with chat-handler's
 * streamed rows for the time the model takes.
 *
 * The voice row: voice-assistant (default configuration, retrieval on) and
 * a second backend with speech-to-text, N VoiceRequests at once, each a
 * WAV of the question spoken by the backend's text-to-speech. The
 * backend's speech recognition transcribes one request at a time (about
 * 1.5 s each on these machines), which bounds that row's latencies.
 *
 * Output: a table, then one JSON line per row. Everything started is
 * stopped at the end, after a failure and on SIGINT or SIGTERM; if this
 * program is killed, what it started dies with it (PR_SET_PDEATHSIG). The
 * logs are kept (and named) when a process did not start, serve or stop
 * cleanly. Exit status 0 when every row ran (the errors of a row are
 * figures), 1 when a process did not start, serve or stop cleanly, or the
 * run was interrupted. */
#include <aiplat/aiplat.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "chat_testutil.h"
#include "harness/nats_harness.h"
#include "svc_proc.h"

#define MAX_NS 16
#define MAX_ROWS (5 * MAX_NS + 1)
#define REPLY_PREFIX "bench.reply"

static const char question[] = "How often are Milvus backups taken?";
static const char spoken[] = "how often are milvus backups taken";

static volatile sig_atomic_t interrupted;
static const char *interval = "50"; /* the backend's pause between words */
static int interval_ms;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted) {
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The soft descriptor limit up to the hard one: thousands of sockets (in
 * the services too, which inherit it). */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    perror("bench_concurrency: setrlimit(RLIMIT_NOFILE)");
}

/* ---- a process, from /proc ------------------------------------------------
 */

typedef struct pstat {
  long rss_kb, hwm_kb;
  int threads;
} pstat;

static bool proc_status(pid_t pid, pstat *out) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  *out = (pstat){-1, -1, -1};
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "VmRSS: %ld", &out->rss_kb) == 1) continue;
    if (sscanf(line, "VmHWM: %ld", &out->hwm_kb) == 1) continue;
    sscanf(line, "Threads: %d", &out->threads);
  }
  fclose(f);
  return out->rss_kb >= 0 && out->threads > 0;
}

/* utime + stime in seconds, or -1. */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the name may hold spaces */
  unsigned long ut = 0, st = 0;
  if (!p ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
             &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Start VmHWM again from the current RSS (Linux 4.0 and later). */
static bool reset_hwm(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
  FILE *f = fopen(path, "w");
  if (!f) return false;
  bool ok = fputs("5", f) >= 0;
  return fclose(f) == 0 && ok;
}

/* Peak VmRSS and thread count, sampled every 20 ms. */
typedef struct sampler {
  pid_t pid;
  atomic_bool stop;
  long peak_rss_kb;
  int peak_threads;
  pthread_t th;
} sampler;

static void *sample(void *arg) {
  sampler *s = arg;
  while (!atomic_load(&s->stop)) {
    pstat p;
    if (proc_status(s->pid, &p)) {
      if (p.rss_kb > s->peak_rss_kb) s->peak_rss_kb = p.rss_kb;
      if (p.threads > s->peak_threads) s->peak_threads = p.threads;
    }
    nap_ms(20);
  }
  return NULL;
}

/* sp_alive() reaps a child that exited but keeps its pid: forget the pid
 * then, so that no signal goes to a process that may have taken it. */
static bool alive(sp_proc *p) {
  if (sp_alive(p)) return true;
  p->pid = 0;
  return false;
}

static bool failed; /* a process did not start, serve or stop cleanly */

/* ---- one burst of requests ------------------------------------------------
 */

typedef enum { IMPL_CHAT, IMPL_GO, IMPL_VOICE } impl_kind;
static const char *const impl_name[] = {"chat-handler", "go-chat",
                                        "voice-assistant"};

typedef struct slot {
  double sent, replied, first_chunk;
  int chunks;
  bool answered, ok, done_chunk;
} slot;

/* The burst in flight; the callbacks fill it under mu. */
typedef struct burst {
  int id, n, answered;
  impl_kind impl;
  bool stream;
  slot *s;
  char first_error[240];
} burst;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static burst *cur;
static int burst_seq;

static void note_error(burst *b, const char *why) {
  if (!b->first_error[0])
    snprintf(b->first_error, sizeof b->first_error, "%s", why);
}

/* A reply: decodes as the row's response type, no error, an answer. */
static bool reply_ok(impl_kind impl, aiplat_bus_msg *msg, char *why,
                     size_t len) {
  aiplat_msg *m = NULL;
  aiplat_msg_type type =
      impl == IMPL_VOICE ? AIPLAT_MSG_VOICE_RESPONSE : AIPLAT_MSG_CHAT_RESPONSE;
  if (aiplat_msg_decode(&m, type, aiplat_bus_msg_data(msg),
                        aiplat_bus_msg_len(msg)) != AIPLAT_OK) {
    snprintf(why, len, "the reply does not decode as %s",
             aiplat_msg_type_name(type));
    return false;
  }
  const char *text = "", *detail = "";
  const uint8_t *audio = NULL;
  size_t alen = 0;
  int64_t code = ct_error(m, &detail);
  aiplat_msg_get_string(m, "text", &text);
  if (impl == IMPL_VOICE) aiplat_msg_get_bytes(m, "audio", &audio, &alen);
  bool ok = false;
  if (code)
    snprintf(why, len, "error %lld: %s", (long long)code, detail);
  else if (!*text)
    snprintf(why, len, "an empty answer");
  else if (impl == IMPL_VOICE && alen == 0)
    snprintf(why, len, "a spoken answer without audio");
  else
    ok = true;
  aiplat_msg_destroy(m);
  return ok;
}

static void on_reply(aiplat_bus_msg *msg, void *ud) {
  (void)ud;
  double t = now_s();
  int id = 0, i = 0;
  if (sscanf(aiplat_bus_msg_subject(msg), REPLY_PREFIX ".%d.%d", &id, &i) != 2)
    return;
  pthread_mutex_lock(&mu);
  burst *b = cur;
  if (b && b->id == id && i >= 0 && i < b->n && !b->s[i].answered) {
    slot *s = &b->s[i];
    char why[200];
    s->answered = true;
    s->replied = t;
    s->ok = reply_ok(b->impl, msg, why, sizeof why);
    if (!s->ok) note_error(b, why);
    if (++b->answered == b->n) pthread_cond_broadcast(&cv);
  }
  pthread_mutex_unlock(&mu);
}

/* ChatChunks on ai.chat.response.b{burst}-{i}. */
static void on_chunk(aiplat_bus_msg *msg, void *ud) {
  (void)ud;
  double t = now_s();
  int id = 0, i = 0;
  const char *type = NULL;
  if (sscanf(aiplat_bus_msg_subject(msg), "ai.chat.response.b%d-%d", &id, &i) !=
          2 ||
      aiplat_bus_msg_header(msg, AIPLAT_CHAT_TYPE_HEADER, &type) != AIPLAT_OK ||
      strcmp(type, aiplat_msg_type_name(AIPLAT_MSG_CHAT_CHUNK)) != 0)
    return; /* the ChatResponse, also published there */
  aiplat_msg *m = NULL;
  bool decoded =
      aiplat_msg_decode(&m, AIPLAT_MSG_CHAT_CHUNK, aiplat_bus_msg_data(msg),
                        aiplat_bus_msg_len(msg)) == AIPLAT_OK;
  bool done = false;
  const char *detail = "";
  int64_t code = decoded ? ct_error(m, &detail) : 0;
  if (decoded) aiplat_msg_get_bool(m, "done", &done);
  pthread_mutex_lock(&mu);
  burst *b = cur;
  if (b && b->id == id && i >= 0 && i < b->n) {
    slot *s = &b->s[i];
    if (s->chunks++ == 0) s->first_chunk = t;
    if (!decoded) note_error(b, "a chunk does not decode as ChatChunk");
    if (code) {
      char why[200];
      snprintf(why, sizeof why, "chunk error %lld: %s", (long long)code,
               detail);
      note_error(b, why);
    }
    if (done) {
      s->done_chunk = true;
      pthread_cond_broadcast(&cv);
    }
  }
  pthread_mutex_unlock(&mu);
  aiplat_msg_destroy(m);
}

/* What the bench holds for the whole run. */
typedef struct bench {
  aiplat_bus *bus;
  const uint8_t *wav; /* the spoken question (voice rows) */
  size_t wav_len;
  int timeout_s;
} bench;

static uint8_t *chat_payload(bool rag, bool stream, const char *rid,
                             size_t *len) {
  ct_chat c = ct_chat_init("bench", question, rid);
  c.enable_rag = rag;
  c.stream = stream;
  return ct_chat_bytes(&c, len);
}

static uint8_t *voice_payload(const bench *B, const char *rid, size_t *len) {
  aiplat_msg *m = NULL;
  uint8_t *out = NULL;
  if (aiplat_msg_create(&m, AIPLAT_MSG_VOICE_REQUEST) != AIPLAT_OK) return NULL;
  if (aiplat_msg_set_string(m, "user_id", "bench") != AIPLAT_OK ||
      aiplat_msg_set_string(m, "request_id", rid) != AIPLAT_OK ||
      aiplat_msg_set_string(m, "audio_format", "wav") != AIPLAT_OK ||
      aiplat_msg_set_bytes(m, "audio", B->wav, B->wav_len) != AIPLAT_OK ||
      aiplat_msg_encode(m, &out, len) != AIPLAT_OK)
    out = NULL;
  aiplat_msg_destroy(m);
  return out;
}

/* One row of the table. */
typedef struct row {
  impl_kind impl;
  bool rag, stream;
  int n, ok, errors, unanswered;
  double solo, wall, send, p50, p99, max, first_p50, first_p99;
  double cpu_ms; /* per request */
  long rss_before_kb, rss_peak_kb;
  int threads_before, threads_peak;
  char first_error[240];
} row;

static double quantile(const double *v, int n, double q) {
  return v[(int)(q * (double)(n - 1))];
}

/* Fill r from the slots of a finished burst. */
static void summarise(burst *b, double t0, row *r) {
  double *lat = malloc(sizeof(double) * (size_t)b->n);
  double *first = malloc(sizeof(double) * (size_t)b->n);
  int k = 0, kf = 0;
  double last = t0;
  for (int i = 0; lat && first && i < b->n; i++) {
    slot *s = &b->s[i];
    if (!s->answered) {
      r->unanswered++;
      continue;
    }
    if (s->replied > last) last = s->replied;
    if (s->ok && b->stream && !s->done_chunk) {
      char why[120];
      snprintf(why, sizeof why, "no done chunk (%d chunks) before the reply",
               s->chunks);
      note_error(b, why);
      s->ok = false;
    }
    if (!s->ok) {
      r->errors++;
      continue;
    }
    lat[k++] = s->replied - s->sent;
    if (b->stream) first[kf++] = s->first_chunk - s->sent;
  }
  if (r->unanswered) {
    char why[120];
    snprintf(why, sizeof why, "%d not answered in time", r->unanswered);
    note_error(b, why);
  }
  r->n = b->n;
  r->ok = k;
  r->errors += r->unanswered;
  r->wall = last - t0;
  if (k) qsort(lat, (size_t)k, sizeof(double), cmp_d);
  if (kf) qsort(first, (size_t)kf, sizeof(double), cmp_d);
  r->p50 = k ? quantile(lat, k, 0.5) : -1;
  r->p99 = k ? quantile(lat, k, 0.99) : -1;
  r->max = k ? lat[k - 1] : -1;
  r->first_p50 = kf ? quantile(first, kf, 0.5) : -1;
  r->first_p99 = kf ? quantile(first, kf, 0.99) : -1;
  snprintf(r->first_error, sizeof r->first_error, "%s", b->first_error);
  free(lat);
  free(first);
}

static bool all_done(const burst *b) {
  if (b->answered < b->n) return false;
  for (int i = 0; b->stream && i < b->n; i++)
    if (b->s[i].ok && !b->s[i].done_chunk) return false;
  return true;
}

/* Wait (under mu) until every request is answered, and every streamed
 * answer's done chunk is in (10 s at most after the last reply), or the
 * deadline passes, or the replier exits. */
static void wait_burst(burst *b, sp_proc *p, double deadline) {
  pthread_mutex_lock(&mu);
  while (!all_done(b) && now_s() < deadline && !interrupted) {
    if (b->answered == b->n && deadline > now_s() + 10) deadline = now_s() + 10;
    if (!alive(p)) {
      note_error(b, "the replier exited");
      break;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&cv, &mu, &ts);
  }
  pthread_mutex_unlock(&mu);
}

/* Send n requests at once to a replier (the process p; measured when
 * measure) and fill r. False when the burst could not be sent. */
static bool run_burst(bench *B, impl_kind impl, bool rag, bool stream, int n,
                      sp_proc *p, bool measure, row *r) {
  pid_t pid = p->pid;
  memset(r, 0, sizeof *r);
  r->impl = impl, r->rag = rag, r->stream = stream;
  burst b = {.id = ++burst_seq, .n = n, .impl = impl, .stream = stream};
  uint8_t **payload = calloc((size_t)n, sizeof *payload);
  size_t *plen = calloc((size_t)n, sizeof *plen);
  b.s = calloc((size_t)n, sizeof *b.s);
  aiplat_bus_sub *chunks = NULL;
  bool ok = payload && plen && b.s;
  for (int i = 0; ok && i < n; i++) {
    char rid[48];
    snprintf(rid, sizeof rid, "b%d-%d", b.id, i);
    payload[i] = impl == IMPL_VOICE ? voice_payload(B, rid, &plen[i])
                                    : chat_payload(rag, stream, rid, &plen[i]);
    ok = payload[i] != NULL;
  }
  if (ok && stream)
    ok = aiplat_bus_subscribe(B->bus, "ai.chat.response.*", NULL, on_chunk,
                              NULL, &chunks) == AIPLAT_OK &&
         aiplat_bus_flush(B->bus, 10000) == AIPLAT_OK;
  if (!ok) {
    fprintf(stderr, "bench_concurrency: cannot prepare %d requests\n", n);
    goto out;
  }
  const char *subject = impl == IMPL_VOICE ? "ai.voice.user.bench.request"
                                           : "ai.chat.user.bench.message";
  pstat before = {0}, after = {0};
  double cpu0 = -1;
  bool hwm = false;
  sampler smp = {.pid = pid};
  if (measure) {
    proc_status(pid, &before);
    smp.peak_rss_kb = before.rss_kb;
    smp.peak_threads = before.threads;
    hwm = reset_hwm(pid);
    cpu0 = proc_cpu_s(pid);
    if (pthread_create(&smp.th, NULL, sample, &smp) != 0) measure = false;
  }
  pthread_mutex_lock(&mu);
  cur = &b;
  pthread_mutex_unlock(&mu);
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    char inbox[64];
    snprintf(inbox, sizeof inbox, REPLY_PREFIX ".%d.%d", b.id, i);
    b.s[i].sent = now_s();
    if (aiplat_bus_publish_request(B->bus, subject, inbox, payload[i], plen[i],
                                   NULL) != AIPLAT_OK) {
      char why[200], detail[160];
      aiplat_error_last(detail, sizeof detail);
      snprintf(why, sizeof why, "publish: %s", detail);
      pthread_mutex_lock(&mu);
      note_error(&b, why);
      b.s[i].answered = true; /* not ok */
      b.s[i].replied = now_s();
      b.answered++;
      pthread_mutex_unlock(&mu);
    }
  }
  aiplat_bus_flush(B->bus, 30000);
  r->send = now_s() - t0;
  wait_burst(&b, p, t0 + B->timeout_s);
  pthread_mutex_lock(&mu);
  cur = NULL; /* late messages are dropped from here on */
  pthread_mutex_unlock(&mu);
  if (measure) {
    double cpu1 = proc_cpu_s(pid);
    proc_status(pid, &after);
    atomic_store(&smp.stop, true);
    pthread_join(smp.th, NULL);
    r->rss_before_kb = before.rss_kb;
    r->rss_peak_kb = smp.peak_rss_kb;
    if (hwm && after.hwm_kb > r->rss_peak_kb) r->rss_peak_kb = after.hwm_kb;
    r->threads_before = before.threads;
    r->threads_peak = smp.peak_threads;
    r->cpu_ms = cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) * 1e3 / n : -1;
  }
  summarise(&b, t0, r);
  if (chunks && aiplat_bus_sub_dropped_count(chunks) > 0)
    fprintf(stderr,
            "bench_concurrency: this program dropped %llu chunks (slow)\n",
            (unsigned long long)aiplat_bus_sub_dropped_count(chunks));
out:
  if (chunks) aiplat_bus_sub_drain(chunks, 5000);
  aiplat_bus_sub_destroy(chunks);
  for (int i = 0; payload && i < n; i++) aiplat_free(payload[i]);
  free(payload);
  free(plen);
  free(b.s);
  return ok;
}

/* ---- the table --------------------------------------------------------------
 */

static row rows[MAX_ROWS];
static int n_rows;

static void print_header(void) {
  printf("%-15s %-3s %-6s %5s %5s %5s %8s %8s %8s %8s %8s %8s %15s %9s %7s\n",
         "replier", "rag", "answer", "N", "ok", "err", "solo ms", "p50 ms",
         "p99 ms", "max ms", "p99/solo", "1st p99", "RSS MB bef/peak",
         "thr b/pk", "CPU ms");
}

/* Milliseconds, or "-" for none. */
static void fmt_ms(char *buf, size_t len, double s) {
  if (s < 0)
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%.1f", s * 1e3);
}

static void print_row(const row *r) {
  char solo[16], p50[16], p99[16], max[16], ratio[16], first[16], rss[32],
      thr[24], cpu[16];
  fmt_ms(solo, sizeof solo, r->solo);
  fmt_ms(p50, sizeof p50, r->p50);
  fmt_ms(p99, sizeof p99, r->p99);
  fmt_ms(max, sizeof max, r->max);
  fmt_ms(first, sizeof first, r->first_p99);
  if (r->p99 >= 0 && r->solo > 0)
    snprintf(ratio, sizeof ratio, "%.2f", r->p99 / r->solo);
  else
    snprintf(ratio, sizeof ratio, "-");
  snprintf(rss, sizeof rss, "%.1f/%.1f", (double)r->rss_before_kb / 1024,
           (double)r->rss_peak_kb / 1024);
  snprintf(thr, sizeof thr, "%d/%d", r->threads_before, r->threads_peak);
  if (r->cpu_ms >= 0)
    snprintf(cpu, sizeof cpu, "%.2f", r->cpu_ms);
  else
    snprintf(cpu, sizeof cpu, "-");
  printf("%-15s %-3s %-6s %5d %5d %5d %8s %8s %8s %8s %8s %8s %15s %9s %7s\n",
         impl_name[r->impl], r->rag ? "on" : "off",
         r->impl == IMPL_VOICE ? "voice"
         : r->stream           ? "stream"
                               : "whole",
         r->n, r->ok, r->errors, solo, p50, p99, max, ratio, first, rss, thr,
         cpu);
  if (r->first_error[0]) printf("    first error: %s\n", r->first_error);
  fflush(stdout);
}

static json_t *num_or_null(double v) {
  return v < 0 ? json_null() : json_real(v);
}

static void print_json(const row *r) {
  json_t *o = json_object();
  json_object_set_new(o, "bench", json_string("concurrency"));
  json_object_set_new(o, "impl", json_string(impl_name[r->impl]));
  json_object_set_new(o, "retrieval", json_boolean(r->rag));
  json_object_set_new(o, "answer",
                      json_string(r->impl == IMPL_VOICE ? "voice"
                                  : r->stream           ? "stream"
                                                        : "whole"));
  json_object_set_new(o, "n", json_integer(r->n));
  json_object_set_new(o, "stream_interval_ms", json_integer(interval_ms));
  json_object_set_new(o, "ok", json_integer(r->ok));
  json_object_set_new(o, "errors", json_integer(r->errors));
  json_object_set_new(o, "unanswered", json_integer(r->unanswered));
  json_object_set_new(o, "first_error", json_string(r->first_error));
  json_object_set_new(o, "solo_s", num_or_null(r->solo));
  json_object_set_new(o, "send_s", json_real(r->send));
  json_object_set_new(o, "wall_s", json_real(r->wall));
  json_object_set_new(o, "p50_s", num_or_null(r->p50));
  json_object_set_new(o, "p99_s", num_or_null(r->p99));
  json_object_set_new(o, "max_s", num_or_null(r->max));
  json_object_set_new(
      o, "p99_over_solo",
      r->p99 >= 0 && r->solo > 0 ? json_real(r->p99 / r->solo) : json_null());
  json_object_set_new(o, "first_chunk_p50_s", num_or_null(r->first_p50));
  json_object_set_new(o, "first_chunk_p99_s", num_or_null(r->first_p99));
  json_object_set_new(o, "rss_before_kb", json_integer(r->rss_before_kb));
  json_object_set_new(o, "peak_rss_kb", json_integer(r->rss_peak_kb));
  json_object_set_new(o, "threads_before", json_integer(r->threads_before));
  json_object_set_new(o, "peak_threads", json_integer(r->threads_peak));
  json_object_set_new(o, "cpu_ms_per_request", num_or_null(r->cpu_ms));
  char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
  if (s) printf("%s\n", s);
  free(s);
  json_decref(o);
}

/* The solo latency: the median of three requests sent one at a time; -1
 * (and why in *r) when one fails. */
static double solo_latency(bench *B, impl_kind impl, bool rag, bool stream,
                           sp_proc *p, row *r) {
  double v[3];
  for (int i = 0; i < 3; i++) {
    row one;
    if (!run_burst(B, impl, rag, stream, 1, p, false, &one) || one.ok != 1) {
      snprintf(r->first_error, sizeof r->first_error,
               "the solo request: %.200s", one.first_error);
      return -1;
    }
    v[i] = one.p50;
  }
  qsort(v, 3, sizeof(double), cmp_d);
  return v[1];
}

/* The solo latency, then the burst: one row. False when the replier is
 * gone (the rest of its rows are skipped). */
static bool measure_row(bench *B, impl_kind impl, bool rag, bool stream, int n,
                        sp_proc *p) {
  if (interrupted || n_rows == MAX_ROWS) return false;
  if (!alive(p)) {
    fprintf(stderr, "bench_concurrency: %s exited (log %s)\n", impl_name[impl],
            p->log);
    failed = true;
    return false;
  }
  row *r = &rows[n_rows];
  *r = (row){.impl = impl,
             .rag = rag,
             .stream = stream,
             .n = n,
             .p50 = -1,
             .p99 = -1,
             .max = -1,
             .first_p50 = -1,
             .first_p99 = -1,
             .cpu_ms = -1,
             .errors = n};
  double solo = solo_latency(B, impl, rag, stream, p, r);
  if (interrupted) return false;
  if (solo >= 0) {
    nap_ms(200); /* its connections and buffers settle */
    if (!run_burst(B, impl, rag, stream, n, p, true, r) || interrupted)
      return false;
  }
  r->solo = solo;
  print_row(r);
  n_rows++;
  nap_ms(500);
  return true;
}

/* ---- the processes ----------------------------------------------------------
 */

static char dir[64];
static th_nats *nats;
static sp_proc backend, voice_backend, chat, go, voice;

/* The local backend, streaming a word every `interval` ms: --port 0, its
 * port from a file, then /health. */
static bool start_backend(sp_proc *p, const char *name, bool stt, char *url,
                          size_t urllen) {
  char bin[1024], port_file[128], log[128];
  sp_path("tools/model-backend/aiplat-model-backend", bin, sizeof bin);
  snprintf(port_file, sizeof port_file, "%s/%s.port", dir, name);
  snprintf(log, sizeof log, "%s/%s.log", dir, name);
  const char *env[] = {"LOG_LEVEL=WARNING", NULL};
  const char *args[] = {"--port",
                        "0",
                        "--port-file",
                        port_file,
                        "--stream-interval-ms",
                        interval,
                        stt ? NULL : "--no-stt",
                        NULL};
  if (!sp_start(p, bin, env, log, args)) return false;
  int port = 0;
  for (double until = now_s() + 60;
       !port && now_s() < until && alive(p) && !interrupted;) {
    FILE *f = fopen(port_file, "r");
    if (f) {
      if (fscanf(f, "%d", &port) != 1) port = 0;
      fclose(f);
    }
    if (!port) nap_ms(50);
  }
  for (double until = now_s() + 120;
       port && now_s() < until && alive(p) && !interrupted; nap_ms(100))
    if (sp_http_get(port, "/health", NULL) == 200) {
      snprintf(url, urllen, "http://127.0.0.1:%d", port);
      return true;
    }
  fprintf(stderr, "bench_concurrency: the %s backend did not start (log %s)\n",
          name, log);
  failed = true;
  return false;
}

static bool start_proc(sp_proc *p, const char *bin, const char *const *env,
                       const char *name) {
  char log[160];
  snprintf(log, sizeof log, "%s/%s.log", dir, name);
  if (sp_start(p, bin, env, log, NULL)) return true;
  fprintf(stderr, "bench_concurrency: cannot start %s\n", bin);
  return false;
}

/* A replier serves once a request gets an answer (with LOG_LEVEL=WARNING
 * nothing is logged at start; the Go service logs its own way). */
static bool wait_serving(bench *B, sp_proc *p, impl_kind impl,
                         const char *name) {
  size_t len = 0;
  uint8_t *req = impl == IMPL_VOICE ? voice_payload(B, "warm", &len)
                                    : chat_payload(false, false, "warm", &len);
  const char *subject = impl == IMPL_VOICE ? "ai.voice.user.bench.request"
                                           : "ai.chat.user.bench.message";
  bool ok = false;
  for (double until = now_s() + 60;
       req && !ok && now_s() < until && alive(p) && !interrupted;) {
    aiplat_bus_msg *reply = NULL;
    aiplat_status st =
        aiplat_bus_request(B->bus, subject, req, len, NULL, 60000, &reply);
    char why[200];
    ok = st == AIPLAT_OK && reply_ok(impl, reply, why, sizeof why);
    aiplat_bus_msg_destroy(reply);
    if (!ok) nap_ms(100);
  }
  aiplat_free(req);
  failed |= !ok;
  if (!ok)
    fprintf(stderr, "bench_concurrency: %s does not answer (log %s)\n", name,
            p->log);
  return ok;
}

static void stop(sp_proc *p, const char *name) {
  if (p->pid <= 0) return;
  int st = sp_stop(p, SIGTERM, 20000);
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr,
            "bench_concurrency: %s did not stop cleanly (wait status %d; "
            "log %s)\n",
            name, st, p->log);
    failed = true;
  }
}

/* The speech-to-text backend, voice-assistant and the spoken question. */
static void voice_rows(bench *B, const char *store, int n) {
  char url[64], e_nats[128], e_vllm[128], e_emb[128], e_stt[128], e_tts[128],
      e_store[200], bin[1024];
  if (!start_backend(&voice_backend, "voice-backend", true, url, sizeof url))
    return;
  bkc_proc bp = {0};
  snprintf(bp.base, sizeof bp.base, "%s", url);
  char json[256];
  snprintf(json, sizeof json,
           "{\"model\":\"tts-1\",\"input\":\"%s\",\"response_format\":\"wav\"}",
           spoken);
  bkc_resp tts = bkc_post_json(&bp, "/v1/audio/speech", json, NULL);
  if (tts.status != 200 || tts.len < 44 || memcmp(tts.body, "RIFF", 4) != 0) {
    fprintf(stderr, "bench_concurrency: no spoken question (HTTP %ld)\n",
            tts.status);
    bkc_resp_free(&tts);
    stop(&voice_backend, "the voice backend");
    failed = true;
    return;
  }
  B->wav = (const uint8_t *)tts.body;
  B->wav_len = tts.len;
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", url);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", url);
  snprintf(e_stt, sizeof e_stt, "STT_URL=%s", url);
  snprintf(e_tts, sizeof e_tts, "TTS_URL=%s", url);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s", store);
  const char *env[] = {e_nats,
                       e_vllm,
                       e_emb,
                       e_stt,
                       e_tts,
                       e_store,
                       "VECTOR_STORE=local",
                       "LOG_LEVEL=WARNING",
                       NULL};
  sp_path("services/voice-assistant/voice-assistant", bin, sizeof bin);
  failed |= !start_proc(&voice, bin, env, "voice-assistant");
  if (voice.pid > 0 && wait_serving(B, &voice, IMPL_VOICE, "voice-assistant"))
    measure_row(B, IMPL_VOICE, true, false, n, &voice);
  stop(&voice, "voice-assistant");
  stop(&voice_backend, "the voice backend");
  B->wav = NULL;
  bkc_resp_free(&tts);
}

/* ---- main -------------------------------------------------------------------
 */

static int parse_ns(const char *s, int *ns) {
  int k = 0;
  char *copy = strdup(s), *save = NULL;
  for (char *t = copy ? strtok_r(copy, " ,", &save) : NULL; t && k < MAX_NS;
       t = strtok_r(NULL, " ,", &save)) {
    char *end;
    long v = strtol(t, &end, 10);
    if (*end || v < 1 || v > 100000) {
      k = -1;
      break;
    }
    ns[k++] = (int)v;
  }
  free(copy);
  return k;
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

int main(int argc, char **argv) {
  const char *n_list = env_or("BENCH_CONC_N", "1 64 256 1024 4096");
  const char *go_bin = env_or("GO_CHAT", NULL);
  int voice_n = atoi(env_or("BENCH_CONC_VOICE_N", "64"));
  int timeout_s = atoi(env_or("BENCH_CONC_TIMEOUT", "180"));
  for (int o; (o = getopt(argc, argv, "n:v:i:t:g:")) != -1;) {
    if (o == 'n')
      n_list = optarg;
    else if (o == 'v')
      voice_n = atoi(optarg);
    else if (o == 'i')
      interval = optarg;
    else if (o == 't')
      timeout_s = atoi(optarg);
    else if (o == 'g')
      go_bin = optarg;
    else
      return fprintf(stderr,
                     "usage: bench_concurrency [-n \"N ...\"] [-v VOICE_N] "
                     "[-i MS] [-t SECONDS] [-g GO_CHAT]\n"),
             2;
  }
  int ns[MAX_NS], n_ns = parse_ns(n_list, ns);
  interval_ms = atoi(interval);
  if (n_ns <= 0 || voice_n < 0 || timeout_s < 1 || interval_ms < 0)
    return fprintf(stderr, "bench_concurrency: bad -n, -v, -i or -t\n"), 2;
  if (go_bin && access(go_bin, X_OK) != 0)
    return fprintf(stderr, "bench_concurrency: GO_CHAT=%s: %s\n", go_bin,
                   strerror(errno)),
           2;

  raise_nofile();
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  setenv("LOG_LEVEL", "WARNING", 1); /* this program's own clients */
  curl_global_init(CURL_GLOBAL_DEFAULT);

  int rc = 1;
  bench B = {.timeout_s = timeout_s};
  aiplat_bus_sub *replies = NULL;
  char url[64], store[128], e_nats[128], e_vllm[128], e_emb[128], e_store[200],
      bin[1024];
  snprintf(dir, sizeof dir, "/tmp/aiplat-bench-conc-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("bench_concurrency: mkdtemp");
    dir[0] = '\0';
    goto out;
  }
  if (!(nats = th_nats_start(NULL)) ||
      !start_backend(&backend, "backend", false, url, sizeof url))
    goto out;
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
  size_t passages = ct_ingest_knowledge(store, url);
  if (!passages) goto out;
  if (!(B.bus = ct_bus(th_nats_url(nats))) ||
      aiplat_bus_subscribe(B.bus, REPLY_PREFIX ".>", NULL, on_reply, NULL,
                           &replies) != AIPLAT_OK ||
      aiplat_bus_flush(B.bus, 10000) != AIPLAT_OK) {
    fprintf(stderr, "bench_concurrency: cannot connect to nats-server\n");
    goto out;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  printf(
      "bench_concurrency: the local backend streaming a word every %s ms, "
      "%zu passages, %ld cores, RLIMIT_NOFILE %llu; N = %s\n"
      "latencies from each request's send to its reply; RSS, threads and "
      "CPU time (per request) of the replier\n\n",
      interval, passages, sysconf(_SC_NPROCESSORS_ONLN),
      (unsigned long long)rl.rlim_cur, n_list);
  print_header();

  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", url);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", url);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s", store);
  const char *chat_env[] = {
      e_nats, e_vllm, e_emb, e_store, "VECTOR_STORE=local", "LOG_LEVEL=WARNING",
      NULL};
  sp_path("services/chat-handler/chat-handler", bin, sizeof bin);
  if (!start_proc(&chat, bin, chat_env, "chat-handler") ||
      !wait_serving(&B, &chat, IMPL_CHAT, "chat-handler"))
    goto out;
  bool up = true;
  for (int rag = 0; up && rag < 2; rag++)
    for (int stream = 0; up && stream < 2; stream++)
      for (int i = 0; up && i < n_ns; i++)
        up = measure_row(&B, IMPL_CHAT, rag, stream, ns[i], &chat);
  stop(&chat, "chat-handler");

  if (go_bin && !interrupted) {
    const char *go_env[] = {e_nats, e_vllm, NULL};
    failed |= !start_proc(&go, go_bin, go_env, "go-chat");
    if (go.pid > 0 && wait_serving(&B, &go, IMPL_GO, "go-chat"))
      for (int i = 0, up_go = 1; up_go && i < n_ns; i++)
        up_go = measure_row(&B, IMPL_GO, false, false, ns[i], &go);
    stop(&go, "go-chat");
  }

  if (voice_n > 0 && !interrupted) voice_rows(&B, store, voice_n);

  printf("\n");
  for (int i = 0; i < n_rows; i++) print_json(&rows[i]);
  rc = interrupted || failed ? 1 : 0;
out:
  stop(&chat, "chat-handler");
  stop(&go, "go-chat");
  stop(&voice, "voice-assistant");
  stop(&backend, "the backend");
  stop(&voice_backend, "the voice backend");
  if (replies) aiplat_bus_sub_drain(replies, 5000);
  aiplat_bus_sub_destroy(replies);
  aiplat_bus_destroy(B.bus);
  th_nats_stop(nats);
  if (dir[0] && failed) {
    fprintf(stderr, "bench_concurrency: the logs are in %s\n", dir);
  } else if (dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
  }
  curl_global_cleanup();
  return rc;
}
