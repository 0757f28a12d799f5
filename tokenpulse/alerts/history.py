"""Alerts as the API, the runbook pages and the overview page show them: the live state first, else the
``alert_events`` log of every transition."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tokenpulse.alerts.contract import TENANT, UNHEALTHY, Alert, LiveAlerts
from tokenpulse.alerts.views import AlertViews
from tokenpulse.storage.store import Store


def visible_to(tenant: str | None, detector: str, scope: Mapping[str, str]) -> bool:
    """Whether an API key of ``tenant`` may read an alert: its own tenant's, and tokenpulse's own health,
    which holds no tenant's data and concerns them all. Without keys (``tenant`` None), every alert."""
    return tenant is None or scope.get(TENANT) == tenant or detector == UNHEALTHY


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
        "active_at": _utc(started).isoformat(),
        "fired_at": _utc(at).isoformat() if status == "firing" else None,
        "resolved_at": _utc(at).isoformat() if status == "resolved" else None,
    }


def find_alert(
    states: LiveAlerts,
    store: Store,
    alert_id: str,
    tenant: str | None = None,
    views: AlertViews | None = None,
) -> dict[str, Any] | None:
    """An alert by id, live (with its real state: ``views``) or else as last recorded; None if there
    is none ``tenant`` may read."""
    views = views or AlertViews(states)
    live = list(states.alerts.values())  # a copy: the detector thread updates the states
    found = next((views.annotate(a, alert_json(a)) for a in live if a.fingerprint == alert_id), None)
    found = found or latest_event(store, alert_id)
    return found if found and visible_to(tenant, found["detector"], found["scope"]) else None


def alert_history(
    store: Store, start: datetime, end: datetime, limit: int, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Transitions in [start, end) that ``tenant`` may read, newest first, with their runbook links."""
    # visible_to, in SQL: the limit applies to what the key may read
    visible = f" AND (scope['{TENANT}'] = {{tenant:String}} OR detector = {{health:String}})"
    visible = "" if tenant is None else visible
    result = store.query(
        "SELECT at, fingerprint, status, detector, severity, scope, value, threshold, baseline, summary, "
        "runbook_url, started_at FROM alert_events "
        f"WHERE at >= {{start:DateTime('UTC')}} AND at < {{end:DateTime('UTC')}}{visible} "
        "ORDER BY at DESC, detector LIMIT {limit:UInt32}",
        {"start": start, "end": end, "limit": limit, "tenant": tenant or "", "health": UNHEALTHY},
    )
    return [
        {
            "id": row["fingerprint"],
            "at": _utc(row["at"]).isoformat(),
            "status": row["status"],
            "detector": row["detector"],
            "severity": row["severity"],
            "scope": dict(row["scope"]),
            "value": row["value"],
            "threshold": row["threshold"],
            "baseline": row["baseline"],
            "summary": row["summary"],
            "runbook_url": _with_alert(row["runbook_url"], row["fingerprint"]),
            "started_at": _utc(row["started_at"]).isoformat(),
        }
        for row in result.named_results()
    ]


def _with_alert(runbook_url: str, alert_id: str) -> str:
    """The runbook link with the alert's context (``?alert=<id>``), as receivers got it."""
    if not runbook_url or "alert=" in runbook_url:
        return runbook_url
    return f"{runbook_url}{'&' if '?' in runbook_url else '?'}alert={urllib.parse.quote(alert_id, safe='')}"


def _utc(moment: datetime) -> datetime:
    # The columns are DateTime('UTC'); the embedded client returns them without a zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
