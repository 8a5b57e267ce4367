"""``harness ARGV`` run in this process, as the command-line tests run it."""

from __future__ import annotations

import contextlib
import io
import subprocess
import warnings

from harness.cli import main


def run_cli(argv: list, show_warnings: bool = False) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``harness ARGV`` (the parser's exits included). With
    ``show_warnings``, every warning is recorded and put on stderr, as it would be outside pytest."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as seen:
        if show_warnings:
            warnings.simplefilter("always")
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    shown = "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in seen if show_warnings)
    return code, out.getvalue(), shown + err.getvalue()


def run_harness(*args) -> subprocess.CompletedProcess:
    """``harness ARGS`` in this process, as ``subprocess.run([..., "-m", "harness", *args])`` would
    report it (``returncode``, ``stdout``, ``stderr``), without a new interpreter's imports."""
    argv = [str(a) for a in args]
    code, out, err = run_cli(argv)
    return subprocess.CompletedProcess(["harness", *argv], code, out, err)
