"""timeout_surge: far more LLM calls (per service+route) or tool executions (per service+tool) time out
than usual for the scope.

LLM calls are counted from the rollup (``timeouts`` / ``calls``); tool executions from the raw
``tool_spans`` table (spans of kind 'tool'; agent spans are not executions), which has no rollup. Both
scope kinds come from this one detector, told apart by their keys: service+route or service+tool.

The evidence model is ``evidence.ShareDetector``'s: each minute's timeouts weigh for "the odds of a
timeout grew 1.5x, 3x, 8x or 25x" against the scope's usual share, the evidence accumulates minute by
minute and the alert fires when it reaches the false-alarm budget's threshold. A thin tool at night
that goes from 1% to 40% timeouts fires after a dozen executions; a busy route that goes from 1% to 2%
fires once that is more than chance. A scope with fewer than 30 calls of history is learning and held
to the documented default (``prior_share``, 5%: healthy LLM calls time out well under 1%, and at 5%
retries stop hiding it from users), so a new route timing out a third of its calls is news at once.
Critical: the share since the evidence began is at least 20% with confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tokenpulse.detectors.base import Scope, format_scope, scope_dict
from tokenpulse.detectors.evidence import ShareDetector, ShareSettings, Signal
from tokenpulse.detectors.history import ROLLUP, raw_minutes_query

TOOL_SPANS = raw_minutes_query(
    "tool_spans:service, tool",
    "tool_spans",
    ("service", "name AS tool"),
    "count() AS calls, countIf(is_timeout) AS timeouts",
    where="kind = 'tool'",
)


@dataclass(frozen=True)
class Settings(ShareSettings):
    prior_share: float | None = 0.05
    critical_share: float = 0.20


class TimeoutSurge(ShareDetector):
    name: ClassVar[str] = "timeout_surge"
    settings_type: ClassVar[type[Settings]] = Settings
    part: ClassVar[str] = "timeouts"
    total: ClassVar[str] = "calls"

    def signals(self) -> list[Signal]:
        return [Signal(ROLLUP, ("service", "route")), Signal(TOOL_SPANS, ("service", "tool"))]

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        what = "tool executions" if "tool" in scope_dict(scope) else "LLM calls"
        return (
            f"{value:.1%} of {what} timed out since the surge began (usually {usual:.1%}; evidence past "
            f"{threshold:.1%}) for {format_scope(scope)}"
        )


DETECTOR = TimeoutSurge
