"""Regression tests over what the real instrumentation libraries emitted, without the libraries.

`tests/fixtures/interop/<library>.jsonl` is the OTLP JSON every span a library exported in the interop
run (regenerate with `python -m tests.interop.capture`; versions in `versions.json`). Each span goes
through decoding and normalization exactly as the collector does it and must give the call that
tests/interop/expected.py says, the same check the live interop test applies to stored calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.interop.driver import FIXTURE_LIBRARIES, SECRET, scenarios_of
from tests.interop.expected import mismatches
from tests.interop.fixtures import FIXTURES, fixture_spans
from tests.interop.scenarios import SCENARIO_SPAN_PREFIX, SCENARIOS
from tests.otlp_builders import any_value, otlp_json_to_protobuf
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.normalize import NormalizeConfig, normalize_span
from tokenpulse.collector.pipeline import Pipeline
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanView
from tokenpulse.storage.attribution import attributed_calls_sql
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter


def calls_by_scenario(spans: list[SpanView], pricer: Pricer) -> dict[str, list[dict[str, Any]]]:
    """Normalized calls keyed by the scenario of the app span they were made in (their closest ancestor
    of that kind: a Pydantic AI call hangs below its agent's span)."""
    parent_of = {s.span_id: s.parent_span_id for s in spans}
    scenario_of = {
        s.span_id: s.name.removeprefix(SCENARIO_SPAN_PREFIX)
        for s in spans
        if s.name.startswith(SCENARIO_SPAN_PREFIX)
    }
    calls: dict[str, list[dict[str, Any]]] = {}
    config = NormalizeConfig()
    for s in spans:
        record = normalize_span(s, config, pricer)
        if record is None or record.get("kind") in ("tool", "agent"):
            continue
        ancestor = s.parent_span_id
        while ancestor not in scenario_of and ancestor in parent_of:
            ancestor = parent_of[ancestor]
        calls.setdefault(scenario_of.get(ancestor, f"outside any scenario: {s.name}"), []).append(
            dict(record)
        )
    return calls


@pytest.mark.parametrize("library", FIXTURE_LIBRARIES)
def test_fixture_normalizes_to_the_exact_calls(library: str) -> None:
    pricer = Pricer()
    calls = calls_by_scenario(fixture_spans(library), pricer)
    expected = set(scenarios_of(library))
    assert set(calls) == expected  # one call per scenario, nothing else (HTTP spans, app spans) is a call
    problems = {}
    for name, records in calls.items():
        found = mismatches(records[0], library, SCENARIOS[name], pricer) if len(records) == 1 else ["twice"]
        if found:
            problems[name] = found
    assert not problems, json.dumps(problems, indent=1)
    assert all(SECRET not in json.dumps(r, default=str) for rs in calls.values() for r in rs)


def test_fixtures_carry_prompt_content() -> None:
    """The privacy assertion above is not vacuous: the libraries did export the prompt."""
    for library in FIXTURE_LIBRARIES:
        captured = SECRET in (FIXTURES / f"{library}.jsonl").read_text()
        assert captured or library == "openai-v2"  # 2.4b0 captures no content by default


def test_every_call_below_a_tool_is_that_tools(tmp_path: Path, store: Store) -> None:
    """What the libraries nest below an app span — the call itself, the Vercel AI SDK's ai.generateText
    above its doGenerate, Pydantic AI's agent run above its chat — made a tool span (each scenario's
    span becomes the execution of a tool named after the scenario): every call is that tool's once the
    captures went through the collector into the store."""
    wal = WriteAheadLog(tmp_path / "wal")
    pipeline = Pipeline(wal, NormalizeConfig(), Pricer())
    scenario_of: dict[tuple[str, str], str] = {}  # (trace, call span) -> the scenario it was made in
    for library in FIXTURE_LIBRARIES:
        for line in (FIXTURES / f"{library}.jsonl").read_bytes().splitlines():
            # As protobuf: the collector's pre-filter and the made-up tool attributes work on it.
            request = otlp_json_to_protobuf(line)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        if span.name.startswith(SCENARIO_SPAN_PREFIX):
                            tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": span.name}
                            span.attributes.extend(
                                KeyValue(key=k, value=any_value(v)) for k, v in tool.items()
                            )
            result = pipeline.ingest(request, "test")
            assert not result.rejected, result.message
        spans = fixture_spans(library)
        for name, records in calls_by_scenario(spans, Pricer()).items():
            scenario_of.update({(r["trace_id"], r["span_id"]): SCENARIO_SPAN_PREFIX + name for r in records})
    writer = LogWriter(wal, store, batch_rows=100_000, batch_seconds=0.01)
    writer.start()
    assert writer.wait_stored(wal.durable_end, timeout=60)
    writer.stop()
    wal.close()

    sql = attributed_calls_sql("c.trace_id AS trace, c.span_id AS call", "1", "1", only_in_tools=False)
    attributed = {
        (trace, call): tool for trace, call, tool in store.rows(f"SELECT trace, call, tool FROM ({sql})")
    }
    assert len(attributed) == len(scenario_of) > 60
    assert attributed == scenario_of
