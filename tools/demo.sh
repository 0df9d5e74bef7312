#!/bin/sh
# The local demo: installs what is missing, builds, starts a real
# nats-server on loopback, runs what the library offers so far, and stops
# everything it started (also on Ctrl-C).
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
make -C build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/aiplat-demo-XXXXXX")
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting nats-server (loopback, free port, JetStream in $work)"
nats-server -a 127.0.0.1 -p -1 -js -sd "$work/js" --ports_file_dir "$work" \
  >"$work/nats.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 100); do
  url=$(sed -n 's/.*"\(nats:\/\/127.0.0.1:[0-9]*\)".*/\1/p' "$work"/nats-server_*.ports 2>/dev/null || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo: nats-server did not start" >&2; exit 1; }
echo "   $url"
export NATS_URL="$url"

echo "== libaiplat configuration as this environment resolves it"
build/tools/aiplat-config 2>/dev/null || tools/config-table.sh | head -12
echo "== demo done; stopping what it started"
