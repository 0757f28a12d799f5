"""OpenLLMetry / traceloop: ``llm.request.type``, ``llm.usage.*``, ``traceloop.*`` (older releases;
0.62 writes the semconv keys and is claimed by them)."""

from tokenpulse.collector import dialects as d

GEMINI_PROVIDERS = frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"})

DIALECT = d.Dialect(
    name="openllmetry",
    order=60,
    markers=d.Markers(
        keys=(
            "llm.request.type",
            "llm.usage.total_tokens",
            "traceloop.span.kind",
            "traceloop.entity.name",
            "traceloop.workflow.name",
        ),
        scope_prefixes=("traceloop",),
    ),
    rules=(
        d.ByValue(
            "traceloop.span.kind",
            {"tool": d.tool(), "agent": d.agent(), "workflow": d.non_leaf(), "task": d.weak_non_leaf()},
            normalize="lower",
        ),
        d.ByValue(
            "llm.request.type",
            {
                "chat": d.call("chat"),
                "completion": d.call("text_completion"),
                "embedding": d.call("embeddings"),
                "rerank": d.call("rerank"),
            },
            normalize="lower",
        ),
    ),
    keys=d.Keys(
        request_model=("llm.request.model",),
        response_model=("llm.response.model",),
        tool_name=("traceloop.entity.name",),
        agent_name=("traceloop.entity.name",),
    ),
    # It passes Gemini's candidates_token_count as the output count, which excludes thoughts.
    output_excludes_reasoning_for=GEMINI_PROVIDERS,
    first_token_events={"llm.content.completion.chunk": None, "gen_ai.content.completion.chunk": None},
)
