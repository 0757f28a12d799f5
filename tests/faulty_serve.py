"""`tokenpulse serve` whose storage refuses every insert while a flag file exists (an outage injected
at the edge: ``Store.insert_rows``, the one call the writer makes), for daemon-level fault tests.

    python -m tests.faulty_serve FLAG_FILE serve --data ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokenpulse import cli
from tokenpulse.storage.store import Store


def main() -> int:
    flag = Path(sys.argv[1])
    insert_rows = Store.insert_rows

    def failing_while_flagged(
        self: Store, table: str, rows: bytes, dedup_token: str, row_format: str
    ) -> None:
        if flag.exists():
            raise ConnectionError(f"injected storage outage ({flag} exists): connection refused")
        insert_rows(self, table, rows, dedup_token, row_format)

    Store.insert_rows = failing_while_flagged  # type: ignore[method-assign]
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
