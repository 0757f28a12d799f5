"""Native blocks: byte for byte what ClickHouse itself writes for the same rows, read back as the JSON rows
they replace are read, and typed as the tables are."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.buffer.test_rows import durations, texts
from tests.factories import call_record, evaluation_record, tool_span_record
from tests.native_blocks import read_blocks
from tokenpulse.buffer.native import TABLES, encode_block
from tokenpulse.buffer.rows import (
    CALL_FIELDS,
    EVALUATION_FIELDS,
    TABLE_COLUMNS,
    TOOL_SPAN_FIELDS,
    encode_rows,
)
from tokenpulse.storage.store import Store, _literal

FIELDS = {"calls": CALL_FIELDS, "tool_spans": TOOL_SPAN_FIELDS, "evaluations": EVALUATION_FIELDS}
_files = itertools.count()


def clickhouse_native(store: Store, table: str, records: list[Any], tenant: str, directory: Path) -> bytes:
    """ClickHouse's own Native output of ``records``, read from their JSON rows in the block's types."""
    rows = directory / f"rows-{next(_files)}.jsonl"
    rows.write_bytes(encode_rows(records, FIELDS[table], tenant))
    out = directory / f"block-{next(_files)}.native"
    structure = _literal(TABLES[table].structure)
    store.client.command(
        f"INSERT INTO FUNCTION file({_literal(str(out))}, 'Native', {structure})"
        f" SELECT * FROM file({_literal(str(rows))}, 'JSONCompactEachRow', {structure})"
    )
    return out.read_bytes()


def read_back(
    store: Store, table: str, data: bytes, row_format: str, directory: Path
) -> list[tuple[str, ...]]:
    """Every row of ``data`` as ClickHouse reads it into ``table``'s types, each value as text."""
    path = directory / f"read-{next(_files)}"
    path.write_bytes(data)
    structure = TABLES[table].structure if row_format == "Native" else store._input_structure(table)
    columns = ", ".join(
        f"toString(CAST(`{c}`, {_literal(t)}))" for c, t in _table_types(store, table).items()
    )
    return [
        tuple(row)
        for row in store.rows(
            f"SELECT {columns} FROM file({_literal(str(path))}, '{row_format}', {_literal(structure)})"
        )
    ]


def _table_types(store: Store, table: str) -> dict[str, str]:
    types = dict(
        store.rows(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
            {"t": table},
        )
    )
    return {column: types[column] for column in TABLE_COLUMNS[table]}


AWKWARD = "naïve 'quoted' \\ \"route\" \n ✓ 😀"


def test_a_block_is_what_clickhouse_writes_for_the_same_rows(store: Store, tmp_path: Path) -> None:
    calls = [
        call_record(),
        call_record(
            route=AWKWARD, ttft_ms=None, extra={"team": "a", AWKWARD: "b"}, reported_cost_usd=Decimal("0.5")
        ),
        call_record(user="", session=AWKWARD, cost_usd=Decimal("123456.123456789012"), is_timeout=True),
        call_record(
            route=AWKWARD, reported_cost_usd=Decimal("0.000000000001"), escalated=True, price_known=False
        ),
    ]
    tools = [
        tool_span_record(),
        tool_span_record(name=AWKWARD, is_timeout=True),
        tool_span_record(kind="agent"),
    ]
    evaluations = [
        evaluation_record(),
        evaluation_record(score=None, passed=None, label=AWKWARD),
        evaluation_record(passed=False, score=0.25),
    ]
    for table, records in (("calls", calls), ("tool_spans", tools), ("evaluations", evaluations)):
        # What the tests' reader (tests/native_blocks.py) reads back is what was written.
        rows = read_blocks(encode_block(records, TABLES[table], "acme"))
        assert [row["trace_id"] for row in rows] == [record["trace_id"] for record in records]
        assert {row["tenant"] for row in rows} == {"acme"}
        for tenant in ("", "acme"):
            assert encode_block(records, TABLES[table], tenant) == clickhouse_native(
                store, table, records, tenant, tmp_path
            ), (table, tenant)


def test_a_column_of_many_distinct_values_takes_wider_indexes(store: Store, tmp_path: Path) -> None:
    # Up to 255 keys an index is one byte, up to 65,535 two, past that four ("" is always the first key).
    for distinct in (254, 255, 300):
        calls = [call_record(route=f"/r/{i}") for i in range(distinct)]
        assert encode_block(calls, TABLES["calls"], "") == clickhouse_native(
            store, "calls", calls, "", tmp_path
        )
    # ClickHouse writes so many rows as several blocks: read back rather than compared byte for byte.
    header = b"\x04name\x16LowCardinality(String)"
    for distinct, index_type in ((65_534, 1), (65_535, 2)):  # the narrower table, for speed
        tools = [tool_span_record(name=f"t{i}") for i in range(distinct)]
        block = encode_block(tools, TABLES["tool_spans"], "")
        flags = block.index(header) + len(header) + 8  # past the serialization's version
        assert block[flags] == index_type, distinct
        rows = encode_rows(tools, TOOL_SPAN_FIELDS)  # read in parallel, so in no set order
        assert read_back(store, "tool_spans", block, "Native", tmp_path) == sorted(
            read_back(store, "tool_spans", rows, "JSONCompactEachRow", tmp_path), key=lambda row: row[3]
        )


def test_no_records_is_no_block() -> None:
    assert encode_block([], TABLES["calls"], "acme") == b""


def test_blocks_concatenate_into_one_stream(store: Store, tmp_path: Path) -> None:
    first = [call_record(route="/a"), call_record(route="/b")]
    second = [call_record(route="/b", user="x"), call_record(route="/c")]
    stream = encode_block(first, TABLES["calls"], "t1") + encode_block(second, TABLES["calls"], "t2")
    rows = encode_rows(first, CALL_FIELDS, "t1") + encode_rows(second, CALL_FIELDS, "t2")
    assert read_back(store, "calls", stream, "Native", tmp_path) == read_back(
        store, "calls", rows, "JSONCompactEachRow", tmp_path
    )


def test_costs_are_cut_to_twelve_places_as_clickhouse_cuts_their_text(store: Store, tmp_path: Path) -> None:
    reported = [
        Decimal("0.0000123456789012345"),
        Decimal("1.9E-12"),
        Decimal("0." + "9" * 40),  # more digits than Decimal's default precision keeps
        Decimal("999999.999999999999"),
        Decimal(0),
    ]
    calls = [call_record(reported_cost_usd=value, cost_usd=value) for value in reported]
    native = read_back(store, "calls", encode_block(calls, TABLES["calls"], ""), "Native", tmp_path)
    text = read_back(store, "calls", encode_rows(calls, CALL_FIELDS), "JSONCompactEachRow", tmp_path)
    assert native == text
    cost = list(TABLE_COLUMNS["calls"]).index("cost_usd")
    assert [row[cost] for row in native] == [
        "0.000012345678",
        "0.000000000001",
        "0.999999999999",
        "999999.999999999999",
        "0",
    ]


# A block's type that is not its column's, and the column's type ClickHouse casts it to on insert.
CASTS = {
    ("Map(String, String)", "Map(LowCardinality(String), String)"),
    ("String", "Decimal(18, 12)"),
    ("Nullable(String)", "Nullable(Decimal(18, 12))"),
}


def test_the_declared_types_are_the_tables_or_cast_to_them(store: Store) -> None:
    for table, layout in TABLES.items():
        columns = _table_types(store, table)
        assert layout.names == tuple(columns)
        for column, declared in zip(layout.names, layout.types, strict=True):
            assert declared == columns[column] or (declared, columns[column]) in CASTS, (table, column)


# Costs under Decimal(18, 12)'s bound, which ClickHouse checks (the JSON encoding's own test does not).
storable_costs = st.decimals(0, 10**6 - 1, places=12, allow_nan=False, allow_infinity=False)
# Any call as normalization could make it: every kind of column with values of its every kind.
calls = st.fixed_dictionaries(
    {
        "route": texts, "user": texts, "request_model": texts,
        "extra": st.dictionaries(texts, texts, max_size=3),
        "cost_usd": storable_costs, "reported_cost_usd": st.none() | storable_costs,
        "ttft_ms": st.none() | durations, "duration_ms": durations, "input_tokens": st.integers(0, 2**63),
        "is_timeout": st.booleans(), "time_unix_nano": st.integers(10**18, 7_258_118_400 * 10**9 - 1),
    }
).map(lambda overrides: call_record(**overrides))  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(calls, min_size=1, max_size=6), tenant=texts)
def test_any_calls_read_back_as_their_json_rows_do(
    calls: list[Any], tenant: str, store: Store, tmp_path: Path
) -> None:
    native = encode_block(calls, TABLES["calls"], tenant)
    rows = encode_rows(calls, CALL_FIELDS, tenant)
    assert read_back(store, "calls", native, "Native", tmp_path) == read_back(
        store, "calls", rows, "JSONCompactEachRow", tmp_path
    )
