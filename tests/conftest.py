from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenpulse.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated embedded store; chDB allows one data path per process at a time, so it is closed after."""
    opened = Store.open(tmp_path / "data")
    opened.migrate()
    yield opened
    opened.close()
