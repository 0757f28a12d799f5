"""cache_hit_collapse: the prompt-cache hit ratio of a scope that used to cache well falls apart.

Hit ratio = cache reads / (cache reads + cache writes) where the provider reports writes (Anthropic),
else cache reads / input tokens (OpenAI, Gemini). A window with neither reads nor writes is not a
collapse but caching not applied at all (cache_not_applied): it is not observed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from tokenpulse.detectors.base import DetectorSettings, Observation, Scope, format_scope
from tokenpulse.detectors.data import (
    ROLLUP,
    CatalogDetector,
    History,
    at_times,
    baseline,
    grids,
    minutes,
    to_observations,
    trailing_sum,
)

DIMENSIONS = ("service", "route", "model")


@dataclass(frozen=True)
class Settings(DetectorSettings):
    warning_below: float = 0.50
    critical_below: float = 0.30
    healthy_baseline: float = 0.60  # only scopes that cached at least this well are watched


class CacheHitCollapse(CatalogDetector):
    name: ClassVar[str] = "cache_hit_collapse"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        columns = ("calls", "input_tokens", "cache_read_tokens", "cache_write_tokens")
        g = {
            k: trailing_sum(v, window)
            for k, v in grids(history[ROLLUP], DIMENSIONS, columns, history.start, history.end).items()
        }
        reads, writes = g["cache_read_tokens"], g["cache_write_tokens"]
        ratio = (reads / (reads + writes)).where(writes > 0, reads / g["input_tokens"])
        ratio = ratio.where((g["calls"] >= s.min_calls) & (reads + writes > 0))
        usual = baseline(ratio, window, times=times)
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        now, calls = at_times(ratio, times), at_times(g["calls"], times)
        watched = usual >= s.healthy_baseline
        return to_observations(
            self.name, times, now, calls,
            warning=watched & (now < s.warning_below),
            critical=watched & (now < s.critical_below),
            warning_threshold=s.warning_below,
            critical_threshold=s.critical_below,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"prompt-cache hit ratio {value:.0%} (threshold {threshold:.0%}, usually {usual or 0:.0%}) "
        f"for {format_scope(scope)}"
    )


DETECTOR = CacheHitCollapse
