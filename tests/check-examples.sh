#!/bin/sh
# The model-client examples against the local model backend: speak writes
# a WAV, transcribe reads the words back, chat_stream streams an answer.
set -eu
build=${top_builddir:?}
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$build/tools/model-backend/aiplat-model-backend" --port 0 --port-file "$tmp/port" \
  >"$tmp/backend.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || { echo "check-examples: the backend did not start" >&2; cat "$tmp/backend.log" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$tmp/port")"
for _ in $(seq 300); do curl -sf "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done
export VLLM_URL="$url" STT_URL="$url" TTS_URL="$url" LOG_LEVEL=ERROR

"$build/examples/speak" "the backup runs every night" "$tmp/out.wav"
[ "$(head -c 4 "$tmp/out.wav")" = "RIFF" ] || { echo "check-examples: speak wrote no WAV" >&2; exit 1; }
text=$("$build/examples/transcribe" "$tmp/out.wav")
echo "transcribe: $text"
echo "$text" | grep -qi "backup" || { echo "check-examples: transcript lacks 'backup': $text" >&2; exit 1; }
answer=$("$build/examples/chat_stream" "Context: [1] The backup runs every night. Question: when does the backup run?")
echo "chat_stream: $answer"
[ -n "$answer" ] || { echo "check-examples: empty answer" >&2; exit 1; }
# errors are reported with exit code 1, usage with 2
set +e
"$build/examples/transcribe" /dev/null >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || { echo "check-examples: transcribe of an empty file exited $rc" >&2; exit 1; }
"$build/examples/speak" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "check-examples: speak without arguments exited $rc" >&2; exit 1; }
VLLM_URL=http://127.0.0.1:1 "$build/examples/chat_stream" "hi" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || { echo "check-examples: chat_stream to nothing exited $rc" >&2; exit 1; }
echo "check-examples: ok"
