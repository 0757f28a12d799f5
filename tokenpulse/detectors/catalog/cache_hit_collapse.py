"""cache_hit_collapse: the prompt-cache hit ratio of a scope falls clearly below its own usual level.

Hit ratio = cache reads / cacheable tokens (``storage.cache_ratio``: reads + writes where the provider
reports writes, the input tokens where it reports reads only), decided per call by who served it —
never per window, so a warm Anthropic cache whose window has no write reads as the hit it is.

Every scope that caches is watched relative to itself, whatever its usual ratio: a route that hits 95%
and one that hits 30% both page when their ratio collapses. The evidence model is
``evidence.RatioDetector``'s: each minute's ratio, weighted by its calls and judged with the variance
the scope's own history shows (a call's ratio varies at most as a coin does; far less on a reads-only
route whose calls all read about the same share), weighs for "the ratio fell by 30%, 50%, 70% or 90%".
A scope whose baseline has fewer than 30 calls is learning; one that never cached (usual ratio under
2%) is not applicable.
Critical: the ratio since the evidence began is under 35% of the usual one (0.9 -> 0.32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tokenpulse.detectors.base import Scope, format_scope
from tokenpulse.detectors.data import check_scope
from tokenpulse.detectors.evidence import RatioDetector, RatioSettings


@dataclass(frozen=True)
class Settings(RatioSettings):
    scope: tuple[str, ...] = ("service", "route", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("cache_hit_collapse", self.scope))


class CacheHitCollapse(RatioDetector):
    name: ClassVar[str] = "cache_hit_collapse"
    settings_type: ClassVar[type[Settings]] = Settings
    numerator: ClassVar[str] = "cache_read_tokens"
    denominator: ClassVar[str] = "cacheable_tokens"

    not_applicable: ClassVar[str] = "its usual hit ratio is under 2%: it never cached"

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return f"prompt-cache hit ratio {value:.0%} (usually {usual:.0%}) for {format_scope(scope)}"


DETECTOR = CacheHitCollapse
