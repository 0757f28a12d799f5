"""What the traffic model produces: plain, immutable descriptions of traces, emitted later by ``emit.py``.

Token fields follow the collector's canonical semantics: ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMEOUT_ERROR = "TimeoutError"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """An LLM judge's verdict on one answer, sent as the ``gen_ai.evaluation.result`` event of its call."""

    name: str
    score: float  # in [0, 1]
    label: str  # "pass" or "fail"


@dataclass(frozen=True, slots=True)
class LlmCall:
    """One LLM request (a leaf ``chat`` span)."""

    span_id: int
    parent_id: int
    start_ns: int
    end_ns: int
    provider: str
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    ttft_s: float | None  # None when the call is not streamed or failed
    finish_reason: str  # "" when the call failed
    error_type: str | None
    route: str
    user: str
    session: str
    prompt_version: str
    router: str | None = None
    escalated: bool | None = None
    tool: str | None = None  # the tool this call runs inside, None for the route's own calls
    evaluation: Evaluation | None = None  # a sampled judge verdict on this answer

    @property
    def duration_s(self) -> float:
        """Wall time of the call."""
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def is_timeout(self) -> bool:
        """The call was cut off by the client's timeout."""
        return self.error_type == TIMEOUT_ERROR


@dataclass(frozen=True, slots=True)
class ToolExec:
    """One tool execution (``execute_tool`` span); inner calls point at it with their ``parent_id``."""

    span_id: int
    parent_id: int
    start_ns: int
    end_ns: int
    name: str
    error_type: str | None


@dataclass(frozen=True, slots=True)
class Turn:
    """One request to a service: a trace whose root is the HTTP server span."""

    trace_id: int
    span_id: int
    start_ns: int
    end_ns: int
    service: str
    service_version: str
    route: str
    http_status: int
    calls: tuple[LlmCall, ...]
    tools: tuple[ToolExec, ...] = ()
