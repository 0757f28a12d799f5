"""`tokenpulse backtest --notify`: a backtest's transitions through the configured receivers, as on-call
would get them — the same routes, inhibition, dedup and notifiers, but sent at once (no group waits or
repeats) and from a throwaway outbox, so a preview never touches the daemon's notification log."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from tokenpulse.alerts.contract import Transition
from tokenpulse.alerts.service import AlertService, links
from tokenpulse.alerts.settings import alert_settings
from tokenpulse.alerts.store import AlertStore, Notification
from tokenpulse.config import Settings

NEVER = timedelta(days=3650)


def preview(settings: Settings, transitions: Sequence[Transition]) -> list[Notification]:
    """Send ``transitions`` in order; returns every notification with its outcome (one attempt each)."""
    config = alert_settings(settings.alerts)
    if not config.receivers:
        raise ValueError("no receiver configured: set TOKENPULSE_SLACK_WEBHOOK_URL, ... or [alerts.*]")
    at_once = [replace(r, group_wait=timedelta(0), group_interval=timedelta(0), repeat_interval=NEVER)
               for r in config.routes]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tokenpulse-preview-") as directory:
        store = AlertStore(Path(directory) / "preview.sqlite")
        service = AlertService(store, replace(config, routes=at_once), links(settings, config))
        for transition in transitions:
            service.on_transitions([transition])
            service.dispatcher.flush_due()
            for receiver in service.notifiers:
                while service.delivery.attempt(receiver):
                    pass  # a failure is scheduled for a later retry: the loop ends there
        notifications = store.notifications()
        service.stop()
    return notifications


def notify_command(settings: Settings, transitions: Sequence[Transition]) -> int:
    """What `backtest --notify` prints (to stderr: stdout is the transitions) and its exit status."""
    try:
        notifications = preview(settings, transitions)
    except ValueError as error:
        print(f"tokenpulse backtest --notify: {error}", file=sys.stderr)
        return 2
    for n in notifications:
        outcome = "sent" if n.state == "sent" else f"{n.state}: {n.last_error}"
        detectors = ", ".join(a.detector for a in n.alerts)
        print(f"notify {n.receiver}: {n.status} {detectors} -> {outcome}", file=sys.stderr)
    return 0 if all(n.state == "sent" for n in notifications) else 1
