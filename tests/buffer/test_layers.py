"""Data flows one way: collector -> buffer -> storage. The collector and storage meet only in the buffer
package (records, row encoding, write-ahead log), and the buffer depends on neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent.parent / "tokenpulse"


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every tokenpulse module each file of ``package`` imports, at the top or inside a function."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        modules = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
        found[str(path.relative_to(PACKAGE.parent))] = {m for m in modules if m.startswith("tokenpulse")}
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("collector", ("tokenpulse.storage",)),
        ("storage", ("tokenpulse.collector",)),
        ("buffer", ("tokenpulse.collector", "tokenpulse.storage")),
    ],
)
def test_the_collector_and_storage_meet_only_in_the_buffer(package: str, forbidden: tuple[str, ...]) -> None:
    imports = imported_modules(package)
    assert imports, f"no modules found in tokenpulse/{package}"
    crossing = {
        path: sorted(m for m in modules if m.startswith(forbidden))
        for path, modules in imports.items()
        if any(m.startswith(forbidden) for m in modules)
    }
    assert not crossing
