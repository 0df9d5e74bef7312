#!/bin/sh
# Every public header compiles alone as C99 and as C++, includes only
# <stddef.h>, <stdint.h>, <stdbool.h> or its siblings, and has extern "C".
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
build=${top_builddir:-$src}
CC=${CC:-cc}
CXX=${CXX:-c++}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for h in "$src"/include/aiplat/*.h; do
  name=$(basename "$h")
  bad=$(grep -E '^[[:space:]]*#[[:space:]]*include' "$h" \
    | grep -vE '#[[:space:]]*include[[:space:]]*(<std(def|int|bool)\.h>|"[a-z_]+\.h")' || true)
  if [ -n "$bad" ]; then echo "$name: non-standard include: $bad" >&2; fail=1; fi
  case $name in
    aiplat.h|version.h) ;;
    *) grep -q 'extern "C"' "$h" || { echo "$name: no extern \"C\" guard" >&2; fail=1; } ;;
  esac
  printf '#include <aiplat/%s>\n#include <aiplat/%s>\nint main(void){return 0;}\n' "$name" "$name" > "$tmp/t.c"
  cp "$tmp/t.c" "$tmp/t.cpp"
  $CC -std=c99 -pedantic -Wall -Wextra -Werror -I"$src/include" -I"$build/include" -I"$build/include/aiplat" \
    -c "$tmp/t.c" -o "$tmp/t.o" || { echo "$name: does not compile as C99" >&2; fail=1; }
  $CXX -std=c++11 -pedantic -Wall -Wextra -Werror -I"$src/include" -I"$build/include" -I"$build/include/aiplat" \
    -c "$tmp/t.cpp" -o "$tmp/t.o" || { echo "$name: does not compile as C++11" >&2; fail=1; }
done
[ $fail -eq 0 ] && echo "check-headers: all public headers compile as C99 and C++11"
exit $fail
