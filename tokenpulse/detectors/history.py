"""What detectors read: named queries over a time range and the history they return, the only I/O of
the detectors package.

The engine runs each named query once per cycle (or once per backtest) however many detectors use
it; detectors then work on the frames in memory (``stats``, ``evidence``, ``data``), vectorized over
every scope and evaluation time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tokenpulse.detectors.stats import merge_overlapping
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
        per="minute",
    )


ROLLUP_SUMS = (
    "calls", "errors", "timeouts", "escalated_calls", "uncached_calls", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
)  # fmt: skip


@dataclass(frozen=True)
class Gate:
    """A cheap check before a costly query whose rows matter only where something happened lately (a
    user who spent enough over the scan to page): ``sql`` returns a row where the query's rows could
    matter and none where they cannot. Where it returns none, the query is not run: its frame is empty,
    as an empty result is (no columns).

    ``sql`` binds {scan_start:DateTime('UTC')} (``scan`` before the first evaluation time; without a
    ``scan``, the start of the query's ranges), {end:DateTime('UTC')} (the end of the history) and
    {start:DateTime('UTC')}: the start of the first range read that ends in the scan, so that it can see
    every row the query reads that ends in it.
    """

    sql: str
    scan: timedelta | None = None


@dataclass(frozen=True)
class Query:
    """A named read over [start, end): ``sql`` binds {start:DateTime('UTC')} and {end:DateTime('UTC')}.

    ``recent`` marks a query only the evaluation times need (no baseline history): it reads from
    ``recent`` before the first evaluation time, not the days of history baselines need.

    ``per`` ("minute" or "hour": the result's time column) declares that each row depends only on the
    data of its own minute or hour, whatever the range read: the live cycle then keeps the rows of
    settled units from one cycle to the next and reads only the rest (``HistoryCache``). None: a row
    depends on the whole range (a HAVING over it, a window from its first minute), read whole.

    ``gate``: a cheap check that says when the query cannot matter, and need not run (``Gate``).
    """

    name: str
    sql: str
    recent: timedelta | None = None
    per: str | None = None
    gate: Gate | None = None

    def __post_init__(self) -> None:
        if self.per not in (None, *UNITS):
            raise ValueError(f"query {self.name}: per must be one of {', '.join(UNITS)} or None")


# The time column of a ``Query.per`` query, and the unit its rows sum over.
UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}


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
    per="minute",
)


# Latency histogram edges of the tail detectors: 100 ms x 1.25^k, up to about 12 minutes. A threshold is
# taken at the first edge at or above it: at most 25% higher.
TAIL_EDGES_MS = tuple(round(100 * 1.25**k, 1) for k in range(41))
_EDGES = "[" + ", ".join(repr(e) for e in TAIL_EDGES_MS) + "]"
_TAIL_DIMS = ("service", "route", "model", "router")
# What drives each duration, per call: the output decoded (latency), the prompt prefilled (TTFT); with the
# calls that have the duration. A minute of longer calls is compared with what its sizes usually take.
TAIL_SIZES = {
    "latency": ("duration_ms", "output_tokens", "1"),
    "ttft": ("ifNull(ttft_ms, 0)", "input_tokens", "ttft_ms IS NOT NULL"),
}
# Per scope: calls, calls with a TTFT, for each edge how many calls took longer (latency, and TTFT), and
# the sums a least-squares line of each duration on its size is fitted on (size, duration, their
# product, the size squared).
_TAIL_COUNTS = (
    "count() AS calls, countIf(ttft_ms IS NOT NULL) AS ttft_calls, "
    f"sumForEach(arrayMap(e -> toUInt64(duration_ms > e), {_EDGES})) AS latency_over, "
    f"sumForEach(arrayMap(e -> toUInt64(ifNull(ttft_ms, 0) > e), {_EDGES})) AS ttft_over, "
    + ", ".join(
        f"sumIf(toFloat64({size}), {having}) AS {name}_size, sumIf({ms}, {having}) AS {name}_sum_ms, "
        f"sumIf(toFloat64({size}) * {ms}, {having}) AS {name}_size_ms, "
        f"sumIf(toFloat64({size}) * {size}, {having}) AS {name}_size_sq"
        for name, (ms, size, having) in TAIL_SIZES.items()
    )
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
    per="hour",
)

# A duration's histogram per size class of its calls, per minute and per hour over the day before: a
# call is compared with the usual durations of calls of about its size (within 2x: the class is the log2
# of the size), not with every call's — a route whose long answers take 30 s and short ones 1 s hides a
# short answer that took 10 s among the long ones.
SIZE_CLASS = "size_class"
SIZE_CLASSES = 25  # 1 to 2^24 tokens and more


def size_classes(sizes: np.ndarray) -> np.ndarray:
    """The size class of each size, as ``tails_by_size``'s SQL computes it (for in-memory traffic)."""
    return np.minimum(np.floor(np.log2(np.maximum(sizes, 1))), SIZE_CLASSES - 1).astype(np.int64)


def tails_by_size(duration: str) -> tuple[Query, Query]:
    """The per-minute and per-hour (the day before the scan) histograms of ``duration`` ("latency" or
    "ttft") by the tail dimensions and the size class of its calls."""
    ms, size, having = TAIL_SIZES[duration]
    log_size = f"toUInt8(floor(log2(greatest(toFloat64({size}), 1))))"
    size_class = f"least({log_size}, {SIZE_CLASSES - 1}) AS {SIZE_CLASS}"
    counts = f"count() AS calls, sumForEach(arrayMap(e -> toUInt64({ms} > e), {_EDGES})) AS {duration}_over"
    where = "" if having == "1" else having
    dims = ", ".join((TENANT, *_TAIL_DIMS, size_class))
    minutes = raw_minutes_query(
        f"tails:sized:{duration}:service, route, model, router",
        "calls",
        (*_TAIL_DIMS, size_class),
        counts,
        where=where,
        recent=TAILS.recent,
    )
    hours = Query(
        f"tails:sized:hourly:{duration}:service, route, model, router",
        f"SELECT toStartOfHour({ENDED_AT}) AS hour, {dims}, {counts} FROM calls "
        f"WHERE time >= {{start:DateTime('UTC')}} - {LONGEST_CALL} AND time < {{end:DateTime('UTC')}} "
        f"AND {ENDED_AT} >= {{start:DateTime('UTC')}} AND {ENDED_AT} < {{end:DateTime('UTC')}} "
        + (f"AND {where} " if where else "")
        + "GROUP BY ALL",
        recent=TAILS_HOURLY.recent,
        per="hour",
    )
    return minutes, hours


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
        per="hour",
    )


@dataclass
class History:
    """Query results over [start, end), keyed by query name."""

    start: datetime
    end: datetime
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    # The ranges read (sorted, disjoint; None: the whole of [start, end)): the minutes grids hold
    # (``windows.Timeline``). No query's rows lie outside them.
    ranges: list[tuple[datetime, datetime]] | None = None
    # What detectors derive from the frames during one evaluation and share (``data.GridMemo``: one grid
    # per frame, scope and column however many detectors use it); gone with the history.
    derived: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    # Where the live cycle's cache served each ``per="minute"`` frame's minutes from
    # (``HistoryCache.sources``), and what the grid layer keeps from one cycle to the next
    # (``HistoryCache.grids``): a grid's rows of minutes served from the same held rows as at the last
    # cycle are the rows it had then. Empty and None without the cache.
    sources: dict[str, Sources] = field(default_factory=dict, repr=False, compare=False)
    kept: dict[object, object] | None = field(default=None, repr=False, compare=False)

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
    return {t: History(history.start, history.end, f, history.ranges) for t, f in frames.items()}


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
    return merge_overlapping(ranges)


def load_history(
    store: Store,
    queries: Sequence[Query],
    start: datetime,
    end: datetime,
    ranges: Sequence[tuple[datetime, datetime]] | None = None,
    first_time: datetime | None = None,
    cache: HistoryCache | None = None,
) -> History:
    """Run each distinct query once over every range of ``ranges`` (default: [start, end)); a ``recent``
    query once, from ``recent`` before ``first_time`` (the first evaluation time) to ``end``. With a
    ``cache``, what it holds of earlier cycles is not read again."""
    history = History(start, end, ranges=list(ranges) if ranges else None)
    if cache is not None:
        history.kept = cache.grids
    for query in queries:
        if query.name in history.frames:
            continue
        query_ranges = list(ranges or [(start, end)])
        if query.recent is not None and first_time is not None:
            query_ranges = [(max(start, first_time - query.recent), end)]
        if query.per == "hour":
            query_ranges = whole_hours(query_ranges)
        if (
            query.gate is not None
            and first_time is not None
            and not gate_open(store, query.gate, query_ranges, first_time)
        ):
            history.frames[query.name] = pd.DataFrame()  # what an empty result is
            continue
        if query.per == "hour":
            # The evaluated hour only where no complete hour holds a row (the first hour of a new
            # scope's data, traffic back after a day away): the frame holds rows whenever the minutes do.
            complete = complete_hours(query_ranges)
            frame = _read(store, query, complete, end, cache) if complete else pd.DataFrame()
            if not len(frame):
                frame = _read(store, query, query_ranges, end, cache)
            history.frames[query.name] = frame
        else:
            history.frames[query.name] = _read(store, query, query_ranges, end, cache)
            if cache is not None and query.name in cache.sources:
                history.sources[query.name] = cache.sources[query.name]
    return history


def _read(
    store: Store,
    query: Query,
    ranges: list[tuple[datetime, datetime]],
    end: datetime,
    cache: HistoryCache | None,
) -> pd.DataFrame:
    """``query``'s rows over ``ranges``: from the cache where the live cycle has one."""
    return cache.read(store, query, ranges, end) if cache is not None else read_ranges(store, query, ranges)


def gate_open(
    store: Store, gate: Gate, ranges: Sequence[tuple[datetime, datetime]], first_time: datetime
) -> bool:
    """Whether ``gate`` finds a row over the scan before ``first_time`` (``ranges``: the query's)."""
    scan_start = ranges[0][0] if gate.scan is None else first_time - gate.scan
    start = min((a for a, b in ranges if b > scan_start), default=scan_start)
    parameters = {"start": start, "scan_start": scan_start, "end": ranges[-1][1]}
    return bool(store.rows(f"SELECT 1 FROM ({gate.sql}) LIMIT 1", parameters))


def whole_hours(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """``ranges`` (sorted) widened to whole hours, but the last one's end (the evaluated minute: nothing
    after it may be read): an hourly row is then always a whole hour, never the tail of one that a
    range's start cut. (Detectors use no hour that a range cuts: the same hours of previous days and the
    trailing day's hours are well inside the ranges.) Whole hours are also what the live cycle keeps from
    one cycle to the next (``HistoryCache``); a cut hour would be read again every minute."""
    hour = UNITS["hour"]
    widened = [(_floor(a, hour), _ceil(b, hour)) for a, b in ranges[:-1]]
    widened.append((_floor(ranges[-1][0], hour), ranges[-1][1]))
    return _union([], widened)


def complete_hours(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """``whole_hours`` ranges without the evaluated hour, which the last one's end cuts. No hourly
    baseline uses that hour (a baseline ends before the evaluated hour); read, it was read again every
    live cycle (five hourly queries re-aggregating up to an hour of raw calls a minute)."""
    hour = UNITS["hour"]
    cut = [*ranges[:-1], (ranges[-1][0], _floor(ranges[-1][1], hour))] if ranges else []
    return [(a, b) for a, b in cut if a < b]


def read_ranges(store: Store, query: Query, ranges: Sequence[tuple[datetime, datetime]]) -> pd.DataFrame:
    """The rows of ``query`` over each of ``ranges``, in one statement (UNION ALL: one round trip, and
    ClickHouse reads the ranges in parallel)."""
    parameters: dict[str, datetime] = {}
    parts = []
    for i, (range_start, range_end) in enumerate(ranges):
        sql = query.sql.replace("{start:", f"{{start_{i}:").replace("{end:", f"{{end_{i}:")
        parts.append(f"SELECT * FROM ({sql})")
        parameters |= {f"start_{i}": range_start, f"end_{i}": range_end}
    frame = store.client.query_df(" UNION ALL ".join(parts), parameters=parameters)
    for column in ("minute", "hour"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# The live cycle reads the last minutes again every cycle: a span arrives when its call ended, after the
# exporter's batching and the collector's buffer (seconds). A row that arrives later than this after its
# call ended (storage was down, a backfill is sent to a running daemon) makes the next cycle read
# everything again (``HistoryCache.start_cycle``).
SETTLE = timedelta(minutes=10)
# Everything is read again this often, whatever the cache holds: what arrived later than ``SETTLE``
# (a long storage outage drained, a file ingested with old timestamps, duplicates merged away) is seen
# within this long.
REFRESH = timedelta(minutes=15)


Spans = list[tuple[datetime, datetime]]
# Where the rows of a ``per`` frame's units came from: sorted, disjoint [start, end) spans (nanoseconds
# since the epoch, UTC), each with the serial of the held chunk whose rows it served (``FRESH``: read
# this cycle, and read again at the next). A unit in no span has no row.
Sources = list[tuple[int, int, int]]
FRESH = -1


@dataclass
class _Held:
    """Rows of one ``per`` query read at one cycle: ``frame`` holds every row of the settled whole units
    of ``covered`` (sorted, disjoint; disjoint from every other chunk's of the query). Rows of units
    that left ``covered`` may stay in ``frame`` until the chunk goes: they are never served.

    The rows are sorted by their unit (stably: a unit's rows in the order read), so the rows of a span
    are a slice of the frame (``spans``): a cycle serves a week of rollup without a mask over every row
    held and a copy of what it picks."""

    frame: pd.DataFrame
    covered: list[tuple[datetime, datetime]]
    units: np.ndarray  # each row's unit (nanoseconds), ascending
    serial: int  # which read of the cache made it (``Sources``): a unit's rows in it never change

    @classmethod
    def of(cls, frame: pd.DataFrame, column: str, covered: Spans, serial: int) -> _Held:
        """The rows of ``frame`` (units in ``column``) held for ``covered``, sorted by unit (stably:
        a unit's rows keep the order they were served in)."""
        if column not in frame:  # an empty result without columns
            return cls(frame, covered, np.zeros(0, dtype=np.int64), serial)
        units = frame[column].to_numpy(dtype="datetime64[ns]").view(np.int64)
        order = np.argsort(units, kind="stable")
        return cls(frame.take(order), covered, units[order], serial)

    def spans(self, spans: Spans) -> list[pd.DataFrame]:
        """The rows of the units in ``spans`` (sorted, disjoint): slices of the frame (an empty one
        where it holds none, with the frame's columns)."""
        if not len(self.frame.columns):
            return [self.frame]
        bounds = np.searchsorted(self.units, [pd.Timestamp(t).value for span in spans for t in span])
        return [self.frame.iloc[a:b] for a, b in bounds.reshape(-1, 2) if a < b] or [self.frame.iloc[0:0]]


class HistoryCache:
    """What the live cycle read in earlier cycles, per query: each cycle reads only the units (minutes,
    hours) it does not hold, and those still settling, and serves the same rows a full read would.

    A live cycle moves its ranges (the trailing day, the same hours of previous days) by one minute:
    without the cache it reads ~60 hours of rollup, tails and tool attribution every minute to use one
    new minute of each range. Rows of ``per`` queries depend only on their own unit's data, so the rows
    of a unit read once are the rows a full read gives for as long as its data does not change: units
    older than ``SETTLE`` are kept, and everything is read again every ``REFRESH``. Units a range
    only partly covers (an hour cut by the range's start) are read every cycle, as a full read cuts
    them. Queries without ``per`` are read whole every cycle.
    """

    def __init__(self, settle: timedelta = SETTLE, refresh: timedelta = REFRESH) -> None:
        self.settle, self.refresh = settle, refresh
        # Per query, the chunks read at earlier cycles: each cycle adds one and serves the rows of all of
        # them it needs, without copying what it holds into a new frame every minute.
        self.held: dict[str, list[_Held]] = {}
        self.refreshed: datetime | None = None
        self.store: Store | None = None
        self.horizon: datetime | None = None  # the last cycle's: rows that ended before it are held
        self.counts: dict[str, int] = {}  # rows per raw table that ended before it (since ``LATE_SINCE``)
        # Per query, where the last cycle's frame's units came from (``Sources``): the grid layer keeps
        # the grid rows of units served from the same chunk as at the cycle before (``data.GridMemo``).
        self.sources: dict[str, Sources] = {}
        self.grids: dict[object, object] = {}  # what the grid layer keeps between cycles (its own)
        self._serials = itertools.count()

    def start_cycle(self, store: Store, end: datetime) -> None:
        """Forget everything on another store, at a time before the last refresh, ``refresh`` after it,
        or when rows arrived that ended before the last cycle's horizon (a backfill sent to a running
        daemon, a storage outage drained): they may belong to held units."""
        horizon = _floor(end - self.settle, UNITS["minute"])
        if (
            store is not self.store
            or self.refreshed is None
            or self.horizon is None
            or not (self.refreshed <= end < self.refreshed + self.refresh)
        ):
            self.held.clear()
            self.grids.clear()  # laid out afresh: freed first
            self.store, self.refreshed = store, end
            self.counts = _row_counts(store, end - LATE_SINCE, horizon, horizon)[1]
        else:
            before, upto = _row_counts(store, self.refreshed - LATE_SINCE, self.horizon, horizon)
            if before != self.counts:
                self.held.clear()
                self.grids.clear()
                self.refreshed = end
                before, upto = _row_counts(store, end - LATE_SINCE, horizon, horizon)
            self.counts = upto
        self.horizon = horizon

    def read(
        self, store: Store, query: Query, ranges: Sequence[tuple[datetime, datetime]], end: datetime
    ) -> pd.DataFrame:
        """``query``'s rows over ``ranges`` (sorted, disjoint), as ``read_ranges`` gives them, reading
        only what is not held."""
        if query.per is None:
            return read_ranges(store, query, ranges)
        unit = UNITS[query.per]
        horizon = _floor(end - self.settle, unit)
        cut: Spans = []  # read every cycle: units a range cuts, and what is still settling
        inner: Spans = []  # the settled whole units of the ranges: held once read
        ahead: Spans = []  # settled whole units just past a range that ends before the horizon
        for i, (a, b) in enumerate(ranges):
            lo, hi = _ceil(a, unit), min(_floor(b, unit), horizon)
            if lo >= hi:
                cut.append((a, b))
                continue
            inner.append((lo, hi))
            cut += [p for p in ((a, lo), (hi, b)) if p[0] < p[1]]
            if hi == b:
                following = ranges[i + 1][0] if i + 1 < len(ranges) else horizon
                ahead.append((b, _floor(min(b + READ_AHEAD, following, horizon), unit)))
        ahead = [p for p in ahead if p[0] < p[1]]
        chunks = [
            replace(chunk, covered=_intersect(chunk.covered, inner + ahead))
            for chunk in self.held.get(query.name, [])
        ]
        chunks = [chunk for chunk in chunks if chunk.covered]
        covered = _union([], [span for chunk in chunks for span in chunk.covered])
        missing = _subtract(inner, covered)
        # A range of a previous day moves one minute a cycle: when its end is missing, the next
        # minutes are read with it, so the next cycles find them held.
        reading_ahead = _subtract([p for p in ahead if any(m[1] == p[0] for m in missing)], covered)
        missing = _union(missing, reading_ahead)
        # One span per run of adjacent pieces (the settling minutes and the minute that settled since the
        # last cycle are one span, not two): each span of a statement scans the raw tables from an hour
        # before its start, so two touching spans scan that hour twice. A row of a ``per`` query is its
        # own unit's, whatever span it is read in.
        to_read = _union([], cut + missing)
        frame = _compact(read_ranges(store, query, to_read), chunks) if to_read else None
        # Served: the rows of the units each held chunk covers within the ranges, and what was read now
        # but the units read ahead of a range (cut and still settling units are read every cycle).
        served = [part for chunk in chunks for part in chunk.spans(_intersect(chunk.covered, inner))]
        # Where each served unit's rows come from: a held chunk (the same rows at every cycle that serves
        # them from it), the chunk made now of the missing units (below), or this cycle's read.
        sources = [(a, b, chunk.serial) for chunk in chunks for a, b in _intersect(chunk.covered, inner)]
        sources += [(a, b, FRESH) for a, b in _union([], cut)]
        if frame is not None:
            served.append(_rows(frame, query.per, reading_ahead, inside=False))
            if missing:
                serial = next(self._serials)
                chunks.append(_Held.of(_rows(frame, query.per, missing), query.per, missing, serial))
                # Served from it: the missing units but those read ahead of a range (not served now).
                sources += [(a, b, serial) for a, b in _subtract(missing, reading_ahead)]
        self.held[query.name] = chunks
        self.sources[query.name] = sorted((_ns(a), _ns(b), source) for a, b, source in sources)
        served = [part for part in served if len(part)] or served[-1:]
        if len(served) > 1:
            return pd.concat(served, ignore_index=True)
        # Always a new frame: detectors never get the held one.
        return served[0].copy() if served else pd.DataFrame()


def _compact(frame: pd.DataFrame, chunks: list[_Held]) -> pd.DataFrame:
    """``frame`` as the cache holds it: its text columns as categories on the sorted values of the held
    ``chunks``' and its own (where it brings values they lack, the chunks are recoded: rare, a new
    service, route or model), and its columns of lists of as many integers as fixed-size lists.

    The cache then holds a text value once, not once a row (a week of rollup at 10 tenants: 835k rows),
    and a histogram as one array, not as a list of Python integers per row; picking and joining the rows
    a cycle serves moves small integers; a grid's scope codes are the column's (``data._factorize``)
    instead of a factorization of every row each cycle; and a histogram column is read as one array
    (``fixed_lists``) instead of a list of lists each cycle. The categories are sorted, so the column
    orders, sorts and groups as its text does."""
    frame = frame.copy(deep=False)
    framed = [c.frame for c in chunks if len(c.frame.columns)]  # an empty result has no columns
    for column, dtype in frame.dtypes.items():
        if dtype is np.dtype(object) and len(frame):
            lists = _fixed_size_lists(frame[column])
            if lists is not None:
                frame[column] = lists
        if not isinstance(dtype, pd.StringDtype):
            continue
        known = framed[0][column].cat.categories if framed else pd.Index([], dtype=object)
        codes, uniques = pd.factorize(frame[column])
        values = pd.Index(np.asarray(uniques, dtype=object), dtype=object)
        if not values.isin(known).all():
            known = pd.Index(np.sort(np.asarray(known.union(values), dtype=object)), dtype=object)
            for chunk in chunks:
                if len(chunk.frame.columns):
                    chunk.frame = chunk.frame.copy(deep=False)
                    chunk.frame[column] = chunk.frame[column].cat.set_categories(known)
        dtype = pd.CategoricalDtype(known)
        position = known.get_indexer(values)
        frame[column] = pd.Categorical.from_codes(np.where(codes >= 0, position[codes], -1), dtype=dtype)
    return frame


def _fixed_size_lists(column: pd.Series) -> pd.Series | None:
    """``column`` as fixed-size lists of integers where every row holds a list of as many integers (the
    tails' histograms), else None."""
    if not isinstance(column.iloc[0], list | tuple | np.ndarray):  # text, numbers: no Arrow conversion
        return None
    # Lists of as many integers stack into one integer array (a few times faster than Arrow's conversion
    # of the lists); anything else (lists of other lengths, a null, another type) stacks into objects,
    # or fails, and is converted as before.
    try:
        stacked = np.array(column.to_numpy().tolist())
    except ValueError:
        stacked = None
    if stacked is not None and stacked.ndim == 2 and stacked.dtype.kind in "iu":
        values = pa.array(stacked.reshape(-1))
        fixed = pa.FixedSizeListArray.from_arrays(values, stacked.shape[1])
        return pd.Series(pd.arrays.ArrowExtensionArray(fixed), index=column.index)
    try:
        array = pa.array(column.to_numpy().tolist())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not lists, or lists of mixed values
        return None
    if not pa.types.is_list(array.type) or not pa.types.is_integer(array.type.value_type):
        return None
    sizes = np.asarray(pc.list_value_length(array).fill_null(-1))
    if array.flatten().null_count or (sizes != sizes[0]).any() or sizes[0] < 0:
        return None
    fixed = array.cast(pa.list_(array.type.value_type, int(sizes[0])))
    return pd.Series(pd.arrays.ArrowExtensionArray(fixed), index=column.index)


def fixed_lists(column: pd.Series) -> np.ndarray | None:
    """A column of fixed-size lists (``HistoryCache``'s histograms) as a rows x size array; None for any
    other column."""
    if not isinstance(column.dtype, pd.ArrowDtype) or not pa.types.is_fixed_size_list(
        column.dtype.pyarrow_dtype
    ):
        return None
    lists = column.array.__arrow_array__()
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    return np.asarray(lists.flatten()).reshape(len(lists), column.dtype.pyarrow_dtype.list_size)


# Late rows are looked for this far back: further than any range a cycle reads (the same hours of
# ``BASELINE_DAYS`` previous days, and calls that started up to an hour before them).
LATE_SINCE = timedelta(days=BASELINE_DAYS + 1)
# The raw tables every query reads from (the rollup is fed by inserts into calls), and when their rows
# count: when the call or tool execution ended, as every query counts them (an evaluation has no span).
RAW_TABLES = {"calls": ENDED_AT, "tool_spans": ENDED_AT, "evaluations": "time"}


def _row_counts(
    store: Store, since: datetime, before: datetime, upto: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """Per raw table, how many rows that started since ``since`` ended before ``before`` and before
    ``upto``; but the rows that started on the whole days between ``since``'s day and the day before
    ``upto``'s all count, whatever their end, from the parts' metadata (the raw tables are partitioned
    by day; none of those rows ended after ``before`` unless it lasted more than a day). Compared from
    one cycle to the next, a count changes when a row arrives that ended before the last cycle's
    horizon (or a call of more than a day arrives: the cache is read again, needlessly); only the first
    and the last two days of the window are scanned, not every row of it."""
    first_whole = since.astimezone(UTC).date() + timedelta(days=1)
    last_whole = upto.astimezone(UTC).date() - timedelta(days=1)  # the last two days are scanned
    whole = first_whole < last_whole
    parameters = {"since": since, "before": before, "upto": upto, "first": first_whole, "last": last_whole}
    parameters |= {f"{k}_time": datetime.combine(parameters[k], time(), UTC) for k in ("first", "last")}
    parts = []
    for table, ended in RAW_TABLES.items():
        parts.append(
            f"SELECT '{table}' AS t, countIf({ended} < {{before:DateTime64(3, 'UTC')}}) AS b, "
            f"countIf({ended} < {{upto:DateTime64(3, 'UTC')}}) AS u FROM {table} "
            f"WHERE time >= {{since:DateTime64(3, 'UTC')}} AND time < {{upto:DateTime64(3, 'UTC')}}"
            + (
                " AND (time < {first_time:DateTime64(3, 'UTC')} OR time >= {last_time:DateTime64(3, 'UTC')})"
                if whole
                else ""
            )
        )
        if whole:  # the partition key's own expression (time is UTC): counted from the parts' metadata
            parts.append(
                f"SELECT '{table}' AS t, count() AS b, count() AS u FROM {table} "
                "WHERE toDate(time) >= {first:Date} AND toDate(time) < {last:Date}"
            )
    rows = store.client.query_df(
        f"SELECT t, sum(b) AS b, sum(u) AS u FROM ({' UNION ALL '.join(parts)}) GROUP BY t",
        parameters=parameters,
    )
    return (
        {t: int(b) for t, b in zip(rows["t"], rows["b"], strict=True)},
        {t: int(u) for t, u in zip(rows["t"], rows["u"], strict=True)},
    )


# How far past the end of a previous day's range the live cycle reads at once.
READ_AHEAD = timedelta(minutes=15)


def _rows(frame: pd.DataFrame, column: str, spans: Spans, inside: bool = True) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` is (or, not ``inside``, is not) in one of ``spans``."""
    if column not in frame:  # an empty result without columns
        return frame
    within = _within(frame[column], spans)
    return frame[within if inside else ~within]


def _ns(moment: datetime) -> int:
    return pd.Timestamp(moment).value


def _floor(moment: datetime, unit: timedelta) -> datetime:
    return pd.Timestamp(moment).floor(unit).to_pydatetime()


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    return pd.Timestamp(moment).ceil(unit).to_pydatetime()


def _union(a: Spans, b: Spans) -> Spans:
    return merge_overlapping(a + b)


def _intersect(a: Spans, b: Spans) -> Spans:
    return _union([], [(max(x, y), min(u, v)) for x, u in a for y, v in b if max(x, y) < min(u, v)])


def _subtract(a: Spans, b: Spans) -> Spans:
    result = []
    for lo, hi in a:
        for x, u in _union([], b):
            if u <= lo or x >= hi:
                continue
            if x > lo:
                result.append((lo, x))
            lo = max(lo, u)
        if lo < hi:
            result.append((lo, hi))
    return result


def _within(times: pd.Series, spans: Spans) -> np.ndarray:
    """Which of ``times`` fall in one of ``spans`` ([start, end) each)."""
    values = times.to_numpy(dtype="datetime64[ns]")
    inside = np.zeros(len(values), dtype=bool)
    for lo, hi in spans:
        inside |= (values >= np.datetime64(pd.Timestamp(lo).tz_convert(None))) & (
            values < np.datetime64(pd.Timestamp(hi).tz_convert(None))
        )
    return inside


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal, for the few values queries take from config or data."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
