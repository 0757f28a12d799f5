"""Inhibition: a symptom's alert is held back while an alert on its cause covers the same scope.

A prompt-cache collapse makes the calls of its route cost several times more, and slower to their first
token (the whole prompt is processed again); a reasoning blowup or a tool calling an expensive model
costs more too. The page that helps is the cause's, with its suspects and
runbook; a cost_spike alert beside it would only repeat it. So, as with Alertmanager's inhibit rules,
a symptom alert fires (is emitted) only while no cause alert — pending, firing, or resolved less than
RELEASE_AFTER ago — overlaps its scope. The grace after the cause resolves lets the symptom's trailing
windows drain: one held back that is still firing after it is a problem of its own and fires then;
one that resolved while held back is never emitted at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from tokenpulse.detectors.base import Scope, Transition
from tokenpulse.detectors.state import FIRING, PENDING, RESOLVED, AlertStates

RELEASE_AFTER = timedelta(minutes=15)

# What makes prompts slower to process: longer prompts, or prompts no longer served from the cache.
_SLOWER_PROMPTS = frozenset({"cache_hit_collapse", "cache_not_applied", "prompt_growth", "reasoning_blowup"})

# symptom detector -> the detectors whose alerts explain it
CAUSES: dict[str, frozenset[str]] = {
    "cost_spike": _SLOWER_PROMPTS | {"routing_escalation", "tool_hidden_cost"},
    "ttft_slo": _SLOWER_PROMPTS,
    "latency_p99_drift": _SLOWER_PROMPTS,
}


def overlaps(a: Scope, b: Scope) -> bool:
    """Two scopes overlap when they share a dimension and agree on every dimension they share."""
    left, right = dict(a), dict(b)
    shared = left.keys() & right.keys()
    return bool(shared) and all(left[d] == right[d] for d in shared)


def explained(states: AlertStates, detector: str, scope: Scope, moment: datetime) -> bool:
    causes = CAUSES.get(detector, frozenset())
    return any(
        a.detector in causes
        and overlaps(a.scope, scope)
        and (
            a.state in (PENDING, FIRING)
            or (a.resolved_at is not None and moment - a.resolved_at < RELEASE_AFTER)
        )
        for a in states.alerts.values()
    )


def inhibit(states: AlertStates, transitions: Iterable[Transition], moment: datetime) -> list[Transition]:
    """The transitions at ``moment`` that are to be emitted, and the held-back alerts released now."""
    emitted = []
    for transition in transitions:
        alert = states.alerts.get((transition.detector, transition.scope))
        if transition.status == FIRING:
            if explained(states, transition.detector, transition.scope, moment):
                continue
            if alert is not None:
                alert.notified = True
        elif transition.status == RESOLVED and alert is not None and not alert.notified:
            continue
        emitted.append(transition)
    for alert in states.firing():
        if not alert.notified and not explained(states, alert.detector, alert.scope, moment):
            alert.notified = True
            emitted.append(alert.transition(FIRING, moment))
    return emitted
