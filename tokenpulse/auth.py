"""API keys: who may send spans and read the API, and which tenant (project) their data belongs to.

A key is presented as ``Authorization: Bearer <key>`` — what an OTLP exporter sends with
``OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <key>"``, over HTTP or as gRPC metadata. Each key
maps to a tenant, stored on every row it sends and scoping every API read it makes.

Keys are held only as SHA-256 digests and compared in constant time, every configured key every time,
so neither the key nor which key matched leaks through timing; they never appear in logs, reprs or API
answers. With no key configured, authentication is off — allowed only on a loopback address unless
explicitly permitted (``allow_unauthenticated``), so a daemon exposed to a network is never open by
accident.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

UNAUTHENTICATED = "missing or unknown API key (Authorization: Bearer <key>)"
# API paths open without a key: probes must work before anyone has one, and the overview page and its
# files hold no data (the page asks for a key when the API answers 401).
# The API's description (/docs, /openapi.json) is no tenant's data, and a browser sends no key.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
STATIC = "/static/"
RUNBOOKS = "/runbooks/"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKeys:
    """The configured keys, as (digest, tenant) pairs."""

    entries: tuple[tuple[bytes, str], ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, keys: Mapping[str, str]) -> ApiKeys:
        """From ``{key: tenant}``."""
        for key, tenant in keys.items():
            if len(key) < 16:
                raise ValueError(f"API keys must be at least 16 characters (tenant {tenant!r})")
            if not tenant:
                raise ValueError("every API key needs a tenant")
        return cls(tuple((_digest(key), tenant) for key, tenant in keys.items()))

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of the key in an ``Authorization: Bearer`` value, or None if it is not a key."""
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        digest = _digest(presented.strip())
        tenant = None
        for known, owner in self.entries:  # all of them, whichever matches
            if hmac.compare_digest(digest, known):
                tenant = owner
        return tenant


def parse_key_list(text: str) -> dict[str, str]:
    """``tenant:key,tenant:key`` (the ``TOKENPULSE_API_KEYS`` variable) as ``{key: tenant}``."""
    keys = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tenant, separator, key = item.partition(":")
        if not separator or not key:
            raise ValueError("TOKENPULSE_API_KEYS: expected tenant:key[,tenant:key...]")
        keys[key] = tenant
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: ApiKeys, allow_unauthenticated: bool) -> None:
    """Refuse to serve a network address without keys, unless explicitly allowed."""
    if not keys.enabled and not is_loopback(host) and not allow_unauthenticated:
        raise SystemExit(
            f"refusing to listen on {host} without API keys: anyone who reaches it could send and read "
            "data. Configure keys ([auth] keys in the config file or TOKENPULSE_API_KEYS), or set "
            "TOKENPULSE_ALLOW_UNAUTHENTICATED=1 if a proxy in front of tokenpulse authenticates."
        )


class RequireApiKey:
    """ASGI middleware for the API: every path but the probes (and /metrics, unless protected) needs a
    key; the key's tenant is put in ``scope["state"]["tenant"]`` for the handlers to scope their reads."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, protect_metrics: bool = False) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = OPEN_PATHS if protect_metrics else OPEN_PATHS | {"/metrics"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.keys.enabled
            or scope["path"] in self.open_paths
            or scope["path"].startswith(STATIC)
        ):
            await self.app(scope, receive, send)
            return
        tenant = self.keys.tenant_for(Request(scope).headers.get("authorization"))
        if tenant is None and scope["path"].startswith(RUNBOOKS):
            # Runbook links are clicked from Slack and PagerDuty, where no key travels: the runbook
            # opens, without the alert's context (scope and suspects are data; they need a key).
            await self.app({**scope, "query_string": b""}, receive, send)
            return
        if tenant is None:
            response = JSONResponse(
                {"detail": UNAUTHENTICATED},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        await self.app(scope, receive, send)


def request_tenant(request: Request) -> str | None:
    """The tenant an API request is scoped to, or None when authentication is off (all tenants)."""
    return getattr(request.state, "tenant", None)
