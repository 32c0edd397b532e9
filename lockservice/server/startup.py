"""The server's assembly: open the store, build the core and the gRPC services over it, open the
ports (gRPC, health, metrics, in-process HTTP), serve until SIGTERM, drain, and tear down.

This is the one module that picks a store backend and the one that joins the gRPC server with
the HTTP adapter (`local_http`), so neither `rpc/` nor `core/` depends on either. Everything
started is registered on one exit stack as it starts, so every way out (a port that cannot be
opened, the end of the drain, an exception) tears down what was started, in reverse order: the
statistics sampler, the expirer, the gRPC server (already stopped by the drain), metrics, the
HTTP adapter (after gRPC has drained: its watch streams end with their gRPC streams), health and
signal handlers, and the store last, as everything else uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

import grpc
import structlog

from lockservice.authfiles import load_policy, load_tokens
from lockservice.core.expiry import Expirer
from lockservice.core.leases import Leases
from lockservice.core.locks import Locks
from lockservice.core.memory import MemoryBudget
from lockservice.core.quotas import StreamQuota
from lockservice.core.resources import Resources
from lockservice.core.watch import Watches
from lockservice.rpc.auth import Guard
from lockservice.rpc.calls import CallPolicy, install
from lockservice.rpc.lifecycle import Lifecycle
from lockservice.rpc.metrics import RpcMetrics, serve_metrics
from lockservice.rpc.services import SERVICE_NAMES, add_services
from lockservice.rpc.tls import server_credentials
from lockservice.server.local_http import LocalHttp
from lockservice.settings import Settings, is_postgres_url, sqlite_path
from lockservice.store.base import Store
from lockservice.store.sqlite import SqliteStore

__all__ = ["serve"]

_log = structlog.get_logger("lockservice.server")


async def _open_store(settings: Settings, memory: MemoryBudget) -> Store:
    limits = settings.limits
    options = {
        "history_versions": limits.history_versions,
        "request_id_retention_seconds": limits.request_id_retention_seconds,
        "watch_history_revisions": settings.watch_history_revisions,
    }
    if is_postgres_url(settings.store):
        # psycopg is the `postgres` extra: a SQLite-only install has none (validate() said so).
        from lockservice.store.postgres import PostgresStore

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


@dataclass(frozen=True, slots=True)
class _Running:
    """What the drain needs of a started server."""

    lifecycle: Lifecycle
    watches: Watches
    locks: Locks
    port: int
    guarded: bool


class _CannotListen(Exception):
    """A port could not be opened: logged with these fields, and the server exits 1."""

    def __init__(self, error: BaseException, **addresses: str | None) -> None:
        super().__init__(str(error))
        self.fields = {**addresses, "error": str(error)}


async def _start(settings: Settings, stack: contextlib.AsyncExitStack) -> _Running:
    """Starts everything, registering each teardown on `stack` as soon as there is something to
    tear down; _CannotListen if a port cannot be opened."""
    limits = settings.limits
    memory = MemoryBudget(limits.memory_budget_bytes, limits.max_value_bytes)
    store = await _open_store(settings, memory)
    stack.push_async_callback(store.close)  # last: everything below uses it
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
    lifecycle = Lifecycle(server, policy, SERVICE_NAMES)
    add_services(
        server,
        Resources(store, limits, memory),
        watches,
        Leases(store, limits, expirer.poke),
        locks,
        lifecycle.health,
    )
    capabilities = store.capabilities
    if capabilities.watch_availability is not None:
        capabilities.watch_availability(lifecycle.store_available)
    opening = {"health_listen": settings.health_listen}  # what a failure is logged against
    try:
        stack.push_async_callback(lifecycle.close)
        await lifecycle.starting(settings.health_listen)
        opening = {"listen": settings.listen}
        port = _bind(server, settings)
        if local_http is not None:
            stack.push_async_callback(local_http.stop)  # after gRPC drained: its streams end first
            opening = {"http_listen": settings.http_listen}
            local_http.bind(server)
        if policy.metrics is not None:
            policy.metrics.watch_core(watches, expirer)
            policy.metrics.watch_store(capabilities)
            opening = {"metrics_listen": settings.metrics_listen}
            stack.callback(serve_metrics(policy.metrics, settings.metrics_listen))
    except (RuntimeError, OSError) as error:
        raise _CannotListen(error, **opening) from error
    await server.start()
    stack.push_async_callback(server.stop, 0)  # already stopped after a drain: then a no-op
    expirer.start()
    stack.push_async_callback(expirer.stop)
    if local_http is not None:
        try:
            await local_http.start()
        except (OSError, ValueError, RuntimeError) as error:
            raise _CannotListen(error, http_listen=settings.http_listen) from error
    if policy.metrics is not None and capabilities.stats is not None:
        sampler = asyncio.get_running_loop().create_task(policy.metrics.sample_stats(capabilities.stats))
        stack.callback(sampler.cancel)
    return _Running(lifecycle, watches, locks, port, guarded=policy.guard is not None)


async def serve(settings: Settings) -> int:
    """Runs until SIGTERM or SIGINT; drains in-flight calls for the grace period; returns 0
    (1 when a port cannot be opened)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            running = await _start(settings, stack)
        except _CannotListen as error:
            _log.error("cannot listen", **error.fields)
            return 1
        await running.lifecycle.serving()
        _log.info(
            "serving",
            listen=settings.listen,
            port=running.port,
            store=_store_name(settings),
            tls="mutual" if settings.tls_client_ca else bool(settings.tls_cert),
            auth=running.guarded,
            metrics_listen=settings.metrics_listen or None,
            http_listen=settings.http_listen or None,
            reuse_port=settings.reuse_port,
        )
        await running.lifecycle.wait_for_signal()

        def end_waits() -> None:
            running.watches.close()
            running.locks.close()

        await running.lifecycle.drain(settings.grace_period_seconds, end_waits)
    _log.info("stopped")
    return 0
