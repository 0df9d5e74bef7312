#!/bin/sh
# bindings/python installs with pip into a virtual environment, offline,
# with the system's setuptools (the command docs/python.md gives):
#   python3 -m venv --system-site-packages VENV
#   VENV/bin/pip install --no-build-isolation --no-index bindings/python
# and the installed package, run from elsewhere without PYTHONPATH or
# AIPLAT_LIBRARY, loads libaiplat.so.0 through the dynamic loader (here
# LD_LIBRARY_PATH names the build's library, as ldconfig would an installed
# one), and passes the round trip of debian/tests/python3-aiplat's kind
# against a real nats-server. Its version is configure's.
# Skips (77) without python3-venv, setuptools or wheel.
set -eu
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
build=$(cd "${top_builddir:-$src}" && pwd)
libdir="$build/lib/.libs"
[ -f "$libdir/libaiplat.so.0" ] || { echo "check-python-package: $libdir/libaiplat.so.0 not built" >&2; exit 1; }
# An AddressSanitizer build: Python is not instrumented, so the runtime is
# preloaded, and Python's own allocations are not leak-checked.
if ldd "$libdir/libaiplat.so.0" 2>/dev/null | grep -q libasan; then
  LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  export LD_PRELOAD ASAN_OPTIONS
fi
# The system's Python (its setuptools and wheel), not another one on PATH.
py=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
"$py" -c 'import ensurepip, setuptools, wheel' 2>/dev/null || {
  echo "check-python-package: SKIP: $py lacks venv, setuptools or wheel (apt-get install python3-venv python3-setuptools python3-wheel)"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-python-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# pip builds in the source directory: a copy, as the tree may be read-only.
cp -r "$src/bindings/python" "$tmp/src"
rm -rf "$tmp/src/build" "$tmp/src"/*.egg-info
find "$tmp/src" -name __pycache__ -prune -exec rm -rf {} +
"$py" -m venv --system-site-packages "$tmp/venv"
if ! "$tmp/venv/bin/pip" install --no-build-isolation --no-index --disable-pip-version-check \
    -q "$tmp/src" > "$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2; echo "check-python-package: FAIL: pip install bindings/python" >&2; exit 1
fi
echo "ok: pip install --no-build-isolation --no-index bindings/python into a venv"
want=$(sed -n 's/^PACKAGE_VERSION = //p' "$build/Makefile")
out=$(cd "$tmp" && env -u PYTHONPATH -u AIPLAT_LIBRARY -u AIPLAT_BUILD_DIR LD_LIBRARY_PATH="$libdir" \
  "$tmp/venv/bin/python" -c 'import aiplat; print(aiplat.__file__, aiplat.library_path(), aiplat.__version__, aiplat.version())') \
  || { echo "check-python-package: FAIL: import aiplat from the venv" >&2; exit 1; }
set -- $out
case $1 in "$tmp/venv/"*) ;; *) echo "check-python-package: FAIL: aiplat came from $1, not the venv" >&2; exit 1 ;; esac
[ "$2" = libaiplat.so.0 ] || { echo "check-python-package: FAIL: loaded $2, not libaiplat.so.0 by soname" >&2; exit 1; }
[ "$3" = "$want" ] || { echo "check-python-package: FAIL: aiplat.__version__ $3, configure says $want" >&2; exit 1; }
[ "$4" = "$want" ] || { echo "check-python-package: FAIL: libaiplat $4, configure says $want" >&2; exit 1; }
"$tmp/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiplat"))' | grep -qx "$want" \
  || { echo "check-python-package: FAIL: the installed distribution's version is not $want" >&2; exit 1; }
echo "ok: import aiplat $3 from the venv, $2 found by the loader"
# The round trip the Debian package's autopkgtest runs, against this venv.
nats=${NATS_SERVER:-$(command -v nats-server || true)}
if [ -n "$nats" ] && [ "$nats" != no ]; then
  mkdir "$tmp/rt" "$tmp/bin"
  ln -s "$nats" "$tmp/bin/nats-server"
  if (cd "$tmp/rt" && AUTOPKGTEST_TMP="$tmp/rt" AIPLAT_EXPECT_PREFIX="$tmp/venv/" \
      PATH="$tmp/venv/bin:$tmp/bin:$PATH" LD_LIBRARY_PATH="$libdir" sh "$src/debian/tests/python3-aiplat") > "$tmp/rt.log" 2>&1; then
    cat "$tmp/rt.log"
  else
    cat "$tmp/rt.log" >&2; echo "check-python-package: FAIL: round trip" >&2; exit 1
  fi
else
  echo "note: no nats-server: the round trip is left out"
fi
if command -v ruff >/dev/null 2>&1; then
  (cd "$src/bindings/python" && ruff check --no-cache . && ruff format --check --no-cache .) \
    || { echo "check-python-package: FAIL: ruff (settings in bindings/python/pyproject.toml)" >&2; exit 1; }
  echo "ok: ruff check and ruff format --check"
else
  echo "note: ruff is not installed: bindings/python/pyproject.toml's lint settings not applied"
fi
