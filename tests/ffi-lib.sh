# Sourced by check-cpp.sh and check-go.sh: a temp dir, a real nats-server on
# a free loopback port, the C example echo_service, cleanup on exit, and the
# sanitizer runtime when the library was built with AddressSanitizer.
# The trees as absolute paths: top_srcdir and top_builddir may be relative
# (`top_builddir=. tests/check-go.sh` in an in-tree build), and cgo runs the
# compiler inside the package's directory, where a relative -I means
# something else.
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
build=$(cd "${top_builddir:-$src}" && pwd)
libdir="$build/lib/.libs"
[ -f "$libdir/libaiplat.so.0" ] || { echo "$0: $libdir/libaiplat.so.0 not built" >&2; exit 1; }
ffi_tmp=$(mktemp -d)
ffi_pids=""

ffi_cleanup() {
  for p in $ffi_pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $ffi_pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$ffi_tmp"
}
trap ffi_cleanup EXIT
trap 'exit 1' INT TERM

ffi_fail() {
  echo "$0: FAIL: $*" >&2
  for f in "$ffi_tmp"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# The in-tree library; with AddressSanitizer its runtime must come first
# in a program that is not itself instrumented (Go, the C++ example when
# CFLAGS has no sanitizer).
ffi_run_env() {
  env LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ${ffi_preload:+LD_PRELOAD=$ffi_preload} "$@"
}
ffi_preload=""
if ldd "$libdir/libaiplat.so.0" 2>/dev/null | grep -q 'libasan'; then
  ffi_preload=$(${CC:-cc} -print-file-name=libasan.so)
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  export ASAN_OPTIONS
fi

ffi_start_nats() {
  mkdir -p "$ffi_tmp/js"
  "${NATS_SERVER:-nats-server}" -a 127.0.0.1 -p -1 -js -sd "$ffi_tmp/js" \
    --ports_file_dir "$ffi_tmp" >"$ffi_tmp/nats.log" 2>&1 &
  ffi_pids="$ffi_pids $!"
  i=0
  while [ -z "$(ls "$ffi_tmp"/*.ports 2>/dev/null)" ]; do
    i=$((i + 1)); [ $i -le 200 ] || ffi_fail "nats-server did not start"
    sleep 0.05
  done
  NATS_URL=$(grep -o 'nats://[^"]*' "$ffi_tmp"/*.ports | head -n 1)
  [ -n "$NATS_URL" ] || ffi_fail "no URL in the nats-server ports file"
  export NATS_URL
}

# examples/echo_service on demo.echo; waits until it answers.
ffi_start_echo_service() {
  HEALTH_PORT=0 HEALTH_BIND=127.0.0.1 LOG_LEVEL=WARNING "$build/examples/echo_service" \
    >"$ffi_tmp/echo_service.log" 2>&1 &
  ffi_pids="$ffi_pids $!"
  i=0
  until "$build/examples/requester" demo.echo ping 1000 >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -le 100 ] || ffi_fail "echo_service did not answer"
    sleep 0.1
  done
}

# An uninstalled aiplat.pc pointing at the source and build trees (the
# generated headers, include/aiplat/version.h, are in the build tree) in
# $ffi_tmp/pc; prints that directory, for PKG_CONFIG_PATH.
ffi_uninstalled_pc() {
  mkdir -p "$ffi_tmp/pc"
  version=$(sed -n 's/^Version: *//p' "$build/aiplat.pc")
  cat > "$ffi_tmp/pc/aiplat.pc" <<PC
Name: aiplat
Description: libaiplat (uninstalled build tree)
Version: $version
Cflags: -I$src/include -I$build/include -I$build/include/aiplat
Libs: -L$libdir -laiplat
PC
  echo "$ffi_tmp/pc"
}
