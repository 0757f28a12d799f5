"""Suspects: the change that most likely caused an alert, for the on-call engineer to roll back.

Within the alert's scope, compare who made the calls just before the onset with who makes them since:
a prompt version, deploy version, model, provider, router or user whose share of calls jumped at the
onset (most suspicious: one that did not exist before) is what changed. An incident ranks its alerts'
suspects together (``alerts.incidents.ranked_cause``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tokenpulse.detectors.base import Scope
from tokenpulse.storage.store import Store

# Suspect dimension -> column of the calls table.
SUSPECT_COLUMNS = {
    "prompt_version": "prompt_version",
    "deploy_version": "service_version",
    "model": "model",
    "provider": "provider",
    "router": "router",
    "user": "user",
}
# Scope dimension -> column of the calls table (scopes on tools cannot filter calls and are skipped).
SCOPE_COLUMNS = {
    "tenant": "tenant",
    "service": "service",
    "environment": "environment",
    "provider": "provider",
    "model": "model",
    "route": "route",
    "user": "user",
    "router": "router",
    "prompt_version": "prompt_version",
    "deploy_version": "service_version",
    "session": "session",
}
MIN_SHARE_CHANGE = 0.2  # a share that moved less than 20 points is not a change worth naming
BEFORE = timedelta(hours=1)


# Values read per dimension, the largest gainers first: a user dimension can have millions of values.
CANDIDATES = 20


@dataclass(frozen=True)
class ShareCount:
    """Calls of one dimension value before and after the onset, and of the whole dimension."""

    dimension: str
    value: str
    before: int
    after: int
    total_before: int
    total_after: int


# A provider's dated name of a model (gpt-4o-mini-2024-07-18, claude-sonnet-4-5-20250929).
_DATED = re.compile(r"^(?P<model>.+)-(\d{4}-\d{2}-\d{2}|\d{8})$")


def _dated(name: str) -> str | None:
    """The model a dated name is a snapshot of; None for a name without a date."""
    match = _DATED.match(name)
    return match["model"] if match else None


def rank_suspects(counts: Sequence[ShareCount], limit: int = 3) -> list[dict[str, Any]]:
    """The values whose share of calls grew the most at the onset (pure); never an empty value."""
    ranked = []
    answered = {(c.dimension, c.value) for c in counts if c.before}
    for c in counts:
        total_before, total_after = c.total_before, c.total_after
        if not total_after or not c.value.strip():
            continue  # no calls since, or calls that do not say (no user, no prompt version): no suspect
        if c.dimension == "model" and any(d == "model" and _dated(v) == c.value for d, v in answered):
            # A call that failed counts under the model it asked for (no response named the dated
            # model that answered before): a surge of failures is not a switch of model.
            continue
        share_before = c.before / total_before if total_before else 0.0
        share_after = c.after / total_after
        change = share_after - share_before
        if change >= MIN_SHARE_CHANGE:
            ranked.append(
                (
                    change + (1.0 if c.before == 0 and total_before else 0.0),  # new at the onset: first
                    {
                        "dimension": c.dimension,
                        "value": c.value,
                        "share_before": round(share_before, 3),
                        "share_after": round(share_after, 3),
                        "new": c.before == 0,
                    },
                )
            )
    # Ties (a model switch moves its provider's share as much) in a fixed order, the more specific
    # dimension first: the query's rows come in no set order.
    order = {dimension: i for i, dimension in enumerate(SUSPECT_COLUMNS)}
    ranked.sort(key=lambda item: (-item[0], order.get(item[1]["dimension"], len(order)), item[1]["value"]))
    return [suspect for _, suspect in ranked[:limit]]


def find_suspects(store: Store, scope: Scope, onset: datetime, now: datetime) -> list[dict[str, Any]]:
    """Rank the suspects of an alert on ``scope`` whose condition started holding at ``onset``."""
    filters = [(SCOPE_COLUMNS[k], v) for k, v in scope if k in SCOPE_COLUMNS]
    dimensions = [(d, c) for d, c in SUSPECT_COLUMNS.items() if d not in dict(scope)]
    parameters: dict[str, Any] = {"before": onset - BEFORE, "onset": onset, "now": now}
    where = ["time >= {before:DateTime64(9, 'UTC')}", "time < {now:DateTime64(9, 'UTC')}"]
    for index, (column, value) in enumerate(filters):
        where.append(f"{column} = {{s{index}:String}}")
        parameters[f"s{index}"] = value
    selects = " UNION ALL ".join(
        f"(SELECT '{dimension}' AS dimension, toString({column}) AS value, "
        "countIf(time < {onset:DateTime64(9, 'UTC')}) AS before, "
        "countIf(time >= {onset:DateTime64(9, 'UTC')}) AS after, "
        "sum(before) OVER () AS total_before, sum(after) OVER () AS total_after "
        f"FROM calls WHERE {' AND '.join(where)} GROUP BY value "
        f"ORDER BY after / greatest(total_after, 1) - before / greatest(total_before, 1) DESC "
        f"LIMIT {CANDIDATES})"
        for dimension, column in dimensions
    )
    rows = store.rows(selects, parameters)
    return rank_suspects([ShareCount(str(r[0]), str(r[1]), *(int(x) for x in r[2:])) for r in rows])
