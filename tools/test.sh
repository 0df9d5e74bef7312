#!/bin/sh
# Run libaiplat's whole test suite: set up (tools/setup.sh), build, then
# `make check` in ./build against a real nats-server, the local model
# backend and the project's protocol fakes.
# Usage: tools/test.sh [extra make targets, e.g. check-valgrind]
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"
if ! make -j"$jobs" check; then
  echo "tests failed; the logs of failing tests follow" >&2
  for f in $(find . -name '*.log' ! -name 'test-suite.log' ! -name config.log); do
    grep -q '^FAIL\|^ERROR' "${f%.log}.trs" 2>/dev/null && { echo "==> $f" >&2; tail -n 60 "$f" >&2; }
  done
  exit 1
fi
for target in "$@"; do make "$target"; done
