"""Limits on what one client can make tokenpulse hold: spans per request, attributes per span, and the
number of distinct values of each low-cardinality dimension (a runaway route or model name must not
explode the per-minute rollup, whose rows are one per combination of dimension values per minute).

Body sizes (compressed and decompressed) are limited where the body is read (``otlp``); these limits
apply to a decoded request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import Counter

from tokenpulse.collector.otlp import PayloadTooLarge

# The value a dimension takes once its cap is reached, in storage and in every query.
OTHER = "__other__"

# Dimensions stored as LowCardinality and grouped by in the rollup or per-kind queries. The user and
# session are not among them: they are plain strings, read only from the raw table.
CALL_DIMENSIONS = (
    "service", "service_version", "environment", "provider", "request_model", "response_model",
    "operation", "route", "prompt_version", "router", "error_type",
)  # fmt: skip
TOOL_SPAN_DIMENSIONS = ("service", "environment", "name", "error_type")

DIMENSION_VALUES_CAPPED = Counter(
    "tokenpulse_dimension_values_capped",
    f"Records whose dimension value was replaced by {OTHER!r}: the dimension had reached its cap of "
    "distinct values in the current hour.",
    ["dimension"],
)


class TooManySpans(PayloadTooLarge):
    """A request with more spans than ``max_spans_per_request`` (413, gRPC INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Limits:
    max_spans_per_request: int = 50_000
    max_attributes_per_span: int = 4_096  # a span's own attributes; OTel SDKs default to 128
    max_dimension_values: int = 2_000  # distinct values per dimension per hour

    def __post_init__(self) -> None:
        for name in ("max_spans_per_request", "max_attributes_per_span", "max_dimension_values"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()


def check_span_count(request: ExportTraceServiceRequest, limit: int) -> int:
    """The number of spans in ``request``; raises TooManySpans past ``limit`` (before any is decoded)."""
    spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    if spans > limit:
        raise TooManySpans(f"request holds {spans} spans, more than the limit of {limit}")
    return spans


class CardinalityCap:
    """At most ``limit`` distinct values per dimension per window; later new values become OTHER.

    Values already admitted in the window pass unchanged, so the routes and models a service uses every
    hour keep their names while a flood of new ones (ids in a route, a model name with a timestamp) is
    folded into one bucket and counted.
    """

    def __init__(
        self, limit: int, window_seconds: float = 3600, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.clock = clock
        self._window = -1
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def apply(self, records: Iterable[MutableMapping[str, Any]], dimensions: tuple[str, ...]) -> None:
        """Replace, in place, each value of ``dimensions`` that is over the cap."""
        capped: dict[str, int] = {}
        with self._lock:
            window = int(self.clock() // self.window_seconds)
            if window != self._window:
                self._window, self._seen = window, {}
            for record in records:
                for dimension in dimensions:
                    value = record[dimension]
                    seen = self._seen.setdefault(dimension, set())
                    if not value or value in seen:  # an absent dimension takes no slot
                        continue
                    if len(seen) < self.limit:
                        seen.add(value)
                    else:
                        record[dimension] = OTHER
                        capped[dimension] = capped.get(dimension, 0) + 1
        for dimension, count in capped.items():
            DIMENSION_VALUES_CAPPED.labels(dimension).inc(count)
