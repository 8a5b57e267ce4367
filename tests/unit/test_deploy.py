"""deploy/: the judge's image, its Kubernetes manifests, the Argo Rollouts and Flagger resources that
call it and the GitHub Actions gate, checked without a cluster, a builder or a network.

- Every Argo Rollouts and Flagger manifest validates against the ``openAPIV3Schema`` of its CRD
  version (tests/data/, copied from the projects), read as a strict API server reads it: a field the
  schema does not know is an error (``kubectl apply`` validates strictly), not silently pruned.
- What the schemas cannot say is checked against the judge's contract (``harness judge serve``):
  the web metric's URL, body, conditions, ``count = looks + 1`` and ``inconclusiveLimit = looks``
  (and, replayed as Argo assesses a metric, what each run of verdicts ends as); the Flagger hooks'
  routes and metadata keys; the names and ports the manifests share.
- The Dockerfile is read with Docker's own parser (the ``dockerfile`` package).
- The composite action follows GitHub's metadata rules, and its scripts are run with bash against
  a stand-in ``harness``.

Each checker returns its problems; each is also shown a broken copy it must refuse, so no test
passes because a checker saw nothing."""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DATA = Path(__file__).resolve().parent.parent / "data"
ARGO = DEPLOY / "argo-rollouts"

# The contract of `harness judge serve` (/tmp/judge_api_contract.md, fixed for the API and deploy/).
JUDGE_URL = "http://harness-judge.harness.svc:8090"
ANALYSIS_URL = JUDGE_URL + "/api/v1/analyses/{{args.analysis-name}}"
SUCCESS_CONDITION = 'result.final && result.verdict == "PROMOTE"'
FAILURE_CONDITION = 'result.verdict == "ROLLBACK"'
NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,126}[a-z0-9])?$")
BODY_KEYS = {"baseline", "canary", "interval", "lifetime", "spending"}
SPENDINGS = {"pocock", "obrien_fleming"}
FLAGGER_HOOKS = ("pre-rollout", "rollout", "confirm-promotion", "post-rollout", "rollback")
FLAGGER_METADATA = {
    "token",
    "baseline",
    "canary",
    "baseline_where",
    "canary_where",
    "baseline_selector",
    "canary_selector",
    "interval",
    "lifetime",
    "spending",
}
JUDGE_WAIT_S = 20  # a status call waits this long at most for a look being judged
SERVE_CMD = [
    "judge",
    "serve",
    "--config",
    "/etc/harness/judge-serve.yaml",
    "--host",
    "0.0.0.0",
    "--port",
    "8090",
    "--state",
    "/var/lib/harness-judge",
]
ARGS = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+?)\s*\}\}")
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader) if d is not None]


def _one(path: Path, kind: str) -> dict:
    found = [d for d in _docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: {len(found)} {kind} documents"
    return found[0]


def _seconds(text: Any) -> int:
    m = re.fullmatch(r"(\d+)(s|m|h)", str(text))
    assert m, f"not a duration: {text!r}"
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


# ---------------------------------------------------------------------------------------------
# CRD schemas, read strictly


def _strict(schema: dict) -> dict:
    """A CRD's structural schema as JSON Schema that refuses unknown fields where the API server
    (strict field validation) does: every object with ``properties`` and no
    ``x-kubernetes-preserve-unknown-fields``. ``x-kubernetes-int-or-string`` without its own
    ``anyOf`` becomes one; ``nullable`` admits null."""
    s = {k: v for k, v in schema.items() if k != "description"}
    if "properties" in s:
        s["properties"] = {name: _strict(sub) for name, sub in s["properties"].items()}
        if "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = _strict(s["additionalProperties"])
    if isinstance(s.get("items"), dict):
        s["items"] = _strict(s["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in s:
            s[key] = [_strict(sub) for sub in s[key]]
    if isinstance(s.get("not"), dict):
        s["not"] = _strict(s["not"])
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in s and "type" not in s:
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable") and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    return s


# The parts of ObjectMeta a manifest here may set (the CRDs leave metadata to the API server).
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

CRD_FILES = {
    ("argoproj.io", "AnalysisTemplate"): DATA / "argo-rollouts" / "analysis-template-crd.yaml",
    ("argoproj.io", "Rollout"): DATA / "argo-rollouts" / "rollout-crd.yaml",
    ("flagger.app", "Canary"): DATA / "flagger" / "crd.yaml",
}


@functools.lru_cache(maxsize=None)
def _validator(group: str, version: str, kind: str) -> jsonschema.protocols.Validator:
    path = CRD_FILES[(group, kind)]
    for crd in _docs(path):
        spec = crd["spec"]
        if spec["group"] != group or spec["names"]["kind"] != kind:
            continue
        for v in spec["versions"]:
            if v["name"] == version:
                assert v.get("served"), f"{kind} {group}/{version} is not served"
                schema = _strict(v["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = OBJECT_META
                schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
                jsonschema.Draft4Validator.check_schema(schema)
                return jsonschema.Draft4Validator(schema)
    raise AssertionError(f"no CRD of {kind} {group}/{version} in {path.relative_to(ROOT)}")


def crd_problems(doc: dict) -> list[str]:
    """What the API server would refuse in ``doc``, a custom resource of a CRD in tests/data."""
    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    if (group, doc.get("kind")) not in CRD_FILES:
        return [f"no CRD here for {doc.get('kind')} {doc.get('apiVersion')}"]
    validator = _validator(group, version, doc["kind"])
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


MANIFESTS = [
    ARGO / "analysistemplate-web.yaml",
    ARGO / "analysistemplate-job.yaml",
    ARGO / "rollout.yaml",
    DEPLOY / "flagger" / "canary.yaml",
]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_custom_resource_validates_against_its_crd(path: Path) -> None:
    custom = [d for d in _docs(path) if d["apiVersion"].split("/")[0] in {"argoproj.io", "flagger.app"}]
    assert custom, f"{path}: no Argo Rollouts or Flagger resource"
    for doc in custom:
        assert crd_problems(doc) == [], f"{doc['kind']} {doc['metadata'].get('name')}"


@pytest.mark.parametrize(
    "path, where, value",
    [
        # a field of the wrong type
        (ARGO / "analysistemplate-web.yaml", ("spec", "metrics", 0, "provider", "web", "timeoutSeconds"), "30"),
        (ARGO / "analysistemplate-web.yaml", ("spec", "metrics", 0, "count"), True),
        (ARGO / "analysistemplate-web.yaml", ("spec", "metrics", 0, "provider", "web", "headers"), {"a": "b"}),
        # a field the controller does not know (a typo: pruned, and the metric would send no body)
        (ARGO / "analysistemplate-web.yaml", ("spec", "metrics", 0, "provider", "web", "jsonbody"), {"a": 1}),
        (ARGO / "analysistemplate-job.yaml", ("spec", "metrics", 0, "provider", "job", "spec", "backoffLimit"), "0"),
        (ARGO / "rollout.yaml", ("spec", "strategy", "canary", "analysis", "startingStep"), "1"),
        (ARGO / "rollout.yaml", ("spec", "strategy", "canary", "steps", 1, "analysis", "template"), []),
        # a webhook type Flagger does not know, a metadata value that is not a string
        (DEPLOY / "flagger" / "canary.yaml", ("spec", "analysis", "webhooks", 0, "type"), "pre-analysis"),
        (DEPLOY / "flagger" / "canary.yaml", ("spec", "analysis", "webhooks", 1, "metadata", "token"), 123),
        (DEPLOY / "flagger" / "canary.yaml", ("spec", "analysis", "webhooks", 1, "timeout"), "thirty"),
        # a name the API server refuses
        (DEPLOY / "flagger" / "canary.yaml", ("metadata", "name"), "Captioner_1"),
    ],
)
def test_the_crd_validation_refuses_a_broken_copy(path: Path, where: tuple, value: Any) -> None:
    kinds = {"analysistemplate-web.yaml": "AnalysisTemplate", "analysistemplate-job.yaml": "AnalysisTemplate"}
    doc = copy.deepcopy(_one(path, kinds.get(path.name, "Rollout" if "rollout" in path.name else "Canary")))
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert crd_problems(doc), f"{where} = {value!r} passed"


def test_flagger_lacks_one_analysis_field_of_its_oneof() -> None:
    doc = copy.deepcopy(_one(DEPLOY / "flagger" / "canary.yaml", "Canary"))
    del doc["spec"]["analysis"]["threshold"]
    assert crd_problems(doc)


# ---------------------------------------------------------------------------------------------
# Argo Rollouts: the web metric against the contract, and how Argo assesses it


def _condition(expr: str):
    """An Argo condition (expr language: ``&&``, ``||``, ``!``, ``==``, ``!=``, ``result.x``) as a
    function of the status document; anything else is refused."""
    text = re.sub(r"!(?!=)", " not ", expr.replace("&&", " and ").replace("||", " or "))
    tree = ast.parse(text, mode="eval")
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq, ast.NotEq)
    for node in ast.walk(tree):
        ok = isinstance(node, (*allowed, ast.Constant, ast.Load)) or (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "result"
        )
        if not ok and not (isinstance(node, ast.Name) and node.id == "result"):
            raise AssertionError(f"not understood in {expr!r}: {ast.dump(node)}")

    def ev(node, result):
        if isinstance(node, ast.Expression):
            return ev(node.body, result)
        if isinstance(node, ast.BoolOp):
            values = (ev(v, result) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not ev(node.operand, result)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in (ast.Eq, ast.NotEq):
            same = ev(node.left, result) == ev(node.comparators[0], result)
            return same if isinstance(node.ops[0], ast.Eq) else not same
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "result":
            return result.get(node.attr)
        if isinstance(node, ast.Constant):
            return node.value
        raise AssertionError(f"not understood in {expr!r}: {ast.dump(node)}")

    return lambda result: ev(tree, result)


def _status(look: int, looks: int, verdict: str = "HOLD", final: bool = False) -> dict:
    return {
        "name": "captioner-7f9c",
        "state": "done" if final else "running",
        "verdict": verdict,
        "final": final,
        "look": look,
        "looks": looks,
        "score": None if look == 0 else 90.0,
        "reasons": [],
    }


def argo_metric_phase(metric: dict, answers: list[dict | None]) -> str:
    """How Argo Rollouts assesses ``metric`` given the judge's answers to its measurements in turn
    (None: the call failed, an Error measurement). As the analysis controller does: a Failed,
    Successful or Inconclusive measurement counts toward ``count``, an Error does not; the metric
    is Failed past ``failureLimit`` failures, Inconclusive past ``inconclusiveLimit``
    inconclusives, Error past ``consecutiveErrorLimit`` (4) errors in a row, Successful once
    ``count`` measurements counted; Running until then."""
    success, failure = _condition(metric["successCondition"]), _condition(metric["failureCondition"])
    count, failed, inconclusive, errors = 0, 0, 0, 0
    for answer in answers:
        if answer is None:
            errors += 1
        else:
            errors = 0
            count += 1
            if failure(answer):
                failed += 1
            elif not success(answer):
                inconclusive += 1
        if failed > int(metric.get("failureLimit", 0)):
            return "Failed"
        if inconclusive > int(metric.get("inconclusiveLimit", 0)):
            return "Inconclusive"
        if errors > int(metric.get("consecutiveErrorLimit", 4)):
            return "Error"
        if count >= int(metric["count"]):
            return "Successful"
    return "Running"


def _args_used(doc: Any) -> set[str]:
    return set(ARGS.findall(json.dumps(doc)))


def _arg_defaults(template: dict) -> dict[str, str]:
    return {a["name"]: a["value"] for a in template["spec"].get("args", []) if "value" in a}


def _resolve(text: str, values: dict[str, str]) -> str:
    return ARGS.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _serve_config() -> dict:
    return yaml.safe_load((DEPLOY / "judge-serve.yaml").read_text(encoding="utf-8"))


def web_template_problems(template: dict) -> list[str]:
    """What in the web AnalysisTemplate departs from the judge's contract."""
    problems = []
    args = {a["name"]: a for a in template["spec"].get("args", [])}
    used = _args_used(template["spec"]["metrics"])
    problems += [f"{{{{args.{n}}}}} is used but not declared" for n in sorted(used - set(args))]
    problems += [f"arg {n} is declared but not used" for n in sorted(set(args) - used)]
    key = args.get("judge-key", {})
    if "secretKeyRef" not in key.get("valueFrom", {}) or "value" in key:
        problems.append("judge-key must come from a Secret (valueFrom.secretKeyRef), never a value")
    metrics = template["spec"]["metrics"]
    if [m["name"] for m in metrics] != ["caption-judge"]:
        return [*problems, f"one metric, caption-judge (got {[m['name'] for m in metrics]})"]
    m = metrics[0]
    web = m["provider"].get("web", {})
    expected = {
        "method": "POST",
        "url": ANALYSIS_URL,
        "timeoutSeconds": 30,
        "headers": [{"key": "Authorization", "value": "Bearer {{args.judge-key}}"}],
        "jsonPath": "{$}",
    }
    problems += [f"web.{k} is {web.get(k)!r}, not {v!r}" for k, v in expected.items() if web.get(k) != v]
    if m.get("successCondition") != SUCCESS_CONDITION:
        problems.append(f"successCondition is {m.get('successCondition')!r}")
    if m.get("failureCondition") != FAILURE_CONDITION:
        problems.append(f"failureCondition is {m.get('failureCondition')!r}")
    body = web.get("jsonBody", {})
    if set(body) - BODY_KEYS or not {"baseline", "canary"} <= set(body):
        problems.append(f"jsonBody keys {sorted(body)}")
    if body.get("spending", "pocock") not in SPENDINGS:
        problems.append(f"spending {body.get('spending')!r}")
    sources = set(_serve_config()["sources"])
    defaults = _arg_defaults(template)
    for side in ("baseline", "canary"):
        doc = body.get(side, {})
        if set(doc) not in ({"source", "where"}, {"source", "selector"}, {"source"}):
            problems.append(f"jsonBody.{side} has {sorted(doc)}")
        source = _resolve(str(doc.get("source")), defaults)
        if source not in sources:
            problems.append(f"jsonBody.{side}.source {source!r} is not a source of deploy/judge-serve.yaml")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.get("where", {}).items()):
            problems.append(f"jsonBody.{side}.where must map columns to strings")
    interval, lifetime = _seconds(body.get("interval")), _seconds(body.get("lifetime"))
    looks, rest = divmod(lifetime, interval)
    if rest or looks < 1:
        problems.append(f"lifetime {body.get('lifetime')} is not a whole number of intervals")
    if _seconds(m.get("interval")) != interval:
        problems.append(f"metric interval {m.get('interval')} != jsonBody.interval {body.get('interval')}")
    if int(m.get("count", 0)) != looks + 1:
        problems.append(f"count {m.get('count')} != looks + 1 = {looks + 1}")
    if int(m.get("inconclusiveLimit", 0)) != looks:
        problems.append(f"inconclusiveLimit {m.get('inconclusiveLimit')} != looks = {looks}")
    if int(m.get("failureLimit", 0)) != 0:
        problems.append(f"failureLimit {m.get('failureLimit')} != 0")
    return problems


def _web_template() -> dict:
    return _one(ARGO / "analysistemplate-web.yaml", "AnalysisTemplate")


def test_the_web_template_follows_the_contract() -> None:
    assert web_template_problems(_web_template()) == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("count", 12),
        ("inconclusiveLimit", 13),
        ("failureLimit", 1),
        ("interval", "1m"),
        ("successCondition", 'result.verdict == "PROMOTE"'),
        ("failureCondition", 'result.verdict != "PROMOTE"'),
    ],
)
def test_the_web_template_check_refuses_a_broken_metric(field: str, value: Any) -> None:
    broken = copy.deepcopy(_web_template())
    broken["spec"]["metrics"][0][field] = value
    assert web_template_problems(broken)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["spec"]["metrics"][0]["provider"]["web"].update(url=JUDGE_URL + "/api/v1/analysis/x"),
        lambda t: t["spec"]["metrics"][0]["provider"]["web"]["jsonBody"].update(lifetime="2h"),
        lambda t: t["spec"]["metrics"][0]["provider"]["web"]["jsonBody"]["canary"].update(source="http://x"),
        lambda t: t["spec"]["metrics"][0]["provider"]["web"]["jsonBody"].update(spending="bonferroni"),
        lambda t: t["spec"]["args"].__setitem__(1, {"name": "judge-key", "value": "s3cret"}),
        lambda t: t["spec"]["args"].pop(0),
    ],
)
def test_the_web_template_check_refuses_a_broken_provider(change) -> None:
    broken = copy.deepcopy(_web_template())
    change(broken)
    assert web_template_problems(broken)


def _answers(looks: int, last: str, rollback_at: int | None = None) -> list[dict | None]:
    """The judge's answers to Argo's calls: the first creates the analysis (look 0), each later
    one sees the next look."""
    out = []
    for look in range(looks + 1):
        if rollback_at is not None and look >= rollback_at:
            out.append(_status(look, looks, "ROLLBACK", True))
        elif look == looks:
            out.append(_status(look, looks, last, True))
        else:
            out.append(_status(look, looks))
    return out


def test_argo_assesses_the_web_metric_as_the_contract_says() -> None:
    metric = _web_template()["spec"]["metrics"][0]
    looks = int(metric["count"]) - 1
    assert argo_metric_phase(metric, _answers(looks, "PROMOTE")) == "Successful"
    # A final HOLD: one inconclusive more than the limit, so the Rollout pauses for a person.
    assert argo_metric_phase(metric, _answers(looks, "HOLD")) == "Inconclusive"
    # ROLLBACK at any look fails the metric at that measurement.
    for k in (1, 3, looks):
        answers = _answers(looks, "PROMOTE", rollback_at=k)
        assert argo_metric_phase(metric, answers[: k + 1]) == "Failed"
    # Interim looks never end the metric early.
    assert argo_metric_phase(metric, _answers(looks, "PROMOTE")[:-1]) == "Running"
    # A call that fails (judge restarting, 429) is an Error, not counted: the metric still waits
    # for the last look, and a few in a row are tolerated.
    with_errors = _answers(looks, "PROMOTE")
    with_errors[0:0] = [None, None]
    with_errors.insert(6, None)
    assert argo_metric_phase(metric, with_errors) == "Successful"
    held = _answers(looks, "HOLD")
    held.insert(4, None)
    assert argo_metric_phase(metric, held) == "Inconclusive"
    # Late calls that see the final answer more than once change nothing.
    late = _answers(looks, "HOLD")[:-3] + [_status(looks, looks, "HOLD", True)] * 3
    assert argo_metric_phase(metric, late) == "Inconclusive"
    assert argo_metric_phase(metric, [None] * 5) == "Error"


def test_without_the_extra_measurement_a_final_hold_would_promote() -> None:
    """Why count = looks + 1: with count = looks the metric is Successful before the last look."""
    metric = dict(_web_template()["spec"]["metrics"][0])
    looks = int(metric["count"]) - 1
    metric["count"] = looks
    assert argo_metric_phase(metric, _answers(looks, "HOLD")) == "Successful"
    assert argo_metric_phase(metric, _answers(looks, "ROLLBACK")) == "Successful"


def test_the_conditions_read_the_status_document() -> None:
    success, failure = _condition(SUCCESS_CONDITION), _condition(FAILURE_CONDITION)
    assert success(_status(12, 12, "PROMOTE", True)) and not failure(_status(12, 12, "PROMOTE", True))
    assert not success(_status(3, 12)) and not failure(_status(3, 12))
    assert not success(_status(12, 12, "HOLD", True)) and not failure(_status(12, 12, "HOLD", True))
    assert failure(_status(2, 12, "ROLLBACK", True)) and not success(_status(2, 12, "ROLLBACK", True))
    with pytest.raises(AssertionError):
        _condition("len(result.reasons) > 0")


# ---------------------------------------------------------------------------------------------
# Argo Rollouts: the job template and the Rollout


def _job_template() -> dict:
    return _one(ARGO / "analysistemplate-job.yaml", "AnalysisTemplate")


def _rollout() -> dict:
    return _one(ARGO / "rollout.yaml", "Rollout")


def _judge_argv(template: dict, values: dict[str, str]) -> list[str]:
    job = template["spec"]["metrics"][0]["provider"]["job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return [_resolve(a, values) for a in container["args"]]


def job_template_problems(template: dict) -> list[str]:
    problems = []
    args = {a["name"] for a in template["spec"].get("args", [])}
    used = _args_used(template["spec"]["metrics"])
    problems += [f"{{{{args.{n}}}}} is used but not declared" for n in sorted(used - args)]
    (metric,) = template["spec"]["metrics"]
    if "count" in metric or "interval" in metric:
        problems.append("one measurement: the Job itself runs every look")
    job = metric["provider"].get("job")
    if not job:
        return [*problems, "not a job metric"]
    spec = job["spec"]
    if spec.get("backoffLimit") != 0:
        problems.append("backoffLimit must be 0: a retried Job starts a new analysis")
    pod = spec["template"]["spec"]
    if pod.get("restartPolicy") != "Never":
        problems.append("restartPolicy must be Never")
    argv = _judge_argv(template, {n: "5d4f8c7b9" for n in args})
    from harness.cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parsed = build_parser().parse_args(argv)
    except SystemExit:
        return [*problems, f"harness refuses the Job's arguments {argv}"]
    if parsed.command != "judge" or not parsed.interval or not parsed.lifetime:
        problems.append("the Job must run harness judge --interval ... --lifetime ...")
    elif spec.get("activeDeadlineSeconds", 0) <= _seconds(parsed.lifetime):
        problems.append("activeDeadlineSeconds must outlast --lifetime")
    if "prometheus:" in f"{parsed.baseline} {parsed.canary}":
        # What one side cannot see (the captions) is compared on neither: a scope never promotes.
        problems.append("a Prometheus scope never promotes: the Job would fail every rollout")
    return problems


def test_the_job_template_runs_the_live_judge() -> None:
    template = _job_template()
    assert job_template_problems(template) == []
    argv = _judge_argv(template, {"baseline-target": "aaa", "canary-target": "bbb"})
    assert argv[0] == "judge" and argv[argv.index("--out") + 1] == "/tmp/judge"
    assert argv[argv.index("--interval") + 1] == "5m" and argv[argv.index("--lifetime") + 1] == "1h"


@pytest.mark.parametrize(
    "change",
    [
        lambda job, c: job["spec"].update(backoffLimit=2),
        lambda job, c: job["spec"].update(activeDeadlineSeconds=600),
        lambda job, c: c["args"].__setitem__(c["args"].index("--lifetime"), "--lifespan"),
        lambda job, c: c["args"].__setitem__(c["args"].index("/data/records"), "prometheus:http://p:9090"),
        lambda job, c: c["args"].append("{{args.version}}"),
    ],
)
def test_the_job_template_check_refuses_a_broken_copy(change) -> None:
    broken = copy.deepcopy(_job_template())
    job = broken["spec"]["metrics"][0]["provider"]["job"]
    change(job, job["spec"]["template"]["spec"]["containers"][0])
    assert job_template_problems(broken)


def _analyses(rollout: dict) -> list[tuple[str, dict]]:
    canary = rollout["spec"]["strategy"]["canary"]
    found = [("background", canary["analysis"])] if "analysis" in canary else []
    found += [(f"step {i}", s["analysis"]) for i, s in enumerate(canary.get("steps", [])) if "analysis" in s]
    return found


def rollout_problems(rollout: dict, templates: dict[str, dict]) -> list[str]:
    problems = []
    pod_labels = rollout["spec"]["template"]["metadata"]["labels"]
    if not set(rollout["spec"]["selector"]["matchLabels"].items()) <= set(pod_labels.items()):
        problems.append("the selector does not match the pod template's labels")
    kinds = set()
    for where, analysis in _analyses(rollout):
        given = {a["name"]: a for a in analysis.get("args", [])}
        for a in given.values():
            hash_value = a.get("valueFrom", {}).get("podTemplateHashValue")
            if hash_value is not None and hash_value not in ("Stable", "Latest"):
                problems.append(f"{where}: arg {a['name']}: podTemplateHashValue {hash_value!r}")
        for ref in analysis["templates"]:
            template = templates.get(ref["templateName"])
            if template is None:
                problems.append(f"{where}: no AnalysisTemplate {ref['templateName']} in deploy/argo-rollouts")
                continue
            if template["metadata"].get("namespace") != rollout["metadata"].get("namespace"):
                problems.append(f"{where}: {ref['templateName']} is in another namespace")
            declared = {a["name"]: a for a in template["spec"].get("args", [])}
            needed = {n for n, a in declared.items() if "value" not in a and "valueFrom" not in a}
            problems += [f"{where}: {ref['templateName']} gets no {n}" for n in sorted(needed - set(given))]
            problems += [f"{where}: {ref['templateName']} declares no {n}" for n in sorted(set(given) - set(declared))]
            kinds.add(next(iter(template["spec"]["metrics"][0]["provider"])))
    if kinds != {"web", "job"}:
        problems.append(f"the Rollout should use both templates (providers used: {sorted(kinds)})")
    background = rollout["spec"]["strategy"]["canary"].get("analysis")
    if background and background["templates"][0]["templateName"] in templates:
        name = {a["name"]: a for a in background.get("args", [])}.get("analysis-name", {})
        if name.get("valueFrom", {}).get("podTemplateHashValue") != "Latest":
            problems.append("analysis-name must be the canary's pod-template hash (podTemplateHashValue: Latest)")
        # The steps after the background analysis starts must outlast it: past the last step Argo
        # ends a background run as Successful, before the judge's last look.
        (metric,) = templates[background["templates"][0]["templateName"]]["spec"]["metrics"]
        needed_s = int(metric["count"]) * _seconds(metric["interval"])
        steps = rollout["spec"]["strategy"]["canary"]["steps"][background.get("startingStep", 0) :]
        covered_s = 0
        for step in steps:
            if "pause" in step:
                covered_s += _seconds(step["pause"].get("duration", "0s"))
            if "analysis" in step:
                for ref in step["analysis"]["templates"]:
                    argv = _judge_argv(templates[ref["templateName"]], {})
                    covered_s += _seconds(argv[argv.index("--lifetime") + 1])
        if covered_s < needed_s + _seconds(metric["interval"]):
            problems.append(
                f"the steps last {covered_s} s after the background analysis starts; it needs {needed_s} s "
                f"and an interval to spare"
            )
    return problems


def _templates() -> dict[str, dict]:
    return {t["metadata"]["name"]: t for t in (_web_template(), _job_template())}


def test_the_rollout_uses_both_templates_with_their_args() -> None:
    assert rollout_problems(_rollout(), _templates()) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["steps"].__setitem__(-1, {"pause": {"duration": "1m"}}),
        lambda c: c["steps"].pop(1),
        lambda c: c["analysis"]["args"].pop(0),
        lambda c: c["analysis"]["args"][0]["valueFrom"].update(podTemplateHashValue="Stable"),
        lambda c: c["analysis"]["args"].append({"name": "service-name", "value": "x"}),
        lambda c: c["analysis"]["templates"].__setitem__(0, {"templateName": "success-rate"}),
    ],
)
def test_the_rollout_check_refuses_a_broken_copy(change) -> None:
    broken = copy.deepcopy(_rollout())
    change(broken["spec"]["strategy"]["canary"])
    assert rollout_problems(broken, _templates())


def test_the_web_template_reads_the_key_from_a_secret_shipped_without_it() -> None:
    secret = _one(ARGO / "analysistemplate-web.yaml", "Secret")
    template = _web_template()
    ref = {a["name"]: a for a in template["spec"]["args"]}["judge-key"]["valueFrom"]["secretKeyRef"]
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        ref["name"],
        template["metadata"]["namespace"],
    )
    assert "data" not in secret and "stringData" not in secret  # never a key anyone can read in the repository


# ---------------------------------------------------------------------------------------------
# Flagger


def _canary() -> dict:
    return _one(DEPLOY / "flagger" / "canary.yaml", "Canary")


def flagger_problems(canary: dict) -> list[str]:
    problems = []
    analysis = canary["spec"]["analysis"]
    hooks = analysis.get("webhooks", [])
    types = [h.get("type") for h in hooks]
    if sorted(types) != sorted(FLAGGER_HOOKS):
        problems.append(f"one hook of each of {FLAGGER_HOOKS} (got {types})")
    sources = set(_serve_config()["sources"])
    interval_s = _seconds(analysis["interval"])
    for h in hooks:
        name = h.get("name")
        if h.get("url") != f"{JUDGE_URL}/flagger/{h.get('type')}":
            problems.append(f"{name}: url {h.get('url')} is not the contract's route of {h.get('type')}")
        md = h.get("metadata", {})
        problems += [f"{name}: metadata {k!r} is not a key the judge reads" for k in sorted(set(md) - FLAGGER_METADATA)]
        if "token" not in md:
            problems.append(f"{name}: no token (Flagger sends no headers: the key is metadata.token)")
        if _seconds(h.get("timeout", "10s")) <= JUDGE_WAIT_S:
            problems.append(f"{name}: timeout {h.get('timeout')} is not above the judge's wait ({JUDGE_WAIT_S} s)")
    rollout_timeouts = sum(_seconds(h.get("timeout", "10s")) for h in hooks if h.get("type") == "rollout")
    if rollout_timeouts >= interval_s:
        problems.append("the rollout hooks' timeouts must add up to less than the analysis interval")
    (pre,) = [h.get("metadata", {}) for h in hooks if h.get("type") == "pre-rollout"] or [{}]
    for side in ("baseline", "canary"):
        if pre.get(side) not in sources:
            problems.append(f"pre-rollout: {side} {pre.get(side)!r} is not a source of deploy/judge-serve.yaml")
        where, selector = pre.get(f"{side}_where"), pre.get(f"{side}_selector")
        if where is not None and not re.fullmatch(r"[A-Za-z_]\w*=[^,]+(,[A-Za-z_]\w*=[^,]+)*", where):
            problems.append(f"pre-rollout: {side}_where {where!r} is not col=value,col=value")
        if where is None and selector is None:
            problems.append(f"pre-rollout: no {side}_where or {side}_selector")
    if pre.get("spending", "pocock") not in SPENDINGS:
        problems.append(f"pre-rollout: spending {pre.get('spending')!r}")
    lifetime_s = _seconds(pre.get("lifetime", "1h"))
    if lifetime_s % _seconds(pre.get("interval", "5m")):
        problems.append("pre-rollout: the lifetime is not a whole number of intervals")
    steps = -(-analysis.get("maxWeight", 100) // analysis["stepWeight"]) if "stepWeight" in analysis else 1
    if lifetime_s < steps * interval_s:
        problems.append("the judge's lifetime must outlast Flagger's steps, or the last weights go unjudged")
    name = f"{canary['metadata']['namespace']}.{canary['metadata']['name']}.85d557f47b".lower()
    if not NAME.match(name):
        problems.append(f"the analysis name {name!r} is not one the judge takes")
    return problems


def test_the_flagger_canary_calls_the_contracts_hooks() -> None:
    assert flagger_problems(_canary()) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda hooks: hooks[1].update(url=JUDGE_URL + "/flagger/check"),
        lambda hooks: hooks[1]["metadata"].update(baselineWhere="target=x"),
        lambda hooks: hooks[0]["metadata"].update(baseline="http://prometheus:9090"),
        lambda hooks: hooks[0]["metadata"].update(canary_where="target"),
        lambda hooks: hooks[2]["metadata"].pop("token"),
        lambda hooks: hooks[3].update(timeout="10s"),
        lambda hooks: hooks.pop(),
        lambda hooks: hooks[0]["metadata"].update(lifetime="5m"),
    ],
)
def test_the_flagger_check_refuses_a_broken_copy(change) -> None:
    broken = copy.deepcopy(_canary())
    change(broken["spec"]["analysis"]["webhooks"])
    assert flagger_problems(broken)


def test_the_token_is_filled_in_at_apply_time() -> None:
    """The Canary in the repository holds no key: each token is the same substitution variable."""
    tokens = {h["metadata"]["token"] for h in _canary()["spec"]["analysis"]["webhooks"]}
    assert tokens == {"${HARNESS_JUDGE_KEY}"}


# ---------------------------------------------------------------------------------------------
# The judge's own manifests


def test_the_judge_manifests_agree_with_the_image_and_the_callers() -> None:
    docs = _docs(DEPLOY / "judge.yaml")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    assert {"Namespace", "Secret", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"} <= set(by_kind)
    (service,), (deployment,), (secret,) = by_kind["Service"], by_kind["Deployment"], by_kind["Secret"]
    (config,) = by_kind["ConfigMap"]
    # The address the Argo and Flagger resources call.
    host, port = JUDGE_URL.removeprefix("http://").split(":")
    assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    (svc_port,) = service["spec"]["ports"]
    assert str(svc_port["port"]) == port
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert svc_port["targetPort"] in {p["name"] for p in container["ports"]}
    assert {p["containerPort"] for p in container["ports"]} == {int(port)}
    # One writer of the state folder.
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    # The key from the Secret, which ships without it: the pod waits until it is created.
    env = {e["name"]: e for e in container["env"]}
    ref = env["HARNESS_JUDGE_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and not ref.get("optional")
    assert "data" not in secret and "stringData" not in secret
    # The image's CMD: the config and state folders it names are mounted.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert str(Path(SERVE_CMD[SERVE_CMD.index("--config") + 1]).parent) in mounts
    assert SERVE_CMD[SERVE_CMD.index("--state") + 1] in mounts
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    state = volumes[mounts[SERVE_CMD[SERVE_CMD.index("--state") + 1]]]
    assert state["persistentVolumeClaim"]["claimName"] in {
        p["metadata"]["name"] for p in by_kind["PersistentVolumeClaim"]
    }
    # The sources' paths exist in the pod.
    conf = yaml.safe_load(config["data"]["judge-serve.yaml"])
    for source in conf["sources"].values():
        if "records" in source:
            assert any(source["records"].startswith(m) for m in mounts), source
    assert {k: v for k, v in _serve_config().items()} == conf  # the ConfigMap is deploy/judge-serve.yaml
    # Probes on /healthz, the user the image runs as.
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    user = _runtime_user()
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert str(pod["spec"]["securityContext"]["runAsUser"]) == user


def test_the_serve_config_names_only_known_settings() -> None:
    conf = _serve_config()
    assert set(conf) <= {"sources", "spec", "judge_config", "max_analyses", "interval", "lifetime"}
    for name, source in conf["sources"].items():
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name)
        assert len(source) == 1 and set(source) <= {"records", "prometheus"}, name
    assert _seconds(conf["lifetime"]) % _seconds(conf["interval"]) == 0
    assert isinstance(conf["max_analyses"], int) and conf["max_analyses"] >= 1


# ---------------------------------------------------------------------------------------------
# The Dockerfile, with Docker's own parser


def _stages(commands) -> list[dict]:
    args = {}
    stages: list[dict] = []
    for c in commands:
        if c.cmd == "ARG" and not stages:
            name, _, default = c.value[0].partition("=")
            args[name] = default
        elif c.cmd == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), c.value[0])
            alias = c.value[2] if len(c.value) == 3 and c.value[1].upper() == "AS" else None
            stages.append({"image": image, "name": alias, "commands": [], "args": {}})
        elif stages:
            stages[-1]["commands"].append(c)
            if c.cmd == "ARG":
                name, _, default = c.value[0].partition("=")
                stages[-1]["args"][name] = default
    return stages


def _runtime_user(text: str | None = None) -> str:
    text = text if text is not None else (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    users = [c.value[0] for c in _stages(dockerfile.parse_string(text))[-1]["commands"] if c.cmd == "USER"]
    return users[-1].split(":")[0] if users else "root"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (Docker's rules: each
    pattern, in order, matches the path or one of its parent folders; ``!`` takes it back in; the
    last match decides; ``*`` stays in one folder, ``**`` crosses them)."""

    def regex(p: str) -> re.Pattern:
        out, i = "", 0
        while i < len(p):
            if p.startswith("**/", i):
                out, i = out + "(.*/)?", i + 3
            elif p.startswith("**", i):
                out, i = out + ".*", i + 2
            elif p[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif p[i] == "?":
                out, i = out + "[^/]", i + 1
            elif p[i] == "[":
                j = p.index("]", i)
                out, i = out + p[i : j + 1], j + 1
            else:
                out, i = out + re.escape(p[i]), i + 1
        return re.compile(out)

    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:].strip().strip("/") if negate else raw.strip().strip("/")
        if pattern and any(regex(pattern).fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def dockerfile_problems(text: str, ignore: list[str] | None = None) -> list[str]:
    problems = []
    try:
        stages = _stages(dockerfile.parse_string(text))
    except dockerfile.GoParseError as exc:
        return [f"Docker's parser refuses it: {exc}"]
    named = [s for s in stages if s["name"]]
    if len(stages) < 2 or len(named) < 1:
        return [f"a multi-stage build (FROM ... AS ...): {len(stages)} stage(s), {len(named)} named"]
    build, runtime = stages[0], stages[-1]

    def runs(stage: dict) -> list[str]:
        return [" ".join(c.value) for c in stage["commands"] if c.cmd == "RUN"]

    if not any(re.search(r"pip wheel|-m build", r) for r in runs(build)):
        problems.append("the build stage does not build a wheel (pip wheel / python -m build)")
    if runtime["image"] != "python:3.11-slim":
        problems.append(f"the runtime stage is {runtime['image']}, not python:3.11-slim")
    copies = [c for c in runtime["commands"] if c.cmd == "COPY"]
    if not any(f"--from={build['name']}" in c.flags for c in copies):
        problems.append("the runtime stage copies nothing from the build stage")
    installs = [r for r in runs(runtime) if "pip install" in r and ".whl" in r]
    if not installs:
        problems.append("the runtime stage installs no .whl")
    extras = set()
    for r in installs:
        for group in re.findall(r"\[([^\]]+)\]", r):
            resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: runtime["args"].get(m.group(1), ""), group)
            extras |= {e.strip() for e in resolved.split(",") if e.strip()}
    if not {"api", "slo"} <= extras:
        problems.append(f"the wheel is installed without the judge's extras api and slo (got {sorted(extras)})")
    if extras & {"model", "all"} or any("torch" in r for r in runs(runtime)):
        problems.append("the runtime installs torch (the model extra): the judge needs none")
    if _runtime_user(text) in ("root", "0", ""):
        problems.append("the runtime runs as root: no USER, or USER root")
    last = {}
    for c in runtime["commands"]:
        last[c.cmd] = c
    entry, cmd = last.get("ENTRYPOINT"), last.get("CMD")
    if entry is None or not entry.json or list(entry.value) != ["harness"]:
        problems.append('ENTRYPOINT must be ["harness"] (exec form)')
    if cmd is None or not cmd.json or list(cmd.value) != SERVE_CMD:
        problems.append(f"CMD must be {SERVE_CMD} (exec form)")
    health = last.get("HEALTHCHECK")
    check = " ".join(health.value) if health else ""
    if (
        not health
        or health.value[0] != "CMD"
        or "/healthz" not in check
        or "urllib" not in check
        or ":8090" not in check
    ):
        problems.append("a HEALTHCHECK that GETs :8090/healthz with urllib")
    exposed = {p for c in runtime["commands"] if c.cmd == "EXPOSE" for p in c.value}
    if not exposed & {"8090", "8090/tcp"}:
        problems.append("EXPOSE 8090")
    # Every file the stages copy from the context exists and is not left out by .dockerignore.
    for stage in stages:
        for c in stage["commands"]:
            if c.cmd in ("COPY", "ADD") and not any(f.startswith("--from") for f in c.flags):
                for src in c.value[:-1]:
                    if not (ROOT / src).exists():
                        problems.append(f"COPY {src}: no such file in the repository")
                    elif ignore is not None and _ignored(src, ignore):
                        problems.append(f"COPY {src}: .dockerignore leaves it out of the build context")
    return problems


def test_the_dockerfile_builds_a_wheel_and_runs_the_judge_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile_problems(text, _dockerignore()) == []


@pytest.mark.parametrize(
    "old, new",
    [
        ("USER 10001:10001", "USER root"),
        ("USER 10001:10001", ""),
        ('ENTRYPOINT ["harness"]', "ENTRYPOINT harness"),
        ("HEALTHCHECK", "# HEALTHCHECK"),
        ("EXPOSE 8090", "EXPOSE 8000"),
        ("ARG EXTRAS=api,slo", "ARG EXTRAS=slo"),
        ("ARG EXTRAS=api,slo", "ARG EXTRAS=api,slo,model"),
        ("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.12 AS runtime"),
        ("COPY --from=build /dist /tmp/dist", "COPY --from=other /dist /tmp/dist"),
        ('"--port", "8090"', '"--port", "8080"'),
        ("COPY dashboards ./dashboards", "COPY dashboard ./dashboards"),
    ],
)
def test_the_dockerfile_check_refuses_a_broken_copy(old: str, new: str) -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert old in text
    assert dockerfile_problems(text.replace(old, new), _dockerignore())


def test_a_single_stage_dockerfile_is_refused() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    runtime = text[text.index("FROM ${PYTHON_IMAGE} AS runtime") :]
    assert dockerfile_problems("ARG PYTHON_IMAGE=python:3.11-slim\n" + runtime)


def test_the_dockerignore_keeps_the_sources_and_drops_the_rest() -> None:
    patterns = _dockerignore()
    kept_paths = ["pyproject.toml", "setup.py", "harness/cli/__init__.py", "reference_model/weights"]
    kept_paths += ["examples/slo.yaml", "scenarios", "dashboards", "deploy/judge-serve.yaml"]
    for kept in kept_paths:
        assert not _ignored(kept, patterns), kept
    dropped_paths = [".git/config", ".venv/bin/python", "reports/x/decision.json", "tests/unit/test_deploy.py"]
    dropped_paths += ["harness/__pycache__/cli.cpython-311.pyc", "deploy/Dockerfile", "build/lib"]
    for dropped in dropped_paths:
        assert _ignored(dropped, patterns), dropped
    assert _ignored("harness/cli/__init__.py", [*patterns, "harness/cli"])  # the matcher can say no
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile_problems(text, [*patterns, "reference_model"])  # a source left out of the context


# ---------------------------------------------------------------------------------------------
# The GitHub Actions composite action

ACTION = DEPLOY / "github-action" / "action.yml"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SHELLS = {"bash", "pwsh", "python", "sh", "cmd", "powershell"}
COLORS = {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}


def _action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def action_problems(action: dict) -> list[str]:
    """GitHub's action metadata rules (docs: metadata syntax for GitHub Actions) that hold without
    the network, and one of ours: no expression pasted into a script (inputs go through env)."""
    problems = []
    for key in ("name", "description", "runs"):
        if not action.get(key):
            problems.append(f"no {key}")
    unknown = set(action) - {"name", "author", "description", "inputs", "outputs", "runs", "branding"}
    problems += [f"unknown top-level key {k}" for k in sorted(unknown)]
    ident = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
    inputs = action.get("inputs") or {}
    for name, spec in inputs.items():
        if not ident.match(name):
            problems.append(f"input {name}: not a valid id")
        if not isinstance(spec, dict) or not spec.get("description"):
            problems.append(f"input {name}: no description")
            continue
        if "required" in spec and not isinstance(spec["required"], bool):
            problems.append(f"input {name}: required must be a boolean")
        if "default" in spec and not isinstance(spec["default"], str):
            problems.append(f"input {name}: default {spec['default']!r} must be a string")
    runs = action.get("runs") or {}
    if runs.get("using") != "composite":
        problems.append(f"runs.using is {runs.get('using')!r}, not composite")
    steps = runs.get("steps") or []
    if not steps:
        problems.append("a composite action needs runs.steps")
    ids: set[str] = set()
    for i, step in enumerate(steps):
        label = step.get("name") or f"step {i}"
        if ("run" in step) == ("uses" in step):
            problems.append(f"{label}: exactly one of run and uses")
        if "run" in step:
            if step.get("shell") not in SHELLS:
                problems.append(f"{label}: a run step of a composite action needs a shell (got {step.get('shell')})")
            if EXPR.search(str(step["run"])):
                problems.append(f"{label}: an expression pasted into the script (pass it through env)")
        if "uses" in step and not re.match(r"^([\w.-]+/[\w./-]+@[\w.-]+|\./.+|docker://.+)$", step["uses"]):
            problems.append(f"{label}: uses {step['uses']!r} names no version")
        for ref in EXPR.findall(json.dumps({k: v for k, v in step.items() if k != "id"})):
            for step_id in re.findall(r"\bsteps\.([A-Za-z_][\w-]*)\.", ref):
                if step_id not in ids:
                    problems.append(f"{label}: steps.{step_id} is not an earlier step")
        if "id" in step:
            if not ident.match(step["id"]) or step["id"] in ids:
                problems.append(f"{label}: id {step['id']!r} is invalid or repeated")
            ids.add(step["id"])
    for name, spec in (action.get("outputs") or {}).items():
        if not isinstance(spec, dict) or "value" not in spec or not spec.get("description"):
            problems.append(f"output {name}: a composite action's output needs a description and a value")
            continue
        for step_id in re.findall(r"\bsteps\.([A-Za-z_][\w-]*)\.", str(spec["value"])):
            if step_id not in ids:
                problems.append(f"output {name}: no step {step_id}")
    for ref in EXPR.findall(json.dumps(action)):
        for name in re.findall(r"\binputs\.([A-Za-z_][\w-]*)", ref):
            if name not in inputs:
                problems.append(f"${{{{ inputs.{name} }}}} is not declared")
    branding = action.get("branding") or {}
    if branding and branding.get("color") not in COLORS:
        problems.append(f"branding color {branding.get('color')!r}")
    return problems


def test_the_action_follows_githubs_metadata_rules() -> None:
    action = _action()
    assert action_problems(action) == []
    inputs = action["inputs"]
    for name in ("baseline-url", "canary-url", "scenario", "duration", "spec", "judge-config", "out"):
        assert name in inputs, name
    assert inputs["baseline-url"]["required"] and inputs["canary-url"]["required"]
    assert inputs["fail-on-hold"]["default"] == "true" and inputs["python-version"]["default"] == "3.11"
    uses = [s["uses"].split("@")[0] for s in action["runs"]["steps"] if "uses" in s]
    assert uses == ["actions/setup-python", "actions/upload-artifact"]


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a["runs"]["steps"][1].pop("shell"),
        lambda a: a["runs"]["steps"][2]["env"].update(X="${{ inputs.canary }}"),
        lambda a: a["runs"].update(using="node20"),
        lambda a: a.pop("description"),
        lambda a: a["runs"]["steps"][1].update(run="pip install ${{ inputs.package }}"),
        lambda a: a["outputs"]["verdict"].update(value="${{ steps.judge.outputs.verdict }}"),
        lambda a: a["inputs"]["fail-on-hold"].update(default=True),
        lambda a: a["runs"]["steps"][0].update(uses="actions/setup-python"),
        lambda a: a["runs"]["steps"][3].update(uses="actions/upload-artifact@v4"),
    ],
)
def test_the_action_check_refuses_a_broken_copy(change) -> None:
    broken = copy.deepcopy(_action())
    change(broken)
    assert action_problems(broken)


def _step(action: dict, *, id: str | None = None, name: str | None = None) -> dict:
    (step,) = [s for s in action["runs"]["steps"] if (id and s.get("id") == id) or (name and s.get("name") == name)]
    return step


def _run_step(step: dict, values: dict[str, str], tmp_path: Path, path_prefix: Path | None = None):
    """Run a composite step's script as the runner would: its env with the expressions resolved
    from ``values``, bash -e, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for key, value in (step.get("env") or {}).items():
        env[key] = EXPR.sub(lambda m: values.get(m.group(1), ""), str(value))
    env["GITHUB_OUTPUT"] = str(tmp_path / "output")
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary")
    for f in ("output", "summary"):
        (tmp_path / f).touch()
    script = tmp_path / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    shell = {"bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"]}[step["shell"]]
    done = subprocess.run([*shell, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines() if "=" in line)
    return done, outputs, (tmp_path / "summary").read_text()


@pytest.mark.parametrize(
    "rc, fail_on_hold, passes",
    [
        ("0", "true", True),
        ("1", "true", False),
        ("1", "false", False),
        ("2", "true", False),
        ("2", "TRUE", False),
        ("2", "false", True),
        ("2", "perhaps", False),
        ("64", "false", False),
        ("70", "true", False),
        ("", "true", False),
    ],
)
def test_the_last_step_maps_the_exit_code(tmp_path: Path, rc: str, fail_on_hold: str, passes: bool) -> None:
    step = _step(_action(), name="Pass or fail on the verdict")
    done, _, _ = _run_step(step, {"steps.gate.outputs.exit-code": rc, "inputs.fail-on-hold": fail_on_hold}, tmp_path)
    assert (done.returncode == 0) == passes, done.stdout + done.stderr
    if rc in ("1", "2") and not passes:
        assert "::error" in done.stdout


FAKE_HARNESS = """#!/bin/sh
# A stand-in for harness gate: records its arguments, writes a report, exits as told.
printf '%s\\n' "$@" > "$FAKE_ARGV"
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out="$a"; prev="$a"; done
mkdir -p "$out"
printf '# Canary gate: %s\\n' "$FAKE_VERDICT" > "$out/summary.md"
printf '{"verdict": "%s", "score": 86.67}\\n' "$FAKE_VERDICT" > "$out/decision.json"
exit "$FAKE_RC"
"""


@pytest.mark.parametrize("rc, verdict", [(0, "PROMOTE"), (1, "ROLLBACK"), (2, "HOLD")])
def test_the_gate_step_records_the_verdict_and_never_fails_itself(tmp_path: Path, rc: int, verdict: str) -> None:
    action = _action()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "harness").write_text(FAKE_HARNESS, encoding="utf-8")
    (bin_dir / "harness").chmod(0o755)
    values = {f"inputs.{k}": v.get("default", "") for k, v in action["inputs"].items()}
    values |= {"inputs.baseline-url": "http://stable:8000", "inputs.canary-url": "http://canary:8000"}
    values |= {"inputs.api-token": "t0ken", "inputs.spec": "slo yaml/with space.yaml"}
    step = dict(_step(action, id="gate"))
    step["env"] = {**step["env"], "FAKE_ARGV": str(tmp_path / "argv"), "FAKE_RC": str(rc), "FAKE_VERDICT": verdict}
    done, outputs, _ = _run_step(step, values, tmp_path, path_prefix=bin_dir)
    assert done.returncode == 0, done.stderr
    assert outputs == {"exit-code": str(rc), "verdict": verdict, "score": "86.67"}
    argv = (tmp_path / "argv").read_text().splitlines()
    from harness.cli import build_parser

    parsed = build_parser().parse_args(argv)  # harness gate takes every flag the step passes
    assert parsed.command == "gate" and parsed.baseline == "http://stable:8000"
    assert str(parsed.spec) == "slo yaml/with space.yaml" and parsed.auth_env == "HARNESS_TARGET_TOKEN"
    assert "t0ken" not in argv  # the token goes through the environment, never the command line
    summary = _step(action, name="Write the job summary")
    values["steps.gate.outputs.exit-code"] = str(rc)
    done, _, written = _run_step(summary, values, tmp_path)
    assert done.returncode == 0 and written == f"# Canary gate: {verdict}\n"


def test_the_summary_step_says_when_there_is_no_report(tmp_path: Path) -> None:
    step = _step(_action(), name="Write the job summary")
    done, _, written = _run_step(step, {"inputs.out": "missing", "steps.gate.outputs.exit-code": "69"}, tmp_path)
    assert done.returncode == 0 and "exited 69" in written
