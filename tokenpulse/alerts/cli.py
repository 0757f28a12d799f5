"""`tokenpulse silence add|list|expire`: silences on a running daemon, through its API."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from tokenpulse.client import API_HELP, ApiError, call_api

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_MINUTES = {"m": 1, "h": 60, "d": 1440}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help=API_HELP)
    actions = parser.add_subparsers(dest="silence_action", required=True)
    add = actions.add_parser("add", help="mute alerts whose labels match every matcher")
    add.add_argument(
        "--matcher", "-m", action="append", required=True,
        help="label matcher, repeatable: detector=cost_spike, service=~check.*, severity!=critical",
    )  # fmt: skip
    add.add_argument("--duration", default="2h", help="how long: Nm, Nh or Nd (default 2h)")
    add.add_argument("--comment", default="", help="why (shown in the list)")
    add.add_argument("--author", default="cli", help="who (shown in the list)")
    listing = actions.add_parser("list", help="list silences")
    listing.add_argument("--all", action="store_true", help="include expired silences")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id")


def duration_minutes(text: str) -> float:
    found = _DURATION.match(text)
    if not found or float(found.group(1)) == 0:
        raise SystemExit(f"tokenpulse silence: invalid duration {text!r}: use Nm, Nh or Nd, e.g. 90m")
    return float(found.group(1)) * _MINUTES[found.group(2)]


def _line(silence: dict[str, Any]) -> str:
    return (f"{silence['id']}  {silence['state']:<8} until {silence['ends_at']}  "
            f"{' '.join(silence['matchers'])}  ({silence['created_by']}: {silence['comment']})")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        if args.silence_action == "add":
            body = {"matchers": args.matcher, "duration_minutes": duration_minutes(args.duration),
                    "comment": args.comment, "created_by": args.author}  # fmt: skip
            print(_line(call_api(args.api, "POST", "/api/v1/silences", body)))
        elif args.silence_action == "list":
            for silence in call_api(args.api, "GET", "/api/v1/silences")["silences"]:
                if args.all or silence["state"] != "expired":
                    print(_line(silence))
        else:
            print(_line(call_api(args.api, "DELETE", f"/api/v1/silences/{args.id}")))
    except ApiError as error:
        print(f"tokenpulse silence: {error}", file=sys.stderr)
        return 1
    return 0
