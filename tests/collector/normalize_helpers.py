"""Shared helpers of the normalization tests: spans built directly as SpanView objects, expected records
with every field, and a fake pricer so every cost is exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tokenpulse.collector.normalize import (
    NormalizeConfig,
    normalize_span,
)
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import STATUS_UNSET, SpanEvent, SpanView

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


SPAN = "00f067aa0ba902b7"


PARENT = "53995c3f42cd8ad8"


START = 1_750_000_000_000_000_000


END = START + 1_500_000_000  # 1.5 s


RESOURCE = {"service.name": "checkout", "service.version": "2.1.0", "deployment.environment.name": "prod"}


SECRET = "SECRET-PROMPT-CONTENT-do-not-store"


class FakePricer(Pricer):
    """Prices every call at a fixed figure, or knows nothing (price=None); records what it was asked.

    A Pricer: compiled, normalize_span takes no other type."""

    def __init__(self, price: Decimal | None = Decimal("0.0125"), source: str = "genai-prices") -> None:
        self.result = None if price is None else (price, source)
        self.calls: list[tuple[str, str, dict[str, int]]] = []

    def price(self, provider: str, model: str, **tokens: int | str) -> tuple[Decimal, str] | None:
        # The five token counts always; what was served and the 1-hour writes only when there are any.
        asked = {k: v for k, v in tokens.items() if k in _ALWAYS or v}
        self.calls.append((provider, model, asked))
        return self.result


_ALWAYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def span(
    attrs: dict[str, Any],
    *,
    name: str = "chat",
    resource: dict[str, Any] | None = None,
    scope: str = "",
    status: int = STATUS_UNSET,
    status_message: str = "",
    events: list[SpanEvent] | None = None,
    trace_id: str = TRACE,
    span_id: str = SPAN,
    start: int = START,
    end: int = END,
) -> SpanView:
    return SpanView(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=PARENT,
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=attrs,
        resource=RESOURCE if resource is None else resource,
        scope_name=scope,
        kind=3,
        status_code=status,
        status_message=status_message,
        events=events or [],
    )


# The fields every record has, with the defaults of the spans built above.
_COMMON: dict[str, Any] = {
    "time_unix_nano": START,
    "duration_ms": 1500.0,
    "trace_id": TRACE,
    "span_id": SPAN,
    "parent_span_id": PARENT,
    "service": "checkout",
    "environment": "prod",
    "status": "unset",
    "error_type": "",
    "is_timeout": False,
}
_CALL: dict[str, Any] = {
    "service_version": "2.1.0",
    "provider": "",
    "request_model": "",
    "response_model": "",
    "operation": "chat",
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "ttft_ms": None,
    "route": "",
    "user": "",
    "session": "",
    "prompt_version": "",
    "router": "",
    "escalated": False,
    "cost_usd": Decimal("0.0125"),
    "price_known": True,
    "cost_source": "genai-prices",
    "dialect": "semconv",
    "extra": {},
    "service_tier": "",
    "speed": "",
    "inference_geo": "",
    "cache_write_1h_tokens": 0,
    "reported_cost_usd": None,
}


def _expected(defaults: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(defaults)
    assert not unknown, unknown
    return {**defaults, **fields}


def call(**fields: Any) -> dict[str, Any]:
    """The expected CallRecord: every field, with the defaults of the spans built above."""
    return _expected({**_COMMON, **_CALL}, fields)


def tool(**fields: Any) -> dict[str, Any]:
    """The expected ToolSpanRecord."""
    return _expected({**_COMMON, "kind": "tool", "name": ""}, fields)


CONFIG = NormalizeConfig()


def norm(s: SpanView, config: NormalizeConfig = CONFIG, pricer: Any = None) -> Any:
    return normalize_span(s, config, pricer if pricer is not None else FakePricer())


def _tokens(record: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        record["input_tokens"],
        record["output_tokens"],
        record["cache_read_tokens"],
        record["cache_write_tokens"],
        record["reasoning_tokens"],
    )


AGGREGATED_USAGE = {"gen_ai.usage.input_tokens": 9000, "gen_ai.usage.output_tokens": 900}


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
