#!/bin/sh
# Render docs/dashboard.png: the platform's Grafana dashboard
# (deploy/grafana/ai-platform.json) with data from the local demo.
#
# Starts what tools/demo.sh starts (nats-server, the local model backend,
# the services, a local vector store) plus a local Prometheus scraping each
# service's /metrics every 2 s, sends chat, voice, speech and transcription
# requests for about DURATION seconds (restarting nats-server once half-way,
# so the reconnect panel has something to show), then runs every panel's
# query through Prometheus' HTTP API and draws the panels where the JSON
# places them (tools/dashboard_png.py). A query Prometheus cannot parse
# fails the run. Everything started is stopped at the end.
#
# Usage: tools/dashboard-png.sh [OUT.png]     (default docs/dashboard.png)
# Needs a build in ./build (or AIPLAT_BUILD_DIR), nats-server, curl and the
# Debian packages prometheus and python3-matplotlib.
set -eu
cd "$(dirname "$0")/.."
build=${AIPLAT_BUILD_DIR:-build}
out=${1:-docs/dashboard.png}
duration=${DURATION:-120}
for tool in prometheus nats-server curl python3; do
  command -v $tool >/dev/null 2>&1 || { echo "dashboard-png: $tool not found (apt-get install prometheus nats-server curl python3-matplotlib)" >&2; exit 1; }
done
py=""
for candidate in "${PYTHON:-python3}" /usr/bin/python3; do
  if "$candidate" -c 'import matplotlib' 2>/dev/null; then py=$candidate; break; fi
done
[ -n "$py" ] || { echo "dashboard-png: python3-matplotlib is missing" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/aiplat-dash-XXXXXX")
pids=""
cleanup() {
  status=$?
  trap - EXIT INT TERM
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT INT TERM
wait_for() { # FILE TEXT WHAT
  for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "dashboard-png: $3 did not start; its log:" >&2; cat "$1" >&2; exit 1
}

start_nats() { # PORT (- for a free one)
  nats-server -a 127.0.0.1 -p "$1" -js -sd "$work/js" --ports_file_dir "$work" \
    >"$work/nats.log" 2>&1 &
  nats_pid=$!
  pids="$pids $nats_pid"
  wait_for "$work/nats.log" "Server is ready" nats-server
}
start_nats -1
url=$(sed -n 's/.*"\(nats:\/\/127.0.0.1:[0-9]*\)".*/\1/p' "$work"/nats-server_*.ports)
nats_port=${url##*:}

"$build/tools/model-backend/aiplat-model-backend" --port 0 --port-file "$work/backend.port" \
  >"$work/backend.out" 2>"$work/backend.log" &
pids="$pids $!"
wait_for "$work/backend.out" "listening on" "the model backend"
base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$work/backend.out")
for _ in $(seq 200); do curl -fs "$base/health" >/dev/null 2>&1 && break; sleep 0.05; done

export NATS_URL="$url" VLLM_URL="$base" EMBEDDINGS_URL="$base" STT_URL="$base" TTS_URL="$base"
export VECTOR_STORE=local VECTOR_STORE_PATH="$work/knowledge.aipvs"
export HEALTH_PORT=0 HEALTH_BIND=127.0.0.1 NATS_RECONNECT_WAIT=500ms
cli=$build/tools/aiplat/aiplat
LOG_LEVEL=WARNING "$build/tools/aiplat-rag/aiplat-rag" ingest examples/knowledge >/dev/null

targets=""
for svc in chat-handler voice-assistant stt-module tts-module; do
  LOG_LEVEL=INFO "$build/services/$svc/$svc" 2>"$work/$svc.log" &
  pids="$pids $!"
  wait_for "$work/$svc.log" '"service started"' "$svc"
  port=$(sed -n 's/.*"health_port":"\([0-9]*\)".*/\1/p' "$work/$svc.log" | head -n 1)
  targets="$targets
  - job_name: $svc
    static_configs:
      - targets: ['127.0.0.1:$port']"
done

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:$targets
EOF
# Prometheus does not report a port chosen by the system: pick a free one.
prom_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prom.log" 2>&1 &
pids="$pids $!"
wait_for "$work/prom.log" "Server is ready to receive web requests" prometheus
prom="http://127.0.0.1:$prom_port"
echo "dashboard-png: Prometheus at $prom scrapes $(echo "$targets" | grep -c job_name) services; load for ${duration}s"

questions="How often are Milvus backups taken?
Which port does the health server listen on?
What does the voice assistant do?
How do I add a document to the knowledge base?"
"$cli" speak "how often are milvus backups taken" -o "$work/q.wav" >/dev/null
printf 'RIFF not really audio' >"$work/junk.wav"
start=$(date +%s)
restarted=""
i=0
while [ $(( $(date +%s) - start )) -lt "$duration" ]; do
  i=$((i + 1))
  q=$(echo "$questions" | sed -n "$(( i % 4 + 1 ))p")
  load=""
  "$cli" -u "user$((i % 3))" chat "$q" >/dev/null 2>&1 & load="$load $!"
  "$cli" -u "user$((i % 3))" chat "$q" >/dev/null 2>&1 & load="$load $!"
  if [ $((i % 3)) -eq 0 ]; then
    "$cli" -u dash voice "$work/q.wav" -o "$work/a.wav" >/dev/null 2>&1 & load="$load $!"
    "$cli" transcribe "$work/q.wav" >/dev/null 2>&1 & load="$load $!"
    "$cli" speak "the backups are taken every night" -o "$work/s.wav" >/dev/null 2>&1 & load="$load $!"
    # audio the speech server cannot read: the error panels
    "$cli" transcribe "$work/junk.wav" >/dev/null 2>&1 & load="$load $!"
  fi
  for j in $load; do wait "$j" 2>/dev/null || true; done
  if [ -z "$restarted" ] && [ $(( $(date +%s) - start )) -ge $((duration / 2)) ]; then
    echo "dashboard-png: restarting nats-server (the reconnect panel)"
    kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
    sleep 2
    start_nats "$nats_port"
    restarted=yes
  fi
  sleep 0.5
done
sleep 5 # the last scrapes

"$py" tools/dashboard_png.py --prometheus "$prom" \
  --dashboard deploy/grafana/ai-platform.json --seconds "$(( $(date +%s) - start + 5 ))" \
  --out "$out"
echo "dashboard-png: wrote $out"
