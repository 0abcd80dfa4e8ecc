# The orchestrator (runtime_server): REST API on 7840, metrics on 9090.
# Build from the repo root:  docker build -f docker/runtime.Dockerfile -t stepflow-runtime .
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

# A numeric, unprivileged user: Kubernetes' runAsNonRoot can only verify numeric ids.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin stepflow

# The default config; in Kubernetes the ConfigMap is mounted over /etc/stepflow.
COPY config/stepflow-config.yml /etc/stepflow/stepflow-config.yml

USER 10001:10001
WORKDIR /tmp
EXPOSE 7840 9090

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7840/api/v1/health', timeout=2)"]

CMD ["python", "-m", "runtime_server", "--config", "/etc/stepflow/stepflow-config.yml", "--host", "0.0.0.0", "--port", "7840", "--metrics-port", "9090"]
