"""Encoding of canonical records as one ClickHouse Native block per table: the write-ahead log's rows.

Native is columnar and binary: ClickHouse reads it without parsing text, and a ``LowCardinality`` column
arrives as its dictionary and one small index a row, which it stores as it is. A call row's insert cost
chDB 6.9 us of CPU as JSONCompactEachRow and 3.1 us as this block (bench/insert.py), and takes ~40% fewer
bytes in the log. Blocks concatenate: a batch of frames is one Native stream, whatever the frames' sizes.

What each table's columns hold is declared here (``NATIVE_COLUMNS``, in ``rows.TABLE_COLUMNS`` order),
and so the types the block states; tests/buffer/test_native.py checks them against the migrated tables.
The encoder is compiled with the collector's hot path (setup.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tokenpulse.buffer.rows import CALL_FIELDS, EVALUATION_FIELDS, TABLE_COLUMNS, TOOL_SPAN_FIELDS

# What a column holds, and so how it is written and the type the block states for it. Decimals travel as
# their text, which ClickHouse casts to the column's Decimal as it parses JSON rows (cutting digits past the
# scale): turning each into a scaled integer here cost 0.4 us a call row, a quarter of all its columns.
_KIND_TYPES: Final[dict[str, str]] = {
    "time": "DateTime64(9, 'UTC')",  # nanoseconds since the epoch
    "float": "Float64",
    "count": "UInt64",
    "flag": "Bool",
    "text": "String",
    "dimension": "LowCardinality(String)",
    "decimal": "String",
    "optional_float": "Nullable(Float64)",
    "optional_decimal": "Nullable(String)",
    "optional_flag": "Nullable(Bool)",
    # The table's keys are LowCardinality(String), made so on insert; most rows carry no extra dimension.
    "map": "Map(String, String)",
}
_KINDS: Final[dict[str, int]] = {kind: number for number, kind in enumerate(_KIND_TYPES)}
_TIME: Final = _KINDS["time"]
_FLOAT: Final = _KINDS["float"]
_COUNT: Final = _KINDS["count"]
_FLAG: Final = _KINDS["flag"]
_TEXT: Final = _KINDS["text"]
_DIMENSION: Final = _KINDS["dimension"]
_DECIMAL: Final = _KINDS["decimal"]
_OPTIONAL_FLOAT: Final = _KINDS["optional_float"]
_OPTIONAL_DECIMAL: Final = _KINDS["optional_decimal"]
_OPTIONAL_FLAG: Final = _KINDS["optional_flag"]
_MAP: Final = _KINDS["map"]

# Per table, what each column of rows.TABLE_COLUMNS holds.
NATIVE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "calls": (
        "time", "float", "text", "text", "text", "dimension", "dimension", "dimension", "dimension",
        "dimension", "dimension", "dimension", "count", "count", "count", "count", "count",
        "optional_float", "dimension", "dimension", "flag", "dimension", "text", "text", "dimension",
        "dimension", "flag", "decimal", "flag", "dimension", "dimension", "map", "dimension", "dimension",
        "dimension", "dimension", "count", "optional_decimal",
    ),
    "tool_spans": (
        "time", "float", "text", "text", "text", "dimension", "dimension", "dimension", "dimension",
        "dimension", "dimension", "flag", "dimension",
    ),
    "evaluations": (
        "time", "text", "text", "dimension", "dimension", "dimension", "dimension", "dimension",
        "dimension", "optional_float", "dimension", "optional_flag", "dimension", "dimension", "text",
        "dimension",
    ),
}  # fmt: skip

_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "calls": CALL_FIELDS,
    "tool_spans": TOOL_SPAN_FIELDS,
    "evaluations": EVALUATION_FIELDS,
}
_TENANT: Final = "tenant"

# The version of LowCardinality's serialization (SharedDictionariesWithAdditionalKeys) and the flags of a
# block's keys: they are additional keys (the block's own dictionary), and the dictionary is new.
_LC_VERSION: Final = (1).to_bytes(8, "little")
_LC_FLAGS: Final = (1 << 9) | (1 << 10)
_UINT8_INDEX: Final = 0
_UINT16_INDEX: Final = 1
_UINT32_INDEX: Final = 2


class NativeTable:
    """One table's block layout: per column its name, the record field it is read from (None for the
    tenant, the same for every row of a request), its type and how it is written."""

    def __init__(self, table: str) -> None:
        columns = TABLE_COLUMNS[table]
        kinds = NATIVE_COLUMNS[table]
        if len(kinds) != len(columns):
            raise ValueError(f"{table}: {len(kinds)} native columns declared for {len(columns)}")
        types = tuple(_KIND_TYPES[kind] for kind in kinds)
        fields = _FIELDS[table]
        self.names: tuple[str, ...] = columns
        self.fields: tuple[str | None, ...] = tuple(
            None if name == _TENANT else (fields[0] if name == "time" else name) for name in columns
        )
        self.types: tuple[str, ...] = types
        self.kinds: tuple[int, ...] = tuple(_KINDS[kind] for kind in kinds)
        self.headers: tuple[bytes, ...] = tuple(
            _string_bytes(name.encode()) + _string_bytes(t.encode())
            for name, t in zip(columns, types, strict=True)
        )
        self.structure = ", ".join(f"`{name}` {t}" for name, t in zip(columns, types, strict=True))


def encode_block(records: Sequence[Mapping[str, Any]], table: NativeTable, tenant: str = "") -> bytes:
    """The Native block of ``records`` in ``table``'s columns, ``tenant`` in its column; b"" for none."""
    count = len(records)
    if not count:
        return b""
    parts: list[bytes] = [_varint(len(table.names)), _varint(count)]
    for header, field, kind in zip(table.headers, table.fields, table.kinds, strict=True):
        parts.append(header)
        if field is None:
            parts.append(_constant_low_cardinality(tenant, count))
        else:
            parts.append(_column(kind, [record[field] for record in records]))
    return b"".join(parts)


def _column(kind: int, values: Sequence[Any]) -> bytes:
    if kind == _DIMENSION:
        return _low_cardinality(values)
    if kind == _TEXT:
        return _strings(values)
    if kind == _COUNT:
        return array("Q", values).tobytes()
    if kind == _FLOAT:
        return array("d", values).tobytes()
    if kind == _FLAG:
        return bytes(values)
    if kind == _TIME:
        return array("q", values).tobytes()
    if kind == _DECIMAL:
        return _strings([str(value) for value in values])
    if kind == _OPTIONAL_FLOAT:
        return _nulls(values) + array("d", [0.0 if value is None else value for value in values]).tobytes()
    if kind == _OPTIONAL_DECIMAL:
        return _nulls(values) + _strings(["" if value is None else str(value) for value in values])
    if kind == _OPTIONAL_FLAG:
        return _nulls(values) + bytes([value is True for value in values])
    if kind == _MAP:
        return _string_map(values)
    raise ValueError(f"no native encoding for column kind {kind}")


def _nulls(values: Sequence[Any]) -> bytes:
    """A Nullable column's null map: 1 where the value is None."""
    return bytes([value is None for value in values])


def _low_cardinality(values: Sequence[str]) -> bytes:
    """The block's dictionary ("" first, as ClickHouse writes it) and each row's index into it."""
    first = values[0]
    if values.count(first) == len(values):  # one value in the whole block: the usual dimension
        return _constant_low_cardinality(first, len(values))
    positions: dict[str, int] = {"": 0}
    keys: list[str] = [""]
    indexes: list[int] = []
    for value in values:
        position = positions.get(value)
        if position is None:
            position = positions[value] = len(keys)
            keys.append(value)
        indexes.append(position)
    size = len(keys)
    if size <= 0xFF:  # ClickHouse's own thresholds: a size, not the largest index, decides
        index_type, index_bytes = _UINT8_INDEX, bytes(indexes)
    elif size <= 0xFFFF:
        index_type, index_bytes = _UINT16_INDEX, array("H", indexes).tobytes()
    else:
        index_type, index_bytes = _UINT32_INDEX, array("I", indexes).tobytes()
    return _low_cardinality_column(keys, index_type, len(values), index_bytes)


def _constant_low_cardinality(value: str, count: int) -> bytes:
    """A LowCardinality(String) column of ``count`` rows that all hold ``value``."""
    keys = [""] if not value else ["", value]
    return _low_cardinality_column(keys, _UINT8_INDEX, count, _SMALL[len(keys) - 1] * count)


def _low_cardinality_column(keys: list[str], index_type: int, count: int, indexes: bytes) -> bytes:
    return b"".join(
        (
            _LC_VERSION,
            (_LC_FLAGS | index_type).to_bytes(8, "little"),
            len(keys).to_bytes(8, "little"),
            _strings(keys),
            count.to_bytes(8, "little"),
            indexes,
        )
    )


def _strings(values: Sequence[str]) -> bytes:
    """Each value as its UTF-8 length (a varint) then its bytes."""
    # The usual column, ids and names in ASCII under 128 characters: each length is one character
    # before its value, the whole joined and encoded at once.
    parts: list[str] = []
    for value in values:
        size = len(value)
        if size >= 0x80:
            break
        parts.append(_CHARACTERS[size])
        parts.append(value)
    else:
        text = "".join(parts)
        if text.isascii():
            return text.encode()
    encoded_parts: list[bytes] = []
    for value in values:
        encoded = value.encode()
        size = len(encoded)
        encoded_parts.append(_SMALL[size] if size < 0x80 else _varint(size))
        encoded_parts.append(encoded)
    return b"".join(encoded_parts)


def _string_map(values: Sequence[dict[str, str]]) -> bytes:
    offsets: list[int] = []
    keys: list[str] = []
    items: list[str] = []
    total = 0
    for mapping in values:
        if mapping:
            keys.extend(mapping.keys())
            items.extend(mapping.values())
            total += len(mapping)
        offsets.append(total)
    return array("Q", offsets).tobytes() + _strings(keys) + _strings(items)


def _string_bytes(encoded: bytes) -> bytes:
    return _varint(len(encoded)) + encoded


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL: Final[list[bytes]] = [bytes([size]) for size in range(0x80)]
_CHARACTERS: Final[list[str]] = [chr(size) for size in range(0x80)]
TABLES: Final[dict[str, NativeTable]] = {table: NativeTable(table) for table in TABLE_COLUMNS}
