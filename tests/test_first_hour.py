"""A new user's first hour (issue 17): nothing silent, nothing misleading, no traceback for a mistake."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.daemon import Daemon, free_port
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.cli import format_summary, parse_time, summary_csv
from tokenpulse.client import default_api_url
from tokenpulse.config import ConfigError, check_settings, load_settings, resolve_settings
from tokenpulse.errors import UserError
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import SummaryQuery, summarize

ROOT = Path(__file__).resolve().parent.parent
BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)


def tokenpulse(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The command as a user runs it, with no TOKENPULSE_* variable of this shell leaking in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "tokenpulse", *args],
        capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})},
    )  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("tokenpulse: ")]
    assert error_lines, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# --- a second daemon beside the first -------------------------------------------------------------------


def serve_args(data: Path, grpc: int, http: int, api: int) -> list[str]:
    return ["serve", "--data", str(data), "--otlp-grpc-port", str(grpc), "--otlp-http-port", str(http),
            "--api-port", str(api)]  # fmt: skip


def test_a_second_daemon_cannot_take_the_first_ones_grpc_port(daemon: Daemon, tmp_path: Path) -> None:
    # gRPC servers set SO_REUSEPORT by default: the second daemon used to bind 4317 too and take half
    # of the exporters' connections into its own store, with no error anywhere.
    result = tokenpulse(
        *serve_args(tmp_path / "other", daemon.grpc_port, free_port(), free_port()), timeout=60
    )
    assert_one_line_error(result, f"127.0.0.1:{daemon.grpc_port}", "address already in use", "otlp_grpc_port")
    assert "serving" not in result.stderr
    assert daemon.process is not None and daemon.process.poll() is None  # the first one is untouched


def test_a_taken_http_port_is_one_clear_error_before_serving_is_announced(
    daemon: Daemon, tmp_path: Path
) -> None:
    result = tokenpulse(
        *serve_args(tmp_path / "other", free_port(), free_port(), daemon.api_port), timeout=60
    )
    assert_one_line_error(result, f"127.0.0.1:{daemon.api_port}", "api_port", "TOKENPULSE_API_PORT")
    assert "tokenpulse serving" not in result.stderr


# --- commands that must not create what they were not asked to ------------------------------------------


def test_backtest_on_a_mistyped_data_directory_fails_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "tokenpulse-dta"
    result = tokenpulse("backtest", "--data", str(typo), "--start", "-3h", "--end", "now")
    assert_one_line_error(result, f"no store in {typo}", "--data")
    assert not typo.exists() and result.stdout == ""


def test_ingest_of_a_missing_file_fails_before_creating_a_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = tokenpulse("ingest", "--data", str(data), str(tmp_path / "nosuchfile.jsonl"))
    assert_one_line_error(result, "nosuchfile.jsonl: no such file")
    assert not data.exists()


# --- setup mistakes: one line naming the setting and its source ----------------------------------------


@pytest.mark.parametrize(
    ("config", "env", "args", "fragments"),
    [
        ("retention_days = 30\n[prices\n", {}, [], ["not valid TOML", "tokenpulse.toml"]),
        (None, {}, ["--config", "/nonexistent/tokenpulse.toml"],
         ["config file /nonexistent/tokenpulse.toml", "does not exist"]),
        (None, {"TOKENPULSE_RETENTION_DAYS": "abc"}, [], ["TOKENPULSE_RETENTION_DAYS = 'abc'", "integer"]),
        (None, {"TOKENPULSE_RETENTION_DAYS": "-5"}, [], ["TOKENPULSE_RETENTION_DAYS = '-5'", "greater than"]),
        ('[prices."my-model"]\ninput = "cheap"\noutput = 1\n', {}, [],
         ["[prices.'my-model'] input = 'cheap'", "must be a number"]),
        (None, {"TOKENPULSE_WEBHOOK_URL": "hooks.example/x"}, [], ["TOKENPULSE_WEBHOOK_URL", "not an http"]),
        ("max_spans_per_request = 0\n", {}, [], ["tokenpulse.toml: max_spans_per_request = 0"]),
        (None, {"TOKENPULSE_OTLP_GRPC_PORT": "70000"}, [], ["TOKENPULSE_OTLP_GRPC_PORT = '70000'"]),
        (None, {}, ["--clickhouse", "http://127.0.0.1:1/db"],
         ["ClickHouse server at http://127.0.0.1:1/db", "Connection refused"]),
    ],
)  # fmt: skip
def test_setup_mistakes_are_one_line_naming_the_setting(
    tmp_path: Path, config: str | None, env: dict[str, str], args: list[str], fragments: list[str]
) -> None:
    flags = list(args)
    if config is not None:
        (tmp_path / "tokenpulse.toml").write_text(config)
        flags += ["--config", str(tmp_path / "tokenpulse.toml")]
    data = str(tmp_path / "data")
    result = tokenpulse("backtest", "--data", data, *flags, "--start", "-1h", "--end", "now", env=env)
    assert_one_line_error(result, *fragments)


def test_serve_refuses_a_bad_setting_before_anything_starts(tmp_path: Path) -> None:
    result = tokenpulse("serve", "--data", str(tmp_path / "data"), env={"TOKENPULSE_RETENTION_DAYS": "abc"})
    assert_one_line_error(result, "TOKENPULSE_RETENTION_DAYS = 'abc'")
    assert not (tmp_path / "data").exists()


def test_every_problem_is_reported_at_once_with_its_source(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text("retention_days = -1\napi_port = 'x'\nwhat = 1\n")
    _, _, problems = resolve_settings(config, environ={"TOKENPULSE_BATCH_SECONDS": "0"}, host="")
    assert len(problems) == 5, problems
    assert any(p.startswith(f"{config}: retention_days = -1") for p in problems)
    assert any(p.startswith(f"{config}: api_port = 'x'") for p in problems)
    assert f"{config}: unknown setting 'what'" in problems
    assert any(p.startswith("TOKENPULSE_BATCH_SECONDS = '0'") for p in problems)
    assert any(p.startswith("--host = ''") for p in problems)


def test_a_bool_that_is_not_one_is_refused_not_read_as_false() -> None:
    _, _, problems = resolve_settings(environ={"TOKENPULSE_PROTECT_METRICS": "yes please"})
    assert problems and problems[0].startswith("TOKENPULSE_PROTECT_METRICS")


def test_backtest_start_tomorrow_is_a_message_and_relative_times_work() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_time("-3h", "--start", now) == now - timedelta(hours=3)
    assert parse_time("-90m", "--start", now) == now - timedelta(minutes=90)
    assert parse_time("now", "--end", now) == now
    assert parse_time("2026-11-20T14:00", "--end", now) == datetime(2026, 11, 20, 14, tzinfo=UTC)
    with pytest.raises(UserError, match=r"--start 'tomorrow': not a time"):
        parse_time("tomorrow", "--start", now)


def test_config_check_prints_the_effective_configuration_with_secrets_masked(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text(
        'retention_days = 30\n[auth]\nkeys = [{key = "tp-acme-4f9c2e8a61d7aa", tenant = "acme"}]\n'
    )
    env = {"TOKENPULSE_API_PORT": "9100", "TOKENPULSE_CLICKHOUSE_URL": "http://u:s3cret@ch.example:8123/db"}
    result = tokenpulse("config", "check", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"retention_days\s+30\s+\({re.escape(str(config))}: retention_days\)", result.stdout)
    assert re.search(r"api_port\s+9100\s+\(TOKENPULSE_API_PORT\)", result.stdout)
    assert re.search(r"otlp_grpc_port\s+4317\s+\(default\)", result.stdout)
    # an unset URL setting shows the URL used, not "(none)": the runbooks follow the API port
    assert re.search(r"runbook_base_url\s+http://127.0.0.1:9100/runbooks \(built in\)", result.stdout)
    assert re.search(r"openai_admin_url\s+https://api.openai.com \(built in\)", result.stdout)
    assert (
        "1 key(s) for tenant(s) acme" in result.stdout and "http://u:***@ch.example:8123/db" in result.stdout
    )
    assert "tp-acme-4f9c2e8a61d7aa" not in result.stdout + result.stderr and "s3cret" not in result.stdout
    assert result.stdout.rstrip().endswith("configuration OK")

    config.write_text("retention_days = 0\n[detectors.no_such_detector]\n")
    result = tokenpulse("config", "check", "--config", str(config), env={"TOKENPULSE_SLACK_WEBHOOK_URL": "x"})
    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3, result.stdout
    assert result.stdout.rstrip().endswith("3 problem(s)")


def test_the_readme_config_examples_load_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TOKENPULSE_"):
            monkeypatch.delenv(name)
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) >= 3
    for number, block in enumerate(blocks):
        tomllib.loads(block)
        path = tmp_path / f"readme-{number}.toml"
        path.write_text(block)
        assert check_settings(load_settings(path)) == [], block


def test_the_quick_start_puts_tokenpulse_on_the_path_before_using_it_bare() -> None:
    # The README used to run .venv/bin/tokenpulse, then bare `tokenpulse` in every later command.
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```")[0]
    assert ". .venv/bin/activate && tokenpulse serve" in quick_start
    assert "the virtualenv is active" in readme.split("## Instrument your app")[0]


def test_data_and_clickhouse_together_are_accepted_as_the_readme_says() -> None:
    from tokenpulse.cli import _parser

    args = _parser().parse_args(["backtest", "--data", "d", "--clickhouse", "http://h:8123", "--start", "now",
                                 "--end", "now"])  # fmt: skip
    assert (str(args.data), args.clickhouse) == ("d", "http://h:8123")


# --- unpriced calls are never a silent $0 ---------------------------------------------------------------


def test_unpriced_calls_are_unknown_cost_not_zero(store: Store, tmp_path: Path) -> None:
    private = {"request_model": "acme-private-7b", "response_model": "", "cost_usd": Decimal(0),
               "price_known": False}  # fmt: skip
    store_records(store, tmp_path, [
        call_record(**private), call_record(**private),
        call_record(cost_usd=Decimal("0.5")), call_record(cost_usd=Decimal(0), price_known=False),
    ])  # fmt: skip
    for end in (BASE + timedelta(minutes=5), BASE + timedelta(minutes=5, seconds=1)):  # rollup and raw
        groups = {g["key"]["model"]: g for g in summarize(store, SummaryQuery(BASE, end, ("model",)))}
        assert groups["acme-private-7b"]["cost_usd"] is None
        assert groups["acme-private-7b"]["unpriced_calls"] == 2
        # the model asked for (gpt-4o): one priced call and one the pricer did not know
        assert (groups["gpt-4o"]["cost_usd"], groups["gpt-4o"]["unpriced_calls"]) == ("0.5", 1)
        (total,) = summarize(store, SummaryQuery(BASE, end))
        assert (total["cost_usd"], total["unpriced_calls"]) == ("0.5", 3)
    document = {
        "start": "s", "end": "e", "groups": list(groups.values()),
        "totals": summarize(store, SummaryQuery(BASE, end))[0],
    }  # fmt: skip
    table = format_summary(document, ["model"])
    header, *rows = table.splitlines()[1:]
    cost = header.split().index("cost_usd")
    assert {row.split()[0]: row.split()[cost] for row in rows[:3]} == {
        "acme-private-7b": "unknown", "gpt-4o": ">=0.5", "total": ">=0.5",
    }  # fmt: skip
    assert "3 call(s) have no known price" in table
    csv_rows = summary_csv(document, ["model"]).splitlines()
    assert csv_rows[0].startswith("model,calls,errors") and "cost_usd,unpriced_calls" in csv_rows[0]
    private_row = next(row for row in csv_rows if row.startswith("acme-private-7b,"))
    assert private_row.startswith("acme-private-7b,2,") and ",,2," in private_row  # empty cost, 2 unpriced


def test_a_failed_call_counts_with_the_answered_calls_of_the_model_it_asked_for(
    store: Store, tmp_path: Path
) -> None:
    # Documented in the README's summary API: `model` is the model asked for, a failed call (no answer,
    # no dated name) is in the same row as the answered calls, the dated name beside it.
    store_records(store, tmp_path, [
        call_record(), call_record(response_model="", status="error", error_type="RateLimitError",
                                   cost_usd=Decimal(0), price_known=False),
    ])  # fmt: skip
    end = BASE + timedelta(minutes=5, seconds=1)
    (row,) = summarize(store, SummaryQuery(BASE, end, ("model",)))
    assert (row["key"], row["calls"], row["errors"]) == ({"model": "gpt-4o"}, 2, 1)
    assert row["response_models"] == ["gpt-4o-2024-08-06"]
    (asked,) = summarize(store, SummaryQuery(BASE, end, ("request_model",)))
    assert (asked["key"], asked["calls"], asked["errors"]) == ({"request_model": "gpt-4o"}, 2, 1)
    document = {
        "start": "s",
        "end": "e",
        "groups": [row],
        "totals": summarize(store, SummaryQuery(BASE, end))[0],
    }
    header, first, total = format_summary(document, ["model"]).splitlines()[1:4]
    assert header.split()[-1] == "answered_as" and first.split()[-1] == "gpt-4o-2024-08-06"
    assert first.split()[:3] == ["gpt-4o", "2", "1"] and total.split()[:3] == ["total", "2", "1"]
    assert summary_csv(document, ["model"]).splitlines()[1].endswith(",gpt-4o-2024-08-06")
    readme = (ROOT / "README.md").read_text()
    assert "a failed call counts in the row of the model it asked for" in readme


# --- summary finds the daemon where the daemon is -------------------------------------------------------


def test_the_api_url_follows_the_daemons_own_variables() -> None:
    assert default_api_url({}) == "http://127.0.0.1:8000"
    assert default_api_url({"TOKENPULSE_API_PORT": "9100"}) == "http://127.0.0.1:9100"
    assert (
        default_api_url({"TOKENPULSE_API": "http://tp:8000", "TOKENPULSE_API_PORT": "1"}) == "http://tp:8000"
    )


def test_summary_finds_the_daemon_by_its_port_variable_and_says_no_data(shared_daemon: Daemon) -> None:
    env = {"TOKENPULSE_API_PORT": str(shared_daemon.api_port)}
    result = tokenpulse("summary", "--start", "-3h", "--group-by", "service,model", env=env)
    assert result.returncode == 0, result.stderr
    assert "no data: no LLM call ended in this range" in result.stdout
    result = tokenpulse("silence", "list", env={"TOKENPULSE_API": shared_daemon.api})
    assert result.returncode == 0, result.stderr
    # a refusal is the API's own sentence, not its JSON
    result = tokenpulse("silence", "expire", "nosuch", env=env)
    assert (result.returncode, result.stderr) == (1, "tokenpulse silence: no silence nosuch (HTTP 404)\n")


def test_config_error_lists_all_problems_in_its_message() -> None:
    error = ConfigError(["a = 1: bad", "b = 2: worse"])
    assert str(error) == "invalid configuration:\n  - a = 1: bad\n  - b = 2: worse"
    assert isinstance(error, ValueError) and isinstance(error, UserError)


# --- the walk: serve, send, read — the README's first steps as one test ----------------------------------


def text_table(lines: list[str]) -> list[dict[str, str]]:
    """The rows of an aligned text table, cut at its header's column starts."""
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    return [
        {name: line[a:b].strip() for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


def test_the_first_hour_walk_has_no_silent_zero_and_views_agree(tmp_path: Path) -> None:
    import httpx

    from tests.otlp_builders import export_request, llm_span

    daemon = Daemon(tmp_path / "data").start()
    try:
        # Two calls answered as the dated snapshot, one that failed before any answer (no response
        # model, no tokens), one of a model no price list knows.
        answered = {"gen_ai.response.model": "gpt-4o-2024-08-06"}
        failed = {
            "error.type": "RateLimitError",
            "gen_ai.usage.input_tokens": 0,
            "gen_ai.usage.output_tokens": 0,
        }
        spans = [llm_span(**answered), llm_span(**answered), llm_span(**failed),
                 llm_span(**{"gen_ai.request.model": "acme-private-7b"})]  # fmt: skip
        body = export_request(*spans, service="support-bot").SerializeToString()
        sent = httpx.post(f"{daemon.otlp_http}/v1/traces", content=body,
                          headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
        assert sent.status_code == 200
        env = {"TOKENPULSE_API_PORT": str(daemon.api_port)}
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while True:  # stored asynchronously (the write-ahead log drains within a second or so)
            result = tokenpulse("summary", "--start", "-1h", "--group-by", "service,model", env=env)
            assert result.returncode == 0, result.stderr
            if "no data" not in result.stdout or datetime.now(UTC) > deadline:
                break
        rows = text_table(result.stdout.splitlines()[1:5])
        by_model = {row["model"] or row["service"]: row for row in rows}
        assert len(rows) == 3, result.stdout  # gpt-4o is one row: its failed call is not a row of its own
        assert by_model["acme-private-7b"]["cost_usd"] == "unknown"
        assert by_model["acme-private-7b"]["unpriced"] == "1"
        gpt = by_model["gpt-4o"]
        assert gpt["cost_usd"] == "0.0007"  # 2 x (100 input at $2.50/M + 10 output at $10/M)
        assert (gpt["calls"], gpt["errors"], gpt["answered_as"]) == ("3", "1", "gpt-4o-2024-08-06")
        assert (by_model["total"]["cost_usd"], by_model["total"]["unpriced"], by_model["total"]["calls"]) == (
            ">=0.0007",
            "1",
            "4",
        )
        assert "1 call(s) have no known price" in result.stdout
        # the calls API shows the same four calls, the unpriced one with an unknown cost; the model row's
        # name finds its three
        calls = httpx.get(f"{daemon.api}/api/v1/calls").json()["calls"]
        assert sorted((c["model"], c["cost_usd"]) for c in calls) == [
            ("acme-private-7b", None), ("gpt-4o", "0"), ("gpt-4o-2024-08-06", "0.00035"),
            ("gpt-4o-2024-08-06", "0.00035"),
        ]  # fmt: skip
        of_row = httpx.get(f"{daemon.api}/api/v1/calls", params={"model": "gpt-4o"}).json()["calls"]
        assert sorted(c["status"] for c in of_row) == ["error", "unset", "unset"]  # no span status set
        csv_text = tokenpulse("summary", "--start", "-1h", "--group-by", "model", "--csv", env=env).stdout
        assert csv_text.splitlines()[0].startswith("model,calls,")
        assert tokenpulse("silence", "list", env=env).returncode == 0
        assert "Traceback" not in daemon.log()
    finally:
        daemon.stop()


def test_detector_settings_get_the_generic_checks(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text(
        "[detectors.latency_p99_drift]\nwarning_ratio = 4.0\n"  # critical_ratio is 3.0 by default
        "false_page_budget_days = 30\nwindow_minutes = -5\n"
    )
    problems = check_settings(load_settings(config))
    assert "[detectors.latency_p99_drift] warning_ratio = 4.0 is above critical_ratio = 3.0" in problems[-1]
    assert "[detectors.latency_p99_drift] window_minutes = -5: must not be negative" in problems
    assert check_settings(load_settings()) == []


def test_every_detectors_defaults_pass_the_checks(tmp_path: Path) -> None:
    from tokenpulse.detectors.catalog import build_detectors

    config = tmp_path / "tokenpulse.toml"
    config.write_text("".join(f"[detectors.{detector.name}]\n" for detector in build_detectors()))
    settings = load_settings(config)
    assert len(settings.detectors) == len(build_detectors())
    assert check_settings(settings) == []


def test_keys_and_a_network_bind_are_checked_with_the_rest() -> None:
    exposed, _, _ = resolve_settings(environ={"TOKENPULSE_HOST": "0.0.0.0"})
    assert any("host = 0.0.0.0 without API keys" in p for p in check_settings(exposed))
    assert check_settings(exposed, serving=False) == []  # backtest and ingest listen on nothing
    short, _, _ = resolve_settings(environ={"TOKENPULSE_API_KEYS": "acme:short"})
    assert any(p.startswith("[auth] keys (or TOKENPULSE_API_KEYS)") for p in check_settings(short))


def test_an_unknown_detector_setting_is_named_with_the_keys_the_file_takes(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text("[detectors.cache_hit_collapse]\nwindow = 5\nfor = 0\n")
    (problem,) = check_settings(load_settings(config))
    assert problem.startswith("[detectors.cache_hit_collapse] unknown setting(s) for, window; known: ")
    known = problem.split("known: ")[1].split(", ")
    assert {"window_minutes", "for_minutes", "keep_firing_for_minutes", "min_duration_minutes"} <= set(known)
    assert "for_" not in known and "window" not in known


def test_a_flag_is_named_as_it_is_typed() -> None:
    _, sources, problems = resolve_settings(environ={}, data_dir=Path("d"), clickhouse_url="not a url")
    assert sources["data_dir"] == "--data"
    assert problems and problems[0].startswith("--clickhouse = 'not a url'")


# --- the demo delivers what it promises -------------------------------------------------------------------


def test_the_demo_backtest_shows_the_three_alerts_it_promises(tmp_path: Path) -> None:
    """The README's demo commands (simulate, ingest, backtest), on the demo's default duration: the cache
    collapse, the cost spike and the p99 drift each page, in their own scope, after their onset, and
    nothing else does. Half the default rate keeps it short; the start is a minute past the hour (the
    latest the p99 detector's first whole hour of history can end) at a busy time of day, yesterday."""
    # the README's commands are these, over the demo's whole default duration
    simulator = (
        (ROOT / "README.md").read_text().split("## Simulator", 1)[1].split("```sh", 1)[1].split("```")[0]
    )
    for command in ("tokenpulse simulate --scenario demo --output demo.jsonl.gz",
                    "tokenpulse ingest --data demo-data demo.jsonl.gz",
                    "tokenpulse backtest --data demo-data --start -4h --end now"):  # fmt: skip
        assert f"\n{command}\n" in simulator, command
    start = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=1, second=0, microsecond=0)
    traffic, manifest, data = tmp_path / "demo.jsonl.gz", tmp_path / "manifest.json", tmp_path / "data"
    simulated = tokenpulse("simulate", "--scenario", "demo", "--start", start.isoformat(), "--rate", "100",
                           "--output", str(traffic), "--manifest", str(manifest), timeout=300)  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    assert tokenpulse("ingest", "--data", str(data), str(traffic), timeout=300).returncode == 0
    incidents = {i["kind"]: i for i in json.loads(manifest.read_text())["incidents"]}
    end = datetime.fromisoformat(json.loads(manifest.read_text())["end"])
    assert end - start == timedelta(hours=4)  # the default: the p99 detector needs 3 h 45 min of history
    window = ("--start", start.isoformat(), "--end", end.isoformat())
    result = tokenpulse("backtest", "--data", str(data), *window, timeout=300)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    firing = [e for e in events if e["status"] == "firing"]
    assert {e["detector"] for e in firing} == {"cache_hit_collapse", "cost_spike", "latency_p99_drift"}, (
        firing
    )
    for event in firing:
        incident = incidents[event["detector"]]
        at = datetime.fromisoformat(event["at"])
        assert datetime.fromisoformat(incident["onset"]) < at <= end, (event, incident)
        # the scope that paged is the incident's, on the dimensions both name (the collapse's prompt
        # version is its suspect, the cost spike's new model its cause, not their alerts' scopes)
        shared = event["scope"].keys() & incident["scope"].keys()
        assert shared and all(event["scope"][k] == incident["scope"][k] for k in shared), (event, incident)


# --- the detectors on a new user's first calls ------------------------------------------------------------


def test_the_detector_cycle_runs_on_a_new_users_first_non_streaming_calls(
    store: Store, tmp_path: Path
) -> None:
    """Walked by hand: a fresh `serve`, three non-streaming calls (no TTFT, as most are), and every detector
    cycle failed with a traceback in the log until streaming calls came, and the health detector paged
    "tokenpulse cannot see its data, detectors are blind" (critical) after three failed cycles."""
    from tokenpulse.detectors.catalog import build_detectors
    from tokenpulse.detectors.engine import Engine, floor_minute

    moment = floor_minute(datetime.now(UTC) - timedelta(minutes=1))
    ended = int((moment - timedelta(seconds=30)).timestamp() * 1e9)
    store_records(store, tmp_path, [call_record(time_unix_nano=ended, ttft_ms=None) for _ in range(3)])
    Engine(build_detectors()).run(store, [moment], "http://127.0.0.1:8000/runbooks")
