"""The alert state machine: one alert per (detector, scope), inactive -> pending -> firing -> resolved.

Semantics follow Prometheus alerting rules:
- a condition that starts holding makes the alert *pending*; it *fires* once it has held for ``for_``;
- a pending alert whose condition stops holding is dropped without a word (nothing to notify);
- a firing alert resolves only after its condition has not held for ``keep_firing_for`` (one good
  window does not end an incident, so alerts do not flap);
- a scope that produces no observation (its traffic fell below the minimum sample count) counts as
  not holding;
- a firing alert that escalates (warning -> critical) fires again; it never de-escalates while
  firing, so a recovering incident does not page twice.

The machine is pure: it is driven by observations and evaluation times only, never by the clock, so
live runs and backtests behave the same. Its state serializes to JSON to survive restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from tokenpulse.alerts.contract import Alert, AlertState, Severity, Transition, fingerprint
from tokenpulse.detectors.base import DetectorSettings, Observation, Scope

PENDING = AlertState.PENDING
FIRING = AlertState.FIRING
RESOLVED = AlertState.RESOLVED

# Resolved alerts stay visible this long (the API lists them as recent), then are forgotten here; at
# least as long as a cause explains its symptoms after it resolved (``explain.RELEASE_AFTER``).
RESOLVED_RETENTION = timedelta(minutes=30)


__all__ = ["FIRING", "PENDING", "RESOLVED", "Alert", "AlertStates", "fingerprint"]


class AlertStates:
    """All alerts of all detectors."""

    def __init__(self, alerts: Iterable[Alert] = ()) -> None:
        self.alerts: dict[tuple[str, Scope], Alert] = {(a.detector, a.scope): a for a in alerts}

    def step(
        self, detector: str, settings: DetectorSettings, observations: Iterable[Observation], now: datetime
    ) -> list[Transition]:
        """Advance ``detector``'s alerts to ``now`` given its observations at ``now``."""
        transitions: list[Transition] = []
        seen: set[Scope] = set()
        for observation in observations:
            if not observation.active:
                continue
            seen.add(observation.scope)
            key = (detector, observation.scope)
            alert = self.alerts.get(key)
            assert observation.severity is not None
            if alert is None or alert.state == RESOLVED:
                alert = Alert(
                    detector, observation.scope, PENDING, observation.severity, now, now,
                    observation.value, observation.threshold, observation.baseline, observation.summary,
                )  # fmt: skip
                self.alerts[key] = alert
            _observe(alert, observation)
            if alert.state == PENDING and now - alert.active_at >= settings.for_:
                alert.state, alert.fired_at, alert.severity = FIRING, now, observation.severity
                transitions.append(alert.transition(FIRING, now))
            elif alert.state == PENDING:
                alert.severity = observation.severity
            elif (
                alert.state == FIRING and Severity(observation.severity).rank > Severity(alert.severity).rank
            ):
                alert.severity = observation.severity
                transitions.append(alert.transition(FIRING, now))
        for key, alert in list(self.alerts.items()):
            if key[0] != detector or alert.scope in seen:
                continue
            if alert.state == PENDING:
                del self.alerts[key]
            elif alert.state == FIRING and now - alert.last_active_at >= settings.keep_firing_for:
                alert.state, alert.resolved_at = RESOLVED, now
                transitions.append(alert.transition(RESOLVED, now))
            elif (
                alert.state == RESOLVED
                and alert.resolved_at
                and now - alert.resolved_at >= RESOLVED_RETENTION
            ):
                del self.alerts[key]
        return transitions

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state == FIRING]

    def to_json(self) -> list[dict[str, Any]]:
        return [_alert_json(a) for a in self.alerts.values()]

    @classmethod
    def from_json(cls, document: list[dict[str, Any]]) -> AlertStates:
        return cls(_alert_from_json(item) for item in document)


def _observe(alert: Alert, observation: Observation) -> None:
    alert.value = observation.value
    alert.threshold = observation.threshold
    alert.baseline = observation.baseline
    alert.summary = observation.summary
    alert.last_active_at = observation.at
    alert.current = observation.current


def _alert_json(alert: Alert) -> dict[str, Any]:
    data = asdict(alert)
    data["scope"] = [list(pair) for pair in alert.scope]
    for name in ("active_at", "last_active_at", "fired_at", "resolved_at"):
        data[name] = data[name].isoformat() if data[name] else None
    return data


def _alert_from_json(data: dict[str, Any]) -> Alert:
    data = dict(data)
    data["scope"] = tuple((k, v) for k, v in data["scope"])
    data["state"] = AlertState(data["state"])
    for name in ("active_at", "last_active_at", "fired_at", "resolved_at"):
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    return Alert(**data)
