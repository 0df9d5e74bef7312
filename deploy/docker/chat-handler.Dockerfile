# syntax=docker/dockerfile:1
# Container image of chat-handler: text chat over NATS: ChatRequest, optional RAG, LLM, ChatResponse.
# A libaiplat service; decisions in docs/decisions/0011-containers-and-manifests.md.
#
# Build from the repository root (the build context is the source tree):
#   docker build -f deploy/docker/chat-handler.Dockerfile \
#     -t git.daviestechlabs.io/daviestechlabs/aiplat-chat-handler:0.1.0 .
#
# Stage 1 builds the tree on Debian 12 and installs it into /usr, as the
# Debian package does. tools/image-contents.sh then copies exactly what the
# program needs to run into /image: its shared-library closure (ldd), the
# dynamic loader, libgcc_s, the CA bundle and /etc/{passwd,group,nsswitch.conf}.
# Stage 2 is scratch holding only that: no shell, no package manager.
#
# Pin the builder by digest in CI (the tag alone floats across Debian 12
# point releases):
#   --build-arg BUILDER_IMAGE=docker.io/library/debian:12-slim@sha256:<digest>
# with <digest> from `docker buildx imagetools inspect docker.io/library/debian:12-slim`.
ARG BUILDER_IMAGE=docker.io/library/debian:12-slim

FROM ${BUILDER_IMAGE} AS build
ARG SERVICE=chat-handler
ARG SOURCE_DATE_EPOCH=0
# Build dependencies: every Debian package configure.ac requires
# (tests/check-manifests.sh checks this list against configure.ac),
# the autotools, and the CA bundle copied into the image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential autoconf automake libtool pkg-config \
      libnats-dev libprotobuf-c-dev protobuf-c-compiler \
      libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libssl-dev check \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN autoreconf -fi \
 && ./configure --prefix=/usr --disable-dependency-tracking --disable-model-backend --quiet \
 && make -j"$(nproc)" \
 && make install-strip \
 && ldconfig
RUN tools/image-contents.sh --root /image "/usr/bin/${SERVICE}"

FROM scratch
LABEL org.opencontainers.image.title="chat-handler" \
      org.opencontainers.image.description="text chat over NATS: ChatRequest, optional RAG, LLM, ChatResponse" \
      org.opencontainers.image.source="https://git.daviestechlabs.io/daviestechlabs/libaiplat"
# Two layers: the runtime (libraries, certificates, /etc) is the same for
# every service built from one tree, so a node pulls it once.
COPY --from=build /image/runtime/ /
COPY --from=build /image/app/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/chat-handler"]
