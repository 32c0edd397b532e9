"""systemd's readiness protocol (`sd_notify(3)`), without libsystemd: one datagram to the unix
socket named by $NOTIFY_SOCKET. The server sends READY=1 once its ports serve and STOPPING=1
when it starts to drain, so a `Type=notify` unit is "started" exactly when it answers calls.
Without NOTIFY_SOCKET (not under systemd, or another Type=) nothing is sent.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

__all__ = ["notify"]

_log = structlog.get_logger("lockservice.server")


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Sends `state` (e.g. "READY=1") to $NOTIFY_SOCKET; True if sent. A socket name starting
    with '@' is in the abstract namespace. A failure is logged, never raised: the server serves
    either way, and systemd times the unit out on its own."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        _log.warning("cannot notify systemd", state=state, error=str(error))
        return False
    return True
