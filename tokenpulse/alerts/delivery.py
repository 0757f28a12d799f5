"""Delivery of the outbox: per receiver, in order, with retries and backoff (Alertmanager's RetryStage).

A notifier raises ``DeliveryError``: retryable (5xx, 429, network errors; ``retry_after`` honoured) or
not (400 and other 4xx: the payload will never be accepted, so it is recorded as failed at once). Each
receiver has its own worker thread, so one receiver's outage delays nobody else and never the detectors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from tokenpulse import metrics
from tokenpulse.alerts.model import Clock
from tokenpulse.alerts.store import AlertStore, Notification

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    """Sends one notification (a group's alerts) to one receiver, or raises DeliveryError."""

    def send(self, notification: Notification) -> None: ...


@dataclass(frozen=True)
class Backoff:
    first: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(hours=24)  # a receiver down this long: the notification is failed

    def delay(self, attempts: int, retry_after: float | None) -> timedelta:
        delay = min(self.cap, self.first * 2 ** (attempts - 1))
        return max(delay, timedelta(seconds=retry_after or 0))


class Delivery:
    def __init__(
        self,
        store: AlertStore,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.backoff = backoff or Backoff()

    def attempt(self, receiver: str) -> bool:
        """Try the receiver's oldest pending notification if it is due; True when one was tried."""
        notification = self.store.next_pending(receiver)
        now = self.clock.now()
        if notification is None or notification.next_attempt_at > now:
            return False
        attempts = notification.attempts + 1
        try:
            self.notifiers[receiver].send(notification)
        except DeliveryError as error:
            self._failed(notification, attempts, str(error), error.retryable, error.retry_after)
        except Exception as error:  # a notifier bug or an unclassified I/O error: retried, and logged loudly
            log.exception("notifier %s raised", receiver)
            self._failed(notification, attempts, f"{type(error).__name__}: {error}", True, None)
        else:
            self.store.mark_sent(notification.seq, attempts, self.clock.now())
            metrics.NOTIFICATIONS_SENT.labels(receiver).inc()
        return True

    def _failed(
        self,
        notification: Notification,
        attempts: int,
        error: str,
        retryable: bool,
        retry_after: float | None,
    ) -> None:
        now = self.clock.now()
        receiver = notification.receiver
        if retryable and now - notification.created_at < self.backoff.give_up_after:
            next_at = now + self.backoff.delay(attempts, retry_after)
            self.store.mark_retry(notification.seq, attempts, next_at, error)
            metrics.NOTIFICATIONS_FAILED.labels(receiver, "retrying").inc()
            log.warning("notification %d to %s failed (attempt %d), retrying at %s: %s",
                        notification.seq, receiver, attempts, next_at.isoformat(), error)  # fmt: skip
        else:
            self.store.mark_failed(notification.seq, attempts, now, error)
            metrics.NOTIFICATIONS_FAILED.labels(receiver, "dropped").inc()
            log.error("notification %d to %s dropped after %d attempt(s): %s",
                      notification.seq, receiver, attempts, error)  # fmt: skip

    def run(self, receiver: str, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """A worker thread's loop for one receiver, until ``stop`` is set."""
        while not stop.is_set():
            try:
                worked = self.attempt(receiver)
            except Exception:  # the store itself failing: keep the thread alive, try again shortly
                log.exception("delivery to %s failed unexpectedly", receiver)
                worked = False
            if not worked:
                stop.wait(poll_seconds)
