/* chat_stream: a streaming chat completion from the command line.
 *
 * Shows: an LLM client configured from the environment (VLLM_URL,
 * LLM_MODEL, LLM_API_KEY or LLM_API_KEY_FILE, LLM_TIMEOUT), a request with a
 * system and a user message, and a token callback that prints each delta
 * as it arrives. Works against vLLM or the project's local model backend.
 *
 *   VLLM_URL=http://127.0.0.1:8000 ./chat_stream "What is NATS?"
 * Exit codes: 0 answered, 1 the server failed or refused, 2 usage. */
#include <aiplat/aiplat.h>
#include <stdio.h>

static bool print_delta(const char *delta, size_t len, void *user_data) {
  (void)user_data;
  fwrite(delta, 1, len, stdout);
  fflush(stdout);
  return true; /* false would stop the stream */
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: chat_stream QUESTION\n");
    return 2;
  }
  aiplat_llm *llm = NULL;
  aiplat_llm_request *req = NULL;
  aiplat_llm_result *res = NULL;
  int rc = 1;
  if (aiplat_llm_create(&llm, NULL) == AIPLAT_OK &&
      aiplat_llm_request_create(&req) == AIPLAT_OK &&
      aiplat_llm_request_add_message(req, "system", "Answer briefly.") == AIPLAT_OK &&
      aiplat_llm_request_add_message(req, "user", argv[1]) == AIPLAT_OK &&
      aiplat_llm_stream(llm, req, print_delta, NULL, &res) == AIPLAT_OK) {
    printf("\n");
    rc = 0;
  } else {
    char err[512];
    aiplat_error_last(err, sizeof err);
    fprintf(stderr, "\nchat_stream: %s\n", err);
  }
  aiplat_llm_result_destroy(res);
  aiplat_llm_request_destroy(req);
  aiplat_llm_destroy(llm);
  return rc;
}
