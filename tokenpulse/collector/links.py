"""Link spans: the GenAI framework spans between a tool and the LLM calls made inside it.

``normalize_span`` keeps leaf LLM calls, tool executions and agent invocations, and drops every other
span. Some of the dropped ones sit *between* a tool and its calls: the Vercel AI SDK's
``ai.generateText`` (tool -> ai.generateText -> ai.generateText.doGenerate), LangChain and LlamaIndex
chains, Traceloop workflows and tasks, Langfuse spans. Without them a call two levels below its tool
cannot be traced back to it. ``link_record`` keeps such a span as a ``tool_spans`` row of kind
``link`` — its (trace, span, parent) and little else — so that attribution
(``tokenpulse.storage.attribution``) can walk from a call up to its nearest tool at query time, whatever
order and whichever requests the spans arrived in.

Only spans that carry a GenAI framework's attributes become links: an HTTP or database span never does
(an LLM call is not made below one). Links go through the same write-ahead log and writer as every
other record, so they are stored exactly once.
"""

from __future__ import annotations

from tokenpulse.buffer.records import ToolSpanRecord
from tokenpulse.collector.spans import STATUS_ERROR, STATUS_OK, SpanView

LINK_KIND = "link"

# Attribute key prefixes of the GenAI instrumentations tokenpulse reads (OTel GenAI semconv, Vercel AI
# SDK, OpenLLMetry/OpenInference ``llm.*``, Traceloop, OpenInference, Langfuse). Pydantic AI's and
# OpenLIT's intermediate spans carry ``gen_ai.*`` keys.
GENAI_KEY_PREFIXES = ("gen_ai.", "ai.", "llm.", "traceloop.", "openinference.", "langfuse.")

# What a link is called: a bounded vocabulary (the framework's own span kind), never the span name,
# which may hold ids and would crowd real tool names out of the cardinality cap on ``name``.
_KIND_KEYS = (
    "ai.operationId",
    "openinference.span.kind",
    "traceloop.span.kind",
    "langfuse.observation.type",
    "gen_ai.operation.name",
)
_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
_MIN_TIME_NS = 1_000_000_000 * 10**9  # 2001-09-09: storage's range, as normalize checks it
_MAX_TIME_NS = 7_258_118_400 * 10**9  # 2200-01-01


def _text(value: object) -> str:
    return value if type(value) is str else ""


def link_record(span: SpanView) -> ToolSpanRecord | None:
    """The link row of ``span`` — a span ``normalize_span`` dropped — or None when it is not a GenAI
    framework span below another span (or its ids or times are unusable: it is then ignored, as before,
    never rejected)."""
    parent = span.parent_span_id
    if len(parent) != 16 or parent == "0" * 16:
        return None  # a root links to nothing
    if len(span.trace_id) != 32 or len(span.span_id) != 16 or span.trace_id == "0" * 32:
        return None
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start < _MIN_TIME_NS or end < start or end > _MAX_TIME_NS:
        return None
    attrs = span.attributes
    if not any(key.startswith(GENAI_KEY_PREFIXES) for key in attrs):
        return None
    resource = span.resource
    code = span.status_code
    return {
        "time_unix_nano": start,
        "duration_ms": (end - start) / 1e6,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": parent,
        "service": _text(resource.get("service.name")),
        "environment": next((v for k in _ENVIRONMENT_KEYS if (v := _text(resource.get(k)))), ""),
        "kind": LINK_KIND,
        "name": next((v for k in _KIND_KEYS if (v := _text(attrs.get(k)))), ""),
        "status": "error" if code == STATUS_ERROR else "ok" if code == STATUS_OK else "unset",
        "error_type": "",
        "is_timeout": False,
    }
