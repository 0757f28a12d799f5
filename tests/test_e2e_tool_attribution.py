"""LLM calls one, two and three spans below a tool are the tool's, end to end: spans sent to a running
`tokenpulse serve` one per export request, children first or shuffled, read back from the summary API's
``tool`` dimension and from tool_hidden_cost's query on the store."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.daemon import Daemon
from tests.otlp_builders import any_value, export_request
from tokenpulse.detectors.catalog.tool_hidden_cost import TOOL_COSTS
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}
USD_PER_CALL = Decimal("0.0035")  # gpt-4o: 1,000 x $2.50/M + 100 x $10/M
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"}
GENERATE_TEXT = {"ai.operationId": "ai.generateText", "ai.model.id": "gpt-4o", "ai.model.provider": "openai"}
AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}
CHAIN = {"openinference.span.kind": "CHAIN"}
HTTP = {"http.request.method": "POST", "url.full": "https://api.example.com/search"}


def _trace(number: int, end_ns: int) -> list[Span]:
    """A request span (not stored) -> the tool -> calls at depth 1 (direct), 2 (below the Vercel AI SDK's
    ai.generateText) and 3 (below a chain below an agent); and an HTTP call the tool makes."""
    trace_id = number.to_bytes(16, "big")
    tree: list[tuple[str, str, dict[str, Any]]] = [  # span, parent, attributes
        ("request", "", {"http.route": "/ask"}),
        ("tool", "request", TOOL),
        ("call-1", "tool", CALL),
        ("generate", "tool", GENERATE_TEXT),
        ("call-2", "generate", CALL),
        ("agent", "tool", AGENT),
        ("chain", "agent", CHAIN),
        ("call-3", "chain", CALL),
        ("http", "tool", HTTP),
    ]
    ids = {name: (number * 100 + index + 1).to_bytes(8, "big") for index, (name, _, _) in enumerate(tree)}
    depth = {"request": 0}
    spans = []
    for name, parent, attributes in tree:
        depth[name] = depth[parent] + 1 if parent else 0
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=ids[name],
                parent_span_id=ids[parent] if parent else b"",
                name=name,
                # nested spans start later and end earlier
                start_time_unix_nano=end_ns - 10_000_000_000 + depth[name] * 1_000_000_000,
                end_time_unix_nano=end_ns - depth[name] * 1_000_000_000,
                attributes=[KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()],
            )
        )
    return spans


def _send(daemon: Daemon, span: Span, service: str) -> None:
    response = httpx.post(
        f"{daemon.otlp_http}/v1/traces",
        content=export_request(span, service=service).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_calls_nested_one_two_and_three_spans_below_a_tool_are_its_cost(daemon: Daemon) -> None:
    end_ns = time.time_ns() // 60_000_000_000 * 60_000_000_000 - 60_000_000_000  # a minute ago, whole
    children_first = [span for n in (1, 2) for span in reversed(_trace(n, end_ns))]
    shuffled = [span for n in (3, 4) for span in _trace(n, end_ns)]
    random.Random(18).shuffle(shuffled)
    for span in children_first:
        _send(daemon, span, "children-first")
    for span in shuffled:
        _send(daemon, span, "shuffled")

    start = datetime.fromtimestamp(end_ns / 1e9, UTC) - timedelta(minutes=5, seconds=1)
    params = {"start": start.isoformat(), "end": (start + timedelta(minutes=10)).isoformat()}
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{daemon.api}/api/v1/summary", params={**params, "group_by": "service,tool"})
        assert response.status_code == 200, response.text
        groups = {(g["key"]["service"], g["key"]["tool"]): g for g in response.json()["groups"]}
        # acknowledged is durable, not yet stored: wait for the writer (the last span may be a tool's)
        attributed = sum(g["calls"] for (_, tool), g in groups.items() if tool)
        if attributed >= 12 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # every call of the four traces is the tool's, none is left outside it
    assert {k: (g["calls"], Decimal(g["cost_usd"])) for k, g in groups.items()} == {
        ("children-first", "web_search"): (6, 6 * USD_PER_CALL),
        ("shuffled", "web_search"): (6, 6 * USD_PER_CALL),
    }

    assert daemon.stop() == 0, daemon.log()
    store = Store.open(daemon.data_dir)
    try:
        minute = datetime.fromtimestamp(end_ns / 1e9, UTC)
        around = (minute - timedelta(minutes=5), minute + timedelta(minutes=5))
        costs = load_history(store, [TOOL_COSTS], *around)
        rows = costs[TOOL_COSTS][["service", "tool", "tool_calls", "llm_calls", "cost_usd"]]
        assert sorted(rows.values.tolist()) == [
            ["children-first", "web_search", 2, 6, pytest.approx(float(6 * USD_PER_CALL))],
            ["shuffled", "web_search", 2, 6, pytest.approx(float(6 * USD_PER_CALL))],
        ]
        # kept: the tool, the agent and the two framework spans between; not the request or HTTP spans
        kinds = store.rows("SELECT kind, count() FROM tool_spans GROUP BY kind ORDER BY kind")
        assert kinds == [("agent", 4), ("link", 8), ("tool", 4)]
    finally:
        store.close()
