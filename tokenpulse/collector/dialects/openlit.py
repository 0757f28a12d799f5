"""OpenLIT: scope ``openlit...`` or ``telemetry.sdk.name = openlit``; semconv keys with OpenLIT quirks."""

from collections.abc import Mapping
from typing import Any

from tokenpulse.collector import dialects as d
from tokenpulse.collector.dialects.openllmetry import GEMINI_PROVIDERS
from tokenpulse.collector.dialects.semconv import CALL_OPERATIONS, OPERATION_ALIASES

SCOPE_PREFIX = "openlit.instrumentation."


def failed_call_without_attributes(attrs: Mapping[str, Any], name: str, scope: str) -> dict[str, str] | None:
    """The attributes a failed OpenLIT call span implies, or None for any other span.

    OpenLIT's Anthropic wrapper sets no attribute when the SDK call raises (a timeout, a 529): only the
    span name ``"{operation} {model}"`` and the scope ``openlit.instrumentation.<provider>`` say what
    the call was.
    """
    if "gen_ai.operation.name" in attrs:
        return None
    raw_op, _, model = name.partition(" ")
    operation = OPERATION_ALIASES.get(raw_op, raw_op)
    if operation not in CALL_OPERATIONS or not model or " " in model:
        return None
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": scope[len(SCOPE_PREFIX) :],
        "gen_ai.request.model": model,
    }


DIALECT = d.Dialect(
    name="openlit",
    order=40,
    markers=d.Markers(scope_contains=("openlit",), attribute_values=(("telemetry.sdk.name", "openlit"),)),
    rules=(
        d.ByValue(
            "gen_ai.operation.name",
            {"agent": d.agent()},  # OpenLIT's agent invocation
            normalize="strip-lower",
            aliases=OPERATION_ALIASES,
        ),
    ),
    keys=d.Keys(
        ttft_seconds=("gen_ai.server.time_to_first_token",),
        # OpenLIT reports a non-streamed call's whole latency as its time to first token.
        stream_flag=("gen_ai.is_streaming",),
    ),
    # Its Anthropic instrumentation writes Anthropic's raw input_tokens (1.45.0 checked by the interop
    # suite): cache reads and writes are left out and added back. Remove if a release adds them itself.
    input_excludes_cache_for=frozenset({"anthropic"}),
    output_excludes_reasoning_for=GEMINI_PROVIDERS,  # Gemini's candidates_token_count, as OpenLLMetry
    implied_call=d.ImpliedCall(
        "failed call without attributes", SCOPE_PREFIX, failed_call_without_attributes
    ),
)
