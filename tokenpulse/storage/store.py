"""The only module that talks to ClickHouse (embedded chDB or a server), through clickhouse-connect."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.query import QueryResult

from tokenpulse.buffer.native import TABLES as NATIVE_TABLES
from tokenpulse.buffer.rows import TABLE_COLUMNS
from tokenpulse.buffer.wal import JSON_ROWS, NATIVE
from tokenpulse.errors import StorageUnreachable, redact_url
from tokenpulse.storage.schema import MIGRATIONS

log = logging.getLogger(__name__)

RETENTION_TABLES = ("calls", "tool_spans", "evaluations")
# The embedded engine's caches, all bounded by its server settings (system.metrics names).
_CACHE_METRICS = (
    "MarkCacheBytes", "PrimaryIndexCacheBytes", "UncompressedCacheBytes", "IndexMarkCacheBytes",
    "IndexUncompressedCacheBytes", "QueryCacheBytes", "QueryConditionCacheBytes", "PageCacheBytes",
    "CompiledExpressionCacheBytes",
)  # fmt: skip
_JEMALLOC = re.compile(r"Allocated: (\d+), active: \d+, metadata: \d+ .*?, resident: (\d+),")


def _literal(value: object) -> str:
    """``value`` as a ClickHouse literal: a number as is, anything else a quoted string."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# LowCardinality(T), where T may hold one level of parentheses (Nullable(String)).
_LOW_CARDINALITY = re.compile(r"LowCardinality\(((?:[^()]|\([^()]*\))*)\)")


def _without_low_cardinality(column_type: str) -> str:
    """``column_type`` with every ``LowCardinality(T)`` replaced by ``T``."""
    return _LOW_CARDINALITY.sub(r"\1", column_type)


_SPOOL_PREFIX = "insert-"  # the files of embedded inserts (Store.spool)
# The embedded engine's memory worker reads the process's memory from its allocator, not its cgroup's
# usage: the cgroup holds the application and anything else in the same container (in cgroup v1 the page
# cache too), which ClickHouse's MemoryWorker would take for its own RSS, and past 90% of its limit it
# purges the allocator every 50 ms at nice -20. On the shared test machine 3 of 9 `ingest` runs took 4-20x
# their CPU with that thread busy (35 CPU-s in one); the cause is read from its source, not reproduced.
_EMBEDDED_OPTIONS = {"memory_worker_use_cgroup": 0}


class DataDirInUse(RuntimeError):
    """Another process holds the embedded store's data directory (chDB allows one process per directory)."""


class DataDirLock:
    """An exclusive advisory lock on a data directory that names its holder's pid."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "tokenpulse.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise DataDirInUse(
                f"data directory {directory} is in use by another tokenpulse process (pid {holder}); "
                "stop it or pass a different --data directory"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


class Store:
    """ClickHouse access: migrations, idempotent batch inserts and parameterized queries."""

    def __init__(self, client: Client, embedded: bool = False, spool: Path | None = None) -> None:
        self.client = client
        self.embedded = embedded  # chDB in this process: its memory is the daemon's
        self.spool = spool  # where an embedded insert's rows wait in a file (None: the system's temp)
        self._structures: dict[str, str] = {}  # per table, how insert_rows parses its rows

    @classmethod
    def open(cls, data_dir: Path, clickhouse_url: str | None = None) -> Store:
        """Open a ClickHouse server when a URL is given, else the embedded chDB store in ``data_dir``.

        The caller holds the DataDirLock of ``data_dir``: chDB allows one process per directory.
        """
        if clickhouse_url:
            try:
                return cls(clickhouse_connect.get_client(dsn=clickhouse_url, autogenerate_session_id=False))
            except ClickHouseError as error:
                # The OS's reason when there is one: the rest is the HTTP library's retry story.
                found = re.search(r"\[Errno -?\d+\] ([^\"')]+)", str(error))
                reason = found.group(1) if found else (str(error).splitlines() or [type(error).__name__])[0]
                raise StorageUnreachable(
                    f"cannot use the ClickHouse server at {redact_url(clickhouse_url)} "
                    f"(--clickhouse / TOKENPULSE_CLICKHOUSE_URL / clickhouse_url): {reason}"
                ) from None
        # An insert killed with the process leaves its file behind; the caller's lock makes any file
        # here such a leftover (its rows are still in the write-ahead log).
        spool = data_dir / "inserts"
        spool.mkdir(parents=True, exist_ok=True)
        for leftover in spool.glob(f"{_SPOOL_PREFIX}*"):
            leftover.unlink(missing_ok=True)
        return cls(
            clickhouse_connect.get_client(
                dsn=f"chdb://{(data_dir / 'chdb').resolve()}", chdb_options=_EMBEDDED_OPTIONS
            ),
            embedded=True,
            spool=spool,
        )

    def close(self) -> None:
        self.client.close()

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; returns the versions applied now."""
        self.client.command(
            "CREATE TABLE IF NOT EXISTS tokenpulse_migrations "
            "(version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()) "
            "ENGINE = MergeTree ORDER BY version"
        )
        done = {row[0] for row in self.client.query("SELECT version FROM tokenpulse_migrations").result_rows}
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                self.client.command(statement)
            self.client.insert(
                "tokenpulse_migrations",
                [[migration.version, migration.name]],
                column_names=["version", "name"],
            )
            log.info("applied migration %d: %s", migration.version, migration.name)
            applied.append(migration.version)
        self._structures.clear()  # a migration may have changed a column's type
        return applied

    def set_retention(self, days: int) -> None:
        """Make the raw tables' TTL ``days``; a no-op when it already is (no mutation is started)."""
        wanted = f"toDateTime(time) + toIntervalDay({days})"
        for table in RETENTION_TABLES:
            current = self.client.query(
                "SELECT create_table_query FROM system.tables"
                " WHERE database = currentDatabase() AND name = {t:String}",
                parameters={"t": table},
            ).result_rows[0][0]
            if f"TTL {wanted}" in current:
                continue
            self.client.command(
                f"ALTER TABLE {table} MODIFY TTL toDateTime(time) + INTERVAL {int(days)} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )

    def insert_rows(
        self, table: str, rows: bytes | Sequence[bytes], dedup_token: str, row_format: str = JSON_ROWS
    ) -> None:
        """Insert encoded ``rows``, in one piece or several (whole rows or blocks each, in order): NATIVE
        blocks (buffer.native) or JSON_ROWS lines (buffer.rows). A retry with the same token is a no-op,
        in the table and its views."""
        pieces = [rows] if isinstance(rows, bytes) else rows
        settings = {
            "insert_deduplication_token": dedup_token,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
            "async_insert": 0,
            # A row written before a column was added (an older version's write-ahead log) ends
            # early; its missing trailing columns take their defaults (buffer.rows.AFTER_TENANT).
            "input_format_json_compact_allow_variable_number_of_columns": 1,
            # No in-block merge on insert: for the raw ReplacingMergeTree tables it only drops a span
            # repeated *within* one batch (one across batches was always left to merges and to readers'
            # FINAL), and it took 3.0 of chDB's 5.1 us a call row (bench/writer.py). The rollup views
            # group by their target's whole key, so their blocks have nothing to merge; the views read
            # the inserted block either way.
            "optimize_on_insert": 0,
            # One thread parses a batch: splitting 50,000 rows across threads cost 0.3-0.4 us a row more
            # CPU in all (bench/writer.py), and a batch's latency (~0.1 s to parse) does not matter.
            "input_format_parallel_parsing": 0,
        }
        columns = TABLE_COLUMNS[table]
        if row_format not in (NATIVE, JSON_ROWS):
            raise ValueError(f"rows in an unknown format: {row_format!r}")
        if not self.embedded:
            self.client.raw_insert(table, columns, b"".join(pieces), fmt=row_format, settings=settings)
            return
        # Embedded, the rows are read from a file. Native blocks state their own types (LowCardinality
        # columns as dictionaries: stored as they are). JSON rows are parsed with every
        # LowCardinality(T) column as plain T and converted a block at a time: filling the dictionaries
        # value by value while parsing took a third of chDB's CPU for a call row (bench/insert.py). The
        # settings travel in the statement: chDB applies per-call settings with a SET and a restore
        # per setting.
        structure = NATIVE_TABLES[table].structure if row_format == NATIVE else self._input_structure(table)
        clause = ", ".join(f"{name} = {_literal(value)}" for name, value in settings.items())
        with tempfile.NamedTemporaryFile(prefix=_SPOOL_PREFIX, suffix=".rows", dir=self.spool) as file:
            file.writelines(pieces)
            file.flush()
            self.client.command(
                f"INSERT INTO {table} ({', '.join(f'`{c}`' for c in columns)}) SETTINGS {clause}"
                f" SELECT * FROM file({_literal(file.name)}, {_literal(row_format)}, {_literal(structure)})"
            )

    def _input_structure(self, table: str) -> str:
        """The structure ``insert_rows`` parses ``table``'s rows with: its columns' types, each
        ``LowCardinality(T)`` as ``T`` (read from the table once: migrations may change them)."""
        structure = self._structures.get(table)
        if structure is None:
            types = dict(
                self.rows(
                    "SELECT name, type FROM system.columns"
                    " WHERE database = currentDatabase() AND table = {t:String}",
                    {"t": table},
                )
            )
            structure = ", ".join(
                f"`{name}` {_without_low_cardinality(types[name])}" for name in TABLE_COLUMNS[table]
            )
            self._structures[table] = structure
        return structure

    def memory_usage(self) -> dict[str, int]:
        """Bytes the embedded engine uses, by kind (empty on a ClickHouse server): ``tracked`` (its own
        accounting), ``caches``, and its allocator's ``allocated`` and ``resident``."""
        if not self.embedded:
            return {}
        metrics = dict(
            self.rows(
                "SELECT metric, toInt64(value) FROM system.metrics WHERE metric IN {names:Array(String)}",
                {"names": ["MemoryTracking", *_CACHE_METRICS]},
            )
        )
        usage = {
            "tracked": int(metrics.get("MemoryTracking", 0)),
            "caches": sum(int(metrics.get(name, 0)) for name in _CACHE_METRICS),
        }
        stats = self.rows("SELECT stats FROM system.jemalloc_stats")
        if stats and (match := _JEMALLOC.search(stats[0][0])):
            usage["allocated"], usage["resident"] = int(match[1]), int(match[2])
        return usage

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a read query; values always travel as server-side parameters, never spliced into SQL."""
        return self.client.query(sql, parameters=dict(parameters or {}))

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self.query(sql, parameters).result_rows
