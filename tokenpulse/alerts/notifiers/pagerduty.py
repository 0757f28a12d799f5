"""PagerDuty Events API v2: one PagerDuty incident per tokenpulse incident.

A notification about an incident is one event with ``dedup_key`` = the incident id: a trigger while any
of its audible alerts fires (PagerDuty updates the open incident with the same key as alerts join or
escalate), the resolve when none does. Alerts grouped otherwise are one trigger per alert, resolved with
the same ``dedup_key`` (the alert id).

Plain httpx rather than the ``pagerduty`` package: its client retries inside the call with blocking
sleeps (429 without limit by default), which would duplicate the outbox's durable retries and hold the
delivery thread, and the Events API is one documented JSON POST.
"""

from __future__ import annotations

from typing import Any

import httpx

from tokenpulse.alerts.model import FIRING, AlertEvent
from tokenpulse.alerts.notifiers.http import TIMEOUT, post_json, rfc3339
from tokenpulse.alerts.store import Notification

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024  # payload.summary, documented maximum
SEVERITY = {"critical": "critical", "warning": "warning"}


def pagerduty_event(alert: AlertEvent, routing_key: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if alert.status == FIRING else "resolve",
        "dedup_key": alert.id,
    }
    if alert.status != FIRING:
        return event
    summary = f"[{alert.severity}] {alert.detector}: {alert.summary}"
    payload = {
        "summary": summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…",
        "source": alert.scope.get("service") or "tokenpulse",
        "severity": SEVERITY.get(alert.severity, "error"),
        "timestamp": rfc3339(alert.at),
        "component": alert.scope.get("route") or alert.scope.get("tool") or alert.scope.get("router", ""),
        "group": alert.scope.get("model") or alert.scope.get("user", ""),
        "class": alert.detector,
        "custom_details": {
            "scope": alert.scope,
            "value": alert.value,
            "threshold": alert.threshold,
            "baseline": alert.baseline,
            "window_minutes": alert.window_minutes,
            "started_at": rfc3339(alert.started_at),
            "suspects": alert.suspects,
            "suspects_text": alert.suspects_text,
        },
    }
    event["payload"] = {k: v for k, v in payload.items() if v != ""}  # optional fields: absent, not empty
    event["links"] = [
        {"href": alert.runbook_url, "text": f"Runbook: {alert.detector}"},
        {"href": alert.dashboard_url, "text": "Dashboard"},
    ]
    event["client"] = "tokenpulse"
    event["client_url"] = alert.generator_url
    return event


def incident_event(notification: Notification, routing_key: str) -> dict[str, Any]:
    """The event of a notification about an incident (``notification.incident``)."""
    incident = notification.incident
    firing = notification.status == FIRING
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if firing else "resolve",
        "dedup_key": incident["id"],
    }
    if not firing:
        return event
    primary = next(a for a in incident["alerts"] if a["id"] == incident["primary"])
    scope = primary["scope"]
    summary = f"[{incident['severity']}] {incident['title']}"
    payload = {
        "summary": summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…",
        "source": scope.get("service") or "tokenpulse",
        "severity": SEVERITY.get(incident["severity"], "error"),
        "timestamp": rfc3339(max(a.at for a in notification.alerts)),
        "component": scope.get("route") or scope.get("tool") or scope.get("router", ""),
        "group": scope.get("model") or scope.get("user", ""),
        "class": primary["detector"],
        "custom_details": {
            "incident": incident["id"],
            "started_at": incident["started_at"],
            "alerts": incident["alerts"],
            "most_likely_cause": incident["cause"],
            "timeline": incident["timeline"],
        },
    }
    event["payload"] = {k: v for k, v in payload.items() if v != ""}
    event["links"] = [
        {"href": primary["runbook_url"], "text": f"Runbook: {primary['detector']}"},
        {"href": primary["dashboard_url"], "text": "Dashboard"},
    ]
    if incident.get("url"):
        event["links"].append({"href": incident["url"], "text": "Incident: alerts, cause, rollback"})
    event["client"] = "tokenpulse"
    return event


class PagerDutyNotifier:
    def __init__(self, routing_key: str, events_url: str = EVENTS_URL) -> None:
        self.routing_key = routing_key
        self.events_url = events_url
        self.client = httpx.Client(timeout=TIMEOUT)

    def send(self, notification: Notification) -> None:
        if notification.incident:
            event = incident_event(notification, self.routing_key)
            post_json(self.client, "pagerduty", self.events_url, event)
            return
        for alert in notification.alerts:
            post_json(self.client, "pagerduty", self.events_url, pagerduty_event(alert, self.routing_key))
