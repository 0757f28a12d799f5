"""What Grafana and the ClickHouse plugin (grafana-clickhouse-datasource v4) do to a panel's SQL before
ClickHouse sees it, for the tests and the benchmark that run the dashboards' queries.

In order, as the plugin does:
1. frontend, ``Datasource.applyConditionalAll``: ``$__conditionalAll(condition, $var)`` becomes ``1=1``
   when the variable's current value is All (``$__all``) or empty, else ``condition``;
2. frontend, ``templateSrv.replace`` with the plugin's format function: ``${var:singlequote}`` is the
   values quoted and comma-separated, ``$var`` / ``${var}`` a multi-value joined as ``'a','b'``;
   names Grafana does not know (``$__timeFilter``, ``$__interval_s``) are left alone;
3. backend, ``pkg/macros/macros.go`` (via sqlds): ``$__timeFilter(c)`` is ``c >= toDateTime(from) AND
   c <= toDateTime(to)`` in Unix seconds, ``$__fromTime`` / ``$__toTime`` ``toDateTime(s)``,
   ``$__timeInterval(c)`` ``toStartOfInterval(toDateTime(c), INTERVAL n second)`` and ``$__interval_s``
   ``n``, with n the query interval in whole seconds (at least 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime

ALL = "$__all"
Variables = Mapping[str, str | list[str]]

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}")
_MACRO = re.compile(r"\$__(\w+)")


def macro_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose ``(`` is at ``open_paren``, and the index just
    past its ``)`` (commas inside nested parentheses belong to their argument)."""
    depth, args, start = 0, [], open_paren + 1
    for index in range(open_paren, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:index])
                return args, index + 1
        elif char == "," and depth == 1:
            args.append(text[start:index])
            start = index + 1
    raise ValueError(f"unbalanced parentheses after {text[:open_paren]!r}")


def apply_conditional_all(sql: str, variables: Variables) -> str:
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = macro_args(sql, at + len(macro) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments: {sql[at:end]}")
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        value = variables.get(name.group(0)) if name else None
        selected = value if isinstance(value, str) else ",".join(value or [])
        phrase = "1=1" if name and selected in ("", ALL) else args[0]
        sql = sql[:at] + phrase + sql[end:]
    return sql


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def interpolate(sql: str, variables: Variables) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            return match.group(0)
        value = variables[name]
        values = [value] if isinstance(value, str) else list(value)
        if match.group(3) == "singlequote":
            return ",".join(_quote(v) for v in values)
        if match.group(3):
            raise ValueError(f"variable format {match.group(3)!r} not emulated")
        return value if isinstance(value, str) else ",".join(_quote(v) for v in values)

    return _VARIABLE.sub(replace, sql)


def apply_macros(sql: str, start: datetime, end: datetime, interval_seconds: float) -> str:
    seconds = max(int(interval_seconds), 1)
    frm, to = int(start.timestamp()), int(end.timestamp())
    functions: dict[str, Callable[[list[str]], str]] = {
        "timeFilter": lambda a: f"{a[0]} >= toDateTime({frm}) AND {a[0]} <= toDateTime({to})",
        "dateFilter": lambda a: f"{a[0]} >= toDate('{_day(start)}') AND {a[0]} <= toDate('{_day(end)}')",
        "timeInterval": lambda a: f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {seconds} second)",
        "fromTime": lambda a: f"toDateTime({frm})",
        "toTime": lambda a: f"toDateTime({to})",
        "interval_s": lambda a: str(seconds),
    }
    out, position = [], 0
    while match := _MACRO.search(sql, position):
        name = match.group(1)
        if name not in functions:
            raise ValueError(f"macro $__{name} is not one of the plugin's")
        args: list[str] = []
        end_index = match.end()
        if end_index < len(sql) and sql[end_index] == "(":
            args, end_index = macro_args(sql, end_index)
            args = [a.strip() for a in args]
        out.append(sql[position : match.start()] + functions[name](args))
        position = end_index
    return "".join(out) + sql[position:]


def _day(moment: datetime) -> str:
    return date.isoformat(moment.date())


def expand(sql: str, start: datetime, end: datetime, interval_seconds: float, variables: Variables) -> str:
    """``sql`` as ClickHouse receives it from a panel with this time range, interval and variables."""
    expanded = apply_macros(
        interpolate(apply_conditional_all(sql, variables), variables), start, end, interval_seconds
    )
    if "$" in expanded:
        raise ValueError(f"unexpanded variable or macro left in: {expanded}")
    return expanded
