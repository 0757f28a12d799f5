"""Limits: spans per request, attributes per span, distinct values per dimension — unit and end to end."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.daemon import Daemon
from tests.factories import call_record
from tests.otlp_builders import export_request, llm_span
from tests.test_e2e_backpressure import grpc_export
from tests.test_e2e_bad_input import wait_stored
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.limits import (
    OTHER,
    CardinalityCap,
    Limits,
    TooManySpans,
    check_span_count,
    truncate_and_collect,
    truncate_long_values,
)
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline
from tokenpulse.collector.pricing import Pricer

PROTOBUF = {"Content-Type": "application/x-protobuf"}


class Clock:
    def __init__(self) -> None:
        self.now = 7200.0

    def __call__(self) -> float:
        return self.now


def test_values_over_the_cap_become_other_until_the_window_turns() -> None:
    clock = Clock()
    cap = CardinalityCap(limit=2, window_seconds=3600, clock=clock)
    records = [call_record(route=f"/r{i}", service="checkout") for i in range(4)] + [call_record(route="")]
    cap.apply(records, ("route", "service"))
    assert [r["route"] for r in records] == ["/r0", "/r1", OTHER, OTHER, ""]
    assert {r["service"] for r in records} == {"checkout"}
    again = [call_record(route="/r1"), call_record(route="/r9")]
    cap.apply(again, ("route",))
    assert [r["route"] for r in again] == ["/r1", OTHER]  # admitted values keep their names
    clock.now += 3600  # a new hour: new values are admitted again
    later = [call_record(route="/r9")]
    cap.apply(later, ("route",))
    assert later[0]["route"] == "/r9"


def test_each_tenant_has_its_own_allowance_of_values() -> None:
    cap = CardinalityCap(limit=2, clock=Clock())
    flood = [call_record(route=f"/acme/{i}") for i in range(5)]
    cap.apply(flood, ("route",), tenant="acme")
    calm = [call_record(route="/checkout"), call_record(route="/search")]
    cap.apply(calm, ("route",), tenant="globex")
    assert [r["route"] for r in flood].count(OTHER) == 3
    assert [r["route"] for r in calm] == ["/checkout", "/search"]  # acme's flood took none of globex's


def test_long_values_are_cut_to_the_limit_and_counted() -> None:
    records = [
        call_record(route="r" * 300, user="u" * 256, extra={"team": "t" * 1000, "tier": "gold"}),
        call_record(route="/short"),
    ]
    assert truncate_long_values(records, ("route", "user"), 256) == 2
    assert records[0]["route"] == "r" * 256 and records[0]["user"] == "u" * 256  # at the limit: kept
    assert records[0]["extra"] == {"team": "t" * 256, "tier": "gold"}
    assert records[1]["route"] == "/short"


@pytest.mark.parametrize("long", [False, True])
def test_values_are_collected_after_they_are_cut(long: bool) -> None:
    """truncate_and_collect does what truncate_long_values does, and gives each field's distinct values
    as they are stored: cut where a value was too long."""
    route = "r" * (300 if long else 256)
    records = [
        call_record(route=route, user="u1", extra={"team": "t" * 300}),
        call_record(route="/short", user="u1"),
        call_record(route=route, user="u2"),
    ]
    twins = [dict(record, extra=dict(record["extra"])) for record in records]
    cut, found = truncate_and_collect(records, ("route", "user"), 256)  # type: ignore[arg-type]
    assert cut == truncate_long_values(twins, ("route", "user"), 256) == (3 if long else 1)
    assert records == twins
    assert found == {"route": {"r" * 256, "/short"}, "user": {"u1", "u2"}}


def test_span_count_is_checked_before_decoding_any_span() -> None:
    request = export_request(*(llm_span() for _ in range(5)))
    assert check_span_count(request, 5) == 5
    with pytest.raises(TooManySpans) as raised:
        check_span_count(request, 4)
    assert raised.value.status == 413


@pytest.mark.parametrize(
    "field",
    ["max_spans_per_request", "max_attributes_per_span", "max_attribute_length", "max_dimension_values"],
)
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_a_span_with_too_many_attributes_is_rejected_alone(tmp_path: Path) -> None:
    pipeline = Pipeline(
        WriteAheadLog(tmp_path), NormalizeConfig(), Pricer(), Limits(max_attributes_per_span=20)
    )
    crowded = llm_span(**{f"app.tag.{i}": i for i in range(20)})
    result = pipeline.ingest(export_request(llm_span(), crowded), "test")
    assert (result.calls, result.rejected) == (1, 1)
    assert "over the limit of 20" in result.message


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    env = {
        "TOKENPULSE_MAX_SPANS_PER_REQUEST": "10",
        "TOKENPULSE_MAX_ATTRIBUTES_PER_SPAN": "30",
        "TOKENPULSE_MAX_ATTRIBUTE_LENGTH": "40",
        "TOKENPULSE_MAX_DIMENSION_VALUES": "3",
        "TOKENPULSE_MAX_DECOMPRESSED_BYTES": "20000",
    }
    running = Daemon(tmp_path_factory.mktemp("limited") / "data", env=env).start()
    yield running
    running.kill()


def test_too_many_spans_is_413_over_http_and_invalid_argument_over_grpc(limited: Daemon) -> None:
    body = export_request(*(llm_span() for _ in range(11))).SerializeToString()
    response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert response.status_code == 413
    assert "more than the limit of 10" in Status.FromString(response.content).message
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(limited, body)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_requests_rejected_total{reason="TooManySpans",transport="http"} 1.0' in metrics
    assert 'tokenpulse_requests_rejected_total{reason="TooManySpans",transport="grpc"} 1.0' in metrics


def test_runaway_route_cardinality_is_folded_into_other(limited: Daemon) -> None:
    for batch in range(3):
        spans = [llm_span(**{"tokenpulse.route": f"/item/{batch * 10 + i}"}) for i in range(10)]
        body = export_request(*spans, service="runaway").SerializeToString()
        response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
        assert response.status_code == 200
    wait_stored(limited, "runaway", 30)
    params = {"service": "runaway", "group_by": "route", "start": "2001-01-01T00:00:00Z"}
    groups = httpx.get(f"{limited.api}/api/v1/summary", params=params, timeout=30).json()["groups"]
    routes = {group["key"]["route"]: group["calls"] for group in groups}
    assert routes == {"/item/0": 1, "/item/1": 1, "/item/2": 1, OTHER: 27}
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_dimension_values_capped_total{dimension="route"}' in metrics


def test_long_values_are_stored_cut_and_the_client_is_warned(limited: Daemon) -> None:
    long_user = "user-" + "x" * 100
    prompt = "a prompt tokenpulse never reads, " * 2000  # not stored, so not limited: the call is kept
    span = llm_span(**{"user.id": long_user, "gen_ai.prompt.0.content": prompt})
    body = export_request(span, service="verbose").SerializeToString()
    response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    # OTLP's warning form: nothing rejected, a message saying what was done.
    assert partial.rejected_spans == 0 and "1 attribute value(s) truncated" in partial.error_message
    wait_stored(limited, "verbose", 1)
    params = {"service": "verbose", "group_by": "user", "start": "2001-01-01T00:00:00Z"}
    groups = httpx.get(f"{limited.api}/api/v1/summary", params=params, timeout=30).json()["groups"]
    assert [group["key"]["user"] for group in groups] == [long_user[:40]]
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_attribute_values_truncated_total{field="user"} 1.0' in metrics


def test_crowded_spans_are_rejected_and_counted(limited: Daemon) -> None:
    crowded = llm_span(**{f"app.tag.{i}": i for i in range(30)})
    body = export_request(llm_span(), crowded).SerializeToString()
    response = httpx.post(f"{limited.otlp_http}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1
    metrics = httpx.get(f"{limited.api}/metrics", timeout=10).text
    assert 'tokenpulse_spans_rejected_total{reason="too_many_attributes"} 1.0' in metrics


def test_a_body_over_the_decompressed_limit_is_413_and_resource_exhausted_over_grpc(limited: Daemon) -> None:
    big = export_request(llm_span(**{"app.note": "x" * 30_000})).SerializeToString()
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    response = httpx.post(
        f"{limited.otlp_http}/v1/traces", content=gzip.compress(big), headers=headers, timeout=30
    )
    assert response.status_code == 413
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(limited, big)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Without RetryInfo an OTLP exporter does not retry a request that can never fit.
    assert "grpc-status-details-bin" not in dict(raised.value.trailing_metadata() or ())
