"""tokenpulse.sdk: configure() and attribution, read back through the collector's normalization.

The same helper drives every real instrumentation library in tests/test_interop.py (route, user, session,
prompt version, router and escalation are asserted on every stored call there).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.collector.normalize_helpers import FakePricer
from tokenpulse import sdk
from tokenpulse.collector.normalize import NormalizeConfig, normalize_span
from tokenpulse.collector.otlp_proto import iter_spans

CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 2,
}


@pytest.fixture
def exported() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    """A tracer whose provider has the attribution processor, and what it exported."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(sdk.AttributionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("app"), exporter
    provider.shutdown()


def llm_call(tracer: trace.Tracer, name: str = "chat gpt-4o") -> None:
    """What an instrumentation library does: start a span, set its GenAI attributes."""
    with tracer.start_as_current_span(name) as span:
        span.set_attributes(CHAT)


def attributes(span: ReadableSpan) -> dict[str, object]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("tokenpulse.")}


def normalized(spans: tuple[ReadableSpan, ...]) -> list[dict]:
    return [
        dict(record)
        for view in iter_spans(encode_spans(spans))
        if (record := normalize_span(view, NormalizeConfig(), FakePricer())) is not None
    ]


def test_attribution_reaches_the_stored_dimensions(exported) -> None:
    tracer, exporter = exported
    with sdk.attribution(
        route="/chat", user="u-42", session="s-1", prompt_version="v7", router="triage", escalated=True
    ):
        llm_call(tracer)
    llm_call(tracer)  # outside: no attribution
    inside, outside = normalized(exporter.get_finished_spans())
    assert {k: inside[k] for k in ("route", "user", "session", "prompt_version", "router", "escalated")} == {
        "route": "/chat",
        "user": "u-42",
        "session": "s-1",
        "prompt_version": "v7",
        "router": "triage",
        "escalated": True,
    }
    assert (outside["route"], outside["user"], outside["escalated"]) == ("", "", False)


def test_nested_blocks_inherit_and_override(exported) -> None:
    tracer, exporter = exported
    with sdk.attribution(route="/chat", user="u-1", attributes={"app.team": "search"}):
        with sdk.attribution(prompt_version="v2", user="u-2"):
            llm_call(tracer, "inner")
            assert sdk.current_attribution()["tokenpulse.user"] == "u-2"
        llm_call(tracer, "outer")
    assert sdk.current_attribution() == {}
    inner, outer = exporter.get_finished_spans()
    assert attributes(inner) == {
        "tokenpulse.route": "/chat",
        "tokenpulse.user": "u-2",
        "tokenpulse.prompt.version": "v2",
    }
    assert inner.attributes["app.team"] == "search"
    assert attributes(outer) == {"tokenpulse.route": "/chat", "tokenpulse.user": "u-1"}


def test_an_attribute_the_instrumentation_sets_itself_wins(exported) -> None:
    tracer, exporter = exported
    with sdk.attribution(route="/chat"), tracer.start_as_current_span("chat") as span:
        span.set_attribute("tokenpulse.route", "/explicit")
    assert exporter.get_finished_spans()[0].attributes["tokenpulse.route"] == "/explicit"


def test_decorator_on_functions_generators_and_coroutines(exported) -> None:
    tracer, exporter = exported
    tag = sdk.attribution(route="/decorated")

    @tag
    def plain() -> str:
        llm_call(tracer, "plain")
        return "done"

    @tag
    def generator() -> Iterator[int]:
        llm_call(tracer, "generator")
        yield 1

    @tag
    async def coroutine() -> str:
        await asyncio.sleep(0)
        llm_call(tracer, "coroutine")
        return "awaited"

    assert plain() == "done" and list(generator()) == [1] and asyncio.run(coroutine()) == "awaited"
    assert plain.__name__ == "plain"
    llm_call(tracer, "after")
    routes = {s.name: s.attributes.get("tokenpulse.route") for s in exporter.get_finished_spans()}
    assert routes == {
        "plain": "/decorated",
        "generator": "/decorated",
        "coroutine": "/decorated",
        "after": None,
    }


def test_one_instance_entered_from_interleaved_contexts(exported) -> None:
    """Threads and tasks each run in their own context: entering and leaving one shared instance in an
    interleaved order (first in, first out) must leave each context exactly as it was."""
    tracer, exporter = exported
    shared = sdk.attribution(route="/shared")
    first, second = contextvars.copy_context(), contextvars.copy_context()
    first.run(shared.__enter__)
    second.run(shared.__enter__)
    first.run(shared.__exit__, None, None, None)  # the first one in leaves first
    first.run(llm_call, tracer, "first-after")
    second.run(llm_call, tracer, "second-inside")
    second.run(shared.__exit__, None, None, None)
    second.run(llm_call, tracer, "second-after")

    async def task(user: str) -> None:
        with shared, sdk.attribution(user=user):
            await asyncio.sleep(0.01)  # the other task enters and runs in between
            llm_call(tracer, user)

    async def both() -> None:
        await asyncio.gather(task("a1"), task("a2"))

    asyncio.run(both())
    seen = {s.name: attributes(s) for s in exporter.get_finished_spans()}
    assert seen["first-after"] == seen["second-after"] == {}
    assert seen["second-inside"] == {"tokenpulse.route": "/shared"}
    for user in ("a1", "a2"):
        assert seen[user] == {"tokenpulse.route": "/shared", "tokenpulse.user": user}


def test_configure_builds_a_provider_with_resource_attribution_and_exporter() -> None:
    exporter = InMemorySpanExporter()
    provider = sdk.configure(
        "support-bot",
        resource_attributes={"service.version": "1.2.0", "deployment.environment.name": "prod"},
        exporter=exporter,
        set_global=False,
    )
    with sdk.attribution(route="/chat"):
        llm_call(provider.get_tracer("app"))
    assert provider.force_flush(5_000)
    provider.shutdown()
    (record,) = normalized(exporter.get_finished_spans())
    assert (record["service"], record["service_version"], record["environment"], record["route"]) == (
        "support-bot",
        "1.2.0",
        "prod",
        "/chat",
    )


def test_otlp_exporter_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    http = sdk.otlp_exporter("127.0.0.1:9999", "http/protobuf")
    assert isinstance(http, HttpExporter) and http._endpoint == "http://127.0.0.1:9999/v1/traces"
    assert sdk.otlp_exporter(None, "http")._endpoint == sdk.DEFAULT_HTTP_ENDPOINT
    assert isinstance(sdk.otlp_exporter(None, "grpc"), GrpcExporter)
    with pytest.raises(ValueError, match="unknown protocol"):
        sdk.otlp_exporter(None, "carrier-pigeon")
