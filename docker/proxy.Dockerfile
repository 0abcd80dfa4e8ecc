# The affinity proxy (affinity_proxy): JSON-RPC/SSE on 8080, metrics on 9090.
# Build from the repo root:  docker build -f docker/proxy.Dockerfile -t stepflow-proxy .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project (all its packages and dependencies). The repo is bind-mounted for
# this one step, so no source, build directory or pip cache ends up in the image.
WORKDIR /src
RUN --mount=type=bind,target=/src,rw \
    pip install .

# The proxy's per-request modules compiled by mypyc (docs/decisions.md, "Compiled hot path"),
# in place in the installed package; the compiler and mypy (the version pyproject.toml pins)
# are there for this step only and leave in the same layer. python -P: the installed package,
# not /src. The check fails the build if the proxy would run as Python.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --target /tmp/mypyc "mypy==2.4.1" \
    && PYTHONPATH=/tmp/mypyc python -P -m affinity_proxy.build_compiled \
    && python -P -c "import sys, affinity_proxy; sys.exit(not affinity_proxy.COMPILED)" \
    && rm -rf /tmp/mypyc \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# A numeric, unprivileged user: Kubernetes' runAsNonRoot can only verify numeric ids.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin stepflow

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]

# The upstream is the headless Service of the component servers (Kubernetes names from
# docs/architecture.md); outside the cluster, pass your own --upstream and --dns-server.
CMD ["python", "-m", "affinity_proxy", "--listen", "0.0.0.0:8080", "--upstream", "component-server.stepflow-demo.svc.cluster.local:8080", "--metrics-listen", "0.0.0.0:9090"]
