"""The daily load curve: a raised cosine peaking mid-afternoon UTC with an overnight trough at 20%."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

TROUGH = 0.2  # overnight load relative to the daytime peak
TROUGH_HOUR_UTC = 3.0
NIGHT_BELOW = 0.3  # load under which a stretch of time is recorded as the overnight trough

_NS_PER_HOUR = 3_600 * 10**9
_NS_PER_DAY = 24 * _NS_PER_HOUR


def diurnal(t_ns: int) -> float:
    """Load at ``t_ns`` (Unix ns) relative to the daily peak: 1.0 at 15:00 UTC, ``TROUGH`` at 03:00 UTC."""
    hours = (t_ns % _NS_PER_DAY) / _NS_PER_HOUR
    phase = 2 * math.pi * (hours - TROUGH_HOUR_UTC) / 24
    return TROUGH + (1 - TROUGH) * (1 - math.cos(phase)) / 2


def to_ns(t: datetime) -> int:
    """A timezone-aware datetime as Unix nanoseconds (exact to the microsecond)."""
    delta = t - datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def low_load_windows(
    start: datetime, end: datetime, below: float = NIGHT_BELOW
) -> list[tuple[datetime, datetime]]:
    """The stretches of ``[start, end)`` where the load is under ``below``, to the minute."""
    windows: list[tuple[datetime, datetime]] = []
    opened: datetime | None = None
    t = start
    while t < end:
        low = diurnal(to_ns(t)) < below
        if low and opened is None:
            opened = t
        elif not low and opened is not None:
            windows.append((opened, t))
            opened = None
        t += timedelta(minutes=1)
    if opened is not None:
        windows.append((opened, end))
    return windows
