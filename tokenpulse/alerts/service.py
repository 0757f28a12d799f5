"""Wiring: detector transitions in, notifications out, on threads of their own.

``AlertService.on_transitions`` is DetectorService's hook: it turns transitions into alert events, puts
each in its incident (``alerts.incidents``, recorded) and hands them to the dispatcher (a local SQLite
write), so neither a slow nor a failing receiver can hold up a detector cycle. A dispatcher thread
flushes due groups every second; one delivery thread per receiver drains the outbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from tokenpulse import metrics
from tokenpulse.alerts.contract import AlertState, LiveAlerts, Transition
from tokenpulse.alerts.delivery import Backoff, Delivery
from tokenpulse.alerts.dispatcher import Dispatcher
from tokenpulse.alerts.incidents import RECENT, Correlator, Incident
from tokenpulse.alerts.model import Clock, Links, SystemClock, event_from_transition
from tokenpulse.alerts.receivers import Build, build_notifiers
from tokenpulse.alerts.settings import AlertSettings, alert_settings
from tokenpulse.alerts.store import AlertStore
from tokenpulse.alerts.views import AlertViews
from tokenpulse.config import Settings

log = logging.getLogger(__name__)

# Delivered notifications and the log of groups silent this long are forgotten (Alertmanager keeps 120 h).
RETENTION = timedelta(hours=120)
PRUNE_EVERY = timedelta(hours=1)


def links(settings: Settings, config: AlertSettings) -> Links:
    """Alert links point at the daemon's API (or ``external_url``) unless a runbook base URL is set."""
    api = config.external_url or f"http://{settings.host}:{settings.api_port}"
    return Links(settings.runbook_base_url or f"{api}/runbooks", api, config.dashboard_url)


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        config: AlertSettings,
        links: Links,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.store = store
        self.links = links
        self.notifiers = build_notifiers(config.receivers, Build(store, self.clock, links.api_base_url))
        self._incidents_lock = threading.Lock()
        self.correlator = Correlator(
            Incident.from_document(d) for d in store.load_incidents(since=self.clock.now() - RECENT)
        )
        self.dispatcher = Dispatcher(store, config.routes, config.inhibit_rules, self.clock, self.describe)
        self.delivery = Delivery(store, self.notifiers, self.clock, backoff or Backoff())
        self.views: AlertViews | None = None  # set by ``watch``: the metrics of the alerts' states
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertService:
        config = alert_settings(settings.alerts)
        return cls(AlertStore(settings.data_dir / "alerts.sqlite"), config, links(settings, config))

    def on_transitions(self, transitions: Sequence[Transition]) -> None:
        """DetectorService's hook: record the transitions for notification and return.

        Never raises into the detector cycle: the transitions are in ``alert_events`` whatever happens here.
        """
        try:
            events = [event_from_transition(t, self.links) for t in transitions]
            with self._incidents_lock:
                changed, labelled = self.correlator.observe_all(events)
                self.store.save_incidents([i.document() for i in changed])
            # An alert notified before incidents existed is still told to its receivers as then (the
            # views show it in its incident all the same).
            self.dispatcher.submit(
                [
                    plain if self.dispatcher.legacy(plain.id) else event
                    for plain, event in zip(events, labelled, strict=True)
                ]
            )
        except Exception:
            metrics.NOTIFICATIONS_FAILED.labels("all", "dropped").inc()
            log.exception("could not record %d alert transition(s) for notification", len(transitions))

    def describe(self, incident_id: str, muted: Mapping[str, str] | None = None) -> dict[str, Any]:
        """An incident as receivers and views show it (``{}`` when unknown); ``muted``: why alerts
        are muted, by default as the dispatcher last found."""
        muted = self.dispatcher.muted if muted is None else muted
        with self._incidents_lock:
            incident = self.correlator.incidents.get(incident_id)
            return incident.to_json(muted, self.links.api_base_url) if incident else {}

    def watch(self, states: LiveAlerts) -> AlertViews:
        """Join the detectors' alert states: the views (API, page, metrics) then show each alert's
        real state, and the dispatch thread keeps the alert metrics up to date."""
        self.views = AlertViews(states, self)
        self._adopt(states)
        return self.views

    def _adopt(self, states: LiveAlerts) -> None:
        """Put alerts that fired before their incident existed (the state of a run before incidents, or
        of a backtest) in incidents, so the views show them in one; nothing is sent for them here."""
        orphans = [
            event_from_transition(a.transition(AlertState.FIRING, a.fired_at or a.active_at), self.links)
            for a in sorted(states.firing(), key=lambda a: a.fired_at or a.active_at)
            if a.notified and self.incident_of(a.fingerprint) is None
        ]
        if orphans:
            with self._incidents_lock:
                changed, _ = self.correlator.observe_all(orphans)
                self.store.save_incidents([i.document() for i in changed])

    def incident_of(self, alert_id: str) -> str | None:
        """The open (else the latest) incident holding the alert."""
        with self._incidents_lock:
            holding = [i for i in self.correlator.incidents.values() if alert_id in i.alerts]
        holding.sort(key=lambda i: (i.state == "open", i.opened_at))
        return holding[-1].id if holding else None

    def incidents(self) -> list[dict[str, Any]]:
        """Open and recently resolved incidents, newest first, as the views show them."""
        muted = dict(self.dispatcher.muted)
        with self._incidents_lock:
            self.correlator.forget(self.clock.now() - RECENT)
            chosen = sorted(self.correlator.incidents.values(), key=lambda i: i.opened_at, reverse=True)
            return [i.to_json(muted, self.links.api_base_url) for i in chosen]

    def start(self) -> None:
        log.info("alert receivers: %s", ", ".join(self.notifiers) or "none configured")
        self._threads = [threading.Thread(target=self._dispatch, name="alerts-dispatch", daemon=True)]
        self._threads += [
            threading.Thread(
                target=self.delivery.run, args=(name, self._stop), name=f"alerts-{name}", daemon=True
            )
            for name in self.notifiers
        ]
        for thread in self._threads:
            thread.start()

    def _dispatch(self) -> None:
        pruned_at = self.clock.now() - PRUNE_EVERY
        while not self._stop.is_set():
            try:
                self.dispatcher.flush_due()
                if self.clock.now() - pruned_at >= PRUNE_EVERY:
                    pruned_at = self.clock.now()
                    self.store.prune(pruned_at - RETENTION)
                    with self._incidents_lock:  # the store keeps them; memory holds the recent ones
                        self.correlator.forget(pruned_at - RECENT)
                if self.views is not None:
                    self.views.update_metrics()
                pending = self.store.pending_count()
                for name in self.notifiers:
                    metrics.NOTIFICATIONS_PENDING.labels(name).set(pending.get(name, 0))
            except Exception:
                log.exception("alert dispatch failed; retrying")
            self._stop.wait(1.0)

    def stop(self) -> None:
        """Stop the threads; what is not yet delivered stays in the outbox for the next start."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self.store.close()
