"""Quality beside cost: the evaluations of each summary group, and the dollars each passing answer cost.

Evaluations are grouped by the summary's own dimensions where they have them (service, environment,
route, model, prompt version, tenant: the evaluated call's, as ``evaluations`` stores them); a summary
grouped or filtered by a dimension evaluations do not carry (provider, user, tool...) has no quality
figures (``None``), never figures of other calls.

Evaluations are sampled: a group's pass rate is its sample's, and the passing answers are estimated as
calls x pass rate, so ``usd_per_passing_answer`` = cost / (calls x pass rate) — the figure that tells
whether a cheaper model really is cheaper once its failures are paid for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tokenpulse.storage.schema import EVALUATION_ROLLUP_DIMENSIONS
from tokenpulse.storage.store import Store

# The summary's dimensions an evaluation has (the evaluations' own names for them are the same).
QUALITY_DIMENSIONS = frozenset(EVALUATION_ROLLUP_DIMENSIONS) - {"evaluation", "evaluator"}


def quality_sql(
    group_by: Sequence[str], filters: Mapping[str, str | Sequence[str]], whole_minutes: bool
) -> tuple[str, dict[str, Any]] | None:
    """The query of the evaluations per group and evaluation name (``start`` / ``end`` parameters still
    to bind), or None when a dimension asked for is not one evaluations have. A filter given a list of
    values keeps the evaluations with any of them."""
    if not set(group_by) | set(filters) <= QUALITY_DIMENSIONS:
        return None
    # The rollup where the range is whole minutes, as the calls' summary does; else the raw table.
    source, time_column, count = (
        ("evaluations_1m", "minute", "sum(evaluations)")
        if whole_minutes
        else ("evaluations FINAL", "time", "count()")
    )
    sums = (
        ("sum(scored)", "sum(score_sum)", "sum(judged)", "sum(passes)")
        if whole_minutes
        else ("count(score)", "sum(ifNull(score, 0))", "count(passed)", "countIf(passed)")
    )
    where = [
        f"{time_column} >= {{start:DateTime64(9, 'UTC')}}",
        f"{time_column} < {{end:DateTime64(9, 'UTC')}}",
    ]
    parameters: dict[str, Any] = {}
    for index, (dimension, value) in enumerate(sorted(filters.items())):
        if isinstance(value, str):
            where.append(f"{dimension} = {{q{index}:String}}")
        else:
            where.append(f"{dimension} IN {{q{index}:Array(String)}}")
        parameters[f"q{index}"] = value
    keys = ", ".join((*group_by, "evaluation"))
    sql = (
        f"SELECT {keys}, {count} AS evaluations, {sums[0]} AS scored, {sums[1]} AS score_sum, "
        f"{sums[2]} AS judged, {sums[3]} AS passes FROM {source} WHERE {' AND '.join(where)} "
        f"GROUP BY {keys} ORDER BY {keys}"
    )
    return sql, parameters


def figures(row: Mapping[str, Any], calls: int, cost_usd: str | None) -> dict[str, Any]:
    """One evaluation's figures for a group of ``calls`` calls that cost ``cost_usd``."""
    scored, judged, passes = int(row["scored"]), int(row["judged"]), int(row["passes"])
    pass_rate = passes / judged if judged else None
    per_pass = None
    if pass_rate and calls and cost_usd is not None:
        per_pass = format(
            (Decimal(cost_usd) / (Decimal(calls) * Decimal(pass_rate))).quantize(Decimal("1e-6")), "f"
        )
    return {
        "evaluations": int(row["evaluations"]),
        "mean_score": round(float(row["score_sum"]) / scored, 4) if scored else None,
        "judged": judged,
        "pass_rate": None if pass_rate is None else round(pass_rate, 4),
        "usd_per_passing_answer": per_pass,
    }


_SUMS = ("evaluations", "scored", "score_sum", "judged", "passes")


def attach_quality(
    store: Store,
    groups: list[dict[str, Any]],
    group_by: Sequence[str],
    filters: Mapping[str, str],
    parameters: Mapping[str, Any],
    whole_minutes: bool,
    stored_models: Mapping[int, Sequence[str]] | None = None,
) -> None:
    """Give each summary group its ``quality``: per evaluation name, the figures of ``figures`` (``{}``
    without evaluations; ``None`` where evaluations cannot be grouped as the summary is).

    An evaluation names the evaluated call's stored model (its response model), while the summary's
    ``model`` is the model asked for: when the summary groups or filters by model, ``stored_models``
    gives each group's stored names (by group index) and a group gets the evaluations of those names.
    A name two groups share (asked for by name, and also the answer to an alias) counts once, in the
    group keyed by that name."""
    by_model = "model" in group_by or "model" in filters
    lookup = tuple(group_by) if not by_model or "model" in group_by else (*group_by, "model")
    wanted: Mapping[str, str | Sequence[str]] = filters
    owners: dict[tuple[Any, ...], int] = {}  # an evaluation's key -> the index of the group it counts in
    for index, group in enumerate(groups):
        names = (stored_models or {}).get(index, []) if by_model else [None]
        for name in names:
            key = tuple(name if d == "model" else group["key"].get(d) for d in lookup)
            if key not in owners or group["key"].get("model") == name:
                owners[key] = index
    if by_model and "model" in filters:
        position = lookup.index("model")
        wanted = {**filters, "model": sorted({key[position] for key in owners})}
    built = quality_sql(lookup, wanted, whole_minutes)
    if built is None:
        for group in groups:
            group["quality"] = None
        return
    sql, extra = built
    found: list[dict[str, dict[str, Any]]] = [{} for _ in groups]
    for row in store.query(sql, {**parameters, **extra}).named_results():
        index = owners.get(tuple(row[d] for d in lookup))
        if index is None:
            continue
        total = found[index].setdefault(row["evaluation"], dict.fromkeys(_SUMS, 0))
        for name in _SUMS:
            total[name] += row[name]
    for group, rows in zip(groups, found, strict=True):
        group["quality"] = {
            name: figures(row, group["calls"], group["cost_usd"]) for name, row in sorted(rows.items())
        }
