"""The LLM figures for /metrics: counted per accepted call, label pairs capped, latencies in bulk."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from tests.factories import call_record
from tokenpulse.collector.llm_metrics import OTHER, LlmMetrics, PairCap, _observe_all


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_first_pairs_keep_their_labels_later_ones_become_other() -> None:
    cap = PairCap(max_pairs=2)
    assert cap("a", "m1") == ("a", "m1")
    assert cap("a", "m2") == ("a", "m2")
    assert cap("b", "m1") == (OTHER, OTHER)
    assert cap("a", "m1") == ("a", "m1")  # admitted before: keeps its labels
    assert cap("", "") == (OTHER, OTHER)


def test_calls_count_cost_tokens_by_kind_and_latency_and_a_runaway_dimension_stays_bounded() -> None:
    recorder = LlmMetrics(PairCap(max_pairs=1))
    before_other = sample("tokenpulse_llm_calls_total", service=OTHER, model=OTHER, status="ok")
    first = call_record(
        service="metrics-svc", response_model="metrics-model", status="ok", cost_usd=Decimal("0.25"),
        input_tokens=1000, cache_read_tokens=600, cache_write_tokens=0, output_tokens=300,
        reasoning_tokens=100, duration_ms=1500.0,
    )  # fmt: skip
    # A model name per request (a bug upstream) must not make a series per request.
    runaway = [call_record(service="metrics-svc", response_model=f"req-{i}", status="ok") for i in range(50)]
    recorder.observe([first, *runaway])
    labels = {"service": "metrics-svc", "model": "metrics-model"}
    assert sample("tokenpulse_llm_calls_total", **labels, status="ok") == 1
    assert sample("tokenpulse_llm_cost_usd_total", **labels) == 0.25
    kinds = {k: sample("tokenpulse_llm_tokens_total", **labels, kind=k) for k in
             ("input", "cache_read", "cache_write", "output", "reasoning")}  # fmt: skip
    assert kinds == {"input": 1000, "cache_read": 600, "cache_write": 0, "output": 300, "reasoning": 100}
    assert sample("tokenpulse_llm_call_duration_seconds_bucket", **labels, le="1.0") == 0
    assert sample("tokenpulse_llm_call_duration_seconds_bucket", **labels, le="2.0") == 1
    assert sample("tokenpulse_llm_calls_total", service=OTHER, model=OTHER, status="ok") == before_other + 50
    assert all(sample("tokenpulse_llm_calls_total", service="metrics-svc", model=f"req-{i}", status="ok") == 0
               for i in range(50))  # fmt: skip


def test_observing_many_values_at_once_counts_them_as_one_by_one() -> None:
    # On a bound, between bounds, past the last finite bound, zero: the same buckets, count and sum.
    values = [0.0, 0.25, 0.2500001, 1.0, 3.5, 300.0, 301.0, 1e6, 0.5, 0.5]
    one, many = CollectorRegistry(), CollectorRegistry()
    bounds = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
    single = Histogram("h", "h", buckets=bounds, registry=one)
    for value in values:
        single.observe(value)
    _observe_all(Histogram("h", "h", buckets=bounds, registry=many), values)
    samples = [(s.name, s.labels, s.value) for m in one.collect() for s in m.samples if s.name != "h_created"]
    assert samples == [
        (s.name, s.labels, s.value) for m in many.collect() for s in m.samples if s.name != "h_created"
    ]
