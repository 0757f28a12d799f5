"""The detector catalog: one module per detector; the names are a public contract."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from tokenpulse.detectors.base import Detector, settings_from_mapping

NAMES = (
    "cache_hit_collapse",
    "cache_not_applied",
    "prompt_growth",
    "reasoning_blowup",
    "latency_p99_drift",
    "ttft_slo",
    "cost_spike",
    "routing_escalation",
    "tool_hidden_cost",
    "timeout_surge",
    "traffic_drop",
    "coverage_gap",
    "quality_drop",
)


def build_detectors(config: Mapping[str, Mapping[str, Any]] | None = None) -> list[Detector]:
    """Every detector of the catalog with its settings from ``config`` ([detectors.<name>] tables)."""
    config = config or {}
    unknown = set(config) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(sorted(unknown))}; known: {', '.join(NAMES)}")
    detectors = []
    for name in NAMES:
        detector_type = importlib.import_module(f"{__name__}.{name}").DETECTOR
        settings = settings_from_mapping(detector_type.settings_type, config.get(name, {}))
        detectors.append(detector_type(settings))
    return detectors
