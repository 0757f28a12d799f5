"""Property tests of the normalizer: any attribute map gives a trustworthy record, None or InvalidSpan.

Spans carry the keys the dialects read, with values of every type (negative, NaN, infinite, huge,
strings where numbers belong, lists, maps). A record that comes out satisfies the token semantics and
can be stored: one row ClickHouse refused would stall every insert queued behind it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenpulse.buffer.records import CallRecord, ToolSpanRecord
from tokenpulse.buffer.rows import CALL_FIELDS, TOOL_SPAN_FIELDS, encode_rows
from tokenpulse.collector.dialects import OWN_FIELDS, SHARED_FIELDS
from tokenpulse.collector.normalize import ENGINE, InvalidSpan, NormalizeConfig, normalize_span
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanEvent, SpanView
from tokenpulse.storage.store import Store

CONFIG = NormalizeConfig(extra_dimensions={"team": ("app.team",)})
PRICER = Pricer()
START = 1_763_700_000_000_000_000

# Every key a dialect declares, from the declarations themselves.
USAGE_KEYS = sorted(
    {key for tables in ENGINE.tables.values() for name in OWN_FIELDS for key in tables.keys[name]}
)
OTHER_KEYS = [
    *sorted({key for t in ENGINE.tables.values() for name in SHARED_FIELDS for key in t.keys[name]}),
    *CONFIG.route_keys, *CONFIG.user_keys, *CONFIG.router_escalated_keys, "app.team", "error.type",
    "http.response.status_code", "rpc.grpc.status_code",
]  # fmt: skip
# What makes a span an LLM call in each dialect (and a few that make it a tool, agent or nothing).
MARKERS = [
    {"gen_ai.operation.name": "chat"},
    {"gen_ai.operation.name": "embeddings"},
    {"openinference.span.kind": "LLM"},
    {"ai.operationId": "ai.generateText.doGenerate"},
    {"langfuse.observation.type": "generation"},
    {"llm.request.type": "chat"},
    {"telemetry.sdk.name": "openlit", "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic"},
    {"logfire.span_type": "span", "gen_ai.operation.name": "chat"},
    {"gen_ai.operation.name": "execute_tool"},
    {"gen_ai.operation.name": "invoke_agent"},
    {},
]
LANGFUSE_USAGE_KEYS = [
    "input", "output", "total", "input_cached_tokens", "cache_read", "cache_creation_input_tokens",
    "reasoning_tokens", "input_audio", "output_image", "prompt_tokens", "completion_tokens", "total_tokens",
    "input_tokens", "output_tokens", "prompt_tokens_details", "completion_tokens_details",
]  # fmt: skip

numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=0, max_value=200_000)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 10**8, 10**8 + 1, 2**63 - 1, -1, 0.5, 1e300, -0.0])
)
odd_strings = st.sampled_from(["nan", "inf", "-inf", "1e400", " 12 ", "0x10", "1_000", ""])
numeric_strings = numbers.map(str) | odd_strings
scalars = numbers | numeric_strings | st.text(max_size=30) | st.booleans() | st.none()
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=8), scalars, max_size=3)
langfuse_usage = (
    st.dictionaries(
        st.sampled_from(LANGFUSE_USAGE_KEYS),
        scalars
        | st.dictionaries(st.sampled_from(["cached_tokens", "reasoning_tokens"]), scalars, max_size=2),
        max_size=6,
    ).map(lambda usage: json.dumps(usage))
    | values
)


@st.composite
def spans(draw: st.DrawFn) -> SpanView:
    attributes: dict[str, Any] = dict(draw(st.sampled_from(MARKERS)))
    attributes.update(draw(st.dictionaries(st.sampled_from(USAGE_KEYS), values, max_size=8)))
    attributes.update(draw(st.dictionaries(st.sampled_from(OTHER_KEYS), values, max_size=6)))
    if attributes.get("langfuse.observation.type") == "generation":
        attributes["langfuse.observation.usage_details"] = draw(langfuse_usage)
    times = st.integers(0, 2**64 - 1)
    start = draw(st.just(START) | st.sampled_from([0, 1, 10**17, 10**18, 2**63, 2**64 - 1]) | times)
    end = start + draw(st.just(1_500_000_000) | st.sampled_from([0, 10**20]) | times)
    event_names = st.sampled_from(["ai.stream.firstChunk", "First Token Stream Event"])
    events = [
        SpanEvent(
            name, start + draw(st.integers(-(10**12), 10**12)), {"ai.stream.msToFirstChunk": draw(values)}
        )
        for name in draw(st.lists(event_names, max_size=2))
    ]
    return SpanView(
        trace_id=draw(st.just("4bf92f3577b34da6a3ce929d0e0e4736") | st.sampled_from(["", "0" * 32])),
        span_id=draw(st.just("00f067aa0ba902b7") | st.sampled_from(["", "0" * 16])),
        parent_span_id="",
        name=draw(st.sampled_from(["chat", "ai.generateText.doGenerate", "execute_tool x", ""])),
        start_time_unix_nano=start,
        end_time_unix_nano=min(end, 2**64 - 1),
        attributes=attributes,
        resource={"service.name": draw(scalars), "app.team": draw(values)},
        status_code=draw(st.integers(0, 2)),
        events=events,
    )


def normalized(span: SpanView) -> CallRecord | ToolSpanRecord | None:
    """normalize_span's result; InvalidSpan (a rejection naming its reason) counts as None."""
    try:
        return normalize_span(span, CONFIG, PRICER)
    except InvalidSpan as error:
        assert str(error)
        return None


def finite_non_negative(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value >= 0)


@given(span=spans())
def test_a_record_keeps_the_token_semantics_and_is_finite(span: SpanView) -> None:
    record = normalized(span)
    if record is None:
        return
    assert 1_000_000_000 * 10**9 <= record["time_unix_nano"] < 2**63
    assert finite_non_negative(record["duration_ms"])
    if "kind" in record:
        return
    tokens = [record[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens")]  # type: ignore[literal-required]
    tokens += [record["cache_write_tokens"], record["reasoning_tokens"]]  # type: ignore[typeddict-item]
    assert all(type(n) is int and 0 <= n <= CONFIG.max_tokens for n in tokens)
    assert record["input_tokens"] >= record["cache_read_tokens"] + record["cache_write_tokens"]  # type: ignore[typeddict-item]
    assert record["output_tokens"] >= record["reasoning_tokens"]  # type: ignore[typeddict-item]
    cost = record["cost_usd"]  # type: ignore[typeddict-item]
    assert isinstance(cost, Decimal) and cost.is_finite() and 0 <= cost < 1_000_000
    assert finite_non_negative(record["ttft_ms"])  # type: ignore[typeddict-item]
    dimensions = (record["route"], record["user"], record["provider"])  # type: ignore[typeddict-item]
    assert all(type(v) is str for v in dimensions)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store.open(tmp_path_factory.mktemp("store"))
    opened.migrate()
    yield opened
    opened.close()


_tokens = count()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(span=spans())
def test_every_record_is_storable(module_store: Store, span: SpanView) -> None:
    record = normalized(span)
    if record is None:
        return
    table, fields = ("tool_spans", TOOL_SPAN_FIELDS) if "kind" in record else ("calls", CALL_FIELDS)
    # Raises if ClickHouse refuses the row, in the table or in the per-minute rollup fed by the insert.
    module_store.insert_rows(table, encode_rows([record], fields), f"fuzz-{next(_tokens)}")


@pytest.mark.parametrize(
    ("attributes", "start", "end", "reason"),
    [
        # (a reported cost above the per-call limit is dropped, the call kept: tests/collector/test_served.py)
        ({}, 1_000, 2_000, "broken clock"),  # before 2001: ClickHouse reads 9-digit seconds as a date
        ({}, START, START + 300 * 365 * 86_400 * 10**9, "broken clock"),  # the rollup's end time overflows
    ],
)
def test_unstorable_values_are_rejected_with_the_span(
    attributes: dict[str, Any], start: int, end: int, reason: str
) -> None:
    base = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1}
    span = SpanView("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "", "chat", start, end,
                    base | attributes, {})  # fmt: skip
    with pytest.raises(InvalidSpan, match=reason):
        normalize_span(span, CONFIG, PRICER)
