"""The `tokenpulse` command: serve, ingest, backtest, summary, simulate, silence, config."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only what every command needs is imported here: a worker process of `ingest --workers N` (started by
# multiprocessing's spawn) imports this module again, and the rest cost it ~1.5 CPU-seconds.
from tokenpulse.errors import UserError
from tokenpulse.export import COUNTS, summary_csv

if TYPE_CHECKING:
    from tokenpulse.collector.pipeline import IngestResult, Prepared
    from tokenpulse.config import Settings
    from tokenpulse.runtime import Runtime

log = logging.getLogger("tokenpulse")


def _storage_arguments(parser: argparse.ArgumentParser) -> None:
    # Not exclusive: with a ClickHouse server the data directory still holds the write-ahead log.
    parser.add_argument(
        "--data", type=Path, help="data directory: embedded store, write-ahead log (env TOKENPULSE_DATA)"
    )
    parser.add_argument("--clickhouse", help="ClickHouse server URL (env TOKENPULSE_CLICKHOUSE_URL)")
    parser.add_argument("--config", type=Path, help="TOML config file (env TOKENPULSE_CONFIG)")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command``, the options of the other commands that live in
    their own modules are left out (importing simulate's and reconcile's took ~2 CPU-s of every run)."""
    from tokenpulse.client import API_HELP

    parser = argparse.ArgumentParser(prog="tokenpulse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the collector and the API")
    _storage_arguments(serve)
    serve.add_argument("--host", help="bind address (env TOKENPULSE_HOST, default 127.0.0.1)")
    serve.add_argument("--otlp-http-port", type=int, help="env TOKENPULSE_OTLP_HTTP_PORT, default 4318")
    serve.add_argument("--otlp-grpc-port", type=int, help="env TOKENPULSE_OTLP_GRPC_PORT, default 4317")
    serve.add_argument("--api-port", type=int, help="env TOKENPULSE_API_PORT, default 8000")
    serve.add_argument(
        "--workers", type=int,
        help="processes receiving OTLP, one writer for all (env TOKENPULSE_WORKERS; default 0: one per "
        "core; 1: all in the daemon's process)",
    )  # fmt: skip

    ingest = commands.add_parser("ingest", help="load OTLP JSON lines files (the Collector's file exporter)")
    _storage_arguments(ingest)
    ingest.add_argument(
        "files", nargs="+", type=Path, help="files with one ExportTraceServiceRequest per line"
    )
    ingest.add_argument("--tenant", default="", help="the tenant the rows belong to (with API keys)")
    ingest.add_argument(
        "--workers", type=int, default=1,
        help="processes decoding and normalizing lines in parallel (default 1: this process alone)",
    )  # fmt: skip

    backtest = commands.add_parser("backtest", help="replay the detectors over stored history")
    _storage_arguments(backtest)
    backtest.add_argument("--start", required=True, help=f"history before it is the baseline; {TIME_HELP}")
    backtest.add_argument("--end", required=True, help=TIME_HELP)
    backtest.add_argument("--step", default="1m", help="evaluation step: Nm or Nh (default 1m)")
    backtest.add_argument(
        "--notify", action="store_true", help="also send the transitions through the configured receivers"
    )
    backtest.add_argument(
        "--coverage",
        action="store_true",
        help="also say what each detector makes of each scope at the end: watched, learning, not applicable",
    )

    summary = commands.add_parser("summary", help="print calls, tokens and cost from a running daemon")
    summary.add_argument("--api", help=API_HELP)
    summary.add_argument("--start", help=f"{TIME_HELP} (default: one hour before --end)")
    summary.add_argument("--end", help=f"{TIME_HELP} (default: now)")
    summary.add_argument("--group-by", default="service,model", help="comma-separated dimensions")
    output = summary.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the API's JSON")
    output.add_argument("--csv", action="store_true", help="print CSV (one row per group, no totals row)")

    config = commands.add_parser("config", help="check the configuration")
    config_actions = config.add_subparsers(dest="config_action", required=True)
    check = config_actions.add_parser(
        "check", help="print the effective configuration (secrets masked) and every problem; exit 1 on any"
    )
    _storage_arguments(check)

    simulate = commands.add_parser("simulate", help="generate realistic LLM traffic with injected incidents")
    if command in (None, "simulate"):
        from tokenpulse.simulate import command as simulate_command

        simulate_command.add_arguments(simulate)

    silence = commands.add_parser("silence", help="add, list or expire silences on a running daemon")
    if command in (None, "silence"):
        from tokenpulse.alerts import cli as silence_command

        silence_command.add_arguments(silence)

    reconcile = commands.add_parser(
        "reconcile", help="compare stored calls and cost with the providers' usage and cost reports"
    )
    if command in (None, "reconcile"):
        from tokenpulse.reconcile import command as reconcile_command

        reconcile_command.add_arguments(reconcile)
    return parser


def _read_lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, bytes of the file read so far) for each non-blank line of ``path``.

    The position is in the file as stored (compressed for .gz), so it measures progress against its size.
    """
    with path.open("rb") as raw:
        lines = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line, raw.tell()


# How long `ingest` waits for the writer to store what it has buffered: at the end of the run, and
# whenever the write-ahead log is full (the file is read faster than ClickHouse takes the rows).
_STORE_TIMEOUT_SECONDS = 600
# How often `ingest` makes what it appended durable, so the writer stores it (WriteAheadLog.sync).
_SYNC_SECONDS = 0.2
# How long the writer lets a batch grow during `ingest`, unless batch_seconds is configured: a file is read
# far faster than a live load arrives, and each insert and the part it leaves for ClickHouse to merge
# cost the same CPU whatever the batch (10,000-row batches took the ingest process ~2 CPU-s more of ~6
# on 344k spans: bench/file_ingest.py), so a batch fills to batch_rows rather than being cut each second.
_INGEST_BATCH = {"batch_seconds": 5.0}


def _commit_waiting(runtime: Runtime, prepared: Prepared, line: bytes, tenant: str) -> IngestResult:
    """``Pipeline.commit_prepared``, waiting out a full write-ahead log: a file is read faster than
    storage takes the rows. A line with a value over its cardinality cap is normalized again here and
    committed record by record, folding the values one process would. Raises WalFull when the log
    stays full (storage takes nothing)."""
    from tokenpulse.buffer.wal import WalFull
    from tokenpulse.collector.file_ingest import normalize_line

    pipeline = runtime.pipeline
    while True:
        try:
            result = pipeline.commit_prepared(prepared, "file", tenant)
            if result is None:
                normalized = normalize_line(line, pipeline.config, pipeline.pricer, pipeline.limits)
                result = pipeline.commit(normalized, "file", prepared.digest, tenant)
            return result
        except WalFull:
            durable = runtime.wal.sync()  # what the writer may store to make room
            if runtime.writer.stored_end >= durable or not runtime.writer.wait_stored(
                durable, _STORE_TIMEOUT_SECONDS
            ):
                raise


def _ingest_settings(args: argparse.Namespace) -> Settings:
    """The settings of `ingest`: the writer's ``_INGEST_BATCH`` where not configured."""
    from tokenpulse.config import resolve_settings

    flags = {"data_dir": args.data, "clickhouse_url": args.clickhouse}
    settings = _settings(args, **flags)
    _, sources, _ = resolve_settings(args.config, **flags)
    batch = {name: value for name, value in _INGEST_BATCH.items() if name not in sources}
    return settings.model_copy(update=batch)


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tokenpulse.buffer.wal import WalFull
    from tokenpulse.collector import otlp
    from tokenpulse.collector.file_ingest import LineSettings, prepared_lines
    from tokenpulse.memory import freeze_heap
    from tokenpulse.runtime import Runtime

    # Before anything is created: a typo must not leave an empty store behind.
    unreadable = [f"{path}: {_unreadable(path)}" for path in args.files if _unreadable(path)]
    if unreadable:
        raise UserError(f"cannot read {'; '.join(unreadable)}")
    settings = _ingest_settings(args)
    runtime = Runtime.open(settings)
    pipeline = runtime.pipeline
    line_settings = LineSettings(
        pipeline.config, settings.prices, pipeline.limits, tuple(settings.price_tiers), args.tenant
    )
    freeze_heap()
    calls = tool_spans = rejected = bad_lines = 0
    last_offset = 0
    synced_at = time.monotonic()
    try:
        with runtime.wal.deferring_sync():  # one fsync every _SYNC_SECONDS, not one a line
            for path in args.files:
                done = 0
                with tqdm(total=path.stat().st_size, desc=path.name, unit="B", unit_scale=True) as progress:
                    lines = prepared_lines(_read_lines(path), line_settings, args.workers)
                    for (number, line, position), outcome in lines:
                        progress.update(position - done)
                        done = position
                        if isinstance(outcome, otlp.RequestError):
                            bad_lines += 1
                            progress.write(f"{path}:{number}: skipped: {outcome.message}", file=sys.stderr)
                            continue
                        try:
                            result = _commit_waiting(runtime, outcome, line, args.tenant)
                        except WalFull:
                            log.error(
                                "%s:%d: the write-ahead log stays full (is storage down?); the lines before "
                                "it are kept in the log, ingest the rest later",
                                path,
                                number,
                            )
                            return 1
                        calls, tool_spans, rejected = (
                            calls + result.calls,
                            tool_spans + result.tool_spans,
                            rejected + result.rejected,
                        )
                        if result.message:
                            progress.write(f"{path}:{number}: {result.message}", file=sys.stderr)
                        if time.monotonic() - synced_at >= _SYNC_SECONDS:
                            runtime.wal.sync()
                            synced_at = time.monotonic()
                        last_offset = max(last_offset, result.wal_end)
                        progress.set_postfix_str(f"{calls} calls", refresh=False)
        if not runtime.writer.wait_stored(last_offset, timeout=_STORE_TIMEOUT_SECONDS):
            log.error("timed out writing to storage; the data is kept in the write-ahead log")
            return 1
    finally:
        runtime.close()
    print(
        f"ingested {calls} calls and {tool_spans} tool/agent/link spans; "
        f"rejected {rejected} spans, {bad_lines} lines"
    )
    return 0 if not bad_lines else 1


def _reconcile(args: argparse.Namespace) -> int:
    from tokenpulse.reconcile import command as reconcile_command
    from tokenpulse.storage.store import DataDirLock, Store

    settings = _settings(args, data_dir=args.data, clickhouse_url=args.clickhouse)
    lock = DataDirLock(settings.data_dir)
    store = Store.open(settings.data_dir, settings.clickhouse_url)
    try:
        store.migrate()  # a store last served by an older tokenpulse: the queries need today's schema
        return reconcile_command.run(args, settings, store)
    finally:
        store.close()
        lock.release()


def _backtest(args: argparse.Namespace) -> int:
    from tokenpulse.detectors.catalog import build_detectors
    from tokenpulse.detectors.engine import Engine, evaluation_times
    from tokenpulse.storage.store import DataDirLock, Store

    settings = _settings(args, data_dir=args.data, clickhouse_url=args.clickhouse)
    step = _duration(args.step)
    now = datetime.now(UTC)
    times = evaluation_times(parse_time(args.start, "--start", now), parse_time(args.end, "--end", now), step)
    if not times:
        print("tokenpulse backtest: no evaluation time in [start, end]", file=sys.stderr)
        return 2
    chdb = settings.data_dir / "chdb"
    if settings.clickhouse_url is None and not chdb.is_dir():
        # Opening it would create an empty store, and an empty store replays as "no alert": all clear.
        raise UserError(
            f"no store in {settings.data_dir} (--data / TOKENPULSE_DATA): nothing was ever ingested or "
            "served there; check the path"
        )
    lock = DataDirLock(settings.data_dir)
    store = Store.open(settings.data_dir, settings.clickhouse_url)
    try:
        store.migrate()  # a store last served by an older tokenpulse: the queries need today's schema
        engine = Engine(build_detectors(settings.detectors))
        transitions = engine.run(store, times, settings.runbooks)
        for transition in transitions:
            print(json.dumps(transition.to_json()), flush=True)
        if args.coverage:
            _print_coverage(engine.coverage, times[-1])
    finally:
        store.close()
        lock.release()
    if args.notify:
        from tokenpulse.alerts.preview import notify_command

        return notify_command(settings, transitions)
    return 0


def _print_coverage(rows: list[Any], at: datetime) -> None:
    """Per detector, how many scopes it watches, is learning and does not apply to at ``at`` (standard
    error), then one JSON line per detector and scope, with why: "no alert" told from "not looking"."""
    print(f"coverage at {at:%Y-%m-%dT%H:%M:%SZ}:", file=sys.stderr)
    totals: dict[str, Counter[str]] = {}
    for row in rows:
        totals.setdefault(row.detector, Counter())[row.status] += 1
    for detector, counts in sorted(totals.items()):
        print(
            f"  {detector}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
            file=sys.stderr,
        )
    for row in rows:
        print(json.dumps({"coverage": row.to_json()}), flush=True)


TIME_HELP = "ISO 8601 (2026-11-20T14:00Z), `now`, or relative to now: -90m, -3h, -2d"
_RELATIVE = re.compile(r"^-(\d+)([mhd])$")


def parse_time(text: str, flag: str, now: datetime) -> datetime:
    """An absolute ISO 8601 time (UTC when it has no offset), ``now`` or ``-<N>m|h|d`` before ``now``."""
    text = text.strip()
    if text == "now":
        return now
    if relative := _RELATIVE.match(text):
        unit = {"m": "minutes", "h": "hours", "d": "days"}[relative.group(2)]
        return now - timedelta(**{unit: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{flag} {text!r}: not a time; use {TIME_HELP}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or None."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """The settings from the config file, environment and ``flags``; every problem at once, or none."""
    from tokenpulse.config import ConfigError, check_settings, load_settings

    settings = load_settings(args.config, **flags)
    if problems := check_settings(settings, serving=args.command == "serve"):
        raise ConfigError(problems)
    return settings


def _duration(text: str) -> timedelta:
    units = {"m": "minutes", "h": "hours"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise SystemExit(f"tokenpulse: invalid step {text!r}: use Nm or Nh, e.g. 1m")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def _summary(args: argparse.Namespace) -> int:
    from tokenpulse.client import ApiError, call_api

    now = datetime.now(UTC)
    times = {
        name: parse_time(value, f"--{name}", now).isoformat()
        for name, value in (("start", args.start), ("end", args.end))
        if value
    }
    if "end" in times and "start" not in times:  # the API's default start is relative to its end
        times["start"] = (datetime.fromisoformat(times["end"]) - timedelta(hours=1)).isoformat()
    params = {**times, "group_by": args.group_by}
    try:
        path = f"/api/v1/summary?{urllib.parse.urlencode(params)}"
        document: dict[str, Any] = call_api(args.api, "GET", path)
    except ApiError as error:
        print(f"tokenpulse summary: {error}", file=sys.stderr)
        return 1
    group_by = [d for d in args.group_by.split(",") if d]
    if args.json:
        print(json.dumps(document, indent=2))
    elif args.csv:
        sys.stdout.write(summary_csv(document, group_by))
    else:
        print(format_summary(document, group_by))
    return 0


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


_COLUMNS = ("calls", "errors", "input", "cache_read", "cache_write", "output", "reasoning", "cost_usd",
            "unpriced", "hit_ratio", "p99_ms", "ttft_p99_ms")  # fmt: skip


def _cost(group: dict[str, Any]) -> str:
    """The cost as a reader must take it: unknown when nothing was priced, a lower bound when some was."""
    cost, unpriced = group["cost_usd"], group.get("unpriced_calls", 0)
    if cost is None:
        return "unknown"
    return f">={cost}" if unpriced else str(cost)


def _row(group: dict[str, Any]) -> list[str]:
    ratio = group["cache_hit_ratio"]
    return (
        [str(group[k]) for k in COUNTS]
        + [_cost(group), str(group.get("unpriced_calls", 0))]
        + ["-" if ratio is None else f"{ratio:.3f}"]
        + [_or_dash(group[k]["p99"]) for k in ("latency_ms", "ttft_ms")]
    )


def _has_data(document: dict[str, Any]) -> bool:
    return any(group["calls"] for group in document["groups"])


def format_summary(document: dict[str, Any], group_by: list[str]) -> str:
    """The summary as an aligned text table, with a totals row; a plain sentence when there is no data."""
    lines = [f"{document['start']} .. {document['end']}"]
    if not _has_data(document):
        lines.append(
            "no data: no LLM call ended in this range. Is the app exporting to this daemon "
            "(OTEL_EXPORTER_OTLP_ENDPOINT), and is the range right (--start -24h)?"
        )
        return "\n".join(lines)
    # By model, the names the provider answered each model with, last (the dated snapshots).
    answered = ["answered_as"] if "model" in group_by else []
    table = [[*group_by, *_COLUMNS, *answered]]
    table += [
        [*(str(g["key"].get(d, "")) for d in group_by), *_row(g)]
        + [",".join(g.get("response_models", [])) or "-" for _ in answered]
        for g in document["groups"]
    ]
    if group_by and (totals := document.get("totals")):
        table.append(["total", *([""] * (len(group_by) - 1)), *_row(totals), *([""] * len(answered))])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    lines += _quality_lines(document["groups"], group_by)
    unpriced = (document.get("totals") or document["groups"][0]).get("unpriced_calls", 0)
    if unpriced:
        lines.append(
            f"{unpriced} call(s) have no known price (a private model, or a provider/model pair "
            "genai-prices does not know): their cost is not in cost_usd; "
            'price them with [prices."<model>"] in the config file'
        )
    return "\n".join(lines).rstrip()


def _quality_lines(groups: list[dict[str, Any]], group_by: list[str]) -> list[str]:
    """Quality beside cost: per group and evaluation, the pass rate, mean score and dollars per passing
    answer (``storage.quality``); nothing for groups without evaluations."""
    lines = []
    for group in groups:
        for name, q in (group.get("quality") or {}).items():
            key = " ".join(f"{d}={group['key'].get(d, '')}" for d in group_by) or "all"
            parts = [f"{q['evaluations']} evaluated"]
            if q["pass_rate"] is not None:
                parts.append(f"pass rate {q['pass_rate']:.0%} of {q['judged']}")
            if q["mean_score"] is not None:
                parts.append(f"mean score {q['mean_score']:.3g}")
            if q["usd_per_passing_answer"] is not None:
                parts.append(f"${q['usd_per_passing_answer']} per passing answer")
            lines.append(f"quality {key} {name}: " + ", ".join(parts))
    return lines


def _config_check(args: argparse.Namespace) -> int:
    """`config check`: what the daemon would run with, where each value came from, and every problem."""
    from tokenpulse.config import check_settings, effective_configuration, resolve_settings

    settings, sources, problems = resolve_settings(
        args.config, data_dir=args.data, clickhouse_url=args.clickhouse
    )
    problems += check_settings(settings)
    rows = effective_configuration(settings, sources)
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        print(f"{name.ljust(width)}  {value}  ({source})")
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{len(problems)} problem(s)" if problems else "configuration OK")
    return 1 if problems else 0


def _attach_relative_times(argv: list[str]) -> list[str]:
    """``--start -3h`` as ``--start=-3h``: argparse takes a value starting with "-" for an option."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in ("--start", "--end") and _RELATIVE.match(arg):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def main(argv: list[str] | None = None) -> int:
    from tokenpulse.storage.store import DataDirInUse

    argv = _attach_relative_times(sys.argv[1:] if argv is None else argv)
    # The command is the first word: the top-level parser has no option but --help.
    args = _parser(next((word for word in argv if not word.startswith("-")), None)).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per detector cycle
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per notification sent
    try:
        if args.command == "serve":
            from tokenpulse.daemon import serve

            settings = _settings(
                args, data_dir=args.data, clickhouse_url=args.clickhouse, host=args.host,
                otlp_http_port=args.otlp_http_port, otlp_grpc_port=args.otlp_grpc_port,
                api_port=args.api_port, workers=args.workers,
            )  # fmt: skip
            serve(settings)
            return 0
        if args.command == "config":
            return _config_check(args)
        if args.command == "ingest":
            return _ingest(args)
        if args.command == "simulate":
            from tokenpulse.simulate import command as simulate_command

            return simulate_command.run(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command == "silence":
            from tokenpulse.alerts import cli as silence_command

            return silence_command.run(args)
        if args.command == "reconcile":
            return _reconcile(args)
        return _summary(args)
    except (DataDirInUse, UserError) as error:
        # A setup problem the user can fix: their message names it; a traceback would only bury it.
        print(f"tokenpulse: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
