"""tool_hidden_cost: tool executions that start costing much more in LLM calls made inside them.

Inner cost = the cost of the LLM calls made inside a tool execution: every call whose nearest ancestor
span of kind 'tool' is the tool span, whatever the depth (``tokenpulse.storage.attribution``): a call
right under the tool, under ``ai.generateText`` under the tool (Vercel AI SDK), under an agent or a chain
under the tool. A call inside a tool nested in another tool is the inner tool's.

Cost per tool call = inner cost / tool executions, per service (the tool span's) and tool; executions
without any LLM call inside count (at $0), so a tool that starts calling a model in half of its
executions shows. A tool execution and the cost inside it count in the minute the execution *ended*
(when all of it is stored), so they fall in the same minutes.

The evidence model is ``evidence.MeanDetector``'s: each minute's cost per tool call weighs for "it grew
10x, 30x or 100x" against the tool's usual cost per call, with the spread per call its own trailing day
shows, so a tool running one execution a minute is watched as well as a busy one.
``min_usd_per_tool_call`` is a business floor: the smallest change tested is never under a cent per
tool call, so a tool whose usual cost is $0 (it never called a model) pages when it starts spending a
cent or more per call — the hidden cost appearing. Critical: the inner spend rate since the change
began is at least ``critical_usd_per_hour``. A surge of tool calls with a flat cost per call moves
nothing; a tool whose baseline has fewer than 30 executions is learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tokenpulse.detectors.base import Scope, format_scope
from tokenpulse.detectors.evidence import MeanDetector, MeanSettings, Run, Signal
from tokenpulse.detectors.history import ENDED_MINUTE, Query
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
    per="minute",  # a minute's row: the tools that ended in it and the calls inside them
)


@dataclass(frozen=True)
class Settings(MeanSettings):
    rises: tuple[float, ...] = (10.0, 30.0, 100.0)  # LLM cost per tool call against the tool's usual
    floor: float = 0.01  # $ per tool call: the smallest change tested is never under this
    critical_usd_per_hour: float = 10.0


class ToolHiddenCost(MeanDetector):
    name: ClassVar[str] = "tool_hidden_cost"
    settings_type: ClassVar[type[Settings]] = Settings
    numerator: ClassVar[str] = "cost_usd"
    denominator: ClassVar[str] = "tool_calls"
    settings: Settings

    def signals(self) -> list[Signal]:
        return [Signal(TOOL_COSTS, DIMENSIONS)]

    def critical(self, lower: np.ndarray, run: Run, usual: np.ndarray) -> np.ndarray:
        """Critical when the inner spend rate since the change began reaches ``critical_usd_per_hour``."""
        return run.total * 60 / np.maximum(run.minutes, 1) >= self.settings.critical_usd_per_hour

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"LLM cost inside the tool ${value:.4f} per tool call since the change began (usually "
            f"${usual:.4f}; evidence past ${threshold:.4f}) for {format_scope(scope)}"
        )


DETECTOR = ToolHiddenCost
