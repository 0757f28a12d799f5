"""The dialect tables of ``docs/normalization.md``, rendered from the declarations.

    python -m tokenpulse.collector.dialect_docs [--check] [docs/normalization.md]

rewrites the part of the document between the two ``GENERATED`` markers (``--check``: exits 1 when it is
out of date instead). ``tests/collector/test_normalization_doc.py`` fails while it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tokenpulse.collector.dialects import (
    OWN_FIELDS,
    SHARED_FIELDS,
    ByKey,
    ByName,
    ByValue,
    Dialect,
    Markers,
    Rank,
    Verdict,
)
from tokenpulse.collector.normalize import ENGINE, Engine

BEGIN = "<!-- BEGIN GENERATED from tokenpulse/collector/dialects by tokenpulse.collector.dialect_docs -->"
END = "<!-- END GENERATED -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "normalization.md"


def _code(items: object) -> str:
    return ", ".join(f"`{item}`" for item in items)  # type: ignore[attr-defined]


def _markers(m: Markers) -> str:
    parts = []
    if m.string_keys:
        parts.append(f"{_code(m.string_keys)} holds a string")
    if m.name_prefix_and_key:
        parts += [f"span name starts with `{p}` and `{k}` present" for p, k in m.name_prefix_and_key]
    if m.keys:
        parts.append(f"any of {_code(m.keys)} present")
    if m.scope_prefixes:
        parts.append(f"scope name starts with {_code(m.scope_prefixes)}")
    if m.scope_contains:
        parts.append(f"scope name contains {_code(m.scope_contains)}")
    if m.attribute_values:
        parts += [f'`{k} = "{v}"` on the span or its resource' for k, v in m.attribute_values]
    return "; or ".join(parts)


def _verdict(v: Verdict) -> str:
    if v.kind == "call":
        return f"call (`{v.operation}`)" if v.operation else "call"
    return {"tool": "tool", "agent": "agent", "skip": "ignored"}[v.kind]


def _rule(rule: ByValue | ByKey | ByName) -> tuple[str, str]:
    """(what the rule reads, what it says with each verdict's rank)."""
    if isinstance(rule, ByValue):
        source = f"`{rule.key}`" + (" (else the span name)" if rule.or_span_name else "")
        source += _SPELLED[rule.normalize] + (": decisive, its own spans only" if rule.decisive else "")
        groups: dict[str, list[str]] = {}
        for value, verdict in rule.values.items():
            rank = Rank.OWN if rule.decisive else verdict.rank
            groups.setdefault(f"{_verdict(verdict)} [{rank.name}]", []).append(value)
        said = "; ".join(f"{_code(values)} → {what}" for what, values in groups.items())
        if rule.other is not None:
            rank = Rank.OWN if rule.decisive else rule.other.rank
            said += f"; any other value → {_verdict(rule.other)} [{rank.name}]"
        elif rule.decisive:
            said += "; any other value: the rules below decide"
        aliases = [f"`{a}` = `{c}`" for a, c in rule.aliases.items() if a != c]
        if aliases:
            said += " (" + ", ".join(aliases) + ")"
        return source, said
    where = " (its own spans only)" if rule.claimed_only else ""
    said = f"{_verdict(rule.verdict)} [{rule.verdict.rank.name}]"
    if isinstance(rule, ByKey):
        return f"any of {_code(rule.keys)} present{where}", said
    named = [f"span name `{n}`" for n in rule.names] + [f"span name starts with `{p}`" for p in rule.prefixes]
    return " or ".join(named) + where, said


_SPELLED = {
    "exact": "",
    "lower": ", lowercased",
    "upper": ", uppercased",
    "strip-lower": ", trimmed and lowercased",
}


def _fixups(d: Dialect) -> list[str]:
    found = []
    if not d.reads_operation_name:
        found.append("`gen_ai.operation.name` is not read on its spans")
    if d.provider_has_suffix:
        found.append("the provider carries a suffix (`openai.chat`): ever shorter dot-prefixes are looked up")
    if d.input_excludes_cache_for:
        found.append(
            f"input excludes cache reads/writes for providers {_code(sorted(d.input_excludes_cache_for))}"
        )
    if d.output_excludes_reasoning_for:
        providers = _code(sorted(d.output_excludes_reasoning_for))
        found.append(f"output excludes reasoning for providers {providers} unless a reported total decides")
    if d.usage_reader is not None:
        found.append(f"{d.usage_reader.name}: `{d.usage_reader.key}` is the only usage source when present")
    if d.metadata_reader is not None:
        found.append(
            f"{d.metadata_reader.name}: `{d.metadata_reader.key}` fills what the key tables leave empty"
        )
    if d.implied_call is not None:
        found.append(
            f"{d.implied_call.name}: an ERROR span of scope `{d.implied_call.scope_prefix}<provider>` "
            "named `<operation> <model>` is that call"
        )
    if d.first_token_events:
        events = [f"`{e}`" + (f" (its `{a}`, ms)" if a else "") for e, a in d.first_token_events.items()]
        found.append("first-token events: " + ", ".join(events))
    return found


def render(engine: Engine = ENGINE) -> str:
    """The generated block of docs/normalization.md (without its markers)."""
    out = ["### Dialect detection", "", "First match wins, in this order.", ""]
    out += ["| dialect | claimed when |", "| --- | --- |"]
    for d in engine.dialects:
        out.append(
            f"| `{d.name}` | {'every span no other dialect claims' if d.fallback else _markers(d.markers)} |"
        )
    out += ["", "### Classification rules", ""]
    out += [
        "Every rule below is read on every span (except where marked); of the verdicts that match, the",
        "lowest rank wins: " + " < ".join(f"`{r.name}`" for r in Rank) + ". `USAGE` is the engine's",
        "own rule: a model key and a usage key of the span's dialect make a call. Nothing matching: ignored.",
        "A call's operation is its `gen_ai.operation.name` (spelled canonically) when it has one, else the",
        "rule's.",
        "",
        "| dialect | reads | verdicts [rank] |",
        "| --- | --- | --- |",
    ]
    for d in engine.dialects:
        for rule in d.rules:
            source, said = _rule(rule)
            out.append(f"| `{d.name}` | {source} | {said} |")
    out += ["", "### Attribute → canonical field", ""]
    out += [
        "Within a cell keys are in precedence order: the first key present wins, the others are ignored",
        "(key families that mean the same thing are never summed). Token and provider fields are read in",
        f"the span's own dialect first, then in the fallback dialect's (`{engine.fallback.name}`) keys; the",
        "other fields in every dialect's keys: the fallback's first, then the span's own dialect's, then",
        "the rest in detection order.",
        "",
        "| field | " + " | ".join(f"`{d.name}`" for d in engine.dialects) + " |",
        "| --- |" + " --- |" * len(engine.dialects),
    ]
    for name in OWN_FIELDS + SHARED_FIELDS:
        cells = [_code(getattr(d.keys, name)) for d in engine.dialects]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "### Fix-ups", "", "What a key table cannot say, named per dialect:", ""]
    for d in engine.dialects:
        for fixup in _fixups(d):
            out.append(f"* `{d.name}`: {fixup}")
    return "\n".join(out) + "\n"


def rewrite(text: str, engine: Engine = ENGINE) -> str:
    """``text`` with its generated block replaced by the current rendering."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n\n" + render(engine) + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, verify) the generated block of docs/normalization.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is out of date")
    parser.add_argument("path", nargs="?", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = args.path.read_text()
    updated = rewrite(text)
    if args.check:
        if updated != text:
            print(
                f"{args.path} is out of date: run python -m tokenpulse.collector.dialect_docs",
                file=sys.stderr,
            )
            return 1
        return 0
    args.path.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
