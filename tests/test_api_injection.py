"""SQL injection through every API filter: values are bound as exact literals, identifiers are whitelisted.

Each classic payload is *also stored* as a route, a user and a service of one call, so a filter on it
must find exactly that call: a value that was spliced into SQL (or mangled by escaping) would find
nothing, everything or fail. Afterwards every table is intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.api_app import api_over
from tests.factories import BASE_TIME_NS, call_record
from tokenpulse.storage.store import Store

PAYLOADS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "x'); DROP TABLE calls; --",
    "\\' OR 1=1 --",
    "\\",
    "a\\'b",
    '" OR ""="',
    "1; SELECT * FROM system.tables",
    "' UNION ALL SELECT name FROM system.tables --",
    "{f0:String}",
    "%(f0)s",
    "$f0$",
    "é漢字🙂",
    "nul\x00byte",
    "line\nbreak\ttab\r",
    "'" * 50,
]
BASELINE_CALLS = 5  # ordinary calls stored besides the payload calls
TABLES = ("calls", "calls_1m", "tool_spans", "alert_events")


@dataclass
class Api:
    client: TestClient
    store: Store
    start: str
    end: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    calls = [call_record() for _ in range(BASELINE_CALLS)]
    calls += [call_record(route=p, user=p, service=p, prompt_version=p) for p in PAYLOADS]
    start = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC) - timedelta(hours=1)
    with api_over(tmp_path_factory.mktemp("injection"), calls) as (app, store), TestClient(app) as client:
        yield Api(client, store, start.isoformat(), (start + timedelta(hours=3)).isoformat())


def summary(api: Api, **params: str) -> list[dict]:
    response = api.client.get("/api/v1/summary", params={"start": api.start, "end": api.end, **params})
    assert response.status_code == 200, response.text
    return response.json()["groups"]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("dimension", ["route", "user", "service", "prompt_version"])
@pytest.mark.parametrize("source", ["rollup", "raw"])
def test_a_payload_filter_finds_exactly_the_call_that_carries_it(
    api: Api, payload: str, dimension: str, source: str
) -> None:
    # Whole-minute ranges read the per-minute rollup (user is not in it), others the raw table.
    start = api.start if source == "rollup" else api.start.replace("+00:00", ".5+00:00")
    groups = summary(api, start=start, **{dimension: payload})
    assert groups[0]["calls"] == 1
    (group,) = summary(api, start=start, group_by=dimension, **{dimension: payload})
    assert group["key"] == {dimension: payload} and group["calls"] == 1


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_that_matches_nothing_finds_nothing(api: Api, payload: str) -> None:
    assert summary(api, route=payload, service="checkout")[0]["calls"] == 0
    assert summary(api, model=payload)[0]["calls"] == 0


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_as_identifiers_or_times_are_refused_with_400(api: Api, payload: str) -> None:
    for params in (
        {"group_by": payload},
        {"group_by": f"route,{payload}"},
        {payload: "x"},
        {"start": payload},
        {"end": payload},
    ):
        response = api.client.get("/api/v1/summary", params=params)
        assert response.status_code == 400, (params, response.text)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_alert_filters_treat_payloads_as_plain_values(api: Api, payload: str) -> None:
    for name in ("detector", "state", "severity"):
        response = api.client.get("/api/v1/alerts", params={name: payload})
        assert response.status_code == 200 and response.json()["alerts"] == []
    assert api.client.get(f"/api/v1/alerts/{quote(payload, safe='')}").status_code == 404


def test_the_tables_are_intact_after_every_payload(api: Api) -> None:
    # Runs last in this module (pytest keeps file order): every payload above has been sent.
    present = {
        row[0] for row in api.store.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }
    assert set(TABLES) <= present
    stored = BASELINE_CALLS + len(PAYLOADS)
    assert api.store.rows("SELECT count() FROM calls")[0][0] == stored
    assert api.store.rows("SELECT sum(calls) FROM calls_1m")[0][0] == stored
    assert summary(api)[0]["calls"] == stored


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("1900-01-01T00:00:00+14:00", "2300-01-01T00:00:00-12:00"),
        ("1970-01-01T00:00:00.000001", "1970-01-01T00:00:00.000002"),
    ],
)
def test_times_at_the_edges_of_storage_are_answered_or_refused_not_5xx(
    api: Api, start: str, end: str
) -> None:
    response = api.client.get("/api/v1/summary", params={"start": start, "end": end})
    assert response.status_code in (200, 400), response.text
