/* chat-handler: answers ChatRequests on ai.chat.user.*.message with
 * retrieval-augmented generation, streamed or whole, keeping multi-turn
 * history (docs/decisions/0016-chat-and-voice-services.md). All the logic
 * is the library's chat pipeline (aiplat/chat.h); this is its service.
 * Start-up and exit statuses: docs/exit-status.md. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>

#include "../svchelp.h"

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
    "start with one line naming it (exit status 4).\n";

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

/* One line on stderr with the thread's last error; its exit status
 * (docs/exit-status.md). */
static int die(void) {
  char err[512];
  aiplat_status st = aiplat_error_last(err, sizeof err);
  for (char *p = err; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  fprintf(stderr, NAME ": %s\n", *err ? err : aiplat_status_str(st));
  return st ? aiplat_status_exit_code(st) : AIPLAT_EXIT_FAILURE;
}

/* Serve until SIGTERM or SIGINT: 0, or 1 when the shutdown was not clean. */
static int serve(aiplat_service *svc) {
  if (aiplat_service_run(svc) == AIPLAT_OK) return AIPLAT_EXIT_OK;
  char err[512];
  aiplat_service_last_error(svc, err, sizeof err);
  fprintf(stderr, NAME ": %s\n", err);
  return AIPLAT_EXIT_FAILURE;
}

int main(int argc, char **argv) {
  int rc0 = svcu_args(argc, argv, NAME, &HELP);
  if (rc0 >= 0) return rc0;
  aiplat_config *cfg = NULL;
  aiplat_chat *chat = NULL;
  aiplat_service *svc = NULL;
  const char *stream = NULL, *name = NULL;
  int64_t interval = 0;
  aiplat_status st = aiplat_config_create(&cfg);
  if (!st) st = aiplat_config_validate(cfg);
  if (!st) st = aiplat_config_get_string(cfg, "SERVICE_NAME", &name);
  if (!st) st = aiplat_config_get_string(cfg, "CHAT_STREAM", &stream);
  if (!st)
    st = aiplat_config_get_duration_ms(cfg, "READY_CHECK_INTERVAL", &interval);
  int rc = -1;
  if (!st && interval < 10) { /* the probes' shortest interval */
    fputs(NAME ": config: READY_CHECK_INTERVAL must be at least 10ms\n", stderr);
    rc = AIPLAT_EXIT_CONFIG;
    st = AIPLAT_ERR_CONFIG;
  }
  if (!st) st = aiplat_chat_create(&chat, cfg);
  if (!st)
    st = aiplat_service_create(&svc, cfg, name && *name ? name : NAME,
                               aiplat_version_string(),
                               "Chat with retrieval-augmented generation");
  if (!st && stream && *stream)
    st = aiplat_service_add_js_endpoint(
        svc, "chat", stream, NAME, aiplat_subject_chat_user_message_filter(),
        AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE,
        aiplat_chat_handle_request, chat);
  else if (!st)
    st = aiplat_service_add_endpoint(
        svc, "chat", aiplat_subject_chat_user_message_filter(), NAME,
        AIPLAT_MSG_CHAT_REQUEST, AIPLAT_MSG_CHAT_RESPONSE,
        aiplat_chat_handle_request, chat);
  if (!st) st = aiplat_chat_set_bus(chat, aiplat_service_bus(svc));
  if (!st)
    st = aiplat_chat_add_checks(chat, aiplat_service_health(svc), interval);
  if (!st) st = aiplat_service_start(svc); /* NATS, the health port */
  if (rc < 0) rc = st ? die() : serve(svc); /* until SIGTERM */
  aiplat_service_destroy(svc); /* first: its health checks use the pipeline */
  aiplat_chat_destroy(chat);
  aiplat_config_destroy(cfg);
  return rc;
}
