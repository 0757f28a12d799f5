"""Which tool an LLM call was made in: its nearest ancestor span of kind ``tool``, at any depth up to
``MAX_DEPTH``. One definition for the tool_hidden_cost detector, the summary's ``tool`` dimension, the
dashboards and the runbooks.

A call's ancestors between it and its tool are agent spans and link spans (``collector.links``: the
Vercel AI SDK's ``ai.generateText``, chains, workflow steps), all stored in ``tool_spans``. The walk is
done at query time, so it does not matter in which order or in which export requests the spans of a
trace arrived (children usually end, and are exported, before their parents): once the tool span is
stored — it ends after everything inside it — every call below it resolves.

How: the spans of each trace that holds a tool are gathered into arrays (one scan of ``tool_spans``,
one group per trace, where each span's parent position is looked up once), calls join them on (tenant,
trace), and the walk is ``MAX_DEPTH`` array lookups per call — no self-join per level. Traces without
a tool are left out before the join, so calls outside tools cost a hash probe and nothing else.
"""

from __future__ import annotations

from tokenpulse.storage.schema import ENDED_AT

# Spans from a call up to its tool, the tool included: 1 is a call whose parent is the tool. Deeper calls
# are not attributed (agent frameworks nest 2-4; the bound keeps a malformed parent cycle finite).
MAX_DEPTH = 6

# Tool spans are read from this long before the calls they may contain (a longer tool execution
# loses its calls, as the detectors' LONGEST_CALL does).
LONGEST_TOOL = "INTERVAL 1 HOUR"


def trace_spans_sql(where: str) -> str:
    """One row per trace holding a tool span among the ``tool_spans`` rows that match ``where`` (only
    those traces are grouped: the Vercel AI SDK puts a link above every call, tool or not):
    ``trace_key`` (a 64-bit hash of tenant and trace id), and arrays of all its tool, agent and link
    spans in the same order — ``span_keys`` (hashes of their span ids), ``is_tool``, ``span_ids``,
    ``names``, ``services``, ``ended`` (when each span ended, DateTime64) — and ``parent_at``, the
    position of each span's parent (0 when its parent is not among them).

    Hashes, because joining and searching 64-bit integers is about a third cheaper than strings of 32
    and 16 hex digits; a collision needs two traces of the same read with one hash (about 1 in 10^9 at
    a million traces) and then a call whose parent's hash is a span of the other trace."""
    return (
        "SELECT sipHash64(tenant, trace_id) AS trace_key, groupArray(sipHash64(span_id)) AS span_keys,"
        " groupArray(kind = 'tool') AS is_tool, groupArray(span_id) AS span_ids, groupArray(name) AS names,"
        f" groupArray(service) AS services, groupArray({ENDED_AT}) AS ended,"
        " arrayMap(p -> indexOf(span_keys, p), groupArray(sipHash64(parent_span_id))) AS parent_at"
        f" FROM tool_spans WHERE ({where}) AND sipHash64(tenant, trace_id) IN ("
        f"SELECT sipHash64(tenant, trace_id) FROM tool_spans WHERE kind = 'tool' AND ({where}))"
        " GROUP BY trace_key"
    )


def tool_index_sql(parent: str = "c.parent_span_id", spans: str = "t") -> str:
    """SQL for the 1-based position, in the arrays of ``trace_spans_sql`` (aliased ``spans``), of the
    nearest tool ancestor of a span whose parent span id is ``parent``; 0 when there is none within
    ``MAX_DEPTH``. Index 0 of a ClickHouse array is its default value (0), which is no tool and whose
    parent is at 0, so a walk that leaves the stored spans stays at 0."""
    steps = [f"indexOf({spans}.span_keys, sipHash64({parent}))"]
    for _ in range(MAX_DEPTH - 1):
        steps.append(f"{spans}.parent_at[{steps[-1]}]")
    branches = ", ".join(f"{spans}.is_tool[{step}], {step}" for step in steps)
    return f"multiIf({branches}, 0)"


def attributed_calls_sql(
    columns: str, calls_where: str, spans_where: str, *, only_in_tools: bool = True, final: bool = False
) -> str:
    """One row per call of ``calls`` (aliased ``c``; ``FINAL`` if ``final``) matching ``calls_where``:
    its ``columns`` and the tool it was made in — ``tool`` (the name), ``tool_service``,
    ``tool_span_id`` and ``tool_ended`` (DateTime64), '' / 0 outside any tool.

    ``only_in_tools`` keeps only calls made in a tool (an inner join), else every call (a left join).
    ``spans_where`` selects the ``tool_spans`` rows to walk: it must reach back to the tools' start
    times, ``LONGEST_TOOL`` before the calls' range."""
    join, keep = ("INNER", " AND tool_index > 0") if only_in_tools else ("LEFT", "")
    return (
        f"SELECT {columns}, {tool_index_sql()} AS tool_index,"
        " if(tool_index > 0, t.names[tool_index], '') AS tool,"
        " if(tool_index > 0, t.services[tool_index], '') AS tool_service,"
        " if(tool_index > 0, t.span_ids[tool_index], '') AS tool_span_id,"
        " t.ended[tool_index] AS tool_ended"
        f" FROM calls AS c{' FINAL' if final else ''} {join} JOIN ({trace_spans_sql(spans_where)}) AS t"
        f" ON sipHash64(c.tenant, c.trace_id) = t.trace_key WHERE ({calls_where}){keep}"
    )
