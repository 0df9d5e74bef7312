#!/bin/sh
# Rewrite the configuration table in README.md (between the config-table
# markers) from lib/config_table.h.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp)
tools/config-table.sh > "$tmp.table"
awk -v table="$tmp.table" '
  /<!-- config-table -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
  /<!-- \/config-table -->/ { skip = 0 }
  !skip { print }' README.md > "$tmp"
mv "$tmp" README.md
rm -f "$tmp.table"
