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
observation. The share must have *held* (data.held_share): past the threshold with confidence over
the window and in ``sustained`` (4) of its 5 minutes, so a burst of escalations of up to 3 minutes
never fires, however complete. The critical rule then pages at once: a regression that escalates
most calls fires about 4 minutes after it starts. The relative warning must hold ``warning_for`` (10
minutes) on top: at night a router's thin traffic is harder and escalates more than its (daytime)
baseline for a few minutes at a time, and a doubling that lasts is the one worth a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

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
    lowest_over,
    minutes,
    to_observations,
    trailing_sum,
)


@dataclass(frozen=True)
class Settings(HeldSettings):
    window: timedelta = timedelta(minutes=5)
    warning_for: timedelta = timedelta(minutes=10)  # the relative (warning) rule holds this long
    min_calls: int = 30
    critical_share: float = 0.70
    warning_ratio: float = 2.0
    warning_min_share: float = 0.20

    scope: tuple[str, ...] = ("service", "router")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("routing_escalation", self.scope, ("router",)))


class RoutingEscalation(CatalogDetector):
    name: ClassVar[str] = "routing_escalation"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        per_minute = grids(history[ROLLUP], s.scope, ("calls", "escalated_calls"), history.start, history.end)
        routed = np.array([dict(scope)["router"] != "" for scope in per_minute["calls"].columns], dtype=bool)
        decisions, escalations = (per_minute[k].loc[:, routed] for k in ("calls", "escalated_calls"))
        calls, escalated = trailing_sum(decisions, window), trailing_sum(escalations, window)
        share = (escalated / calls).where(calls >= s.min_calls)
        usual = baseline(share, window, times=times)
        held = held_share(escalations, decisions, window, minutes(s.sustained))
        lowest_held = lowest_over(held, minutes(s.warning_for))
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        share, calls, escalated, held, lowest_held = (
            at_times(grid, times) for grid in (share, calls, escalated, held, lowest_held)
        )
        warning_at = (usual * s.warning_ratio).clip(lower=s.warning_min_share)
        escalating = escalated > 0  # a zero threshold and baseline never fire on no escalation at all
        return to_observations(
            self.name, times, share, calls,
            warning=escalating & (lowest_held >= warning_at),
            critical=held >= s.critical_share,
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
