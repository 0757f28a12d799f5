"""Vercel AI SDK (``experimental_telemetry``): ``ai.operationId``, ``ai.usage.*``, ``ai.model.*``.

Only the provider-call spans (``doGenerate``/``doStream``/``doEmbed``) are calls: the ``ai.generateText``
& co. roots repeat the usage of their steps.
"""

import json
from typing import Any

from tokenpulse.collector import dialects as d

# The provider-call spans, the leaves below the ai.generateText & co. roots.
CHAT_CALLS = (
    "ai.generateText.doGenerate",
    "ai.streamText.doStream",
    "ai.generateObject.doGenerate",
    "ai.streamObject.doStream",
)
EMBEDDING_CALLS = ("ai.embed.doEmbed", "ai.embedMany.doEmbed")

PROVIDER_METADATA = "ai.response.providerMetadata"


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def provider_metadata(raw: Any) -> dict[str, Any]:
    """What the provider served and billed, from the AI SDK's ``providerMetadata`` (a JSON string, one
    object per provider). Anthropic's passes its raw ``usage`` (``service_tier``, ``inference_geo``,
    ``speed``, ``cache_creation.ephemeral_5m/1h_input_tokens``); OpenAI's names the ``serviceTier``
    served; OpenRouter's ``usage.cost`` is what it charged."""
    if type(raw) is str:
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    if not isinstance(raw, dict):
        return {}
    found: dict[str, Any] = {}
    for provider in raw.values():
        if not isinstance(provider, dict):
            continue
        usage = provider.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        tier = provider.get("serviceTier", usage.get("service_tier"))
        if isinstance(tier, str):
            found["service_tier"] = tier
        for name in ("speed", "inference_geo"):
            if isinstance(usage.get(name), str):
                found[name] = usage[name]
        creation = usage.get("cache_creation")
        if isinstance(creation, dict):
            found["cache_write_5m"] = _count(creation.get("ephemeral_5m_input_tokens"))
            found["cache_write_1h"] = _count(creation.get("ephemeral_1h_input_tokens"))
        cost = usage.get("cost")
        if type(cost) in (int, float) and not isinstance(cost, bool):
            found["reported_cost"] = cost
    return found


DIALECT = d.Dialect(
    name="vercel-ai",
    order=10,
    markers=d.Markers(string_keys=("ai.operationId",), name_prefix_and_key=(("ai.", "ai.model.id"),)),
    rules=(
        d.ByValue(
            "ai.operationId",
            {
                **dict.fromkeys(CHAT_CALLS, d.call("chat")),
                **dict.fromkeys(EMBEDDING_CALLS, d.call("embeddings")),
                "ai.toolCall": d.tool(),
            },
            other=d.non_leaf(),  # ai.generateText & co carry usage aggregated over their steps
            decisive=True,
            or_span_name=True,
        ),
    ),
    keys=d.Keys(
        input=("ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens"),
        output=("ai.usage.outputTokens", "ai.usage.completionTokens"),
        cache_read=("ai.usage.inputTokenDetails.cacheReadTokens", "ai.usage.cachedInputTokens"),
        cache_write=("ai.usage.inputTokenDetails.cacheWriteTokens",),
        reasoning=("ai.usage.outputTokenDetails.reasoningTokens", "ai.usage.reasoningTokens"),
        total=("ai.usage.totalTokens",),
        provider=("ai.model.provider", "gen_ai.provider.name", "gen_ai.system"),
        request_model=("ai.model.id",),
        response_model=("ai.response.model",),
        ttft_ms=("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"),
        tool_name=("ai.toolCall.name",),
    ),
    reads_operation_name=False,  # the operation is named by ai.operationId
    provider_has_suffix=True,  # "openai.chat", "google.vertex.chat"
    first_token_events={"ai.stream.firstChunk": "ai.stream.msToFirstChunk"},
    metadata_reader=d.MetadataReader("provider metadata", PROVIDER_METADATA, provider_metadata),
)
