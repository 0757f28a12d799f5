"""The README's detector settings example is valid: every key it shows is a real setting."""

import re
import tomllib
from pathlib import Path

from tokenpulse.detectors.catalog import build_detectors

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_detector_settings_build_the_catalog() -> None:
    section = README.read_text().split("## Detectors\n", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```toml\n(.*?)```", section, re.S)
    config = tomllib.loads(example)
    detectors = {d.name: d for d in build_detectors(config["detectors"])}
    assert detectors["cache_hit_collapse"].settings.scope == ("service", "route")
    assert detectors["timeout_surge"].settings.odds_ratios == [1.5, 3, 8, 25]
    assert detectors["ttft_slo"].settings.route_slo_ms == {"/autocomplete": 800}
    assert detectors["prompt_growth"].settings.rises == (2.0, 4.0, 8.0)
