"""The ``harness`` command line: parse, call the library, write the result.

Each command lives in a module of its own with ``register(subparsers)``; the module's handler
returns an exit code from the shared table in ``harness.errors``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import EXIT_USAGE, HarnessError

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
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 64 (usage) so a typo never reads as a gate verdict."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Observability and SLO harness for captioning services.")
    from harness import __version__

    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"harness.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): stop quietly, as other tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
