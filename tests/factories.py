"""Shared builders of test data: record sets written as the harness writes them, the flaw zoo
(``harness.load.flaws``) applied offline to recorded answers by the fault proxy's own code, and the
decision record's typed parts made from plain values (``slo_records``, ``typed_inputs``,
``decision_parts``), as each stage makes its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.records import RecordWriter

if TYPE_CHECKING:
    from harness.report import DecisionParts
    from harness.report.model import Inputs, SloRecord

__all__ = [
    "write_records",
    "flawed_records",
    "same_records",
    "slo_records",
    "typed_inputs",
    "decision_parts",
    "ANSWER_FIELDS",
]

# What a request's answer sets in its record (the rest says which request it was: kept as recorded).
ANSWER_FIELDS = (
    "latency_s",
    "status",
    "outcome",
    "error",
    "caption",
    "confidence",
    "model_version",
    "safety_flagged",
    "embedding",
)


def write_records(folder: Path, *frames: pd.DataFrame) -> Path:
    """Record DataFrames written into ``folder`` as one record set, in ``t_start`` order (missing
    values as nulls, the way the clients record them)."""
    df = pd.concat(frames, ignore_index=True).sort_values("t_start", kind="stable")
    with RecordWriter(folder) as w:
        w.write_many(df.astype(object).where(pd.notna(df), None).to_dict("records"))
    return folder


def _v1_answer(row: dict) -> bytes:
    """The contract-v1 answer (head and body) that the client recorded as ``row``."""
    emb = row.get("embedding")
    doc = {
        "caption": row["caption"],
        "confidence": row["confidence"],
        "model_version": row["model_version"],
        "request_id": row["request_id"],
        "safety": {"flagged": bool(row["safety_flagged"])},
        "embedding": None if emb is None else [float(x) for x in emb],
    }
    body = json.dumps(doc).encode()
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def _split_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    return int(lines[0].split(" ")[1]), headers, body


def flawed_records(
    frames: Sequence[pd.DataFrame], flaw: str | None, fraction: float = 0.2, seed: int = 7
) -> list[pd.DataFrame]:
    """The records ``frames`` (one target's phases, in the order they were sent) as they would have
    been recorded behind a fault proxy set to flaw ``flaw`` of the zoo on ``fraction`` of the
    requests (None: a proxy with no faults). Each answered request goes through the proxy's own
    code, a proxy built with ``seed`` but never started: its draw (``FaultProxy._draw``: a slowdown
    added to the latency, an injected status), its answer rewrite (``rewrite_json_answer`` with
    ``FaultProxy._flaw_answer``) or its injected error answer (``FaultProxy._status_answer``); the
    answer is then classified by the client's ``result_from_response``. A request that got no
    answer (timeout, connection error, an error status) is kept as it was."""
    from harness.client import ContractV1Adapter, record_row, result_from_response
    from harness.load.flaws import flaw_faults
    from harness.load.proxy import FaultProxy, rewrite_json_answer

    proxy = FaultProxy("http://127.0.0.1:9", seed=seed, faults=flaw_faults(flaw, fraction) if flaw else None)
    adapter = ContractV1Adapter()
    out = []
    for frame in frames:
        rows = {}
        for i in frame.sort_values("t_start", kind="stable").index:  # the proxy's draws, in request order
            row = frame.loc[i].to_dict()
            draw = proxy._draw(captioning=True)
            if row["outcome"] != "ok":
                rows[i] = row
                continue
            if draw.status is not None:
                answer = proxy._status_answer(draw.status)
            else:
                answer = _v1_answer(row)
                head, _, body = answer.partition(b"\r\n\r\n")
                answer = rewrite_json_answer(head + b"\r\n\r\n", body, proxy._flaw_answer) or answer
            status, headers, body = _split_answer(answer)
            latency = float(row["latency_s"]) + draw.delay_s
            result = result_from_response(adapter, row["request_id"], row["t_start"], latency, status, headers, body)
            rec = record_row(result, row["run_id"], row["target"], row["scenario"])
            rows[i] = {**row, **{k: rec[k] for k in ANSWER_FIELDS}}
        out.append(pd.DataFrame([rows[i] for i in frame.index], columns=frame.columns))
    return out


def same_records(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two record frames hold the same values (embeddings compared as numbers)."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for col in a.columns:
        for x, y in zip(a[col], b[col]):
            if isinstance(x, (list, np.ndarray)) or isinstance(y, (list, np.ndarray)):
                if x is None or y is None or not np.array_equal(np.asarray(x, float), np.asarray(y, float)):
                    return False
            elif not (x == y or (pd.isna(x) and pd.isna(y))):
                return False
    return True


# ---------------------------------------------------------------------------- the decision record's parts


def slo_records(rows: Sequence[Mapping[str, Any]]) -> list[SloRecord]:
    """SLO rows given as plain values (numpy values and NaN made plain first), as their models."""
    from harness.report.decision import plain
    from harness.report.model import SloRecord

    return [SloRecord.model_validate(r) for r in plain(list(rows))]


def typed_inputs(doc: Mapping[str, Any]) -> Inputs:
    """What ran, given as plain values (numpy values and NaN made plain first), as ``Inputs``."""
    from harness.report.decision import plain
    from harness.report.model import Inputs

    return Inputs.model_validate(plain(dict(doc)))


def decision_parts(**parts: Any) -> DecisionParts:
    """``DecisionParts`` from parts given as plain values (``figures``, ``worst_captions``,
    ``contracts``, ``findings``, ``drift``, ``analysis``, ``artifacts``; numpy values and NaN made
    plain first), each validated into its model; a part already a model is kept."""
    from harness.report import DecisionParts
    from harness.report import model as m
    from harness.report.decision import plain

    by_role = {"figures": m.TargetFigures, "contracts": m.ContractReport}
    listed = {"worst_captions": m.WorstCaption, "findings": m.Finding}
    single = {"drift": m.Drift, "analysis": m.Analysis, "artifacts": m.Artifacts}
    typed: dict[str, Any] = {}
    for name, value in plain(parts).items():
        if name in by_role:
            typed[name] = {k: by_role[name].model_validate(v) for k, v in value.items()}
        elif name in listed:
            typed[name] = [listed[name].model_validate(v) for v in value]
        elif name in single:
            if value is not None or name != "artifacts":  # no artifacts: none written (the default)
                typed[name] = None if value is None else single[name].model_validate(value)
        else:
            raise TypeError(f"the decision record has no part {name!r}")
    return DecisionParts(**typed)


def judge_run(run: Path, out: Path) -> dict:
    """``harness judge`` on a run folder (its own baseline and canary), in this process: the decision
    record it prints, checked against the exit code it gave."""
    from cli_run import run_cli
    from harness.verdicts import VERDICT_EXIT

    code, stdout, stderr = run_cli(["judge", "--baseline", run, "--canary", run, "--out", out, "--json"])
    assert stdout, stderr
    rec = json.loads(stdout)
    assert code == VERDICT_EXIT[rec["verdict"]], stderr
    return rec
