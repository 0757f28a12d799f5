"""docs/normalization.md is checked against the code it documents: the dialect tables are generated from
the declarations, and the signature, dialect names and default keys it quotes must be the real ones."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

from tokenpulse.collector import normalize
from tokenpulse.collector.dialect_docs import BEGIN, END, main, render, rewrite
from tokenpulse.collector.normalize import ENGINE, NormalizeConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "normalization.md"
TEXT = DOC.read_text()


def test_the_dialect_tables_are_generated_from_the_declarations() -> None:
    block = TEXT[TEXT.index(BEGIN) + len(BEGIN) : TEXT.index(END)]
    assert block.strip() == render().strip(), "run: python -m tokenpulse.collector.dialect_docs"
    for dialect in ENGINE.dialects:
        assert f"`{dialect.name}`" in block
        for name in ("input", "request_model", "tool_name"):
            for key in getattr(dialect.keys, name):
                assert f"`{key}`" in block


def test_the_check_mode_reports_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "normalization.md"
    stale.write_text(TEXT.replace("`ai.usage.inputTokens`", "`ai.usage.input`"))
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0 and stale.read_text() == rewrite(TEXT) == TEXT
    assert main(["--check", str(stale)]) == 0


def test_the_documented_signature_is_the_real_one() -> None:
    block = re.search(r"```python\n(normalize_span\(.*?)```", TEXT, re.S)
    assert block is not None
    documented = block.group(1)
    # Read from the source: a compiled normalize_span has no signature to inspect.
    source = Path(normalize.__file__).with_name("normalize.py").read_text()
    (real,) = (n for n in ast.parse(source).body if getattr(n, "name", "") == "normalize_span")
    assert isinstance(real, ast.FunctionDef)
    for parameter in [*real.args.args, *real.args.kwonlyargs]:
        name, annotation = parameter.arg, ast.unparse(parameter.annotation) if parameter.annotation else ""
        assert re.search(rf"\b{name}: {re.escape(annotation.split(' |')[0])}\b", documented), name
    for identifier in set(re.findall(r"\b[A-Z][A-Za-z]+\b", documented)) - {"None"}:
        known = hasattr(normalize, identifier) or hasattr(builtins, identifier)
        assert known, f"the doc names {identifier}, which normalize.py does not have"


def test_the_documented_dialect_names_are_the_declared_ones() -> None:
    row = next(line for line in TEXT.splitlines() if line.startswith("| `dialect` |"))
    assert re.findall(r"`([a-z-]+)`", row.split("|")[2]) == sorted(
        (d.name for d in ENGINE.dialects), key=["semconv", "openllmetry", "openinference", "openlit",
                                                 "pydantic-ai", "vercel-ai", "langfuse"].index
    )  # fmt: skip


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("route", "route_keys"),
        ("user", "user_keys"),
        ("session", "session_keys"),
        ("prompt_version", "prompt_version_keys"),
        ("router", "router_name_keys"),
        ("escalated", "router_escalated_keys"),
    ],
)
def test_the_documented_default_keys_are_the_configs(row: str, field: str) -> None:
    line = next(line for line in TEXT.splitlines() if line.startswith(f"| {row} | `"))
    assert tuple(re.findall(r"`([^`]+)`", line)) == getattr(NormalizeConfig(), field)
