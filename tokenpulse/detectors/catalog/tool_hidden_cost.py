"""tool_hidden_cost: tool executions that start costing much more in LLM calls made inside them.

Inner cost = the cost of the LLM calls made inside a tool execution: every call whose nearest ancestor
span of kind 'tool' is the tool span, whatever the depth (``tokenpulse.storage.attribution``): a call
right under the tool, under ``ai.generateText`` under the tool (Vercel AI SDK), under an agent or a chain
under the tool. A call inside a tool nested in another tool is the inner tool's.

Cost per tool call = inner cost / tool calls over the window, per service (the tool span's) and tool;
tool calls without any LLM call inside count (at $0), so a tool that starts calling a model in half of
its executions shows. A tool call and the cost inside it count in the minute the tool call *ended*
(when all of it is stored), so they fall in the same minutes.

- warning: cost per tool call at least ``ratio`` (10x) its baseline and at least
  ``min_usd_per_tool_call`` — a tool whose baseline is $0 (it never called a model) and that starts
  spending a cent per call fires: that is the hidden cost appearing;
- critical: the same, and the inner spend rate is at least ``critical_usd_per_hour``.

A surge of tool calls with flat cost per call moves nothing; a tool below ``min_calls`` tool calls in
the window (a trough, a new tool) gives no observation; a tool without history has no baseline and never
fires. The cost per call must also have been past the threshold in ``sustained`` (4) of the window's
(5) minutes: inner-cost bursts of up to 3 minutes never fire, however tall (a runaway that is
expensive *now* is cost_spike's to page on; this detector attributes cost to the tool that makes it),
and a lasting change fires about 4 minutes after it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from tokenpulse.detectors.base import Observation, Scope, format_scope
from tokenpulse.detectors.data import (
    CatalogDetector,
    HeldSettings,
    at_times,
    baseline,
    grids,
    kth_largest,
    minutes,
    to_observations,
    trailing_sum,
)
from tokenpulse.detectors.history import ENDED_MINUTE, History, Query
from tokenpulse.storage.attribution import LONGEST_TOOL, attributed_calls_sql

DIMENSIONS = ("service", "tool")
# Tool executions counted in the minute they ended (``data.ENDED_MINUTE``, like the rollup counts calls):
# by then the tool span and the LLM calls inside it (which end before it) are all stored.
_TOOLS = (
    f"SELECT toDateTime({ENDED_MINUTE}) AS tool_minute, trace_id AS tool_trace_id, span_id AS tool_span_id,"
    " tenant AS tool_tenant, service AS tool_service, name AS tool FROM tool_spans"
    " WHERE kind = 'tool'"
    f" AND time >= {{start:DateTime('UTC')}} - {LONGEST_TOOL} AND time < {{end:DateTime('UTC')}}"
    " AND tool_minute >= {start:DateTime('UTC')} AND tool_minute < {end:DateTime('UTC')}"
)
# The LLM calls inside those tool executions, counted with them: in the tool's service, in the minute the
# *tool* ended. Spans (tools, agents, links) from when a tool may have started.
_INNER_CALLS = attributed_calls_sql(
    "c.tenant AS tenant, c.cost_usd AS cost_usd",
    f"c.parent_span_id != '' AND c.time >= {{start:DateTime('UTC')}} - {LONGEST_TOOL}"
    " AND c.time < {end:DateTime('UTC')}",
    f"time >= {{start:DateTime('UTC')}} - {LONGEST_TOOL} AND time < {{end:DateTime('UTC')}}",
)
TOOL_COSTS = Query(
    "tool_costs:service, tool",
    "SELECT minute, tenant, service, tool, sum(tool_calls) AS tool_calls, sum(llm_calls) AS llm_calls,"
    " sum(cost_usd) AS cost_usd FROM ("
    "  SELECT tool_minute AS minute, tool_tenant AS tenant, tool_service AS service, tool,"
    "   count() AS tool_calls,"
    "   toUInt64(0) AS llm_calls, toFloat64(0) AS cost_usd"
    f"  FROM ({_TOOLS}) GROUP BY minute, tenant, service, tool"
    "  UNION ALL"
    "  SELECT toDateTime(toStartOfMinute(tool_ended)) AS minute, tenant, tool_service AS service, tool,"
    "   toUInt64(0) AS tool_calls, count() AS llm_calls, toFloat64(sum(cost_usd)) AS cost_usd"
    f"  FROM ({_INNER_CALLS})"
    "  WHERE minute >= {start:DateTime('UTC')} AND minute < {end:DateTime('UTC')}"
    "  GROUP BY minute, tenant, service, tool)"
    " GROUP BY minute, tenant, service, tool",
)


@dataclass(frozen=True)
class Settings(HeldSettings):
    window: timedelta = timedelta(minutes=5)
    min_calls: int = 10  # tool calls in the window
    ratio: float = 10.0
    min_usd_per_tool_call: float = 0.01
    critical_usd_per_hour: float = 10.0


class ToolHiddenCost(CatalogDetector):
    name: ClassVar[str] = "tool_hidden_cost"
    settings_type: ClassVar[type[Settings]] = Settings
    settings: Settings

    def queries(self) -> list[Query]:
        return [TOOL_COSTS]

    def evaluate(self, history: History, times: Sequence[datetime]) -> list[Observation]:
        s = self.settings
        window = minutes(s.window)
        columns = ("tool_calls", "cost_usd")
        per_minute = grids(history[TOOL_COSTS], DIMENSIONS, columns, history.start, history.end)
        tool_calls, usd = (trailing_sum(per_minute[k], window) for k in columns)
        per_call = (usd / tool_calls).where(tool_calls >= s.min_calls)
        usual = baseline(per_call, window, times=times)
        minute_per_call = per_minute["cost_usd"] / per_minute["tool_calls"]
        held = kth_largest(minute_per_call, window, minutes(s.sustained), times)
        # Compare at the evaluation times only: grids are long, the times few (one, live).
        per_call, tool_calls, usd, held = (
            at_times(grid, times) for grid in (per_call, tool_calls, usd, held)
        )
        threshold = (usual * s.ratio).clip(lower=s.min_usd_per_tool_call)
        # usd > 0: a zero floor and baseline never fire on $0
        warning = (per_call >= threshold) & (held >= threshold) & (usd > 0)
        return to_observations(
            self.name, times, per_call, tool_calls,
            warning=warning,
            critical=warning & (usd * (60 / window) >= s.critical_usd_per_hour),
            warning_threshold=threshold,
            critical_threshold=threshold,
            baseline=usual,
            describe=_describe,
        )  # fmt: skip


def _describe(scope: Scope, value: float, threshold: float, usual: float | None) -> str:
    return (
        f"LLM cost inside the tool ${value:.4f} per tool call (threshold ${threshold:.4f}, "
        f"usually ${usual or 0:.4f}) for {format_scope(scope)}"
    )


DETECTOR = ToolHiddenCost
