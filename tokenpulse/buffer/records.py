"""The canonical records tokenpulse stores: one per LLM call, one per tool/agent span, one per evaluation
result.

Token semantics (one meaning, whatever the dialect):
- ``input_tokens``: every prompt token, *including* cache reads and cache writes.
- ``output_tokens``: every generated token, *including* reasoning.
- ``cache_read_tokens`` / ``cache_write_tokens`` are subsets of ``input_tokens``;
  ``reasoning_tokens`` is a subset of ``output_tokens``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict


class CallRecord(TypedDict):
    """One normalized, priced LLM call (a row of the ``calls`` table)."""

    time_unix_nano: int  # span start
    duration_ms: float
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    service_version: str
    environment: str
    provider: str
    request_model: str
    response_model: str
    operation: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    ttft_ms: float | None
    status: str  # "ok" | "error" | "unset"
    error_type: str
    is_timeout: bool
    route: str
    user: str
    session: str
    prompt_version: str
    router: str
    escalated: bool
    cost_usd: Decimal  # 0 when price_known is False
    price_known: bool
    cost_source: str  # "genai-prices" | "override" | "reported" | "unknown"
    dialect: str
    extra: dict[str, str]
    # Added by migration 4, stored after the tenant (see buffer.rows): what the provider served and billed.
    service_tier: str  # canonical: "standard", "flex", "priority", "batch", "scale"; "" when not reported
    speed: str  # Anthropic fast mode: "fast"; "" when not reported (standard)
    inference_geo: str  # Anthropic inference geography ("us", "global"); "" when not reported
    cache_write_1h_tokens: int  # the part of cache_write_tokens written with a 1-hour TTL
    reported_cost_usd: Decimal | None  # the cost the provider or a gateway reported; None when none did


class ToolSpanRecord(TypedDict):
    """One tool execution or agent invocation span, kept for attribution (``tool_spans`` table)."""

    time_unix_nano: int
    duration_ms: float
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    environment: str
    kind: str  # "tool" | "agent"
    name: str
    status: str
    error_type: str
    is_timeout: bool


class EvaluationRecord(TypedDict):
    """One evaluation result of an LLM call (``evaluations`` table): the semconv event
    ``gen_ai.evaluation.result``, without its explanation (free text that may quote the user).

    ``route``, ``model`` and ``prompt_version`` are those of the evaluated call as the event carries them
    (its attributes, then its resource; for a span event, the call span itself): they are filled in at
    ingest, so the per-minute rollup can group by them without a join.
    """

    time_unix_nano: int  # the event's time (the log record's, else its observed time)
    trace_id: str  # the evaluated call's trace and span: the link to ``calls``
    span_id: str
    service: str
    environment: str
    route: str
    model: str
    prompt_version: str
    evaluation: str  # gen_ai.evaluation.name: what was judged (relevance, correctness, judge_pass...)
    score: float | None  # gen_ai.evaluation.score.value
    label: str  # gen_ai.evaluation.score.label
    passed: bool | None  # the label read as a verdict (collector.evaluations.PASS_LABELS); None: no verdict
    evaluator: str  # the instrumentation scope that emitted the event (the evaluation library)
    error_type: str  # the evaluation itself failed
    response_id: str  # gen_ai.response.id of the evaluated answer
