"""The alert contract: one vocabulary, and imports that go one way (detectors -> contract <- alerts)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.alert_helpers import transition
from tokenpulse.alerts import contract
from tokenpulse.alerts.contract import AlertState, Severity, fingerprint, related, worst
from tokenpulse.detectors import health, history
from tokenpulse.detectors.base import make_scope
from tokenpulse.detectors.state import AlertStates

PACKAGE = Path(__file__).resolve().parents[2] / "tokenpulse"


def imported_modules(path: Path) -> set[str]:
    """Every ``tokenpulse`` module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("tokenpulse")}


def test_detectors_import_only_the_contract_from_alerts() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "detectors").rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("tokenpulse.alerts") and not name.startswith("tokenpulse.alerts.contract")
    }
    assert not offenders


def test_alerts_import_nothing_from_the_detectors() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "alerts").rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("tokenpulse.detectors")
    }
    assert not offenders


def test_what_both_sides_name_is_the_contracts() -> None:
    # The detectors' history and health alert use the contract's names, not look-alikes of their own.
    assert history.TENANT == contract.TENANT
    assert health.NAME == contract.UNHEALTHY
    assert isinstance(AlertStates(), contract.LiveAlerts)  # what the daemon hands to the alerts' views


def test_the_contract_imports_neither_package() -> None:
    assert imported_modules(PACKAGE / "alerts" / "contract.py") == set()


def test_the_alert_model_takes_its_vocabulary_from_the_contract() -> None:
    names = imported_modules(PACKAGE / "alerts" / "model.py")
    assert not {n for n in names if n.startswith("tokenpulse.detectors")}


def test_states_and_severities_are_their_values_everywhere() -> None:
    assert AlertState.FIRING == "firing" and json.dumps([AlertState.RESOLVED]) == '["resolved"]'
    assert worst(["warning", "critical", "warning"]) is Severity.CRITICAL
    assert worst([]) is Severity.WARNING
    assert Severity.CRITICAL.rank > Severity.WARNING.rank


def test_the_fingerprint_is_stable_and_scope_sensitive() -> None:
    scope = make_scope(service="a", route="/x")
    assert fingerprint("cost_spike", scope) == transition("cost_spike", service="a", route="/x").fingerprint
    assert fingerprint("cost_spike", scope) != fingerprint("cost_spike", make_scope(service="a"))


def test_cause_and_symptom_are_related_both_ways_and_strangers_are_not() -> None:
    assert related("cost_spike", "cache_hit_collapse") and related("cache_hit_collapse", "cost_spike")
    assert related("ttft_slo", "ttft_slo")
    assert not related("ttft_slo", "routing_escalation")
    assert all(symptom not in causes for symptom, causes in contract.CAUSES.items())
