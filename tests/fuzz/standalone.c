/* main() for the fuzz targets in ordinary builds (gcc, valgrind, the
 * sanitizer build): replays inputs through LLVMFuzzerTestOneInput, so that
 * `make check` runs every corpus and an input that once crashed a target
 * keeps being tried. libFuzzer builds link libFuzzer's main instead.
 *
 *   tests/fuzz/fuzz_NAME [FILE | DIR]...
 *
 * Without arguments a target replays its own corpus,
 * $top_srcdir/tests/fuzz/corpus/NAME. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fuzz_util.h"

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, n = 0, got;
  uint8_t *buf = malloc(cap);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *p = realloc(buf, cap *= 2);
      if (!p) free(buf);
      buf = p;
    }
  }
  fclose(f);
  if (!buf) return -1;
  /* An exact-size copy: reads past the end are caught. */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  if (n) memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int no_dots(const struct dirent *e) {
  return e->d_name[0] != '.';
}

/* Every file of @dir in name order; the count, or -1. */
static long replay_dir(const char *dir) {
  struct dirent **names;
  int k = scandir(dir, &names, no_dots, alphasort);
  if (k < 0) {
    fprintf(stderr, "%s: %s\n", dir, strerror(errno));
    return -1;
  }
  long done = 0;
  for (int i = 0; i < k; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      if (replay_file(path) < 0) done = -1;
      if (done >= 0) done++;
    }
    free(names[i]);
  }
  free(names);
  return done;
}

static long replay(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  if (S_ISDIR(st.st_mode)) return replay_dir(path);
  return replay_file(path) < 0 ? -1 : 1;
}

int main(int argc, char **argv) {
  const char *prog = strrchr(argv[0], '/');
  prog = prog ? prog + 1 : argv[0];
  if (strncmp(prog, "lt-", 3) == 0) prog += 3;
  long total = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) {
      long n = replay(argv[i]);
      if (n < 0) return 1;
      total += n;
    }
    printf("%s: %ld inputs replayed\n", prog, total);
    return 0;
  }
  const char *name = strncmp(prog, "fuzz_", 5) == 0 ? prog + 5 : prog;
  const char *src = getenv("top_srcdir");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src ? src : ".", name);
  total = replay_dir(dir);
  if (total < 0) return 1;
  if (total == 0) {
    fprintf(stderr, "%s: no inputs in %s\n", prog, dir);
    return 1;
  }
  printf("%s: %ld inputs from %s replayed\n", prog, total, dir);
  return 0;
}
