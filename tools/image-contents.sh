#!/bin/sh
# What the runtime stage of a service's container image holds, computed from
# the binary: the program, the shared-library closure ldd reports (with the
# dynamic loader), libgcc_s (glibc loads it with dlopen when a thread is
# cancelled or exits), the CA certificate bundle, and three small files in
# /etc. The Dockerfiles in deploy/docker/ run this script to fill the image,
# so the list and the sizes it prints are the image's by construction
# (docs/decisions/0011-containers-and-manifests.md).
#
# Usage: tools/image-contents.sh [--root DIR] [--max-mb N] [--max-gz-mb N]
#                                [--quiet] BINARY...
#   BINARY       an ELF program (e.g. /usr/bin/chat-handler once installed),
#                or a libtool wrapper from a build tree
#                (build/services/chat-handler/chat-handler): the real program
#                in .libs/ is used, with the build's library directories.
#                A program under /usr/ keeps its path in the image; any other
#                goes to /usr/bin/<its name>.
#   --root DIR   fill DIR (empty or missing) with the image's two layers:
#                DIR/runtime/ (libraries, certificates, /etc; the same for
#                every service built from one tree) and DIR/app/ (the
#                program). Without it a temporary directory is used.
#   --max-mb N   fail if the uncompressed total exceeds N MB (10^6 bytes).
#   --max-gz-mb N  fail if the gzip-compressed layers exceed N MB.
#   --quiet      print only the total line.
# Output: one line per file (layer, bytes, path in the image, source), then
# the totals: uncompressed bytes and the size of the two layers as gzip
# tar streams, which is what a registry stores and a node pulls.
# Files are stripped of symbol tables and debug sections, given fixed modes
# and the mtime SOURCE_DATE_EPOCH (default 0), so equal inputs give equal
# layers. Needs: ldd, od, cp, stat; strip and readelf (binutils) to strip;
# tar and gzip for the compressed figure.
set -eu

prog=image-contents
die() { echo "$prog: $*" >&2; exit 1; }

root=""
max_mb=""
max_gz_mb=""
quiet=0
while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --max-mb) [ $# -ge 2 ] || die "--max-mb needs a number"; max_mb=$2; shift 2 ;;
    --max-gz-mb) [ $# -ge 2 ] || die "--max-gz-mb needs a number"; max_gz_mb=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    --help | -h) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die "usage: $prog [--root DIR] [--max-mb N] [--max-gz-mb N] [--quiet] BINARY..."
for n in $max_mb $max_gz_mb; do
  case $n in '' | *[!0-9.]* | *.*.*) die "size limits are numbers of MB, got '$n'" ;; esac
done
command -v ldd >/dev/null 2>&1 || die "ldd not found (Debian package libc-bin)"

cleanup_root=0
if [ -z "$root" ]; then
  root=$(mktemp -d "${TMPDIR:-/tmp}/image-contents.XXXXXX")
  cleanup_root=1
elif [ -e "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ]; then
  die "--root $root is not empty"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/image-contents-work.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  rm -rf "$work"
  [ "$cleanup_root" -eq 0 ] || rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 2' HUP INT TERM
mkdir -p "$root/runtime" "$root/app"
: > "$work/manifest"   # layer<TAB>image path<TAB>source

is_elf() { [ "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')" = 7f454c46 ]; }

# A libtool wrapper names its program (program='x' or 'lt-x', in .libs/)
# and the build's library directories (LD_LIBRARY_PATH="dirs:$...").
resolve_wrapper() {
  w=$1
  sed -n '1,5p' "$w" | grep -q 'wrapper script for' || return 1
  p=$(sed -n "s/^ *program='\\([^']*\\)'.*/\\1/p" "$w" | head -n 1)
  [ -n "$p" ] || p=$(basename "$w")
  real=$(dirname "$w")/.libs/$p
  [ -f "$real" ] || real=$(dirname "$w")/.libs/$(basename "$w")
  [ -f "$real" ] || return 1
  # shellcheck disable=SC2016 # a literal $LD_LIBRARY_PATH in the wrapper
  libpath=$(sed -n 's/^ *LD_LIBRARY_PATH="\([^"$]*\):*\$LD_LIBRARY_PATH".*/\1/p' "$w" | head -n 1)
  return 0
}

# ldd of one program: image path<TAB>source path, one per library.
closure() {
  bin=$1 lp=$2
  out=$(LD_LIBRARY_PATH="$lp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$bin" 2>&1) || {
    case $out in
      *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
      *) die "ldd $bin failed: $out" ;;
    esac
  }
  case $out in *"statically linked"*) return 0 ;; esac
  missing=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | tr '\n' ' ')
  [ -z "$missing" ] || die "$bin needs libraries ldd cannot find: $missing"
  printf '%s\n' "$out" | while read -r a b c _; do
    case $a in linux-vdso.so* | linux-gate.so*) continue ;; esac
    if [ "$b" = "=>" ]; then path=$c; else path=$a; fi
    case $path in /*) ;; *) continue ;; esac
    printf '%s\t%s\n' "$(image_path_of_lib "$path")" "$path"
  done
}

# Libraries keep their path when it is one the loader searches by default
# (no ld.so.cache in the image); the build tree's go to /usr/lib, where
# `configure --prefix=/usr` installs them.
image_path_of_lib() {
  case $1 in
    /lib64/* | /lib/*-linux-gnu*/* | /usr/lib/*-linux-gnu*/*) echo "$1" ;;
    /lib/* | /usr/lib/*)
      case ${1#*/lib/} in */*) echo "/usr/lib/$(basename "$1")" ;; *) echo "$1" ;; esac ;;
    *) echo "/usr/lib/$(basename "$1")" ;;
  esac
}

add() { # layer, image path, source
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$work/manifest"
}

for arg in "$@"; do
  [ -f "$arg" ] || die "$arg: no such file"
  libpath=""
  if is_elf "$arg"; then
    real=$arg
  elif resolve_wrapper "$arg"; then
    is_elf "$real" || die "$arg: the libtool wrapper's program $real is not an ELF file"
  else
    die "$arg: neither an ELF program nor a libtool wrapper"
  fi
  name=$(basename "$arg")
  case $arg in /usr/*) dest=$arg ;; *) dest=/usr/bin/$name ;; esac
  add app "$dest" "$real"
  closure "$real" "$libpath" > "$work/libs"
  while IFS="$(printf '\t')" read -r ipath src; do add runtime "$ipath" "$src"; done < "$work/libs"
done

# glibc dlopens libgcc_s for pthread_cancel and pthread_exit unwinding.
libc=$(awk -F '\t' '$2 ~ /\/libc\.so\.6$/ { print $3; exit }' "$work/manifest")
if [ -n "$libc" ]; then
  gcc_s=$(dirname "$libc")/libgcc_s.so.1
  [ -f "$gcc_s" ] || die "libgcc_s.so.1 not found next to $libc (Debian package libgcc-s1)"
  add runtime "$(image_path_of_lib "$gcc_s")" "$gcc_s"
fi
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || die "$ca not found (Debian package ca-certificates)"
add runtime "$ca" "$ca"

# Copy: one entry per image path (the first source wins; they are the same
# library when two programs share it).
sort -t "$(printf '\t')" -k2,2 -u "$work/manifest" > "$work/unique"
loader=""
while IFS="$(printf '\t')" read -r layer ipath src; do
  dst=$root/$layer$ipath
  mkdir -p "$(dirname "$dst")"
  cp -L "$src" "$dst"
  case $ipath in */ld-linux*.so* | */ld-*.so.*) loader=$ipath ;; esac
done < "$work/unique"

# Strip symbol tables and debug sections (a no-op on Debian's stripped
# libraries; the build tree's are built with -g). The loader is left as
# Debian ships it.
if command -v strip >/dev/null 2>&1 && command -v readelf >/dev/null 2>&1; then
  while IFS="$(printf '\t')" read -r layer ipath src; do
    [ "$ipath" = "$loader" ] && continue
    f=$root/$layer$ipath
    is_elf "$f" || continue
    if readelf -SW "$f" 2>/dev/null | grep -q ' \.symtab \| \.debug_'; then
      strip --strip-unneeded "$f" || die "strip $f failed"
    fi
  done < "$work/unique"
else
  echo "$prog: strip/readelf not found (binutils): sizes are unstripped" >&2
fi

# OpenSSL's default CA file (nats.c TLS without NATS_TLS_CA) is
# /usr/lib/ssl/cert.pem; Debian links it to the bundle.
mkdir -p "$root/runtime/usr/lib/ssl" "$root/runtime/etc"
ln -s /etc/ssl/certs/ca-certificates.crt "$root/runtime/usr/lib/ssl/cert.pem"
# The unprivileged user the images run as (USER 65532:65532), named the
# way distroless names it, and host lookups through /etc/hosts then DNS.
echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > "$root/runtime/etc/passwd"
echo 'nonroot:x:65532:' > "$root/runtime/etc/group"
echo 'hosts: files dns' > "$root/runtime/etc/nsswitch.conf"

# Fixed modes and times: equal inputs give byte-equal layers.
epoch=${SOURCE_DATE_EPOCH:-0}
find "$root/runtime" "$root/app" -type d -exec chmod 0755 {} +
find "$root/runtime" "$root/app" -type f -exec chmod 0644 {} +
while IFS="$(printf '\t')" read -r layer ipath src; do
  f=$root/$layer$ipath
  if is_elf "$f"; then chmod 0755 "$f"; fi
done < "$work/unique"
find "$root/runtime" "$root/app" -exec touch -h -d "@$epoch" {} +

# Report.
total=0 count=0
{
  while IFS="$(printf '\t')" read -r layer ipath src; do
    size=$(stat -c %s "$root/$layer$ipath")
    printf '%-8s %10d  %-50s %s\n' "$layer" "$size" "$ipath" "$src"
  done < "$work/unique"
  for f in /etc/passwd /etc/group /etc/nsswitch.conf; do
    printf '%-8s %10d  %-50s %s\n' runtime "$(stat -c %s "$root/runtime$f")" "$f" "(generated)"
  done
  printf '%-8s %10d  %-50s %s\n' runtime 0 /usr/lib/ssl/cert.pem "(symlink to /etc/ssl/certs/ca-certificates.crt)"
} > "$work/report"
while read -r _ size _; do
  total=$((total + size)); count=$((count + 1))
done < "$work/report"

mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1000000 }'; }
gz=""
if command -v tar >/dev/null 2>&1 && command -v gzip >/dev/null 2>&1; then
  gz=0
  for layer in runtime app; do
    n=$(tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
          -C "$root/$layer" -cf - . | gzip -n -6 | wc -c)
    gz=$((gz + n))
  done
fi

if [ "$quiet" -eq 0 ]; then
  echo "# image contents of: $*"
  printf '%-8s %10s  %-50s %s\n' layer bytes "path in image" source
  cat "$work/report"
fi
line="total: $count files, $total bytes ($(mb "$total") MB) uncompressed"
[ -z "$gz" ] || line="$line; $gz bytes ($(mb "$gz") MB) as gzip layers"
echo "$line"

over() { awk -v b="$1" -v m="$2" 'BEGIN { exit !(b > m * 1000000) }'; }
if [ -n "$max_mb" ] && over "$total" "$max_mb"; then
  die "$(mb "$total") MB uncompressed exceeds the budget of $max_mb MB"
fi
if [ -n "$max_gz_mb" ]; then
  [ -n "$gz" ] || die "--max-gz-mb needs tar and gzip"
  if over "$gz" "$max_gz_mb"; then
    die "$(mb "$gz") MB compressed exceeds the budget of $max_gz_mb MB"
  fi
fi
exit 0
