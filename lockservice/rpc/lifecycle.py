"""Start and stop: health status across both, signals, and the graceful drain.

grpc.health.v1 answers NOT_SERVING from before the port opens until the server is ready, while
the store is unreachable (`store_available`), and again from the first SIGTERM (or SIGINT) on,
so load balancers and probes stop sending before the server stops answering. The health service
named `liveness` is SERVING from ready to the drain whatever the store does: a liveness probe
on it does not restart every replica while their database is away. The drain then
refuses new calls with UNAVAILABLE / SHUTTING_DOWN (a client retries elsewhere), ends watches and
lock waits the same way, and waits up to the grace period for the calls in flight to be answered
and the streams to end. A second signal stops at once. Under systemd (`Type=notify`) readiness
and the drain are also told to systemd: READY=1 and STOPPING=1 (`lockservice.sdnotify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lockservice.rpc.calls import CallPolicy
from lockservice.sdnotify import notify

__all__ = ["LIVENESS_SERVICE", "Lifecycle"]

LIVENESS_SERVICE = "liveness"

_log = structlog.get_logger("lockservice.server")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_POLL_SECONDS = 0.01
# After the last call is answered, time for its response to leave before the port closes.
_FLUSH_SECONDS = 1.0
# How long no call may arrive before the drain stops the transport.
_QUIET_SECONDS = 0.25


class Lifecycle:
    def __init__(self, server: grpc.aio.Server, policy: CallPolicy, services: tuple[str, ...]) -> None:
        self.health = health.aio.HealthServicer()
        self._server = server
        self._policy = policy
        self._services = ("", *services)
        self._stopping = asyncio.Event()
        self._now = asyncio.Event()  # the second signal
        self._signals = 0
        self._health_server: grpc.aio.Server | None = None
        self._serving = False
        self._store_available = True
        self._updates: set[asyncio.Task[None]] = set()

    async def _set_all(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        """Every service's status but liveness's."""
        for name in self._services:
            await self.health.set(name, status)

    async def starting(self, health_listen: str = "") -> None:
        """NOT_SERVING from now on. With `health_listen`, also answers health checks there, in
        plaintext and nothing else, for probes that cannot reach the main port (kubelet's native
        gRPC probes speak neither TLS nor a pod-local unix socket). RuntimeError if it cannot bind."""
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        if health_listen:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
            self._health_server.add_insecure_port(health_listen)
            await self._health_server.start()

    def _status(self) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        if self._serving and self._store_available:
            return health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse.NOT_SERVING

    async def serving(self) -> None:
        """Every port is open and started: SERVING, and READY=1 to systemd."""
        self._serving = True
        await self._set_all(self._status())
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._on_signal)
        notify("READY=1")

    def store_available(self, available: bool) -> None:
        """The store's reachability changed (called on the loop): SERVING only while it is
        reachable. After the drain began, health stays NOT_SERVING."""
        self._store_available = available
        if not self._serving or self._policy.draining:
            return
        update = asyncio.get_running_loop().create_task(self._set_all(self._status()))
        self._updates.add(update)
        update.add_done_callback(self._updates.discard)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals > 1:
            _log.warning("second signal: stopping without waiting for in-flight calls")
            self._now.set()
        self._stopping.set()

    async def wait_for_signal(self) -> None:
        await self._stopping.wait()

    async def drain(self, grace_seconds: float, end_waits: Callable[[], None]) -> None:
        """Refuses new calls, ends the endless ones (`end_waits`: watches and lock waits), waits
        up to `grace_seconds` (or a second signal) for the calls in flight, and stops the server.
        Streams still open then (KeepAlive) are cancelled."""
        _log.info("draining", grace_period_seconds=grace_seconds, in_flight=self._policy.in_flight)
        notify("STOPPING=1")
        self._policy.draining = True
        await self.health.enter_graceful_shutdown()
        end_waits()
        began = time.monotonic()
        deadline = began + grace_seconds
        while time.monotonic() < deadline and not self._now.is_set() and not self._quiet(began):
            await asyncio.sleep(_POLL_SECONDS)
        if self._policy.in_flight and not self._now.is_set():
            _log.warning("grace period over: cancelling calls in flight", in_flight=self._policy.in_flight)
        flush = 0.0 if self._now.is_set() else min(_FLUSH_SECONDS, max(0.0, deadline - time.monotonic()))
        await self._server.stop(flush)

    def _quiet(self, began: float) -> bool:
        """No call in flight, and none refused for a moment: clients have seen the drain, so
        stopping the transport now cuts no call that a refusal could have answered."""
        last = max(began, self._policy.last_refused)
        return not self._policy.in_flight and time.monotonic() - last >= _QUIET_SECONDS

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        if self._health_server is not None:
            await self._health_server.stop(0)
