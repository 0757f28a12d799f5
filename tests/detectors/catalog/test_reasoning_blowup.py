from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, Series, between, drawn_mean, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.buffer.records import CallRecord
from tokenpulse.detectors.base import CRITICAL, settings_from_mapping
from tokenpulse.detectors.catalog.reasoning_blowup import (
    EXTREME_BUCKETS,
    EXTREMES,
    ROLLUP,
    ReasoningBlowup,
    Settings,
)
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 60

Value = float | Callable[[int], float]


def scope(route: str) -> dict[str, str]:
    return {"service": "research", "route": route, "model": "o3"}


def at(m: int, value: Value) -> float:
    return value(m) if callable(value) else value


def rollup(route: str, calls: Value = 20.0, per_call: Value = 2000.0, start: int = 0) -> Series:
    """A scope's rollup rows: ``calls`` a minute thinking ``per_call`` reasoning tokens each (usually 2k)."""
    values = {"calls": calls, "reasoning_tokens": lambda m: at(m, calls) * at(m, per_call)}
    return Series(scope(route), values, start, DAY + 120)


def extreme(route: str, ended: int, tokens: float, calls: int = 1) -> Series:
    """The raw query's row for ``calls`` calls of ``tokens`` reasoning tokens that ended at ``ended``."""
    buckets = {f"calls_ge_{edge}": float(calls if tokens >= edge else 0) for edge in EXTREME_BUCKETS}
    return Series(scope(route), {"max_reasoning_tokens": tokens, **buckets}, ended, ended + 1)


def test_one_call_past_100k_reasoning_tokens_pages_at_once_while_confounders_stay_quiet() -> None:
    night = lambda m: 4.0 if 60 <= m % DAY < 600 else 20.0  # noqa: E731  traffic falls 80% at 01:00
    deploy = lambda m: {DAY + 40: 5.0, DAY + 41: 5.0, DAY + 42: 35.0}.get(m, 20.0)  # noqa: E731
    blip = between(DAY + 80, DAY + 83, 40_000.0, 2000.0)  # 3 minutes at 20x: every call thinks 40k
    scenario = (
        Scenario()
        .add(
            ROLLUP,
            rollup("/runaway", per_call=lambda m: 2000.0 + (178_000 / 20 if m == ONSET else 0)),
            rollup("/surge", calls=between(ONSET, END, 60.0, 20.0)),
            rollup("/single-extreme", per_call=between(DAY + 51, DAY + 52, 2000.0 + 58_000 / 20, 2000.0)),
            rollup("/blip", per_call=blip),
            rollup("/deploy", calls=deploy),
            rollup("/overnight", calls=night),
            rollup("/new", calls=5.0, per_call=20_000.0, start=ONSET),  # no baseline: it always thought a lot
            rollup("/small", per_call=between(ONSET, DAY + 120, 1000.0, 200.0)),  # 5x, but 1k per call
        )
        .add(
            EXTREMES,
            extreme("/runaway", ONSET, 180_000.0),  # started at ONSET-12, ended (and counted) at ONSET
            extreme("/single-extreme", DAY + 51, 60_000.0),  # large, but under the critical threshold
            *(extreme("/blip", m, 40_000.0, calls=20) for m in range(DAY + 80, DAY + 83)),
        )
    )
    result = run(ReasoningBlowup(), scenario, DAY, DAY + 120)
    assert result == [
        # The call ended in minute ONSET: the first window [t-5, t) to contain it is at ONSET+1 (for_ 0).
        (ONSET + 1, "firing", "critical", scope("/runaway")),
        # The last window to contain it is at ONSET+5; resolved at the next evaluation.
        (ONSET + 6, "resolved", "critical", scope("/runaway")),
    ]


def test_a_route_that_thinks_6x_longer_warns_even_at_one_call_a_minute_and_a_huge_call_escalates() -> None:
    # Reasoning per call steps from 2k to 12k at ONSET (effort raised); a 150k call ends at ONSET+15.
    effort = lambda route, calls, seed: drawn_mean(  # noqa: E731
        scope(route),
        calls,
        between(ONSET, END, 12_000.0, 2000.0),
        total="reasoning_tokens",
        seed=seed,
        end=DAY + 120,
    )
    scenario = (
        Scenario()
        .add(ROLLUP, effort("/effort", 20.0, 1), effort("/thin", 1.0, 2))
        .add(EXTREMES, extreme("/effort", ONSET + 15, 150_000.0))
    )
    result = run(ReasoningBlowup(), scenario, DAY, DAY + 120)
    effort_route = [(m, status, severity) for m, status, severity, s in result if s["route"] == "/effort"]
    assert [(status, severity) for _, status, severity in effort_route] == [
        ("firing", "warning"),
        ("firing", "critical"),  # escalation: the 150k call is in [t-5, t) from ONSET+16
        ("resolved", "critical"),
    ]
    assert ONSET + 4 <= effort_route[0][0] <= ONSET + 8 and effort_route[1][0] == ONSET + 16
    assert END <= effort_route[2][0] <= END + 15
    thin = [(m, status) for m, status, _, s in result if s["route"] == "/thin"]
    assert [status for _, status in thin] == ["firing", "resolved"] and thin[0][0] <= ONSET + 20


def test_settings_read_from_config_and_are_validated() -> None:
    config = {"extreme_tokens": 150_000, "extreme_window_minutes": 2, "rises": [4, 8], "floor": 2000}
    assert settings_from_mapping(Settings, config) == Settings(
        extreme_tokens=150_000, extreme_window=timedelta(minutes=2), rises=(4.0, 8.0), floor=2000.0
    )
    with pytest.raises(ValueError, match="at least 25000"):
        Settings(extreme_tokens=10_000)
    with pytest.raises(ValueError, match="rises"):
        Settings(rises=(0.9,))


def store_calls(tmp_path: Path, store: Store, records: list[CallRecord]) -> None:
    """Put ``records`` into the store the way the collector does: write-ahead log, then the LogWriter."""
    store_records(store, tmp_path, records)


def test_the_queries_read_the_rollup_and_the_extreme_calls_by_the_minute_they_ended(
    tmp_path: Path, store: Store
) -> None:
    minute = datetime.fromtimestamp(BASE_TIME_NS // 1_000_000_000, UTC)
    o3 = {"request_model": "o3", "response_model": "o3-2025-04-16", "route": "/research"}
    records = [call_record(**o3, reasoning_tokens=2000) for _ in range(3)]
    records += [call_record(**o3, reasoning_tokens=10_000)]  # under the smallest bucket: not read
    records += [call_record(**o3, reasoning_tokens=30_000, duration_ms=20_000.0)]
    records += [call_record(**o3, reasoning_tokens=120_000, duration_ms=15 * 60_000.0 + 5_000)]
    store_calls(tmp_path, store, records)
    detector = ReasoningBlowup()
    history = load_history(
        store, detector.queries(), minute - timedelta(hours=1), minute + timedelta(minutes=20)
    )
    rollup_rows = history[ROLLUP].sort_values("minute")[["minute", "model", "calls", "reasoning_tokens"]]
    assert rollup_rows.values.tolist() == [  # the rollup, too, counts a call in the minute it ended
        [minute, "o3-2025-04-16", 5, 46_000],
        [minute + timedelta(minutes=15), "o3-2025-04-16", 1, 120_000],
    ]
    extremes = history[EXTREMES].sort_values("minute")
    assert list(extremes.columns) == [
        "minute", "tenant", "service", "route", "model", "max_reasoning_tokens",
        *(f"calls_ge_{edge}" for edge in EXTREME_BUCKETS),
    ]  # fmt: skip
    assert extremes.drop(columns=["tenant", "service", "route", "model"]).values.tolist() == [
        [minute, 30_000, 1, 0, 0, 0, 0],
        [minute + timedelta(minutes=15), 120_000, 1, 1, 1, 0, 0],  # started at `minute`, ended 15 min later
    ]
    [observation] = detector.evaluate(history, [minute + timedelta(minutes=16)])
    assert observation.severity == CRITICAL and observation.value == 120_000
    assert observation.scope == (("service", "checkout"), ("route", "/research"), ("model", "o3-2025-04-16"))
    assert observation.summary == (
        "a call used 120k reasoning tokens (critical at 100k) for service=checkout, route=/research, "
        "model=o3-2025-04-16; 1 call(s) >= 100k in the last 5 min"
    )
