"""Decoding, normalizing and encoding the lines of an OTLP JSON lines file, in worker processes when asked.

Preparing a request (decode, normalize, truncate, encode its log frame: ``pipeline.prepare_request``)
depends on that request only, so ``workers`` processes can do it for as many lines at once; what depends
on every request before it — the retry memory, the cardinality cap, the write-ahead log — stays with
the one process that commits them (``Pipeline.commit_prepared``), in file order. A worker sends back the
encoded frame, not the records: unpickling records cost the committing process more than encoding them.
Lines travel in chunks (``CHUNK_BYTES``), at most ``2 * workers`` chunks in flight, so memory does not
grow with the file.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from tokenpulse.collector import otlp
from tokenpulse.collector.limits import Limits
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Normalized, Prepared, normalize_request, prepare_request
from tokenpulse.collector.price_tiers import TierRate
from tokenpulse.collector.pricing import Pricer, TokenPrice

# (line number, line, bytes of the file read so far), as cli._read_lines yields them.
Line = tuple[int, bytes, int]
# A line's outcome: its spans prepared, or why the line is no request.
Outcome = Prepared | otlp.RequestError


@dataclass(frozen=True)
class LineSettings:
    """What preparing a line needs besides the line: the normalizer's and the limits' settings, the
    ``[prices]`` settings (model prices, tier rates) and the tenant stored on every row."""

    config: NormalizeConfig
    prices: dict[str, TokenPrice]
    limits: Limits
    tiers: tuple[TierRate, ...] = ()
    tenant: str = ""

    def pricer(self) -> Pricer:
        return Pricer(self.prices, self.tiers)


def normalize_line(line: bytes, config: NormalizeConfig, pricer: Pricer, limits: Limits) -> Normalized:
    """Decode one line (an OTLP/JSON export request) and normalize its spans; raises RequestError."""
    return normalize_request(otlp.decode_request(line, otlp.JSON), config, pricer, limits)


def prepare_line(line: bytes, settings: LineSettings, pricer: Pricer) -> Outcome:
    """Decode one line and prepare its spans for the log, or the reason it is no request."""
    try:
        request = otlp.decode_request(line, otlp.JSON)
        return prepare_request(request, line, settings.config, pricer, settings.limits, settings.tenant)
    except otlp.RequestError as error:
        return error


# Lines go to a worker in chunks of about this many bytes (or this many lines): a task's round trip
# costs the committing process ~0.2 ms, as much as preparing a line of a few spans.
CHUNK_BYTES = 256 << 10
CHUNK_LINES = 256


def prepared_lines(
    lines: Iterable[Line], settings: LineSettings, workers: int = 1
) -> Iterator[tuple[Line, Outcome]]:
    """Each line with its outcome, in the order of ``lines``; ``workers`` > 1 processes do the work."""
    if workers <= 1:
        pricer = settings.pricer()
        for line in lines:
            yield line, prepare_line(line[1], settings, pricer)
        return
    # spawn, not fork: the calling process runs the writer's threads and the embedded ClickHouse.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(settings,)
    ) as pool:
        pending: deque[tuple[list[Line], Future[list[Outcome]]]] = deque()
        for chunk in _chunks(lines):
            pending.append((chunk, pool.submit(_prepare_in_worker, [line[1] for line in chunk])))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield from zip(done, future.result(), strict=True)
        while pending:
            done, future = pending.popleft()
            yield from zip(done, future.result(), strict=True)


def _chunks(lines: Iterable[Line]) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    size = 0
    for line in lines:
        chunk.append(line)
        size += len(line[1])
        if size >= CHUNK_BYTES or len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


_worker: tuple[LineSettings, Pricer] | None = None


def _start_worker(settings: LineSettings) -> None:
    global _worker
    _worker = (settings, settings.pricer())
    from tokenpulse.memory import freeze_heap

    freeze_heap()


def _prepare_in_worker(lines: list[bytes]) -> list[Outcome]:
    assert _worker is not None, "the pool's initializer did not run"
    return [prepare_line(line, *_worker) for line in lines]
