"""Per-interval series of the key LLM figures from the per-minute rollup, for the overview page.

Each point covers [time, time + step): spend rate, calls, errors, timeouts, unpriced calls, cache hit ratio
(``storage.cache_ratio``: reads over cacheable tokens, by provider shape per rollup row), input
tokens per call, and latency / TTFT percentiles merged from the rollup's t-digest states over the
interval (never an average of per-minute percentiles). Every bucket of the range has a point; a
bucket without calls has zero counts and no ratios or percentiles.

Spend is never a silent 0: a bucket whose calls all have an unknown price has no spend rate (``None``,
a gap in the chart), and one where some do has the priced calls' rate, a lower bound, with
``unpriced_calls`` saying how many are missing from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tokenpulse.storage.cache_ratio import cacheable_tokens_sql, hit_ratio
from tokenpulse.storage.schema import LATENCY_QUANTILES, ROLLUP_DIMENSIONS
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import _CACHE_COLUMNS, _percentiles, model_filter_sql

MAX_POINTS = 1500  # a chart's width in pixels, more or less
_EMPTY = {"p50": None, "p95": None, "p99": None}


@dataclass(frozen=True)
class SeriesQuery:
    start: datetime
    end: datetime
    step: timedelta
    filters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [d for d in self.filters if d not in ROLLUP_DIMENSIONS]
        if unknown:
            raise ValueError(
                f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(ROLLUP_DIMENSIONS)}"
            )
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.step < timedelta(minutes=1) or self.step % timedelta(minutes=1):
            raise ValueError("step must be a whole number of minutes (the rollup's grain)")
        if self.points > MAX_POINTS:
            raise ValueError(f"{self.points} points: at most {MAX_POINTS}, use a longer step")

    @property
    def points(self) -> int:
        return -(-(self.end - self.start) // self.step)  # ceiling division

    def bucket_times(self) -> list[datetime]:
        return [self.start + self.step * index for index in range(self.points)]


def build_series_sql(query: SeriesQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and its parameters for ``query`` (pure: no I/O). Buckets start at ``query.start``."""
    where = ["minute >= {start:DateTime('UTC')}", "minute < {end:DateTime('UTC')}"]
    parameters: dict[str, Any] = {
        "start": query.start,
        "end": query.end,
        "step": int(query.step.total_seconds()),
    }
    for index, (dimension, value) in enumerate(sorted(query.filters.items())):
        # model: the asked or the answered name, as the summary's model (the chart of a summary row)
        if dimension == "model":
            where.append(model_filter_sql("calls_1m", f"f{index}"))
        else:
            where.append(f"{dimension} = {{f{index}:String}}")
        parameters[f"f{index}"] = value
    sql = (
        "SELECT intDiv(dateDiff('second', {start:DateTime('UTC')}, minute), {step:UInt32}) AS bucket, "
        "sum(calls) AS calls, sum(errors) AS errors, sum(timeouts) AS timeouts, "
        "sum(unpriced_calls) AS unpriced_calls, "
        "toFloat64(sum(cost_usd)) AS cost_usd, sum(input_tokens) AS input_tokens, "
        "sum(cache_read_tokens) AS cache_read_tokens, "
        f"sum({cacheable_tokens_sql(**{c: f'calls_1m.{c}' for c in _CACHE_COLUMNS})}) AS cacheable_tokens, "
        f"quantilesTDigestMerge({LATENCY_QUANTILES})(latency_ms) AS latency, "
        f"quantilesTDigestMerge({LATENCY_QUANTILES})(ttft_ms) AS ttft "
        f"FROM calls_1m WHERE {' AND '.join(where)} GROUP BY bucket ORDER BY bucket"
    )
    return sql, parameters


def series(store: Store, query: SeriesQuery) -> list[dict[str, Any]]:
    """One point per bucket of ``query``'s range."""
    sql, parameters = build_series_sql(query)
    rows = {row["bucket"]: row for row in store.query(sql, parameters).named_results()}
    hours = query.step / timedelta(hours=1)
    points = []
    for index, moment in enumerate(query.bucket_times()):
        row = rows.get(index)
        calls = row["calls"] if row else 0
        unpriced = row["unpriced_calls"] if row else 0
        points.append(
            {
                "time": moment.isoformat(),
                "calls": calls,
                "errors": row["errors"] if row else 0,
                "timeouts": row["timeouts"] if row else 0,
                # No call, no spend: 0. Calls of unknown price only: unknown, not 0.
                "usd_per_hour": None
                if calls and unpriced == calls
                else (row["cost_usd"] / hours if row else 0.0),
                "unpriced_calls": unpriced,
                "cache_hit_ratio": hit_ratio(row["cache_read_tokens"], row["cacheable_tokens"])
                if row
                else None,
                "input_tokens_per_call": row["input_tokens"] / calls if calls else None,
                "latency_ms": _percentiles(row["latency"]) if calls else _EMPTY,
                "ttft_ms": _percentiles(row["ttft"]) if calls else _EMPTY,
            }
        )
    return points
