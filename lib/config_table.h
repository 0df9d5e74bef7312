/* The one table of settings the library knows (README "Configuration").
 * X(NAME, default or NULL, type, secret, description)
 * Types: STR, INT, DBL, BOOL, DUR, URL, URLS (comma-separated URLs), LEVEL. */
#ifndef AIPLAT_CONFIG_TABLE_H
#define AIPLAT_CONFIG_TABLE_H

#define AIP_CONFIG_TABLE(X) \
  X(LOG_LEVEL, "INFO", LEVEL, 0, "log level: DEBUG, INFO, WARNING (WARN) or ERROR") \
  X(SERVICE_NAME, NULL, STR, 0, "service name in logs and discovery (each service sets its own)") \
  X(NATS_URL, "nats://localhost:4222", URLS, 0, "NATS server URL, or several separated by commas") \
  X(NATS_NAME, NULL, STR, 0, "connection name shown by the server (default: the service name)") \
  X(NATS_CREDS, NULL, STR, 0, "path of a NATS .creds file (JWT + nkey seed)") \
  X(NATS_NKEY_SEED, NULL, STR, 1, "nkey seed for nkey authentication") \
  X(NATS_TOKEN, NULL, STR, 1, "token for token authentication") \
  X(NATS_USER, NULL, STR, 0, "user name for user/password authentication") \
  X(NATS_PASSWORD, NULL, STR, 1, "password for user/password authentication") \
  X(NATS_TLS_CA, NULL, STR, 0, "CA certificate file to verify the NATS server") \
  X(NATS_TLS_CERT, NULL, STR, 0, "client certificate file for NATS TLS") \
  X(NATS_TLS_KEY, NULL, STR, 0, "client private key file for NATS TLS") \
  X(NATS_CONNECT_TIMEOUT, "5s", DUR, 0, "timeout of one connection attempt") \
  X(NATS_RECONNECT_WAIT, "2s", DUR, 0, "wait between reconnection attempts (jitter added)") \
  X(NATS_MAX_RECONNECTS, "-1", INT, 0, "reconnection attempts before giving up; -1 is forever") \
  X(HEALTH_PORT, "8080", INT, 0, "port of the /health, /ready and /metrics server; 0 lets the system choose a free one") \
  X(HEALTH_BIND, "0.0.0.0", STR, 0, "IPv4 or IPv6 literal the health server binds to (:: for both families)") \
  X(NATS_SEND_ASAP, "true", BOOL, 0, "send each NATS publish at once instead of batching writes for ~1 ms") \
  X(NATS_RETRY_ON_FAILED_CONNECT, "false", BOOL, 0, "keep trying in the background when no NATS server answers at start") \
  X(WORKERS, "1", INT, 0, "delivery threads per endpoint; more only for handlers that block") \
  X(MAX_IN_FLIGHT, "4096", INT, 0, "requests one service process works on at once; more get an overload reply") \
  X(REQUEST_TIMEOUT, "60s", DUR, 0, "deadline of one request inside a service") \
  X(SHUTDOWN_GRACE, "20s", DUR, 0, "time in-flight requests get to finish on SIGTERM") \
  X(VLLM_URL, "http://localhost:8000", URL, 0, "OpenAI-compatible chat completions server") \
  X(LLM_MODEL, "default", STR, 0, "model name sent to the LLM server") \
  X(LLM_API_KEY, NULL, STR, 1, "bearer token for the LLM server") \
  X(LLM_MAX_TOKENS, "512", INT, 0, "default max_tokens of a completion") \
  X(LLM_TEMPERATURE, "0.7", DBL, 0, "default sampling temperature") \
  X(LLM_TIMEOUT, "120s", DUR, 0, "total timeout of one LLM request") \
  X(EMBEDDINGS_URL, "http://localhost:8000", URL, 0, "OpenAI-compatible embeddings server") \
  X(EMBEDDINGS_MODEL, "default", STR, 0, "embeddings model name") \
  X(EMBEDDINGS_API_KEY, NULL, STR, 1, "bearer token for the embeddings server") \
  X(EMBEDDINGS_DIMENSION, "0", INT, 0, "expected embedding dimension; 0 accepts what the server sends") \
  X(EMBEDDINGS_BATCH_SIZE, "32", INT, 0, "inputs sent per embeddings request (larger inputs are split)") \
  X(RERANKER_URL, NULL, URL, 0, "reranker server; unset disables reranking") \
  X(RERANKER_MODEL, "default", STR, 0, "reranker model name") \
  X(RERANKER_API_KEY, NULL, STR, 1, "bearer token for the reranker") \
  X(RERANKER_API, "auto", STR, 0, "reranker API: auto, cohere (/v1/rerank with documents) or tei (/rerank with texts)") \
  X(STT_URL, "http://localhost:8000", URL, 0, "speech-to-text server (OpenAI audio transcriptions)") \
  X(STT_MODEL, "whisper-1", STR, 0, "speech-to-text model name") \
  X(STT_API_KEY, NULL, STR, 1, "bearer token for the speech-to-text server") \
  X(STT_API, "openai", STR, 0, "speech-to-text API: openai (/v1/audio/transcriptions) or whispercpp (/inference)") \
  X(STT_LANGUAGE, NULL, STR, 0, "language of the audio (ISO 639-1); unset lets the server detect it") \
  X(STT_RESPONSE_FORMAT, "json", STR, 0, "transcription format asked: json, verbose_json or text") \
  X(TTS_URL, "http://localhost:8000", URL, 0, "text-to-speech server (OpenAI audio speech)") \
  X(TTS_MODEL, "tts-1", STR, 0, "text-to-speech model name") \
  X(TTS_VOICE, "rms", STR, 0, "default voice") \
  X(TTS_API_KEY, NULL, STR, 1, "bearer token for the text-to-speech server") \
  X(TTS_FORMAT, "wav", STR, 0, "audio format asked of the text-to-speech server: wav, mp3, opus, aac, flac or pcm") \
  X(TTS_SPEED, "1.0", DBL, 0, "speech speed, 0.25 to 4.0") \
  X(HTTP_CONNECT_TIMEOUT, "5s", DUR, 0, "connect timeout of model-server requests") \
  X(HTTP_TIMEOUT, "60s", DUR, 0, "total timeout of model-server requests (LLM: LLM_TIMEOUT)") \
  X(HTTP_MAX_RETRIES, "3", INT, 0, "retries on connect errors, 429, 502, 503, 504") \
  X(HTTP_CA_FILE, NULL, STR, 0, "CA bundle for HTTPS model servers (default: the system's)") \
  X(HTTP_MAX_RESPONSE_BYTES, "67108864", INT, 0, "largest response body accepted") \
  X(HTTP_STREAM_IDLE_TIMEOUT, "60s", DUR, 0, "longest silence inside a streamed model-server answer") \
  X(HTTP_RETRY_BACKOFF, "250ms", DUR, 0, "base of the exponential backoff between retries (full jitter)") \
  X(HTTP_RETRY_MAX_WAIT, "30s", DUR, 0, "longest wait before one retry, Retry-After included") \
  X(VECTOR_STORE, NULL, STR, 0, "local or milvus (default: milvus when MILVUS_HOST is set, else local)") \
  X(VECTOR_STORE_PATH, "knowledge_base.aipvs", STR, 0, "file of the local vector store") \
  X(MILVUS_HOST, "localhost", STR, 0, "Milvus host") \
  X(MILVUS_PORT, "19530", INT, 0, "Milvus port") \
  X(MILVUS_COLLECTION, "knowledge_base", STR, 0, "Milvus collection of the knowledge base") \
  X(MILVUS_DB, NULL, STR, 0, "Milvus database name (default database when unset)") \
  X(MILVUS_TOKEN, NULL, STR, 1, "Milvus token or user:password") \
  X(MILVUS_TLS, "false", BOOL, 0, "use HTTPS to reach Milvus") \
  X(RAG_TOP_K, "5", INT, 0, "passages returned by a RAG query") \
  X(RAG_CANDIDATES, "20", INT, 0, "candidates fetched before reranking") \
  X(RAG_MIN_SCORE, "0", DBL, 0, "minimum score of a returned passage") \
  X(RAG_CONTEXT_CHARS, "4000", INT, 0, "character budget of the prompt context") \
  X(CHAT_HISTORY_TURNS, "10", INT, 0, "conversation turns kept per conversation") \
  X(CHAT_HISTORY_TTL, "1h", DUR, 0, "time a conversation's history is kept") \
  X(SYSTEM_PROMPT, NULL, STR, 0, "system prompt of chat-handler (a built-in one when unset)") \
  X(CHAT_HISTORY_BUCKET, "chat-history", STR, 0, "JetStream Key-Value bucket of conversation histories") \
  X(READY_CHECK_INTERVAL, "5s", DUR, 0, "interval of the readiness probes of a service's model servers") \
  X(JS_STREAM_REPLICAS, "1", INT, 0, "replicas of a JetStream stream a service creates itself (1 to 5; at most the cluster's size); an existing stream is used as it is") \
  X(JS_COMPLETIONS_BUCKET, "aiplat-completions", STR, 0, "JetStream Key-Value bucket recording the durable requests answered, so that a redelivery is not answered twice") \
  X(JS_COMPLETIONS_REPLICAS, "0", INT, 0, "replicas of the completions bucket when a service creates it (1 to 5; 0: those of the endpoint's stream); an existing bucket is used as it is") \
  X(CHAT_STREAM, NULL, STR, 0, "JetStream stream chat-handler takes requests from (durable; answers only on ai.chat.response.{requestId}); unset: core NATS request/reply") \
  X(OTEL_SDK_DISABLED, "false", BOOL, 0, "true turns tracing off whatever else is set") \
  X(OTEL_TRACES_EXPORTER, "otlp", STR, 0, "otlp, or none to export no spans") \
  X(OTEL_SERVICE_NAME, NULL, STR, 0, "service.name of the exported spans (default: service.name of OTEL_RESOURCE_ATTRIBUTES, then SERVICE_NAME)") \
  X(OTEL_RESOURCE_ATTRIBUTES, NULL, STR, 0, "resource attributes of the spans, key=value pairs separated by commas (values percent-encoded)") \
  X(OTEL_EXPORTER_OTLP_ENDPOINT, NULL, URL, 0, "OTLP/HTTP collector base URL (spans go to /v1/traces under it); unset with the next one: no tracing") \
  X(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, NULL, URL, 0, "OTLP/HTTP traces URL, used as it is (wins over OTEL_EXPORTER_OTLP_ENDPOINT)") \
  X(OTEL_EXPORTER_OTLP_HEADERS, NULL, STR, 1, "headers sent with every export, key=value pairs separated by commas (values percent-encoded)") \
  X(OTEL_EXPORTER_OTLP_TRACES_HEADERS, NULL, STR, 1, "headers sent with trace exports, added to OTEL_EXPORTER_OTLP_HEADERS") \
  X(OTEL_EXPORTER_OTLP_TIMEOUT, "10000", INT, 0, "timeout of one export request, in milliseconds") \
  X(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, NULL, INT, 0, "timeout of one trace export request in milliseconds (default: OTEL_EXPORTER_OTLP_TIMEOUT)") \
  X(OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf", STR, 0, "OTLP transport; http/protobuf is the one built in") \
  X(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, NULL, STR, 0, "OTLP transport of traces (default: OTEL_EXPORTER_OTLP_PROTOCOL)") \
  X(OTEL_TRACES_SAMPLER, "parentbased_always_on", STR, 0, "always_on, always_off, traceidratio, or parentbased_ with one of them") \
  X(OTEL_TRACES_SAMPLER_ARG, NULL, STR, 0, "sampling ratio in [0, 1] of the traceidratio samplers (default 1.0)") \
  X(OTEL_BSP_SCHEDULE_DELAY, "5000", INT, 0, "longest wait before queued spans are exported, in milliseconds") \
  X(OTEL_BSP_MAX_QUEUE_SIZE, "2048", INT, 0, "spans queued for export at most; more are dropped and counted") \
  X(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, "512", INT, 0, "spans sent in one export request at most") \
  X(ARGO_URL, NULL, URL, 0, "Argo Workflows server, e.g. https://argo-server:2746") \
  X(ARGO_NAMESPACE, "ai-ml", STR, 0, "namespace of Argo WorkflowTemplates") \
  X(ARGO_TOKEN, NULL, STR, 1, "bearer token for the Argo server") \
  X(KUBEFLOW_URL, NULL, URL, 0, "Kubeflow Pipelines API, e.g. http://ml-pipeline:8888") \
  X(KUBEFLOW_TOKEN, NULL, STR, 1, "bearer token for Kubeflow Pipelines") \
  X(PIPELINE_POLL_INTERVAL, "5s", DUR, 0, "interval between pipeline status polls")

#endif
