"""What the modules compiled by setup.py share: mypyc's class decorator, a no-op without the build."""

from __future__ import annotations

from collections.abc import Callable

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # not a dependency: only the build (mypyc, which brings it) reads the decorator

    def mypyc_attr(**_: object) -> Callable[[type], type]:  # type: ignore[misc]
        return lambda cls: cls


__all__ = ["mypyc_attr"]
