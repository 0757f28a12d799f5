"""The documented schemas of what receivers accept, as JSON Schema, to check every payload sent.

- PagerDuty Events API v2 ``POST /v2/enqueue`` (developer.pagerduty.com, "Send an Alert Event").
- Alertmanager webhook payload, version 4 (prometheus.io, Alertmanager configuration: webhook_config).
- Alertmanager API v2 ``POST /api/v2/alerts``: ``postableAlerts`` (alertmanager's api/v2/openapi.yaml).
- Slack ``chat.postMessage`` / ``chat.update`` and Block Kit's documented limits (docs.slack.dev).
"""

from __future__ import annotations

from typing import Any

import jsonschema

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_TIME = {"type": "string", "format": "date-time"}

PAGERDUTY_EVENT = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": _TIME,
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "images": {"type": "array"},
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "properties": {"href": {"type": "string", "format": "uri"}, "text": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        "client": {"type": "string"},
        "client_url": {"type": "string", "format": "uri"},
    },
    "additionalProperties": False,
    # A trigger needs a payload; resolve and acknowledge need the dedup_key.
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}

_WEBHOOK_ALERT = {
    "type": "object",
    "required": ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"],
    "properties": {
        "status": {"enum": ["firing", "resolved"]},
        "labels": _STRINGS,
        "annotations": _STRINGS,
        "startsAt": _TIME,
        "endsAt": _TIME,
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string"},
    },
    "additionalProperties": False,
}

ALERTMANAGER_WEBHOOK_V4 = {
    "type": "object",
    "required": [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ],
    "properties": {
        "version": {"const": "4"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": _STRINGS,
        "commonLabels": _STRINGS,
        "commonAnnotations": _STRINGS,
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "items": _WEBHOOK_ALERT, "minItems": 1},
    },
    "additionalProperties": False,
}

ALERTMANAGER_POSTABLE_ALERTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {**_STRINGS, "minProperties": 1},
            "annotations": _STRINGS,
            "startsAt": _TIME,
            "endsAt": _TIME,
            "generatorURL": {"type": "string", "format": "uri"},
        },
        "additionalProperties": False,
    },
}


def _text(kinds: list[str], max_length: int) -> dict[str, Any]:
    """A Block Kit text object of one of ``kinds`` whose text is at most ``max_length`` characters."""
    return {
        "type": "object",
        "required": ["type", "text"],
        "properties": {
            "type": {"enum": kinds},
            "text": {"type": "string", "minLength": 1, "maxLength": max_length},
            "emoji": {"type": "boolean"},
        },
        "additionalProperties": False,
    }


def _block(kind: str, required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", *required],
        "properties": {"type": {"const": kind}, **properties},
        "additionalProperties": False,
    }


_BUTTON = _block(
    "button",
    ["text", "action_id"],
    text=_text(["plain_text"], 75),
    url={"type": "string", "format": "uri", "maxLength": 3000},
    action_id={"type": "string", "maxLength": 255},
    style={"enum": ["primary", "danger"]},
)
_BLOCK = {
    "oneOf": [
        _block("header", ["text"], text=_text(["plain_text"], 150)),
        {
            **_block(
                "section",
                [],
                text=_text(["plain_text", "mrkdwn"], 3000),
                fields={"type": "array", "maxItems": 10, "items": _text(["plain_text", "mrkdwn"], 2000)},
            ),
            "anyOf": [{"required": ["text"]}, {"required": ["fields"]}],
        },
        _block("actions", ["elements"], elements={"type": "array", "maxItems": 25, "items": _BUTTON}),
        _block(
            "context",
            ["elements"],
            elements={"type": "array", "maxItems": 10, "items": _text(["plain_text", "mrkdwn"], 3000)},
        ),
    ]
}

SLACK_MESSAGE = {
    "type": "object",
    "required": ["text"],  # the fallback: Slack asks for it whenever blocks are sent
    "properties": {
        "channel": {"type": "string", "minLength": 1},
        "text": {"type": "string", "minLength": 1},
        "blocks": {"type": "array", "maxItems": 50, "items": _BLOCK},
        "ts": {"type": "string"},
        "thread_ts": {"type": "string"},
    },
}


def check(schema: dict[str, Any], document: Any) -> None:
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
