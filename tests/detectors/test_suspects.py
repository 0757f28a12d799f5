from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.factories import call_record, store_records
from tokenpulse.detectors.base import make_scope
from tokenpulse.detectors.suspects import ShareCount, find_suspects, rank_suspects
from tokenpulse.storage.store import Store


def test_a_value_new_at_the_onset_ranks_first() -> None:
    counts = [
        ShareCount("prompt_version", "v7", 100, 0, 100, 100),
        ShareCount("prompt_version", "v8", 0, 100, 100, 100),
        ShareCount("user", "alice", 50, 75, 100, 100),
        ShareCount("user", "bob", 50, 25, 100, 100),
        ShareCount("model", "gpt-4o", 100, 100, 100, 100),
    ]
    assert rank_suspects(counts) == [
        {"dimension": "prompt_version", "value": "v8", "share_before": 0.0, "share_after": 1.0, "new": True},
        {"dimension": "user", "value": "alice", "share_before": 0.5, "share_after": 0.75, "new": False},
    ]


def test_no_change_no_suspects() -> None:
    counts = [ShareCount("model", "m", 10, 10, 10, 10), ShareCount("user", "u", 0, 0, 0, 0)]
    assert rank_suspects(counts) == []


def test_find_suspects_reads_the_calls_of_the_scope(store: Store, tmp_path: Path) -> None:
    onset = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    ns = int(onset.timestamp() * 1e9)
    records = [
        *(call_record(time_unix_nano=ns - (i + 1) * 10**10, prompt_version="v7") for i in range(30)),
        *(call_record(time_unix_nano=ns + (i + 1) * 10**10, prompt_version="v8") for i in range(30)),
        *(call_record(time_unix_nano=ns + i * 10**10, route="/x", prompt_version="v9") for i in range(30)),
        call_record(time_unix_nano=ns + 10**10, user="mallory", prompt_version="v8"),
    ]
    store_records(store, tmp_path, records)
    scope = make_scope(service="checkout", route="/chat", model="gpt-4o-2024-08-06")
    suspects = find_suspects(store, scope, onset, onset + timedelta(minutes=20))
    assert suspects[0] == {
        "dimension": "prompt_version", "value": "v8", "share_before": 0.0, "share_after": 1.0, "new": True
    }  # fmt: skip
    assert all(s["value"] != "v9" for s in suspects)  # another route's change is not this alert's


def test_an_empty_value_is_never_a_suspect() -> None:
    # Calls without a user or a prompt version took over the scope at the onset: that names nothing
    # an on-call engineer could roll back; the deploy that came with them does.
    counts = [
        ShareCount("user", "", before=0, after=90, total_before=100, total_after=100),
        ShareCount("prompt_version", " ", before=10, after=100, total_before=100, total_after=100),
        ShareCount("deploy_version", "2.4.1", before=0, after=80, total_before=100, total_after=100),
    ]
    assert [(s["dimension"], s["value"]) for s in rank_suspects(counts)] == [("deploy_version", "2.4.1")]


def test_a_router_or_provider_switch_is_a_suspect(store: Store, tmp_path: Path) -> None:
    onset = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    ns = int(onset.timestamp() * 1e9)
    records = [
        *(
            call_record(time_unix_nano=ns - (i + 1) * 10**10, router="r-v1", provider="openai")
            for i in range(30)
        ),
        *(
            call_record(time_unix_nano=ns + (i + 1) * 10**10, router="r-v2", provider="azure")
            for i in range(30)
        ),
    ]
    store_records(store, tmp_path, records)
    suspects = find_suspects(store, make_scope(service="checkout"), onset, onset + timedelta(minutes=20))
    named = {(s["dimension"], s["value"]) for s in suspects}
    assert {("router", "r-v2"), ("provider", "azure")} <= named


def test_failed_calls_under_the_requested_model_name_are_not_a_switch_of_model() -> None:
    # A timeout surge: 58% of the calls fail and carry only the model they asked for, the others the
    # dated name that answered all along. No model took over; a real switch still ranks.
    surge = [
        ShareCount("model", "gpt-4o-mini", 0, 58, 100, 100),
        ShareCount("model", "gpt-4o-mini-2024-07-18", 100, 42, 100, 100),
    ]
    assert rank_suspects(surge) == []
    switch = [
        ShareCount("model", "gpt-4o", 0, 90, 100, 100),
        ShareCount("model", "gpt-4o-mini-2024-07-18", 100, 10, 100, 100),
    ]
    assert [s["value"] for s in rank_suspects(switch)] == ["gpt-4o"]


def test_tied_suspects_come_in_a_fixed_order_whatever_the_rows_order() -> None:
    # A model switch moves its provider's share as much: the model, the more specific, first.
    rows = [
        ShareCount("provider", "anthropic", 27, 100, 100, 100),
        ShareCount("model", "claude-sonnet-4-5-20250929", 27, 100, 100, 100),
    ]
    assert [s["dimension"] for s in rank_suspects(rows)] == ["model", "provider"]
    assert rank_suspects(rows[::-1]) == rank_suspects(rows)
