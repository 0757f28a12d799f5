"""Row encoding: one JSON array a line, exactly as the json module writes it (the log's frames of an
older version and of this one are one format), with the tenant in its column."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.factories import call_record, evaluation_record, tool_span_record
from tokenpulse.buffer.rows import (
    AFTER_TENANT,
    CALL_FIELDS,
    EVALUATION_FIELDS,
    TABLE_COLUMNS,
    TOOL_SPAN_FIELDS,
    encode_rows,
)

_reference_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def reference(records: list[dict[str, Any]], fields: tuple[str, ...], tenant: str) -> bytes:
    """The encoding as the json module made it before rows were encoded in C."""
    lines = []
    for record in records:
        values = [record[f] for f in fields if f not in AFTER_TENANT]
        values += [tenant, *(record[f] for f in fields if f in AFTER_TENANT)]
        values[0] = f"{values[0] // 1_000_000_000}.{values[0] % 1_000_000_000:09d}"
        lines.append(_reference_dumps(values))
    return ("\n".join(lines) + "\n").encode() if lines else b""


texts = st.text(max_size=12).filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t))
costs = st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False)
# Floats as normalization makes them: finite, non-negative, mostly milliseconds.
durations = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(
    route=texts,
    user=texts,
    cost=costs,
    reported=st.none() | costs,
    ttft=st.none() | durations,
    duration=durations,
    extra=st.dictionaries(texts, texts, max_size=3),
    tenant=texts,
    time=st.integers(0, 2**63 - 1),
)
def test_calls_are_encoded_as_the_json_module_encodes_them(
    route: str, user: str, cost: Decimal, reported: Decimal | None, ttft: float | None, duration: float,
    extra: dict[str, str], tenant: str, time: int,
) -> None:  # fmt: skip
    record = call_record(
        route=route, user=user, cost_usd=cost, reported_cost_usd=reported, ttft_ms=ttft,
        duration_ms=duration, extra=extra, time_unix_nano=time,
    )  # fmt: skip
    encoded = encode_rows([record, record], CALL_FIELDS, tenant)
    expected = reference([record, record], CALL_FIELDS, tenant)
    # Byte for byte but for a float's spelling (1e+16 / 1e16): the same values either way.
    assert [json.loads(line) for line in encoded.splitlines()] == [
        json.loads(line) for line in expected.splitlines()
    ]
    if not any(isinstance(v, float) and (v >= 1e16 or 0 < v < 1e-4) for v in (ttft, duration)):
        assert encoded == expected


def test_every_table_has_one_value_a_column_and_nothing_encodes_to_nothing() -> None:
    for record, fields, table in (
        (call_record(), CALL_FIELDS, "calls"),
        (tool_span_record(), TOOL_SPAN_FIELDS, "tool_spans"),
        (evaluation_record(), EVALUATION_FIELDS, "evaluations"),
    ):
        (row,) = [json.loads(line) for line in encode_rows([record], fields, "acme").splitlines()]
        assert len(row) == len(TABLE_COLUMNS[table]) and row[TABLE_COLUMNS[table].index("tenant")] == "acme"
        assert encode_rows([record], fields, "acme") == reference([record], fields, "acme")
    assert encode_rows([], CALL_FIELDS) == b""
