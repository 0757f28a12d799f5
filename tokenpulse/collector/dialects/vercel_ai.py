"""Vercel AI SDK (``experimental_telemetry``): ``ai.operationId``, ``ai.usage.*``, ``ai.model.*``.

Only the provider-call spans (``doGenerate``/``doStream``/``doEmbed``) are calls: the ``ai.generateText``
& co. roots repeat the usage of their steps.
"""

from tokenpulse.collector import dialects as d

# The provider-call spans, the leaves below the ai.generateText & co. roots.
CHAT_CALLS = (
    "ai.generateText.doGenerate",
    "ai.streamText.doStream",
    "ai.generateObject.doGenerate",
    "ai.streamObject.doStream",
)
EMBEDDING_CALLS = ("ai.embed.doEmbed", "ai.embedMany.doEmbed")

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
)
