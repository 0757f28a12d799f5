"""routing_escalation: a model router sends clearly more of its traffic to the expensive tier than it
usually does.

Share = escalated calls / calls per service and router, for calls that went through a router
(``router != ''``; an unrouted call is no router decision).

The evidence model is ``evidence.ShareDetector``'s: a router that usually escalates 20% is watched
for its odds of escalating growing 1.5x, 3x, 8x or 25x, with the evidence its decisions give minute by
minute. A traffic surge moves calls and escalations together: the share stays flat and nothing fires.
A router with fewer than 30 decisions of history is learning and held to the documented default
(``prior_share``, 50%). Critical: the router escalates most of its traffic (the share since the
evidence began is past 70% with confidence) — such a router saves nothing, whatever it did before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from tokenpulse.detectors.base import Scope, format_scope
from tokenpulse.detectors.data import check_scope
from tokenpulse.detectors.evidence import ShareDetector, ShareSettings, Signal
from tokenpulse.detectors.history import ROLLUP


@dataclass(frozen=True)
class Settings(ShareSettings):
    prior_share: float | None = 0.50
    critical_share: float = 0.70
    scope: tuple[str, ...] = ("service", "router")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("routing_escalation", self.scope, ("router",)))


def _routed(frame: pd.DataFrame) -> pd.Series:
    return frame["router"] != ""


class RoutingEscalation(ShareDetector):
    name: ClassVar[str] = "routing_escalation"
    settings_type: ClassVar[type[Settings]] = Settings
    part: ClassVar[str] = "escalated_calls"
    total: ClassVar[str] = "calls"

    def signals(self) -> list[Signal]:
        return [Signal(ROLLUP, self.settings.scope, _routed)]  # type: ignore[attr-defined]

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"router escalated {value:.0%} of calls to the expensive tier since the change (usually "
            f"{usual:.0%}) for {format_scope(scope)}"
        )


DETECTOR = RoutingEscalation
