"""Checks of command-line values shared by the commands: each refuses a bad value with a
one-line ``UsageError`` (exit 64) before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from harness.errors import UsageError
from harness.text import short_repr

__all__ = [
    "finite_numbers",
    "at_least",
    "positive",
    "not_negative",
    "http_url",
    "out_folder",
    "out_file",
    "TimeFlag",
    "time_option",
]


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


def http_url(name: str, value: str | None, secret: bool = False) -> None:
    """``value`` (when given) must be an http(s) URL naming a host (and, if it has one, a port from 1
    to 65535). ``secret``: the URL holds a credential (a webhook's token), so the refusal does not
    quote it."""
    if value is None:
        return
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        shown = "" if secret else f" (got {short_repr(value)})"
        raise UsageError(f"{_flag(name)} must be an http(s) URL{shown}")


class TimeFlag(argparse.Action):
    """A time option (``--since``, ``--until``): stores the text as given and remembers which of the
    option's flags was typed, so that ``time_option`` names that one."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        typed = dict(getattr(namespace, "typed_flags", None) or {})
        typed[self.dest] = option_string
        namespace.typed_flags = typed


def time_option(args: argparse.Namespace, name: str) -> float | None:
    """The time an option gives (unix seconds, ISO 8601, ``now``, ``now-15m``), when given: a finite
    time from 1970 to 9999, else a one-line ``UsageError`` naming the flag typed. Every command that
    takes --since or --until reads them here, before any work starts."""
    from harness.slo.prometheus import parse_time

    text = getattr(args, name)
    if text is None:
        return None
    flag = (getattr(args, "typed_flags", None) or {}).get(name) or _flag(name)
    return parse_time(text, option=flag)


def _file_above(path: Path) -> Path | None:
    for parent in path.absolute().parents:
        if os.path.exists(parent):
            return None if os.path.isdir(parent) else parent
    return None


def _writable(folder: Path, option: str, shown: Path) -> None:
    """Refuse ``shown`` (the value of ``option``) unless ``folder`` takes new files: where it exists,
    a temporary file is made in it and removed; where it is still to be made, a temporary folder in
    the nearest folder above it that exists. So a read-only file system, a folder without write
    permission (root's too, where the kernel refuses it) or one that cannot hold a new entry are
    refused before any work starts, with the OS's reason."""
    folder = folder.absolute()
    existing = next((p for p in (folder, *folder.parents) if os.path.exists(p)), Path(folder.anchor))
    try:
        if existing == folder:
            fd, name = tempfile.mkstemp(prefix=".harness-check-", dir=folder)
            os.close(fd)
            os.unlink(name)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".harness-check-", dir=existing))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if existing == folder:
            raise UsageError(f"{option} {shown}: not writable ({reason})") from None
        raise UsageError(f"{option} {shown}: cannot be made in {existing} ({reason})") from None


def out_folder(path: Path | None, option: str = "--out") -> None:
    """``path`` (when given) must be a folder that takes new files, or a path where one can be made."""
    if path is None:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path} is a file; give a folder")
    if (blocker := _file_above(path)) is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, not a folder")
    _writable(path, option, path)


def out_file(path: Path, option: str = "--out") -> None:
    """``path`` must be a file to write, not a folder, in a folder that takes new files or can be
    made; a file already there must open for writing (it is not changed here)."""
    if os.path.isdir(path):
        raise UsageError(f"{option} {path} is a folder; give a file name")
    if (blocker := _file_above(path)) is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, not a folder")
    _writable(path.absolute().parent, option, path)
    if os.path.lexists(path):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        except OSError as exc:
            raise UsageError(f"{option} {path}: not writable ({exc.strerror or type(exc).__name__})") from None
