"""The server's settings: one frozen record, built by the command line and read by the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.image import DEFAULT_MAX_PIXELS

__all__ = ["ServerSettings", "IMAGE_TYPES"]

IMAGE_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp")


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches, limits, authenticates, injects faults and exports its traces."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    request_timeout_s: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int = 1
    api_key: str | None = None
    admin_token: str | None = None
    enable_faults: bool = False
    faults: dict[str, Any] = field(default_factory=dict)
    fault_seed: int = 0
    blocklist_extra: tuple[str, ...] = ()
    drain_s: float = 0.5
    access_log: bool = False
    decode_threads: int = 2
    max_decode_pixels: int = 4 * DEFAULT_MAX_PIXELS
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 30.0
    max_connections: int = 1000
    log_level: str = "info"
    job_queue: int = 1024
    job_ttl_s: float = 300.0
    job_keep_s: float = 600.0
    job_keep_max: int = 10000
    callback_allow: tuple[str, ...] = ()
    otlp_endpoint: str | None = None
    spans_file: str | None = None
    frontend_workers: int = 0
    worker_stall_s: float = 10.0

    def batching(self) -> dict[str, Any]:
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait_ms, "max_queue": self.max_queue}
