"""Settings: defaults, overridden by the TOML config file, then environment, then command-line flags.

One typed model (pydantic) declares every generic setting with its type and bounds. Each source is
validated on its own, so a problem names the setting *and* where it came from (the file and key, the
environment variable, the flag); all problems are reported together, not the first one only.
Detector settings stay the detectors package's: they are checked by building the detectors.

Why pydantic and not pydantic-settings: the validation and coercion here are pydantic's (one model, a
type adapter per field); what is written by hand is where a value comes from — the environment
variable's name (five lines) and the config file's tables ([auth] keys, [prices] and its tiers,
[normalize]), which no generic source maps. pydantic-settings merges its sources before it validates,
so its errors name the field only (``retention_days: Input should be a valid integer``, measured with
pydantic-settings 2.14), not the variable or file that holds the value, which is what a user must fix.
"""

from __future__ import annotations

import os
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, fields, is_dataclass, replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tokenpulse.auth import parse_key_list
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.price_tiers import TierRate, tier_rate
from tokenpulse.collector.pricing import TokenPrice
from tokenpulse.errors import UserError, redact_url
from tokenpulse.reconcile import reports


def _url(value: str | None) -> str | None:
    """An absolute http(s) URL (or None): a typo here fails only later, at the first request."""
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _clickhouse_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https", "clickhouse", "clickhousedb") or not parts.netloc:
        raise ValueError("must be a ClickHouse URL such as http://user:password@host:8123/database")
    return value


Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[int, Field(ge=1)]
Url = Annotated[str | None, AfterValidator(_url)]


class Settings(BaseModel):
    """The daemon's generic settings; each field is a top-level key of the config file."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    data_dir: Path = Path("tokenpulse-data")
    clickhouse_url: Annotated[str | None, AfterValidator(_clickhouse_url)] = None
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    otlp_http_port: Port = 4318
    otlp_grpc_port: Port = 4317
    api_port: Port = 8000
    retention_days: Positive = 90
    max_request_bytes: Positive = 16 << 20  # as received (possibly gzip)
    max_decompressed_bytes: Positive = 64 << 20
    wal_max_bytes: Positive = 1 << 30
    max_spans_per_request: Positive = 50_000
    max_attributes_per_span: Positive = 4_096
    max_attribute_length: Positive = 256  # characters of a stored attribute value; longer ones are cut
    # distinct values per dimension per tenant per hour; more are stored as "__other__"
    max_dimension_values: Positive = 2_000
    wal_segment_bytes: Annotated[int, Field(ge=1 << 16)] = 64 << 20
    # Rows an insert may hold; a batch is cut at batch_seconds first unless the writer is behind. Each
    # insert makes a part in each table and rollup, and ClickHouse merges them: the fewer and larger the
    # parts, the fewer times a row is rewritten. At 60k rows/s for 40 s (bench/writer.py --channel),
    # merges read 0.80-0.90 GB (uncompressed) with batches of up to 100k rows, 0.74-0.82 with 150k and
    # 400k (batch_seconds cut those first), 1.17 with 50k, whose batches cost the daemon 6.8-8.8 us of CPU
    # a row against 6.1-6.4 for 150k (10k: ~11-13). A larger batch holds more memory while inserted.
    batch_rows: Positive = 100_000
    batch_seconds: Annotated[float, Field(gt=0)] = 1.0
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    prices: dict[str, TokenPrice] = Field(default_factory=dict)
    price_tiers: list[TierRate] = Field(default_factory=list)  # [[prices.tiers]] over price_tiers.TIER_RATES
    detector_interval_seconds: Positive = 60
    # Processes of `serve` receiving OTLP (0: one per core); 1 receives in the daemon's own process.
    workers: Annotated[int, Field(ge=0)] = 0
    # Run the detector scheduler (and the daily provider import) here: false on all but one of several
    # collectors writing to one ClickHouse (README, "Scale-out").
    run_detectors: bool = True
    runbook_base_url: Url = None  # default: the daemon's own /runbooks
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)  # [detectors.<name>] tables
    # {key: tenant} ([auth] keys, TOKENPULSE_API_KEYS); never in a repr, a log line or an API answer
    api_keys: dict[str, str] = Field(default_factory=dict, repr=False)
    protect_metrics: bool = False  # /metrics needs a key too
    allow_unauthenticated: bool = False  # serve a non-loopback address without keys (a proxy authenticates)
    alerts: dict[str, Any] = Field(default_factory=dict)  # the [alerts] table (tokenpulse.alerts.settings)
    # Reconciliation with the providers' own usage and cost reports (tokenpulse.reconcile): with an admin
    # key set, `serve` imports the last reconcile_days days once a day. Never in a repr, a log or an answer.
    openai_admin_key: str | None = Field(None, repr=False)
    anthropic_admin_key: str | None = Field(None, repr=False)
    openai_admin_url: Url = None  # default https://api.openai.com
    anthropic_admin_url: Url = None  # default https://api.anthropic.com
    reconcile_days: Positive = 7  # providers revise their reports for a few days

    @property
    def runbooks(self) -> str:
        return self.runbook_base_url or f"http://{self.host}:{self.api_port}/runbooks"


# Settings given as one value (a file key, an environment variable, a flag); the rest are tables.
TABLES = ("normalize", "prices", "price_tiers", "detectors", "api_keys", "alerts")
FLAT = tuple(name for name in Settings.model_fields if name not in TABLES)
_ENV_ALIASES = {"data_dir": "TOKENPULSE_DATA", "clickhouse_url": "TOKENPULSE_CLICKHOUSE_URL"}
_FLAG_ALIASES = {"data_dir": "--data", "clickhouse_url": "--clickhouse"}


def environment_variable(name: str) -> str:
    """The environment variable of the flat setting ``name``."""
    return _ENV_ALIASES.get(name, f"TOKENPULSE_{name.upper()}")


class ConfigError(UserError, ValueError):
    """Settings that cannot be used; ``problems`` has one line per problem, each naming its source."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"invalid configuration: {problems[0]}")
        else:
            super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    info = Settings.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[info.annotation, *info.metadata])  # type: ignore[name-defined]


def _message(error: ValidationError) -> str:
    first = error.errors()[0]
    return first["msg"].removeprefix("Value error, ")


class _Layer:
    """The values one source gives, validated as they are added; problems are kept, not raised."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str], problems: list[str]) -> None:
        self.values, self.sources, self.problems = values, sources, problems

    def set(self, name: str, raw: Any, source: str) -> None:
        try:
            self.values[name] = _adapter(name).validate_python(raw)
        except ValidationError as error:
            self.problems.append(f"{source} = {raw!r}: {_message(error)}")
            return
        self.sources[name] = source


def _prices(path: Path, table: Any, problems: list[str]) -> dict[str, TokenPrice]:
    kinds = [f.name for f in fields(TokenPrice)]
    prices = {}
    for model, rates in dict(table).items():
        where = f"{path}: [prices.{model!r}]"
        if not isinstance(rates, dict):
            problems.append(f"{where}: must be a table of USD per million tokens ({', '.join(kinds)})")
            continue
        values: dict[str, Decimal] = {}
        for kind, value in rates.items():
            if kind not in kinds:
                problems.append(f"{where} {kind}: unknown price; known: {', '.join(kinds)}")
                continue
            try:
                # bool is an int in Python: `input = true` is a mistake, not 1 USD.
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    raise InvalidOperation
                values[kind] = Decimal(str(value))
                if not values[kind].is_finite() or values[kind] < 0:
                    raise InvalidOperation
            except InvalidOperation:
                problems.append(f"{where} {kind} = {value!r}: must be a number >= 0 (USD per million tokens)")
        missing = [k for k in ("input", "output") if k not in rates]
        if missing:
            problems.append(f"{where}: {' and '.join(missing)} required")
        elif len(values) == len(rates):
            prices[model] = TokenPrice(**values)
    return prices


def _price_tiers(path: Path, entries: list[Any], problems: list[str]) -> list[TierRate]:
    """The ``[[prices.tiers]]`` entries: multipliers on the standard price of what a provider served."""
    rates = []
    for number, entry in enumerate(entries, 1):
        try:
            if not isinstance(entry, dict):
                raise ValueError("must be a table")
            rates.append(tier_rate(entry))
        except ValueError as error:
            problems.append(f"{path}: [[prices.tiers]] entry {number}: {error}")
    return rates


def _normalize(path: Path, table: Any, problems: list[str]) -> NormalizeConfig | None:
    table = dict(table)
    known = [f.name for f in fields(NormalizeConfig)]
    unknown = sorted(set(table) - set(known))
    if unknown:
        problems.append(
            f"{path}: [normalize] unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
        return None
    extra = table.pop("extra_dimensions", {})
    lists = {**table, **{f"extra_dimensions.{k}": v for k, v in dict(extra).items()}}
    bad = [k for k, v in lists.items() if not (isinstance(v, list) and all(isinstance(i, str) for i in v))]
    if bad:
        problems.append(f"{path}: [normalize] {', '.join(bad)}: must be a list of attribute names")
        return None
    return replace(
        NormalizeConfig(),
        **{k: tuple(v) for k, v in table.items()},
        extra_dimensions={name: tuple(keys) for name, keys in dict(extra).items()},
    )


def _from_file(path: Path, layer: _Layer) -> None:
    """Read the TOML file: top-level keys are flat settings; [normalize], [prices.<model>], [auth],
    [detectors.<name>] and [alerts] are tables."""
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        layer.problems.append(f"config file {path} (--config / TOKENPULSE_CONFIG) does not exist")
        return
    except OSError as error:
        layer.problems.append(f"config file {path}: cannot read it: {error.strerror}")
        return
    except tomllib.TOMLDecodeError as error:
        layer.problems.append(f"config file {path}: not valid TOML: {error}")
        return
    for key, value in document.items():
        if key == "normalize":
            if (normalize := _normalize(path, value, layer.problems)) is not None:
                layer.values["normalize"] = normalize
                layer.sources["normalize"] = f"{path}: [normalize]"
        elif key == "auth":
            auth = dict(value)
            entries = auth.pop("keys", [])
            unknown = set(auth) - {"protect_metrics", "allow_unauthenticated"}
            if unknown or not all(isinstance(e, dict) and {"key", "tenant"} <= set(e) for e in entries):
                layer.problems.append(
                    f"{path}: [auth] takes keys = [{{key = ..., tenant = ...}}], protect_metrics and "
                    "allow_unauthenticated"
                )
                continue
            layer.values["api_keys"] = {str(entry["key"]): str(entry["tenant"]) for entry in entries}
            layer.sources["api_keys"] = f"{path}: [auth] keys"
            for name, flag in auth.items():
                layer.set(name, flag, f"{path}: [auth] {name}")
        elif key in ("detectors", "alerts") and isinstance(value, dict):
            layer.values[key] = (
                {name: dict(table) for name, table in value.items()} if key == "detectors" else dict(value)
            )
            layer.sources[key] = f"{path}: [{key}]"
        elif key == "prices" and isinstance(value, dict):
            value = dict(value)
            tiers = value.pop("tiers", None) if isinstance(value.get("tiers"), list) else None
            layer.values["prices"] = _prices(path, value, layer.problems)
            layer.sources["prices"] = f"{path}: [prices]"
            if tiers is not None:
                layer.values["price_tiers"] = _price_tiers(path, tiers, layer.problems)
                layer.sources["price_tiers"] = f"{path}: [[prices.tiers]]"
        elif key in FLAT:
            layer.set(key, value, f"{path}: {key}")
        else:
            layer.problems.append(f"{path}: unknown setting {key!r}")


def resolve_settings(
    config_file: Path | None = None, environ: dict[str, str] | None = None, **flags: Any
) -> tuple[Settings, dict[str, str], list[str]]:
    """The settings, where each non-default one came from, and every problem found (none: usable).

    ``flags`` are command-line flags (None means not given). On problems the settings are the defaults
    overridden by the values that were valid.
    """
    env = os.environ if environ is None else environ
    layer = _Layer({}, {}, [])
    if config_file is None and env.get("TOKENPULSE_CONFIG"):
        config_file = Path(env["TOKENPULSE_CONFIG"])
    if config_file is not None:
        _from_file(config_file, layer)
    for name in FLAT:
        variable = environment_variable(name)
        if env.get(variable):
            layer.set(name, env[variable], variable)
    if env.get("TOKENPULSE_API_KEYS"):
        try:
            layer.values["api_keys"] = parse_key_list(env["TOKENPULSE_API_KEYS"])
            layer.sources["api_keys"] = "TOKENPULSE_API_KEYS"
        except ValueError as error:
            layer.problems.append(str(error))
    for name, value in flags.items():
        if value is not None:
            layer.set(name, value, _FLAG_ALIASES.get(name, f"--{name.replace('_', '-')}"))
    return Settings(**layer.values), layer.sources, layer.problems


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings or raise ConfigError listing every problem; ``flags`` as in resolve_settings."""
    settings, _, problems = resolve_settings(config_file, **flags)
    if problems:
        raise ConfigError(problems)
    return settings


def check_settings(settings: Settings, serving: bool = True) -> list[str]:
    """Problems of the settings the flat model cannot see: API keys, detector and alert tables, and
    (``serving``) a network address without keys."""
    return [
        *_auth_problems(settings, serving),
        *_detector_problems(settings.detectors),
        *_alert_problems(settings.alerts),
    ]


def _auth_problems(settings: Settings, serving: bool) -> list[str]:
    from tokenpulse.auth import ApiKeys, is_loopback

    try:
        keys = ApiKeys.of(settings.api_keys)
    except ValueError as error:
        return [f"[auth] keys (or TOKENPULSE_API_KEYS): {error}"]
    if serving and not keys.enabled and not is_loopback(settings.host) and not settings.allow_unauthenticated:
        return [
            f"host = {settings.host} without API keys: anyone who reaches it could send and read data; "
            "configure [auth] keys or TOKENPULSE_API_KEYS, or set allow_unauthenticated when a proxy "
            "in front authenticates"
        ]
    return []


def _alert_problems(table: dict[str, Any]) -> list[str]:
    from tokenpulse.alerts.settings import alert_settings

    try:
        alert_settings(table)
    except (ValueError, TypeError, KeyError) as error:
        return [f"[alerts] (or its TOKENPULSE_* variables): {error}"]
    return []


def _detector_problems(tables: dict[str, dict[str, Any]]) -> list[str]:
    if not tables:
        # Nothing set, nothing to check (the defaults are checked by the tests): the commands that run
        # no detector, ingest first, start without importing them (half a second of CPU).
        return []
    from tokenpulse.detectors.catalog import build_detectors

    # Unknown keys first, named as the config file spells them (window_minutes, for_minutes): the
    # detectors' own check names their attributes (window, for_), which the file cannot set.
    defaults = {detector.name: _setting_values(detector.settings) for detector in build_detectors()}
    problems = []
    for name, table in tables.items():
        if name in defaults:
            known = sorted(_file_key(key, value) for key, value in defaults[name].items())
            if unknown := sorted(set(table) - set(known)):
                problems.append(
                    f"[detectors.{name}] unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
                )
    if problems:
        return problems
    try:
        for detector in build_detectors(tables):
            where = f"[detectors.{detector.name}]"
            problems += [f"{where} {p}" for p in _generic_detector_problems(detector.settings)]
    except (ValueError, TypeError) as error:
        problems.append(f"[detectors]: {error}")
    return problems


def _setting_values(settings: object) -> dict[str, Any]:
    """A detector's settings by attribute name (a dataclass, or a pydantic model)."""
    if is_dataclass(settings):
        return {f.name: getattr(settings, f.name) for f in fields(settings)}
    return dict(settings) if hasattr(settings, "model_fields") else dict(vars(settings))


def _file_key(name: str, value: Any) -> str:
    """How the config file spells a detector setting: durations in minutes (``for_`` -> ``for_minutes``)."""
    return f"{name.removesuffix('_')}_minutes" if isinstance(value, timedelta) else name


def _generic_detector_problems(settings: object) -> list[str]:
    """What no detector's settings may hold, whatever the detector: negative counts, thresholds and
    durations, and a warning threshold beyond its critical one (``warning_X`` against ``critical_X``;
    for a ``..._below`` pair the warning must be the higher). The detectors own their other rules."""
    values = _setting_values(settings)
    problems = []
    for name, value in values.items():
        shown = _file_key(name, value)
        if isinstance(value, timedelta) and value < timedelta(0):
            problems.append(f"{shown} = {value.total_seconds() / 60:g}: must not be negative")
        elif isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            problems.append(f"{shown} = {value}: must not be negative")
    for name, warning in values.items():
        critical = values.get(f"critical_{name.removeprefix('warning_')}")
        if not name.startswith("warning_") or not isinstance(warning, int | float) or critical is None:
            continue
        below = name.endswith("_below")
        if (warning < critical) if below else (warning > critical):
            problems.append(
                f"{name} = {warning} is {'below' if below else 'above'} critical_{name[8:]} = {critical}: "
                f"a warning must come before the critical alert"
            )
    return problems


def effective_configuration(settings: Settings, sources: dict[str, str]) -> list[tuple[str, str, str]]:
    """(setting, value, source) for every setting, secrets masked: what `config check` prints."""
    rows = []
    for name in Settings.model_fields:
        value: Any = getattr(settings, name)
        if name.endswith("_admin_key"):
            shown = "(set)" if value else "(none)"
        elif name == "api_keys":
            tenants = sorted(set(value.values()))
            shown = f"{len(value)} key(s) for tenant(s) {', '.join(tenants)}" if value else "none"
        elif name == "clickhouse_url" and value:
            shown = redact_url(value)
        elif name == "normalize":
            shown = "default" if value == NormalizeConfig() else repr(asdict(value))
        elif name == "prices":
            shown = ", ".join(sorted(value)) or "none (genai-prices)"
        elif name == "price_tiers":
            shown = (
                "; ".join(f"{'/'.join(r.providers)} {r.dimension}={r.value} x{r.multiplier}" for r in value)
                or "(built-in tier table)"
            )
        elif name == "alerts":
            shown = _alert_receivers(value)  # receivers come from the environment too
        elif value is None and name in _BUILT_IN:
            shown = f"{_BUILT_IN[name](settings)} (built in)"  # what is used, not "(none)"
        elif value is None or value == {}:
            shown = "(none)" if name != "detectors" else "(defaults)"
        else:
            shown = str(value)
        rows.append((name, shown, sources.get(name, "default")))
    return rows


# Settings whose unset value means a built-in one: `config check` shows the value used.
_BUILT_IN: dict[str, Callable[[Settings], str]] = {
    "runbook_base_url": lambda settings: settings.runbooks,
    "openai_admin_url": lambda _: reports.OPENAI_BASE,
    "anthropic_admin_url": lambda _: reports.ANTHROPIC_BASE,
}


def _alert_receivers(table: dict[str, Any]) -> str:
    from tokenpulse.alerts.settings import alert_settings

    try:
        receivers = alert_settings(table).receivers
    except (ValueError, TypeError, KeyError):
        return "(invalid, see the problems below)"
    return ", ".join(sorted(receivers)) or "no receivers"
