/* Argo Workflows' and Kubeflow Pipelines' answers (lib/pipeline_wire.c).
 * Byte 0 picks what is read: a workflow, a pipeline, a run or an error
 * body; byte 1 sizes the caller's buffers (1..64 bytes); the rest is the
 * body. Copied names must be valid and fit, messages must fit and hold no
 * control characters. The name checks and the escaper see the body too. */
#include "config.h"
#include "fuzz_util.h"
#include "pipeline_wire.h"

static void check_msg(const char *msg, size_t len) {
  size_t n = strnlen(msg, len);
  FUZZ_CHECK(n < len);
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK((unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f);
  FUZZ_CHECK(!n || (msg[0] != ' ' && msg[n - 1] != ' '));
}

static void check_phase(aiplat_pipeline_phase ph) {
  FUZZ_CHECK(aiplat_pipeline_phase_str(ph) != NULL);
}

static int unhex(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Escaping must keep RFC 3986's unreserved bytes and decode back. */
static void check_escape(const char *s) {
  aip_buf b = {0};
  FUZZ_CHECK(aip_pipe_escape(&b, s));
  size_t k = 0;
  for (size_t i = 0; i < b.len; k++) {
    char c = b.data[i];
    if (c == '%') {
      FUZZ_CHECK(i + 2 < b.len);
      int hi = unhex(b.data[i + 1]), lo = unhex(b.data[i + 2]);
      FUZZ_CHECK(hi >= 0 && lo >= 0);
      FUZZ_CHECK((char)(hi << 4 | lo) == s[k]);
      i += 3;
    } else {
      FUZZ_CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                 c == '~');
      FUZZ_CHECK(c == s[k]);
      i++;
    }
  }
  FUZZ_CHECK(s[k] == '\0');
  aip_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet_logs();
  fuzz_in in = {data, size};
  uint8_t op = fuzz_byte(&in);
  size_t len = 1 + fuzz_byte(&in) % 64;
  const char *body = (const char *)in.p;
  /* exact sizes: overruns are caught */
  char *a = malloc(len), *b = malloc(len);
  if (!a || !b) abort();
  memset(a, 'x', len);
  memset(b, 'x', len);
  aiplat_pipeline_phase ph = AIPLAT_PIPELINE_UNKNOWN;
  aiplat_status st;
  switch (op % 4) {
    case 0:
      st = aip_pipe_argo_parse_workflow(NULL, body, in.n, a, len, &ph, b, len);
      if (st == AIPLAT_OK) {
        FUZZ_CHECK(strnlen(a, len) < len && aip_pipe_valid_k8s_name(a, NULL));
        check_msg(b, len);
        check_phase(ph);
      }
      break;
    case 1:
      st = aip_pipe_kfp_parse_pipeline(NULL, body, in.n, a, len);
      if (st == AIPLAT_OK)
        FUZZ_CHECK(strnlen(a, len) < len && aip_pipe_valid_kfp_id(a, NULL));
      break;
    case 2:
      st = aip_pipe_kfp_parse_run(NULL, body, in.n, a, len, &ph, b, len);
      if (st == AIPLAT_OK) {
        FUZZ_CHECK(strnlen(a, len) < len && aip_pipe_valid_kfp_id(a, NULL));
        check_msg(b, len);
        check_phase(ph);
      }
      break;
    default:
      st = AIPLAT_OK; /* error bodies: fuzz_http_error */
      break;
  }
  FUZZ_CHECK(st == AIPLAT_OK || st == AIPLAT_ERR_PROTOCOL);
  char *s = fuzz_rest_str(&in);
  const char *why = NULL;
  if (!aip_pipe_valid_namespace(s, &why)) FUZZ_CHECK(why);
  if (!aip_pipe_valid_k8s_name(s, &why)) FUZZ_CHECK(why);
  if (!aip_pipe_valid_kfp_id(s, &why)) FUZZ_CHECK(why);
  if (!aip_pipe_valid_param_key(s, &why)) FUZZ_CHECK(why);
  check_escape(s);
  free(s);
  free(a);
  free(b);
  return 0;
}
