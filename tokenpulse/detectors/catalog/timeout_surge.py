"""timeout_surge: far more LLM calls (per service+route) or tool executions (per service+tool) time out
than usual.

LLM calls are counted from the rollup (``timeouts`` / ``calls``); tool executions from the raw
``tool_spans`` table (spans of kind 'tool'; agent spans are not executions), which has no rollup. Both
scope kinds come from this one detector, told apart by their keys: service+route or service+tool.

A window fires when its timeout share is at least ``min_share`` and ``baseline_ratio`` x the usual
share (data.baseline of the windowed share): a tool that always times out 8% of the time (a slow
partner API) is not news at 10%, it is at 24%. A scope without a baseline yet (its first hour) is held
to ``min_share`` alone: timeouts are failures users see, so a new route timing out a third of its
calls is news even without history; once it has an hour of its own windows, that becomes its baseline.

Why the defaults (5%, 3x, critical 20%, window 5 min, 4 of its minutes, 50 calls):

- Healthy LLM and tool calls time out well under 1% of the time; 5% is where retries stop hiding it
  from users, 3x is a clear departure from a noisy baseline, and 20% (one call in five) is critical.
- 50 calls in a window: below, 3 timeouts already make 5%; at 50 a lone timeout is 2% and it takes
  3 in 5 minutes to count. One timed-out call never fires.
- The share must have *held* (data.held_share): past the threshold with confidence over the window
  (the Wilson bound: 3 timeouts in 50 calls is 6%, and a route timing out 1% of the time does that by
  chance) and in ``sustained`` (4) of the window's 5 minutes, so a provider blip of up to 3 minutes,
  even with every call timing out, never fires. A surge fires about 4 minutes after it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import pandas as pd

from tokenpulse.detectors.base import Observation, Scope, format_scope, scope_dict
from tokenpulse.detectors.data import (
    ROLLUP,
    CatalogDetector,
    HeldSettings,
    History,
    Query,
    at_times,
    baseline,
    grids,
    held_share,
    minutes,
    raw_minutes_query,
    to_observations,
    trailing_sum,
)

LLM_DIMENSIONS = ("service", "route")
TOOL_DIMENSIONS = ("service", "tool")
TOOL_SPANS = raw_minutes_query(
    "tool_spans:service, tool",
    "tool_spans",
    ("service", "name AS tool"),
    "count() AS calls, countIf(is_timeout) AS timeouts",
    where="kind = 'tool'",
)


@dataclass(frozen=True)
class Settings(HeldSettings):
    window: timedelta = timedelta(minutes=5)
    min_calls: int = 50  # calls (or tool executions) in the window
    min_share: float = 0.05  # the timeout share must reach this ...
    baseline_ratio: float = 3.0  # ... and this many times the usual share
    critical_share: float = 0.20


class TimeoutSurge(CatalogDetector):
    name: ClassVar[str] = "timeout_surge"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def queries(self) -> list[Query]:
        return [ROLLUP, TOOL_SPANS]

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        return self._evaluate(history, history[ROLLUP], LLM_DIMENSIONS, times) + self._evaluate(
            history, history[TOOL_SPANS], TOOL_DIMENSIONS, times
        )

    def _evaluate(
        self, history: History, frame: pd.DataFrame, dims: Sequence[str], times: Sequence[datetime]
    ) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        per_minute = grids(frame, dims, ("calls", "timeouts"), history.start, history.end)
        calls = trailing_sum(per_minute["calls"], window)
        share = (trailing_sum(per_minute["timeouts"], window) / calls).where(calls >= s.min_calls)
        usual = baseline(share, window, times=times)
        held = held_share(per_minute["timeouts"], per_minute["calls"], window, minutes(s.sustained), times)
        share, calls, held = (at_times(grid, times) for grid in (share, calls, held))
        warning_at = (usual * s.baseline_ratio).clip(lower=s.min_share).fillna(s.min_share)
        critical_at = warning_at.clip(lower=s.critical_share)
        return to_observations(
            self.name, times, share, calls,
            warning=held >= warning_at,
            critical=held >= critical_at,
            warning_threshold=warning_at,
            critical_threshold=critical_at,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    what = "tool executions" if "tool" in scope_dict(scope) else "LLM calls"
    usually = "no baseline yet" if usual is None else f"usually {usual:.1%}"
    return f"{value:.1%} of {what} timed out (threshold {threshold:.1%}, {usually}) for {format_scope(scope)}"


DETECTOR = TimeoutSurge
