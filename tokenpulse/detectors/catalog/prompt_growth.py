"""prompt_growth: prompts keep getting longer, per service and route, in two ways.

(a) Route-wide: input tokens per call rise clearly above the route's own usual level: conversation
    history accumulating without truncation, a retrieval step that returns ever more chunks, a tool
    result pasted in whole. The evidence model is ``evidence.MeanDetector``'s: each minute's input per
    call weighs for "the mean doubled, quadrupled or grew 8x" against the route's usual mean, with the
    spread per call the route's own trailing day shows (a route whose prompts vary wildly needs more
    calls to show a doubling). ``floor_tokens`` is a business floor: the smallest change tested is never
    under 1,000 tokens per call. Critical: 4x the usual since the growth began. A route whose baseline
    has fewer than 30 calls is learning.
    Input tokens include cache reads and writes (see docs/normalization.md): a cached prefix that grows
    still costs latency and context window, so this watches what is sent, not what is billed.

(b) Per session: sessions whose prompts keep climbing far past their first calls: a session with at
    least ``session_min_calls`` calls whose input tokens per call in a minute are ``session_growth``
    times those of its first minute or more, and at least ``session_floor_tokens``. An agent loop that
    appends every tool result to its history until it hits the context window shows up here long
    before it moves the route's average.

    Sessions are unbounded in number, so they are never a grid column per session. The SQL does the
    per-session work on the raw ``calls``: per minute (the minute a call ended, like the rollup) and
    session the calls and input tokens, then over each session's minutes in order (a window function)
    its cumulative calls and the input per call of its first minute, keeping only the runaway
    (session, minute) rows. Usually there are none, so the result stays small however many sessions
    there are; and since a minute can only average past the floor if one of its calls is, only the
    sessions with such a call are grouped at all. In memory, the runaway rows become a 0/1 minute x
    (service, route, session) grid of those few sessions; a trailing sum says whether each was
    runaway within the window, and summing the sessions of a route gives a minute x (service, route)
    grid of runaway sessions, vectorized like every other signal. The worst session ids are looked up
    in the rows of the active observations only, for their summary.

    The thresholds are baked into the SQL (numbers formatted by Python, never text from outside), so
    the query name carries them: two settings, two queries. It reads ``calls`` without FINAL: FINAL
    would merge the whole range of the raw table at every cycle, while a duplicate span (an exporter
    retry outside the insert deduplication window) only adds one call to a session's count and pulls
    its minute's average towards a call that did happen; the rollup counts duplicates the same way.
    "First minute" is the first in the history read (the trailing 25 hours): a session older than
    that is judged against a later, longer prompt, so its growth is underestimated, never overstated.
    Calls that all fall in one minute cannot grow past their own first minute: a session is caught
    once it spans minutes, which any session long enough to run away does.

Both hold on the same alert per (service, route); the route-wide observation wins when both hold, and
every summary names the worst runaway sessions in the last ``session_window`` when there are any. A
session is a business rule, not a statistical one (one runaway session is the incident), so (b) keeps its
thresholds; it holds while a runaway minute is within ``session_window``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd

from tokenpulse.detectors.base import WARNING, Coverage, Observation, Scope, format_scope
from tokenpulse.detectors.data import at_times, grids, minute_index, minutes, trailing_sum
from tokenpulse.detectors.evidence import MeanDetector, MeanSettings, Signal
from tokenpulse.detectors.history import ENDED_MINUTE, ROLLUP, TENANT, Gate, History, Query

DIMENSIONS = ("service", "route")
SESSION_DIMENSIONS = (*DIMENSIONS, "session")


@dataclass(frozen=True)
class Settings(MeanSettings):
    rises: tuple[float, ...] = (2.0, 4.0, 8.0)  # input tokens per call against the route's usual
    critical_ratio: float = 4.0
    floor: float = 1_000.0  # tokens per call: short prompts cost little
    # A prompt blip (one huge pasted document, a retry loop for two minutes) and a stray long prompt after
    # it were every false page of the randomized benchmark's held-out seeds 2301-2408 (23 of 23): a run
    # must beat such a blip by a nat (tuning seeds 451-462: false pages 11 -> 0, recall 1,996 -> 1,989).
    blip_margin: float = 1.0
    session_window: timedelta = timedelta(minutes=15)  # a runaway session counts this long
    session_min_calls: int = 10  # a runaway session has made at least this many calls
    session_growth: float = 5.0  # ... its input per call is this many times that of its first minute
    session_floor_tokens: int = 50_000  # ... and at least this many tokens
    min_runaway_sessions: int = 1  # runaway sessions of a route within the window that alert
    summary_sessions: int = 3  # worst sessions named in the summary


def runaway_sessions_query(min_calls: int, growth: float, floor_tokens: int) -> Query:
    """Per minute, the (service, route, session) rows whose input per call ran away from the first minute's.

    Columns: minute, tenant, service, route, session, calls, input_tokens (that minute's),
    first_input_per_call.
    """
    min_calls, growth, floor_tokens = int(min_calls), float(growth), int(floor_tokens)  # numbers only
    in_range = "time >= {start:DateTime('UTC')} AND time < {end:DateTime('UTC')} AND session != ''"
    # Only sessions with a call past the floor can have a minute whose average is past it: finding them
    # first reads two columns, and the per-session work is then done on their calls only.
    candidates = (
        f"SELECT tenant, service, route, session FROM calls "
        f"WHERE {in_range} AND input_tokens >= {floor_tokens}"
    )
    per_minute = (
        f"SELECT {ENDED_MINUTE} AS minute, tenant, service, route, session, "
        "count() AS calls, sum(input_tokens) AS input_tokens FROM calls "
        f"WHERE {in_range} AND (tenant, service, route, session) IN ({candidates}) "
        "GROUP BY minute, tenant, service, route, session"
    )
    return Query(
        f"runaway_sessions:calls>={min_calls}:x{growth:g}:floor{floor_tokens}",
        "SELECT minute, tenant, service, route, session, calls, input_tokens, first_input_per_call "
        "FROM ("
        "SELECT minute, tenant, service, route, session, calls, input_tokens, "
        "first_value(input_tokens / calls) OVER w AS first_input_per_call, "
        "sum(calls) OVER w AS session_calls "
        f"FROM ({per_minute}) "
        "WINDOW w AS (PARTITION BY tenant, service, route, session ORDER BY minute "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) "
        f"WHERE session_calls >= {min_calls} "
        f"AND input_tokens / calls >= greatest({growth!r} * first_input_per_call, {floor_tokens})",
        recent=timedelta(hours=25),  # the trailing day only: sessions are not compared with other days
        # No call past the floor in the range, no candidate session: the query is not run.
        gate=Gate(f"SELECT 1 FROM calls WHERE {in_range} AND input_tokens >= {floor_tokens}"),
    )


class PromptGrowth(MeanDetector):
    name: ClassVar[str] = "prompt_growth"
    settings_type: ClassVar[type[Settings]] = Settings
    numerator: ClassVar[str] = "input_tokens"
    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        self.runaway = runaway_sessions_query(s.session_min_calls, s.session_growth, s.session_floor_tokens)

    def signals(self) -> list[Signal]:
        return [Signal(ROLLUP, DIMENSIONS)]

    def queries(self) -> list[Query]:
        return [ROLLUP, self.runaway]

    def assess(self, history: History, times: Sequence[datetime]) -> tuple[list[Observation], list[Coverage]]:
        observations, coverage = super().assess(history, times)
        window = minutes(self.settings.session_window)
        runaway = history[self.runaway]
        sessions = at_times(route_sessions(runaway, window, history.start, history.end), times)
        growing = {(o.at, o.scope) for o in observations}
        for (at, scope), count in sessions.stack().items():
            if count >= self.settings.min_runaway_sessions and (at.to_pydatetime(), scope) not in growing:
                observations.append(self._sessions_observation(scope, at.to_pydatetime(), float(count)))
        return [self._name_sessions(o, runaway, sessions, window) for o in observations], coverage

    def _sessions_observation(self, scope: Scope, at: datetime, count: float) -> Observation:
        return Observation(
            detector=self.name, scope=scope, at=at, severity=WARNING, value=count,
            threshold=float(self.settings.min_runaway_sessions), baseline=None, samples=int(count),
            summary=f"{count:.0f} session(s) whose prompts keep growing for {format_scope(scope)}",
        )  # fmt: skip

    def describe(self, scope: Scope, value: float, threshold: float, usual: float) -> str:
        return (
            f"{_tokens(value)} input tokens per call since the growth began (usually {_tokens(usual)}; "
            f"evidence past {_tokens(threshold)}) for {format_scope(scope)}: prompts keep growing"
        )

    def _name_sessions(
        self, observation: Observation, runaway: pd.DataFrame, sessions: pd.DataFrame, window: int
    ) -> Observation:
        """The observation with the worst runaway sessions of its route in the window in its summary."""
        key = (pd.Timestamp(observation.at), observation.scope)
        if observation.scope not in sessions.columns or not sessions.at[key]:
            return observation
        worst = worst_sessions(
            runaway, observation.scope, observation.at, window, self.settings.summary_sessions
        )
        return replace(observation, summary=f"{observation.summary}; runaway sessions: {worst}")


def route_sessions(runaway: pd.DataFrame, window: int, start: datetime, end: datetime) -> pd.DataFrame:
    """Minute x (tenant, service, route) grid: sessions with a runaway minute in [t - window, t). The
    tenant is left out of a scope where it is "" (no API keys), like the templates' scopes."""
    if runaway.empty:
        return pd.DataFrame(index=minute_index(start, end), dtype=float)
    dims = (TENANT, *SESSION_DIMENSIONS) if TENANT in runaway else SESSION_DIMENSIONS
    flags = grids(runaway.assign(runaway=1.0), dims, ("runaway",), start, end)["runaway"]
    seen = (trailing_sum(flags, window) > 0).to_numpy(dtype=float)  # minute x session
    routes = pd.Index(
        [tuple(p for p in scope[:-1] if p != (TENANT, "")) for scope in flags.columns], tupleize_cols=False
    )
    unique = routes.unique()
    membership = np.zeros((len(routes), len(unique)))  # session -> its route
    membership[np.arange(len(routes)), unique.get_indexer(routes)] = 1.0
    return pd.DataFrame(seen @ membership, index=flags.index, columns=unique)


def worst_sessions(runaway: pd.DataFrame, scope: Scope, at: datetime, window: int, count: int) -> str:
    """The ``count`` runaway sessions of ``scope`` in [at - window, at) that grew the most."""
    route = dict(scope)
    moment = pd.Timestamp(at)
    tenant = runaway[TENANT] == route[TENANT] if TENANT in route else True
    rows = runaway[
        tenant
        & (runaway["service"] == route["service"])
        & (runaway["route"] == route["route"])
        & (runaway["minute"] >= moment - pd.Timedelta(minutes=window))
        & (runaway["minute"] < moment)
    ]
    per_call = rows["input_tokens"] / rows["calls"]
    worst = (
        rows.assign(per_call=per_call, growth=per_call / rows["first_input_per_call"])
        .groupby("session", observed=True)[["growth", "per_call", "first_input_per_call"]]
        .max()
        .sort_values(["growth", "per_call"], ascending=False)
        .head(count)
    )
    return ", ".join(
        f"{session} ({row.growth:.1f}x: {_tokens(row.first_input_per_call)} -> {_tokens(row.per_call)})"
        for session, row in worst.iterrows()
    )


def _tokens(value: float) -> str:
    return f"{value / 1000:.0f}k" if value >= 10_000 else f"{value:,.0f}"


DETECTOR = PromptGrowth
