#!/bin/sh
# A service image runs: builds chat-handler's image with tools/image-build.sh
# (podman; Debian 12 builder made with debootstrap), checks its size and
# that it holds no shell, runs `chat-handler --version` from it, then starts
# it against a real nats-server and the local model backend on the host's
# loopback and sends one ChatRequest through it with the aiplat CLI.
# Exits 77 (skip) with the reason where no container engine works.
#
# Usage: tests/check-image.sh [BUILD_DIR]   (default: ./build)
#   IMAGE=TAG  use an image already built instead of building one
#   MAX_MB=N   the size limit (default 10, in 10^6 bytes)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
max_mb=${MAX_MB:-10}
podman=${PODMAN:-podman}
fail() { echo "check-image: FAIL: $*" >&2; exit 1; }
cli=$build/tools/aiplat/aiplat
backend=$build/tools/model-backend/aiplat-model-backend
[ -x "$cli" ] || fail "$cli is not built"
[ -x "$backend" ] || fail "$backend is not built"
command -v nats-server >/dev/null 2>&1 || fail "nats-server not found"

image=${IMAGE:-}
if [ -z "$image" ]; then
  image=localhost/aiplat-chat-handler:test
  rc=0
  "$src/tools/image-build.sh" --tag "$image" chat-handler || rc=$?
  [ $rc -eq 77 ] && { echo "check-image: SKIP: no container engine works here (above)"; exit 77; }
  [ $rc -eq 0 ] || fail "the image did not build"
fi
run="$podman run --rm --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 --network host"

# Size: the image as a registry sees it (podman's figure, uncompressed).
size=$("$podman" image inspect --format '{{.Size}}' "$image")
limit=$(awk -v m="$max_mb" 'BEGIN { printf "%d", m * 1000000 }')
echo "check-image: $image is $size bytes (limit $limit)"
[ "$size" -le "$limit" ] || fail "the image is larger than $max_mb MB"
user=$("$podman" image inspect --format '{{.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || fail "the image runs as '$user', not 65532:65532"
# shellcheck disable=SC2086
if $run --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
  fail "the image has a shell"
fi

# shellcheck disable=SC2086
version=$($run "$image" --version) || fail "chat-handler --version failed in the image"
echo "check-image: --version: $version"
echo "$version" | grep -q '^chat-handler ' || fail "unexpected --version output: $version"

# One request through it: nats-server and the backend on the host's loopback.
work=$(mktemp -d)
cname="aiplat-check-image-$$"
cleanup() {
  "$podman" rm -f "$cname" >/dev/null 2>&1 || true
  [ -n "${npid:-}" ] && kill "$npid" 2>/dev/null
  [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
nats-server -a 127.0.0.1 -p -1 --ports_file_dir "$work" >"$work/nats.log" 2>&1 &
npid=$!
LOG_LEVEL=WARNING "$backend" --port 0 >"$work/backend.out" 2>"$work/backend.log" &
bpid=$!
for _ in $(seq 200); do
  ls "$work"/nats-server_*.ports >/dev/null 2>&1 && grep -q '^listening on' "$work/backend.out" && break
  sleep 0.05
done
nats=$(sed -n 's/.*"\(nats:\/\/127.0.0.1:[0-9]*\)".*/\1/p' "$work"/nats-server_*.ports 2>/dev/null)
base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$work/backend.out")
[ -n "$nats" ] && [ -n "$base" ] || fail "nats-server or the model backend did not start"
# Readiness of the backend: it loads its engines after it listens.
for _ in $(seq 200); do
  curl -fs "$base/health" >/dev/null 2>&1 && break
  sleep 0.05
done

# The health port: any free one (host network).
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
$run -d --name "$cname" -e NATS_URL="$nats" -e VLLM_URL="$base" \
  -e EMBEDDINGS_URL="$base" -e HEALTH_PORT="$hport" -e HEALTH_BIND=127.0.0.1 \
  -e LOG_LEVEL=INFO "$image" >/dev/null || fail "the container did not start"
ready=0
for _ in $(seq 200); do
  if curl -fs "http://127.0.0.1:$hport/health" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[ $ready -eq 1 ] || { "$podman" logs "$cname" >&2 || true; fail "chat-handler in the container never answered /health"; }
answer=$(NATS_URL="$nats" "$cli" -t 30s -u image --no-rag chat "Say hello" 2>"$work/cli.err") \
  || { cat "$work/cli.err" >&2; "$podman" logs "$cname" >&2 || true; fail "the ChatRequest through the container failed"; }
[ -n "$answer" ] || fail "empty answer from chat-handler in the container"
echo "check-image: answer through the container: $(echo "$answer" | head -n 1 | cut -c1-80)"
"$podman" logs "$cname" 2>&1 | grep -q '"service started"' || fail "no start log line from the container"
echo "check-image: ok"
