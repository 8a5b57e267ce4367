"""The ``harness`` command line: parse, call the library, write the result.

Each command lives in a module of its own with ``register(subparsers)``; the module's handler
returns an exit code from the shared table in ``harness.errors``. An unexpected exception is a bug:
it exits 70 with one line naming the file its traceback was written to, never 1 (ROLLBACK).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import EXIT_SOFTWARE, EXIT_USAGE, HarnessError, MissingExtraError

__all__ = ["main", "build_parser", "COMMANDS"]

# Modules under harness.cli, one per command (or command group), in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "dataset",
    "caption",
    "serve",
    "load",
    "gate",
    "demo",
    "slo",
    "rules",
    "score",
    "evaluate",
    "drift",
    "dashboard",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 64 (usage) so a typo never reads as a gate verdict."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Observability and SLO harness for captioning services.")
    from harness import __version__

    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"harness.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    command = "harness"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        command = f"harness {args.command}"
        from harness.cli.checks import finite_numbers

        finite_numbers(args)
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): stop quietly, as other tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ImportError as exc:
        missing = MissingExtraError.from_import_error(exc, "this command")
        if missing is None:
            return _crash(command, exc, argv)
        print(f"{command}: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug: reported as one, never as a verdict
        return _crash(command, exc, argv)


def _crash(command: str, exc: BaseException, argv: list[str] | None) -> int:
    """Write the traceback to a file in the temp folder and say where, in one line; exit 70."""
    import os
    import platform
    import tempfile
    import time
    import traceback

    from harness import __version__

    what = f"{type(exc).__name__}: {str(exc).strip()}".splitlines()[0][:300]
    try:
        fd, path = tempfile.mkstemp(prefix="harness-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(f"harness {__version__}, Python {platform.python_version()}, {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
            f.write(f"argv: {sys.argv[:1] + (sys.argv[1:] if argv is None else list(argv))!r}\n\n")
            f.write("".join(traceback.format_exception(exc)))
        where = f"traceback in {path}"
    except OSError as write_error:
        where = f"traceback not written: {write_error}"
    print(f"{command}: internal error (a bug in the harness, exit {EXIT_SOFTWARE}): {what}; {where}", file=sys.stderr)
    return EXIT_SOFTWARE
