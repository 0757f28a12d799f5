"""Normalize one decoded OTLP span into tokenpulse's canonical record (pure functions, no I/O).

``normalize_span`` returns a :class:`CallRecord` for a leaf LLM call, a :class:`ToolSpanRecord` for a tool
execution or an agent invocation, and None for every other span (HTTP, DB, workflow/chain spans, spans
that only carry *aggregated* usage). A span that is an LLM call but cannot be trusted raises
:class:`InvalidSpan`: that span is rejected, not the request.

The instrumentation dialects (OTel GenAI semconv, OpenLLMetry/traceloop, OpenInference, OpenLIT, Pydantic
AI/Logfire, Vercel AI SDK, Langfuse) are declarations, one module each in ``tokenpulse.collector.dialects``.
:class:`Engine` compiles them once: detection markers in dialect order, classification rules ranked by
strength, and per dialect a key -> field dispatch table, so one pass over a span's attributes fills the
record. For each canonical field the first key present wins: two key families that mean the same thing
are never summed. Token semantics, the inclusive/exclusive rules and the full attribute table are in
``docs/normalization.md`` (checked against the declarations by the tests).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from tokenpulse.buffer.records import CallRecord, ToolSpanRecord
from tokenpulse.collector.compiled import mypyc_attr
from tokenpulse.collector.dialects import (
    CALL,
    OWN_FIELDS,
    SHARED_FIELDS,
    SKIP,
    TOOL,
    ByKey,
    ByName,
    ByValue,
    Dialect,
    InvalidSpan,
    Rank,
    Verdict,
    check_dialects,
    load_dialects,
    token_count,
)
from tokenpulse.collector.price_tiers import canonical_tier
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import STATUS_ERROR, STATUS_OK, SpanView

__all__ = [
    "CONTENT_KEY_PREFIXES",
    "ENGINE",
    "Engine",
    "InvalidSpan",
    "NormalizeConfig",
    "Prefilter",
    "is_content_key",
    "normalize_provider",
    "normalize_span",
]


# --------------------------------------------------------------------------------------------------
# Privacy: attributes that carry prompt/completion content. Nothing is ever copied from them; a config
# that names one (as a dimension or an identity key) is refused.

CONTENT_KEY_PREFIXES: tuple[str, ...] = (
    # OTel GenAI semconv (current and deprecated)
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.content.",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.args",
    "gen_ai.tool.definitions",
    "gen_ai.request.messages",
    "gen_ai.response.text",
    "gen_ai.choice",
    "gen_ai.user.message",
    "gen_ai.system.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.agent.instructions",
    "gen_ai.agent.actual_output",
    "gen_ai.agent.task",
    # OpenInference
    "llm.input_messages",
    "llm.output_messages",
    "llm.prompts",
    "llm.choices",
    "llm.prompt_template.template",
    "llm.prompt_template.variables",
    "llm.function_call",
    "llm.tools",
    "llm.invocation_parameters",
    "input.value",
    "output.value",
    "message.",
    "message_content.",
    "tool.parameters",
    "tool_call.",
    "embedding.embeddings",
    "embedding.text",
    "retrieval.documents",
    "document.",
    "reranker.",
    # OpenLLMetry / traceloop
    "llm.content.",
    "llm.request.functions",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "traceloop.prompt.template",
    "mcp.request.argument",
    "mcp.response.value",
    # Vercel AI SDK
    "ai.prompt",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
    "ai.response.reasoning",
    "ai.result.",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "ai.toolCall.input",
    "ai.toolCall.output",
    "ai.value",
    "ai.embedding",
    "ai.schema",
    # Langfuse
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.trace.input",
    "langfuse.trace.output",
    # Pydantic AI / Logfire
    "pydantic_ai.all_messages",
    "all_messages_events",
    "final_result",
    "tool_arguments",
    "tool_response",
    "logfire.msg",
    "logfire.json_schema",
)
# Key shapes that hold content whatever the namespace.
_CONTENT_KEY_PARTS = (".messages", "_messages")
_CONTENT_KEY_SUFFIXES = (".content", ".prompt", ".completion")
_CONTENT_PREFIXES_LOWER = tuple(p.lower() for p in CONTENT_KEY_PREFIXES)
_CONTENT_EXACT = frozenset({"events", "prompt", "completion", "input", "output", "messages"})


def is_content_key(key: str) -> bool:
    """True when ``key`` is (or may be) an attribute that carries prompt or completion content."""
    low = key.lower()
    return (
        low in _CONTENT_EXACT
        or low.startswith(_CONTENT_PREFIXES_LOWER)
        or any(part in low for part in _CONTENT_KEY_PARTS)
        or low.endswith(_CONTENT_KEY_SUFFIXES)
    )


# --------------------------------------------------------------------------------------------------
# Configuration


# A plain Python class also where this module is compiled (setup.py): callers give single strings and
# lists that __post_init__ turns into tuples, and worker processes unpickle it.
@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class NormalizeConfig:
    """Which attributes hold the attribution dimensions; each tuple is an ordered precedence list.

    Every key is looked up in the span attributes first, then (all keys again) in the resource attributes.
    """

    route_keys: tuple[str, ...] = (
        "tokenpulse.route",
        "app.route",
        "traceloop.entity.name",
        "traceloop.workflow.name",
        "gen_ai.agent.name",
        "ai.telemetry.functionId",
        "langfuse.trace.name",
    )
    user_keys: tuple[str, ...] = (
        "tokenpulse.user",
        "user.id",
        "enduser.id",
        "langfuse.user.id",
        "traceloop.association.properties.user_id",
        "ai.telemetry.metadata.userId",
        "ai.telemetry.metadata.user_id",
        "llm.user",
        "gen_ai.request.user",
    )
    session_keys: tuple[str, ...] = (
        "tokenpulse.session",
        "gen_ai.conversation.id",
        "session.id",
        "langfuse.session.id",
        "traceloop.association.properties.session_id",
        "ai.telemetry.metadata.sessionId",
        "ai.telemetry.metadata.session_id",
    )
    prompt_version_keys: tuple[str, ...] = (
        "tokenpulse.prompt_version",
        "tokenpulse.prompt.version",
        "langfuse.observation.prompt.version",
        "llm.prompt_template.version",
        "traceloop.association.properties.prompt_version",
        "traceloop.prompt.version",
        "ai.telemetry.metadata.promptVersion",
        "ai.telemetry.metadata.prompt_version",
    )
    router_name_keys: tuple[str, ...] = (
        "tokenpulse.router",
        "tokenpulse.router.name",
        "router.name",
        "traceloop.association.properties.router",
        "ai.telemetry.metadata.router",
    )
    router_escalated_keys: tuple[str, ...] = (
        "tokenpulse.router.escalated",
        "tokenpulse.escalated",
        "router.escalated",
        "traceloop.association.properties.escalated",
        "ai.telemetry.metadata.escalated",
    )
    extra_dimensions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_tokens: int = 100_000_000  # a larger count is absurd -> InvalidSpan
    # For the hot path (declared: a compiled class has no __dict__): the extra dimensions as a tuple,
    # precomputed by __post_init__, and the last resource's dimensions (_resource_view's memo).
    _extra_items: tuple[tuple[str, tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    _resource_memo: _ResourceView | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # The fields as given (settings give lists, single strings, floats), read untyped: compiled,
        # a typed read would refuse them with a TypeError before the checks below.
        given: dict[str, Any] = vars(self)
        for name in (
            "route_keys",
            "user_keys",
            "session_keys",
            "prompt_version_keys",
            "router_name_keys",
            "router_escalated_keys",
        ):
            object.__setattr__(self, name, _key_tuple(given[name], name))
        extra: dict[str, tuple[str, ...]] = {}
        for dim, keys in dict(given["extra_dimensions"]).items():
            if not isinstance(dim, str) or not dim:
                raise ValueError(f"extra_dimensions: dimension names must be non-empty strings, got {dim!r}")
            extra[dim] = _key_tuple(keys, f"extra_dimensions[{dim!r}]")
        object.__setattr__(self, "extra_dimensions", extra)
        max_tokens = given["max_tokens"]
        if type(max_tokens) is not int or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        # Not an init field, so replace() recomputes it (and starts the memo afresh).
        object.__setattr__(self, "_extra_items", tuple(extra.items()))

    def __getstate__(self) -> dict[str, Any]:
        # The memo is this process's (and a compiled _ResourceView cannot be pickled): workers start without.
        return {**vars(self), "_resource_memo": None}


def _key_tuple(keys: Any, where: str) -> tuple[str, ...]:
    if isinstance(keys, str):
        keys = (keys,)
    result = tuple(keys)
    for key in result:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{where}: attribute keys must be non-empty strings, got {key!r}")
        if is_content_key(key):
            raise ValueError(f"{where}: {key!r} carries prompt/completion content and may never be stored")
    return result


# --------------------------------------------------------------------------------------------------
# Providers

WELL_KNOWN_PROVIDERS = frozenset(
    {
        "anthropic",
        "aws.bedrock",
        "azure.ai.inference",
        "azure.ai.openai",
        "cohere",
        "deepseek",
        "gcp.gemini",
        "gcp.gen_ai",
        "gcp.vertex_ai",
        "groq",
        "ibm.watsonx.ai",
        "mistral_ai",
        "openai",
        "perplexity",
        "x_ai",
    }
)

_PROVIDER_ALIASES: dict[str, str] = {
    # Azure OpenAI
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "azure_ai_openai": "azure.ai.openai",
    # Azure AI Inference
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "azure-ai-inference": "azure.ai.inference",
    "azure.ai_inference": "azure.ai.inference",
    # Mistral
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "mistral-ai": "mistral_ai",
    # xAI
    "xai": "x_ai",
    "grok": "x_ai",
    "x-ai": "x_ai",
    "x.ai": "x_ai",
    # AWS Bedrock
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "aws-bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "amazon.bedrock": "aws.bedrock",
    "awsbedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "bedrock-runtime": "aws.bedrock",
    # Google Gemini API (AI Studio)
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google-genai": "gcp.gemini",
    "google.genai": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "google.ai.studio": "gcp.gemini",
    "google-generative-ai": "gcp.gemini",
    "google.generative-ai": "gcp.gemini",
    "google_generativeai": "gcp.gemini",
    "google-generativeai": "gcp.gemini",
    "googleai": "gcp.gemini",
    "google-gla": "gcp.gemini",
    "google_gla": "gcp.gemini",
    # Google Vertex AI
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "vertex-ai": "gcp.vertex_ai",
    "google.vertex": "gcp.vertex_ai",
    "google_vertex": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "google-vertex-ai": "gcp.vertex_ai",
    "google_vertexai": "gcp.vertex_ai",
    # IBM watsonx
    "ibm": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "ibm.watson.ai": "ibm.watsonx.ai",
    "ibm_watsonx": "ibm.watsonx.ai",
    "watsonx.ai": "ibm.watsonx.ai",
    "ibm-watsonx": "ibm.watsonx.ai",
    "ibm_watsonx_ai": "ibm.watsonx.ai",
    # others
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "openai": "openai",
    "anthropic": "anthropic",
}
_MAX_PROVIDER_CACHE = 4096
_provider_cache: dict[tuple[str, bool], str] = {}


def normalize_provider(raw: str, *, dotted_suffix: bool = False) -> str:
    """Map a provider spelling to the OTel well-known value, lowercased.

    ``dotted_suffix`` (Vercel AI SDK: ``"openai.chat"``, ``"google.vertex.chat"``) tries ever shorter
    dot-prefixes and, when nothing matches, keeps the part before the first dot.
    """
    key = (raw, dotted_suffix)
    hit = _provider_cache.get(key)
    if hit is not None:
        return hit
    low = raw.strip().lower()
    result = low if low in WELL_KNOWN_PROVIDERS else _PROVIDER_ALIASES.get(low)
    if result is None:
        result = low
        if dotted_suffix and "." in low:
            parts = low.split(".")
            result = parts[0]
            for n in range(len(parts) - 1, 0, -1):
                prefix = ".".join(parts[:n])
                found = prefix if prefix in WELL_KNOWN_PROVIDERS else _PROVIDER_ALIASES.get(prefix)
                if found is not None:
                    result = found
                    break
    if len(_provider_cache) < _MAX_PROVIDER_CACHE:
        _provider_cache[key] = result
    return result


_ENVIRONMENT_KEYS: tuple[str, ...] = ("deployment.environment.name", "deployment.environment")

_ZERO = Decimal(0)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# The range storage holds exactly (calls.time is DateTime64(9), read from "seconds.nanos" text with
# 10-digit seconds; cost_usd is Decimal(18, 12)).
_MIN_TIME_NS = 1_000_000_000 * 10**9  # 2001-09-09
_MAX_TIME_NS = 7_258_118_400 * 10**9  # 2200-01-01
_MAX_COST_USD = Decimal(1_000_000)
_TIMEOUT_HTTP = frozenset({408, 504, "408", "504"})
_TRUE_STRINGS = frozenset({"true", "1", "yes", "y", "on"})


# --------------------------------------------------------------------------------------------------
# Small readers


def _as_dim(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value  # its length is a limit of the pipeline's (limits.truncate_long_values)
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    return ""  # lists/dicts are never copied into a dimension


def _flag(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> bool | None:
    """The first present key as a boolean (None when no key is present)."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            flag = _flag_value(value)
            if flag is not None:
                return flag
    return None


def _str_attr(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            text = _as_dim(value)
            if text:
                return text
    return ""


class _ResourceView:
    """The dimensions a resource provides; computed once per resource object, not per span."""

    __slots__ = (
        "environment",
        "escalated",
        "extra",
        "prompt_version",
        "resource",
        "route",
        "router",
        "service",
        "service_version",
        "session",
        "user",
    )

    def __init__(self, resource: Mapping[str, Any], config: NormalizeConfig) -> None:
        self.resource = resource
        self.service = _str_attr(resource, ("service.name",))
        self.service_version = _str_attr(resource, ("service.version",))
        self.environment = _str_attr(resource, _ENVIRONMENT_KEYS)
        self.route = _str_attr(resource, config.route_keys)
        self.user = _str_attr(resource, config.user_keys)
        self.session = _str_attr(resource, config.session_keys)
        self.prompt_version = _str_attr(resource, config.prompt_version_keys)
        self.router = _str_attr(resource, config.router_name_keys)
        self.escalated = bool(_flag(resource, config.router_escalated_keys))
        self.extra = {
            name: value for name, keys in config._extra_items if (value := _str_attr(resource, keys))
        }


def _resource_view(resource: Mapping[str, Any], config: NormalizeConfig) -> _ResourceView:
    # Spans of one OTLP ResourceSpans share one resource dict, so a one-entry memo hits almost always.
    # The memo holds the resource itself, so an `is` match can never be a recycled id.
    view: _ResourceView | None = config._resource_memo
    if view is None or view.resource is not resource:
        view = _ResourceView(resource, config)
        object.__setattr__(config, "_resource_memo", view)
    return view


def _is_timeout_text(text: str) -> bool:
    if not text:
        return False
    low = text.lower()
    return "timeout" in low or "timed out" in low or "deadline" in low or "time out" in low


def _timeout_status(attrs: dict[str, Any]) -> bool:
    """HTTP 408/504 or gRPC DEADLINE_EXCEEDED (4)."""
    http = attrs.get("http.response.status_code")
    if http is None:
        http = attrs.get("http.status_code")
    if (type(http) is int or type(http) is str) and http in _TIMEOUT_HTTP:
        return True
    grpc = attrs.get("rpc.grpc.status_code")
    return type(grpc) is int and grpc == 4


def _seconds_or_ms(value: Any, scale: float) -> float | None:
    kind = type(value)
    if kind is int or kind is float:
        ms = value * scale
    elif kind is str:
        try:
            ms = float(value) * scale
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(ms) or ms < 0:
        return None
    return float(ms)


def _iso_to_ns(value: Any) -> int | None:
    if type(value) is not str:
        return None
    text = value.strip().strip('"')
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


def _error_type(value: Any) -> str:
    """``error.type`` as a dimension. opentelemetry-util-genai writes the exception class itself, which the
    SDK turns into ``"<class 'openai.RateLimitError'>"``: that becomes ``openai.RateLimitError``."""
    text = _as_dim(value)
    if text.startswith("<class '") and text.endswith("'>"):
        return text[8:-2]
    return text


# --------------------------------------------------------------------------------------------------
# The engine: the declarations compiled once into per-dialect rule lists and key -> field dispatch tables

# Slots of the one pass over a span's attributes: the fields of dialects.OWN_FIELDS and SHARED_FIELDS,
# then the configured dimensions.
_FIELDS = OWN_FIELDS + SHARED_FIELDS
(
    _INPUT,
    _OUTPUT,
    _CACHE_READ,
    _CACHE_WRITE,
    _REASONING,
    _TOTAL,
    _PROVIDER,
    _CACHE_WRITE_5M,
    _CACHE_WRITE_1H,
    _REQUEST_MODEL,
    _RESPONSE_MODEL,
    _TTFT_SECONDS,
    _TTFT_MS,
    _STREAM_FLAG,
    _COMPLETION_START,
    _REPORTED_COST,
    _REPORTED_COST_DETAILS,
    _TOOL_NAME,
    _AGENT_NAME,
    _SERVICE_TIER,
    _SPEED,
    _INFERENCE_GEO,
) = range(len(_FIELDS))
_CONFIG_FIELDS = ("route_keys", "user_keys", "session_keys", "prompt_version_keys", "router_name_keys")
_ROUTE, _USER, _SESSION, _PROMPT_VERSION, _ROUTER = range(len(_FIELDS), len(_FIELDS) + len(_CONFIG_FIELDS))
_ESCALATED = _ROUTER + 1
_EXTRA = _ESCALATED + 1  # the first extra dimension


def _dim_or_none(value: Any) -> str | None:
    return _as_dim(value) or None


def _flag_value(value: Any) -> bool | None:
    kind = type(value)
    if kind is bool:
        return value
    if kind is str:
        return value.strip().lower() in _TRUE_STRINGS
    if kind is int or kind is float:
        return value != 0
    return None  # a list or map: the next key is tried


def _served(value: Any) -> str | None:
    # What the provider served, spelled canonically ("default" -> "standard"); "" gives way to the next key.
    return canonical_tier(value) or None if type(value) is str else None


def _seconds(value: Any) -> float | None:
    return _seconds_or_ms(value, 1000.0)


def _milliseconds(value: Any) -> float | None:
    return _seconds_or_ms(value, 1.0)


# How a slot accepts a value: None takes the first present one as it is (token counts are validated
# after the pass, naming the key); a reader's None means "not usable, try the next key".
_READERS: dict[int, Callable[[Any], Any]] = {
    _REQUEST_MODEL: _dim_or_none,
    _RESPONSE_MODEL: _dim_or_none,
    _TTFT_SECONDS: _seconds,
    _TTFT_MS: _milliseconds,
    _STREAM_FLAG: _flag_value,
    _TOOL_NAME: _dim_or_none,
    _AGENT_NAME: _dim_or_none,
    _SERVICE_TIER: _served,
    _SPEED: _served,
    _INFERENCE_GEO: _served,
}

_Reader = Callable[[Any], Any]
_MAX_SCOPE_MEMO = 4096
_MAX_VALUE_MEMO = 1024


def _unique(keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


class _ValueRule:
    """ByValue rules of one key, merged across dialects (they must spell values alike), with their
    raw value -> verdict lookups memoized: a span pays one dict lookup per kind attribute it carries."""

    __slots__ = ("_canonical", "aliases", "key", "memo", "names_operation", "normalize", "other", "values")

    def __init__(self, first: ByValue) -> None:
        self.key = first.key
        self._canonical = first.canonical
        self.normalize = first.normalize
        self.aliases = dict(first.aliases)
        self.values: dict[str, Verdict] = dict(first.values)
        self.other = first.other
        self.names_operation = first.names_operation
        if first.decisive:
            self.values = {
                v: Verdict(found.kind, Rank.OWN, found.operation) for v, found in self.values.items()
            }
            if self.other is not None:
                self.other = Verdict(self.other.kind, Rank.OWN, self.other.operation)
        self.memo: dict[Any, tuple[str, Verdict | None]] = {}

    def merge(self, rule: ByValue, where: str) -> None:
        if dict(rule.aliases) != self.aliases or rule.normalize != self.normalize:
            raise ValueError(f"{where}: ByValue({rule.key!r}) spells values unlike another dialect's rule")
        for value, verdict in rule.values.items():
            if self.values.get(value, verdict) != verdict:
                raise ValueError(f"{where}: {rule.key}={value!r} is already declared as {self.values[value]}")
            self.values[value] = verdict
        if rule.other is not None:
            if self.other not in (None, rule.other):
                raise ValueError(f"{where}: ByValue({rule.key!r}) has two verdicts for other values")
            self.other = rule.other
        self.names_operation = self.names_operation or rule.names_operation

    def read(self, raw: Any) -> tuple[str, Verdict | None]:
        """(the canonical value, its verdict) of a raw attribute value (("", None) unless a string)."""
        if type(raw) is not str:
            return "", None
        hit = self.memo.get(raw)
        if hit is None:
            value = self._canonical(raw)
            hit = (value, self.values.get(value, self.other) if value else None)
            if len(self.memo) < _MAX_VALUE_MEMO:
                self.memo[raw] = hit
        return hit


# A span's plan: per slot it fills, the slot, its keys the span carries (in precedence order) and the
# slot's reader (None: the first present value as it is); split in three, each read its own way: the
# slots of one key and no reader (the value as it is, None when absent), those of one key and the
# dimension reader, and the others.
_Plan = tuple[
    tuple[tuple[int, str], ...],
    tuple[tuple[int, str], ...],
    tuple[tuple[int, tuple[str, ...], "_Reader | None"], ...],
]
_MAX_PLANS = 4096
_NO_RANK: Final = len(Rank)  # weaker than any rank: no rule matched


class _Dispatch:
    """One dialect's key tables under one config: per slot its keys in precedence order (rank = index)
    and the reader that accepts or skips a value; and, per set of attribute keys a span carries (its
    instrumentation writes the same keys span after span), the plan of the pass over them."""

    __slots__ = ("entries", "keys", "plans", "readers", "size")

    def __init__(self, tables: list[tuple[tuple[str, ...], _Reader | None]]) -> None:
        self.size = len(tables)
        self.keys = tuple(keys for keys, _ in tables)
        self.readers = tuple(reader for _, reader in tables)
        entries: dict[str, list[tuple[int, int]]] = {}
        for slot, (keys, _) in enumerate(tables):
            for rank, key in enumerate(keys):
                entries.setdefault(key, []).append((slot, rank))
        self.entries = {key: tuple(found) for key, found in entries.items()}
        self.plans: dict[tuple[str, ...], _Plan] = {}

    def plan(self, keys: tuple[str, ...]) -> _Plan:
        """The plan for a span carrying the attribute ``keys`` (memoized; distinct key sets past
        _MAX_PLANS are planned every time rather than remembered)."""
        plan = self.plans.get(keys)
        if plan is None:
            present: dict[int, list[tuple[int, str]]] = {}
            for key in keys:
                for slot, rank in self.entries.get(key, ()):
                    present.setdefault(slot, []).append((rank, key))
            entries = [
                (slot, tuple(key for _, key in sorted(found)), self.readers[slot])
                for slot, found in sorted(present.items())
            ]
            plan = (
                tuple((slot, keys[0]) for slot, keys, reader in entries if len(keys) == 1 and reader is None),
                tuple(
                    (slot, keys[0])
                    for slot, keys, reader in entries
                    if len(keys) == 1 and reader is _dim_or_none
                ),
                tuple(
                    entry
                    for entry in entries
                    if len(entry[1]) > 1 or (entry[2] is not None and entry[2] is not _dim_or_none)
                ),
            )
            if len(self.plans) < _MAX_PLANS:
                self.plans[keys] = plan
        return plan


class _DialectTables:
    """One dialect compiled: its rules (its own plus every dialect's shared ones) and key tables, and the
    declaration's fields that normalizing a span reads (compiled, read as struct members)."""

    __slots__ = (
        "decisive",
        "decisive_or_name",
        "implied_call",
        "input_excludes_cache_for",
        "key_rules",
        "keys",
        "metadata_reader",
        "model_keys",
        "name",
        "name_rules",
        "operation_rule",
        "output_excludes_reasoning_for",
        "provider_has_suffix",
        "usage_keys",
        "usage_reader",
        "value_rules",
    )

    def __init__(self, dialect: Dialect, dialects: tuple[Dialect, ...], fallback: Dialect) -> None:
        self.name = dialect.name
        self.implied_call = dialect.implied_call
        self.usage_reader = dialect.usage_reader
        self.metadata_reader = dialect.metadata_reader
        self.provider_has_suffix = dialect.provider_has_suffix
        self.input_excludes_cache_for = dialect.input_excludes_cache_for
        self.output_excludes_reasoning_for = dialect.output_excludes_reasoning_for
        self.decisive: _ValueRule | None = None
        self.decisive_or_name = False
        merged: dict[str, _ValueRule] = {}
        key_rules: list[ByKey] = []
        name_rules: list[ByName] = []
        for owner in dialects:  # detection order: of two CALL rules the first gives the operation
            for rule in owner.rules:
                if isinstance(rule, ByValue):
                    if rule.decisive:
                        if owner is dialect:
                            if self.decisive is not None:
                                raise ValueError(f"dialect {owner.name!r}: two decisive rules")
                            self.decisive = _ValueRule(rule)
                            self.decisive_or_name = rule.or_span_name
                    elif rule.key in merged:
                        merged[rule.key].merge(rule, f"dialect {owner.name!r}")
                    else:
                        merged[rule.key] = _ValueRule(rule)
                elif not rule.claimed_only or owner is dialect:
                    (key_rules if isinstance(rule, ByKey) else name_rules).append(rule)  # type: ignore[arg-type]
        self.value_rules = tuple(merged.values())
        # (rank, verdict, keys) and (rank, verdict, names, prefixes): typed tuples, whose fields a compiled
        # classify reads without an attribute lookup on the declarations.
        self.key_rules = tuple((int(rule.verdict.rank), rule.verdict, rule.keys) for rule in key_rules)
        self.name_rules = tuple(
            (int(rule.verdict.rank), rule.verdict, rule.names, rule.prefixes) for rule in name_rules
        )
        naming = [r for r in merged.values() if r.names_operation]
        if len(naming) > 1:
            raise ValueError(f"two attributes name the operation: {[r.key for r in naming]}")
        self.operation_rule = naming[0] if naming and dialect.reads_operation_name else None
        # Key tables, in precedence order.
        keys: dict[str, tuple[str, ...]] = {}
        for name in OWN_FIELDS:
            keys[name] = _unique((*getattr(dialect.keys, name), *getattr(fallback.keys, name)))
        others = [d for d in dialects if d is not dialect and d is not fallback]
        for name in SHARED_FIELDS:
            keys[name] = _unique(key for d in (fallback, dialect, *others) for key in getattr(d.keys, name))
        self.keys = keys
        self.model_keys = keys["request_model"] + keys["response_model"]
        self.usage_keys = keys["input"] + keys["output"]

    def dispatch(self, config: NormalizeConfig) -> _Dispatch:
        """This dialect's key tables under ``config`` (whose dimension keys fill the last slots)."""
        tables: list[tuple[tuple[str, ...], _Reader | None]] = [
            (self.keys[name], _READERS.get(slot)) for slot, name in enumerate(_FIELDS)
        ]
        tables += [(getattr(config, name), _dim_or_none) for name in _CONFIG_FIELDS]
        tables.append((config.router_escalated_keys, _flag_value))
        tables += [(keys, _dim_or_none) for _, keys in config._extra_items]
        return _Dispatch(tables)


class Engine:
    """Dialect declarations compiled for normalization: detection, classification and the key ->
    field dispatch that fills a record in one pass over a span's attributes."""

    def __init__(self, dialects: Iterable[Dialect]) -> None:
        self.dialects = check_dialects(tuple(dialects))
        fallback = self.dialects[-1]
        self.fallback = fallback
        self.tables = {d.name: _DialectTables(d, self.dialects, fallback) for d in self.dialects}
        # Detection: every marker with the index of its dialect (the fallback's index claims the rest).
        self._ordered = tuple(self.tables[d.name] for d in self.dialects)
        self._none = len(self.dialects) - 1
        claims = list(enumerate(d.markers for d in self.dialects if not d.fallback))
        self._key_markers = tuple((i, key, False) for i, m in claims for key in m.keys) + tuple(
            (i, key, True) for i, m in claims for key in m.string_keys
        )
        self._key_markers = tuple(sorted(self._key_markers, key=lambda marker: marker[0]))
        self._marker_keys = frozenset(key for _, key, _ in self._key_markers)
        self._name_markers = tuple(
            (i, prefix, key) for i, m in claims for prefix, key in m.name_prefix_and_key
        )
        self._value_markers = tuple((i, key, value) for i, m in claims for key, value in m.attribute_values)
        self._scope_markers = tuple((i, m.scope_prefixes, m.scope_contains) for i, m in claims)
        self._scope_memo: dict[str, int] = {}
        self._resource_memo: tuple[Mapping[str, Any] | None, int] = (None, self._none)
        self.first_token_events: dict[str, str | None] = {}
        for d in self.dialects:
            for event, attribute in d.first_token_events.items():
                self.first_token_events.setdefault(event, attribute)
        self._dispatch_memo: tuple[NormalizeConfig, dict[str, _Dispatch]] | None = None
        self.prefilter = Prefilter(self)

    # detection -----------------------------------------------------------------------------------

    def detect(
        self, attrs: dict[str, Any], resource: Mapping[str, Any], scope: str, name: str
    ) -> _DialectTables:
        """The tables of the first dialect whose markers claim the span (the fallback's when none)."""
        best = self._scope_memo.get(scope)
        if best is None:
            best = self._scope_claim(scope)
        memo = self._resource_memo
        if memo[0] is not resource:  # spans of one ResourceSpans share the resource dict
            memo = (resource, self._resource_claim(resource))
            self._resource_memo = memo
        if memo[1] < best:
            best = memo[1]
        # Most spans carry no marker key (their dialect's claim is the scope's, or the fallback's): one
        # set test in C then, not a test a marker.
        for index, key, string_only in () if self._marker_keys.isdisjoint(attrs) else self._key_markers:
            if index >= best:
                break
            if key in attrs and (not string_only or type(attrs[key]) is str):
                best = index
                break
        for index, prefix, key in self._name_markers:
            if index >= best:
                break
            if key in attrs and name.startswith(prefix):
                best = index
                break
        for index, key, value in self._value_markers:
            if index >= best:
                break
            if attrs.get(key) == value:
                best = index
                break
        return self._ordered[best]

    def _scope_claim(self, scope: str) -> int:
        best = self._none
        for index, prefixes, parts in self._scope_markers:
            if (prefixes and scope.startswith(prefixes)) or any(part in scope for part in parts):
                best = index
                break
        if len(self._scope_memo) < _MAX_SCOPE_MEMO:
            self._scope_memo[scope] = best
        return best

    def _resource_claim(self, resource: Mapping[str, Any]) -> int:
        for index, key, value in self._value_markers:
            if resource.get(key) == value:
                return index
        return self._none

    # classification ------------------------------------------------------------------------------

    def classify(self, attrs: dict[str, Any], name: str, tables: _DialectTables) -> tuple[str, str]:
        """(kind, operation): the verdict of the strongest rule that matches (see dialects.Rank)."""
        rule = tables.operation_rule
        decisive = tables.decisive
        if decisive is not None:
            op = rule.read(attrs.get(rule.key))[0] if rule is not None else ""
            raw = attrs.get(decisive.key)
            if tables.decisive_or_name and type(raw) is not str:
                raw = name
            verdict = decisive.read(raw)[1]
            if verdict is not None:
                return verdict.kind, (op or verdict.operation) if verdict.kind == CALL else ""
        op = ""
        best: Verdict | None = None
        best_rank = _NO_RANK  # best's rank
        for r in tables.value_rules:
            raw = attrs.get(r.key)
            if raw is not None:
                value, found = r.read(raw)
                if r is rule:
                    op = value
                if found is not None and found.rank < best_rank:
                    best, best_rank = found, int(found.rank)
        for rank, verdict, keys in tables.key_rules:
            if best_rank <= rank:
                continue
            for key in keys:
                if key in attrs:
                    best, best_rank = verdict, rank
                    break
        for rank, verdict, names, prefixes in tables.name_rules:
            if rank < best_rank and (name in names or (bool(prefixes) and name.startswith(prefixes))):
                best, best_rank = verdict, rank
        if best_rank > Rank.USAGE:
            reader = tables.usage_reader
            if _present(attrs, tables.model_keys) and (
                _present(attrs, tables.usage_keys) or (reader is not None and reader.key in attrs)
            ):
                return CALL, op
        if best is None:
            return SKIP, ""
        return best.kind, (op or best.operation) if best.kind == CALL else ""

    # the one pass --------------------------------------------------------------------------------

    def fill(
        self, attrs: dict[str, Any], tables: _DialectTables, config: NormalizeConfig
    ) -> tuple[list[Any], tuple[tuple[str, ...], ...]]:
        """Every slot's value (None when absent) from one pass over ``attrs``: per slot the present key
        of lowest rank wins; a value its reader refuses (an empty name, an unparsable TTFT) gives way to
        the next present key."""
        memo = self._dispatch_memo
        if memo is None or memo[0] is not config:
            memo = (config, {name: t.dispatch(config) for name, t in self.tables.items()})
            self._dispatch_memo = memo
        dispatch = memo[1][tables.name]
        values: list[Any] = [None] * dispatch.size
        direct, dimensions, general = dispatch.plan(tuple(attrs))
        for slot, key in direct:  # one key, no reader: its value as it is (None is absent)
            values[slot] = attrs[key]
        for slot, key in dimensions:  # one key read as a dimension: a non-empty string, the usual one
            value = attrs[key]
            if type(value) is str and value:
                values[slot] = value
            elif value is not None:
                values[slot] = _dim_or_none(value)
        for slot, keys, reader in general:
            for key in keys:  # the first present value its reader accepts (most slots: one key)
                value = attrs[key]
                if value is None:
                    continue
                if reader is not None and not (reader is _dim_or_none and type(value) is str and value):
                    value = reader(value)  # the common case above is inline
                    if value is None:
                        continue
                values[slot] = value
                break
        return values, dispatch.keys


def _present(attrs: dict[str, Any], keys: tuple[str, ...]) -> bool:
    for key in keys:  # noqa: SIM110 - a plain loop is the faster on this hot path
        if attrs.get(key) is not None:
            return True
    return False


def _token(values: list[Any], slot: int, limit: int, attrs: dict[str, Any], keys: tuple[str, ...]) -> int:
    value = values[slot]
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= limit:
        return value
    return token_count(value, _source(attrs, keys), limit)


def _source(attrs: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The key a slot without a reader was filled from: the first of its keys present (error messages)."""
    return next((key for key in keys if attrs.get(key) is not None), "")


def _ttft_ms(values: list[Any], span: SpanView, events: Mapping[str, str | None]) -> float | None:
    if values[_STREAM_FLAG] is False:
        return None
    ms = values[_TTFT_SECONDS]
    if ms is None:
        ms = values[_TTFT_MS]
    if ms is not None:
        return ms
    start = span.start_time_unix_nano
    completion_start = values[_COMPLETION_START]
    if completion_start is not None:
        ns = _iso_to_ns(completion_start)
        if ns is not None and ns >= start:
            return (ns - start) / 1e6
    for event in span.events:
        if event.name in events:
            attribute = events[event.name]
            if attribute is not None:
                ms = _seconds_or_ms(event.attributes.get(attribute), 1.0)
                if ms is not None:
                    return ms
            if event.time_unix_nano >= start:
                return (event.time_unix_nano - start) / 1e6
            return None
    return None


def _cache_writes_by_ttl(
    values: list[Any], limit: int, attrs: dict[str, Any], keys: tuple[tuple[str, ...], ...], cw: int
) -> tuple[int, int]:
    """(cache writes, the 1-hour part of them). A dialect may report both TTLs (Anthropic's
    ``cache_creation.ephemeral_5m/1h_input_tokens``), only one of them, or only the TTL split without a
    total; the total is never less than the split (a total left out or too small is widened, as input
    is for its subsets)."""
    if values[_CACHE_WRITE_1H] is None and values[_CACHE_WRITE_5M] is None:
        return cw, 0  # the common case: no TTL split reported
    one_hour = _token(values, _CACHE_WRITE_1H, limit, attrs, keys[_CACHE_WRITE_1H])
    five_min = _token(values, _CACHE_WRITE_5M, limit, attrs, keys[_CACHE_WRITE_5M])
    if one_hour + five_min > cw:
        cw = one_hour + five_min
    elif five_min and values[_CACHE_WRITE_1H] is None:
        one_hour = cw - five_min  # only the 5-minute part reported: the rest was written for an hour
    return cw, one_hour


_METADATA_SLOTS = {
    "service_tier": _SERVICE_TIER,
    "speed": _SPEED,
    "inference_geo": _INFERENCE_GEO,
    "cache_write_5m": _CACHE_WRITE_5M,
    "cache_write_1h": _CACHE_WRITE_1H,
    "reported_cost": _REPORTED_COST,
}


def _fill_from_metadata(values: list[Any], found: Mapping[str, Any]) -> None:
    """Fill the slots the key tables left empty from a dialect's response metadata object."""
    for name, value in found.items():
        slot = _METADATA_SLOTS[name]
        if values[slot] is None and value is not None:
            reader = _READERS.get(slot)
            values[slot] = reader(value) if reader is not None else value


def _reported_cost(values: list[Any]) -> Decimal | None:
    value = values[_REPORTED_COST]
    if value is None:
        details = values[_REPORTED_COST_DETAILS]
        if details is not None:
            if type(details) is str:
                try:
                    details = json.loads(details)
                except ValueError:
                    return None
            if isinstance(details, dict):
                value = details.get("total")
    kind = type(value)
    if kind is int or kind is float or kind is str:
        try:
            cost = Decimal(str(value))
        except InvalidOperation:
            return None
        if cost.is_finite() and cost >= 0:
            return cost
    return None


class Prefilter:
    """Whether a span can be an LLM call, a tool or an agent span, from what is cheap to read.

    Every rule that can make a span anything but ignored needs one of: a span-kind or marker key of a
    rule, a model key (model + usage), a span name a rule matches, or the scope of an implied call on an
    ERROR span. A span with none of them is ignored by ``normalize_span`` whatever its attributes hold,
    so the collector drops it without decoding its attributes.
    """

    __slots__ = ("implied_scopes", "keys", "name_prefixes", "names")

    def __init__(self, engine: Engine) -> None:
        keys: set[str] = set()
        prefixes: list[str] = []
        names: set[str] = set()
        scopes: list[str] = []
        for d in engine.dialects:
            for rule in d.rules:
                if isinstance(rule, ByValue):
                    keys.add(rule.key)
                elif isinstance(rule, ByKey):
                    keys.update(rule.keys)
                else:
                    prefixes.extend(rule.prefixes)
                    names.update(rule.names)
            if d.implied_call is not None:
                scopes.append(d.implied_call.scope_prefix)
        for tables in engine.tables.values():
            keys.update(tables.model_keys)
        self.keys = frozenset(keys)
        self.name_prefixes = tuple(dict.fromkeys(prefixes))
        self.names = frozenset(names)
        self.implied_scopes = tuple(scopes)

    def keep(self, span: Any, scope_name: str) -> bool:
        """True unless ``span`` (an OTLP protobuf Span, or anything with ``name``, ``status.code`` and
        ``attributes`` of ``key``/``value`` pairs) is certainly ignored."""
        keys = self.keys
        for attribute in span.attributes:  # first: an LLM span leaves at its first gen_ai.* key
            if attribute.key in keys:
                return True
        return self._keeps_by_name(span, scope_name)

    def _keeps_by_name(self, span: Any, scope_name: str) -> bool:
        """``keep`` of an OTLP protobuf span none of whose attribute keys claims it."""
        name = span.name
        if name in self.names or (self.name_prefixes and name.startswith(self.name_prefixes)):
            return True
        return bool(
            self.implied_scopes
            and scope_name.startswith(self.implied_scopes)
            and span.status.code == STATUS_ERROR
        )

    def keeps_view(self, span: SpanView) -> bool:
        """``keep`` for an already decoded span."""
        name = span.name
        if name in self.names or (self.name_prefixes and name.startswith(self.name_prefixes)):
            return True
        if (
            self.implied_scopes
            and span.scope_name.startswith(self.implied_scopes)
            and span.status_code == STATUS_ERROR
        ):
            return True
        return not self.keys.isdisjoint(span.attributes)


ENGINE = Engine(load_dialects())


# --------------------------------------------------------------------------------------------------
# The entry point


def normalize_span(
    span: SpanView, config: NormalizeConfig, pricer: Pricer, engine: Engine | None = None
) -> CallRecord | ToolSpanRecord | None:
    """Normalize one span; see the module docstring. Raises InvalidSpan for an untrustworthy call.

    ``engine``: the compiled dialects to read it with (default: every dialect of the package).
    """
    if engine is None:
        engine = ENGINE
    attrs = span.attributes
    name = span.name
    tables = engine.detect(attrs, span.resource, span.scope_name, name)
    kind, operation = engine.classify(attrs, name, tables)
    if kind == SKIP:
        implied = tables.implied_call
        if (
            implied is None
            or span.status_code != STATUS_ERROR
            or not span.scope_name.startswith(implied.scope_prefix)
        ):
            return None
        attributes = implied.implies(attrs, name, span.scope_name)
        if attributes is None:
            return None
        attrs = {**attrs, **attributes}
        kind = CALL
        rule = tables.operation_rule
        operation = rule.read(attrs.get(rule.key))[0] if rule is not None else ""

    # identity and timing
    trace_id = span.trace_id
    span_id = span.span_id
    if not trace_id or trace_id == _ZERO_TRACE:
        raise InvalidSpan("trace_id is missing or zero")
    if not span_id or span_id == _ZERO_SPAN:
        raise InvalidSpan("span_id is missing or zero")
    if len(trace_id) != 32 or len(span_id) != 16 or len(span.parent_span_id) not in (0, 16):
        raise InvalidSpan("trace_id must be 16 bytes, span_id and parent_span_id 8 bytes")
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    if start <= 0:
        raise InvalidSpan("start_time_unix_nano is missing")
    if end < start:
        raise InvalidSpan(f"end_time_unix_nano ({end}) is before start_time_unix_nano ({start})")
    if start < _MIN_TIME_NS or end > _MAX_TIME_NS:
        # Storage cannot hold such a time; one unstorable row would stall every insert behind it.
        raise InvalidSpan(f"span times ({start}, {end}) are outside 2001-2200: a broken clock")
    duration_ms = (end - start) / 1e6

    # status
    error_attr = attrs.get("error.type")
    error_type = _error_type(error_attr) if error_attr is not None else ""
    status_code = span.status_code
    if status_code == STATUS_ERROR or error_type:
        status = "error"
    elif status_code == STATUS_OK:
        status = "ok"
    else:
        status = "unset"
    exception_type = ""
    if span.events:
        for event in span.events:
            if event.name == "exception":
                exception_type = _as_dim(event.attributes.get("exception.type") or "")
                break
    if not error_type:
        error_type = exception_type
    status_message = span.status_message
    # Most calls carry no error text: the three text tests are skipped then (each is false on "").
    is_timeout = (
        (error_type or exception_type or status_message)
        and (
            _is_timeout_text(error_type)
            or _is_timeout_text(exception_type)
            or _is_timeout_text(status_message)
            or error_type in _TIMEOUT_HTTP
        )
    ) or _timeout_status(attrs)

    res = _resource_view(span.resource, config)
    service = res.service
    environment = res.environment
    parent_span_id = span.parent_span_id
    values, slot_keys = engine.fill(attrs, tables, config)
    metadata = tables.metadata_reader
    if metadata is not None and kind == CALL and (raw := attrs.get(metadata.key)) is not None:
        _fill_from_metadata(values, metadata.read(raw))

    if kind != CALL:
        return {
            "time_unix_nano": start,
            "duration_ms": duration_ms,
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent_span_id,
            "service": service,
            "environment": environment,
            "kind": kind,
            "name": values[_TOOL_NAME if kind == TOOL else _AGENT_NAME] or name,
            "status": status,
            "error_type": error_type,
            "is_timeout": is_timeout,
        }

    limit = config.max_tokens
    # provider and models
    provider_raw = values[_PROVIDER]
    provider = (
        normalize_provider(provider_raw, dotted_suffix=tables.provider_has_suffix)
        if type(provider_raw) is str
        else ""
    )
    request_model = values[_REQUEST_MODEL] or ""
    response_model = values[_RESPONSE_MODEL] or ""
    if not response_model:
        response_model = request_model
    elif not request_model:
        request_model = response_model

    # tokens, as reported
    reader = tables.usage_reader
    usage = attrs.get(reader.key) if reader is not None else None
    if usage is not None:
        inp, out, cr, cw, rsn, total, exclusive = reader.read(usage, limit)  # type: ignore[union-attr]
        in_forced = out_forced = exclusive
        total_key = f"{reader.key}.total"  # type: ignore[union-attr]
    else:
        # _token inlined for the usual value, an int in range (an absent count is 0).
        inp, out, cr, cw, rsn = values[_INPUT:_TOTAL]
        if type(inp) is not int or not 0 <= inp <= limit:
            inp = _token(values, _INPUT, limit, attrs, slot_keys[_INPUT])
        if type(out) is not int or not 0 <= out <= limit:
            out = _token(values, _OUTPUT, limit, attrs, slot_keys[_OUTPUT])
        if type(cr) is not int or not 0 <= cr <= limit:
            cr = _token(values, _CACHE_READ, limit, attrs, slot_keys[_CACHE_READ])
        if type(cw) is not int or not 0 <= cw <= limit:
            cw = _token(values, _CACHE_WRITE, limit, attrs, slot_keys[_CACHE_WRITE])
        if type(rsn) is not int or not 0 <= rsn <= limit:
            rsn = _token(values, _REASONING, limit, attrs, slot_keys[_REASONING])
        total = values[_TOTAL]
        if total is not None:
            total_key = _source(attrs, slot_keys[_TOTAL])
            total = token_count(total, total_key, limit)
        in_forced = provider in tables.input_excludes_cache_for
        out_forced = False
    if total is not None and total < inp + out:
        raise InvalidSpan(f"{total_key}: total {total} is less than input + output ({inp} + {out})")

    if values[_CACHE_WRITE_1H] is None and values[_CACHE_WRITE_5M] is None:
        cw_1h = 0  # the common case: no TTL split reported
    else:
        cw, cw_1h = _cache_writes_by_ttl(values, limit, attrs, slot_keys, cw)

    # inclusive fix: canonical input includes cache reads/writes, output includes reasoning
    cache = cr + cw
    in_excl = in_forced or cache > inp
    out_excl = out_forced or rsn > out
    decided = False
    if total is not None and (cache or rsn):
        for ie in (True,) if in_excl else (False, True):
            for oe in (True,) if out_excl else (False, True):
                if inp + (cache if ie else 0) + out + (rsn if oe else 0) == total:
                    in_excl, out_excl, decided = ie, oe, True
                    break
            if decided:
                break
    if not decided and rsn and provider in tables.output_excludes_reasoning_for:
        out_excl = True
    if in_excl:
        inp += cache
    if out_excl:
        out += rsn
    if inp > limit:
        raise InvalidSpan(f"input tokens {inp} (with cache reads/writes) exceed the sanity limit of {limit}")
    if out > limit:
        raise InvalidSpan(f"output tokens {out} (with reasoning) exceed the sanity limit of {limit}")

    # price
    model = response_model or request_model
    service_tier = values[_SERVICE_TIER] or ""
    speed = values[_SPEED] or ""
    inference_geo = values[_INFERENCE_GEO] or ""
    priced = (
        pricer.price(
            provider,
            model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=rsn,
            cache_write_1h_tokens=cw_1h,
            service_tier=service_tier,
            speed=speed,
            inference_geo=inference_geo,
        )
        if model
        else None
    )
    # What the provider or a gateway says it charged is kept beside tokenpulse's own price, never
    # instead of it: reconcile compares the two. It prices the call only when tokenpulse cannot.
    reported = (
        None
        if values[_REPORTED_COST] is None and values[_REPORTED_COST_DETAILS] is None
        else _reported_cost(values)
    )
    if reported is not None and reported >= _MAX_COST_USD:
        reported = None  # a nonsense figure is dropped, not a reason to reject the call
    if priced is not None:
        cost_usd, cost_source = priced
        price_known = True
    else:
        if reported is not None:
            cost_usd, cost_source, price_known = reported, "reported", True
        else:
            cost_usd, cost_source, price_known = _ZERO, "unknown", False

    if cost_usd >= _MAX_COST_USD:
        raise InvalidSpan(f"cost {cost_usd} USD exceeds the sanity limit of {_MAX_COST_USD} for one call")

    extra: dict[str, str] = {}
    for offset, (dimension, _) in enumerate(config._extra_items):
        value = values[_EXTRA + offset] or res.extra.get(dimension)
        if value:
            extra[dimension] = value
    escalated = values[_ESCALATED]
    ttft_ms = values[_TTFT_SECONDS]  # _ttft_ms's first answer, inline: the usual case
    if ttft_ms is None or values[_STREAM_FLAG] is False:
        ttft_ms = _ttft_ms(values, span, engine.first_token_events)

    return {
        "time_unix_nano": start,
        "duration_ms": duration_ms,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "service": service,
        "service_version": res.service_version,
        "environment": environment,
        "provider": provider,
        "request_model": request_model,
        "response_model": response_model,
        "operation": operation,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "reasoning_tokens": rsn,
        "ttft_ms": ttft_ms,
        "status": status,
        "error_type": error_type,
        "is_timeout": is_timeout,
        "route": values[_ROUTE] or res.route,
        "user": values[_USER] or res.user,
        "session": values[_SESSION] or res.session,
        "prompt_version": values[_PROMPT_VERSION] or res.prompt_version,
        "router": values[_ROUTER] or res.router,
        "escalated": res.escalated if escalated is None else escalated,
        "cost_usd": cost_usd,
        "price_known": price_known,
        "cost_source": cost_source,
        "dialect": tables.name,
        "extra": extra,
        "service_tier": service_tier,
        "speed": speed,
        "inference_geo": inference_geo,
        "cache_write_1h_tokens": cw_1h,
        "reported_cost_usd": reported,
    }
