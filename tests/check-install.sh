#!/bin/sh
# `make install DESTDIR=...` stages a working copy: a program compiled with
# `pkg-config --cflags --libs aiplat` against the staged copy only (headers,
# aiplat.pc, libaiplat.so) builds and runs.
set -eu
build=${top_builddir:?}
CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
${MAKE:-make} -s -C "$build" install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log" >&2; exit 1; }
pc=$(find "$tmp/root" -name aiplat.pc | head -n 1)
[ -n "$pc" ] || { echo "check-install: aiplat.pc not installed" >&2; exit 1; }
private=$(find "$tmp/root" -name '*.la' -o -name 'internal.h' -o -name 'libaiplat-core*')
if [ -n "$private" ]; then
  echo "check-install: private files installed: $private" >&2
  exit 1
fi
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cat > "$tmp/app.c" <<'APP'
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  if (aiplat_init() != AIPLAT_OK) return 1;
  aiplat_config *cfg = NULL;
  if (aiplat_config_create(&cfg) != AIPLAT_OK) return 2;
  const char *url = NULL;
  if (aiplat_config_get_string(cfg, "NATS_URL", &url) != AIPLAT_OK) return 3;
  if (strcmp(aiplat_version_string(), AIPLAT_VERSION_STRING) != 0) return 4;
  printf("aiplat %s NATS_URL=%s\n", aiplat_version_string(), url);
  aiplat_config_destroy(cfg);
  aiplat_cleanup();
  return 0;
}
APP
# shellcheck disable=SC2046
# The build's own CFLAGS/LDFLAGS too, so that a sanitizer build links its runtime first.
$CC -std=c99 -Wall -Werror ${CFLAGS:-} ${LDFLAGS:-} -o "$tmp/app" "$tmp/app.c" $(pkg-config --cflags --libs aiplat)
libdir=$(dirname "$(find "$tmp/root" -name 'libaiplat.so' | head -n 1)")
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/app")
echo "$out" | grep -q "NATS_URL=nats://localhost:4222" || { echo "check-install: unexpected output: $out" >&2; exit 1; }
# The program really loads the staged library.
LD_LIBRARY_PATH="$libdir" ldd "$tmp/app" | grep -q "$libdir/libaiplat.so" \
  || { echo "check-install: the program did not load the staged libaiplat" >&2; exit 1; }
echo "check-install: $out"
# The examples build against the staged copy with their own Makefile, as an
# integrator builds them against the installed package.
src=${top_srcdir:?}
mkdir "$tmp/examples"
cp "$src"/examples/*.c "$src"/examples/Makefile "$tmp/examples/"
${MAKE:-make} -s -C "$tmp/examples" CC="$CC" CFLAGS="-O2 -Wall -Werror ${CFLAGS:-}" \
  LDFLAGS="${LDFLAGS:-}" >"$tmp/examples.log" 2>&1 || { cat "$tmp/examples.log" >&2; exit 1; }
for p in echo_service requester chat_stream transcribe speak; do
  [ -x "$tmp/examples/$p" ] || { echo "check-install: example $p not built" >&2; exit 1; }
done
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/examples/requester" 2>&1 || true)
echo "$out" | grep -q "usage: requester" || { echo "check-install: examples/requester: $out" >&2; exit 1; }
echo "check-install: examples built against the staged copy"
