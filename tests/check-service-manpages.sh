#!/bin/sh
# The services' manual pages, made from --help by help2man as debian/rules
# makes them, render cleanly and define one setting per paragraph: the
# ENVIRONMENT section holds only tagged paragraphs (.TP), each tag is one
# setting of lib/config_table.h, none twice, and no description starts with
# further setting names (settings run together into one paragraph).
# Skips (77) when help2man or groff is missing: apt-get install help2man groff-base.
set -eu
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
build=$(cd "${top_builddir:-$src}" && pwd)
for tool in help2man groff; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "check-service-manpages: SKIP: $tool missing (apt-get install help2man groff-base)"; exit 77; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-service-manpages.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sed -n 's/^ *X(\([A-Z][A-Z0-9_]*\),.*/\1/p' "$src/lib/config_table.h" > "$tmp/settings"
[ -s "$tmp/settings" ] || { echo "check-service-manpages: no settings in lib/config_table.h" >&2; exit 1; }
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
n=0
for m in "$src"/services/*/main.c; do
  s=$(basename "$(dirname "$m")")
  prog="$build/services/$s/$s"
  [ -x "$prog" ] || { fail "$prog not built"; continue; }
  page="$tmp/$s.1"
  if ! help2man --no-info --no-discard-stderr --name="$s" --section=1 \
      --source=libaiplat --output="$page" "$prog" 2>"$tmp/h2m.log"; then
    cat "$tmp/h2m.log" >&2; fail "help2man $s"; continue
  fi
  n=$((n + 1))
  # groff's own warnings (-ww), and man's when man-db is there.
  LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$page" > "$tmp/groff.log" 2>&1 || true
  [ ! -s "$tmp/groff.log" ] || { cat "$tmp/groff.log" >&2; fail "$s.1: groff warnings"; }
  if command -v man >/dev/null 2>&1; then
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" > "$tmp/man.out" 2> "$tmp/man.log" || true
    [ ! -s "$tmp/man.log" ] || { cat "$tmp/man.log" >&2; fail "$s.1: man --warnings"; }
  fi
  for sect in NAME SYNOPSIS DESCRIPTION ENVIRONMENT; do
    grep -qx "\.SH $sect" "$page" || fail "$s.1 has no $sect section"
  done
  # The ENVIRONMENT section, paragraph by paragraph.
  awk -v page="$s.1" -v known="$tmp/settings" '
    BEGIN { while ((getline l < known) > 0) setting[l] = 1 }
    /^\.SH / { in_env = ($0 == ".SH ENVIRONMENT"); next }
    !in_env { next }
    /^\.TP$/ { want_tag = 1; tps++; next }
    /^\.(PP|IP|HP|LP|P|SS)( |$)/ { printf "%s: ENVIRONMENT has a %s paragraph, not a definition\n", page, $1; bad++; next }
    want_tag {
      want_tag = 0
      if (!($0 in setting)) { printf "%s: tag \"%s\" is not one setting\n", page, $0; bad++ }
      else if (seen[$0]++) { printf "%s: %s defined twice\n", page, $0; bad++ }
      next
    }
    {
      if (tps == 0) { printf "%s: text before the first definition: %s\n", page, $0; bad++ }
      w = $0; sub(/[ ,].*/, "", w)
      if ((w in setting) && $0 ~ "^" w "(,|  | *$)") {
        printf "%s: settings run together: %s\n", page, $0; bad++
      }
    }
    END {
      if (tps < 5) { printf "%s: %d settings defined in ENVIRONMENT\n", page, tps; bad++ }
      if (!bad) print tps
      exit bad > 0
    }' "$page" > "$tmp/env.log" || { cat "$tmp/env.log" >&2; fail "$s.1: ENVIRONMENT"; continue; }
  echo "ok: $s.1: $(cat "$tmp/env.log") settings, one definition each; renders without warnings"
done
[ "$n" -gt 0 ] || fail "no service pages made"
[ "$fails" -eq 0 ] || { echo "check-service-manpages: $fails failure(s)" >&2; exit 1; }
