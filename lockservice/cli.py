"""The `lockservice` command. `serve` runs the server; every flag has a LOCKSERVICE_* twin."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from lockservice.config import ConfigError, Settings
from lockservice.core.limits import Limits
from lockservice.errors import LockserviceError
from lockservice.logs import LOG_LEVELS, configure_logging

__all__ = ["main"]

_DEFAULTS = Settings()
_LIMITS = Limits()


class _EnvDefault:
    """A flag's default taken from its environment variable, converted and checked like the flag."""

    def __init__(self, name: str, fallback: object) -> None:
        self.variable = "LOCKSERVICE_" + name.upper().replace("-", "_")
        self.fallback = fallback

    def value(self) -> object:
        return os.environ.get(self.variable, self.fallback)


def _add(
    parser: argparse.ArgumentParser, flag: str, fallback: object, help_text: str, kind: type = str
) -> None:
    env = _EnvDefault(flag, fallback)
    parser.add_argument(
        f"--{flag}",
        default=env.value(),
        type=kind,
        metavar=flag.rsplit("-", maxsplit=1)[-1].upper(),
        help=f"{help_text} [env {env.variable}; default {fallback}]",
    )


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gRPC server",
        description=(
            "Run the lockservice gRPC server. Flags beat LOCKSERVICE_* variables, which beat defaults."
        ),
    )
    _add(serve, "listen", _DEFAULTS.listen, "gRPC address: HOST:PORT or unix:PATH")
    _add(serve, "db", _DEFAULTS.db, "SQLite database file")
    _add(serve, "store", "", "storage URL: sqlite:PATH (default: --db)")
    _add(serve, "log-level", _DEFAULTS.log_level, f"one of {', '.join(LOG_LEVELS)}")
    _add(serve, "log-format", _DEFAULTS.log_format, "json, console, or auto (console on a terminal)")
    _add(serve, "grace-period", _DEFAULTS.grace_period_seconds, "seconds to drain calls on SIGTERM", float)
    _add(serve, "history-versions", _LIMITS.history_versions, "versions kept readable per key", int)
    _add(serve, "max-key-bytes", _LIMITS.max_key_bytes, "longest key, in bytes", int)
    _add(serve, "max-value-bytes", _LIMITS.max_value_bytes, "largest value, in bytes", int)
    _add(
        serve,
        "request-id-retention",
        _LIMITS.request_id_retention_seconds,
        "seconds a request_id remembers its answer",
        int,
    )
    _add(serve, "max-lease-ttl", _LIMITS.max_lease_ttl_seconds, "longest lease TTL, in seconds", int)
    _add(
        serve,
        "lock-delay",
        _LIMITS.default_lock_delay_seconds,
        "seconds a lock stays unavailable after its holder's lease expires",
        float,
    )
    _add(serve, "max-waiters", _LIMITS.max_waiters_per_lock, "callers that may queue for one lock", int)
    _add(serve, "watch-history", _DEFAULTS.watch_history_revisions, "recent revisions Watch can replay", int)
    _add(serve, "watch-queue-size", _LIMITS.watch_queue_size, "responses a slow watcher may fall behind", int)


def _settings(args: argparse.Namespace) -> Settings:
    limits = Limits(
        history_versions=args.history_versions,
        max_key_bytes=args.max_key_bytes,
        max_value_bytes=args.max_value_bytes,
        request_id_retention_seconds=args.request_id_retention,
        max_lease_ttl_seconds=args.max_lease_ttl,
        default_lock_delay_seconds=args.lock_delay,
        max_waiters_per_lock=args.max_waiters,
        watch_queue_size=args.watch_queue_size,
    )
    return Settings(
        listen=args.listen,
        db=args.db,
        store=args.store,
        log_level=args.log_level,
        log_format=args.log_format,
        grace_period_seconds=args.grace_period,
        watch_history_revisions=args.watch_history,
        limits=limits,
    )


def _run_serve(args: argparse.Namespace) -> int:
    from lockservice.rpc.server import serve  # the client verbs need none of the server stack

    settings = _settings(args)
    problems = settings.validate()
    if problems:
        for problem in problems:
            print(f"lockservice: error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(serve(settings))
    except (ConfigError, LockserviceError) as error:
        print(f"lockservice: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockservice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command == "serve":
        return _run_serve(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
