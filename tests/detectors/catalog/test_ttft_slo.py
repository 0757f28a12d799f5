import pytest

from tests.detector_harness import Scenario, between, drawn_durations, run
from tokenpulse.detectors.base import settings_from_mapping
from tokenpulse.detectors.catalog.ttft_slo import Settings, TtftSlo

DAY = 1440
ONSET, END = DAY + 60, DAY + 120  # the breach and its recovery
SPAN = DAY + 240


def scope(route: str) -> dict[str, str]:
    return {"service": "assistant", "route": route, "model": "gpt-4o", "router": ""}


def evaluate(detector: TtftSlo, *routes: tuple[str, float, object, int], start: int = 0):
    """Each route: (route, streamed calls a minute, median TTFT in ms or a function of the minute, seed)."""
    scenario = Scenario()
    for route, calls, median, seed in routes:
        drawn_durations(scope(route), calls, median, column="ttft", seed=seed, start=start, end=SPAN).add_to(
            scenario, detector
        )
    return run(detector, scenario, DAY, SPAN, defaults={"calls": 0})


def test_a_route_is_compared_with_itself_so_a_long_context_route_does_not_page_forever() -> None:
    # The real trace: a chat service whose prompts reach 85k tokens; its first token always
    # takes 4-10 s. A fixed 1 s SLO paged for the whole hour; compared with itself it is quiet, and its
    # own breach (2.5x: past the warning level, short of the critical one) still pages.
    result = evaluate(
        TtftSlo(),
        ("/long-context", 10.0, 6000.0, 1),
        ("/chat", 30.0, between(ONSET, END, 1250.0, 500.0), 2),
    )
    assert [(status, s["route"]) for _, status, _, s in result] == [
        ("firing", "/chat"),
        ("resolved", "/chat"),
    ]
    assert ONSET + 4 <= result[0][0] <= ONSET + 10 and END <= result[1][0] <= END + 30


def test_a_fixed_slo_applies_where_the_user_sets_one_history_or_not() -> None:
    detector = TtftSlo(settings_from_mapping(Settings, {"route_slo_ms": {"/autocomplete": 300}}))
    result = evaluate(
        detector,
        (
            "/autocomplete",
            20.0,
            250.0,
            3,
        ),  # a median of 250 ms: far more than 1% past 300 ms
        ("/chat", 20.0, 250.0, 4),  # the same, without an SLO: its usual
        start=DAY + 30,  # no history at all: a fixed SLO needs none
    )
    assert [(status, s["route"]) for _, status, _, s in result][:1] == [("firing", "/autocomplete")]
    assert {s["route"] for _, _, _, s in result} == {"/autocomplete"}


def test_confounders_stay_quiet() -> None:
    blip = between(ONSET, ONSET + 2, 8000.0, 400.0)  # a 2-minute provider hiccup
    result = evaluate(
        TtftSlo(),
        ("/steady", 40.0, 400.0, 5),
        ("/blip", 40.0, blip, 6),
        ("/fast", 40.0, between(ONSET, END, 300.0, 100.0), 7),  # 3x, but well under the 1 s floor
        ("/thin", 0.3, 400.0, 8),
    )
    assert result == []


def test_settings_are_validated() -> None:
    settings = settings_from_mapping(Settings, {"slo_ms": 2000, "route_slo_ms": {"/r": 5000}})
    assert settings.slo_ms == 2000 and settings.route_slo_ms == {"/r": 5000}
    with pytest.raises(ValueError, match="positive"):
        settings_from_mapping(Settings, {"route_slo_ms": {"/r": 0}})
    with pytest.raises(ValueError, match="route"):
        settings_from_mapping(Settings, {"scope": ["service"]})


def test_longer_prompts_that_take_longer_to_prefill_are_compared_with_their_size() -> None:
    # Prefill takes ~0.1 ms a prompt token. A retrieval change makes the prompts of /rag 4x longer: its
    # first tokens take ~3x longer - what its prompt sizes usually take. /chat's first tokens take 6 s
    # longer at the usual prompt size: that pages.
    detector = TtftSlo()
    scenario = Scenario()
    for route, size, median, seed in (
        ("/rag", between(ONSET, END, 80_000.0, 20_000.0), 200.0, 31),
        ("/chat", 20_000.0, between(ONSET, END, 6000.0, 200.0), 32),
    ):
        drawn_durations(
            scope(route),
            30.0,
            median,
            sigma=0.3,
            column="ttft",
            seed=seed,
            end=SPAN,
            size=size,
            per_token_ms=0.1,
        ).add_to(scenario, detector)
    result = run(detector, scenario, DAY, SPAN, defaults={"calls": 0})
    assert {s["route"] for _, status, _, s in result if status == "firing"} == {"/chat"}
