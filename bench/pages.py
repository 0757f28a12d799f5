"""Pages per incident: what one injected incident costs on-call, after the real incident engine.

A page is a notification that opens something new for on-call: a new incident (a Slack message, a
PagerDuty incident). An escalation, an alert joining an open incident, or an alert coming back soon after
its incident resolved (which reopens it: the same message edited, the same dedup key) is not one.

``count_pages`` runs a scope's transitions (the engine's, in order) through ``alerts.incidents.Correlator``
and counts, within a window around one injected incident, the incidents its firings opened and the
incidents they reopened, beside the alert firings (what one page per firing would have cost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tokenpulse.alerts.contract import AlertState, Transition
from tokenpulse.alerts.incidents import Correlator
from tokenpulse.alerts.model import Links, event_from_transition

_LINKS = Links("", "")  # the benchmark sends nothing: no link is followed


@dataclass(frozen=True)
class Pages:
    """What the firings of one injected incident cost on-call."""

    opened: int  # new incidents: pages
    reopened: int  # incidents brought back (edited in place, not a new page)
    firings: int  # alert firings (an escalation is not one): one page each without incidents


def count_pages(transitions: Iterable[Transition], start: datetime, end: datetime) -> Pages:
    """Pages from the firings in [start, end] of ``transitions`` (all of them, in order: the resolves
    and firings outside the window still open and resolve incidents)."""
    correlator = Correlator()
    opened = reopened = firings = 0
    started: set[tuple[str, datetime]] = set()  # (alert id, onset): one firing per life of an alert
    for transition in transitions:
        resolved = {i.id for i in correlator.incidents.values() if i.resolved_at is not None}
        incident, event = correlator.observe(event_from_transition(transition, _LINKS))
        if not start <= transition.at <= end or transition.status != AlertState.FIRING:
            continue
        if (event.id, event.started_at) not in started:
            started.add((event.id, event.started_at))
            firings += 1
        opened += len(incident.timeline) == 1  # the firing that opened it is its first entry
        reopened += incident.id in resolved and incident.state == "open"
    return Pages(opened, reopened, firings)
