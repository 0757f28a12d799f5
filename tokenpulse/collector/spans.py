"""A plain view of one OTLP span, decoupled from protobuf so normalization is testable without I/O.

Compiled by mypyc with the modules that build and read views on the hot path (setup.py): there the
classes are native, so ``otlp_wire`` makes a view with one C call and ``normalize`` reads its fields as
struct members, not through Python's attribute lookup. Interpreted code builds and reads them as before.
Each class writes its ``__init__`` out: compiled, a dataclass's generated one is interpreted code (a
view built through it cost more than the native reads saved); the dataclass still gives equality, repr
and ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

STATUS_UNSET: Final = 0
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2


@dataclass(slots=True, init=False)
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any] = field(default_factory=dict)

    def __init__(self, name: str, time_unix_nano: int, attributes: dict[str, Any] | None = None) -> None:
        self.name = name
        self.time_unix_nano = time_unix_nano
        self.attributes = {} if attributes is None else attributes


@dataclass(slots=True, init=False)
class SpanView:
    """The fields of an OTLP span that tokenpulse reads; ids are lowercase hex ('' when absent)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    resource: Mapping[str, Any]
    scope_name: str = ""
    kind: int = 0
    status_code: int = STATUS_UNSET
    status_message: str = ""
    events: list[SpanEvent] = field(default_factory=list)

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        name: str,
        start_time_unix_nano: int,
        end_time_unix_nano: int,
        attributes: dict[str, Any],
        resource: Mapping[str, Any],
        scope_name: str = "",
        kind: int = 0,
        status_code: int = STATUS_UNSET,
        status_message: str = "",
        events: list[SpanEvent] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.name = name
        self.start_time_unix_nano = start_time_unix_nano
        self.end_time_unix_nano = end_time_unix_nano
        self.attributes = attributes
        self.resource = resource
        self.scope_name = scope_name
        self.kind = kind
        self.status_code = status_code
        self.status_message = status_message
        self.events = [] if events is None else events
