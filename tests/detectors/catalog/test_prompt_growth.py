from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, Series, between, drawn_mean, minute, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.buffer.records import CallRecord
from tokenpulse.detectors.base import WARNING, settings_from_mapping
from tokenpulse.detectors.catalog.prompt_growth import ROLLUP, PromptGrowth, Settings
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 60
PROMPT_GROWTH = PromptGrowth()
RUNAWAY = PROMPT_GROWTH.runaway

Value = float | Callable[[int], float]


def scope(route: str) -> dict[str, str]:
    return {"service": "assistant", "route": route}


def at(m: int, value: Value) -> float:
    return value(m) if callable(value) else value


def rollup(route: str, calls: Value = 50.0, per_call: Value = 4000.0, start: int = 0) -> Series:
    """A route's rollup rows: ``calls`` a minute sending ``per_call`` input tokens each (usually 4k)."""
    values = {"calls": calls, "input_tokens": lambda m: at(m, calls) * at(m, per_call)}
    return Series(scope(route), values, start, DAY + 120)


def runaway(route: str, session: str, start: int, end: int, first: float, per_call: Value) -> Series:
    """The runaway query's rows for one session in minutes [start, end): one call a minute."""
    values = {"calls": 1.0, "input_tokens": per_call, "first_input_per_call": first}
    return Series({**scope(route), "session": session}, values, start, end)


def yesterday() -> Series:
    """A runaway session on another route yesterday: long gone, it alerts nothing today."""
    return runaway("/yesterday", "s-old", 100, 101, 8000.0, 60_000.0)


def drawn(route: str, per_call: Value, calls: Value = 20.0, seed: int = 1, spread: float = 1.0) -> Series:
    """A route's rollup rows drawn as real traffic varies: Poisson calls, Gamma prompt sizes."""
    return drawn_mean(scope(route), calls, per_call, total="input_tokens", seed=seed, spread=spread,
                      end=DAY + 180)  # fmt: skip


def test_history_accumulating_doubles_prompts_within_the_hour_while_confounders_stay_quiet() -> None:
    fixed = ONSET + 70  # the truncation fix ships
    history = lambda m: 4000.0 * (1 + (m - ONSET) / 30) if ONSET <= m < fixed else 4000.0  # noqa: E731
    night = lambda m: 4.0 if 60 <= m % DAY < 600 else 20.0  # noqa: E731  traffic falls 80% at 01:00
    scenario = Scenario().add(
        ROLLUP,
        drawn("/history", history),  # +4k tokens per call every 30 minutes from ONSET
        drawn("/surge", 4000.0, calls=between(ONSET, END, 120.0, 20.0), seed=2),
        drawn("/blip", between(DAY + 80, DAY + 82, 40_000.0, 4000.0), seed=3),  # 2 minutes at 10x
        drawn("/night", 4000.0, calls=night, seed=4),
        drawn("/wild", 4000.0, seed=5, spread=6.0),  # prompt sizes that vary wildly, as usual
        drawn("/thin", 4000.0, calls=0.3, seed=6),
        drawn("/short", between(ONSET, END, 900.0, 300.0), seed=7),  # 3x, but under the 1,000-token floor
    )
    result = run(PROMPT_GROWTH, scenario, DAY, DAY + 180)
    assert [(status, severity, s["route"]) for _, status, severity, s in result] == [
        ("firing", "warning", "/history"),
        ("resolved", "warning", "/history"),
    ]
    fired, resolved = (m for m, _, _, _ in result)
    assert ONSET + 30 <= fired <= ONSET + 50  # x2 at ONSET + 30; the mean since the growth began after
    assert fixed <= resolved <= fixed + 20


def test_a_5x_step_pages_within_minutes_even_on_a_thin_route() -> None:
    scenario = Scenario().add(ROLLUP, drawn("/rag", between(ONSET, END + 60, 20_000.0, 4000.0), calls=1.0))
    result = run(PROMPT_GROWTH, scenario, DAY, DAY + 180)
    assert [status for _, status, _, _ in result][:1] == ["firing"]
    assert ONSET + 4 <= result[0][0] <= ONSET + 25  # one call a minute: about ten calls of evidence


def test_a_stray_large_prompt_after_a_blip_on_a_thin_route_does_not_page() -> None:
    blip = DAY + 60  # two minutes at 10x, then one call at 4x: the blip explains both as well as a change
    per_call = lambda m: 40_000.0 if blip <= m < blip + 2 else 16_000.0 if m == blip + 4 else 4000.0  # noqa: E731
    for seed in (1, 4, 7):
        scenario = Scenario().add(ROLLUP, drawn("/thin-blip", per_call, calls=2.0, seed=seed))
        assert run(PROMPT_GROWTH, scenario, DAY, DAY + 180) == [], seed


def test_runaway_sessions_fire_per_route_and_name_the_worst_sessions() -> None:
    scenario = (
        Scenario()
        .add(ROLLUP, rollup("/agent"), rollup("/yesterday"))
        .add(
            RUNAWAY,
            # An agent loop: first minute 8k per call, runaway (>= 5 x 8k and >= 50k) from ONSET to ONSET+19.
            runaway("/agent", "s-loop", ONSET, ONSET + 20, 8000.0, lambda m: 40_000.0 + 3000 * (m - ONSET)),
            runaway("/agent", "s-retry", ONSET + 5, ONSET + 8, 12_000.0, 60_000.0),
            yesterday(),
        )
    )
    assert run(PROMPT_GROWTH, scenario, DAY, DAY + 120) == [
        # Runaway minutes ONSET..ONSET+19 are in the window [t-15, t) from ONSET+1 to ONSET+34.
        (ONSET + 1, "firing", "warning", scope("/agent")),
        (ONSET + 35, "resolved", "warning", scope("/agent")),
    ]
    observations = PROMPT_GROWTH.evaluate(scenario.history(0, DAY + 120, {}), [minute(ONSET + 11)])
    assert [(o.severity, o.value, o.summary) for o in observations] == [
        (
            WARNING,
            2.0,
            "2 session(s) whose prompts keep growing for service=assistant, route=/agent; runaway sessions: "
            "s-loop (8.8x: 8,000 -> 70k), s-retry (5.0x: 12k -> 60k)",
        )
    ]


def test_settings_read_from_config_and_name_the_session_query() -> None:
    config = {
        "session_window_minutes": 20,
        "rises": [3, 6],
        "session_growth": 4,
        "session_floor_tokens": 80_000,
    }
    settings = settings_from_mapping(Settings, config)
    assert (settings.session_window, settings.rises) == (timedelta(minutes=20), (3.0, 6.0))
    with pytest.raises(ValueError, match="rises"):
        settings_from_mapping(Settings, {"rises": [0.5]})
    assert PromptGrowth(settings).runaway.name == "runaway_sessions:calls>=10:x4:floor80000"
    assert "greatest(4.0 * first_input_per_call, 80000)" in PromptGrowth(settings).runaway.sql


def store_calls(tmp_path: Path, store: Store, records: list[CallRecord]) -> None:
    """Put ``records`` into the store the way the collector does: write-ahead log, then the LogWriter."""
    store_records(store, tmp_path, records)


def session(name: str, inputs: list[int], route: str = "/agent") -> list[CallRecord]:
    """One call a minute from the factories' base minute with these input tokens."""
    return [
        call_record(
            session=name, route=route, input_tokens=tokens, time_unix_nano=BASE_TIME_NS + i * 60 * 10**9
        )
        for i, tokens in enumerate(inputs)
    ]


def test_the_queries_find_runaway_sessions_on_the_real_engine(tmp_path: Path, store: Store) -> None:
    start = datetime.fromtimestamp(BASE_TIME_NS // 1_000_000_000, UTC)
    loop = [8000, 10_000, 14_000, 18_000, 24_000, 30_000, 36_000, 42_000, 48_000, 52_000, 56_000, 60_000]
    records = session("s-loop", loop)  # runaway from its 10th call: 52k >= 5 x 8k and >= 50k
    records += session("s-flat", [60_000] * 12)  # long prompts, but they do not grow
    records += session("s-small", [1000 * (i + 1) for i in range(12)])  # 12x, but 12k tokens
    records += session("s-short", [8000, 30_000, 60_000])  # grows, but 3 calls
    records += session("", [200_000] * 12)  # calls outside any session
    records += session("s-loop", [8000] + [60_000] * 11, route="/other")  # the same id on another route
    store_calls(tmp_path, store, records)
    detector = PromptGrowth()
    history = load_history(
        store, detector.queries(), start - timedelta(hours=1), start + timedelta(minutes=15)
    )
    rows = history[detector.runaway].sort_values(["route", "minute"])
    assert list(rows.columns) == [
        "minute", "tenant", "service", "route", "session", "calls", "input_tokens", "first_input_per_call"
    ]  # fmt: skip
    assert rows.drop(columns=["tenant", "service"]).values.tolist() == [
        [start + timedelta(minutes=9), "/agent", "s-loop", 1, 52_000, 8000.0],
        [start + timedelta(minutes=10), "/agent", "s-loop", 1, 56_000, 8000.0],
        [start + timedelta(minutes=11), "/agent", "s-loop", 1, 60_000, 8000.0],
        *([start + timedelta(minutes=m), "/other", "s-loop", 1, 60_000, 8000.0] for m in range(9, 12)),
    ]
    per_route = history[ROLLUP].groupby("route")[["calls", "input_tokens"]].sum()
    agent_input = sum(loop) + 12 * 60_000 + 78_000 + 98_000 + 12 * 200_000
    assert per_route.loc["/agent"].tolist() == [51, agent_input]
    [observation] = [
        o for o in detector.evaluate(history, [start + timedelta(minutes=12)]) if o.scope[1][1] == "/agent"
    ]
    assert observation.summary == (
        "1 session(s) whose prompts keep growing for service=checkout, route=/agent; "
        "runaway sessions: s-loop (7.5x: 8,000 -> 60k)"
    )
