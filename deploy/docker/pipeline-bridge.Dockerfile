# syntax=docker/dockerfile:1
# Container image of pipeline-bridge: NATS bridge to Argo Workflows and Kubeflow Pipelines.
# A libaiplat service; decisions in docs/decisions/0011-containers-and-manifests.md.
#
# Build from the repository root (the build context is the source tree):
#   docker build -f deploy/docker/pipeline-bridge.Dockerfile \
#     -t git.daviestechlabs.io/daviestechlabs/aiplat-pipeline-bridge:0.1.0 .
#
# Stage 1 builds, on Debian 12, libcurl (HTTP and HTTPS over OpenSSL only) and
# libmicrohttpd (plain HTTP) from Debian's source packages with
# tools/image-deps.sh: Debian's binary packages of those two pull in GnuTLS,
# Kerberos, LDAP, SSH and RTMP, which no service uses. It then builds the
# tree against them with -O2 and no libm, and installs it into /usr.
# tools/image-contents.sh then copies exactly what the program needs to run
# into /image: its shared-library closure (ldd), the dynamic loader,
# libgcc_s, the CA bundle and /etc/{passwd,group,nsswitch.conf}; it fails
# the build past 10 MB.
# Stage 2 is scratch holding only that: no shell, no package manager.
#
# Pin the builder by digest in CI (the tag alone floats across Debian 12
# point releases):
#   --build-arg BUILDER_IMAGE=docker.io/library/debian:12-slim@sha256:<digest>
# with <digest> from `docker buildx imagetools inspect docker.io/library/debian:12-slim`.
ARG BUILDER_IMAGE=docker.io/library/debian:12-slim

FROM ${BUILDER_IMAGE} AS build
ARG SERVICE=pipeline-bridge
ARG SOURCE_DATE_EPOCH=0
# Build dependencies: every Debian package configure.ac requires
# (tests/check-manifests.sh checks this list against configure.ac; the two
# that tools/image-deps.sh builds from source stand in for theirs), the
# autotools, dpkg-dev for `apt-get source`, and the CA bundle copied into
# the image.
RUN . /etc/os-release \
 && printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$VERSION_CODENAME" "$VERSION_CODENAME" "$VERSION_CODENAME" > /etc/apt/sources.list.d/deb-src.sources \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential autoconf automake libtool pkg-config dpkg-dev \
      libnats-dev libprotobuf-c-dev protobuf-c-compiler \
      libjansson-dev libssl-dev check \
      ca-certificates
COPY tools/image-deps.sh /usr/local/sbin/image-deps.sh
RUN /usr/local/sbin/image-deps.sh /tmp/image-deps \
 && rm -rf /tmp/image-deps /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN autoreconf -fi \
 && ./configure --prefix=/usr --libdir=/usr/lib --disable-dependency-tracking --disable-model-backend \
      --quiet CFLAGS="-O2" LIBM= \
 && make -j"$(nproc)" \
 && make install-strip \
 && ldconfig
RUN tools/image-contents.sh --max-mb 10 --root /image "/usr/bin/${SERVICE}"

FROM scratch
LABEL org.opencontainers.image.title="pipeline-bridge" \
      org.opencontainers.image.description="NATS bridge to Argo Workflows and Kubeflow Pipelines" \
      org.opencontainers.image.source="https://git.daviestechlabs.io/daviestechlabs/libaiplat"
# Two layers: the runtime (libraries, certificates, /etc) is the same for
# every service built from one tree, so a node pulls it once.
COPY --from=build /image/runtime/ /
COPY --from=build /image/app/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/pipeline-bridge"]
