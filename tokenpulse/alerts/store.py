"""The durable state of notifications, in SQLite in the data directory (``<data>/alerts.sqlite``).

- ``alerts``: the latest event of every alert the dispatcher holds, so groups are rebuilt after a restart;
- ``nflog``: per receiver and group, what was last sent (Alertmanager's notification log): the dedup and
  repeat stage reads it, so a restart neither repeats nor forgets a notification;
- ``outbox``: every notification, recorded (in the same transaction as its ``nflog`` entry) before a
  delivery worker sends it, and kept with its attempts, next attempt and outcome;
- ``silences``; ``memory``: what a notifier must remember between sends (a Slack message's ts);
- ``incidents``: every incident (``alerts.incidents``) as last changed, so a restart keeps them.

The notification state lives here, beside the outbox, rather than in ClickHouse: an incident, the
alerts it labels and the notifications about it are recorded by the same process in one local file.

Every write commits with ``synchronous=FULL``: what was recorded survives a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenpulse.alerts.matchers import Matcher, parse_matchers
from tokenpulse.alerts.model import AlertEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (
    receiver TEXT NOT NULL, group_key TEXT NOT NULL, firing TEXT NOT NULL, resolved TEXT NOT NULL,
    sent_at REAL NOT NULL, PRIMARY KEY (receiver, group_key)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, group_key TEXT NOT NULL,
    group_labels TEXT NOT NULL, alerts TEXT NOT NULL, created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '', done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (receiver, state, seq);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memory (
    receiver TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (receiver, key)
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, opened_at REAL NOT NULL, updated_at REAL NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_state ON incidents (state, updated_at);
"""
# Columns added since a file was first created: (table, column, its declaration).
_ADDED_COLUMNS = (("outbox", "incident", "TEXT NOT NULL DEFAULT '{}'"),)

PENDING, SENT, FAILED = "pending", "sent", "failed"


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class LogEntry:
    """What a receiver was last sent for a group: firing ``id:severity`` keys and resolved ids."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: datetime


@dataclass(frozen=True)
class Notification:
    """One outbox entry: the alerts of one group for one receiver."""

    seq: int
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[AlertEvent]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    state: str = PENDING
    last_error: str = ""
    incident: dict[str, Any] = field(default_factory=dict)  # the incident as it was when recorded

    @property
    def status(self) -> str:
        """The group's status, as Alertmanager computes it: firing while any alert fires."""
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        return "active" if self.active(now) else ("pending" if now < self.starts_at else "expired")

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "created_by": self.created_by,
            "comment": self.comment,
            "state": self.state(now),
        }


class AlertStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the threads, serialized by a lock: writes are tiny and rare.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        for table, column, declaration in _ADDED_COLUMNS:
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # alerts
    def save_alerts(self, events: Sequence[AlertEvent]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO alerts (id, event) VALUES (?, ?)",
                [(e.id, json.dumps(e.to_json())) for e in events],
            )

    def load_alerts(self) -> list[AlertEvent]:
        return [AlertEvent.from_json(json.loads(row[0])) for row in self._query("SELECT event FROM alerts")]

    def forget_alerts(self, ids: Sequence[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM alerts WHERE id = ?", [(i,) for i in ids])

    # notification log and outbox
    def log_entry(self, receiver: str, group_key: str) -> LogEntry | None:
        rows = self._query(
            "SELECT firing, resolved, sent_at FROM nflog WHERE receiver = ? AND group_key = ?",
            (receiver, group_key),
        )
        if not rows:
            return None
        firing, resolved, sent_at = rows[0]
        return LogEntry(frozenset(json.loads(firing)), frozenset(json.loads(resolved)), _dt(sent_at))

    def enqueue(
        self,
        receiver: str,
        group_key: str,
        group_labels: dict[str, str],
        alerts: Sequence[AlertEvent],
        log: LogEntry,
        send: bool,
        incident: dict[str, Any] | None = None,
    ) -> None:
        """Record the log entry and, when ``send``, the notification to deliver, atomically."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO nflog VALUES (?, ?, ?, ?, ?)",
                (receiver, group_key, json.dumps(sorted(log.firing)), json.dumps(sorted(log.resolved)),
                 _ts(log.sent_at)),
            )  # fmt: skip
            if send:
                db.execute(
                    "INSERT INTO outbox (receiver, group_key, group_labels, alerts, created_at, "
                    "next_attempt_at, incident) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (receiver, group_key, json.dumps(group_labels),
                     json.dumps([a.to_json() for a in alerts]), _ts(log.sent_at), _ts(log.sent_at),
                     json.dumps(incident or {})),
                )  # fmt: skip

    def next_pending(self, receiver: str) -> Notification | None:
        """The receiver's oldest undelivered notification: delivery is in order, per receiver."""
        rows = self._query(
            "SELECT * FROM outbox WHERE receiver = ? AND state = ? ORDER BY seq LIMIT 1", (receiver, PENDING)
        )
        return _notification(rows[0]) if rows else None

    def notifications(self, receiver: str | None = None) -> list[Notification]:
        if receiver is None:
            return [_notification(r) for r in self._query("SELECT * FROM outbox ORDER BY seq")]
        return [
            _notification(r)
            for r in self._query("SELECT * FROM outbox WHERE receiver = ? ORDER BY seq", (receiver,))
        ]

    def pending_count(self) -> dict[str, int]:
        rows = self._query(
            "SELECT receiver, count() FROM outbox WHERE state = ? GROUP BY receiver", (PENDING,)
        )
        return dict(rows)

    def mark_sent(self, seq: int, attempts: int, now: datetime) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = ?, attempts = ?, done_at = ?, last_error = '' WHERE seq = ?",
                (SENT, attempts, _ts(now), seq),
            )

    def mark_retry(self, seq: int, attempts: int, next_attempt_at: datetime, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?",
                (attempts, _ts(next_attempt_at), error, seq),
            )

    def mark_failed(self, seq: int, attempts: int, now: datetime, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = ?, attempts = ?, done_at = ?, last_error = ? WHERE seq = ?",
                (FAILED, attempts, _ts(now), error, seq),
            )

    def prune(self, before: datetime) -> int:
        """Forget delivered and failed notifications, log entries, expired silences and resolved incidents
        older than ``before``.

        A log entry is refreshed by every repeat, so only groups silent since ``before`` lose theirs.
        """
        cutoff = _ts(before)
        with self._transaction() as db:
            removed = db.execute(
                "DELETE FROM outbox WHERE state != ? AND done_at < ?", (PENDING, cutoff)
            ).rowcount
            removed += db.execute("DELETE FROM nflog WHERE sent_at < ?", (cutoff,)).rowcount
            removed += db.execute("DELETE FROM silences WHERE ends_at < ?", (cutoff,)).rowcount
            removed += db.execute(
                "DELETE FROM incidents WHERE state = 'resolved' AND updated_at < ?", (cutoff,)
            ).rowcount
        return removed

    # silences
    def add_silence(
        self,
        matchers: Sequence[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> Silence:
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        silence = Silence(uuid.uuid4().hex, tuple(matchers), starts_at, ends_at, created_by, comment)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
                (silence.id, json.dumps([str(m) for m in matchers]), _ts(starts_at), _ts(ends_at),
                 created_by, comment, _ts(starts_at)),
            )  # fmt: skip
        return silence

    def silences(self) -> list[Silence]:
        rows = self._query(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences ORDER BY created_at"
        )
        return [
            Silence(i, parse_matchers(json.loads(m)), _dt(s), _dt(e), by, comment)
            for i, m, s, e, by, comment in rows
        ]

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when there is no such silence."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE silences SET ends_at = min(ends_at, ?) WHERE id = ?", (_ts(now), silence_id)
            )
            return cursor.rowcount > 0

    # incidents
    def save_incidents(self, incidents: Sequence[dict[str, Any]]) -> None:
        """Record incidents' documents (``Incident.document()``) as they are now."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?)",
                [(d["id"], "resolved" if d["resolved_at"] else "open",
                  datetime.fromisoformat(d["opened_at"]).timestamp(),
                  datetime.fromisoformat(d["updated_at"] or d["opened_at"]).timestamp(), json.dumps(d))
                 for d in incidents],
            )  # fmt: skip

    def load_incidents(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Open incidents, and those changed since ``since`` (all when None), oldest first."""
        rows = self._query(
            "SELECT document FROM incidents WHERE state = 'open' OR updated_at >= ? ORDER BY opened_at",
            (_ts(since) if since else float("-inf"),),
        )
        return [json.loads(row[0]) for row in rows]

    # what notifiers remember
    def remember(self, receiver: str, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO memory VALUES (?, ?, ?)", (receiver, key, value))

    def recall(self, receiver: str, key: str) -> str | None:
        rows = self._query("SELECT value FROM memory WHERE receiver = ? AND key = ?", (receiver, key))
        return rows[0][0] if rows else None


def _notification(row: tuple[Any, ...]) -> Notification:
    seq, receiver, group_key, labels, alerts, created, state, attempts, next_at, error, _done, incident = row
    return Notification(
        seq=seq,
        receiver=receiver,
        group_key=group_key,
        group_labels=json.loads(labels),
        alerts=[AlertEvent.from_json(a) for a in json.loads(alerts)],
        created_at=_dt(created),
        attempts=attempts,
        next_attempt_at=_dt(next_at),
        state=state,
        last_error=error,
        incident=json.loads(incident),
    )
