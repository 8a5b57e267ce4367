"""A report folder for the dashboard tests, made by the harness's own writers on seeded data.

``build_reports(root)`` writes two runs: ``run-a`` (older; identical targets, PROMOTE; only
``decision.json`` and ``summary.md``) and ``run-b`` (newer; the canary is three times slower,
ROLLBACK; every documented file: records, quality, drift, a dataset of shapes images, worst
captions with images, findings; some captions carry markup that must show as plain text), plus a
folder that is not a run. Both records are built by ``build_decision``, as the gate builds them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from factories import decision_parts, slo_records, typed_inputs
from harness.canary import MetricSample, judge
from harness.datasets import generate_shapes, write_coco
from harness.drift.report import write_report
from harness.quality.report import write_quality
from harness.records import RecordWriter, RequestRecord, compact
from harness.report import build_decision, render_markdown, write_decision
from harness.report.model import Inputs, SloRecord

__all__ = ["Reports", "build_reports", "N_IMAGES", "REPEATS", "PRICE_PER_HOUR", "HOSTILE_CAPTION"]

N_IMAGES, REPEATS, PRICE_PER_HOUR = 8, 10, 2.0
T0 = 1_700_000_000.0
# A caption with markup in it: the dashboard and summary.md must show it as text.
HOSTILE_CAPTION = "a *red* circle <img src=x onerror=alert(1)> [see](http://x) `tick` | pipe $x$"


@dataclass(frozen=True)
class Reports:
    root: Path
    old: Path
    new: Path
    old_decision: dict
    new_decision: dict


def _records(rng: np.random.Generator, target: str, slow: float, t0: float, errors: int) -> list[RequestRecord]:
    out = []
    n = N_IMAGES * REPEATS
    lat = rng.lognormal(np.log(0.08), 0.3, n) * slow
    conf = np.clip(rng.normal(0.8, 0.05, n), 0, 1)
    for k in range(n):
        image = k % N_IMAGES
        bad = k < errors
        out.append(
            RequestRecord(
                run_id="run-b",
                target=target,
                scenario="steady",
                request_id=f"{target}-{k}",
                image_id=str(image),
                t_start=t0 + 0.25 * k,
                latency_s=float(lat[k]),
                status=500 if bad else 200,
                outcome="http_error" if bad else "ok",
                error="internal" if bad else None,
                caption=None
                if bad
                else (f"a small red circle number {image}" if target == "baseline" else f"a red circle number {image}"),
                confidence=None if bad else float(conf[k]),
                model_version=f"tiny-{target}",
                image_bytes=2048,
                image_w=128,
                image_h=128,
                safety_flagged=False,
            )
        )
    return out


def _figures(recs: list[RequestRecord], cider: np.ndarray, queue: int | None) -> dict:
    ok = [r for r in recs if r.outcome == "ok"]
    lat = np.array([r.latency_s for r in ok])
    span = max(r.t_start + r.latency_s for r in recs) - min(r.t_start for r in recs)
    fig = {
        "requests": len(recs),
        "throughput_rps": len(recs) / span,
        "p50_s": float(np.percentile(lat, 50)),
        "p95_s": float(np.percentile(lat, 95)),
        "p99_s": float(np.percentile(lat, 99)),
        "error_rate": (len(recs) - len(ok)) / len(recs),
        "timeout_rate": 0.0,
        "safety_flag_rate": 0.0,
        "coverage": len(ok) / len(recs),
        "cost_per_1000": PRICE_PER_HOUR * span / 3600 / len(ok) * 1000,
        "mean_confidence": float(np.mean([r.confidence for r in ok])),
        "cider_d": float(cider.mean()),
        "cider_d_ci": {"low": float(cider.mean() - 0.1), "high": float(cider.mean() + 0.1)},
        "hybrid_score": float(50 * min(cider.mean(), 2.0)),
        "goodput_rps": len(ok) / span,
    }
    if queue is not None:
        fig["queue_depth_max"] = queue
    return fig


def _slos(canary_burn: float) -> list[SloRecord]:
    rows = []
    for target, burn in (("baseline", 0.5), ("canary", canary_burn)):
        for name, kind, objective in (("latency-p95", "latency", 0.95), ("availability", "availability", 0.99)):
            b = burn if kind == "latency" else 0.2
            rows.append(
                {
                    "target": target,
                    "name": name,
                    "kind": kind,
                    "objective": objective,
                    "sli": 1 - (1 - objective) * b,
                    "good": 80,
                    "total": 80,
                    "budget_remaining": round(1 - b, 6),
                    "projected_burn_rate": b,
                    "would_page": b >= 14.4,
                    "would_ticket": b >= 1.0,
                    "alerts": [],
                }
            )
    return slo_records(rows)


def _inputs(canary_version: str) -> Inputs:
    return typed_inputs(
        {
            "targets": {
                "baseline": {"url": "http://127.0.0.1:9001", "model_version": "tiny-baseline"},
                "canary": {
                    "url": "http://127.0.0.1:9002",
                    "protocol": "openai-chat",
                    "model": "qwen2-vl",
                    "model_version": canary_version,
                },
            },
            "scenario": "steady",
            "load": {"users": 4, "duration_s": 20.0, "seed": 0},
            "duration_s": 20,
            "dataset": "dataset",
        }
    )


def _old_run(root: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(1)
    n, images = 400, 200
    lat = rng.lognormal(np.log(0.08), 0.3, n)
    zeros = np.zeros(n)
    ids = [str(i) for i in range(images)]
    per_image = {
        "quality": rng.normal(1.0, 0.2, images),
        "confidence": np.clip(rng.normal(0.9, 0.03, images), 0, 1),
        "caption_length": rng.integers(4, 12, images).astype(float),
    }
    same = {
        **{k: lat for k in ("latency_p50", "latency_p95", "latency_p99")},
        **{
            k: zeros
            for k in (
                "error_rate",
                "timeout_rate",
                "unusable_rate",
                "blank_rate",
                "degenerate_rate",
                "pii_rate",
                "safety_flag_rate",
            )
        },
        **{k: pd.Series(x, index=ids) for k, x in per_image.items()},
        "caption_changed": pd.Series(["a circle"] * images, index=ids),
    }
    v = judge({k: MetricSample(x, x) for k, x in same.items()})
    assert v.verdict == "PROMOTE", v.reasons
    figs = {
        t: {
            "requests": 200,
            "throughput_rps": 8.0,
            "p95_s": 0.13,
            "p99_s": 0.16,
            "error_rate": 0.0,
            "cost_per_1000": 0.0694,
            "safety_flag_rate": 0.0,
            "cider_d": 1.0,
            "cider_d_ci": {"low": 0.95, "high": 1.05},
            "hybrid_score": 50.0,
        }
        for t in ("baseline", "canary")
    }
    rec = build_decision(
        v, _slos(0.5), _inputs("tiny-baseline"), "run-a", decision_parts(figures=figs), clock=lambda: T0
    )
    folder = root / "run-a"
    write_decision(folder, rec)
    (folder / "summary.md").write_text(render_markdown(rec))
    return folder, json.loads((folder / "decision.json").read_text())


def _new_run(root: Path) -> tuple[Path, dict]:
    folder = root / "run-b"
    rng = np.random.default_rng(7)
    samples = list(generate_shapes(N_IMAGES, seed=3))
    write_coco(samples, folder / "dataset")
    base = _records(rng, "baseline", 1.0, T0 + 3600, errors=0)
    can = _records(rng, "canary", 3.0, T0 + 3600, errors=2)
    with RecordWriter(folder) as w:
        w.write_many([r for pair in zip(base, can) for r in pair])
    compact(folder)
    cider = {t: np.round(rng.normal(1.2, 0.3, N_IMAGES), 4) for t in ("baseline", "canary")}
    write_quality(
        {
            t: {
                "metrics": {"CIDEr-D": {"corpus": float(c.mean()), "ci": None}},
                "per_image": [
                    {"image_id": i, "caption": f"caption {i}", "CIDEr-D": float(c[i])} for i in range(N_IMAGES)
                ],
            }
            for t, c in cider.items()
        },
        folder,
    )
    ok = lambda rs: [r for r in rs if r.outcome == "ok"]  # noqa: E731
    lat = MetricSample([r.latency_s for r in ok(base)], [r.latency_s for r in ok(can)])
    none = MetricSample(np.zeros(len(ok(base))), np.zeros(len(ok(can))))
    ids = [str(i) for i in range(N_IMAGES)]
    v = judge(
        {
            "latency_p50": lat,
            "latency_p95": lat,
            "latency_p99": lat,
            "error_rate": MetricSample([r.outcome != "ok" for r in base], [r.outcome != "ok" for r in can]),
            "timeout_rate": MetricSample(np.zeros(len(base)), np.zeros(len(can))),
            "unusable_rate": none,
            "blank_rate": none,
            "pii_rate": none,
            "safety_flag_rate": none,
            "quality": MetricSample(pd.Series(cider["baseline"], index=ids), pd.Series(cider["baseline"], index=ids)),
            "caption_changed": MetricSample(
                pd.Series([f"a small red circle number {i}" for i in ids], index=ids),
                pd.Series([f"a red circle number {i}" for i in ids], index=ids),
            ),
        }
    )
    assert v.verdict == "ROLLBACK", v.reasons
    drift = {
        "drift": True,
        "alpha": 0.05,
        "correction": "bonferroni",
        "alpha_per_detector": 0.025,
        "drifted": ["confidence_ks"],
        "results": [
            {
                "detector": "confidence_ks",
                "method": "ks",
                "feature": "confidence",
                "statistic_name": "D",
                "statistic": 0.41,
                "p_value": 0.0004,
                "alpha": 0.025,
                "threshold": None,
                "drift": True,
                "n_reference": 80,
                "n_current": 78,
                "n_reference_used": 80,
                "n_current_used": 78,
                "min_detectable": 0.25,
                "seconds": 0.01,
                "note": None,
            },
            {
                "detector": "caption_length_psi",
                "method": "psi",
                "feature": "caption",
                "statistic_name": "PSI",
                "statistic": 0.02,
                "p_value": 0.61,
                "alpha": 0.025,
                "threshold": 0.2,
                "drift": False,
                "n_reference": 80,
                "n_current": 78,
                "n_reference_used": 80,
                "n_current_used": 78,
                "min_detectable": 0.1,
                "seconds": 0.01,
                "note": None,
            },
        ],
        "skipped": [],
        "distributions": {},
        "reference": {"source": "baseline", "n_records": 80},
        "current": {"source": "canary", "n_records": 78},
        "seconds": 0.02,
        "quality": None,
    }
    write_report(drift, folder)
    worst = [
        {
            "target": "canary",
            "image_id": str(i),
            "image_path": f"dataset/images/{samples[i].file_name}",
            "caption": f"worst caption of image {i}",
            "references": samples[i].captions,
            "cider_d": float(cider["canary"][i]),
            "confidence": 0.5,
        }
        for i in (3, 5)
    ]
    worst[1]["caption"] = HOSTILE_CAPTION
    worst.append(
        {
            "target": "canary",
            "image_id": "99",
            "image_path": "dataset/images/gone.png",
            "caption": "an image that is gone",
            "references": ["a gone image"],
            "cider_d": 0.0,
            "confidence": 0.1,
        }
    )
    extra = {
        "figures": {"baseline": _figures(base, cider["baseline"], None), "canary": _figures(can, cider["canary"], 7)},
        "worst_captions": worst,
        "findings": [
            {
                "target": "canary",
                "check": "pii",
                "count": 1,
                "answers": len(ok(can)),
                "examples": [
                    {
                        "request_id": "canary-5",
                        "image_id": "5",
                        "caption": HOSTILE_CAPTION + " mail me@evil.example",
                        "match": "me@evil.example",
                    }
                ],
            }
        ],
        "drift": {
            "drifted": True,
            "detectors": [
                {
                    "name": r["detector"],
                    "method": r["method"],
                    "statistic": r["statistic"],
                    "p_value": r["p_value"],
                    "threshold": r["threshold"],
                    "drift": r["drift"],
                }
                for r in drift["results"]
            ],
        },
        "artifacts": {
            "records": "records.parquet",
            "quality": "quality.json",
            "drift": "drift.json",
            "drift_html": "drift.html",
            "summary_md": "summary.md",
            "dataset": "dataset",
        },
    }
    rec = build_decision(
        v, _slos(16.0), _inputs("tiny-slow"), "run-b", decision_parts(**extra), clock=lambda: T0 + 3600
    )
    write_decision(folder, rec)
    (folder / "summary.md").write_text(render_markdown(rec))
    return folder, json.loads((folder / "decision.json").read_text())


def build_reports(root: Path) -> Reports:
    """Write the two runs (and a folder that is not a run) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    old, old_rec = _old_run(root)
    new, new_rec = _new_run(root)
    (root / "scratch").mkdir()
    (root / "scratch" / "notes.txt").write_text("not a run\n")
    return Reports(root, old, new, json.loads((old / "decision.json").read_text()), new_rec)


APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"


def open_app(root: Path, monkeypatch, page: str | None = None):
    """The dashboard over the report root ``root`` in Streamlit's AppTest, run once and switched to
    ``page`` (``views/<page>.py``) when given; it must have raised nothing."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HARNESS_REPORTS", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at
