/* demo_client: the demo's stand-in for the `aiplat` and `aiplat-rag`
 * command-line tools while they are not built (tools/demo.sh uses those when
 * they are). Settings from the environment (NATS_URL, EMBEDDINGS_URL,
 * VECTOR_STORE_PATH, TTS_URL).
 *
 *   demo_client ingest DIR                 the .md files of DIR into the store
 *   demo_client chat USER QUESTION         ask chat-handler; answer + sources
 *   demo_client speak TEXT OUT.wav         the local speech engine reads TEXT
 *   demo_client voice USER IN.wav OUT.wav  ask voice-assistant
 *   demo_client services                   list the running services
 * Exit status: 0 done, 1 the service answered with an error, 2 anything else. */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_testutil.h"

static int fail(const char *what) {
  char err[512];
  aiplat_error_last(err, sizeof err);
  fprintf(stderr, "demo_client: %s: %s\n", what, err);
  return 2;
}

static void print_sources(aiplat_msg *m) {
  size_t n = 0;
  aiplat_msg_count(m, "sources", &n);
  for (size_t i = 0; i < n; i++) {
    aiplat_msg *s = NULL;
    const char *src = "";
    double score = 0;
    aiplat_msg_get_item(m, "sources", i, &s);
    aiplat_msg_get_string(s, "source", &src);
    aiplat_msg_get_double(s, "score", &score);
    printf("  [%zu] %s (score %.3f)\n", i + 1, src, score);
  }
}

static int answered(aiplat_msg *m, aiplat_status st) {
  const char *why = NULL;
  if (!m) {
    fprintf(stderr, "demo_client: no answer: %s\n", aiplat_status_str(st));
    return 2;
  }
  if (ct_error(m, &why)) {
    fprintf(stderr, "demo_client: error: %s\n", why);
    return 1;
  }
  return 0;
}

static int chat(aiplat_bus *bus, const char *user, const char *question) {
  ct_chat c = ct_chat_init(user, question, NULL);
  size_t len = 0;
  uint8_t *buf = ct_chat_bytes(&c, &len);
  char *subject = NULL;
  if (!buf || aiplat_subject_chat_user_message(&subject, user) != AIPLAT_OK) return fail("chat");
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, subject, buf, len, AIPLAT_MSG_CHAT_RESPONSE, 60000, &st);
  int rc = answered(r, st);
  if (rc == 0) {
    const char *text = "";
    aiplat_msg_get_string(r, "text", &text);
    printf("%s\nsources:\n", text);
    print_sources(r);
  }
  aiplat_msg_destroy(r);
  aiplat_free(subject);
  aiplat_free(buf);
  return rc;
}

static int save(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len) {
    perror(path);
    if (f) fclose(f);
    return 2;
  }
  return fclose(f) == 0 ? 0 : 2;
}

static int speak(const char *text, const char *out) {
  aiplat_tts *tts = NULL;
  void *audio = NULL;
  size_t len = 0;
  if (aiplat_tts_create(&tts, NULL) != AIPLAT_OK ||
      aiplat_tts_synthesize(tts, text, NULL, &audio, &len, NULL) != AIPLAT_OK) {
    int rc = fail("speak");
    aiplat_tts_destroy(tts);
    return rc;
  }
  int rc = save(out, audio, len);
  aiplat_free(audio);
  aiplat_tts_destroy(tts);
  return rc;
}

static int voice(aiplat_bus *bus, const char *user, const char *in, const char *out) {
  FILE *f = fopen(in, "rb");
  if (!f) return perror(in), 2;
  static uint8_t wav[8 << 20];
  size_t wlen = fread(wav, 1, sizeof wav, f);
  fclose(f);
  aiplat_msg *m = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  char *subject = NULL;
  if (aiplat_msg_create(&m, AIPLAT_MSG_VOICE_REQUEST) || aiplat_msg_set_string(m, "user_id", user) ||
      aiplat_msg_set_bytes(m, "audio", wav, wlen) || aiplat_msg_set_string(m, "audio_format", "wav") ||
      aiplat_msg_encode(m, &buf, &len) || aiplat_subject_voice_user_request(&subject, user))
    return fail("voice");
  aiplat_msg_destroy(m);
  aiplat_status st;
  aiplat_msg *r = ct_request(bus, subject, buf, len, AIPLAT_MSG_VOICE_RESPONSE, 60000, &st);
  int rc = answered(r, st);
  if (rc == 0) {
    const char *heard = "", *text = "";
    const uint8_t *audio = NULL;
    size_t alen = 0;
    aiplat_msg_get_string(r, "transcript", &heard);
    aiplat_msg_get_string(r, "text", &text);
    aiplat_msg_get_bytes(r, "audio", &audio, &alen);
    printf("heard:  %s\nanswer: %s\nsources:\n", heard, text);
    print_sources(r);
    rc = save(out, audio, alen);
    if (rc == 0) printf("spoken answer: %s (%zu bytes)\n", out, alen);
  }
  aiplat_msg_destroy(r);
  aiplat_free(subject);
  aiplat_free(buf);
  return rc;
}

static int services(aiplat_bus *bus) {
  ct_collector col;
  if (!ct_collect(&col, bus, "_INBOX.demo.services") ||
      aiplat_bus_publish_request(bus, "$SRV.PING", "_INBOX.demo.services", NULL, 0, NULL))
    return fail("services");
  ct_wait(&col, 1000, 500);
  pthread_mutex_lock(&col.mu);
  for (size_t i = 0; i < col.n; i++) {
    json_t *j = json_loadb((const char *)col.v[i].data, col.v[i].len, 0, NULL);
    printf("  %-16s %-8s %s\n", json_string_value(json_object_get(j, "name")),
           json_string_value(json_object_get(j, "version")),
           json_string_value(json_object_get(j, "id")));
    json_decref(j);
  }
  pthread_mutex_unlock(&col.mu);
  ct_collector_free(&col);
  return 0;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "";
  if (!strcmp(cmd, "ingest") && argc == 3) {
    const char *url = getenv("EMBEDDINGS_URL"), *store = getenv("VECTOR_STORE_PATH");
    size_t n = url && store ? ct_ingest_dir(argv[2], store, url) : 0;
    if (n) printf("ingested %zu passages from %s into %s\n", n, argv[2], store);
    return n ? 0 : 2;
  }
  if (!strcmp(cmd, "speak") && argc == 4) return speak(argv[2], argv[3]);
  bool ok = (!strcmp(cmd, "chat") && argc == 4) || (!strcmp(cmd, "voice") && argc == 5) ||
            (!strcmp(cmd, "services") && argc == 2);
  if (!ok) {
    fprintf(stderr, "usage: demo_client ingest DIR | chat USER QUESTION | speak TEXT OUT.wav |"
                    " voice USER IN.wav OUT.wav | services\n");
    return 2;
  }
  const char *url = getenv("NATS_URL");
  aiplat_bus *bus = ct_bus(url ? url : "nats://127.0.0.1:4222");
  if (!bus) return fail("connect");
  int rc = !strcmp(cmd, "chat")    ? chat(bus, argv[2], argv[3])
           : !strcmp(cmd, "voice") ? voice(bus, argv[2], argv[3], argv[4])
                                   : services(bus);
  aiplat_bus_destroy(bus);
  return rc;
}
