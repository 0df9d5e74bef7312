/* --help and --version of the service programs (svchelp.h). */
#include "svchelp.h"

#include <string.h>

/* The layout of a setting's definition: the name at column 2, the text at
 * HELP_TEXT_COL, lines of at most HELP_WIDTH columns. help2man makes a
 * tagged paragraph of a name followed by two blanks (or alone on its line
 * with the text on the next, indented 20 or more) and takes every following
 * line indented exactly like the text as its continuation. */
#define HELP_TEXT_COL 26
#define HELP_WIDTH 79

/* Index of setting @name in the library's table, or -1. */
static long setting_index(const char *name) {
  size_t n = aiplat_config_setting_count();
  for (size_t i = 0; i < n; i++)
    if (strcmp(aiplat_config_setting_name(i), name) == 0) return (long)i;
  return -1;
}

/* Print @text word by word from column @col, breaking before HELP_WIDTH;
 * continuation lines start at HELP_TEXT_COL. */
static void print_wrapped(FILE *out, const char *text, size_t col) {
  const char *p = text;
  while (*p) {
    while (*p == ' ') p++;
    size_t len = strcspn(p, " ");
    if (len == 0) break;
    if (col > HELP_TEXT_COL && col + 1 + len > HELP_WIDTH) {
      fprintf(out, "\n%*s", HELP_TEXT_COL, "");
      col = HELP_TEXT_COL;
    } else if (col > HELP_TEXT_COL) {
      fputc(' ', out);
      col++;
    }
    fwrite(p, 1, len, out);
    col += len;
    p += len;
  }
  fputc('\n', out);
}

static void print_setting(FILE *out, const char *name) {
  long i = setting_index(name);
  const char *desc = i < 0 ? "(not a setting of this libaiplat)"
                           : aiplat_config_setting_description((size_t)i);
  const char *def = i < 0 ? NULL : aiplat_config_setting_default((size_t)i);
  size_t len = strlen(name);
  if (2 + len + 2 <= HELP_TEXT_COL)
    fprintf(out, "  %-*s", HELP_TEXT_COL - 2, name);
  else
    fprintf(out, "  %s\n%*s", name, HELP_TEXT_COL, "");
  char text[512];
  if (def && *def)
    snprintf(text, sizeof text, "%s (default: %s)", desc, def);
  else
    snprintf(text, sizeof text, "%s", desc);
  print_wrapped(out, text, HELP_TEXT_COL);
}

void svcu_print_help(FILE *out, const char *name, const svcu_help *help) {
  fprintf(out, "Usage: %s [--help] [--version]\n%s\n\n%s\nEnvironment:\n", name,
          help->summary, help->about);
  for (const char *const *s = help->settings; s && *s; s++)
    print_setting(out, *s);
}

int svcu_args(int argc, char **argv, const char *name, const svcu_help *help) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      svcu_print_help(stdout, name, help);
      return AIPLAT_EXIT_OK;
    }
    if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
      printf("%s %s\n", name, aiplat_version_string());
      return AIPLAT_EXIT_OK;
    }
    fprintf(stderr,
            "%s: unknown argument '%.64s': the service is configured by "
            "environment variables (see --help)\n",
            name, argv[i]);
    return AIPLAT_EXIT_USAGE;
  }
  return -1;
}

