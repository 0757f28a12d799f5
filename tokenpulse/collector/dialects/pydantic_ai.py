"""Pydantic AI / Logfire: scope ``pydantic-ai``, ``gen_ai.usage.details.*`` (in the semconv tables),
agent spans carrying ``gen_ai.aggregated_usage.*``."""

from tokenpulse.collector import dialects as d

DIALECT = d.Dialect(
    name="pydantic-ai",
    order=50,
    markers=d.Markers(scope_prefixes=("pydantic-ai", "pydantic_ai", "logfire"), keys=("logfire.span_type",)),
    rules=(
        d.ByKey(("agent_name",), d.agent(), claimed_only=True),
        d.ByName(d.agent(), names=("agent run",), claimed_only=True),
        # The agent run's usage summed over its calls: counting it again would double every token.
        d.ByKey(
            ("gen_ai.aggregated_usage.input_tokens", "gen_ai.aggregated_usage.output_tokens"), d.non_leaf()
        ),
    ),
    keys=d.Keys(
        ttft_seconds=("gen_ai.client.operation.time_to_first_chunk",),
        reported_cost=("operation.cost",),
        agent_name=("agent_name",),
    ),
)
