from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.detector_harness import Scenario, Series, between, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.detectors.catalog.routing_escalation import ROLLUP, RoutingEscalation, Settings
from tokenpulse.detectors.data import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 60  # the router's classifier starts failing open: everything escalates
BLIP = DAY + 80
DEPLOY = DAY + 40
LAST = DAY + 240


def scope(router: str, service: str = "support") -> dict[str, str]:
    return {"service": service, "router": router}


def router(name: str, calls, escalated, start: int = 0, end: int = LAST, **extra: str) -> Series:
    return Series({**scope(name), **extra}, {"calls": calls, "escalated_calls": escalated}, start, end)


def test_escalation_storm_fires_critical_and_resolves_while_confounders_stay_quiet() -> None:
    surge = between(ONSET, END, 3.0, 1.0)
    restart = lambda m: {DEPLOY: 0.0, DEPLOY + 1: 2.0}.get(m, 1.0)  # noqa: E731  one minute down, catch-up
    scenario = Scenario().add(
        ROLLUP,
        router("storm", 60, between(ONSET, END, 60, 6)),  # 10% -> 100%
        router("surge", lambda m: 60 * surge(m), lambda m: 6 * surge(m)),  # 3x traffic, 10% throughout
        router("blip", 60, between(BLIP, BLIP + 3, 60, 6)),  # 100% for 3 minutes
        router("new-thin", 2, 2, start=DAY + 30),  # 100% of 2 calls a minute: below min_calls
        router("new-busy", 60, 24, start=DAY + 30),  # 40%, no baseline: not a doubling of anything
        # a rolling deploy: rows split by service version for 10 minutes, a restart and its catch-up
        router("deploy", lambda m: 60 * restart(m), lambda m: 6 * restart(m), end=DEPLOY),
        router("deploy", lambda m: 30 * restart(m), lambda m: 3 * restart(m), DEPLOY, DEPLOY + 10,
               service_version="v1"),
        router("deploy", lambda m: 30 * restart(m), lambda m: 3 * restart(m), DEPLOY, DEPLOY + 10,
               service_version="v2"),
        router("deploy", 60, 6, start=DEPLOY + 10),
        Series(scope(""), {"calls": 500, "escalated_calls": 0}, 0, LAST),  # unrouted calls: no router
    )  # fmt: skip
    assert run(RoutingEscalation(), scenario, DAY, DAY + 120) == [
        # window of 5: 4 bad minutes at +4, the window's share 82% (Wilson bound 74%) >= 70%: critical
        (ONSET + 4, "firing", "critical", scope("storm")),
        # 4 bad minutes left in the window until END + 1; kept firing 5 more minutes
        (END + 6, "resolved", "critical", scope("storm")),
    ]


def test_doubling_of_the_usual_share_is_a_warning() -> None:
    scenario = Scenario().add(ROLLUP, router("drift", 100, between(ONSET, END, 45, 15)))  # 15% -> 45%
    assert run(RoutingEscalation(), scenario, DAY, DAY + 120) == [
        # 4 bad minutes at +4: 39% of 500 (Wilson bound 33%) >= 30% (2 x 15%), held 10 minutes (+4 ... +13);
        # never 70%
        (ONSET + 13, "firing", "warning", scope("drift")),
        (END + 6, "resolved", "warning", scope("drift")),  # held until END + 1
    ]


def test_a_doubling_must_hold_ten_minutes_to_warn() -> None:
    """A router's share doubles for 12 minutes: held from +4, warned at +13. For 11 minutes: held +4 ...
    +12, never ten evaluations: quiet (at night, harder questions escalate more for a few minutes)."""
    scenario = Scenario().add(
        ROLLUP,
        router("twelve", 100, between(ONSET, ONSET + 12, 45, 15)),
        router("eleven", 100, between(ONSET, ONSET + 11, 45, 15)),
    )
    assert run(RoutingEscalation(), scenario, DAY, DAY + 120) == [
        (ONSET + 13, "firing", "warning", scope("twelve")),
        (ONSET + 18, "resolved", "warning", scope("twelve")),
    ]


def test_the_absolute_rule_needs_no_baseline() -> None:
    """A new router that escalates 80% of its traffic saves nothing: critical from its first minute."""
    scenario = Scenario().add(ROLLUP, router("eager", 60, 48, start=DAY + 30))
    assert run(RoutingEscalation(), scenario, DAY, DAY + 60) == [
        (DAY + 34, "firing", "critical", scope("eager"))  # 4 minutes: 80% of 240, Wilson bound 71%
    ]


def test_overnight_trough_does_not_alert() -> None:
    """From 22:00 to 07:00 traffic is 5x lower; one router's night traffic is too thin to judge (3 calls a
    minute) and escalates more (harder questions at night): no observation, no alert."""
    night = lambda m: (m % DAY) < 7 * 60 or (m % DAY) >= 22 * 60  # noqa: E731
    scenario = Scenario().add(
        ROLLUP,
        router("daily", lambda m: 12 if night(m) else 60, lambda m: 1.2 if night(m) else 6, end=DAY + 600),
        router("sparse", lambda m: 3 if night(m) else 60, lambda m: 2 if night(m) else 6, end=DAY + 600),
    )
    assert run(RoutingEscalation(), scenario, DAY - 180, DAY + 600) == []
    assert run(RoutingEscalation(), scenario, DAY - 180, DAY + 600, history_from=DAY - 600) == []


def test_queries_run_on_the_real_store(tmp_path: Path, store: Store) -> None:
    """4 router decisions of which 3 escalated, and unrouted calls (escalated, which no router did): only the
    router is a scope."""
    records = [call_record(router="tier", escalated=i < 3) for i in range(4)]
    records += [call_record(router="", escalated=True) for _ in range(2)]
    store_records(store, tmp_path, records)

    # 3 in 4 is 75%, Wilson bound 18%: past a critical share of 15%, one minute sustained.
    detector = RoutingEscalation(Settings(min_calls=1, sustained=timedelta(minutes=1), critical_share=0.15))
    base = datetime.fromtimestamp(BASE_TIME_NS // 1_000_000_000, UTC)
    history = load_history(
        store, detector.queries(), base - timedelta(minutes=10), base + timedelta(minutes=10)
    )
    frame = history[ROLLUP].sort_values("router").reset_index(drop=True)
    assert {"minute", "service", "router", "calls", "escalated_calls"} <= set(frame.columns)
    assert frame[["router", "calls", "escalated_calls"]].values.tolist() == [["", 2, 2], ["tier", 4, 3]]
    assert set(frame["minute"]) == {base}
    [observation] = detector.evaluate(history, [base + timedelta(minutes=1)])
    assert dict(observation.scope) == {"service": "checkout", "router": "tier"}
    assert (observation.severity, observation.value, observation.samples) == ("critical", 0.75, 4)
