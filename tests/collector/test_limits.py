"""Limits: spans per request, attributes per span, distinct values per dimension, long values (unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import call_record
from tests.otlp_builders import export_request, llm_span
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
