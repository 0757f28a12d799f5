"""bench/pages.py: what one injected incident costs on-call, counted through the real incident engine."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from tests.alert_helpers import T0, transition
from tokenpulse.alerts.contract import Transition

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from pages import Pages, count_pages  # bench/ holds scripts, not a package

SCOPE = {"service": "s", "route": "/r"}


def fired(minute: int, severity: str = "warning", onset: int | None = None) -> Transition:
    t = transition("cost_spike", severity, at=T0 + timedelta(minutes=minute), **SCOPE)
    return replace(t, started_at=T0 + timedelta(minutes=minute - 5 if onset is None else onset))


def resolved(minute: int, onset: int) -> Transition:
    return replace(fired(minute, onset=onset), status="resolved")


def window(end: int) -> tuple[datetime, datetime]:
    return T0, T0 + timedelta(minutes=end)


def test_one_firing_and_its_escalation_is_one_page() -> None:
    transitions = [fired(0), fired(3, "critical", onset=-5), resolved(40, onset=-5)]
    assert count_pages(transitions, *window(60)) == Pages(opened=1, reopened=0, firings=1)


def test_a_firing_back_soon_after_the_resolve_reopens_instead_of_paging() -> None:
    transitions = [fired(0), resolved(20, onset=-5), fired(35), resolved(50, onset=30)]
    assert count_pages(transitions, *window(60)) == Pages(opened=1, reopened=1, firings=2)


def test_a_firing_long_after_the_resolve_is_a_new_page() -> None:
    transitions = [fired(0), resolved(20, onset=-5), fired(70), resolved(90, onset=65)]
    assert count_pages(transitions, *window(100)) == Pages(opened=2, reopened=0, firings=2)
    # Only the firings inside the window count; the earlier ones still shape the incidents.
    assert count_pages(transitions, T0 + timedelta(minutes=60), T0 + timedelta(minutes=100)) == Pages(1, 0, 1)
