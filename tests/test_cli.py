import gzip
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.otlp_builders import llm_span, otlp_json_line
from tokenpulse.config import load_settings
from tokenpulse.storage.store import Store


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenpulse.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_ingest_loads_plain_and_gzip_files_through_the_normalizer(tmp_path: Path) -> None:
    plain = tmp_path / "traces.jsonl"
    plain.write_text(otlp_json_line(llm_span(), llm_span()) + "\n\n" + otlp_json_line(llm_span()) + "\n")
    packed = tmp_path / "more.jsonl.gz"
    packed.write_bytes(
        gzip.compress((otlp_json_line(llm_span(**{"gen_ai.usage.input_tokens": -1})) + "\n").encode())
    )
    result = run_cli("ingest", "--data", str(tmp_path / "data"), "--tenant", "acme", str(plain), str(packed))
    assert result.returncode == 0, result.stderr
    assert "ingested 3 calls and 0 tool/agent/link spans; rejected 1 spans, 0 lines" in result.stdout
    store = Store.open(tmp_path / "data")
    try:
        rows = store.rows("SELECT service, input_tokens, cost_usd, price_known, tenant FROM calls")
    finally:
        store.close()
    assert len(rows) == 3
    assert {r[0] for r in rows} == {"batch"} and all(r[3] for r in rows)
    assert {r[4] for r in rows} == {"acme"}
    # gpt-4o: 100 input at $2.50/M + 10 output at $10/M
    assert {r[2] for r in rows} == {Decimal("0.00035")}


def test_ingest_reports_undecodable_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n" + otlp_json_line(llm_span()) + "\n")
    result = run_cli("ingest", "--data", str(tmp_path / "data"), str(bad))
    assert result.returncode == 1
    assert "ingested 1 calls" in result.stdout and "bad.jsonl:1" in result.stderr


def test_ingest_names_the_bad_field_and_keeps_the_other_lines(tmp_path: Path) -> None:
    good = otlp_json_line(llm_span())
    broken = good.replace('"spanId": "', '"spanId": "zz', 1)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good, broken, otlp_json_line(llm_span(), llm_span())]) + "\n")
    result = run_cli("ingest", "--data", str(tmp_path / "data"), str(path))
    assert result.returncode == 1
    assert "ingested 3 calls" in result.stdout and "rejected 0 spans, 1 lines" in result.stdout
    assert "mixed.jsonl:2: skipped: " in result.stderr
    assert "resourceSpans[0].scopeSpans[0].spans[0].spanId: 'zz" in result.stderr


def test_ingest_waits_for_storage_when_the_log_is_full(tmp_path: Path) -> None:
    """A file read faster than storage takes its rows fills the write-ahead log; ingest waits for the
    writer instead of failing, and stores every line once."""
    config = tmp_path / "tokenpulse.toml"
    # Room for a few lines only; the writer inserts every 0.3 s at most.
    config.write_text("wal_max_bytes = 8000\nwal_segment_bytes = 65536\nbatch_seconds = 0.3\n")
    path = tmp_path / "many.jsonl"
    path.write_text("".join(otlp_json_line(llm_span(), llm_span()) + "\n" for _ in range(40)))
    result = run_cli("ingest", "--config", str(config), "--data", str(tmp_path / "data"), str(path))
    assert result.returncode == 0, result.stderr
    assert "ingested 80 calls" in result.stdout
    store = Store.open(tmp_path / "data")
    try:
        assert store.rows("SELECT count(), uniqExact(span_id) FROM calls") == [(80, 80)]
    finally:
        store.close()


def test_ingest_lets_batches_grow_for_5_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file is read far faster than live traffic arrives: `ingest` lets a batch grow to its 100,000 rows
    for 5 s rather than the daemon's 1 s, and keeps what the config file or the environment says."""
    from tokenpulse.cli import _ingest_settings, _parser

    monkeypatch.delenv("TOKENPULSE_BATCH_ROWS", raising=False)
    monkeypatch.delenv("TOKENPULSE_BATCH_SECONDS", raising=False)
    monkeypatch.delenv("TOKENPULSE_CONFIG", raising=False)
    args = _parser("ingest").parse_args(["ingest", "--data", str(tmp_path / "data"), "f.jsonl"])
    settings = _ingest_settings(args)
    assert (settings.batch_rows, settings.batch_seconds) == (100_000, 5.0)
    assert settings.data_dir == tmp_path / "data"
    config = tmp_path / "tokenpulse.toml"
    config.write_text("batch_seconds = 0.3\n")
    monkeypatch.setenv("TOKENPULSE_BATCH_ROWS", "2000")
    args = _parser("ingest").parse_args(["ingest", "--config", str(config), "f.jsonl"])
    settings = _ingest_settings(args)
    assert (settings.batch_rows, settings.batch_seconds) == (2000, 0.3)


def test_a_file_ingested_again_after_its_segments_were_deleted_is_stored_once(tmp_path: Path) -> None:
    """The retry memory outlives the log's segments: the lines of a file already stored are recognized
    by a later run even when the segments that held them were deleted once stored."""
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(otlp_json_line(*(llm_span() for _ in range(40))) + "\n" for _ in range(12)))
    config = tmp_path / "tokenpulse.toml"
    config.write_text("wal_segment_bytes = 65536\n")  # a few lines a segment: most are deleted once stored
    args = ("ingest", "--config", str(config), "--data", str(tmp_path / "data"), str(path))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert len(list((tmp_path / "data").rglob("*.wal"))) < 12
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    store = Store.open(tmp_path / "data")
    try:
        assert store.rows("SELECT count() FROM calls")[0][0] == 12 * 40
    finally:
        store.close()


def test_ingest_with_workers_stores_what_one_process_stores(tmp_path: Path) -> None:
    """Bad lines skipped, a repeated line stored once, and the routes past the cap folded alike."""
    path = tmp_path / "traces.jsonl"
    spans = [[llm_span(**{"tokenpulse.route": f"/r{n}"}) for _ in range(3)] for n in range(9)]
    lines = [otlp_json_line(*request) for request in spans]
    lines[3] = "{not json"
    lines.append(lines[0])  # the same request again (a file concatenated twice): stored once
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "tokenpulse.toml"
    config.write_text("max_dimension_values = 5\n")  # 8 routes: the last 3 lines' become __other__
    stored = {}
    for workers in ("1", "2"):
        data = tmp_path / f"data-{workers}"
        result = run_cli(
            "ingest", "--workers", workers, "--config", str(config), "--data", str(data), str(path)
        )
        assert result.returncode == 1  # the bad line
        assert "ingested 24 calls" in result.stdout and "traces.jsonl:4: skipped" in result.stderr
        store = Store.open(data)
        try:
            stored[workers] = store.rows("SELECT span_id, route, input_tokens FROM calls ORDER BY span_id")
        finally:
            store.close()
    assert len(stored["1"]) == 24 and stored["2"] == stored["1"]
    routes = sorted(route for _, route, _ in stored["2"])
    assert routes == sorted(["/r0", "/r1", "/r2", "/r4", "/r5"] * 3 + ["__other__"] * 9)


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


HEAVY = (
    *("pandas", "pydantic", "chdb", "grpc", "fastapi", "tqdm"),
    *("tokenpulse.simulate", "tokenpulse.reconcile", "tokenpulse.config", "tokenpulse.storage"),
    *("tokenpulse.collector", "tokenpulse.detectors"),
)


def _heavy(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> set[str]:
    return {m for m in modules for h in heavy if m == h or m.startswith(f"{h}.")}


def test_the_command_line_module_imports_what_every_command_needs_only() -> None:
    """multiprocessing's spawn imports the main module (tokenpulse.cli) again in each worker of
    `ingest --workers N`: what it imports at the top, every worker pays for (it was ~2 CPU-seconds)."""
    assert not _heavy(_modules_after("import tokenpulse.cli"))


def test_the_ingest_command_is_parsed_without_the_modules_of_other_commands() -> None:
    parse = "from tokenpulse.cli import _parser; _parser('ingest').parse_args(['ingest', 'f'])"
    assert not _heavy(_modules_after(parse), ("tokenpulse.simulate", "tokenpulse.reconcile", "pandas"))
    # Without a command, every command's options are there (`tokenpulse --help`, tests).
    assert "tokenpulse.simulate.command" in _modules_after("from tokenpulse.cli import _parser; _parser()")


def test_second_process_on_the_same_data_directory_gets_a_clear_error(daemon: Daemon) -> None:
    result = run_cli("ingest", "--data", str(daemon.data_dir), "/dev/null")
    assert result.returncode == 2
    assert f"in use by another tokenpulse process (pid {daemon.process.pid})" in result.stderr


def test_settings_precedence_flag_over_environment_over_file(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text(
        "api_port = 9000\notlp_http_port = 9318\nretention_days = 30\n"
        '[normalize]\nroute_keys = ["http.route"]\n[normalize.extra_dimensions]\nteam = ["app.team"]\n'
        '[prices."my-model"]\ninput = 0.5\noutput = 1.5\n'
    )
    monkeypatch.setenv("TOKENPULSE_API_PORT", "9100")
    monkeypatch.setenv("TOKENPULSE_OTLP_HTTP_PORT", "9400")
    settings = load_settings(config, otlp_http_port=9500, host=None)
    assert (settings.api_port, settings.otlp_http_port, settings.retention_days) == (9100, 9500, 30)
    assert settings.host == "127.0.0.1"
    assert settings.normalize.route_keys == ("http.route",)
    assert settings.normalize.extra_dimensions == {"team": ("app.team",)}
    assert settings.prices["my-model"].input == Decimal("0.5")
