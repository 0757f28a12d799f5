"""The alert state machine, promtool-style: observations at given minutes -> expected transitions."""

from datetime import timedelta

from tests.detector_harness import minute
from tokenpulse.detectors.base import CRITICAL, WARNING, DetectorSettings, Observation, make_scope
from tokenpulse.detectors.state import FIRING, PENDING, AlertStates

SCOPE = make_scope(service="a", route="/x")
RULE = DetectorSettings(for_=timedelta(minutes=5), keep_firing_for=timedelta(minutes=5))


def observed(m: int, severity: str | None = WARNING, value: float = 0.2) -> Observation:
    return Observation("d", SCOPE, minute(m), severity, value, 0.5, 0.9, 100, f"v={value}")


def drive(active: dict[int, str | None], minutes: range, rule: DetectorSettings = RULE, states=None):
    states = states or AlertStates()
    out = []
    for m in minutes:
        severity = active.get(m)
        observations = [observed(m, severity)] if severity else []
        out += [(int((t.at - minute(0)).total_seconds() // 60), t.status, t.severity)
                for t in states.step("d", rule, observations, minute(m))]  # fmt: skip
    return out, states


def test_fires_after_for_and_resolves_after_keep_firing_for() -> None:
    transitions, _ = drive({m: WARNING for m in range(10, 30)}, range(0, 60))
    assert transitions == [(15, "firing", WARNING), (34, "resolved", WARNING)]


def test_pending_that_clears_says_nothing() -> None:
    transitions, states = drive({m: WARNING for m in range(10, 14)}, range(0, 40))
    assert transitions == [] and not states.alerts


def test_one_good_window_does_not_resolve() -> None:
    active = {m: WARNING for m in range(0, 40) if m not in (20, 21)}
    transitions, _ = drive(active, range(0, 60))
    assert transitions == [(5, "firing", WARNING), (44, "resolved", WARNING)]


def test_escalation_refires_and_recovery_does_not_page_again() -> None:
    active = {m: (CRITICAL if 12 <= m < 20 else WARNING) for m in range(0, 25)}
    transitions, _ = drive(active, range(0, 40))
    assert transitions == [(5, "firing", WARNING), (12, "firing", CRITICAL), (29, "resolved", CRITICAL)]


def test_for_zero_fires_at_once_and_state_survives_a_restart() -> None:
    rule = DetectorSettings(for_=timedelta(0), keep_firing_for=timedelta(minutes=2))
    transitions, states = drive({m: CRITICAL for m in range(3, 10)}, range(0, 8), rule)
    assert transitions == [(3, "firing", CRITICAL)]
    restored = AlertStates.from_json(states.to_json())
    assert [a.state for a in restored.alerts.values()] == [FIRING]
    transitions, _ = drive({8: CRITICAL, 9: CRITICAL}, range(8, 20), rule, restored)
    assert transitions == [(11, "resolved", CRITICAL)]


def test_nothing_fires_without_observations() -> None:
    transitions, states = drive({}, range(0, 100))
    assert transitions == [] and not states.alerts
    transitions, states = drive({50: WARNING}, range(0, 51))
    assert transitions == [] and [a.state for a in states.alerts.values()] == [PENDING]
