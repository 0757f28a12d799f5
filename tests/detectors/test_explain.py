"""A symptom (cost_spike) is held back while its cause's alert covers the scope, released after."""

from datetime import timedelta

from tests.detector_harness import minute
from tokenpulse.detectors.base import CRITICAL, WARNING, DetectorSettings, Observation, make_scope
from tokenpulse.detectors.explain import hold_back, overlaps
from tokenpulse.detectors.state import AlertStates

RULE = DetectorSettings(for_=timedelta(minutes=2), keep_firing_for=timedelta(minutes=2))
CAUSE = make_scope(service="support", route="/chat", model="claude")
SYMPTOM = make_scope(service="support", user="alice")
ELSEWHERE = make_scope(service="search", user="bob")


def observe(detector: str, scope, m: int, current: bool = True) -> Observation:
    return Observation(detector, scope, minute(m), CRITICAL if detector == "cache_hit_collapse" else WARNING,
                       1.0, 0.5, 0.1, 100, detector, current)  # fmt: skip


def drive(
    active: dict[str, dict[tuple, range]], minutes: range, current: range = range(0, 10_000)
) -> list[tuple[int, str, str, str]]:
    """The emitted transitions; symptoms' observations say their change is current in ``current``."""
    states, out = AlertStates(), []
    for m in minutes:
        now = []
        for detector, scopes in active.items():
            observations = [
                observe(detector, scope, m, m in current) for scope, span in scopes.items() if m in span
            ]
            now += states.step(detector, RULE, observations, minute(m))
        emitted = hold_back(states, now, minute(m))
        out += [(m, t.status, t.detector, dict(t.scope).get("user", "")) for t in emitted]
    return out


def test_scopes_overlap_on_shared_dimensions_only() -> None:
    assert overlaps(CAUSE, SYMPTOM) and not overlaps(CAUSE, ELSEWHERE)
    assert not overlaps(make_scope(route="/chat"), make_scope(user="alice"))  # nothing shared


def test_symptom_during_its_cause_is_never_emitted() -> None:
    active = {
        "cache_hit_collapse": {CAUSE: range(10, 40)},
        "cost_spike": {SYMPTOM: range(12, 35), ELSEWHERE: range(12, 20)},
    }
    result = drive(active, range(0, 60))
    assert result == [
        (12, "firing", "cache_hit_collapse", ""),
        (14, "firing", "cost_spike", "bob"),  # another service: not explained
        (21, "resolved", "cost_spike", "bob"),
        (41, "resolved", "cache_hit_collapse", ""),
    ]


def test_symptom_outlasting_its_cause_fires_once_the_cause_is_long_gone() -> None:
    result = drive({"cache_hit_collapse": {CAUSE: range(10, 20)}, "cost_spike": {SYMPTOM: range(11, 55)}},
                   range(0, 70))  # fmt: skip
    assert result == [
        (12, "firing", "cache_hit_collapse", ""),
        (21, "resolved", "cache_hit_collapse", ""),
        (51, "firing", "cost_spike", "alice"),  # 30 minutes after the cause resolved, still spending
        (56, "resolved", "cost_spike", "alice"),
    ]


def test_symptom_only_awaiting_evidence_that_it_is_back_stays_held_back_until_it_resolves() -> None:
    # Its spend stopped speaking for the change when its cause ended (minute 20); a thin scope takes an
    # hour and more to prove it is back. A page at 51 would be its cause's spend, paged twice.
    active = {"cache_hit_collapse": {CAUSE: range(10, 20)}, "cost_spike": {SYMPTOM: range(11, 95)}}
    result = drive(active, range(0, 110), current=range(0, 20))
    assert result == [(12, "firing", "cache_hit_collapse", ""), (21, "resolved", "cache_hit_collapse", "")]
    # Its minutes speak for the change again at 70: a problem of its own, paged then.
    result = drive(active, range(0, 110), current=[*range(0, 20), *range(70, 95)])
    assert result[2:] == [(70, "firing", "cost_spike", "alice"), (96, "resolved", "cost_spike", "alice")]


def test_symptom_draining_after_its_cause_stays_quiet() -> None:
    result = drive({"cache_hit_collapse": {CAUSE: range(10, 20)}, "cost_spike": {SYMPTOM: range(11, 45)}},
                   range(0, 60))  # fmt: skip
    assert result == [(12, "firing", "cache_hit_collapse", ""), (21, "resolved", "cache_hit_collapse", "")]


def test_a_held_back_alert_says_which_alert_explains_it() -> None:
    states = AlertStates()
    for m in range(10, 16):
        now = states.step("cache_hit_collapse", RULE, [observe("cache_hit_collapse", CAUSE, m)], minute(m))
        now += states.step("cost_spike", RULE, [observe("cost_spike", SYMPTOM, m)], minute(m))
        hold_back(states, now, minute(m))
    cause, symptom = states.alerts[("cache_hit_collapse", CAUSE)], states.alerts[("cost_spike", SYMPTOM)]
    assert symptom.state == "firing" and not symptom.notified
    assert symptom.explained_by == cause.fingerprint and cause.explained_by == ""
