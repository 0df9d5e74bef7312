#!/bin/sh
# The README's configuration table is the library's table.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
"$src/tools/config-table.sh" "$src" > "$tmp"
missing=$(grep -vxFf "$src/README.md" "$tmp" || true)
if [ -n "$missing" ]; then
  echo "check-readme: README.md's configuration table is stale; regenerate it with tools/config-table.sh. Missing rows:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "check-readme: $(($(wc -l < "$tmp") - 2)) settings documented"
