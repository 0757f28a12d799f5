"""latency_p99_drift: the p99 latency of a service+route+model drifts well above its usual p99.

The p99 of each trailing window is merged from the rollup's t-digest states (data.quantile_query),
never averaged from per-minute percentiles; its baseline is the p99 of whole hours
(data.hourly_baseline: the same hour of previous days, else the trailing day's hours), which costs one
merge per hour instead of one per minute of history. A window fires only when its p99 is both
``warning_ratio`` x the baseline and above an absolute floor: doubling a 300 ms p99 is nobody's
incident.

Why the defaults (window 10 min, for 15 min, 100 calls):

- A p99 over n calls is about the ceil(n / 100)-th slowest call: under 100 calls it is just the
  slowest one. ``min_calls`` = 100 per window is the least that makes a p99 a p99. LLM traffic split
  by service+route+model is thin, so the window is 10 minutes (100 calls at 10 calls a minute) rather
  than the 5 of request/response services; it also smooths the heavy tail that long generations give
  every window. A drift is not an outage: the 5 extra minutes of delay are cheap.
- A burst of slow calls confined to b minutes lifts the p99 of every window containing one of them:
  the value at t covers [t - window, t), so it holds at window + b - 1 consecutive evaluations, which
  the alert state machine (pending at the first, firing once ``for_`` has passed) turns into a firing
  only when window + b - 2 >= for_. With for_ = 15 and window = 10, anything up to 6 minutes never
  fires: one very slow call (b = 1), a 2-3 minute provider hiccup, a cold start after a deploy; a
  slowdown of 7 minutes or more does. ``for_`` < ``window`` would let a single call fire, so the
  settings refuse it.
- 2x the usual p99 and 2,000 ms: the p99 of LLM calls moves by tens of percent with prompt and output
  length mix; a doubling is a real change (a slower model version, a saturated provider region, a
  retry loop inside the call) and 2 s is where users notice. 3x is critical.
- A scope without a baseline (a brand-new model) is not watched: "drift" needs something to drift
  from. It is watched once it has an hour of windows of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import pandas as pd

from tokenpulse.detectors.base import Observation, Scope, format_scope
from tokenpulse.detectors.data import (
    CatalogDetector,
    SampledSettings,
    at_times,
    check_for_covers_window,
    check_scope,
    grids,
    hourly_baseline,
    minutes,
    to_observations,
    trailing_sum,
    value_grid,
)
from tokenpulse.detectors.history import ROLLUP, History, Query, hourly_quantile_query, quantile_query

QUANTILE = 0.99


@dataclass(frozen=True)
class Settings(SampledSettings):
    window: timedelta = timedelta(minutes=10)
    for_: timedelta = timedelta(minutes=15)  # > window: see the module docstring
    min_calls: int = 100  # a p99 of fewer calls is just the slowest call
    warning_ratio: float = 2.0  # p99 >= 2x its baseline ...
    critical_ratio: float = 3.0
    floor_ms: float = 2000.0  # ... and above this, whatever the ratio
    scope: tuple[str, ...] = ("service", "route", "model")

    def __post_init__(self) -> None:
        check_for_covers_window("latency_p99_drift", self)
        object.__setattr__(self, "scope", check_scope("latency_p99_drift", self.scope))


class LatencyP99Drift(CatalogDetector):
    name: ClassVar[str] = "latency_p99_drift"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        scope = self.settings.scope
        self.p99_query = quantile_query("latency_ms", scope, minutes(self.settings.window), QUANTILE)
        self.hourly_query = hourly_quantile_query("latency_ms", scope, QUANTILE)

    def queries(self) -> list[Query]:
        return [ROLLUP, self.p99_query, self.hourly_query]

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        p99 = at_times(value_grid(history[self.p99_query], s.scope, history.start, history.end), times)
        calls = grids(history[ROLLUP], s.scope, ("calls",), history.start, history.end)["calls"]
        calls = at_times(trailing_sum(calls, window), times).reindex(columns=p99.columns, fill_value=0.0)
        p99 = p99.where(calls >= s.min_calls)
        usual = hourly_baseline(history[self.hourly_query], s.scope, times, window, s.min_calls)
        usual = usual.reindex(columns=p99.columns)
        warning_at = _threshold(usual, s.warning_ratio, s.floor_ms)
        critical_at = _threshold(usual, s.critical_ratio, s.floor_ms)
        return to_observations(
            self.name, times, p99, calls,
            warning=p99 >= warning_at,
            critical=p99 >= critical_at,
            warning_threshold=warning_at,
            critical_threshold=critical_at,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def _threshold(usual: pd.DataFrame, ratio: float, floor: float) -> pd.DataFrame:
    """ratio x baseline, at least ``floor``; NaN (never exceeded) where there is no baseline."""
    return (usual * ratio).clip(lower=floor)


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"p99 latency {value:,.0f} ms (threshold {threshold:,.0f} ms, usually {usual or 0:,.0f} ms) "
        f"for {format_scope(scope)}"
    )


DETECTOR = LatencyP99Drift
