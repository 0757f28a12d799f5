"""The LLM figures of accepted calls as Prometheus metrics, with bounded label cardinality.

Labels are (service, model). The first ``max_pairs`` distinct pairs seen keep their own labels; every
later pair is counted under service="other", model="other". So the series count is bounded whatever
the traffic: a model name carrying a request id, or a service per customer, cannot grow the
exposition without limit (the calls are still stored with their real values in ClickHouse).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from decimal import Decimal

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
        """Count ``calls`` (one request's): summed per label set first, so each series is touched once
        per request rather than once per call (``labels()`` was a tenth of ingest's time)."""
        counts: dict[tuple[str, str, str], int] = {}
        costs: dict[tuple[str, str], Decimal] = {}
        tokens: dict[tuple[str, str], list[int]] = {}
        seconds: dict[tuple[str, str], list[float]] = {}
        for call in calls:
            model = call["response_model"] or call["request_model"]  # as the calls table's `model`
            pair = self.cap(call["service"], model)
            key = (*pair, call["status"] or "unset")
            counts[key] = counts.get(key, 0) + 1
            costs[pair] = costs.get(pair, _ZERO) + call["cost_usd"]  # Decimal: summed exactly
            sums = tokens.get(pair)
            if sums is None:
                sums = tokens[pair] = [0] * len(TOKEN_KINDS)
            for i, field in enumerate(_TOKEN_FIELDS):
                sums[i] += call[field]  # type: ignore[literal-required]
            seconds.setdefault(pair, []).append(call["duration_ms"] / 1000)
        for key, count in counts.items():
            metrics.LLM_CALLS.labels(*key).inc(count)
        for pair, cost in costs.items():
            metrics.LLM_COST_USD.labels(*pair).inc(float(cost))
            for kind, total in zip(TOKEN_KINDS, tokens[pair], strict=True):
                if total:
                    metrics.LLM_TOKENS.labels(*pair, kind).inc(total)
            histogram = metrics.LLM_CALL_SECONDS.labels(*pair)
            for value in seconds[pair]:
                histogram.observe(value)
