"""The nemesis: faults against the server processes while the clients run.

Each round it waits a random while, then picks a server and one fault (each kind once first):
- `kill`: SIGKILL, a short outage, restart on the same port and database (SQLite file, or the
  PostgreSQL database the replicas share);
- `pause`: SIGSTOP for a while, then SIGCONT (a GC pause or a stalled VM: calls time out, leases
  keep running on the clock);
- `kill-all`: every server at once (replicas only), then restart them all.
The choices come from its own seeded `random.Random`, so a seed replays the same schedule.
"""

from __future__ import annotations

import random
import signal
import threading
from dataclasses import dataclass, field

from tests.conftest import ServerProcess
from tests.robustness.history import Recorder

__all__ = ["Fault", "Nemesis"]


@dataclass(frozen=True)
class Fault:
    start: float
    end: float
    kind: str
    server: int

    def describe(self) -> str:
        return f"[{self.start:.3f}, {self.end:.3f}] {self.kind} server {self.server}"


@dataclass
class Nemesis:
    servers: list[ServerProcess]
    recorder: Recorder
    rng: random.Random
    stop: threading.Event
    interval: tuple[float, float] = (1.0, 2.5)
    faults: list[Fault] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Set once each kind of fault has been done (or the nemesis ended): the run lasts until then,
    # as a loaded machine may spend a short run's whole length restarting one server.
    tried_every_kind: threading.Event = field(default_factory=threading.Event)

    def thread(self) -> threading.Thread:
        return threading.Thread(target=self.run, name="robustness-nemesis", daemon=True)

    def run(self) -> None:
        try:
            kinds = ["kill", "pause"] + (["kill-all"] if len(self.servers) > 1 else [])
            rounds = 0
            # The first rounds try each kind once, soon, so even a short run sees every fault.
            while not self.stop.wait(
                self.rng.uniform(*(self.interval if rounds >= len(kinds) else (0.3, 0.8)))
            ):
                kind = kinds[rounds] if rounds < len(kinds) else self.rng.choice(kinds)
                rounds += 1
                index = self.rng.randrange(len(self.servers))
                start = self.recorder.now()
                if kind == "pause":
                    # Past the 3 s call deadline at times: calls then end unknown.
                    self._pause(self.servers[index], self.rng.uniform(0.5, 4.5))
                else:
                    targets = self.servers if kind == "kill-all" else [self.servers[index]]
                    self._kill(targets, self.rng.uniform(0.1, 1.0))
                self.faults.append(Fault(start, self.recorder.now(), kind, index))
                if rounds >= len(kinds):
                    self.tried_every_kind.set()
        except Exception as error:  # reported by the runner; the run's verdict needs it
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            self.tried_every_kind.set()
            self.heal()

    def _pause(self, server: ServerProcess, seconds: float) -> None:
        server.signal(signal.SIGSTOP)
        try:
            self.stop.wait(seconds)
        finally:
            server.signal(signal.SIGCONT)

    def _kill(self, servers: list[ServerProcess], down: float) -> None:
        for server in servers:
            server.kill9()
        threading.Event().wait(down)
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready(60)

    def heal(self) -> None:
        """Every server running and not paused."""
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                server.signal(signal.SIGCONT)
            else:
                server.start(60)
