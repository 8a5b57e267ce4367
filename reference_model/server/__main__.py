"""``python -m reference_model.server``: the same server and options as ``harness serve``."""

from __future__ import annotations

import argparse
import sys

from harness.cli.serve import add_arguments, run
from harness.errors import EXIT_USAGE, HarnessError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m reference_model.server", description="The reference captioning server.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except HarnessError as exc:
        print(f"reference_model.server: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
