/* aiplat transcribe and aiplat speak. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_TIMEOUT_MS 60000

int cmd_transcribe(cli *c) {
  char id[17];
  cli_new_id(id);
  uint8_t *audio = NULL;
  size_t len = 0;
  int rc = cli_read_file(c->args[0], &audio, &len);
  if (rc == CLI_OK && len == 0)
    rc = cli_fail(CLI_EUSAGE, "%s is empty", c->args[0]);
  aiplat_msg *req = NULL, *resp = NULL;
  if (rc == CLI_OK) {
    aiplat_status st = aiplat_msg_create(&req, AIPLAT_MSG_TRANSCRIBE_REQUEST);
    if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "request_id", id);
    if (st == AIPLAT_OK) st = aiplat_msg_set_bytes(req, "audio", audio, len);
    if (st == AIPLAT_OK)
      st = aiplat_msg_set_string(
          req, "audio_format",
          c->format ? c->format : cli_audio_format(c->args[0]));
    if (st == AIPLAT_OK && c->language)
      st = aiplat_msg_set_string(req, "language", c->language);
    if (st == AIPLAT_OK && (c->verbose || c->json))
      st = aiplat_msg_set_string(req, "response_format", "verbose_json");
    if (st != AIPLAT_OK)
      rc = cli_fail_last(st, "cannot build the TranscribeRequest");
  }
  free(audio);
  if (rc == CLI_OK) rc = cli_connect(c);
  if (rc == CLI_OK)
    rc = cli_request(c, aiplat_subject_stt_transcribe(), req,
                     AIPLAT_MSG_TRANSCRIBE_RESPONSE,
                     cli_timeout(c, DEFAULT_TIMEOUT_MS), &resp);
  if (rc == CLI_OK) rc = cli_check_error(resp, "transcribe");
  if (rc == CLI_OK && c->json) {
    rc = cli_print_json(resp, NULL);
  } else if (rc == CLI_OK) {
    const char *text = "", *lang = "";
    aiplat_msg_get_string(resp, "text", &text);
    printf("%s\n", text);
    if (c->verbose) {
      double dur = 0;
      size_t n = 0;
      aiplat_msg_get_string(resp, "language", &lang);
      aiplat_msg_get_double(resp, "duration_seconds", &dur);
      aiplat_msg_count(resp, "segments", &n);
      printf("language: %s\nduration: %.2f s\n", *lang ? lang : "unknown", dur);
      for (size_t i = 0; i < n; i++) {
        aiplat_msg *s = NULL;
        double a = 0, b = 0;
        const char *t = "";
        if (aiplat_msg_get_item(resp, "segments", i, &s) != AIPLAT_OK) break;
        aiplat_msg_get_double(s, "start", &a);
        aiplat_msg_get_double(s, "end", &b);
        aiplat_msg_get_string(s, "text", &t);
        printf("[%7.2f - %7.2f] %s\n", a, b, t);
      }
    }
  }
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(resp);
  return rc;
}

int cmd_speak(cli *c) {
  if (!c->output)
    return cli_usage("speak needs -o FILE ('-' for standard output)");
  if (!*c->args[0]) return cli_usage("the text is empty");
  char id[17];
  cli_new_id(id);
  aiplat_msg *req = NULL, *resp = NULL;
  aiplat_status st = aiplat_msg_create(&req, AIPLAT_MSG_SYNTHESIZE_REQUEST);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "request_id", id);
  if (st == AIPLAT_OK) st = aiplat_msg_set_string(req, "text", c->args[0]);
  if (st == AIPLAT_OK && c->voice)
    st = aiplat_msg_set_string(req, "voice", c->voice);
  if (st == AIPLAT_OK && c->format)
    st = aiplat_msg_set_string(req, "format", c->format);
  if (st == AIPLAT_OK && c->speed > 0)
    st = aiplat_msg_set_double(req, "speed", c->speed);
  int rc = st == AIPLAT_OK
               ? CLI_OK
               : cli_fail_last(st, "cannot build the SynthesizeRequest");
  if (rc == CLI_OK) rc = cli_connect(c);
  if (rc == CLI_OK)
    rc = cli_request(c, aiplat_subject_tts_synthesize(), req,
                     AIPLAT_MSG_SYNTHESIZE_RESPONSE,
                     cli_timeout(c, DEFAULT_TIMEOUT_MS), &resp);
  if (rc == CLI_OK) rc = cli_check_error(resp, "speak");
  if (rc == CLI_OK) {
    const uint8_t *audio = NULL;
    size_t len = 0;
    const char *ctype = "";
    aiplat_msg_get_bytes(resp, "audio", &audio, &len);
    aiplat_msg_get_string(resp, "content_type", &ctype);
    if (len == 0) rc = cli_fail(CLI_ESERVICE, "speak: the answer has no audio");
    if (rc == CLI_OK) rc = cli_write_file(c->output, audio, len);
    if (rc == CLI_OK && strcmp(c->output, "-") != 0) {
      if (c->json)
        rc = cli_print_json(resp, "audio");
      else
        printf("%s: %zu bytes of %s\n", c->output, len,
               *ctype ? ctype : "audio");
    }
  }
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(resp);
  return rc;
}
