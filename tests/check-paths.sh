#!/bin/sh
# The checks that take the trees from top_srcdir and top_builddir also work
# when those are relative to the build directory, as in a build run by hand
# (`top_builddir=. tests/check-go.sh` in an in-tree build), not only with the
# absolute paths `make check` gives them:
#  - the uninstalled aiplat.pc that check-go.sh hands to cgo finds the
#    headers from another directory (cgo compiles inside the package's
#    directory);
#  - check-demo.sh, whose demo runs from the source root.
# A few seconds; CI's in-tree stage (tests/check-intree.sh) runs check-go.sh
# itself that way.
set -eu
src=${top_srcdir:?}
build=${top_builddir:?}
CC=${CC:-cc}
command -v pkg-config >/dev/null 2>&1 || { echo "check-paths: FAIL: no pkg-config (apt-get install pkg-config)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$build"
rel=$(realpath --relative-to=. "$src") # "." in tree, ".." for ./build
fails=0

cflags=$(top_srcdir=$rel top_builddir=. sh -c \
  '. "$top_srcdir/tests/ffi-lib.sh"; PKG_CONFIG_PATH=$(ffi_uninstalled_pc) pkg-config --cflags aiplat')
printf '#include <aiplat/aiplat.h>\nint main(void) { return AIPLAT_OK; }\n' >"$tmp/t.c"
# shellcheck disable=SC2086
if (cd "$tmp" && $CC $cflags -c t.c -o t.o) >"$tmp/cc.log" 2>&1; then
  echo "ok: the uninstalled aiplat.pc works from another directory ($cflags)"
else
  echo "FAIL: the uninstalled aiplat.pc from top_srcdir=$rel top_builddir=.: $(cat "$tmp/cc.log")" >&2
  fails=$((fails + 1))
fi

if top_srcdir=$rel top_builddir=. sh "$src/tests/check-demo.sh" >"$tmp/demo.log" 2>&1; then
  echo "ok: check-demo.sh with top_srcdir=$rel top_builddir=."
else
  echo "FAIL: check-demo.sh with top_srcdir=$rel top_builddir=.:" >&2
  tail -n 20 "$tmp/demo.log" >&2
  fails=$((fails + 1))
fi
echo "check-paths: $((2 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
