#!/bin/sh
# Builds, in the build stage of a service's container image, the two
# libraries whose Debian binary packages carry far more than the services
# use, from Debian's own source packages (with Debian's patches applied):
#   libcurl        HTTP and HTTPS over OpenSSL only. Debian's libcurl4 also
#                  links GnuTLS' neighbours, Kerberos, LDAP, SSH, RTMP,
#                  nghttp2, libpsl, libidn2, brotli, zstd and zlib: about
#                  11 MB of the image that no service calls.
#   libmicrohttpd  without HTTPS: the health port speaks plain HTTP, and
#                  Debian's build links GnuTLS and its closure (5 MB).
# Both are installed into /usr (libraries in /usr/lib, where the loader
# finds them without a cache), so the libaiplat built next links them and
# tools/image-contents.sh copies them. The Debian package of libaiplat is
# not affected: it depends on Debian's libcurl4 and libmicrohttpd12.
# Decisions: docs/decisions/0011-containers-and-manifests.md.
#
# Replaces: libcurl4-openssl-dev libmicrohttpd-dev
#   (the build-dependencies of configure.ac this script stands in for;
#   tests/check_manifests.py reads this line)
#
# Usage: tools/image-deps.sh [WORKDIR]      as root, in a Debian 12 builder
# Each step is checked by hand (set -e does not hold inside a tested
# subshell).
# Needs: deb-src entries for Debian 12 in apt's sources (the Dockerfiles
# add them), dpkg-dev, build-essential, pkg-config, libssl-dev.
set -eu
prog=image-deps
die() { echo "$prog: $*" >&2; exit 1; }
work=${1:-/tmp/image-deps}
jobs=$(nproc 2>/dev/null || echo 2)
[ "$(id -u)" = 0 ] || die "run as root (it installs into /usr)"
command -v dpkg-source >/dev/null 2>&1 || die "dpkg-source not found (Debian package dpkg-dev)"

mkdir -p "$work"
cd "$work"
apt-get source --quiet curl libmicrohttpd >source.log 2>&1 \
  || { cat source.log >&2; die "apt-get source failed: are deb-src entries for Debian 12 configured?"; }
curl_dir=$(find . -maxdepth 1 -type d -name 'curl-*' | head -n 1)
mhd_dir=$(find . -maxdepth 1 -type d -name 'libmicrohttpd-*' | head -n 1)
[ -n "$curl_dir" ] && [ -n "$mhd_dir" ] || die "source trees not found in $work"

common="--prefix=/usr --libdir=/usr/lib --disable-static --disable-dependency-tracking --quiet"

# libcurl: HTTP(S) with OpenSSL, proxies (an operator's HTTPS_PROXY keeps
# working), nothing else. The CA bundle path is Debian's, which the image
# holds.
build_curl() {
  cd "$curl_dir" || return 1
  ./configure $common \
    --with-openssl --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --without-ca-path \
    --without-zlib --without-brotli --without-zstd --without-libpsl --without-libidn2 \
    --without-nghttp2 --without-nghttp3 --without-ngtcp2 --without-libssh2 --without-libssh \
    --without-librtmp --without-gssapi --without-libgsasl \
    --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet \
    --disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp \
    --disable-gopher --disable-mqtt --disable-ftp --disable-file \
    --disable-manual --disable-ntlm --disable-ntlm-wb --disable-cookies \
    --disable-alt-svc --disable-hsts --disable-doh --disable-netrc \
    --disable-verbose --enable-symbol-hiding || return 1
  make -j"$jobs" -C lib || return 1
  make -C lib install || return 1
  make -C include install || return 1
  mkdir -p /usr/lib/pkgconfig || return 1
  install -m 644 libcurl.pc /usr/lib/pkgconfig/libcurl.pc || return 1
}

# libmicrohttpd: plain HTTP, no digest authentication or post processor.
build_mhd() {
  cd "$mhd_dir" || return 1
  ./configure $common \
    --disable-https --disable-curl --disable-doc --disable-examples \
    --disable-dauth --disable-postprocessor || return 1
  make -j"$jobs" -C src/microhttpd || return 1
  make -C src/microhttpd install || return 1
  make -C src/include install || return 1
  mkdir -p /usr/lib/pkgconfig || return 1
  install -m 644 libmicrohttpd.pc /usr/lib/pkgconfig/libmicrohttpd.pc || return 1
}

(build_curl) >"$work/curl.log" 2>&1 \
  || { tail -n 30 "$work/curl.log" >&2; die "libcurl failed to build (log: $work/curl.log)"; }
(build_mhd) >"$work/microhttpd.log" 2>&1 \
  || { tail -n 30 "$work/microhttpd.log" >&2; die "libmicrohttpd failed to build (log: $work/microhttpd.log)"; }

ldconfig
pkg-config --exists libcurl libmicrohttpd || die "the pkg-config files are not found"
echo "$prog: libcurl $(pkg-config --modversion libcurl), libmicrohttpd $(pkg-config --modversion libmicrohttpd) in /usr/lib"
