"""`/docs` renders with no internet: Swagger UI comes from the installed package, not a CDN."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.daemon import Daemon
from tests.test_overview import chromium


def test_docs_load_only_from_the_daemon_and_render_the_operations(daemon: Daemon, tmp_path: Path) -> None:
    html = httpx.get(f"{daemon.api}/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", html) + re.findall(r"url: ?'([^']+)'", html)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        response = httpx.get(f"{daemon.api}{asset}")
        assert response.status_code == 200 and len(response.content) > 100, asset
    # Rendered: Swagger UI 5 reads FastAPI's OpenAPI 3.1 document and lists the operations.
    dumped = chromium("--dump-dom", f"{daemon.api}/docs", profile=tmp_path / "profile").stdout
    assert 'class="swagger-ui' in dumped, dumped[-2000:]
    assert "/api/v1/summary" in dumped and "Unable to render this definition" not in dumped


def test_docs_open_without_a_key_on_a_keyed_daemon(tmp_path: Path) -> None:
    running = Daemon(tmp_path / "data", {"TOKENPULSE_API_KEYS": "acme:acme-0123456789abcdef"}).start()
    try:
        for path in ("/docs", "/openapi.json", "/static/docs/swagger-ui-bundle.js"):
            assert httpx.get(f"{running.api}{path}").status_code == 200, path
        assert httpx.get(f"{running.api}/api/v1/summary").status_code == 401
    finally:
        running.kill()
