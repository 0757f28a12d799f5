"""The protobuf wire format's primitives, for readers of encoded OTLP (``otlp_wire``, ``otlp_raw``), and the
one value both read in place: an AnyValue holding one usual scalar.

Compiled with them by mypyc (setup.py), so a compiled reader calls them natively. They take a body the
generated classes' parse accepted: well formed, so nothing here checks bounds or lengths.
"""

from __future__ import annotations

import struct
from typing import Any, Final

VARINT: Final = 0
FIXED64: Final = 1
LENGTH_DELIMITED: Final = 2
FIXED32: Final = 5

_STRING_VALUE: Final = 0x0A  # AnyValue.string_value = 1, length-delimited
_BOOL_VALUE: Final = 0x10  # 2, varint
_INT_VALUE: Final = 0x18  # 3, varint
_DOUBLE_VALUE: Final = 0x21  # 4, fixed64
_unpack_double: Final = struct.Struct("<d").unpack_from


class _NotScalar:
    """The type of NOT_SCALAR."""


NOT_SCALAR: Final = _NotScalar()  # what ``scalar`` gives for any other AnyValue


def varint(body: bytes, at: int) -> tuple[int, int]:
    """The varint at ``body[at]`` and the offset past it."""
    value = 0
    shift = 0
    while True:
        byte = body[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def signed(value: int, bits: int) -> int:
    """A varint as a signed integer of ``bits`` (two's complement; excess high bits dropped, as the
    parse drops them)."""
    if value >> (bits - 1) == 0:
        # The usual value, non-negative and in range: as it is. Compiled, the masks below past 62 bits
        # are Python integers, whose arithmetic allocates: a sixth of the walk of an LLM span's views.
        return value
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def fixed64(body: bytes, at: int) -> int:
    """The little-endian unsigned 64-bit integer at ``body[at]``."""
    # Byte by byte: compiled, no slice and no call out.
    return (
        body[at]
        | body[at + 1] << 8
        | body[at + 2] << 16
        | body[at + 3] << 24
        | body[at + 4] << 32
        | body[at + 5] << 40
        | body[at + 6] << 48
        | body[at + 7] << 56
    )


def skip(body: bytes, at: int, tag: int) -> int:
    """The offset past the value of the field whose ``tag`` was read (a group: past its end tag)."""
    wire = tag & 7
    if wire == VARINT:
        while body[at] >= 0x80:
            at += 1
        return at + 1
    if wire == LENGTH_DELIMITED:
        length, at = varint(body, at)
        return at + length
    if wire == FIXED64:
        return at + 8
    if wire == FIXED32:
        return at + 4
    # A group (deprecated, still valid wire format) ends at the end tag of its field number; the parse
    # accepted the body, so there is one.
    end_tag = tag + 1
    while True:
        inner, at = varint(body, at)
        if inner == end_tag:
            return at
        at = skip(body, at, inner)


def scalar(body: bytes, start: int, end: int) -> Any:
    """The value of the AnyValue at ``body[start:end]`` when it holds one string, int, double or bool and
    nothing else (an int64 in two's complement); NOT_SCALAR for any other encoding (arrays, maps, bytes,
    two fields set, an empty one)."""
    if start >= end:
        return NOT_SCALAR
    tag = body[start]
    if tag == _STRING_VALUE:
        length, at = varint(body, start + 1)
        if at + length == end:
            return body[at:end].decode()
    elif tag == _INT_VALUE:
        value, at = varint(body, start + 1)
        if at == end:
            return signed(value, 64)
    elif tag == _DOUBLE_VALUE:
        if end - start == 9:
            return _unpack_double(body, start + 1)[0]
    elif tag == _BOOL_VALUE:
        value, at = varint(body, start + 1)
        if at == end:
            return value != 0
    return NOT_SCALAR
