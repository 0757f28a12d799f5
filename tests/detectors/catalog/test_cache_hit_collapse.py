import pytest

from tests.detector_harness import Scenario, Series, between, run
from tokenpulse.detectors.base import settings_from_mapping
from tokenpulse.detectors.catalog.cache_hit_collapse import ROLLUP, CacheHitCollapse, Settings
from tokenpulse.detectors.catalog.routing_escalation import Settings as RoutingSettings

DAY = 1440
ONSET, END = DAY + 30, DAY + 60  # the prompt edit and its rollback


def scope(route: str) -> dict[str, str]:
    return {"service": "support", "route": route, "model": "claude-sonnet-4-5"}


def healthy(route: str, calls: float = 50, **overrides) -> Series:
    values = {
        "calls": calls,
        "input_tokens": 6000.0,
        "cache_read_tokens": 4000.0,
        "cache_write_tokens": 500.0,
    }
    return Series(scope(route), {**values, **overrides}, 0, DAY + 120)


def test_collapse_fires_critical_and_resolves_while_confounders_stay_quiet() -> None:
    scenario = Scenario().add(
        ROLLUP,
        healthy("/collapse", cache_read_tokens=between(ONSET, END, 300, 4000),
                cache_write_tokens=between(ONSET, END, 4000, 500)),
        healthy("/surge", calls=between(ONSET, END, 150, 50)),
        healthy("/blip", cache_read_tokens=between(DAY + 80, DAY + 83, 300, 4000),
                cache_write_tokens=between(DAY + 80, DAY + 83, 4000, 500)),
        healthy("/thin", calls=1, cache_read_tokens=0.0, cache_write_tokens=4000.0),
        healthy("/never-cached-well", cache_read_tokens=1000.0, cache_write_tokens=4000.0),
    )  # fmt: skip
    result = run(CacheHitCollapse(), scenario, DAY, DAY + 120)
    assert result == [
        (ONSET + 4, "firing", "critical", scope("/collapse")),  # under 0.5 in 4 of the window's 5 minutes
        (END + 6, "resolved", "critical", scope("/collapse")),  # last held at +1, kept 5 min
    ]


def test_a_scope_without_history_does_not_alert_on_its_first_bad_hour() -> None:
    scenario = Scenario().add(
        ROLLUP,
        Series(
            scope("/new"),
            {"calls": 50, "input_tokens": 6000, "cache_read_tokens": 300.0, "cache_write_tokens": 4000.0},
            DAY,
            DAY + 120,
        ),
    )
    assert run(CacheHitCollapse(), scenario, DAY, DAY + 120) == []


def test_openai_style_ratio_uses_input_tokens_when_no_writes_are_reported() -> None:
    reads = between(ONSET, END, 500.0, 5000.0)
    scenario = Scenario().add(
        ROLLUP, healthy("/openai", input_tokens=6000.0, cache_read_tokens=reads, cache_write_tokens=0.0)
    )
    result = run(CacheHitCollapse(), scenario, DAY, DAY + 120)
    assert [(m, status, severity) for m, status, severity, _ in result] == [
        (ONSET + 4, "firing", "critical"),
        (END + 6, "resolved", "critical"),
    ]


def test_the_scope_is_a_setting() -> None:
    reads = between(ONSET, END, 300.0, 4000.0)
    writes = between(ONSET, END, 4000.0, 500.0)
    scenario = Scenario().add(ROLLUP, healthy("/a", cache_read_tokens=reads, cache_write_tokens=writes))
    per_service = CacheHitCollapse(settings_from_mapping(Settings, {"scope": ["service"]}))
    fired = run(per_service, scenario, DAY, DAY + 120)[0]
    assert fired == (ONSET + 4, "firing", "critical", {"service": "support"})
    # canonical order whatever the order given; only dimensions of the rollup detectors read
    assert settings_from_mapping(Settings, {"scope": ["model", "service"]}).scope == ("service", "model")
    with pytest.raises(ValueError, match="must be some of service, route, model, router"):
        settings_from_mapping(Settings, {"scope": ["user"]})
    with pytest.raises(ValueError, match="include router"):
        RoutingSettings(scope=("service",))
