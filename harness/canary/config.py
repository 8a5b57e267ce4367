"""The judge's configuration from YAML: thresholds, group weights, and per-metric overrides
(tolerance, direction, critical, required data). Anything not given keeps Kayenta's defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.canary.metric import JudgeConfig, MetricSpec
from harness.errors import DataError, InputMissingError
from harness.text import short_repr

__all__ = ["load_judge_config", "parse_judge_config", "judge_config_doc", "write_judge_config"]

_TOP = ("pass_threshold", "marginal_threshold", "confidence", "min_samples", "seed", "decisive_p", "groups", "metrics")
_METRIC = (
    "group",
    "direction",
    "critical",
    "must_have_data",
    "tolerance",
    "tolerance_abs",
    "must_detect",
    "delta",
    "unit",
    "description",
)
_DIRECTIONS = ("increase", "decrease", "either")


def _num(v: Any, path: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DataError(f"{path}: must be a number (got {short_repr(v)})")
    if v != v or v in (float("inf"), float("-inf")):
        raise DataError(f"{path}: must be a finite number (got {short_repr(v)})")
    if (low is not None and v < low) or (high is not None and v > high):
        raise DataError(f"{path}: must be between {low:g} and {high:g} (got {short_repr(v)})")
    return float(v)


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise DataError(f"{path}: must be true or false (got {short_repr(v)})")
    return v


def _metric(spec: MetricSpec, doc: Any, path: str, groups: set[str]) -> MetricSpec:
    if not isinstance(doc, dict):
        raise DataError(f"{path}: must be a mapping of {', '.join(_METRIC)}")
    changes: dict[str, Any] = {}
    for k, v in doc.items():
        p = f"{path}.{k}"
        if k not in _METRIC:
            raise DataError(f"{p}: unknown field (known: {', '.join(_METRIC)})")
        if k == "group":
            if not isinstance(v, str) or v not in groups:
                raise DataError(f"{p}: unknown group {short_repr(v)} (groups: {', '.join(sorted(groups))})")
            changes[k] = v
        elif k == "direction":
            if v not in _DIRECTIONS:
                raise DataError(f"{p}: must be one of {', '.join(_DIRECTIONS)} (got {short_repr(v)})")
            changes[k] = v
        elif k in ("critical", "must_have_data"):
            changes[k] = _bool(v, p)
        elif k in ("tolerance", "tolerance_abs", "delta"):
            changes[k] = _num(v, p, 0.0, 1e12)
        elif k == "must_detect":
            changes[k] = None if v is None else _num(v, p, 0.0, 1e12)
        else:
            if not isinstance(v, str):
                raise DataError(f"{p}: must be text (got {short_repr(v)})")
            changes[k] = v
    return replace(spec, **changes)


def parse_judge_config(doc: Any, source: str = "<judge config>", base: JudgeConfig = JudgeConfig()) -> JudgeConfig:
    """A ``JudgeConfig`` from a parsed YAML mapping; errors name the file and the bad field."""
    try:
        if doc is None:
            return base
        if not isinstance(doc, dict):
            raise DataError("the judge config must be a mapping")
        for k in doc:
            if k not in _TOP:
                raise DataError(f"{k}: unknown field (known: {', '.join(_TOP)})")
        cfg = base
        weights = dict(base.group_weights)
        if "groups" in doc:
            if not isinstance(doc["groups"], dict) or not doc["groups"]:
                raise DataError("groups: must map group names to weights")
            weights = {str(g): _num(w, f"groups.{g}", 0.0, 1e12) for g, w in doc["groups"].items()}
            if not any(w > 0 for w in weights.values()):
                raise DataError("groups: at least one group needs a weight above 0")
        metrics = list(base.metrics)
        by_name = {m.name: i for i, m in enumerate(metrics)}
        mdocs = doc.get("metrics")
        if mdocs is not None and not isinstance(mdocs, dict):
            raise DataError("metrics: must map metric names to their settings")
        for name, mdoc in (mdocs or {}).items():
            if name not in by_name:
                raise DataError(f"metrics.{name}: unknown metric (known: {', '.join(by_name)})")
            metrics[by_name[name]] = _metric(metrics[by_name[name]], mdoc, f"metrics.{name}", set(weights))
        unused = sorted({m.group for m in metrics} - set(weights))
        if unused:
            raise DataError(f"groups: no weight for {', '.join(unused)} (every metric's group needs one)")
        empty = sorted(set(weights) - {m.group for m in metrics})
        if empty:
            raise DataError(f"groups.{empty[0]}: no metric belongs to this group")
        cfg = replace(cfg, metrics=tuple(metrics), group_weights=weights)
        for k in ("pass_threshold", "marginal_threshold"):
            if k in doc:
                cfg = replace(cfg, **{k: _num(doc[k], k, 0.0, 100.0)})
        if cfg.marginal_threshold > cfg.pass_threshold:
            raise DataError("marginal_threshold: must not exceed pass_threshold")
        if "confidence" in doc:
            cfg = replace(cfg, confidence=_num(doc["confidence"], "confidence", 0.5, 0.9999))
        if "min_samples" in doc:
            cfg = replace(cfg, min_samples=int(_num(doc["min_samples"], "min_samples", 1, 1e9)))
        if "decisive_p" in doc:
            cfg = replace(cfg, decisive_p=_num(doc["decisive_p"], "decisive_p", 0.0, 1.0))
        if "seed" in doc:
            cfg = replace(cfg, seed=int(_num(doc["seed"], "seed", 0, 2**32)))
        return cfg
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None


def load_judge_config(path: str | Path, base: JudgeConfig = JudgeConfig()) -> JudgeConfig:
    from harness.safe_yaml import load_yaml

    p = Path(path)
    if not p.exists():
        raise InputMissingError(f"{p}: judge config not found")
    if not p.is_file():
        raise DataError(f"{p}: the judge config must be a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{p}: the judge config is not UTF-8 text") from None
    return parse_judge_config(load_yaml(text, str(p)), str(p), base)


def judge_config_doc(cfg: JudgeConfig) -> dict[str, Any]:
    """The YAML document of a config (every field, every metric): ``parse_judge_config`` of it
    gives the same config back, so a saved run can be judged again exactly as it was."""
    return {
        "pass_threshold": cfg.pass_threshold,
        "marginal_threshold": cfg.marginal_threshold,
        "confidence": cfg.confidence,
        "min_samples": cfg.min_samples,
        "seed": cfg.seed,
        "decisive_p": cfg.decisive_p,
        "groups": dict(cfg.group_weights),
        "metrics": {m.name: {k: getattr(m, k) for k in _METRIC} for m in cfg.metrics},
    }


def write_judge_config(cfg: JudgeConfig, path: str | Path) -> Path:
    import yaml

    p = Path(path)
    p.write_text(yaml.safe_dump(judge_config_doc(cfg), sort_keys=False))
    return p
