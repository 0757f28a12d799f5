"""The four tokenpulse dashboards, built with grafana-foundation-sdk on the plugin queries of
``clickhouse.py``. Every query reads the tables of ``tokenpulse/storage/schema.py``: the per-minute
rollup ``calls_1m`` wherever it can answer (so panels stay fast over 30 days; ``evaluations_1m`` for the
quality of answers beside their cost), the raw ``calls`` and
``tool_spans`` only for what the rollup leaves out (users, tools, the latency distribution), and
``alert_events`` for the alert history. Detector panels plot each signal as the detector computes it,
over tumbling windows of the detector's window (or the panel interval when longer), against the
detector's default thresholds and, for thresholds relative to a baseline, the thresholds recorded with
each firing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap, stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.clickhouse import (
    ALERT_FILTERS,
    DATASOURCE,
    DIMENSIONS,
    HIT_RATIO,
    MERGED,
    PLUGIN,
    TOOL_DIMENSIONS,
    Query,
    bucket,
    filters,
    quantile_at,
    series,
    where,
    window,
)
from dashboards.clickhouse import table as table_query
from tokenpulse.detectors.catalog import (
    cache_hit_collapse,
    cache_not_applied,
    cost_spike,
    latency_p99_drift,
    prompt_growth,
    reasoning_blowup,
    routing_escalation,
    timeout_surge,
    tool_hidden_cost,
    ttft_slo,
)
from tokenpulse.storage.attribution import LONGEST_TOOL, attributed_calls_sql

ROLLUP = "calls_1m"


def calls_in_tools(columns: str) -> str:
    """The dashboard's LLM calls made in a tool, with ``columns`` and the tool
    (``tokenpulse.storage.attribution``: the nearest tool ancestor at any depth); the spans walked are
    those of the tenant from ``LONGEST_TOOL`` before the range, when a tool may have started."""
    return attributed_calls_sql(
        columns,
        f"c.parent_span_id != '' AND {where('time', prefix='c.')}",
        f"time >= $__fromTime - {LONGEST_TOOL} AND time <= $__toTime AND {filters(('tenant',))}",
    )


TAG = "tokenpulse"


def _minutes(duration: timedelta) -> int:
    return int(duration.total_seconds() // 60)


# -- panels ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """A threshold drawn on a panel; ``color`` is what values past it turn."""

    value: float
    color: str


def _thresholds(lines: Sequence[Line], base: str = "green") -> dash.ThresholdsConfig:
    steps = [model.Threshold(None, base), *(model.Threshold(line.value, line.color) for line in lines)]
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def chart(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    lines: Sequence[Line] = (),
    below_is_bad: bool = False,
    stacked: bool = False,
    width: int = 12,
) -> timeseries.Panel:
    """A time series panel; ``lines`` are drawn as dashed thresholds."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .interval("1m")  # the rollup's grain: $__interval_s is never under a minute
        .span(width)
        .height(8)
        .fill_opacity(10 if not stacked else 60)
        .span_nulls(False)
        .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.RIGHT).show_legend(True).calcs(["mean", "max"]))
    )  # fmt: skip
    for query in queries:
        panel = panel.with_target(query)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if lines:
        ordered = sorted(lines, key=lambda line: line.value)
        if below_is_bad:  # colors apply above each value: red below the lowest line, green above the highest
            colors = [line.color for line in ordered]
            steps = [
                Line(line.value, color) for line, color in zip(ordered, [*colors[1:], "green"], strict=True)
            ]
            panel = panel.thresholds(_thresholds(steps, base=colors[0]))
        else:
            panel = panel.thresholds(_thresholds(ordered))
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    if any(query.build().ref_id == "B" for query in queries):
        # Thresholds recorded with each firing: points, not a line between unrelated alerts.
        panel = panel.override_by_query("B", [
            model.DynamicConfigValue("custom.drawStyle", "points"),
            model.DynamicConfigValue("custom.pointSize", 9),
        ])  # fmt: skip
    return panel


RUNBOOK_LINK = {"title": "Open runbook", "url": "${__value.raw}", "targetBlank": True}


def grid(title: str, description: str, query: Query, width: int = 12, links: str = "") -> table.Panel:
    """A table; ``links`` names a column of URLs shown as links."""
    panel = (
        table.Panel().title(title).description(description).datasource(DATASOURCE).with_target(query)
        .span(width).height(9)
    )  # fmt: skip
    if links:
        panel = panel.override_by_name(links, [
            model.DynamicConfigValue("links", [RUNBOOK_LINK]),
        ])  # fmt: skip
    return panel


def number(title: str, description: str, unit: str, query: Query) -> stat.Panel:
    return (
        stat.Panel().title(title).description(description).datasource(DATASOURCE).with_target(query)
        .unit(unit).span(6).height(4)
    )  # fmt: skip


def per_minute_rate(expression: str) -> str:
    return f"{expression} * 60 / $__interval_s"


# -- dashboards ------------------------------------------------------------------------------------


def base(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard with the data source and environment / service / route / model variables."""
    board = (
        dash.Dashboard(title).uid(uid).description(description).tags([TAG]).time("now-6h", "now")
        .refresh("1m").timezone("browser").tooltip(model.DashboardCursorSync.CROSSHAIR).editable()
        .link(dash.DashboardLink("tokenpulse").type(model.DashboardLinkType.DASHBOARDS).tags([TAG])
              .as_dropdown(True).keep_time(True).include_vars(True))
        .with_variable(dash.DatasourceVariable("datasource").label("Data source").type(PLUGIN))
    )  # fmt: skip
    for position, dimension in enumerate(DIMENSIONS):
        previous = filters(DIMENSIONS[:position])
        condition = f" AND {previous}" if previous else ""
        board = board.with_variable(
            dash.QueryVariable(dimension)
            .label(dimension.capitalize())
            .datasource(DATASOURCE)
            .query(
                f"SELECT DISTINCT {dimension} FROM {ROLLUP} WHERE $__timeFilter(minute){condition} "
                f"ORDER BY {dimension}"
            )
            .multi(True)
            .include_all(True)
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    return board


def _rate_by(dimension: str) -> Query:
    return series(
        f"SELECT $__timeInterval(minute) AS time, {dimension}, "
        f"toFloat64(sum(cost_usd)) * 3600 / $__interval_s AS usd_per_hour "
        f"FROM {ROLLUP} WHERE {where('minute')} GROUP BY time, {dimension} ORDER BY time"
    )


def spend() -> dash.Dashboard:
    board = base("tokenpulse-spend", "tokenpulse / Spend", "What LLM calls cost, where and for whom.")
    board = board.with_panel(number(
        "Spend in range", "Cost of the calls that ended in the range (unpriced models count $0).",
        "currencyUSD",
        table_query(f"SELECT toFloat64(sum(cost_usd)) AS usd FROM {ROLLUP} WHERE {where('minute')}"),
    )).with_panel(number(
        "Calls in range", "LLM calls that ended in the range.", "short",
        table_query(f"SELECT sum(calls) AS calls FROM {ROLLUP} WHERE {where('minute')}"),
    )).with_panel(number(
        "Cost per 1k calls", "Spend / calls x 1000 over the range.", "currencyUSD",
        table_query(
            f"SELECT toFloat64(sum(cost_usd)) * 1000 / nullIf(sum(calls), 0) AS usd_per_1k_calls "
            f"FROM {ROLLUP} WHERE {where('minute')}"
        ),
    )).with_panel(number(
        "Unpriced calls", "Calls of models without a known price: stored with cost 0, never silently.",
        "short",
        table_query(f"SELECT sum(unpriced_calls) AS unpriced_calls FROM {ROLLUP} WHERE {where('minute')}"),
    ))  # fmt: skip
    for dimension in ("service", "model", "route"):
        board = board.with_panel(chart(
            f"Spend rate by {dimension}", f"Cost per hour of the calls that ended in each interval, by "
            f"{dimension}.",
            "currencyUSD", _rate_by(dimension),
        ))  # fmt: skip
    board = board.with_panel(chart(
        "Cost per 1k calls by service", "Spend / calls x 1000 per interval: what a call costs, traffic "
        "aside.",
        "currencyUSD",
        series(
            f"SELECT $__timeInterval(minute) AS time, service, "
            f"toFloat64(sum(cost_usd)) * 1000 / sum(calls) AS usd_per_1k_calls FROM {ROLLUP} "
            f"WHERE {where('minute')} GROUP BY time, service ORDER BY time"
        ),
    )).with_panel(chart(
        "Spend rate by service_tier",
        "Cost per hour by the tier the provider served (flex, priority and batch are billed at their own "
        "rates; '' where the span does not say).",
        "currencyUSD", _rate_by("service_tier"), width=24,
    )).with_panel(chart(
        "Spend vs daily budget",
        "The spend rate extrapolated to a day against the daily budget variable (cost_spike budgets are set "
        "in tokenpulse's config; set the variable to yours).",
        "currencyUSD",
        series(
            f"SELECT $__timeInterval(minute) AS time, toFloat64(sum(cost_usd)) * 86400 / $__interval_s "
            f"AS projected_usd_per_day, toFloat64OrZero(${{daily_budget_usd:singlequote}}) AS "
            "daily_budget_usd "
            f"FROM {ROLLUP} WHERE {where('minute')} GROUP BY time ORDER BY time"
        ),
        width=24,
    )).with_panel(grid(
        "Top users by spend", "Read from the raw calls table: the rollup leaves users out on purpose.",
        table_query(
            "SELECT user, service, toFloat64(sum(cost_usd)) AS usd, count() AS call_count, "
            f"usd / call_count AS usd_per_call FROM calls WHERE {where('time')} "
            "GROUP BY user, service ORDER BY usd DESC LIMIT 20"
        ),
        width=8,
    )).with_panel(grid(
        "Top routes by spend", "Spend, calls and share of the selection's spend per service and route.",
        table_query(
            "SELECT service, route, toFloat64(sum(cost_usd)) AS usd, sum(calls) AS call_count, "
            f"usd / sum(usd) OVER () AS share FROM {ROLLUP} WHERE {where('minute')} "
            "GROUP BY service, route ORDER BY usd DESC LIMIT 20"
        ),
        width=8,
    )).with_panel(grid(
        "Top tools by spend",
        "Cost of the LLM calls made inside each tool execution, at any depth below it (raw tables, as "
        "tool_hidden_cost and the summary's tool dimension attribute them).",
        table_query(
            "SELECT tool_service AS service, tool, uniqExact(tool_span_id) AS tool_calls_with_llm, "
            "count() AS llm_calls, toFloat64(sum(cost_usd)) AS usd "
            f"FROM ({calls_in_tools('c.cost_usd AS cost_usd')}) "
            "GROUP BY service, tool ORDER BY usd DESC LIMIT 20"
        ),
        width=8,
    ))  # fmt: skip
    board = _quality(board)
    return board.with_variable(
        dash.TextBoxVariable("daily_budget_usd").label("Daily budget (USD)").default_value("100")
    )


EVALUATIONS = "evaluations_1m"


def _quality(board: dash.Dashboard) -> dash.Dashboard:
    """Quality beside cost: the evaluations apps send (gen_ai.evaluation.result) per route and model,
    with the cost of the same calls and the dollars each passing answer cost (calls x pass rate passed)."""
    return board.with_panel(chart(
        "Judge pass rate by route",
        "Share of the evaluated answers that passed (labelled pass/fail), per service and route: the "
        "quality_drop detector's signal.",
        "percentunit",
        series(
            f"SELECT $__timeInterval(minute) AS time, concat(service, ' ', route, ' ', evaluation) AS scope, "
            f"sum(passes) / nullIf(sum(judged), 0) AS pass_rate FROM {EVALUATIONS} "
            f"WHERE {where('minute')} GROUP BY time, scope HAVING sum(judged) > 0 ORDER BY time"
        ),
        width=24,
    )).with_panel(grid(
        "Cost per passing answer by route and model",
        "Cost, pass rate and mean score of each route and model's evaluated answers, and the dollars per "
        "passing answer (cost / (calls x pass rate)): whether a cheaper model really is cheaper.",
        table_query(
            "SELECT c.service AS service, c.route AS route, c.model AS model, e.evaluation AS evaluation, "
            "c.usd AS usd, c.call_count AS call_count, e.judged AS judged, "
            "e.passes / nullIf(e.judged, 0) AS pass_rate, e.score_sum / nullIf(e.scored, 0) AS mean_score, "
            "c.usd / nullIf(c.call_count * pass_rate, 0) AS usd_per_passing_answer "
            "FROM (SELECT service, route, model, toFloat64(sum(cost_usd)) AS usd, sum(calls) AS call_count "
            f"      FROM {ROLLUP} WHERE {where('minute')} GROUP BY service, route, model) AS c "
            "INNER JOIN (SELECT service, route, model, evaluation, sum(judged) AS judged, "
            "      sum(passes) AS passes, sum(scored) AS scored, sum(score_sum) AS score_sum "
            f"      FROM {EVALUATIONS} WHERE {where('minute')} "
            "      GROUP BY service, route, model, evaluation) AS e "
            "ON c.service = e.service AND c.route = e.route AND c.model = e.model "
            "ORDER BY usd DESC LIMIT 20"
        ),
        width=24,
    ))  # fmt: skip


def tokens() -> dash.Dashboard:
    board = base(
        "tokenpulse-tokens", "tokenpulse / Tokens & cache", "Tokens by kind and how well prompts cache."
    )
    return board.with_panel(chart(
        "Tokens by kind",
        "Tokens per minute. Input is split into uncached, cache read and cache write; output into visible "
        "output and reasoning (the stored input/output include them).",
        "short",
        series(
            "SELECT $__timeInterval(minute) AS time, "
            + ", ".join(f"{per_minute_rate(e)} AS {name}" for name, e in (
                ("input_uncached",
                 "(toInt64(sum(input_tokens)) - sum(cache_read_tokens) - sum(cache_write_tokens))"),
                ("cache_read", "sum(cache_read_tokens)"),
                ("cache_write", "sum(cache_write_tokens)"),
                ("output_visible", "(toInt64(sum(output_tokens)) - sum(reasoning_tokens))"),
                ("reasoning", "sum(reasoning_tokens)"),
            ))
            + f" FROM {ROLLUP} WHERE {where('minute')} GROUP BY time ORDER BY time"
        ),
        stacked=True, width=24,
    )).with_panel(chart(
        "Cache hit ratio by route",
        "Cache reads / cacheable tokens: reads + writes where the provider reports writes (Anthropic), "
        "input where it reports reads only (OpenAI, Gemini), decided per call, never per window. "
        "cache_hit_collapse pages when a route's ratio falls clearly below its own usual level.",
        "percentunit",
        series(
            f"SELECT $__timeInterval(minute) AS time, service, route, {HIT_RATIO} AS hit_ratio FROM {ROLLUP} "
            f"WHERE {where('minute')} GROUP BY time, service, route "
            "HAVING sum(cache_read_tokens) + sum(cache_write_tokens) > 0 ORDER BY time"
        ),
        below_is_bad=True,
    )).with_panel(chart(
        "Calls with no prompt caching",
        "Share of calls with neither cache reads nor writes, by route (cache_not_applied).",
        "percentunit",
        series(
            "SELECT $__timeInterval(minute) AS time, service, route, sum(uncached_calls) / sum(calls) AS "
            "share "
            f"FROM {ROLLUP} WHERE {where('minute')} GROUP BY time, service, route ORDER BY time"
        ),
        lines=(Line(cache_not_applied.Settings().critical_share, "red"),),
    )).with_panel(chart(
        "Input tokens per call (prompt growth)", "Prompt tokens per call by route, cache reads and writes "
        "included.",
        "short",
        series(
            "SELECT $__timeInterval(minute) AS time, service, route, sum(input_tokens) / sum(calls) AS "
            "input_per_call "
            f"FROM {ROLLUP} WHERE {where('minute')} GROUP BY time, service, route ORDER BY time"
        ),
    )).with_panel(chart(
        "Reasoning tokens per call by model", "Reasoning tokens per call, models that reason only.", "short",
        series(
            "SELECT $__timeInterval(minute) AS time, model, sum(reasoning_tokens) / sum(calls) AS "
            "reasoning_per_call "
            f"FROM {ROLLUP} WHERE {where('minute')} GROUP BY time, model HAVING sum(reasoning_tokens) > 0 "
            "ORDER BY time"
        ),
    ))  # fmt: skip


def _quantiles(column: str) -> Query:
    picks = ", ".join(f"q[{quantile_at(q)}] AS p{q[2:].ljust(2, '0')}" for q in ("0.5", "0.95", "0.99"))
    return series(
        f"SELECT time, {picks} FROM (SELECT $__timeInterval(minute) AS time, {MERGED}({column}) AS q "
        f"FROM {ROLLUP} WHERE {where('minute')} GROUP BY time) ORDER BY time"
    )


def _p99_by(column: str, dimension: str) -> Query:
    return series(
        f"SELECT $__timeInterval(minute) AS time, {dimension}, "
        f"{MERGED}({column})[{quantile_at('0.99')}] AS p99 FROM {ROLLUP} WHERE {where('minute')} "
        f"GROUP BY time, {dimension} HAVING sum(calls) > 0 ORDER BY time"
    )


LATENCY_BUCKETS_MS = (250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000)


def latency() -> dash.Dashboard:
    board = base(
        "tokenpulse-latency", "tokenpulse / Latency", "Latency and time to first token, errors, timeouts."
    )
    merged = "Percentiles merged from the rollup's t-digest states per interval (never averaged percentiles)."
    for column, name in (("latency_ms", "Latency"), ("ttft_ms", "TTFT")):
        board = board.with_panel(chart(f"{name} p50 / p95 / p99", merged, "ms", _quantiles(column), width=8))
        for dimension in ("model", "route"):
            board = board.with_panel(
                chart(f"{name} p99 by {dimension}", merged, "ms", _p99_by(column, dimension), width=8)
            )
    edges = [0, *LATENCY_BUCKETS_MS]
    buckets = (
        ", ".join(
            f"countIf(duration_ms >= {low} AND duration_ms < {high}) AS `{high}`"
            for low, high in itertools.pairwise(edges)
        )
        + f", countIf(duration_ms >= {edges[-1]}) AS `+Inf`"
    )
    heat = (
        heatmap.Panel().title("Latency distribution").datasource(DATASOURCE).interval("1m").span(24).height(9)
        .description("Calls per latency bucket (ms, upper bounds), from the raw calls table.")
        .with_target(series(
            f"SELECT $__timeInterval(time) AS time, {buckets} FROM calls WHERE {where('time')} GROUP BY "
            "time ORDER BY time"
        ))
        .calculate(False)  # the buckets come from the query, named by their upper bounds
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE).value("calls"))
    )  # fmt: skip
    return board.with_panel(heat).with_panel(chart(
        "Errors and timeouts", "Failed and timed-out LLM calls per minute.", "short",
        series(
            f"SELECT $__timeInterval(minute) AS time, {per_minute_rate('sum(errors)')} AS errors, "
            f"{per_minute_rate('sum(timeouts)')} AS timeouts FROM {ROLLUP} WHERE {where('minute')} "
            "GROUP BY time ORDER BY time"
        ),
    )).with_panel(chart(
        "Tool execution timeouts", "Timed-out tool executions per minute by tool (raw tool_spans).", "short",
        series(
            f"SELECT $__timeInterval(time) AS time, name AS tool, {per_minute_rate('countIf(is_timeout)')} "
            "AS timeouts "
            f"FROM tool_spans WHERE kind = 'tool' AND {where('time', dimensions=TOOL_DIMENSIONS)} "
            "GROUP BY time, tool ORDER BY time"
        ),
    ))  # fmt: skip


def _fired_thresholds(detector: str) -> Query:
    """The threshold each firing of ``detector`` was held to (relative thresholds move with baselines)."""
    return series(
        "SELECT at AS time, arrayStringConcat(mapValues(scope), ' ') AS alert_scope, threshold AS fired_at "
        f"FROM alert_events WHERE detector = '{detector}' AND status = 'firing' AND $__timeFilter(at) "
        f"AND {ALERT_FILTERS} ORDER BY time",
        ref_id="B",
    )


# Windows the evidence-based detectors' signals are drawn over: a chart needs some window; the detectors
# weigh every minute by its calls instead (README: The evidence model).
DISPLAY_WINDOW = 5


def _windowed(
    signal: str, scope: str, minutes: int, min_calls: int = 1, source: str = ROLLUP, extra: str = ""
) -> Query:
    """``signal`` per ``scope`` over tumbling windows of ``minutes`` of the rollup, where the window has
    at least ``min_calls`` calls (the sample floor of the detectors that have one)."""
    return series(
        f"SELECT {bucket('minute', minutes)} AS time, {scope}, {signal} AS signal FROM {source} "
        f"WHERE {where('minute')}{extra} GROUP BY time, {scope} HAVING sum(calls) >= {min_calls} ORDER BY "
        "time"
    )


ENDED = "addMilliseconds(time, toInt64(duration_ms))"  # tokenpulse.storage.schema.ENDED_AT, of a table alias


def silent_failures() -> dash.Dashboard:
    board = base(
        "tokenpulse-silent-failures", "tokenpulse / Silent failures",
        "Each detector's signal against its thresholds (defaults shown; see your config), and the alert "
        "history.",
    )  # fmt: skip
    scope3 = "service, route, model"
    s1 = cache_hit_collapse.Settings()
    s2 = cache_not_applied.Settings()
    s3 = prompt_growth.Settings()
    s4 = reasoning_blowup.Settings()
    s5 = latency_p99_drift.Settings()
    s6 = ttft_slo.Settings()
    s7 = cost_spike.Settings()
    s8 = routing_escalation.Settings()
    s9 = tool_hidden_cost.Settings()
    s10 = timeout_surge.Settings()
    w = _minutes
    tool_where = f"kind = 'tool' AND {where('time', dimensions=TOOL_DIMENSIONS)}"
    panels = [
        chart(
            "cache_hit_collapse: prompt-cache hit ratio",
            f"Per service, route and model over {DISPLAY_WINDOW}-minute windows. Pages when a scope's "
            "ratio falls clearly below its own usual level (critical under "
            f"{s1.critical_fraction:.0%} of it); the fired thresholds are each alert's.",
            "percentunit",
            series(
                f"SELECT {bucket('minute', DISPLAY_WINDOW)} AS time, {scope3}, {HIT_RATIO} AS hit_ratio FROM "
                f"{ROLLUP} "
                f"WHERE {where('minute')} GROUP BY time, {scope3} "
                "HAVING sum(cache_read_tokens) + sum(cache_write_tokens) > 0 ORDER BY time"
            ),
            _fired_thresholds("cache_hit_collapse"),
            below_is_bad=True,
        ),
        chart(
            "cache_not_applied: share of calls with no caching",
            "Calls with neither cache reads nor writes / calls, per service, route and model, "
            f"{DISPLAY_WINDOW}-minute windows; pages when it rises clearly above the scope's own usual "
            "share, on scopes that cache.",
            "percentunit",
            _windowed("sum(uncached_calls) / sum(calls)", scope3, DISPLAY_WINDOW),
            _fired_thresholds("cache_not_applied"),
            lines=(Line(s2.critical_share, "red"),),
        ),
        chart(
            "prompt_growth: input tokens per call",
            f"Per service and route over {DISPLAY_WINDOW}-minute windows; pages when the route's input per "
            f"call rises clearly past {s3.rises[0]:g}x its own usual level, and at least {s3.floor:.0f} "
            "tokens (points: the threshold of each firing).",
            "short",
            _windowed("sum(input_tokens) / sum(calls)", "service, route", DISPLAY_WINDOW),
            _fired_thresholds("prompt_growth"),
            lines=(Line(s3.floor, "orange"),),
        ),
        chart(
            "reasoning_blowup: largest reasoning of one call",
            f"Most reasoning tokens of a single call per service, route and model (raw calls of at least "
            f"{reasoning_blowup.EXTREME_BUCKETS[0]} reasoning tokens, counted when they ended); one call "
            "past "
            f"{s4.extreme_tokens} is critical. Points: the threshold of each firing (the per-call warning "
            "too).",
            "short",
            series(
                f"SELECT {bucket(ENDED, w(s4.extreme_window))} AS time, {scope3}, max(reasoning_tokens) AS "
                "largest "
                f"FROM calls WHERE {where('time')} AND reasoning_tokens >= "
                f"{reasoning_blowup.EXTREME_BUCKETS[0]} "
                f"GROUP BY time, {scope3} ORDER BY time"
            ),
            _fired_thresholds("reasoning_blowup"),
            lines=(Line(s4.extreme_tokens, "red"),),
        ),
        chart(
            "latency_p99_drift: p99 latency",
            f"Merged t-digest p99 per service, route and model over {DISPLAY_WINDOW}-minute windows; pages "
            f"when more than 1% of calls take longer than {s5.warning_ratio:g}x the usual p99 (and "
            f"{s5.floor_ms:.0f} ms), or the calls got slower as a whole.",
            "ms",
            _windowed(f"{MERGED}(latency_ms)[{quantile_at('0.99')}]", scope3, DISPLAY_WINDOW),
            _fired_thresholds("latency_p99_drift"),
            lines=(Line(s5.floor_ms, "orange"),),
        ),
        chart(
            "ttft_slo: TTFT p99",
            f"Merged t-digest TTFT p99 per service and route over {DISPLAY_WINDOW}-minute windows (streamed "
            f"calls only); pages when more than 1% of first tokens take longer than {s6.warning_ratio:g}x "
            f"the route's usual p99 (and {s6.floor_ms:.0f} ms), or than the route's SLO where one is set.",
            "ms",
            _windowed(f"{MERGED}(ttft_ms)[{quantile_at('0.99')}]", "service, route", DISPLAY_WINDOW),
            _fired_thresholds("ttft_slo"),
            lines=(Line(s6.floor_ms, "orange"),),
        ),
        chart(
            "cost_spike: spend rate",
            f"Dollars per hour per service over {DISPLAY_WINDOW}-minute windows; pages when the cost "
            f"per call of a service, route or model rises clearly past {s7.rises[0]:g}x its own usual,"
            f" or a user's spend past {s7.user_rises[0]:g}x theirs, for {w(s7.min_duration)} minutes"
            f" and at least {s7.min_usd_per_hour} $/h (routes, models and users too: see the points).",
            "currencyUSD",
            _windowed(
                f"toFloat64(sum(cost_usd)) * 3600 / {window(DISPLAY_WINDOW)}", "service", DISPLAY_WINDOW
            ),
            _fired_thresholds("cost_spike"),
            lines=(Line(s7.min_usd_per_hour, "orange"),),
        ),
        chart(
            "routing_escalation: share of router decisions escalated",
            f"Escalated calls / routed calls per service and router over {DISPLAY_WINDOW}-minute windows; "
            "pages when a router escalates clearly more than it usually does, critical at "
            f"{s8.critical_share}.",
            "percentunit",
            _windowed(
                "sum(escalated_calls) / sum(calls)",
                "service, router",
                DISPLAY_WINDOW,
                extra=" AND router != ''",
            ),
            _fired_thresholds("routing_escalation"),
            lines=(Line(s8.critical_share, "red"),),
        ),
        chart(
            "tool_hidden_cost: LLM cost per tool call",
            "Cost of the LLM calls inside a tool execution (at any depth below it) / tool executions, per "
            f"service and tool over {DISPLAY_WINDOW}-minute windows; pages when it rises clearly past "
            f"{s9.rises[0]:g}x the tool's own usual cost per call, and at least ${s9.floor} per call.",
            "currencyUSD",
            series(
                "SELECT time, service, tool, sum(usd) / sum(executions) AS usd_per_tool_call FROM ("
                f" SELECT {bucket(ENDED, DISPLAY_WINDOW)} AS time, service, name AS tool, count() AS "
                "executions,"
                f" toFloat64(0) AS usd FROM tool_spans WHERE {tool_where} GROUP BY time, service, tool"
                " UNION ALL"
                f" SELECT {bucket('tool_ended', DISPLAY_WINDOW)} AS time, tool_service AS service, tool,"
                " toUInt64(0) AS executions, toFloat64(sum(cost_usd)) AS usd"
                f" FROM ({calls_in_tools('c.cost_usd AS cost_usd')}) GROUP BY time, service, tool)"
                " GROUP BY time, service, tool HAVING sum(executions) > 0 ORDER BY time"
            ),
            _fired_thresholds("tool_hidden_cost"),
            lines=(Line(s9.floor, "orange"),),
        ),
        chart(
            "timeout_surge: share of calls and tool executions timed out",
            "Timed-out LLM calls per service and route (rollup) and tool executions per service and tool "
            "(raw "
            f"tool_spans) over {DISPLAY_WINDOW}-minute windows; pages when a scope's share rises clearly "
            f"above its own usual share, critical at {s10.critical_share}.",
            "percentunit",
            _windowed("sum(timeouts) / sum(calls)", "service, route", DISPLAY_WINDOW),
            _fired_thresholds("timeout_surge"),
            series(
                f"SELECT {bucket(ENDED, DISPLAY_WINDOW)} AS time, service, name AS tool, "
                f"countIf(is_timeout) / count() AS tool_timeout_share FROM tool_spans WHERE {tool_where} "
                "GROUP BY time, service, tool ORDER BY time",
                ref_id="C",
            ),
            lines=(Line(s10.critical_share, "red"),),
        ),
    ]
    for panel in panels:
        board = board.with_panel(panel)
    return board.with_panel(grid(
        "Firing now", "Alerts whose latest transition is a firing, by detector and severity.",
        table_query(
            "SELECT detector, severity, count() AS alerts FROM (SELECT fingerprint, argMax(status, at) AS "
            "last_status, "
            "argMax(detector, at) AS detector, argMax(severity, at) AS severity FROM alert_events GROUP BY "
            "fingerprint) "
            "WHERE last_status = 'firing' GROUP BY detector, severity ORDER BY alerts DESC"
        ),
        width=6,
    )).with_panel(grid(
        "Alert history", "Every alert transition in the range, newest first, with its runbook.",
        table_query(
            "SELECT at, status, severity, detector, "
            "arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), mapKeys(scope), mapValues(scope)), ', "
            "') AS alert_scope, "
            "value, threshold, baseline, summary, runbook_url FROM alert_events WHERE $__timeFilter(at) "
            f"AND {ALERT_FILTERS} ORDER BY at DESC "
            "LIMIT 1000"
        ),
        width=18, links="runbook_url",
    ))  # fmt: skip


DASHBOARDS = {
    "spend": spend,
    "tokens": tokens,
    "latency": latency,
    "silent-failures": silent_failures,
}
