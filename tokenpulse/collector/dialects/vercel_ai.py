"""Vercel AI SDK (``experimental_telemetry``): ``ai.operationId``, ``ai.usage.*``, ``ai.model.*``.

Only the provider-call spans (``doGenerate``/``doStream``/``doEmbed``) are calls: the ``ai.generateText``
& co. roots repeat the usage of their steps.
"""

from tokenpulse.collector.dialects import ByValue, Dialect, Keys, Markers, call, non_leaf, tool

DIALECT = Dialect(
    name="vercel-ai",
    order=10,
    markers=Markers(string_keys=("ai.operationId",), name_prefix_and_key=(("ai.", "ai.model.id"),)),
    keys=Keys(
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
    rules=(
        ByValue(
            "ai.operationId",
            {
                "ai.generateText.doGenerate": call("chat"),
                "ai.streamText.doStream": call("chat"),
                "ai.generateObject.doGenerate": call("chat"),
                "ai.streamObject.doStream": call("chat"),
                "ai.embed.doEmbed": call("embeddings"),
                "ai.embedMany.doEmbed": call("embeddings"),
                "ai.toolCall": tool(),
            },
            other=non_leaf(),  # ai.generateText & co carry usage aggregated over their steps
            decisive=True,
            or_span_name=True,
        ),
    ),
    reads_operation_name=False,  # the operation is named by ai.operationId
    provider_has_suffix=True,  # "openai.chat", "google.vertex.chat"
    first_token_events={"ai.stream.firstChunk": "ai.stream.msToFirstChunk"},
)
