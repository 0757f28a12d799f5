"""latency_p99_drift: the p99 latency of a service+route+model drifts well above its usual p99.

"The p99 is above twice its usual" is "more than 1% of calls take longer than twice the usual p99": a
share, tested on the evidence model of ``evidence.TailDetector``. Each minute's count of calls slower
than that level weighs for "the share of slow calls grew" against 1% (the most a scope whose p99 is
still within the level can have), so a route of a few calls a minute whose calls all take 3x longer
pages within minutes, and a busy route pages once its slow calls are more than chance.

- The usual p99 is the median of the same hour of previous days, else of the trailing day's hours,
  merged from the rollup's t-digest states (hours with fewer than 30 calls do not count; a scope
  without any such hour is learning: "drift" needs something to drift from). A scope of fewer than 300
  calls an hour takes it from its trailing day's calls pooled instead: an hour of 60 calls has as its
  "p99" its slowest call, which one slow call sets.
- 2x the usual p99 and at least 2,000 ms (``floor_ms``): the p99 of LLM calls moves by tens of percent
  with the prompt and output mix, a doubling is a real change (a slower model version, a saturated
  provider region, a retry loop inside the call), and doubling a 300 ms p99 is nobody's incident.
  Critical: more than 1% of the calls since the drift began took over 3x the usual p99, with
  confidence.
- One very slow call, or a provider hiccup of a minute or two, gives evidence that is over before the
  4-minute floor (``min_duration``) confirms it: it never pages.
- Physical limit: a call is seen when it ends; a drift to 30 s calls cannot page before they end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tokenpulse.detectors.base import Scope, format_scope
from tokenpulse.detectors.data import check_scope
from tokenpulse.detectors.evidence import TailDetector, TailSettings


@dataclass(frozen=True)
class Settings(TailSettings):
    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("latency_p99_drift", self.scope))


class LatencyP99Drift(TailDetector):
    name: ClassVar[str] = "latency_p99_drift"
    settings_type: ClassVar[type[Settings]] = Settings
    column: ClassVar[str] = "latency"
    count: ClassVar[str] = "calls"

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"p99 latency about {value:,.0f} ms since the drift began (usually {usual:,.0f} ms; more than 1% "
            f"of calls past {threshold:,.0f} ms) for {format_scope(scope)}"
        )


DETECTOR = LatencyP99Drift
