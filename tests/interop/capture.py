"""Regenerate the fixtures: what each instrumentation library emits, as OTLP JSON lines.

    python -m tests.interop.capture [--out tests/fixtures/interop]

Runs every Python library's driver over OTLP/HTTP against a temporary `tokenpulse serve` and keeps a copy
of every span the library exported (`<library>.jsonl`); runs the Vercel AI SDK (Node.js 18+ and npm,
`tests/interop/vercel`, locked versions) against the same fake servers; and records the package
versions (`versions.json`). tests/test_interop_fixtures.py replays the files through normalization
without the libraries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from tests.daemon import Daemon
from tests.interop.driver import LIBRARIES
from tests.interop.fake_llm import FakeLLMServer
from tests.interop.fixtures import FIXTURES
from tests.interop.scenarios import CLIENT_TIMEOUT_S, SCENARIOS

VERCEL = Path(__file__).resolve().parent / "vercel"
NPM_PACKAGES = ("ai", "@ai-sdk/openai", "@ai-sdk/anthropic", "@opentelemetry/sdk-trace-base")
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
    versions.update(capture_vercel(out / "vercel-ai.jsonl"))
    (out / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")


def capture_vercel(target: Path) -> dict[str, str]:
    """Run the AI SDK driver against the fake servers; return the npm package versions it used."""
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name in ("driver.mjs", "package.json", "package-lock.json"):
            shutil.copy(VERCEL / name, work)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, check=True, timeout=300)
        scenarios = [
            {
                **dataclasses.asdict(s),
                "attribution": s.attribution,
                "client_timeout_ms": CLIENT_TIMEOUT_S * 1000,
            }
            for s in SCENARIOS.values()
        ]
        with FakeLLMServer() as fake:
            subprocess.run(
                ["node", "driver.mjs", fake.base_url, str(target.resolve()), json.dumps(scenarios)],
                cwd=work, check=True, timeout=120,
            )  # fmt: skip
        lock = json.loads((Path(work) / "package-lock.json").read_text())["packages"]
    print(f"{target}: {sum(1 for _ in target.open())} spans")
    return {name: lock[f"node_modules/{name}"]["version"] for name in NPM_PACKAGES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    capture(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
