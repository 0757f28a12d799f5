from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.detector_harness import Scenario, Series, between, run
from tests.factories import BASE_TIME_NS, call_record, store_records, tool_span_record
from tokenpulse.detectors.catalog.timeout_surge import ROLLUP, TOOL_SPANS, Settings, TimeoutSurge
from tokenpulse.detectors.data import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 60  # the surge and its recovery
Rate = Callable[[int], float] | float


def route(name: str) -> dict[str, str]:
    return {"service": "agent", "route": name}


def tool(name: str) -> dict[str, str]:
    return {"service": "agent", "tool": name}


def share_of(calls: Rate, share: Rate) -> Callable[[int], float]:
    """Timeouts per minute: ``share`` of ``calls`` (each a constant or a function of the minute)."""
    return lambda m: (calls(m) if callable(calls) else calls) * (share(m) if callable(share) else share)


def llm(name: str, share: Rate = 0.01, calls: Rate = 40, start: int = 0) -> Series:
    return Series(route(name), {"calls": calls, "timeouts": share_of(calls, share)}, start, DAY + 120)


def tools(name: str, share: Rate = 0.01, calls: Rate = 20, start: int = 0) -> Series:
    return Series(tool(name), {"calls": calls, "timeouts": share_of(calls, share)}, start, DAY + 120)


def test_surges_fire_for_llm_routes_and_tools() -> None:
    scenario = Scenario()
    scenario.add(ROLLUP, llm("/answer", between(ONSET, END, 0.10, 0.01)))  # 1% -> 10%: warning
    scenario.add(TOOL_SPANS, tools("web_search", between(ONSET, END, 0.40, 0.01)))  # 1% -> 40%: critical
    result = run(TimeoutSurge(), scenario, DAY, DAY + 120)
    # /answer, 200 calls a window: at ONSET + 4 four of the window's minutes are at 10% but the window's
    # share (4 x 4 + 0.4) / 200 = 8.2% has a (three-sigma) Wilson bound of 4.0% < 5%; at ONSET + 5, 10%
    # of 200, bound 5.6%: a warning, fired at once. It holds until END (five bad minutes) and resolves 5
    # minutes later.
    # web_search, 100 a window: at ONSET + 4, 32.2% (Wilson bound 20.2%) >= 20%: critical, held until
    # END + 1.
    assert result == [
        (ONSET + 4, "firing", "critical", tool("web_search")),
        (ONSET + 5, "firing", "warning", route("/answer")),
        (END + 5, "resolved", "warning", route("/answer")),
        (END + 6, "resolved", "critical", tool("web_search")),
    ]


def test_benign_confounders_never_fire() -> None:
    rollout = {DAY + 70: 16, DAY + 71: 16, DAY + 72: 64, DAY + 73: 64}
    scenario = Scenario().add(
        ROLLUP,
        llm("/steady"),
        llm("/surge", calls=between(ONSET, END, 120, 40)),  # 3x traffic, the same 1% timing out
        llm("/blip", between(DAY + 80, DAY + 83, 1.0, 0.01)),  # every call times out for 3 minutes
        llm("/deploy", calls=lambda m: rollout.get(m, 40)),  # a deploy that changes nothing
        llm("/trough", 0.02, calls=lambda m: 10 if 30 <= m % DAY < 90 else 50),  # 80% fewer at night
        llm("/new", 0.5, calls=4, start=DAY + 20),  # a brand-new route or model with little traffic
    )
    scenario.add(
        TOOL_SPANS,
        tools("calendar", 0.0, calls=12),
        Series(
            tool("calendar-one"), {"calls": 12, "timeouts": between(DAY + 40, DAY + 41, 1, 0)}, 0, DAY + 120
        ),
        tools("crm_lookup", between(ONSET, END, 0.15, 0.08)),  # always flaky: 8% -> 15% is under 3x
    )
    assert run(TimeoutSurge(), scenario, DAY, DAY + 120) == []


def test_a_blip_must_last_the_sustained_minutes() -> None:
    # Every call timing out for 3 minutes never holds (4 of the window's minutes must be bad); for 4
    # minutes it holds at DAY + 24 and DAY + 25, and resolves 5 minutes after.
    scenario = Scenario().add(
        ROLLUP,
        llm("/three", between(DAY + 20, DAY + 23, 1.0, 0.01)),
        llm("/four", between(DAY + 20, DAY + 24, 1.0, 0.01)),
    )
    scenario.add(TOOL_SPANS, tools("steady"))
    assert run(TimeoutSurge(), scenario, DAY, DAY + 120) == [
        (DAY + 24, "firing", "critical", route("/four")),
        (DAY + 30, "resolved", "critical", route("/four")),
    ]


def test_a_new_scope_is_held_to_the_absolute_floor_until_it_has_a_baseline() -> None:
    # 30% of a new route's calls time out from its first minute (DAY + 20). At DAY + 24, four minutes of
    # it, 80 calls >= 50, Wilson bound 17%: >= 5%, not 20% (not sure enough for critical): a warning.
    # After an hour of windows (from DAY + 87: 60
    # shares by DAY + 82, shifted by the window) its baseline is its own 30%, the threshold 90%, and
    # the alert resolves 5 min later.
    scenario = Scenario().add(ROLLUP, llm("/launch", 0.30, calls=20, start=DAY + 20))
    scenario.add(TOOL_SPANS, tools("steady"))
    assert run(TimeoutSurge(), scenario, DAY, DAY + 120) == [
        (DAY + 24, "firing", "warning", route("/launch")),
        (DAY + 91, "resolved", "warning", route("/launch")),
    ]


def test_queries_run_on_the_store(tmp_path: Path, store: Store) -> None:
    # One minute: 10 LLM calls (3 timed out), 10 tool executions (4 timed out), 5 agent spans timed out.
    first = BASE_TIME_NS - 10 * 60 * 1_000_000_000
    calls = [call_record(time_unix_nano=first + i, is_timeout=i < 3, status="error") for i in range(10)]
    spans = [tool_span_record(time_unix_nano=first + i, is_timeout=i < 4) for i in range(10)]
    spans += [
        tool_span_record(time_unix_nano=first, kind="agent", name="planner", is_timeout=True)
        for _ in range(5)
    ]
    store_records(store, tmp_path, calls, spans)

    detector = TimeoutSurge(
        Settings(window=timedelta(minutes=2), sustained=timedelta(minutes=1), min_calls=10)
    )
    start = datetime.fromtimestamp(first // 1_000_000_000, UTC)
    history = load_history(
        store, detector.queries(), start - timedelta(minutes=2), start + timedelta(minutes=3)
    )
    executions = history[TOOL_SPANS]
    assert list(executions.columns) == ["minute", "tenant", "service", "tool", "calls", "timeouts"]
    assert executions[["tool", "calls", "timeouts"]].values.tolist() == [["search", 10, 4]]  # no agents
    assert history[ROLLUP][["route", "calls", "timeouts"]].values.tolist() == [["/chat", 10, 3]]

    # 3 in 10 and 4 in 10 are past 20%, but not with confidence (Wilson bounds 7% and 11%): warnings.
    observations = detector.evaluate(history, [start + timedelta(minutes=1)])
    assert [(dict(o.scope), o.severity, o.value, o.baseline, o.samples) for o in observations] == [
        ({"service": "checkout", "route": "/chat"}, "warning", 0.3, None, 10),
        ({"service": "checkout", "tool": "search"}, "warning", 0.4, None, 10),
    ]
    assert observations[1].summary == (
        "40.0% of tool executions timed out (threshold 5.0%, no baseline yet) "
        "for service=checkout, tool=search"
    )
