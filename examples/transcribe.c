/* transcribe: speech to text for one WAV file.
 *
 * Shows: reading a file into memory, an STT client from the environment
 * (STT_URL, STT_MODEL, STT_API_KEY[_FILE], STT_LANGUAGE) and the result's
 * text and language. The audio type comes from the file's bytes.
 *
 *   STT_URL=http://127.0.0.1:8000 ./transcribe speech.wav
 * Exit codes: 0 transcribed, 1 the server failed or refused, 2 usage or file. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: transcribe FILE.wav\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  size_t cap = 1 << 16, len = 0, n;
  unsigned char *audio = malloc(cap);
  while (audio && (n = fread(audio + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      unsigned char *p = realloc(audio, cap *= 2);
      if (!p) break;
      audio = p;
    }
  }
  fclose(f);
  aiplat_stt *stt = NULL;
  aiplat_stt_result *res = NULL;
  int rc = 1;
  if (audio && aiplat_stt_create(&stt, NULL) == AIPLAT_OK &&
      aiplat_stt_transcribe(stt, audio, len, NULL, NULL, &res) == AIPLAT_OK) {
    const char *lang = aiplat_stt_result_language(res);
    printf("%s\n", aiplat_stt_result_text(res));
    if (lang && *lang) fprintf(stderr, "(language: %s)\n", lang);
    rc = 0;
  } else {
    char err[512];
    aiplat_error_last(err, sizeof err);
    fprintf(stderr, "transcribe: %s\n", err);
  }
  aiplat_stt_result_destroy(res);
  aiplat_stt_destroy(stt);
  free(audio);
  return rc;
}
