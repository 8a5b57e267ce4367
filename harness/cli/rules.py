"""``harness rules``: Prometheus recording and alerting rules (Sloth names) for an SLO spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("rules", help="Prometheus recording and alerting rules for an SLO spec")
    p.add_argument("--spec", required=True, type=Path, help="SLO spec (native YAML or OpenSLO v1)")
    p.add_argument("--out", required=True, type=Path, help="rules file to write (e.g. rules.yml); - for stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import out_file
    from harness.slo import generate_rules, load_spec

    if str(args.out) != "-":
        out_file(args.out)
    spec = load_spec(args.spec)
    rules = generate_rules(spec)
    for name, why in rules.skipped:
        print(f"harness rules: skipped SLO {name!r}: {why}", file=sys.stderr)
    text = rules.to_yaml()
    if str(args.out) == "-":
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    n = sum(len(g["rules"]) for g in rules.groups)
    print(f"wrote {args.out}: {n} rules in {len(rules.groups)} groups for {len(spec.slos) - len(rules.skipped)} SLOs")
    return 0
