"""The detectors' part of the HTTP API: what each detector makes of each scope."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request

from tokenpulse.auth import request_tenant
from tokenpulse.detectors.engine import Engine
from tokenpulse.detectors.history import TENANT


def coverage_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/api/v1/coverage",
        summary="What each detector makes of each scope: watched, learning or not applicable",
    )
    def coverage(request: Request, detector: str | None = None, status: str | None = None) -> dict[str, Any]:
        tenant = request_tenant(request)
        rows = [
            row.to_json()
            for row in list(engine.coverage)  # a copy: the detector thread replaces it every cycle
            if (tenant is None or dict(row.scope).get(TENANT, "") == tenant)
            and (detector is None or row.detector == detector)
            and (status is None or row.status == status)
        ]
        counts = Counter((row["detector"], row["status"]) for row in rows)
        totals: dict[str, dict[str, int]] = {}
        for (name, state), count in sorted(counts.items()):
            totals.setdefault(name, {})[state] = count
        return {"totals": totals, "scopes": rows}

    return router
