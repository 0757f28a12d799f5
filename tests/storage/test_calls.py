"""The calls API: one page of single calls, latest / slowest / most expensive first, filtered, paged,
scoped to the key's tenant, with the tool or agent span each call ran inside — and no prompt content."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tests.api_app import api_over
from tests.factories import BASE_TIME_NS, call_record, store_records, tool_span_record
from tokenpulse.api import create_api_app
from tokenpulse.auth import ApiKeys, RequireApiKey
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.detectors.state import AlertStates
from tokenpulse.storage.calls import COLUMNS
from tokenpulse.storage.writer import LogWriter

BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)
WINDOW = {"start": BASE.isoformat(), "end": (BASE + timedelta(hours=1)).isoformat()}
ACME_KEY = "acme-0123456789abcdef"
GLOBEX_KEY = "globex-0123456789abcdef"
SECOND = 10**9


def calls() -> list:
    # 12 calls a second apart: duration and cost vary so that each order is distinct from "latest"
    made = [
        call_record(time_unix_nano=BASE_TIME_NS + i * SECOND, duration_ms=100.0 + (i * 37 % 12) * 10,
                    cost_usd=Decimal(i * 5 % 12) / 1000, route="/chat" if i % 2 else "/search",
                    user=f"u{i % 3}", status="error" if i == 7 else "ok")
        for i in range(12)
    ]  # fmt: skip
    made.append(
        call_record(
            time_unix_nano=BASE_TIME_NS - 3 * 3600 * SECOND, duration_ms=3.5 * 3600 * 1000, route="/long"
        )
    )
    made.append(
        call_record(time_unix_nano=BASE_TIME_NS + 20 * SECOND, request_model="acme-private",
                    response_model="", cost_usd=Decimal(0), price_known=False, route="/private")
    )  # fmt: skip
    return made


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    """The API without keys, and the same API behind keys (one embedded store per process: the same)."""
    directory = tmp_path_factory.mktemp("calls")
    with api_over(directory, calls()) as (app, store):
        # a tool span and the call made inside it; and a call of another tenant
        tool = tool_span_record(name="lookup_order", time_unix_nano=BASE_TIME_NS + 30 * SECOND)
        inside = call_record(time_unix_nano=BASE_TIME_NS + 30 * SECOND, trace_id=tool["trace_id"],
                             parent_span_id=tool["span_id"], route="/agent")  # fmt: skip
        store_records(store, directory / "acme", [inside], [tool], tenant="acme")
        store_records(store, directory / "globex", [call_record(route="/globex-only")], tenant="globex")
        wal = WriteAheadLog(directory / "keyed-wal")
        keyed = create_api_app(store, wal, LogWriter(wal, store), AlertStates())
        keyed.add_middleware(RequireApiKey, keys=ApiKeys.of({ACME_KEY: "acme", GLOBEX_KEY: "globex"}))
        yield {"plain": TestClient(app), "keyed": TestClient(keyed)}
        wal.close()


@pytest.fixture
def client(clients: dict[str, TestClient]) -> TestClient:
    return clients["plain"]


@pytest.fixture
def keyed(clients: dict[str, TestClient]) -> TestClient:
    return clients["keyed"]


def page(client: TestClient, **params: object) -> dict:
    response = client.get("/api/v1/calls", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_each_order_sorts_the_calls_it_names(client: TestClient) -> None:
    latest = page(client, order="latest", limit=500)["calls"]
    ended = [c["ended_at"] for c in latest]
    assert ended == sorted(ended, reverse=True) and len(latest) == 16
    slowest = page(client, order="slowest")["calls"]
    assert [c["duration_ms"] for c in slowest] == sorted((c["duration_ms"] for c in latest), reverse=True)
    costliest = page(client, order="costliest", route="/chat")["calls"]
    costs = [Decimal(c["cost_usd"]) for c in costliest]
    assert costs == sorted(costs, reverse=True) and costs[0] == Decimal("0.011")


def test_pages_cover_the_range_once(client: TestClient) -> None:
    seen, offset = [], 0
    while offset is not None:
        body = page(client, order="slowest", limit=4, offset=offset)
        seen += [c["span_id"] for c in body["calls"]]
        offset = body["next_offset"]
    assert len(seen) == len(set(seen)) == 16


def test_filters_by_dimension_and_refuses_unknown_ones(client: TestClient) -> None:
    errors = page(client, status="error")["calls"]
    assert [(c["status"], c["route"]) for c in errors] == [("error", "/chat")]
    assert {c["user"] for c in page(client, user="u1", limit=500)["calls"]} == {"u1"}
    for bad in ({"order": "random"}, {"prompt": "x"}, {"limit": 0}, {"start": "yesterday"}):
        assert client.get("/api/v1/calls", params={**WINDOW, **bad}).status_code == 400, bad


def test_a_call_shows_its_tool_span_and_an_unpriced_one_an_unknown_cost(client: TestClient) -> None:
    (agent,) = page(client, route="/agent")["calls"]
    assert agent["parent"] == {"kind": "tool", "name": "lookup_order", "duration_ms": 800.0, "status": "ok"}
    (private,) = page(client, route="/private")["calls"]
    assert private["cost_usd"] is None and private["model"] == "acme-private"


def test_a_call_carries_only_stored_dimensions_and_figures(client: TestClient) -> None:
    (call, *_) = page(client)["calls"]
    assert set(call) == {*COLUMNS, "ended_at", "parent"} - {"parent_span_id", "price_known"}


def test_a_key_reads_only_its_tenants_calls(keyed: TestClient) -> None:
    acme = {"authorization": f"Bearer {ACME_KEY}"}
    assert [c["route"] for c in keyed.get("/api/v1/calls", params=WINDOW, headers=acme).json()["calls"]] == [
        "/agent"
    ]
    # a tenant filter in the query cannot widen the key's scope
    widened = keyed.get("/api/v1/calls", params={**WINDOW, "tenant": "globex"}, headers=acme).json()
    assert [c["route"] for c in widened["calls"]] == ["/agent"]
    assert keyed.get("/api/v1/calls", params=WINDOW).status_code == 401


def test_summary_has_totals_and_exports_csv(client: TestClient) -> None:
    body = client.get("/api/v1/summary", params={**WINDOW, "group_by": "route"}).json()
    assert body["totals"]["calls"] == sum(g["calls"] for g in body["groups"]) == 16
    assert body["totals"]["unpriced_calls"] == 1
    response = client.get("/api/v1/summary.csv", params={**WINDOW, "group_by": "route"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["route"]: int(r["calls"]) for r in rows} == {
        g["key"]["route"]: g["calls"] for g in body["groups"]
    }
    assert next(r for r in rows if r["route"] == "/private")["cost_usd"] == ""


def test_a_long_call_is_in_the_range_it_ended_in(client: TestClient) -> None:
    # started 3 hours before the range, ended inside it: listed by when it ended, as the summary counts it
    (long_call,) = page(client, route="/long")["calls"]
    assert long_call["ended_at"] == (BASE + timedelta(minutes=30)).isoformat()
    before = {"start": (BASE - timedelta(hours=4)).isoformat(), "end": BASE.isoformat(), "route": "/long"}
    assert client.get("/api/v1/calls", params=before).json()["calls"] == []
