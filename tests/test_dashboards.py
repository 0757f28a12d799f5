"""The Grafana dashboards: generated JSON up to date and well-formed, and every panel's SQL — expanded as
Grafana and the ClickHouse plugin expand it — runs on simulated data and returns rows of the right shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.models import dashboard as model

from dashboards.clickhouse import DIMENSIONS, PLUGIN
from dashboards.generate import OUTPUT, render, stale
from dashboards.plugin import ALL, apply_conditional_all, expand, interpolate
from tokenpulse.storage.store import Store

BOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(OUTPUT.glob("*.json"))}
TARGETS = [
    pytest.param(panel, target, id=f"{name}/{panel['title']}/{target['refId']}")
    for name, board in BOARDS.items()
    for panel in board["panels"]
    for target in panel["targets"]
]
VARIABLE_QUERIES = [
    pytest.param(variable["query"], id=f"{name}/${variable['name']}")
    for name, board in BOARDS.items()
    for variable in board["templating"]["list"]
    if variable["type"] == "query"
]


def test_committed_json_is_what_the_code_generates() -> None:
    assert set(BOARDS) == {name.removesuffix(".json") for name in render()}
    assert stale() == [], "run: python -m dashboards.generate"


def test_stale_names_a_hand_edited_dashboard(tmp_path: Path) -> None:
    for name, text in render().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "spend.json").write_text("{}")
    assert stale(tmp_path) == ["spend.json"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_json_is_provisioning_ready(name: str) -> None:
    board = BOARDS[name]
    model.Dashboard.from_json(board)  # the SDK's typed model reads it back
    assert board["uid"].startswith("tokenpulse-") and board["title"] and board["tags"] == ["tokenpulse"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == PLUGIN
    for dimension in DIMENSIONS:
        variable = variables[dimension]
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"]
        assert variable["current"]["value"] == ALL and variable["refresh"] == 2  # on time range change
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        position = panel["gridPos"]
        assert position["x"] >= 0 and position["x"] + position["w"] <= 24 and position["h"] > 0
        assert panel["datasource"] == {"type": PLUGIN, "uid": "${datasource}"}
        assert panel["type"] in {"timeseries", "table", "stat", "heatmap"}
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["editorType"] == "sql" and target["datasource"]["type"] == PLUGIN
            assert (target["queryType"], target["format"]) in {("timeseries", 0), ("table", 1)}


def test_expansion_follows_the_plugin() -> None:
    sql = "SELECT 1 WHERE $__conditionalAll(service IN (${service:singlequote}), $service) AND x = $route"
    assert apply_conditional_all(sql, {"service": ALL}) == "SELECT 1 WHERE 1=1 AND x = $route"
    assert interpolate(apply_conditional_all(sql, {"service": ["a", "o'b"]}), {"service": ["a", "o'b"]}) == (
        "SELECT 1 WHERE service IN ('a','o\\'b') AND x = $route"
    )
    start, end = (
        datetime.fromtimestamp(1_700_000_000).astimezone(),
        datetime.fromtimestamp(1_700_003_600).astimezone(),
    )
    assert expand(
        "$__timeFilter(minute) AND $__timeInterval(minute) / $__interval_s", start, end, 300, {}
    ) == (
        "minute >= toDateTime(1700000000) AND minute <= toDateTime(1700003600) AND "
        "toStartOfInterval(toDateTime(minute), INTERVAL 300 second) / 300"
    )
    with pytest.raises(ValueError, match="not one of the plugin's"):
        expand("$__timeGroup(minute, '5m')", start, end, 60, {})


@pytest.fixture(scope="module")
def store(simulated_data: Path) -> Iterator[Store]:
    opened = Store.open(simulated_data)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def time_range(store: Store) -> tuple[datetime, datetime]:
    ((first, last),) = store.rows("SELECT min(minute), max(minute) FROM calls_1m")
    return first.astimezone(), last.astimezone() + timedelta(minutes=1)


@pytest.fixture(scope="module")
def selection(store: Store) -> dict[str, list[str]]:
    """A specific value of every variable, the most used one: filters must narrow, not break, queries."""
    row = store.client.query(
        f"SELECT {', '.join(DIMENSIONS)} FROM calls_1m GROUP BY ALL ORDER BY sum(calls) DESC LIMIT 1"
    ).named_results()
    return {dimension: [value] for dimension, value in next(iter(row)).items()}


def run(store: Store, sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """Column names, ClickHouse types and rows of ``sql`` (names and types even without rows)."""
    columns = store.client.query(f"DESCRIBE ({sql})").result_rows
    return [c[0] for c in columns], [c[1] for c in columns], store.client.query(sql).result_rows


# Panel queries that may return nothing on the demo scenario at an interval, and why (all others must).
MAY_BE_EMPTY = {
    ("reasoning_blowup: largest reasoning of one call/A", 60): "no call reasons 25k tokens in the demo",
    ("reasoning_blowup: largest reasoning of one call/A", 3600): "no call reasons 25k tokens in the demo",
    ("timeout_surge: share of calls and tool executions timed out/C", 60): "~50 tool executions in 5 minutes",
}


@pytest.mark.parametrize(("panel", "target"), TARGETS)
@pytest.mark.parametrize("interval", [60, 3600], ids=["1m", "1h"])
def test_panel_sql_runs_on_simulated_data(
    store: Store,
    time_range: tuple[datetime, datetime],
    panel: dict[str, Any],
    target: dict[str, Any],
    interval: int,
) -> None:
    start, end = time_range
    sql = expand(
        target["rawSql"], start, end, interval, {d: ALL for d in DIMENSIONS} | {"daily_budget_usd": "100"}
    )
    names, types, rows = run(store, sql)
    key = f"{panel['title']}/{target['refId']}"
    if target["refId"] == "B":  # thresholds of firings: rows only for detectors that fired
        assert names == ["time", "alert_scope", "fired_at"]
    elif (key, interval) not in MAY_BE_EMPTY:
        assert rows, f"{key} returned no rows"
    if target["queryType"] == "timeseries":
        assert names[0] == "time" and types[0].startswith("DateTime"), (names, types)
        numeric = [
            t
            for t in types[1:]
            if t.removeprefix("Nullable(").startswith(("Float", "UInt", "Int", "Decimal"))
        ]
        assert numeric, f"{key}: no value column in {types}"
        times = [row[0] for row in rows]
        assert times == sorted(times), f"{key}: not sorted by time"
        assert all(start - timedelta(hours=1) <= t.astimezone() < end + timedelta(hours=1) for t in times)


@pytest.mark.parametrize(("panel", "target"), TARGETS)
def test_panel_sql_honours_a_variable_selection(
    store: Store,
    time_range: tuple[datetime, datetime],
    panel: dict[str, Any],
    target: dict[str, Any],
    selection: dict[str, list[str]],
) -> None:
    start, end = time_range
    names, _, rows = run(
        store, expand(target["rawSql"], start, end, 300, {**selection, "daily_budget_usd": "250"})
    )
    for dimension in set(DIMENSIONS) & set(names):  # a selected dimension shown is the selected value
        assert {row[names.index(dimension)] for row in rows} <= set(selection[dimension]), dimension


@pytest.mark.parametrize("sql", VARIABLE_QUERIES)
def test_variable_queries_list_values(
    store: Store, time_range: tuple[datetime, datetime], sql: str, selection: dict[str, list[str]]
) -> None:
    start, end = time_range
    names, _, rows = run(store, expand(sql, start, end, 60, {d: ALL for d in DIMENSIONS}))
    assert len(names) == 1 and rows
    _, _, narrowed = run(store, expand(sql, start, end, 60, selection))
    assert narrowed and len(narrowed) <= len(rows)
