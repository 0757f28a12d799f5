"""Local fake OpenAI organization Usage/Costs and Anthropic Admin usage/cost report servers.

They answer in the documented JSON shapes (see ``tokenpulse.reconcile.reports``): daily buckets, results
grouped by the ``group_by`` fields asked for (a field not asked for is null and its rows are summed, as the
real APIs do), pagination through ``has_more``/``next_page`` with ``page_size`` buckets a page, and the
admin key checked. What they report is a list of :class:`Billed` rows: what the provider counted and
charged, per day x model x project x tier.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

OPENAI_KEY = "sk-admin-test"
ANTHROPIC_KEY = "sk-ant-admin-test"


@dataclass(frozen=True)
class Billed:
    """What the provider counted and charged for one day x model x project x tier."""

    day: date
    provider: str  # "openai", "anthropic" (the others are served as a flat file)
    model: str
    project: str
    tier: str  # "standard", "flex", "priority", "batch"
    calls: int
    uncached_input: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    output: int
    input_cost: Decimal  # dollars for every input kind (uncached, cache reads and writes)
    output_cost: Decimal


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _day_of(value: str) -> date:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC).date()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date()


@dataclass
class FakeProviders:
    """Both providers' report APIs on one loopback server; ``requests`` records (path, query pairs)."""

    billed: list[Billed]
    page_size: int = 3  # buckets a page: a month takes several pages
    requests: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qsl(url.query)
                fake.requests.append((url.path, query))
                status, body = fake.answer(url.path, query, dict(self.headers))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- answers ------------------------------------------------------------------------------------

    def answer(self, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> tuple[int, Any]:
        params = dict(query)
        if path.startswith("/v1/organization/"):
            if headers.get("Authorization") != f"Bearer {OPENAI_KEY}":
                return 401, {"error": {"message": "Invalid admin key", "type": "invalid_request_error"}}
            start, end = _day_of(params["start_time"]), _day_of(params.get("end_time", "4102444800"))
            groups = [v for k, v in query if k == "group_by"]
            rows = [b for b in self.billed if b.provider == "openai" and start <= b.day < end]
            if path == "/v1/organization/usage/completions":
                return 200, self._page(start, end, params, lambda day: self._openai_usage(rows, day, groups))
            if path == "/v1/organization/costs":
                return 200, self._page(start, end, params, lambda day: self._openai_costs(rows, day, groups))
        if path.startswith("/v1/organizations/"):
            if headers.get("x-api-key") != ANTHROPIC_KEY or not headers.get("anthropic-version"):
                return 401, {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
            start, end = _day_of(params["starting_at"]), _day_of(params["ending_at"])
            groups = [v for k, v in query if k == "group_by[]"]
            rows = [b for b in self.billed if b.provider == "anthropic" and start <= b.day < end]
            if path == "/v1/organizations/usage_report/messages":
                return 200, self._page(start, end, params, lambda d: self._anthropic_usage(rows, d, groups))
            if path == "/v1/organizations/cost_report":
                return 200, self._page(start, end, params, lambda d: self._anthropic_costs(rows, d, groups))
        return 404, {"error": {"message": f"no route {path}"}}

    def _page(self, start: date, end: date, params: dict[str, str], results: Any) -> dict[str, Any]:
        days = list(_days(start, end))
        offset = int(params["page"].removeprefix("page_")) if "page" in params else 0
        chunk = days[offset : offset + self.page_size]
        more = offset + self.page_size < len(days)
        openai = "start_time" in params
        data = []
        for day in chunk:
            bucket: dict[str, Any]
            if openai:
                bucket = {"object": "bucket", "start_time": _epoch(day), "end_time": _epoch(day) + 86_400}
            else:
                bucket = {
                    "starting_at": f"{day.isoformat()}T00:00:00Z",
                    "ending_at": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
                }
            bucket["results"] = results(day)
            data.append(bucket)
        page = {
            "data": data,
            "has_more": more,
            "next_page": f"page_{offset + self.page_size}" if more else None,
        }
        return {"object": "page", **page} if openai else page

    @staticmethod
    def _grouped(rows: list[Billed], day: date, fields: dict[str, str], groups: list[str]) -> Iterator[Any]:
        """Rows of ``day`` summed per the asked group_by fields (``fields``: API field -> Billed attr)."""
        out: dict[tuple[Any, ...], list[Billed]] = {}
        for b in rows:
            if b.day == day:
                key = tuple(getattr(b, attr) if api in groups else None for api, attr in fields.items())
                out.setdefault(key, []).append(b)
        for key, members in out.items():
            yield dict(zip(fields, key, strict=True)), members

    def _openai_usage(self, rows: list[Billed], day: date, groups: list[str]) -> list[dict[str, Any]]:
        fields = {"model": "model", "project_id": "project", "service_tier": "tier", "batch": "tier"}
        results = []
        for key, members in self._grouped(rows, day, fields, groups):
            if "batch" in groups:
                key["batch"] = key["batch"] == "batch"
            if key.get("service_tier") is not None:
                # OpenAI names the standard tier "default"; batch requests carry batch: true instead.
                key["service_tier"] = {"standard": "default", "batch": None}.get(
                    key["service_tier"], key["service_tier"]
                )
            results.append(
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": sum(m.uncached_input + m.cache_read for m in members),
                    "output_tokens": sum(m.output for m in members),
                    "input_cached_tokens": sum(m.cache_read for m in members),
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "num_model_requests": sum(m.calls for m in members),
                    "user_id": None,
                    "api_key_id": None,
                    **key,
                }
            )
        return results

    def _openai_costs(self, rows: list[Billed], day: date, groups: list[str]) -> list[dict[str, Any]]:
        results = []
        # Line items are "<model>, <kind>": grouping by line_item is what splits the dollars by model.
        for key, members in self._grouped(rows, day, {"line_item": "model", "project_id": "project"}, groups):
            for kind, attr in (("input", "input_cost"), ("output", "output_cost")):
                amount = sum((getattr(m, attr) for m in members), Decimal(0))
                model = key["line_item"]
                results.append(
                    {
                        "object": "organization.costs.result",
                        "amount": {"value": float(amount), "currency": "usd"},
                        "line_item": None if model is None else f"{model}, {kind}",
                        "project_id": key["project_id"],
                    }
                )
        return results

    def _anthropic_usage(self, rows: list[Billed], day: date, groups: list[str]) -> list[dict[str, Any]]:
        fields = {"model": "model", "workspace_id": "project", "service_tier": "tier"}
        return [
            {
                "uncached_input_tokens": sum(m.uncached_input for m in members),
                "cache_creation": {
                    "ephemeral_1h_input_tokens": sum(m.cache_write_1h for m in members),
                    "ephemeral_5m_input_tokens": sum(m.cache_write_5m for m in members),
                },
                "cache_read_input_tokens": sum(m.cache_read for m in members),
                "output_tokens": sum(m.output for m in members),
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": None,
                "context_window": None,
                **key,
            }
            for key, members in self._grouped(rows, day, fields, groups)
        ]

    def _anthropic_costs(self, rows: list[Billed], day: date, groups: list[str]) -> list[dict[str, Any]]:
        # The cost report is grouped by workspace and description; each line names its model and tier.
        results = []
        for b in rows:
            if b.day != day:
                continue
            for kind, attr in (("input_tokens", "input_cost"), ("output_tokens", "output_cost")):
                cents = getattr(b, attr) * 100
                results.append(
                    {
                        "currency": "USD",
                        "amount": format(cents.normalize(), "f"),  # lowest currency units, a string
                        "workspace_id": b.project if "workspace_id" in groups else None,
                        "description": f"{b.model} Usage - {kind}" if "description" in groups else None,
                        "cost_type": "tokens",
                        "context_window": "0-200k",
                        "model": b.model,
                        "service_tier": b.tier,
                        "token_type": kind,
                    }
                )
        return results


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)
