"""Write the dashboards' JSON (``python -m dashboards.generate``), or check it is up to date (``--check``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.build import DASHBOARDS

OUTPUT = Path(__file__).parent / "json"


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    rendered = {}
    for name, build in DASHBOARDS.items():
        board = build().build()
        for number, panel in enumerate(board.panels or [], start=1):
            panel.id_val = number
        rendered[f"{name}.json"] = json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    return rendered


def stale(directory: Path = OUTPUT) -> list[str]:
    """Files in ``directory`` that differ from what the code builds (missing or extra ones too)."""
    expected = render()
    present = {path.name for path in directory.glob("*.json")}
    differing = [n for n, text in expected.items() if n not in present or (directory / n).read_text() != text]
    return sorted(differing + sorted(present - set(expected)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is out of date")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale()
        if differing:
            print(f"out of date: {', '.join(differing)}; run python -m dashboards.generate", file=sys.stderr)
            return 1
        return 0
    OUTPUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUTPUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
