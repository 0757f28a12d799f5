"""The LLM figures of accepted calls as Prometheus metrics, with bounded label cardinality.

Labels are (service, model). The first ``max_pairs`` distinct pairs seen keep their own labels; every
later pair is counted under service="other", model="other". So the series count is bounded whatever
the traffic: a model name carrying a request id, or a service per customer, cannot grow the
exposition without limit (the calls are still stored with their real values in ClickHouse).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from tokenpulse import metrics
from tokenpulse.collector.records import CallRecord

OTHER = "other"
MAX_PAIRS = 200  # (service, model) pairs with their own labels
TOKEN_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")


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
        for call in calls:
            model = call["response_model"] or call["request_model"]  # as the calls table's `model`
            service, model = self.cap(call["service"], model)
            metrics.LLM_CALLS.labels(service, model, call["status"] or "unset").inc()
            metrics.LLM_COST_USD.labels(service, model).inc(float(call["cost_usd"]))
            for kind in TOKEN_KINDS:
                tokens = call[f"{kind}_tokens"]  # type: ignore[literal-required]
                if tokens:
                    metrics.LLM_TOKENS.labels(service, model, kind).inc(tokens)
            metrics.LLM_CALL_SECONDS.labels(service, model).observe(call["duration_ms"] / 1000)
