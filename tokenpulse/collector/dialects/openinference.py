"""OpenInference (Arize Phoenix): ``openinference.span.kind``, ``llm.token_count.*``."""

from tokenpulse.collector.dialects import (
    ByKey,
    ByValue,
    Dialect,
    Keys,
    Markers,
    agent,
    call,
    non_leaf,
    tool,
    weak_tool,
)

DIALECT = Dialect(
    name="openinference",
    order=30,
    markers=Markers(keys=("openinference.span.kind",)),
    keys=Keys(
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
        request_model=("llm.request.model_name", "llm.model_name", "embedding.model_name"),
        response_model=("llm.response.model_name",),
        reported_cost=("llm.cost.total",),
        tool_name=("tool.name",),
        agent_name=("agent.name",),
    ),
    rules=(
        ByValue(
            "openinference.span.kind",
            {"TOOL": tool(), "AGENT": agent(), "LLM": call("chat"), "EMBEDDING": call("embeddings")},
            normalize="upper",
            other=non_leaf(),  # CHAIN, RETRIEVER, RERANKER, ...
        ),
        ByKey(("tool.name",), weak_tool()),
    ),
    first_token_events={"First Token Stream Event": None},
)
