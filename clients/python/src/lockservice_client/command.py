"""Run a command while holding a lock, as `flock`, `consul lock` and `etcdctl lock` do (or
while leading an election, or holding a semaphore's slot: any hold a `HeldLock` describes).

The command learns the lock through its environment (`LOCKSERVICE_LOCK_NAME`,
`LOCKSERVICE_FENCING_TOKEN`, `LOCKSERVICE_LEASE_ID`) and should pass the token as a fence on its
writes. While it runs, the lease is kept alive; SIGTERM and SIGHUP sent to this process are
passed on to it, and SIGINT is left to reach it from the terminal (this process ignores it and
waits), so that one Ctrl-C is not delivered twice. When the command exits, the lock is released.
If the lease is lost while the command runs, the command is sent SIGTERM, then SIGKILL after
`kill_after` seconds, and the outcome says the lock was lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import FrameType

from lockservice_client.client import Client
from lockservice_client.errors import LockLost
from lockservice_client.held_lock import HeldLock

__all__ = ["LEASE_VARIABLE", "NAME_VARIABLE", "TOKEN_VARIABLE", "LockedRun", "run_held", "run_locked"]

NAME_VARIABLE = "LOCKSERVICE_LOCK_NAME"
TOKEN_VARIABLE = "LOCKSERVICE_FENCING_TOKEN"
LEASE_VARIABLE = "LOCKSERVICE_LEASE_ID"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class LockedRun:
    """How the command ended: its exit status (128 + N when signal N ended it, as shells say),
    whether the lock was lost while it ran (and why), and the fencing token it ran with."""

    exit_status: int
    lost: bool
    lost_cause: BaseException | None
    token: int


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _environment(held: HeldLock, extra: Mapping[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **extra,
        NAME_VARIABLE: held.name,
        TOKEN_VARIABLE: str(held.token),
        LEASE_VARIABLE: held.lease_id,
    }


class _Forwarder:
    """The handler of the forwarded signals: passes them to the command, and keeps those that
    arrive before the command exists to pass on as soon as it does."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
        elif self.child.poll() is None:
            self.child.send_signal(signum)

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        while self.pending:
            self(self.pending.pop(0), None)


@contextlib.contextmanager
def _signals_forwarded() -> Iterator[_Forwarder]:
    """Forwards SIGTERM and SIGHUP to the command `attach`ed to the forwarder, ignores SIGINT;
    restores the handlers after. Set before the command starts, so that a signal sent the moment
    it runs is not this process's death. Signal handlers can only be set from the main thread:
    elsewhere nothing is forwarded."""
    forwarder = _Forwarder()
    if threading.current_thread() is not threading.main_thread():
        yield forwarder
        return
    previous = {sig: signal.signal(sig, forwarder) for sig in FORWARDED_SIGNALS}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield forwarder
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(child: subprocess.Popen[bytes], kill_after: float) -> None:
    child.terminate()
    try:
        child.wait(kill_after)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _supervise(
    held: HeldLock, argv: Sequence[str], extra_env: Mapping[str, str], kill_after: float
) -> LockedRun:
    lost = False
    with _signals_forwarded() as forwarder:
        child = subprocess.Popen(argv, env=_environment(held, extra_env))
        forwarder.attach(child)
        # Waits in short steps: a signal may land on one of gRPC's threads, and Python runs its
        # handler only when the main thread wakes. Ends with the command (stopped if the lock is lost).
        while child.poll() is None:
            if held.wait_lost(POLL_SECONDS) and child.poll() is None:
                lost = True
                _stop(child, kill_after)
    return LockedRun(_exit_status(child.returncode), lost, held.lost_cause if lost else None, held.token)


def run_locked(
    client: Client,
    name: str,
    argv: Sequence[str],
    *,
    ttl_seconds: int = 10,
    wait: float = 0.0,
    holder: str | None = None,
    kill_after: float = 10.0,
    extra_env: Mapping[str, str] | None = None,
) -> LockedRun:
    """Holds `name` while `argv` runs. Raises what `Client.lock` raises when the lock cannot be
    had (LockHeld, ...), and OSError when the command cannot be started (the lock is released)."""
    hold = client.lock(name, ttl_seconds, wait=wait, holder=holder)
    return run_held(hold, argv, kill_after=kill_after, extra_env=extra_env)


def run_held(
    hold: AbstractContextManager[HeldLock],
    argv: Sequence[str],
    *,
    kill_after: float = 10.0,
    extra_env: Mapping[str, str] | None = None,
) -> LockedRun:
    """Enters `hold` (a `Client.lock`, an election's `campaign`, a semaphore's `acquire`, ...),
    runs `argv` while it holds, and leaves it when the command exits. Raises what entering the
    hold raises, and OSError when the command cannot be started (the hold is ended)."""
    outcome: LockedRun | None = None
    try:
        with hold as held:
            outcome = _supervise(held, argv, extra_env or {}, kill_after)
    except LockLost:
        # Lost after the command had exited: its work was done under the lock; the outcome says so.
        if outcome is None:
            raise
    assert outcome is not None
    return outcome
