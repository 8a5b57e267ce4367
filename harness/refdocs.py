"""Reference tables generated from the code, so the docs and the code cannot drift apart (a test
compares them): the command line (``docs/reference/cli.md``, from the parser), the exit codes (the
README's table, from ``harness.errors``), a record's fields (``docs/reference/records.md``, from
``RequestRecord``), the judge's metrics (``docs/reference/gate.md``, from ``DEFAULT_METRICS``) and
the SLI kinds (``docs/reference/slo.md``, from the kinds' registry).

A generated block sits between ``<!-- generated: NAME ... -->`` and ``<!-- end generated: NAME -->``;
the prose around it is written by hand. ``python -m harness.refdocs [--root DIR] [--check]`` writes
every block (``--check``: only says which are out of date, exit 1 when one is)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

__all__ = ["BLOCKS", "cli_page", "exit_codes", "record_fields", "judge_metrics", "sli_kinds", "render", "main"]

_COMMAND = "python -m harness.refdocs"


def _cell(text: object) -> str:
    """A markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ command line
def _default(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._CountAction)):
        return ""
    value = action.default
    if value is None or value == [] or value is argparse.SUPPRESS:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return f"`{value}`"


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and not isinstance(action.choices, dict):
        return " | ".join(str(c) for c in action.choices)
    metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"{metavar} ..." if action.nargs in ("*", "+", argparse.REMAINDER) else str(metavar)


def _options(parser: argparse.ArgumentParser) -> str:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}`"
        value = _value(action)
        what = formatter._expand_help(action) if action.help else ""
        if action.required and action.option_strings:
            what = f"required; {what}" if what else "required"
        rows.append((name, f"`{value}`" if value else "", _default(action), what))
    return _table(("option", "value", "default", "what"), rows) if rows else "No options."


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return out


def _command(lines: list[str], path: str, parser: argparse.ArgumentParser, summary: str) -> None:
    lines += ["", f"## `{path}`", ""]
    if summary:
        text = _cell(summary[0].upper() + summary[1:])
        lines += [text if text.endswith(".") else text + ".", ""]
    lines.append(_options(parser))
    for name, sub, help_text in _subcommands(parser):
        _command(lines, f"{path} {name}", sub, help_text)


def cli_page() -> str:
    """``docs/reference/cli.md``: every command, its options, their values and defaults, as the
    parser declares them (the same text as ``harness COMMAND --help``)."""
    import importlib

    from harness.cli import NESTED, build_parser

    parser = build_parser()
    lines = [
        "# Command line",
        "",
        f"<!-- generated: cli ({_COMMAND}) -->",
        "Every command and option, generated from the parser (`harness COMMAND --help` says the same).",
        "Exit codes: [README](../../README.md#exit-codes-every-command). Numbers, durations and paths are",
        "checked before any work starts (64).",
        "",
        "## `harness`",
        "",
        _options(parser),
    ]
    for name, sub, help_text in _subcommands(parser):
        _command(lines, f"harness {name}", sub, help_text)
        for (parent, _child), module_name in NESTED.items():  # parsers of their own (harness.cli.main)
            if parent == name:
                module = importlib.import_module(module_name)
                nested = module.build_parser()
                _command(lines, module.PROG, nested, nested.description or "")
    lines += ["", "<!-- end generated: cli -->", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- exit codes
def exit_codes() -> str:
    from harness.errors import EXIT_MEANINGS

    return _table(("code", "meaning"), [(code, meaning) for code, meaning in EXIT_MEANINGS.items()])


# ---------------------------------------------------------------------------------- record fields
def record_fields() -> str:
    from dataclasses import fields

    from harness.records import RequestRecord, arrow_schema

    types = {f.name: str(f.type) for f in arrow_schema()}
    rows = []
    for f in fields(RequestRecord):
        meta = f.metadata
        bound = f"at most {meta['largest']:,}" if meta.get("largest") is not None else ""
        rows.append(
            (f"`{f.name}`", meta["kind"], types[f.name], "yes" if meta["required"] else "", bound, meta["what"])
        )
    return _table(("field", "kind", "arrow type", "required", "bound", "what"), rows)


# ---------------------------------------------------------------------------------- judge metrics
_TESTS = {
    "mann_whitney": "Mann-Whitney U, Hodges-Lehmann shift",
    "tail": "Fisher's exact on requests beyond the baseline's quantile; quantile difference",
    "fisher": "Fisher's exact",
    "sign": "exact sign test",
    "wilcoxon": "Wilcoxon signed-rank",
    "share": "share, informational (never scored)",
    "limit": "limit",
}


def _amount(spec, value: float) -> str:
    """A tolerance or detectable effect in the metric's own terms."""
    if spec.unit == "s":
        return f"{value * 1000:g} ms"
    if spec.test in ("fisher", "tail"):
        points = value * 100
        return f"{points:g} point" + ("" if points <= 1 else "s")
    if spec.test == "sign":
        return f"{value * 100:g}% of images"
    unit = spec.unit[:-1] if spec.unit.endswith("s") and value == 1 else spec.unit
    return f"{value:g}" + (f" {unit}" if unit else "")


def _tolerance(spec) -> str:
    if spec.informational:
        return ""
    if spec.test == "limit":
        return (
            "over the lowest page factor while the baseline is not" if spec.group == "slo" else f"over {spec.limit:g}"
        )
    parts = [f"{spec.tolerance * 100:g}% of the baseline's figure"] if spec.tolerance else []
    if spec.tolerance_abs:
        parts.append(("at least " if parts else "") + _amount(spec, spec.tolerance_abs))
    text = ", ".join(parts)
    if spec.must_detect is not None:
        shown = _amount(spec, spec.must_detect)
        effect = f"a regression on {shown}" if spec.test == "sign" else f"+{shown}"
        text += ("; " if text else "") + f"must detect {effect}"
    return text


def judge_metrics() -> str:
    from harness.canary.metric import DEFAULT_GROUP_WEIGHTS, DEFAULT_METRICS, burn_metric, drift_metric

    harmful = {"increase": "higher", "decrease": "lower", "either": "either"}
    rows = []
    for spec in (*DEFAULT_METRICS, drift_metric(), burn_metric("NAME", 14.4)):
        informational = spec.informational or spec.test == "limit"
        rows.append(
            (
                f"`{spec.name}`",
                f"{spec.group} ({DEFAULT_GROUP_WEIGHTS.get(spec.group, 0):g})",
                _TESTS[spec.test],
                "" if informational else harmful.get(spec.direction, spec.direction),
                _tolerance(spec),
                "yes" if spec.critical else "",
                spec.description,
            )
        )
    return _table(("metric", "group (weight)", "test", "harmful", "tolerance", "critical", "what"), rows)


# -------------------------------------------------------------------------------------- SLI kinds
def sli_kinds() -> str:
    from harness.slo.kinds import registry

    rows = []
    for name, kind in sorted(registry().items()):
        own = [f for f in kind.fields.model_fields if f != "sli"]
        title = f"`{name}`" + (f" ({', '.join(f'`{f}`' for f in own)})" if own else "")
        rows.append((title, kind.events_doc, kind.good_doc))
    return _table(("SLI kind", "events", "good"), rows)


# ------------------------------------------------------------------------------------------ blocks
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"exit-codes": exit_codes},
    "docs/reference/records.md": {"record-fields": record_fields},
    "docs/reference/gate.md": {"judge-metrics": judge_metrics},
    "docs/reference/slo.md": {"sli-kinds": sli_kinds},
}
PAGES: dict[str, Callable[[], str]] = {"docs/reference/cli.md": cli_page}


def _block(text: str, name: str, body: str, page: str) -> str:
    pattern = re.compile(
        rf"(<!-- generated: {re.escape(name)} [^>]*-->\n).*?(\n<!-- end generated: {re.escape(name)} -->)", re.S
    )
    if not pattern.search(text):
        raise ValueError(f"{page}: no generated block {name!r} (markers <!-- generated: {name} ... -->)")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def render(root: Path) -> dict[Path, str]:
    """Every generated file's text as it should be (pages whole, blocks within their page)."""
    out = {root / page: make() for page, make in PAGES.items()}
    for page, blocks in BLOCKS.items():
        text = (root / page).read_text(encoding="utf-8")
        for name, make in blocks.items():
            text = _block(text, name, make(), page)
        out[root / page] = text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout")
    parser.add_argument("--check", action="store_true", help="only say which files are out of date (exit 1)")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render(args.root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path.relative_to(args.root)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
