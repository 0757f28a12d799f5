"""Push to an existing Alertmanager (``POST /api/v2/alerts``), as Prometheus does.

A firing alert is posted with ``endsAt`` a few refresh intervals ahead and posted again every refresh
(its route repeats it), so Alertmanager keeps it while tokenpulse does and lets it lapse if tokenpulse
goes away; a resolved alert is posted with ``endsAt`` its resolution time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tokenpulse.alerts.model import FIRING, AlertEvent, Clock
from tokenpulse.alerts.notifiers.http import TIMEOUT, post_json, rfc3339
from tokenpulse.alerts.store import Notification


def postable_alert(alert: AlertEvent, ends_at_if_firing: str) -> dict[str, Any]:
    return {
        "labels": alert.labels,
        "annotations": alert.annotations(),
        "startsAt": rfc3339(alert.started_at),
        "endsAt": ends_at_if_firing if alert.status == FIRING else rfc3339(alert.at),
        "generatorURL": alert.generator_url,
    }


class AlertmanagerNotifier:
    def __init__(self, url: str, clock: Clock, refresh: timedelta) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.clock = clock
        self.hold = 4 * refresh  # Prometheus' choice: four missed refreshes end the alert
        self.client = httpx.Client(timeout=TIMEOUT)

    def send(self, notification: Notification) -> None:
        ends_at = rfc3339(self.clock.now() + self.hold)
        post_json(
            self.client, "alertmanager", self.url, [postable_alert(a, ends_at) for a in notification.alerts]
        )
