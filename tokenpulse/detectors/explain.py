"""Explained symptoms: a symptom's alert is held back while an alert on its cause covers the same scope.

A prompt-cache collapse makes the calls of its route cost several times more, and slower to their first
token (the whole prompt is processed again); a reasoning blowup or a tool calling an expensive model
costs more too. The page that helps is the cause's, with its suspects and runbook; a cost_spike alert
beside it would only repeat it. So a symptom alert fires (is emitted) only while no cause alert
(``contract.CAUSES``) — pending, firing, or resolved less than RELEASE_AFTER ago — overlaps its scope;
meanwhile the alert says which alert explains it (``Alert.explained_by``), so every view can show it.
The grace after the cause resolves lets the symptom's trailing windows drain: one held back that is
still firing after it, and whose latest minutes still speak for the change (``Alert.current``), is a
problem of its own and fires then; one whose alarm only awaits the evidence that it is back (a thin user
proves that over hours) stays held back until it resolves; one that resolved while held back is never
emitted at all. Half an hour: a cost spike's evidence that the spend is back takes its 10-minute floor
and more (the spend since the spike began stays high while the escalation's calls age out of it: 19
minutes after a 45-minute routing escalation in the scenario benchmark, which paged at 15).

This is not inhibition: that word belongs to the alerts' configured rules (``alerts.stages``), which mute
an emitted alert at notification time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from tokenpulse.alerts.contract import CAUSES, AlertState, Scope, Transition, overlaps
from tokenpulse.detectors.state import RESOLVED_RETENTION, Alert, AlertStates

RELEASE_AFTER = timedelta(minutes=30)
assert RELEASE_AFTER <= RESOLVED_RETENTION, "a cause is forgotten before its grace ends"

__all__ = ["RELEASE_AFTER", "explained_by", "hold_back", "overlaps"]


def explained_by(states: AlertStates, detector: str, scope: Scope, moment: datetime) -> Alert | None:
    """The alert of a cause of ``detector`` that covers ``scope`` at ``moment``, if any."""
    causes = CAUSES.get(detector, frozenset())
    return next(
        (
            a
            for a in list(states.alerts.values())
            if a.detector in causes
            and overlaps(a.scope, scope)
            and (
                a.state in (AlertState.PENDING, AlertState.FIRING)
                or (a.resolved_at is not None and moment - a.resolved_at < RELEASE_AFTER)
            )
        ),
        None,
    )


def hold_back(states: AlertStates, transitions: Iterable[Transition], moment: datetime) -> list[Transition]:
    """The transitions at ``moment`` that are to be emitted, and the held-back alerts released now."""
    emitted = []
    for transition in transitions:
        alert = states.alerts.get((transition.detector, transition.scope))
        if transition.status == AlertState.FIRING:
            cause = explained_by(states, transition.detector, transition.scope, moment)
            if alert is not None:
                alert.explained_by = cause.fingerprint if cause else ""
            if cause is not None:
                continue
            if alert is not None:
                alert.notified = True
        elif transition.status == AlertState.RESOLVED and alert is not None and not alert.notified:
            continue
        emitted.append(transition)
    for alert in states.firing():
        if alert.notified:
            continue
        cause = explained_by(states, alert.detector, alert.scope, moment)
        if cause is None and alert.explained_by and not alert.current:
            continue  # what it holds is its cause's spend, not yet outweighed: it stays explained
        alert.explained_by = cause.fingerprint if cause else ""
        if cause is None:
            alert.notified = True
            emitted.append(alert.transition(AlertState.FIRING, moment))
    return emitted
