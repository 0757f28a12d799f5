"""An app instrumented with the stock OpenTelemetry SDK sends to a running `tokenpulse serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.daemon import Daemon
from tokenpulse.storage.store import Store


def run_app(exporter) -> dict[str, str]:
    """What an instrumented app does: a tool span, an LLM call inside it, a failed call, an HTTP span."""
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "service.version": "2.1.0", "deployment.environment.name": "prod"}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    ids = {}
    with tracer.start_as_current_span("execute_tool lookup_order", kind=SpanKind.INTERNAL) as tool:
        tool.set_attribute("gen_ai.operation.name", "execute_tool")
        tool.set_attribute("gen_ai.tool.name", "lookup_order")
        ids["tool"] = format(tool.get_span_context().span_id, "016x")
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as call:
            call.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 10_000,
                    "gen_ai.usage.output_tokens": 1_500,
                    "gen_ai.usage.cache_read.input_tokens": 4_000,
                    "gen_ai.response.time_to_first_chunk": 0.25,
                    "gen_ai.conversation.id": "conv-7",
                    "gen_ai.input.messages": '[{"role": "user", "content": "my card number is 4111"}]',
                    "tokenpulse.route": "/assist",
                    "tokenpulse.user": "alice",
                    "tokenpulse.prompt.version": "p-42",
                }
            )
            ids["call"] = format(call.get_span_context().span_id, "016x")
            ids["trace"] = format(call.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("chat claude", kind=SpanKind.CLIENT) as failed:
        failed.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": 0,
                "gen_ai.usage.output_tokens": 0,
                "error.type": "APITimeoutError",
                "tokenpulse.route": "/assist",
            }
        )
        failed.set_status(Status(StatusCode.ERROR, "request timed out"))
    with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER):
        pass
    assert provider.force_flush(30_000)
    provider.shutdown()
    return ids


def summary(daemon: Daemon, **params: str) -> dict:
    response = httpx.get(f"{daemon.api}/api/v1/summary", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_calls(daemon: Daemon, calls: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        document = summary(daemon)
        if document["groups"][0]["calls"] >= calls or time.monotonic() > deadline:
            return document
        time.sleep(0.2)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_stock_sdk_calls_are_stored_normalized_and_priced(
    daemon: Daemon, tmp_path: Path, transport: str
) -> None:
    if transport == "http":
        exporter = HttpExporter(endpoint=f"{daemon.otlp_http}/v1/traces", timeout=10)
    else:
        exporter = GrpcExporter(endpoint=f"127.0.0.1:{daemon.grpc_port}", insecure=True, timeout=10)
    ids = run_app(exporter)

    total = wait_for_calls(daemon, 2)["groups"][0]
    # gpt-4o: 6,000 uncached input at $2.50/M + 4,000 cached at $1.25/M + 1,500 output at $10/M.
    assert total["calls"] == 2 and total["errors"] == 1
    assert Decimal(total["cost_usd"]) == Decimal("0.035")
    assert (total["input_tokens"], total["cache_read_tokens"], total["output_tokens"]) == (
        10_000,
        4_000,
        1_500,
    )

    cli = subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", "summary", "--api", daemon.api, "--group-by", "route,model"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "gpt-4o-2024-08-06" in cli.stdout and "0.035" in cli.stdout and "/assist" in cli.stdout

    assert daemon.stop() == 0
    store = Store.open(daemon.data_dir)
    try:
        rows = store.query("SELECT *, model FROM calls ORDER BY provider DESC").named_results()
        calls = list(rows)
        tools = list(store.query("SELECT * FROM tool_spans").named_results())
    finally:
        store.close()
    assert len(calls) == 2 and len(tools) == 1
    call, failed = calls
    expected = {
        "trace_id": ids["trace"], "span_id": ids["call"], "parent_span_id": ids["tool"],
        "service": "checkout", "service_version": "2.1.0", "environment": "prod", "provider": "openai",
        "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06", "model": "gpt-4o-2024-08-06",
        "operation": "chat", "input_tokens": 10_000, "output_tokens": 1_500, "cache_read_tokens": 4_000,
        "cache_write_tokens": 0, "reasoning_tokens": 0, "ttft_ms": 250.0, "status": "unset", "error_type": "",
        "is_timeout": False, "route": "/assist", "user": "alice", "session": "conv-7",
        "prompt_version": "p-42",
        "cost_usd": Decimal("0.035"), "price_known": True, "cost_source": "genai-prices",
    }  # fmt: skip
    assert {k: call[k] for k in expected} == expected
    assert call["duration_ms"] > 0
    # Prompt content is never stored (its words: "4111" alone is also a run of hex in a random id).
    assert "my card number" not in json.dumps(call, default=str)
    assert (failed["status"], failed["error_type"], failed["is_timeout"]) == (
        "error",
        "APITimeoutError",
        True,
    )
    assert failed["provider"] == "anthropic"
    tool = tools[0]
    assert (tool["kind"], tool["name"], tool["span_id"], tool["service"]) == (
        "tool",
        "lookup_order",
        ids["tool"],
        "checkout",
    )
