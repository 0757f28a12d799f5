"""Groups alerts per route and flushes each group on its timers (Alertmanager's dispatcher).

``submit`` is what the detector thread calls: it records the events (a local SQLite write) and returns;
nothing here talks to a receiver. ``flush_due`` runs on the dispatcher's own thread (or a test's fake
clock): each group due is passed, per receiver, through the stages of ``stages.PIPELINE`` (inhibit ->
silence -> dedup -> record), and what is to be sent is recorded in the outbox for the delivery workers.
Why each held alert is muted (inhibited by which alert, silenced by which silence) is kept for the views.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tokenpulse.alerts.model import RESOLVED, AlertEvent, Clock
from tokenpulse.alerts.stages import (
    ALL_LABELS,
    BY_INCIDENT,
    Flush,
    InhibitRule,
    Route,
    group_key,
    matching_routes,
    run_pipeline,
)
from tokenpulse.alerts.store import AlertStore

log = logging.getLogger(__name__)


@dataclass
class Group:
    route: int
    key: str
    labels: dict[str, str]
    next_flush: datetime
    alerts: dict[str, AlertEvent] = field(default_factory=dict)


# An incident by id as receivers show it, given why alerts are muted; {} when there is none.
Describe = Callable[[str, Mapping[str, str]], dict[str, Any]]


def _no_incident(incident_id: str, muted: Mapping[str, str]) -> dict[str, Any]:
    return {}


class Dispatcher:
    def __init__(
        self,
        store: AlertStore,
        routes: Sequence[Route],
        inhibit_rules: Sequence[InhibitRule],
        clock: Clock,
        describe: Describe = _no_incident,
    ) -> None:
        self.store = store
        self.routes = list(routes)
        self.inhibit_rules = list(inhibit_rules)
        self.clock = clock
        self.describe = describe
        self.groups: dict[str, Group] = {}
        self.muted: dict[str, str] = {}  # held alert id -> why it is muted, as of the last flush
        self._lock = threading.Lock()
        # After a restart the held alerts are grouped again; the log keeps what was already sent.
        now = clock.now()
        with self._lock:
            for event in store.load_alerts():
                self._insert(event, now)

    def submit(self, events: Sequence[AlertEvent]) -> None:
        """Take new alert events (recorded before this returns)."""
        if not events:
            return
        self.store.save_alerts(events)
        now = self.clock.now()
        with self._lock:
            for event in events:
                self._insert(event, now)

    def _insert(self, event: AlertEvent, now: datetime) -> None:
        labels = event.labels
        for index in matching_routes(self.routes, labels):
            route = self.routes[index]
            group_labels = route.group_labels(labels)
            if BY_INCIDENT in route.group_by and not event.incident:
                # An alert notified before incidents existed stays in its group of one, as then: its
                # receivers' log, Slack message and PagerDuty key are that group's, and it resolves there.
                group_labels = replace(route, group_by=(ALL_LABELS,)).group_labels(labels)
            key = group_key(index, group_labels)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(index, key, group_labels, now + route.group_wait)
            group.alerts[event.id] = event

    def flush_due(self) -> int:
        """Flush every group whose timer is due; returns how many notifications were recorded."""
        now = self.clock.now()
        recorded = 0
        with self._lock:
            held = {a.id: a for g in self.groups.values() for a in g.alerts.values()}
            silences = self.store.silences()
            muted: dict[str, str] = {}
            flushed: set[str] = set()
            for group in [g for g in self.groups.values() if g.next_flush <= now]:
                route = self.routes[group.route]
                flushed |= set(group.alerts)
                incidents = {a.incident for a in group.alerts.values()}
                incident_id = incidents.pop() if len(incidents) == 1 else ""
                for receiver in route.receivers:
                    flush = Flush(
                        self.store, route, group.key, group.labels, receiver, now, list(held.values()),
                        silences, self.inhibit_rules, muted,
                        incident=lambda why, i=incident_id: self.describe(i, why) if i else {},
                    )  # fmt: skip
                    run_pipeline(flush, list(group.alerts.values()))
                    recorded += flush.recorded
                group.next_flush = now + route.group_interval
                # A resolved alert has had its say in this group.
                for alert_id in [i for i, a in group.alerts.items() if a.status == RESOLVED]:
                    del group.alerts[alert_id]
                if not group.alerts:
                    del self.groups[group.key]
            still_held = {i for g in self.groups.values() for i in g.alerts}
            gone = [i for i in held if i not in still_held]
            # Groups not due keep what their last flush found.
            kept = {i: why for i, why in self.muted.items() if i not in flushed}
            self.muted = {i: why for i, why in (kept | muted).items() if i in still_held}
        if gone:
            self.store.forget_alerts(gone)
        return recorded

    def legacy(self, alert_id: str) -> bool:
        """Whether the alert is held as it was notified before incidents existed (no incident)."""
        with self._lock:
            return any(alert_id in g.alerts and not g.alerts[alert_id].incident for g in self.groups.values())

    def held(self) -> list[AlertEvent]:
        with self._lock:
            return list({a.id: a for g in self.groups.values() for a in g.alerts.values()}.values())
