"""Reading a raw socket's answer in the server tests, until the peer closes or goes quiet."""

from __future__ import annotations

import socket


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything ``sock`` receives until the peer closes, resets, or sends nothing for ``timeout`` s."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (socket.timeout, ConnectionResetError):
        return data
