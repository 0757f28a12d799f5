"""Emission: ``spec.Turn`` descriptions become real OpenTelemetry SDK spans, exported over OTLP or to a file.

This is the only module of the simulator doing I/O. Spans are created by the stock SDK
(``TracerProvider`` per service and deploy version, explicit historical start/end times) so the collector
sees exactly what an instrumented app sends; only the ids come from the traffic model (so a seed gives the
same output) and batching is synchronous (the stock ``BatchSpanProcessor`` drops spans when a backfill
outruns the exporter).
"""

from __future__ import annotations

import base64
import gzip
import heapq
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from google.protobuf import json_format
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import set_span_in_context

from tokenpulse.simulate.catalog import ENVIRONMENT, MODELS
from tokenpulse.simulate.spec import LlmCall, ToolExec, Turn

BATCH_SPANS = 512  # spans per export request, like the SDK's BatchSpanProcessor
FLUSH_EVERY_S = 1.0  # live mode: longest time an ended span waits in the batch

_SCOPE = "tokenpulse.simulate"
_ERROR = Status(StatusCode.ERROR)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")

# Frameworks put spans of their own between a tool and the LLM calls made inside it. A tool's inner
# calls are emitted 1, 2 or 3 spans below it, by the call's span id (a seed still gives the same spans):
# right under the tool; under the Vercel AI SDK's ai.generateText; under an agent run and its chain.
TOOL_CALL_WRAPPERS: tuple[tuple[tuple[str, dict[str, Any]], ...], ...] = (
    (),
    (("ai.generateText", {"ai.operationId": "ai.generateText"}),),
    (
        ("invoke_agent helper", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}),
        ("chain", {"openinference.span.kind": "CHAIN"}),
    ),
)
_MASK64 = (1 << 64) - 1


class ExportFailed(RuntimeError):
    """The exporter gave up on a batch (after the SDK's own retries)."""


class _FixedIds(IdGenerator):
    """Hands the SDK the ids the traffic model chose, so a seed always produces the same spans."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class BatchingProcessor(SpanProcessor):
    """Exports ended spans in batches of ``max_batch``, synchronously, so nothing is ever dropped: a slow
    exporter slows the simulator down instead. Shared by all tracer providers, so a batch mixes
    resources like a real collector pipeline's."""

    def __init__(self, exporter: SpanExporter, max_batch: int = BATCH_SPANS) -> None:
        self.exporter = exporter
        self.max_batch = max_batch
        self.exported = 0
        self.last_flush = time.monotonic()
        self._spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self._spans.append(span)
        if len(self._spans) >= self.max_batch:
            self.flush()

    def flush(self) -> None:
        """Export what is buffered; raise ``ExportFailed`` if the exporter fails."""
        self.last_flush = time.monotonic()
        if not self._spans:
            return
        batch, self._spans = self._spans, []
        if self.exporter.export(batch) is not SpanExportResult.SUCCESS:
            raise ExportFailed(f"the exporter failed a batch of {len(batch)} spans")
        self.exported += len(batch)

    @property
    def pending(self) -> int:
        """Spans ended but not exported yet."""
        return len(self._spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flush()
        return True

    def shutdown(self) -> None:
        # Called once per tracer provider; the emitter flushes and shuts the exporter down itself.
        pass


def request_json(request: ExportTraceServiceRequest) -> str:
    """One ExportTraceServiceRequest as OTLP/JSON, the way the OpenTelemetry Collector's file exporter
    writes it: lowerCamelCase, int64 as strings, enums as integers, trace and span ids as hex."""
    document: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _ids_to_hex(span)
                for link in span.get("links", ()):
                    _ids_to_hex(link)
    return json.dumps(document, separators=(",", ":"))


def _ids_to_hex(item: dict[str, Any]) -> None:
    # protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants ids as hex.
    for field in _ID_FIELDS:
        value = item.get(field)
        if value:
            item[field] = base64.b64decode(value).hex()


class JsonLinesExporter(SpanExporter):
    """Appends one OTLP/JSON ExportTraceServiceRequest line per batch to a file (gzip when it ends in .gz)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Open for the exporter's lifetime; closed by shutdown().
        self._file: IO[str] = (
            gzip.open(path, "wt", encoding="utf-8", compresslevel=6)  # noqa: SIM115
            if path.suffix == ".gz"
            else path.open("w", encoding="utf-8")
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._file.write(request_json(encode_spans(spans)))
        self._file.write("\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._file.flush()
        return True


class SpanWriter:
    """Creates the SDK spans of turns: one ``TracerProvider`` per (service, deploy version) resource."""

    def __init__(self, processor: SpanProcessor) -> None:
        self._processor = processor
        self._ids = _FixedIds()
        self._tracers: dict[tuple[str, str], Tracer] = {}
        self._providers: list[TracerProvider] = []
        try:
            self._version = version("tokenpulse")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
            self._version = "0"
        self.spans = 0

    def _tracer(self, service: str, service_version: str) -> Tracer:
        key = (service, service_version)
        tracer = self._tracers.get(key)
        if tracer is None:
            resource = Resource.create({
                "service.name": service,
                "service.version": service_version,
                "deployment.environment.name": ENVIRONMENT,
                # Fixed instead of the SDK's random default, so a seed always gives the same bytes.
                "service.instance.id": f"{service}-{service_version}",
            })  # fmt: skip
            provider = TracerProvider(resource=resource, id_generator=self._ids, shutdown_on_exit=False)
            provider.add_span_processor(self._processor)
            self._providers.append(provider)
            tracer = self._tracers[key] = provider.get_tracer(_SCOPE, self._version)
        return tracer

    def write(self, turn: Turn) -> None:
        """Create and end every span of ``turn`` (the processor exports them)."""
        tracer = self._tracer(turn.service, turn.service_version)
        self._ids.trace_id = turn.trace_id
        self._ids.span_id = turn.span_id
        root = tracer.start_span(
            f"POST {turn.route}", context=Context(), kind=SpanKind.SERVER, start_time=turn.start_ns,
            attributes={"http.request.method": "POST", "http.route": turn.route,
                        "http.response.status_code": turn.http_status},
        )  # fmt: skip
        if turn.http_status >= 500:
            root.set_status(_ERROR)
        parents = {turn.span_id: _parent(turn.trace_id, turn.span_id)}
        for tool in turn.tools:
            parents[tool.span_id] = _parent(turn.trace_id, tool.span_id)
        # Children first in time order, so ends arrive in the order an app would produce them.
        children: list[LlmCall | ToolExec] = sorted((*turn.calls, *turn.tools), key=lambda s: s.end_ns)
        for child in children:
            self._ids.span_id = child.span_id
            if isinstance(child, LlmCall):
                context, wrappers = parents[child.parent_id], []
                for span_id, name, attributes in tool_call_wrappers(child):
                    self._ids.span_id = span_id
                    wrapper = tracer.start_span(name, context=context, attributes=attributes,
                                                start_time=child.start_ns)  # fmt: skip
                    wrappers.append(wrapper)
                    context = set_span_in_context(wrapper)
                self._ids.span_id = child.span_id
                span = tracer.start_span(
                    f"chat {child.request_model}", context=context, kind=SpanKind.CLIENT,
                    attributes=call_attributes(child), start_time=child.start_ns,
                )  # fmt: skip
            else:
                span = tracer.start_span(
                    f"execute_tool {child.name}", context=parents[child.parent_id], kind=SpanKind.INTERNAL,
                    attributes=tool_attributes(child), start_time=child.start_ns,
                )  # fmt: skip
            if child.error_type is not None:
                span.set_status(_ERROR)
            if isinstance(child, LlmCall) and child.evaluation is not None:
                span.add_event(
                    "gen_ai.evaluation.result", evaluation_attributes(child), timestamp=child.end_ns
                )
            span.end(end_time=child.end_ns)
            if isinstance(child, LlmCall):
                for wrapper in reversed(wrappers):  # inner first: children end before their parents
                    wrapper.end(end_time=child.end_ns)
                self.spans += len(wrappers)
        root.end(end_time=turn.end_ns)
        self.spans += 1 + len(children)

    def shutdown(self) -> None:
        """Shut the providers down (the shared processor's exporter is the caller's)."""
        for provider in self._providers:
            provider.shutdown()


def tool_call_wrappers(call: LlmCall) -> list[tuple[int, str, dict[str, Any]]]:
    """(span id, name, attributes) of the framework spans emitted between a tool and ``call``, outermost
    first; none for a route's own calls. Ids derive from the call's, so they are as unique as its."""
    shape = TOOL_CALL_WRAPPERS[call.span_id % len(TOOL_CALL_WRAPPERS)] if call.tool else ()
    return [
        (((call.span_id ^ (0x9E3779B97F4A7C15 * level)) & _MASK64) or 1, name, attributes)
        for level, (name, attributes) in enumerate(shape, start=1)
    ]


def _parent(trace_id: int, span_id: int) -> Context:
    return set_span_in_context(NonRecordingSpan(SpanContext(trace_id, span_id, False, _SAMPLED)))


def call_attributes(call: LlmCall) -> dict[str, Any]:
    """OTel GenAI semconv attributes of an LLM call span, plus tokenpulse's attribution keys. Never any
    prompt or completion content."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": call.provider,
        "gen_ai.request.model": call.request_model,
        "gen_ai.conversation.id": call.session,
        "tokenpulse.route": call.route,
        "tokenpulse.user": call.user,
        "tokenpulse.prompt.version": call.prompt_version,
    }
    if call.router is not None:
        attributes["tokenpulse.router.name"] = call.router
        attributes["tokenpulse.router.escalated"] = bool(call.escalated)
    if call.error_type is not None:
        # A failed request has no usage and no response.
        attributes["error.type"] = call.error_type
        return attributes
    attributes["gen_ai.response.model"] = call.response_model
    attributes["gen_ai.response.finish_reasons"] = (call.finish_reason,)
    attributes["gen_ai.usage.input_tokens"] = call.input_tokens
    attributes["gen_ai.usage.output_tokens"] = call.output_tokens
    attributes["gen_ai.usage.cache_read.input_tokens"] = call.cache_read_tokens
    if MODELS[call.request_model].cache == "explicit":
        # Only explicit caching (Anthropic) reports cache writes; OpenAI and Gemini have none to report.
        attributes["gen_ai.usage.cache_creation.input_tokens"] = call.cache_write_tokens
    if MODELS[call.request_model].reasoning:
        attributes["gen_ai.usage.reasoning.output_tokens"] = call.reasoning_tokens
    if call.ttft_s is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = round(call.ttft_s, 6)
    return attributes


def evaluation_attributes(call: LlmCall) -> dict[str, Any]:
    """The judge's verdict as the attributes of a ``gen_ai.evaluation.result`` event (no explanation)."""
    evaluation = call.evaluation
    assert evaluation is not None
    return {
        "gen_ai.evaluation.name": evaluation.name,
        "gen_ai.evaluation.score.value": evaluation.score,
        "gen_ai.evaluation.score.label": evaluation.label,
    }


def tool_attributes(tool: ToolExec) -> dict[str, Any]:
    """OTel GenAI semconv attributes of a tool execution span."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool.name,
        "gen_ai.tool.type": "function",
    }
    if tool.error_type is not None:
        attributes["error.type"] = tool.error_type
    return attributes


@dataclass
class EmitStats:
    """What an emission produced."""

    turns: int = 0
    calls: int = 0
    spans: int = 0
    seconds: float = 0.0


def emit(
    turns: Iterable[Turn],
    exporter: SpanExporter,
    *,
    speed: float | None = None,
    start_ns: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Turn], None] | None = None,
) -> EmitStats:
    """Emit ``turns`` through the SDK into ``exporter`` and shut it down.

    Without ``speed`` everything is emitted as fast as possible. With ``speed`` the simulated clock starts
    at ``start_ns`` and runs ``speed`` times faster than the wall clock; a trace's spans are emitted once
    the simulated clock passes its end, as an instrumented app would export them.
    """
    processor = BatchingProcessor(exporter)
    writer = SpanWriter(processor)
    stats = EmitStats()
    began = clock()

    def write(turn: Turn) -> None:
        writer.write(turn)
        stats.turns += 1
        stats.calls += len(turn.calls)
        if progress is not None:
            progress(turn)

    try:
        if speed is None:
            for turn in turns:
                write(turn)
        else:
            _paced(turns, write, processor, speed, start_ns, clock, sleep)
        processor.flush()
    finally:
        writer.shutdown()
        exporter.shutdown()
    stats.spans = writer.spans
    stats.seconds = clock() - began
    return stats


def _paced(
    turns: Iterable[Turn],
    write: Callable[[Turn], None],
    processor: BatchingProcessor,
    speed: float,
    start_ns: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """Release each turn when the simulated clock reaches its end; flush at least every second."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    wall_start = clock()

    def wait_until(t_ns: int) -> None:
        # In wall seconds since the start (floats cannot hold Unix nanoseconds exactly).
        due = (t_ns - start_ns) / 1e9 / speed
        while (behind := due - (clock() - wall_start)) > 0:
            if processor.pending and clock() - processor.last_flush >= FLUSH_EVERY_S:
                processor.flush()
            sleep(min(FLUSH_EVERY_S, behind))

    ended: list[tuple[int, int, Turn]] = []  # by end time
    for index, turn in enumerate(turns):
        # Turns come in start order; whatever ended before this one started can go out now.
        while ended and ended[0][0] <= turn.start_ns:
            wait_until(ended[0][0])
            write(heapq.heappop(ended)[2])
        heapq.heappush(ended, (turn.end_ns, index, turn))
        if processor.pending and clock() - processor.last_flush >= FLUSH_EVERY_S:
            processor.flush()
    while ended:
        wait_until(ended[0][0])
        write(heapq.heappop(ended)[2])
