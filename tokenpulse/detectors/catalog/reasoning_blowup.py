"""reasoning_blowup: a reasoning model thinks far longer than it should, per service, route and model.

Two conditions, one alert per scope:

- critical, at once (``for_`` 0): a call that used ``extreme_tokens`` or more reasoning tokens (100k by
  default: minutes of latency and about a dollar per call on the frontier models). Absolute, so it
  needs neither history nor traffic: one such call is already the incident (a reasoning loop, an
  effort setting left at "high" with no budget). It holds while such a call ended within the last
  ``extreme_window`` and resolves ``keep_firing_for`` later.
- warning: reasoning tokens per call over the window at ``warning_ratio`` times the scope's baseline
  or more, and at least ``floor_tokens`` per call, so a model that goes from 200 to 1,000 thinking
  tokens per call (cents) does not page. Reasoning routes are often low-volume: the window is 10
  minutes and ``min_calls`` 10, so a route of 1-2 calls a minute is watched. Like cache_not_applied,
  the per-minute ratio must also have been past the threshold in ``sustained`` worth of the window's
  minutes: the warning has no ``for_`` (that is the critical's), this is its hold, and a 2-3 minute
  blip of any size never passes it.

The critical reads the raw ``calls`` table (the rollup only has sums): per minute the largest
reasoning count and the count of calls at or above a few fixed bucket edges, so the query is a
constant shared by name and any ``extreme_tokens`` works (the condition uses the maximum; the count
in the summary is of the largest edge at or below the threshold). Only calls at or above the smallest
edge are read, so the result has a row only for minutes that had such a call. Like the rollup, calls
count in the minute they *ended* (``ENDED_MINUTE``): a call that thinks 100k tokens runs for many
minutes (at 50-150 tokens/s) and is exported when it ends, so by its start minute it would be outside
the window before it is even stored.

``calls`` is read without FINAL: a duplicate (the same span exported twice) does not change a maximum
and only double-counts the summary's count, as the rollup counts it; FINAL would merge the range at
every read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import ClassVar

import pandas as pd

from tokenpulse.detectors.base import Observation, Scope, format_scope
from tokenpulse.detectors.data import (
    CatalogDetector,
    HeldSettings,
    at_times,
    baseline,
    grids,
    kth_largest,
    minutes,
    to_observations,
    trailing_sum,
)
from tokenpulse.detectors.history import ROLLUP, History, Query, raw_minutes_query

DIMENSIONS = ("service", "route", "model")

EXTREME_BUCKETS = (25_000, 50_000, 100_000, 200_000, 500_000)  # reasoning tokens of one call
EXTREMES = raw_minutes_query(
    "reasoning_extremes:service, route, model",
    "calls",
    DIMENSIONS,
    "max(reasoning_tokens) AS max_reasoning_tokens, "
    + ", ".join(f"countIf(reasoning_tokens >= {edge}) AS calls_ge_{edge}" for edge in EXTREME_BUCKETS),
    where=f"reasoning_tokens >= {EXTREME_BUCKETS[0]}",
    recent=timedelta(hours=1),  # the absolute rule has no baseline: only the windows being evaluated
)


@dataclass(frozen=True)
class Settings(HeldSettings):
    window: timedelta = timedelta(minutes=10)  # reasoning routes are low-volume: a longer window,
    min_calls: int = 10  # ... and fewer calls, so a route of 1-2 calls a minute is watched
    for_: timedelta = timedelta(0)  # the critical pages at once; the warning holds by ``sustained``
    extreme_tokens: int = 100_000  # one call at or above: critical
    extreme_window: timedelta = timedelta(minutes=5)  # such a call counts this long after it ended
    warning_ratio: float = 5.0  # reasoning tokens per call against the baseline
    floor_tokens: float = 5_000.0  # ... and at least this many per call

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.extreme_tokens < EXTREME_BUCKETS[0]:
            raise ValueError(
                f"extreme_tokens must be at least {EXTREME_BUCKETS[0]} (the query reads no less)"
            )


class ReasoningBlowup(CatalogDetector):
    name: ClassVar[str] = "reasoning_blowup"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def queries(self) -> list[Query]:
        return [ROLLUP, EXTREMES]

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        extreme_window = minutes(s.extreme_window)
        count_edge = max(e for e in EXTREME_BUCKETS if e <= s.extreme_tokens)  # counted: calls >= count_edge
        count_column = f"calls_ge_{count_edge}"
        rollup = grids(history[ROLLUP], DIMENSIONS, ("calls", "reasoning_tokens"), history.start, history.end)
        extremes = grids(
            history[EXTREMES], DIMENSIONS, ("max_reasoning_tokens", count_column), history.start, history.end
        )
        scopes = rollup["calls"].columns.union(extremes["max_reasoning_tokens"].columns, sort=False)
        rollup = {k: v.reindex(columns=scopes, fill_value=0.0) for k, v in rollup.items()}
        extremes = {k: v.reindex(columns=scopes, fill_value=0.0) for k, v in extremes.items()}

        # Critical: the largest call that ended in [t - extreme_window, t).
        largest = extremes["max_reasoning_tokens"].rolling(extreme_window, min_periods=1).max().shift(1)
        largest = at_times(largest, times)
        extreme_calls = at_times(trailing_sum(extremes[count_column], extreme_window), times)
        critical = largest >= s.extreme_tokens

        # Warning: reasoning tokens per call over the window against the scope's baseline, compared at the
        # evaluation times only (grids are long, the times few: one, live).
        g = {k: trailing_sum(v, window) for k, v in rollup.items()}
        per_call = (g["reasoning_tokens"] / g["calls"]).where(g["calls"] >= s.min_calls)
        usual = baseline(per_call, window, times=times)
        warn_at = (usual * s.warning_ratio).clip(lower=s.floor_tokens)  # NaN without a baseline
        minute_per_call = rollup["reasoning_tokens"] / rollup["calls"]
        sustained_minutes = minutes(s.sustained)
        sustained = kth_largest(minute_per_call, window, sustained_minutes, times) >= warn_at
        now, calls = at_times(per_call, times), at_times(g["calls"], times)
        warning = (now >= warn_at) & sustained & ~critical

        critical_observations = to_observations(
            self.name, times, largest, at_times(trailing_sum(rollup["calls"], extreme_window), times),
            warning=critical, critical=critical,
            warning_threshold=float(s.extreme_tokens), critical_threshold=float(s.extreme_tokens),
            baseline=usual,
            describe=_describe_extreme,
        )  # fmt: skip
        critical_observations = [
            replace(o, summary=f"{o.summary}; {_count(extreme_calls, o)} call(s) >= {_tokens(count_edge)} "
                               f"in the last {extreme_window} min")
            for o in critical_observations
        ]  # fmt: skip
        warning_observations = to_observations(
            self.name, times, now, calls,
            warning=warning, critical=warning & False,  # the ratio alone never pages
            warning_threshold=warn_at, critical_threshold=warn_at,
            baseline=usual,
            describe=_describe_ratio,
        )  # fmt: skip
        return critical_observations + warning_observations


def _count(grid: pd.DataFrame, observation: Observation) -> int:
    return int(grid.at[pd.Timestamp(observation.at), observation.scope])


def _tokens(value: float) -> str:
    return f"{value / 1000:.0f}k" if value >= 10_000 else f"{value:,.0f}"


def _describe_extreme(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    usually = f", usually {_tokens(usual)} per call" if usual is not None else ""
    return (
        f"a call used {_tokens(value)} reasoning tokens (critical at {_tokens(threshold)}{usually}) "
        f"for {format_scope(scope)}"
    )


def _describe_ratio(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"{_tokens(value)} reasoning tokens per call (threshold {_tokens(threshold)}, "
        f"usually {_tokens(usual or 0)}) for {format_scope(scope)}"
    )


DETECTOR = ReasoningBlowup
