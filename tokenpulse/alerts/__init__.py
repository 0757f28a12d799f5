"""Alert notifications: routing, noise control and durable delivery to Slack, PagerDuty, webhooks and
Alertmanager, modelled on Alertmanager's notify pipeline (inhibit -> silence -> wait/group -> dedup ->
outbox -> retry), each stage a small module."""
