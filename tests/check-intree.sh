#!/bin/sh
# The in-tree build: `autoreconf -fi && ./configure && make check` in the
# source tree itself (no build directory), in a throwaway copy of the files
# git knows. It builds, then runs the checks that find the trees through
# top_srcdir and top_builddir (here the same directory): as `make check`
# runs them, and check-go.sh by hand with relative paths
# (`top_builddir=. tests/check-go.sh`), the way it once broke. The Check
# suites do not depend on the layout and run in CI's out-of-tree builds, so
# this costs one build and a few minutes, not a second full suite.
# Not part of `make check` (it builds the whole tree again); CI runs it.
# Usage: tests/check-intree.sh
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-2}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-intree.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || {
  echo "check-intree: needs the git checkout (it copies the files git knows, not build products)" >&2; exit 1; }
(cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp")
cd "$tmp"
autoreconf -fi >autoreconf.log 2>&1 || { cat autoreconf.log >&2; exit 1; }
./configure --enable-werror --quiet
make -j"$jobs" >make.log 2>&1 || { tail -n 40 make.log >&2; exit 1; }
path_checks="tests/check-paths.sh tests/check-go.sh tests/check-cpp.sh
  tests/check-python.sh tests/check-demo.sh tests/check-examples.sh
  tests/check-install.sh tests/check-headers.sh tests/check-exports.sh
  tests/check-rag-cli.sh tests/check-message-interop.sh"
# shellcheck disable=SC2086
if ! make -j"$jobs" check TESTS="$(echo $path_checks)"; then
  for t in $path_checks; do
    grep -q '^:test-result: PASS' "$t.trs" 2>/dev/null || { echo "==> $t.log" >&2; tail -n 40 "$t.log" >&2; }
  done
  exit 1
fi
top_srcdir=. top_builddir=. NATS_SERVER=${NATS_SERVER:-nats-server} sh tests/check-go.sh
echo "check-intree: the in-tree build passes its path-dependent checks"
