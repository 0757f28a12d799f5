"""ttft_slo: the time to first token of a service+route breaks its SLO (p99 over the window).

TTFT is what a streaming user waits before anything moves on the screen; its SLO is absolute, so
there is no baseline: a route that has always been slow breaks its SLO all the time, and the fix is
a per-route SLO (``route_slo_ms``, e.g. a reasoning route that thinks before it streams), not a
quieter detector. The p99 is merged from the rollup's t-digest states (data.quantile_query); calls
without a TTFT (not streamed, failed before the first token) are not in it, so the minimum sample
count counts calls *with* a TTFT, read from the raw calls table (the rollup has no such count).

A p99 above the SLO says more than 1% of first tokens came late, so the condition also asks the raw
table how many did (calls over their route's SLO, and over the critical bound) and requires that share
to be past 1% *with confidence* — the lower end of its three-sigma Wilson interval. On a thin route, two slow
first tokens among a hundred lift the p99 over the SLO by chance alone; a real breach (12% of calls
waiting 1-3 s) clears the bound at once.

Why the defaults (1 s, window 5 min, for 10 min, 50 calls with a TTFT):

- 1 s is the usual interactive budget for the first token (past it users notice the wait); 2x the
  SLO is critical.
- ``min_calls`` = 50 calls with a TTFT in the window: with the confidence bound guarding the thin
  windows, a route streaming 10-20 calls a minute stays watched through its dips instead of losing
  its pending alert whenever a window falls short of 100 calls.
- A burst of slow first tokens confined to b minutes lifts the p99 of the window + b - 1 windows
  containing it, which fire only when window + b - 2 >= for_: with a 5-minute window and for 10
  minutes ("held 10 min"), one very slow call and any blip of up to 6 minutes never fire; a 7-minute
  breach does. ``for_`` < ``window`` would let one call fire, so the settings refuse it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors import stats
from tokenpulse.detectors.base import Observation, Scope, format_scope, scope_dict
from tokenpulse.detectors.data import (
    CatalogDetector,
    SampledSettings,
    check_for_covers_window,
    check_scope,
    grids,
    minutes,
    to_observations,
    trailing_sum,
    value_grid,
)
from tokenpulse.detectors.history import History, Query, quantile_query, raw_minutes_query, sql_string

QUANTILE = 0.99


def ttft_calls_query(
    scope: Sequence[str], slo_ms: float, route_slo_ms: Mapping[str, float], critical_factor: float
) -> Query:
    """Per minute: calls with a TTFT (the rollup's ttft_ms digest skips NULLs but keeps no count of them),
    and how many of them took longer than their route's SLO, and than the critical bound."""
    slo = (
        f"transform(route, [{', '.join(sql_string(r) for r in route_slo_ms)}], "
        f"[{', '.join(repr(float(v)) for v in route_slo_ms.values())}], {float(slo_ms)!r})"
        if route_slo_ms
        else repr(float(slo_ms))
    )
    aggregates = (
        f"countIf(ttft_ms IS NOT NULL) AS ttft_calls, countIf(ttft_ms > {slo}) AS over_slo, "
        f"countIf(ttft_ms > {slo} * {float(critical_factor)!r}) AS over_critical"
    )
    digest = hashlib.sha256(aggregates.encode()).hexdigest()[:12]
    return raw_minutes_query(
        f"ttft_calls:{', '.join(scope)}:{digest}",
        "calls",
        scope,
        aggregates,
        recent=timedelta(hours=1),  # no baseline: only the windows being evaluated
    )


@dataclass(frozen=True)
class Settings(SampledSettings):
    window: timedelta = timedelta(minutes=5)
    for_: timedelta = timedelta(minutes=10)  # > window: see the module docstring
    min_calls: int = 50  # calls with a TTFT in the window
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
        self.ttft_calls_query = ttft_calls_query(
            scope, self.settings.slo_ms, self.settings.route_slo_ms, self.settings.critical_factor
        )

    def queries(self) -> list[Query]:
        return [self.ttft_calls_query, self.p99_query]

    def lookback(self) -> timedelta:
        return self.settings.window  # no baseline: the SLO is absolute

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        p99 = value_grid(history[self.p99_query], s.scope, history.start, history.end)
        columns = ("ttft_calls", "over_slo", "over_critical")
        counts = grids(history[self.ttft_calls_query], s.scope, columns, history.start, history.end)
        windowed = {
            k: trailing_sum(v, window).reindex(columns=p99.columns, fill_value=0.0) for k, v in counts.items()
        }
        samples = windowed["ttft_calls"]
        p99 = p99.where(samples >= s.min_calls)
        # more than 1% of first tokens late, with confidence: the p99 breach is not chance
        late = stats.wilson_bounds(windowed["over_slo"], samples, 3.0)[0] > 1 - QUANTILE
        very_late = stats.wilson_bounds(windowed["over_critical"], samples, 3.0)[0] > 1 - QUANTILE
        slo = [s.route_slo_ms.get(scope_dict(scope).get("route", ""), s.slo_ms) for scope in p99.columns]
        warning_at = pd.DataFrame(
            np.tile(np.asarray(slo, dtype=float), (len(p99.index), 1)), index=p99.index, columns=p99.columns
        )
        critical_at = warning_at * s.critical_factor
        return to_observations(
            self.name, times, p99, samples,
            warning=(p99 > warning_at) & late,
            critical=(p99 > critical_at) & very_late,
            warning_threshold=warning_at,
            critical_threshold=critical_at,
            baseline=None,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, _usual: float | None) -> str:
    return f"TTFT p99 {value:,.0f} ms above {threshold:,.0f} ms for {format_scope(scope)}"


DETECTOR = TtftSlo
