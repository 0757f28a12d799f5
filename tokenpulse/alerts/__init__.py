"""Alert notifications: incidents, routing, noise control and durable delivery to Slack, PagerDuty,
webhooks and Alertmanager, modelled on Alertmanager's notify pipeline (route -> group -> inhibit ->
silence -> dedup -> outbox -> retry), each stage a small module. ``contract`` is what the detectors
produce and this package consumes; the detectors import nothing else from here."""
