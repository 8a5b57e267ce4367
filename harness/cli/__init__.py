"""The ``harness`` command line: parse, call the library, write the result.

Each command lives in a module of its own with ``register(subparsers)``; the module's handler
returns an exit code from the shared table in ``harness.errors``. An unexpected exception is a bug:
it exits 70 with one line naming the file its traceback was written to, never 1 (ROLLBACK).
Modules log with ``logging.getLogger(__name__)``; the CLI gives the ``harness`` logger its one
handler (stderr, ``--log-level``), so a command's result on stdout stays clean.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import TextIO

from harness.errors import EXIT_SOFTWARE, EXIT_USAGE, HarnessError, MissingExtraError
from harness.text import one_line

__all__ = ["main", "build_parser", "configure_logging", "COMMANDS", "LOG_LEVELS"]

# Modules under harness.cli, one per command (or command group), in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "dataset",
    "caption",
    "serve",
    "load",
    "gate",
    "judge",
    "demo",
    "slo",
    "rules",
    "score",
    "grade",
    "clipscore",
    "evaluate",
    "drift",
    "records",
    "dashboard",
)


LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Stderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is emitted (it may be replaced meanwhile)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Give the ``harness`` logger one handler writing to ``stream`` (default: stderr) at ``level``;
    a handler an earlier call installed is replaced, never added to."""
    logger = logging.getLogger("harness")
    for old in [h for h in logger.handlers if getattr(h, "harness_cli", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, "%H:%M:%S"))
    handler.harness_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 64 (usage) so a typo never reads as a gate verdict."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _get_values(self, action, arg_strings):
        # A NUL ends a path at the OS (the file written would be another) and no value means one:
        # refused here, for every option and argument (a command's own are checked by its parser).
        if action.nargs not in (argparse.PARSER, argparse.REMAINDER) and any("\0" in s for s in arg_strings):
            name = "/".join(action.option_strings) or action.metavar or action.dest
            self.error(f"argument {name}: contains a NUL character")
        # argparse drops a lone "--" given as an option's value (``--batch=--``) and hands the
        # option an empty list; an option of one value must get one.
        values = super()._get_values(action, arg_strings)
        if action.option_strings and action.nargs is None and isinstance(values, list):
            self.error(f"argument {'/'.join(action.option_strings)}: expected one value")
        return values


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Observability and SLO harness for captioning services.")
    from harness import __version__

    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        metavar="LEVEL",
        help=f"what the harness logs on stderr: {', '.join(LOG_LEVELS)} (default: INFO)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        const="DEBUG",
        dest="log_level",
        help="log everything (--log-level DEBUG)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"harness.cli.{name}").register(sub)
    return parser


# Commands under a command that has required options of its own (``harness judge``, ``harness
# slo``), so they cannot be its argparse subcommands: each module has ``PROG`` and
# ``build_parser(parser_class)``, and ``main`` sends the rest of the line to that parser.
NESTED: dict[tuple[str, str], str] = {
    ("judge", "serve"): "harness.cli.judge_serve",
    ("slo", "review"): "harness.cli.slo_review",
}


def _nested_at(argv: list[str]) -> tuple[int, str] | None:
    """Where a nested command (``NESTED``) starts in ``argv`` when it is the command (after the
    global options), and its module; None when it is not."""
    i = 0
    while i < len(argv):
        if argv[i] in ("-v", "--verbose") or argv[i].startswith("--log-level="):
            i += 1
        elif argv[i] == "--log-level":
            i += 2
        else:
            break
    module = NESTED.get(tuple(argv[i : i + 2]))  # type: ignore[call-overload]
    return None if module is None else (i, module)


def main(argv: list[str] | None = None) -> int:
    command = "harness"
    try:
        parser = build_parser()
        given = sys.argv[1:] if argv is None else list(argv)
        nested = _nested_at(given)
        if nested is None:
            args = parser.parse_args(argv)
        else:
            at, name = nested
            module = importlib.import_module(name)
            command = module.PROG
            args = parser.parse_args(given[:at])  # the global options
            args = module.build_parser(_Parser).parse_args(given[at + 2 :], namespace=args)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        command = getattr(args, "command_name", None) or f"harness {args.command}"
        configure_logging(args.log_level)
        from harness.cli.checks import finite_numbers

        finite_numbers(args)
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"{command}: error: {one_line(exc, 2000)}", file=sys.stderr)
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

    what = one_line(f"{type(exc).__name__}: {str(exc).strip()}".splitlines()[0], 300)
    try:
        fd, path = tempfile.mkstemp(prefix="harness-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(
                f"harness {__version__}, Python {platform.python_version()}, {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
            )
            f.write(f"argv: {sys.argv[:1] + (sys.argv[1:] if argv is None else list(argv))!r}\n\n")
            f.write("".join(traceback.format_exception(exc)))
        where = f"traceback in {path}"
    except OSError as write_error:
        where = f"traceback not written: {write_error}"
    print(f"{command}: internal error (a bug in the harness, exit {EXIT_SOFTWARE}): {what}; {where}", file=sys.stderr)
    return EXIT_SOFTWARE
