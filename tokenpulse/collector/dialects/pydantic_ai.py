"""Pydantic AI / Logfire: scope ``pydantic-ai``, ``gen_ai.usage.details.*`` (in the semconv tables),
agent spans carrying ``gen_ai.aggregated_usage.*``."""

from tokenpulse.collector.dialects import ByKey, ByName, Dialect, Keys, Markers, agent, non_leaf

DIALECT = Dialect(
    name="pydantic-ai",
    order=50,
    markers=Markers(scope_prefixes=("pydantic-ai", "pydantic_ai", "logfire"), keys=("logfire.span_type",)),
    keys=Keys(
        ttft_seconds=("gen_ai.client.operation.time_to_first_chunk",),
        reported_cost=("operation.cost",),
        agent_name=("agent_name",),
    ),
    rules=(
        ByKey(("agent_name",), agent(), claimed_only=True),
        ByName(agent(), names=("agent run",), claimed_only=True),
        # The agent run's usage summed over its calls: counting it again would double every token.
        ByKey(("gen_ai.aggregated_usage.input_tokens", "gen_ai.aggregated_usage.output_tokens"), non_leaf()),
    ),
)
