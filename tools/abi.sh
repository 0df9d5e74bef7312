#!/bin/sh
# ABI guard for libaiplat (docs/decisions/0013-debian-packaging-and-abi.md).
#
#   tools/abi.sh check    --lib SO --baseline-dir DIR --header H [--header H ...]
#   tools/abi.sh baseline --lib SO --baseline-dir DIR --header H [--header H ...]
#
# `make abi-check` / `make abi-baseline` call this with the built library and
# the installed public headers. The baseline of a SONAME is DIR/<SONAME>.abi,
# written by libabigail's abidw with the public headers, so only public types
# count.
#
# check: the library is compared with DIR/<its SONAME>.abi by abidiff.
#   Added functions and appended enumerators pass. A removed function, a
#   changed signature (parameter or return type, arity) or a changed
#   enumerator value fails. Functions in the version node AIPLAT_EXPERIMENTAL
#   are outside the promise (ADR 0004): their changes are listed, not
#   judged. A stable function added to a node the baseline already records
#   fails: a released node is closed, new functions go into a new node
#   AIPLAT_X.Y. When no baseline exists for the library's SONAME
#   but one exists for another SONAME, the SONAME was changed on purpose:
#   the differences are shown and the check passes. No baseline at all fails.
# baseline: writes DIR/<SONAME>.abi. It refuses to overwrite a baseline the
#   library is incompatible with (a new baseline never hides a break: change
#   the SONAME instead). Only done at a release (ADR 0013).
#
# Exit: 0 compatible, written, or skipped (a baseline of another
# architecture, said on stdout); 1 incompatible or error.
set -eu
ABIDW=${ABIDW:-abidw}
ABIDIFF=${ABIDIFF:-abidiff}
me=abi

usage() {
  echo "usage: $0 check|baseline --lib SO --baseline-dir DIR --header FILE..." >&2
  exit 1
}
[ $# -ge 1 ] || usage
mode=$1; shift
case $mode in check|baseline) ;; *) usage ;; esac
me="abi-$mode"
lib= dir=
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/headers"
nhdr=0
while [ $# -gt 0 ]; do
  case $1 in
    --lib) lib=$2; shift 2 ;;
    --baseline-dir) dir=$2; shift 2 ;;
    --header)
      [ -f "$2" ] || { echo "$me: no header $2" >&2; exit 1; }
      cp "$2" "$tmp/headers/"; nhdr=$((nhdr + 1)); shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$lib" ] && [ -n "$dir" ] && [ "$nhdr" -gt 0 ] || usage

for tool in "$ABIDW" "$ABIDIFF"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$me: $tool not found: install the Debian package abigail-tools (apt-get install abigail-tools)" >&2
    exit 1; }
done
[ -f "$lib" ] || { echo "$me: $lib not built (make lib/libaiplat.la)" >&2; exit 1; }
soname=$(LC_ALL=C objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
[ -n "$soname" ] || { echo "$me: $lib has no SONAME" >&2; exit 1; }
# Without DWARF, abidiff would compare symbol names only and miss every
# signature and enum change: refuse rather than pass.
if ! LC_ALL=C readelf -S --wide "$lib" | grep -q '[.]debug_info'; then
  echo "$me: $lib has no debug info; build it with -g (autoconf's default CFLAGS are -g -O2)" >&2
  exit 1
fi

# Which types are public: those declared in the public headers, and the C
# library's and compiler's vocabulary types they use (size_t, uint32_t,
# bool). Everything else (the structs behind the opaque handles, defined in
# lib/) is private, so its layout may change. Without the system directories
# a uint32_t -> uint64_t return type change would pass unseen.
set -- --hd "$tmp/headers"
for d in /usr/include "$(${CC:-cc} -print-file-name=include 2>/dev/null || true)"; do
  [ -d "$d" ] && set -- "$@" --hd "$d"
done
HD="$*"
HD2=$(echo "$HD" | sed 's/--hd /--hd2 /g')

# The report of an abidiff exit code: bit 1 error, 2 usage, 4 change,
# 8 incompatible change (libabigail's abidiff manual).
verdict() {
  rc=$1
  if [ $((rc & 3)) -ne 0 ]; then echo error
  elif [ "$rc" -ne 0 ]; then echo incompatible
  else echo compatible
  fi
}
# The experimental tier (ADR 0004): its functions may change or go.
cat > "$tmp/experimental.supp" <<'EOF'
[suppress_function]
  symbol_version = AIPLAT_EXPERIMENTAL
EOF
# Compare a baseline with the library: added symbols, harmless changes
# (appended enumerators) and the experimental tier are not reported,
# everything else is. The experimental tier's own changes land in
# $tmp/experimental.
compare() {
  set +e
  # shellcheck disable=SC2086
  "$ABIDIFF" --no-added-syms --suppressions "$tmp/experimental.supp" $HD2 "$1" "$lib" > "$tmp/report" 2>&1
  rc=$?
  # shellcheck disable=SC2086
  "$ABIDIFF" --no-added-syms $HD2 "$1" "$lib" 2>/dev/null \
    | grep -E '^ +\[[A-Z]\] ' > "$tmp/all-changes" || true
  # What only the suppression hid: the experimental tier's changes.
  grep -E '^ +\[[A-Z]\] ' "$tmp/report" > "$tmp/stable-changes" || true
  grep -vxFf "$tmp/stable-changes" "$tmp/all-changes" > "$tmp/experimental" || true
  set -e
  verdict "$rc"
}
# Stable functions added to a node the baseline already has (a released
# node is closed): "name node" lines.
closed_node_additions() {
  sed -n "s/.*<elf-symbol name='\([^']*\)' version='\([^']*\)'.*type='func-type'.*/\1 \2/p" "$1" | sort > "$tmp/base.syms"
  awk '{ print $2 }' "$tmp/base.syms" | grep -v '^AIPLAT_EXPERIMENTAL$' | sort -u > "$tmp/base.nodes"
  LC_ALL=C nm -D --defined-only "$lib" | awk '$2 == "T" { split($3, p, "@@"); print p[1], p[2] }' | sort > "$tmp/lib.syms"
  comm -13 "$tmp/base.syms" "$tmp/lib.syms" | awk -v nodes="$tmp/base.nodes" '
    BEGIN { while ((getline n < nodes) > 0) closed[n] = 1 }
    ($2 in closed) { print }'
}
arch_of() {
  sed -n "1,3s/.*<abi-corpus [^>]*architecture='\([^']*\)'.*/\1/p" "$1" | head -n 1
}

target="$dir/$soname.abi"
case $mode in
check)
  if [ ! -f "$target" ]; then
    others=$(ls "$dir"/*.abi 2>/dev/null || true)
    if [ -z "$others" ]; then
      echo "$me: no ABI baseline in $dir; one is made at a release with make abi-baseline" >&2
      exit 1
    fi
    echo "$me: no baseline for $soname: the SONAME changed (was: $(for f in $others; do basename "$f" .abi; done | tr '\n' ' '))."
    echo "$me: incompatible changes are allowed with a new SONAME; make abi-baseline at the release records $soname."
    for f in $others; do
      compare "$f" >/dev/null
      echo "$me: differences from $(basename "$f"):"; sed 's/^/  /' "$tmp/report"
    done
    exit 0
  fi
  base_arch=$(arch_of "$target")
  # shellcheck disable=SC2086
  "$ABIDW" $HD --drop-private-types --out-file "$tmp/current.abi" "$lib"
  cur_arch=$(arch_of "$tmp/current.abi")
  if [ -n "$base_arch" ] && [ "$base_arch" != "$cur_arch" ]; then
    echo "SKIP: $me: the baseline is for $base_arch, this library is $cur_arch"
    exit 0
  fi
  v=$(compare "$target")
  if [ -s "$tmp/experimental" ]; then
    echo "$me: experimental interfaces changed (AIPLAT_EXPERIMENTAL, outside the ABI promise):"
    sed 's/^ */  /' "$tmp/experimental"
  fi
  if [ "$v" = compatible ]; then
    late=$(closed_node_additions "$target")
    if [ -n "$late" ]; then
      echo "$me: functions added to a version node that $target already records:" >&2
      printf '%s\n' "$late" | sed 's/^\([^ ]*\) \(.*\)/  \1 in \2/' >&2
      echo "$me: a released node is closed: put a new function in the node of the next release (AIPLAT_X.Y in lib/libaiplat.vers, @since X.Y)" >&2
      exit 1
    fi
  fi
  case $v in
  compatible)
    # Additions are fine; say what they are so a reviewer sees them.
    # shellcheck disable=SC2086
    added=$("$ABIDIFF" $HD2 --added-fns --added-vars "$target" "$lib" 2>/dev/null \
      | sed -n "s/^  \[A\] '\(.*\)'.*/\1/p" || true)
    n=$(printf '%s' "$added" | grep -c . || true)
    echo "$me: $(basename "$lib") ($soname) is compatible with $target; $n interface(s) added"
    [ -z "$added" ] || printf '%s\n' "$added" | sed -n 's/^/  added: /; 1,25p'
    [ "$n" -le 25 ] || echo "  ... and $((n - 25)) more"
    exit 0 ;;
  incompatible)
    echo "$me: $(basename "$lib") ($soname) BREAKS the ABI recorded in $target:" >&2
    sed 's/^/  /' "$tmp/report" >&2
    cat >&2 <<EOF
$me: a released function keeps its signature and an enumerator its value.
$me: keep the old function and add a new one (aiplat_x_v2), append a new
$me: enumerator, or, for a deliberate break, change the SONAME in
$me: lib/soname.mk (CURRENT+1, REVISION=0, AGE=0) and rename the Debian package.
EOF
    exit 1 ;;
  *)
    echo "$me: abidiff failed:" >&2; cat "$tmp/report" >&2
    exit 1 ;;
  esac
  ;;
baseline)
  if [ -f "$target" ]; then
    v=$(compare "$target")
    case $v in
    compatible) ;;
    incompatible)
      echo "$me: refusing to overwrite $target: the library breaks it:" >&2
      sed 's/^/  /' "$tmp/report" >&2
      echo "$me: a new baseline never hides a break; restore the interface or change the SONAME (lib/soname.mk)" >&2
      exit 1 ;;
    *) echo "$me: abidiff failed:" >&2; cat "$tmp/report" >&2; exit 1 ;;
    esac
  fi
  mkdir -p "$dir"
  # Stable output: no paths, no source locations (an edit that moves lines
  # leaves the file alone), hashed type ids, no DT_NEEDED (the dependencies'
  # SONAMEs are the Debian package's business, not our ABI).
  # shellcheck disable=SC2086
  "$ABIDW" $HD --drop-private-types --no-corpus-path --no-comp-dir-path --no-show-locs \
    --drop-undefined-syms --no-elf-needed --type-id-style hash \
    --out-file "$tmp/new.abi" "$lib"
  mv "$tmp/new.abi" "$target"
  nfn=$(grep -c '<elf-symbol .*func-type' "$target" || true)
  echo "$me: wrote $target ($soname, $nfn functions)"
  for f in "$dir"/*.abi; do
    [ "$f" = "$target" ] || echo "$me: $f belongs to an older SONAME: git rm it with this release"
  done
  ;;
esac
