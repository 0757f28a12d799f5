"""Grafana dashboards of tokenpulse, generated from code (``python -m dashboards.generate``).

The JSON in ``dashboards/json`` is what Grafana provisions; a test checks it is what the code builds.
"""
