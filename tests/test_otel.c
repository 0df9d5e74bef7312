/* Traces end to end: chat-handler as a process over a real nats-server and
 * the local model backend, exporting to a fake OTLP/HTTP collector
 * (tests/otlp_collector.js) that decodes with the protobuf decoders
 * generated from the official OpenTelemetry definitions. Skipped (77) when
 * node or that package is not installed (tests/otlp-deps.sh installs it). */
#include <aiplat/aiplat.h>
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/bk_client.h"
#include "chat_testutil.h"
#include "harness/nats_harness.h"
#include "svc_proc.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PSID "00f067aa0ba902b7"
/* the trace of the retrieval test */
#define TID_RAG "5c0a2f3577b34da6a3ce929d0e0e4737"
/* the trace of the client test */
#define TID_CLIENT "6d1b2f3577b34da6a3ce929d0e0e4738"

static th_nats *nats;
static bkc_proc B;
static char dir[64], chat_bin[1024], node_path[1024];
static pid_t collector = -1;
static int collector_port;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_mode(const char *mode) {
  char p[128];
  snprintf(p, sizeof p, "%s/mode", dir);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(mode, f);
  fclose(f);
}

static void find_node_path(void) {
  const char *env = getenv("AIPLAT_OTLP_NODE_PATH");
  const char *b = getenv("top_builddir");
  if (env && *env)
    snprintf(node_path, sizeof node_path, "%s", env);
  else
    snprintf(node_path, sizeof node_path, "%s/tests/otlp-node/node_modules",
             b ? b : ".");
}

/* node and the decoder package are there. */
static bool decoder_available(void) {
  find_node_path();
  char cmd[1400];
  snprintf(cmd, sizeof cmd,
           "NODE_PATH='%s' node -e \"require('@opentelemetry/otlp-transformer/"
           "build/src/generated/root')\" >/dev/null 2>&1",
           node_path);
  return system(cmd) == 0;
}

static void start_collector(void) {
  const char *src = getenv("top_srcdir");
  char script[1024], portfile[128];
  snprintf(script, sizeof script, "%s/tests/otlp_collector.js", src ? src : "..");
  snprintf(portfile, sizeof portfile, "%s/port", dir);
  collector = fork();
  ck_assert_int_ge(collector, 0);
  if (collector == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setenv("NODE_PATH", node_path, 1);
    execlp("node", "node", script, dir, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &collector_port);
      fclose(f);
      if (ok == 1) return;
    }
    usleep(50000);
  }
  ck_abort_msg("the fake collector did not start");
}

static void up(void) {
  setenv("LOG_LEVEL", "WARNING", 1);
  snprintf(dir, sizeof dir, "/tmp/aiplat-otel-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  set_mode("ok");
  start_collector();
  /* this process traces too (the client's requests), to the same
   * collector: set before the library first reads the settings */
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", collector_port);
  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint, 1);
  setenv("OTEL_BSP_SCHEDULE_DELAY", "100", 1);
  setenv("OTEL_SERVICE_NAME", "otel-test-client", 1);
  nats = th_nats_start(NULL);
  ck_assert_ptr_nonnull(nats);
  ck_assert_msg(bkc_start(&B, NULL, false), "backend did not start");
  ck_assert_msg(bkc_wait_ready(&B, 60000), "backend not ready");
  sp_path("services/chat-handler/chat-handler", chat_bin, sizeof chat_bin);
}

static void down(void) {
  if (collector > 0) {
    kill(collector, SIGTERM);
    waitpid(collector, NULL, 0);
  }
  bkc_stop(&B, SIGTERM, 20000);
  th_nats_stop(nats);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Start chat-handler exporting to @endpoint with @extra settings. */
static void start_chat(sp_proc *p, const char *log, const char *endpoint,
                       const char *const *extra) {
  static char e_nats[128], e_vllm[128], e_emb[128], e_store[160], e_ep[160];
  snprintf(e_nats, sizeof e_nats, "NATS_URL=%s", th_nats_url(nats));
  snprintf(e_vllm, sizeof e_vllm, "VLLM_URL=%s", B.base);
  snprintf(e_emb, sizeof e_emb, "EMBEDDINGS_URL=%s", B.base);
  snprintf(e_store, sizeof e_store, "VECTOR_STORE_PATH=%s/kb.aipvs", dir);
  snprintf(e_ep, sizeof e_ep, "OTEL_EXPORTER_OTLP_ENDPOINT=%s", endpoint);
  const char *env[32] = {e_nats, e_vllm, e_emb, e_store, e_ep,
                         "VECTOR_STORE=local", "LOG_LEVEL=INFO",
                         "READY_CHECK_INTERVAL=200ms"};
  size_t n = 8;
  for (size_t i = 0; extra && extra[i] && n < 31; i++) env[n++] = extra[i];
  env[n] = NULL;
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, log);
  ck_assert_msg(sp_start(p, chat_bin, env, path, NULL), "cannot start chat-handler");
  ck_assert_msg(sp_wait_started(p, 20000), "chat-handler did not start (log %s)", path);
}

/* Ask one question; the reply's status, the time it took in *ms. */
static bool ask_with_rag; /* retrieval on for the next ask() */

static aiplat_status ask(aiplat_bus *bus, const char *traceparent, int64_t *ms) {
  ct_chat c = ct_chat_init("otel-user", "What is the platform?", NULL);
  c.enable_rag = ask_with_rag ? 1 : 0;
  c.stream = true;
  size_t len = 0;
  uint8_t *buf = ct_chat_bytes(&c, &len);
  ck_assert_ptr_nonnull(buf);
  aiplat_headers *h = NULL;
  ck_assert_int_eq(aiplat_headers_create(&h), AIPLAT_OK);
  if (traceparent) ck_assert_int_eq(aiplat_headers_set(h, "traceparent", traceparent), AIPLAT_OK);
  aiplat_bus_msg *reply = NULL;
  int64_t t0 = now_ms();
  aiplat_status st = aiplat_bus_request(bus, "ai.chat.user.otel-user.message", buf, len,
                                        traceparent ? h : NULL, 20000, &reply);
  if (ms) *ms = now_ms() - t0;
  if (st == AIPLAT_OK) {
    aiplat_msg *m = NULL;
    if (aiplat_msg_decode(&m, AIPLAT_MSG_CHAT_RESPONSE, aiplat_bus_msg_data(reply),
                          aiplat_bus_msg_len(reply)) != AIPLAT_OK)
      st = AIPLAT_ERR_DECODE;
    else if (ct_error(m, NULL) != 0)
      st = (aiplat_status)ct_error(m, NULL);
    aiplat_msg_destroy(m);
  }
  aiplat_bus_msg_destroy(reply);
  aiplat_headers_destroy(h);
  aiplat_free(buf);
  return st;
}

/* The spans of trace @tid the collector decoded so far (new array). */
static json_t *spans_of(const char *tid_wanted) {
  char p[128];
  snprintf(p, sizeof p, "%s/spans.jsonl", dir);
  json_t *out = json_array();
  FILE *f = fopen(p, "r");
  if (!f) return out;
  char line[65536];
  while (fgets(line, sizeof line, f)) {
    json_t *s = json_loads(line, 0, NULL);
    const char *tid = json_string_value(json_object_get(s, "traceId"));
    if (tid && strcmp(tid, tid_wanted) == 0)
      json_array_append(out, s);
    json_decref(s);
  }
  fclose(f);
  return out;
}

static json_t *spans_of_trace(void) { return spans_of(TID); }

static json_t *find_span(json_t *spans, const char *name_prefix, int kind) {
  size_t i;
  json_t *s;
  json_array_foreach(spans, i, s) {
    const char *name = json_string_value(json_object_get(s, "name"));
    if ((int)json_integer_value(json_object_get(s, "kind")) == kind && name &&
        strncmp(name, name_prefix, strlen(name_prefix)) == 0)
      return s;
  }
  return NULL;
}

static const char *sattr(json_t *span, const char *key) {
  return json_string_value(json_object_get(json_object_get(span, "attributes"), key));
}

static json_t *attr(json_t *span, const char *key) {
  return json_object_get(json_object_get(span, "attributes"), key);
}

static const char *sfield(json_t *span, const char *key) {
  return json_string_value(json_object_get(span, key));
}

START_TEST(chat_request_yields_one_trace_with_the_expected_tree) {
  sp_proc chat;
  const char *extra[] = {"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=chat-otel-test",
                         "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=test,team=a%2Cb",
                         "OTEL_EXPORTER_OTLP_HEADERS=x-test-auth=s3cr%65t", NULL};
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", collector_port);
  start_chat(&chat, "chat-trace.log", endpoint, extra);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  ck_assert_int_eq(ask(bus, "00-" TID "-" PSID "-01", NULL), AIPLAT_OK);

  json_t *spans = NULL, *server = NULL, *genai = NULL, *http = NULL;
  for (int i = 0; i < 100 && !(server && genai && http); i++) {
    json_decref(spans);
    spans = spans_of_trace();
    server = find_span(spans, "process ", 2);
    genai = find_span(spans, "chat ", 3);
    http = find_span(spans, "POST", 3);
    if (!(server && genai && http)) usleep(100000);
  }
  ck_assert_msg(server && genai && http, "spans of the trace: %s",
                json_dumps(spans, JSON_COMPACT));
  /* server span: the caller's span is its parent; messaging conventions */
  ck_assert_str_eq(sfield(server, "parentSpanId"), PSID);
  ck_assert_str_eq(sattr(server, "messaging.system"), "nats");
  ck_assert_str_eq(sattr(server, "messaging.operation.name"), "process");
  ck_assert_str_eq(sattr(server, "messaging.destination.name"), "ai.chat.user.otel-user.message");
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(server, "status"), "code")), 0);
  json_t *res = json_object_get(server, "resource");
  ck_assert_str_eq(json_string_value(json_object_get(res, "service.name")), "chat-otel-test");
  ck_assert_str_eq(json_string_value(json_object_get(res, "deployment.environment")), "test");
  ck_assert_str_eq(json_string_value(json_object_get(res, "team")), "a,b");
  ck_assert_str_eq(sfield(server, "scope"), "libaiplat");
  /* the model call: GenAI conventions, child of the server span */
  ck_assert_str_eq(sfield(genai, "parentSpanId"), sfield(server, "spanId"));
  ck_assert_str_eq(sattr(genai, "gen_ai.operation.name"), "chat");
  ck_assert_ptr_nonnull(sattr(genai, "gen_ai.request.model"));
  ck_assert_ptr_nonnull(sattr(genai, "gen_ai.response.model"));
  ck_assert_ptr_nonnull(sattr(genai, "gen_ai.response.finish_reasons"));
  ck_assert_msg(json_real_value(attr(genai, "gen_ai.response.time_to_first_chunk")) > 0,
                "no time to first token");
  ck_assert_msg(json_integer_value(attr(genai, "gen_ai.usage.input_tokens")) > 0 ||
                    json_real_value(attr(genai, "gen_ai.usage.input_tokens")) > 0,
                "no input tokens");
  ck_assert_msg(json_integer_value(attr(genai, "gen_ai.usage.output_tokens")) > 0 ||
                    json_real_value(attr(genai, "gen_ai.usage.output_tokens")) > 0,
                "no output tokens");
  /* the HTTP call under it: HTTP client conventions */
  ck_assert_str_eq(sfield(http, "parentSpanId"), sfield(genai, "spanId"));
  ck_assert_str_eq(sattr(http, "http.request.method"), "POST");
  ck_assert_int_eq(json_integer_value(attr(http, "http.response.status_code")), 200);
  ck_assert_str_eq(sattr(http, "server.address"), "127.0.0.1");
  /* every span of the request is in the caller's trace, ends after it began */
  size_t i;
  json_t *s;
  json_array_foreach(spans, i, s) {
    ck_assert_str_eq(sfield(s, "traceId"), TID);
    ck_assert_msg(strtoull(sfield(s, "end"), NULL, 10) >= strtoull(sfield(s, "start"), NULL, 10),
                  "span ends before it starts");
  }
  json_decref(spans);

  /* protobuf, the configured header; the logs carry the exported trace id
   * and never the header's value */
  char p[128];
  snprintf(p, sizeof p, "%s/requests.jsonl", dir);
  FILE *f = fopen(p, "r");
  ck_assert_ptr_nonnull(f);
  char line[1024];
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  fclose(f);
  ck_assert_ptr_nonnull(strstr(line, "\"contentType\":\"application/x-protobuf\""));
  ck_assert_ptr_nonnull(strstr(line, "\"auth\":\"s3cret\""));
  ck_assert_ptr_nonnull(strstr(line, "\"path\":\"/v1/traces\""));
  aiplat_bus_destroy(bus);
  ck_assert_int_eq(sp_stop(&chat, SIGTERM, 20000), 0);
  char *log = sp_read_log(&chat);
  ck_assert_ptr_nonnull(log);
  ck_assert_msg(strstr(log, "\"trace_id\":\"" TID "\""), "log without the trace id: %s", log);
  ck_assert_msg(!strstr(log, "s3cret") && !strstr(log, "s3cr%65t"), "a header value was logged");
  free(log);
}
END_TEST

/* Retrieval's steps are spans of the request: "retrieve" under the server
 * span, "embed" and "search" under it, the embeddings call's own spans
 * under "embed". */
START_TEST(retrieval_steps_are_spans_of_the_request) {
  /* a passage to find, ingested before chat-handler opens the store */
  aiplat_config *cfg = NULL;
  char store[160];
  snprintf(store, sizeof store, "%s/kb.aipvs", dir);
  ck_assert_int_eq(aiplat_config_create(&cfg), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "EMBEDDINGS_URL", B.base), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE", "local"), AIPLAT_OK);
  ck_assert_int_eq(aiplat_config_set(cfg, "VECTOR_STORE_PATH", store), AIPLAT_OK);
  aiplat_rag *rag = NULL;
  ck_assert_int_eq(aiplat_rag_create(&rag, cfg), AIPLAT_OK);
  const char *text = "The platform answers questions with retrieval and a language model.";
  ck_assert_int_eq(aiplat_rag_ingest(rag, "platform.md", text, strlen(text), NULL, NULL, NULL),
                   AIPLAT_OK);
  aiplat_rag_destroy(rag);
  aiplat_config_destroy(cfg);

  sp_proc chat;
  const char *extra[] = {"OTEL_BSP_SCHEDULE_DELAY=100", NULL};
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", collector_port);
  start_chat(&chat, "chat-rag-trace.log", endpoint, extra);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  ask_with_rag = true;
  aiplat_status st = ask(bus, "00-" TID_RAG "-" PSID "-01", NULL);
  ask_with_rag = false;
  ck_assert_int_eq(st, AIPLAT_OK);

  json_t *spans = NULL, *server = NULL, *retrieve = NULL, *embed = NULL, *search = NULL;
  for (int i = 0; i < 100 && !(server && retrieve && embed && search); i++) {
    json_decref(spans);
    spans = spans_of(TID_RAG);
    server = find_span(spans, "process ", 2);
    retrieve = find_span(spans, "retrieve", 1);
    embed = find_span(spans, "embed", 1);
    search = find_span(spans, "search", 1);
    if (!(server && retrieve && embed && search)) usleep(100000);
  }
  ck_assert_msg(server && retrieve && embed && search, "spans of the trace: %s",
                json_dumps(spans, JSON_COMPACT));
  ck_assert_str_eq(sfield(retrieve, "parentSpanId"), sfield(server, "spanId"));
  ck_assert_str_eq(sfield(embed, "parentSpanId"), sfield(retrieve, "spanId"));
  ck_assert_str_eq(sfield(search, "parentSpanId"), sfield(retrieve, "spanId"));
  json_t *hits = attr(retrieve, "aiplat.retrieval.hits");
  ck_assert_msg(json_integer_value(hits) >= 1 || json_real_value(hits) >= 1 ||
                    (json_is_string(hits) && atoll(json_string_value(hits)) >= 1),
                "no hits on the retrieve span: %s", json_dumps(retrieve, JSON_COMPACT));
  /* the embeddings call is a GenAI span under its step, with the HTTP
   * request under it */
  size_t i;
  json_t *s, *emb_call = NULL, *emb_http = NULL;
  json_array_foreach(spans, i, s) {
    const char *name = sfield(s, "name"), *parent = sfield(s, "parentSpanId");
    if (name && parent && strncmp(name, "embeddings", 10) == 0 &&
        strcmp(parent, sfield(embed, "spanId")) == 0)
      emb_call = s;
  }
  ck_assert_msg(emb_call, "no embeddings span under the embed step: %s",
                json_dumps(spans, JSON_COMPACT));
  ck_assert_str_eq(sattr(emb_call, "gen_ai.operation.name"), "embeddings");
  json_array_foreach(spans, i, s) {
    const char *name = sfield(s, "name"), *parent = sfield(s, "parentSpanId");
    if (name && parent && strncmp(name, "POST", 4) == 0 &&
        strcmp(parent, sfield(emb_call, "spanId")) == 0)
      emb_http = s;
  }
  ck_assert_msg(emb_http, "no HTTP span under the embeddings call: %s",
                json_dumps(spans, JSON_COMPACT));
  json_decref(spans);
  aiplat_bus_destroy(bus);
  ck_assert_int_eq(sp_stop(&chat, SIGTERM, 20000), 0);
}
END_TEST

/* A typed request through the client is a client span of the caller's
 * trace, and the service's server span is its child. */
START_TEST(client_request_is_a_span_of_the_callers_trace) {
  sp_proc chat;
  const char *extra[] = {"OTEL_BSP_SCHEDULE_DELAY=100", NULL};
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", collector_port);
  start_chat(&chat, "chat-client-trace.log", endpoint, extra);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  aiplat_client *c = NULL;
  aiplat_client_options *o = NULL;
  ck_assert_int_eq(aiplat_client_create(&c, bus), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_create(&o), AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_set_traceparent(o, "00-" TID_CLIENT "-" PSID "-01"),
                   AIPLAT_OK);
  ck_assert_int_eq(aiplat_client_options_set_timeout_ms(o, 20000), AIPLAT_OK);
  aiplat_msg *req = NULL, *rep = NULL;
  ck_assert_int_eq(aiplat_msg_create(&req, AIPLAT_MSG_CHAT_REQUEST), AIPLAT_OK);
  aiplat_msg_set_string(req, "user_id", "otel-user");
  aiplat_msg_set_string(req, "message", "What is the platform?");
  aiplat_msg_set_bool(req, "enable_rag", false);
  ck_assert_int_eq(aiplat_client_request(c, "ai.chat.user.otel-user.message", req,
                                         AIPLAT_MSG_CHAT_RESPONSE, o, &rep),
                   AIPLAT_OK);
  aiplat_msg_destroy(rep);
  aiplat_msg_destroy(req);
  aiplat_client_options_destroy(o);
  aiplat_client_destroy(c);

  json_t *spans = NULL, *client = NULL, *server = NULL;
  for (int i = 0; i < 100 && !(client && server); i++) {
    json_decref(spans);
    spans = spans_of(TID_CLIENT);
    client = find_span(spans, "request ai.chat.user.otel-user.message", 3);
    server = find_span(spans, "process ", 2);
    if (!(client && server)) usleep(100000);
  }
  ck_assert_msg(client && server, "spans of the trace: %s", json_dumps(spans, JSON_COMPACT));
  ck_assert_str_eq(sfield(client, "parentSpanId"), PSID);
  ck_assert_str_eq(sattr(client, "messaging.system"), "nats");
  ck_assert_str_eq(sfield(server, "parentSpanId"), sfield(client, "spanId"));
  json_decref(spans);
  aiplat_bus_destroy(bus);
  ck_assert_int_eq(sp_stop(&chat, SIGTERM, 20000), 0);
}
END_TEST

/* A metric's value from a /metrics text (-1 when absent). */
static double metric(const char *text, const char *series) {
  const char *p = text;
  size_t n = strlen(series);
  while ((p = strstr(p, series))) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
    p += n;
  }
  return -1;
}

/* Ten questions; each must be answered OK, none waiting for the collector
 * (which takes 3 s to answer when slow). */
static void ten_answers(aiplat_bus *bus, const char *what) {
  int n = sp_under_valgrind() ? 3 : 10;
  for (int i = 0; i < n; i++) {
    int64_t ms = 0;
    aiplat_status st = ask(bus, NULL, &ms);
    ck_assert_msg(st == AIPLAT_OK, "%s: request %d: %s", what, i, aiplat_status_str(st));
    /* under valgrind everything is slower than the collector */
    ck_assert_msg(sp_under_valgrind() || ms < 2500, "%s: request %d took %lld ms", what, i,
                  (long long)ms);
  }
}

START_TEST(collector_down_slow_or_refusing_changes_nothing_for_callers) {
  const char *extra[] = {"OTEL_BSP_SCHEDULE_DELAY=20", "OTEL_BSP_MAX_QUEUE_SIZE=4",
                         "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2", "OTEL_EXPORTER_OTLP_TIMEOUT=5000",
                         "SHUTDOWN_GRACE=2s", NULL};
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", collector_port);
  sp_proc chat;
  start_chat(&chat, "chat-trouble.log", endpoint, extra);
  aiplat_bus *bus = ct_bus(th_nats_url(nats));
  ck_assert_ptr_nonnull(bus);
  set_mode("429");
  ten_answers(bus, "429");
  set_mode("503");
  ten_answers(bus, "503");
  set_mode("slow");
  ten_answers(bus, "slow");
  char *m = NULL;
  ck_assert_int_eq(sp_http_get(chat.health_port, "/metrics", &m), 200);
  ck_assert_msg(metric(m, "aiplat_trace_spans_dropped_total{reason=\"queue_full\"}") > 0,
                "no span dropped: %s", m);
  ck_assert_msg(metric(m, "aiplat_trace_export_retries_total") > 0, "no retry: %s", m);
  free(m);
  /* stopping while the collector is slow ends within the grace period
   * (2 s), not the export timeout (5 s): the spans still queued then are
   * dropped */
  int64_t t0 = now_ms();
  ck_assert_int_eq(sp_stop(&chat, SIGTERM, 20000), 0);
  if (!sp_under_valgrind())
    ck_assert_msg(now_ms() - t0 < 4000, "stopping took %lld ms with a 2 s grace",
                  (long long)(now_ms() - t0));
  set_mode("ok");

  /* a collector that is down: nothing listens on the port */
  sp_proc down_chat;
  start_chat(&down_chat, "chat-down.log", "http://127.0.0.1:9", extra);
  ten_answers(bus, "down");
  ck_assert_int_eq(sp_http_get(down_chat.health_port, "/metrics", &m), 200);
  ck_assert_msg(metric(m, "aiplat_trace_spans_exported_total") == 0, "exported: %s", m);
  ck_assert_msg(metric(m, "aiplat_trace_spans_dropped_total{reason=\"queue_full\"}") > 0,
                "no span dropped: %s", m);
  free(m);
  ck_assert_int_eq(sp_stop(&down_chat, SIGTERM, 20000), 0);
  aiplat_bus_destroy(bus);
}
END_TEST

int main(void) {
  if (!decoder_available()) {
    printf("SKIP: node or @opentelemetry/otlp-transformer@0.52.1 not installed under %s "
           "(run tests/otlp-deps.sh)\n", node_path);
    return 77;
  }
  Suite *s = suite_create("otel");
  TCase *tc = tcase_create("e2e");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, up, down);
  tcase_add_test(tc, chat_request_yields_one_trace_with_the_expected_tree);
  tcase_add_test(tc, retrieval_steps_are_spans_of_the_request);
  tcase_add_test(tc, client_request_is_a_span_of_the_callers_trace);
  tcase_add_test(tc, collector_down_slow_or_refusing_changes_nothing_for_callers);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
