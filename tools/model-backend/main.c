/* aiplat-model-backend: serves the OpenAI-compatible endpoints of the
 * platform's GPU model servers on loopback, from engines that run on a
 * plain machine. A development and CI stand-in, not a vLLM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend.h"
#include "config.h"

#ifndef BK_STT_MODEL_DIR
#define BK_STT_MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
#endif

static void usage(FILE *out) {
  fprintf(
      out,
      "Usage: aiplat-model-backend [OPTIONS]\n"
      "\n"
      "The local model backend of libaiplat: a DEVELOPMENT STAND-IN for the\n"
      "GPU model servers (vLLM, Whisper, TTS, embeddings, reranker). It\n"
      "speaks their OpenAI-compatible HTTP endpoints on loopback from small\n"
      "CPU engines; it is not a vLLM and its answers are not a model's:\n"
      "  POST /v1/chat/completions   extractive: quotes the prompt's numbered\n"
      "                              context passages ([1] ...) that best\n"
      "                              match the question; no generation\n"
      "  POST /v1/embeddings         hashed lexical features, L2-normalised\n"
      "  POST /v1/rerank, /rerank    BM25 mixed with embedding cosine\n"
      "  POST /v1/audio/speech       CMU flite speech synthesis (wav, pcm)\n"
      "  POST /v1/audio/transcriptions, /inference\n"
      "                              CMU pocketsphinx 0.8, English, WAV PCM\n"
      "  GET  /health, /v1/models\n"
      "Token counts are word counts.\n"
      "\n"
      "Options:\n"
      "  --host ADDR            address to listen on (default 127.0.0.1)\n"
      "  --port N               port (default 8000; 0 picks a free one)\n"
      "  --port-file FILE       write the bound port to FILE once listening\n"
      "  --no-stt               do not load pocketsphinx (no transcriptions)\n"
      "  --stt-model-dir DIR    pocketsphinx model directory\n"
      "                         (default %s)\n"
      "  --stt-decoders N       decoders kept loaded, 1..8 (default 1)\n"
      "  --voice NAME           default voice (default: TTS_VOICE or rms);\n"
      "                         voices: %s\n"
      "  --embedding-dim N      embedding dimension 1..%d (default %d)\n"
      "  --api-key KEY          require Authorization: Bearer KEY on /v1\n"
      "  --strict-models        answer 404 to model names not served\n"
      "  --stream-interval-ms N pause between streamed chunks (default 0)\n"
      "  --workers N            threads answering chat, embeddings and\n"
      "                         rerank, 1..64 (default 2); streams, delays\n"
      "                         and idle connections take no thread\n"
      "  --load-delay-ms N      wait before loading models (readiness tests)\n"
      "  --help, --version\n"
      "\n"
      "Faults are injected per request with the header X-Aiplat-Fault or the\n"
      "query string (?fault=ITEMS, or one ?NAME=VALUE per item); ITEMS are\n"
      "NAME[=VALUE] separated by ';' ',' '&' or blanks:\n"
      "  delay=MS status=CODE retry_after=S malformed truncate=BYTES\n"
      "  cut=EVENTS split=BYTES interval=MS stream_error=EVENTS\n"
      "  fail_first=N key=K (the first N requests with key K fail)\n"
      "See docs/decisions/0009-local-model-backend.md.\n"
      "\n"
      "On start it prints \"listening on http://HOST:PORT\"; GET /health is\n"
      "503 until the models are loaded, then 200. Logs are JSON lines on\n"
      "stderr (LOG_LEVEL). SIGTERM or SIGINT stops it cleanly.\n",
      BK_STT_MODEL_DIR, bk_tts_voice_list(), BK_EMBED_MAX_DIM,
      BK_EMBED_DEFAULT_DIM);
}

static bool parse_int(const char *opt, const char *v, long min, long max,
                      int *out) {
  errno = 0;
  char *end;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < min || x > max) {
    fprintf(stderr,
            "aiplat-model-backend: %s needs an integer %ld..%ld, got '%s'\n",
            opt, min, max, v);
    return false;
  }
  *out = (int)x;
  return true;
}

enum {
  OPT_HOST = 256,
  OPT_PORT,
  OPT_PORT_FILE,
  OPT_NO_STT,
  OPT_STT_DIR,
  OPT_STT_DEC,
  OPT_VOICE,
  OPT_DIM,
  OPT_API_KEY,
  OPT_STRICT,
  OPT_INTERVAL,
  OPT_LOAD_DELAY,
  OPT_WORKERS,
  OPT_HELP,
  OPT_VERSION
};

/* 0 ok, 1 error, 2 exit 0 (help/version). */
static int parse_args(int argc, char **argv, bk_options *o) {
  static const struct option longopts[] = {
      {"host", required_argument, NULL, OPT_HOST},
      {"port", required_argument, NULL, OPT_PORT},
      {"port-file", required_argument, NULL, OPT_PORT_FILE},
      {"no-stt", no_argument, NULL, OPT_NO_STT},
      {"stt-model-dir", required_argument, NULL, OPT_STT_DIR},
      {"stt-decoders", required_argument, NULL, OPT_STT_DEC},
      {"voice", required_argument, NULL, OPT_VOICE},
      {"embedding-dim", required_argument, NULL, OPT_DIM},
      {"api-key", required_argument, NULL, OPT_API_KEY},
      {"strict-models", no_argument, NULL, OPT_STRICT},
      {"stream-interval-ms", required_argument, NULL, OPT_INTERVAL},
      {"load-delay-ms", required_argument, NULL, OPT_LOAD_DELAY},
      {"workers", required_argument, NULL, OPT_WORKERS},
      {"help", no_argument, NULL, OPT_HELP},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  int c;
  opterr = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
      case OPT_HOST:
        o->host = optarg;
        break;
      case OPT_PORT:
        if (!parse_int("--port", optarg, 0, 65535, &o->port)) return 1;
        break;
      case OPT_PORT_FILE:
        o->port_file = optarg;
        break;
      case OPT_NO_STT:
        o->no_stt = true;
        break;
      case OPT_STT_DIR:
        o->stt_model_dir = optarg;
        break;
      case OPT_STT_DEC:
        if (!parse_int("--stt-decoders", optarg, 1, 8, &o->stt_decoders))
          return 1;
        break;
      case OPT_VOICE:
        o->default_voice = optarg;
        break;
      case OPT_DIM:
        if (!parse_int("--embedding-dim", optarg, 1, BK_EMBED_MAX_DIM,
                       &o->embedding_dim))
          return 1;
        break;
      case OPT_API_KEY:
        o->api_key = optarg;
        break;
      case OPT_STRICT:
        o->strict_models = true;
        break;
      case OPT_INTERVAL:
        if (!parse_int("--stream-interval-ms", optarg, 0, 10000,
                       &o->stream_interval_ms))
          return 1;
        break;
      case OPT_LOAD_DELAY:
        if (!parse_int("--load-delay-ms", optarg, 0, 600000, &o->load_delay_ms))
          return 1;
        break;
      case OPT_WORKERS:
        if (!parse_int("--workers", optarg, 1, 64, &o->workers)) return 1;
        break;
      case OPT_HELP:
        usage(stdout);
        return 2;
      case OPT_VERSION:
        printf("aiplat-model-backend %s (local development stand-in)\n",
               PACKAGE_VERSION);
        return 2;
      default:
        fprintf(stderr,
                "aiplat-model-backend: unknown or incomplete option '%s' "
                "(see --help)\n",
                argv[optind - 1]);
        return 1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "aiplat-model-backend: unexpected argument '%s'\n",
            argv[optind]);
    return 1;
  }
  return 0;
}

static bool write_port_file(const char *path, int port) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return false;
  fprintf(f, "%d\n", port);
  bool ok = fclose(f) == 0 && rename(tmp, path) == 0;
  if (!ok) remove(tmp);
  return ok;
}

/* Wait for SIGTERM/SIGINT for at most ms (forever when ms < 0). */
static bool wait_signal(const sigset_t *set, int ms) {
  if (ms < 0) {
    int sig;
    return sigwait(set, &sig) == 0;
  }
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (sigtimedwait(set, NULL, &ts) < 0) {
    if (errno == EAGAIN) return false;
    if (errno != EINTR) return false;
  }
  return true;
}

/* Thousands of connections need thousands of descriptors: take the hard
 * limit (the soft one is often 1024). */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static int fail(const char *what) {
  fprintf(stderr, "aiplat-model-backend: %s\n", what);
  aip_log_kv(AIPLAT_LOG_ERROR, "cannot start", "error", what,
             (const char *)NULL);
  return 1;
}

int main(int argc, char **argv) {
  bk_server s;
  memset(&s, 0, sizeof s);
  s.opt.host = "127.0.0.1";
  s.opt.port = 8000;
  s.opt.embedding_dim = BK_EMBED_DEFAULT_DIM;
  s.opt.stt_model_dir = BK_STT_MODEL_DIR;
  s.opt.stt_decoders = 1;
  s.opt.workers = 2;
  s.started = (long)time(NULL);
  int pa = parse_args(argc, argv, &s.opt);
  if (pa) return pa == 2 ? 0 : 2;

  aiplat_log_set_service("aiplat-model-backend");
  aiplat_config *cfg = NULL;
  if (aiplat_config_create(&cfg) != AIPLAT_OK) return fail("out of memory");
  const char *voice = NULL;
  if (!s.opt.default_voice &&
      aiplat_config_get_string(cfg, "TTS_VOICE", &voice) == AIPLAT_OK)
    s.opt.default_voice = voice;
  const char *level = NULL;
  if (aiplat_config_get_string(cfg, "LOG_LEVEL", &level) == AIPLAT_OK &&
      level) {
    aiplat_log_level lv;
    if (aiplat_log_level_parse(level, &lv) != AIPLAT_OK) {
      aiplat_config_destroy(cfg);
      return fail("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR");
    }
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* server threads inherit it */
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  s.oneshot = bk_oneshot_create();

  int rc = 0;
  char err[512];
  int port = 0;
  bk_http *http = s.oneshot ? bk_http_start(&s, err, sizeof err, &port) : NULL;
  if (!http) {
    rc = fail(s.oneshot ? err : "out of memory");
    goto out;
  }
  bool v6 = strchr(s.opt.host, ':') != NULL;
  printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", s.opt.host,
         v6 ? "]" : "", port);
  fflush(stdout);
  char port_s[8], conns[16];
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(conns, sizeof conns, "%u", bk_http_max_connections(http));
  aip_log_kv(AIPLAT_LOG_INFO, "listening", "host", s.opt.host, "port", port_s,
             "max_connections", conns, "note",
             "local development stand-in, not a GPU model server",
             (const char *)NULL);
  if (s.opt.port_file && !write_port_file(s.opt.port_file, port)) {
    rc = fail("cannot write --port-file");
    goto out;
  }

  bool stop = s.opt.load_delay_ms > 0 && wait_signal(&set, s.opt.load_delay_ms);
  int64_t t0 = aip_now_ms();
  if (!stop) {
    s.tts = bk_tts_create(s.opt.default_voice, err, sizeof err);
    if (!s.tts) {
      rc = fail(err);
      goto out;
    }
    if (!s.opt.no_stt) {
      s.stt = bk_stt_create(s.opt.stt_model_dir, s.opt.stt_decoders, err,
                            sizeof err);
      if (!s.stt) {
        rc = fail(err);
        goto out;
      }
    }
    char ms[24];
    snprintf(ms, sizeof ms, "%lld", (long long)(aip_now_ms() - t0));
    atomic_store(&s.ready, 1);
    aip_log_kv(AIPLAT_LOG_INFO, "models loaded", "load_ms", ms, "stt",
               s.stt ? "pocketsphinx en-us" : "off", "tts", "flite",
               (const char *)NULL);
    wait_signal(&set, -1);
  }
  aip_log_kv(AIPLAT_LOG_INFO, "stopping", (const char *)NULL);

out:
  atomic_store(&s.stopping, 1);
  bk_http_stop(http);
  bk_stt_destroy(s.stt);
  bk_tts_destroy(s.tts);
  bk_oneshot_destroy(s.oneshot);
  if (rc == 0) aip_log_kv(AIPLAT_LOG_INFO, "stopped", (const char *)NULL);
  aiplat_config_destroy(cfg);
  aiplat_log_set_service(NULL);
  return rc;
}
