/* requester: send one ChatRequest and print the ChatResponse.
 *
 * Shows: a bus from the environment (NATS_URL), a typed request with a
 * timeout, and reading a reply that may carry an error instead of text.
 *
 *   ./requester SUBJECT TEXT [TIMEOUT_MS]
 * Exit codes: 0 answered, 1 error reply, 2 usage or connection, 3 timeout
 * or no responder. */
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: requester SUBJECT TEXT [TIMEOUT_MS]\n");
    return 2;
  }
  int64_t timeout = argc > 3 ? strtoll(argv[3], NULL, 10) : 5000;
  char err[512];
  aiplat_bus *bus = NULL;
  aiplat_msg *req = NULL, *rep = NULL;
  aiplat_bus_msg *reply = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = 2;
  if (aiplat_bus_create(&bus, NULL) != AIPLAT_OK || aiplat_bus_connect(bus) != AIPLAT_OK)
    goto fail;
  if (aiplat_msg_create(&req, AIPLAT_MSG_CHAT_REQUEST) != AIPLAT_OK ||
      aiplat_msg_set_string(req, "user_id", "requester") != AIPLAT_OK ||
      aiplat_msg_set_string(req, "message", argv[2]) != AIPLAT_OK ||
      aiplat_msg_encode(req, &buf, &len) != AIPLAT_OK)
    goto fail;
  aiplat_status st = aiplat_bus_request(bus, argv[1], buf, len, NULL, timeout, &reply);
  if (st == AIPLAT_ERR_TIMEOUT || st == AIPLAT_ERR_UNAVAILABLE) {
    rc = 3;
    goto fail;
  }
  if (st != AIPLAT_OK ||
      aiplat_msg_decode(&rep, AIPLAT_MSG_CHAT_RESPONSE, aiplat_bus_msg_data(reply),
                        aiplat_bus_msg_len(reply)) != AIPLAT_OK)
    goto fail;
  if (aiplat_msg_has(rep, "error")) {
    aiplat_msg *e = NULL;
    const char *text = "";
    int64_t code = 0;
    aiplat_msg_get_message(rep, "error", &e);
    aiplat_msg_get_string(e, "message", &text);
    aiplat_msg_get_int64(e, "code", &code);
    fprintf(stderr, "error %lld (%s): %s\n", (long long)code,
            aiplat_status_str((aiplat_status)code), text);
    rc = 1;
  } else {
    const char *text = "";
    aiplat_msg_get_string(rep, "text", &text);
    printf("%s\n", text);
    rc = 0;
  }
  goto done;
fail:
  aiplat_error_last(err, sizeof err);
  fprintf(stderr, "requester: %s\n", err);
done:
  aiplat_free(buf);
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(rep);
  aiplat_bus_msg_destroy(reply);
  aiplat_bus_destroy(bus);
  return rc;
}
