"""OpenLLMetry / traceloop: ``llm.request.type``, ``llm.usage.*``, ``traceloop.*`` (older releases;
0.62 writes the semconv keys and is claimed by them)."""

from tokenpulse.collector.dialects import (
    ByValue,
    Dialect,
    Keys,
    Markers,
    agent,
    call,
    non_leaf,
    tool,
    weak_non_leaf,
)

GEMINI_PROVIDERS = frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"})

DIALECT = Dialect(
    name="openllmetry",
    order=60,
    markers=Markers(
        keys=(
            "llm.request.type",
            "llm.usage.total_tokens",
            "traceloop.span.kind",
            "traceloop.entity.name",
            "traceloop.workflow.name",
        ),
        scope_prefixes=("traceloop",),
    ),
    keys=Keys(
        request_model=("llm.request.model",),
        response_model=("llm.response.model",),
        tool_name=("traceloop.entity.name",),
        agent_name=("traceloop.entity.name",),
    ),
    rules=(
        ByValue(
            "traceloop.span.kind",
            {"tool": tool(), "agent": agent(), "workflow": non_leaf(), "task": weak_non_leaf()},
            normalize="lower",
        ),
        ByValue(
            "llm.request.type",
            {
                "chat": call("chat"),
                "completion": call("text_completion"),
                "embedding": call("embeddings"),
                "rerank": call("rerank"),
            },
            normalize="lower",
        ),
    ),
    # It passes Gemini's candidates_token_count as the output count, which excludes thoughts.
    output_excludes_reasoning_for=GEMINI_PROVIDERS,
    first_token_events={"llm.content.completion.chunk": None, "gen_ai.content.completion.chunk": None},
)
