"""The traffic model: sessions of users on service routes, turned into traces of LLM calls and tools.

Pure and deterministic for a seed: no clock, no I/O. Sessions arrive as a Poisson process whose rate follows
the daily curve; each session draws its route and user (Zipf) and then its turns, with the user's think
time in between, until it ends. Every session has its own random stream, so an incident that changes the
calls of one session (or adds sessions) leaves every other session exactly as it would have been: a run
with an incident differs from the clean run with the same seed only inside the incident's scope.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import accumulate

from tokenpulse.simulate import incidents as inc
from tokenpulse.simulate.catalog import (
    MODELS,
    MODELS_BY_RESPONSE,
    SERVICES,
    SERVICES_BY_NAME,
    TOOLS,
    LogNormal,
    Model,
    Route,
    Service,
    calls_per_session,
    make_users,
    zipf_weights,
)
from tokenpulse.simulate.diurnal import diurnal, to_ns
from tokenpulse.simulate.incidents import Conditions, Incident, Scenario, conditions_at
from tokenpulse.simulate.spec import TIMEOUT_ERROR, Evaluation, LlmCall, ToolExec, Turn

DEFAULT_RATE = 200.0  # LLM calls per minute at the daily peak: two days ~ 350k calls

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
_WARM_PREFIX = 0.97  # chance a route's shared system prompt is still in the provider cache
_BASE_TIMEOUT = 0.0005  # share of calls that time out on a normal day
_BASE_ERROR = 0.004  # share of calls failing with rate limits, overload, 5xx
_TOOL_ERROR = 0.005
_LONG_TAIL = 0.004  # share of calls in the latency long tail (network stalls, provider hiccups)
_TTFT_TAIL = 0.002
_PREFILL_TPS = 40_000  # uncached prompt tokens a provider processes per second
_CACHED_PREFILL_TPS = 400_000
_ERROR_LATENCY = LogNormal(0.4, 0.6)  # failures come back fast
_TOOL_CALL_TOKENS = LogNormal(45, 0.4)  # a tool-call answer: the arguments only
_OVERHEAD = LogNormal(0.004, 0.5)  # app time between spans
_LOOP_HISTORY = LogNormal(3000, 0.3)  # where a runaway loop got stuck: mid-conversation
# A looping /chat turn costs this many times the fleet's average turn (measured with genai-prices at the
# default mix); the loop's rate divides by it so the culprit's spend lands near LOOP_SPEND_FACTOR.
_LOOP_TURN_COST = 2.4


class _Session:
    """A conversation in progress; it owns its random stream."""

    __slots__ = ("cached", "continue_prob", "forced_s", "history", "id", "loop_gap", "model", "rng",
                 "route", "service", "turns", "until_ns", "user")  # fmt: skip

    def __init__(self, rng: random.Random, sid: str, service: Service, route: Route, user: str) -> None:
        self.rng = rng
        self.id = sid
        self.service = service
        self.route = route
        self.user = user
        self.turns = 0
        self.history = 0  # conversation tokens after the system prompt
        self.cached = 0  # prompt prefix the provider has cached for this conversation
        self.continue_prob = 1.0 - 1.0 / route.mean_turns
        self.model: str | None = None  # overrides the route's model (new_model)
        self.forced_s: float | None = None  # the first call lasts exactly this long (single_slow_call)
        self.loop_gap: LogNormal | None = None  # a runaway loop re-sends at this pace (cost_spike)
        self.until_ns = 0  # and stops here


@dataclass(frozen=True, slots=True)
class _Ctx:
    """What every call of one turn shares."""

    rng: random.Random
    service: Service
    route: Route
    key: tuple[str, str]
    user: str
    session: str
    prompt_version: str
    conditions: Conditions


class TrafficModel:
    """Generates the turns of a scenario in start-time order."""

    def __init__(self, scenario: Scenario, rate: float = DEFAULT_RATE) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.scenario = scenario
        self.seed = scenario.seed
        self.start_ns = to_ns(scenario.start)
        self.end_ns = to_ns(scenario.end)
        self.users = make_users(self.seed)
        self.user_weights = zipf_weights(len(self.users))
        self._user_cum = list(accumulate(self.user_weights))
        self._routes = [(s, r) for s in SERVICES for r in s.routes]
        self._route_cum = list(accumulate(s.weight * r.weight for s, r in self._routes))
        self.sessions_per_minute = rate / calls_per_session()  # at the daily peak
        self._turns_per_session = sum(s.weight * r.weight * r.mean_turns for s, r in self._routes)
        self._heap: list[tuple[int, int, _Session]] = []
        self._pushed = 0
        self._serial = 0
        self._extra = [0] * len(scenario.incidents)
        # Incidents that add sessions draw their arrivals from their own streams, not the clean one.
        self._streams = [random.Random(f"{self.seed}:incident:{i}") for i in range(len(scenario.incidents))]

    # ---- arrivals ------------------------------------------------------------------------------------

    def turns(self) -> Iterator[Turn]:
        """Every turn that starts inside the scenario's range, in start-time order."""
        arrivals = random.Random(f"{self.seed}:arrivals")
        for lo, hi in self._minutes():
            conditions = conditions_at(self.scenario.incidents, lo)
            load = diurnal(lo)
            self._poisson(arrivals, self.sessions_per_minute * load, lo, hi, self._base_session)
            for index, incident in enumerate(self.scenario.incidents):
                self._incident_arrivals(index, incident, conditions, load, lo, hi)
            while self._heap and self._heap[0][0] < hi:
                t_ns, _, session = heapq.heappop(self._heap)
                turn = self._turn(session, t_ns, conditions)
                if (session.service.name, session.route.name) not in conditions.uninstrumented:
                    yield turn
                self._next_turn(session, turn)

    def _minutes(self) -> Iterator[tuple[int, int]]:
        """The range cut at whole wall-clock minutes, where incident onsets sit."""
        lo = self.start_ns
        while lo < self.end_ns:
            hi = min(self.end_ns, (lo // _MINUTE_NS + 1) * _MINUTE_NS)
            yield lo, hi
            lo = hi

    @staticmethod
    def _poisson(
        rng: random.Random, per_minute: float, lo: int, hi: int, spawn: Callable[[int], None]
    ) -> None:
        """Arrivals of a Poisson process with a constant rate over ``[lo, hi)``."""
        if per_minute <= 0:
            return
        t = lo + int(rng.expovariate(per_minute) * _MINUTE_NS)
        while t < hi:
            spawn(t)
            t += int(rng.expovariate(per_minute) * _MINUTE_NS)

    def _push(self, t_ns: int, session: _Session) -> None:
        if t_ns < self.end_ns:
            self._pushed += 1
            heapq.heappush(self._heap, (t_ns, self._pushed, session))

    def _base_session(self, t_ns: int) -> None:
        self._serial += 1
        rng = random.Random((self.seed << 40) | self._serial)
        service, route = self._routes[bisect(self._route_cum, rng.random() * self._route_cum[-1])]
        self._push(t_ns, self._session(rng, f"{self._serial:x}", service, route))

    def _session(self, rng: random.Random, serial: str, service: Service, route: Route) -> _Session:
        user = self.users[bisect(self._user_cum, rng.random() * self._user_cum[-1])]
        return _Session(rng, f"conv-{self.seed}-{serial}", service, route, user)

    def _extra_session(self, index: int, service: Service, route: Route | None = None) -> _Session:
        """A session added by incident ``index``, on its own random stream."""
        self._extra[index] += 1
        rng = random.Random((self.seed << 40) | ((index + 1) << 32) | self._extra[index])
        if route is None:
            cum = list(accumulate(r.weight for r in service.routes))
            route = service.routes[bisect(cum, rng.random() * cum[-1])]
        return self._session(rng, f"i{index}-{self._extra[index]:x}", service, route)

    def _incident_arrivals(
        self, index: int, incident: Incident, c: Conditions, load: float, lo: int, hi: int
    ) -> None:
        kind, scope = incident.kind, incident.scope
        onset, end = incident.onset_ns, incident.end_ns
        if kind == "traffic_surge" and scope["service"] in c.surge:
            service = SERVICES_BY_NAME[scope["service"]]
            rng = self._streams[index]
            extra = (c.surge[service.name] - 1) * self.sessions_per_minute * service.weight * load
            self._poisson(rng, extra, lo, hi, lambda t: self._push(t, self._extra_session(index, service)))
        elif kind == "new_model" and onset < hi and lo < end:
            service = SERVICES_BY_NAME[scope["service"]]
            route = service.route(scope["route"])
            model = next(m.name for m in MODELS.values() if scope["model"] in (m.name, m.response_model))

            def spawn(t: int) -> None:
                session = self._extra_session(index, service, route)
                session.model = model
                self._push(t, session)

            rng = self._streams[index]
            self._poisson(rng, inc.NEW_MODEL_PER_HOUR / 60, max(lo, onset), min(hi, end), spawn)
        elif kind == "single_slow_call" and lo <= onset < hi:
            service = SERVICES_BY_NAME[scope["service"]]
            session = self._extra_session(index, service, service.route(scope["route"]))
            session.forced_s = inc.SLOW_CALL_S
            session.continue_prob = 0.0
            self._push(onset, session)
        elif kind == "cost_spike" and "user" in scope and lo <= onset < hi:
            self._push(onset, self._loop_session(index, incident))

    def _loop_session(self, index: int, incident: Incident) -> _Session:
        """A runaway client of the culprit user re-sending the same /chat turn every few seconds."""
        service = SERVICES_BY_NAME["support-bot"]
        session = self._extra_session(index, service, service.route("/chat"))
        user = incident.scope["user"]
        session.user = user
        share = self.user_weights[self.users.index(user)]
        # The user's normal turns per minute at the onset, from the session rate and the daily curve.
        user_turns = share * self.sessions_per_minute * diurnal(incident.onset_ns) * self._turns_per_session
        loop_turns = (inc.LOOP_SPEND_FACTOR - 1) * user_turns / _LOOP_TURN_COST
        session.loop_gap = LogNormal(60 / max(loop_turns, 0.1), 0.3)
        session.until_ns = incident.end_ns
        return session

    def _next_turn(self, session: _Session, turn: Turn) -> None:
        session.turns += 1
        rng = session.rng
        if session.loop_gap is not None:
            t = turn.end_ns + int(session.loop_gap.draw(rng) * _NS)
            if t < session.until_ns:
                self._push(t, session)
        elif rng.random() < session.continue_prob:
            self._push(turn.end_ns + int(session.route.think_s.draw(rng) * _NS), session)

    # ---- one turn ------------------------------------------------------------------------------------

    def _turn(self, s: _Session, t_ns: int, c: Conditions) -> Turn:
        rng, service, route = s.rng, s.service, s.route
        key = (service.name, route.name)
        x = _Ctx(rng, service, route, key, s.user, s.id, c.prompt_version.get(key, route.prompt_version), c)
        trace_id = rng.getrandbits(128) or 1
        root_id = _span_id(rng)
        if s.turns == 0:
            s.history = round(route.context_tokens.draw(rng)) if route.context_tokens else 0
            if s.loop_gap is not None:
                s.history += round(_LOOP_HISTORY.draw(rng))
            s.cached = route.system_tokens if rng.random() < _WARM_PREFIX else 0
        user_msg = round(route.user_tokens.draw(rng))
        prompt = route.system_tokens + s.history + user_msg
        growth = c.input_growth.get(key)
        # Un-truncated conversation memory: re-sent with every prompt, not part of the session's history.
        extra = round(prompt * (growth - 1)) if growth else 0
        model, router, escalated = self._pick_model(s, key, c)
        if key in c.cheaper_model:
            model = MODELS[inc.CHEAPER_MODEL]
        if key in c.switched_model:
            model = MODELS_BY_RESPONSE[c.switched_model[key]]
        tool_name = None
        if route.tools and s.loop_gap is None and s.forced_s is None and rng.random() < route.tool_prob:
            names, weights = zip(*route.tools, strict=True)
            tool_name = rng.choices(names, weights)[0]
        t = t_ns + _overhead(rng)
        # The grown memory is append-only: cached like the rest of the conversation, so the hit ratio holds.
        prefix = round(s.cached * growth) if growth else s.cached
        first = self._call(
            x, model, t, prompt + extra, prefix, parent=root_id, streaming=route.streaming,
            wants_tool=tool_name is not None, router=router, escalated=escalated, forced_s=s.forced_s,
        )  # fmt: skip
        calls, tools, last = [first], [], first
        if tool_name is not None and first.error_type is None:
            tool, inner, result = self._tool(x, tool_name, first.end_ns + _overhead(rng), root_id)
            tools.append(tool)
            calls.extend(inner)
            follow_up = first.input_tokens + first.output_tokens + result
            last = self._call(
                x, model, tool.end_ns + _overhead(rng), follow_up, first.input_tokens, parent=root_id,
                streaming=route.streaming, router=router, escalated=escalated,
            )  # fmt: skip
            calls.append(last)
            if s.loop_gap is None:
                s.history += first.output_tokens + result
        if last.error_type is None and s.loop_gap is None:
            s.history += user_msg + last.output_tokens
            s.cached = last.input_tokens - extra
            if s.history > route.history_limit:
                # Dropping the oldest turns changes the prefix: only the system prompt stays cached.
                s.history = round(route.history_limit * 0.6)
                s.cached = route.system_tokens
        if last.error_type is None and route.judged:
            calls[-1] = last = _judged(last, route, key, c)
        failed = next((call.error_type for call in calls if call.error_type and call.tool is None), None)
        status = 200 if failed is None else 504 if failed == TIMEOUT_ERROR else 502
        end_ns = max(call.end_ns for call in calls) + _overhead(rng)
        return Turn(trace_id, root_id, t_ns, end_ns, service.name,
                    c.service_version.get(service.name, service.version), route.name, status,
                    tuple(calls), tuple(tools))  # fmt: skip

    def _pick_model(
        self, s: _Session, key: tuple[str, str], c: Conditions
    ) -> tuple[Model, str | None, bool | None]:
        router = s.route.router
        if router is None:
            return MODELS[s.model or s.route.model], None, None
        escalated = s.rng.random() < c.escalation.get(key, router.escalate_prob)
        return MODELS[router.expensive if escalated else router.cheap], router.name, escalated

    def _tool(self, x: _Ctx, name: str, start_ns: int, parent: int) -> tuple[ToolExec, list[LlmCall], int]:
        """A tool execution, its inner LLM calls, and the tokens it returns to the conversation."""
        rng, c = x.rng, x.conditions
        tool = TOOLS[name]
        span_id = _span_id(rng)
        roll = rng.random()
        timeout_share = c.tool_timeouts.get((x.service.name, name), 0.0)
        if roll < timeout_share:
            end = start_ns + int(tool.timeout_s * _NS)
            return ToolExec(span_id, parent, start_ns, end, name, TIMEOUT_ERROR), [], 30
        if roll < timeout_share + _TOOL_ERROR:
            end = start_ns + int(tool.latency.draw(rng) * _NS)
            return ToolExec(span_id, parent, start_ns, end, name, "HTTPStatusError"), [], 40
        t = start_ns + int(tool.latency.draw(rng) * _NS)
        inner: list[LlmCall] = []
        error = None
        if tool.inner_model is not None:
            hidden = (x.service.name, name) in c.tool_cost
            count = inc.TOOL_INNER_CALLS if hidden else tool.inner_calls
            factor = inc.TOOL_PROMPT_FACTOR if hidden else 1.0
            prefix = tool.inner_system_tokens if rng.random() < _WARM_PREFIX else 0
            prompt = tool.inner_system_tokens + round(tool.inner_prompt_tokens.draw(rng) * factor)
            for _ in range(count):
                call = self._call(
                    x, MODELS[tool.inner_model], t, prompt, prefix, parent=span_id, streaming=False,
                    output=tool.inner_output_tokens, cacheable=tool.inner_system_tokens, tool=name,
                    prompt_version=tool.prompt_version,
                )  # fmt: skip
                inner.append(call)
                t = call.end_ns + _overhead(rng)
                if call.error_type is not None:
                    error = call.error_type
                    break
                # A refinement loop re-sends the same prompt plus the last answer: the prompt is now cached.
                prefix, prompt = prompt, prompt + call.output_tokens
        end = t + _overhead(rng)
        return (
            ToolExec(span_id, parent, start_ns, end, name, error),
            inner,
            round(tool.result_tokens.draw(rng)),
        )

    def _call(
        self,
        x: _Ctx,
        model: Model,
        start_ns: int,
        input_tokens: int,
        prefix: int,
        *,
        parent: int,
        streaming: bool,
        wants_tool: bool = False,
        output: LogNormal | None = None,
        cacheable: int | None = None,
        tool: str | None = None,
        prompt_version: str | None = None,
        router: str | None = None,
        escalated: bool | None = None,
        forced_s: float | None = None,
    ) -> LlmCall:
        """One LLM call: errors, cache accounting, output and reasoning tokens, TTFT and latency."""
        rng, c, route = x.rng, x.conditions, x.route
        span_id = _span_id(rng)

        def make(end_ns: int, tokens: tuple[int, int, int, int, int], ttft: float | None, finish: str,
                 error: str | None) -> LlmCall:  # fmt: skip
            return LlmCall(
                span_id, parent, start_ns, end_ns, model.provider, model.name, model.response_model, *tokens,
                ttft, finish, error, route.name, x.user, x.session, prompt_version or x.prompt_version,
                router, escalated, tool,
            )  # fmt: skip

        roll = rng.random()
        timeout_share = c.route_timeouts.get(x.key, _BASE_TIMEOUT)
        if roll < timeout_share + _BASE_ERROR:
            if roll < timeout_share:
                end = start_ns + int(route.timeout_s * (1 + 0.002 * rng.random()) * _NS)
                return make(end, (0, 0, 0, 0, 0), None, "", TIMEOUT_ERROR)
            end = start_ns + int(_ERROR_LATENCY.draw(rng) * _NS)
            return make(end, (0, 0, 0, 0, 0), None, "", rng.choice(model.errors))

        if cacheable is None:
            cacheable = route.system_tokens if route.cache_breakpoint == "system" else input_tokens
        read, write = _cache(rng, model, input_tokens, prefix, cacheable, x.key, c)

        if wants_tool:
            visible, finish = round(_TOOL_CALL_TOKENS.draw(rng)), model.finish[1]
        else:
            visible, finish = round((output or route.output_tokens).draw(rng)), model.finish[0]
        reasoning = 0
        if model.reasoning:
            reasoning = round((route.reasoning_tokens or LogNormal(1500, 0.7)).draw(rng))
            if x.key in c.reasoning_blowup:
                reasoning = round(reasoning * inc.REASONING_FACTOR)
                if rng.random() < inc.REASONING_CAPPED_SHARE:
                    reasoning = model.max_output
        if visible + reasoning > model.max_output:
            reasoning = min(reasoning, model.max_output)
            visible, finish = model.max_output - reasoning, model.finish[2]

        # Latency: queueing + prefill (cached tokens are ~10x cheaper), then reasoning, then streaming out.
        ttft = model.ttft_s * math.exp(rng.gauss(0.0, 0.2))
        ttft += (input_tokens - read) / _PREFILL_TPS + read / _CACHED_PREFILL_TPS
        if rng.random() < _TTFT_TAIL:
            ttft *= 2 + 3 * rng.random()
        if reasoning:
            ttft += reasoning / model.tokens_per_s * math.exp(rng.gauss(0.0, 0.15))
        if streaming and x.key in c.ttft_degraded:
            ttft *= inc.TTFT_FACTOR
            if rng.random() < inc.TTFT_STALL_SHARE:
                ttft += rng.uniform(*inc.TTFT_STALL_S)
        duration = ttft + visible / model.tokens_per_s * math.exp(rng.gauss(0.0, 0.25))
        if rng.random() < _LONG_TAIL:
            duration *= min(12.0, 1.0 + rng.paretovariate(1.5))
        tail = c.tail_share.get(model.response_model)
        if tail and rng.random() < tail:
            duration *= rng.uniform(*inc.TAIL_FACTOR)
        if forced_s is not None:
            duration = forced_s
        tokens = (input_tokens, visible + reasoning, read, write, reasoning)
        return make(start_ns + int(duration * _NS), tokens, ttft if streaming else None, finish, None)


def _cache(
    rng: random.Random, model: Model, input_tokens: int, prefix: int, cacheable: int, key: tuple[str, str],
    c: Conditions,
) -> tuple[int, int]:  # fmt: skip
    """Cache (read, write) tokens of a call whose first ``prefix`` tokens the provider has seen."""
    if model.cache == "none" or key in c.cache_off:
        return 0, 0
    share = c.cache_read_share.get(key)
    if model.cache == "explicit":
        # Anthropic: the request marks ``cacheable`` tokens; what was cached before is read, the rest written.
        if cacheable < model.cache_min_tokens:
            return 0, 0
        read = min(prefix, cacheable)
        if read < model.cache_min_tokens:
            read = 0
        if share is not None:
            # The prefix changes early on: only the part before the change is read, the rest rewritten.
            read = min(read, round(cacheable * share))
        return read, cacheable - read
    # Implicit (OpenAI, Gemini): prefixes seen recently are read in 128-token blocks; no writes reported.
    if prefix < model.cache_min_tokens or rng.random() >= model.cache_hit_prob:
        return 0, 0
    read = min(prefix, input_tokens)
    if share is not None:
        read = min(read, round(input_tokens * share))
    return read // 128 * 128, 0


def _judged(call: LlmCall, route: Route, key: tuple[str, str], c: Conditions) -> LlmCall:
    """``call`` with a judge's verdict when the judge samples it. Drawn from the call's own span id, not
    the session's stream, so judging adds evaluations without changing any other simulated figure."""
    rng = random.Random(call.span_id)
    if rng.random() >= route.judged:
        return call
    name, pass_prob = c.judge.get(key, (route.judge, MODELS[call.request_model].pass_prob))
    if key in c.cheaper_model:
        pass_prob = inc.CHEAPER_PASS_PROB
    passed = rng.random() < pass_prob
    # A judge's score is noisy around its verdict: passes mostly above 0.5, failures below.
    score = min(1.0, max(0.0, rng.gauss(0.8 if passed else 0.3, 0.12)))
    return replace(call, evaluation=Evaluation(name, round(score, 3), "pass" if passed else "fail"))


def _span_id(rng: random.Random) -> int:
    return rng.getrandbits(64) or 1


def _overhead(rng: random.Random) -> int:
    return int(_OVERHEAD.draw(rng) * _NS)


def generate(scenario: Scenario, rate: float = DEFAULT_RATE) -> Iterator[Turn]:
    """The turns of ``scenario`` at ``rate`` LLM calls per minute at the daily peak, in start-time order."""
    return TrafficModel(scenario, rate).turns()
