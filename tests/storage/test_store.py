"""Store.insert_rows: what the embedded insert path stores, against ClickHouse's own parsing of the rows."""

from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import call_record, evaluation_record, tool_span_record
from tokenpulse.buffer.rows import (
    CALL_FIELDS,
    EVALUATION_FIELDS,
    TABLE_COLUMNS,
    TOOL_SPAN_FIELDS,
    encode_rows,
)
from tokenpulse.storage.store import Store, _without_low_cardinality

AWKWARD = "a 'quoted' \"text\" with \\ backslash, tab\t, newline\n and ünïcödé ✓"


@pytest.mark.parametrize(
    ("column_type", "parsed_as"),
    [
        ("LowCardinality(String)", "String"),
        ("Map(LowCardinality(String), String)", "Map(String, String)"),
        ("LowCardinality(Nullable(String))", "Nullable(String)"),
        ("Nullable(Decimal(18, 12))", "Nullable(Decimal(18, 12))"),
        ("DateTime64(9, 'UTC')", "DateTime64(9, 'UTC')"),
    ],
)
def test_low_cardinality_columns_are_parsed_as_their_inner_type(column_type: str, parsed_as: str) -> None:
    assert _without_low_cardinality(column_type) == parsed_as


def test_insert_stores_what_the_tables_own_parsing_stores(store: Store) -> None:
    """Rows read through ``file()`` with LowCardinality columns as String are the rows a plain insert
    of the same bytes stores, value for value, in every table."""
    awkward_call = call_record(
        service=AWKWARD,
        route="/ünï",
        user=AWKWARD,
        ttft_ms=None,
        extra={"k'ey": AWKWARD, "b": ""},
        reported_cost_usd=Decimal("0.0000000000019"),  # past 12 places: truncated, as from text
        cost_usd=Decimal("123.456789012345"),
        service_tier="flex",
        is_timeout=True,
        status="error",
        error_type="timeout",
    )
    awkward_evaluation = evaluation_record(score=None, passed=None, label=AWKWARD)
    batches = {
        "calls": encode_rows([call_record(), awkward_call], CALL_FIELDS, "tenant 'a'"),
        "tool_spans": encode_rows([tool_span_record(), tool_span_record(name=AWKWARD)], TOOL_SPAN_FIELDS),
        "evaluations": encode_rows([evaluation_record(), awkward_evaluation], EVALUATION_FIELDS),
    }
    for table, rows in batches.items():
        store.client.command(f"CREATE TABLE reference_{table} AS {table}")
        store.client.raw_insert(f"reference_{table}", TABLE_COLUMNS[table], rows, fmt="JSONCompactEachRow")
        store.insert_rows(table, rows, f"token-{table}")
        assert store.rows(f"SELECT count() FROM {table}") == [(2,)]
        for left, right in ((table, f"reference_{table}"), (f"reference_{table}", table)):
            assert store.rows(f"SELECT * FROM {left} EXCEPT SELECT * FROM {right}") == [], table
    awkward = store.rows("SELECT service, extra, reported_cost_usd, tenant FROM calls WHERE user != 'u1'")
    assert awkward == [(AWKWARD, {"k'ey": AWKWARD, "b": ""}, Decimal("0.000000000001"), "tenant 'a'")]


def test_a_retried_insert_is_a_no_op_in_the_table_and_its_rollup(store: Store) -> None:
    rows = encode_rows([call_record(), call_record()], CALL_FIELDS)
    for _ in range(2):
        store.insert_rows("calls", rows, "the-same-batch")
    assert store.rows("SELECT count(), (SELECT sum(calls) FROM calls_1m) FROM calls") == [(2, 2)]
    store.insert_rows("calls", rows, "another-batch")  # the same rows under another token are new
    assert store.rows("SELECT count(), (SELECT sum(calls) FROM calls_1m) FROM calls") == [(4, 4)]


def test_a_span_repeated_within_a_batch_is_kept_as_one_repeated_across_batches(store: Store) -> None:
    """Inserts do not merge a block (``optimize_on_insert`` off): a span sent twice in one batch is, like
    one sent in two batches, one call to readers of ``calls FINAL`` and two calls in the rollup, which
    counts what was received."""
    span = call_record()
    store.insert_rows("calls", encode_rows([span, span], CALL_FIELDS), "one-batch")
    store.insert_rows("calls", encode_rows([span], CALL_FIELDS), "next-batch")
    final = "SELECT count(), (SELECT sum(calls) FROM calls_1m) FROM calls FINAL"
    assert store.rows(final) == [(1, 3)]


def test_an_insert_leaves_no_file_and_a_killed_ones_file_goes_at_the_next_open(tmp_path: Path) -> None:
    opened = Store.open(tmp_path)
    opened.migrate()
    opened.insert_rows("calls", encode_rows([call_record()], CALL_FIELDS), "one")
    assert opened.spool is not None and list(opened.spool.iterdir()) == []
    opened.close()
    leftover = tmp_path / "inserts" / "insert-killed.jsonl"  # as a SIGKILL mid-insert leaves it
    leftover.write_bytes(b"[]\n")
    Store.open(tmp_path).close()
    assert not leftover.exists()


def test_the_embedded_engine_reads_its_own_memory_not_its_cgroups(store: Store) -> None:
    """The container's cgroup holds the application and whatever else runs beside it (and, in cgroup v1,
    the page cache): counted as the engine's own memory, it made the engine purge its allocator at top
    priority every 50 ms once the container was busy."""
    setting = "SELECT value FROM system.server_settings WHERE name = 'memory_worker_use_cgroup'"
    assert store.rows(setting) == [("0",)]
