"""Queries of the official ClickHouse data source plugin (grafana-clickhouse-datasource, v4) for the
foundation SDK, which has no builder for it, and the SQL building blocks every panel shares.

Macros are the plugin's (``$__timeFilter``, ``$__timeInterval``, ``$__interval_s``, ...) and
``$__conditionalAll(condition, $var)``, which the plugin replaces by ``1=1`` when "All" is selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from tokenpulse.storage.cache_ratio import hit_ratio_sql
from tokenpulse.storage.schema import LATENCY_QUANTILES

PLUGIN = "grafana-clickhouse-datasource"
PLUGIN_VERSION = "4.11.1"
# A data source variable: provisioning names the data source, an import picks one.
DATASOURCE = DataSourceRef(type_val=PLUGIN, uid="${datasource}")

# Template variables of every dashboard, each filtering the ones after it (tenant -> environment -> ...).
DIMENSIONS = ("tenant", "environment", "service", "route", "model")
TOOL_DIMENSIONS = DIMENSIONS[:3]  # the ones tool spans have

# The plugin's query formats (grafana-plugin-sdk-go sqlutil.FormatQueryOption).
FORMATS = {"timeseries": 0, "table": 1}


@dataclass
class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL query of a panel, as the plugin's SQL editor saves it."""

    ref_id: str
    raw_sql: str
    query_type: Literal["timeseries", "table"]

    def to_json(self) -> dict[str, Any]:
        return {
            "datasource": DATASOURCE.to_json(),
            "editorType": "sql",
            "format": FORMATS[self.query_type],
            "pluginVersion": PLUGIN_VERSION,
            "queryType": self.query_type,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class Query(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str, query_type: Literal["timeseries", "table"], ref_id: str = "A") -> None:
        self._query = ClickHouseQuery(ref_id, " ".join(raw_sql.split()), query_type)

    def build(self) -> ClickHouseQuery:
        return self._query


def series(sql: str, ref_id: str = "A") -> Query:
    return Query(sql, "timeseries", ref_id)


def table(sql: str) -> Query:
    return Query(sql, "table")


def filters(dimensions: tuple[str, ...] = DIMENSIONS, prefix: str = "") -> str:
    """The template variables' conditions on ``dimensions`` (columns of ``prefix``)."""
    return " AND ".join(f"$__conditionalAll({prefix}{d} IN (${{{d}:singlequote}}), ${d})" for d in dimensions)


# The variables alerts can be filtered by: their scope's tenant and service.
ALERT_FILTERS = " AND ".join(
    f"$__conditionalAll(scope['{d}'] IN (${{{d}:singlequote}}), ${d})" for d in ("tenant", "service")
)


def where(time_column: str, prefix: str = "", dimensions: tuple[str, ...] = DIMENSIONS) -> str:
    """The dashboard's time range and variables, for a table with ``time_column`` and ``dimensions``."""
    return " AND ".join(
        [f"$__timeFilter({prefix}{time_column})", *filter(None, [filters(dimensions, prefix)])]
    )


def window(minutes: int) -> str:
    """Seconds of a tumbling window: a detector's window, or the panel's interval when it is longer."""
    return f"greatest($__interval_s, {minutes * 60})"


def bucket(column: str, minutes: int) -> str:
    return f"toStartOfInterval({column}, INTERVAL {window(minutes)} SECOND)"


def quantile_at(quantile: str) -> int:
    """1-based position of ``quantile`` in the rollup's t-digest states."""
    return LATENCY_QUANTILES.split(", ").index(quantile) + 1


MERGED = f"quantilesTDigestMerge({LATENCY_QUANTILES})"

# Prompt-cache hit ratio (tokenpulse.storage.cache_ratio, as the detectors, the API and the runbooks have
# it): reads over cacheable tokens, each rollup row's cacheable tokens by its provider's shape — reads +
# writes where the provider reports writes (Anthropic), input where it reports reads only (OpenAI, Gemini).
HIT_RATIO = hit_ratio_sql()
