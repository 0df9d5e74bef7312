#!/bin/sh
# The API manual pages that doxygen makes from the headers' doc comments
# (docs/docs.am, `make man`): aiplat(3) and a page aiplat_X(3) per public
# header aiplat/X.h exist and render without warnings (groff -ww, man
# --warnings), and every function the library exports has a page (a link
# to its header's page), so `man 3 aiplat_bus_create` works.
# Skips (77) when configure did not find doxygen (apt-get install doxygen).
set -eu
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
build=$(cd "${top_builddir:-$src}" && pwd)
man3="$build/docs/api/man3"
if [ ! -f "$build/docs/api/man3.stamp" ]; then
  if grep -q '^DOXYGEN = no$' "$build/Makefile" 2>/dev/null; then
    echo "check-api-manpages: SKIP: configure found no doxygen (apt-get install doxygen, configure again)"
    exit 77
  fi
  echo "check-api-manpages: FAIL: $man3 not built (make man)" >&2; exit 1
fi
command -v groff >/dev/null 2>&1 || {
  echo "check-api-manpages: SKIP: groff missing (apt-get install groff-base)"; exit 77; }
lib="$build/lib/.libs/libaiplat.so.0"
[ -f "$lib" ] || { echo "check-api-manpages: $lib not built" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-api-manpages.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

render() { # page: no warnings from groff or man, and some text
  LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$1" > "$tmp/groff.log" 2>&1 || true
  [ ! -s "$tmp/groff.log" ] || { cat "$tmp/groff.log" >&2; fail "${1##*/}: groff warnings"; }
  if command -v man >/dev/null 2>&1; then
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$1" > "$tmp/man.out" 2> "$tmp/man.log" || true
    [ ! -s "$tmp/man.log" ] || { cat "$tmp/man.log" >&2; fail "${1##*/}: man --warnings"; }
    grep -q '^NAME' "$tmp/man.out" || fail "${1##*/}: no NAME when rendered"
  fi
}

pages=aiplat
for h in "$src"/include/aiplat/*.h; do
  x=${h##*/}; x=${x%.h}
  [ "$x" = aiplat ] || pages="$pages aiplat_$x"
done
for p in $pages; do
  f="$man3/$p.3"
  [ -f "$f" ] || { fail "no page $p(3) for its header"; continue; }
  head -n 1 "$f" | grep -q "^\.TH \"$p\" 3 " || fail "$p.3: .TH does not name $p(3)"
  grep -q "^$p \\\\- " "$f" || fail "$p.3: NAME line is not '$p \\- ...'"
  render "$f"
  [ "$p" = aiplat ] || grep -q "^\.BR $p (3)" "$man3/aiplat.3" || fail "aiplat(3) does not refer to $p(3)"
done
echo "ok: aiplat(3) and $(($(echo $pages | wc -w) - 1)) header pages render without warnings"

nm -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $3); print $3 }' | grep '^aiplat_' | sort -u > "$tmp/exports"
missing=0
while read -r fn; do
  f="$man3/$fn.3"
  if [ ! -f "$f" ]; then echo "no page $fn(3): does its declaration have a doc comment?" >&2; missing=$((missing + 1)); continue; fi
  t=$(sed -n '1s|^\.so man3/||p' "$f")
  [ -z "$t" ] || [ -f "$man3/$t" ] || fail "$fn.3 points to a missing man3/$t"
done < "$tmp/exports"
[ "$missing" -eq 0 ] || fail "$missing exported functions have no manual page"
echo "ok: every one of the $(wc -l < "$tmp/exports") exported functions has a page"
ls "$man3" | grep -v '^aiplat[_.]\|^AIPLAT_' > "$tmp/odd" || true
[ ! -s "$tmp/odd" ] || fail "pages outside the aiplat namespace: $(tr '\n' ' ' < "$tmp/odd")"
[ "$fails" -eq 0 ] || { echo "check-api-manpages: $fails failure(s)" >&2; exit 1; }
