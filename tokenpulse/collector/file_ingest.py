"""Decoding and normalizing the lines of an OTLP JSON lines file, in worker processes when asked.

Decoding and normalizing a request depends on that request only, so ``workers`` processes can do it for
as many lines at once; what depends on every request before it — the retry memory, the cardinality cap,
the write-ahead log — stays with the one process that commits them (``Pipeline.commit``), in file
order. At most ``2 * workers`` lines are in flight, so memory does not grow with the file.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from tokenpulse.collector import otlp
from tokenpulse.collector.limits import Limits
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Normalized, normalize_request
from tokenpulse.collector.price_tiers import TierRate
from tokenpulse.collector.pricing import Pricer, TokenPrice

# (line number, line, bytes of the file read so far), as cli._read_lines yields them.
Line = tuple[int, bytes, int]
# A line's outcome: its spans normalized, or why the line is no request.
Outcome = Normalized | otlp.RequestError


def normalize_line(line: bytes, config: NormalizeConfig, pricer: Pricer, limits: Limits) -> Outcome:
    """Decode one line (an OTLP/JSON export request) and normalize its spans."""
    try:
        return normalize_request(otlp.decode_request(line, otlp.JSON), config, pricer, limits)
    except otlp.RequestError as error:
        return error


def normalized_lines(
    lines: Iterable[Line],
    config: NormalizeConfig,
    prices: dict[str, TokenPrice],
    limits: Limits,
    workers: int = 1,
    tiers: Sequence[TierRate] = (),
) -> Iterator[tuple[Line, Outcome]]:
    """Each line with its outcome, in the order of ``lines``; ``workers`` > 1 processes do the work.
    ``prices`` and ``tiers`` are the ``[prices]`` settings (model prices, tier rates)."""
    if workers <= 1:
        pricer = Pricer(prices, tiers)
        for line in lines:
            yield line, normalize_line(line[1], config, pricer, limits)
        return
    # spawn, not fork: the calling process runs the writer's threads and the embedded ClickHouse.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(config, prices, limits, tuple(tiers)),
    ) as pool:
        pending: deque[tuple[Line, Future[Outcome]]] = deque()
        for line in lines:
            pending.append((line, pool.submit(_normalize_in_worker, line[1])))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


_worker: tuple[NormalizeConfig, Pricer, Limits] | None = None


def _start_worker(
    config: NormalizeConfig, prices: dict[str, TokenPrice], limits: Limits, tiers: tuple[TierRate, ...]
) -> None:
    global _worker
    _worker = (config, Pricer(prices, tiers), limits)


def _normalize_in_worker(line: bytes) -> Outcome:
    assert _worker is not None, "the pool's initializer did not run"
    return normalize_line(line, *_worker)
