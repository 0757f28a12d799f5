"""The alert contract: what ``tokenpulse.detectors`` produces and ``tokenpulse.alerts`` consumes.

Imports go one way: detectors -> this module <- alerts. It imports nothing from either package (a test
checks), so the state machine (detectors) and the notify pipeline (alerts) agree on one vocabulary:

- ``AlertState``: an alert's life, inactive -> pending -> firing -> resolved (Prometheus' rule states);
- ``Severity``: warning < critical (an escalation is a move up this order);
- ``fingerprint``: the stable id of (detector, scope), the deduplication key of every receiver;
- ``Transition``: an alert changing state, with everything a receiver needs (its window included, so
  nobody hands detector settings across by hand);
- ``CAUSES``: which detectors' alerts explain which symptom. The detectors use it to hold a symptom back
  while its cause's alert covers the scope ("explained by"); the alerts use it to put a cause and its
  symptoms in one incident. "Inhibit" is the alerts' word only: a configured rule that mutes an alert.
- ``Alert`` and ``LiveAlerts``: an alert as the detectors' state machine keeps it, and the live set of
  them the alerts' views read (the API, the pages, the metrics show each alert's real state);
- ``TENANT`` and ``UNHEALTHY``: the scope dimension that says whose an alert is, and tokenpulse's own
  health alert, which holds no tenant's data and concerns every tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

Scope = tuple[tuple[str, str], ...]  # (dimension, value) pairs in a fixed order: hashable and stable

# The scope dimension naming the tenant an alert belongs to (an API key reads its own tenant's alerts).
TENANT = "tenant"
# tokenpulse's own health alert (the detectors cannot see the data): every tenant may read it.
UNHEALTHY = "tokenpulse_unhealthy"


class AlertState(StrEnum):
    """Where an alert is in its life. A ``StrEnum``: it is its value in JSON, SQL and labels."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.WARNING: 1, Severity.CRITICAL: 2}


def worst(severities: list[str]) -> Severity:
    """The most severe of ``severities`` (warning when there are none)."""
    return max((Severity(s) for s in severities), key=lambda s: s.rank, default=Severity.WARNING)


def fingerprint(detector: str, scope: Scope) -> str:
    """A stable id per (detector, scope): the deduplication key of notifications."""
    text = detector + "\0" + "\0".join(f"{k}={v}" for k, v in scope)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def overlaps(a: Scope, b: Scope) -> bool:
    """Two scopes overlap when they share a dimension and agree on every dimension they share
    (``service=a`` and ``service=a, route=/x`` are nested; ``route=/x`` and ``user=u`` share nothing)."""
    left, right = dict(a), dict(b)
    shared = left.keys() & right.keys()
    return bool(shared) and all(left[d] == right[d] for d in shared)


# What makes prompts slower to process: longer prompts, or prompts no longer served from the cache.
_SLOWER_PROMPTS = frozenset({"cache_hit_collapse", "cache_not_applied", "prompt_growth", "reasoning_blowup"})

# symptom detector -> the detectors whose alerts explain it (a cause's page, with its suspects and
# runbook, is the one that helps; the symptom's beside it only repeats it)
CAUSES: dict[str, frozenset[str]] = {
    "cost_spike": _SLOWER_PROMPTS | {"routing_escalation", "tool_hidden_cost"},
    "ttft_slo": _SLOWER_PROMPTS,
    # Timed-out calls are the slowest calls there are: a timeout surge moves the p99 with it.
    "latency_p99_drift": _SLOWER_PROMPTS | {"timeout_surge"},
    # A tool that starts calling a model returns more for the route to paste into its next prompt.
    "prompt_growth": frozenset({"tool_hidden_cost"}),
}


def related(a: str, b: str) -> bool:
    """Whether alerts of detectors ``a`` and ``b`` can share a cause: the same detector, or one a
    declared cause of the other."""
    return a == b or a in CAUSES.get(b, ()) or b in CAUSES.get(a, ())


@dataclass(frozen=True)
class Transition:
    """An alert changing state: the object backtests print and notifiers send."""

    at: datetime
    status: str  # AlertState.FIRING | AlertState.RESOLVED
    detector: str
    severity: str  # a Severity
    scope: Scope
    value: float
    threshold: float
    baseline: float | None
    summary: str
    started_at: datetime
    suspects: list[dict[str, Any]] = field(default_factory=list)
    runbook_url: str = ""
    window: timedelta = timedelta(0)  # the detector's evaluation window (0 when it has none)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.detector, self.scope)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": str(self.status),
            "detector": self.detector,
            "severity": str(self.severity),
            "scope": dict(self.scope),
            "value": _round(self.value),
            "threshold": _round(self.threshold),
            "baseline": None if self.baseline is None else _round(self.baseline),
            "summary": self.summary,
            "suspects": self.suspects,
            "runbook_url": self.runbook_url,
            "started_at": self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _round(value: float) -> float:
    return float(f"{value:.6g}")


@dataclass
class Alert:
    """One alert per (detector, scope) as the detectors' state machine keeps it (``detectors.state``)."""

    detector: str
    scope: Scope
    state: str  # an AlertState
    severity: str  # a Severity
    active_at: datetime  # when the condition started holding
    last_active_at: datetime  # the last evaluation at which it held
    value: float
    threshold: float
    baseline: float | None
    summary: str
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    suspects: list[dict[str, Any]] = field(default_factory=list)  # found when it fired
    notified: bool = False  # its firing was emitted (not held back: see detectors.explain)
    explained_by: str = ""  # while held back: the id of the cause's alert that explains it
    current: bool = True  # its latest observation still speaks for the change (``Observation.current``)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.detector, self.scope)

    def transition(self, status: str, at: datetime) -> Transition:
        """The alert moving to ``status`` at ``at``, as receivers are told."""
        return Transition(
            at=at,
            status=status,
            detector=self.detector,
            severity=self.severity,
            scope=self.scope,
            value=self.value,
            threshold=self.threshold,
            baseline=self.baseline,
            summary=self.summary,
            started_at=self.active_at,
            suspects=self.suspects,
        )


@runtime_checkable
class LiveAlerts(Protocol):
    """The detectors' live alerts as the alerts side reads them (``detectors.state.AlertStates`` is one);
    the daemon hands them over at wiring time."""

    @property
    def alerts(self) -> Mapping[tuple[str, Scope], Alert]: ...

    def firing(self) -> list[Alert]: ...
