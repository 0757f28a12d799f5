"""bench/detectors.py: the CPU seconds of the store's background merges, told apart from the cycle's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from detectors import MERGE_THREADS, merge_cpu  # bench/ holds scripts, not a package


def task(tasks: Path, tid: int, name: str, utime: int, stime: int) -> None:
    """A thread's entry as Linux gives it: its name, and its stat line (the name in parentheses may hold
    spaces and parentheses; utime and stime are the 14th and 15th fields, in clock ticks)."""
    (tasks / str(tid)).mkdir()
    (tasks / str(tid) / "comm").write_text(name + "\n")
    fields = ["S", *["0"] * 10, str(utime), str(stime), *["0"] * 8]
    (tasks / str(tid) / "stat").write_text(f"{tid} ({name}) " + " ".join(fields) + "\n")


def test_merge_cpu_sums_the_merge_threads_only(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    task(tmp_path, 1, "python", 5 * ticks, ticks)
    task(tmp_path, 2, MERGE_THREADS, 2 * ticks, ticks)
    task(tmp_path, 3, MERGE_THREADS, ticks, 0)
    task(tmp_path, 4, "ThreadPool) x (", 7 * ticks, 0)
    (tmp_path / "5").mkdir()  # a thread that ended while it was read: nothing to read
    assert merge_cpu(tmp_path) == 4.0
    assert merge_cpu(tmp_path / "none") == 0.0
