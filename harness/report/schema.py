"""The decision record's JSON Schema (``reports/decision.schema.json``) and the ``decision.json``
section of ``reports/README.md``, both generated from ``harness.report.model``, so the files and
the model cannot drift apart (a test compares them).

``python -m harness.report.schema [--reports DIR] [--check]`` writes both (``--check``: only
says whether they are current, exit 1 when not)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_NAME", "BEGIN", "END", "json_schema", "schema_text", "readme_section", "with_section", "main"]

SCHEMA_NAME = "decision.schema.json"
BEGIN = "<!-- decision.json: generated from harness/report/model.py by `python -m harness.report.schema` -->"
END = "<!-- end of the generated decision.json section -->"

_INTRO = """## decision.json

The decision record, schema version {version}: the only file CI, `summary.md` and the dashboard
read for verdicts and figures. Its JSON Schema is [`decision.schema.json`](decision.schema.json).
Every record is built by `harness.report.build_decision` and read by `harness.report.load_decision`,
which validates it against the model and names the first bad field.

Schema 1 records (written before `power`, `findings` and the typed model) are still read: fields
schema 2 does not know are dropped, a missing `run_id` and `created_unix` are taken from the run
folder's name and the file's time, missing `groups` are empty, missing `thresholds` are null, and
`power` is derived from the metrics. Text that came from a target (captions, model names, error
messages, reasons quoting them) is data: renderings escape it.
"""


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``decision.json``."""
    from harness.report.model import DecisionRecord

    schema = DecisionRecord.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "decision.json",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def _type(p: dict[str, Any]) -> str:
    """A property's type in a few words: ``MetricRecord``, ``[str]``, ``{baseline|canary: TargetFigures}``."""
    if "$ref" in p:
        return p["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in p:
        return " or ".join(_type(x) for x in p["anyOf"])
    if "enum" in p:
        return " or ".join(json.dumps(x) for x in p["enum"])
    if "const" in p:
        return json.dumps(p["const"])
    t = p.get("type")
    if t == "array":
        return f"[{_type(p.get('items', {}))}]"
    if t == "object":
        value = p.get("additionalProperties")
        value = _type(value) if isinstance(value, dict) else "any"
        keys = p.get("propertyNames", {}).get("enum")
        return "{" + ("|".join(keys) if keys else "str") + f": {value}" + "}"
    return {"string": "str", "integer": "int", "number": "number", "boolean": "bool", "null": "null", None: "any"}.get(
        t, str(t)
    )


def _refs(p: Any) -> list[str]:
    """Models referred to by a property, in order."""
    if isinstance(p, dict):
        own = [p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else []
        return own + [r for k, v in p.items() if k != "$ref" for r in _refs(v)]
    if isinstance(p, list):
        return [r for v in p for r in _refs(v)]
    return []


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _table(name: str, m: dict[str, Any], where: str) -> list[str]:
    required = set(m.get("required", []))
    lines = [f"### `{name}`{where}", "", m.get("description", "").strip().replace("``", "`"), ""]
    if m.get("additionalProperties") is True:
        lines += ["Other figures may be added beside these.", ""]
    lines += ["| field | type | required | what |", "| --- | --- | --- | --- |"]
    for field, p in m.get("properties", {}).items():
        lines.append(
            f"| `{field}` | {_cell(_type(p))} | {'yes' if field in required else ''} | "
            f"{_cell(p.get('description', ''))} |"
        )
    return lines + [""]


def readme_section() -> str:
    """The ``decision.json`` section of ``reports/README.md``, between ``BEGIN`` and ``END``."""
    from harness.report.model import SCHEMA_VERSION

    schema = json_schema()
    defs = schema.get("$defs", {})
    order, where = ["DecisionRecord"], {"DecisionRecord": " (the file)"}
    i = 0
    while i < len(order):
        m = schema if order[i] == "DecisionRecord" else defs[order[i]]
        for field, p in m.get("properties", {}).items():
            for ref in _refs(p):
                if ref not in where:
                    order.append(ref)
                    parent = "" if order[i] == "DecisionRecord" else f"{order[i]}."
                    where[ref] = f" (`{parent}{field}`)"
        i += 1
    lines = [BEGIN, _INTRO.format(version=SCHEMA_VERSION)]
    for name in order:
        lines += _table(name, schema if name == "DecisionRecord" else defs[name], where[name])
    return "\n".join(lines) + END + "\n"


def with_section(readme: str) -> str:
    """``readme`` with its generated section replaced (appended when it has none)."""
    if BEGIN in readme and END in readme:
        head, rest = readme.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + readme_section() + (("\n" + tail) if tail else "")
    return readme.rstrip("\n") + "\n\n" + readme_section()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.report.schema", description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=Path, default=Path("reports"), help="folder of README.md (default reports/)")
    p.add_argument("--check", action="store_true", help="only check that the files are current")
    args = p.parse_args(argv)
    readme = args.reports / "README.md"
    want = {
        args.reports / SCHEMA_NAME: schema_text(),
        readme: with_section(readme.read_text(encoding="utf-8") if readme.exists() else "# reports/\n"),
    }
    stale = [path for path, text in want.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path}: out of date; run python -m harness.report.schema", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(want[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
