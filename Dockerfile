# tokenpulse serve, for docker-compose.yml (or any ClickHouse server: set TOKENPULSE_CLICKHOUSE_URL).
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tokenpulse ./tokenpulse
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/tokenpulse tokenpulse \
    && mkdir -p /var/lib/tokenpulse && chown tokenpulse /var/lib/tokenpulse
USER tokenpulse
WORKDIR /var/lib/tokenpulse

# The data directory holds the write-ahead log (and the embedded store when no server URL is set).
ENV TOKENPULSE_DATA=/var/lib/tokenpulse TOKENPULSE_HOST=0.0.0.0
VOLUME /var/lib/tokenpulse
EXPOSE 4317 4318 8000

ENTRYPOINT ["tokenpulse"]
CMD ["serve"]
