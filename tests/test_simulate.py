"""`tokenpulse simulate`: the traffic model, incident injection, and the SDK emission round trip."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tokenpulse import cli
from tokenpulse.collector import otlp
from tokenpulse.collector.normalize import is_content_key
from tokenpulse.collector.pricing import Pricer
from tokenpulse.sdk import otlp_exporter
from tokenpulse.simulate import incidents as inc
from tokenpulse.simulate.catalog import MODELS, SERVICES_BY_NAME, calls_per_session
from tokenpulse.simulate.command import parse_duration
from tokenpulse.simulate.diurnal import diurnal, to_ns
from tokenpulse.simulate.emit import JsonLinesExporter, emit, tool_call_wrappers
from tokenpulse.simulate.incidents import Incident, Scenario, build_scenario
from tokenpulse.simulate.spec import LlmCall, Turn
from tokenpulse.simulate.traffic import generate
from tokenpulse.storage.attribution import attributed_calls_sql
from tokenpulse.storage.store import Store

T0 = datetime(2026, 6, 2, 11, 0, tzinfo=UTC)  # daytime: enough traffic for every route
SEED = 5
RATE = 80.0
MINUTE = 60_000_000_000


# ---- helpers ---------------------------------------------------------------------------------------------


def calls_of(turns: Iterable[Turn]) -> list[tuple[Turn, LlmCall]]:
    return [(turn, call) for turn in turns for call in turn.calls]


def in_scope(turn: Turn, call: LlmCall, scope: dict[str, str]) -> bool:
    """Does the call match a culprit scope (keys are the collector's dimension names)?"""
    values = {
        "service": turn.service,
        "service_version": turn.service_version,
        "route": call.route,
        "model": call.response_model,
        "prompt_version": call.prompt_version,
        "user": call.user,
        "router": call.router,
        "tool": call.tool,
    }
    return all(values[key] == value for key, value in scope.items())


def ok(pairs: Iterable[tuple[Turn, LlmCall]]) -> list[LlmCall]:
    return [call for _, call in pairs if call.error_type is None]


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_pricer = Pricer()


def cost(call: LlmCall) -> float:
    priced = _pricer.price(
        call.provider, call.response_model, input_tokens=call.input_tokens, output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens, cache_write_tokens=call.cache_write_tokens,
        reasoning_tokens=call.reasoning_tokens,
    )  # fmt: skip
    assert priced is not None, call.response_model
    return float(priced[0])


@cache
def clean_run() -> tuple[Turn, ...]:
    """The clean baseline every single-incident run is compared with (same seed and start, longer range)."""
    return tuple(generate(build_scenario("clean", T0, timedelta(minutes=160), SEED), RATE))


@cache
def incident_run(kind: str) -> tuple[Incident, tuple[Turn, ...]]:
    """Clean traffic with one ``kind`` at mid-range; the range is short to keep the tests fast."""
    length = inc._plans("")[kind].minutes
    duration = timedelta(minutes=max(60, 2 * length + 2))
    scenario = build_scenario(kind, T0, duration, SEED)
    (incident,) = [i for i in scenario.incidents if i.kind == kind]
    return incident, tuple(generate(scenario, RATE))


def window(
    pairs: Iterable[tuple[Turn, LlmCall]], scope: dict[str, str], lo: int, hi: int
) -> list[tuple[Turn, LlmCall]]:
    return [(t, c) for t, c in pairs if lo <= c.start_ns < hi and in_scope(t, c, scope)]


def by_session(turns: Iterable[Turn], until: int) -> dict[str, list[LlmCall]]:
    sessions: dict[str, list[LlmCall]] = defaultdict(list)
    for turn in turns:
        if turn.start_ns < until:
            for call in turn.calls:
                sessions[call.session].append(call)
    return sessions


# ---- the traffic model -----------------------------------------------------------------------------------


def test_generation_is_deterministic_per_seed() -> None:
    scenario = build_scenario("demo", T0, timedelta(minutes=20), 11)
    first = list(generate(scenario, 50))
    assert first == list(generate(scenario, 50))
    assert len(first) > 200
    other = list(generate(build_scenario("demo", T0, timedelta(minutes=20), 12), 50))
    assert [c.span_id for _, c in calls_of(other)] != [c.span_id for _, c in calls_of(first)]


def test_diurnal_curve_peaks_mid_afternoon_with_an_overnight_trough_at_a_fifth() -> None:
    day = datetime(2026, 6, 2, tzinfo=UTC)
    assert diurnal(to_ns(day.replace(hour=3))) == pytest.approx(0.2)
    assert diurnal(to_ns(day.replace(hour=15))) == pytest.approx(1.0)
    rate = 30.0
    per_hour = [0] * 24
    for turn in generate(build_scenario("clean", day, timedelta(days=1), 3), rate):
        per_hour[(turn.start_ns - to_ns(day)) // (60 * MINUTE)] += len(turn.calls)
    peak, trough = max(per_hour), min(per_hour)
    assert per_hour.index(peak) in range(12, 19) and per_hour.index(trough) in range(1, 6)
    assert 0.12 < trough / peak < 0.3
    # --rate is LLM calls per minute at the daily peak.
    assert peak / 60 == pytest.approx(rate, rel=0.2)
    assert calls_per_session() > 1


def test_token_semantics_caching_reasoning_and_errors() -> None:
    pairs = calls_of(clean_run())
    for _, call in pairs:
        assert call.cache_read_tokens + call.cache_write_tokens <= call.input_tokens
        assert call.reasoning_tokens <= call.output_tokens
        assert call.end_ns >= call.start_ns
        if call.ttft_s is not None:
            assert 0 < call.ttft_s <= call.duration_s
        if call.error_type is not None:
            assert call.input_tokens == call.output_tokens == 0 and call.ttft_s is None
        if MODELS[call.request_model].cache == "implicit":
            assert call.cache_write_tokens == 0  # OpenAI and Gemini only report reads
        assert (call.reasoning_tokens > 0) == (call.request_model == "o3" and call.error_type is None)
    anthropic = [c for _, c in pairs if c.provider == "anthropic" and c.error_type is None]
    hit = sum(c.cache_read_tokens for c in anthropic) / sum(c.input_tokens for c in anthropic)
    assert 0.8 <= hit <= 0.92
    # Multi-turn Anthropic chat: the first turn writes the conversation prefix, later turns read it.
    chat = defaultdict(list)
    for _, call in pairs:
        if call.route == "/chat" and call.tool is None and call.error_type is None:
            chat[call.session].append(call)
    firsts = [calls[0] for calls in chat.values() if calls[0].start_ns > to_ns(T0) + 10 * MINUTE]
    later = [c for calls in chat.values() for c in calls[1:]]
    assert all(c.cache_write_tokens > 0 for c in firsts)
    assert sum(c.cache_read_tokens for c in later) > 8 * sum(c.cache_write_tokens for c in later)
    assert max(len(calls) for calls in chat.values()) >= 6  # conversations span many turns
    escalated = [c.escalated for _, c in pairs if c.router is not None]
    assert 0.15 < sum(escalated) / len(escalated) < 0.25
    errors = [c for _, c in pairs if c.error_type is not None]
    assert 0.002 < len(errors) / len(pairs) < 0.01
    timeouts = [c for c in errors if c.is_timeout]
    assert all(c.duration_s >= 10 for c in timeouts)


def test_traces_have_tools_with_inner_calls_and_route_attribution() -> None:
    turns = clean_run()
    with_tools = [t for t in turns if t.tools]
    assert len(with_tools) > 100
    for turn in with_tools:
        tool_ids = {tool.span_id for tool in turn.tools}
        assert all(tool.parent_id == turn.span_id for tool in turn.tools)
        for call in turn.calls:
            assert call.parent_id in (tool_ids if call.tool else {turn.span_id})
            assert call.route == turn.route
    inner = {c.tool for t in with_tools for c in t.calls if c.tool}
    assert inner == {"summarize_ticket", "recommend_products", "web_search"}
    versions = {(t.service, c.route, c.prompt_version) for t, c in calls_of(turns) if c.tool is None}
    assert len(versions) == sum(len(s.routes) for s in SERVICES_BY_NAME.values())
    deploys = {(t.service, t.service_version) for t in turns}
    assert deploys == {(s.name, s.version) for s in SERVICES_BY_NAME.values()}
    users = [c.user for _, c in calls_of(turns)]
    counts = sorted((users.count(u) for u in set(users)), reverse=True)
    assert len(counts) > 200 and counts[0] > 10 * counts[len(counts) // 2]  # Zipf: a few heavy users


# ---- incidents: each changes its signal at its onset, inside its scope only ----------------------------


def _check_untouched_outside_scope(incident: Incident, turns: Sequence[Turn]) -> None:
    """Sessions without an in-scope call during the incident (in either run: a lost instrumentation
    removes them) are exactly the clean run's; no session changes before the onset."""
    end_of_run = max(t.start_ns for t in turns) + 1
    assert end_of_run <= max(t.start_ns for t in clean_run())  # the clean run covers the whole range
    affected = {
        c.session
        for run in (turns, clean_run())
        for _, c in window(calls_of(run), dict(incident.scope), incident.onset_ns, incident.end_ns)
    }
    clean, dirty = by_session(clean_run(), end_of_run), by_session(turns, end_of_run)
    assert affected
    for session, calls in clean.items():
        if session in affected:
            before = [c for c in calls if c.start_ns < incident.onset_ns]
            assert dirty.get(session, [])[: len(before)] == before
        else:
            assert dirty[session] == calls, session
    extra = set(dirty) - set(clean)
    assert extra <= affected  # sessions an incident adds are inside its scope


_SIGNALS: dict[str, Callable[[Incident, list, list, list], None]] = {}


def signal(kind: str) -> Callable[[Callable[[Incident, list, list, list], None]], Callable]:
    def register(check: Callable[[Incident, list, list, list], None]) -> Callable:
        _SIGNALS[kind] = check
        return check

    return register


@signal("cache_hit_collapse")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    def read_share(calls: list[LlmCall]) -> float:
        reads = sum(c.cache_read_tokens for c in calls)
        return reads / (reads + sum(c.cache_write_tokens for c in calls))

    assert read_share(ok(during)) <= 0.15 and read_share(ok(clean)) >= 0.85
    assert sum(c.cache_write_tokens for c in ok(during)) > 0.8 * sum(c.input_tokens for c in ok(during))
    assert {c.prompt_version for _, c in before if c.tool is None} == {"v7"}


@signal("cache_not_applied")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert all(c.cache_read_tokens == c.cache_write_tokens == 0 for c in ok(during))
    assert sum(c.cache_read_tokens for c in ok(clean)) > 0.8 * sum(c.input_tokens for c in ok(clean))
    assert {t.service_version for t, _ in before} == {"3.14.2"}


@signal("prompt_growth")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    base = statistics.mean(c.input_tokens for c in ok(before))
    onset = incident.onset_ns
    buckets = [
        statistics.mean(
            c.input_tokens for c in ok(during) if m * MINUTE <= c.start_ns - onset < (m + 10) * MINUTE
        )
        for m in range(0, 60, 10)
    ]
    assert buckets[0] < 2 * base and buckets[4] >= 3 * base  # >= 3x by 40-50 minutes in
    assert all(b > 0.95 * a for a, b in itertools.pairwise(buckets))  # steadily


@signal("reasoning_blowup")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    median = statistics.median(c.reasoning_tokens for c in ok(during))
    assert median >= 6 * statistics.median(c.reasoning_tokens for c in ok(clean))
    assert any(c.reasoning_tokens >= 100_000 for c in ok(during))


@signal("latency_p99_drift")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    ramped = incident.onset_ns + int(inc.TAIL_RAMP_MINUTES * MINUTE)
    slow = [c.duration_s for c in ok(during) if c.start_ns >= ramped]
    normal = [c.duration_s for c in ok(clean) if c.start_ns >= ramped]
    # 3-4x per route in expectation (over 10k calls); a sample of a few hundred is noisier.
    assert 2.2 <= quantile(slow, 0.99) / quantile(normal, 0.99) <= 6
    assert quantile(slow, 0.5) / quantile(normal, 0.5) < 1.15


@signal("ttft_slo")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert quantile([c.ttft_s for c in ok(during) if c.ttft_s], 0.99) > 1.5
    assert quantile([c.ttft_s for c in ok(clean) if c.ttft_s], 0.99) < 1.0


@signal("cost_spike")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert sum(map(cost, ok(during))) >= 10 * sum(map(cost, ok(clean)))
    assert len(during) >= 10 * len(clean)


@signal("routing_escalation")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert sum(c.escalated for _, c in during) / len(during) >= 0.8
    assert sum(c.escalated for _, c in clean) / len(clean) < 0.3


@signal("tool_hidden_cost")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    def per_execution(calls: list[LlmCall]) -> float:
        return sum(map(cost, calls)) / len({c.parent_id for c in calls})

    assert per_execution(ok(during)) >= 10 * per_execution(ok(clean))


@signal("timeout_surge")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert sum(c.is_timeout for _, c in during) / len(during) >= 0.3
    assert sum(c.is_timeout for _, c in clean) / len(clean) < 0.02
    assert {c.error_type for _, c in during if c.is_timeout} == {"TimeoutError"}


@signal("traffic_drop")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert not during and len(clean) >= 20  # the calls go on (clean), their spans do not reach us


@signal("traffic_surge")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert len(during) >= 2.5 * len(clean)
    for metric in ("input_tokens", "output_tokens", "cache_read_tokens"):
        mean, base = (statistics.mean(getattr(c, metric) for c in ok(x)) for x in (during, clean))
        assert mean == pytest.approx(base, rel=0.15), metric


@signal("single_slow_call")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    (slow,) = [c for _, c in during if c.duration_s >= 30]
    assert slow.duration_s == pytest.approx(60) and 0 <= slow.start_ns - incident.onset_ns < 1e9
    assert len(during) == len(clean) + 1


@signal("noop_deploy")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    assert [c for _, c in during] == [c for _, c in clean]  # the very same calls
    assert {t.service_version for t, _ in during} == {"2.8.1"}


@signal("new_model")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    hours = (incident.end_ns - incident.onset_ns) / (60 * MINUTE)
    assert 0 < len(during) <= 4 * inc.NEW_MODEL_PER_HOUR * hours and not clean


@signal("cache_blip")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    def read_share(calls: list[LlmCall]) -> float:
        return sum(c.cache_read_tokens for c in calls) / sum(c.input_tokens for c in calls)

    assert read_share(ok(during)) < 0.1 and read_share(ok(clean)) > 0.8
    _, turns = incident_run("cache_blip")
    after = window(calls_of(turns), dict(incident.scope), incident.end_ns, incident.end_ns + 10 * MINUTE)
    assert read_share(ok(after)) > 0.8  # recovered


def _pass_rate(calls: list[LlmCall], name: str = "judge_pass") -> tuple[float, int]:
    verdicts = [c.evaluation.label == "pass" for c in calls if c.evaluation and c.evaluation.name == name]
    return sum(verdicts) / max(len(verdicts), 1), len(verdicts)


@signal("quality_drop")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    # Every answer of a turn begun since the onset (a turn under way at the onset keeps its model).
    started = [c for t, c in during if c.tool is None and t.start_ns >= incident.onset_ns]
    assert {c.request_model for c in started} == {inc.CHEAPER_MODEL}
    assert sum(cost(c) for c in ok(during)) / len(ok(during)) < 0.5 * sum(cost(c) for c in ok(clean)) / len(
        ok(clean)
    )
    now, judged = _pass_rate(ok(during))
    usual, _ = _pass_rate(ok(clean))
    assert judged >= 30 and now < 0.82 < 0.86 < usual  # sampled and noisy, clearly apart


@signal("new_judge_prompt")
def _(incident: Incident, during: list, clean: list, before: list) -> None:
    # The very same answers; only the judge's name (and its strictness) changed.
    strip = [replace(c, evaluation=None) for _, c in during]
    assert strip == [replace(c, evaluation=None) for _, c in clean]
    names = {c.evaluation.name for _, c in during if c.evaluation}
    assert names == {inc.NEW_JUDGE}


@pytest.mark.parametrize("kind", [k for k in inc.ALL_KINDS if k != "overnight_trough"])
def test_incident_changes_its_signal_at_onset_inside_its_scope_only(kind: str) -> None:
    incident, turns = incident_run(kind)
    assert incident.detector == (kind if kind in inc.INCIDENT_KINDS else None)
    scope = dict(incident.scope)
    # Version labels the incident itself introduces are not in the clean run.
    base_scope = {k: v for k, v in scope.items() if k not in ("prompt_version", "service_version")}
    if kind == "new_model":
        base_scope = scope
    during = window(calls_of(turns), scope, incident.onset_ns, incident.end_ns)
    clean = window(calls_of(clean_run()), base_scope, incident.onset_ns, incident.end_ns)
    before = window(calls_of(turns), base_scope, incident.onset_ns - 30 * MINUTE, incident.onset_ns)
    assert during or kind == "traffic_drop"  # whose signal is that there are none
    _SIGNALS[kind](incident, during, clean, before)
    if kind != "noop_deploy":  # a no-op deploy changes nothing at all, checked above
        _check_untouched_outside_scope(incident, turns)


def test_timeout_surge_can_hit_a_tools_executions() -> None:
    onset, end = T0 + timedelta(minutes=20), T0 + timedelta(minutes=50)
    surge = Incident("timeout_surge", onset, end, {"service": "search", "tool": "web_search"})
    turns = list(generate(Scenario("tool", T0, end, SEED, (surge,)), RATE))
    runs = [tool for t in turns for tool in t.tools if tool.name == "web_search"]
    during = [tool for tool in runs if to_ns(onset) <= tool.start_ns]
    assert sum(tool.error_type == "TimeoutError" for tool in during) / len(during) >= 0.3
    assert not any(tool.error_type == "TimeoutError" for tool in runs if tool.start_ns < to_ns(onset))


# ---- scenarios and the manifest ---------------------------------------------------------------------------


@pytest.mark.parametrize("hour", [0, 5, 9, 13, 17, 21])
def test_incidents_layout_day_one_clean_day_two_everything(hour: int) -> None:
    start = datetime(2026, 6, 1, hour, 23, tzinfo=UTC)
    scenario = build_scenario("incidents", start, timedelta(days=2), 1)
    day2 = start + timedelta(days=1)
    incidents = [i for i in scenario.incidents if i.detector]
    assert sorted(i.kind for i in incidents) == sorted(inc.INCIDENT_KINDS)
    assert {i.kind for i in scenario.incidents} == set(inc.ALL_KINDS)
    assert all(i.onset >= day2 for i in scenario.incidents if i.kind != "overnight_trough")
    ordered = sorted(scenario.incidents, key=lambda i: i.onset)
    for i in incidents:
        assert timedelta(minutes=30) <= i.end - i.onset <= timedelta(minutes=90)
        assert diurnal(i.onset_ns) >= inc.DAYTIME
    timed = [i for i in ordered if i.kind not in ("overnight_trough", "noop_deploy", "new_model")]
    for a, b in itertools.pairwise(timed):
        assert a.end + inc.GAP <= b.onset  # spread out, never overlapping
    troughs = [i for i in scenario.incidents if i.kind == "overnight_trough"]
    assert len(troughs) >= 2 and all(i.gradual and i.scope == {} for i in troughs)

    manifest = json.loads(json.dumps(scenario.manifest(200.0)))
    assert manifest["scenario"] == "incidents" and len(manifest["incidents"]) == len(scenario.incidents)
    entry = next(e for e in manifest["incidents"] if e["kind"] == "cache_hit_collapse")
    assert entry["detector"] == "cache_hit_collapse" and entry["gradual"] is False
    assert entry["scope"] == {"service": "support-bot", "route": "/chat", "prompt_version": "v8"}
    assert entry["onset"].endswith("Z") and datetime.fromisoformat(entry["end"]) > datetime.fromisoformat(
        entry["onset"]
    )
    assert next(e for e in manifest["incidents"] if e["kind"] == "traffic_surge")["detector"] is None


def test_demo_and_scenario_errors() -> None:
    demo = build_scenario("demo", T0, timedelta(hours=1), 1)
    assert [i.kind for i in demo.incidents] == ["cache_hit_collapse", "cost_spike", "latency_p99_drift"]
    # the last 40 minutes hold the incidents, after 20 minutes of clean history
    assert [i.onset for i in demo.incidents] == [T0 + timedelta(minutes=m) for m in (20, 21, 22)]
    assert inc.default_duration("demo") == timedelta(hours=4)
    with pytest.raises(ValueError, match="unknown scenario"):
        build_scenario("nope", T0, timedelta(hours=1), 1)
    with pytest.raises(ValueError, match="duration"):
        build_scenario("incidents", T0, timedelta(hours=12), 1)
    with pytest.raises(ValueError, match="duration"):
        build_scenario("latency_p99_drift", T0, timedelta(hours=1), 1)
    assert parse_duration("2d") == timedelta(days=2) and parse_duration("1h30m") == timedelta(minutes=90)


def test_the_demos_cost_spike_moves_a_route_to_a_pricier_model() -> None:
    # A three-hour demo has no previous day: a user's runaway loop (the per-user rule's incident) could
    # not page in it, a route's cost per call can.
    demo = build_scenario("demo", T0, timedelta(minutes=30), SEED)
    (spike,) = [i for i in demo.incidents if i.kind == "cost_spike"]
    assert dict(spike.scope) == {"service": "support-bot", "route": "/summarize",
                                 "model": "claude-sonnet-4-5-20250929"}  # fmt: skip
    summaries = [(turn, call) for turn, call in calls_of(generate(demo, RATE)) if call.route == "/summarize"]
    before = {c.response_model for t, c in summaries if t.start_ns < spike.onset_ns}
    after = {c.response_model for t, c in summaries if t.start_ns >= spike.onset_ns}
    assert before == {"gemini-2.5-flash"} and after == {"claude-sonnet-4-5-20250929"}
    per_call = {model: statistics.mean(cost(c) for _, c in summaries if c.response_model == model)
                for model in before | after}  # fmt: skip
    assert per_call["claude-sonnet-4-5-20250929"] > 5 * per_call["gemini-2.5-flash"]
    # the other scenarios keep the runaway loop of one user
    (loop,) = [i for i in build_scenario("incidents", T0, timedelta(days=2), SEED).incidents
               if i.kind == "cost_spike"]  # fmt: skip
    assert set(loop.scope) == {"user"}


# ---- emission through the OpenTelemetry SDK ---------------------------------------------------------------


def _recent_scenario(kind: str = "demo", minutes: int = 12) -> Scenario:
    # The store keeps 90 days: the round trip needs recent timestamps.
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    return build_scenario(kind, start, timedelta(minutes=minutes), 4)


def test_json_lines_round_trip_through_decode_request(tmp_path: Path) -> None:
    scenario = _recent_scenario()
    turns = list(generate(scenario, 40))
    path = tmp_path / "traces.jsonl"
    stats = emit(turns, JsonLinesExporter(path))
    lines = path.read_bytes().splitlines()
    assert stats.calls == sum(len(t.calls) for t in turns) and len(lines) == -(-stats.spans // 512)
    first = json.loads(lines[0])
    span = first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16 and isinstance(span["kind"], int)
    assert isinstance(span["startTimeUnixNano"], str)  # int64 as a string, as OTLP/JSON wants

    expected = {c.span_id: (t, c) for t, c in calls_of(turns)}
    seen = nested = 0
    for line in lines:
        for span in otlp.decode_request(line, otlp.JSON):
            attributes = span.attributes
            assert not [key for key in attributes if is_content_key(key)]
            if attributes.get("gen_ai.operation.name") != "chat":
                continue
            seen += 1
            turn, call = expected[int(span.span_id, 16)]
            assert int(span.trace_id, 16) == turn.trace_id
            # a tool's inner call sits 1, 2 or 3 spans below it (the framework spans in between)
            wrappers = tool_call_wrappers(call)
            nested += bool(wrappers)
            parent = wrappers[-1][0] if wrappers else call.parent_id
            assert int(span.parent_span_id, 16) == parent
            assert (span.start_time_unix_nano, span.end_time_unix_nano) == (call.start_ns, call.end_ns)
            assert span.resource["service.name"] == turn.service
            assert span.resource["service.version"] == turn.service_version
            assert attributes["tokenpulse.route"] == call.route
            assert attributes["gen_ai.conversation.id"] == call.session
            if call.error_type is None:
                assert attributes["gen_ai.usage.input_tokens"] == call.input_tokens
                assert attributes["gen_ai.usage.cache_read.input_tokens"] == call.cache_read_tokens
            else:
                assert attributes["error.type"] == call.error_type and span.status_code == 2
    assert seen == len(expected) and nested > 0  # some inner calls sit deeper than right below the tool


def test_simulate_command_output_loads_with_tokenpulse_ingest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output, manifest_path = tmp_path / "traffic.jsonl.gz", tmp_path / "manifest.json"
    code = cli.main(["simulate", "--scenario", "demo", "--duration", "12m", "--rate", "40", "--seed", "4",
                     "--output", str(output), "--manifest", str(manifest_path)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    manifest = json.loads(manifest_path.read_text())
    injected = [i["kind"] for i in manifest["incidents"] if i["detector"]]
    assert injected == ["cache_hit_collapse", "cost_spike", "latency_p99_drift"]
    # The same scenario regenerated in-process: what the file must contain.
    start = datetime.fromisoformat(manifest["start"])
    turns = list(generate(build_scenario("demo", start, timedelta(minutes=12), 4), 40))
    pairs = calls_of(turns)
    # tool executions, and the agent and link spans between a tool and its inner calls
    tools = sum(len(t.tools) + sum(len(tool_call_wrappers(c)) for c in t.calls) for t in turns)
    assert f"simulated {len(pairs)} LLM calls in {len(turns)} traces" in printed

    ingest = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "ingest", "--data", str(tmp_path / "data"), str(output)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    assert (
        f"ingested {len(pairs)} calls and {tools} tool/agent/link spans; rejected 0 spans, 0 lines"
        in ingest.stdout
    )
    store = Store.open(tmp_path / "data")
    try:
        (row,) = store.rows(
            "SELECT sum(input_tokens), sum(cache_read_tokens), sum(cache_write_tokens),"
            " sum(reasoning_tokens), countIf(is_timeout), countIf(ttft_ms IS NOT NULL), countIf(escalated),"
            " min(price_known), uniqExact(prompt_version) FROM calls"
        )
        sql = attributed_calls_sql("c.span_id AS span", "1", "1", only_in_tools=False)
        tool_of = dict(store.rows(f"SELECT span, tool FROM ({sql})"))
    finally:
        store.close()
    calls = [c for _, c in pairs]
    # every inner call, at whatever depth the emitter nested it, is its tool's; the others no tool's
    assert tool_of == {f"{c.span_id:016x}": c.tool or "" for c in calls}
    assert {len(tool_call_wrappers(c)) for c in calls if c.tool} == {0, 1, 2}  # 1 to 3 spans below it
    assert list(row[:7]) == [
        sum(c.input_tokens for c in calls),
        sum(c.cache_read_tokens for c in calls),
        sum(c.cache_write_tokens for c in calls),
        sum(c.reasoning_tokens for c in calls),
        sum(c.is_timeout for c in calls),
        sum(c.ttft_s is not None for c in calls),
        sum(bool(c.escalated) for c in calls),
    ]
    assert row[7] is True and row[8] >= 9


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.batches: list[list] = []

    def export(self, spans) -> SpanExportResult:
        self.batches.append(list(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_live_mode_emits_traces_as_simulated_time_passes() -> None:
    scenario = _recent_scenario("clean", 5)
    turns = list(generate(scenario, 20))
    now = [0.0]
    emitted_at: list[tuple[float, int]] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    speed = 60.0
    start_ns = to_ns(scenario.start)
    stats = emit(turns, _Collect(), speed=speed, start_ns=start_ns, clock=lambda: now[0], sleep=sleep,
                 progress=lambda turn: emitted_at.append((now[0], turn.end_ns)))  # fmt: skip
    assert stats.turns == len(turns)
    for wall, end_ns in emitted_at:
        # never before the simulated clock reached the trace's end
        assert wall * speed >= (end_ns - start_ns) / 1e9 - 1e-6
    last_end = max(t.end_ns for t in turns)
    assert now[0] == pytest.approx((last_end - start_ns) / 1e9 / speed, abs=0.05)


def test_live_send_to_an_otlp_http_receiver() -> None:
    bodies: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        turns = list(generate(_recent_scenario("clean", 3), 20))
        exporter = otlp_exporter(f"http://127.0.0.1:{server.server_address[1]}", "http")
        stats = emit(turns, exporter)
    finally:
        server.shutdown()
    spans = 0
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    wrappers = sum(len(tool_call_wrappers(c)) for t in turns for c in t.calls)
    assert spans == stats.spans == sum(1 + len(t.calls) + len(t.tools) for t in turns) + wrappers
