"""Holds COUNT idle TCP connections to HOST:PORT open until its standard input closes.

`python -m tests.e2e.connection_flood HOST PORT COUNT` prints `open N` once it has tried them
all (N: how many connected), then holds them. A test runs several of these to open more
connections than one process may hold files.
"""

from __future__ import annotations

import socket
import sys


def open_connections(address: tuple[str, int], count: int) -> list[socket.socket]:
    """Up to `count` connections to `address`: those that connected within 10 s each."""
    held: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            continue
        held.append(sock)
    return held


def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    held = open_connections((host, port), count)
    print(f"open {len(held)}", flush=True)
    sys.stdin.read()
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main()
