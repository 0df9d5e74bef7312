/* Figures for the message API: encode, decode (with the hostile-input
 * walk), field access and JSON, on typical messages. Prints; asserts
 * nothing. Run: make bench-message */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(aiplat_status st, const char *what) {
  if (st == AIPLAT_OK) return;
  char buf[512];
  aiplat_error_last(buf, sizeof buf);
  fprintf(stderr, "bench_message: %s: %s\n", what, buf);
  exit(1);
}

static aiplat_msg *chat_request(void) {
  aiplat_msg *m;
  check(aiplat_msg_create(&m, AIPLAT_MSG_CHAT_REQUEST), "create");
  check(aiplat_msg_set_string(m, "user_id", "user-1234"), "set");
  check(aiplat_msg_set_string(m, "message",
                              "What is the retention period of the audit logs "
                              "in the ai-ml namespace?"),
        "set");
  check(aiplat_msg_set_string(m, "request_id",
                              "6f1c2b7e-9d3a-4c55-8e21-0b7f6a1d2e3c"),
        "set");
  check(aiplat_msg_set_bool(m, "enable_rag", true), "set");
  return m;
}

static aiplat_msg *chat_response(void) {
  aiplat_msg *m, *c;
  char text[801];
  memset(text, 'x', 800);
  text[800] = '\0';
  check(aiplat_msg_create(&m, AIPLAT_MSG_CHAT_RESPONSE), "create");
  check(aiplat_msg_set_string(m, "request_id",
                              "6f1c2b7e-9d3a-4c55-8e21-0b7f6a1d2e3c"),
        "set");
  check(aiplat_msg_set_string(m, "text", text), "set");
  for (int i = 0; i < 5; i++) {
    check(aiplat_msg_add_item(m, "sources", &c), "add");
    check(aiplat_msg_set_string(c, "id", "449812736"), "set");
    check(aiplat_msg_set_string(c, "text", text), "set");
    check(aiplat_msg_set_string(c, "source", "runbooks/audit.md"), "set");
    check(aiplat_msg_set_double(c, "score", 0.91 - i * 0.05), "set");
  }
  check(aiplat_msg_mutable_message(m, "usage", &c), "usage");
  check(aiplat_msg_set_int64(c, "total_tokens", 812), "set");
  return m;
}

static aiplat_msg *voice_request(size_t audio) {
  aiplat_msg *m;
  uint8_t *pcm = malloc(audio);
  for (size_t i = 0; i < audio; i++) pcm[i] = (uint8_t)(i * 31);
  check(aiplat_msg_create(&m, AIPLAT_MSG_VOICE_REQUEST), "create");
  check(aiplat_msg_set_string(m, "user_id", "user-1234"), "set");
  check(aiplat_msg_set_bytes(m, "audio", pcm, audio), "set");
  check(aiplat_msg_set_string(m, "audio_format", "wav"), "set");
  free(pcm);
  return m;
}

static void bench(const char *name, aiplat_msg *m, int iters) {
  aiplat_msg_type t = aiplat_msg_get_type(m);
  uint8_t *buf;
  size_t len;
  check(aiplat_msg_encode(m, &buf, &len), "encode");
  double t0 = now();
  for (int i = 0; i < iters; i++) {
    uint8_t *b;
    size_t l;
    check(aiplat_msg_encode(m, &b, &l), "encode");
    aiplat_free(b);
  }
  double enc = (now() - t0) / iters;
  t0 = now();
  for (int i = 0; i < iters; i++) {
    aiplat_msg *d;
    check(aiplat_msg_decode(&d, t, buf, len), "decode");
    aiplat_msg_destroy(d);
  }
  double dec = (now() - t0) / iters;
  t0 = now();
  for (int i = 0; i < iters; i++) {
    char *j;
    check(aiplat_msg_to_json_flags(m, AIPLAT_MSG_JSON_ELIDE_BYTES, &j), "json");
    aiplat_free(j);
  }
  double js = (now() - t0) / iters;
  printf(
      "%-28s %9zu B  encode %9.2f us (%7.0f MB/s)  decode %9.2f us "
      "(%7.0f MB/s)  to_json %8.2f us\n",
      name, len, enc * 1e6, len / enc / 1e6, dec * 1e6, len / dec / 1e6,
      js * 1e6);
  aiplat_free(buf);
}

int main(void) {
  check(aiplat_init(), "init");
  aiplat_msg *m = chat_request();
  bench("ChatRequest", m, 200000);
  aiplat_msg_destroy(m);
  m = chat_response();
  bench("ChatResponse (5 sources)", m, 50000);
  aiplat_msg_destroy(m);
  m = voice_request(1 << 20);
  bench("VoiceRequest (1 MiB audio)", m, 200);
  aiplat_msg_destroy(m);

  /* Field access by name. */
  m = chat_request();
  int iters = 1000000;
  double t0 = now();
  const char *s;
  for (int i = 0; i < iters; i++)
    check(aiplat_msg_get_string(m, "request_id", &s), "get");
  double get = (now() - t0) / iters;
  t0 = now();
  for (int i = 0; i < iters; i++)
    check(aiplat_msg_set_string(m, "user_id", "user-1234"), "set");
  double set = (now() - t0) / iters;
  t0 = now();
  for (int i = 0; i < iters; i++) {
    aiplat_msg *c;
    check(aiplat_msg_create(&c, AIPLAT_MSG_CHAT_REQUEST), "create");
    aiplat_msg_destroy(c);
  }
  double cd = (now() - t0) / iters;
  printf("get_string %.0f ns, set_string %.0f ns, create+destroy %.0f ns\n",
         get * 1e9, set * 1e9, cd * 1e9);
  aiplat_msg_destroy(m);
  aiplat_cleanup();
  return 0;
}
