"""Normalize one decoded OTLP span into tokenpulse's canonical record (pure functions, no I/O).

``normalize_span`` returns a :class:`CallRecord` for a leaf LLM call, a :class:`ToolSpanRecord` for a tool
execution or an agent invocation, and None for every other span (HTTP, DB, workflow/chain spans, spans
that only carry *aggregated* usage). A span that is an LLM call but cannot be trusted raises
:class:`InvalidSpan`: that span is rejected, not the request.

Seven instrumentation dialects are read (OTel GenAI semconv, OpenLLMetry/traceloop, OpenInference,
OpenLIT, Pydantic AI/Logfire, Vercel AI SDK, Langfuse). For each canonical field the dialect's attribute
keys are tried in a fixed order and the first one present wins: two key families that mean the same thing
are never summed. Token semantics, the inclusive/exclusive rules and the full attribute table are in
``docs/normalization.md``.

Hot path: every key list is a tuple built at import time, a span costs dict lookups and one output dict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenpulse.buffer.records import CallRecord, ToolSpanRecord
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import STATUS_ERROR, STATUS_OK, SpanView

__all__ = [
    "CONTENT_KEY_PREFIXES",
    "InvalidSpan",
    "NormalizeConfig",
    "is_content_key",
    "normalize_provider",
    "normalize_span",
]


class InvalidSpan(ValueError):
    """The span is an LLM call whose data cannot be trusted; ``str(error)`` names the offending attribute."""


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

    def __post_init__(self) -> None:
        for name in (
            "route_keys",
            "user_keys",
            "session_keys",
            "prompt_version_keys",
            "router_name_keys",
            "router_escalated_keys",
        ):
            keys = _key_tuple(getattr(self, name), name)
            object.__setattr__(self, name, keys)
        extra: dict[str, tuple[str, ...]] = {}
        for dim, keys in dict(self.extra_dimensions).items():
            if not isinstance(dim, str) or not dim:
                raise ValueError(f"extra_dimensions: dimension names must be non-empty strings, got {dim!r}")
            extra[dim] = _key_tuple(keys, f"extra_dimensions[{dim!r}]")
        object.__setattr__(self, "extra_dimensions", extra)
        if type(self.max_tokens) is not int or self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        # Precomputed for the hot path (not dataclass fields, so replace() recomputes them).
        object.__setattr__(self, "_extra_items", tuple(extra.items()))
        object.__setattr__(self, "_resource_memo", None)  # the last resource's dimensions (_ResourceView)


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


_GEMINI_PROVIDERS = frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"})

# --------------------------------------------------------------------------------------------------
# Dialects and their key precedence

SEMCONV = "semconv"
OPENLLMETRY = "openllmetry"
OPENINFERENCE = "openinference"
OPENLIT = "openlit"
PYDANTIC_AI = "pydantic-ai"
VERCEL_AI = "vercel-ai"
LANGFUSE = "langfuse"

_SEMCONV_INPUT = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
    "llm.usage.input_tokens",
)
_SEMCONV_OUTPUT = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
    "llm.usage.output_tokens",
)
_SEMCONV_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",  # semconv
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry, OpenLIT (pre-rename semconv)
    "gen_ai.usage.input_tokens.cached",  # Sentry-style
    "llm.usage.cache_read_input_tokens",  # OpenLLMetry llm.usage.*
    "gen_ai.usage.details.cache_read_tokens",  # Pydantic AI
    "gen_ai.usage.details.cache_read_input_tokens",  # Pydantic AI (raw Anthropic details, old versions)
    "gen_ai.usage.details.cached_content_tokens",  # Pydantic AI (raw Gemini details)
)
_SEMCONV_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
    "llm.usage.cache_creation_input_tokens",
    "gen_ai.usage.details.cache_write_tokens",
    "gen_ai.usage.details.cache_creation_input_tokens",
)
_SEMCONV_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry, OpenLIT
    "gen_ai.usage.output_tokens.reasoning",
    "llm.usage.reasoning_tokens",
    "gen_ai.usage.details.reasoning_tokens",  # Pydantic AI (OpenAI)
    "gen_ai.usage.details.thoughts_tokens",  # Pydantic AI (Gemini)
)
_SEMCONV_TOTAL = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens")
_SEMCONV_PROVIDER = (
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.provider",
    "llm.system",
    "ai.model.provider",
)


class _Profile:
    """The ordered key tuples one dialect reads; built once at import."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "provider", "reasoning", "total", "usage")

    def __init__(
        self,
        input: tuple[str, ...] = (),
        output: tuple[str, ...] = (),
        cache_read: tuple[str, ...] = (),
        cache_write: tuple[str, ...] = (),
        reasoning: tuple[str, ...] = (),
        total: tuple[str, ...] = (),
        provider: tuple[str, ...] = _SEMCONV_PROVIDER,
    ) -> None:
        self.input = input + _SEMCONV_INPUT
        self.output = output + _SEMCONV_OUTPUT
        self.cache_read = cache_read + _SEMCONV_CACHE_READ
        self.cache_write = cache_write + _SEMCONV_CACHE_WRITE
        self.reasoning = reasoning + _SEMCONV_REASONING
        self.total = total + _SEMCONV_TOTAL
        self.provider = provider
        self.usage = self.input + self.output  # "does this span report usage at all"


_DEFAULT_PROFILE = _Profile()
_PROFILES: dict[str, _Profile] = {
    SEMCONV: _DEFAULT_PROFILE,
    OPENLLMETRY: _DEFAULT_PROFILE,
    OPENLIT: _DEFAULT_PROFILE,
    PYDANTIC_AI: _DEFAULT_PROFILE,
    LANGFUSE: _DEFAULT_PROFILE,  # when langfuse.observation.usage_details is absent
    OPENINFERENCE: _Profile(
        input=("llm.token_count.prompt",),
        output=("llm.token_count.completion",),
        cache_read=(
            "llm.token_count.prompt_details.cache_read",
            "llm.token_count.prompt_details.cache_input",
        ),
        cache_write=("llm.token_count.prompt_details.cache_write",),
        reasoning=("llm.token_count.completion_details.reasoning",),
        total=("llm.token_count.total",),
        provider=("llm.provider", "llm.system", "gen_ai.provider.name", "gen_ai.system"),
    ),
    VERCEL_AI: _Profile(
        input=("ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens"),
        output=("ai.usage.outputTokens", "ai.usage.completionTokens"),
        cache_read=("ai.usage.inputTokenDetails.cacheReadTokens", "ai.usage.cachedInputTokens"),
        cache_write=("ai.usage.inputTokenDetails.cacheWriteTokens",),
        reasoning=("ai.usage.outputTokenDetails.reasoningTokens", "ai.usage.reasoningTokens"),
        total=("ai.usage.totalTokens",),
        provider=("ai.model.provider", "gen_ai.provider.name", "gen_ai.system"),
    ),
}

_REQUEST_MODEL_KEYS = (
    "gen_ai.request.model",
    "llm.request.model_name",
    "ai.model.id",
    "llm.model_name",
    "embedding.model_name",
    "langfuse.observation.model.name",
    "llm.request.model",
)
_RESPONSE_MODEL_KEYS = (
    "gen_ai.response.model",
    "llm.response.model_name",
    "ai.response.model",
    "llm.response.model",
)
_MODEL_KEYS = _REQUEST_MODEL_KEYS + _RESPONSE_MODEL_KEYS

# (key, multiplier to milliseconds)
_TTFT_KEYS = (
    ("gen_ai.response.time_to_first_chunk", 1000.0),
    ("gen_ai.client.operation.time_to_first_chunk", 1000.0),
    ("gen_ai.server.time_to_first_token", 1000.0),
    ("ai.response.msToFirstChunk", 1.0),
    ("ai.stream.msToFirstChunk", 1.0),
)
_FIRST_TOKEN_EVENTS = frozenset(
    {
        "First Token Stream Event",
        "ai.stream.firstChunk",
        "llm.content.completion.chunk",
        "gen_ai.content.completion.chunk",  # OpenLLMetry (0.62 checked)
    }
)
# A request flagged as not streamed has no time to first token (OpenLIT reports the whole latency as one).
_STREAM_FLAG_KEYS = ("gen_ai.request.stream", "gen_ai.is_streaming")

_REPORTED_COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total", "operation.cost")

# Operations
_OP_ALIASES = {
    "completion": "text_completion",
    "completions": "text_completion",
    "text_completion": "text_completion",
    "embedding": "embeddings",
    "embeddings": "embeddings",
    "chat": "chat",
    "generate_content": "generate_content",
}
_LLM_OPS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "responses", "rerank"})
_AGENT_OPS = frozenset({"invoke_agent", "agent"})  # "agent": OpenLIT's agent invocation
_NON_LEAF_OPS = frozenset({"create_agent", "invoke_workflow", "workflow", "framework", "execute_task"})
_LLM_REQUEST_TYPES = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
}
_VERCEL_LEAF = {
    "ai.generateText.doGenerate": "chat",
    "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat",
    "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings",
    "ai.embedMany.doEmbed": "embeddings",
}
_LANGFUSE_LLM = {"generation": "chat", "embedding": "embeddings", "completion": "text_completion"}
_LANGFUSE_SKIP = frozenset({"span", "chain", "event", "retriever", "evaluator", "guardrail"})

_TOOL_NAME_KEYS = (
    "gen_ai.tool.name",
    "tool.name",
    "ai.toolCall.name",
    "traceloop.entity.name",
    "langfuse.observation.name",
)
_AGENT_NAME_KEYS = (
    "gen_ai.agent.name",
    "agent.name",
    "agent_name",
    "traceloop.entity.name",
    "langfuse.observation.name",
)

_KIND_SKIP, _KIND_LLM, _KIND_TOOL, _KIND_AGENT = 0, 1, 2, 3
_OPENLIT_SCOPE_PREFIX = "openlit.instrumentation."

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


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return key, value
    return "", None


def _count(value: Any, key: str, limit: int, prefix: str = "") -> int:
    """A token count as an int, or InvalidSpan naming the attribute."""
    kind = type(value)
    if kind is int:
        n = value
    elif kind is float:
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidSpan(f"{prefix}{key}: token count must be a finite integer, got {value!r}")
        n = int(value)
    elif kind is str:
        text = value.strip()
        try:
            n = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise InvalidSpan(f"{prefix}{key}: token count is not a number: {value[:40]!r}") from None
            if not math.isfinite(number) or not number.is_integer():
                raise InvalidSpan(
                    f"{prefix}{key}: token count must be a finite integer, got {value[:40]!r}"
                ) from None
            n = int(number)
    else:
        raise InvalidSpan(f"{prefix}{key}: token count must be an integer, got {kind.__name__}")
    if n < 0:
        raise InvalidSpan(f"{prefix}{key}: token count is negative ({n})")
    if n > limit:
        raise InvalidSpan(f"{prefix}{key}: token count {n} exceeds the sanity limit of {limit}")
    return n


def _read_count(attrs: Mapping[str, Any], keys: tuple[str, ...], limit: int) -> int:
    """The first present key's token count, 0 when none is present."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value if type(value) is int and 0 <= value <= limit else _count(value, key, limit)
    return 0


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
        if value is None:
            continue
        kind = type(value)
        if kind is bool:
            return value
        if kind is str:
            return value.strip().lower() in _TRUE_STRINGS
        if kind is int or kind is float:
            return value != 0
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
            name: value
            for name, keys in config._extra_items  # type: ignore[attr-defined]
            if (value := _str_attr(resource, keys))
        }


def _resource_view(resource: Mapping[str, Any], config: NormalizeConfig) -> _ResourceView:
    # Spans of one OTLP ResourceSpans share one resource dict, so a one-entry memo hits almost always.
    # The memo holds the resource itself, so an `is` match can never be a recycled id.
    view: _ResourceView | None = config._resource_memo  # type: ignore[attr-defined]
    if view is None or view.resource is not resource:
        view = _ResourceView(resource, config)
        object.__setattr__(config, "_resource_memo", view)
    return view


def _is_timeout_text(text: str) -> bool:
    if not text:
        return False
    low = text.lower()
    return "timeout" in low or "timed out" in low or "deadline" in low or "time out" in low


def _timeout_status(attrs: Mapping[str, Any]) -> bool:
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


def _ttft_ms(attrs: Mapping[str, Any], span: SpanView) -> float | None:
    if _flag(attrs, _STREAM_FLAG_KEYS) is False:
        return None
    for key, scale in _TTFT_KEYS:
        value = attrs.get(key)
        if value is not None:
            ms = _seconds_or_ms(value, scale)
            if ms is not None:
                return ms
    start = span.start_time_unix_nano
    completion_start = attrs.get("langfuse.observation.completion_start_time")
    if completion_start is not None:
        ns = _iso_to_ns(completion_start)
        if ns is not None and ns >= start:
            return (ns - start) / 1e6
    for event in span.events:
        if event.name in _FIRST_TOKEN_EVENTS:
            if event.name == "ai.stream.firstChunk":
                ms = _seconds_or_ms(event.attributes.get("ai.stream.msToFirstChunk"), 1.0)
                if ms is not None:
                    return ms
            if event.time_unix_nano >= start:
                return (event.time_unix_nano - start) / 1e6
            return None
    return None


def _reported_cost(attrs: Mapping[str, Any]) -> Decimal | None:
    value = _first(attrs, _REPORTED_COST_KEYS)[1]
    if value is None:
        details = attrs.get("langfuse.observation.cost_details")
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


# --------------------------------------------------------------------------------------------------
# Langfuse usage_details

_LF_CACHE_READ = (
    "input_cached_tokens",
    "cache_read_input_tokens",
    "input_cache_read",
    "cached_tokens",
    "input_cached",
    "cache_read",
)
_LF_CACHE_WRITE = (
    "cache_creation_input_tokens",
    "input_cache_creation",
    "input_cache_write",
    "cache_write_input_tokens",
    "cache_creation",
    "cache_write",
)
_LF_REASONING = ("output_reasoning_tokens", "reasoning_tokens", "output_reasoning", "reasoning")
_LF_KNOWN = frozenset(("input", "output", "total", *_LF_CACHE_READ, *_LF_CACHE_WRITE, *_LF_REASONING))
_LF_PREFIX = "langfuse.observation.usage_details."


def _lf_pick(usage: dict[str, Any], keys: tuple[str, ...], limit: int) -> int:
    for key in keys:
        value = usage.get(key)
        if value is not None:
            return _count(value, key, limit, _LF_PREFIX)
    return 0


def _langfuse_usage(raw: Any, limit: int) -> tuple[int, int, int, int, int, int | None, bool]:
    """(input, output, cache_read, cache_write, reasoning, total, exclusive) from usage_details.

    Langfuse-native buckets are additive (Langfuse sums them into the total), i.e. *exclusive*: ``input``
    excludes the cache buckets and ``output`` excludes reasoning. The OpenAI usage schemas it also accepts
    (``prompt_tokens``/``completion_tokens``, ``input_tokens``/``output_tokens`` with ``*_details``) are
    inclusive.
    """
    if type(raw) is str:
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidSpan("langfuse.observation.usage_details: not valid JSON") from None
    if not isinstance(raw, dict):
        raise InvalidSpan("langfuse.observation.usage_details: expected a JSON object")
    if (
        "prompt_tokens" in raw
        or "completion_tokens" in raw
        or "input_tokens" in raw
        or "output_tokens" in raw
    ):
        openai_chat = "prompt_tokens" in raw or "completion_tokens" in raw
        in_key, out_key = (
            ("prompt_tokens", "completion_tokens") if openai_chat else ("input_tokens", "output_tokens")
        )
        in_details = raw.get("prompt_tokens_details" if openai_chat else "input_tokens_details")
        out_details = raw.get("completion_tokens_details" if openai_chat else "output_tokens_details")
        inp = _lf_pick(raw, (in_key,), limit)
        out = _lf_pick(raw, (out_key,), limit)
        cr = _lf_pick(in_details, ("cached_tokens",), limit) if isinstance(in_details, dict) else 0
        rsn = _lf_pick(out_details, ("reasoning_tokens",), limit) if isinstance(out_details, dict) else 0
        total = (
            _count(raw["total_tokens"], "total_tokens", limit, _LF_PREFIX) if "total_tokens" in raw else None
        )
        return inp, out, cr, 0, rsn, total, False
    inp = _lf_pick(raw, ("input",), limit)
    out = _lf_pick(raw, ("output",), limit)
    cr = _lf_pick(raw, _LF_CACHE_READ, limit)
    cw = _lf_pick(raw, _LF_CACHE_WRITE, limit)
    rsn = _lf_pick(raw, _LF_REASONING, limit)
    for key, value in raw.items():  # other buckets (audio, image...) are part of input/output too
        if value is None or key in _LF_KNOWN or type(key) is not str:
            continue
        if "input" in key:
            inp += _count(value, key, limit, _LF_PREFIX)
        elif "output" in key:
            out += _count(value, key, limit, _LF_PREFIX)
    total = _lf_pick(raw, ("total",), limit) if "total" in raw else None
    return inp, out, cr, cw, rsn, total, True


# --------------------------------------------------------------------------------------------------
# Dialect detection and classification


def _detect(attrs: Mapping[str, Any], resource: Mapping[str, Any], scope: str, name: str) -> tuple[str, str]:
    """(dialect, vercel operation id)."""
    ai_op = attrs.get("ai.operationId")
    if type(ai_op) is str:
        return VERCEL_AI, ai_op
    if name.startswith("ai.") and "ai.model.id" in attrs:
        return VERCEL_AI, name
    if "langfuse.observation.type" in attrs or "langfuse.observation.usage_details" in attrs:
        return LANGFUSE, ""
    if "openinference.span.kind" in attrs:
        return OPENINFERENCE, ""
    if (
        "openlit" in scope
        or attrs.get("telemetry.sdk.name") == "openlit"
        or resource.get("telemetry.sdk.name") == "openlit"
    ):
        return OPENLIT, ""
    if scope.startswith(("pydantic-ai", "pydantic_ai", "logfire")) or "logfire.span_type" in attrs:
        return PYDANTIC_AI, ""
    if (
        "llm.request.type" in attrs
        or "llm.usage.total_tokens" in attrs
        or "traceloop.span.kind" in attrs
        or "traceloop.entity.name" in attrs
        or "traceloop.workflow.name" in attrs
        or scope.startswith("traceloop")
    ):
        return OPENLLMETRY, ""
    return SEMCONV, ""


def _classify(
    attrs: Mapping[str, Any], dialect: str, ai_op: str, name: str, profile: _Profile
) -> tuple[int, str]:
    """(kind, operation) — kind is one of the _KIND_* constants."""
    if dialect == VERCEL_AI:
        operation = _VERCEL_LEAF.get(ai_op)
        if operation is not None:
            return _KIND_LLM, operation
        if ai_op == "ai.toolCall":
            return _KIND_TOOL, ""
        return _KIND_SKIP, ""  # ai.generateText & co carry usage aggregated over their steps
    raw_op = attrs.get("gen_ai.operation.name")
    op = ""
    if type(raw_op) is str:
        op = _OP_ALIASES.get(raw_op) or raw_op.strip().lower()
    if dialect == LANGFUSE:
        lf_type = attrs.get("langfuse.observation.type")
        if type(lf_type) is str:
            lf_type = lf_type.lower()
            if lf_type in _LANGFUSE_LLM:
                return _KIND_LLM, op or _LANGFUSE_LLM[lf_type]
            if lf_type == "tool":
                return _KIND_TOOL, ""
            if lf_type == "agent":
                return _KIND_AGENT, ""
            if lf_type in _LANGFUSE_SKIP:
                return _KIND_SKIP, ""
    oi_kind = attrs.get("openinference.span.kind")
    oi_kind = oi_kind.upper() if type(oi_kind) is str else ""
    tl_kind = attrs.get("traceloop.span.kind")
    tl_kind = tl_kind.lower() if type(tl_kind) is str else ""
    # tool executions
    if op == "execute_tool" or oi_kind == "TOOL" or tl_kind == "tool" or name.startswith("execute_tool"):
        return _KIND_TOOL, ""
    # agent invocations (their usage, if any, is an aggregate of the leaf calls)
    if (
        op in _AGENT_OPS
        or oi_kind == "AGENT"
        or tl_kind == "agent"
        or name.startswith("invoke_agent")
        or (dialect == PYDANTIC_AI and ("agent_name" in attrs or name == "agent run"))
    ):
        return _KIND_AGENT, ""
    # other non-leaf spans: workflows, chains, aggregated usage
    if (
        op in _NON_LEAF_OPS
        or tl_kind == "workflow"
        or (oi_kind and oi_kind not in ("LLM", "EMBEDDING"))
        or "gen_ai.aggregated_usage.input_tokens" in attrs
        or "gen_ai.aggregated_usage.output_tokens" in attrs
    ):
        return _KIND_SKIP, ""
    # leaf LLM calls
    if op in _LLM_OPS:
        return _KIND_LLM, op
    if oi_kind == "LLM":
        return _KIND_LLM, op or "chat"
    if oi_kind == "EMBEDDING":
        return _KIND_LLM, op or "embeddings"
    request_type = attrs.get("llm.request.type")
    if type(request_type) is str and request_type.lower() in _LLM_REQUEST_TYPES:
        return _KIND_LLM, op or _LLM_REQUEST_TYPES[request_type.lower()]
    if tl_kind == "task":
        return _KIND_SKIP, ""
    if _first(attrs, _MODEL_KEYS)[1] is not None and (
        _first(attrs, profile.usage)[1] is not None or "langfuse.observation.usage_details" in attrs
    ):
        return _KIND_LLM, op
    if "gen_ai.tool.name" in attrs or "tool.name" in attrs:
        return _KIND_TOOL, ""
    return _KIND_SKIP, ""


def _openlit_failed_call(attrs: Mapping[str, Any], span: SpanView) -> dict[str, str] | None:
    """The attributes an attribute-less failed OpenLIT call span implies, or None for any other span.

    OpenLIT's Anthropic wrapper sets no attribute when the SDK call raises (a timeout, a 529): only the
    span name ``"{operation} {model}"`` and the scope ``openlit.instrumentation.<provider>`` say what
    the call was.
    """
    scope = span.scope_name
    if span.status_code != STATUS_ERROR or "gen_ai.operation.name" in attrs:
        return None
    if not scope.startswith(_OPENLIT_SCOPE_PREFIX):
        return None
    raw_op, _, model = span.name.partition(" ")
    operation = _OP_ALIASES.get(raw_op, raw_op)
    if operation not in _LLM_OPS or not model or " " in model:
        return None
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": scope[len(_OPENLIT_SCOPE_PREFIX) :],
        "gen_ai.request.model": model,
    }


def _error_type(value: Any) -> str:
    """``error.type`` as a dimension. opentelemetry-util-genai writes the exception class itself, which the
    SDK turns into ``"<class 'openai.RateLimitError'>"``: that becomes ``openai.RateLimitError``."""
    text = _as_dim(value)
    if text.startswith("<class '") and text.endswith("'>"):
        return text[8:-2]
    return text


# --------------------------------------------------------------------------------------------------
# The entry point


def normalize_span(
    span: SpanView, config: NormalizeConfig, pricer: Pricer
) -> CallRecord | ToolSpanRecord | None:
    """Normalize one span; see the module docstring. Raises InvalidSpan for an untrustworthy call."""
    attrs = span.attributes
    resource = span.resource
    name = span.name
    dialect, ai_op = _detect(attrs, resource, span.scope_name, name)
    profile = _PROFILES[dialect]
    kind, operation = _classify(attrs, dialect, ai_op, name, profile)
    if kind == _KIND_SKIP:
        implied = _openlit_failed_call(attrs, span) if dialect == OPENLIT else None
        if implied is None:
            return None
        attrs = {**attrs, **implied}
        kind, operation = _KIND_LLM, implied["gen_ai.operation.name"]

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
    is_timeout = (
        _is_timeout_text(error_type)
        or _is_timeout_text(exception_type)
        or _is_timeout_text(span.status_message)
        or error_type in _TIMEOUT_HTTP
        or _timeout_status(attrs)
    )

    res = _resource_view(resource, config)
    service = res.service
    environment = res.environment
    parent_span_id = span.parent_span_id

    if kind != _KIND_LLM:
        name_keys = _TOOL_NAME_KEYS if kind == _KIND_TOOL else _AGENT_NAME_KEYS
        return {
            "time_unix_nano": start,
            "duration_ms": duration_ms,
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent_span_id,
            "service": service,
            "environment": environment,
            "kind": "tool" if kind == _KIND_TOOL else "agent",
            "name": _str_attr(attrs, name_keys) or name,
            "status": status,
            "error_type": error_type,
            "is_timeout": is_timeout,
        }

    limit = config.max_tokens
    # provider and models
    provider_raw = _first(attrs, profile.provider)[1]
    provider = (
        normalize_provider(provider_raw, dotted_suffix=dialect == VERCEL_AI)
        if type(provider_raw) is str
        else ""
    )
    request_model = _str_attr(attrs, _REQUEST_MODEL_KEYS)
    response_model = _str_attr(attrs, _RESPONSE_MODEL_KEYS)
    if not response_model:
        response_model = request_model
    elif not request_model:
        request_model = response_model

    # tokens, as reported
    in_forced = out_forced = False
    lf_usage = attrs.get("langfuse.observation.usage_details") if dialect == LANGFUSE else None
    if lf_usage is not None:
        inp, out, cr, cw, rsn, total, exclusive = _langfuse_usage(lf_usage, limit)
        in_forced = out_forced = exclusive
        total_key = "langfuse.observation.usage_details.total"
    else:
        inp = _read_count(attrs, profile.input, limit)
        out = _read_count(attrs, profile.output, limit)
        cr = _read_count(attrs, profile.cache_read, limit)
        cw = _read_count(attrs, profile.cache_write, limit)
        rsn = _read_count(attrs, profile.reasoning, limit)
        total_key, total = _first(attrs, profile.total)
        if total is not None:
            total = _count(total, total_key, limit)
        # OpenLIT's Anthropic instrumentation reports Anthropic's raw input_tokens (cache excluded).
        in_forced = dialect == OPENLIT and provider == "anthropic"
    if total is not None and total < inp + out:
        raise InvalidSpan(f"{total_key}: total {total} is less than input + output ({inp} + {out})")

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
    if not decided and rsn and provider in _GEMINI_PROVIDERS and dialect in (OPENLLMETRY, OPENLIT):
        out_excl = True  # these pass Gemini's candidates_token_count, which excludes thoughts
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
    priced = (
        pricer.price(
            provider,
            model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=rsn,
        )
        if model
        else None
    )
    if priced is not None:
        cost_usd, cost_source = priced
        price_known = True
    else:
        reported = _reported_cost(attrs)
        if reported is not None:
            cost_usd, cost_source, price_known = reported, "reported", True
        else:
            cost_usd, cost_source, price_known = _ZERO, "unknown", False

    if cost_usd >= _MAX_COST_USD:
        raise InvalidSpan(f"cost {cost_usd} USD exceeds the sanity limit of {_MAX_COST_USD} for one call")

    extra: dict[str, str] = {}
    for dimension, keys in config._extra_items:  # type: ignore[attr-defined]
        value = _str_attr(attrs, keys) or res.extra.get(dimension)
        if value:
            extra[dimension] = value
    escalated = _flag(attrs, config.router_escalated_keys)

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
        "ttft_ms": _ttft_ms(attrs, span),
        "status": status,
        "error_type": error_type,
        "is_timeout": is_timeout,
        "route": _str_attr(attrs, config.route_keys) or res.route,
        "user": _str_attr(attrs, config.user_keys) or res.user,
        "session": _str_attr(attrs, config.session_keys) or res.session,
        "prompt_version": _str_attr(attrs, config.prompt_version_keys) or res.prompt_version,
        "router": _str_attr(attrs, config.router_name_keys) or res.router,
        "escalated": res.escalated if escalated is None else escalated,
        "cost_usd": cost_usd,
        "price_known": price_known,
        "cost_source": cost_source,
        "dialect": dialect,
        "extra": extra,
    }
