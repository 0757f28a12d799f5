"""Injected incidents (one kind per detector), benign confounders, and the scenarios that lay them out.

An incident is data: a kind, an onset, an end and a culprit scope in the collector's dimension names
(``service``, ``route``, ``model`` = the response model, ``prompt_version``, ``service_version``, ``user``,
``router``, ``tool``). ``conditions_at`` turns the incidents active at an instant into ``Conditions``, the
few knobs the traffic model reads; incidents that add traffic (a runaway loop, a surge, a new model) are
spawned by the traffic model itself from the same records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tokenpulse.detectors.catalog import NAMES as DETECTOR_NAMES
from tokenpulse.simulate.catalog import make_users
from tokenpulse.simulate.diurnal import diurnal, low_load_windows, to_ns

# An incident of kind K is meant to be caught by detector K (the detector names are a public contract).
# coverage_gap reads the providers' own usage and cost reports, which a simulation of spans does not
# produce: it is proven on the fixture month (tests/reconcile, tests/detectors/catalog) instead.
NOT_SIMULATED: tuple[str, ...] = ("coverage_gap",)
INCIDENT_KINDS: tuple[str, ...] = tuple(name for name in DETECTOR_NAMES if name not in NOT_SIMULATED)
# Changes that look alarming but must not alert.
CONFOUNDER_KINDS: tuple[str, ...] = (
    "traffic_surge",
    "single_slow_call",
    "noop_deploy",
    "overnight_trough",
    "new_model",
    "cache_blip",
    "new_judge_prompt",
)
ALL_KINDS = INCIDENT_KINDS + CONFOUNDER_KINDS

# Effect sizes, chosen to sit clearly past the thresholds named in the incident descriptions.
COLLAPSED_READ_SHARE = 0.1  # cache_hit_collapse: reads / cacheable tokens
BLIP_READ_SHARE = 0.05  # cache_blip
GROWTH_MINUTES = 45.0  # prompt_growth: input per call reaches GROWTH_FACTOR after this long, and keeps going
GROWTH_FACTOR = 4.0
REASONING_FACTOR = 9.0  # reasoning_blowup: median reasoning tokens multiplier
REASONING_CAPPED_SHARE = 0.12  # and this share of calls think until the 100k output cap
TAIL_SHARE = 0.05  # latency_p99_drift: share of calls that stall
TAIL_FACTOR = (5.5, 9.0)  # by this much (uniform)
TAIL_RAMP_MINUTES = 20.0  # a gradual drift reaches TAIL_SHARE after this long
TTFT_FACTOR = 2.0  # ttft_slo: every first token later by this factor
TTFT_STALL_SHARE = 0.12  # plus this share of calls queued
TTFT_STALL_S = (1.2, 3.0)  # for this long (uniform)
ESCALATED_SHARE = 0.85  # routing_escalation
TOOL_INNER_CALLS = 8  # tool_hidden_cost: inner LLM calls per execution
TOOL_PROMPT_FACTOR = 5.0  # and their prompt size multiplier (cached after the first)
TIMEOUT_SHARE = 0.35  # timeout_surge
SURGE_FACTOR = 3.0  # traffic_surge: sessions multiplier
LOOP_SPEND_FACTOR = 20.0  # cost_spike: the user's spend multiplier
LOOP_USER_RANK = 20  # cost_spike: activity rank of the culprit (0 = most active)
NEW_MODEL_PER_HOUR = 6.0  # new_model
SLOW_CALL_S = 60.0  # single_slow_call
CHEAPER_MODEL = "gpt-4o-mini"  # quality_drop: the route's answers move to this model ...
CHEAPER_PASS_PROB = 0.72  # ... which the judge passes this often there (gpt-4o: 91%)
NEW_JUDGE = "judge_pass_v2"  # new_judge_prompt: the judge's new prompt, under its own evaluation name
NEW_JUDGE_PASS_PROB = 0.75  # stricter than the old prompt, the answers unchanged

GAP = timedelta(minutes=20)  # between consecutive events of the `incidents` layout
DAYTIME = 0.35  # incidents of the `incidents` layout happen where the load is at least this ...
BUSY = 0.65  # ... or this, for routes too thin at lower load for detectors' minimum sample counts


@dataclass(frozen=True)
class Incident:
    """One injected incident or confounder: what, when, where."""

    kind: str
    onset: datetime
    end: datetime
    scope: Mapping[str, str]
    gradual: bool = False
    description: str = ""

    @property
    def detector(self) -> str | None:
        """The detector meant to catch it; None for a confounder, which must not alert."""
        return self.kind if self.kind in INCIDENT_KINDS else None

    @property
    def onset_ns(self) -> int:
        """The onset in Unix nanoseconds."""
        return to_ns(self.onset)

    @property
    def end_ns(self) -> int:
        """The end (exclusive) in Unix nanoseconds."""
        return to_ns(self.end)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry."""
        return {
            "kind": self.kind,
            "detector": self.detector,
            "onset": _iso(self.onset),
            "end": _iso(self.end),
            "scope": dict(self.scope),
            "gradual": self.gradual,
            "description": self.description,
        }


@dataclass(frozen=True)
class Scenario:
    """A time range of simulated traffic and the incidents injected into it."""

    name: str
    start: datetime
    end: datetime
    seed: int
    incidents: tuple[Incident, ...] = ()

    def manifest(self, rate: float) -> dict[str, Any]:
        """The JSON manifest: what was injected where, for scoring detectors."""
        return {
            "scenario": self.name,
            "seed": self.seed,
            "rate_per_minute": rate,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "incidents": [i.to_json() for i in sorted(self.incidents, key=lambda i: (i.onset, i.kind))],
        }


@dataclass
class Conditions:
    """The knobs the traffic model reads for calls starting in one minute. Keys are (service, route)
    unless named otherwise; an absent key means normal behaviour."""

    service_version: dict[str, str] = field(default_factory=dict)  # by service
    prompt_version: dict[tuple[str, str], str] = field(default_factory=dict)
    cache_read_share: dict[tuple[str, str], float] = field(default_factory=dict)  # of cacheable tokens
    cache_off: set[tuple[str, str]] = field(default_factory=set)
    input_growth: dict[tuple[str, str], float] = field(default_factory=dict)  # input multiplier
    reasoning_blowup: set[tuple[str, str]] = field(default_factory=set)
    tail_share: dict[str, float] = field(default_factory=dict)  # by response model
    ttft_degraded: set[tuple[str, str]] = field(default_factory=set)
    escalation: dict[tuple[str, str], float] = field(default_factory=dict)
    tool_cost: set[tuple[str, str]] = field(default_factory=set)  # (service, tool)
    route_timeouts: dict[tuple[str, str], float] = field(default_factory=dict)
    tool_timeouts: dict[tuple[str, str], float] = field(default_factory=dict)  # (service, tool)
    surge: dict[str, float] = field(default_factory=dict)  # session multiplier by service
    uninstrumented: set[tuple[str, str]] = field(default_factory=set)  # calls made, no span exported
    cheaper_model: set[tuple[str, str]] = field(default_factory=set)  # answered by CHEAPER_MODEL
    switched_model: dict[tuple[str, str], str] = field(default_factory=dict)  # answered by this model
    judge: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # (name, pass prob)


def conditions_at(incidents: Sequence[Incident], t_ns: int) -> Conditions:
    """The conditions produced by the incidents active at ``t_ns``."""
    conditions = Conditions()
    for incident in incidents:
        if incident.onset_ns <= t_ns < incident.end_ns:
            _apply(incident, conditions, (t_ns - incident.onset_ns) / 60e9)
    return conditions


def _apply(incident: Incident, c: Conditions, minutes: float) -> None:
    scope = incident.scope
    route = (scope.get("service", ""), scope.get("route", ""))
    kind = incident.kind
    if kind == "cache_hit_collapse":
        c.prompt_version[route] = scope["prompt_version"]
        c.cache_read_share[route] = COLLAPSED_READ_SHARE
    elif kind == "cache_blip":
        c.cache_read_share[route] = BLIP_READ_SHARE
    elif kind == "cache_not_applied":
        c.service_version[route[0]] = scope["service_version"]
        c.cache_off.add(route)
    elif kind == "noop_deploy":
        c.service_version[route[0]] = scope["service_version"]
    elif kind == "prompt_growth":
        c.input_growth[route] = 1 + (GROWTH_FACTOR - 1) * minutes / GROWTH_MINUTES
    elif kind == "reasoning_blowup":
        c.reasoning_blowup.add(route)
    elif kind == "latency_p99_drift":
        ramp = min(1.0, minutes / TAIL_RAMP_MINUTES) if incident.gradual else 1.0
        c.tail_share[scope["model"]] = TAIL_SHARE * ramp
    elif kind == "ttft_slo":
        c.ttft_degraded.add(route)
    elif kind == "routing_escalation":
        c.escalation[route] = ESCALATED_SHARE
    elif kind == "tool_hidden_cost":
        c.tool_cost.add((route[0], scope["tool"]))
    elif kind == "timeout_surge":
        if "tool" in scope:
            c.tool_timeouts[(route[0], scope["tool"])] = TIMEOUT_SHARE
        else:
            c.route_timeouts[route] = TIMEOUT_SHARE
    elif kind == "traffic_surge":
        c.surge[route[0]] = SURGE_FACTOR
    elif kind == "cost_spike" and "route" in scope:
        # The demo's cost spike: a config change points a route at a pricier model (the per-user
        # runaway loop of the other scenarios is spawned by the traffic model).
        c.switched_model[route] = scope["model"]
    elif kind == "traffic_drop":
        c.uninstrumented.add(route)
    elif kind == "quality_drop":
        c.cheaper_model.add(route)
    elif kind == "new_judge_prompt":
        c.judge[route] = (NEW_JUDGE, NEW_JUDGE_PASS_PROB)
    # cost_spike, new_model and single_slow_call add sessions (see traffic.py); overnight_trough is the
    # diurnal curve itself.


@dataclass(frozen=True)
class _Plan:
    minutes: float
    scope: Mapping[str, str]
    description: str
    gradual: bool = False
    # The `incidents` layout puts it where the load stays at least this high, so that its scope has the
    # traffic detectors need (0: anywhere).
    min_load: float = DAYTIME
    persists: bool = False  # lasts until the end of the simulation (a deploy, a new model)


def _plans(culprit_user: str) -> dict[str, _Plan]:
    return {
        "cache_hit_collapse": _Plan(
            60, {"service": "support-bot", "route": "/chat", "prompt_version": "v8"},
            "prompt v8 puts a per-request timestamp near the top of the /chat system prompt: every call "
            "rewrites the cache, reads fall to ~10% of cacheable tokens",
        ),
        "cache_not_applied": _Plan(
            50, {"service": "support-bot", "route": "/triage", "service_version": "3.15.0"},
            "deploy 3.15.0 drops cache_control from the /triage request: no cache reads or writes; "
            "rolled back at the end",
        ),
        "prompt_growth": _Plan(
            60, {"service": "checkout-assistant", "route": "/order-status"},
            "conversation memory is no longer truncated: input tokens per call grow steadily, "
            f"{GROWTH_FACTOR}x after {GROWTH_MINUTES:.0f} min",
            gradual=True,
        ),
        "reasoning_blowup": _Plan(
            40, {"service": "search", "route": "/deep-research", "model": "o3-2025-04-16"},
            f"reasoning effort misconfigured: o3 reasoning tokens per call {REASONING_FACTOR:.0f}x, "
            f"{REASONING_CAPPED_SHARE:.0%} of calls think until the 100k output cap",
        ),
        "latency_p99_drift": _Plan(
            75, {"model": "gpt-4o-mini-2024-07-18"},
            "gpt-4o-mini tail degrades on every route: p99 latency 3-4x while the median barely moves",
            gradual=True,
        ),
        "ttft_slo": _Plan(
            45, {"service": "search", "route": "/answer"},
            f"queueing on /answer: TTFT {TTFT_FACTOR:.0f}x and {TTFT_STALL_SHARE:.0%} of calls wait "
            "1-3 s for the first token (p99 well above 1.5 s)",
            min_load=BUSY,
        ),
        "cost_spike": _Plan(
            40, {"user": culprit_user},
            f"a runaway client loop: one user re-sends the same /chat turn every few seconds, "
            f"spending ~{LOOP_SPEND_FACTOR:.0f}x",
        ),
        "routing_escalation": _Plan(
            45, {"service": "checkout-assistant", "route": "/assist", "router": "complexity-router"},
            f"router threshold regression: {ESCALATED_SHARE:.0%} of /assist calls escalated to gpt-4o "
            "(normally 20%)",
        ),
        "tool_hidden_cost": _Plan(
            50, {"service": "checkout-assistant", "tool": "recommend_products"},
            f"recommend_products re-ranks in a loop over the full catalog: {TOOL_INNER_CALLS} inner "
            f"calls with {TOOL_PROMPT_FACTOR:.0f}x the prompt per execution, >= 10x the cost per tool call",
        ),
        "timeout_surge": _Plan(
            35, {"service": "search", "route": "/suggest"},
            f"provider degradation: {TIMEOUT_SHARE:.0%} of /suggest calls hit the 10 s client timeout",
            min_load=0.5,
        ),
        "traffic_drop": _Plan(
            40, {"service": "search", "route": "/answer"},
            "a deploy swaps /answer's HTTP client for one the instrumentation does not patch: its calls "
            "go on, their spans stop",
        ),
        "traffic_surge": _Plan(
            45, {"service": "search"},
            f"a marketing email: {SURGE_FACTOR:.0f}x sessions on search, per-call metrics unchanged",
        ),
        "single_slow_call": _Plan(
            SLOW_CALL_S / 60,
            {"service": "support-bot", "route": "/chat", "model": "claude-sonnet-4-5-20250929"},
            "one /chat call takes 60 s",
            min_load=0,
        ),
        "noop_deploy": _Plan(
            0, {"service": "checkout-assistant", "service_version": "2.8.1"},
            "a deploy that changes nothing LLM-related", min_load=0, persists=True,
        ),
        "new_model": _Plan(
            0, {"service": "support-bot", "route": "/summarize", "model": "gemini-3-pro-preview"},
            f"an A/B trial sends ~{NEW_MODEL_PER_HOUR:.0f} calls an hour to a model never seen before",
            min_load=0, persists=True,
        ),
        "quality_drop": _Plan(
            45, {"service": "search", "route": "/answer"},
            f"a cheaper routing rule sends every /answer call to {CHEAPER_MODEL}: cost per call falls by "
            f"two thirds and the LLM judge passes {CHEAPER_PASS_PROB:.0%} of answers (normally 91%)",
        ),
        "new_judge_prompt": _Plan(
            30, {"service": "checkout-assistant", "route": "/assist"},
            f"the /assist judge is tried with a stricter prompt, sent as a new evaluation ({NEW_JUDGE}, "
            f"passing {NEW_JUDGE_PASS_PROB:.0%}), then set back; the answers do not change",
            min_load=0,
        ),
        "cache_blip": _Plan(
            3, {"service": "support-bot", "route": "/chat"},
            "a provider-side cache eviction: /chat cache reads drop for 3 minutes, then recover",
            min_load=0,
        ),
    }  # fmt: skip


# The preferred order of the `incidents` layout on day 2; confounders are interleaved. The no-op deploy
# and the new model come after every incident, so neither can be blamed for one.
_LAYOUT: tuple[str, ...] = (
    "traffic_surge",
    "cache_hit_collapse",
    "routing_escalation",
    "latency_p99_drift",
    "cost_spike",
    "cache_blip",
    "cache_not_applied",
    "tool_hidden_cost",
    "single_slow_call",
    "ttft_slo",
    "prompt_growth",
    "noop_deploy",
    "reasoning_blowup",
    "timeout_surge",
    "traffic_drop",
    "new_judge_prompt",
    "quality_drop",
    "new_model",
)
_DEMO = ("cache_hit_collapse", "cost_spike", "latency_p99_drift")
# The demo is three hours: a user seen at this time of day on no previous day is watched on their cost
# per call alone, never on their spend a minute (cost_spike's per-user rule), so the demo's cost spike is
# the per-call kind its rollup levels page on after an hour of history.
_DEMO_PLANS: dict[str, _Plan] = {
    "cost_spike": _Plan(
        40,
        {"service": "support-bot", "route": "/summarize", "model": "claude-sonnet-4-5-20250929"},
        "a config change sends /summarize to claude-sonnet-4-5 instead of gemini-2.5-flash: every summary "
        "costs ~9x",
    ),
}
DEMO_LEAD = timedelta(minutes=40)
SCENARIOS: tuple[str, ...] = (
    "clean",
    "demo",
    "incidents",
    *(k for k in ALL_KINDS if k != "overnight_trough"),
)


def default_duration(scenario: str) -> timedelta:
    """How long a scenario runs when ``--duration`` is not given."""
    if scenario in ("clean", "incidents"):
        return timedelta(days=2)
    if scenario == "demo":
        # Clean history, then the incidents: the p99 baseline rests on whole hours of calls that ended at
        # least an hour before (the first whole hour of a demo starting at 10:01 is 11:00-12:00, known
        # from 13:00), so the incidents 40 minutes before the end need 3 h 45 min before them.
        return timedelta(hours=4)
    return timedelta(hours=6)


def build_scenario(name: str, start: datetime, duration: timedelta, seed: int) -> Scenario:
    """The incidents of scenario ``name`` over ``[start, start + duration)``; raises ValueError when they do
    not fit."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}")
    end = start + duration
    plans = _plans(make_users(seed)[LOOP_USER_RANK])
    incidents: list[Incident] = [
        Incident("overnight_trough", a, b, {}, gradual=True,
                 description="the overnight load trough (~20% of the daytime peak), part of the daily curve")
        for a, b in low_load_windows(start, end)
    ]  # fmt: skip
    if name == "demo":
        # The incidents come in the last DEMO_LEAD minutes: what comes before is the clean history the
        # relative detectors take their baselines from.
        first = max(start + timedelta(minutes=2), end - DEMO_LEAD)
        for minute, kind in enumerate(_DEMO):
            onset = _minute(first + timedelta(minutes=minute))
            if onset + timedelta(minutes=5) > end:
                raise ValueError("the demo scenario needs at least 10 minutes")
            # Demo incidents are abrupt and last to the end, so they are obvious on a dashboard.
            plan = _DEMO_PLANS.get(kind, plans[kind])
            incidents.append(_incident(kind, plan, onset, end, gradual=False))
    elif name == "incidents":
        incidents += _layout(plans, start + duration / 2, end)
    elif name != "clean":
        plan = plans[name]
        onset = _minute(start + duration / 2)
        finish = end if plan.persists else onset + timedelta(minutes=plan.minutes)
        if finish > end:
            raise ValueError(f"{name} lasts {plan.minutes:.0f} min: use a --duration of at least "
                             f"{2 * plan.minutes:.0f}m")  # fmt: skip
        incidents.append(_incident(name, plan, onset, finish))
    return Scenario(name, start, end, seed, tuple(incidents))


def _layout(plans: Mapping[str, _Plan], day_start: datetime, end: datetime) -> list[Incident]:
    """Every kind one after the other with a gap, each where the load suits it: greedily the event that
    can start soonest (ties in ``_LAYOUT`` order); deploys and the new model, which last to the end, last."""
    placed: list[Incident] = []
    cursor = _minute(day_start + timedelta(minutes=30))
    waiting = [k for k in _LAYOUT if not plans[k].persists]
    while waiting:
        onsets = {
            k: _next_busy(cursor, timedelta(minutes=plans[k].minutes), end, plans[k].min_load)
            for k in waiting
        }
        kind = min(waiting, key=lambda k: onsets[k])  # min() keeps the first of equal onsets
        waiting.remove(kind)
        length = timedelta(minutes=plans[kind].minutes)
        if onsets[kind] + length > end:
            raise ValueError("the incidents scenario does not fit: use a --duration of 2d or more")
        placed.append(_incident(kind, plans[kind], onsets[kind], onsets[kind] + length))
        cursor = _minute(onsets[kind] + length + GAP)
    for kind in (k for k in _LAYOUT if plans[k].persists):
        if cursor >= end:
            raise ValueError("the incidents scenario does not fit: use a --duration of 2d or more")
        placed.append(_incident(kind, plans[kind], cursor, end))
        cursor = _minute(cursor + GAP)
    return placed


def _next_busy(t: datetime, length: timedelta, end: datetime, min_load: float) -> datetime:
    """The first minute from ``t`` from which the load stays at least ``min_load`` for ``length``; a time
    past ``end - length`` when there is none."""
    start, minutes = t, 0
    while start + length <= end:
        if minutes > length.total_seconds() / 60:
            return start
        if diurnal(to_ns(start + timedelta(minutes=minutes))) >= min_load:
            minutes += 1
        else:
            start, minutes = start + timedelta(minutes=minutes + 1), 0
    return end


def _incident(
    kind: str, plan: _Plan, onset: datetime, end: datetime, gradual: bool | None = None
) -> Incident:
    return Incident(kind, onset, end, dict(plan.scope), plan.gradual if gradual is None else gradual,
                    plan.description)  # fmt: skip


def _minute(t: datetime) -> datetime:
    """``t`` rounded up to a whole minute, so onsets line up with the per-minute rollup."""
    floored = t.replace(second=0, microsecond=0)
    return floored if floored == t else floored + timedelta(minutes=1)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
