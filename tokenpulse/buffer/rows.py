"""Encoding of canonical records as JSONCompactEachRow lines for the ``calls``, ``tool_spans`` and
``evaluations`` tables.

Compact rows (a JSON array per row, columns named once per insert) are the cheapest text form to write
from Python and for ClickHouse to parse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from tokenpulse.buffer.records import CallRecord, EvaluationRecord, ToolSpanRecord

# Record keys in column order; the first, time_unix_nano, is stored as the ``time`` column.
CALL_FIELDS: tuple[str, ...] = tuple(CallRecord.__annotations__)
TOOL_SPAN_FIELDS: tuple[str, ...] = tuple(ToolSpanRecord.__annotations__)
EVALUATION_FIELDS: tuple[str, ...] = tuple(EvaluationRecord.__annotations__)
assert CALL_FIELDS[0] == TOOL_SPAN_FIELDS[0] == EVALUATION_FIELDS[0] == "time_unix_nano"

# Each row ends with the tenant: the project of the API key that sent it ("" without authentication).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": ("time", *CALL_FIELDS[1:], "tenant"),
    "tool_spans": ("time", *TOOL_SPAN_FIELDS[1:], "tenant"),
    "evaluations": ("time", *EVALUATION_FIELDS[1:], "tenant"),
}

# Decimal (cost) is written as its exact text through ``default=str``; ClickHouse parses it into Decimal.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def values_of(fields: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving a record's values of ``fields`` as a tuple, in one C call per record."""
    if len(fields) == 1:  # itemgetter of one name returns the value, not a tuple
        return lambda record: (record[fields[0]],)
    return itemgetter(*fields) if fields else lambda record: ()


def encode_rows(records: Sequence[Mapping[str, Any]], fields: tuple[str, ...], tenant: str = "") -> bytes:
    """JSONCompactEachRow bytes of ``records``, one array of ``fields`` values and the tenant per line."""
    lines = []
    columns = values_of(fields)
    for record in records:
        values = [*columns(record), tenant]
        unix_nano = values[0]
        # DateTime64(9) parses "seconds.nanoseconds" exactly; a float would lose the nanoseconds.
        values[0] = f"{unix_nano // 1_000_000_000}.{unix_nano % 1_000_000_000:09d}"
        lines.append(_dumps(values))
    return ("\n".join(lines) + "\n").encode() if lines else b""
