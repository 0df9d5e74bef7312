/* requester: send one ChatRequest and print the ChatResponse.
 *
 * Shows: a bus from the environment (NATS_URL), a typed request through
 * the client (aiplat/client.h: encode, headers, wait, decode, and the
 * reply's error as the returned status), and the error's name.
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
  aiplat_client *client = NULL;
  aiplat_client_options *opts = NULL;
  aiplat_msg *req = NULL, *rep = NULL;
  int rc = 2;
  if (aiplat_bus_create(&bus, NULL) != AIPLAT_OK || aiplat_bus_connect(bus) != AIPLAT_OK ||
      aiplat_client_create(&client, bus) != AIPLAT_OK ||
      aiplat_client_options_create(&opts) != AIPLAT_OK ||
      aiplat_client_options_set_timeout_ms(opts, timeout) != AIPLAT_OK)
    goto fail;
  if (aiplat_msg_create(&req, AIPLAT_MSG_CHAT_REQUEST) != AIPLAT_OK ||
      aiplat_msg_set_string(req, "user_id", "requester") != AIPLAT_OK ||
      aiplat_msg_set_string(req, "message", argv[2]) != AIPLAT_OK)
    goto fail;
  aiplat_status st =
      aiplat_client_request(client, argv[1], req, AIPLAT_MSG_CHAT_RESPONSE, opts, &rep);
  if (st == AIPLAT_OK) {
    const char *text = "";
    aiplat_msg_get_string(rep, "text", &text);
    printf("%s\n", text);
    rc = 0;
    goto done;
  }
  aiplat_error_last(err, sizeof err);
  if (rep) { /* the service answered with an error: "CODE: message" */
    fprintf(stderr, "requester: %s\n", err);
    rc = 1;
  } else {
    fprintf(stderr, "requester: %s (%s)\n", err, aiplat_status_name(st));
    rc = st == AIPLAT_ERR_TIMEOUT || st == AIPLAT_ERR_UNAVAILABLE ? 3 : 2;
  }
  goto done;
fail:
  aiplat_error_last(err, sizeof err);
  fprintf(stderr, "requester: %s\n", err);
done:
  aiplat_msg_destroy(req);
  aiplat_msg_destroy(rep);
  aiplat_client_options_destroy(opts);
  aiplat_client_destroy(client);
  aiplat_bus_destroy(bus);
  return rc;
}
