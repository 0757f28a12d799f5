"""The wire format's primitives read what protobuf's own encoder writes, and skip every kind of field."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.compiled import is_compiled, source_module
from tests.otlp_builders import fixed64, integer, message, tag, text
from tokenpulse.collector import protobuf_wire

NUMBERS = [0, 1, 127, 128, 300, 16_383, 16_384, 2**21, 2**35 + 7, 2**63 - 1, 2**63, 2**64 - 1]


@pytest.mark.parametrize("number", NUMBERS)
def test_a_varint_reads_what_protobuf_writes(number: int) -> None:
    as_int64 = number - (1 << 64) if number >= 1 << 63 else number  # the same ten bytes on the wire
    body = b"\xff" + AnyValue(int_value=as_int64).SerializeToString()  # a tag byte, then the varint
    assert protobuf_wire.varint(body, 2) == (number, len(body))


@pytest.mark.parametrize("number", [1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)])
def test_signed_reads_an_int64_and_an_enum_as_the_parse_does(number: int) -> None:
    (value, _) = protobuf_wire.varint(AnyValue(int_value=number).SerializeToString(), 1)
    assert protobuf_wire.signed(value, 64) == number
    assert protobuf_wire.signed(value | 1 << 70, 64) == number  # excess high bits dropped
    if -(2**31) <= number < 2**31:  # an enum: int32, ten bytes on the wire when negative
        encoded = Span(kind=number).SerializeToString()  # type: ignore[arg-type]
        (kind, _) = protobuf_wire.varint(encoded, 1)
        assert protobuf_wire.signed(kind, 32) == Span.FromString(encoded).kind == number


def test_fixed64_reads_what_protobuf_writes() -> None:
    body = Span(start_time_unix_nano=2**64 - 2).SerializeToString()
    assert protobuf_wire.fixed64(body, 1) == 2**64 - 2
    time = 1_700_000_000_123_456_789
    assert protobuf_wire.fixed64(b"\x00" + fixed64(7, time), 2) == time


GROUP = tag(9, 3) + integer(1, 5) + tag(2, 3) + text(3, "x") + tag(2, 4) + fixed64(4, 1) + tag(9, 4)
FIELDS = [integer(1, 2**63), fixed64(2, 3), tag(3, 5) + b"\x01\x02\x03\x04", message(4, b"\x08" * 200), GROUP]


@pytest.mark.parametrize("field", FIELDS, ids=["varint", "fixed64", "fixed32", "length", "group"])
def test_skip_lands_past_each_kind_of_field(field: bytes) -> None:
    body = field + integer(15, 1)
    wire_tag, at = protobuf_wire.varint(body, 0)
    assert protobuf_wire.skip(body, at, wire_tag) == len(field)


def test_the_compiled_primitives_read_as_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_compiled(protobuf_wire):
        pytest.skip("protobuf_wire is not compiled (setup.py)")
    pure = source_module(protobuf_wire, monkeypatch)
    body = b"".join(FIELDS)
    for module in (pure, protobuf_wire):
        at, ends = 0, []
        while at < len(body):
            wire_tag, at = module.varint(body, at)
            at = module.skip(body, at, wire_tag)
            ends.append(at)
        assert ends == [sum(map(len, FIELDS[: n + 1])) for n in range(len(FIELDS))]
    assert [pure.signed(n, 32) for n in NUMBERS] == [protobuf_wire.signed(n, 32) for n in NUMBERS]
