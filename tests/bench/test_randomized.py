"""bench/randomized.py: the tails kinds' calls of varied sizes, and what the oracle makes of them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

# bench/ holds scripts, not a package
from randomized import DAY, EDGES, KINDS, Truth, draw, frame_for, oracle, run_kind

from tokenpulse.detectors import stats

TAIL = KINDS["latency_p99_drift"]


def scope(incident: bool, how: str, least_volume: float) -> Truth:
    """The first tail scope drawn (seeds 0, 1, ...) that is ``how`` with at least this many calls a minute."""
    for seed in range(500):
        truth = draw(TAIL, np.random.default_rng(seed), "c0", incident)
        if how in truth.kind and truth.volume >= least_volume:
            return truth
    raise AssertionError(f"no {how} scope drawn")


def test_longer_answers_take_as_long_as_the_scopes_own_line_says() -> None:
    truth = scope(False, "longer answers", 30.0)
    size, duration = truth.sizes["latency_size"], truth.sizes["latency_sum_ms"]
    product, square, calls = truth.sizes["latency_size_ms"], truth.sizes["latency_size_sq"], truth.calls
    # The hour of longer answers: the 60 minutes of the largest mean size, 2-4x that of day 1.
    hourly = np.convolve(size, np.ones(60), "valid") / np.maximum(np.convolve(calls, np.ones(60), "valid"), 1)
    first = int(np.argmax(hourly))
    longer = np.zeros(len(calls), dtype=bool)
    longer[first : first + 60] = True
    assert first >= DAY and hourly[first] > 1.8 * size[:DAY].sum() / calls[:DAY].sum()
    # The line of duration on size over the other minutes' calls predicts the longer hour's durations.
    n, s, d, sd, ss = (v[~longer].sum() for v in (calls, size, duration, product, square))
    slope = (n * sd - s * d) / (n * ss - s * s)
    intercept = (d - slope * s) / n
    hour = calls[longer].sum()
    predicted = intercept + slope * size[longer].sum() / hour
    assert abs(duration[longer].sum() / hour / predicted - 1) < 0.1
    assert duration[longer].sum() / hour > 1.3 * d / n  # longer answers take longer: not an incident


@pytest.mark.parametrize(("name", "count"), [("latency_p99_drift", "calls"), ("ttft_slo", "ttft_calls")])
def test_the_tails_frame_carries_the_sizes_of_its_duration_unless_flat(name: str, count: str) -> None:
    kind = KINDS[name]
    truth = draw(kind, np.random.default_rng(3), "c0", False)
    rng = np.random.default_rng(0)
    sized, flat = frame_for(kind, [truth], rng), frame_for(kind, [truth], rng, flat_sizes=True)
    column = f"{kind.column}_size_ms"
    assert np.allclose(sized[column], truth.sizes[column][truth.calls > 0]) and sized[column].any()
    assert np.allclose(sized[count], truth.calls[truth.calls > 0])
    assert np.allclose(flat[f"{kind.column}_size"], flat["calls"]) and not flat[column].any()


def test_the_oracle_weighs_each_call_given_its_size_and_pages_on_a_clear_slowdown() -> None:
    truth = scope(True, "slower", 30.0)
    before, during = (
        truth.duration_llr[truth.onset - 120 : truth.onset],
        truth.duration_llr[truth.onset : truth.end],
    )
    assert before.mean() < 0 < during.mean()  # evidence against the change before it, for it during
    threshold = stats.evidence_threshold(400, 100.0)
    assert oracle(TAIL, truth, threshold) is not None


def test_every_tail_scope_has_lone_slow_calls_that_the_oracle_does_not_page_on() -> None:
    """Clean traffic holds calls slow for reasons of their own (OUTLIER_RATES): the oracle knows their
    rate, so a lone one weighs a few nats, not the threshold (an oracle that paged on one would not keep
    the false-alarm budget the detector is held to)."""
    truth = scope(True, "of calls slow", 30.0)
    before = slice(DAY, truth.onset)
    past_each_edge = truth.bins[before][:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]
    far = np.searchsorted(EDGES, 4 * truth.usual[0])  # the first edge past 4x the usual p99
    assert past_each_edge[:, far].sum() >= 1  # lone slow calls before the incident
    threshold = stats.evidence_threshold(400, 100.0)
    assert truth.duration_llr[before].max() < threshold / 2


def test_the_oracle_pages_a_users_spike_only_past_the_business_floor() -> None:
    """A user's spike the evidence proves is paged by the oracle only once their spend since it began
    reaches cost_spike's $3/h, as the detector's is: the same spike, its spend scaled under the floor,
    is not."""
    kind = KINDS["cost_spike/user"]
    threshold = stats.evidence_threshold(400, 100.0)
    for seed in range(200):
        truth = draw(kind, np.random.default_rng(seed), "i0", True)
        during = slice(truth.onset, truth.end)
        if oracle(kind, truth, threshold) is not None and truth.part[during].mean() * 60 > 6:
            break
    else:
        raise AssertionError("no user spike well past the floor drawn")
    # The same minutes at a hundredth of the spend: the same evidence (a mean's, scaled), under $3/h.
    scale = 0.01
    truth.part, truth.usual, truth.changed = truth.part * scale, truth.usual * scale, truth.changed * scale
    assert truth.part[during].mean() * 60 < 3
    assert oracle(kind, truth, threshold) is None


def test_a_thin_reads_only_routes_long_drop_pages_once() -> None:
    """Held-out seed 2304's flap: a route of 2.3 calls a minute whose calls read 81% of their input or
    nothing, its hit ratio down 45% for 99 minutes, paged at +11, resolved at +27 and paged again at +74
    (its dropped minutes, counted with the spread of its usual level, gave a false recovery)."""
    result = run_kind("cache_hit_collapse", 2304, 200)
    (row,) = [row for row in result["rows"] if row["scope"] == "i67"]
    assert row["calls_per_minute"] == 2.32 and row["effect_size"] == 0.45  # the same route drawn
    assert row["firings"] == 1 and row["resolved_after_end"] > 0
    assert result["flaps"] == 0
