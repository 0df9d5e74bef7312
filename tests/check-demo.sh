#!/bin/sh
# tools/demo.sh end to end on the built tree: it answers the text question
# (with its source) and the spoken one, saves the spoken answer, lists the
# services, and leaves no process behind -- also when it is stopped midway.
set -eu
# Absolute: tools/demo.sh runs from the source root, where a relative
# AIPLAT_BUILD_DIR would mean another directory.
src=$(cd "${top_srcdir:?}" && pwd)
build=$(cd "${top_builddir:?}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aiplat-check-demo-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export AIPLAT_BUILD_DIR="$build" AIPLAT_DEMO_NO_BUILD=1 AIPLAT_DEMO_OUT="$tmp/out"

fail() {
  echo "check-demo: $*" >&2
  echo "--- demo output:" >&2
  cat "$tmp/log" >&2
  exit 1
}

# The PIDs the demo announced must all be gone.
no_leftovers() {
  for p in $(sed -n 's/^   [a-z-]* pid \([0-9][0-9]*\)$/\1/p' "$tmp/log"); do
    if kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null || true
      fail "process $p was left running"
    fi
  done
}

"$src/tools/demo.sh" >"$tmp/log" 2>&1 || fail "exit status $?"
grep -q "02:00 UTC" "$tmp/log" || fail "no answer about the 02:00 UTC backups"
[ "$(grep -c "02:00 UTC" "$tmp/log")" -ge 2 ] || fail "the voice answer is missing"
grep -q "backups.md" "$tmp/log" || fail "the answer's source is missing"
grep -qi "backups" "$tmp/log" || fail "no transcript"
grep -q "chat-handler" "$tmp/log" || fail "the service listing is missing"
grep -q "nothing left running" "$tmp/log" || fail "the demo did not check its processes"
head -c 4 "$tmp/out/answer.wav" | grep -q RIFF || fail "no spoken answer in answer.wav"
no_leftovers
started=$(grep -c ' pid [0-9]' "$tmp/log")

# Stopped midway (SIGTERM, as the Ctrl-C trap): everything goes away.
"$src/tools/demo.sh" >"$tmp/log" 2>&1 &
demo=$!
for _ in $(seq 1200); do
  grep -q '^== chat' "$tmp/log" && break
  sleep 0.05
done
if ! grep -q '^== chat' "$tmp/log"; then
  ps -o pid,stat,etime,args -g "$(ps -o pgid= -p $$ | tr -d ' ')" >&2 || true
  kill -TERM "$demo" 2>/dev/null || true
  fail "the second run did not get to the chat within 60 s"
fi
kill -TERM "$demo"
status=0
wait "$demo" || status=$?
[ "$status" -ne 0 ] || fail "an interrupted demo exited 0"
no_leftovers
grep -q "nothing left running" "$tmp/log" || fail "the interrupted demo did not check its processes"
echo "check-demo: answered in text and speech, $started processes started and stopped; interrupted run cleaned up"
