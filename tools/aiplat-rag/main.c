/* aiplat-rag: ingest documents into the knowledge base and ask it
 * questions, from the command line, through the public RAG API
 * (aiplat/rag.h). Configured by the environment like the services. */
#define _GNU_SOURCE /* asprintf */
#include <aiplat/aiplat.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The platform's exit statuses (aiplat/common.h, docs/exit-status.md). */
enum {
  EXIT_USAGE = AIPLAT_EXIT_USAGE,   /* bad command line */
  EXIT_CONFIG = AIPLAT_EXIT_CONFIG, /* bad or missing configuration */
  EXIT_INPUT = AIPLAT_EXIT_IO       /* some input files could not be ingested */
};

static const char USAGE[] =
    "Usage: aiplat-rag [OPTIONS] COMMAND [ARGUMENTS]\n"
    "\n"
    "Ingest documents into the knowledge base and query it.\n"
    "\n"
    "Commands:\n"
    "  ingest PATH...     ingest text and markdown files. A directory is\n"
    "                     walked recursively for .md, .markdown, .txt and\n"
    "                     .text files; other files are skipped with a note,\n"
    "                     hidden ones (.git, ...) are not read. A file named\n"
    "                     on the command line is ingested whatever its name\n"
    "                     if it is UTF-8 text. Its source name is its path\n"
    "                     below the directory given, or its file name when\n"
    "                     given directly. Ingesting a source again replaces\n"
    "                     it; an unchanged file costs nothing.\n"
    "  query QUESTION     print the passages that best answer QUESTION:\n"
    "                     rank, score, source and a snippet\n"
    "  context QUESTION   print the numbered context an LLM prompt gets\n"
    "  delete SOURCE...   remove every passage of these sources\n"
    "  count              print the number of passages stored\n"
    "  compact            rewrite the local store's file with only its\n"
    "                     live passages: deleted and replaced ones leave\n"
    "                     the file; prints its size before and after\n"
    "  verify             check every record of the local store's file\n"
    "                     without changing it; prints the report and exits\n"
    "                     1 when something is damaged\n"
    "\n"
    "Options:\n"
    "  -k, --top-k N          passages a query returns (RAG_TOP_K)\n"
    "  -s, --source NAME      query/context: only passages from NAME;\n"
    "                         ingest (one file): store it under NAME\n"
    "      --min-score X      lowest score returned (RAG_MIN_SCORE)\n"
    "      --no-rerank        do not rerank even when RERANKER_URL is set\n"
    "      --context-chars N  context budget in bytes (RAG_CONTEXT_CHARS)\n"
    "      --chunk-chars N    ingest: passage size in bytes (default 800)\n"
    "      --overlap N        ingest: overlap in bytes (default 100)\n"
    "      --json             machine-readable output (one JSON document)\n"
    "  -q, --quiet            ingest: print only problems and the summary\n"
    "  -h, --help             this text\n"
    "      --version          the library version\n"
    "\n"
    "Configuration (environment): EMBEDDINGS_URL, EMBEDDINGS_MODEL,\n"
    "RERANKER_URL (optional), VECTOR_STORE (local or milvus),\n"
    "VECTOR_STORE_PATH (local store file), MILVUS_HOST, MILVUS_PORT,\n"
    "MILVUS_COLLECTION, MILVUS_DB, MILVUS_TOKEN, MILVUS_TLS, RAG_TOP_K,\n"
    "RAG_CANDIDATES, RAG_MIN_SCORE, RAG_CONTEXT_CHARS, HTTP_*, LOG_LEVEL.\n"
    "\n"
    "Exit status (the platform's one convention):\n"
    "  0  success\n"
    "  1  failed: the embeddings server, the vector store or the reranker\n"
    "     answered with an error\n"
    "  2  usage: unknown command or option, missing or bad argument\n"
    "  3  unavailable: one of them could not be reached or timed out\n"
    "  4  configuration: a setting is missing or invalid\n"
    "  5  I/O: some inputs could not be read or are not UTF-8 text (the\n"
    "     others were ingested), or the store file could not be read\n";

typedef struct opts {
  size_t top_k, context_chars, chunk_chars, overlap;
  double min_score;
  bool has_min_score, has_overlap, no_rerank, json, quiet;
  const char *source;
} opts;

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "aiplat-rag: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'aiplat-rag --help'.\n");
  va_end(ap);
  return EXIT_USAGE;
}

static bool parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-') return false;
  *out = (size_t)v;
  return true;
}

static int fail(aiplat_rag *rag, aiplat_status st) {
  char msg[512];
  if (rag)
    aiplat_rag_last_error(rag, msg, sizeof msg);
  else
    aiplat_error_last(msg, sizeof msg);
  fprintf(stderr, "aiplat-rag: %s (%s)\n", msg[0] ? msg : "failed",
          aiplat_status_str(st));
  return aiplat_status_exit_code(st);
}

/* ---- output -----------------------------------------------------------------
 */

static void print_json(json_t *j) {
  char *s = json_dumps(
      j, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(8));
  if (s) puts(s);
  free(s);
  json_decref(j);
}

/* The text with whitespace collapsed, cut to about @max bytes on a UTF-8
 * boundary. */
static char *snippet(const char *t, size_t max) {
  size_t n = strlen(t);
  char *out = malloc(n + 4);
  if (!out) return NULL;
  size_t k = 0;
  bool space = false;
  for (const char *p = t; *p; p++) {
    bool ws = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
    if (ws) {
      space = k > 0;
      continue;
    }
    if (k >= max) {
      while (k > 0 && ((unsigned char)out[k] & 0xC0) == 0x80) k--;
      while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0xC0) k--;
      memcpy(out + k, "\xe2\x80\xa6", 3);
      k += 3;
      break;
    }
    if (space) out[k++] = ' ';
    space = false;
    out[k++] = *p;
  }
  out[k] = '\0';
  return out;
}

/* ---- commands ---------------------------------------------------------------
 */

static aiplat_status ask(aiplat_rag *rag, const opts *o, const char *q,
                         aiplat_rag_results **r) {
  return aiplat_rag_query_filtered(rag, q, o->top_k, o->source, r);
}

static int cmd_query(aiplat_rag *rag, const opts *o, const char *q) {
  aiplat_rag_results *r = NULL;
  aiplat_status st = ask(rag, o, q, &r);
  if (st) return fail(rag, st);
  size_t n = aiplat_rag_results_count(r);
  if (o->json) {
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
      json_t *md = json_loads(aiplat_rag_results_metadata(r, i), 0, NULL);
      json_array_append_new(
          list,
          json_pack("{s:I,s:s,s:f,s:f,s:s,s:s,s:o}", "rank",
                    (json_int_t)(i + 1), "id", aiplat_rag_results_id(r, i),
                    "score", aiplat_rag_results_score(r, i), "vector_score",
                    aiplat_rag_results_vector_score(r, i), "source",
                    aiplat_rag_results_source(r, i), "text",
                    aiplat_rag_results_text(r, i), "metadata",
                    md ? md : json_object()));
    }
    print_json(json_pack("{s:s,s:s,s:b,s:o}", "question", q, "store",
                         aiplat_rag_store_backend(rag), "reranked",
                         aiplat_rag_results_reranked(r), "results", list));
  } else if (n == 0) {
    printf("no passages found\n");
  } else {
    for (size_t i = 0; i < n; i++) {
      char *s = snippet(aiplat_rag_results_text(r, i), 200);
      printf("%zu. %.4f  %s\n   %s\n", i + 1, aiplat_rag_results_score(r, i),
             aiplat_rag_results_source(r, i), s ? s : "");
      free(s);
    }
  }
  aiplat_rag_results_destroy(r);
  return 0;
}

static int cmd_context(aiplat_rag *rag, aiplat_config *cfg, const opts *o,
                       const char *q) {
  char *ctx = NULL;
  aiplat_status st;
  if (!o->source && !o->top_k) {
    if ((st = aiplat_rag_context(rag, q, &ctx))) return fail(rag, st);
  } else {
    int64_t budget = (int64_t)o->context_chars;
    if (!budget && aiplat_config_get_int(cfg, "RAG_CONTEXT_CHARS", 16, 16777216,
                                         &budget) != AIPLAT_OK) {
      char msg[512];
      aiplat_config_last_error(cfg, msg, sizeof msg);
      fprintf(stderr, "aiplat-rag: %s\n", msg);
      return EXIT_CONFIG;
    }
    aiplat_rag_results *r = NULL;
    if ((st = ask(rag, o, q, &r))) return fail(rag, st);
    st = aiplat_rag_results_context(r, (size_t)budget, &ctx);
    aiplat_rag_results_destroy(r);
    if (st) return fail(NULL, st);
  }
  if (o->json)
    print_json(json_pack("{s:s,s:s}", "question", q, "context", ctx));
  else if (ctx[0])
    printf("%s\n", ctx);
  aiplat_free(ctx);
  return 0;
}

static int cmd_count(aiplat_rag *rag, const opts *o) {
  uint64_t n = 0;
  aiplat_status st = aiplat_rag_count(rag, &n);
  if (st) return fail(rag, st);
  if (o->json)
    print_json(json_pack("{s:I,s:s}", "passages", (json_int_t)n, "store",
                         aiplat_rag_store_backend(rag)));
  else
    printf("%llu\n", (unsigned long long)n);
  return 0;
}

static int cmd_compact(aiplat_rag *rag, const opts *o) {
  uint64_t before = 0, after = 0;
  aiplat_status st = aiplat_rag_compact(rag, &before, &after);
  if (st) return fail(rag, st);
  if (o->json)
    print_json(json_pack("{s:I,s:I}", "bytes_before", (json_int_t)before, "bytes_after",
                         (json_int_t)after));
  else
    printf("%llu bytes before, %llu after\n", (unsigned long long)before,
           (unsigned long long)after);
  return 0;
}

static int cmd_verify(aiplat_rag *rag, const opts *o) {
  char *report = NULL;
  aiplat_status st = aiplat_rag_verify(rag, &report);
  if (!report) return fail(rag, st);
  json_t *j = json_loads(report, 0, NULL);
  aiplat_free(report);
  if (!j) return fail(rag, AIPLAT_ERR_INTERNAL);
  if (o->json) {
    print_json(j);
  } else {
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
      if (json_is_boolean(v))
        printf("%-16s %s\n", key, json_is_true(v) ? "yes" : "no");
      else
        printf("%-16s %lld\n", key, (long long)json_integer_value(v));
    }
    json_decref(j);
  }
  if (st) {
    char msg[512];
    aiplat_rag_last_error(rag, msg, sizeof msg);
    fprintf(stderr, "aiplat-rag: %s\n", msg);
    return 1;
  }
  return 0;
}

static int cmd_delete(aiplat_rag *rag, const opts *o, char **sources, int n) {
  for (int i = 0; i < n; i++) {
    aiplat_status st = aiplat_rag_delete_source(rag, sources[i]);
    if (st) return fail(rag, st);
    if (!o->json && !o->quiet) printf("%s: deleted\n", sources[i]);
  }
  if (o->json) print_json(json_pack("{s:i}", "deleted_sources", n));
  return 0;
}

/* ---- ingest -----------------------------------------------------------------
 */

typedef struct tally {
  size_t files, passages, skipped, failed;
  size_t by_outcome[5];
  json_t *items; /* --json */
  int status;    /* worst exit status so far */
} tally;

static const char *outcome_word(aiplat_rag_ingest_outcome o) {
  switch (o) {
    case AIPLAT_RAG_INGEST_NEW:
      return "new";
    case AIPLAT_RAG_INGEST_UNCHANGED:
      return "unchanged";
    case AIPLAT_RAG_INGEST_REPLACED:
      return "replaced";
    case AIPLAT_RAG_INGEST_EMPTY:
      return "empty";
  }
  return "?";
}

static bool is_text_name(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot) return false;
  static const char *const ext[] = {".md", ".markdown", ".txt", ".text"};
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
    if (strcasecmp(dot, ext[i]) == 0) return true;
  return false;
}

static void note(tally *t, const opts *o, const char *path, const char *what,
                 const char *why) {
  if (o->json)
    json_array_append_new(t->items, json_pack("{s:s,s:s,s:s}", "path", path,
                                              "result", what, "reason", why));
  else
    fprintf(stderr, "aiplat-rag: %s: %s: %s\n", path, what, why);
}

/* Returns false when the run must stop (a backend failure). */
static bool ingest_one(aiplat_rag *rag, const opts *o, tally *t,
                       const char *path, const char *source) {
  size_t chunks = 0;
  aiplat_rag_ingest_outcome oc = AIPLAT_RAG_INGEST_EMPTY;
  aiplat_status st = aiplat_rag_ingest_file(rag, path, source, &chunks, &oc);
  if (st == AIPLAT_ERR_INVALID_ARGUMENT || st == AIPLAT_ERR_NOT_FOUND ||
      st == AIPLAT_ERR_TOO_LARGE || st == AIPLAT_ERR_IO) {
    char msg[512];
    aiplat_rag_last_error(rag, msg, sizeof msg);
    note(t, o, path, "failed", msg);
    t->failed++;
    if (t->status < EXIT_INPUT) t->status = EXIT_INPUT;
    return true;
  }
  if (st) {
    t->status = fail(rag, st);
    return false;
  }
  t->files++;
  t->passages += chunks;
  t->by_outcome[oc]++;
  if (o->json)
    json_array_append_new(
        t->items,
        json_pack("{s:s,s:s,s:s,s:I}", "path", path, "source", source, "result",
                  outcome_word(oc), "passages", (json_int_t)chunks));
  else if (!o->quiet)
    printf("%s: %zu passage%s (%s)\n", source, chunks, chunks == 1 ? "" : "s",
           outcome_word(oc));
  return true;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk @dir (its files' sources are their paths below @root_len bytes of
 * the directory argument), in name order. */
static bool walk(aiplat_rag *rag, const opts *o, tally *t, const char *dir,
                 size_t root_len, int depth) {
  if (depth > 32) {
    note(t, o, dir, "skipped", "too deep");
    return true;
  }
  DIR *d = opendir(dir);
  if (!d) {
    note(t, o, dir, "failed", strerror(errno));
    t->failed++;
    if (t->status < EXIT_INPUT) t->status = EXIT_INPUT;
    return true;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue; /* ., .., hidden files, .git */
    if (n == cap) {
      cap = cap ? cap * 2 : 32;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    if (!(names[n] = strdup(e->d_name))) break;
    n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, cmp_names);
  bool go = true;
  for (size_t i = 0; i < n; i++) {
    char *path = NULL;
    if (go && asprintf(&path, "%s/%s", dir, names[i]) >= 0) {
      struct stat sb;
      if (stat(path, &sb) != 0) {
        note(t, o, path, "failed", strerror(errno));
        t->failed++;
        if (t->status < EXIT_INPUT) t->status = EXIT_INPUT;
      } else if (S_ISDIR(sb.st_mode)) {
        go = walk(rag, o, t, path, root_len, depth + 1);
      } else if (!S_ISREG(sb.st_mode) || !is_text_name(names[i])) {
        note(t, o, path, "skipped", "not a text or markdown file");
        t->skipped++;
      } else {
        go = ingest_one(rag, o, t, path, path + root_len);
      }
    }
    free(path);
    free(names[i]);
  }
  free(names);
  return go;
}

static int cmd_ingest(aiplat_rag *rag, const opts *o, char **paths, int n) {
  if (o->source && n != 1)
    return usage_error("--source names one file; give one path");
  tally t = {0};
  if (o->json) t.items = json_array();
  bool go = true;
  for (int i = 0; i < n && go; i++) {
    struct stat sb;
    if (stat(paths[i], &sb) != 0) {
      note(&t, o, paths[i], "failed", strerror(errno));
      t.failed++;
      if (t.status < EXIT_INPUT) t.status = EXIT_INPUT;
    } else if (S_ISDIR(sb.st_mode)) {
      if (o->source) {
        json_decref(t.items);
        return usage_error("--source names one file, not a directory (%s)",
                           paths[i]);
      }
      size_t len = strlen(paths[i]);
      while (len > 1 && paths[i][len - 1] == '/') paths[i][--len] = '\0';
      go = walk(rag, o, &t, paths[i], len + 1, 0);
    } else {
      const char *base = strrchr(paths[i], '/');
      go = ingest_one(rag, o, &t, paths[i],
                      o->source ? o->source
                      : base    ? base + 1
                                : paths[i]);
    }
  }
  if (o->json) {
    print_json(json_pack(
        "{s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "files", t.items, "ingested",
        (json_int_t)t.files, "passages", (json_int_t)t.passages, "new",
        (json_int_t)t.by_outcome[AIPLAT_RAG_INGEST_NEW], "replaced",
        (json_int_t)t.by_outcome[AIPLAT_RAG_INGEST_REPLACED], "unchanged",
        (json_int_t)t.by_outcome[AIPLAT_RAG_INGEST_UNCHANGED], "skipped",
        (json_int_t)t.skipped, "failed", (json_int_t)t.failed, "complete", go));
  } else {
    printf(
        "%zu file%s, %zu passages: %zu new, %zu replaced, %zu unchanged; "
        "%zu skipped, %zu failed\n",
        t.files, t.files == 1 ? "" : "s", t.passages,
        t.by_outcome[AIPLAT_RAG_INGEST_NEW],
        t.by_outcome[AIPLAT_RAG_INGEST_REPLACED],
        t.by_outcome[AIPLAT_RAG_INGEST_UNCHANGED], t.skipped, t.failed);
  }
  return t.status;
}

/* ---- main ------------------------------------------------------------------
 */

int main(int argc, char **argv) {
  enum {
    OPT_MIN = 256,
    OPT_NO_RERANK,
    OPT_CONTEXT,
    OPT_CHUNK,
    OPT_OVERLAP,
    OPT_JSON,
    OPT_VERSION
  };
  static const struct option longopts[] = {
      {"top-k", required_argument, NULL, 'k'},
      {"source", required_argument, NULL, 's'},
      {"min-score", required_argument, NULL, OPT_MIN},
      {"no-rerank", no_argument, NULL, OPT_NO_RERANK},
      {"context-chars", required_argument, NULL, OPT_CONTEXT},
      {"chunk-chars", required_argument, NULL, OPT_CHUNK},
      {"overlap", required_argument, NULL, OPT_OVERLAP},
      {"json", no_argument, NULL, OPT_JSON},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  opts o = {0};
  bool chunking = false;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "k:s:qh", longopts, NULL)) != -1) {
    switch (c) {
      case 'k':
        if (!parse_size(optarg, &o.top_k) || o.top_k == 0)
          return usage_error("--top-k: \"%s\" is not a positive number",
                             optarg);
        break;
      case 's':
        o.source = optarg;
        break;
      case OPT_MIN: {
        char *end;
        o.min_score = strtod(optarg, &end);
        if (end == optarg || *end)
          return usage_error("--min-score: \"%s\" is not a number", optarg);
        o.has_min_score = true;
        break;
      }
      case OPT_NO_RERANK:
        o.no_rerank = true;
        break;
      case OPT_CONTEXT:
        if (!parse_size(optarg, &o.context_chars) || o.context_chars == 0)
          return usage_error(
              "--context-chars: \"%s\" is not a positive "
              "number",
              optarg);
        break;
      case OPT_CHUNK:
        if (!parse_size(optarg, &o.chunk_chars))
          return usage_error("--chunk-chars: \"%s\" is not a number", optarg);
        chunking = true;
        break;
      case OPT_OVERLAP:
        if (!parse_size(optarg, &o.overlap))
          return usage_error("--overlap: \"%s\" is not a number", optarg);
        o.has_overlap = chunking = true;
        break;
      case OPT_JSON:
        o.json = true;
        break;
      case 'q':
        o.quiet = true;
        break;
      case 'h':
        fputs(USAGE, stdout);
        return 0;
      case OPT_VERSION:
        printf("aiplat-rag %s\n", aiplat_version_string());
        return 0;
      default:
        return usage_error("unknown option or missing value: %s",
                           argv[optind - 1]);
    }
  }
  if (optind >= argc) return usage_error("no command");
  const char *cmd = argv[optind++];
  int nargs = argc - optind;
  char **args = argv + optind;
  bool q = !strcmp(cmd, "query") || !strcmp(cmd, "context");
  if (q && nargs != 1)
    return usage_error("%s takes one question (quote it)", cmd);
  if (q && !args[0][0]) return usage_error("%s: the question is empty", cmd);
  if (!strcmp(cmd, "ingest") || !strcmp(cmd, "delete")) {
    if (nargs < 1) return usage_error("%s needs at least one argument", cmd);
  } else if (!strcmp(cmd, "count") || !strcmp(cmd, "compact") || !strcmp(cmd, "verify")) {
    if (nargs) return usage_error("%s takes no argument (%s)", cmd, args[0]);
  } else if (!q) {
    return usage_error("unknown command \"%s\"", cmd);
  }
  if (o.chunk_chars == 0) o.chunk_chars = 800;
  if (!o.has_overlap) /* the default, or an eighth of a small passage */
    o.overlap = o.chunk_chars >= 800 ? 100 : o.chunk_chars / 8;

  aiplat_config *cfg = NULL;
  aiplat_rag *rag = NULL;
  aiplat_status st = aiplat_config_create(&cfg);
  if (!st) st = aiplat_rag_create(&rag, cfg);
  if (st) {
    aiplat_config_destroy(cfg);
    return fail(NULL, st);
  }
  int rc = 0;
  if ((o.top_k && (st = aiplat_rag_set_top_k(rag, o.top_k))) ||
      (o.has_min_score && (st = aiplat_rag_set_min_score(rag, o.min_score))) ||
      (o.no_rerank && (st = aiplat_rag_set_rerank(rag, false))) ||
      (o.context_chars &&
       (st = aiplat_rag_set_context_chars(rag, o.context_chars))) ||
      (chunking &&
       (st = aiplat_rag_set_chunking(rag, o.chunk_chars, o.overlap)))) {
    char msg[512];
    aiplat_rag_last_error(rag, msg, sizeof msg);
    fprintf(stderr, "aiplat-rag: %s (%s)\nTry 'aiplat-rag --help'.\n", msg,
            aiplat_status_str(st));
    aiplat_rag_destroy(rag);
    aiplat_config_destroy(cfg);
    return EXIT_USAGE;
  }
  if (!strcmp(cmd, "ingest"))
    rc = cmd_ingest(rag, &o, args, nargs);
  else if (!strcmp(cmd, "query"))
    rc = cmd_query(rag, &o, args[0]);
  else if (!strcmp(cmd, "context"))
    rc = cmd_context(rag, cfg, &o, args[0]);
  else if (!strcmp(cmd, "delete"))
    rc = cmd_delete(rag, &o, args, nargs);
  else if (!strcmp(cmd, "compact"))
    rc = cmd_compact(rag, &o);
  else if (!strcmp(cmd, "verify"))
    rc = cmd_verify(rag, &o);
  else
    rc = cmd_count(rag, &o);
  aiplat_rag_destroy(rag);
  aiplat_config_destroy(cfg);
  return rc;
}
