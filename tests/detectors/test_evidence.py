"""The detector templates' own arithmetic, tested without I/O."""

import numpy as np
import pytest

from tokenpulse.detectors import evidence
from tokenpulse.detectors.history import TAIL_EDGES_MS


def test_calls_past_a_level_between_two_edges_are_interpolated_not_rounded_up() -> None:
    # 100 calls past the edge below the level, 40 past the edge above it: a level a third of the way
    # (in log duration) between them has 80 calls past it, not the upper edge's 40.
    edges = np.asarray(TAIL_EDGES_MS)
    k = 10
    past = np.zeros((1, 1, len(edges)))
    past[..., : k + 1] = 100.0
    past[..., k + 1 :] = 40.0
    level = edges[k] * (edges[k + 1] / edges[k]) ** (1 / 3)
    assert evidence.calls_past(past, np.array([[level]]))[0, 0] == pytest.approx(80.0)
    # On an edge: that edge's count; past the last edge: none; unknown level: none.
    assert evidence.calls_past(past, np.array([[edges[k + 1]]]))[0, 0] == pytest.approx(40.0)
    assert evidence.calls_past(past, np.array([[edges[-1] * 2]]))[0, 0] == 0.0
    assert evidence.calls_past(past, np.array([[np.nan]]))[0, 0] == 0.0
