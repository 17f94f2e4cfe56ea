# syntax=docker/dockerfile:1
# One image, both entry points: `raftpod-operator` (the kopf operator) and
# `raftpod-sidecar` (the Raft node the operator injects into every member pod).
# The pod decides which runs through its `command`; there is no ENTRYPOINT.
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (sidecar) or the
# operator's liveness endpoint instead.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/raftpod
COPY pyproject.toml README.md ./
COPY sidecar/ sidecar/
COPY operator/ operator/
RUN /opt/raftpod/bin/pip install '.[fast]' \
 && /opt/raftpod/bin/raftpod-operator --version \
 && /opt/raftpod/bin/raftpod-sidecar --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="raftpod" \
      org.opencontainers.image.description="Raft sidecar and kopf operator for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/raftpod/raftpod"
RUN groupadd --system --gid 10001 raftpod \
 && useradd --system --uid 10001 --gid raftpod --home-dir /var/lib/raftpod \
      --shell /usr/sbin/nologin raftpod \
 && mkdir -p /var/lib/raftpod \
 && chown raftpod:raftpod /var/lib/raftpod
COPY --from=build /opt/raftpod /opt/raftpod
ENV PATH=/opt/raftpod/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/raftpod
# peer RPC, admin API, operator liveness, operator metrics (the app API stays on loopback)
EXPOSE 7000 7002 8080 9090
CMD ["raftpod-operator", "--help"]
