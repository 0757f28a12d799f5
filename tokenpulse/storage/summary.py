"""The usage summary: calls, tokens by kind, cost and latency percentiles, grouped by any dimensions, with
the quality of the group's answers beside the cost (``storage.quality``).

Reads the per-minute rollup when the range is whole minutes and every dimension asked for is in it,
otherwise the raw table (FINAL, so a span stored twice counts once). The ``tool`` dimension is the tool
each call was made in (its nearest tool ancestor, ``storage.attribution``; '' outside any tool): asking
for it reads the raw table (without FINAL, see ``_CALLS_WITH_TOOL``) joined to the spans of its traces.
Values are always bound as query parameters.

The cache hit ratio is ``storage.cache_ratio``'s: reads over cacheable tokens, each call's cacheable
tokens by its provider's shape, summed per row (the rollup keeps provider and model), so a group that
mixes providers, or a warm window without one cache write, reads right.

The ``model`` dimension is the model a call asked for (its request model), so a failed call, which has no
response model, counts in the same group as the successful calls of the same model; each group lists
beside it the ``response_models`` its calls were answered as (the dated names). A ``model`` filter takes
either name. Rollup rows written before migration 6 have no request model and count under their
response model, as they always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tokenpulse.storage.attribution import LONGEST_TOOL, attributed_calls_sql
from tokenpulse.storage.cache_ratio import cacheable_tokens_sql, hit_ratio
from tokenpulse.storage.quality import attach_quality
from tokenpulse.storage.schema import ENDED_AT, LATENCY_QUANTILES, ROLLUP_DIMENSIONS
from tokenpulse.storage.store import Store

DIMENSIONS = (
    "service", "service_version", "environment", "provider", "model", "request_model", "response_model",
    "operation", "route", "user", "session", "prompt_version", "router", "status", "error_type", "tenant",
    "tool", "service_tier", "speed", "inference_geo",
)  # fmt: skip

# The range of the time columns (DateTime64(9)); a bound outside it is a client error, not a 500.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, tzinfo=UTC)

# Positions of p50, p95 and p99 in LATENCY_QUANTILES (1-based, as ClickHouse arrays index).
_P50, _P95, _P99 = (LATENCY_QUANTILES.split(", ").index(q) + 1 for q in ("0.5", "0.95", "0.99"))

# The columns the cacheable tokens are computed from. Qualified by the table name, they are the table's
# columns and not the ``sum(...) AS cache_read_tokens`` aliases of the same query.
_CACHE_COLUMNS = ("provider", "model", "input_tokens", "cache_read_tokens", "cache_write_tokens")

# metric -> (expression over the raw calls table, expression over the calls_1m rollup)
_METRICS: dict[str, tuple[str, str]] = {
    "calls": ("count()", "sum(calls)"),
    "errors": ("countIf(status = 'error')", "sum(errors)"),
    "input_tokens": ("sum(input_tokens)", "sum(input_tokens)"),
    "output_tokens": ("sum(output_tokens)", "sum(output_tokens)"),
    "cache_read_tokens": ("sum(cache_read_tokens)", "sum(cache_read_tokens)"),
    "cache_write_tokens": ("sum(cache_write_tokens)", "sum(cache_write_tokens)"),
    # by provider shape, per row; the columns are qualified by the source's name (see build_summary_sql)
    "cacheable_tokens": (
        f"sum({cacheable_tokens_sql(**{c: f'calls.{c}' for c in _CACHE_COLUMNS})})",
        f"sum({cacheable_tokens_sql(**{c: f'calls_1m.{c}' for c in _CACHE_COLUMNS})})",
    ),
    "reasoning_tokens": ("sum(reasoning_tokens)", "sum(reasoning_tokens)"),
    "cost_usd": ("sum(toDecimal128(cost_usd, 12))", "sum(cost_usd)"),
    "unpriced_calls": ("countIf(NOT price_known)", "sum(unpriced_calls)"),
    "cache_write_1h_tokens": ("sum(cache_write_1h_tokens)", "sum(cache_write_1h_tokens)"),
    # What providers or gateways reported they charged, for the calls that carried a figure.
    # (qualified: the column, not this query's alias of the same name)
    "reported_calls": ("countIf(calls.reported_cost_usd IS NOT NULL)", "sum(reported_calls)"),
    "reported_cost_usd": (
        "sum(toDecimal128(ifNull(calls.reported_cost_usd, 0), 12))",
        "sum(reported_cost_usd)",
    ),
    "latency_ms": (
        f"quantilesTDigest({LATENCY_QUANTILES})(duration_ms)",
        f"quantilesTDigestMerge({LATENCY_QUANTILES})(latency_ms)",
    ),
    "ttft_ms": (
        f"quantilesTDigest({LATENCY_QUANTILES})(ttft_ms)",
        f"quantilesTDigestMerge({LATENCY_QUANTILES})(ttft_ms)",
    ),
}


def model_key_sql(table: str) -> str:
    """The model a call asked for, over ``table``'s columns (the raw ``calls`` or the ``calls_1m``
    rollup). The collector fills the request model from the response model when a span names only the
    latter; a rollup row from before migration 6 has none, and falls back to its ``model``."""
    return f"if({table}.request_model != '', {table}.request_model, {table}.model)"


def model_filter_sql(table: str, parameter: str) -> str:
    """``model = X`` as every view reads it: the calls that asked for X or were answered as X, so a
    summary row, a chart scoped to its model and the calls behind it count the same calls."""
    value = f"{{{parameter}:String}}"
    return f"({model_key_sql(table)} = {value} OR {table}.model = {value})"


@dataclass(frozen=True)
class SummaryQuery:
    start: datetime
    end: datetime
    group_by: tuple[str, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [d for d in (*self.group_by, *self.filters) if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.start < EARLIEST or self.end > LATEST:
            raise ValueError(f"start and end must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")


# Every column of the calls in (or around) the range, with the tool each was made in. ``model`` is
# materialized, so ``c.*`` leaves it out: named on its own. Without FINAL, as the rollup and the
# detectors read calls: FINAL made a 6-hour summary by tool ten times slower (3.8 s vs 0.36 s at 10M
# bench calls), and the overview page asks for one every minute. Replays are deduplicated on insert; only
# a span an exporter re-sent in a new request, not merged yet, would count twice — as in the rollup.
_CALLS_WITH_TOOL = attributed_calls_sql(
    "c.*, c.model AS model",
    f"c.time >= {{start:DateTime64(9, 'UTC')}} - {LONGEST_TOOL} AND c.time < {{end:DateTime64(9, 'UTC')}}",
    f"time >= {{start:DateTime64(9, 'UTC')}} - {LONGEST_TOOL} - {LONGEST_TOOL}"
    " AND time < {end:DateTime64(9, 'UTC')}",
    only_in_tools=False,
)


# Result columns of the model key and of the names its calls are stored under.
_MODEL_KEY, _STORED_MODELS = "model_asked", "stored_models"


def _whole_minutes(moment: datetime) -> bool:
    return moment.second == 0 and moment.microsecond == 0


def build_summary_sql(query: SummaryQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and its parameters for ``query`` (pure: no I/O)."""
    use_rollup = (
        _whole_minutes(query.start)
        and _whole_minutes(query.end)
        and all(d in ROLLUP_DIMENSIONS for d in (*query.group_by, *query.filters))
    )
    column = 1 if use_rollup else 0
    # A call belongs to the range it ended in, in both sources (the rollup counts calls when they end).
    source, time_column = ("calls_1m", "minute") if use_rollup else ("calls FINAL", ENDED_AT)
    if "tool" in (*query.group_by, *query.filters):
        source = f"({_CALLS_WITH_TOOL}) AS calls"
    table = "calls_1m" if use_rollup else "calls"
    # The model key under its own alias: an alias named `model` would shadow the column in the query.
    keys = [f"{model_key_sql(table)} AS {_MODEL_KEY}" if d == "model" else d for d in query.group_by]
    selects = [*keys, *(f"{exprs[column]} AS {name}" for name, exprs in _METRICS.items())]
    if "model" in (*query.group_by, *query.filters):
        # The names the group's calls are stored under: its response models, and the asked name of
        # its failed calls (the quality of the group is found by them, see attach_quality).
        selects.append(f"groupUniqArray({table}.model) AS {_STORED_MODELS}")
    where = [
        f"{time_column} >= {{start:DateTime64(9, 'UTC')}}",
        f"{time_column} < {{end:DateTime64(9, 'UTC')}}",
    ]
    parameters: dict[str, Any] = {"start": query.start, "end": query.end}
    for index, (dimension, value) in enumerate(sorted(query.filters.items())):
        if dimension == "model":
            where.append(model_filter_sql(table, f"f{index}"))
        else:
            where.append(f"{dimension} = {{f{index}:String}}")
        parameters[f"f{index}"] = value
    sql = f"SELECT {', '.join(selects)} FROM {source} WHERE {' AND '.join(where)}"
    if query.group_by:
        names = ", ".join(_MODEL_KEY if d == "model" else d for d in query.group_by)
        sql += f" GROUP BY {names} ORDER BY cost_usd DESC, calls DESC"
    return sql, parameters


def _usd(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount else "0"


def _percentiles(values: list[float]) -> dict[str, float | None]:
    def clean(value: float) -> float | None:
        return None if value is None or math.isnan(value) else round(value, 3)

    return {"p50": clean(values[_P50 - 1]), "p95": clean(values[_P95 - 1]), "p99": clean(values[_P99 - 1])}


def summarize(store: Store, query: SummaryQuery) -> list[dict[str, Any]]:
    """Run the summary; one group per distinct key (one group with an empty key without group_by)."""
    sql, parameters = build_summary_sql(query)
    result = store.query(sql, parameters)
    groups: list[dict[str, Any]] = []
    stored: dict[int, list[str]] = {}  # group index -> the model names its calls are stored under
    for row in result.named_results():
        if not query.group_by and not row["calls"]:
            row = {**row, "latency_ms": [math.nan] * 4, "ttft_ms": [math.nan] * 4}
        cost: Decimal = row["cost_usd"]
        key = {d: row[_MODEL_KEY if d == "model" else d] for d in query.group_by}
        groups.append(
            {
                "key": key,
                "calls": row["calls"],
                "errors": row["errors"],
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "cache_read_tokens": row["cache_read_tokens"],
                "cache_write_tokens": row["cache_write_tokens"],
                "reasoning_tokens": row["reasoning_tokens"],
                # The cost of the priced calls; null when no call of the group has a known price (never
                # a silent "0"), and a lower bound whenever unpriced_calls is not 0.
                "cost_usd": None
                if row["calls"] and row["unpriced_calls"] == row["calls"]
                else format(cost.normalize(), "f")
                if cost
                else "0",
                "unpriced_calls": row["unpriced_calls"],
                "cache_write_1h_tokens": row["cache_write_1h_tokens"],
                # cost_usd is tokenpulse's own price (list price x what was served); the provider's or a
                # gateway's figure for the reported_calls that carried one is shown beside it, never mixed.
                "cost_shown": "tokenpulse",
                "reported_calls": row["reported_calls"],
                "reported_cost_usd": _usd(row["reported_cost_usd"]) if row["reported_calls"] else None,
                "cacheable_tokens": row["cacheable_tokens"],
                "cache_hit_ratio": hit_ratio(row["cache_read_tokens"], row["cacheable_tokens"]),
                "latency_ms": _percentiles(row["latency_ms"]),
                "ttft_ms": _percentiles(row["ttft_ms"]),
            }
        )
        if _STORED_MODELS in row:
            stored[len(groups) - 1] = sorted(row[_STORED_MODELS])
            if "model" in key:
                groups[-1]["response_models"] = [m for m in stored[len(groups) - 1] if m != key["model"]]
    whole = _whole_minutes(query.start) and _whole_minutes(query.end)
    attach_quality(store, groups, query.group_by, query.filters, parameters, whole, stored)
    return groups
