# Speed Kings exporter image: a small, non-root runtime holding only a virtualenv.
#
#   docker build -t speed-kings:local .
#   docker run --rm -p 127.0.0.1:9464:9464 speed-kings:local            # demo, no keys needed
#   docker run --rm -p 127.0.0.1:9464:9464 -e GROQ_API_KEY \
#     -v "$PWD/config/speed-kings.docker.yaml:/etc/speed-kings/config.yaml:ro" \
#     -v speed-kings-state:/var/lib/speed-kings \
#     speed-kings:local run --config /etc/speed-kings/config.yaml --listen 0.0.0.0:9464
#
# Give `docker stop` more than the default 10 s (`-t 40`): on SIGTERM the exporter lets
# in-flight probes finish for up to 30 s. docker-compose.yml sets stop_grace_period.
#
# Works on the official python:3.11-slim and on a plain Debian base that stands in for it
# (Debian's python3 is "externally managed", PEP 668, so everything goes into a virtualenv;
# python3 and python3-venv are installed from apt only when the base lacks them).
# PYTHON_IMAGE may pin the base by digest: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build the wheel and install it with its dependencies into /opt/venv ----------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN set -eu; \
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv /opt/venv >/dev/null 2>&1; then \
        rm -rf /opt/venv; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv; \
        rm -rf /var/lib/apt/lists/*; \
        python3 -m venv /opt/venv; \
    fi

# Only what the build needs (see .dockerignore for the rest of the context).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter/ exporter/

# A regular (non-editable) install: pip builds the wheel, installs it and the pinned
# dependencies (all of them ship binary wheels, so no compiler is needed), and precompiles
# the bytecode, which the non-root runtime could not write later. Then pip and setuptools
# leave the venv (a third of it): the runtime installs nothing.
RUN /opt/venv/bin/python -m pip install /src \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
    && /opt/venv/bin/speed-kings --version


# --- runtime: the base image plus /opt/venv, nothing else --------------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="speed-kings" \
      org.opencontainers.image.description="Prometheus exporter that probes LLM inference providers for time to first token, throughput, cost and rate limits, within a dollar budget." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# The venv's python links to the base image's interpreter: on a base without one (the Debian
# stand-in), install the interpreter only (no venv module, no build tools).
RUN set -eu; \
    if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    if command -v useradd >/dev/null 2>&1; then \
        groupadd --system --gid 10001 speedkings; \
        useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/speed-kings \
            --no-create-home --shell /usr/sbin/nologin speedkings; \
    else \
        echo 'speedkings:x:10001:' >> /etc/group; \
        echo 'speedkings:x:10001:10001:Speed Kings:/var/lib/speed-kings:/usr/sbin/nologin' >> /etc/passwd; \
    fi; \
    mkdir -p /var/lib/speed-kings /etc/speed-kings /app; \
    chown 10001:10001 /var/lib/speed-kings /app

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app
# The SQLite budget ledger: point the config's state_dir here (config/speed-kings.docker.yaml
# does) and keep it on a volume, so a new container never resets spend. Created and owned
# by the runtime user before VOLUME, so a fresh named volume starts with that ownership.
VOLUME ["/var/lib/speed-kings"]
USER 10001:10001

EXPOSE 9464
# python, not curl: the slim image has no curl. Assumes the default listen port 9464 and
# plain HTTP (with --web-config TLS or another port, override it, docs/deployment.md). No
# spaces inside an argument: podman's Docker-compatible API (docker-compose on podman) splits
# healthcheck arguments on spaces.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:9464/healthz',timeout=4)"]

# The exporter handles SIGTERM itself (drains in-flight probes, up to 30 s) as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["speed-kings"]
# Demo mode (simulated sim-* providers, no keys) unless a command is given, e.g.
#   run --config /etc/speed-kings/config.yaml --listen 0.0.0.0:9464
CMD ["run", "--demo", "--listen", "0.0.0.0:9464"]
