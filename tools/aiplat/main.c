/* aiplat: the command-line client of the platform. Talks to the running
 * services over NATS: chat, voice, transcribe, speak, pipelines, discovery.
 * docs/aiplat-cli.md, docs/decisions/0017-bridges-and-cli.md. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char USAGE[] =
    "Usage: aiplat [OPTIONS] COMMAND [ARGS...]\n"
    "\n"
    "The command-line client of the AI platform: talks to the running\n"
    "services over NATS (NATS_URL, default nats://localhost:4222).\n"
    "\n"
    "Commands:\n"
    "  chat QUESTION            ask chat-handler (ChatRequest, streamed) on\n"
    "                           ai.chat.user.USER.message; prints the answer "
    "as\n"
    "                           it arrives, then its sources\n"
    "  voice IN.wav [-o OUT.wav]\n"
    "                           ask voice-assistant (VoiceRequest) on\n"
    "                           ai.voice.user.USER.request; prints the\n"
    "                           transcript and the answer, writes the spoken\n"
    "                           answer to OUT\n"
    "  transcribe IN.wav        speech to text through stt-module\n"
    "                           (ai.stt.transcribe); prints the text\n"
    "  speak TEXT -o OUT.wav    text to speech through tts-module\n"
    "                           (ai.tts.synthesize); writes the audio\n"
    "  pipeline trigger ENGINE PIPELINE [KEY=VALUE...]\n"
    "                           start a run through pipeline-bridge\n"
    "                           (ai.pipeline.trigger); ENGINE is argo or\n"
    "                           kubeflow; prints the run id\n"
    "  pipeline status RUN_ID   ask pipeline-bridge for a run's state\n"
    "                           (ai.pipeline.query)\n"
    "  services [NAME]          discover running services through the NATS\n"
    "                           micro protocol ($SRV.STATS): every instance\n"
    "                           with its endpoints, requests, errors and\n"
    "                           average latency\n"
    "\n"
    "Options:\n"
    "  -s, --server URL         NATS server (overrides NATS_URL)\n"
    "  -t, --timeout DURATION   how long to wait for an answer: 30s, 2m, "
    "500ms\n"
    "                           (a bare number is seconds; default 60s; with\n"
    "                           --watch, the whole watch: default no limit)\n"
    "      --json               machine output: one JSON object per line\n"
    "                           (protobuf JSON mapping of the reply)\n"
    "  -u, --user ID            user id in the subject (default: cli)\n"
    "      --conversation ID    conversation id (chat, voice)\n"
    "      --no-rag             answer without the knowledge base (chat, "
    "voice)\n"
    "  -o, --output FILE        where audio goes ('-': standard output)\n"
    "      --voice NAME         voice of the spoken answer (speak, voice)\n"
    "      --language CODE      language of the audio (transcribe, voice)\n"
    "      --format FMT         audio format: of the input (transcribe, "
    "voice;\n"
    "                           default from the file name) or asked for\n"
    "                           (speak: wav, mp3, ...)\n"
    "      --speed X            speech speed 0.25..4 (speak)\n"
    "  -v, --verbose            transcribe: language, duration and segments\n"
    "  -n, --namespace NS       Argo namespace (pipeline trigger)\n"
    "      --pipeline-version ID\n"
    "                           Kubeflow pipeline version (pipeline trigger)\n"
    "  -e, --engine ENGINE      engine of the run (pipeline status)\n"
    "  -w, --watch              follow the run's status events\n"
    "                           (ai.pipeline.status.RUN_ID) until it ends\n"
    "      --wait DURATION      how long to gather replies (services;\n"
    "                           default 500ms)\n"
    "  -h, --help               this text\n"
    "  -V, --version            the version\n"
    "\n"
    "Files named '-' are standard input or output. The NATS connection is\n"
    "configured as the services' (NATS_URL, NATS_CREDS, NATS_TOKEN,\n"
    "NATS_USER/NATS_PASSWORD, NATS_TLS_*; NAME_FILE reads a secret from a\n"
    "file). Messages go to stderr, results to stdout.\n"
    "\n"
    "Exit status:\n"
    "  0  success (a watched run succeeded)\n"
    "  1  the service answered with an error (printed as\n"
    "     \"aiplat: ...: CODE: message\"), or a watched run failed\n"
    "  2  usage: bad arguments, or an input too large for one NATS message\n"
    "  3  no answer: no NATS server, no service listening, or a timeout\n"
    "  4  configuration: a bad setting or credentials refused\n"
    "  5  a file could not be read or written\n";

static const struct option LONG_OPTS[] = {
    {"server", required_argument, NULL, 's'},
    {"timeout", required_argument, NULL, 't'},
    {"json", no_argument, NULL, 'J'},
    {"user", required_argument, NULL, 'u'},
    {"conversation", required_argument, NULL, 'C'},
    {"no-rag", no_argument, NULL, 'R'},
    {"output", required_argument, NULL, 'o'},
    {"voice", required_argument, NULL, 'O'},
    {"language", required_argument, NULL, 'L'},
    {"format", required_argument, NULL, 'F'},
    {"speed", required_argument, NULL, 'S'},
    {"verbose", no_argument, NULL, 'v'},
    {"namespace", required_argument, NULL, 'n'},
    {"pipeline-version", required_argument, NULL, 'P'},
    {"engine", required_argument, NULL, 'e'},
    {"watch", no_argument, NULL, 'w'},
    {"wait", required_argument, NULL, 'W'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0}};

static bool parse_duration(const char *s, int64_t *out) {
  char *end;
  double secs = strtod(s, &end);
  if (end != s && *end == '\0') { /* a bare number: seconds */
    if (!(secs > 0 && secs < 1e9)) return false;
    *out = (int64_t)(secs * 1000);
    return *out > 0;
  }
  if (aiplat_duration_parse_ms(s, out) != AIPLAT_OK) {
    aiplat_error_clear();
    return false;
  }
  return *out > 0;
}

static const char *option_name(unsigned bit) {
  for (const struct option *o = LONG_OPTS; o->name; o++) {
    unsigned b = 0;
    switch (o->val) {
      case 's':
        b = OPT_SERVER;
        break;
      case 't':
        b = OPT_TIMEOUT;
        break;
      case 'J':
        b = OPT_JSON;
        break;
      case 'u':
        b = OPT_USER;
        break;
      case 'C':
        b = OPT_CONVERSATION;
        break;
      case 'R':
        b = OPT_NO_RAG;
        break;
      case 'o':
        b = OPT_OUTPUT;
        break;
      case 'O':
        b = OPT_VOICE;
        break;
      case 'L':
        b = OPT_LANGUAGE;
        break;
      case 'F':
        b = OPT_FORMAT;
        break;
      case 'S':
        b = OPT_SPEED;
        break;
      case 'v':
        b = OPT_VERBOSE;
        break;
      case 'n':
        b = OPT_NAMESPACE;
        break;
      case 'P':
        b = OPT_PIPELINE_VERSION;
        break;
      case 'e':
        b = OPT_ENGINE;
        break;
      case 'w':
        b = OPT_WATCH;
        break;
      case 'W':
        b = OPT_WAIT;
        break;
      default:
        break;
    }
    if (b == bit) return o->name;
  }
  return "?";
}

typedef struct command {
  const char *word1, *word2; /* word2 NULL for one-word commands */
  int (*run)(cli *c);
  unsigned allowed;
  int min_args, max_args; /* -1: no limit */
  const char *synopsis;
} command;

#define COMMON (OPT_SERVER | OPT_TIMEOUT | OPT_JSON)
static const command COMMANDS[] = {
    {"chat", NULL, cmd_chat, COMMON | OPT_USER | OPT_CONVERSATION | OPT_NO_RAG,
     1, 1, "chat QUESTION"},
    {"voice", NULL, cmd_voice,
     COMMON | OPT_USER | OPT_CONVERSATION | OPT_NO_RAG | OPT_OUTPUT |
         OPT_VOICE | OPT_LANGUAGE | OPT_FORMAT,
     1, 1, "voice IN.wav [-o OUT.wav]"},
    {"transcribe", NULL, cmd_transcribe,
     COMMON | OPT_LANGUAGE | OPT_FORMAT | OPT_VERBOSE, 1, 1,
     "transcribe IN.wav"},
    {"speak", NULL, cmd_speak,
     COMMON | OPT_OUTPUT | OPT_VOICE | OPT_FORMAT | OPT_SPEED, 1, 1,
     "speak TEXT -o OUT.wav"},
    {"pipeline", "trigger", cmd_pipeline_trigger,
     COMMON | OPT_NAMESPACE | OPT_PIPELINE_VERSION | OPT_WATCH, 2, -1,
     "pipeline trigger ENGINE PIPELINE [KEY=VALUE...]"},
    {"pipeline", "status", cmd_pipeline_status, COMMON | OPT_ENGINE | OPT_WATCH,
     1, 1, "pipeline status RUN_ID"},
    {"services", NULL, cmd_services, OPT_SERVER | OPT_JSON | OPT_WAIT, 0, 1,
     "services [NAME]"},
};

static int parse(cli *c, int argc, char **argv, char ***pos, int *npos) {
  int opt;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "+s:t:u:o:vn:e:whV", LONG_OPTS,
                            NULL)) != -1 ||
         optind < argc) {
    if (opt == -1) {
      if (strcmp(argv[optind - 1], "--") ==
          0) { /* everything after is positional */
        while (optind < argc) (*pos)[(*npos)++] = argv[optind++];
        break;
      }
      (*pos)[(*npos)++] =
          argv[optind++]; /* a positional argument; go on after it */
      continue;
    }
    unsigned bit = 0;
    switch (opt) {
      case 's':
        c->server = optarg, bit = OPT_SERVER;
        break;
      case 't':
        if (!parse_duration(optarg, &c->timeout_ms))
          return cli_usage(
              "--timeout needs a duration such as 30s, 2m or 500ms");
        bit = OPT_TIMEOUT;
        break;
      case 'J':
        c->json = true, bit = OPT_JSON;
        break;
      case 'u':
        c->user = optarg, bit = OPT_USER;
        break;
      case 'C':
        c->conversation = optarg, bit = OPT_CONVERSATION;
        break;
      case 'R':
        c->no_rag = true, bit = OPT_NO_RAG;
        break;
      case 'o':
        c->output = optarg, bit = OPT_OUTPUT;
        break;
      case 'O':
        c->voice = optarg, bit = OPT_VOICE;
        break;
      case 'L':
        c->language = optarg, bit = OPT_LANGUAGE;
        break;
      case 'F':
        c->format = optarg, bit = OPT_FORMAT;
        break;
      case 'S': {
        char *end;
        c->speed = strtod(optarg, &end);
        if (end == optarg || *end || !(c->speed >= 0.25 && c->speed <= 4.0))
          return cli_usage("--speed needs a number from 0.25 to 4");
        bit = OPT_SPEED;
        break;
      }
      case 'v':
        c->verbose = true, bit = OPT_VERBOSE;
        break;
      case 'n':
        c->ns = optarg, bit = OPT_NAMESPACE;
        break;
      case 'P':
        c->pipeline_version = optarg, bit = OPT_PIPELINE_VERSION;
        break;
      case 'e':
        c->engine = optarg, bit = OPT_ENGINE;
        break;
      case 'w':
        c->watch = true, bit = OPT_WATCH;
        break;
      case 'W':
        if (!parse_duration(optarg, &c->wait_ms))
          return cli_usage("--wait needs a duration such as 500ms or 2s");
        bit = OPT_WAIT;
        break;
      case 'h':
        fputs(USAGE, stdout);
        return CLI_OK;
      case 'V':
        printf("aiplat %s\n", aiplat_version_string());
        return CLI_OK;
      default:
        if (optopt)
          return cli_usage("option -%c is unknown or needs a value", optopt);
        return cli_usage("option '%s' is unknown or needs a value",
                         argv[optind - 1]);
    }
    c->given |= bit;
  }
  return -1;
}

static void drop_log(aiplat_log_level level, const char *record, size_t len,
                     void *user_data) {
  (void)level, (void)record, (void)len, (void)user_data;
}

int main(int argc, char **argv) {
  /* No library log records unless LOG_LEVEL asks for them: results go to
   * stdout, one-line messages to stderr. */
  if (!getenv("LOG_LEVEL")) aiplat_log_set_callback(drop_log, NULL);
  cli c = {0};
  c.user = "cli";
  char **pos = calloc((size_t)argc + 1, sizeof *pos);
  if (!pos) return cli_fail(CLI_EIO, "out of memory");
  int npos = 0;
  int rc = parse(&c, argc, argv, &pos, &npos);
  if (rc >= 0) {
    free(pos);
    return rc;
  }
  if (npos == 0) {
    free(pos);
    return cli_usage("no command given");
  }
  const command *cmd = NULL;
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0] && !cmd; i++) {
    if (strcmp(pos[0], COMMANDS[i].word1) != 0) continue;
    bool second_matches = !COMMANDS[i].word2 ||
                          (npos >= 2 && strcmp(pos[1], COMMANDS[i].word2) == 0);
    if (second_matches) cmd = &COMMANDS[i];
  }
  if (!cmd) {
    rc = strcmp(pos[0], "pipeline") == 0
             ? cli_usage("pipeline needs 'trigger' or 'status'")
             : cli_usage("unknown command '%.40s'", pos[0]);
    free(pos);
    return rc;
  }
  int skip = cmd->word2 ? 2 : 1;
  c.args = pos + skip;
  c.nargs = npos - skip;
  unsigned extra = c.given & ~cmd->allowed;
  if (extra) {
    unsigned bit = extra & -extra;
    rc = cli_usage("%s does not take --%s", cmd->synopsis, option_name(bit));
  } else if (c.nargs < cmd->min_args ||
             (cmd->max_args >= 0 && c.nargs > cmd->max_args)) {
    rc = cli_usage("usage: aiplat %s", cmd->synopsis);
  } else {
    rc = cmd->run(&c);
  }
  cli_disconnect(&c);
  free(pos);
  return rc;
}
