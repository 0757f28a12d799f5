"""`tokenpulse simulate`: arguments and the run (generation -> SDK emission, plus the manifest)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tokenpulse.simulate.incidents import SCENARIOS, build_scenario, default_duration
from tokenpulse.simulate.traffic import DEFAULT_RATE

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """``2d``, ``90m``, ``1h30m``, ``45s`` as a timedelta."""
    compact = text.strip().lower()
    if not compact or _DURATION_PART.sub("", compact):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 2d, 6h, 90m, 1h30m")
    duration = sum(
        (timedelta(**{_UNITS[unit]: float(value)}) for value, unit in _DURATION_PART.findall(compact)),
        timedelta(),
    )
    if duration <= timedelta():
        raise argparse.ArgumentTypeError("duration must be positive")
    return duration


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ISO 8601 time {text!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tokenpulse simulate``."""
    parser.add_argument(
        "--scenario", default="demo", choices=SCENARIOS, metavar="NAME",
        help="clean | demo (clean history, then cache collapse, cost spike and p99 drift in the last 40 min) "
             "| incidents (day 1 clean, day 2 every incident and confounder) "
             "| one incident or confounder kind "
             "(clean with it at mid-range). Default: demo",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--start", type=parse_time,
        help="simulated start, ISO 8601 (default: a backfill ending now; with --speed, chosen so the "
             "simulated clock catches up with now at the end)",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=parse_duration,
        help="e.g. 2d, 6h, 90m (default: 2d for clean and incidents, 4h for demo, 6h for one kind)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=_positive, default=DEFAULT_RATE,
        help=f"LLM calls per minute at the daily peak (default {DEFAULT_RATE:.0f}: two days ~ 350k calls)",
    )  # fmt: skip
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--output", type=Path, help="write OTLP JSON lines to FILE (.gz to compress)")
    target.add_argument(
        "--endpoint",
        help="OTLP endpoint to send to (default: the SDK's OTEL_EXPORTER_OTLP_* variables, else "
             "127.0.0.1:4317 for grpc, http://127.0.0.1:4318/v1/traces for http)",
    )  # fmt: skip
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="OTLP protocol (grpc)")
    parser.add_argument(
        "--speed", type=_positive,
        help="emit live as simulated time passes, X simulated seconds per second (1 = real time, "
             "60 = a minute per second); default: as fast as possible",
    )  # fmt: skip
    parser.add_argument("--manifest", type=Path, help="write the injected incidents and confounders as JSON")


def run(args: argparse.Namespace) -> int:
    """Generate the scenario and emit it; 0 on success, 1 when export fails, 2 on a bad scenario."""
    from tqdm import tqdm

    from tokenpulse.sdk import otlp_exporter
    from tokenpulse.simulate.diurnal import to_ns
    from tokenpulse.simulate.emit import ExportFailed, JsonLinesExporter, emit
    from tokenpulse.simulate.spec import Turn
    from tokenpulse.simulate.traffic import generate

    duration: timedelta = args.duration or default_duration(args.scenario)
    if args.start is not None:
        start = args.start
    else:
        # A backfill ends now; a live run at --speed X ends when its faster clock catches up with now, so
        # no span ever carries a future timestamp.
        start = datetime.now(UTC).replace(microsecond=0) - duration
        if args.speed is not None:
            start += duration / args.speed
    try:
        scenario = build_scenario(args.scenario, start, duration, args.seed)
    except ValueError as error:
        print(f"tokenpulse simulate: {error}", file=sys.stderr)
        return 2
    if args.manifest is not None:
        args.manifest.write_text(json.dumps(scenario.manifest(args.rate), indent=2) + "\n")

    if args.output is not None:
        exporter, target = JsonLinesExporter(args.output), str(args.output)
    else:
        exporter = otlp_exporter(args.endpoint, args.protocol)
        target = f"OTLP/{args.protocol} {args.endpoint or 'default endpoint'}"
    start_ns = to_ns(scenario.start)
    bar = tqdm(total=int(duration.total_seconds() // 60), unit=" min", desc="simulated", disable=None)

    def progress(turn: Turn) -> None:
        minute = (turn.start_ns - start_ns) // 60_000_000_000
        if minute > bar.n:
            bar.update(minute - bar.n)

    try:
        stats = emit(generate(scenario, args.rate), exporter, speed=args.speed, start_ns=start_ns,
                     progress=progress)  # fmt: skip
    except ExportFailed as error:
        print(f"tokenpulse simulate: sending to {target}: {error}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    incidents = sum(1 for i in scenario.incidents if i.detector)
    confounders = len(scenario.incidents) - incidents
    print(
        f"simulated {stats.calls} LLM calls in {stats.turns} traces ({stats.spans} spans), "
        f"{scenario.start.isoformat()} .. {scenario.end.isoformat()}, scenario {scenario.name}: "
        f"{incidents} incidents, {confounders} confounders; sent to {target} in {stats.seconds:.1f} s"
    )
    return 0
