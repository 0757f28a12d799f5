"""Migration 7: the raw tables' merge selector base (fewer merges a row), where the engine has the setting."""

from pathlib import Path

import pytest

from tests.factories import call_record, migrate_to
from tokenpulse.buffer.rows import CALL_FIELDS, encode_rows
from tokenpulse.storage.schema import RAW_MERGE_SELECTOR_BASE
from tokenpulse.storage.store import Store

RAW_TABLES = ("calls", "tool_spans", "evaluations")
SETTING = f"merge_selector_base = {RAW_MERGE_SELECTOR_BASE}"


def _create_query(store: Store, table: str) -> str:
    return store.rows(
        "SELECT create_table_query FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    )[0][0]


def test_the_raw_tables_merge_with_the_larger_base_and_the_rollups_with_the_default(store: Store) -> None:
    for table in RAW_TABLES:
        assert SETTING in _create_query(store, table), table
    for rollup in ("calls_1m", "evaluations_1m"):
        assert "merge_selector_base" not in _create_query(store, rollup), rollup


def test_a_version_6_store_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        migrate_to(store, 6)
        store.insert_rows("calls", encode_rows([call_record()], CALL_FIELDS), "before-7")
        assert store.migrate() == [7]
        assert SETTING in _create_query(store, "calls")
        assert store.rows("SELECT count(), (SELECT sum(calls) FROM calls_1m) FROM calls") == [(1, 1)]
    finally:
        store.close()


def test_an_engine_without_the_setting_records_the_migration_and_keeps_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ClickHouse server older than 24.11 has no merge_selector_base: the migration is skipped, not an
    error that would stop the daemon from starting."""
    monkeypatch.setattr(Store, "_has_merge_tree_setting", lambda self, name: False)
    store = Store.open(tmp_path)
    try:
        migrate_to(store, 6)
        assert store.migrate() == [7]
        assert "merge_selector_base" not in _create_query(store, "calls")
        assert store.migrate() == []
    finally:
        store.close()
