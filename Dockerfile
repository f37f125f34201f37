# The project's one image: the node (`dcm serve`), the provider daemon (`dcm provider run`),
# the migration one-shot (`dcm db upgrade`), and the repo's Hardhat project (a local chain
# and the escrow's deployment). docker-compose.yml at the top level runs the whole stack.
#
#   docker build -t dcm .            # training extras: --build-arg EXTRAS=train
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HARDHAT_DISABLE_TELEMETRY_PROMPT=true \
    XDG_CACHE_HOME=/app/.cache/xdg-cache \
    XDG_CONFIG_HOME=/app/.cache/xdg-config \
    XDG_DATA_HOME=/app/.cache/xdg-data \
    DCM_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The Hardhat project's packages first, so that a code change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --create-home --uid 10001 dcm \
    && mkdir -p /data /app/.cache && chown -R dcm /data /app/.cache

USER dcm
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["dcm", "serve", "--host", "0.0.0.0", "--port", "8000"]
