"""The live detector cycle of `tokenpulse serve`: evaluate now, persist alert state, record transitions."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tokenpulse import metrics
from tokenpulse.alerts.contract import Transition
from tokenpulse.detectors import health
from tokenpulse.detectors.base import Detector
from tokenpulse.detectors.engine import Engine, floor_minute, runbook_url
from tokenpulse.detectors.explain import hold_back
from tokenpulse.detectors.history import HistoryCache
from tokenpulse.detectors.state import AlertStates
from tokenpulse.memory import large_buffers_reused
from tokenpulse.storage.store import Store

log = logging.getLogger(__name__)

# Spans reach storage seconds after their call ended (exporter batching, the log's group commit):
# a minute is evaluated once it is this far in the past, so its windows are complete.
INGEST_DELAY = timedelta(seconds=30)


class DetectorService:
    """One evaluation per call of ``cycle``; APScheduler calls it every interval."""

    def __init__(
        self,
        store: Store,
        detectors: Sequence[Detector],
        state_path: Path,
        runbook_base_url: str,
        on_transitions: Callable[[list[Transition]], None] | None = None,
        storage_problem: Callable[[], str | None] = lambda: None,
    ) -> None:
        """``storage_problem`` says what keeps acknowledged data from storage (the writer's inserts
        failing), or None; with the detector queries' own failures it drives ``tokenpulse_unhealthy``."""
        self.store = store
        self.storage_problem = storage_problem
        self.state_path = state_path
        self.runbook_base_url = runbook_base_url
        self.on_transitions = on_transitions
        self.engine = Engine(detectors, _load_states(state_path), HistoryCache())

    def cycle(self, now: datetime | None = None) -> list[Transition]:
        """Evaluate every detector at the last whole minute at least INGEST_DELAY before ``now``."""
        started = time.perf_counter()
        moment = floor_minute((now or datetime.now(UTC)) - INGEST_DELAY)
        problems = []
        try:
            # The cycle's week-long grids reuse the memory freed by the ones before them.
            with large_buffers_reused():
                transitions = self.engine.run(self.store, [moment], self.runbook_base_url)
        except Exception as error:
            metrics.DETECTOR_ERRORS.inc()
            log.exception("detector cycle at %s failed", moment.isoformat())
            transitions = []
            problems.append(f"detector queries failed ({type(error).__name__}: {error})")
        if (problem := self.storage_problem()) is not None:
            problems.append(problem)
        states = self.engine.states
        observed = health.observations(problems, moment)
        health_transitions = states.step(health.NAME, health.SETTINGS, observed, moment)
        url = runbook_url(self.runbook_base_url, health.NAME)
        transitions += [
            replace(t, runbook_url=url, window=health.SETTINGS.window)
            for t in hold_back(states, health_transitions, moment)  # marks it notified, explains nothing
        ]
        self._save_state()
        if transitions:
            self._record(transitions)
            for transition in transitions:
                log.warning("alert %s: %s", transition.status, transition.summary)
            if self.on_transitions:
                self.on_transitions(transitions)
        # tokenpulse_alerts_firing is the alert service's (alerts.views): it knows what receivers hear.
        metrics.DETECTOR_CYCLE_SECONDS.observe(time.perf_counter() - started)
        return transitions

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.engine.states.to_json()))
        os.replace(tmp, self.state_path)

    def _record(self, transitions: list[Transition]) -> None:
        """Store the transitions in ``alert_events``; with storage down they are still notified."""
        rows = [
            [
                t.at, t.fingerprint, t.status, t.detector, t.severity, dict(t.scope),
                t.value, t.threshold, t.baseline, t.summary, json.dumps(t.suspects), t.runbook_url,
                t.started_at,
            ]
            for t in transitions
        ]  # fmt: skip
        try:
            self.store.client.insert("alert_events", rows, column_names=ALERT_EVENT_COLUMNS)
        except Exception:
            log.exception("could not record %d alert transition(s) in alert_events", len(rows))


def _load_states(path: Path) -> AlertStates | None:
    """The alert state saved by the last run; an unreadable file must not keep the daemon down."""
    if not path.exists():
        return None
    try:
        return AlertStates.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as error:
        log.warning("ignoring unreadable alert state %s (%s): alerts start from inactive", path, error)
        return None


ALERT_EVENT_COLUMNS = (
    "at", "fingerprint", "status", "detector", "severity", "scope", "value", "threshold", "baseline",
    "summary", "suspects", "runbook_url", "started_at",
)  # fmt: skip
