"""The HTTP API (port 8000): health, Prometheus metrics and the usage summary."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from tokenpulse import metrics
from tokenpulse.alerts.history import alert_history, alert_json, find_alert, visible_to
from tokenpulse.alerts.views import AlertViews
from tokenpulse.auth import request_tenant
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.state import AlertStates
from tokenpulse.export import summary_csv
from tokenpulse.reconcile.command import compare_stored
from tokenpulse.storage.calls import MAX_LIMIT as MAX_CALLS
from tokenpulse.storage.calls import ORDERS as CALL_ORDERS
from tokenpulse.storage.calls import CallsQuery, list_calls
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import DIMENSIONS, SummaryQuery, summarize
from tokenpulse.storage.timeseries import SeriesQuery, series
from tokenpulse.storage.writer import LogWriter
from tokenpulse.web import WEB_DIR


def _parse_time(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"invalid ISO 8601 time {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_api_app(
    store: Store,
    wal: WriteAheadLog,
    writer: LogWriter,
    alerts: AlertStates,
    views: AlertViews | None = None,
    metrics_registry: Collector = REGISTRY,
) -> FastAPI:
    """The API; ``views`` says the state each alert really has (the daemon's joins its notifications);
    /metrics exposes ``metrics_registry`` (with workers, the daemon's metrics and theirs summed)."""
    views = views or AlertViews(alerts)
    # /docs from Swagger UI files shipped in a package (fastapi-offline), not a CDN: the page must work
    # on a host without internet access. Under /static/ so that it opens without a key, as the page does.
    app = FastAPIOffline(
        static_url="/static/docs",
        redoc_url=None,
        title="tokenpulse",
        summary="LLM usage, cost and silent-failure detection over OpenTelemetry spans.",
        version="0.1.0",
    )

    @app.get("/healthz", summary="Liveness: the process serves requests")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: storage answers and the writer is keeping up",
        responses={503: {"description": "Not ready: the body lists the problems"}},
    )
    def readyz() -> JSONResponse:
        problems = []
        try:
            store.rows("SELECT 1")
        except Exception as error:
            problems.append(f"storage unreachable: {error}")
        if not writer.healthy:
            problems.append("inserts into storage are failing; data is kept in the write-ahead log")
        body = {"status": "ready" if not problems else "not ready", "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus_metrics() -> Response:
        metrics.WAL_PENDING_BYTES.set(wal.pending_bytes)
        metrics.WAL_SEGMENTS.set(len(wal.segments()))
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1/summary",
        summary="Calls, tokens by kind, cost and latency, grouped by dimensions",
        responses={400: {"description": "Unknown dimension, invalid time or range"}},
    )
    async def summary(
        request: Request,
        start: str | None = Query(None, description="ISO 8601; default one hour before end"),
        end: str | None = Query(None, description="ISO 8601; default the end of the current minute"),
        group_by: str = Query("", description=f"comma-separated dimensions: {', '.join(DIMENSIONS)}"),
    ) -> dict[str, Any]:
        now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end_time = _parse_time(end, now)
        start_time = _parse_time(start, end_time - timedelta(hours=1))
        # Any other query parameter names a dimension to filter on (e.g. ?service=checkout).
        filters = {k: v for k, v in request.query_params.items() if k not in ("start", "end", "group_by")}
        if (tenant := request_tenant(request)) is not None:
            filters["tenant"] = tenant  # a key reads its own tenant's data only
        try:
            query = SummaryQuery(start_time, end_time, tuple(d for d in group_by.split(",") if d), filters)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        groups = await run_in_threadpool(summarize, store, query)
        document = {"start": start_time.isoformat(), "end": end_time.isoformat(), "groups": groups}
        if query.group_by:
            # Over the same calls, not summed from the groups: percentiles do not add up.
            document["totals"] = (await run_in_threadpool(summarize, store, replace(query, group_by=())))[0]
        return document

    @app.get(
        "/api/v1/reconcile",
        summary="Stored calls and cost against the providers' own usage and cost reports, per day x model",
        responses={
            400: {"description": "Invalid day or range"},
            403: {"description": "A tenant's key: the providers' reports cover every tenant"},
        },
    )
    async def reconcile(
        request: Request,
        start: str | None = Query(None, description="first day, YYYY-MM-DD; default end minus 7 days"),
        end: str | None = Query(None, description="the day after the last, YYYY-MM-DD; default today"),
        by_tier: bool = Query(False, description="one row per service tier too"),
    ) -> dict[str, Any]:
        if request_tenant(request) is not None:
            # The bill is the organization's: compared with one tenant's calls every row would look short.
            raise HTTPException(403, "the providers' reports cover every tenant: run `tokenpulse reconcile`")
        try:
            last = date.fromisoformat(end) if end else datetime.now(UTC).date()
            first = date.fromisoformat(start) if start else last - timedelta(days=7)
        except ValueError:
            raise HTTPException(400, "start and end are days, YYYY-MM-DD") from None
        if first >= last:
            raise HTTPException(400, "start must be before end")
        rows = await run_in_threadpool(compare_stored, store, first, last, by_tier)
        return {
            "start": first.isoformat(),
            "end": last.isoformat(),
            "rows": [r.as_dict() for r in rows],
            "ok": sum(1 for r in rows if r.verdict == "ok"),
        }

    @app.get(
        "/api/v1/summary.csv",
        summary="The summary's groups as CSV (a spreadsheet's import)",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "One row a group"},
            400: {"description": "Unknown dimension, invalid time or range"},
        },
    )
    async def summary_as_csv(
        request: Request,
        start: str | None = Query(None, description="ISO 8601; default one hour before end"),
        end: str | None = Query(None, description="ISO 8601; default the end of the current minute"),
        group_by: str = Query("", description=f"comma-separated dimensions: {', '.join(DIMENSIONS)}"),
    ) -> PlainTextResponse:
        document = await summary(request, start, end, group_by)
        dimensions = [d for d in group_by.split(",") if d]
        return PlainTextResponse(
            summary_csv(document, dimensions),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="tokenpulse-summary.csv"'},
        )

    @app.get(
        "/api/v1/calls",
        summary="Single calls, latest, slowest or most expensive first, with their tool or agent span",
        responses={400: {"description": "Unknown order or filter, invalid time, range or page"}},
    )
    async def calls(
        request: Request,
        start: str | None = Query(None, description="ISO 8601; default one hour before end"),
        end: str | None = Query(None, description="ISO 8601; default now"),
        order: str = Query("latest", description=f"one of {', '.join(CALL_ORDERS)}"),
        limit: int = Query(50, description=f"calls per page, 1..{MAX_CALLS}"),
        offset: int = Query(0, description="the previous page's next_offset"),
    ) -> dict[str, Any]:
        end_time = _parse_time(end, datetime.now(UTC) + timedelta(seconds=1))
        start_time = _parse_time(start, end_time - timedelta(hours=1))
        # Any other query parameter filters on a dimension (e.g. ?route=/chat&status=error).
        reserved = ("start", "end", "order", "limit", "offset")
        filters = {k: v for k, v in request.query_params.items() if k not in reserved and v}
        if (tenant := request_tenant(request)) is not None:
            filters["tenant"] = tenant  # a key reads its own tenant's calls only
        try:
            query = CallsQuery(start_time, end_time, order, filters, limit, offset)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        page = await run_in_threadpool(list_calls, store, query)
        return {"start": start_time.isoformat(), "end": end_time.isoformat(), "order": order, **page}

    @app.get("/api/v1/alerts", summary="Alerts pending, firing and recently resolved")
    def list_alerts(
        request: Request, detector: str | None = None, state: str | None = None, severity: str | None = None
    ) -> dict[str, Any]:
        tenant = request_tenant(request)
        chosen = [
            a
            for a in list(alerts.alerts.values())  # a copy: the detector thread updates the states
            if visible_to(tenant, a.detector, dict(a.scope))
            and (detector is None or a.detector == detector)
            and (state is None or a.state == state)
            and (severity is None or a.severity == severity)
        ]
        chosen.sort(key=lambda a: (a.state != "firing", a.severity != "critical", a.active_at))
        return {"alerts": [views.annotate(a, alert_json(a)) for a in chosen]}

    @app.get(
        "/api/v1/alerts/{alert_id}",
        summary="One alert by id (current, else its last recorded event)",
        responses={404: {"description": "No such alert"}},
    )
    async def get_alert(request: Request, alert_id: str) -> dict[str, Any]:
        found = await run_in_threadpool(find_alert, alerts, store, alert_id, request_tenant(request), views)
        if found is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return found

    @app.get(
        "/api/v1/timeseries",
        summary="Key LLM figures per step: spend, caching, prompts, latency",
        responses={400: {"description": "Unknown dimension, invalid time, range or step"}},
    )
    async def timeseries(
        request: Request,
        start: str | None = Query(None, description="ISO 8601; default six hours before end"),
        end: str | None = Query(None, description="ISO 8601; default the end of the current minute"),
        step: int = Query(60, description="seconds per point, whole minutes"),
    ) -> dict[str, Any]:
        now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end_time = _parse_time(end, now)
        start_time = _parse_time(start, end_time - timedelta(hours=6))
        # Any other query parameter names a rollup dimension to filter on (e.g. ?service=checkout).
        filters = {k: v for k, v in request.query_params.items() if k not in ("start", "end", "step") and v}
        if (tenant := request_tenant(request)) is not None:
            filters["tenant"] = tenant  # a key reads its own tenant's data only
        try:
            query = SeriesQuery(start_time, end_time, timedelta(seconds=step), filters)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        points = await run_in_threadpool(series, store, query)
        # Said once for the range too: a chart's gaps and lower bounds are explained by this count.
        unpriced = sum(p["unpriced_calls"] for p in points)
        return {"start": start_time.isoformat(), "end": end_time.isoformat(), "step": step,
                "unpriced_calls": unpriced, "points": points}  # fmt: skip

    @app.get(
        "/api/v1/alert-events",
        summary="Alert transitions (the history), newest first",
        responses={400: {"description": "Invalid time"}},
    )
    async def alert_events(
        request: Request,
        start: str | None = Query(None, description="ISO 8601; default one day before end"),
        end: str | None = Query(None, description="ISO 8601; default now"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        end_time = _parse_time(end, datetime.now(UTC) + timedelta(seconds=1))
        start_time = _parse_time(start, end_time - timedelta(days=1))
        events = await run_in_threadpool(
            alert_history, store, start_time, end_time, limit, request_tenant(request)
        )
        return {"events": events}

    @app.get("/", include_in_schema=False)
    def overview() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    return app
