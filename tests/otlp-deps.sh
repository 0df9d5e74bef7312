#!/bin/sh
# Install the independent OTLP decoder tests/test_otel uses: the protobuf
# decoders generated from the official OpenTelemetry definitions that npm
# @opentelemetry/otlp-transformer 0.52.x bundles (later versions dropped
# them). usage: tests/otlp-deps.sh BUILD_DIR
set -eu
dest="${1:-.}/tests/otlp-node"
mkdir -p "$dest"
if [ -f "$dest/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "otlp-deps: npm is not installed" >&2; exit 1; }
[ -f "$dest/package.json" ] || printf '{"name":"aiplat-otlp-test","private":true}\n' > "$dest/package.json"
npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error \
  @opentelemetry/otlp-transformer@0.52.1
