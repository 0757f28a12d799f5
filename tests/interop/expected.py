"""What tokenpulse must store for each scenario, as each instrumentation library reports it.

Pure (no SDK imports): shared by the live interop tests and the fixture regression tests. The baseline is
the fake server's exact usage; every deviation below was measured against the real library and is
listed in docs/normalization.md ("What the instrumentation libraries report"). A deviation that
disappears (a library starts reporting a field) fails the tests, so this table stays true.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from tests.interop.scenarios import FIRST_TOKEN_DELAY_S, HEADERS_DELAY_S, Scenario

TTFT_SLACK_MS = 1500.0  # scheduling noise on a loaded 2-core machine; the lower bound is exact
# OpenLIT starts its clock when its stream wrapper is built, a moment after the headers arrived: how long
# after depends on the client's scheduling (77 ms seen on the 2-core machine under a soak's load)
OPENLIT_CLIENT_GAP_MS = 150.0

# The dialect tokenpulse detects for each library's spans. OpenLLMetry 0.62 writes the OTel GenAI keys
# and none of its old `llm.request.type` markers, so its spans are read as semconv.
DIALECTS = {
    "openllmetry": "semconv",
    "openai-v2": "semconv",
    "openinference": "openinference",
    "openlit": "openlit",
    "pydantic-ai": "pydantic-ai",
    "langfuse": "langfuse",
    "vercel-ai": "vercel-ai",
}


class PricerLike(Protocol):
    def price(self, provider: str, model: str, **tokens: int) -> tuple[Decimal, str] | None: ...


def raised(library: str, s: Scenario) -> str | None:
    """The exception class the app sees, which the failed call's error type names."""
    if library == "pydantic-ai" and s.failed:  # it wraps the SDK's exceptions in its own
        return "ModelAPIError" if s.stall else "ModelHTTPError"
    if library == "vercel-ai" and s.failed:  # JavaScript errors: the AI SDK's, and the abort signal's
        return "TimeoutError" if s.stall else "AI_APICallError"
    return s.raises


def error_type_names(library: str, s: Scenario) -> str | None:
    """The class a failed call's ``error_type`` names ("" when the library records none)."""
    if library == "langfuse" and s.failed:  # only the span status and its message
        return ""
    return raised(library, s)


def expected_fields(library: str, s: Scenario) -> dict[str, Any]:
    """The exactly-known fields of the stored call (cost and TTFT are checked by ``mismatches``)."""
    inp, out, cache_read, cache_write, reasoning = (0, 0, 0, 0, 0) if s.failed else s.tokens
    request_model = s.request_model
    response_model = s.request_model if s.failed else s.response_model
    if library == "openllmetry" and s.provider == "anthropic" and s.stream:
        out += 1  # adds message_start's output_tokens (1) to message_delta's cumulative count
    if library == "openai-v2":
        cache_read = reasoning = 0  # 2.4b0 reports input and output tokens only
    if library == "openlit":
        reasoning = 0  # 1.45 reports no reasoning tokens for OpenAI
    provider = s.provider
    if library == "langfuse":
        provider = ""  # it records the model only
        # `langfuse.observation.model.name`: the response's model, the request's when the call failed
        request_model = response_model
    if library == "openinference":
        # only `llm.model_name`: the response's model, or the request's on Anthropic streams and errors
        if s.provider == "openai":
            request_model = response_model = "" if s.failed else s.response_model
        else:
            request_model = response_model = s.request_model if s.stream or s.failed else s.response_model
    return {
        "provider": provider,
        "operation": s.operation,
        "request_model": request_model,
        "response_model": response_model,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
        "is_timeout": s.stall,
        "dialect": DIALECTS[library],
        **s.attribution,
    }


def reports_ttft(library: str, s: Scenario) -> bool:
    """Whether the library reports a time to first token for this call (only streams have one)."""
    if not s.stream or library == "openai-v2":  # 2.4b0 records TTFT as a metric only
        return False
    # OpenLLMetry and OpenInference time the first chunk of OpenAI streams, not of Anthropic ones
    return not (library in ("openllmetry", "openinference") and s.provider == "anthropic")


def mismatches(record: dict[str, Any], library: str, s: Scenario, pricer: PricerLike) -> list[str]:
    """Every way ``record`` (a stored call or a normalized span) differs from what must be stored."""
    problems = [
        f"{key}: {record.get(key)!r} != {value!r}"
        for key, value in expected_fields(library, s).items()
        if record.get(key) != value
    ]
    # status and error type: the app saw the SDK's exception, the record names its class
    if s.failed:
        error_type = record.get("error_type") or ""
        names = error_type_names(library, s)
        if record.get("status") != "error" or error_type.rsplit(".", 1)[-1] != names:
            problems.append(f"status/error_type: {record.get('status')!r}/{error_type!r}, expected {names!r}")
    elif record.get("status") == "error" or record.get("error_type"):
        problems.append(f"a successful call stored as {record.get('status')!r}/{record.get('error_type')!r}")
    # TTFT: at least the fake server's first-token delay, never longer than the call
    ttft = record.get("ttft_ms")
    if reports_ttft(library, s):
        low = FIRST_TOKEN_DELAY_S * 1000
        if library == "openlit":  # times from when the SDK returned the stream, i.e. after the headers
            low = (FIRST_TOKEN_DELAY_S - HEADERS_DELAY_S) * 1000 - OPENLIT_CLIENT_GAP_MS
        if ttft is None or not low <= ttft <= min(low + TTFT_SLACK_MS, record["duration_ms"]):
            problems.append(f"ttft_ms: {ttft!r} not in [{low}, {low + TTFT_SLACK_MS}] and <= duration")
    elif ttft is not None:
        problems.append(f"ttft_ms: {ttft!r}, expected none")
    # cost: the pricer applied to the exact expected counts
    fields = expected_fields(library, s)
    model = fields["response_model"] or fields["request_model"]
    priced = (
        pricer.price(
            fields["provider"],
            model,
            input_tokens=fields["input_tokens"],
            output_tokens=fields["output_tokens"],
            cache_read_tokens=fields["cache_read_tokens"],
            cache_write_tokens=fields["cache_write_tokens"],
            reasoning_tokens=fields["reasoning_tokens"],
        )
        if model
        else None
    )
    cost, known = (priced[0], True) if priced else (Decimal(0), False)
    if Decimal(record.get("cost_usd")) != cost or record.get("price_known") != known:
        problems.append(f"cost_usd: {record.get('cost_usd')!r}/{record.get('price_known')} != {cost}/{known}")
    return problems
