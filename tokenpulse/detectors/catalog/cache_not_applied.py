"""cache_not_applied: a scope that caches its prompts starts sending calls the provider does not cache at
all: neither cache reads nor cache writes (the rollup's ``uncached_calls``).

Caching silently stops when a prompt edit drops the cacheable prefix under the provider's minimum
(1,024 tokens for most Anthropic and OpenAI models), when a refactor loses ``cache_control``, or when a
dynamic value (a timestamp, a request id) moves into the prefix on providers that only report reads.
Distinct from cache_hit_collapse: a collapse still touches the cache; here the calls do not.

Every scope that caches is watched, whatever its usual uncached share: an OpenAI route that normally
leaves 14% of its calls uncached (automatic caching misses short prompts) is watched for that share
rising clearly, as is an Anthropic route that caches every call. A scope with no cached call in its
baseline (it never cached) is not applicable. The evidence model is ``evidence.ShareDetector``'s.
Critical: most calls uncached (the share since the evidence began is past 50% with confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tokenpulse.detectors.base import Scope, format_scope
from tokenpulse.detectors.data import check_scope
from tokenpulse.detectors.evidence import ShareDetector, ShareSettings


@dataclass(frozen=True)
class Settings(ShareSettings):
    prior_share: float | None = None  # a scope without history has no usual share of cached calls
    critical_share: float = 0.50
    scope: tuple[str, ...] = ("service", "route", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("cache_not_applied", self.scope))


class CacheNotApplied(ShareDetector):
    name: ClassVar[str] = "cache_not_applied"
    settings_type: ClassVar[type[Settings]] = Settings
    part: ClassVar[str] = "uncached_calls"
    total: ClassVar[str] = "calls"

    def applicable(self, baseline_part: np.ndarray, baseline_total: np.ndarray) -> np.ndarray:
        """Scopes with cached calls in their baseline: a scope that never cached has nothing to lose."""
        return baseline_part < baseline_total

    not_applicable: ClassVar[str] = "it has no cached call in its history: it never cached"

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"{value:.0%} of calls used no prompt cache (usually {usual:.1%}) for {format_scope(scope)}: "
            "prompt under the provider's cache minimum, or cache_control missing?"
        )


DETECTOR = CacheNotApplied
