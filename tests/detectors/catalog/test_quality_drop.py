import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.detector_harness import Scenario, Series, between, drawn, minute, run
from tests.factories import BASE_TIME_NS, call_record, evaluation_record, store_records
from tokenpulse.detectors.catalog.quality_drop import EVALUATIONS, ROLLUP, QualityDrop, Settings
from tokenpulse.detectors.history import load_history
from tokenpulse.storage.store import Store

DAY = 1440
ONSET, END = DAY + 60, DAY + 180  # the cheaper route's answers get worse, then the change is rolled back
SPAN = DAY + 300


def judged(route: str, verdicts: float = 3, fail=0.09, seed: int = 1, start: int = 0, evaluation="judge"):
    scope = {"service": "support", "route": route, "model": "m", "evaluation": evaluation}
    return drawn(scope, verdicts, fail, part="failures", total="judged", seed=seed, start=start, end=SPAN)


def evaluate(scenario: Scenario) -> list[tuple[int, str, str, dict[str, str]]]:
    scenario.series.setdefault(EVALUATIONS, [])
    scenario.series.setdefault(ROLLUP, [])
    return run(QualityDrop(), scenario, DAY, SPAN)


def test_a_judge_pass_rate_falling_from_91_to_74_percent_pages_then_resolves() -> None:
    # The case: ~3 sampled verdicts a minute, a failure's odds x3.5.
    scenario = Scenario().add(EVALUATIONS, judged("/answer", fail=between(ONSET, END, 0.26, 0.09)))
    result = evaluate(scenario)
    statuses = [(status, severity) for _, status, severity, _ in result]
    assert statuses == [("firing", "warning"), ("resolved", "warning")]
    fired, resolved = result[0][0], result[1][0]
    # Within the hour: at 3 verdicts a minute, x3.5 odds take some 120 verdicts to tell from noise.
    # Resolving takes as much evidence the other way: within two hours of the rollback.
    assert ONSET + 4 <= fired <= ONSET + 60 and END <= resolved <= END + 120
    assert result[0][3]["evaluation"] == "judge" and result[0][3]["route"] == "/answer"


def test_benign_confounders_never_page() -> None:
    scenario = Scenario().add(
        EVALUATIONS,
        judged("/steady", seed=2),
        judged("/busy", verdicts=between(ONSET, END, 12, 3), seed=3),  # more sampled, the same quality
        judged("/strict", fail=0.35, seed=4),  # a strict judge: always fails a third
        # A new judge prompt: a new evaluation name, stricter than the old one, starting today. Its scale
        # says nothing about the route yet: learning, never paged on.
        judged("/answer", fail=0.30, seed=5, start=DAY + 30, evaluation="judge_v2"),
        judged("/answer", seed=6, evaluation="judge"),
        judged("/thin", verdicts=0.2, fail=between(ONSET, ONSET + 3, 1.0, 0.09), seed=7),  # 3 bad minutes
    )
    assert evaluate(scenario) == []


def _cost(route: str, per_call) -> Series:
    scope = {"service": "support", "route": route, "model": "m", "router": ""}
    return Series(scope, {"calls": 20, "cost_usd": lambda m: 20 * per_call(m)}, 0, SPAN)


def test_the_alert_says_both_when_the_same_route_got_cheaper() -> None:
    scenario = Scenario().add(EVALUATIONS, judged("/answer", fail=between(ONSET, END, 0.26, 0.09)))
    scenario.add(ROLLUP, _cost("/answer", between(ONSET, END, 0.0062, 0.01)))
    scenario.add(EVALUATIONS, judged("/other", fail=between(ONSET, END, 0.26, 0.09), seed=8))
    scenario.add(ROLLUP, _cost("/other", lambda m: 0.01))  # worse, at the same price
    times = [minute(ONSET + 60)]
    history = scenario.history(0, ONSET + 61, {})
    observations, _ = QualityDrop().assess(history, times)
    summaries = {dict(o.scope)["route"]: o.summary for o in observations if o.active}
    assert re.match(r"cost per call -38%, judge pass rate 9\d% -> [67]\d% ", summaries["/answer"])
    assert re.match(r"judge pass rate 9\d% -> [67]\d% ", summaries["/other"])


def test_a_scope_must_name_the_evaluation() -> None:
    with pytest.raises(ValueError, match="must include evaluation"):
        Settings(scope=("service", "route"))


def test_the_verdicts_query_reads_labels_and_unit_scores(store: Store, tmp_path) -> None:
    rows = [
        evaluation_record(label="pass", passed=True, score=None),
        evaluation_record(label="fail", passed=False, score=0.9),  # the label wins over the score
        evaluation_record(label="", passed=None, score=0.2),  # a unit score under the pass mark fails
        evaluation_record(label="", passed=None, score=0.7),
        evaluation_record(label="", passed=None, score=7.0),  # another scale: no verdict
        evaluation_record(label="", passed=None, score=None, error_type="timeout"),  # the judge failed
    ]
    store_records(store, tmp_path, [call_record()], evaluations=rows)
    start = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)
    history = load_history(store, [EVALUATIONS], start - timedelta(hours=1), start + timedelta(hours=1))
    frame = history[EVALUATIONS]
    assert (int(frame["judged"].sum()), int(frame["failures"].sum())) == (4, 2)
