#!/bin/sh
# The Python bindings (bindings/python/aiplat, ctypes) against the in-tree
# library: tests/python/test_*.py, with pytest or the standard library's
# unittest.
# They start their own nats-server (and the local model backend when it
# was built) and run the C example programs examples/requester and
# examples/echo_service against Python services and requesters.
set -eu
# Absolute: the tests hand these paths to programs they start elsewhere.
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
build=$(cd "${top_builddir:-$src}" && pwd)
lib="$build/lib/.libs/libaiplat.so.0"
[ -f "$lib" ] || { echo "check-python: $lib not built" >&2; exit 1; }
py=${PYTHON:-python3}
command -v "$py" >/dev/null 2>&1 || { echo "check-python: FAIL: no $py (apt-get install python3)" >&2; exit 1; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "check-python: FAIL: $py is older than Python 3.11" >&2; exit 1; }
for prog in examples/requester examples/echo_service; do
  [ -x "$build/$prog" ] || { echo "check-python: $build/$prog not built (make check builds it)" >&2; exit 1; }
done

AIPLAT_LIBRARY="$lib" AIPLAT_BUILD_DIR="$build" top_builddir="$build" top_srcdir="$src"
PYTHONPATH="$src/bindings/python:$src/tests/python" PYTHONDONTWRITEBYTECODE=1
LOG_LEVEL=${LOG_LEVEL:-WARNING}
export AIPLAT_LIBRARY AIPLAT_BUILD_DIR top_builddir top_srcdir PYTHONPATH PYTHONDONTWRITEBYTECODE LOG_LEVEL
# An AddressSanitizer build: Python is not instrumented, so the runtime is
# preloaded, and Python's own allocations are not leak-checked.
if ldd "$lib" 2>/dev/null | grep -q libasan; then
  LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  export LD_PRELOAD ASAN_OPTIONS
fi
# pytest when there is one (its settings: bindings/python/pyproject.toml),
# else the standard library's runner: the tests are unittest cases.
if "$py" -c 'import pytest' 2>/dev/null; then
  exec "$py" -m pytest -c "$src/bindings/python/pyproject.toml" --rootdir "$src/bindings/python" \
    -p no:cacheprovider -v "$src/tests/python"
fi
exec "$py" -m unittest discover -s "$src/tests/python" -t "$src/tests/python" -p 'test_*.py' -v
