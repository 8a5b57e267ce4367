"""The judge's configuration from YAML: thresholds, group weights, per-metric overrides
(tolerance, direction, critical, required data) and the CLIP that scores ``clipscore``. Anything
not given keeps Kayenta's defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.canary.metric import CLIP_EMBEDDED, CLIP_OFF, JudgeConfig
from harness.errors import DataError, InputMissingError
from harness.text import short_repr

__all__ = ["load_judge_config", "parse_judge_config", "judge_config_doc", "write_judge_config"]

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


def _models():
    """The file's models (pydantic is imported when a config is read, not with the judge)."""
    from typing import Annotated, Literal

    from pydantic import Field

    from harness.validation import Strict

    Amount = Annotated[float, Field(ge=0.0, le=1e12)]

    class MetricOverride(Strict):
        """One metric's settings; what is not given keeps the metric's default."""

        group: str | None = None
        direction: Literal["increase", "decrease", "either"] | None = None
        critical: bool | None = None
        must_have_data: bool | None = None
        tolerance: Amount | None = None
        tolerance_abs: Amount | None = None
        must_detect: Amount | None = None
        delta: Amount | None = None
        unit: str | None = None
        description: str | None = None

    class JudgeConfigFile(Strict):
        """``--judge-config FILE``: thresholds, group weights and per-metric overrides."""

        pass_threshold: Annotated[float, Field(ge=0.0, le=100.0)] | None = None
        marginal_threshold: Annotated[float, Field(ge=0.0, le=100.0)] | None = None
        confidence: Annotated[float, Field(ge=0.5, le=0.9999)] | None = None
        min_samples: Annotated[int, Field(ge=1, le=10**9)] | None = None
        seed: Annotated[int, Field(ge=0, le=2**32)] | None = None
        decisive_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
        groups: Annotated[dict[str, Amount], Field(min_length=1)] | None = None
        metrics: dict[str, MetricOverride] | None = None
        clip: Annotated[str, Field(min_length=1, max_length=4096)] | None = None

    return JudgeConfigFile


def _whole(v: Any) -> Any:
    """YAML's 30.0 for a count is the count 30 (strict models refuse a float for an int)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _clip(value: str | None, folder: Path | None) -> str | None:
    """The config's ``clip``: ``embedded``, ``off``, or a CLIP folder (a relative one is taken from
    the config's own folder)."""
    if value is None or value.strip() in (CLIP_EMBEDDED, CLIP_OFF):
        return None if value is None else value.strip()
    if not value.strip() or "\0" in value:
        raise DataError("clip: must be embedded, off or a CLIP folder (got a blank name or a NUL character)")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() or folder is None else folder / path)


def parse_judge_config(
    doc: Any, source: str = "<judge config>", base: JudgeConfig = JudgeConfig(), folder: Path | None = None
) -> JudgeConfig:
    """A ``JudgeConfig`` from a parsed YAML mapping: the file's model (``harness.validation``'s
    ``Strict``: unknown fields, text for numbers and NaN refused) and then the rules between fields;
    errors name the file and the bad field. ``folder``: where a relative ``clip`` folder is taken from."""
    from pydantic import ValidationError

    from harness.validation import first_error

    try:
        if doc is None:
            return base
        if not isinstance(doc, dict):
            raise DataError("the judge config must be a mapping")
        doc = {k: (_whole(v) if k in ("min_samples", "seed") else v) for k, v in doc.items()}
        try:
            f = _models().model_validate(doc)
        except ValidationError as exc:
            raise DataError(first_error(exc)) from None
        weights = dict(base.group_weights) if f.groups is None else dict(f.groups)
        if not any(w > 0 for w in weights.values()):
            raise DataError("groups: at least one group needs a weight above 0")
        metrics = list(base.metrics)
        by_name = {m.name: i for i, m in enumerate(metrics)}
        for name, override in (f.metrics or {}).items():
            if name not in by_name:
                raise DataError(f"metrics.{name}: unknown metric (known: {', '.join(by_name)})")
            changes = override.model_dump(exclude_unset=True)
            if "group" in changes and changes["group"] not in weights:
                raise DataError(
                    f"metrics.{name}.group: unknown group {short_repr(changes['group'])} "
                    f"(groups: {', '.join(sorted(weights))})"
                )
            metrics[by_name[name]] = replace(metrics[by_name[name]], **changes)
        unused = sorted({m.group for m in metrics} - set(weights))
        if unused:
            raise DataError(f"groups: no weight for {', '.join(unused)} (every metric's group needs one)")
        empty = sorted(set(weights) - {m.group for m in metrics})
        if empty:
            raise DataError(f"groups.{empty[0]}: no metric belongs to this group")
        given = {k: getattr(f, k) for k in ("pass_threshold", "marginal_threshold", "confidence", "decisive_p")}
        given.update(min_samples=f.min_samples, seed=f.seed, clip=_clip(f.clip, folder))
        cfg = replace(
            base, metrics=tuple(metrics), group_weights=weights, **{k: v for k, v in given.items() if v is not None}
        )
        if cfg.marginal_threshold > cfg.pass_threshold:
            raise DataError("marginal_threshold: must not exceed pass_threshold")
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
    return parse_judge_config(load_yaml(text, str(p)), str(p), base, p.resolve().parent)


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
        "clip": cfg.clip,
    }


def write_judge_config(cfg: JudgeConfig, path: str | Path) -> Path:
    import yaml

    p = Path(path)
    p.write_text(yaml.safe_dump(judge_config_doc(cfg), sort_keys=False))
    return p
