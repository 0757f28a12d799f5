"""bench/detection.py: the scenario's scoring beside the incidents' statistical limits."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from detection import score, table  # bench/ holds scripts, not a package

T0 = datetime(2026, 12, 2, 8, tzinfo=UTC)


def at(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat()


def incident(kind: str, onset: int, route: str) -> dict[str, Any]:
    return {"kind": kind, "detector": kind, "onset": at(onset), "end": at(onset + 40),
            "scope": {"service": "s", "route": route}, "gradual": False}  # fmt: skip


def firing(detector: str, minute: int, route: str) -> dict[str, Any]:
    return {"detector": detector, "scope": {"service": "s", "route": route}, "status": "firing",
            "at": at(minute), "started_at": at(minute - 3), "suspects": [], "severity": "warning",
            "value": 1.0, "threshold": 0.5, "baseline": 0.1, "summary": ""}  # fmt: skip


def test_recall_among_incidents_the_oracle_detects_counts_only_those_and_their_gap() -> None:
    kinds = ("timeout_surge", "traffic_drop", "quality_drop", "cost_spike")
    manifest = {"incidents": [incident(kind, 60 * i, f"/{i}") for i, kind in enumerate(kinds)]}
    limits = [
        {"kind": "timeout_surge", "onset": at(0), "oracle": 4, "floor": None},
        {"kind": "traffic_drop", "onset": at(60), "oracle": 8, "floor": None},
        {"kind": "quality_drop", "onset": at(120), "oracle": None, "floor": None},  # beyond the limit
        {"kind": "cost_spike", "onset": at(180), "oracle": 10, "floor": "$1/h, under the $3/h floor"},
    ]
    result = score(manifest, [firing("timeout_surge", 6, "/0")], limits)
    rows = result["per_detector"]
    assert (rows["timeout_surge"]["reachable"], rows["timeout_surge"]["reachable_detected"]) == (1, 1)
    assert rows["timeout_surge"]["ttd_minus_oracle"] == [2.0]
    assert (rows["traffic_drop"]["reachable"], rows["traffic_drop"]["reachable_detected"]) == (1, 0)
    assert rows["quality_drop"]["reachable"] == 0 and rows["quality_drop"]["oracle_minutes"] == [None]
    text = table([result])
    assert "| quality_drop | 1 | 0 | - | not within |" in text
    assert "| cost_spike | 1 | 0 | - | 10 ($1/h, under the $3/h floor) |" in text
    assert (
        "recall: 1/4 (25%); among the incidents the oracle detects within 15 min: 1/3 (33%; 1/2 of those "
        "over the detectors' business floors)"
    ) in text
