#!/bin/sh
# tools/image-contents.sh, which fills the runtime stage of every service
# image, yields a closure that is complete (the program loads with nothing
# from the host), minimal (only the program's libraries, the loader,
# libgcc_s, CA certificates and three /etc files), stripped and reproducible,
# and it refuses what it cannot handle. Run on a program of the build tree
# linked against libaiplat the way the services are (a libtool wrapper, like
# build/services/<name>/<name>), and on nats-server when it is installed.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
build=${top_builddir:-$src}
tool=$src/tools/image-contents.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-image-contents: $*" >&2; exit 1; }
for p in readelf ldd tar gzip; do
  command -v $p >/dev/null 2>&1 || fail "$p not found (Debian packages binutils, libc-bin, tar, gzip)"
done

prog=$build/tests/test_core
[ -f "$prog" ] || fail "$prog is not built"
real=$build/tests/.libs/test_core
[ -f "$real" ] || real=$build/tests/.libs/lt-test_core
[ -f "$real" ] || fail "no libtool program behind $prog: this test expects a shared build"

"$tool" --root "$tmp/a" "$prog" > "$tmp/a.txt" 2> "$tmp/a.err" \
  || { cat "$tmp/a.err" >&2; fail "failed on $prog"; }
rt=$tmp/a/runtime
app=$tmp/a/app/usr/bin/test_core

# The program is the ELF behind the wrapper, stripped.
[ "$(od -An -tx1 -N4 "$app" | tr -d ' \n')" = 7f454c46 ] || fail "$app is not the ELF program"
if readelf -SW "$app" | grep -q ' \.symtab \| \.debug_'; then fail "$app is not stripped"; fi
[ "$(find "$tmp/a/app" -type f | wc -l)" -eq 1 ] || fail "the app layer holds more than the program"

# The loader the program asks for, libc, libgcc_s, libaiplat, certificates, users.
interp=$(readelf -lW "$real" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
[ -n "$interp" ] || fail "$real has no program interpreter"
[ -x "$rt$interp" ] || fail "the loader $interp is missing"
for lib in libc.so.6 libgcc_s.so.1 libnats.so.3.4 libcurl.so.4; do
  [ -n "$(find "$rt" -name "$lib")" ] || fail "$lib is missing"
done
soname=$(readelf -dW "$build/lib/.libs/libaiplat.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
[ -f "$rt/usr/lib/$soname" ] || fail "$soname is not in /usr/lib"
cmp -s "$rt/etc/ssl/certs/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt \
  || fail "the CA bundle is missing or differs"
[ "$(readlink "$rt/usr/lib/ssl/cert.pem")" = /etc/ssl/certs/ca-certificates.crt ] \
  || fail "/usr/lib/ssl/cert.pem does not point to the CA bundle"
grep -q '^nonroot:x:65532:65532:' "$rt/etc/passwd" || fail "no passwd entry for uid 65532"
grep -q '^hosts: files dns$' "$rt/etc/nsswitch.conf" || fail "nsswitch.conf is wrong"

# Complete: with the copied loader and only the root's directories, every
# library resolves inside the root.
dirs=$(find "$rt" -name '*.so*' -type f -exec dirname {} + | sort -u | tr '\n' ':')
"$rt$interp" --inhibit-cache --library-path "$dirs" --list "$app" > "$tmp/list" \
  || fail "the copied loader cannot load the program"
outside=$(awk '$2 == "=>" && index($3, "'"$rt"'") != 1 { print $1 " => " $3 }' "$tmp/list")
[ -z "$outside" ] || fail "libraries resolved outside the image: $outside"
grep -q 'not found' "$tmp/list" && fail "libraries not found: $(grep 'not found' "$tmp/list")"

# It runs: the program (libaiplat's init starts libcurl and OpenSSL) passes
# its suite inside the image's file tree as uid 65532 with an empty
# environment, through chroot: as root directly, otherwise in a user
# namespace. Where neither is allowed, and for a sanitizer build (its
# runtime reads /proc, which an image tree has no mount of), it runs
# through the copied loader, which still falls back to host directories.
chroot=$(command -v chroot || echo /usr/sbin/chroot)
if [ "$(id -u)" -eq 0 ] && [ -x "$chroot" ]; then
  jail="chroot as uid 65532"
  in_tree() { tree=$1; shift; env -i "$chroot" --userspec=65532:65532 "$tree" "$@"; }
elif [ -x "$chroot" ] && unshare -r true 2>/dev/null; then
  jail="chroot in a user namespace"
  in_tree() { tree=$1; shift; env -i unshare -r "$chroot" "$tree" "$@"; }
else
  jail=""
fi
sanitized=$(LD_LIBRARY_PATH=$build/lib/.libs ldd "$real" | grep -E 'lib(a|ub|t|l|hwa)san' || true)
if [ -n "$jail" ] && [ -z "$sanitized" ]; then
  how=$jail
  # Check needs a writable /tmp, which only this copy of the tree gets.
  mkdir -p "$tmp/merged/tmp" && chmod 1777 "$tmp/merged/tmp"
  cp -a "$rt/." "$tmp/merged/" && cp -a "$tmp/a/app/." "$tmp/merged/"
  set -- in_tree "$tmp/merged" /usr/bin/test_core
else
  how="the copied loader"
  set -- env -i "$rt$interp" --inhibit-cache --library-path "$dirs" "$app"
fi
"$@" > "$tmp/run.log" 2>&1 || { cat "$tmp/run.log" >&2; fail "the program fails in its image tree ($how)"; }
grep -q 'Failures: 0, Errors: 0' "$tmp/run.log" || { cat "$tmp/run.log" >&2; fail "unexpected output ($how)"; }
echo "check-image-contents: test_core passes inside its image tree ($how)"

if [ -n "$jail" ]; then
  # Why libgcc_s is shipped although ldd does not list it: glibc loads it
  # when a thread exits through pthread_exit, and aborts without it.
  cat > "$tmp/pexit.c" <<'C'
#include <pthread.h>
static void *run(void *arg) { pthread_exit(arg); }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); return pthread_join(t, 0); }
C
  if ${CC:-cc} -pthread -o "$tmp/pexit" "$tmp/pexit.c" 2>/dev/null; then
    "$tool" --quiet --root "$tmp/p" "$tmp/pexit" > /dev/null
    cp -a "$tmp/p/app/." "$tmp/p/runtime/"
    in_tree "$tmp/p/runtime" /usr/bin/pexit > /dev/null 2>&1 \
      || fail "pthread_exit fails inside the image tree"
    find "$tmp/p/runtime" -name libgcc_s.so.1 -exec rm {} +
    if in_tree "$tmp/p/runtime" /usr/bin/pexit > /dev/null 2>&1; then
      fail "pthread_exit worked without libgcc_s: drop it from the image?"
    fi
  fi
  # Host names resolve through the shipped nsswitch.conf and the /etc/hosts
  # Kubernetes mounts, with no NSS module loaded from the file system.
  cat > "$tmp/resolve.c" <<'C'
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  struct addrinfo hints, *res;
  char buf[INET_ADDRSTRLEN];
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  if (argc < 2 || getaddrinfo(argv[1], "4222", &hints, &res) != 0) return 1;
  inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, buf, sizeof buf);
  puts(buf);
  freeaddrinfo(res);
  return 0;
}
C
  if ${CC:-cc} -o "$tmp/resolve" "$tmp/resolve.c" 2>/dev/null; then
    "$tool" --quiet --root "$tmp/r" "$tmp/resolve" > /dev/null
    cp -a "$tmp/r/app/." "$tmp/r/runtime/"
    echo '10.1.2.3 nats.ai-ml.svc.cluster.local' > "$tmp/r/runtime/etc/hosts"
    got=$(in_tree "$tmp/r/runtime" /usr/bin/resolve nats.ai-ml.svc.cluster.local) || got=failed
    [ "$got" = 10.1.2.3 ] || fail "host lookup inside the image tree gave '$got'"
  fi
  echo "check-image-contents: pthread_exit and a hosts lookup work inside an image tree ($jail)"
fi

# Minimal: every ELF file is the program, the loader, libgcc_s or in the
# program's ldd closure.
LD_LIBRARY_PATH=$build/lib/.libs ldd "$real" | awk '$2 == "=>" { print $1 }' | sort > "$tmp/needed"
find "$rt" -type f -name '*.so*' -exec basename {} \; | sort > "$tmp/shipped"
extra=$(comm -13 "$tmp/needed" "$tmp/shipped" | grep -v -x -e libgcc_s.so.1 -e "$(basename "$interp")" || true)
[ -z "$extra" ] || fail "libraries the program does not need: $extra"
missing=$(comm -23 "$tmp/needed" "$tmp/shipped")
[ -z "$missing" ] || fail "libraries the program needs but the image lacks: $missing"

# The report lists every file and a total that adds up.
sum=$(awk '$1 == "runtime" || $1 == "app" { s += $2 } END { print s }' "$tmp/a.txt")
grep -q "^total: [0-9]* files, $sum bytes" "$tmp/a.txt" || fail "the total is not the sum of the lines"
grep -q "as gzip layers$" "$tmp/a.txt" || fail "no compressed estimate"

# Reproducible: a second run gives byte-equal layers.
"$tool" --quiet --root "$tmp/b" "$prog" > /dev/null
for layer in runtime app; do
  for d in a b; do
    tar --sort=name --numeric-owner --owner=0 --group=0 -C "$tmp/$d/$layer" -cf "$tmp/$d.$layer.tar" .
  done
  cmp -s "$tmp/a.$layer.tar" "$tmp/b.$layer.tar" || fail "the $layer layer differs between two runs"
done

# Budgets are enforced.
if "$tool" --quiet --max-mb 1 "$prog" > /dev/null 2> "$tmp/err"; then
  fail "--max-mb 1 accepted a closure of several MB"
fi
grep -q 'exceeds the budget of 1 MB' "$tmp/err" || fail "unclear budget message: $(cat "$tmp/err")"
"$tool" --quiet --max-mb 100 --max-gz-mb 50 "$prog" > /dev/null || fail "a generous budget failed"

# Refusals, each with a message.
refuse() { # what, args...
  what=$1; shift
  if "$tool" --quiet "$@" > /dev/null 2> "$tmp/err"; then fail "accepted $what"; fi
  [ -s "$tmp/err" ] || fail "no message for $what"
}
refuse "a missing file" "$tmp/nonexistent"
printf '#!/bin/sh\necho hi\n' > "$tmp/script.sh"
refuse "a shell script" "$tmp/script.sh"
refuse "a non-empty --root" --root "$tmp/a" "$prog"
refuse "a bad --max-mb" --max-mb ten "$prog"

# A program whose library is gone is refused, naming the library.
printf 'int gone(void) { return 0; }\n' > "$tmp/gone.c"
printf 'int gone(void);\nint main(void) { return gone(); }\n' > "$tmp/needs.c"
if ${CC:-cc} -shared -fPIC -o "$tmp/libgone.so" "$tmp/gone.c" 2>/dev/null \
   && ${CC:-cc} -o "$tmp/needs" "$tmp/needs.c" -L"$tmp" -lgone 2>/dev/null; then
  rm -f "$tmp/libgone.so"
  refuse "a program with a missing library" "$tmp/needs"
  grep -q libgone.so "$tmp/err" || fail "the missing library is not named: $(cat "$tmp/err")"
fi

# A static program needs no loader and no libraries.
printf 'int main(void) { return 0; }\n' > "$tmp/static.c"
if ${CC:-cc} -static -o "$tmp/static" "$tmp/static.c" 2>/dev/null; then
  "$tool" --root "$tmp/s" "$tmp/static" > /dev/null || fail "failed on a static program"
  [ -z "$(find "$tmp/s" -name '*.so*')" ] || fail "libraries shipped with a static program"
  [ -x "$tmp/s/app/usr/bin/static" ] || fail "the static program is missing"
fi

# nats-server (a Go program linked to libc) runs from its image root.
if [ -n "${NATS_SERVER:-}" ] && [ -x "$NATS_SERVER" ]; then
  "$tool" --root "$tmp/n" "$NATS_SERVER" > "$tmp/n.txt"
  nrt=$tmp/n/runtime
  ninterp=$(readelf -lW "$NATS_SERVER" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
  ndirs=$(find "$nrt" -name '*.so*' -type f -exec dirname {} + | sort -u | tr '\n' ':')
  out=$("$nrt$ninterp" --inhibit-cache --library-path "$ndirs" "$tmp/n/app$NATS_SERVER" --version) \
    || fail "nats-server does not run from its image root"
  case $out in nats-server:*) ;; *) fail "unexpected nats-server output: $out" ;; esac
  echo "check-image-contents: nats-server $(tail -n 1 "$tmp/n.txt")"
fi
echo "check-image-contents: test_core $(tail -n 1 "$tmp/a.txt")"
