"""Slack with slack-sdk: Block Kit messages through an incoming webhook or the Web API (bot token).

With a bot token an alert is one message: posted when it fires, updated in place (``chat.update``)
when it escalates, repeats or resolves, with a reply in its thread each time. An incoming webhook
cannot edit, so it posts the resolve as a message of its own.

Slack allows about one message per second per channel: sends to a channel are spaced by
``min_interval``; a 429 becomes a retryable DeliveryError carrying its Retry-After.
"""

from __future__ import annotations

import urllib.error
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tokenpulse.alerts.delivery import DeliveryError
from tokenpulse.alerts.model import FIRING, AlertEvent, Clock
from tokenpulse.alerts.notifiers.http import check_status
from tokenpulse.alerts.store import AlertStore, Notification

ICON = {("firing", "critical"): ":red_circle:", ("firing", "warning"): ":large_orange_circle:"}
TEXT_LIMIT = 3000  # a section's text
FIELD_LIMIT = 2000  # one field of a section
HEADER_LIMIT = 150


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(alert: AlertEvent) -> str:
    state = alert.severity.upper() if alert.status == FIRING else "RESOLVED"
    return f"{ICON.get((alert.status, alert.severity), ':white_check_mark:')} {state} · {alert.detector}"


def fallback_text(alert: AlertEvent) -> str:
    """The plain-text version (notifications, screen readers, clients without blocks)."""
    scope = ", ".join(f"{k}={v}" for k, v in alert.scope.items()) or "all"
    return _cut(
        f"{headline(alert)} [{scope}]: {alert.summary} — {alert.figures_text}. "
        f"Suspects: {alert.suspects_text}. Runbook: {alert.runbook_url}",
        TEXT_LIMIT,
    )


def blocks(alert: AlertEvent) -> list[dict[str, Any]]:
    """The Block Kit message of an alert (https://docs.slack.dev/reference/block-kit/blocks)."""
    scope = "\n".join(f"{k}: `{v}`" for k, v in alert.scope.items()) or "all"
    baseline = "none yet" if alert.baseline is None else f"{alert.baseline:.6g}"
    when = (
        f"started {alert.started_at:%Y-%m-%d %H:%M} UTC"
        if alert.status == FIRING
        else f"resolved {alert.at:%Y-%m-%d %H:%M} UTC (started {alert.started_at:%H:%M})"
    )
    fields = [
        ("Scope", scope),
        ("Value", f"{alert.value:.6g} (threshold {alert.threshold:.6g})"),
        ("Baseline", baseline),
        ("Window", f"{alert.window_minutes:g} min, {when}" if alert.window_minutes else when),
    ]
    return [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(headline(alert), HEADER_LIMIT), "emoji": True},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(alert.summary, TEXT_LIMIT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", FIELD_LIMIT)} for name, value in fields
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(f"*Suspects*\n{alert.suspects_text}", TEXT_LIMIT)},
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Runbook"},
                    "url": alert.runbook_url,
                    "action_id": "runbook",
                    "style": "primary",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Dashboard"},
                    "url": alert.dashboard_url,
                    "action_id": "dashboard",
                },
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert.id}` · tokenpulse"}]},
    ]


def thread_reply(alert: AlertEvent) -> str:
    if alert.status == FIRING:
        return f"Still firing ({alert.severity}): {alert.summary}"
    return f"Resolved at {alert.at:%Y-%m-%d %H:%M} UTC: {alert.summary}"


class SlackNotifier:
    def __init__(
        self,
        receiver: str,
        store: AlertStore,
        clock: Clock,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        channel: str | None = None,
        api_url: str | None = None,
        min_interval: float = 1.0,
    ) -> None:
        if bot_token and not channel:
            raise ValueError("a Slack bot token needs a channel (TOKENPULSE_SLACK_CHANNEL)")
        if not bot_token and not webhook_url:
            raise ValueError("Slack needs an incoming webhook URL or a bot token")
        self.receiver = receiver
        self.store = store
        self.clock = clock
        self.channel = channel or "webhook"
        self.min_interval = min_interval
        self._next_send = clock.now()
        # Retries are the outbox's: the clients' own retry handlers are turned off.
        self.web = (
            WebClient(token=bot_token, base_url=api_url or WebClient.BASE_URL, retry_handlers=[])
            if bot_token
            else None
        )
        self.webhook = (
            WebhookClient(webhook_url, retry_handlers=[]) if webhook_url and not bot_token else None
        )

    def send(self, notification: Notification) -> None:
        for alert in notification.alerts:
            if self.web is not None:
                self._web_api(alert)
            else:
                self._incoming_webhook(alert)

    def _pace(self) -> None:
        """About one message per second per channel, as Slack asks."""
        wait = (self._next_send - self.clock.now()).total_seconds()
        if wait > 0:
            self.clock.sleep(wait)
        self._next_send = self.clock.now() + timedelta(seconds=self.min_interval)

    def _incoming_webhook(self, alert: AlertEvent) -> None:
        assert self.webhook is not None
        self._pace()
        try:
            response = self.webhook.send(text=fallback_text(alert), blocks=blocks(alert))
        except (urllib.error.URLError, OSError) as error:
            raise DeliveryError(f"slack webhook: {error}", retryable=True) from error
        check_status("slack webhook", response.status_code, _lower(response.headers), response.body)

    def _web_api(self, alert: AlertEvent) -> None:
        # One message per incident: a new firing after a resolve (a new started_at) is a new message.
        key = f"ts:{alert.id}:{alert.started_at.isoformat()}"
        posted = self.store.recall(self.receiver, key)
        if posted is None:
            if alert.status != FIRING:
                return  # its firing was never posted here (e.g. posted before this channel was set)
            response = self._call(
                "chat_postMessage", channel=self.channel, text=fallback_text(alert), blocks=blocks(alert)
            )
            # chat.update needs the channel's id, which the post answers with.
            self.store.remember(self.receiver, key, f"{response['channel']} {response['ts']}")
            return
        channel, ts = posted.split(" ", 1)
        self._call("chat_update", channel=channel, ts=ts, text=fallback_text(alert), blocks=blocks(alert))
        self._call("chat_postMessage", channel=channel, thread_ts=ts, text=thread_reply(alert))

    def _call(self, method: str, **arguments: Any) -> Any:
        assert self.web is not None
        self._pace()
        try:
            return getattr(self.web, method)(**arguments)
        except SlackApiError as error:
            response = error.response
            check_status(
                f"slack {method}", response.status_code, _lower(response.headers), str(response.data)
            )
            # 200 with ok=false: Slack refused the request (channel_not_found, invalid_blocks...): final.
            raise DeliveryError(f"slack {method}: {response.get('error')}", retryable=False) from error
        except (urllib.error.URLError, OSError) as error:
            raise DeliveryError(f"slack {method}: {error}", retryable=True) from error


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v[0] if isinstance(v, list) else v) for k, v in dict(headers or {}).items()}
