"""ttft_slo: the time to first token of a service+route breaks its objective (its p99).

TTFT is what a streaming user waits before anything moves on the screen. What the objective is:

- **By default, relative to the route itself**: more than 1% of first tokens take longer than twice the
  route's usual TTFT p99 (and at least ``floor_ms``, 1 s: the usual interactive budget, so doubling a
  200 ms TTFT is nobody's page). A long-context route whose prompts reach 85k tokens, whose first token
  always takes seconds (no prefill is that fast), is compared with itself and does not page forever.
- **A fixed SLO where the user sets one**: ``route_slo_ms`` per route (e.g. ``{"/chat" = 800}``), or
  ``slo_ms`` for every route. Then "more than 1% of first tokens past the SLO" pages, history or not.

The evidence model is ``evidence.TailDetector``'s: each minute's count of late first tokens weighs for
"the share of late first tokens grew" against 1%, the most a route within its objective can have.
Calls without a TTFT (not streamed, failed before the first token) do not count. Critical: more than
1% of first tokens since the breach began took over 3x the usual p99 (``critical_ratio``), or over
``critical_factor`` x the SLO where one is set, with confidence. A route whose usual TTFT is unknown (fewer
than 30 streamed calls in its baseline hours) and that has no SLO set is learning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from tokenpulse.detectors.base import Scope, format_scope, scope_dict
from tokenpulse.detectors.data import check_scope
from tokenpulse.detectors.evidence import TailDetector, TailSettings


@dataclass(frozen=True)
class Settings(TailSettings):
    floor_ms: float = 1000.0
    scope: tuple[str, ...] = ("service", "route")
    slo_ms: float | None = None  # a fixed TTFT p99 objective for every route; None: relative
    route_slo_ms: Mapping[str, float] = field(default_factory=dict)  # ... or per route
    critical_factor: float = 2.0  # critical above this many times a fixed SLO

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scope", check_scope("ttft_slo", self.scope, required=("route",)))
        if any(v <= 0 for v in (*self.route_slo_ms.values(), self.slo_ms or 1)) or self.critical_factor <= 1:
            raise ValueError("SLOs must be positive and critical_factor above 1")


class TtftSlo(TailDetector):
    name: ClassVar[str] = "ttft_slo"
    settings_type: ClassVar[type[Settings]] = Settings
    column: ClassVar[str] = "ttft"
    count: ClassVar[str] = "ttft_calls"
    settings: Settings

    def objective(self, scopes: list[Scope], usual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.settings
        warning, critical, body = super().objective(scopes, usual)
        slo = np.array(
            [s.route_slo_ms.get(scope_dict(scope).get("route", ""), s.slo_ms or np.nan) for scope in scopes],
            dtype=float,
        )
        fixed = ~np.isnan(slo)
        # A fixed SLO is about its own level only: more than 1% of first tokens past it.
        body = np.where(fixed, np.nan, body)
        return np.where(fixed, slo, warning), np.where(fixed, slo * s.critical_factor, critical), body

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        usually = "" if np.isnan(usual) else f"usually {usual:,.0f} ms; "
        return (
            f"TTFT p99 about {value:,.0f} ms since the breach began ({usually}more than 1% of first tokens "
            f"past {threshold:,.0f} ms) for {format_scope(scope)}"
        )


DETECTOR = TtftSlo
