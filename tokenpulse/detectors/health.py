"""tokenpulse_unhealthy: the detectors cannot see the data, so their silence means nothing.

When the detector queries fail (ClickHouse unreachable or erroring) or the writer cannot insert what
the collector acknowledged (the data waits in the write-ahead log, invisible to queries), every
detector would otherwise go quiet, and a quiet detector reads as "all clear". This alert says so
instead: a distinct critical alert, through the same state machine, notifiers and API as the others.
While queries fail, the other detectors' alerts keep their state (no observation is made, none
resolves); they are evaluated again once storage answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tokenpulse.alerts.contract import UNHEALTHY
from tokenpulse.detectors.base import CRITICAL, DetectorSettings, Observation, make_scope

NAME = UNHEALTHY
# One failed cycle (a restart of ClickHouse, a network blip) does not page; three in a row do.
SETTINGS = DetectorSettings(for_=timedelta(minutes=2), keep_firing_for=timedelta(minutes=2))
SCOPE = make_scope(component="storage")


def observations(problems: list[str], at: datetime) -> list[Observation]:
    """The health observation at ``at``: active while there are problems, none when healthy."""
    if not problems:
        return []
    summary = "tokenpulse cannot see its data, detectors are blind: " + "; ".join(problems)
    return [Observation(NAME, SCOPE, at, CRITICAL, float(len(problems)), 1.0, None, 0, summary)]
