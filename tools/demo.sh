#!/bin/sh
# The local demo: installs what is missing, builds, then runs the platform on
# this machine and talks to it:
#   a real nats-server (loopback, free port, JetStream in a temporary dir),
#   the local model backend (free port; docs/decisions/0009),
#   the sample knowledge base ingested into a local vector store,
#   chat-handler and voice-assistant (and stt-module, tts-module,
#   pipeline-bridge when they are built),
# asks a question in text and one in speech, lists the services, and stops
# everything it started (also on Ctrl-C). The spoken answer is kept in
# ./demo-output/answer.wav (AIPLAT_DEMO_OUT to change).
#
# Environment: AIPLAT_BUILD_DIR (default ./build, made by tools/setup.sh);
# AIPLAT_DEMO_NO_BUILD=1 skips setup and make (tests/check-demo.sh).
set -eu
cd "$(dirname "$0")/.."
build=${AIPLAT_BUILD_DIR:-build}
out=${AIPLAT_DEMO_OUT:-$PWD/demo-output}
if [ -z "${AIPLAT_DEMO_NO_BUILD:-}" ]; then
  tools/setup.sh
  echo "== building in $build"
  make -C "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
backend=$build/tools/model-backend/aiplat-model-backend
[ -x "$backend" ] || { echo "demo: $backend is not built (configure without --disable-model-backend)" >&2; exit 1; }
for tool in tools/aiplat/aiplat tools/aiplat-rag/aiplat-rag; do
  [ -x "$build/$tool" ] || { echo "demo: $build/$tool is not built" >&2; exit 1; }
done
mkdir -p "$out"

work=$(mktemp -d "${TMPDIR:-/tmp}/aiplat-demo-XXXXXX")
pids=""
cleanup() {
  status=$?
  trap - EXIT INT TERM
  echo "== stopping what the demo started"
  # Last started, first stopped: the services drain through NATS, so
  # nats-server goes last.
  for p in $pids; do rev="$p ${rev:-}"; done
  for p in ${rev:-}; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  left=""
  for p in $pids; do
    if kill -0 "$p" 2>/dev/null; then left="$left $p"; kill -KILL "$p" 2>/dev/null || true; fi
  done
  if [ -n "$left" ]; then
    echo "demo: still running after SIGTERM (killed):$left" >&2
    status=1
  elif [ -n "$pids" ] && ps -o pid= -p "$(echo $pids | tr ' ' ,)" >/dev/null 2>&1; then
    echo "demo: processes left behind" >&2
    status=1
  else
    echo "   nothing left running (checked:$pids)"
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# started NAME PID: remember a process to stop at the end.
started() {
  pids="$pids $2"
  echo "   $1 pid $2"
}

# wait_for FILE PATTERN WHAT: until FILE holds PATTERN (10 s).
wait_for() {
  for _ in $(seq 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: $3 did not start; its log:" >&2
  cat "$1" >&2
  exit 1
}

echo "== nats-server (loopback, free port, JetStream in $work)"
nats-server -a 127.0.0.1 -p -1 -js -sd "$work/js" --ports_file_dir "$work" \
  >"$work/nats.log" 2>&1 &
started nats-server $!
wait_for "$work/nats.log" "Server is ready" nats-server
url=$(sed -n 's/.*"\(nats:\/\/127.0.0.1:[0-9]*\)".*/\1/p' "$work"/nats-server_*.ports)
echo "   $url"

echo "== local model backend (flite, pocketsphinx, lexical embeddings, extractive chat)"
LOG_LEVEL=WARNING "$backend" --port 0 --port-file "$work/backend.port" \
  >"$work/backend.out" 2>"$work/backend.log" &
started aiplat-model-backend $!
wait_for "$work/backend.out" "listening on" "the model backend"
base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$work/backend.out")
echo "   $base"

export NATS_URL="$url" VLLM_URL="$base" EMBEDDINGS_URL="$base" STT_URL="$base" TTS_URL="$base"
export VECTOR_STORE=local VECTOR_STORE_PATH="$work/knowledge.aipvs"
export HEALTH_PORT=0 HEALTH_BIND=127.0.0.1 LOG_LEVEL=WARNING

# The command-line client and the knowledge-base tool.
cli=$build/tools/aiplat/aiplat
rag=$build/tools/aiplat-rag/aiplat-rag

# The backend loads its engines after it listens: wait for /health.
if command -v curl >/dev/null 2>&1; then
  for _ in $(seq 200); do
    curl -fs "$base/health" >/dev/null 2>&1 && break
    sleep 0.05
  done
else
  sleep 2
fi

echo "== ingesting examples/knowledge into $VECTOR_STORE_PATH (aiplat-rag ingest)"
LOG_LEVEL=WARNING "$rag" ingest examples/knowledge

echo "== services"
for svc in chat-handler voice-assistant stt-module tts-module pipeline-bridge; do
  bin=$build/services/$svc/$svc
  [ -x "$bin" ] || continue
  LOG_LEVEL=INFO "$bin" 2>"$work/$svc.log" &
  pid=$!
  started "$svc" $pid
  for _ in $(seq 200); do
    grep -q '"service started"' "$work/$svc.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! grep -q '"service started"' "$work/$svc.log"; then
    case $svc in
      chat-handler|voice-assistant)
        echo "demo: $svc did not start; its log:" >&2
        cat "$work/$svc.log" >&2
        exit 1 ;;
      *) echo "   $svc did not start here (skipped): $(tail -n 1 "$work/$svc.log")" ;;
    esac
  fi
done

question="How often are Milvus backups taken?"
echo
echo "== chat (aiplat chat): $question"
"$cli" -u demo chat "$question"

echo
spoken="how often are milvus backups taken"
echo "== voice: \"$spoken\", spoken by the local speech engine (aiplat speak) into $out/question.wav"
"$cli" speak "$spoken" -o "$out/question.wav"
"$cli" -u demo voice "$out/question.wav" -o "$out/answer.wav"
echo "   the spoken answer is in $out/answer.wav"

echo
echo "== services on the bus (aiplat services)"
"$cli" services
echo
echo "== demo done"
