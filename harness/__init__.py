"""Observability and SLO evaluation harness for image-captioning services.

Importing this package is cheap: torch, transformers and sentence-transformers are only
imported by ``reference_model`` or lazily by the functions that need them.
"""

from harness.errors import (
    DataError,
    HarnessError,
    InputMissingError,
    ServiceUnavailableError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "HarnessError",
    "UsageError",
    "DataError",
    "InputMissingError",
    "ServiceUnavailableError",
]
