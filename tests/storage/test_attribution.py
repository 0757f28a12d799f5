"""Attribution of LLM calls to their nearest tool ancestor, at any depth up to MAX_DEPTH, on the store."""

from __future__ import annotations

from pathlib import Path

from tests.factories import call_record, store_records, tool_span_record
from tokenpulse.buffer.records import ToolSpanRecord
from tokenpulse.storage.attribution import MAX_DEPTH, attributed_calls_sql
from tokenpulse.storage.store import Store


def _span(trace: str, span_id: str, parent: str, kind: str, name: str = "") -> ToolSpanRecord:
    return tool_span_record(
        trace_id=trace * 32, span_id=span_id, parent_span_id=parent, kind=kind, name=name or kind
    )


def _attributed(store: Store, only_in_tools: bool = False) -> dict[str, tuple[str, str]]:
    """call span id -> (tool name, tool span id) for every stored call."""
    sql = attributed_calls_sql("c.span_id AS call", "1", "1", only_in_tools=only_in_tools)
    rows = store.rows(f"SELECT call, tool, tool_span_id FROM ({sql})")
    assert len(rows) == len({row[0] for row in rows}), "a call attributed twice"
    return {call: (tool, tool_span) for call, tool, tool_span in rows}


def _ids(n: int) -> list[str]:
    return [f"{i:016x}" for i in range(n * 100 + 1, n * 100 + MAX_DEPTH + 3)]


def test_each_call_goes_to_its_nearest_tool_whatever_the_depth_and_arrival(
    tmp_path: Path, store: Store
) -> None:
    a, b, c, d, e, f = (_ids(n) for n in range(1, 7))
    chain = [f"{i:016x}" for i in range(900, 900 + MAX_DEPTH + 1)]
    spans = [
        _span("a", a[0], "", "tool", "search"),  # a call right under it
        _span("b", b[0], "", "tool", "browse"),  # tool -> ai.generateText -> call (Vercel AI SDK)
        _span("b", b[1], b[0], "link", "ai.generateText"),
        _span("c", c[0], "", "tool", "research"),  # tool -> agent -> chain -> call
        _span("c", c[1], c[0], "agent", "helper"),
        _span("c", c[2], c[1], "link", "CHAIN"),
        _span("d", d[0], "", "tool", "outer"),  # a tool inside a tool: the inner one is nearer
        _span("d", d[1], d[0], "link", "CHAIN"),
        _span("d", d[2], d[1], "tool", "inner"),
        _span("e", e[0], "", "tool", "plan"),  # the same trace: an agent outside the tool
        _span("e", e[1], "", "agent", "planner"),
        _span("f", f[0], "", "tool", "gap"),  # an unstored span between the tool and the call
        # MAX_DEPTH - 1 links below a tool: the call under the last is attributed, one deeper is not
        _span("g", chain[0], "", "tool", "deep"),
        *(_span("g", chain[i], chain[i - 1], "link", "step") for i in range(1, MAX_DEPTH + 1)),
    ]
    calls = [
        call_record(trace_id="a" * 32, span_id=a[5], parent_span_id=a[0]),
        call_record(trace_id="b" * 32, span_id=b[5], parent_span_id=b[1]),
        call_record(trace_id="c" * 32, span_id=c[5], parent_span_id=c[2]),
        call_record(trace_id="d" * 32, span_id=d[5], parent_span_id=d[2]),
        call_record(trace_id="d" * 32, span_id=d[6], parent_span_id=d[1]),  # between the two: outer
        call_record(trace_id="e" * 32, span_id=e[5], parent_span_id=e[1]),
        call_record(trace_id="f" * 32, span_id=f[5], parent_span_id="7" * 16),
        call_record(trace_id="a" * 32, span_id=a[6], parent_span_id=""),  # the root of its trace
        call_record(trace_id="9" * 32, span_id=a[7], parent_span_id=a[0]),  # tool's id, another trace
        call_record(trace_id="g" * 32, span_id="1" * 16, parent_span_id=chain[MAX_DEPTH - 1]),
        call_record(trace_id="g" * 32, span_id="2" * 16, parent_span_id=chain[MAX_DEPTH]),
    ]
    # Children are exported before their parents, each batch in its own request: calls first, then the
    # spans from the deepest up, the tool spans last; and an exporter retry stores a tool span twice.
    store_records(store, tmp_path / "1", calls)
    for n, batch in enumerate((spans[::-1][: len(spans) // 2], spans[::-1][len(spans) // 2 :], spans[:1])):
        store_records(store, tmp_path / f"spans-{n}", [], batch)

    attributed = _attributed(store)
    assert attributed == {
        a[5]: ("search", a[0]),
        b[5]: ("browse", b[0]),
        c[5]: ("research", c[0]),
        d[5]: ("inner", d[2]),
        d[6]: ("outer", d[0]),
        e[5]: ("", ""),
        f[5]: ("", ""),
        a[6]: ("", ""),
        a[7]: ("", ""),
        "1" * 16: ("deep", chain[0]),  # MAX_DEPTH spans up, the tool included
        "2" * 16: ("", ""),
    }
    assert set(_attributed(store, only_in_tools=True)) == {a[5], b[5], c[5], d[5], d[6], "1" * 16}


def test_tenants_never_share_a_trace(tmp_path: Path, store: Store) -> None:
    """The same trace and span ids under two API keys: a call is attributed within its own tenant."""
    store_records(store, tmp_path / "a", [], [_span("a", "1" * 16, "", "tool", "search")], tenant="acme")
    store_records(
        store,
        tmp_path / "b",
        [call_record(trace_id="a" * 32, span_id="2" * 16, parent_span_id="1" * 16)],
        tenant="globex",
    )
    assert _attributed(store) == {"2" * 16: ("", "")}
