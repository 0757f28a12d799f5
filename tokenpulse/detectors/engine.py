"""Runs detectors over evaluation times and drives the alert state machine.

Live cycles and backtests are the same code: ``Engine.run`` over one time (now) or over every step of
a range. History is read once per run; every detector evaluates all times on it in memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tokenpulse.alerts.contract import Transition
from tokenpulse.detectors.base import Coverage, Detector, Observation
from tokenpulse.detectors.explain import hold_back
from tokenpulse.detectors.history import (
    SAME_HOUR_MARGIN,
    TENANT,
    History,
    HistoryCache,
    history_ranges,
    load_history,
    tenant_histories,
)
from tokenpulse.detectors.state import FIRING, AlertStates
from tokenpulse.detectors.suspects import find_suspects
from tokenpulse.storage.store import Store


def evaluation_times(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Whole-minute evaluation times in [start, end]."""
    first = floor_minute(start)
    times = []
    moment = first if first >= start else first + timedelta(minutes=1)
    while moment <= end:
        times.append(moment)
        moment += step
    return times


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class Engine:
    def __init__(
        self,
        detectors: Sequence[Detector],
        states: AlertStates | None = None,
        cache: HistoryCache | None = None,
    ) -> None:
        """``cache``: the live service's, so that a cycle reads only what earlier cycles did not."""
        self.detectors = [d for d in detectors if d.settings.enabled]
        self.states = states or AlertStates()
        self.cache = cache
        self.coverage: list[Coverage] = []  # each scope's status at the last time evaluated

    def load(self, store: Store, times: Sequence[datetime]) -> History:
        """Read what every detector needs to evaluate ``times``."""
        trailing = max((d.lookback() for d in self.detectors), default=timedelta(0))
        margin = max((d.same_hour_margin() for d in self.detectors), default=SAME_HOUR_MARGIN)
        queries = [q for d in self.detectors for q in d.queries()]
        ranges = history_ranges(times, trailing, margin=margin)
        if self.cache is not None:
            self.cache.start_cycle(store, ranges[-1][1])
        return load_history(
            store, queries, ranges[0][0], ranges[-1][1], ranges, first_time=times[0], cache=self.cache
        )

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Transition]:
        """Evaluate every detector at ``times``, each tenant on its own history, and step the alerts
        through them in order. A tenant's alerts carry it first in their scope (none without keys).

        Detectors that evaluate every tenant in one pass (``splits_tenants = False``: the tenant is a
        scope key of theirs) get the whole history once."""
        by_detector: dict[str, dict[datetime, list[Observation]]] = {}
        # Split only for detectors that ask for it: on many tenants the split copies every frame.
        histories = tenant_histories(history) if any(d.splits_tenants for d in self.detectors) else {}
        coverage: list[Coverage] = []
        for detector in self.detectors:
            per_time: dict[datetime, list[Observation]] = defaultdict(list)
            if not detector.splits_tenants:
                observations, covered = detector.assess(history, times)
                coverage += covered
                for observation in observations:
                    per_time[observation.at].append(observation)
                by_detector[detector.name] = per_time
                continue
            for tenant, tenant_history in histories.items():
                for observation in detector.evaluate(tenant_history, times):
                    if tenant:
                        observation = replace(observation, scope=((TENANT, tenant), *observation.scope))
                    per_time[observation.at].append(observation)
            by_detector[detector.name] = per_time
        self.coverage = coverage
        transitions = []
        for moment in times:
            now = []
            for detector in self.detectors:
                observations = by_detector[detector.name].get(moment, [])
                now += self.states.step(detector.name, detector.settings, observations, moment)
            transitions += hold_back(self.states, now, moment)
        return transitions

    def run(self, store: Store, times: Sequence[datetime], runbook_base_url: str = "") -> list[Transition]:
        """Load, evaluate, and name the suspects, the runbook and the window of every transition."""
        transitions = self.evaluate(self.load(store, times), times)
        windows = {d.name: d.settings.window for d in self.detectors}
        enriched = []
        for transition in transitions:
            alert = self.states.alerts.get((transition.detector, transition.scope))
            suspects = transition.suspects
            if transition.status == FIRING:
                # The change happened before the first window that showed it.
                onset = transition.started_at - windows[transition.detector]
                suspects = find_suspects(store, transition.scope, onset, transition.at)
                if alert is not None:
                    alert.suspects = suspects
            url = runbook_url(runbook_base_url, transition.detector)
            enriched.append(
                replace(transition, suspects=suspects, runbook_url=url, window=windows[transition.detector])
            )
        return enriched


def runbook_url(base_url: str, detector: str) -> str:
    """The runbook page of ``detector`` under ``base_url`` (none without a base)."""
    return f"{base_url.rstrip('/')}/{detector}" if base_url else ""
