"""Errors a user can hit, each with the exit code of the shared table (see README)."""

from __future__ import annotations

__all__ = [
    "HarnessError",
    "UsageError",
    "DataError",
    "InputMissingError",
    "ServiceUnavailableError",
    "EXIT_OK",
    "EXIT_ROLLBACK",
    "EXIT_HOLD",
    "EXIT_DRIFT",
    "EXIT_USAGE",
    "EXIT_DATA",
    "EXIT_MISSING",
    "EXIT_UNAVAILABLE",
]

EXIT_OK = 0
EXIT_ROLLBACK = 1
EXIT_HOLD = 2
EXIT_DRIFT = 3
EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_MISSING = 66
EXIT_UNAVAILABLE = 69


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
