"""What every view shows of an alert: the state it really has, and its incident.

The detectors' state machine says pending / firing / resolved; whether anyone hears of a firing alert is
decided later: the detectors hold a symptom back while its cause's alert explains it, and the notify
pipeline mutes what an inhibit rule or a silence matches. The API, the overview page, the metrics and
the incidents all take the alert's state from ``AlertViews.state``, so they tell the same story:

- ``pending``, ``resolved``;
- ``firing``: receivers hear of it;
- ``explained by <alert id>``: held back by the detectors, its cause's alert pages instead;
- ``inhibited by <alert id>``: muted by an inhibit rule while that alert fires;
- ``silenced by <silence id>``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from tokenpulse import metrics
from tokenpulse.alerts.contract import Alert, AlertState, LiveAlerts

if TYPE_CHECKING:
    from tokenpulse.alerts.service import AlertService

EXPLAINED_BY = "explained by"
# The kinds of state, as the metrics label them (``inhibited by X`` -> ``inhibited``).
KINDS = ("pending", "firing", "explained", "inhibited", "silenced")


class AlertViews:
    """Joins the detectors' alert states with the notify pipeline's (``service``: none in a process
    that does not notify)."""

    def __init__(self, states: LiveAlerts, service: AlertService | None = None) -> None:
        self.states = states
        self.service = service

    def state(self, alert: Alert) -> str:
        """The state ``alert`` really has (see the module's docstring)."""
        if alert.state != AlertState.FIRING:
            return str(alert.state)
        if not alert.notified and alert.explained_by:
            return f"{EXPLAINED_BY} {alert.explained_by}"
        muted = self.service.dispatcher.muted.get(alert.fingerprint) if self.service else None
        return muted or str(AlertState.FIRING)

    def incident(self, alert_id: str) -> str | None:
        """The id of the open or recent incident holding the alert, if any."""
        return self.service.incident_of(alert_id) if self.service else None

    def annotate(self, alert: Alert, document: dict[str, Any]) -> dict[str, Any]:
        """An alert's JSON with its real state (``status``) and its incident."""
        return {**document, "status": self.state(alert), "incident": self.incident(alert.fingerprint)}

    def update_metrics(self) -> None:
        """``tokenpulse_alerts_firing`` counts the alerts receivers hear of; ``tokenpulse_alerts``
        every alert by the kind of state it really has."""
        kinds: Counter[tuple[str, str, str]] = Counter()
        for alert in list(self.states.alerts.values()):  # a copy: the detector thread updates them
            if alert.state == AlertState.RESOLVED:
                continue
            kind = self.state(alert).split(" ", 1)[0]
            kinds[(alert.detector, str(alert.severity), kind)] += 1
        metrics.ALERTS_FIRING.clear()
        metrics.ALERTS.clear()
        for (detector, severity, kind), count in kinds.items():
            metrics.ALERTS.labels(detector, severity, kind).set(count)
            if kind == "firing":
                metrics.ALERTS_FIRING.labels(detector, severity).set(count)
