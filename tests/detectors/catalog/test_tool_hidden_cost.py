from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.detector_harness import Scenario, Series, between, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.buffer.records import ToolSpanRecord
from tokenpulse.detectors.catalog.tool_hidden_cost import TOOL_COSTS, ToolHiddenCost
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 90  # web_search starts summarizing every result with a model
LOOKUP, LOOKUP_END = DAY + 40, DAY + 100  # lookup, which never called a model, starts to
BLIP = DAY + 120
DEPLOY = DAY + 50
LAST = DAY + 240


def scope(tool: str) -> dict[str, str]:
    return {"service": "agent", "tool": tool}


def tool(name: str, tool_calls, cost_usd, start: int = 0, end: int = LAST) -> Series:
    return Series(scope(name), {"tool_calls": tool_calls, "cost_usd": cost_usd}, start, end)


def scenario_with_confounders() -> Scenario:
    surge = between(ONSET, END, 3.0, 1.0)
    blip = between(BLIP, BLIP + 3, 500.0, 1.0)
    restart = lambda m: {DEPLOY: 0.0, DEPLOY + 1: 2.0}.get(m, 1.0)  # noqa: E731  one minute down, catch-up
    scenario = Scenario().add(
        TOOL_COSTS,
        tool("web_search", 20, between(ONSET, END, 0.4, 0.01)),  # $0.0005 -> $0.02 per tool call
        tool("lookup", 2, between(LOOKUP, LOOKUP_END, 0.08, 0.0)),  # $0 -> $0.04 per tool call: $4.80/h
        tool("fetch", lambda m: 20 * surge(m), lambda m: 0.02 * surge(m)),  # 3x calls, $0.001 each
        tool("summarize", 20, lambda m: 0.02 * blip(m)),  # $0.50 per tool call for 3 minutes
        tool("new-thin", 0.5, 0.05, start=DAY + 30),  # $0.10 per call, 7.5 calls in the window
        tool("new-busy", 20, 1.0, start=DAY + 30),  # $0.05 per call from its first minute: no baseline
        tool("deploy", lambda m: 20 * restart(m), lambda m: 0.02 * restart(m)),
    )  # fmt: skip
    return scenario


def test_hidden_cost_fires_and_resolves_while_confounders_stay_quiet() -> None:
    result = run(ToolHiddenCost(), scenario_with_confounders(), DAY, DAY + 150)
    assert [(status, severity, s["tool"]) for _, status, severity, s in result] == [
        ("firing", "critical", "web_search"),  # $0.0005 -> $0.02 per tool call, $24/h: critical
        ("firing", "warning", "lookup"),  # $0 -> $0.04 per tool call, past the cent floor; $4.80/h
        ("resolved", "critical", "web_search"),
        ("resolved", "warning", "lookup"),
    ]
    fired = {s["tool"]: m for m, status, _, s in result if status == "firing"}
    resolved = {s["tool"]: m for m, status, _, s in result if status == "resolved"}
    assert ONSET + 4 <= fired["web_search"] <= ONSET + 6 and LOOKUP + 4 <= fired["lookup"] <= LOOKUP + 10
    assert END <= resolved["web_search"] <= END + 10 and LOOKUP_END <= resolved["lookup"] <= LOOKUP_END + 30


def test_overnight_trough_does_not_alert() -> None:
    """At night a tool runs once every 2 minutes and those few calls are the expensive kind (5x the day's
    $0.0005): the same hour of the previous day says that is usual."""
    night = lambda m: (m % DAY) < 7 * 60 or (m % DAY) >= 22 * 60  # noqa: E731
    scenario = Scenario().add(
        TOOL_COSTS,
        tool("web_search", lambda m: 0.5 if night(m) else 20, lambda m: 0.00125 if night(m) else 0.01,
             end=DAY + 600),
    )  # fmt: skip
    assert run(ToolHiddenCost(), scenario, DAY + 60, DAY + 600) == []  # history starts at midnight


def span(trace: str, span_id: str, name: str, at_ns: int, kind: str = "tool", **overrides) -> ToolSpanRecord:
    record: ToolSpanRecord = {
        "time_unix_nano": at_ns,
        "duration_ms": 900.0,
        "trace_id": trace * 32,
        "span_id": span_id * 16,
        "parent_span_id": "",
        "service": "checkout",
        "environment": "prod",
        "kind": kind,
        "name": name,
        "status": "ok",
        "error_type": "",
        "is_timeout": False,
    }
    record.update(overrides)  # type: ignore[typeddict-item]
    return record


def test_queries_run_on_the_real_store(tmp_path: Path, store: Store) -> None:
    """LLM calls below tool spans (through an agent too), counted in the minute their tool call ended."""
    second = 1_000_000_000
    base_ns = BASE_TIME_NS

    def child(trace: str, parent: str, usd: str, at_ns: int, **overrides):
        return call_record(trace_id=trace * 32, parent_span_id=parent * 16, cost_usd=Decimal(usd),
                           time_unix_nano=at_ns, **overrides)  # fmt: skip

    spans = [
        span("a", "1", "search", base_ns),
        span("a", "2", "sub-agent", base_ns + second, kind="agent", parent_span_id="1" * 16),
        # starts in minute 0, ends in minute 1: it and its LLM call count in minute 1
        span("b", "3", "search", base_ns + 50 * second, duration_ms=20_000.0),
        span("c", "4", "search", base_ns + 10 * second),  # no LLM call inside: counts, at $0
        span("e", "5", "planner", base_ns, kind="agent"),
        span("f", "6", "lookup", base_ns, service="crm"),
    ]
    calls = [
        child("a", "1", "0.25", base_ns + 2 * second),
        child("a", "1", "0.5", base_ns + 3 * second),
        child("a", "2", "1.0", base_ns + 4 * second),  # under the agent under the tool: the tool's
        child("b", "3", "0.125", base_ns + 55 * second),
        child("d", "1", "4.0", base_ns + 2 * second),  # the tool span's id, another trace
        child("e", "5", "2.0", base_ns + 2 * second),  # under an agent span, not a tool
        child("f", "6", "0.01", base_ns + 2 * second, service="crm-worker"),  # the tool's service counts
    ]
    store_records(store, tmp_path, calls, spans)

    detector = ToolHiddenCost()
    base = datetime.fromtimestamp(base_ns // second, UTC)
    history = load_history(
        store, detector.queries(), base - timedelta(minutes=10), base + timedelta(minutes=10)
    )
    loaded = history[TOOL_COSTS].sort_values(["service", "tool", "minute"]).reset_index(drop=True)
    assert list(loaded.columns) == [
        "minute", "tenant", "service", "tool", "tool_calls", "llm_calls", "cost_usd"
    ]  # fmt: skip
    rows = loaded[["service", "tool", "tool_calls", "llm_calls"]].values.tolist()
    assert rows == [["checkout", "search", 2, 3], ["checkout", "search", 1, 1], ["crm", "lookup", 1, 1]]
    assert list(loaded["minute"]) == [base, base + timedelta(minutes=1), base]
    assert list(loaded["cost_usd"]) == pytest.approx([1.75, 0.125, 0.01])
    assert detector.evaluate(history, [base + timedelta(minutes=2)]) == []  # no baseline yet
