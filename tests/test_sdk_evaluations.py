"""tokenpulse.sdk records evaluations: the semconv event parented to the call's span, through the stock
OTel logs SDK; against a live daemon, an app's traces and evaluations come back as quality beside cost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.daemon import Daemon
from tokenpulse import sdk


@pytest.fixture
def providers() -> Iterator[tuple[TracerProvider, LoggerProvider, InMemoryLogRecordExporter]]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(sdk.AttributionSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield tracer_provider, logger_provider, logs
    tracer_provider.shutdown()
    logger_provider.shutdown()


def llm_call(tracer, model: str = "gpt-4o-mini", **attributes) -> None:
    """What an instrumentation library does for one chat completion."""
    with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": model, "gen_ai.response.model": f"{model}-2024-07-18",
                             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                             **attributes})  # fmt: skip


def test_an_evaluation_is_parented_to_the_llm_span_and_carries_its_route_and_model(providers) -> None:
    tracer_provider, logger_provider, logs = providers
    tracer = tracer_provider.get_tracer("app")
    # The app's own span is not an LLM call; the instrumentation sets its attributes after starting.
    with (
        sdk.attribution(route="/answer", prompt_version="v5"),
        sdk.llm_calls() as calls,
        tracer.start_as_current_span("GET /answer"),
    ):
        llm_call(tracer)
    assert [span.name for span in calls] == ["chat gpt-4o-mini"]
    sdk.record_evaluation(
        "judge_pass", score=0.4, label="fail", span=calls[0], response_id="chatcmpl-1",
        logger_provider=logger_provider,
    )  # fmt: skip
    (record,) = [data.log_record for data in logs.get_finished_logs()]
    context = calls[0].get_span_context()
    assert (record.trace_id, record.span_id) == (context.trace_id, context.span_id)
    assert record.event_name == "gen_ai.evaluation.result"
    assert dict(record.attributes) == {
        "gen_ai.evaluation.name": "judge_pass",
        "gen_ai.evaluation.score.value": 0.4,
        "gen_ai.evaluation.score.label": "fail",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "tokenpulse.route": "/answer",
        "tokenpulse.prompt.version": "v5",
    }


def test_llm_calls_blocks_collect_only_their_own_calls(providers) -> None:
    tracer_provider, _, _ = providers
    tracer = tracer_provider.get_tracer("app")
    llm_call(tracer)  # outside any block
    with sdk.llm_calls() as outer:
        llm_call(tracer, "gpt-4o")
        with sdk.llm_calls() as inner:
            llm_call(tracer, "o3")
    assert [s.name for s in outer] == ["chat gpt-4o"] and [s.name for s in inner] == ["chat o3"]


def _quality(daemon: Daemon, group_by: str) -> dict[str, dict]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    params = {"group_by": group_by, "start": (now - timedelta(hours=1)).isoformat(),
              "end": (now + timedelta(minutes=2)).isoformat()}  # fmt: skip
    document = httpx.get(f"{daemon.api}/api/v1/summary", params=params, timeout=30).json()
    return {g["key"][group_by]: g for g in document["groups"]}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_app_with_the_stock_exporters_sees_quality_beside_cost(daemon: Daemon, protocol: str) -> None:
    endpoint = f"127.0.0.1:{daemon.grpc_port}" if protocol == "grpc" else daemon.otlp_http
    tracer_provider = sdk.configure("search", endpoint=endpoint, protocol=protocol, set_global=False)
    logger_provider = sdk.configure_logs("search", endpoint=endpoint, protocol=protocol, set_global=False)
    tracer = tracer_provider.get_tracer("app")
    # An LLM-as-judge loop on a sample of traffic: the cheap model's answers, judged.
    for n in range(8):
        with sdk.attribution(route="/answer"), sdk.llm_calls() as calls:
            llm_call(tracer, "gpt-4o-mini")
        verdict = "pass" if n % 4 else "fail"  # 6 of 8 pass
        sdk.record_evaluation("judge_pass", label=verdict, score=0.9 if n % 4 else 0.2, span=calls[-1],
                              logger_provider=logger_provider)  # fmt: skip
    assert tracer_provider.force_flush(30_000) and logger_provider.force_flush(30_000)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        route = _quality(daemon, "route").get("/answer")
        if route and route["calls"] == 8 and route["quality"].get("judge_pass", {}).get("evaluations") == 8:
            break
        time.sleep(0.5)
    judge = route["quality"]["judge_pass"]
    assert (judge["judged"], judge["pass_rate"], judge["mean_score"]) == (8, 0.75, 0.725)
    assert judge["usd_per_passing_answer"] is not None
    cost = float(route["cost_usd"])
    assert float(judge["usd_per_passing_answer"]) == pytest.approx(cost / (8 * 0.75), rel=1e-4)
    by_model = _quality(daemon, "model")
    # the model asked for, answered as its dated snapshot: the evaluations (of the dated name) are its own
    assert by_model["gpt-4o-mini"]["response_models"] == ["gpt-4o-mini-2024-07-18"]
    assert by_model["gpt-4o-mini"]["quality"]["judge_pass"]["evaluations"] == 8
