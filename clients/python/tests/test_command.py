"""`run_locked`: a command run under a lock gets the signals sent to its supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from lockservice_client import Client
from lockservice_client.command import run_locked


@pytest.fixture
def own_sigterm() -> Iterator[list[int]]:
    """While the test runs, a SIGTERM that reaches this process (and not the command) is
    recorded instead of ending pytest."""
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, record)
    yield received
    signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_that_arrives_as_the_command_starts_is_passed_to_it(
    client: Client, prefix: str, own_sigterm: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor may be signalled the instant the command exists (a loaded machine runs the
    command's first lines before the supervisor's next): that SIGTERM is the command's too."""
    spawn = subprocess.Popen

    def spawn_then_signal(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = spawn(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return child

    monkeypatch.setattr(subprocess, "Popen", spawn_then_signal)  # as run_locked calls it
    # Popen returns once the command runs `sleep`: SIGTERM ends it, as shells report, 128 + 15.
    run = run_locked(client, f"{prefix}/lock", ["sleep", "20"])
    assert (run.exit_status, run.lost, own_sigterm) == (128 + signal.SIGTERM, False, [])
    assert client.get_lock(f"{prefix}/lock").held is False
