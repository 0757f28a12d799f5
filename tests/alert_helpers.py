"""Builders for alert tests: a fake clock and alert events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tokenpulse.alerts.model import AlertEvent, Links, event_from_transition
from tokenpulse.detectors.base import Transition, make_scope

T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
LINKS = Links("http://tp.test:8000/runbooks", "http://tp.test:8000")


class FakeClock:
    """Time moves only when a test (or a notifier's rate-limit pause) says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.moment = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.moment += timedelta(seconds=seconds)

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def transition(
    detector: str = "cache_hit_collapse",
    severity: str = "critical",
    status: str = "firing",
    at: datetime = T0,
    **scope: str,
) -> Transition:
    scope = scope or {"service": "support", "route": "/chat", "model": "claude-sonnet-4-5"}
    return Transition(
        at=at,
        status=status,
        detector=detector,
        severity=severity,
        scope=make_scope(**scope),
        value=0.07,
        threshold=0.3,
        baseline=0.89,
        summary=f"{detector}: prompt-cache hit ratio 7% (threshold 30%, usual 89%)",
        started_at=at - timedelta(minutes=8),
        window=timedelta(minutes=5),
        suspects=[
            {
                "dimension": "prompt_version",
                "value": "v8",
                "share_before": 0.0,
                "share_after": 1.0,
                "new": True,
            }
        ],
    )


def event(**kwargs: object) -> AlertEvent:
    return event_from_transition(transition(**kwargs), LINKS)


def resolved(alert: AlertEvent, at: datetime) -> AlertEvent:
    return replace(alert, status="resolved", at=at)
