"""Encoding of canonical records as JSONEachRow lines for the ``calls`` and ``tool_spans`` tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

# Decimal (cost) is written as its exact text through ``default=str``; ClickHouse parses it into Decimal.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _timestamp(unix_nano: int) -> str:
    # DateTime64(9) parses "seconds.nanoseconds" exactly; a float would lose the nanoseconds.
    return f"{unix_nano // 1_000_000_000}.{unix_nano % 1_000_000_000:09d}"


def encode_rows(records: Iterable[Mapping[str, Any]]) -> bytes:
    """JSONEachRow bytes of canonical records (``time_unix_nano`` becomes the ``time`` column)."""
    lines = []
    for record in records:
        row = dict(record)
        row["time"] = _timestamp(row.pop("time_unix_nano"))
        lines.append(_dumps(row))
    return ("\n".join(lines) + "\n").encode() if lines else b""
