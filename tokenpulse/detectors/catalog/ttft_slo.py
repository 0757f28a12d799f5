"""ttft_slo: the time to first token of a service+route breaks its SLO (p99 over the window).

TTFT is what a streaming user waits before anything moves on the screen; its SLO is absolute, so
there is no baseline: a route that has always been slow breaks its SLO all the time, and the fix is
a per-route SLO (``route_slo_ms``, e.g. a reasoning route that thinks before it streams), not a
quieter detector. The p99 is merged from the rollup's t-digest states (data.quantile_query); calls
without a TTFT (not streamed, failed before the first token) are not in it, so the minimum sample
count counts calls *with* a TTFT, read from the raw calls table (the rollup has no such count).

Why the defaults (1 s, window 5 min, for 10 min, 100 calls with a TTFT):

- 1 s is the usual interactive budget for the first token (past it users notice the wait); 2x the
  SLO is critical.
- A p99 of fewer than 100 calls is the slowest call: ``min_calls`` = 100. TTFT is watched per
  service+route, not per model, so traffic is thick enough for a 5-minute window (20 streamed
  calls a minute).
- A burst of slow first tokens confined to b minutes lifts the p99 of the window + b - 1 windows
  containing it, which fire only when window + b - 2 >= for_: with a 5-minute window and for 10
  minutes, one very slow call and any blip of up to 6 minutes never fire; a 7-minute breach does.
  ``for_`` < ``window`` would let one call fire, so the settings refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors.base import DetectorSettings, Observation, Scope, format_scope, scope_dict
from tokenpulse.detectors.data import (
    CatalogDetector,
    History,
    Query,
    check_for_covers_window,
    check_scope,
    grids,
    minutes,
    quantile_query,
    raw_minutes_query,
    to_observations,
    trailing_sum,
    value_grid,
)

QUANTILE = 0.99


def ttft_calls_query(scope: Sequence[str]) -> Query:
    """Calls with a TTFT per minute (the rollup's ttft_ms digest skips NULLs but keeps no count of them)."""
    return raw_minutes_query(
        f"ttft_calls:{', '.join(scope)}",
        "calls",
        scope,
        "countIf(ttft_ms IS NOT NULL) AS ttft_calls",
        recent=timedelta(hours=1),  # no baseline: only the windows being evaluated
    )


@dataclass(frozen=True)
class Settings(DetectorSettings):
    window: timedelta = timedelta(minutes=5)
    for_: timedelta = timedelta(minutes=10)  # > window: see the module docstring
    min_calls: int = 100  # calls with a TTFT in the window
    slo_ms: float = 1000.0  # TTFT p99 above this breaks the SLO ...
    route_slo_ms: Mapping[str, float] = field(default_factory=dict)  # ... unless the route has its own
    critical_factor: float = 2.0  # critical above this many times the SLO
    scope: tuple[str, ...] = ("service", "route")

    def __post_init__(self) -> None:
        check_for_covers_window("ttft_slo", self)
        object.__setattr__(self, "scope", check_scope("ttft_slo", self.scope))


class TtftSlo(CatalogDetector):
    name: ClassVar[str] = "ttft_slo"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        scope = self.settings.scope
        self.p99_query = quantile_query("ttft_ms", scope, minutes(self.settings.window), QUANTILE)
        self.ttft_calls_query = ttft_calls_query(scope)

    def queries(self) -> list[Query]:
        return [self.ttft_calls_query, self.p99_query]

    def lookback(self) -> timedelta:
        return self.settings.window  # no baseline: the SLO is absolute

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        p99 = value_grid(history[self.p99_query], s.scope, history.start, history.end)
        counts = grids(history[self.ttft_calls_query], s.scope, ("ttft_calls",), history.start, history.end)
        samples = trailing_sum(counts["ttft_calls"], window).reindex(columns=p99.columns, fill_value=0.0)
        p99 = p99.where(samples >= s.min_calls)
        slo = [s.route_slo_ms.get(scope_dict(scope).get("route", ""), s.slo_ms) for scope in p99.columns]
        warning_at = pd.DataFrame(
            np.tile(np.asarray(slo, dtype=float), (len(p99.index), 1)), index=p99.index, columns=p99.columns
        )
        critical_at = warning_at * s.critical_factor
        return to_observations(
            self.name, times, p99, samples,
            warning=p99 > warning_at,
            critical=p99 > critical_at,
            warning_threshold=warning_at,
            critical_threshold=critical_at,
            baseline=None,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, _usual: float | None) -> str:
    return f"TTFT p99 {value:,.0f} ms above {threshold:,.0f} ms for {format_scope(scope)}"


DETECTOR = TtftSlo
