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
        _buttons(alert.runbook_url, alert.dashboard_url),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert.id}` · tokenpulse"}]},
    ]


def _buttons(runbook_url: str, dashboard_url: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Runbook"},
                "url": runbook_url,
                "action_id": "runbook",
                "style": "primary",
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Dashboard"},
                "url": dashboard_url,
                "action_id": "dashboard",
            },
        ],
    }


def incident_headline(incident: dict[str, Any], firing: bool) -> str:
    if not firing:
        return f":white_check_mark: RESOLVED · incident of {len(incident['alerts'])} alert(s)"
    icon = ICON.get(("firing", incident["severity"]), ":red_circle:")
    again = ", reopened" if incident.get("reopened_at") else ""
    return f"{icon} {incident['severity'].upper()} · incident of {len(incident['alerts'])} alert(s){again}"


def _alert_line(alert: dict[str, Any]) -> str:
    scope = ", ".join(f"{k}={v}" for k, v in alert["scope"].items()) or "all"
    return f"• *{alert['detector']}* [{scope}] {alert['state']} ({alert['severity']})"


def incident_text(incident: dict[str, Any], firing: bool) -> str:
    """The plain-text version of an incident's message."""
    cause = incident["cause"][0]
    return _cut(
        f"{incident_headline(incident, firing)}: {incident['title']}. Most likely: {cause['why']}.",
        TEXT_LIMIT,
    )


def incident_blocks(incident: dict[str, Any], firing: bool) -> list[dict[str, Any]]:
    """The Block Kit message of an incident: what happened, its alerts (with the state each really
    has: firing, resolved, silenced by, inhibited by), the most likely change, and the primary
    alert's runbook and dashboard."""
    primary = next(a for a in incident["alerts"] if a["id"] == incident["primary"])
    when = f"started {incident['started_at'][:16].replace('T', ' ')} UTC"
    if incident["resolved_at"]:
        when += f", resolved {incident['resolved_at'][11:16]}"
    fields = [
        ("Alerts", "\n".join(_alert_line(a) for a in incident["alerts"])),
        ("Severity", incident["severity"]),
        ("When", when),
        ("Incident", f"`{incident['id']}`"),
    ]
    causes = "\n".join(f"{i + 1}. {c['why']}" for i, c in enumerate(incident["cause"]))
    header = _cut(incident_headline(incident, firing), HEADER_LIMIT)
    return [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(incident["title"], TEXT_LIMIT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", FIELD_LIMIT)} for name, value in fields
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*Most likely*\n{causes}", TEXT_LIMIT)}},
        _buttons(primary["runbook_url"], primary["dashboard_url"]),
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{_incident_link(incident)} · tokenpulse"}],
        },
    ]


def _incident_link(incident: dict[str, Any]) -> str:
    name = f"incident {incident['id']}"
    return f"<{incident['url']}|{name}>" if incident.get("url") else f"`{name}`"


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
        if notification.incident:
            self._send_incident(notification)
            return
        for alert in notification.alerts:
            text, message = fallback_text(alert), blocks(alert)
            if self.web is None:
                self._incoming_webhook(text, message)
                continue
            # One message per alert's firing: a new firing after a resolve (a new started_at) is a new one.
            key = f"ts:{alert.id}:{alert.started_at.isoformat()}"
            self._web_api(key, alert.status == FIRING, text, message, thread_reply(alert))

    def _pace(self) -> None:
        """About one message per second per channel, as Slack asks."""
        wait = (self._next_send - self.clock.now()).total_seconds()
        if wait > 0:
            self.clock.sleep(wait)
        self._next_send = self.clock.now() + timedelta(seconds=self.min_interval)

    def _incoming_webhook(self, text: str, message: list[dict[str, Any]]) -> None:
        assert self.webhook is not None
        self._pace()
        try:
            response = self.webhook.send(text=text, blocks=message)
        except (urllib.error.URLError, OSError) as error:
            raise DeliveryError(f"slack webhook: {error}", retryable=True) from error
        check_status("slack webhook", response.status_code, _lower(response.headers), response.body)

    def _web_api(self, key: str, firing: bool, text: str, message: list[dict[str, Any]], reply: str) -> None:
        """Post the message ``key`` names, or update it in place and reply in its thread."""
        posted = self.store.recall(self.receiver, key)
        if posted is None:
            if not firing:
                return  # its firing was never posted here (e.g. posted before this channel was set)
            response = self._call("chat_postMessage", channel=self.channel, text=text, blocks=message)
            # chat.update needs the channel's id, which the post answers with.
            self.store.remember(self.receiver, key, f"{response['channel']} {response['ts']}")
            return
        channel, ts = posted.split(" ", 1)
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=message)
        self._call("chat_postMessage", channel=channel, thread_ts=ts, text=reply)

    def _send_incident(self, notification: Notification) -> None:
        incident = notification.incident
        firing = notification.status == FIRING
        text, message = incident_text(incident, firing), incident_blocks(incident, firing)
        if self.web is None:
            self._incoming_webhook(text, message)
            return
        # The thread says what changed since the last message: the timeline entries it has not told.
        told_key = f"told:{notification.group_key}"
        told = int(self.store.recall(self.receiver, told_key) or 0)
        news = [entry["text"] for entry in incident["timeline"][told:]]
        reply = "\n".join(news) if news else f"Still firing ({incident['severity']}): {incident['title']}"
        self._web_api(f"ts:{notification.group_key}", firing, text, message, _cut(reply, TEXT_LIMIT))
        self.store.remember(self.receiver, told_key, str(len(incident["timeline"])))

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
