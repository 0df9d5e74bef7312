#!/bin/sh
# examples/go (cgo, `#cgo pkg-config: aiplat`) builds against the in-tree
# library and runs: Go callbacks exported with //export receive the
# library's log records and answer a bus subscription on library threads,
# and a ChatRequest reaches the C echo_service.
# Needs Debian's golang-go. Without `go` this check FAILS (it does not
# skip): CI must install golang-go (tools/setup.sh).
# No network: no external module, GOPROXY=off, caches in a temp dir.
set -eu
. "${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}/tests/ffi-lib.sh"
command -v go >/dev/null 2>&1 \
  || ffi_fail "no Go toolchain: install the Debian package golang-go (apt-get install golang-go)"
command -v pkg-config >/dev/null 2>&1 || ffi_fail "no pkg-config (apt-get install pkg-config)"

PKG_CONFIG_PATH=$(ffi_uninstalled_pc)
export PKG_CONFIG_PATH GOFLAGS="-mod=mod -buildvcs=false" GOPROXY=off \
  GOCACHE="$ffi_tmp/gocache" GOPATH="$ffi_tmp/gopath" GO111MODULE=on CGO_ENABLED=1 \
  GOTOOLCHAIN=local GOTELEMETRY=off
unset GOROOT_FINAL 2>/dev/null || true
(cd "$src/examples/go" && go vet . && go build -o "$ffi_tmp/go-example" .) \
  >"$ffi_tmp/go-build.log" 2>&1 || ffi_fail "go vet/build of examples/go failed: $(cat "$ffi_tmp/go-build.log")"

ffi_start_nats
ffi_start_echo_service
out=$(ffi_run_env "$ffi_tmp/go-example" demo.echo "hello from go" 2>"$ffi_tmp/go-run.log") \
  || ffi_fail "go-example exited $? (expected 0): $(cat "$ffi_tmp/go-run.log")"
expected=$(printf 'reversed:hello\nhello from go')
[ "$out" = "$expected" ] || ffi_fail "unexpected output '$out'"
grep -Eq "served 1, [1-9][0-9]* log record\(s\), connected logged: true" "$ffi_tmp/go-run.log" \
  || ffi_fail "callbacks did not run as expected: $(cat "$ffi_tmp/go-run.log")"

rc=0
ffi_run_env "$ffi_tmp/go-example" demo.echo "" >/dev/null 2>"$ffi_tmp/go-run.log" || rc=$?
[ "$rc" -eq 1 ] || ffi_fail "an empty message gave exit $rc (expected 1, an error reply)"
grep -q "error reply: message is empty" "$ffi_tmp/go-run.log" \
  || ffi_fail "unexpected error report: $(cat "$ffi_tmp/go-run.log")"
echo "check-go: examples/go built with $(go version | cut -d' ' -f3) and ran"
echo "check-go: 3 passed, 0 failed"
