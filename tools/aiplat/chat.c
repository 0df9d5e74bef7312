/* aiplat chat and aiplat voice. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DEFAULT_TIMEOUT_MS 60000
/* After the last chunk, how long the final reply may take to arrive. */
#define FINAL_GRACE_MS 1000

/* ---- chat: a streamed answer ---------------------------------------------
 * The request goes out with a reply inbox. Chunks (ChatChunk) arrive on
 * ai.chat.response.{id}, the final ChatResponse on the inbox (and possibly
 * on the response subject too). Both subscriptions feed one queue that the
 * main thread reads in arrival order. */

typedef struct event {
  struct event *next;
  bool final; /* from the inbox */
  bool no_responders;
  uint8_t *data;
  size_t len;
} event;

typedef struct stream {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  event *head, *tail;
} stream;

static void push(stream *s, aiplat_bus_msg *msg, bool final) {
  event *e = calloc(1, sizeof *e);
  if (!e) return;
  e->final = final;
  e->len = aiplat_bus_msg_len(msg);
  const char *status = NULL;
  if (final && e->len == 0 &&
      aiplat_bus_msg_header(msg, "Status", &status) == AIPLAT_OK && status &&
      strncmp(status, "503", 3) == 0)
    e->no_responders = true;
  aiplat_error_clear();
  if (e->len && !(e->data = malloc(e->len))) {
    free(e);
    return;
  }
  if (e->len) memcpy(e->data, aiplat_bus_msg_data(msg), e->len);
  pthread_mutex_lock(&s->mu);
  if (s->tail)
    s->tail->next = e;
  else
    s->head = e;
  s->tail = e;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void on_chunk(aiplat_bus_msg *msg, void *ud) {
  push(ud, msg, false);
}
static void on_final(aiplat_bus_msg *msg, void *ud) {
  push(ud, msg, true);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next event, or NULL when @deadline (monotonic ms) passes. */
static event *next_event(stream *s, int64_t deadline) {
  pthread_mutex_lock(&s->mu);
  while (!s->head) {
    int64_t left = deadline - now_ms();
    if (left <= 0) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  event *e = s->head;
  if (e) {
    s->head = e->next;
    if (!s->head) s->tail = NULL;
  }
  pthread_mutex_unlock(&s->mu);
  return e;
}

static void free_event(event *e) {
  if (!e) return;
  free(e->data);
  free(e);
}

typedef struct answer {
  char *printed; /* the deltas printed so far */
  size_t printed_len, printed_cap;
  bool any_delta;
} answer;

static void print_delta(answer *a, const char *d, bool json) {
  size_t n = strlen(d);
  if (!n) return;
  if (a->printed_len + n + 1 > a->printed_cap) {
    size_t cap = (a->printed_len + n + 1) * 2;
    char *p = realloc(a->printed, cap);
    if (!p) return;
    a->printed = p;
    a->printed_cap = cap;
  }
  memcpy(a->printed + a->printed_len, d, n + 1);
  a->printed_len += n;
  a->any_delta = true;
  if (!json) {
    fputs(d, stdout);
    fflush(stdout);
  }
}

/* The end of the answer from the final ChatResponse: what the chunks did
 * not print yet (or the whole text when it does not continue them). */
static void finish_text(answer *a, aiplat_msg *resp, bool json) {
  const char *text = "";
  aiplat_msg_get_string(resp, "text", &text);
  if (json) return;
  if (a->printed_len && strncmp(text, a->printed, a->printed_len) == 0)
    fputs(text + a->printed_len, stdout);
  else if (!a->printed_len)
    fputs(text, stdout);
  fputs("\n", stdout);
}

static aiplat_msg *chat_request(cli *c, const char *id) {
  aiplat_msg *m = NULL;
  if (aiplat_msg_create(&m, AIPLAT_MSG_CHAT_REQUEST) != AIPLAT_OK) return NULL;
  aiplat_status st = aiplat_msg_set_string(m, "user_id", c->user);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(m, "message", c->args[0]);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(m, "request_id", id);
  if (st == AIPLAT_OK) st = aiplat_msg_set_bool(m, "stream", true);
  if (st == AIPLAT_OK && c->no_rag)
    st = aiplat_msg_set_bool(m, "enable_rag", false);
  if (st == AIPLAT_OK && c->conversation)
    st = aiplat_msg_set_string(m, "conversation_id", c->conversation);
  if (st != AIPLAT_OK) {
    aiplat_msg_destroy(m);
    return NULL;
  }
  return m;
}

/* Read the events until the answer is complete. */
static int follow(cli *c, stream *s, const char *subject, int64_t timeout_ms) {
  answer a = {0};
  int64_t deadline = now_ms() + timeout_ms;
  aiplat_msg *done_chunk = NULL;
  int rc = -1;
  while (rc < 0) {
    event *e = next_event(s, deadline);
    if (!e) {
      if (done_chunk) { /* the chunks are complete; no final reply came */
        if (c->json) {
          cli_print_json(done_chunk, NULL);
        } else {
          fputs("\n", stdout);
          cli_print_sources(done_chunk);
        }
        rc = CLI_OK;
      } else {
        if (a.any_delta && !c->json) fputs("\n", stdout);
        rc = cli_fail(CLI_ENOREPLY, "no complete answer on %s within %lld ms",
                      subject, (long long)timeout_ms);
      }
      break;
    }
    aiplat_msg *m = NULL;
    if (e->no_responders) {
      rc = cli_fail(CLI_ENOREPLY, "no service is listening on %s", subject);
    } else if (!e->final && aiplat_msg_decode(&m, AIPLAT_MSG_CHAT_CHUNK,
                                              e->data, e->len) == AIPLAT_OK) {
      if (aiplat_msg_has(m, "error")) {
        if (a.any_delta && !c->json) fputs("\n", stdout);
        rc = cli_check_error(m, "chat");
      } else {
        const char *d = "";
        aiplat_msg_get_string(m, "delta", &d);
        print_delta(&a, d, c->json);
        bool done = false;
        aiplat_msg_get_bool(m, "done", &done);
        if (done) {
          aiplat_msg_destroy(done_chunk);
          done_chunk = m;
          m = NULL;
          int64_t grace = now_ms() + FINAL_GRACE_MS;
          if (grace < deadline) deadline = grace;
        }
      }
    } else {
      /* The final ChatResponse (on the inbox, or on the response subject). */
      aiplat_error_clear();
      if (aiplat_msg_decode(&m, AIPLAT_MSG_CHAT_RESPONSE, e->data, e->len) !=
          AIPLAT_OK) {
        char why[256];
        aiplat_error_last(why, sizeof why);
        if (e->final)
          rc = cli_fail(CLI_ESERVICE, "the answer is not a ChatResponse: %s",
                        why);
        /* else: not ours to understand; ignore it */
      } else if (aiplat_msg_has(m, "error")) {
        if (a.any_delta && !c->json) fputs("\n", stdout);
        rc = cli_check_error(m, "chat");
      } else {
        finish_text(&a, m, c->json);
        if (c->json)
          cli_print_json(m, NULL);
        else
          cli_print_sources(m);
        rc = CLI_OK;
      }
    }
    aiplat_msg_destroy(m);
    free_event(e);
  }
  aiplat_msg_destroy(done_chunk);
  free(a.printed);
  return rc;
}

int cmd_chat(cli *c) {
  if (!*c->args[0]) return cli_usage("the question is empty");
  char id[17], inbox[32];
  cli_new_id(id);
  cli_new_inbox(inbox);
  char *subject = NULL, *resp_subject = NULL;
  if (aiplat_subject_chat_user_message(&subject, c->user) != AIPLAT_OK)
    return cli_fail_last(AIPLAT_ERR_INVALID_ARGUMENT, "--user");
  aiplat_subject_chat_response(&resp_subject, id);
  int rc = cli_connect(c);
  stream s = {.head = NULL};
  pthread_mutex_init(&s.mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s.cv, &ca);
  pthread_condattr_destroy(&ca);
  aiplat_bus_sub *chunks = NULL, *final = NULL;
  aiplat_msg *req = NULL;
  uint8_t *body = NULL;
  size_t len = 0;
  if (rc == CLI_OK) {
    aiplat_status st =
        aiplat_bus_subscribe(c->bus, resp_subject, NULL, on_chunk, &s, &chunks);
    if (st == AIPLAT_OK)
      st = aiplat_bus_subscribe(c->bus, inbox, NULL, on_final, &s, &final);
    /* Subscribed on the server before the request goes out. */
    if (st == AIPLAT_OK) st = aiplat_bus_flush(c->bus, 5000);
    if (st != AIPLAT_OK) rc = cli_fail_last(st, "cannot subscribe");
  }
  if (rc == CLI_OK && (!(req = chat_request(c, id)) ||
                       aiplat_msg_encode(req, &body, &len) != AIPLAT_OK))
    rc = cli_fail_last(AIPLAT_ERR_INVALID_ARGUMENT,
                       "cannot build the ChatRequest");
  if (rc == CLI_OK) {
    /* When a stream captures the subject (a service in durable mode), the
     * request id lets JetStream drop a second copy of the request. */
    aiplat_headers *h = NULL;
    aiplat_status st = aiplat_headers_create(&h);
    if (st == AIPLAT_OK) st = aiplat_headers_set(h, "Nats-Msg-Id", id);
    if (st == AIPLAT_OK)
      st = aiplat_bus_publish_request(c->bus, subject, inbox, body, len, h);
    aiplat_headers_destroy(h);
    if (st != AIPLAT_OK) rc = cli_fail_last(st, "cannot send the request");
  }
  if (rc == CLI_OK)
    rc = follow(c, &s, subject, cli_timeout(c, DEFAULT_TIMEOUT_MS));
  aiplat_bus_sub_destroy(chunks);
  aiplat_bus_sub_destroy(final);
  for (event *e = s.head; e;) {
    event *n = e->next;
    free_event(e);
    e = n;
  }
  pthread_cond_destroy(&s.cv);
  pthread_mutex_destroy(&s.mu);
  aiplat_free(body);
  aiplat_msg_destroy(req);
  aiplat_free(subject);
  aiplat_free(resp_subject);
  return rc;
}

/* ---- voice -----------------------------------------------------------------
 */

int cmd_voice(cli *c) {
  char id[17];
  cli_new_id(id);
  char *subject = NULL;
  if (aiplat_subject_voice_user_request(&subject, c->user) != AIPLAT_OK)
    return cli_fail_last(AIPLAT_ERR_INVALID_ARGUMENT, "--user");
  uint8_t *audio = NULL;
  size_t len = 0;
  int rc = cli_read_file(c->args[0], &audio, &len);
  if (rc == CLI_OK && len == 0)
    rc = cli_fail(CLI_EUSAGE, "%s is empty", c->args[0]);
  aiplat_msg *req = NULL, *resp = NULL;
  if (rc == CLI_OK) {
    aiplat_status st = aiplat_msg_create(&req, AIPLAT_MSG_VOICE_REQUEST);
    if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "user_id", c->user);
    if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "request_id", id);
    if (st == AIPLAT_OK) st = aiplat_msg_set_bytes(req, "audio", audio, len);
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_string(
          req, "audio_format",
          c->format ? c->format : cli_audio_format(c->args[0]));
    if (st == AIPLAT_OK && c->language)
      st = aiplat_msg_set_string(req, "language", c->language);
    if (st == AIPLAT_OK && c->conversation)
      st = aiplat_msg_set_string(req, "conversation_id", c->conversation);
    if (st == AIPLAT_OK && c->no_rag)
      st = aiplat_msg_set_bool(req, "enable_rag", false);
    if (st == AIPLAT_OK && c->voice)
      st = aiplat_msg_set_string(req, "voice", c->voice);
    if (st != AIPLAT_OK)
      rc = cli_fail_last(st, "cannot build the VoiceRequest");
  }
  free(audio);
  if (rc == CLI_OK) rc = cli_connect(c);
  if (rc == CLI_OK)
    rc = cli_request(c, subject, req, AIPLAT_MSG_VOICE_RESPONSE,
                     cli_timeout(c, DEFAULT_TIMEOUT_MS), &resp);
  if (rc == CLI_OK) rc = cli_check_error(resp, "voice");
  if (rc == CLI_OK) {
    const uint8_t *out = NULL;
    size_t out_len = 0;
    const char *transcript = "", *text = "";
    aiplat_msg_get_bytes(resp, "audio", &out, &out_len);
    aiplat_msg_get_string(resp, "transcript", &transcript);
    aiplat_msg_get_string(resp, "text", &text);
    if (c->output) {
      if (out_len == 0)
        rc = cli_fail(CLI_ESERVICE, "voice: the answer has no audio");
      else
        rc = cli_write_file(c->output, out, out_len);
    }
    bool to_stdout = c->output && strcmp(c->output, "-") == 0;
    if (rc == CLI_OK && !to_stdout) {
      if (c->json) {
        cli_print_json(resp, "audio");
      } else {
        printf("Transcript: %s\nAnswer: %s\n", transcript, text);
        cli_print_sources(resp);
      }
    }
  }
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(resp);
  aiplat_free(subject);
  return rc;
}
