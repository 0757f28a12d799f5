"""The LLM figures of accepted calls as Prometheus metrics, with bounded label cardinality.

Labels are (service, model). The first ``max_pairs`` distinct pairs seen keep their own labels; every
later pair is counted under service="other", model="other". So the series count is bounded whatever
the traffic: a model name carrying a request id, or a service per customer, cannot grow the
exposition without limit (the calls are still stored with their real values in ClickHouse).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterable
from decimal import Decimal
from operator import itemgetter

from prometheus_client import Histogram

from tokenpulse import metrics
from tokenpulse.buffer.records import CallRecord

OTHER = "other"
MAX_PAIRS = 200  # (service, model) pairs with their own labels
TOKEN_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")
_TOKEN_FIELDS = tuple(f"{kind}_tokens" for kind in TOKEN_KINDS)
_ZERO = Decimal(0)


class PairCap:
    """Maps a (service, model) pair to its label values: itself while fewer than ``max_pairs`` pairs
    have been admitted (or it was admitted before), else (OTHER, OTHER)."""

    def __init__(self, max_pairs: int = MAX_PAIRS) -> None:
        self.max_pairs = max_pairs
        self._admitted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, service: str, model: str) -> tuple[str, str]:
        pair = (service or "unknown", model or "unknown")
        if pair in self._admitted:
            return pair
        with self._lock:
            if len(self._admitted) < self.max_pairs:
                self._admitted.add(pair)
                return pair
        return OTHER, OTHER


class LlmMetrics:
    """Counts accepted calls into the tokenpulse_llm_* metrics."""

    def __init__(self, cap: PairCap | None = None) -> None:
        self.cap = cap or PairCap()

    def observe(self, calls: Iterable[CallRecord]) -> None:
        """Count ``calls`` (one request's): grouped per label set first, so each series is touched once
        per request rather than once per call (``labels()`` was a tenth of ingest's time), and each
        group's figures summed in C."""
        groups: dict[tuple[str, str, str], list[CallRecord]] = {}
        for call in calls:
            # The model as the calls table's `model`.
            key = (call["service"], call["response_model"] or call["request_model"], call["status"])
            group = groups.get(key)
            if group is None:
                groups[key] = [call]
            else:
                group.append(call)
        pairs: dict[tuple[str, str], list[CallRecord]] = {}
        for (service, model, status), group in groups.items():
            pair = self.cap(service, model)
            metrics.LLM_CALLS.labels(*pair, status or "unset").inc(len(group))
            pairs.setdefault(pair, []).extend(group)
        for pair, group in pairs.items():
            cost = sum(map(_COST, group), _ZERO)  # Decimal: summed exactly
            metrics.LLM_COST_USD.labels(*pair).inc(float(cost))
            for kind, field in zip(TOKEN_KINDS, _TOKEN_FIELDS, strict=True):
                total = sum(map(itemgetter(field), group))
                if total:
                    metrics.LLM_TOKENS.labels(*pair, kind).inc(total)
            _observe_all(metrics.LLM_CALL_SECONDS.labels(*pair), [ms / 1000 for ms in map(_DURATION, group)])


_COST = itemgetter("cost_usd")
_DURATION = itemgetter("duration_ms")


def _observe_all(histogram: Histogram, values: list[float]) -> None:
    """``histogram.observe(value)`` for each of ``values``, one increment a bucket: prometheus_client has
    no bulk observe, and observing one value takes a lock per counter it touches. Sorts ``values``."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:  # another version's internals: one by one
        for value in values:
            histogram.observe(value)
        return
    # observe counts a value in the first bucket whose upper bound is >= it (the last bound is +Inf): a
    # bucket's count is the number of values <= its bound less those <= the bound before, each found by
    # bisecting the sorted values (bisecting the bounds for each value took 8x as long).
    values.sort()
    below = 0
    for bucket, bound in zip(buckets, bounds, strict=True):
        upto = bisect_right(values, bound)
        if upto > below:
            bucket.inc(upto - below)
            below = upto
    total.inc(sum(values))
