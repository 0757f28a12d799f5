"""The protobuf wire format's primitives, for readers of encoded OTLP (``otlp_wire``, ``otlp_raw``).

Compiled with them by mypyc (setup.py), so a compiled reader calls them natively. They take a body the
generated classes' parse accepted: well formed, so nothing here checks bounds or lengths.
"""

from __future__ import annotations

from typing import Final

VARINT: Final = 0
FIXED64: Final = 1
LENGTH_DELIMITED: Final = 2
FIXED32: Final = 5


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
