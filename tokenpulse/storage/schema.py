"""Versioned ClickHouse migrations. Each is applied once, in order, and is itself idempotent.

The same SQL runs on embedded chDB and on a ClickHouse server.
"""

from __future__ import annotations

from dataclasses import dataclass

# Insert deduplication keeps this many recent insert tokens per table; the write-ahead log replays
# at most one pending batch after a crash, so a small window is plenty.
DEDUPLICATION_WINDOW = 1000

# The rollup counts a call in the minute it *ended*: that is when its span can arrive, so a detector
# evaluating a minute has all of its calls (a 60 s timeout counted at its start would arrive too late).
# Dimensions of the per-minute rollup: what detectors and dashboards slice by. The user is left out
# on purpose: its cardinality is unbounded, per-user questions read the raw table. Migration 1 created
# the first nine; migration 3 added the tenant (the project of the API key that sent the call), migration
# 4 the service tier the provider served (flex, priority, batch: billed at their own rates).
_FIRST_ROLLUP_DIMENSIONS = (
    "service",
    "environment",
    "route",
    "model",
    "provider",
    "operation",
    "prompt_version",
    "service_version",
    "router",
)
_V3_ROLLUP_DIMENSIONS = (*_FIRST_ROLLUP_DIMENSIONS, "tenant")
ROLLUP_DIMENSIONS = (*_V3_ROLLUP_DIMENSIONS, "service_tier")
# Migration 6 keys the rollup by the request model too: the summary's `model` is the model the call asked
# for (a failed call has no response model, so the dated response name would split one model in two).
# It is a key column, not one of ROLLUP_DIMENSIONS: rows rolled up before migration 6 have it '', so a
# filter on it would miss them; readers reach it through ``storage.summary``'s model key, which falls
# back to ``model`` on those rows.
_V6_ROLLUP_KEY = (*ROLLUP_DIMENSIONS, "request_model")

LATENCY_QUANTILES = "0.5, 0.9, 0.95, 0.99"

# When a call ended: the time every table's readers count it at (see the rollup above).
ENDED_AT = "addMilliseconds(time, toInt64(duration_ms))"


# Rollup metrics added by migration 4: the 1-hour cache writes and the cost providers reported.
_V4_ROLLUP_METRICS = """
                sum(c.cache_write_1h_tokens) AS cache_write_1h_tokens,
                countIf(c.reported_cost_usd IS NOT NULL) AS reported_calls,
                sum(toDecimal128(ifNull(c.reported_cost_usd, 0), 12)) AS reported_cost_usd,"""


def _rollup_view(dimensions: tuple[str, ...], metrics: str = "") -> str:
    """The materialized view that feeds ``calls_1m`` from every insert into ``calls``."""
    return f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1m_mv TO calls_1m AS
            SELECT
                toStartOfMinute({ENDED_AT}) AS minute,
                {", ".join(f"c.{d} AS {d}" for d in dimensions)},
                count() AS calls,
                countIf(c.status = 'error') AS errors,
                countIf(c.is_timeout) AS timeouts,
                countIf(c.escalated) AS escalated_calls,
                countIf(c.cache_read_tokens = 0 AND c.cache_write_tokens = 0) AS uncached_calls,
                countIf(NOT c.price_known) AS unpriced_calls,
                sum(c.input_tokens) AS input_tokens,
                sum(c.output_tokens) AS output_tokens,
                sum(c.cache_read_tokens) AS cache_read_tokens,
                sum(c.cache_write_tokens) AS cache_write_tokens,
                sum(c.reasoning_tokens) AS reasoning_tokens,
                sum(toDecimal128(c.cost_usd, 12)) AS cost_usd,{metrics}
                quantilesTDigestState({LATENCY_QUANTILES})(c.duration_ms) AS latency_ms,
                quantilesTDigestState({LATENCY_QUANTILES})(c.ttft_ms) AS ttft_ms
            FROM calls AS c
            GROUP BY minute, {", ".join(dimensions)}
            """


# Dimensions of the evaluations' per-minute rollup. The route, model and prompt version are the evaluated
# call's, as the event carried them (filled in at ingest: ``buffer.records.EvaluationRecord``).
EVALUATION_ROLLUP_DIMENSIONS = (
    "tenant", "service", "environment", "route", "model", "prompt_version", "evaluation", "evaluator",
)  # fmt: skip


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "calls, tool_spans and the per-minute rollup",
        (
            f"""
            CREATE TABLE IF NOT EXISTS calls (
                time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
                duration_ms Float64,
                trace_id String CODEC(ZSTD(1)),
                span_id String CODEC(ZSTD(1)),
                parent_span_id String CODEC(ZSTD(1)),
                service LowCardinality(String),
                service_version LowCardinality(String),
                environment LowCardinality(String),
                provider LowCardinality(String),
                request_model LowCardinality(String),
                response_model LowCardinality(String),
                operation LowCardinality(String),
                input_tokens UInt64,
                output_tokens UInt64,
                cache_read_tokens UInt64,
                cache_write_tokens UInt64,
                reasoning_tokens UInt64,
                ttft_ms Nullable(Float64),
                status LowCardinality(String),
                error_type LowCardinality(String),
                is_timeout Bool,
                route LowCardinality(String),
                user String CODEC(ZSTD(1)),
                session String CODEC(ZSTD(1)),
                prompt_version LowCardinality(String),
                router LowCardinality(String),
                escalated Bool,
                cost_usd Decimal(18, 12),
                price_known Bool,
                cost_source LowCardinality(String),
                dialect LowCardinality(String),
                extra Map(LowCardinality(String), String),
                model LowCardinality(String)
                    MATERIALIZED if(response_model != '', response_model, request_model)
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toDate(time)
            ORDER BY (service, route, toStartOfHour(time), trace_id, span_id)
            TTL toDateTime(time) + INTERVAL 90 DAY
            SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS tool_spans (
                time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
                duration_ms Float64,
                trace_id String CODEC(ZSTD(1)),
                span_id String CODEC(ZSTD(1)),
                parent_span_id String CODEC(ZSTD(1)),
                service LowCardinality(String),
                environment LowCardinality(String),
                kind LowCardinality(String),
                name LowCardinality(String),
                status LowCardinality(String),
                error_type LowCardinality(String),
                is_timeout Bool
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toDate(time)
            ORDER BY (service, kind, name, toStartOfHour(time), trace_id, span_id)
            TTL toDateTime(time) + INTERVAL 90 DAY
            SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS calls_1m (
                minute DateTime('UTC'),
                {", ".join(f"{d} LowCardinality(String)" for d in _FIRST_ROLLUP_DIMENSIONS)},
                calls SimpleAggregateFunction(sum, UInt64),
                errors SimpleAggregateFunction(sum, UInt64),
                timeouts SimpleAggregateFunction(sum, UInt64),
                escalated_calls SimpleAggregateFunction(sum, UInt64),
                uncached_calls SimpleAggregateFunction(sum, UInt64),
                unpriced_calls SimpleAggregateFunction(sum, UInt64),
                input_tokens SimpleAggregateFunction(sum, UInt64),
                output_tokens SimpleAggregateFunction(sum, UInt64),
                cache_read_tokens SimpleAggregateFunction(sum, UInt64),
                cache_write_tokens SimpleAggregateFunction(sum, UInt64),
                reasoning_tokens SimpleAggregateFunction(sum, UInt64),
                cost_usd SimpleAggregateFunction(sum, Decimal(38, 12)),
                latency_ms AggregateFunction(quantilesTDigest({LATENCY_QUANTILES}), Float64),
                ttft_ms AggregateFunction(quantilesTDigest({LATENCY_QUANTILES}), Nullable(Float64))
            )
            ENGINE = AggregatingMergeTree
            PARTITION BY toYYYYMM(minute)
            ORDER BY ({", ".join(_FIRST_ROLLUP_DIMENSIONS)}, minute)
            TTL minute + INTERVAL 400 DAY
            SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}
            """,
            _rollup_view(_FIRST_ROLLUP_DIMENSIONS),
        ),
    ),
    Migration(
        2,
        "alert_events: every alert transition, for history, dashboards and the API",
        (
            """
            CREATE TABLE IF NOT EXISTS alert_events (
                at DateTime('UTC'),
                fingerprint String,
                status LowCardinality(String),
                detector LowCardinality(String),
                severity LowCardinality(String),
                scope Map(LowCardinality(String), String),
                value Float64,
                threshold Float64,
                baseline Nullable(Float64),
                summary String,
                suspects String,
                runbook_url String,
                started_at DateTime('UTC')
            )
            ENGINE = MergeTree
            PARTITION BY toYYYYMM(at)
            ORDER BY (detector, at, fingerprint)
            TTL at + INTERVAL 400 DAY
            """,
        ),
    ),
    Migration(
        3,
        "tenant: the project of the API key that sent each call, on every table and in the rollup key",
        (
            "ALTER TABLE calls ADD COLUMN IF NOT EXISTS tenant LowCardinality(String)",
            "ALTER TABLE tool_spans ADD COLUMN IF NOT EXISTS tenant LowCardinality(String)",
            "ALTER TABLE calls_1m ADD COLUMN IF NOT EXISTS tenant LowCardinality(String), "
            f"MODIFY ORDER BY ({', '.join(_FIRST_ROLLUP_DIMENSIONS)}, minute, tenant)",
            "DROP VIEW IF EXISTS calls_1m_mv",
            _rollup_view(_V3_ROLLUP_DIMENSIONS),
        ),
    ),
    Migration(
        4,
        "what the provider served and billed: service tier, fast mode, inference geography, 1-hour cache "
        "writes and the provider-reported cost on calls; the service tier in the rollup key; "
        "provider_usage, the providers' own usage and cost reports",
        (
            "ALTER TABLE calls"
            " ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String),"
            " ADD COLUMN IF NOT EXISTS speed LowCardinality(String),"
            " ADD COLUMN IF NOT EXISTS inference_geo LowCardinality(String),"
            " ADD COLUMN IF NOT EXISTS cache_write_1h_tokens UInt64,"
            " ADD COLUMN IF NOT EXISTS reported_cost_usd Nullable(Decimal(18, 12))",
            "ALTER TABLE calls_1m"
            " ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String),"
            " ADD COLUMN IF NOT EXISTS cache_write_1h_tokens SimpleAggregateFunction(sum, UInt64),"
            " ADD COLUMN IF NOT EXISTS reported_calls SimpleAggregateFunction(sum, UInt64),"
            " ADD COLUMN IF NOT EXISTS reported_cost_usd SimpleAggregateFunction(sum, Decimal(38, 12)),"
            f" MODIFY ORDER BY ({', '.join(_FIRST_ROLLUP_DIMENSIONS)}, minute, tenant, service_tier)",
            "DROP VIEW IF EXISTS calls_1m_mv",
            _rollup_view(ROLLUP_DIMENSIONS, _V4_ROLLUP_METRICS),
            # What the providers' own usage and cost reports say, per day (tokenpulse reconcile); the
            # latest import of a day x model x project x tier replaces the earlier ones.
            """
            CREATE TABLE IF NOT EXISTS provider_usage (
                day Date,
                provider LowCardinality(String),
                model LowCardinality(String),
                project LowCardinality(String),
                service_tier LowCardinality(String),
                calls Nullable(UInt64),
                input_tokens UInt64,
                cache_read_tokens UInt64,
                cache_write_tokens UInt64,
                output_tokens UInt64,
                cost_usd Nullable(Decimal(38, 12)),
                imported_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree(imported_at)
            PARTITION BY toYYYYMM(day)
            ORDER BY (provider, day, model, project, service_tier)
            TTL day + INTERVAL 400 DAY
            """,
        ),
    ),
    Migration(
        5,
        "evaluations: evaluation results of calls (gen_ai.evaluation.result) and their per-minute rollup",
        (
            f"""
            CREATE TABLE IF NOT EXISTS evaluations (
                time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
                trace_id String CODEC(ZSTD(1)),
                span_id String CODEC(ZSTD(1)),
                service LowCardinality(String),
                environment LowCardinality(String),
                route LowCardinality(String),
                model LowCardinality(String),
                prompt_version LowCardinality(String),
                evaluation LowCardinality(String),
                score Nullable(Float64),
                label LowCardinality(String),
                passed Nullable(Bool),
                evaluator LowCardinality(String),
                error_type LowCardinality(String),
                response_id String CODEC(ZSTD(1)),
                tenant LowCardinality(String)
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toDate(time)
            ORDER BY (service, route, evaluation, toStartOfHour(time), trace_id, span_id, evaluator, time)
            TTL toDateTime(time) + INTERVAL 90 DAY
            SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS evaluations_1m (
                minute DateTime('UTC'),
                {", ".join(f"{d} LowCardinality(String)" for d in EVALUATION_ROLLUP_DIMENSIONS)},
                evaluations SimpleAggregateFunction(sum, UInt64),
                scored SimpleAggregateFunction(sum, UInt64),
                score_sum SimpleAggregateFunction(sum, Float64),
                score_squares SimpleAggregateFunction(sum, Float64),
                judged SimpleAggregateFunction(sum, UInt64),
                passes SimpleAggregateFunction(sum, UInt64),
                errors SimpleAggregateFunction(sum, UInt64)
            )
            ENGINE = AggregatingMergeTree
            PARTITION BY toYYYYMM(minute)
            ORDER BY ({", ".join(EVALUATION_ROLLUP_DIMENSIONS)}, minute)
            TTL minute + INTERVAL 400 DAY
            SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}
            """,
            f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS evaluations_1m_mv TO evaluations_1m AS
            SELECT
                toStartOfMinute(time) AS minute,
                {", ".join(f"e.{d} AS {d}" for d in EVALUATION_ROLLUP_DIMENSIONS)},
                count() AS evaluations,
                count(e.score) AS scored,
                sum(ifNull(e.score, 0)) AS score_sum,
                sum(ifNull(e.score * e.score, 0)) AS score_squares,
                count(e.passed) AS judged,
                countIf(e.passed) AS passes,
                countIf(e.error_type != '') AS errors
            FROM evaluations AS e
            GROUP BY minute, {", ".join(EVALUATION_ROLLUP_DIMENSIONS)}
            """,
        ),
    ),
    Migration(
        6,
        "the request model in the per-minute rollup's key, so the summary counts a failed call (no "
        "response model) with the successful calls of the model it asked for",
        (
            # Rows already rolled up keep request_model '' (a key column cannot be backfilled in place);
            # the summary reads them under their model, as before. New rows carry it.
            "ALTER TABLE calls_1m ADD COLUMN IF NOT EXISTS request_model LowCardinality(String),"
            f" MODIFY ORDER BY ({', '.join(_FIRST_ROLLUP_DIMENSIONS)}, minute, tenant, service_tier,"
            " request_model)",
            "DROP VIEW IF EXISTS calls_1m_mv",
            _rollup_view(_V6_ROLLUP_KEY, _V4_ROLLUP_METRICS),
        ),
    ),
)
