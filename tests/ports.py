"""Free ports on 127.0.0.1 (standard library only: docs/screenshots.py imports it too)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port that was free a moment ago: closed now, so nothing answers there yet."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
