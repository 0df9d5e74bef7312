#!/bin/sh
# The Debian packages build, pass lintian and work
# (docs/decisions/0013-debian-packaging-and-abi.md):
#  1. `dpkg-buildpackage -us -uc -b` in a throwaway copy of the tree (with
#     DEB_BUILD_OPTIONS=nocheck: CI ran `make check` already; pass
#     --with-tests to run it inside the package build too);
#  2. lintian on the result: any error fails, warnings are listed;
#  3. libaiplat<N> + libaiplat-dev unpacked into a throwaway root (dpkg -x,
#     nothing is installed on this machine): a program built with
#     `pkg-config --cflags --libs aiplat` against that root only, after the
#     source tree is gone, compiles, links and runs on the packaged library;
#  4. the package contents: the library package named after the SONAME, its
#     symbols file, headers, .pc and .proto; every installed program in exactly
#     one package; per service its binary, unit aiplat-<service>.service and
#     conffile /etc/aiplat/<service>.env; units run as aiplat with the
#     hardening; postinst creates the user.
# Not part of `make check` (it builds the whole tree again, ~1 min); CI runs
# it. Needs git, dpkg-dev, debhelper, lintian, help2man and the build
# dependencies (dpkg-checkbuilddeps says which are missing).
# Usage: tests/check-debian.sh [--with-tests] [--keep DIR]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
with_tests=no keep=
while [ $# -gt 0 ]; do
  case $1 in
    --with-tests) with_tests=yes; shift ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "usage: $0 [--with-tests] [--keep DIR]" >&2; exit 1 ;;
  esac
done
for tool in dpkg-buildpackage dh lintian help2man pkg-config objdump git; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "check-debian: $tool missing: apt-get install dpkg-dev debhelper lintian help2man pkgconf binutils git" >&2; exit 1; }
done
CC=${CC:-cc}
jobs=${JOBS:-2}
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-debian.XXXXXX")
cleanup() {
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$tmp"/*.deb "$tmp"/*.changes "$keep"/ 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || {
  echo "check-debian: needs the git checkout (it packages the files git knows, not build products)" >&2; exit 1; }
version=$(cd "$src" && dpkg-parsechangelog -S Version)
upstream=${version%-*}
tree="$tmp/libaiplat-$upstream"
mkdir "$tree"
# The files git knows (committed or not): no build trees, no generated files.
(cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree")
services=$(cd "$tree" && for m in services/*/main.c; do [ -f "$m" ] && basename "$(dirname "$m")"; done || true)
lt=$(sed -n 's/^AIPLAT_LT_VERSION_INFO *= *//p' "$tree/lib/soname.mk")
sover=$(echo "$lt" | awk -F: '{ print $1 - $3 }')
libpkg=libaiplat$sover
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

# ---- 1. build --------------------------------------------------------------
opts="parallel=$jobs"
profiles=
if [ "$with_tests" = no ]; then opts="nocheck $opts"; profiles=nocheck; fi
echo "check-debian: dpkg-buildpackage -us -uc -b ($version, DEB_BUILD_OPTIONS='$opts')"
if ! (cd "$tree" && DEB_BUILD_OPTIONS="$opts" DEB_BUILD_PROFILES="$profiles" \
      dpkg-buildpackage -us -uc -b) > "$tmp/build.log" 2>&1; then
  tail -n 60 "$tmp/build.log" >&2
  echo "check-debian: the package build failed (log above)" >&2
  if grep -q 'new symbols appeared in the symbols file' "$tmp/build.log"; then
    echo "check-debian: new API: record it with tools/update-symbols.sh (after make in build/) and commit debian/$libpkg.symbols" >&2
  fi
  if grep -q 'symbols or patterns disappeared' "$tmp/build.log"; then
    echo "check-debian: symbols disappeared: an ABI break (make abi-check explains; docs/decisions/0013)" >&2
  fi
  exit 1
fi
build_secs=$(( $(date +%s) - start ))
ok "packages built in ${build_secs}s"
installed_programs=$(ls "$tree/debian/tmp/usr/bin" 2>/dev/null || true)
changes="$tmp/libaiplat_${version}_${arch}.changes"
[ -f "$changes" ] || { echo "check-debian: no $changes" >&2; exit 1; }
deb() {
  if [ -f "$tmp/${1}_${version}_all.deb" ]; then echo "$tmp/${1}_${version}_all.deb"
  else echo "$tmp/${1}_${version}_${arch}.deb"; fi
}
for p in "$libpkg" libaiplat-dev aiplat-services aiplat-dev-tools python3-aiplat; do
  [ -f "$(deb "$p")" ] || fail "package $p not built"
done

# ---- 2. lintian ------------------------------------------------------------
lintian --fail-on none --display-info "$changes" > "$tmp/lintian.txt" 2>"$tmp/lintian.err" || true
grep -v 'running with root privileges' "$tmp/lintian.err" >&2 || true
nE=$(grep -c '^E: ' "$tmp/lintian.txt" || true)
nW=$(grep -c '^W: ' "$tmp/lintian.txt" || true)
nI=$(grep -c '^I: ' "$tmp/lintian.txt" || true)
echo "check-debian: lintian $(lintian --version | awk '{print $2}'): $nE error(s), $nW warning(s), $nI info"
sed 's/^/    /' "$tmp/lintian.txt"
[ "$nE" -eq 0 ] && ok "lintian: no errors" || fail "lintian reported errors"

# ---- 3. the development packages in a throwaway root -----------------------
root="$tmp/root"
mkdir "$root"
dpkg -x "$(deb "$libpkg")" "$root"
dpkg -x "$(deb libaiplat-dev)" "$root"
# The library's settings with their defaults (lib/config_table.h).
sed -n 's/.*X(\([A-Z0-9_]*\), *NULL.*/\1=/p; s/.*X(\([A-Z0-9_]*\), *"\([^"]*\)".*/\1=\2/p' \
  "$tree/lib/config_table.h" > "$tmp/defaults"
cp "$tree/debian/tests/python3-aiplat" "$tmp/python3-aiplat.test"
# From here on nothing may come from the source or build tree.
rm -rf "$tree"
so="$root/usr/lib/$ma/libaiplat.so.$sover"
[ -e "$so" ] || fail "$libpkg has no usr/lib/$ma/libaiplat.so.$sover"
soname=$(LC_ALL=C objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libaiplat.so.$sover" ] && ok "$libpkg holds SONAME $soname (lib/soname.mk $lt)" \
  || fail "SONAME $soname does not match package $libpkg"
[ "$(readlink "$root/usr/lib/$ma/libaiplat.so")" = "$(basename "$(readlink -f "$so")")" ] \
  && ok "libaiplat-dev's libaiplat.so points into $libpkg" || fail "libaiplat.so symlink is wrong"
ctl="$tmp/ctl"; dpkg-deb -e "$(deb "$libpkg")" "$ctl"
if [ -f "$ctl/symbols" ] && grep -q "^libaiplat.so.$sover $libpkg" "$ctl/symbols"; then
  nsym=$(grep -c '^ ' "$ctl/symbols")
  nexp=$(nm -D --defined-only "$so" | wc -l)
  [ "$nsym" -eq "$nexp" ] && ok "symbols file: $nsym symbols, as many as exported" \
    || fail "symbols file lists $nsym symbols, the library exports $nexp"
  grep '^ ' "$ctl/symbols" | grep -v ' [0-9][0-9.]*$' | grep -q . \
    && fail "symbols without a plain upstream version" || true
else
  fail "$libpkg has no symbols file for libaiplat.so.$sover"
fi
dpkg-deb -f "$(deb "$libpkg")" Multi-Arch | grep -qx same || fail "$libpkg is not Multi-Arch: same"
for h in aiplat.h common.h version.h; do
  [ -f "$root/usr/include/aiplat/$h" ] || fail "libaiplat-dev lacks usr/include/aiplat/$h"
done
find "$root" -name '*.la' -o -name '*.a' -o -name internal.h | grep -q . && fail "private files packaged" || true
for p in aiplat aiplat_bus aiplat_config aiplat_bus_create; do
  [ -f "$root/usr/share/man/man3/$p.3.gz" ] || fail "libaiplat-dev lacks the manual page $p(3)"
done
ok "libaiplat-dev: $(ls "$root/usr/share/man/man3" 2>/dev/null | wc -l) API manual pages (aiplat(3) ...)"

export PKG_CONFIG_SYSROOT_DIR="$root"
export PKG_CONFIG_LIBDIR="$root/usr/lib/$ma/pkgconfig:/usr/lib/$ma/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig"
pcdir=$(pkg-config --variable=pcfiledir aiplat)
case $pcdir in "$root"/*) ok "aiplat.pc found in the unpacked root" ;; *) fail "aiplat.pc came from $pcdir" ;; esac
[ "$(pkg-config --modversion aiplat)" = "$upstream" ] || fail "aiplat.pc version is not $upstream"
proto="$(pkg-config --variable=protodir aiplat)/aiplat/messages/v1/messages.proto"
case $proto in "$root"/*) ;; *) proto="$root$proto" ;; esac
[ -f "$proto" ] && ok "schema at \$(pkg-config --variable=protodir aiplat)/aiplat/messages/v1/messages.proto" \
  || fail "no $proto"
cflags=$(pkg-config --cflags aiplat); libs=$(pkg-config --libs aiplat)
cat > "$tmp/app.c" <<'APP'
#include <aiplat/aiplat.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  if (aiplat_init() != AIPLAT_OK) return 1;
  aiplat_config *cfg = NULL;
  if (aiplat_config_create(&cfg) != AIPLAT_OK) return 2;
  const char *url = NULL;
  if (aiplat_config_get_string(cfg, "NATS_URL", &url) != AIPLAT_OK) return 3;
  if (strcmp(aiplat_version_string(), AIPLAT_VERSION_STRING) != 0) return 4;
  printf("aiplat %s NATS_URL=%s %s\n", aiplat_version_string(), url,
         aiplat_status_str(AIPLAT_ERR_TIMEOUT));
  aiplat_config_destroy(cfg);
  aiplat_cleanup();
  return 0;
}
APP
# shellcheck disable=SC2086
if $CC -std=c99 -Wall -Werror -o "$tmp/app" "$tmp/app.c" $cflags $libs 2>"$tmp/cc.log"; then
  ok "compiled: $CC app.c $cflags $libs" | sed "s|$root|<root>|g"
  out=$(LD_LIBRARY_PATH="$root/usr/lib/$ma" "$tmp/app" 2>&1) || fail "the program failed: $out"
  echo "$out" | grep -q "^aiplat $upstream NATS_URL=nats://localhost:4222 " && ok "ran: $out" \
    || fail "unexpected output: $out"
  LD_LIBRARY_PATH="$root/usr/lib/$ma" ldd "$tmp/app" | grep -q "libaiplat.so.$sover => $root/" \
    && ok "the program loaded the packaged libaiplat.so.$sover" || fail "the program did not load the packaged library"
else
  cat "$tmp/cc.log" >&2; fail "the example does not compile against the packaged headers"
fi
# The C examples shipped for integrators build against the packages the way
# they are told to: `make -C examples` (examples/Makefile, pkg-config), or
# cc example.c $(pkg-config ...) where there is no Makefile.
exdir="$root/usr/share/doc/libaiplat-dev/examples"
if [ -f "$exdir/Makefile" ]; then
  cp -r "$exdir" "$tmp/examples"
  find "$tmp/examples" -name '*.gz' -exec gunzip {} +
  if make -C "$tmp/examples" CFLAGS="-O2 -g -Wall -Wextra -Werror" > "$tmp/ex.log" 2>&1; then
    ok "make -C examples: $(cd "$tmp/examples" && for f in *.c; do [ -x "${f%.c}" ] && printf '%s ' "${f%.c}"; done)"
    for f in "$tmp"/examples/*.c; do
      [ -x "${f%.c}" ] || fail "examples/Makefile did not build ${f##*/}"
    done
  else
    cat "$tmp/ex.log" >&2; fail "make -C examples against the packages"
  fi
  [ ! -e "$exdir/examples.am" ] || fail "the source tree's examples.am is packaged"
else
  for ex in $(find "$exdir" -name '*.c' 2>/dev/null); do
    # shellcheck disable=SC2086
    $CC -Wall -Werror -o "$tmp/ex" "$ex" $cflags $libs 2>"$tmp/cc.log" \
      && ok "example ${ex##*/examples/} compiles" || { cat "$tmp/cc.log" >&2; fail "example ${ex##*/examples/}"; }
  done
fi
CXX=${CXX:-c++}
for ex in $(find "$root/usr/share/doc/libaiplat-dev/examples" -name '*.cpp' 2>/dev/null); do
  # shellcheck disable=SC2086
  $CXX -std=c++17 -Wall -Werror -o "$tmp/ex" "$ex" $cflags $libs 2>"$tmp/cc.log" \
    && ok "example ${ex##*/examples/} compiles as C++17" || { cat "$tmp/cc.log" >&2; fail "example ${ex##*/examples/}"; }
done
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

# python3-aiplat: the module in dist-packages, and its autopkgtest (the
# round trip through nats-server) run against the unpacked root.
pyroot="$tmp/pyroot"; mkdir "$pyroot"
dpkg -x "$(deb "$libpkg")" "$pyroot"; dpkg -x "$(deb python3-aiplat)" "$pyroot"
site="$pyroot/usr/lib/python3/dist-packages"
[ -f "$site/aiplat/__init__.py" ] && [ -f "$site/aiplat/py.typed" ] \
  && ok "python3-aiplat: $(ls "$site/aiplat" | grep -c '\.py$') modules in usr/lib/python3/dist-packages/aiplat" \
  || fail "python3-aiplat lacks usr/lib/python3/dist-packages/aiplat"
ls -d "$site"/aiplat-*.dist-info >/dev/null 2>&1 || fail "python3-aiplat has no dist-info"
dpkg-deb -f "$(deb python3-aiplat)" Depends | grep -q "$libpkg" || fail "python3-aiplat does not depend on $libpkg"
if command -v nats-server >/dev/null 2>&1; then
  if (cd "$tmp" && AUTOPKGTEST_TMP="$tmp/pyrt" AIPLAT_TEST_SITE="$site" AIPLAT_EXPECT_PREFIX="$site/" \
      LD_LIBRARY_PATH="$pyroot/usr/lib/$ma" sh "$tmp/python3-aiplat.test") > "$tmp/py.log" 2>&1; then
    ok "autopkgtest python3-aiplat: $(tail -n 1 "$tmp/py.log" | sed "s|$pyroot|<root>|g")"
  else
    cat "$tmp/py.log" >&2; fail "autopkgtest python3-aiplat against the unpacked packages"
  fi
else
  echo "note: no nats-server: the python3-aiplat autopkgtest is left out"
fi

# ---- 4. services and tools -------------------------------------------------
svc="$tmp/svc"; tools="$tmp/tools"
dpkg -x "$(deb aiplat-services)" "$svc"; dpkg -x "$(deb aiplat-dev-tools)" "$tools"
dpkg-deb -e "$(deb aiplat-services)" "$tmp/svcctl"
for p in $installed_programs; do
  n=0
  [ -x "$svc/usr/bin/$p" ] && n=$((n + 1))
  [ -x "$tools/usr/bin/$p" ] && n=$((n + 1))
  [ "$n" -eq 1 ] || fail "program $p is in $n packages, not exactly one"
done
ok "programs in aiplat-services: $(ls "$svc/usr/bin" 2>/dev/null | tr '\n' ' ')"
ok "programs in aiplat-dev-tools: $(ls "$tools/usr/bin" 2>/dev/null | tr '\n' ' ')"
for d in "$svc" "$tools"; do
  for p in $(ls "$d/usr/bin" 2>/dev/null); do
    if [ -f "$d/usr/share/man/man1/$p.1.gz" ]; then
      zcat "$d/usr/share/man/man1/$p.1.gz" | grep -q '^\.SH DESCRIPTION' || fail "manual page of $p has no DESCRIPTION"
      ok "manual page $p(1)"
    else
      echo "note: $p has no manual page (it does not answer --help and --version)"
    fi
  done
done
[ ! -e "$svc/usr/bin/aiplat-model-backend" ] || fail "the model backend is in aiplat-services"
for s in $services; do
  unit="$svc/lib/systemd/system/aiplat-$s.service"
  [ -x "$svc/usr/bin/$s" ] || fail "aiplat-services lacks usr/bin/$s"
  [ -f "$unit" ] || { fail "aiplat-services lacks lib/systemd/system/aiplat-$s.service"; continue; }
  grep -qx "/etc/aiplat/$s.env" "$tmp/svcctl/conffiles" || fail "/etc/aiplat/$s.env is not a conffile"
  [ "$(stat -c %a "$svc/etc/aiplat/$s.env")" = 640 ] || fail "/etc/aiplat/$s.env is not mode 0640"
  for want in "ExecStart=/usr/bin/$s" "EnvironmentFile=-/etc/aiplat/$s.env" User=aiplat \
      NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
      "StateDirectory=aiplat/$s"; do
    grep -qx "$want" "$unit" || fail "aiplat-$s.service lacks $want"
  done
  port=$(sed -n 's/^HEALTH_PORT=//p' "$svc/etc/aiplat/$s.env")
  [ -n "$port" ] || fail "/etc/aiplat/$s.env sets no HEALTH_PORT"
done
# A commented setting shows the library's default, and names a real setting.
for env in "$svc"/etc/aiplat/*.env; do
  [ -f "$env" ] || continue
  grep -E '^#?[A-Z][A-Z0-9_]*=' "$env" | sed 's/^#//' | while IFS= read -r line; do
    name=${line%%=*}
    case $name in *_FILE) grep -q "^${name%_FILE}=" "$tmp/defaults" \
      || echo "FAIL: ${env##*/}: $name: no setting ${name%_FILE}" ;; esac
    case $name in *_FILE) continue ;; esac
    grep -q "^$name=" "$tmp/defaults" || { echo "FAIL: ${env##*/}: $name is not a setting"; continue; }
    if grep -q "^#$name=" "$env"; then
      grep -qxF "$line" "$tmp/defaults" || echo "FAIL: ${env##*/}: #$line is not the default ($(grep "^$name=" "$tmp/defaults"))"
    fi
  done
done > "$tmp/envcheck"
if [ -s "$tmp/envcheck" ]; then cat "$tmp/envcheck" >&2; fails=$((fails + $(wc -l < "$tmp/envcheck"))); \
else [ -z "$services" ] || ok "env files: every setting exists; commented ones show the defaults"; fi
ports=$(cat "$svc"/etc/aiplat/*.env 2>/dev/null | sed -n 's/^HEALTH_PORT=//p' | sort)
[ "$(echo "$ports" | uniq -d)" = "" ] || fail "two services share a HEALTH_PORT: $ports"
[ -z "$services" ] || ok "services $(echo $services | tr '\n' ' '): binary, unit, conffile each"
if command -v systemd-analyze >/dev/null 2>&1 && [ -n "$services" ]; then
  for s in $services; do
    # verify wants the ExecStart binary on this machine's path: check against the unpacked one.
    sed "s|^ExecStart=/usr/bin/|ExecStart=$svc/usr/bin/|" "$svc/lib/systemd/system/aiplat-$s.service" \
      > "$tmp/aiplat-$s.service"
    if systemd-analyze verify "$tmp/aiplat-$s.service" > "$tmp/verify.log" 2>&1; then
      ok "systemd-analyze verify aiplat-$s.service"
    else
      # Only the unit's own lines count; the host's other units may be odd in a container.
      if grep -q "aiplat-$s.service" "$tmp/verify.log"; then
        cat "$tmp/verify.log" >&2; fail "systemd-analyze verify aiplat-$s.service"
      else ok "systemd-analyze verify aiplat-$s.service (host warnings ignored)"; fi
    fi
    score=$(systemd-analyze security --offline=yes "$tmp/aiplat-$s.service" 2>/dev/null \
      | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \(.*\)/\1 \2/p' | head -n 1)
    [ -z "$score" ] || ok "systemd-analyze security aiplat-$s.service: exposure $score"
  done
fi
pi="$tmp/svcctl/postinst"
if [ -f "$pi" ]; then
  sh -n "$pi" || fail "postinst has a syntax error"
  grep -q 'adduser --system --group .* aiplat$' "$pi" || grep -q 'adduser --system' "$pi" \
    || fail "postinst does not create the user aiplat"
  grep -q 'getent passwd aiplat' "$pi" || fail "postinst does not check for an existing user"
  [ -z "$services" ] || grep -q 'deb-systemd-helper' "$pi" || fail "postinst lacks the systemd snippet"
  ok "postinst creates the system user aiplat"
else
  fail "aiplat-services has no postinst"
fi
dpkg-deb -f "$(deb aiplat-services)" Depends | grep -q adduser || fail "aiplat-services does not depend on adduser"
if [ -x "$tools/usr/bin/aiplat-model-backend" ]; then
  d=$(dpkg-deb -f "$(deb aiplat-dev-tools)" Depends)
  for want in pocketsphinx-en-us libflite libpocketsphinx; do
    echo "$d" | grep -q "$want" || fail "aiplat-dev-tools does not depend on $want"
  done
  ok "aiplat-dev-tools: model backend with $(echo "$d" | tr ',' '\n' | grep -c .) dependencies"
fi

# ---- figures ---------------------------------------------------------------
echo "check-debian: packages (file size, Installed-Size):"
for f in "$tmp"/*.deb; do
  printf '    %-45s %8s bytes  %6s KiB installed\n' "${f##*/}" "$(stat -c %s "$f")" \
    "$(dpkg-deb -f "$f" Installed-Size)"
done
echo "check-debian: $(( $(date +%s) - start ))s in all"
[ "$fails" -eq 0 ] || { echo "check-debian: $fails check(s) failed" >&2; exit 1; }
echo "check-debian: packages build, pass lintian without errors and work from a throwaway root"
