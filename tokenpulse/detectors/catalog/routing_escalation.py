"""routing_escalation: a model router sends far more of its traffic to the expensive tier than it used to.

Share = escalated calls / calls over the window, per service and router, for calls that went through
a router (``router != ''``; an unrouted call is no router decision). Two rules:

- critical: the share is at least ``critical_share`` (70%) — absolute, baseline or not: a router that
  escalates most of its traffic saves nothing, whatever it did before (a new router included; a router
  that *always* escalates that much fires once, and stays firing, until it is fixed or the threshold is
  raised for it);
- warning: the share is at least ``warning_ratio`` (2x) its baseline *and* at least
  ``warning_min_share``: doubling from 3% to 6% is binomial noise over a few dozen calls, not an incident.

A traffic surge moves calls and escalations together, the share stays flat: nothing fires. Below
``min_calls`` router decisions in the window (an overnight trough, a new router) there is no
observation. A burst confined to b minutes is in window + b - 1 windows and fires only when
window + b - 2 >= ``for_``: with a window of 5 and ``for_`` 10, a burst of escalations of up to 6
minutes never fires, however complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

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

DIMENSIONS = ("service", "router")


@dataclass(frozen=True)
class Settings(DetectorSettings):
    window: timedelta = timedelta(minutes=5)
    for_: timedelta = timedelta(minutes=10)
    min_calls: int = 30
    critical_share: float = 0.70
    warning_ratio: float = 2.0
    warning_min_share: float = 0.20


class RoutingEscalation(CatalogDetector):
    name: ClassVar[str] = "routing_escalation"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        columns = ("calls", "escalated_calls")
        g = {
            k: trailing_sum(v, window)
            for k, v in grids(history[ROLLUP], DIMENSIONS, columns, history.start, history.end).items()
        }
        routed = np.array([dict(scope)["router"] != "" for scope in g["calls"].columns], dtype=bool)
        calls, escalated = g["calls"].loc[:, routed], g["escalated_calls"].loc[:, routed]
        share = (escalated / calls).where(calls >= s.min_calls)
        usual = baseline(share, window, times=times)
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        share, calls, escalated = (at_times(grid, times) for grid in (share, calls, escalated))
        warning_at = (usual * s.warning_ratio).clip(lower=s.warning_min_share)
        escalating = escalated > 0  # a zero threshold and baseline never fire on no escalation at all
        return to_observations(
            self.name, times, share, calls,
            warning=escalating & (share >= warning_at),
            critical=share >= s.critical_share,
            warning_threshold=warning_at,
            critical_threshold=s.critical_share,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    usually = "no baseline yet" if usual is None else f"usually {usual:.0%}"
    return (
        f"router escalated {value:.0%} of calls to the expensive tier (threshold {threshold:.0%}, "
        f"{usually}) for {format_scope(scope)}"
    )


DETECTOR = RoutingEscalation
