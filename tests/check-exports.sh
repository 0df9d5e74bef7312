#!/bin/sh
# The library's dynamic symbols must be exactly the public API: the functions
# declared with AIPLAT_API in include/aiplat/*.h, each with a doc comment.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
build=${top_builddir:-$src}
so=$(ls "$build"/lib/.libs/libaiplat.so.* 2>/dev/null | head -n 1)
[ -n "$so" ] || { echo "check-exports: libaiplat.so not built" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Declared: the identifier before '(' on each line that starts with AIPLAT_API.
grep -h '^AIPLAT_API' "$src"/include/aiplat/*.h \
  | sed -n 's/.*[ *]\(aiplat_[A-Za-z0-9_]*\)(.*/\1/p' | sort -u > "$tmp/declared"
# Documented: the line before the declaration ends a comment.
undoc=$(awk 'FNR==1{prev=""} /^AIPLAT_API/ { if (prev !~ /\*\/[ \t]*$/) print FILENAME ": " $0 } { if ($0 !~ /^[ \t]*$/) prev=$0 }' \
  "$src"/include/aiplat/*.h)
if [ -n "$undoc" ]; then
  echo "check-exports: public declarations without a doc comment:" >&2
  echo "$undoc" >&2
  exit 1
fi
# Exported: defined dynamic symbols, except the version node itself.
nm -D --defined-only "$so" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' \
  | sort -u > "$tmp/exported"
if ! diff -u "$tmp/declared" "$tmp/exported" > "$tmp/diff"; then
  echo "check-exports: exported symbols differ from the declared API (- declared only, + exported only):" >&2
  cat "$tmp/diff" >&2
  exit 1
fi
# Every exported symbol carries the version node.
if nm -D --defined-only "$so" | awk '$2 != "A"' | grep -v '@@AIPLAT_1.0$' >&2; then
  echo "check-exports: symbols outside the AIPLAT_1.0 version node" >&2
  exit 1
fi
echo "check-exports: $(wc -l < "$tmp/exported") symbols, all declared and documented"
