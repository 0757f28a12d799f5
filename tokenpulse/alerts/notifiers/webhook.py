"""Generic webhook: Alertmanager's webhook payload (version 4), so existing receivers work unchanged.

A notification about an incident is one payload per update of the incident: its alerts, each annotated
with the incident (``incident``, ``incident_title``, ``incident_state``, ``most_likely_cause``), which
then are common annotations too. ``incident_state`` is ``open``, ``resolved``, or ``reopened`` while an
incident that resolved is open again (an alert of it came back soon after).
"""

from __future__ import annotations

from typing import Any

import httpx

from tokenpulse.alerts.model import FIRING, AlertEvent
from tokenpulse.alerts.notifiers.http import TIMEOUT, post_json, rfc3339
from tokenpulse.alerts.store import Notification

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def webhook_alert(alert: AlertEvent) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations(),
        "startsAt": rfc3339(alert.started_at),
        "endsAt": ZERO_TIME if alert.status == FIRING else rfc3339(alert.at),
        "generatorURL": alert.generator_url,
        "fingerprint": alert.id,
    }


def _incident_annotations(incident: dict[str, Any]) -> dict[str, str]:
    if not incident:
        return {}
    return {
        "incident": incident["id"],
        "incident_title": incident["title"],
        "incident_state": _state(incident),
        "incident_severity": incident["severity"],
        "most_likely_cause": incident["cause"][0]["why"],
    }


def _state(incident: dict[str, Any]) -> str:
    return "reopened" if incident["state"] == "open" and incident.get("reopened_at") else incident["state"]


def webhook_payload(notification: Notification, external_url: str) -> dict[str, Any]:
    alerts = notification.alerts
    extra = _incident_annotations(notification.incident)
    payload_alerts = [webhook_alert(a) for a in alerts]
    for alert in payload_alerts:
        alert["annotations"] |= extra
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": notification.group_labels,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in payload_alerts]),
        "externalURL": external_url,
        "alerts": payload_alerts,
    }


class WebhookNotifier:
    def __init__(self, url: str, external_url: str) -> None:
        self.url = url
        self.external_url = external_url
        self.client = httpx.Client(timeout=TIMEOUT)

    def send(self, notification: Notification) -> None:
        post_json(self.client, "webhook", self.url, webhook_payload(notification, self.external_url))
