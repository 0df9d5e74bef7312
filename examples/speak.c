/* speak: text to speech into a WAV file, written as the audio arrives.
 *
 * Shows: a TTS client from the environment (TTS_URL, TTS_MODEL, TTS_VOICE,
 * TTS_FORMAT, TTS_API_KEY[_FILE]) and the streaming variant, whose callback
 * receives each chunk of audio as the server sends it.
 *
 *   TTS_URL=http://127.0.0.1:8000 ./speak "Hello from the platform" out.wav
 * Exit codes: 0 written, 1 the server failed or refused, 2 usage or file. */
#include <aiplat/aiplat.h>
#include <stdio.h>

static bool write_chunk(const void *data, size_t len, void *user_data) {
  return fwrite(data, 1, len, user_data) == len; /* false stops the stream */
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: speak TEXT OUT.wav\n");
    return 2;
  }
  FILE *out = fopen(argv[2], "wb");
  if (!out) {
    perror(argv[2]);
    return 2;
  }
  aiplat_tts *tts = NULL;
  char *type = NULL;
  int rc = 1;
  if (aiplat_tts_create(&tts, NULL) == AIPLAT_OK &&
      aiplat_tts_synthesize_stream(tts, argv[1], NULL, write_chunk, out, &type) == AIPLAT_OK) {
    fprintf(stderr, "wrote %ld bytes of %s to %s\n", ftell(out), type ? type : "audio", argv[2]);
    rc = 0;
  } else {
    char err[512];
    aiplat_error_last(err, sizeof err);
    fprintf(stderr, "speak: %s\n", err);
  }
  if (fclose(out) != 0) rc = rc ? rc : 2;
  aiplat_free(type);
  aiplat_tts_destroy(tts);
  return rc;
}
