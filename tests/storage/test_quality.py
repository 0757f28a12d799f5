"""Quality beside cost in the summary: each group's evaluations and the dollars per passing answer."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tests.factories import BASE_TIME_NS, call_record, evaluation_record, store_records
from tokenpulse.cli import format_summary
from tokenpulse.storage.store import Store
from tokenpulse.storage.summary import SummaryQuery, summarize

BASE = datetime.fromtimestamp(BASE_TIME_NS / 1e9, UTC)
STRONG, CHEAP = "gpt-4o", "gpt-4o-mini"


def fill(store: Store, tmp_path: Path) -> None:
    # The strong model: 10 calls at 1 cent, 9 of 10 sampled answers pass. The cheap one: 10 calls at
    # 0.2 cents, 1 of 2 passes; its judge also scores.
    calls = [call_record(request_model=STRONG, response_model=STRONG, cost_usd=Decimal("0.01"))
             for _ in range(10)]  # fmt: skip
    calls += [call_record(request_model=CHEAP, response_model=CHEAP, cost_usd=Decimal("0.002"))
              for _ in range(10)]  # fmt: skip
    evaluations = [evaluation_record(model=STRONG, label="pass", passed=True, score=None) for _ in range(9)]
    evaluations += [evaluation_record(model=STRONG, label="fail", passed=False, score=None)]
    evaluations += [
        evaluation_record(model=CHEAP, label="pass", passed=True, score=0.75),
        evaluation_record(model=CHEAP, label="fail", passed=False, score=0.25),
        evaluation_record(model=CHEAP, evaluation="tone", label="", passed=None, score=0.5),
        evaluation_record(model=CHEAP, route="/other", label="fail", passed=False),  # another route
    ]
    store_records(store, tmp_path, calls, evaluations=evaluations)


def test_the_summary_shows_pass_rate_score_and_dollars_per_passing_answer(
    store: Store, tmp_path: Path
) -> None:
    fill(store, tmp_path)
    query = SummaryQuery(BASE, BASE + timedelta(minutes=5), ("route", "model"), {"route": "/chat"})
    by_model = {g["key"]["model"]: g["quality"] for g in summarize(store, query)}
    assert by_model[STRONG] == {
        "judge_pass": {"evaluations": 10, "mean_score": None, "judged": 10, "pass_rate": 0.9,
                       "usd_per_passing_answer": "0.011111"},
    }  # fmt: skip
    # Five times cheaper a call, yet a passing answer costs 0.4 cents against 1.1: the cheap model
    # really is cheaper here — and its pass rate says at what quality.
    assert by_model[CHEAP] == {
        "judge_pass": {"evaluations": 2, "mean_score": 0.5, "judged": 2, "pass_rate": 0.5,
                       "usd_per_passing_answer": "0.004000"},
        "tone": {"evaluations": 1, "mean_score": 0.5, "judged": 0, "pass_rate": None,
                 "usd_per_passing_answer": None},
    }  # fmt: skip
    # A range of whole minutes reads the rollup, any other the raw table: the same figures.
    unaligned = SummaryQuery(
        BASE, BASE + timedelta(minutes=5, seconds=1), ("route", "model"), {"route": "/chat"}
    )
    assert {g["key"]["model"]: g["quality"] for g in summarize(store, unaligned)} == by_model


def test_groups_evaluations_cannot_have_show_no_quality_rather_than_anothers(
    store: Store, tmp_path: Path
) -> None:
    fill(store, tmp_path)
    by_provider = summarize(store, SummaryQuery(BASE, BASE + timedelta(minutes=5), ("provider",)))
    assert [g["quality"] for g in by_provider] == [None]
    (everything,) = summarize(store, SummaryQuery(BASE, BASE + timedelta(minutes=5)))
    assert everything["quality"]["judge_pass"]["evaluations"] == 13


def test_the_cli_prints_quality_beside_the_cost_table(store: Store, tmp_path: Path) -> None:
    fill(store, tmp_path)
    query = SummaryQuery(BASE, BASE + timedelta(minutes=5), ("model",), {"route": "/chat"})
    document = {"start": "s", "end": "e", "groups": summarize(store, query)}
    text = format_summary(document, ["model"])
    assert (
        "quality model=gpt-4o-mini judge_pass: 2 evaluated, pass rate 50% of 2, mean score 0.5, "
        "$0.004000 per passing answer" in text
    )
    assert "quality model=gpt-4o judge_pass: 10 evaluated, pass rate 90% of 10, $0.011111" in text
