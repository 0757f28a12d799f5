"""bench/scenario_limit.py: the minute at which the optimal test pages on a scenario's incident."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tokenpulse.detectors import stats
from tokenpulse.detectors.catalog import build_detectors
from tokenpulse.detectors.history import History

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from scenario_limit import DAY, limit  # bench/ holds scripts, not a package

START = datetime(2026, 12, 1, tzinfo=UTC)
MINUTES = 2 * DAY
ONSET, END = DAY + 600, DAY + 660
SETTINGS = {d.name: d.settings for d in build_detectors()}


def rollup(calls: np.ndarray, timeouts: np.ndarray, route: str = "/r") -> pd.DataFrame:
    """The rollup rows of one route: calls and timeouts per minute over the two days."""
    return pd.DataFrame(
        {
            "minute": pd.date_range(START, periods=MINUTES, freq="1min"),
            "tenant": "",
            "service": "s",
            "route": route,
            "model": "m",
            "router": "",
            "calls": calls,
            "timeouts": timeouts,
        }
    )


def incident(detector: str) -> dict[str, object]:
    at = [(START + timedelta(minutes=m)).isoformat() for m in (ONSET, END)]
    return {"kind": detector, "detector": detector, "onset": at[0], "end": at[1],
            "scope": {"service": "s", "route": "/r"}, "gradual": False}  # fmt: skip


def page(detector: str, *frames: pd.DataFrame) -> int | None:
    history = History(START, START + timedelta(minutes=MINUTES), {"rollup": pd.concat(frames)})
    return limit(history, incident(detector), START, MINUTES, SETTINGS[detector])["oracle"]


def test_a_share_step_pages_when_its_evidence_crosses_the_threshold_plus_the_floor() -> None:
    # 100 calls a minute, 1 timeout in each on both days, 3 from the onset: each incident minute gives
    # 3 ln(3) + 97 ln(0.97 / 0.99) nats of evidence, the threshold counts the two routes of the rollup.
    calls = np.full(MINUTES, 100)
    timeouts = np.where((np.arange(MINUTES) >= ONSET) & (np.arange(MINUTES) < END), 3, 1)
    per_minute = 3 * math.log(3) + 97 * math.log(0.97 / 0.99)
    threshold = stats.evidence_threshold(2, SETTINGS["timeout_surge"].false_page_budget_days)
    crossed = math.ceil(threshold / per_minute)  # the incident minutes until the CUSUM crosses
    expected = crossed - 1 + 4  # from the onset: the crossing minute plus the 4-minute floor
    quiet = rollup(calls, np.ones(MINUTES), "/other")
    assert page("timeout_surge", rollup(calls, timeouts), quiet) == expected == 13


def test_noise_without_a_change_never_pages() -> None:
    rng = np.random.default_rng(7)
    calls = rng.poisson(40, MINUTES)
    assert page("timeout_surge", rollup(calls, rng.binomial(calls, 0.02))) is None


def test_a_change_the_detector_does_not_test_is_not_its_limit() -> None:
    calls = np.full(MINUTES, 100)
    fewer = np.where((np.arange(MINUTES) >= ONSET) & (np.arange(MINUTES) < END), 0, 5)  # timeouts fall
    assert page("timeout_surge", rollup(calls, fewer)) is None


def test_calls_that_stop_page_once_the_missing_calls_outweigh_the_threshold() -> None:
    # 10 calls a minute, then none: each empty minute gives 10 nats (Poisson), against one route's
    # threshold of ln(100 days x 1440 minutes) = 11.9 nats: crossed in the second minute, + the floor.
    minutes = np.arange(MINUTES)
    calls = np.where((minutes >= ONSET) & (minutes < END), 0, 10)
    assert page("traffic_drop", rollup(calls, np.zeros(MINUTES))) == 2 - 1 + 4
