"""Where chDB's insert time goes, per stored row, on the real schema (``Store.insert_rows`` and variants).

    python bench/insert.py FILE [--rows 20000] [--batch 10000] [--rounds 3]

FILE is OTLP JSON lines (``tokenpulse simulate --output FILE``); its first LLM calls are normalized and
priced as `tokenpulse ingest` would, then inserted into a fresh embedded store (all migrations) in
batches of ``--batch`` rows, once per variant and round (variants alternate within a round, each batch
with its own deduplication token). Variants isolate one cost each:

- ``store``: ``Store.insert_rows`` as the writer calls it (Native blocks, as the write-ahead log holds
  them, read by ``file()``; the deduplication token, the rollup view ``calls_1m_mv``);
- ``store-json``: the same of JSONCompactEachRow rows, as logs of older versions hold them (read with
  LowCardinality columns parsed as String);
- ``store-no-view``: ``store`` into a copy of ``calls`` without the view (the view's share is the
  difference);
- ``store-null``: ``store`` into a ``Null`` table of the same columns: reading and conversion only;
- ``raw`` / ``raw-null``: the insert before this change (``raw_insert``, every column parsed as its
  table type), into ``calls`` and into the ``Null`` table;
- ``raw-no-token``: ``raw`` without the deduplication token and its settings.

Reported per variant: microseconds of the process's CPU (chDB runs in it, all its threads count) and of
wall clock per row, the median over rounds. CPU is the figure to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokenpulse.buffer import native
from tokenpulse.buffer.rows import CALL_FIELDS, TABLE_COLUMNS, encode_rows
from tokenpulse.buffer.wal import JSON_ROWS, NATIVE
from tokenpulse.collector.file_ingest import normalize_line
from tokenpulse.collector.limits import DEFAULT_LIMITS
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pricing import Pricer
from tokenpulse.storage.store import Store


def read_calls(path: Path, rows: int) -> list[dict]:
    """The first ``rows`` calls of ``path``, normalized and priced."""
    config, pricer = NormalizeConfig(), Pricer()
    calls: list = []
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                calls += normalize_line(line, config, pricer, DEFAULT_LIMITS).calls
            if len(calls) >= rows:
                break
    return calls[:rows]


def batches_of(calls: list[dict], batch: int, serial: int, row_format: str = JSON_ROWS) -> list[bytes]:
    """``calls`` encoded in ``row_format`` as the write-ahead log holds them, in batches of ``batch``,
    their span ids marked with ``serial``: identical blocks would be dropped by the tables'
    deduplication window."""
    marked = [{**call, "span_id": f"{serial:04x}{call['span_id'][4:]}"} for call in calls]
    chunks = [marked[i : i + batch] for i in range(0, len(marked), batch)]
    if row_format == NATIVE:
        return [native.encode_block(chunk, native.TABLES["calls"]) for chunk in chunks]
    return [encode_rows(chunk, CALL_FIELDS) for chunk in chunks]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--rows", type=int, default=20_000, help="rows inserted per variant and round")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per insert")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    calls = read_calls(args.file, args.rows)
    rows = len(calls)
    with tempfile.TemporaryDirectory(prefix="tokenpulse-bench-insert-") as directory:
        store = Store.open(Path(directory))
        store.migrate()
        store.client.command("CREATE TABLE calls_no_view AS calls")
        store.client.command("CREATE TABLE calls_null AS calls ENGINE = Null")
        variants = _variants(store)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        serial = 0
        for _ in range(args.rounds):
            for name, (row_format, insert) in variants.items():
                serial += 1
                batches = batches_of(calls, args.batch, serial, row_format)
                cpu, wall = time.process_time(), time.perf_counter()
                for number, data in enumerate(batches):
                    insert(data, f"bench-{serial}-{number}")
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                results[name].append((cpu / rows * 1e6, wall / rows * 1e6))
        stored, rolled = store.rows("SELECT count(), (SELECT sum(calls) FROM calls_1m) FROM calls")[0]
        store.close()
    print(f"{rows} calls a variant and round, in batches of {args.batch} rows")
    for name, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"{name:>14}: {cpu:7.1f} us CPU a row   {wall:7.1f} us wall a row")
    expected = rows * args.rounds * 4  # the store, store-json, raw and raw-no-token variants write to calls
    if stored != expected or rolled != expected:
        print(f"calls holds {stored} rows, its rollup {rolled}, expected {expected}")
        return 1
    return 0


def _variants(store: Store) -> dict[str, tuple[str, Callable[[bytes, str], None]]]:
    """Per variant: the format of its rows and its insert."""
    columns = TABLE_COLUMNS["calls"]
    for copy in ("calls_no_view", "calls_null"):
        # Store.insert_rows looks a table's columns and block layout up here (bench only).
        TABLE_COLUMNS[copy] = columns
        native.TABLES[copy] = native.TABLES["calls"]

    def store_insert(table: str, row_format: str = NATIVE) -> tuple[str, Callable[[bytes, str], None]]:
        return row_format, lambda data, token: store.insert_rows(table, data, token, row_format)

    def raw(table: str, token: bool) -> Callable[[bytes, str], None]:
        def insert(data: bytes, dedup_token: str) -> None:
            settings: dict[str, object] = {
                "input_format_json_compact_allow_variable_number_of_columns": 1,
                "async_insert": 0,
            }
            if token:
                settings |= {
                    "insert_deduplication_token": dedup_token,
                    "deduplicate_blocks_in_dependent_materialized_views": 1,
                }
            store.client.raw_insert(table, columns, data, fmt="JSONCompactEachRow", settings=settings)

        return insert

    return {
        "store": store_insert("calls"),
        "store-json": store_insert("calls", JSON_ROWS),
        "store-no-view": store_insert("calls_no_view"),
        "store-null": store_insert("calls_null"),
        "raw": (JSON_ROWS, raw("calls", token=True)),
        "raw-no-token": (JSON_ROWS, raw("calls", token=False)),
        "raw-null": (JSON_ROWS, raw("calls_null", token=False)),
    }


if __name__ == "__main__":
    raise SystemExit(main())
