"""cache_not_applied: a scope that normally caches its prompts starts sending calls the provider does not
cache at all: neither cache reads nor cache writes (the rollup's ``uncached_calls``).

Caching silently stops when a prompt edit drops the cacheable prefix under the provider's minimum
(1,024 tokens for most Anthropic and OpenAI models), when a refactor loses ``cache_control``, or when a
dynamic value (a timestamp, a request id) moves into the prefix on providers that only report reads.
Distinct from cache_hit_collapse: a collapse still writes the cache and is measured on the calls that
touch it; here the calls do not touch it at all.

Signal: the share of uncached calls over the trailing window, on scopes whose usual share is at most
``healthy_baseline``. The condition holds when

- the window's share is past the threshold with confidence: the lower end of its three-sigma Wilson interval
  is (6 uncached calls in 34 is 18%, but a thin night-time route whose calls are uncached 6% of the
  time does that by chance);
- and the per-minute share was past the threshold in ``sustained`` (4) of the window's (5) minutes: a
  2-3 minute outage, whatever its intensity, never holds.

It holds about 4 minutes after caching stops, and fires then (no ``for`` on top).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from tokenpulse.detectors.base import Observation, Scope, format_scope
from tokenpulse.detectors.data import (
    ROLLUP,
    CatalogDetector,
    HeldSettings,
    History,
    at_times,
    baseline,
    check_scope,
    grids,
    held_share,
    minutes,
    to_observations,
    trailing_sum,
)


@dataclass(frozen=True)
class Settings(HeldSettings):
    warning_above: float = 0.10  # share of calls with neither cache reads nor writes
    critical_above: float = 0.50  # most calls uncached: caching is off for the scope
    healthy_baseline: float = 0.03  # only scopes whose usual uncached share is at most this are watched

    scope: tuple[str, ...] = ("service", "route", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("cache_not_applied", self.scope))


class CacheNotApplied(CatalogDetector):
    name: ClassVar[str] = "cache_not_applied"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        per_minute = grids(history[ROLLUP], s.scope, ("calls", "uncached_calls"), history.start, history.end)
        g = {k: trailing_sum(v, window) for k, v in per_minute.items()}
        share = (g["uncached_calls"] / g["calls"]).where(g["calls"] >= s.min_calls)
        usual = baseline(share, window, times=times)
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        now, calls = at_times(share, times), at_times(g["calls"], times)
        held = held_share(
            per_minute["uncached_calls"], per_minute["calls"], window, minutes(s.sustained), times
        )
        watched = usual <= s.healthy_baseline  # NaN (no history yet) is not watched
        return to_observations(
            self.name, times, now, calls,
            warning=watched & (held > s.warning_above),
            critical=watched & (held > s.critical_above),
            warning_threshold=s.warning_above,
            critical_threshold=s.critical_above,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"{value:.0%} of calls used no prompt cache (threshold {threshold:.0%}, usually {usual or 0:.1%}) "
        f"for {format_scope(scope)}: prompt under the provider's cache minimum or cache_control missing?"
    )


DETECTOR = CacheNotApplied
