"""constraints.txt (scripts/lock.py) pins every package pyproject.toml declares for the test setup.

A dependency added to pyproject.toml without re-running the lock script would install unpinned, and pip
could backtrack again; a pin outside a declared bound would make the install fail. Both are caught here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _declared(project: dict, extras: list[str]) -> list[Requirement]:
    """The requirements of the base install plus `extras`, following the project's self-references."""
    out: list[Requirement] = []
    pending, seen = list(extras), set()
    out += [Requirement(r) for r in project["dependencies"]]
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in project["optional-dependencies"][extra]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == canonicalize_name(project["name"]):
                pending += sorted(req.extras)
            else:
                out.append(req)
    return out


def test_every_declared_requirement_is_pinned_within_its_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins((ROOT / "constraints.txt").read_text())
    problems = []
    for req in _declared(project, ["test"]):
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside {req.specifier}")
    assert not problems, "constraints.txt is stale, run python3 scripts/lock.py: " + "; ".join(problems)


def test_pins_are_exact_and_include_pip():
    pins = _pins((ROOT / "constraints.txt").read_text())
    assert "pip" in pins, "CI upgrades pip through the constraints; it must be pinned there"
    assert all(re.fullmatch(r"[0-9!.a-z+]+", v) for v in pins.values())


def test_ci_and_readme_install_through_the_constraints():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "-U pip -c constraints.txt" in ci
    assert "install -q -e '.[test]' -c constraints.txt --build-constraint constraints.txt" in ci
    assert "pip install -e '.[test]' -c constraints.txt --build-constraint constraints.txt" in readme
    assert "pip install -e . -c constraints.txt --build-constraint constraints.txt" in readme


def test_every_build_requirement_is_pinned_within_its_bounds():
    """The isolated build environment (setuptools, mypy and what mypy needs) installs from the pins too."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pins = _pins((ROOT / "constraints.txt").read_text())
    problems = []
    for req in map(Requirement, build):
        version = pins.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: {version or 'not pinned'} (wants {req.specifier})")
    assert not problems, "constraints.txt is stale, run scripts/lock.py --keep: " + "; ".join(problems)


def test_the_image_installs_the_pins_on_the_python_they_were_resolved_on():
    """The Dockerfile's pip runs go through constraints.txt, on the interpreter its header names."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    resolved_on = re.search(r"Resolved on Python (\d+\.\d+)", (ROOT / "constraints.txt").read_text())
    assert resolved_on is not None
    bases = re.findall(r"^FROM python:(\d+\.\d+)-", dockerfile, flags=re.MULTILINE)
    assert bases and set(bases) == {resolved_on.group(1)}
    installs = re.findall(r"pip (?:install|wheel) [^&\n]*", dockerfile)
    assert installs
    for command in installs:
        assert "constraints.txt" in command, f"unpinned: {command}"
    assert "--build-constraint constraints.txt" in dockerfile  # the compiled hot path's build environment
