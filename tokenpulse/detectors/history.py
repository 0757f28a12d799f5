"""What detectors read: named queries over a time range and the history they return, the only I/O of
the detectors package.

The engine runs each named query once per cycle (or once per backtest) however many detectors use
it; detectors then work on the frames in memory (``stats``, ``evidence``, ``data``), vectorized over
every scope and evaluation time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from tokenpulse.storage.cache_ratio import cacheable_tokens_sql
from tokenpulse.storage.schema import ENDED_AT, LATENCY_QUANTILES
from tokenpulse.storage.store import Store

BASELINE_DAYS = 7  # same hour of up to this many previous days


# The minute a call is counted in: when it ended, i.e. when tokenpulse can know about it. A detector
# evaluating minute t has then seen every call counted before t (see schema: the rollup does the same).
ENDED_MINUTE = f"toStartOfMinute({ENDED_AT})"

# Calls are read from this long before a range so that those ending in it are all there.
LONGEST_CALL = "INTERVAL 1 HOUR"


# Every detector query selects and groups by the tenant: the engine evaluates each tenant's history on
# its own (``tenant_histories``), so tenants never share a baseline, a window or an alert.
TENANT = "tenant"


def raw_minutes_query(
    name: str,
    table: str,
    dims: Sequence[str],
    aggregates: str,
    where: str = "",
    recent: timedelta | None = None,
) -> Query:
    """Per-minute ``aggregates`` of a raw table (calls or tool_spans) by ``dims`` (column expressions,
    aliases allowed), each row counted in the minute it ended, as the rollup counts calls."""
    dim_list = ", ".join((TENANT, *dims))
    conditions = [
        f"time >= {{start:DateTime('UTC')}} - {LONGEST_CALL}",
        "time < {end:DateTime('UTC')}",
        f"{ENDED_MINUTE} >= {{start:DateTime('UTC')}}",
        f"{ENDED_MINUTE} < {{end:DateTime('UTC')}}",
        *([where] if where else []),
    ]
    return Query(
        name,
        f"SELECT {ENDED_MINUTE} AS minute, {dim_list}, {aggregates} FROM {table} "
        f"WHERE {' AND '.join(conditions)} GROUP BY ALL",
        recent,
    )


ROLLUP_SUMS = (
    "calls", "errors", "timeouts", "escalated_calls", "uncached_calls", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
)  # fmt: skip


@dataclass(frozen=True)
class Query:
    """A named read over [start, end): ``sql`` binds {start:DateTime('UTC')} and {end:DateTime('UTC')}.

    ``recent`` marks a query only the evaluation times need (no baseline history): it reads from
    ``recent`` before the first evaluation time, not the days of history baselines need.
    """

    name: str
    sql: str
    recent: timedelta | None = None


# The rollup dimensions detectors slice by. One query at this grain serves every detector: grids()
# sums it up to each detector's own scope (e.g. service+route), so the rollup is read once a cycle.
DETECTOR_DIMENSIONS = ("service", "route", "model", "router")
# Cacheable tokens (``storage.cache_ratio``) from the rollup's own columns: the sums above alias them.
_CACHEABLE = cacheable_tokens_sql(
    *(f"r.{c}" for c in ("provider", "model", "input_tokens", "cache_read_tokens", "cache_write_tokens"))
)
ROLLUP = Query(
    "rollup",
    f"SELECT minute, {TENANT}, {', '.join(DETECTOR_DIMENSIONS)}, "
    + ", ".join(f"sum({m}) AS {m}" for m in ROLLUP_SUMS)
    + f", sum({_CACHEABLE}) AS cacheable_tokens"
    + ", toFloat64(sum(cost_usd)) AS cost_usd FROM calls_1m AS r "
    "WHERE minute >= {start:DateTime('UTC')} AND minute < {end:DateTime('UTC')} "
    f"GROUP BY minute, {TENANT}, {', '.join(DETECTOR_DIMENSIONS)}",
)


# Latency histogram edges of the tail detectors: 100 ms x 1.25^k, up to about 12 minutes. A threshold is
# taken at the first edge at or above it: at most 25% higher.
TAIL_EDGES_MS = tuple(round(100 * 1.25**k, 1) for k in range(41))
_EDGES = "[" + ", ".join(repr(e) for e in TAIL_EDGES_MS) + "]"
_TAIL_DIMS = ("service", "route", "model", "router")
# Per scope: calls, calls with a TTFT, and for each edge how many calls took longer (latency, and TTFT).
_TAIL_COUNTS = (
    "count() AS calls, countIf(ttft_ms IS NOT NULL) AS ttft_calls, "
    f"sumForEach(arrayMap(e -> toUInt64(duration_ms > e), {_EDGES})) AS latency_over, "
    f"sumForEach(arrayMap(e -> toUInt64(ifNull(ttft_ms, 0) > e), {_EDGES})) AS ttft_over"
)
# Per minute, over the minutes the evaluation scans ...
TAILS = raw_minutes_query(
    "tails:service, route, model, router",
    "calls",
    _TAIL_DIMS,
    _TAIL_COUNTS,
    recent=timedelta(hours=2, minutes=10),
)
# ... and per hour over the day before them: the usual durations the scan is compared with.
TAILS_HOURLY = Query(
    "tails:hourly:service, route, model, router",
    f"SELECT toStartOfHour({ENDED_AT}) AS hour, {', '.join((TENANT, *_TAIL_DIMS))}, {_TAIL_COUNTS} "
    "FROM calls "
    f"WHERE time >= {{start:DateTime('UTC')}} - {LONGEST_CALL} AND time < {{end:DateTime('UTC')}} "
    f"AND {ENDED_AT} >= {{start:DateTime('UTC')}} AND {ENDED_AT} < {{end:DateTime('UTC')}} GROUP BY ALL",
    recent=timedelta(hours=28, minutes=15),
)


def hourly_quantile_query(column: str, dims: Sequence[str], quantile: float) -> Query:
    """The ``quantile`` of ``column`` per hour by ``dims``, with the hour's call count: what the
    baselines of quantile signals are made of (cheap: one merge per hour, not per minute)."""
    position = LATENCY_QUANTILES.split(", ").index(str(quantile)) + 1
    dim_list = ", ".join((TENANT, *dims))
    return Query(
        f"{column}:hourly:q{quantile}:{dim_list}",
        f"SELECT toStartOfHour(minute) AS hour, {dim_list}, sum(calls) AS calls, "
        f"quantilesTDigestMerge({LATENCY_QUANTILES})({column})[{position}] AS value FROM calls_1m "
        "WHERE minute >= {start:DateTime('UTC')} AND minute < {end:DateTime('UTC')} "
        f"GROUP BY hour, {dim_list}",
    )


@dataclass
class History:
    """Query results over [start, end), keyed by query name."""

    start: datetime
    end: datetime
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, query: Query) -> pd.DataFrame:
        return self.frames[query.name]


def tenant_histories(history: History) -> dict[str, History]:
    """Each tenant's part of ``history`` (every query selects the tenant; an empty result may come
    without columns and is everyone's).

    With one tenant — always so without API keys, where the tenant is "" — the history itself.
    """
    tenants = sorted({t for f in history.frames.values() if TENANT in f for t in f[TENANT].unique()})
    if len(tenants) <= 1:
        return {tenants[0] if tenants else "": history}
    frames: dict[str, dict[str, pd.DataFrame]] = {t: {} for t in tenants}
    for name, frame in history.frames.items():
        parts = dict(tuple(frame.groupby(TENANT, sort=False, observed=True))) if TENANT in frame else {}
        for tenant in tenants:
            frames[tenant][name] = parts.get(tenant, frame.iloc[0:0])
    return {t: History(history.start, history.end, f) for t, f in frames.items()}


# Read around the same times of previous days: the hour around the same time of day, plus a window.
SAME_HOUR_MARGIN = timedelta(minutes=90)


def history_ranges(
    times: Sequence[datetime],
    trailing: timedelta,
    days: int = BASELINE_DAYS,
    margin: timedelta = SAME_HOUR_MARGIN,
) -> list[tuple[datetime, datetime]]:
    """The time ranges evaluating ``times`` reads: the trailing history before the first time, and
    ``margin`` around the same times of the ``days`` previous days (for baselines), merged where they
    overlap."""
    last = times[-1] + timedelta(minutes=1)  # the grid holds the last evaluation minute itself
    ranges = [(times[0] - trailing, last)]
    ranges += [
        (times[0] - timedelta(days=k) - margin, last - timedelta(days=k) + margin) for k in range(1, days + 1)
    ]
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def load_history(
    store: Store,
    queries: Sequence[Query],
    start: datetime,
    end: datetime,
    ranges: Sequence[tuple[datetime, datetime]] | None = None,
    first_time: datetime | None = None,
) -> History:
    """Run each distinct query once per range of ``ranges`` (default: [start, end)); a ``recent``
    query once, from ``recent`` before ``first_time`` (the first evaluation time) to ``end``."""
    history = History(start, end)
    for query in queries:
        if query.name in history.frames:
            continue
        query_ranges = list(ranges or [(start, end)])
        if query.recent is not None and first_time is not None:
            query_ranges = [(max(start, first_time - query.recent), end)]
        parts = [
            store.client.query_df(query.sql, parameters={"start": range_start, "end": range_end})
            for range_start, range_end in query_ranges
        ]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        for column in ("minute", "hour"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True)
        history.frames[query.name] = frame
    return history


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal, for the few values queries take from config or data."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
