"""The evidence kernel, tested as the pure functions it is."""

import math

import numpy as np
import pytest

from tokenpulse.detectors import stats, windows


def test_the_threshold_grows_with_the_log_of_the_tests() -> None:
    one = stats.evidence_threshold(1, budget_days=100)
    assert one == pytest.approx(math.log(100 * 1440))
    # Ten times the scopes cost ln 10 nats: pages do not multiply.
    assert stats.evidence_threshold(10, 100) - one == pytest.approx(math.log(10))


def test_the_alarm_weighs_the_mixture_of_its_alternatives() -> None:
    recovery = np.zeros((30, 1, 3))
    # Three alternatives that the minutes support equally: their mixture is each one's evidence, so the
    # alarm starts when that reaches the threshold (no ln 3 paid for testing three).
    equal = np.full((30, 1, 3), 1.0)
    paging, *_ = stats.sequential_alarm(equal, recovery, 10.0, 5.0)
    assert paging[:, 0].argmax() == 9
    # One alternative alone supported: the mixture is its evidence less ln 3.
    alone = equal.copy()
    alone[..., 1:] = -1.0
    paging, *_ = stats.sequential_alarm(alone, recovery, 10.0, 5.0)
    assert paging[:, 0].argmax() == math.ceil(10.0 + math.log(3)) - 1


def test_the_mixture_is_the_log_mean_likelihood_ratio_over_each_run() -> None:
    evidence = np.array([[[0.5, -2.0]], [[1.0, 2.0]], [[1.5, 1.0]]])  # minutes x scopes x alternatives
    totals = np.concatenate([np.zeros((1, 1, 2)), np.cumsum(evidence, axis=0)])
    # Runs starting at minute 0 and at minute 1, at minute 2.
    mixture, likeliest = stats.mixture_evidence(totals, 2, np.array([[0, 1]]), np.array([0]))
    assert mixture[0, 0] == pytest.approx(math.log((math.exp(3.0) + math.exp(1.0)) / 2))
    assert mixture[0, 1] == pytest.approx(math.log((math.exp(2.5) + math.exp(3.0)) / 2))
    assert likeliest.tolist() == [[0, 1]]


def test_a_weighted_mixture_pays_only_for_the_alternatives_it_weighs() -> None:
    evidence = np.array([[[0.5, -2.0, 1.0]], [[1.0, 2.0, 1.0]], [[1.5, 1.0, 1.0]]])
    totals = np.concatenate([np.zeros((1, 1, 3)), np.cumsum(evidence, axis=0)])
    # The third alternative weighs nothing: the mixture is the mean of the first two, and the likeliest
    # is never the one left out (its run of 3 nats ties the first's).
    weights = np.broadcast_to(np.array([0.5, 0.5, 0.0]), (3, 1, 3))
    mixture, likeliest = stats.mixture_evidence(totals, 2, np.array([[0, 1, 0]]), np.array([0]), weights)
    assert mixture[0, 0] == pytest.approx(math.log((math.exp(3.0) + math.exp(1.0)) / 2))
    assert likeliest[0].tolist() == [0, 1, 0]
    # Equal weights are the plain mean.
    equal = np.full((3, 1, 3), 1 / 3)
    assert stats.mixture_evidence(totals, 2, np.array([[0]]), np.array([0]), equal)[0] == pytest.approx(
        stats.mixture_evidence(totals, 2, np.array([[0]]), np.array([0]))[0]
    )


def test_a_share_weighs_only_the_alternatives_its_traffic_lets_page() -> None:
    usual = np.full(3, 0.02)
    changed = np.stack([stats.odds_shift(usual, r) for r in (1.5, 3.0, 8.0, 25.0)], axis=-1)
    calls = np.array([0.5, 5.0, 300.0])  # calls a minute: a thin tool, a quiet route, a busy one
    stand_in, weights = stats.informative_alternatives(usual, changed, calls, threshold=18.0, horizon=120)
    # Half a call a minute: only 25x the odds reaches 18 nats within two hours, if true. Five calls: 8x
    # and 25x (1.5x would take 14 hours, 3x two and a half). 300 calls: every one.
    assert (weights > 0).tolist() == [[False, False, False, True], [False, False, True, True], [True] * 4]
    assert weights.sum(axis=-1) == pytest.approx(np.ones(3))
    assert stand_in.tolist() == [[3, 3, 3, 3], [2, 2, 2, 3], [0, 1, 2, 3]]
    # Too thin for any: the strongest stays.
    _, none = stats.informative_alternatives(usual, changed, np.full(3, 0.01), 18.0, 120)
    assert (none > 0).tolist() == [[False, False, False, True]] * 3


def test_binomial_evidence_is_the_log_likelihood_ratio_over_the_dispersion() -> None:
    llr = stats.binomial_evidence(
        np.array([3.0]), np.array([10.0]), np.array([0.01]), np.array([0.3]), np.ones(1)
    )
    assert llr[0] == pytest.approx(3 * math.log(0.3 / 0.01) + 7 * math.log(0.7 / 0.99))
    halved = stats.binomial_evidence(
        np.array([3.0]), np.array([10.0]), np.array([0.01]), np.array([0.3]), np.full(1, 2.0)
    )
    assert halved[0] == pytest.approx(llr[0] / 2)
    # No calls, no evidence, either way.
    assert (
        stats.binomial_evidence(np.zeros(1), np.zeros(1), np.array([0.01]), np.array([0.3]), np.ones(1))[0]
        == 0
    )


def test_odds_shift_and_halfway_work_on_the_log_odds_scale() -> None:
    assert stats.odds_shift(np.array([0.5]), 4.0)[0] == pytest.approx(0.8)
    assert stats.odds_shift(np.array([0.01]), 4.0)[0] == pytest.approx(0.0388, abs=1e-4)
    assert stats.halfway(np.array([0.2]), stats.odds_shift(np.array([0.2]), 9.0))[0] == pytest.approx(
        stats.odds_shift(np.array([0.2]), 3.0)[0]
    )


def alarm(evidence: list[float], threshold: float = 5.0, clear: float = 3.0, min_minutes: int = 1):
    """One scope, one alternative, recovery evidence the mirror of the evidence."""
    grid = np.array(evidence, dtype=float).reshape(-1, 1, 1)
    paging, onset, _ = stats.sequential_alarm(grid, -grid, threshold, clear, min_minutes)
    return paging[:, 0].tolist(), onset[:, 0].tolist()


def test_evidence_accumulates_to_the_threshold_and_restarts_from_zero() -> None:
    paging, onset = alarm([1, 1, -5, 2, 2, 2, 0, 0])
    assert paging == [False, False, False, False, False, True, True, True]
    assert onset[5] == 3  # the run after the evidence went back to zero


def test_minutes_without_calls_neither_fire_nor_resolve() -> None:
    paging, _ = alarm([6, 0, 0, 0, 0, 0, -1, -1, -1, 0])
    assert paging == [True] * 8 + [False] * 2  # resolves only once recovery evidence reaches 3


def test_a_blip_shorter_than_the_floor_never_pages() -> None:
    blip, _ = alarm([10, 10, -2, -2, -2, -2], min_minutes=4)
    assert not any(blip)
    incident, _ = alarm([10, 1, 1, 1, 1], min_minutes=4)
    assert incident == [False, False, False, True, True]


def test_a_stray_minute_after_a_blip_does_not_page() -> None:
    # Two minutes of a blip, then a usual minute, one that speaks against the change and a stray bursty
    # one: the last minute alone speaks for the change, the minutes after the blip together do not.
    grid = np.array([40.0, 40.0, -4.0, -10.0, 6.0]).reshape(-1, 1, 1)
    stray = stats.sequential_alarm(grid, -grid, 5.0, 30.0, 4)[0][:, 0].tolist()
    assert stray == [False] * 5
    # A change that goes on is not a blip: it pages at the floor.
    grid = np.array([40.0, 40.0, 3.0, 3.0]).reshape(-1, 1, 1)
    paging, *_ = stats.sequential_alarm(grid, -grid, 5.0, 30.0, 4)
    assert paging[:, 0].tolist() == [False, False, False, True]


def test_a_blip_is_judged_at_the_size_that_fits_it_best() -> None:
    # A 2-minute outage fires the larger change (second column), then three minutes give a little for the
    # smaller one by chance: the run makes the smaller change likeliest (9.4 nats), its own strongest
    # minutes (7.8) leave it more, but an outage of the larger size fits the two minutes with 34: the
    # blip explains the run, and it does not page (no recovery evidence: only the blip rule decides).
    evidence = np.array([[3.5, 17.0]] * 2 + [[0.8, -25.0]] * 3).reshape(-1, 1, 2)
    paging, *_ = stats.sequential_alarm(evidence, np.zeros_like(evidence), 10.0, 30.0, 4)
    assert not paging.any()
    # Minutes that go on speaking for the smaller change outweigh the blip (37 nats after minute 6): a
    # change whose first minutes were deeper pages.
    evidence = np.array([[3.5, 17.0]] * 2 + [[6.0, -20.0]] * 6).reshape(-1, 1, 2)
    paging, *_ = stats.sequential_alarm(evidence, np.zeros_like(evidence), 10.0, 30.0, 4)
    assert paging[:, 0].tolist() == [False] * 6 + [True] * 2


def test_a_change_that_lasted_pages_on_a_lone_minute_but_a_blip_does_not() -> None:
    # 18 minutes of a nat each fire a thin change; the minutes after it deny it together (-2 nats where
    # 1.8 were expected) while the third speaks for it alone (1 nat, 0.6 expected). No blip of 3 minutes
    # explains the run (16 nats against its strongest 3): the change lasted, and that minute confirms it;
    # pooled, it is dropped as a blip once its minutes were expected to show 4 nats.
    def paging(first: list[float], lasting: bool) -> list[bool]:
        grid = np.array(first + [-1.5, -1.5, 1.0] + [-1.5] * 5).reshape(-1, 1, 1)
        expected = np.full(grid.shape, 0.6)
        pages, *_ = stats.sequential_alarm(
            grid, np.zeros_like(grid), 17.5, 30.0, 4, expected, lasting_on_a_minute=lasting
        )
        return pages[:, 0].tolist()

    lasted = [1.0] * 18
    assert paging(lasted, lasting=False) == [False] * 26
    assert paging(lasted, lasting=True) == [False] * 20 + [True] * 6
    # A blip fires it alone (20 nats in a minute): the same minutes after it do not confirm it.
    assert paging([20.0], lasting=True) == [False] * 9


def test_a_change_that_lasted_pages_unless_denied_and_a_blip_must_be_outdone_by_a_margin() -> None:
    # Two changes tested (x1.5 and x3 the odds, expected to give 0.5 and 2.5 nats a minute). Eight
    # minutes of 1 and 2 nats fire x3 (16 nats, its mixture 15.3), no blip explains the run; then the
    # minutes speak a little for x1.5 (0.15) and against x3 (-0.2), as a thin share's do where the
    # change lies between the two: never half of x3's expected evidence, never the 2 nats the weaker
    # change must give together. Pooled, they deny it until it is dropped as a blip; unless denied, the
    # change that lasted pages at the floor (three minutes after it fired).
    def paging(minutes: list[list[float]], lasting: bool) -> list[bool]:
        evidence = np.array(minutes).reshape(-1, 1, 2)
        expected = np.broadcast_to(np.array([0.5, 2.5]), evidence.shape).copy()
        margin = stats.SHARE_BLIP_MARGIN if lasting else 0.0
        pages, *_ = stats.sequential_alarm(
            evidence,
            -evidence,
            15.0,
            30.0,
            4,
            expected,
            lasting_unless_denied=lasting,
            blip_margin=margin,
        )
        return pages[:, 0].tolist()

    lasted = [[1.0, 2.0]] * 8 + [[0.15, -0.2]] * 8
    assert not any(paging(lasted, lasting=False))
    assert paging(lasted, lasting=True) == [False] * 10 + [True] * 6
    # A 2-minute blip of 40 nats, two usual minutes and a stray bursty one (2.5 nats for x3): the run
    # (41.9) beats the blip's two minutes by 1.9 nats, less than a blip fitted after the fact flatters
    # itself by (3). Judged without the margin, the stray minute pages; with it, nothing does.
    blip = [[8.0, 20.0]] * 2 + [[-0.1, -0.3]] * 2 + [[1.2, 2.5]] + [[-0.1, -0.3]] * 4
    assert paging(blip, lasting=False) == [False] * 4 + [True] * 5
    assert not any(paging(blip, lasting=True))


def test_a_minute_must_speak_for_the_change_the_run_makes_likeliest() -> None:
    # A first minute fires the larger change (second column); the minutes after speak for the smaller one
    # and against the larger: the change going on is the smaller one, and it is confirmed at the floor.
    evidence = np.array([[[4.0, 9.0]], [[3.0, -2.0]], [[3.0, -2.0]], [[3.0, -2.0]]])
    likeliest = stats.sequential_alarm(evidence, -evidence, 5.0, 30.0, 4)[0][:, 0].tolist()
    assert likeliest == [False, False, False, True]


def test_a_thin_scopes_latest_minutes_speak_together() -> None:
    # A thin scope: a minute with a timeout gives 1.4 nats, one without -0.4, a change is expected to give
    # 0.6 a minute. At the floor its latest minute holds no timeout: alone it denies the change, the
    # minutes since the alarm fired together speak for it, and it pages.
    evidence = np.array([3.0, 3.0, 1.4, 1.4, -0.4]).reshape(-1, 1, 1)
    expected = np.full(evidence.shape, 0.6)
    together = stats.sequential_alarm(evidence, -evidence, 5.0, 30.0, 4, expected)[0][:, 0].tolist()
    assert together == [False] * 4 + [True]
    # Its minutes since the alarm fired, all without a timeout, were expected to give 4 nats after 7 of
    # them: it is dropped as a blip then (its evidence starts again), not after the 4-minute floor.
    evidence = np.array([3.0, 3.0] + [-0.4] * 9).reshape(-1, 1, 1)
    expected = np.full(evidence.shape, 0.6)
    _, onset, _ = stats.sequential_alarm(evidence, -evidence, 5.0, 30.0, 4, expected)
    assert onset[:8, 0].tolist() == [0] * 8 and onset[8, 0] == 9


def test_a_change_weaker_than_the_likeliest_that_goes_on_confirms_the_alarm() -> None:
    # A busy route whose odds of a timeout doubled, tested for x1.5 (first column) and x3: a bursty first
    # minute fires x3, which the run goes on making likeliest, but its minutes give x3 1 nat, then 0.4,
    # never the 2 its minutes of hundreds of calls are expected to show half of. They speak for x1.5
    # (1.2 nats each, 0.5 expected): past the minutes a blip would explain (the first three), the two
    # since give 2.4 nats for it. The change goes on, and it pages.
    minutes = [[3.0, 9.0]] + [[1.2, 1.0], [1.2, 0.4]] * 4 + [[1.2, 1.0]]
    evidence = np.array(minutes).reshape(-1, 1, 2)
    expected = np.broadcast_to(np.array([0.5, 5.0]), evidence.shape).copy()
    paging, *_ = stats.sequential_alarm(evidence, -evidence, 5.0, 30.0, 4, expected)
    assert paging[:, 0].tolist() == [False] * 4 + [True] * 6
    # A blip that is over speaks for no change, weaker or not: its alarm is dropped, never paged.
    evidence = np.array([[3.0, 9.0], [3.0, 9.0]] + [[-0.3, -3.0]] * 8).reshape(-1, 1, 2)
    paging, *_ = stats.sequential_alarm(evidence, -evidence, 5.0, 30.0, 4, expected)
    assert not paging.any()
    # Nor does a lone bursty minute after it (2.5 nats for x1.5): one minute is not a change that goes
    # on, and with the usual minute after it, the blip explains the run.
    evidence = np.array([[3.0, 9.0]] * 3 + [[2.5, 1.9]] + [[-0.3, -3.0]] * 6).reshape(-1, 1, 2)
    paging, *_ = stats.sequential_alarm(evidence, -evidence, 5.0, 30.0, 4, expected)
    assert not paging.any()


def test_the_alternative_that_fired_decides_the_recovery() -> None:
    # Two alternatives; the strong one fires. Recovery is judged against the strong one's halfway level
    # (third column of recovery): a minute that speaks against the weak change only does not resolve.
    evidence = np.array([[[1.0, 8.0]], [[0.5, 0.5]], [[0.5, 0.5]]])
    recovery = np.array([[[0.0, 0.0]], [[5.0, 0.0]], [[5.0, 0.0]]])
    paging, *_ = stats.sequential_alarm(evidence, recovery, threshold=5.0, clear=3.0)
    assert paging[:, 0].tolist() == [True, True, True]


def test_the_change_likeliest_when_it_pages_decides_the_recovery() -> None:
    # A bursty first minute fires the larger change; the minutes after speak for the smaller one, which
    # pages. Then the minutes look recovered against the larger change's halfway level (second column of
    # recovery) but still changed against the smaller one's: the smaller change goes on, and it does not
    # resolve (judged against the larger change it would, and then fire again).
    evidence = np.array([[[4.0, 9.0]]] + [[[3.0, -2.0]]] * 7)
    recovery = np.array([[[0.0, 0.0]]] * 4 + [[[-1.0, 5.0]]] * 4)
    likeliest = stats.sequential_alarm(evidence, recovery, 5.0, 3.0, 4)[0][:, 0].tolist()
    assert likeliest == [False] * 3 + [True] * 5


def hit_ratio_alarm(ratios: list[float]) -> list[bool]:
    """A hit ratio's alarm, minute by minute, for a scope of 12 calls a minute at these ratios, usually
    82%, tested for drops of 30%, 50%, 70% and 90% and resolving against halfway to each (as
    ``cache_hit_collapse`` does), at a 10-nat threshold and a 4-minute floor."""
    usual, calls = 0.82, 12.0
    hits = np.array(ratios).reshape(-1, 1, 1) * calls
    trials = np.full_like(hits, calls)
    base = np.full((1, 1, 1), usual)
    changed = (usual * (1 - np.array([0.3, 0.5, 0.7, 0.9])))[None, None, :]
    evidence = stats.binomial_evidence(hits, trials, base, changed, np.ones(1))
    recovery = -stats.binomial_evidence(hits, trials, base, stats.halfway(base, changed), np.ones(1))
    expected = stats.binomial_evidence(trials * changed, trials, base, changed, np.ones(1))
    paging, *_ = stats.sequential_alarm(evidence, recovery, 10.0, math.log(1000), 4, expected)
    return paging[:, 0].tolist()


def pages(paging: list[bool]) -> list[int]:
    """The minutes an alarm starts paging."""
    return [t for t, on in enumerate(paging) if on and (t == 0 or not paging[t - 1])]


def test_a_change_halfway_to_the_one_its_page_chose_pages_once() -> None:
    # Five bursty minutes (30% hits) page a 50% drop; the drop that goes on is 22% (64% hits: halfway,
    # on the log-odds scale, to a 50% drop), and eight of its minutes look usual. Weighed against
    # halfway to the 50% drop, those eight minutes are a recovery: it resolved and paged again 15
    # minutes later. The minutes since the page showed a weaker change (30%) likelier, so the recovery
    # is weighed against halfway to that one: one page, resolved once the drop is over.
    ratios = [0.82] * 10 + [0.3] * 5 + [0.64] * 30 + [0.82] * 8 + [0.64] * 40 + [0.82] * 40
    paging = hit_ratio_alarm(ratios)
    over = 10 + 5 + 30 + 8 + 40
    assert pages(paging) == [14]
    assert paging[over - 1] and not paging[over + 30]


def test_the_change_going_on_resolves_against_halfway_to_it() -> None:
    # The page's change (a 50% drop, 41% hits) is what goes on: its minutes since the page speak for it,
    # and the recovery is weighed against halfway to it, resolved within minutes of the end.
    ratios = [0.82] * 10 + [0.3] * 5 + [0.41] * 60 + [0.82] * 40
    paging = hit_ratio_alarm(ratios)
    assert pages(paging) == [14]
    assert paging[74] and not paging[75 + 4]


def test_a_recovery_resolves_on_a_minute_that_looks_usual() -> None:
    # Five bursty minutes (8% hits) page a 90% drop; the drop that goes on is 55% (37% hits: about
    # halfway, on the log-odds scale, to a 90% drop). Three minutes of a lull right after the page look
    # usual, strongly so against halfway to 90%: the recovery passes ``clear`` with three minutes with
    # calls, one short of the floor, and the fourth is the drop again. It resolved on that minute and
    # paged again 5 minutes later; a recovery resolves on a minute that looks usual, so it pages once
    # and resolves once the drop is over. A lull as long as the floor is a recovery, as before.
    # (cache_hit_collapse, randomized seed 9, i137.)
    drop = [0.82] * 10 + [0.08] * 5
    lull = hit_ratio_alarm(drop + [0.82] * 3 + [0.37] * 40 + [0.82] * 40)
    assert pages(lull) == [13]
    assert lull[57] and not lull[57 + 6]
    assert pages(hit_ratio_alarm(drop + [0.82] * 4 + [0.37] * 40 + [0.82] * 40)) == [13, 23]


def test_a_recovery_does_not_resolve_on_a_minute_that_speaks_for_a_weaker_change() -> None:
    # Four bursty minutes (8% hits) page a 90% drop where a 50% one goes on (41% hits). The four minutes
    # right after the page sit at 70% hits, a lull: usual rather than halfway to 90%, by more than
    # ``clear`` over the floor, but each speaks a little for a 30% drop (57% hits, halfway to it 71%),
    # the weakest tested. Against halfway to 90% alone it resolved on the lull's fourth minute and paged
    # again once the drop was back; a minute that speaks for a weaker change does not resolve, so it
    # pages once. (cache_hit_collapse, randomized seed 85, i141: a 49% drop paged as 90%.)
    ratios = [0.82] * 10 + [0.08] * 4 + [0.70] * 4 + [0.41] * 40 + [0.82] * 40
    paging = hit_ratio_alarm(ratios)
    assert pages(paging) == [13]
    assert paging[57] and not paging[57 + 6]


def test_a_recovery_whose_minutes_together_speak_for_a_weaker_change_does_not_resolve() -> None:
    # Four bursty minutes (8% hits) page a 90% drop where a 50% one goes on (41% hits). The recovery
    # starts right after the page, so no minute shows the page's change to be larger than the one going
    # on: four minutes at 68% hits (usual rather than halfway to 90%, each speaking a little for a 30%
    # drop) and one at 78% that looks usual against halfway to every change. Their recovery passes
    # ``clear`` over the floor, and it resolved on the fifth and paged again once the drop was back;
    # together the five speak for a 30% drop, so it pages once. (traffic_drop, randomized seed 101, i198:
    # an 85% drop paged as 99.5% by 14 silent minutes, five busier minutes right after the page.)
    ratios = [0.82] * 10 + [0.08] * 4 + [0.68] * 4 + [0.78] + [0.41] * 40 + [0.82] * 40
    paging = hit_ratio_alarm(ratios)
    assert pages(paging) == [13]
    assert paging[58] and not paging[59 + 6]
    # Five minutes that look usual together are a recovery, as before.
    lull = hit_ratio_alarm([0.82] * 10 + [0.08] * 4 + [0.82] * 4 + [0.78] + [0.41] * 40 + [0.82] * 40)
    assert pages(lull) == [13, 24]


def test_a_recovery_right_after_the_page_favours_the_usual_over_a_weaker_change() -> None:
    # The strong change (second column) pages; the minutes right after the page look usual against
    # halfway to it (recovery 2 each) and, barely, against halfway to the weak one (0.1 each), and each
    # is a little likelier under the usual than under the weak change (0.3 nats): a scope that sits
    # near the weak change, a few lucky minutes. Four of them together favour the usual by 1.2 nats,
    # short of 2: the alarm pages on. Seven favour it by 2.1: it resolves. (cache_hit_collapse,
    # randomized seed 244, i39: a 36% drop paged as 90% by bursty minutes, 24 calls at 59% hits right
    # after the page, halfway to a 30% drop at 55%, resolved 9 minutes after the page and paged again 23
    # minutes later.)
    page, lucky = [[[1.0, 8.0]]], [[[-0.3, -3.0]]]
    for minutes, resolves in ((4, False), (7, True)):
        evidence = np.array(page + lucky * minutes)
        recovery = np.array([[[0.0, 0.0]]] + [[[0.1, 2.0]]] * minutes)
        paging, *_ = stats.sequential_alarm(evidence, recovery, threshold=5.0, clear=3.0)
        assert paging[-1, 0] != resolves


def test_a_weaker_change_the_minutes_since_the_page_ruled_out_does_not_hold_the_recovery() -> None:
    # The strong change (second column) pages; three recovery minutes look usual against halfway to it
    # (recovery 2 each) and give none against halfway to the weak one (0), while together they speak a
    # little for the weak change (0.2 each).
    page, recovering = [[[1.0, 8.0]]], [[[0.2, -3.0]]] * 3
    # Right after the page, nothing has shown the strong change to be the one going on: the weak one
    # may be, and the recovery waits for minutes that speak against it.
    evidence = np.array(page + recovering)
    recovery = np.array([[[0.0, 0.0]]] + [[[0.0, 2.0]]] * 3)
    paging, *_ = stats.sequential_alarm(evidence, recovery, threshold=5.0, clear=3.0)
    assert paging[:, 0].tolist() == [True] * 4
    # Three minutes between the page and the recovery showed the strong change likelier than the weak
    # one by 10.5 nats: the weak change is not what goes on, and the recovery resolves as it passes
    # ``clear``.
    evidence = np.array(page + [[[0.5, 4.0]]] * 3 + recovering)
    recovery = np.array([[[0.0, 0.0]]] + [[[-1.0, -1.0]]] * 3 + [[[0.0, 2.0]]] * 3)
    paging, *_ = stats.sequential_alarm(evidence, recovery, threshold=5.0, clear=3.0)
    assert paging[:, 0].tolist() == [True] * 5 + [False] * 2


def rare_calls_alarm(slow: list[int], weaker_by_clear: bool) -> list[bool]:
    """The alarm, minute by minute, of a scope of 12 calls a minute with these slow calls a minute, usually
    0.1% of its calls, tested for 2% and 5% of its calls slow and resolving against halfway to each (1%,
    2.5%), at a 10-nat threshold and a 4-minute floor."""
    calls = 12.0
    past = np.array(slow, dtype=float).reshape(-1, 1, 1)
    trials = np.full_like(past, calls)
    base, changed = np.full((1, 1, 1), 0.001), np.array([[[0.02, 0.05]]])
    evidence = stats.binomial_evidence(past, trials, base, changed, np.ones(1))
    recovery = -stats.binomial_evidence(past, trials, base, (base + changed) / 2, np.ones(1))
    expected = stats.binomial_evidence(trials * changed, trials, base, changed, np.ones(1))
    paging, *_ = stats.sequential_alarm(
        evidence, recovery, 10.0, math.log(1000), 4, expected, weaker_by_clear=weaker_by_clear
    )
    return paging[:, 0].tolist()


def test_a_rare_change_short_of_halfway_to_its_page_does_not_resolve_in_a_lull() -> None:
    # Four bursty minutes (2 slow calls in 12) page 5% of the calls slow; what goes on is one slow call
    # every four minutes (2.1%, short of halfway to 5%): each slow call speaks for 2% and 5% alike, and
    # by the lull the minutes since the page have not outweighed 5% by ``clear``. A lull of 26 minutes
    # without a slow call (one start in 700 at 2.1%) is a recovery against halfway to 5%, 0.29 nats a
    # minute, and weighs -6 against 2%, past the -2 asked of a weaker change: it resolved 20 minutes into
    # the lull and paged again (latency_p99_drift, 2% of 12.6 calls a minute slower, paged as 5%). Where
    # a weaker change the minutes since the page showed (2%, 8.4 nats) must be outweighed by ``clear``
    # too (30 such minutes), it pages once; once the change ends it resolves as before.
    going_on = ([1] + [0] * 3) * 5
    slow = [0] * 10 + [2] * 4 + going_on + [0] * 26 + going_on * 2 + [0] * 70
    over = 10 + 4 + 20 + 26 + 40
    flapped = rare_calls_alarm(slow, weaker_by_clear=False)
    assert pages(flapped) == [14, 80] and not flapped[54]
    paging = rare_calls_alarm(slow, weaker_by_clear=True)
    assert pages(paging) == [14]
    assert paging[over + 55] and not paging[over + 60]
    assert paging[over + 55 :] == flapped[over + 55 :]


@pytest.mark.parametrize("options", [False, True])
def test_the_alarm_runs_only_the_scopes_that_reach_the_threshold_and_returns_the_same(
    options: bool,
) -> None:
    # 60 scopes, a third of them changed for a while (some long enough to page, some blips), the rest
    # usual: the alarm's full run of every scope returns what the split returns.
    rng = np.random.default_rng(7)
    minutes, scopes, alternatives = 120, 60, 3
    evidence = rng.normal(-1.0, 1.0, (minutes, scopes, alternatives))
    for scope in range(0, scopes, 3):
        start, length = rng.integers(0, 80), rng.integers(1, 40)
        evidence[start : start + length, scope] += rng.uniform(1.0, 4.0, alternatives)
    evidence[rng.random((minutes, scopes)) < 0.1] = 0.0  # minutes without calls
    recovery = -0.5 * evidence + rng.normal(0.0, 0.3, evidence.shape)
    expected = np.abs(rng.normal(1.0, 0.5, evidence.shape))
    weights = rng.dirichlet(np.ones(alternatives), (minutes, scopes))
    top, bottom = rng.uniform(0.0, 2.0, (2, minutes, scopes))
    # A level per (minute, scope) with a variance, and one of either levels, one of them per minute alone.
    levels = [
        (top, bottom, np.full((minutes, scopes), 0.5), np.full((minutes, scopes), 0.01)),
        stats.AnyLevel(
            ((top, bottom, np.full((minutes, scopes), 0.7)), (top, np.ones_like(top), np.full(minutes, 0.9)))
        ),
    ]
    flags = (options,) * 3  # lasting_on_a_minute, weaker_by_clear, lasting_unless_denied
    arguments = (
        evidence,
        recovery,
        8.0,
        4.0,
        3,
        expected,
        levels,
        weights,
        *flags,
        2.0 * options,
    )
    split = stats.sequential_alarm(*arguments)
    whole = stats._alarm_run(*arguments)
    # Both paths taken: scopes that page, and scopes whose CUSUMs never reach the threshold.
    assert split[0].any() and 0 < stats._never_fired(evidence, 8.0, 3)[3].sum() < scopes / 2
    for ours, theirs in zip(split, whole, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_burstiness_is_the_intra_minute_correlation_not_a_slow_drift() -> None:
    rng = np.random.default_rng(3)
    minutes = np.arange(2000)
    trials = np.full((2000, 1), 100.0)
    drifting = 0.1 + 0.05 * np.sin(2 * np.pi * minutes / 1440)[:, None]  # a share that moves over the day
    binomial = rng.binomial(100, drifting).astype(float)
    excess, pairs = stats.share_excess(binomial, trials)
    assert stats.burstiness(excess.sum(axis=0), pairs.sum(axis=0))[0] < 0.005
    bursty = rng.binomial(100, rng.beta(0.1 * 19, 0.9 * 19, size=(2000, 1))).astype(float)  # rho 0.05
    excess, pairs = stats.share_excess(bursty, trials)
    rho = stats.burstiness(excess.sum(axis=0), pairs.sum(axis=0))
    assert 0.035 < rho[0] < 0.065
    # A minute of 400 calls varies 1 + 399 rho times a binomial one: it counts for that much less.
    assert stats.dispersion(np.array([399.0]), rho)[0] == pytest.approx(1 + 399 * rho[0])


def test_a_baseline_prefers_the_same_time_of_previous_days_when_they_have_enough_calls() -> None:
    minutes = 3 * 1440
    calls = np.ones((minutes, 2))
    calls[:, 1] = 0.0
    calls[1440 : 1440 + 120, 1] = 1.0  # the second scope: traffic only around the same time yesterday
    part = calls * 0.5
    (total, _), trailing, same_hour = windows.baseline_sums(
        (calls, part), np.array([2 * 1440 + 60]), lag=60, days=7, enough=30
    )
    assert same_hour.tolist() == [[True, True]]
    assert total.tolist() == [[240.0, 120.0]]  # two previous days for the first, one for the second
    assert trailing[0].tolist() == [[1440.0, 120.0]]  # the day ending an hour before
    (total, _), _, same_hour = windows.baseline_sums(
        (calls, part), np.array([2 * 1440 + 60]), 60, 7, enough=500
    )
    assert same_hour.tolist() == [[False, False]] and total.tolist() == [[1440.0, 120.0]]


def test_count_dispersion_is_the_negative_binomials_and_blind_to_the_grids_edges() -> None:
    rng = np.random.default_rng(7)
    minutes = 2 * 1440
    poisson = rng.poisson(50.0, (minutes, 1)).astype(float)
    shape = 5.0  # sessions: Gamma-mixed Poisson, variance m (1 + m / shape)
    bursty = rng.poisson(rng.gamma(shape, 50.0 / shape, (minutes, 1))).astype(float)
    for counts, at_50, at_5 in ((poisson, 1.0, 1.0), (bursty, 1 + 50 / shape, 1 + 5 / shape)):
        sums = [grid.sum(axis=0) for grid in stats.block_excess(counts)]
        assert stats.count_dispersion(*sums, np.array([50.0]))[0][0] == pytest.approx(at_50, rel=0.25)
        assert stats.count_dispersion(*sums, np.array([5.0]))[0][0] == pytest.approx(at_5, rel=0.25)


def test_session_evidence_is_the_negative_binomials_and_poissons_without_wander() -> None:
    # Sessions of 3 calls at a rate that wanders (shape 2: b = 0.5): the log-likelihood ratio of the
    # negative binomial of the sessions, 12 a minute usually, 6 after a drop of half; without wander,
    # the quasi-Poisson of a dispersion of 3.
    def negative_binomial(y: float, mean: float, shape: float) -> float:
        return (
            math.lgamma(y + shape) - math.lgamma(shape) - math.lgamma(y + 1)
            + shape * math.log(shape / (shape + mean)) + y * math.log(mean / (shape + mean))
        )  # fmt: skip

    counts = np.array([0.0, 6.0, 18.0, 36.0, 90.0])
    usual, dropped, sessions = np.full(5, 36.0), np.full(5, 18.0), np.full(5, 3.0)
    drop = stats.session_evidence(counts, usual, dropped, sessions, np.full(5, 0.5))
    exact = [negative_binomial(x / 3, 6.0, 2.0) - negative_binomial(x / 3, 12.0, 2.0) for x in counts]
    assert drop == pytest.approx(exact, rel=1e-9)
    # A silent minute: the shape times ln((2 + 12) / (2 + 6)).
    assert drop[0] == pytest.approx(2 * math.log(7 / 4))
    poisson = stats.poisson_evidence(counts, 36.0, 18.0, 3.0)
    calm = stats.session_evidence(counts, usual, dropped, sessions, np.zeros(5))
    assert calm == pytest.approx(poisson, rel=1e-9)
    # Against the quasi-Poisson of the same variance (3 x (1 + 0.5 x 12) = 21 times Poisson's), both
    # tails say more: a silent minute is less likely, and so is a busy one.
    same_variance = stats.poisson_evidence(counts, 36.0, 18.0, 21.0)
    assert drop[0] > same_variance[0] and drop[-1] < same_variance[-1]


def test_count_dispersion_parts_add_up_and_a_wild_history_is_all_sessions() -> None:
    # A rate that wanders (Gamma-mixed, shape 5) over a day that swings from 5 to 95 calls a minute.
    rng = np.random.default_rng(7)
    course = 50 - 45 * np.cos(2 * np.pi * np.arange(2 * 1440) / 1440)[:, None]
    counts = rng.poisson(rng.gamma(5.0, course / 5.0)).astype(float)
    sums = [grid.sum(axis=0) for grid in stats.block_excess(counts)]
    for rate in (5.0, 50.0):
        total, sessions, wander = stats.count_dispersion(*sums, np.array([rate]))
        assert total[0] == pytest.approx(sessions[0] + wander[0] * rate)
        assert wander[0] == pytest.approx(1 / 5.0, rel=0.3) and sessions[0] < 1.5
    # Past the most dispersion taken, the negative binomial's shape is not trusted: sessions alone.
    total, sessions, wander = stats.count_dispersion(*sums, np.array([5000.0]))
    assert total[0] == sessions[0] == 50.0 and wander[0] == 0.0


def test_a_recovery_must_hold_as_long_as_the_change_had_to() -> None:
    # Two minutes that look usual in the middle of a change (a bursty scope's lull) are not a recovery,
    # however strongly they speak, when the change is back the minute after; four in a row are.
    lull, _ = alarm([10, 1, 1, 1, 1, -4, -4, 10, 1], min_minutes=4)
    assert lull == [False, False, False, True, True, True, True, True, True]
    recovered, _ = alarm([10, 1, 1, 1, 1, -4, -4, -4, -4, 0], min_minutes=4)
    assert recovered == [False, False, False, True, True, True, True, True, False, False]


def test_a_level_waits_before_paging_and_then_holds() -> None:
    # The alarm fires at once; the run's ratio (numerator / denominator since the run began) reaches the
    # level only at the third minute, then dips under it: it pages from the third minute on, and a dip
    # under a business floor does not resolve it.
    evidence = np.full((6, 1, 1), 6.0)
    numerator = np.array([[0.5], [0.5], [3.0], [0.0], [0.0], [0.0]])
    level = (numerator, np.ones((6, 1)), np.full(6, 1.0))
    paging, *_ = stats.sequential_alarm(evidence, -evidence, 5.0, 3.0, levels=[level])
    assert paging[:, 0].tolist() == [False, False, True, True, True, True]


def test_a_level_is_checked_since_the_change_began_not_since_a_weak_change_crept_up() -> None:
    # A weak change's CUSUM creeps up for 600 minutes without reaching the threshold (15) or returning to
    # zero; then a strong change: 14 nats a minute for it, 1.5 for the weak one. Its first minute fires
    # the alarm on the weak change's long run (the strong one's single minute is short of the threshold
    # less the mixture's ln 2). Two calls in ten are past the level (10%) from then on, none before:
    # since the change began, the level is reached at once; since the weak run began, never.
    minutes, change = 700, 600
    evidence = np.zeros((minutes, 1, 2))
    evidence[:change, 0] = [14.5 / change, -0.001]
    evidence[change:, 0] = [1.5, 14.0]
    past = np.where(np.arange(minutes) >= change, 2.0, 0.0)[:, None]
    level = (past, np.full((minutes, 1), 10.0), np.full(minutes, 0.1))
    paging, onset, _ = stats.sequential_alarm(evidence, -evidence, 15.0, 3.0, 4, levels=[level])
    assert not paging[:change].any() and paging[change + 3 :, 0].all()
    assert onset[change + 3, 0] == change  # the run whose values the alert reports


def test_a_level_with_a_variance_must_be_passed_by_a_standard_deviation() -> None:
    # The run's numerator reaches the level (1 a minute) from the first minute, by 1 a minute. With a
    # variance of 4 a minute the margin is 2 sqrt(t) after t minutes: reached from the fourth minute.
    evidence = np.full((6, 1, 1), 6.0)
    numerator, denominator = np.full((6, 1), 2.0), np.ones((6, 1))
    plain = (numerator, denominator, np.full(6, 1.0))
    paging, *_ = stats.sequential_alarm(evidence, -evidence, 5.0, 3.0, levels=[plain])
    assert paging[:, 0].tolist() == [True] * 6
    noisy = (*plain, np.full((6, 1), 4.0))
    paging, *_ = stats.sequential_alarm(evidence, -evidence, 5.0, 3.0, levels=[noisy])
    assert paging[:, 0].tolist() == [False, False, False, True, True, True]


def test_any_level_pages_once_one_of_its_levels_is_reached() -> None:
    # One level is reached from the fourth minute, the other from the second: together, from the second;
    # a level that is never reached holds the page alone, not inside an AnyLevel.
    evidence = np.full((6, 1, 1), 6.0)
    ones, level = np.ones((6, 1)), np.full(6, 1.0)
    late = (np.array([[0.0], [0.0], [0.0], [4.0], [1.0], [1.0]]), ones, level)
    early = (np.array([[0.0], [2.0], [1.0], [1.0], [1.0], [1.0]]), ones, level)
    never = (np.zeros((6, 1)), ones, level)

    def pages(*levels: stats.Level | stats.AnyLevel) -> list[bool]:
        return stats.sequential_alarm(evidence, -evidence, 5.0, 3.0, levels=levels)[0][:, 0].tolist()

    assert pages(stats.AnyLevel((late, early))) == [False, True, True, True, True, True]
    assert pages(stats.AnyLevel((late, never))) == [False, False, False, True, True, True]
    assert not any(pages(stats.AnyLevel((late,)), never))


def test_count_dispersion_of_sessions_is_a_constant_factor_at_any_rate() -> None:
    # Sessions of 1-5 calls (mean 3) arriving as Poisson over a day that swings 10x: a quarter hour
    # varies E[K^2] / E[K] ~ 3.7 times more than Poisson at night as at noon.
    rng = np.random.default_rng(11)
    minutes = 2 * 1440
    course = 1 + 4.5 * (1 - np.cos(2 * np.pi * np.arange(minutes) / 1440))
    sessions = rng.poisson(course / 3)
    counts = np.array([rng.integers(1, 6, n).sum() for n in sessions], dtype=float)[:, None]
    sums = [grid.sum(axis=0) for grid in stats.block_excess(counts)]
    for rate in (1.0, 10.0):  # a negative binomial alone would say ~1.6 at night
        assert 2.5 <= stats.count_dispersion(*sums, np.array([rate]))[0][0] <= 6.0


def test_cumulative_sums_have_a_leading_zero_row_and_are_summed_in_the_grids_own_type() -> None:
    rng = np.random.default_rng(3)
    floats = rng.random((400, 5)) * 1e3
    cumulative = stats.cumulative(floats)
    assert cumulative.shape == (401, 5) and not cumulative[0].any()
    # The same additions, in the same order, as summing the minutes one by one.
    running = np.zeros(5)
    for minute in range(400):
        running = running + floats[minute]
        assert np.array_equal(cumulative[minute + 1], running)
    counts = rng.integers(0, 2**60, (3, 2))  # integers sum exactly before they become floats
    assert np.array_equal(stats.cumulative(counts)[1:], np.cumsum(counts, axis=0).astype(float))
    assert stats.cumulative(np.zeros((0, 3))).shape == (1, 3)


def test_a_calls_spread_is_one_for_yes_no_calls_and_measured_for_fractions_of_a_call() -> None:
    rng = np.random.default_rng(5)
    trials = rng.poisson(20.0, size=(1440, 1)).astype(float)

    def spread(successes: np.ndarray, rows: int = 1440) -> float:
        sums = [term[:rows].sum(axis=0) for term in stats.call_spread_terms(successes[:rows], trials[:rows])]
        return float(stats.call_spread(*sums[:3])[0])

    coins = rng.binomial(trials.astype(np.int64), 0.7).astype(float)
    assert spread(coins) == 1.0
    # Reads only: a call reads its whole prefix (75% of its input) 98% of the time, else nothing; a
    # minute's "hits" are its ratio x its calls. Such a call varies ~0.06 times as much as a coin at 73.5%.
    fractions = 0.75 * rng.binomial(trials.astype(np.int64), 0.98)
    assert 0.05 < spread(fractions) < 0.25
    # Half an hour of history is not trusted to be that calm.
    assert spread(fractions, rows=30) > 0.7


def test_calls_of_all_or_nothing_are_read_as_hits_of_their_ceiling_at_every_level() -> None:
    rng = np.random.default_rng(8)
    trials = rng.poisson(20.0, size=(1440, 1)).astype(float)
    # Reads only: a call reads its whole prefix (81% of its input) or nothing; 88% hit on its usual day.
    usual_day = 0.81 * rng.binomial(trials.astype(np.int64), 0.88)
    sums = [term.sum(axis=0) for term in stats.call_spread_terms(usual_day, trials)]
    usual = usual_day.sum(axis=0) / trials.sum(axis=0)
    size = np.array([19.0])
    dispersion, ceiling, ceiling_dispersion = stats.ratio_dispersions(sums, usual, size)
    assert ceiling[0] == pytest.approx(0.81, rel=0.03)
    assert ceiling_dispersion[0] == pytest.approx(1.0, abs=0.05)  # independent calls: no correlation
    # The same calls after a drop to 41% hits: their minutes' Pearson terms around 0.41 x 0.81 are 1.7
    # times the dispersion read at the usual level (0.41, itself read two standard errors up; the
    # quasi-binomial counts a dropped minute for 1.7 times what it holds); counted as hits of the
    # ceiling they are binomial.
    dropped = 0.81 * rng.binomial(trials.astype(np.int64), 0.41)
    share = 0.41 * 0.81
    pearson = np.mean((dropped - trials * share) ** 2 / (trials * share * (1 - share)))
    assert 1.5 < pearson / dispersion[0] < 2.0
    hits, level = np.minimum(dropped / ceiling, trials), share / ceiling[0]
    pearson = np.mean((hits - trials * level) ** 2 / (trials * level * (1 - level)))
    assert pearson == pytest.approx(1.0, abs=0.15)
    # Coins have a ceiling of 1: both readings are the same (within the spread read off a day).
    coins = rng.binomial(trials.astype(np.int64), 0.7).astype(float)
    sums = [term.sum(axis=0) for term in stats.call_spread_terms(coins, trials)]
    dispersion, ceiling, ceiling_dispersion = stats.ratio_dispersions(sums, np.array([0.7]), size)
    assert ceiling[0] == pytest.approx(1.0, abs=0.01)
    assert ceiling_dispersion[0] == pytest.approx(dispersion[0], rel=0.01)


def test_silence_clusters_measure_how_rarely_minutes_are_empty() -> None:
    def clusters(counts: np.ndarray) -> tuple[float, float]:
        """theta after an empty minute, and of any minute."""
        sums = [t.sum(axis=0) for t in stats.silence_terms(counts, stats.block_terms(counts)[1])]
        return stats.silence_clusters(*sums[:3])[0], stats.silence_clusters(*sums[3:])[0]

    rng = np.random.default_rng(11)
    # Poisson calls: a minute is empty with probability exp(-rate), after an empty one or not: theta 1.
    run_on, any_minute = clusters(rng.poisson(3.0, (2 * 1440, 1)).astype(float))
    assert run_on == pytest.approx(1.0, abs=0.15) and any_minute == pytest.approx(1.0, abs=0.1)
    # Sessions starting at 1 a minute, each 2 calls in each of 3 minutes (6 calls a minute): a minute is
    # empty when no session began in it or the two before, exp(-3), theta 1/2; after an empty minute,
    # unless one begins in it, exp(-1), theta 1/6: a silent run's minute weighs d x rate / 6.
    starts = rng.poisson(1.0, 2 * 1440 + 2)
    sessions = (2 * (starts[2:] + starts[1:-1] + starts[:-2])).astype(float)[:, None]
    run_on, any_minute = clusters(sessions)
    assert run_on == pytest.approx(1 / 6, rel=0.25) and any_minute == pytest.approx(1 / 2, rel=0.25)
    # A history without empty minutes says nothing of silent runs, and of an empty minute only as much
    # as a day of minutes (and the prior's two empty ones) can show: ln(1442 / 2) at its rate.
    run_on, any_minute = clusters(rng.poisson(50.0, (1440, 1)).astype(float))
    assert run_on == 0.0 and any_minute * 50.0 == pytest.approx(np.log(1442 / 2), rel=0.02)


def test_the_same_hours_lean_on_the_trailing_day_as_far_as_they_agree() -> None:
    def pooled(hour: tuple[float, float], day: tuple[float, float]) -> tuple[float, float]:
        part, total = stats.pooled_hours(
            np.array([hour[0]]), np.array([hour[1]]), np.array([day[0]]), np.array([day[1]]), 0.15
        )
        return float(part[0] / total[0]), float(total[0])

    # A thin route's two hours yesterday: 192 calls, 8 timeouts (4.2%) where its day of 2,600 calls
    # timed out 1.2%. Eight where 2.4 were due is a fluke or the hour's own level: as far as the
    # hours stray beyond their sampling error, they keep their own level, so the pooled share stays
    # near theirs.
    share, calls = pooled((8, 192), (32, 2600))
    assert 0.035 < share < 0.042
    # Three where 2.4 were due agree with the day: the day's calls weigh in, and the share is near it.
    share, calls = pooled((3, 192), (32, 2600))
    assert 0.012 < share < 0.014 and calls > 1000
    # No timeout in 900 calls of a route that times out 0.24% over its day (27 in 11,000) is not a
    # share of 0: one stray timeout would be 25x the odds of a usual of 0.03%.
    share, _ = pooled((0, 900), (27, 11_000))
    assert share > 0.001
    # A route that times out 3x as often at its peak, over a week of those hours, keeps its peak's level.
    share, _ = pooled((252, 8400), (1440, 144_000))
    assert share > 0.028
    # A day without calls adds nothing.
    assert pooled((3, 192), (0, 0)) == (3 / 192, 192)
