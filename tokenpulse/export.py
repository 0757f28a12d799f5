"""The summary as CSV: one writer for `tokenpulse summary --csv` and ``GET /api/v1/summary.csv``."""

from __future__ import annotations

import csv
import io
from typing import Any

COUNTS = ("calls", "errors", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
          "reasoning_tokens")  # fmt: skip


def _blank(value: object) -> object:
    return "" if value is None else value


def summary_csv(document: dict[str, Any], group_by: list[str]) -> str:
    """The summary's groups as CSV, raw values, one row per group; an unknown cost is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # By model, the names the provider answered each model with (space-separated), last.
    answered = ["response_models"] if "model" in group_by else []
    writer.writerow([*group_by, *COUNTS, "cost_usd", "unpriced_calls", "cache_hit_ratio", "latency_p50_ms",
                     "latency_p99_ms", "ttft_p50_ms", "ttft_p99_ms", *answered])  # fmt: skip
    for g in document["groups"]:
        writer.writerow(
            [*(g["key"].get(d, "") for d in group_by), *(g[k] for k in COUNTS)]
            + [_blank(g["cost_usd"]), g.get("unpriced_calls", 0), _blank(g["cache_hit_ratio"])]
            + [_blank(g[m][p]) for m in ("latency_ms", "ttft_ms") for p in ("p50", "p99")]
            + [" ".join(g.get("response_models", [])) for _ in answered]
        )
    return out.getvalue()
