"""Alert transitions stored in ``alert_events``, for the API and the overview page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tokenpulse.storage.store import Store


def alert_history(store: Store, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    """Transitions in [start, end), newest first, with their runbook links."""
    result = store.query(
        "SELECT at, fingerprint, status, detector, severity, scope, value, threshold, baseline, summary, "
        "runbook_url, started_at FROM alert_events "
        "WHERE at >= {start:DateTime('UTC')} AND at < {end:DateTime('UTC')} "
        "ORDER BY at DESC, detector LIMIT {limit:UInt32}",
        {"start": start, "end": end, "limit": limit},
    )
    return [
        {
            "id": row["fingerprint"],
            "at": _utc(row["at"]).isoformat(),
            "status": row["status"],
            "detector": row["detector"],
            "severity": row["severity"],
            "scope": dict(row["scope"]),
            "value": row["value"],
            "threshold": row["threshold"],
            "baseline": row["baseline"],
            "summary": row["summary"],
            "runbook_url": row["runbook_url"],
            "started_at": _utc(row["started_at"]).isoformat(),
        }
        for row in result.named_results()
    ]


def _utc(moment: datetime) -> datetime:
    # The columns are DateTime('UTC'); the embedded client returns them without a zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
