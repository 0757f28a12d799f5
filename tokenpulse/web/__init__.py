"""The built-in overview page: static files served by the API at ``/`` (see api.py), fed by its JSON API."""

from __future__ import annotations

from pathlib import Path

WEB_DIR = Path(__file__).parent
