"""Migration 4: what the provider served and billed, on calls and in the rollup; rows an older version
left in the write-ahead log still insert after the upgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tests.factories import BASE_TIME_NS, call_record, migrate_to, store_records
from tokenpulse.buffer.rows import AFTER_TENANT, CALL_FIELDS, encode_rows
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import SummaryQuery, build_summary_sql, summarize

BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)
OLD_FIELDS = tuple(f for f in CALL_FIELDS if f not in AFTER_TENANT)  # a row as version 3 wrote it


def test_summary_groups_by_served_tier_from_the_rollup(store: Store, tmp_path: Path) -> None:
    store_records(
        store,
        tmp_path,
        [
            call_record(service_tier="flex", cost_usd=Decimal("0.5")),
            call_record(service_tier="flex", cost_usd=Decimal("0.25"), reported_cost_usd=Decimal("0.26")),
            call_record(service_tier="priority", cost_usd=Decimal("2"), cache_write_tokens=10,
                        cache_write_1h_tokens=4),
            call_record(cost_usd=Decimal("1")),
        ],
    )  # fmt: skip
    query = SummaryQuery(BASE, BASE + timedelta(minutes=5), ("service_tier",))
    assert "FROM calls_1m" in build_summary_sql(query)[0]
    groups = {g["key"]["service_tier"]: g for g in summarize(store, query)}
    assert {tier: (g["calls"], g["cost_usd"]) for tier, g in groups.items()} == {
        "priority": (1, "2"),
        "": (1, "1"),
        "flex": (2, "0.75"),
    }
    assert (groups["flex"]["reported_calls"], groups["flex"]["reported_cost_usd"]) == (1, "0.26")
    assert groups[""]["reported_cost_usd"] is None and groups[""]["cost_shown"] == "tokenpulse"
    assert groups["priority"]["cache_write_1h_tokens"] == 4
    raw = SummaryQuery(BASE, BASE + timedelta(minutes=5, seconds=1), ("service_tier",))
    assert "FROM calls FINAL" in build_summary_sql(raw)[0]
    assert {g["key"]["service_tier"]: g["reported_calls"] for g in summarize(store, raw)} == {
        "priority": 0,
        "": 0,
        "flex": 1,
    }


def test_a_row_an_older_version_logged_inserts_with_defaults(store: Store) -> None:
    # Written before migration 4 (the row ends at the tenant), replayed by today's writer.
    old = call_record(cost_usd=Decimal("0.125"))
    store.insert_rows("calls", encode_rows([old], OLD_FIELDS, "acme"), "old-frame")
    row = store.rows(
        "SELECT tenant, cost_usd, service_tier, speed, inference_geo, cache_write_1h_tokens,"
        " reported_cost_usd FROM calls"
    )
    assert row == [("acme", Decimal("0.125"), "", "", "", 0, None)]


def test_migration_4_upgrades_a_version_3_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data")
    try:
        migrate_to(store, 3)
        columns = ("time", *OLD_FIELDS[1:], "tenant")
        store.client.raw_insert("calls", columns, encode_rows([call_record()], OLD_FIELDS, "t"),
                                fmt="JSONCompactEachRow")  # fmt: skip
        assert 4 in store.migrate()
        store_records(store, tmp_path, [call_record(service_tier="batch")], tenant="t")
        query = SummaryQuery(BASE, BASE + timedelta(minutes=5), ("service_tier", "tenant"))
        assert {g["key"]["service_tier"]: g["calls"] for g in summarize(store, query)} == {"": 1, "batch": 1}
    finally:
        store.close()
