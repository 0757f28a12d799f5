"""reasoning_blowup: a reasoning model thinks far longer than it should, per service, route and model.

Two conditions, one alert per scope:

- critical, at once (``for_`` 0): a call that used ``extreme_tokens`` or more reasoning tokens (100k by
  default: minutes of latency and about a dollar per call on the frontier models). Absolute, so it
  needs neither history nor traffic: one such call is already the incident (a reasoning loop, an
  effort setting left at "high" with no budget). It holds while such a call ended within the last
  ``extreme_window`` and resolves ``keep_firing_for`` later.
- warning: reasoning tokens per call rise clearly above the scope's own usual level — 5x, 10x or 25x,
  on the evidence model of ``evidence.MeanDetector`` (each minute's reasoning per call, with the spread
  per call the scope's trailing day shows), and never under ``floor_tokens`` per call, so a model that
  goes from 200 to 1,000 thinking tokens per call (cents) does not page. Reasoning routes are often
  low-volume: a route of one call a minute that starts thinking 10x longer shows within minutes, once
  its calls end. A scope whose baseline has fewer than 30 calls is learning.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

from tokenpulse.detectors import stats
from tokenpulse.detectors.base import CRITICAL, Coverage, Observation, Scope, format_scope
from tokenpulse.detectors.data import minutes
from tokenpulse.detectors.evidence import MeanDetector, MeanSettings, Run, Signal
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
class Settings(MeanSettings):
    rises: tuple[float, ...] = (5.0, 10.0, 25.0)  # reasoning tokens per call against the usual
    floor: float = 5_000.0  # ... and at least this many per call
    # A model thinking hard for a minute or two, then one long answer, is a blip with a stray minute: a
    # run must beat the blip by a nat (randomized tuning seeds 451-462: false pages 19 -> 1, recall
    # 2,217 -> 2,200 of 2,247).
    blip_margin: float = 1.0
    extreme_tokens: int = 100_000  # one call at or above: critical
    extreme_window: timedelta = timedelta(minutes=5)  # such a call counts this long after it ended

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.extreme_tokens < EXTREME_BUCKETS[0]:
            raise ValueError(
                f"extreme_tokens must be at least {EXTREME_BUCKETS[0]} (the query reads no less)"
            )


class ReasoningBlowup(MeanDetector):
    name: ClassVar[str] = "reasoning_blowup"
    settings_type: ClassVar[type[Settings]] = Settings
    numerator: ClassVar[str] = "reasoning_tokens"
    settings: Settings

    def signals(self) -> list[Signal]:
        return [Signal(ROLLUP, DIMENSIONS)]

    def queries(self) -> list[Query]:
        return [ROLLUP, EXTREMES]

    def critical(self, lower: np.ndarray, run: Run, usual: np.ndarray) -> np.ndarray:
        """The ratio alone never pages critical: one extreme call does (``_extremes``)."""
        return np.zeros(lower.shape, dtype=bool)

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        observations, coverage = super().assess(history, times)
        extremes = self._extremes(history, times)
        seen = {(o.at, o.scope) for o in extremes}
        return extremes + [o for o in observations if (o.at, o.scope) not in seen], coverage

    def _extremes(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        """Critical at once: a call that ended in [t - extreme_window, t) used ``extreme_tokens`` or more."""
        s = self.settings
        extreme_window = minutes(s.extreme_window)
        count_edge = max(e for e in EXTREME_BUCKETS if e <= s.extreme_tokens)  # counted: calls >= count_edge
        columns = ("max_reasoning_tokens", f"calls_ge_{count_edge}")
        g, scopes = self._grids(history[EXTREMES], DIMENSIONS, columns, history)
        if not scopes:
            return []
        positions = self._positions(history, times)
        window = np.arange(extreme_window)[None, :]
        rows = np.clip(positions[:, None] - window, 0, None)  # times x the window's rows
        largest = g[columns[0]][rows].max(axis=1)  # times x scopes
        counted = stats.window_sums(stats.cumulative(g[columns[1]]), positions[:, None] + 1,
                                    positions[:, None] + 1 - extreme_window)  # fmt: skip
        observations = []
        for i, j in zip(*np.nonzero(largest >= s.extreme_tokens), strict=True):
            scope, value = scopes[j], float(largest[i, j])
            summary = (
                f"a call used {_tokens(value)} reasoning tokens (critical at {_tokens(s.extreme_tokens)}) "
                f"for {format_scope(scope)}; {counted[i, j]:.0f} call(s) >= {_tokens(count_edge)} in the "
                f"last {extreme_window} min"
            )
            observations.append(
                Observation(
                    detector=self.name, scope=scope, at=times[i], severity=CRITICAL, value=value,
                    threshold=float(s.extreme_tokens), baseline=None, samples=int(counted[i, j]),
                    summary=summary,
                )
            )  # fmt: skip
        return observations

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"{_tokens(value)} reasoning tokens per call since the rise began (usually {_tokens(usual)}; "
            f"evidence past {_tokens(threshold)}) for {format_scope(scope)}"
        )


def _tokens(value: float) -> str:
    return f"{value / 1000:.0f}k" if value >= 10_000 else f"{value:,.0f}"


DETECTOR = ReasoningBlowup
