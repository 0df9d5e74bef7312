#!/bin/sh
# examples/cpp/echo_client.cpp compiles as C++17 against the public headers
# with warnings as errors, and runs against the in-tree library: a request
# to the C echo_service answered, an error reply reported, the library's log
# records reaching a C++ callback, a subscription calling a C++ lambda.
set -eu
. "${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}/tests/ffi-lib.sh"
cxx=${CXX:-c++}
command -v "${cxx%% *}" >/dev/null 2>&1 \
  || ffi_fail "no C++ compiler '$cxx' (apt-get install g++)"
# The build's sanitizer flags, so an ASan build links its runtime first.
san=$(printf '%s\n' ${CFLAGS:-} | grep -E '^-f(no-)?sanitize|^-fno-omit-frame-pointer' | tr '\n' ' ' || true)
# shellcheck disable=SC2086
$cxx -std=c++17 -Wall -Wextra -Werror -pedantic -g $san \
  -I"$src/include" -I"$build/include" -I"$build/include/aiplat" \
  "$src/examples/cpp/echo_client.cpp" \
  -o "$ffi_tmp/echo_client" -L"$libdir" -laiplat ${LDFLAGS:-} \
  || ffi_fail "examples/cpp/echo_client.cpp does not compile"

ffi_start_nats
ffi_start_echo_service
client="$ffi_tmp/echo_client"
[ -n "$san" ] && ffi_preload=""  # the program carries the runtime itself

out=$(ffi_run_env "$client" demo.echo "hello from c++" 2>"$ffi_tmp/client.log") \
  || ffi_fail "echo_client exited $? (expected 0)"
[ "$out" = "hello from c++" ] || ffi_fail "unexpected answer '$out'"
grep -q "watched 1 request(s)" "$ffi_tmp/client.log" \
  || ffi_fail "the lambda subscription did not see the request: $(cat "$ffi_tmp/client.log")"
grep -Eq ", [1-9][0-9]* log record\(s\)" "$ffi_tmp/client.log" \
  || ffi_fail "no log record reached the callback: $(cat "$ffi_tmp/client.log")"

json=$(ffi_run_env "$client" demo.echo "json please" --json 2>/dev/null | head -n 1)
case $json in *'"text":"json please"'*) ;; *) ffi_fail "unexpected JSON '$json'" ;; esac

rc=0
ffi_run_env "$client" demo.echo "" >/dev/null 2>"$ffi_tmp/client.log" || rc=$?
[ "$rc" -eq 1 ] || ffi_fail "an empty message gave exit $rc (expected 1, an error reply)"
grep -q "error 1 (.*): message is empty" "$ffi_tmp/client.log" \
  || ffi_fail "unexpected error report: $(cat "$ffi_tmp/client.log")"

rc=0
ffi_run_env "$client" "bad subject" "x" >/dev/null 2>"$ffi_tmp/client.log" || rc=$?
[ "$rc" -eq 2 ] || ffi_fail "a bad subject gave exit $rc (expected 2)"
grep -q "subject" "$ffi_tmp/client.log" || ffi_fail "no library message: $(cat "$ffi_tmp/client.log")"
echo "check-cpp: examples/cpp/echo_client.cpp built as C++17 and ran"
echo "check-cpp: 4 passed, 0 failed"
