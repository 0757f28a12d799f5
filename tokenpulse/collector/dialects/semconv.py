"""OpenTelemetry GenAI semantic conventions (current and deprecated spellings): the fallback dialect.

It claims every span no other dialect claims, and its token and provider keys back every dialect (after
the dialect's own). Its ``gen_ai.operation.name`` vocabulary classifies the spans of all dialects.
"""

from tokenpulse.collector import dialects as d

# gen_ai.operation.name spellings -> the canonical operation (before lowercasing).
OPERATION_ALIASES = {
    "completion": "text_completion",
    "completions": "text_completion",
    "text_completion": "text_completion",
    "embedding": "embeddings",
    "embeddings": "embeddings",
    "chat": "chat",
    "generate_content": "generate_content",
}
CALL_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings", "responses", "rerank")
OPERATION = d.ByValue(
    "gen_ai.operation.name",
    {
        **{op: d.call(op) for op in CALL_OPERATIONS},
        "execute_tool": d.tool(),
        "invoke_agent": d.agent(),
        # not leaves: their usage, if any, is the sum of the calls below them
        **{
            op: d.non_leaf()
            for op in ("create_agent", "invoke_workflow", "workflow", "framework", "execute_task")
        },
    },
    normalize="strip-lower",
    aliases=OPERATION_ALIASES,
    names_operation=True,
)

DIALECT = d.Dialect(
    name="semconv",
    order=1000,
    fallback=True,
    rules=(
        OPERATION,
        d.ByName(d.tool(), prefixes=("execute_tool",)),
        d.ByName(d.agent(), prefixes=("invoke_agent",)),
        d.ByKey(("gen_ai.tool.name",), d.weak_tool()),
    ),
    keys=d.Keys(
        input=(
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.usage.prompt_tokens",
            "llm.usage.input_tokens",
        ),
        output=(
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.usage.completion_tokens",
            "llm.usage.output_tokens",
        ),
        cache_read=(
            "gen_ai.usage.cache_read.input_tokens",  # semconv
            "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry, OpenLIT (pre-rename semconv)
            "gen_ai.usage.input_tokens.cached",  # Sentry-style
            "llm.usage.cache_read_input_tokens",  # OpenLLMetry llm.usage.*
            "gen_ai.usage.details.cache_read_tokens",  # Pydantic AI
            "gen_ai.usage.details.cache_read_input_tokens",  # Pydantic AI (raw Anthropic details, old)
            "gen_ai.usage.details.cached_content_tokens",  # Pydantic AI (raw Gemini details)
        ),
        cache_write=(
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "gen_ai.usage.input_tokens.cache_write",
            "llm.usage.cache_creation_input_tokens",
            "gen_ai.usage.details.cache_write_tokens",
            "gen_ai.usage.details.cache_creation_input_tokens",
        ),
        reasoning=(
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",  # OpenLLMetry, OpenLIT
            "gen_ai.usage.output_tokens.reasoning",
            "llm.usage.reasoning_tokens",
            "gen_ai.usage.details.reasoning_tokens",  # Pydantic AI (OpenAI)
            "gen_ai.usage.details.thoughts_tokens",  # Pydantic AI (Gemini)
        ),
        total=("gen_ai.usage.total_tokens", "llm.usage.total_tokens"),
        provider=("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider"),
        request_model=("gen_ai.request.model",),
        response_model=("gen_ai.response.model",),
        ttft_seconds=("gen_ai.response.time_to_first_chunk",),
        stream_flag=("gen_ai.request.stream",),
        reported_cost=("gen_ai.usage.cost", "tokenpulse.cost_usd"),  # OpenLIT writes the first
        tool_name=("gen_ai.tool.name",),
        agent_name=("gen_ai.agent.name",),
        # Anthropic's usage.cache_creation split by TTL, flattened as the cache_creation keys above are.
        cache_write_5m=(
            "gen_ai.usage.cache_creation.ephemeral_5m_input_tokens",
            "gen_ai.usage.details.ephemeral_5m_input_tokens",  # Pydantic AI details
            "tokenpulse.cache_write_5m_tokens",
        ),
        cache_write_1h=(
            "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens",
            "gen_ai.usage.details.ephemeral_1h_input_tokens",
            "tokenpulse.cache_write_1h_tokens",
        ),
        # The tier the provider served (the request's tier can differ: "auto" is served as "default").
        service_tier=(
            "openai.response.service_tier",  # semconv OpenAI attributes
            "gen_ai.openai.response.service_tier",  # its deprecated spelling
            "gen_ai.response.service_tier",  # OpenLIT
            "anthropic.response.service_tier",  # usage.service_tier: standard, priority, batch
            "tokenpulse.service_tier",  # set by the tokenpulse SDK helper or a gateway
        ),
        # No convention names these yet: Anthropic's response fields in the provider's namespace, as
        # semconv spells OpenAI's, and tokenpulse's own keys.
        speed=("anthropic.response.speed", "tokenpulse.speed"),
        inference_geo=("anthropic.response.inference_geo", "tokenpulse.inference_geo"),
    ),
)
