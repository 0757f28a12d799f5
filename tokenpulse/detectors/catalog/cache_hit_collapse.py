"""cache_hit_collapse: the prompt-cache hit ratio of a scope that used to cache well falls apart.

Hit ratio = cache reads / (cache reads + cache writes) where the provider reports writes (Anthropic),
else cache reads / input tokens (OpenAI, Gemini). A window with neither reads nor writes is not a
collapse but caching not applied at all (cache_not_applied): it is not observed here.

"Held 5 minutes": the ratio over the window (5 min) is under the threshold *and* the per-minute ratio
was under it in ``sustained`` (4) of the window's minutes, so the alert fires about 4 minutes after a
collapse starts, without a ``for`` delay on top, while a 2-3 minute provider-side eviction never holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import pandas as pd

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
    kth_smallest,
    minutes,
    to_observations,
    trailing_sum,
)


@dataclass(frozen=True)
class Settings(HeldSettings):
    warning_below: float = 0.50
    critical_below: float = 0.30
    healthy_baseline: float = 0.60  # only scopes that cached at least this well are watched
    scope: tuple[str, ...] = ("service", "route", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("cache_hit_collapse", self.scope))


class CacheHitCollapse(CatalogDetector):
    name: ClassVar[str] = "cache_hit_collapse"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        columns = ("calls", "input_tokens", "cache_read_tokens", "cache_write_tokens")
        per_minute = grids(history[ROLLUP], s.scope, columns, history.start, history.end)
        g = {k: trailing_sum(v, window) for k, v in per_minute.items()}
        ratio = hit_ratio(g).where(g["calls"] >= s.min_calls)
        held = kth_smallest(hit_ratio(per_minute), window, minutes(s.sustained), times)
        usual = baseline(ratio, window, times=times)
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        now, calls, held = (at_times(grid, times) for grid in (ratio, g["calls"], held))
        collapsed = (usual >= s.healthy_baseline) & (held < s.warning_below)
        return to_observations(
            self.name, times, now, calls,
            warning=collapsed & (now < s.warning_below),
            critical=collapsed & (now < s.critical_below),
            warning_threshold=s.warning_below,
            critical_threshold=s.critical_below,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def hit_ratio(tokens: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Cache reads over what could have been read: reads + writes, or the input where no writes are
    reported; NaN where the cache was not touched at all (that is cache_not_applied's signal)."""
    reads, writes = tokens["cache_read_tokens"], tokens["cache_write_tokens"]
    ratio = (reads / (reads + writes)).where(writes > 0, reads / tokens["input_tokens"])
    return ratio.where(reads + writes > 0)


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"prompt-cache hit ratio {value:.0%} (threshold {threshold:.0%}, usually {usual or 0:.0%}) "
        f"for {format_scope(scope)}"
    )


DETECTOR = CacheHitCollapse
