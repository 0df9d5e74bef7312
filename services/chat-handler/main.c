/* chat-handler: answers ChatRequests on ai.chat.user.*.message with
 * retrieval-augmented generation, streamed or whole, keeping multi-turn
 * history (docs/decisions/0016-chat-and-voice-services.md). All the logic
 * is the library's chat pipeline (aiplat/chat.h); this is its service. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>

#include "svcutil.h"

#define NAME "chat-handler"

static const char ABOUT[] =
    "Answers ChatRequest messages on ai.chat.user.*.message (queue group\n" NAME
    "): optional retrieval from the knowledge base, then the LLM, then\n"
    "a ChatResponse to the reply subject and ai.chat.response.{requestId};\n"
    "with stream set, ChatChunk messages first. With CHAT_STREAM set, the\n"
    "requests are taken durably from that JetStream stream instead.\n"
    "\n"
    "Configured by the environment only: the settings below (NAME_FILE\n"
    "instead of NAME reads a secret from a file); every setting is in\n"
    "README.md, \"Configuration\". A wrong setting stops the program at\n"
    "start with one line naming it (exit status 2).\n";

static const char *const SETTINGS[] = {
    "VLLM_URL", "LLM_MODEL", "LLM_API_KEY", "LLM_MAX_TOKENS",
    "LLM_TEMPERATURE", "LLM_TIMEOUT", "EMBEDDINGS_URL", "EMBEDDINGS_MODEL",
    "RERANKER_URL", "VECTOR_STORE", "VECTOR_STORE_PATH", "MILVUS_HOST",
    "MILVUS_PORT", "MILVUS_COLLECTION", "RAG_TOP_K", "RAG_CANDIDATES",
    "RAG_MIN_SCORE", "RAG_CONTEXT_CHARS", "SYSTEM_PROMPT",
    "CHAT_HISTORY_TURNS", "CHAT_HISTORY_TTL", "CHAT_HISTORY_BUCKET",
    "CHAT_STREAM", "READY_CHECK_INTERVAL", SVCU_COMMON_SETTINGS, NULL};

static const svcu_help HELP = {
    "Text chat service: ChatRequest, optional retrieval, LLM, ChatResponse.",
    ABOUT, SETTINGS};

/* One line on stderr with the thread's last error; the exit status. */
static int die(const char *what, int code) {
  char err[512];
  aiplat_error_last(err, sizeof err);
  fprintf(stderr, NAME ": %s%s\n", what, err);
  return code;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    if (!strcmp(argv[1], "--version")) {
      printf(NAME " %s\n", aiplat_version_string());
      return 0;
    }
    svcu_print_help(strcmp(argv[1], "--help") ? stderr : stdout, NAME, &HELP);
    return strcmp(argv[1], "--help") ? 2 : 0;
  }
  aiplat_config *cfg = NULL;
  aiplat_chat *chat = NULL;
  aiplat_service *svc = NULL;
  const char *stream = NULL;
  int64_t interval = 0;
  if (aiplat_config_create(&cfg) != AIPLAT_OK) return die("", 2);
  int rc = 2;
  if (aiplat_config_validate(cfg) != AIPLAT_OK ||
      aiplat_config_get_duration_ms(cfg, "READY_CHECK_INTERVAL", &interval) !=
          AIPLAT_OK ||
      aiplat_config_get_string(cfg, "CHAT_STREAM", &stream) != AIPLAT_OK) {
    rc = die("", 2);
    goto out;
  }
  if (interval < 10) {
    fprintf(stderr,
            NAME ": config: READY_CHECK_INTERVAL must be at least 10ms\n");
    goto out;
  }
  if (aiplat_chat_create(&chat, cfg) != AIPLAT_OK ||
      aiplat_service_create(&svc, cfg, NAME, aiplat_version_string(),
                            "Chat with retrieval-augmented generation") !=
          AIPLAT_OK) {
    rc = die("", 2);
    goto out;
  }
  aiplat_status st;
  if (stream && *stream)
    st = aiplat_service_add_js_endpoint(
        svc, "chat", stream, NAME, aiplat_subject_chat_user_message_filter(),
        AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE,
        aiplat_chat_handle_request, chat);
  else
    st = aiplat_service_add_endpoint(
        svc, "chat", aiplat_subject_chat_user_message_filter(), NAME,
        AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE,
        aiplat_chat_handle_request, chat);
  if (st == AIPLAT_OK) st = aiplat_chat_set_bus(chat, aiplat_service_bus(svc));
  if (st == AIPLAT_OK)
    st = aiplat_chat_add_checks(chat, aiplat_service_health(svc), interval);
  if (st != AIPLAT_OK) {
    rc = die("", 2);
    goto out;
  }
  rc = 0;
  if (aiplat_service_run(svc) != AIPLAT_OK) rc = die("", 1); /* until SIGTERM */
out:
  aiplat_service_destroy(svc); /* first: its health checks use the pipeline */
  aiplat_chat_destroy(chat);
  aiplat_config_destroy(cfg);
  return rc;
}
