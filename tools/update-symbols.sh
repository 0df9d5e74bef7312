#!/bin/sh
# Bring debian/libaiplat<N>.symbols up to date with a built library
# (docs/decisions/0013-debian-packaging-and-abi.md): symbols already listed
# keep the version that introduced them; new ones get the package version
# from configure.ac (the release that will first ship them; refused when
# that version is already tagged). A symbol that
# disappeared is reported and the file is left alone: that is an ABI break,
# which `make abi-check` explains, unless the symbol was experimental.
# Usage: tools/update-symbols.sh [path/to/libaiplat.so]   (default build/)
set -eu
cd "$(dirname "$0")/.."
lib=${1:-build/lib/.libs/libaiplat.so}
[ -f "$lib" ] || { echo "update-symbols: $lib not built" >&2; exit 1; }
command -v dpkg-gensymbols >/dev/null || { echo "update-symbols: install dpkg-dev" >&2; exit 1; }
soname=$(LC_ALL=C objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
pkg=libaiplat${soname#libaiplat.so.}
file=debian/$pkg.symbols
version=$(sed -n 's/^AC_INIT(\[libaiplat\], \[\([^]]*\)\].*/\1/p' configure.ac)
[ -n "$version" ] || { echo "update-symbols: no version in configure.ac" >&2; exit 1; }
# A symbol is recorded with the first release that ships it: once vX.Y.Z is
# tagged, new symbols belong to the next version, set in configure.ac first.
if git rev-parse -q --verify "refs/tags/v$version" >/dev/null 2>&1; then
  echo "update-symbols: $version is released (tag v$version): set the next version in configure.ac's AC_INIT first" >&2
  exit 1
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ -f "$file" ]; then cp "$file" "$tmp/in"; else
  printf '%s %s #MINVER#\n* Build-Depends-Package: libaiplat-dev\n' "$soname" "$pkg" > "$tmp/in"
fi
# An experimental function (version node AIPLAT_EXPERIMENTAL, ADR 0004) may
# go in any release: its line goes with it, and it is not an ABI break.
nm -D --defined-only "$lib" | awk '{ n = $3; if ($2 == "A") n = n "@" n; sub(/@@/, "@", n); print n }' | sort -u > "$tmp/exported"
awk -v list="$tmp/exported" 'BEGIN { while ((getline l < list) > 0) have[l] = 1 }
  $1 ~ /@AIPLAT_EXPERIMENTAL$/ && !($1 in have) { print "update-symbols: experimental " $1 " is gone: dropped" > "/dev/stderr"; next }
  { print }' "$tmp/in" > "$tmp/in.kept"
mv "$tmp/in.kept" "$tmp/in"
# dpkg-gensymbols wants the library inside a package tree.
mkdir -p "$tmp/pkg/usr/lib"
cp "$(readlink -f "$lib")" "$tmp/pkg/usr/lib/"
# A symbol counts as gone only when the version given is newer than the one
# it was recorded with: check with a version above every recorded one.
set +e
dpkg-gensymbols -p"$pkg" -v"$version+check" -P"$tmp/pkg" -I"$tmp/in" -O"$tmp/check" -c1 > "$tmp/diff" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  echo "update-symbols: symbols disappeared from $soname; $file left alone:" >&2
  cat "$tmp/diff" >&2
  echo "update-symbols: that is an ABI break: see make abi-check" >&2
  exit 1
fi
dpkg-gensymbols -q -p"$pkg" -v"$version" -P"$tmp/pkg" -I"$tmp/in" -O"$tmp/out" -c0 > "$tmp/diff" 2>&1
if cmp -s "$tmp/out" "$file" 2>/dev/null; then
  echo "update-symbols: $file is up to date ($(grep -c '^ ' "$file") symbols)"
else
  cp "$tmp/out" "$file"
  new=$(diff "$tmp/in" "$file" | grep -c '^> ' || true)
  echo "update-symbols: $file: $new symbol(s) added as of $version ($(grep -c '^ ' "$file") in all)"
fi
