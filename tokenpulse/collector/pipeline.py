"""receive -> normalize -> durable buffer: the one path of every span (OTLP/HTTP, OTLP/gRPC, file ingest)
and of every evaluation result (OTLP logs, or events of a call's span)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tokenpulse import metrics
from tokenpulse.buffer.native import TABLES as NATIVE_TABLES
from tokenpulse.buffer.native import encode_block
from tokenpulse.buffer.records import CallRecord, EvaluationRecord, ToolSpanRecord
from tokenpulse.buffer.wal import NATIVE, WriteAheadLog, encode_frame
from tokenpulse.collector.evaluations import (
    evaluation_from_log,
    evaluation_from_span_event,
    is_evaluation_event,
)
from tokenpulse.collector.limits import (
    CALL_DIMENSIONS,
    CALL_TEXTS,
    DEFAULT_LIMITS,
    EVALUATION_DIMENSIONS,
    EVALUATION_TEXTS,
    TOOL_SPAN_DIMENSIONS,
    TOOL_SPAN_TEXTS,
    CardinalityCap,
    Limits,
    TooManySpans,
    check_span_count,
    truncate_and_collect,
)
from tokenpulse.collector.links import LINK_KIND, link_record
from tokenpulse.collector.llm_metrics import LlmMetrics
from tokenpulse.collector.logs import DecodedLogs, count_log_records, iter_evaluation_logs
from tokenpulse.collector.normalize import ENGINE, InvalidSpan, NormalizeConfig, normalize_span
from tokenpulse.collector.otlp import Decoded
from tokenpulse.collector.otlp_proto import iter_raw_spans, iter_spans
from tokenpulse.collector.otlp_raw import RawTraceRequest
from tokenpulse.collector.otlp_wire import WireRequest, wire_spans
from tokenpulse.collector.pricing import Pricer
from tokenpulse.collector.spans import SpanView

if TYPE_CHECKING:
    from tokenpulse.config import Settings

# partial_success messages list a few rejections, not thousands.
_MAX_MESSAGES = 5
# Digests of recent requests remembered to drop exporter retries.
_RECENT_REQUESTS = 100_000
_DIGEST = 16
_EMPTY = bytes(_DIGEST)


def request_digest(body: bytes, signal: str = "") -> bytes:
    """Identity of an (uncompressed) export request body: a retry sends the very same bytes. ``signal``
    ("logs") keeps a logs body apart from a trace body of the same bytes; traces keep the plain digest,
    so the log's frames written before logs were kept are still recognized."""
    return hashlib.blake2b(body, digest_size=_DIGEST, person=signal.encode()).digest()


class RecentRequests:
    """A bounded set of request digests, oldest forgotten first.

    All its memory is allocated up front (an open-addressing table at most half full and a ring in
    insertion order, ~5.6 MB for 100k digests), so the daemon's memory does not climb while it fills:
    an OrderedDict took ~150 bytes a digest, 15 MiB when full and ~8 MiB over a 30-minute soak.
    """

    def __init__(self, capacity: int = _RECENT_REQUESTS) -> None:
        self.capacity = capacity
        self._mask = (1 << (2 * max(capacity, 1)).bit_length()) - 1
        self._table = bytearray((self._mask + 1) * _DIGEST)  # _EMPTY marks a free slot
        self._ring = bytearray(max(capacity, 1) * _DIGEST)  # the digests held, oldest at _next once full
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, digest: bytes) -> bool:
        return self._find(_key(digest))[1]

    def add(self, digest: bytes) -> None:
        key = _key(digest)
        if self.capacity <= 0 or self._find(key)[1]:
            return
        at = self._next * _DIGEST
        if self._size == self.capacity:
            self._remove(bytes(self._ring[at : at + _DIGEST]))
        slot = self._find(key)[0]  # after the removal, which may have moved entries
        self._table[slot * _DIGEST : (slot + 1) * _DIGEST] = key
        self._ring[at : at + _DIGEST] = key
        self._next = (self._next + 1) % self.capacity
        self._size += 1

    def _home(self, key: bytes | bytearray) -> int:
        return int.from_bytes(key[:8], "little") & self._mask

    def _find(self, key: bytes) -> tuple[int, bool]:
        """The slot holding ``key`` and True, or the free slot where it would go and False."""
        table, slot = self._table, self._home(key)
        while True:
            entry = table[slot * _DIGEST : (slot + 1) * _DIGEST]
            if entry == key:
                return slot, True
            if entry == _EMPTY:
                return slot, False
            slot = (slot + 1) & self._mask

    def _remove(self, key: bytes) -> None:
        """Delete by backward shift: later entries of the probe run move up, so no tombstones pile up."""
        hole, found = self._find(key)
        if not found:
            return
        table, mask, probe = self._table, self._mask, hole
        while True:
            probe = (probe + 1) & mask
            entry = table[probe * _DIGEST : (probe + 1) * _DIGEST]
            if entry == _EMPTY:
                break
            home = self._home(entry)
            # The entry may fill the hole unless its home lies cyclically in (hole, probe].
            stays = hole < home <= probe if hole <= probe else (home > hole or home <= probe)
            if not stays:
                table[hole * _DIGEST : (hole + 1) * _DIGEST] = entry
                hole = probe
        table[hole * _DIGEST : (hole + 1) * _DIGEST] = _EMPTY
        self._size -= 1


def _key(digest: bytes) -> bytes:
    # request_digest gives 16 bytes; anything else (tests) and the free-slot marker itself are hashed.
    return bytes(digest) if len(digest) == _DIGEST and digest != _EMPTY else request_digest(digest)


@dataclass
class IngestResult:
    """What became of the spans of one request."""

    calls: int = 0
    tool_spans: int = 0  # rows of the tool_spans table: tool, agent and link spans
    links: int = 0  # of which links (GenAI spans between a tool and its calls, see collector.links)
    ignored: int = 0  # spans that are none of these: not tokenpulse's business
    evaluations: int = 0  # evaluation results (log records, or events of call spans)
    rejected: int = 0  # spans, or for a logs request log records
    dropped_events: int = 0  # evaluation events of accepted spans that could not be read
    reasons: list[str] = field(default_factory=list)
    truncated: int = 0  # attribute values stored cut to the length limit
    wal_end: int = 0  # log offset just past this request's frame (0 if nothing was written)
    duplicate: bool = False  # the same request was accepted before: an exporter retry, dropped
    items: str = "span"  # what ``rejected`` counts: "span", or "log record"

    @property
    def message(self) -> str:
        """The OTLP partial_success error_message: why spans (log records) were rejected, or — with none
        rejected — a warning that values were truncated or evaluation events dropped."""
        parts = []
        failures = self.rejected + self.dropped_events
        if failures:
            more = failures - len(self.reasons)
            suffix = f"; and {more} more" if more > 0 else ""
            counts = [f"{self.rejected} {self.items}(s) rejected"] if self.rejected else []
            counts += [f"{self.dropped_events} evaluation event(s) dropped"] if self.dropped_events else []
            parts.append(", ".join(counts) + ": " + "; ".join(self.reasons) + suffix)
        if self.truncated:
            parts.append(f"{self.truncated} attribute value(s) truncated to the limit (max_attribute_length)")
        return ". ".join(parts)


class RequestLog(Protocol):
    """Where a pipeline buffers requests: the write-ahead log and the memory of requests it holds.

    In one process it is ``LocalRequestLog``; in a worker of ``serve --workers N`` it is a channel to
    the daemon's process, which owns the one log and the one retry memory (collector.workers)."""

    def seen(self, digest: bytes) -> bool:
        """Whether a request with this digest is known to be buffered already (a cheap early answer;
        ``append`` decides)."""
        ...

    def append(self, frame: bytes, digest: bytes) -> int | None:
        """Append ``frame`` durably and remember ``digest``; the offset just past it, or None when a
        request with this digest was buffered before (nothing appended). Raises WalFull / WalClosed."""
        ...


class LocalRequestLog:
    """The write-ahead log and the digests of the requests it holds, in this process.

    The memory starts with the requests of the segments the log has deleted (the latest it kept) and
    every frame still on disk, so a retry of a request acknowledged before a restart is recognized after
    it, and so is a file ingested again.
    """

    def __init__(self, wal: WriteAheadLog) -> None:
        self.wal = wal
        self.recent = RecentRequests()
        self._lock = threading.Lock()
        for digest in wal.released_digests():
            self.recent.add(digest)
        for frame in wal.read(wal.oldest, wal.durable_end):
            if any(frame.request_digest):
                self.recent.add(frame.request_digest)

    def seen(self, digest: bytes) -> bool:
        """Whether the log holds a request with this digest; True once that copy may be acknowledged
        (``append``), as a duplicate is acknowledged too."""
        if not self._holds(digest):
            return False
        self.wal.wait_acknowledgeable(self.wal.written_end)
        return True

    def append(self, frame: bytes, digest: bytes) -> int | None:
        # The digest is remembered once the frame is written, before its fsync: a retry arriving
        # during the fsync waits for it (see write) instead of being stored a second time. Two copies
        # arriving at the same instant may still both be stored (the check and the write are not one
        # atomic step); an exporter's retry comes after its timeout.
        end, written = self.write(frame, digest)
        self.wal.wait_acknowledgeable(end)
        return end if written else None

    def write(self, frame: bytes | memoryview, digest: bytes) -> tuple[int, bool]:
        """``append`` without the wait for the fsync: (the offset the log must be durable to before the
        request is answered, whether ``frame`` was written). A repeat of a remembered request writes
        nothing and waits for the log as written now, which holds its first copy: answering
        "duplicate" acknowledges the request too. Raises WalFull / WalClosed."""
        if self._holds(digest):
            return self.wal.written_end, False
        end = self.wal.write(frame)
        if digest:
            with self._lock:
                self.recent.add(digest)
        return end, True

    def _holds(self, digest: bytes) -> bool:
        if not digest:
            return False
        with self._lock:
            return digest in self.recent


class Pipeline:
    """Normalizes every span of a request and appends the accepted ones to the log as one frame.

    An exporter whose request timed out, or whose daemon was killed before it answered, sends the
    same request again. Requests are remembered by digest — including those still in the log after a
    restart — and a repeat is acknowledged without being stored again, so the rollup never counts a
    retried span twice.

    ``wal`` is the write-ahead log of this process, or a RequestLog (a worker's channel to the log).
    """

    def __init__(
        self,
        wal: WriteAheadLog | RequestLog,
        config: NormalizeConfig,
        pricer: Pricer,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.log: RequestLog = LocalRequestLog(wal) if isinstance(wal, WriteAheadLog) else wal
        self.wal = wal if isinstance(wal, WriteAheadLog) else None
        self.config = config
        self.pricer = pricer
        self.limits = limits
        self.cardinality = CardinalityCap(limits.max_dimension_values)
        self.llm_metrics = LlmMetrics()

    def ingest(self, request: Decoded, transport: str, digest: bytes = b"", tenant: str = "") -> IngestResult:
        """Normalize and durably buffer ``request``; returns once the accepted spans are on disk.

        ``digest`` (request_digest of the body) lets a retried request be recognized; ``tenant`` (of the
        sender's API key) is stored on every row.
        Raises WalFull / WalClosed when nothing could be buffered (the client should retry), TooManySpans
        for a request over the limit.
        """
        if self._is_retry(digest, transport):  # before normalizing: a retry costs no work
            return IngestResult(duplicate=True)
        normalized = normalize_request(request, self.config, self.pricer, self.limits)
        return self.commit(normalized, transport, digest, tenant)

    def commit(
        self, normalized: Normalized, transport: str, digest: bytes = b"", tenant: str = ""
    ) -> IngestResult:
        """Buffer a request ``normalize_request`` made (here or in another process) as ``ingest`` does:
        limits that hold across requests, the log append, the retry memory and the metrics."""
        if self._is_retry(digest, transport):
            return IngestResult(duplicate=True)
        result = IngestResult(
            ignored=normalized.ignored,
            rejected=normalized.rejected,
            reasons=list(normalized.reasons),
            links=normalized.links,
            dropped_events=normalized.dropped_events,
        )
        calls, tool_spans, evaluations = normalized.calls, normalized.tool_spans, normalized.evaluations
        if not self._buffer(calls, tool_spans, evaluations, result, digest, tenant):
            return self._duplicate(transport)
        _count_received(normalized, transport)
        _count_accepted(result, _unpriced(calls))
        self.llm_metrics.observe(calls)
        return result

    def commit_prepared(self, prepared: Prepared, transport: str, tenant: str = "") -> IngestResult | None:
        """Buffer a request ``prepare_request`` made (here or in another process) as ``commit`` would,
        without its records: the frame is appended as it was encoded.

        None, with nothing buffered or counted, when a dimension value of the request is over its
        cardinality cap: the caller commits the request's records with ``commit`` instead, which folds
        exactly the values one process would. The tokenpulse_llm_* metrics are not observed (they need
        the records; `tokenpulse ingest`, the one user, serves no /metrics).
        """
        if self._is_retry(prepared.digest, transport):
            return IngestResult(duplicate=True)
        if not self.cardinality.admit(prepared.dimension_values, tenant):
            return None
        result = IngestResult(
            ignored=prepared.normalized.ignored,
            rejected=prepared.normalized.rejected,
            reasons=list(prepared.normalized.reasons),
            links=prepared.normalized.links,
            dropped_events=prepared.normalized.dropped_events,
            truncated=prepared.truncated,
        )
        if prepared.frame:
            end = self.log.append(prepared.frame, prepared.digest)
            if end is None:
                return self._duplicate(transport)
            result.wal_end = end
        result.calls, result.tool_spans, result.evaluations = prepared.counts
        _count_received(prepared.normalized, transport)
        _count_accepted(result, prepared.unpriced)
        return result

    def ingest_logs(
        self, request: DecodedLogs, transport: str, digest: bytes = b"", tenant: str = ""
    ) -> IngestResult:
        """Durably buffer the evaluation results of a logs export request, as ``ingest`` does spans:
        the same retry memory, limits and log; every other log record is counted and dropped.

        Raises WalFull / WalClosed when nothing could be buffered, TooManySpans for a request with more
        log records than the span limit.
        """
        if self._is_retry(digest, transport):
            return IngestResult(duplicate=True, items="log record")
        received = count_log_records(request)
        if received > self.limits.max_spans_per_request:
            limit = self.limits.max_spans_per_request
            raise TooManySpans(f"request holds {received} log records, more than the limit of {limit}")
        result = IngestResult(items="log record")
        evaluations: list[EvaluationRecord] = []
        max_attributes = self.limits.max_attributes_per_span
        for view in iter_evaluation_logs(request):
            try:
                if len(view.attributes) > max_attributes:
                    count = len(view.attributes)
                    raise InvalidSpan(f"{count} attributes, over the limit of {max_attributes}")
                evaluations.append(evaluation_from_log(view, self.config))
            except InvalidSpan as error:
                result.rejected += 1
                if len(result.reasons) < _MAX_MESSAGES:
                    result.reasons.append(f"log record of span {view.span_id or '?'}: {error}")
        result.ignored = received - len(evaluations) - result.rejected
        if not self._buffer([], [], evaluations, result, digest, tenant):
            return self._duplicate(transport, items="log record")
        # After the append, as _count_received: a retry the daemon's log drops counts in neither.
        metrics.OTLP_ITEMS_RECEIVED.labels("logs", transport).inc(received)
        metrics.EVALUATIONS_REJECTED.inc(result.rejected)
        metrics.EVALUATIONS_ACCEPTED.labels("log").inc(len(evaluations))
        return result

    def _buffer(
        self,
        calls: list[CallRecord],
        tool_spans: list[ToolSpanRecord],
        evaluations: list[EvaluationRecord],
        result: IngestResult,
        digest: bytes,
        tenant: str,
    ) -> bool:
        """Cut and cap one request's rows (``_limit``), append them to the log as one frame (returns once
        it is durable) and remember the request; what a request of spans and one of logs share. False if
        the log holds the request already: a retry that passed the early check (in a worker, the log is
        another process's)."""
        self._limit(calls, tool_spans, evaluations, result, tenant)
        if calls or tool_spans or evaluations:
            end = self.log.append(_frame(calls, tool_spans, evaluations, digest, tenant), digest)
            if end is None:
                return False
            result.wal_end = end
        result.calls, result.tool_spans, result.evaluations = len(calls), len(tool_spans), len(evaluations)
        return True

    def _limit(
        self,
        calls: list[CallRecord],
        tool_spans: list[ToolSpanRecord],
        evaluations: list[EvaluationRecord],
        result: IngestResult,
        tenant: str,
    ) -> None:
        """Cut the request's long texts and fold the dimension values over ``tenant``'s caps, in place."""
        result.truncated, values = limit_texts(
            calls, tool_spans, evaluations, self.limits.max_attribute_length
        )
        # Admitting every value at once (the usual case: none over its cap) costs a set difference per
        # dimension. When a value is over its cap, admit takes none and the records are folded one by
        # one, calls first, exactly as before admit was asked.
        if not self.cardinality.admit(values, tenant):
            self.cardinality.apply(calls, CALL_DIMENSIONS, tenant)  # type: ignore[arg-type]
            self.cardinality.apply(tool_spans, TOOL_SPAN_DIMENSIONS, tenant)  # type: ignore[arg-type]
            self.cardinality.apply(evaluations, EVALUATION_DIMENSIONS, tenant)  # type: ignore[arg-type]

    def _is_retry(self, digest: bytes, transport: str) -> bool:
        """Whether a request with this digest was buffered before (counted as a duplicate if so)."""
        seen = self.log.seen(digest)
        if seen:
            metrics.DUPLICATE_REQUESTS.labels(transport).inc()
        return seen

    def _duplicate(self, transport: str, items: str = "span") -> IngestResult:
        metrics.DUPLICATE_REQUESTS.labels(transport).inc()
        return IngestResult(duplicate=True, items=items)


def pipeline_for(settings: Settings, buffer: WriteAheadLog | RequestLog) -> Pipeline:
    """The pipeline ``settings`` describe, buffering into ``buffer`` (the log, or a worker's channel)."""
    limits = Limits(
        max_spans_per_request=settings.max_spans_per_request,
        max_attributes_per_span=settings.max_attributes_per_span,
        max_attribute_length=settings.max_attribute_length,
        max_dimension_values=settings.max_dimension_values,
    )
    return Pipeline(buffer, settings.normalize, Pricer(settings.prices, settings.price_tiers), limits)


@dataclass
class Normalized:
    """The spans of one request normalized, before anything is buffered; picklable, so that a worker
    process can make it and the process owning the log commit it (``Pipeline.commit``)."""

    calls: list[CallRecord] = field(default_factory=list)
    tool_spans: list[ToolSpanRecord] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)  # events of the calls' spans
    received: int = 0
    ignored: int = 0  # neither LLM calls nor tool/agent spans
    rejected: int = 0
    too_many_attributes: int = 0  # of the rejected
    reasons: list[str] = field(default_factory=list)  # the first few rejections
    links: int = 0  # of the tool spans, links (GenAI spans between a tool and its calls)
    dropped_events: int = 0  # evaluation events of accepted spans that could not be read


def normalize_request(
    request: Decoded, config: NormalizeConfig, pricer: Pricer, limits: Limits = DEFAULT_LIMITS
) -> Normalized:
    """Normalize every span of ``request``; what depends on one request only, so any process can do it.

    Raises TooManySpans for a request over the limit.
    """
    received = check_span_count(request, limits.max_spans_per_request)
    max_attributes = limits.max_attributes_per_span
    result = Normalized(received=received)
    calls, tool_spans = result.calls, result.tool_spans
    prefilter = ENGINE.prefilter
    decoded = 0

    def keep(span: Span, scope_name: str) -> bool:
        # Spans that cannot be calls, tools or agents (HTTP, DB, queue...) are dropped undecoded; one
        # over the attribute limit is kept so that it is rejected as before.
        return len(span.attributes) > max_attributes or prefilter.keep(span, scope_name)

    if isinstance(request, WireRequest):
        # The prefilter's test applied on the wire, as iter_raw_spans applies it.
        spans: Iterable[SpanView] = wire_spans(request.body, prefilter, max_attributes)
    elif isinstance(request, RawTraceRequest):
        # The same test inlined (Prefilter.keep on keys): a RawTraceRequest's span attributes are a map,
        # whose keys iterate without a KeyValue each and whose len counts distinct keys, as the view's
        # dict that the limit is checked on below.
        spans = iter_raw_spans(request, prefilter, max_attributes)
    elif isinstance(request, list):
        # OTLP/JSON arrives as views, every span decoded and checked (a malformed one is a 400); the
        # same filter spares normalizing those that cannot matter.
        spans = (s for s in request if len(s.attributes) > max_attributes or prefilter.keeps_view(s))
    else:
        spans = iter_spans(request, keep)
    for span in spans:
        decoded += 1
        try:
            if len(span.attributes) > max_attributes:
                result.too_many_attributes += 1
                raise InvalidSpan(f"{len(span.attributes)} attributes, over the limit of {max_attributes}")
            record = normalize_span(span, config, pricer) or link_record(span)
        except InvalidSpan as error:
            result.rejected += 1
            if len(result.reasons) < _MAX_MESSAGES:
                result.reasons.append(f"span {span.span_id or '?'}: {error}")
            continue
        if record is None:
            result.ignored += 1
        elif "kind" in record:
            tool_spans.append(record)  # type: ignore[arg-type]
            result.links += record["kind"] == LINK_KIND  # type: ignore[typeddict-item]
        else:
            calls.append(record)  # type: ignore[arg-type]
            for event in filter(is_evaluation_event, span.events) if span.events else ():
                try:
                    result.evaluations.append(
                        evaluation_from_span_event(event, record, span.scope_name, config)  # type: ignore[arg-type]
                    )
                except InvalidSpan as error:  # the call stands; only its unreadable evaluation is dropped
                    result.dropped_events += 1
                    if len(result.reasons) < _MAX_MESSAGES:
                        result.reasons.append(f"evaluation event of span {span.span_id or '?'}: {error}")
    result.ignored += received - decoded
    return result


@dataclass
class Prepared:
    """A request normalized, truncated and encoded as its log frame (``prepare_request``, in any
    process), with what the process owning the log needs to commit it without the records: their
    counts and, for the cardinality cap, the distinct values of each capped dimension.

    ``normalized`` holds the counts and reasons only (its record lists are empty): records are the
    bulk of a request, and pickling them to the committing process cost more than encoding them.
    """

    normalized: Normalized
    digest: bytes
    frame: bytes  # b"" when the request keeps no row
    counts: tuple[int, int, int]  # calls, tool spans, evaluations in the frame
    truncated: int
    unpriced: dict[str, int]  # calls without a known price, per provider
    dimension_values: dict[str, set[str]]  # per dimension (CardinalityCap.admit)


def prepare_request(
    request: Decoded, body: bytes, config: NormalizeConfig, pricer: Pricer, limits: Limits, tenant: str = ""
) -> Prepared:
    """Normalize ``request`` (decoded from ``body``) and encode what it keeps as the frame ``commit``
    would append when no value is over the cardinality cap. Raises TooManySpans as normalize_request."""
    normalized = normalize_request(request, config, pricer, limits)
    calls, tool_spans, evaluations = normalized.calls, normalized.tool_spans, normalized.evaluations
    truncated, values = limit_texts(calls, tool_spans, evaluations, limits.max_attribute_length)
    digest = request_digest(body)
    rows = (len(calls), len(tool_spans), len(evaluations))
    frame = _frame(calls, tool_spans, evaluations, digest, tenant) if any(rows) else b""
    normalized.calls, normalized.tool_spans, normalized.evaluations = [], [], []
    return Prepared(normalized, digest, frame, rows, truncated, _unpriced(calls), values)


def limit_texts(
    calls: list[CallRecord],
    tool_spans: list[ToolSpanRecord],
    evaluations: list[EvaluationRecord],
    length: int,
) -> tuple[int, dict[str, set[str]]]:
    """Cut, in place, a request's texts longer than ``length``; returns how many were cut and the distinct
    values of each capped dimension (for ``CardinalityCap.admit``), collected with the texts."""
    truncated = 0
    values: dict[str, set[str]] = {}
    for records, texts, dimensions in (
        (calls, CALL_TEXTS, CALL_DIMENSIONS),
        (tool_spans, TOOL_SPAN_TEXTS, TOOL_SPAN_DIMENSIONS),
        (evaluations, EVALUATION_TEXTS, EVALUATION_DIMENSIONS),
    ):
        if records:  # every dimension is among the texts: its values are collected with theirs
            cut, found = truncate_and_collect(records, texts, length)  # type: ignore[arg-type]
            truncated += cut
            for dimension in dimensions:
                values.setdefault(dimension, set()).update(found[dimension])
    return truncated, values


def _frame(
    calls: list[CallRecord],
    tool_spans: list[ToolSpanRecord],
    evaluations: list[EvaluationRecord],
    digest: bytes,
    tenant: str,
) -> bytes:
    """The log frame of one request's rows: a Native block per table."""
    return encode_frame(
        encode_block(calls, NATIVE_TABLES["calls"], tenant),
        encode_block(tool_spans, NATIVE_TABLES["tool_spans"], tenant),
        len(calls),
        len(tool_spans),
        digest,
        encode_block(evaluations, NATIVE_TABLES["evaluations"], tenant),
        len(evaluations),
        NATIVE,
    )


def _unpriced(calls: list[CallRecord]) -> dict[str, int]:
    unpriced: dict[str, int] = {}
    for call in calls:
        if not call["price_known"]:
            unpriced[call["provider"]] = unpriced.get(call["provider"], 0) + 1
    return unpriced


def _count_received(normalized: Normalized, transport: str) -> None:
    """The metrics of a request's spans once it is buffered: received, rejected, dropped events.

    Counted after the append, not before: a retry the log drops (in a worker of ``serve --workers``
    only the daemon's log knows it) or a request refused with WalFull counts in none of them, as a
    retry caught early always did; tokenpulse_duplicate_requests counts the retries. So received =
    accepted + rejected holds, whichever process decided."""
    metrics.SPANS_RECEIVED.labels(transport).inc(normalized.received)
    metrics.EVALUATIONS_REJECTED.inc(normalized.dropped_events)
    too_many_attributes = normalized.too_many_attributes
    if normalized.rejected > too_many_attributes:
        metrics.SPANS_REJECTED.labels("invalid_span").inc(normalized.rejected - too_many_attributes)
    if too_many_attributes:
        metrics.SPANS_REJECTED.labels("too_many_attributes").inc(too_many_attributes)


def _count_accepted(result: IngestResult, unpriced: dict[str, int]) -> None:
    """The metrics of a request's rows once they are buffered."""
    metrics.EVALUATIONS_ACCEPTED.labels("span_event").inc(result.evaluations)
    metrics.SPANS_ACCEPTED.labels("call").inc(result.calls)
    metrics.SPANS_ACCEPTED.labels("tool_span").inc(result.tool_spans - result.links)
    metrics.SPANS_ACCEPTED.labels("link").inc(result.links)
    metrics.SPANS_ACCEPTED.labels("ignored").inc(result.ignored)
    for provider, count in unpriced.items():
        metrics.UNPRICED_CALLS.labels(provider).inc(count)
