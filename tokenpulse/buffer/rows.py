"""The columns of the ``calls``, ``tool_spans`` and ``evaluations`` tables in the order rows carry them
(``TABLE_COLUMNS``, which ``buffer.native``'s blocks follow), and the encoding of canonical records as
JSONCompactEachRow lines.

JSON rows are what the write-ahead logs of versions before the Native blocks hold: ``Store.insert_rows``
still inserts them, and tests write them to stand for such logs and to fill stores. Compact rows (a JSON
array per row, columns named once per insert) were the cheapest text form to write from Python and for
ClickHouse to parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import msgspec

from tokenpulse.buffer.records import CallRecord, EvaluationRecord, ToolSpanRecord

# Record keys in column order; the first, time_unix_nano, is stored as the ``time`` column.
CALL_FIELDS: tuple[str, ...] = tuple(CallRecord.__annotations__)
TOOL_SPAN_FIELDS: tuple[str, ...] = tuple(ToolSpanRecord.__annotations__)
EVALUATION_FIELDS: tuple[str, ...] = tuple(EvaluationRecord.__annotations__)
assert CALL_FIELDS[0] == TOOL_SPAN_FIELDS[0] == EVALUATION_FIELDS[0] == "time_unix_nano"

# The record fields added since the tenant column (migration 3) are written *after* the tenant, so a row
# written by an older version is a prefix of today's row. Inserts read a shorter row's missing trailing
# columns as their defaults (``input_format_json_compact_allow_variable_number_of_columns``, set by
# ``Store.insert_rows``): a write-ahead log left by an older version replays after an upgrade, and no
# acknowledged call is lost to a column-count error.
AFTER_TENANT: frozenset[str] = frozenset(
    ("service_tier", "speed", "inference_geo", "cache_write_1h_tokens", "reported_cost_usd")
)


def _columns(fields: tuple[str, ...]) -> tuple[str, ...]:
    head = tuple(f for f in fields[1:] if f not in AFTER_TENANT)
    return ("time", *head, "tenant", *(f for f in fields if f in AFTER_TENANT))


# Each row holds the tenant: the project of the API key that sent it ("" without authentication).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": _columns(CALL_FIELDS),
    "tool_spans": _columns(TOOL_SPAN_FIELDS),
    "evaluations": _columns(EVALUATION_FIELDS),
}

# One JSON array a line, encoded in C (json.JSONEncoder took ~13 us a row, a third of preparing a call).
# Decimal (cost) is written as its exact text, a string; ClickHouse parses it into Decimal. Floats are
# finite (normalization rejects the others), so no NaN needs json's non-standard spelling.
_encode_lines = msgspec.json.Encoder(decimal_format="string").encode_lines


def values_of(fields: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving a record's values of ``fields`` as a tuple, in one C call per record."""
    if len(fields) == 1:  # itemgetter of one name returns the value, not a tuple
        return lambda record: (record[fields[0]],)
    return itemgetter(*fields) if fields else lambda record: ()


def encode_rows(records: Sequence[Mapping[str, Any]], fields: tuple[str, ...], tenant: str = "") -> bytes:
    """JSONCompactEachRow bytes of ``records``: per line an array of ``fields`` values with the tenant
    in its column (``TABLE_COLUMNS`` order); the first field, the time in nanoseconds, as its text."""
    time, rest = itemgetter(fields[0]), values_of(tuple(f for f in fields[1:] if f not in AFTER_TENANT))
    tail = values_of(tuple(f for f in fields if f in AFTER_TENANT))
    # DateTime64(9) parses "seconds.nanoseconds" exactly; a float would lose the nanoseconds. One list a
    # row built in one expression, its time %-formatted from a divmod: the cheapest per row measured.
    return _encode_lines(
        [
            [_SECONDS % divmod(time(record), 1_000_000_000), *rest(record), tenant, *tail(record)]
            for record in records
        ]
    )


_SECONDS = "%d.%09d"
