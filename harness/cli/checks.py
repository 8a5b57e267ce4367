"""Checks of command-line values shared by the commands: each refuses a bad value with a
one-line ``UsageError`` (exit 64) before any work starts."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from harness.errors import UsageError

__all__ = ["finite_numbers", "at_least", "positive", "not_negative", "out_folder", "out_file"]


def _flag(name: str) -> str:
    return "--" + name.lstrip("-").replace("_", "-")


def finite_numbers(args: argparse.Namespace) -> None:
    """Refuse NaN and infinite values in every float option (no option of the harness means them)."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{_flag(name)} must be a finite number (got {value})")


def at_least(name: str, value: float | None, low: float) -> None:
    """``value`` (when given) must be at least ``low``."""
    if value is not None and not value >= low:
        raise UsageError(f"{_flag(name)} must be at least {low:g} (got {value:g})")


def positive(name: str, value: float | None) -> None:
    """``value`` (when given) must be a finite number above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{_flag(name)} must be a positive number (got {value:g})")


def not_negative(name: str, value: float | None) -> None:
    """``value`` (when given) must be a finite number of 0 or more."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{_flag(name)} must not be negative (got {value:g})")


def _file_above(path: Path) -> Path | None:
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def out_folder(path: Path | None, option: str = "--out") -> None:
    """``path`` (when given) must be a folder or a path where one can be made."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give a folder")
    if (blocker := _file_above(path)) is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, not a folder")


def out_file(path: Path, option: str = "--out") -> None:
    """``path`` must be a file to write, not a folder, in a folder that exists or can be made."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name")
    if (blocker := _file_above(path)) is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, not a folder")
