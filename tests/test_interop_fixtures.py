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

from tests.interop.driver import FIXTURE_LIBRARIES, SECRET, scenarios_of
from tests.interop.expected import mismatches
from tests.interop.scenarios import SCENARIO_SPAN_PREFIX, SCENARIOS
from tokenpulse.collector.normalize import NormalizeConfig, normalize_span
from tokenpulse.collector.otlp import JSON, decode_request
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanView, iter_spans

FIXTURES = Path(__file__).parent / "fixtures" / "interop"


def fixture_spans(library: str) -> list[SpanView]:
    lines = (FIXTURES / f"{library}.jsonl").read_bytes().splitlines()
    return [span for line in lines if line.strip() for span in iter_spans(decode_request(line, JSON))]


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
