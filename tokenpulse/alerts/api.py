"""The alerting part of the HTTP API: runbook pages, incidents (with their alerts inside) and silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tokenpulse.alerts.contract import TENANT, LiveAlerts
from tokenpulse.alerts.history import find_alert, visible_to
from tokenpulse.alerts.incidents import RECENT, Incident
from tokenpulse.alerts.matchers import Matcher, parse_matchers
from tokenpulse.alerts.model import Clock, SystemClock
from tokenpulse.alerts.runbooks import RUNBOOKS, render, render_incident
from tokenpulse.alerts.store import AlertStore, Silence
from tokenpulse.alerts.views import AlertViews
from tokenpulse.auth import request_tenant
from tokenpulse.storage.store import Store

if TYPE_CHECKING:
    from tokenpulse.alerts.service import AlertService


class NewSilence(BaseModel):
    matchers: list[str] = Field(min_length=1, examples=[["detector=cost_spike", "service=checkout"]])
    duration_minutes: float | None = Field(None, gt=0, description="from starts_at; or give ends_at")
    starts_at: datetime | None = Field(None, description="default now")
    ends_at: datetime | None = None
    created_by: str = "api"
    comment: str = ""


def alerts_router(
    store: Store,
    states: LiveAlerts,
    alert_store: AlertStore,
    clock: Clock | None = None,
    service: AlertService | None = None,
) -> APIRouter:
    """``service``: the daemon's alert service, whose incidents are live (with the state each alert
    really has); without it, the incidents as last recorded in ``alert_store``."""
    router = APIRouter()
    clock = clock or SystemClock()
    views = service.views if service is not None and service.views is not None else AlertViews(states)

    def incidents(request: Request) -> list[dict[str, Any]]:
        if service is not None:
            found = service.incidents()
        else:
            since = clock.now() - RECENT
            documents = reversed(alert_store.load_incidents(since=since))
            found = [Incident.from_document(d).to_json() for d in documents]
        tenant = request_tenant(request)
        return [i for i in found if any(visible_to(tenant, a["detector"], a["scope"]) for a in i["alerts"])]

    def one_incident(request: Request, incident_id: str) -> dict[str, Any]:
        for incident in incidents(request):
            if incident["id"] == incident_id:
                return incident
        raise HTTPException(404, f"no incident {incident_id}")

    @router.get("/api/v1/incidents", summary="Incidents open and recently resolved, with their alerts inside")
    def list_incidents(request: Request, state: str | None = None) -> dict[str, Any]:
        return {"incidents": [i for i in incidents(request) if state is None or i["state"] == state]}

    @router.get(
        "/api/v1/incidents/{incident_id}",
        summary="One incident: title, severity, alerts, ranked cause, timeline",
        responses={404: {"description": "No such incident"}},
    )
    def get_incident(request: Request, incident_id: str) -> dict[str, Any]:
        return one_incident(request, incident_id)

    @router.get(
        "/incidents/{incident_id}",
        response_class=HTMLResponse,
        summary="An incident's page: its alerts, the most likely cause and how to roll it back",
        responses={404: {"description": "No such incident"}},
    )
    def incident_page(request: Request, incident_id: str) -> HTMLResponse:
        return HTMLResponse(render_incident(one_incident(request, incident_id)))

    @router.get("/runbooks", response_class=HTMLResponse, summary="Index of the runbooks")
    def runbook_index() -> HTMLResponse:
        items = "".join(f'<li><a href="runbooks/{name}">{name}</a></li>' for name in RUNBOOKS)
        return HTMLResponse(f"<!doctype html><title>Runbooks</title><h1>Runbooks</h1><ul>{items}</ul>")

    @router.get(
        "/runbooks/{detector}",
        response_class=HTMLResponse,
        summary="A detector's runbook",
        responses={
            307: {"description": "The alert belongs to another detector: its runbook"},
            404: {"description": "No such detector"},
        },
    )
    async def runbook(request: Request, detector: str, alert: str | None = None) -> Response:
        if detector not in RUNBOOKS:
            raise HTTPException(404, f"no runbook {detector!r}; known: {', '.join(RUNBOOKS)}")
        tenant = request_tenant(request)
        found = await run_in_threadpool(find_alert, states, store, alert, tenant, views) if alert else None
        if found is not None and found["detector"] != detector:
            # Another detector's alert: its context under this runbook would send on-call the wrong way.
            target = f"{request.url.path.rsplit('/', 1)[0]}/{found['detector']}?{request.url.query}"
            return RedirectResponse(target, status_code=307)
        incident_id = found.get("incident") if found else None
        incident = service.describe(incident_id) if service is not None and incident_id else None
        return HTMLResponse(render(detector, found, alert, incident or None))

    @router.get("/api/v1/silences", summary="Silences, active and expired")
    def list_silences(request: Request, state: str | None = None) -> dict[str, Any]:
        now = clock.now()
        chosen = [s.to_json(now) for s in _own_silences(request)]
        return {"silences": [s for s in chosen if state is None or s["state"] == state]}

    @router.post(
        "/api/v1/silences",
        status_code=201,
        summary="Mute alerts matching all matchers until ends_at",
        responses={422: {"description": "Invalid matchers or times"}},
    )
    def add_silence(request: Request, body: NewSilence) -> dict[str, Any]:
        starts_at = _utc(body.starts_at) if body.starts_at else clock.now()
        if body.ends_at is not None:
            ends_at = _utc(body.ends_at)
        elif body.duration_minutes is not None:
            try:
                ends_at = starts_at + timedelta(minutes=body.duration_minutes)
            except OverflowError:
                raise HTTPException(422, "the silence would end after the year 9999") from None
        else:
            raise HTTPException(422, "give duration_minutes or ends_at")
        try:
            matchers = _for_tenant(parse_matchers(body.matchers), request_tenant(request))
            silence = alert_store.add_silence(matchers, starts_at, ends_at, body.created_by, body.comment)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        return silence.to_json(clock.now())

    @router.get(
        "/api/v1/silences/{silence_id}",
        summary="One silence",
        responses={404: {"description": "No such silence"}},
    )
    def get_silence(request: Request, silence_id: str) -> dict[str, Any]:
        for silence in _own_silences(request):
            if silence.id == silence_id:
                return silence.to_json(clock.now())
        raise HTTPException(404, f"no silence {silence_id}")

    @router.delete(
        "/api/v1/silences/{silence_id}",
        summary="Expire a silence now",
        responses={404: {"description": "No such silence"}},
    )
    def expire_silence(request: Request, silence_id: str) -> dict[str, Any]:
        get_silence(request, silence_id)  # 404 unless it is the key's tenant's
        alert_store.expire_silence(silence_id, clock.now())
        return get_silence(request, silence_id)

    def _own_silences(request: Request) -> list[Silence]:
        tenant = request_tenant(request)
        return [s for s in alert_store.silences() if tenant is None or _tenant_matcher(tenant) in s.matchers]

    return router


def _tenant_matcher(tenant: str) -> Matcher:
    return Matcher(TENANT, "=", tenant)


def _for_tenant(matchers: tuple[Matcher, ...], tenant: str | None) -> tuple[Matcher, ...]:
    """A key's silence mutes its own tenant's alerts only: ``tenant=<its tenant>`` is added to the
    matchers, and a matcher on another tenant is refused."""
    if tenant is None:
        return matchers
    own = _tenant_matcher(tenant)
    if any(m.name == TENANT and m != own for m in matchers):
        raise ValueError(f"a silence made with this key can only match {own}")
    return matchers if own in matchers else (*matchers, own)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
