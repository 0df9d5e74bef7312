#!/bin/sh
# Builds a service's container image from deploy/docker/<service>.Dockerfile
# with podman, on a machine without a registry: the Debian 12 builder image
# is made locally with debootstrap (--variant=minbase) and imported, so the
# only network the build needs is Debian's archive.
#
# Usage: tools/image-build.sh [--tag TAG] SERVICE
#   SERVICE   chat-handler, voice-assistant, stt-module, tts-module or
#             pipeline-bridge
#   --tag     the image's name (default localhost/aiplat-SERVICE:test)
# Environment:
#   AIPLAT_IMAGE_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   AIPLAT_BUILDER_IMAGE   use this builder image instead of making one
#   PODMAN                 the engine (default podman)
# Prints the image's size on its last line. Exit codes: 0 built, 1 failed,
# 77 no working engine here (podman, runc or debootstrap missing, or not
# root), the reason on stderr.
#
# Engine settings that work on the virtual machines CI runs on: runc
# rather than crun (crun failed on setrlimit there), explicit ulimits, and
# the host's network for apt inside the build.
set -eu
prog=image-build
die() { echo "$prog: $*" >&2; exit 1; }
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
src=$(cd "$(dirname "$0")/.." && pwd)
podman=${PODMAN:-podman}
tag=""
while [ $# -gt 0 ]; do
  case $1 in
    --tag) [ $# -ge 2 ] || die "--tag needs a name"; tag=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || die "usage: $prog [--tag TAG] SERVICE"
service=$1
dockerfile=$src/deploy/docker/$service.Dockerfile
[ -f "$dockerfile" ] || die "no $dockerfile"
tag=${tag:-localhost/aiplat-$service:test}

[ "$(id -u)" = 0 ] || skip "needs root (rootless podman needs subuid ranges this machine may lack)"
command -v "$podman" >/dev/null 2>&1 || skip "$podman not found (Debian package podman)"
command -v runc >/dev/null 2>&1 || skip "runc not found (Debian package runc)"
run_opts="--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1000:1000"

builder=${AIPLAT_BUILDER_IMAGE:-localhost/aiplat-builder:bookworm}
if ! "$podman" image exists "$builder" 2>/dev/null; then
  [ -z "${AIPLAT_BUILDER_IMAGE:-}" ] || die "builder image $builder not found"
  command -v debootstrap >/dev/null 2>&1 || skip "debootstrap not found (Debian package debootstrap)"
  mirror=${AIPLAT_IMAGE_MIRROR:-http://deb.debian.org/debian}
  root=$(mktemp -d /var/tmp/aiplat-builder.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "$prog: making the builder image $builder with debootstrap" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed"; }
  rm -f "$root.log"
  # The suites a Debian 12 image has: point-release updates and security.
  rm -f "$root/etc/apt/sources.list"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" > "$root/etc/apt/sources.list.d/debian.sources"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  tar -C "$root" -c . | "$podman" import - "$builder" >/dev/null \
    || die "podman import failed"
  rm -rf "$root"
  trap - EXIT
fi

# shellcheck disable=SC2086
"$podman" build $run_opts --network host --layers \
  --build-arg BUILDER_IMAGE="$builder" \
  -f "$dockerfile" -t "$tag" "$src" >&2 \
  || die "podman build of $service failed"
size=$("$podman" image inspect --format '{{.Size}}' "$tag")
echo "$prog: $tag built: $size bytes"
