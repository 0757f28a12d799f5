"""promtool-style detector tests: per-minute input series in, expected alert transitions out.

Series are built in memory as the rollup query would return them, so detectors are tested as the
pure functions they are; no storage is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tokenpulse.detectors.base import Detector
from tokenpulse.detectors.engine import Engine
from tokenpulse.detectors.history import SIZE_CLASS, History, Query, size_classes

T0 = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)  # day 0, midnight


def between(start: int, end: int, inside: float, outside: float) -> Callable[[int], float]:
    """A series' value at minute m: ``inside`` in [start, end), ``outside`` elsewhere."""
    return lambda m: inside if start <= m < end else outside


def minute(offset: float) -> datetime:
    """T0 + ``offset`` minutes."""
    return T0 + timedelta(minutes=offset)


@dataclass
class Series:
    """Rows of one query for one scope: each column is a constant or a function of the minute offset."""

    scope: dict[str, str]
    values: dict[str, float | Callable[[int], float]]
    start: int = 0  # minute offsets [start, end)
    end: int = 0

    time_column: str = "minute"  # "hour" for hourly queries: then the rows are hours, offsets still minutes
    step: int = 1

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for m in range(self.start, self.end, self.step):
            row: dict[str, Any] = {self.time_column: pd.Timestamp(minute(m)), **self.scope}
            for name, value in self.values.items():
                row[name] = value(m) if callable(value) else value
            rows.append(row)
        return rows


@dataclass
class Scenario:
    """Input series per query and the range of minutes to evaluate."""

    series: dict[Query, list[Series]] = field(default_factory=dict)
    rows: dict[Query, list[dict[str, Any]]] = field(default_factory=dict)  # rows given as they are

    def add(self, query: Query, *series: Series) -> Scenario:
        self.series.setdefault(query, []).extend(series)
        return self

    def history(self, start: int, end: int, defaults: dict[str, float]) -> History:
        history = History(minute(start), minute(end))
        queries = {**dict.fromkeys(self.series), **dict.fromkeys(self.rows)}
        for query in queries:
            rows = [row for s in self.series.get(query, []) for row in s.rows()] + self.rows.get(query, [])
            frame = pd.DataFrame(rows)
            for name, value in defaults.items():
                if name not in frame:
                    frame[name] = value
            for column in ("minute", "hour"):
                if column in frame:
                    frame[column] = pd.to_datetime(frame[column], utc=True)
            history.frames[query.name] = frame
        return history


def run(
    detector: Detector,
    scenario: Scenario,
    evaluate_from: int,
    evaluate_to: int,
    *,
    history_from: int = 0,
    defaults: dict[str, float] | None = None,
) -> list[tuple[int, str, str, dict[str, str]]]:
    """Evaluate minute by minute; returns (minute offset, status, severity, scope) per transition."""
    times = [minute(m) for m in range(evaluate_from, evaluate_to)]
    history = scenario.history(history_from, evaluate_to, defaults or {})
    for query in detector.queries():  # a query without series returns no rows
        history.frames.setdefault(query.name, pd.DataFrame({"minute": pd.to_datetime([], utc=True)}))
    engine = Engine([detector])
    return [
        (int((t.at - T0).total_seconds() // 60), t.status, t.severity, dict(t.scope))
        for t in engine.evaluate(history, times)
    ]


def drawn(
    scope: dict[str, str],
    calls: Callable[[int], float] | float,
    share: Callable[[int], float] | float,
    *,
    part: str,
    total: str = "calls",
    seed: int = 0,
    start: int = 0,
    end: int = 2 * 1440,
    extra: dict[str, Callable[[int, int, int], float]] | None = None,
) -> Series:
    """A scope whose calls a minute are Poisson around ``calls`` and whose ``part`` of them is binomial
    with ``share`` (each a constant or a function of the minute), drawn with ``seed``: traffic with the
    noise real traffic has, reproducible. ``extra`` columns are functions of (minute, calls, part)."""
    rng = np.random.default_rng(seed)
    counts: dict[int, tuple[int, int]] = {}
    for m in range(start, end):
        n = int(rng.poisson(calls(m) if callable(calls) else calls))
        p = share(m) if callable(share) else share
        counts[m] = (n, int(rng.binomial(n, p)))
    values: dict[str, float | Callable[[int], float]] = {
        total: lambda m: counts[m][0],
        part: lambda m: counts[m][1],
    }
    for name, column in (extra or {}).items():
        values[name] = lambda m, column=column: column(m, *counts[m])
    return Series(scope, values, start, end)


def drawn_mean(
    scope: dict[str, str],
    calls: Callable[[int], float] | float,
    mean: Callable[[int], float] | float,
    *,
    total: str,
    count: str = "calls",
    spread: float = 1.0,
    seed: int = 0,
    start: int = 0,
    end: int = 2 * 1440,
) -> Series:
    """A scope whose calls a minute are Poisson around ``calls`` and whose per-call ``total`` (input tokens,
    cost) is Gamma with ``mean`` and squared coefficient of variation ``spread`` (1: exponential; real
    prompts vary about that much), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    counts: dict[int, tuple[int, float]] = {}
    for m in range(start, end):
        n = int(rng.poisson(calls(m) if callable(calls) else calls))
        mu = mean(m) if callable(mean) else mean
        counts[m] = (n, float(rng.gamma(n / spread, mu * spread)) if n and mu > 0 else 0.0)
    values: dict[str, float | Callable[[int], float]] = {
        count: lambda m: counts[m][0],
        total: lambda m: counts[m][1],
    }
    return Series(scope, values, start, end)


def drawn_durations(
    scope: dict[str, str],
    calls: Callable[[int], float] | float,
    median_ms: Callable[[int], float] | float,
    *,
    sigma: float = 0.5,
    column: str = "latency",
    seed: int = 0,
    start: int = 0,
    end: int = 2 * 1440,
    size: Callable[[int], float] | float = 1.0,
    per_token_ms: float = 0.0,
    slow: Callable[[int], tuple[float, float]] | None = None,
) -> Durations:
    """A scope whose calls a minute are Poisson around ``calls`` and take log-normal durations around
    ``median_ms`` (spread ``sigma``), plus ``per_token_ms`` for each token of the call's size (log-normal
    around ``size``, spread 0.5, where ``per_token_ms`` is set): the rows of the tail histogram query
    (``history.TAILS``), of the hourly histogram query (``history.TAILS_HOURLY``), of the hourly p99
    query and of the histograms by size class (``history.tails_by_size``), as the store would return
    them. ``slow`` gives a minute's (share, factor): that share of its calls (at random) takes factor
    times longer."""
    from tokenpulse.detectors.history import TAIL_EDGES_MS

    rng = np.random.default_rng(seed)
    edges = np.asarray(TAIL_EDGES_MS)
    minutes: dict[int, tuple[int, list[int], list[float]]] = {}
    hours: dict[int, list[tuple[float, float]]] = {}
    by_size: list[dict[str, Any]] = []
    for m in range(start, end):
        n = int(rng.poisson(calls(m) if callable(calls) else calls))
        median = median_ms(m) if callable(median_ms) else median_ms
        mean_size = size(m) if callable(size) else size
        sizes = mean_size * (np.exp(0.5 * rng.standard_normal(n)) if per_token_ms else np.ones(n))
        durations = (median + per_token_ms * sizes) * np.exp(sigma * rng.standard_normal(n))
        if slow is not None:
            share, factor = slow(m)
            durations = np.where(rng.random(n) < share, durations * factor, durations)
        over = [int(c) for c in (durations[:, None] > edges[None, :]).sum(axis=0)]
        minutes[m] = (n, over, _size_sums(sizes, durations))
        hours.setdefault(m // 60, []).extend(zip(sizes.tolist(), durations.tolist(), strict=True))
        classes = size_classes(sizes)
        for size_class in np.unique(classes):
            mine = durations[classes == size_class]
            by_size.append(_sized_row(scope, m, "minute", int(size_class), mine, column, edges))
    count = "calls" if column == "latency" else "ttft_calls"
    sums = [f"{column}_{part}" for part in ("size", "sum_ms", "size_ms", "size_sq")]
    tails = Series(
        scope,
        {
            count: lambda m: minutes[m][0],
            f"{column}_over": lambda m: minutes[m][1],
            **{name: (lambda m, k=k: minutes[m][2][k]) for k, name in enumerate(sums)},
        },
        start,
        end,
    )
    hour_past = {
        h: [int(c) for c in (np.asarray([d for _, d in calls_])[:, None] > edges[None, :]).sum(axis=0)]
        for h, calls_ in hours.items()
    }
    hour_sums = {h: _size_sums(*map(np.asarray, zip(*calls_, strict=True))) for h, calls_ in hours.items()}
    histogram = Series(
        scope,
        {
            count: lambda m: len(hours[m // 60]),
            f"{column}_over": lambda m: hour_past[m // 60],
            **{name: (lambda m, k=k: hour_sums[m // 60][k]) for k, name in enumerate(sums)},
        },
        start - start % 60,
        end,
        time_column="hour",
        step=60,
    )
    p99 = {h: float(np.quantile([d for _, d in c], 0.99)) if c else float("nan") for h, c in hours.items()}
    hourly = Series(
        scope,
        {"calls": lambda m: len(hours[m // 60]), "value": lambda m: p99[m // 60]},
        start - start % 60,
        end,
        time_column="hour",
        step=60,
    )
    by_size_hourly = []
    for h, calls_ in hours.items():
        if not calls_:
            continue
        sizes, durations = (
            (np.asarray(x) for x in zip(*calls_, strict=True)) if calls_ else (np.zeros(0),) * 2
        )
        classes = size_classes(sizes)
        for size_class in np.unique(classes):
            mine = durations[classes == size_class]
            by_size_hourly.append(_sized_row(scope, h * 60, "hour", int(size_class), mine, column, edges))
    return Durations(column, tails, histogram, hourly, by_size, by_size_hourly)


@dataclass
class Durations:
    """What ``drawn_durations`` draws: the rows of every query a tail detector reads."""

    column: str
    tails: Series
    histogram: Series
    hourly: Series
    by_size: list[dict[str, Any]]
    by_size_hourly: list[dict[str, Any]]

    def add_to(self, scenario: Scenario, detector: Any) -> Scenario:
        """``scenario`` with these rows for ``detector``'s queries."""
        from tokenpulse.detectors.history import TAILS, TAILS_HOURLY

        minutes, hours = detector.by_size
        scenario.add(TAILS, self.tails).add(TAILS_HOURLY, self.histogram).add(detector.hourly, self.hourly)
        scenario.rows.setdefault(minutes, []).extend(self.by_size)
        scenario.rows.setdefault(hours, []).extend(self.by_size_hourly)
        return scenario


def _sized_row(
    scope: dict[str, str],
    offset: int,
    time: str,
    size_class: int,
    durations: np.ndarray,
    column: str,
    edges: np.ndarray,
) -> dict[str, Any]:
    """One row of a by-size histogram query (``history.tails_by_size``)."""
    at = minute(offset) if time == "minute" else minute(offset - offset % 60)
    over = [int(c) for c in (durations[:, None] > edges[None, :]).sum(axis=0)]
    return {
        time: pd.Timestamp(at),
        **scope,
        SIZE_CLASS: size_class,
        "calls": len(durations),
        f"{column}_over": over,
    }


def _size_sums(sizes: np.ndarray, durations: np.ndarray) -> list[float]:
    """The sums ``history.TAILS`` returns for the line of durations on sizes: size, duration, their
    product, the size squared."""
    return [float(x.sum()) for x in (sizes, durations, sizes * durations, sizes**2)]
