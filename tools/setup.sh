#!/bin/sh
# Install what building and testing libaiplat needs from Debian's packages,
# then bootstrap and configure an out-of-tree build in ./build.
# Idempotent: packages already installed are not reinstalled.
# Usage: tools/setup.sh [--no-configure]
set -eu
cd "$(dirname "$0")/.."

# Build and test dependencies, one per line: why each is here is in
# docs/decisions/ and README "Dependencies".
PACKAGES="
build-essential autoconf automake libtool pkg-config
libnats-dev libprotobuf-c-dev protobuf-c-compiler
libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev check libssl-dev
nats-server valgrind python3 yamllint python3-yaml protobuf-compiler python3-protobuf curl openssl
flite1-dev libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us pocketsphinx-testdata
golang-go g++
"

# CI adds the packaging tools through AIPLAT_EXTRA_PACKAGES.
PACKAGES="$PACKAGES ${AIPLAT_EXTRA_PACKAGES:-}"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing:$missing"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

[ "${1:-}" = "--no-configure" ] && exit 0
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
  autoreconf -fi
fi
mkdir -p build
if [ ! -f build/Makefile ]; then
  (cd build && ../configure --enable-werror --quiet)
fi
