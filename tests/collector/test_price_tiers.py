"""The tier table (collector/price_tiers.py) and its [[prices.tiers]] overrides in the settings file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tokenpulse.collector.price_tiers import TIER_RATES, TierTable, markdown_table
from tokenpulse.config import ConfigError, load_settings


def test_every_built_in_rate_names_its_source_and_date() -> None:
    for rate in TIER_RATES:
        assert rate.source.startswith("https://"), rate
        assert rate.as_of, rate


def test_tier_overrides_come_from_the_prices_table(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text(
        '[prices."my-model"]\ninput = 1\noutput = 2\n'
        '[[prices.tiers]]\nprovider = "openai"\ndimension = "service_tier"\nvalue = "scale"\n'
        'multiplier = 1.25\nsource = "our contract"\n'
    )
    settings = load_settings(config)
    assert set(settings.prices) == {"my-model"}  # the tiers list is not a model
    (rate,) = settings.price_tiers
    assert (rate.providers, rate.value, rate.multiplier, rate.source) == (
        ("openai",),
        "scale",
        Decimal("1.25"),
        "our contract",
    )
    table = TierTable(settings.price_tiers)
    assert table.multiplier("openai", "gpt-5", "scale", "", "") == Decimal("1.25")
    assert table.multiplier("openai", "gpt-5", "flex", "", "") == Decimal("0.5")  # built-in rows stay


def test_a_bad_tier_entry_is_named(tmp_path: Path) -> None:
    config = tmp_path / "tokenpulse.toml"
    config.write_text('[[prices.tiers]]\nprovider = "openai"\ndimension = "service_tier"\nvalue = "flex"\n')
    with pytest.raises(ConfigError, match=r"\[\[prices.tiers\]\] entry 1: multiplier is required"):
        load_settings(config)


def test_the_readme_shows_the_tier_table_in_effect() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Does it match my bill?\n", 1)[1].split("\n## ", 1)[0]
    assert markdown_table() in section
