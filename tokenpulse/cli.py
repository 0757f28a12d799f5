"""The `tokenpulse` command: serve, ingest, summary, simulate."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from tokenpulse.alerts import cli as silence_command
from tokenpulse.buffer.wal import WalFull
from tokenpulse.client import ApiError, call_api
from tokenpulse.collector import otlp
from tokenpulse.collector.pipeline import IngestResult, Normalized, request_digest
from tokenpulse.config import load_settings
from tokenpulse.simulate import command as simulate_command
from tokenpulse.storage.store import DataDirInUse

if TYPE_CHECKING:
    from tokenpulse.runtime import Runtime

log = logging.getLogger("tokenpulse")


def _storage_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data", type=Path, help="embedded store directory (env TOKENPULSE_DATA)")
    where.add_argument("--clickhouse", help="ClickHouse server URL (env TOKENPULSE_CLICKHOUSE_URL)")
    parser.add_argument("--config", type=Path, help="TOML config file (env TOKENPULSE_CONFIG)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenpulse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the collector and the API")
    _storage_arguments(serve)
    serve.add_argument("--host", help="bind address (env TOKENPULSE_HOST, default 127.0.0.1)")
    serve.add_argument("--otlp-http-port", type=int, help="env TOKENPULSE_OTLP_HTTP_PORT, default 4318")
    serve.add_argument("--otlp-grpc-port", type=int, help="env TOKENPULSE_OTLP_GRPC_PORT, default 4317")
    serve.add_argument("--api-port", type=int, help="env TOKENPULSE_API_PORT, default 8000")

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
    backtest.add_argument("--start", required=True, help="ISO 8601; history before it is the baseline")
    backtest.add_argument("--end", required=True, help="ISO 8601")
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
    summary.add_argument("--api", default="http://127.0.0.1:8000", help="the daemon's API base URL")
    summary.add_argument("--start", help="ISO 8601 (default: one hour ago)")
    summary.add_argument("--end", help="ISO 8601 (default: now)")
    summary.add_argument("--group-by", default="service,model", help="comma-separated dimensions")
    summary.add_argument("--json", action="store_true", help="print the API's JSON")

    simulate = commands.add_parser("simulate", help="generate realistic LLM traffic with injected incidents")
    simulate_command.add_arguments(simulate)

    silence = commands.add_parser("silence", help="add, list or expire silences on a running daemon")
    silence_command.add_arguments(silence)
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


def _commit_waiting(runtime: Runtime, normalized: Normalized, digest: bytes, tenant: str) -> IngestResult:
    """``Pipeline.commit``, waiting out a full write-ahead log: a file is read faster than storage takes
    the rows. Raises WalFull when the log stays full (storage takes nothing)."""
    while True:
        try:
            return runtime.pipeline.commit(normalized, "file", digest, tenant)
        except WalFull:
            durable = runtime.wal.durable_end
            if runtime.writer.stored_end >= durable or not runtime.writer.wait_stored(
                durable, _STORE_TIMEOUT_SECONDS
            ):
                raise


def _ingest(args: argparse.Namespace) -> int:
    from tokenpulse.collector.file_ingest import normalized_lines
    from tokenpulse.runtime import Runtime

    settings = load_settings(args.config, data_dir=args.data, clickhouse_url=args.clickhouse)
    runtime = Runtime.open(settings)
    pipeline = runtime.pipeline
    calls = tool_spans = rejected = bad_lines = 0
    last_offset = 0
    try:
        for path in args.files:
            done = 0
            with tqdm(total=path.stat().st_size, desc=path.name, unit="B", unit_scale=True) as progress:
                lines = normalized_lines(
                    _read_lines(path), pipeline.config, settings.prices, pipeline.limits, args.workers
                )
                for (number, line, position), outcome in lines:
                    progress.update(position - done)
                    done = position
                    if isinstance(outcome, otlp.RequestError):
                        bad_lines += 1
                        progress.write(f"{path}:{number}: skipped: {outcome.message}", file=sys.stderr)
                        continue
                    try:
                        result = _commit_waiting(runtime, outcome, request_digest(line), args.tenant)
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


def _backtest(args: argparse.Namespace) -> int:
    from tokenpulse.detectors.catalog import build_detectors
    from tokenpulse.detectors.engine import Engine, evaluation_times
    from tokenpulse.storage.store import DataDirLock, Store

    settings = load_settings(args.config, data_dir=args.data, clickhouse_url=args.clickhouse)
    step = _duration(args.step)
    times = evaluation_times(_utc(args.start), _utc(args.end), step)
    if not times:
        print("tokenpulse backtest: no evaluation time in [start, end]", file=sys.stderr)
        return 2
    lock = DataDirLock(settings.data_dir)
    store = Store.open(settings.data_dir, settings.clickhouse_url)
    try:
        store.migrate()  # a store last served by an older tokenpulse: the queries need today's schema
        engine = Engine(build_detectors(settings.detectors))
        transitions = engine.run(store, times, settings.runbooks, coverage=args.coverage)
        for transition in transitions:
            print(json.dumps(transition.to_json()), flush=True)
        if args.coverage:
            _print_coverage(engine.coverage, times[-1])
    finally:
        store.close()
        lock.release()
    if args.notify:
        from tokenpulse.alerts.preview import notify_command

        return notify_command(settings, transitions, {d.name: d.settings.window for d in engine.detectors})
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


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(text: str) -> timedelta:
    units = {"m": "minutes", "h": "hours"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise SystemExit(f"tokenpulse: invalid step {text!r}: use Nm or Nh, e.g. 1m")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def _summary(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("start", args.start), ("end", args.end), ("group_by", args.group_by)) if v}
    try:
        path = f"/api/v1/summary?{urllib.parse.urlencode(params)}"
        document: dict[str, Any] = call_api(args.api, "GET", path)
    except ApiError as error:
        print(f"tokenpulse summary: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(format_summary(document, [d for d in args.group_by.split(",") if d]))
    return 0


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def format_summary(document: dict[str, Any], group_by: list[str]) -> str:
    """The summary as an aligned text table."""
    header = [*group_by, "calls", "errors", "input", "cache_read", "cache_write", "output", "reasoning",
              "cost_usd", "hit_ratio", "p99_ms", "ttft_p99_ms"]  # fmt: skip
    table = [header]
    for group in document["groups"]:
        ratio = group["cache_hit_ratio"]
        table.append(
            [*(str(group["key"].get(d, "")) for d in group_by)]
            + [str(group[k]) for k in ("calls", "errors", "input_tokens", "cache_read_tokens",
                                       "cache_write_tokens", "output_tokens", "reasoning_tokens", "cost_usd")]
            + ["-" if ratio is None else f"{ratio:.3f}"]
            + [_or_dash(group[k]["p99"]) for k in ("latency_ms", "ttft_ms")]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"{document['start']} .. {document['end']}"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per detector cycle
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per notification sent
    try:
        if args.command == "serve":
            from tokenpulse.daemon import serve

            settings = load_settings(
                args.config, data_dir=args.data, clickhouse_url=args.clickhouse, host=args.host,
                otlp_http_port=args.otlp_http_port, otlp_grpc_port=args.otlp_grpc_port,
                api_port=args.api_port,
            )  # fmt: skip
            serve(settings)
            return 0
        if args.command == "ingest":
            return _ingest(args)
        if args.command == "simulate":
            return simulate_command.run(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command == "silence":
            return silence_command.run(args)
        return _summary(args)
    except DataDirInUse as error:
        print(f"tokenpulse: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
