"""Loopback ports for the server processes that the test suite and the bench start.

Not bind(0): that draws from the kernel's ephemeral range, as every outgoing connection does,
and a connection's local port blocks a listener on it. Between a port being offered and the
server binding it, any client of a parallel test (or the bench's own load) can take it, and the
server exits with "cannot listen" (a CI run failed so). Ports here lie outside that range.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except OSError:
        return 32768, 60999  # Linux's default
    return int(low), int(high)


def port_block(worker: str, workers: int) -> range:
    """The ports one xdist worker (`gw3`; "" outside xdist) hands to its servers.

    They lie outside the kernel's ephemeral range. Each worker has a block of its own, so no two
    workers offer the same port; a bench run started by a test inherits its worker's variables
    and so draws from that worker's block."""
    low, high = _ephemeral_ports()
    first, last = max((1024, low - 1), (high + 1, 65535), key=lambda span: span[1] - span[0])
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    size = (last - first + 1) // max(workers, 1)
    start = first + (index % max(workers, 1)) * size
    return range(start, start + size)


def _port_cursor() -> Iterator[int]:
    block = port_block(
        os.environ.get("PYTEST_XDIST_WORKER", ""),
        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
    )
    # Where in the block differs per process, so two processes drawing from one block (a worker
    # and the bench it runs, or two suites side by side) rarely meet.
    offset = os.getpid() % len(block)
    while True:
        yield from block[offset:]
        yield from block[:offset]
        offset = 0


_ports = _port_cursor()


def free_port() -> int:
    """A loopback port nothing listens on, never offered before in this process (until its
    block of a few thousand wraps round)."""
    for port in _ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # another service listens there, or connections to it linger
            return port
    raise AssertionError("unreachable: the cursor never ends")
