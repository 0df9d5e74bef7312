/* aiplat chat and aiplat voice. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_TIMEOUT_MS 60000

/* ---- chat: a streamed answer ---------------------------------------------
 * The request goes out through the client (aiplat/client.h) with a stream:
 * ChatChunk messages on ai.chat.response.{id} are printed as they come, in
 * order, then the final ChatResponse ends the call. */

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

typedef struct chat_state {
  cli *c;
  answer a;
  aiplat_msg *done_chunk; /* the last chunk, once it came */
} chat_state;

/* On a thread of the bus, in order, while the main thread waits. */
static bool on_chunk(aiplat_msg *chunk, void *ud) {
  chat_state *cs = ud;
  const char *d = "";
  aiplat_msg_get_string(chunk, "delta", &d);
  print_delta(&cs->a, d, cs->c->json);
  bool done = false;
  aiplat_msg_get_bool(chunk, "done", &done);
  if (done && !cs->done_chunk) aiplat_msg_copy(&cs->done_chunk, chunk);
  return true;
}

int cmd_chat(cli *c) {
  if (!*c->args[0]) return cli_usage("the question is empty");
  char id[17];
  cli_new_id(id);
  char *subject = NULL;
  if (aiplat_subject_chat_user_message(&subject, c->user) != AIPLAT_OK)
    return cli_fail_last(AIPLAT_ERR_INVALID_ARGUMENT, "--user");
  int64_t timeout_ms = cli_timeout(c, DEFAULT_TIMEOUT_MS);
  chat_state cs = {.c = c};
  aiplat_msg *req = NULL, *resp = NULL;
  aiplat_client_options *o = NULL;
  int rc = cli_connect(c);
  if (rc == CLI_OK && !(req = chat_request(c, id)))
    rc = cli_fail_last(AIPLAT_ERR_INVALID_ARGUMENT, "cannot build the ChatRequest");
  if (rc == CLI_OK) {
    /* When a stream captures the subject (a service in durable mode), the
     * request id (Nats-Msg-Id) lets JetStream drop a second copy. */
    aiplat_status st = aiplat_client_options_create(&o);
    if (st == AIPLAT_OK) st = aiplat_client_options_set_timeout_ms(o, timeout_ms);
    if (st == AIPLAT_OK) st = aiplat_client_options_set_dedup(o, true);
    if (st == AIPLAT_OK)
      st = aiplat_client_options_set_stream(o, NULL, AIPLAT_MSG_CHAT_CHUNK, on_chunk, &cs);
    if (st != AIPLAT_OK) rc = cli_fail_last(st, "bad request options");
  }
  if (rc == CLI_OK) {
    aiplat_status st =
        aiplat_client_request(c->client, subject, req, AIPLAT_MSG_CHAT_RESPONSE, o, &resp);
    if (resp && st != AIPLAT_OK) { /* an error reply */
      if (cs.a.any_delta && !c->json) fputs("\n", stdout);
      rc = cli_check_error(resp, "chat");
    } else if (st == AIPLAT_OK) {
      finish_text(&cs.a, resp, c->json);
      if (c->json)
        cli_print_json(resp, NULL);
      else
        cli_print_sources(resp);
    } else if (st == AIPLAT_ERR_TIMEOUT && cs.done_chunk) {
      /* the chunks are complete; no final reply came */
      if (c->json) {
        cli_print_json(cs.done_chunk, NULL);
      } else {
        fputs("\n", stdout);
        cli_print_sources(cs.done_chunk);
      }
    } else {
      if (cs.a.any_delta && !c->json) fputs("\n", stdout);
      char why[512];
      aiplat_error_last(why, sizeof why);
      if (st == AIPLAT_ERR_UNAVAILABLE)
        rc = cli_fail(CLI_ENOREPLY, "no service is listening on %s", subject);
      else if (st == AIPLAT_ERR_TIMEOUT)
        rc = cli_fail(CLI_ENOREPLY, "no complete answer on %s within %lld ms", subject,
                      (long long)timeout_ms);
      else if (st == AIPLAT_ERR_DECODE)
        rc = cli_fail(CLI_ESERVICE, "%s", why);
      else if (st == AIPLAT_ERR_TOO_LARGE)
        rc = cli_fail(CLI_EUSAGE, "the request cannot be sent: %s: send less", why);
      else
        rc = cli_fail(cli_code_for(st), "cannot send the request: %s", why);
    }
  }
  aiplat_msg_destroy(cs.done_chunk);
  free(cs.a.printed);
  aiplat_client_options_destroy(o);
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(resp);
  aiplat_free(subject);
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
