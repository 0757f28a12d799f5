# tokenpulse serve, for docker-compose.yml (or any ClickHouse server: set TOKENPULSE_CLICKHOUSE_URL).
# Python 3.11, as constraints.txt is resolved on it: the image installs the same pins as CI.

# Build stage: a C compiler for the mypyc-compiled hot path (setup.py); the wheel it builds needs none.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt ./
# tokenpulse/runbooks is a link to runbooks/: the wheel takes the pages from there.
COPY runbooks ./runbooks
COPY tokenpulse ./tokenpulse
RUN pip install -q -U pip -c constraints.txt \
    && pip wheel -q --no-deps --wheel-dir /wheels . --build-constraint constraints.txt

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
COPY constraints.txt /wheels/
RUN pip install -q -U pip -c /wheels/constraints.txt \
    && pip install -q /wheels/tokenpulse-*.whl -c /wheels/constraints.txt && rm -rf /wheels

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
