"""OpenInference (Arize Phoenix): ``openinference.span.kind``, ``llm.token_count.*``."""

from tokenpulse.collector import dialects as d

DIALECT = d.Dialect(
    name="openinference",
    order=30,
    markers=d.Markers(keys=("openinference.span.kind",)),
    rules=(
        d.ByValue(
            "openinference.span.kind",
            {"TOOL": d.tool(), "AGENT": d.agent(), "LLM": d.call("chat"), "EMBEDDING": d.call("embeddings")},
            normalize="upper",
            other=d.non_leaf(),  # CHAIN, RETRIEVER, RERANKER, ...
        ),
        d.ByKey(("tool.name",), d.weak_tool()),
    ),
    keys=d.Keys(
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
    first_token_events={"First Token Stream Event": None},
)
