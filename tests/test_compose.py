"""The docker-compose stack: the files parse and reference files that exist. (No Docker engine runs
here, so the stack itself is not started by the tests.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from dashboards.clickhouse import PLUGIN, PLUGIN_VERSION

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}.
SECRET = re.compile(r"^\$\{[A-Z_]+(:[?-][^}]*)?\}$")


def test_the_stack_has_clickhouse_tokenpulse_grafana_and_optional_prometheus() -> None:
    assert set(SERVICES) == {"clickhouse", "tokenpulse", "grafana", "prometheus"}
    assert SERVICES["prometheus"]["profiles"] == ["prometheus"]
    assert all("profiles" not in SERVICES[name] for name in ("clickhouse", "tokenpulse", "grafana"))
    for name, service in SERVICES.items():
        if "image" in service and "build" not in service:
            image, _, tag = service["image"].rpartition(":")
            assert image and re.fullmatch(r"v?\d+(\.\d+)+", tag), f"{name}: image not pinned to a version"
        assert service["healthcheck"]["test"], f"{name}: no health check"
    for name in ("tokenpulse", "grafana"):
        assert SERVICES[name]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert SERVICES["grafana"]["environment"]["GF_INSTALL_PLUGINS"] == f"{PLUGIN} {PLUGIN_VERSION}"


def test_volumes_are_named_and_bind_mounts_exist() -> None:
    named = set(COMPOSE["volumes"])
    used = set()
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
                used.add(source)
            assert target.startswith("/")
    assert used == named
    assert SERVICES["tokenpulse"]["volumes"] == ["tokenpulse-data:/var/lib/tokenpulse"]


def test_secrets_come_from_the_environment() -> None:
    env_example = (ROOT / ".env.example").read_text()
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key or key.endswith("_KEYS"):
                assert SECRET.match(str(value)), f"{name}: {key} is not taken from the environment"
                assert f"{value[2:].split(':')[0]}=" in env_example
    url = SERVICES["tokenpulse"]["environment"]["TOKENPULSE_CLICKHOUSE_URL"]
    assert "${CLICKHOUSE_PASSWORD:?" in url and url.endswith("@clickhouse:8123/tokenpulse")
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile_copies_what_exists_and_serves() -> None:
    build = SERVICES["tokenpulse"]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
    copied: set[str] = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:  # a stage's output is no repository path
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
                copied.add(source.rstrip("/"))
    # A link inside the package (tokenpulse/runbooks -> ../runbooks) is copied as a link: its target too.
    for link in (path for path in (ROOT / "tokenpulse").rglob("*") if path.is_symlink()):
        target = link.resolve().relative_to(ROOT).as_posix()
        assert target in copied, f"{link.relative_to(ROOT)} links to {target}, which is not copied"
    assert 'ENTRYPOINT ["tokenpulse"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    ports = {p.split(":")[1] for p in SERVICES["tokenpulse"]["ports"]}
    assert ports == {"4317", "4318", "8000"}
    assert all(p in dockerfile for p in ("4317", "4318", "8000"))


def _mounted(service: str, target: str) -> Path:
    """The repository path bind-mounted at ``target`` in ``service`` (the most specific mount wins)."""
    mounts = [volume.split(":")[:2] for volume in SERVICES[service]["volumes"]]
    covering = [
        (mount, source) for source, mount in mounts if target == mount or target.startswith(mount + "/")
    ]
    assert covering, f"nothing mounted at {target} in {service}"
    mount, source = max(covering, key=lambda pair: len(pair[0]))
    assert source.startswith("."), f"{target} is in the named volume {source}, not a file of the repository"
    return ROOT / source / target.removeprefix(mount).lstrip("/")


def test_grafana_provisions_the_data_source_and_the_generated_dashboards() -> None:
    provisioning = _mounted("grafana", "/etc/grafana/provisioning")
    (source,) = yaml.safe_load((provisioning / "datasources" / "clickhouse.yml").read_text())["datasources"]
    assert source["type"] == PLUGIN and source["isDefault"]
    assert (
        source["jsonData"]["host"] == "clickhouse" and source["jsonData"]["defaultDatabase"] == "tokenpulse"
    )
    assert source["secureJsonData"]["password"] == "$GRAFANA_CLICKHOUSE_PASSWORD"
    assert "GRAFANA_CLICKHOUSE_PASSWORD" in SERVICES["grafana"]["environment"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "tokenpulse.yml").read_text())["providers"]
    folder = _mounted("grafana", provider["options"]["path"])
    assert folder == ROOT / "dashboards" / "json"
    assert {p.name for p in folder.glob("*.json")} >= {"spend.json", "silent-failures.json"}
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _mounted("grafana", home).is_file()
    reader = _mounted("clickhouse", "/docker-entrypoint-initdb.d") / "10-grafana-reader.sh"
    assert reader.is_file() and "GRANT SELECT" in reader.read_text()


def test_prometheus_profile_scrapes_tokenpulse_and_its_config_is_valid() -> None:
    config_path = _mounted("prometheus", "/etc/prometheus/prometheus.yml")
    (job,) = yaml.safe_load(config_path.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["tokenpulse:8000"]
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required; .ci/run installs it"
    checked = subprocess.run([promtool, "check", "config", str(config_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
