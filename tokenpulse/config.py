"""Settings: defaults, overridden by the TOML config file, then environment, then command-line flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenpulse.auth import parse_key_list
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pricing import TokenPrice


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("tokenpulse-data")
    clickhouse_url: str | None = None
    host: str = "127.0.0.1"
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    api_port: int = 8000
    retention_days: int = 90
    max_request_bytes: int = 16 << 20  # as received (possibly gzip)
    max_decompressed_bytes: int = 64 << 20
    wal_max_bytes: int = 1 << 30
    max_spans_per_request: int = 50_000
    max_attributes_per_span: int = 4_096
    max_attribute_length: int = 256  # characters of a stored attribute value; longer ones are cut
    max_dimension_values: int = 2_000  # distinct values per dimension per tenant per hour; more: "__other__"
    wal_segment_bytes: int = 64 << 20
    batch_rows: int = 10_000
    batch_seconds: float = 1.0
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    prices: dict[str, TokenPrice] = field(default_factory=dict)
    detector_interval_seconds: int = 60
    runbook_base_url: str | None = None  # default: the daemon's own /runbooks
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # [detectors.<name>] tables
    # {key: tenant} ([auth] keys, TOKENPULSE_API_KEYS); never in a repr, a log line or an API answer
    api_keys: dict[str, str] = field(default_factory=dict, repr=False)
    protect_metrics: bool = False  # /metrics needs a key too
    allow_unauthenticated: bool = False  # serve a non-loopback address without keys (a proxy authenticates)
    alerts: dict[str, Any] = field(default_factory=dict)  # the [alerts] table (tokenpulse.alerts.settings)

    @property
    def runbooks(self) -> str:
        return self.runbook_base_url or f"http://{self.host}:{self.api_port}/runbooks"


# Flat settings that the environment may set, as TOKENPULSE_<NAME upper-cased>.
_ENV_SETTINGS = (
    "data_dir",
    "clickhouse_url",
    "host",
    "otlp_http_port",
    "otlp_grpc_port",
    "api_port",
    "retention_days",
    "max_request_bytes",
    "max_decompressed_bytes",
    "wal_max_bytes",
    "max_spans_per_request",
    "max_attributes_per_span",
    "max_attribute_length",
    "max_dimension_values",
    "batch_rows",
    "batch_seconds",
    "detector_interval_seconds",
    "runbook_base_url",
    "protect_metrics",
    "allow_unauthenticated",
)
_ENV_ALIASES = {"data_dir": "TOKENPULSE_DATA", "clickhouse_url": "TOKENPULSE_CLICKHOUSE_URL"}


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "Path":
        return Path(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    return str(value) if value is not None else None


def _from_file(path: Path) -> dict[str, Any]:
    """Read the TOML file: top-level keys are flat settings, [normalize] and [prices.<model>] are tables."""
    with path.open("rb") as f:
        document = tomllib.load(f)
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key == "normalize":
            normalize = dict(value)
            extra = {name: tuple(keys) for name, keys in normalize.pop("extra_dimensions", {}).items()}
            tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in normalize.items()}
            values["normalize"] = replace(NormalizeConfig(), **tuples, extra_dimensions=extra)
        elif key == "auth":
            auth = dict(value)
            unknown = set(auth) - {"keys", "protect_metrics", "allow_unauthenticated"}
            if unknown or not all({"key", "tenant"} <= set(entry) for entry in auth.get("keys", [])):
                raise ValueError(
                    f"{path}: [auth] takes keys = [{{key = ..., tenant = ...}}], protect_metrics and "
                    "allow_unauthenticated"
                )
            values["api_keys"] = {entry["key"]: entry["tenant"] for entry in auth.pop("keys", [])}
            values.update({name: _coerce(name, flag) for name, flag in auth.items()})
        elif key == "detectors":
            values["detectors"] = {name: dict(table) for name, table in value.items()}
        elif key == "alerts":
            values["alerts"] = dict(value)
        elif key == "prices":
            values["prices"] = {
                model: TokenPrice(**{kind: Decimal(str(v)) for kind, v in kinds.items()})
                for model, kinds in value.items()
            }
        elif key in {f.name for f in fields(Settings)}:
            values[key] = _coerce(key, value)
        else:
            raise ValueError(f"{path}: unknown setting {key!r}")
    return values


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` are command-line flags (None means not given)."""
    values: dict[str, Any] = {}
    config_file = config_file or (
        Path(os.environ["TOKENPULSE_CONFIG"]) if "TOKENPULSE_CONFIG" in os.environ else None
    )
    if config_file is not None:
        values.update(_from_file(config_file))
    for name in _ENV_SETTINGS:
        env = _ENV_ALIASES.get(name, f"TOKENPULSE_{name.upper()}")
        if os.environ.get(env):
            values[name] = _coerce(name, os.environ[env])
    if os.environ.get("TOKENPULSE_API_KEYS"):
        values["api_keys"] = parse_key_list(os.environ["TOKENPULSE_API_KEYS"])
    values.update({name: _coerce(name, v) for name, v in overrides.items() if v is not None})
    return Settings(**values)
