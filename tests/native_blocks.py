"""Reading the Native blocks the write-ahead log holds (``buffer.native``) back into rows, for tests that
look at what a frame holds; tests/buffer/test_native.py holds the blocks to what ClickHouse writes."""

from __future__ import annotations

import struct
from typing import Any

_FIXED = {"Float64": "d", "UInt64": "Q", "Bool": "?", "DateTime64(9, 'UTC')": "q"}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def fixed(self, code: str, count: int) -> list[Any]:
        size = struct.calcsize(code) * count
        values = list(struct.unpack_from(f"<{count}{code}", self.data, self.at))
        self.at += size
        return values

    def strings(self, count: int) -> list[str]:
        values = []
        for _ in range(count):
            size = self.varint()
            values.append(self.data[self.at : self.at + size].decode())
            self.at += size
        return values

    def column(self, kind: str, count: int) -> list[Any]:
        if kind in _FIXED:
            return self.fixed(_FIXED[kind], count)
        if kind == "String":
            return self.strings(count)
        if kind.startswith("Nullable("):
            nulls = self.fixed("?", count)
            values = self.column(kind[len("Nullable(") : -1], count)
            return [None if null else value for null, value in zip(nulls, values, strict=True)]
        if kind == "LowCardinality(String)":
            _version, flags, size = self.fixed("Q", 3)
            keys = self.strings(size)
            (rows,) = self.fixed("Q", 1)
            indexes = self.fixed("BHI"[flags & 0xFF], rows)
            return [keys[index] for index in indexes]
        if kind == "Map(String, String)":
            offsets = self.fixed("Q", count)
            total = offsets[-1] if offsets else 0
            keys, values = self.strings(total), self.strings(total)
            starts = [0, *offsets[:-1]]
            pairs = zip(starts, offsets, strict=True)
            return [dict(zip(keys[a:b], values[a:b], strict=True)) for a, b in pairs]
        raise ValueError(f"no reader for {kind}")


def read_blocks(data: bytes) -> list[dict[str, Any]]:
    """Every row of the concatenated Native blocks ``data``, as a dict of column -> value."""
    reader = _Reader(data)
    rows: list[dict[str, Any]] = []
    while reader.at < len(data):
        columns, count = reader.varint(), reader.varint()
        block: list[dict[str, Any]] = [{} for _ in range(count)]
        for _ in range(columns):
            (name,) = reader.strings(1)
            (kind,) = reader.strings(1)
            for row, value in zip(block, reader.column(kind, count), strict=True):
                row[name] = value
        rows += block
    return rows
