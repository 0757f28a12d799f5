"""Single calls: the latest, slowest or most expensive in a range, filtered by their dimensions.

What a chart or an alert leads to: the calls behind it, each with the tool or agent span it ran inside.
Only stored columns are read, and tokenpulse stores no prompt or completion text, so none can leak here.
Values are always bound as query parameters; orders and filters are declared, never taken as SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenpulse.storage.schema import ENDED_AT
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import EARLIEST, LATEST, model_filter_sql

# order name -> ORDER BY clause (ties broken by the span id, so pages never overlap or skip)
ORDERS = {
    "latest": f"{ENDED_AT} DESC, span_id",
    "slowest": "duration_ms DESC, span_id",
    "costliest": "toDecimal128(cost_usd, 12) DESC, span_id",
}
# Dimensions a calls query filters on, by equality.
FILTERS = (
    "service", "environment", "provider", "model", "request_model", "operation", "route", "user", "session",
    "prompt_version", "router", "status", "error_type", "trace_id", "tenant",
)  # fmt: skip
MAX_LIMIT = 500
# A call is in a range by when it ended (time + duration), which no index or partition can prune on.
# Bounding its start as well lets ClickHouse skip every day partition outside the range: calls are
# found exactly when they ran for less than this, which no LLM call near a timeout does.
LONGEST_CALL = timedelta(days=1)
COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "service", "environment", "provider", "model", "request_model",
    "operation", "route", "user", "session", "prompt_version", "router", "escalated", "status", "error_type",
    "is_timeout", "duration_ms", "ttft_ms", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "price_known",
)  # fmt: skip


@dataclass(frozen=True)
class CallsQuery:
    start: datetime
    end: datetime
    order: str = "latest"
    filters: dict[str, str] = field(default_factory=dict)
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; known: {', '.join(ORDERS)}")
        unknown = [name for name in self.filters if name not in FILTERS]
        if unknown:
            raise ValueError(f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.start < EARLIEST or self.end > LATEST:
            raise ValueError(f"start and end must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
        if not 1 <= self.limit <= MAX_LIMIT or self.offset < 0:
            raise ValueError(f"limit must be 1..{MAX_LIMIT} and offset >= 0")


def build_calls_sql(query: CallsQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and its parameters for one page of ``query`` (pure: no I/O)."""
    # A call belongs to the range it ended in, as in the summary: the two views count the same calls.
    where = [
        "time >= {started_after:DateTime64(9, 'UTC')}", "time < {end:DateTime64(9, 'UTC')}",
        f"{ENDED_AT} >= {{start:DateTime64(9, 'UTC')}}", f"{ENDED_AT} < {{end:DateTime64(9, 'UTC')}}",
    ]  # fmt: skip
    parameters: dict[str, Any] = {
        "start": query.start, "end": query.end, "started_after": max(query.start - LONGEST_CALL, EARLIEST),
    }  # fmt: skip
    for index, (name, value) in enumerate(sorted(query.filters.items())):
        # model: the asked or the answered name, as the summary's model (a row's calls are these calls)
        where.append(
            model_filter_sql("calls", f"f{index}") if name == "model" else f"{name} = {{f{index}:String}}"
        )
        parameters[f"f{index}"] = value
    sql = (
        f"SELECT {ENDED_AT} AS ended_at, {', '.join(COLUMNS)} FROM calls FINAL "
        f"WHERE {' AND '.join(where)} ORDER BY {ORDERS[query.order]} "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt64}"
    )
    # One more than the page: whether there is a next page, without counting the whole range.
    parameters.update(limit=query.limit + 1, offset=query.offset)
    return sql, parameters


def _parents(store: Store, calls: list[dict[str, Any]], tenant: str | None) -> dict[tuple[str, str], dict]:
    """The tool or agent span each call ran directly inside, by (trace id, span id)."""
    wanted = {(c["trace_id"], c["parent_span_id"]) for c in calls if c["parent_span_id"]}
    if not wanted:
        return {}
    sql = (
        "SELECT trace_id, span_id, kind, name, duration_ms, status FROM tool_spans FINAL "
        "WHERE trace_id IN {traces:Array(String)} AND span_id IN {spans:Array(String)}"
    )
    parameters: dict[str, Any] = {
        "traces": sorted({t for t, _ in wanted}),
        "spans": sorted({s for _, s in wanted}),
    }
    if tenant is not None:
        sql += " AND tenant = {tenant:String}"
        parameters["tenant"] = tenant
    found = {}
    for trace_id, span_id, kind, name, duration_ms, status in store.rows(sql, parameters):
        if (trace_id, span_id) in wanted:
            found[(trace_id, span_id)] = {
                "kind": kind,
                "name": name,
                "duration_ms": duration_ms,
                "status": status,
            }
    return found


def list_calls(store: Store, query: CallsQuery) -> dict[str, Any]:
    """One page of calls: ``{"calls": [...], "next_offset": int | None}``."""
    sql, parameters = build_calls_sql(query)
    rows = list(store.query(sql, parameters).named_results())
    more = len(rows) > query.limit
    calls = [_call_json(row) for row in rows[: query.limit]]
    parents = _parents(store, calls, query.filters.get("tenant"))
    for call in calls:
        call["parent"] = parents.get((call["trace_id"], call.pop("parent_span_id")))
    return {"calls": calls, "next_offset": query.offset + query.limit if more else None}


def _call_json(row: dict[str, Any]) -> dict[str, Any]:
    call = {name: row[name] for name in COLUMNS}
    ended: datetime = row["ended_at"]
    ended = ended if ended.tzinfo else ended.replace(tzinfo=UTC)
    call["ended_at"] = ended.isoformat()
    cost: Decimal = call["cost_usd"]
    # An unpriced call has an unknown cost, not a cost of 0 (see the summary's unpriced_calls).
    call["cost_usd"] = format(cost.normalize(), "f") if call.pop("price_known") else None
    call["duration_ms"] = round(call["duration_ms"], 3)
    if call["ttft_ms"] is not None:
        call["ttft_ms"] = round(call["ttft_ms"], 3)
    return call
