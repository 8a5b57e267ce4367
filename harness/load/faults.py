"""Setting chaos faults during a run, through one API (``/admin/faults``) served either by the
target itself (the reference server with ``--enable-faults``) or by the harness's fault proxy.

Fields, as the reference server names them: ``latency_ms``, ``jitter_ms``, ``error_rate``,
``hang_rate``, ``unsafe_rate``, ``slow_start_s``, ``seed``; the proxy adds ``reset_rate`` and
``bandwidth_bps`` and ignores what it cannot do (``unsafe_rate``, ``slow_start_s``).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["FaultController", "FaultEndpointError", "ADMIN_TOKEN_HEADER", "FAULTS_PATH"]

ADMIN_TOKEN_HEADER = "X-Admin-Token"
FAULTS_PATH = "/admin/faults"


class FaultEndpointError(RuntimeError):
    """The fault endpoint refused or could not be reached."""


class FaultController:
    """Set and clear faults at ``base_url``/admin/faults with an admin token."""

    def __init__(self, base_url: str, token: str, timeout: float = 5.0, http: Any = None):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.token = token
        self._own = http is None
        self.http = http or httpx.Client(timeout=timeout)

    def _call(self, method: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        try:
            resp = self.http.request(
                method, self.base_url + FAULTS_PATH, json=body, headers={ADMIN_TOKEN_HEADER: self.token}
            )
        except httpx.HTTPError as exc:
            raise FaultEndpointError(f"{self.base_url}{FAULTS_PATH}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise FaultEndpointError(f"{self.base_url}{FAULTS_PATH}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise FaultEndpointError(f"{self.base_url}{FAULTS_PATH}: answer is not JSON") from None

    def available(self) -> bool:
        """True when the endpoint answers this token."""
        try:
            self._call("GET")
            return True
        except FaultEndpointError:
            return False

    def state(self) -> dict[str, Any]:
        return self._call("GET")

    def set(self, faults: Mapping[str, Any]) -> dict[str, Any]:
        """Change the fields given (the others stay as they are)."""
        return self._call("POST", dict(faults))

    def clear(self) -> dict[str, Any]:
        return self._call("DELETE")

    def close(self) -> None:
        if self._own:
            self.http.close()
