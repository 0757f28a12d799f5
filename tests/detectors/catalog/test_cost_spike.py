from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.detector_harness import Scenario, Series, between, minute, run
from tests.factories import BASE_TIME_NS, call_record, store_records
from tokenpulse.detectors.base import make_scope, settings_from_mapping
from tokenpulse.detectors.catalog.cost_spike import ROLLUP, Budget, CostSpike, Settings
from tokenpulse.detectors.engine import Engine
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 30, DAY + 60  # alice's agent loops: 20x her usual spend, in calls of the usual price
BLIP = DAY + 80  # dave: 20x for 3 minutes
SESSION = DAY + 90  # henry: a heavy session, 5x his usual spend for 8 minutes
DEPLOY = DAY + 40  # support: a rolling deploy that also moves to a new dated model snapshot
LAST = DAY + 240
Value = float | Callable[[int], float]
OLD_MODEL, NEW_MODEL = "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20251215"


def rollup(service: str, route: str, model: str, start: int = 0, end: int = LAST, **values) -> Series:
    return Series({"service": service, "route": route, "model": model}, values, start, end)


def user(service: str, name: str, start: int = 0, end: int = LAST, **values) -> Series:
    return Series({"service": service, "user": name}, values, start, end)


def noisy(service: str, name: str, usd: Value, seed: int, start: int = 0, end: int = LAST) -> Series:
    """A user's spend a minute around ``usd``, as bursty as real users are (Gamma, squared coefficient
    of variation 2: sessions), at $0.01 a call."""
    rng = np.random.default_rng(seed)
    spend = {m: float(rng.gamma(0.5, 2 * (usd(m) if callable(usd) else usd))) for m in range(start, end)}
    return user(service, name, start, end, calls=lambda m: max(1, round(spend[m] / 0.01)),
                cost_usd=lambda m: spend[m])  # fmt: skip


def shop(surge_end: int = END) -> Scenario:
    """checkout: alice's runaway loop (her extra calls are in the rollup too), dave's 3-minute blip, henry's
    8-minute heavy session (a warning-level spike that stops before it has held), a new heavy user and a
    new user with a handful of expensive calls; catalog: a 3x surge of ordinary traffic
    (every route and user alike); support: a rolling deploy that renames the model snapshot."""
    surge = between(ONSET, surge_end, 3.0, 1.0)
    loop = between(ONSET, END, 1.0, 0.0)  # alice's extra calls: 38 a minute at $0.01
    blip = between(BLIP, BLIP + 3, 20.0, 1.0)
    session = between(SESSION, SESSION + 8, 5.0, 1.0)
    rollups = [
        rollup("checkout", "/chat", "gpt-4o", calls=lambda m: 100 + 38 * loop(m),
               cost_usd=lambda m: 1.0 + 0.38 * loop(m)),
        rollup("checkout", "/search", "gpt-4o-mini", calls=100, cost_usd=0.1),
        rollup("catalog", "/browse", "gpt-4o-mini", calls=lambda m: 50 * surge(m),
               cost_usd=lambda m: 0.5 * surge(m)),
        rollup("support", "/ticket", OLD_MODEL, end=DEPLOY, calls=60, cost_usd=0.3),
        Series({"service": "support", "route": "/ticket", "model": OLD_MODEL, "service_version": "v1"},
               {"calls": 30, "cost_usd": 0.15}, DEPLOY, DEPLOY + 10),
        Series({"service": "support", "route": "/ticket", "model": NEW_MODEL, "service_version": "v2"},
               {"calls": 30, "cost_usd": 0.15}, DEPLOY, DEPLOY + 10),
        rollup("support", "/ticket", NEW_MODEL, start=DEPLOY + 10, calls=60, cost_usd=0.3),
    ]  # fmt: skip
    users = [
        noisy("checkout", "alice", lambda m: 0.02 + 0.38 * loop(m), seed=1),
        noisy("checkout", "bob", 0.1, seed=2),
        noisy("checkout", "dave", lambda m: 0.02 * blip(m), seed=3),
        noisy("checkout", "henry", lambda m: 0.02 * session(m), seed=4),
        noisy("checkout", "erin", 0.4, seed=5, start=DAY + 30),  # new, heavy, no baseline
        noisy("checkout", "frank", 0.5, seed=6, start=DAY + 30),  # new: $30/h from its first minute
        noisy("catalog", "carol", lambda m: 0.05 * surge(m), seed=7),
        noisy("support", "grace", 0.015, seed=8),
    ]
    return Scenario().add(ROLLUP, *rollups).add(CostSpike().users, *users)


ALICE = {"service": "checkout", "user": "alice"}


def offset(at: datetime) -> int:
    return int((at - minute(0)).total_seconds() // 60)


def test_runaway_user_fires_critical_and_resolves_while_confounders_stay_quiet() -> None:
    # Quiet: dave's 3-minute blip, henry's 8-minute heavy session (5x, bursty as users are), the new
    # users (learning), catalog's 3x surge of ordinary traffic (its users' spend rises with everyone's),
    # support's new model snapshot (a new scope, learning).
    result = run(CostSpike(), shop(), DAY, DAY + 120)
    assert [(status, severity, scope) for _, status, severity, scope in result] == [
        ("firing", "critical", ALICE),  # 20x her usual spend: $24/h where she spends $1.20/h
        ("resolved", "critical", ALICE),
    ]
    (fired, _, _, _), (resolved, _, _, _) = result
    assert ONSET + 10 <= fired <= ONSET + 15 and END <= resolved <= END + 15  # a user keeps it up 10 min


class PerMinuteOnly(CostSpike):
    """The user rule without its per-call test: spend per active minute alone."""

    def per_call_too(self, dims: Sequence[str]) -> bool:
        return False


def test_a_user_whose_calls_get_dearer_pages_once_the_floor_has_held() -> None:
    """ivan makes 2 calls a minute, as bursty as users are (0-10 a minute), at $0.02 a call; from the
    onset each costs 4x (a pricier model), at the same pace. His spend per active minute varies with
    the calls each minute holds, his cost per call does not: per call it pages once the 10-minute floor
    has held; per active minute alone, 7 minutes later."""
    rng = np.random.default_rng(1)
    calls = rng.poisson(rng.gamma(2.0, 1.0, LAST))
    dearer = np.where(np.arange(LAST) >= ONSET, 4.0, 1.0)
    cost = np.array([rng.gamma(2.0 * n, 0.01) if n else 0.0 for n in calls]) * dearer
    scenario = (
        Scenario()
        .add(ROLLUP, rollup("app", "/ask", "gpt-4o", calls=100, cost_usd=2.0))
        .add(CostSpike().users, user("app", "ivan", calls=lambda m: float(calls[m]),
                                      cost_usd=lambda m: float(cost[m])))
    )  # fmt: skip
    ivan = {"service": "app", "user": "ivan"}
    result = run(CostSpike(), scenario, DAY, DAY + 90)
    assert [(t - ONSET, status, scope) for t, status, _, scope in result] == [(10, "firing", ivan)]
    assert [t - ONSET for t, *_ in run(PerMinuteOnly(), scenario, DAY, DAY + 90)] == [17]


def heavy_tailed(seed: int, rate: float, rise: float, end: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """A thin user's calls a minute (about ``rate``, bursty) and their cost a minute: each call's cost
    heavy-tailed (Gamma, squared coefficient of variation 3.5, $0.05 on average: most minutes cost a few
    cents, a few cost dollars), ``rise`` times as much from ONSET to ``end``."""
    rng = np.random.default_rng(seed)
    calls = rng.poisson(rng.gamma(10.0, rate / 10.0, last)).astype(float)
    price = np.where((np.arange(last) >= ONSET) & (np.arange(last) < end), rise, 1.0) * 0.05
    cost = np.array([rng.gamma(n / 3.5, 3.5 * p) if n else 0.0 for n, p in zip(calls, price, strict=True)])
    return calls, cost


def thin_user_pages(calls: np.ndarray, cost: np.ndarray, last: int) -> list[tuple[int, str]]:
    """The user's transitions (minute, status), the threshold where a service of 300 users has it (it
    grows with the scopes watched)."""
    detector = CostSpike(Settings(false_page_budget_days=300 * 100))
    scenario = (
        Scenario()
        .add(ROLLUP, rollup("app", "/ask", "gpt-4o", end=last, calls=1000, cost_usd=20.0))
        .add(detector.users, user("app", "zoe", end=last, calls=lambda m: float(calls[m]),
                                  cost_usd=lambda m: float(cost[m])))
    )  # fmt: skip
    return [(t, status) for t, status, _, _ in run(detector, scenario, DAY, last)]


def test_a_thin_user_whose_heavy_tailed_calls_cost_9x_pages_once_and_resolves_after_the_end() -> None:
    """zoe makes 2.3 calls a minute; for 112 minutes each costs 8.7x. A few heavy minutes fire 30x her
    usual spend per active minute, while her run makes 10x per call likeliest: weighed against halfway
    to 30x (5.5x), a dozen cheap minutes looked like a recovery (resolved at +52, paged again at +75).
    Against halfway to 10x she pages once and resolves once the spike is over."""
    end, last = ONSET + 112, ONSET + 172
    result = thin_user_pages(*heavy_tailed(245, 2.3, 8.7, end, last), last)
    assert [status for _, status in result] == ["firing", "resolved"]
    (fired, _), (resolved, _) = result
    assert ONSET + 10 <= fired <= ONSET + 15 and end <= resolved <= end + 15


def test_a_lull_of_single_cheap_calls_is_no_recovery_of_a_thin_users_spike() -> None:
    """zoe makes 1.2 calls a minute; for 112 minutes each costs 12x, and 40 minutes in she makes one
    call a minute for 12 minutes, each at $0.03 (a third of her 12x calls cost less: their cost is that
    heavy-tailed). The spread of her spend per active minute is that of her average minute, of one call
    or several; a minute of one call varies as one call does. Judged with the average, the lull looked
    like a recovery (resolved at +50, paged again at +75, resolved 43 minutes after the end); judged as
    the single calls they are, it is not: she pages once and resolves once the spike is over."""
    end, last = ONSET + 112, ONSET + 172
    calls, cost = heavy_tailed(1, 1.2, 12.0, end, last)
    lull = slice(ONSET + 40, ONSET + 52)
    calls[lull], cost[lull] = 1.0, 0.03
    result = thin_user_pages(calls, cost, last)
    assert [status for _, status in result] == ["firing", "resolved"]
    (fired, _), (resolved, _) = result
    assert ONSET + 10 <= fired <= ONSET + 15 and end <= resolved <= end + 30


def test_a_surge_of_ordinary_traffic_is_quiet_alone_but_burns_a_budget() -> None:
    """catalog triples its traffic for 90 minutes: the relative rule stays quiet (per-call cost and
    shares are flat), its daily budget fires. bob's usage grows 2.5x (under the 3x rule): his hourly
    budget fires. alice's runaway also burns her budget: still one alert, the most severe observation."""
    settings = Settings(
        budgets=(
            {"scope": {"service": "catalog"}, "daily_usd": 1010},  # usually $720/day: 71%
            {"scope": {"user": "bob", "service": "checkout"}, "hourly_usd": 10},  # usually $6/h: 60%
            {"scope": {"service": "checkout", "user": "alice"}, "hourly_usd": 10},
        )
    )
    grow, grow_end = DAY + 40, DAY + 70
    scenario = shop(surge_end=DAY + 120)
    scenario.series[CostSpike(settings).users] = [
        user("checkout", "bob", calls=between(grow, grow_end, 25, 10),
             cost_usd=between(grow, grow_end, 0.25, 0.1))
        if s.scope["user"] == "bob" else s
        for s in scenario.series.pop(CostSpike().users)
    ]  # fmt: skip
    bob, catalog = {"service": "checkout", "user": "bob"}, {"service": "catalog"}
    history = scenario.history(0, DAY + 200, {})
    transitions = Engine([CostSpike(settings)]).evaluate(history, [minute(m) for m in range(DAY, DAY + 200)])
    events = [(offset(t.at), t.status, t.severity, dict(t.scope)) for t in transitions]
    alice = [e for e in events if e[3] == ALICE]
    assert [(status, severity) for _, status, severity, _ in alice] == [
        ("firing", "critical"),
        ("resolved", "critical"),
    ]
    assert ONSET + 4 <= alice[0][0] <= ONSET + 8 and END <= alice[1][0] <= END + 15
    assert [e for e in events if e[3] != ALICE] == [
        # 15-min projection 6 + 0.6k >= 8 from k = 4 (5-min: from 2), >= 10 from 7: burn rates fire at once
        (grow + 4, "firing", "warning", bob),
        (grow + 7, "firing", "critical", bob),
        # 6 h projection 720 + 4k >= 808 from k = 22 (1 h: 720 + 24k, from 4)
        (ONSET + 22, "firing", "warning", catalog),
        # the 5-min projection 15 - 1.8j stays >= 8 until grow_end + 3 (bob's own noisy spend: + 4)
        (grow_end + 4, "resolved", "critical", bob),
        # 6 h projection >= 1010 from k = 73 (1 h from 13): escalates while firing
        (ONSET + 73, "firing", "critical", catalog),
        # after the surge (k = 90) the 1 h projection 24 (90 - j) stays >= 808 until j = 56: resolved at 57
        (DAY + 120 + 57, "resolved", "critical", catalog),
    ]
    # alice: her budget's burn rate pages first (at once), her spike joins the same alert: one alert
    assert "hourly budget $10.00" in next(t for t in transitions if dict(t.scope) == ALICE).summary


def test_overnight_trough_and_morning_ramp_do_not_alert() -> None:
    """Traffic is 5x lower from 22:00 to 07:00, per-call cost flat; a night owl keeps her usual pace,
    so at night her share of the spend is 5x her daytime share — but her spend is flat."""
    night = lambda m: 0.2 if (m % DAY) < 7 * 60 or (m % DAY) >= 22 * 60 else 1.0  # noqa: E731
    scenario = (
        Scenario()
        .add(ROLLUP, rollup("app", "/ask", "gpt-4o", end=DAY + 600, calls=lambda m: 100 * night(m) + 3,
                            cost_usd=lambda m: night(m) + 0.03))
        .add(CostSpike().users,
             user("app", "owl", end=DAY + 600, calls=3, cost_usd=0.03),
             *[user("app", f"u{i}", end=DAY + 600, calls=lambda m: 10 * night(m),
                    cost_usd=lambda m: 0.1 * night(m))
               for i in range(4)])
    )  # fmt: skip
    assert run(CostSpike(), scenario, DAY - 180, DAY + 600) == []  # yesterday's same hour: the baseline
    # Without yesterday, the morning is 4.5x the trailing 24 h median: the traffic guard keeps it quiet.
    assert run(CostSpike(), scenario, DAY - 180, DAY + 600, history_from=DAY - 600) == []


@pytest.mark.parametrize("before", [0.1, 0.0])
def test_a_model_taking_over_a_heavier_route_is_no_spike_but_dearer_calls_of_a_model_are(
    before: float,
) -> None:
    """search: gpt-4o-mini serves /suggest (200 tokens, $0.001 a call) and ``before`` of /answer (2,000
    tokens: $0.01 a call on it); a router then sends it 90% of /answer. Its cost per call triples or
    more, all of it the heavier route's usual price (where it never served /answer: the route's tokens
    per call at its price per token), and the service's and /answer's fall: none pages. gpt-4o's calls
    of /answer cost 5x at the same time (their prompts grew): that model pages."""
    takeover, grew = between(ONSET, LAST, 0.9, before), between(ONSET, LAST, 5.0, 1.0)
    mini, big = "gpt-4o-mini", "gpt-4o"

    def share(m: int, on_mini: bool) -> float:
        return takeover(m) if on_mini else 1 - takeover(m)

    scenario = Scenario().add(
        ROLLUP,
        rollup("search", "/suggest", mini, calls=100, cost_usd=0.1, input_tokens=20_000),
        *[
            rollup("search", "/answer", model, calls=lambda m, o=on_mini: 100 * share(m, o),
                   input_tokens=lambda m, o=on_mini, g=growth: 200_000 * share(m, o) * g(m),
                   cost_usd=lambda m, o=on_mini, g=growth, c=cost: c * share(m, o) * g(m))
            for model, on_mini, growth, cost in ((mini, True, lambda m: 1.0, 1.0), (big, False, grew, 10.0))
        ],
    ).add(CostSpike().users)  # fmt: skip
    result = run(CostSpike(), scenario, DAY, DAY + 120)
    assert [(status, scope) for _, status, _, scope in result if status == "firing"] == [
        ("firing", {"service": "search", "model": big})
    ], result


def test_budgets_are_parsed_from_config_tables_with_canonical_scopes() -> None:
    settings = settings_from_mapping(
        Settings,
        {"window_minutes": 5, "budgets": [{"scope": {"user": "u1", "service": "a"}, "daily_usd": 50}]},
    )
    assert settings.budgets == (Budget(make_scope(service="a", user="u1"), None, 50.0),)
    with pytest.raises(ValueError, match="at most one of"):
        Settings(budgets=({"scope": {"service": "a", "route": "/x", "user": "u"}, "daily_usd": 1},))
    with pytest.raises(ValueError, match="hourly_usd and/or daily_usd"):
        Settings(budgets=({"scope": {"service": "a"}},))


def test_queries_run_on_the_real_store(tmp_path: Path, store: Store) -> None:
    """alice spends $0.50/min: above the floor, in the users frame; bob spends $0.001/min: below it, left
    out; o'neil spends as little but has a budget (and a quote in his name): kept."""
    at = lambda m: BASE_TIME_NS + m * 60_000_000_000  # noqa: E731
    records = [call_record(user="alice", cost_usd=Decimal("0.5"), time_unix_nano=at(m)) for m in range(3)]
    records += [call_record(user="bob", cost_usd=Decimal("0.001"), time_unix_nano=at(m)) for m in range(3)]
    # started 30 s before minute 1, ended 15 s into it: counted in minute 1, like the rollup counts it
    records += [call_record(user="o'neil", cost_usd=Decimal("0.001"), time_unix_nano=at(1) - 30 * 10**9,
                            duration_ms=45_000.0)]  # fmt: skip
    store_records(store, tmp_path, records)

    budgets = (
        {"scope": {"service": "checkout", "user": "o'neil"}, "daily_usd": 100},
        {"scope": {"service": "checkout", "user": "alice"}, "hourly_usd": 5},
    )
    detector = CostSpike(Settings(budgets=budgets))
    base = datetime.fromtimestamp(BASE_TIME_NS // 1_000_000_000, UTC)
    history = load_history(
        store, detector.queries(), base - timedelta(minutes=10), base + timedelta(minutes=10)
    )
    users = history[detector.users].sort_values(["user", "minute"]).reset_index(drop=True)
    assert list(users.columns) == ["minute", "tenant", "service", "user", "calls", "cost_usd"]
    assert list(users["user"]) == ["alice", "alice", "alice", "o'neil"]
    assert list(users["calls"]) == [1, 1, 1, 1]
    assert list(users["cost_usd"]) == pytest.approx([0.5, 0.5, 0.5, 0.001])
    assert list(users["minute"]) == [base, base + timedelta(minutes=1), base + timedelta(minutes=2),
                                     base + timedelta(minutes=1)]  # fmt: skip
    rolled = history[ROLLUP]
    assert rolled["calls"].sum() == 7 and rolled["cost_usd"].sum() == pytest.approx(1.504)
    # $1.50 in the last 5 and 15 minutes: $18 and $6 an hour projected, both over alice's $5 hourly budget
    [observation] = detector.evaluate(history, [base + timedelta(minutes=3)])
    assert dict(observation.scope) == {"service": "checkout", "user": "alice"}
    assert (observation.severity, observation.value) == ("critical", pytest.approx(6.0))


def test_a_user_too_thin_for_the_same_hours_is_watched_on_their_cost_per_call() -> None:
    """kim and lee call once every 5 minutes (24 calls in the two hours around this time yesterday: too
    few to know what a minute of theirs costs at this time of day), at about $0.10 a call. kim's calls
    cost 10x from the onset: her cost per call is compared with her trailing day, and pages once a few
    of her calls and the 10-minute floor have held. lee's 8-minute heavy session (a call every minute,
    at the usual price) is quiet: his spend per active minute is not watched without the same hours."""
    rng = np.random.default_rng(3)
    prices = rng.gamma(2.0, 0.05, (2, LAST))
    dearer = np.where(np.arange(LAST) >= ONSET, 10.0, 1.0)
    session = between(SESSION, SESSION + 8, 1.0, 0.0)

    def calls(m: int, busy: float = 0.0) -> float:
        return 1.0 if m % 5 == 0 or busy else 0.0

    scenario = (
        Scenario()
        .add(ROLLUP, rollup("app", "/ask", "gpt-4o", calls=100, cost_usd=2.0))
        .add(CostSpike().users,
             user("app", "kim", calls=calls, cost_usd=lambda m: calls(m) * prices[0, m] * dearer[m]),
             user("app", "lee", calls=lambda m: calls(m, session(m)),
                  cost_usd=lambda m: calls(m, session(m)) * prices[1, m]))
    )  # fmt: skip
    result = run(CostSpike(), scenario, DAY, DAY + 150)
    kim = {"service": "app", "user": "kim"}
    assert [(status, scope) for _, status, _, scope in result] == [("firing", kim)]
    # A call every 5 minutes: three of them to be sure, then the 10-minute floor.
    assert ONSET + 10 <= result[0][0] <= ONSET + 25
