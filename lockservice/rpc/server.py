"""The gRPC server: services, health, reflection, TLS, auth, metrics, and a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from lockservice.authfiles import load_policy, load_tokens
from lockservice.config import Settings, is_postgres_url, sqlite_path
from lockservice.core.expiry import Expirer
from lockservice.core.leases import Leases
from lockservice.core.locks import Locks
from lockservice.core.memory import MemoryBudget
from lockservice.core.quotas import StreamQuota
from lockservice.core.resources import Resources
from lockservice.core.watch import Watches
from lockservice.rpc.auth import Guard
from lockservice.rpc.calls import CallPolicy, install
from lockservice.rpc.decoding import add_servicer
from lockservice.rpc.leases import LeaseServicer
from lockservice.rpc.lifecycle import Lifecycle
from lockservice.rpc.local_http import LocalHttp
from lockservice.rpc.locks import LockServicer
from lockservice.rpc.metrics import ReportsStats, RpcMetrics, serve_metrics
from lockservice.rpc.resources import ResourceServicer
from lockservice.rpc.tls import server_credentials
from lockservice.store.base import ReportsAvailability, Store
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


async def _open_store(settings: Settings, memory: MemoryBudget) -> Store:
    limits = settings.limits
    options = {
        "history_versions": limits.history_versions,
        "request_id_retention_seconds": limits.request_id_retention_seconds,
        "watch_history_revisions": settings.watch_history_revisions,
    }
    if is_postgres_url(settings.store):
        return await PostgresStore.open(settings.store, **options)
    return await SqliteStore.open(
        sqlite_path(settings.store, settings.db),
        read_cache_bytes=memory.cache_bytes // 2,
        page_cache_bytes=memory.cache_bytes // 4,
        **options,
    )


def _store_name(settings: Settings) -> str:
    """Where the data lives, for the log: never the URL, which may carry a password."""
    return "postgresql" if is_postgres_url(settings.store) else sqlite_path(settings.store, settings.db)


def _call_policy(settings: Settings, adapter_secret: str) -> CallPolicy:
    """What every call goes through. The files were validated at start (`Settings.validate`);
    `adapter_secret` is the in-process HTTP adapter's (`LocalHttp`), or empty."""
    guard = None
    if settings.authenticates:
        guard = Guard(
            load_tokens(settings.auth_tokens) if settings.auth_tokens else {},
            load_policy(settings.auth_policy) if settings.auth_policy else None,
            client_certificates=bool(settings.tls_client_ca),
            adapter_secret=adapter_secret,
        )
    return CallPolicy(
        guard=guard,
        metrics=RpcMetrics() if settings.metrics_listen else None,
        quota=StreamQuota(settings.max_streams_per_client, settings.max_watchers_per_client),
        log_calls=settings.log_level in {"debug", "info"},
    )


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Opens the gRPC port: TLS when a certificate is set; a unix socket gets `--socket-mode`
    from its creation on (no moment with wider permissions). RuntimeError if it cannot."""
    listen = settings.listen
    is_socket = listen.startswith("unix:")
    umask = os.umask(0o777 & ~settings.socket_mode) if is_socket else None
    try:
        if settings.tls_cert:
            credentials = server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            return server.add_secure_port(listen, credentials)
        return server.add_insecure_port(listen)
    finally:
        if umask is not None:
            os.umask(umask)


async def serve(settings: Settings) -> int:
    """Runs until SIGTERM or SIGINT; drains in-flight calls for the grace period; returns 0
    (1 when a port cannot be opened)."""
    limits = settings.limits
    memory = MemoryBudget(limits.memory_budget_bytes, limits.max_value_bytes)
    store = await _open_store(settings, memory)
    message_limit = limits.message_bytes
    local_http = LocalHttp(settings, message_limit) if settings.http_listen else None
    policy = install(_call_policy(settings, local_http.secret if local_http is not None else ""))
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", message_limit),
            ("grpc.max_send_message_length", message_limit),
            # Off unless asked: a second server on a taken port must fail, not share it.
            ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
        ]
    )
    expirer = Expirer(store)
    watches = Watches(store, limits, memory)
    locks = Locks(store, limits, expirer.poke)
    add_servicer(
        resource_pb2_grpc.add_ResourceServiceServicer_to_server,
        ResourceServicer(Resources(store, limits, memory), watches),
        server,
    )
    add_servicer(
        lease_pb2_grpc.add_LeaseServiceServicer_to_server,
        LeaseServicer(Leases(store, limits, expirer.poke)),
        server,
    )
    add_servicer(lock_pb2_grpc.add_LockServiceServicer_to_server, LockServicer(locks), server)
    lifecycle = Lifecycle(server, policy, SERVICE_NAMES)
    if isinstance(store, ReportsAvailability):
        store.watch_availability(lifecycle.store_available)
    add_servicer(health_pb2_grpc.add_HealthServicer_to_server, lifecycle.health, server, foreign=True)
    add_servicer(
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            )
        ),
        server,
        foreign=True,
    )
    stop_metrics: Callable[[], None] | None = None
    try:
        await lifecycle.starting(settings.health_listen)
        port = _bind(server, settings)
        if local_http is not None:
            local_http.bind(server)
        if policy.metrics is not None:
            policy.metrics.watchers.set_function(lambda: watches.active)
            policy.metrics.watch_store(store)
            stop_metrics = serve_metrics(policy.metrics, settings.metrics_listen)
    except (RuntimeError, OSError) as error:
        await lifecycle.close()
        if local_http is not None:
            await local_http.stop()
        await store.close()
        _log.error(
            "cannot listen",
            listen=settings.listen,
            metrics_listen=settings.metrics_listen or None,
            error=str(error),
        )
        return 1
    await server.start()
    expirer.start()
    if local_http is not None:
        try:
            await local_http.start()
        except (OSError, ValueError, RuntimeError) as error:
            _log.error("cannot listen", http_listen=settings.http_listen, error=str(error))
            await local_http.stop()
            await expirer.stop()
            await server.stop(0)
            await lifecycle.close()
            if stop_metrics is not None:
                stop_metrics()
            await store.close()
            return 1
    sampler = None
    if policy.metrics is not None and isinstance(store, ReportsStats):
        sampler = asyncio.get_running_loop().create_task(policy.metrics.sample_stats(store))
    await lifecycle.serving()
    _log.info(
        "serving",
        listen=settings.listen,
        port=port,
        store=_store_name(settings),
        tls="mutual" if settings.tls_client_ca else bool(settings.tls_cert),
        auth=policy.guard is not None,
        metrics_listen=settings.metrics_listen or None,
        http_listen=settings.http_listen or None,
        reuse_port=settings.reuse_port,
    )
    try:
        await lifecycle.wait_for_signal()

        def end_waits() -> None:
            watches.close()
            locks.close()

        await lifecycle.drain(settings.grace_period_seconds, end_waits)
    finally:
        # After gRPC has drained: open HTTP watch streams end with their gRPC streams.
        if local_http is not None:
            await local_http.stop()
        if sampler is not None:
            sampler.cancel()
        await expirer.stop()
        await lifecycle.close()
        if stop_metrics is not None:
            stop_metrics()
        await store.close()
    _log.info("stopped")
    return 0
