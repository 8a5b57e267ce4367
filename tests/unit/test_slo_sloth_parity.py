"""Sloth parity: the native spec equivalent of each Sloth input gives Sloth's rules, rule by rule.

tests/data/sloth/ holds, per case, the native spec (``<case>.spec.yaml``) and what Sloth generates for
its own input (``<case>.sloth.yml``, Sloth's golden file). Every rule is compared: group names and
order, record and alert names, expressions, labels, and each alert condition's windows and factor.
Only the differences listed in docs/reference/slo.md ("Where the rules differ from Sloth's") are let through,
and each is checked to be exactly that difference.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.duration import parse_duration
from harness.slo import generate_rules, load_spec
from harness.slo.alert_windows import parse_alert_windows, shipped_tables

DATA = Path(__file__).resolve().parent.parent / "data" / "sloth"
CASES = ("base", "base-28d", "custom-windows-7d", "extra-labels", "no-alerts")
# An alert condition: max(<series>{<ids>} <op> <threshold>) without (sloth_window)
CONDITION = re.compile(
    r"max\((slo:sli_error:ratio_rate\w+\{[^}]*\}) (>=|>) ([^()\s]+|\([^()]*\))\) without \(sloth_window\)"
)
# Labels the harness adds to an alert (docs/reference/slo.md: severity for routing, sli, and the series' ids).
ALERT_EXTRA_LABELS = {"severity", "sli", "sloth_id", "sloth_service", "sloth_slo"}


def sloth_rules(case):
    return yaml.safe_load((DATA / f"{case}.sloth.yml").read_text())["groups"]


def harness_rules(case):
    return generate_rules(load_spec(DATA / f"{case}.spec.yaml")).to_dict()["groups"]


def vector_value(expr):
    """The number in ``vector(x)`` or ``vector(1-x)``."""
    inner = re.fullmatch(r"vector\((.+)\)", expr.strip()).group(1)
    return 1 - float(inner[2:]) if inner.startswith("1-") else float(inner)


def threshold(text):
    """``(13.44 * 0.0009999999999999432)`` or ``0.01344`` as a number."""
    if text.startswith("("):
        factor, budget = (float(x) for x in text.strip("()").split("*"))
        return factor * budget
    return float(text)


def conditions(expr):
    """The alert's conditions, in order, and the expression with each replaced by a placeholder."""
    found = CONDITION.findall(expr)
    return found, CONDITION.sub("COND", expr)


def without_traffic_guard(sloth_expr):
    """Sloth's ``(errors) / (total)`` as the harness writes it: ``(errors) / ((total) > 0)``.

    A raw ratio (not of that shape) is left as it is.
    """
    errors, sep, total = sloth_expr.partition("\n/\n")
    if not sep or not total.startswith("(") or not total.endswith(")\n"):
        return sloth_expr
    return f"{errors}\n/\n({total[:-1]} > 0)\n"


def compare_alert(ours, theirs, budget):
    assert ours["alert"] == theirs["alert"]
    (mine, my_shape), (sloths, sloth_shape) = conditions(ours["expr"]), conditions(theirs["expr"])
    assert my_shape == sloth_shape  # the same ANDs and ORs around the conditions
    assert [series for series, _, _ in mine] == [series for series, _, _ in sloths]
    assert {op for _, op, _ in mine} == {">="} and {op for _, op, _ in sloths} == {">"}
    for (_, _, t_ours), (_, _, t_sloth) in zip(mine, sloths):
        assert threshold(t_ours) == pytest.approx(threshold(t_sloth), rel=1e-12)
        sloth_factor = float(t_sloth.strip("()").split("*")[0])
        assert float(t_ours) / budget == pytest.approx(sloth_factor, rel=1e-12)
    extra = set(ours["labels"]) - set(theirs["labels"])
    assert extra == ALERT_EXTRA_LABELS
    assert {k: ours["labels"][k] for k in theirs["labels"]} == theirs["labels"]
    assert ours["labels"]["severity"] == theirs["labels"]["sloth_severity"]
    mine_ann = {k: v for k, v in ours["annotations"].items() if k not in ("summary", "title")}
    sloth_ann = {k: v for k, v in theirs["annotations"].items() if k not in ("summary", "title")}
    assert mine_ann == sloth_ann
    assert {"summary", "title"} <= set(ours["annotations"])


def compare_record(ours, theirs):
    assert ours["record"] == theirs["record"]
    if ours["record"] in ("slo:objective:ratio", "slo:error_budget:ratio"):
        # exact decimals (vector(0.001)) where Sloth writes float noise (vector(1-0.9990000000000001))
        assert vector_value(ours["expr"]) == pytest.approx(vector_value(theirs["expr"]), rel=1e-12)
    elif ours["record"].startswith("slo:sli_error:ratio_rate") and "sum_over_time" not in ours["expr"]:
        assert ours["expr"] == without_traffic_guard(theirs["expr"])
    else:
        assert ours["expr"] == theirs["expr"]
    if ours["record"] == "sloth_slo_info":
        mine, sloths = dict(ours["labels"]), dict(theirs["labels"])
        assert (mine.pop("sloth_spec"), sloths.pop("sloth_spec")) == ("harness/v1", "prometheus/v1")
        assert mine.pop("sloth_sli") == "availability" and "sloth_version" in sloths
        sloths.pop("sloth_version")
        assert mine == sloths
    else:
        assert ours["labels"] == theirs["labels"]


@pytest.mark.parametrize("case", CASES)
def test_rules_match_sloth_rule_by_rule(case):
    spec = load_spec(DATA / f"{case}.spec.yaml")
    budgets = {f"{spec.service}-{s.name}": 1 - s.objective for s in spec.slos}
    ours, theirs = harness_rules(case), sloth_rules(case)
    assert [g["name"] for g in ours] == [g["name"] for g in theirs]
    for mine, sloths in zip(ours, theirs):
        assert len(mine["rules"]) == len(sloths["rules"]), mine["name"]
        budget = budgets[mine["rules"][0]["labels"]["sloth_id"]]
        for a, b in zip(mine["rules"], sloths["rules"]):
            if "alert" in b:
                compare_alert(a, b, budget)
            else:
                compare_record(a, b)


def test_the_28_day_golden_gives_sloths_factors():
    (_, _, alerts, *_) = harness_rules("base-28d")
    page, ticket = alerts["rules"]
    factors = [float(t) / 0.001 for _, _, t in conditions(page["expr"] + ticket["expr"])[0]]
    assert factors == pytest.approx([13.44] * 2 + [5.6] * 2 + [2.8] * 2 + [0.9333333333333333] * 2, rel=1e-12)
    assert "slo:sli_error:ratio_rate4w" in {r.get("record") for g in harness_rules("base-28d") for r in g["rules"]}


def test_a_7_day_slo_without_windows_takes_sloths_7_day_windows():
    """The shipped 7d table is Sloth's custom windows file: ``period: 7d`` alone gives the same rules."""
    text = (DATA / "custom-windows-7d.spec.yaml").read_text()
    plain = re.sub(r"    windows:\n(      - .*\n)+", "", text)
    assert plain != text and "budget_percent" not in plain
    from harness.slo import parse_spec

    assert generate_rules(parse_spec(plain)).to_dict() == generate_rules(parse_spec(text)).to_dict()
    sloth_7d = parse_alert_windows(yaml.safe_load((DATA / "windows-7d.yaml").read_text()))
    assert sloth_7d.alerts == shipped_tables()[parse_duration("7d")].alerts


def test_the_native_spec_says_what_sloths_input_says():
    """base.spec.yaml carries in-base.yaml's queries, labels, objectives and alerting, nothing else."""
    sloth = yaml.safe_load((DATA / "in-base.yaml").read_text())
    spec = load_spec(DATA / "base.spec.yaml")
    assert spec.service == sloth["service"] and dict(spec.labels) == sloth["labels"]
    for ours, theirs in zip(spec.slos, sloth["slos"]):
        assert ours.name == theirs["name"] and ours.objective * 100 == pytest.approx(theirs["objective"])
        assert dict(ours.labels) == theirs["labels"] and ours.description == theirs["description"]
        events = theirs["sli"].get("events")
        if events:
            assert ours.promql == {
                "errors": events["error_query"].replace("{{.window}}", "{{window}}"),
                "total": events["total_query"].replace("{{.window}}", "{{window}}"),
            }
        else:
            raw = theirs["sli"]["raw"]["error_ratio_query"]
            assert ours.promql == {"error_ratio": raw.replace("{{.window}}", "{{window}}")}
    alerting = sloth["slos"][0]["alerting"]
    a = spec.slos[0].alerting
    assert (a.name, dict(a.labels), dict(a.annotations)) == (
        alerting["name"],
        alerting["labels"],
        alerting["annotations"],
    )
    assert dict(a.page.labels) == alerting["page_alert"]["labels"]
    assert dict(a.ticket.labels) == alerting["ticket_alert"]["labels"]
    assert spec.slos[1].windows == ()  # both alerts switched off


def test_sloths_own_window_placeholder_is_accepted():
    from harness.slo import parse_spec

    text = (DATA / "base.spec.yaml").read_text().replace("{{window}}", "{{.window}}")
    assert generate_rules(parse_spec(text)).to_dict() == generate_rules(load_spec(DATA / "base.spec.yaml")).to_dict()


def test_promtool_accepts_the_rules_of_every_case(tmp_path):
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    paths = []
    for case in CASES:
        path = tmp_path / f"{case}.yml"
        path.write_text(generate_rules(load_spec(DATA / f"{case}.spec.yaml")).to_yaml())
        paths.append(str(path))
    done = subprocess.run([tool, "check", "rules", *paths], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(CASES)
