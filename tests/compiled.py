"""The plain-Python source of a module setup.py compiles, loaded beside the extension, to check that
both builds behave alike."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def is_compiled(module: ModuleType) -> bool:
    return not (module.__file__ or "").endswith(".py")


def source_module(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh module run from ``module``'s .py (registered while the test runs: dataclasses look their
    module up in sys.modules)."""
    package, _, name = module.__name__.rpartition(".")
    # From the package's directory: a module first imported by another of its compiled group gets a
    # __file__ that is no path of the tree.
    source = Path(sys.modules[package].__file__ or "").parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"pure_{name}", source)
    assert spec is not None and spec.loader is not None
    pure = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, pure)
    spec.loader.exec_module(pure)
    assert not is_compiled(pure)
    return pure
