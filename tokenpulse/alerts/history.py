"""Alerts as the API and the runbook pages show them: the live state first, else the ``alert_events`` log."""

from __future__ import annotations

import json
from typing import Any

from tokenpulse.detectors.state import Alert, AlertStates
from tokenpulse.storage.store import Store


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.fingerprint,
        "detector": alert.detector,
        "state": alert.state,
        "severity": alert.severity,
        "scope": dict(alert.scope),
        "value": alert.value,
        "threshold": alert.threshold,
        "baseline": alert.baseline,
        "summary": alert.summary,
        "suspects": alert.suspects,
        "active_at": alert.active_at.isoformat(),
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def latest_event(store: Store, alert_id: str) -> dict[str, Any] | None:
    """The last recorded transition of an alert (firing or resolved), in the live alerts' shape."""
    rows = store.rows(
        """
        SELECT detector, status, severity, scope, value, threshold, baseline, summary, suspects, at,
               started_at
        FROM alert_events WHERE fingerprint = {id:String} ORDER BY at DESC LIMIT 1
        """,
        {"id": alert_id},
    )
    if not rows:
        return None
    detector, status, severity, scope, value, threshold, baseline, summary, suspects, at, started = rows[0]
    return {
        "id": alert_id,
        "detector": detector,
        "state": status,
        "severity": severity,
        "scope": dict(scope),
        "value": value,
        "threshold": threshold,
        "baseline": baseline,
        "summary": summary,
        "suspects": json.loads(suspects),
        "active_at": started.isoformat(),
        "fired_at": at.isoformat() if status == "firing" else None,
        "resolved_at": at.isoformat() if status == "resolved" else None,
    }


def find_alert(states: AlertStates, store: Store, alert_id: str) -> dict[str, Any] | None:
    for alert in list(states.alerts.values()):  # a copy: the detector thread updates the states
        if alert.fingerprint == alert_id:
            return alert_json(alert)
    return latest_event(store, alert_id)
