"""The gRPC server: services, health, reflection, and a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lockservice.config import Settings, is_postgres_url, sqlite_path
from lockservice.core.expiry import Expirer
from lockservice.core.leases import Leases
from lockservice.core.locks import Locks
from lockservice.core.resources import Resources
from lockservice.core.watch import Watches
from lockservice.rpc.leases import LeaseServicer
from lockservice.rpc.locks import LockServicer
from lockservice.rpc.resources import ResourceServicer
from lockservice.store.base import Store
from lockservice.store.postgres import PostgresStore
from lockservice.store.sqlite import SqliteStore
from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc

__all__ = ["SERVICE_NAMES", "serve"]

_log = structlog.get_logger("lockservice.server")

SERVICE_NAMES = (
    resource_pb2.DESCRIPTOR.services_by_name["ResourceService"].full_name,
    lease_pb2.DESCRIPTOR.services_by_name["LeaseService"].full_name,
    lock_pb2.DESCRIPTOR.services_by_name["LockService"].full_name,
)


def _message_limit(settings: Settings) -> int:
    # Room for the largest value plus the rest of the largest message around it.
    return settings.limits.max_value_bytes * 2 + 64 * 1024


async def _open_store(settings: Settings) -> Store:
    limits = settings.limits
    options = {
        "history_versions": limits.history_versions,
        "request_id_retention_seconds": limits.request_id_retention_seconds,
        "watch_history_revisions": settings.watch_history_revisions,
    }
    if is_postgres_url(settings.store):
        return await PostgresStore.open(settings.store, **options)
    return await SqliteStore.open(sqlite_path(settings.store, settings.db), **options)


def _store_name(settings: Settings) -> str:
    """Where the data lives, for the log: never the URL, which may carry a password."""
    return "postgresql" if is_postgres_url(settings.store) else sqlite_path(settings.store, settings.db)


async def serve(settings: Settings) -> int:
    """Runs until SIGTERM or SIGINT; drains in-flight calls for the grace period; returns 0."""
    limits = settings.limits
    store = await _open_store(settings)
    message_limit = _message_limit(settings)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", message_limit),
            ("grpc.max_send_message_length", message_limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    expirer = Expirer(store)
    watches = Watches(store, limits)
    locks = Locks(store, limits, expirer.poke)
    resource_pb2_grpc.add_ResourceServiceServicer_to_server(
        ResourceServicer(Resources(store, limits), watches), server
    )
    lease_pb2_grpc.add_LeaseServiceServicer_to_server(
        LeaseServicer(Leases(store, limits, expirer.poke)), server
    )
    lock_pb2_grpc.add_LockServiceServicer_to_server(LockServicer(locks), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError:
        await store.close()
        _log.error("cannot listen", listen=settings.listen)
        return 1
    await server.start()
    expirer.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _log.info("serving", listen=settings.listen, port=port, store=_store_name(settings))

    stopping = asyncio.Event()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        stopping.set()
        if signals_seen > 1:
            _log.warning("second signal: stopping without waiting for in-flight calls")
            asyncio.get_running_loop().create_task(server.stop(0))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stopping.wait()
        _log.info("draining", grace_period_seconds=settings.grace_period_seconds)
        await health_servicer.enter_graceful_shutdown()
        watches.close()
        locks.close()
        await server.stop(settings.grace_period_seconds)
    finally:
        await expirer.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await store.close()
    _log.info("stopped")
    return 0
