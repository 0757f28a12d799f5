"""traffic_drop: a service or route sends far fewer calls than it usually does at this time of day.

Silence is a finding: an exporter that broke, a sampler that started dropping LLM spans, a deploy that
lost the instrumentation or a feature switched off by mistake all look like "no alerts" everywhere else.
The usual rate is the lower of the same time of day (±1 h) yesterday (the mean of its middle quarter
hours: a surge yesterday is not today's usual), scaled down to today's level
(``evidence._level``: a quieter day is a quieter baseline), and a week ago, so neither a weekend nor a
night reads as a drop; a scope without that history is learning. The evidence model is
``evidence.CountDetector``'s: each minute's count of calls weighs for "the rate fell by 50%, 80%, 95% or
99.5%" below the usual rate less what the scope's course strays from yesterday's (``_usual_variation``;
a minute without calls is evidence here: it is the count), weighed as a negative binomial
whose variance is how much more than Poisson the scope's quarter hours vary at that rate (sessions of a
few calls at a rate that wanders: ``stats.session_evidence``). It pages once the calls since the drop
began are at least 40% under the usual rate (``least_drop``). A busy route that stops pages after the
4-minute floor; a thin or bursty one later. It resolves once the calls are back near the unscaled
usual rate. Critical: under 5% of the usual rate (it stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tokenpulse.detectors.base import Scope, format_scope
from tokenpulse.detectors.data import check_scope
from tokenpulse.detectors.evidence import CountDetector, CountSettings


@dataclass(frozen=True)
class Settings(CountSettings):
    scope: tuple[str, ...] = ("service", "route")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("traffic_drop", self.scope))


class TrafficDrop(CountDetector):
    name: ClassVar[str] = "traffic_drop"
    settings_type: ClassVar[type[Settings]] = Settings

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"{value:.1f} calls a minute since the drop (usually {usual:.1f} at this time of day) for "
            f"{format_scope(scope)}: an exporter, a sampler or a deploy that lost the instrumentation?"
        )


DETECTOR = TrafficDrop
