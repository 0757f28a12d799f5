"""Regenerate the fixtures: what each instrumentation library emits, as OTLP JSON lines.

    python -m tests.interop.capture [--out tests/fixtures/interop]

Runs every library's driver over OTLP/HTTP against a temporary `tokenpulse serve` and keeps a copy of
every span the library exported (`<library>.jsonl`), plus the package versions they came from
(`versions.json`). tests/test_interop_fixtures.py replays them through normalization without the libraries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from tests.daemon import Daemon
from tests.interop.driver import LIBRARIES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "interop"
PACKAGES = (
    "openai",
    "anthropic",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-openai",
    "opentelemetry-instrumentation-anthropic",
    "opentelemetry-instrumentation-openai-v2",
    "opentelemetry-util-genai",
    "openinference-instrumentation-openai",
    "openinference-instrumentation-anthropic",
    "openlit",
    "pydantic-ai-slim",
    "langfuse",
)


def capture(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        daemon = Daemon(Path(scratch) / "data").start()
        try:
            for library in LIBRARIES:
                target = out / f"{library}.jsonl"
                target.unlink(missing_ok=True)
                subprocess.run(
                    [sys.executable, "-m", "tests.interop.driver", library, "http", daemon.otlp_http,
                     "--capture", str(target)],
                    check=True, stdout=subprocess.DEVNULL, timeout=120,
                )  # fmt: skip
                print(f"{target}: {sum(1 for _ in target.open())} spans")
        finally:
            daemon.stop()
    versions = {package: version(package) for package in PACKAGES}
    (out / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    capture(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
