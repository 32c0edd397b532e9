"""The `lockservice` command: `serve` runs the server, `health` checks one.

Every `serve` setting is a flag, a LOCKSERVICE_* variable and a config-file key
(`lockservice.setting_sources`); a flag beats its variable, which beats the config file, which beats
the default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from lockservice import __version__
from lockservice.cli_admin import add_admin_commands
from lockservice.cli_backup import add_backup_commands
from lockservice.cli_client import add_client_commands
from lockservice.cli_store import add_store_commands
from lockservice.errors import LockserviceError
from lockservice.health import HealthCheck, check_health
from lockservice.logs import configure_logging
from lockservice.setting_sources import CONFIG_VARIABLE, OPTIONS, default_text, resolve
from lockservice.settings import ConfigError

__all__ = ["build_parser", "main"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
_DEFAULT_TARGET = "127.0.0.1:50051"


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop  # validated as installed at start

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _run_serve(args: argparse.Namespace) -> int:
    from lockservice.server.startup import serve  # the client verbs need none of the server stack

    given = vars(args)
    settings, problems = resolve(
        {option.name: given[option.name] for option in OPTIONS} | {"config": args.config}
    )
    problems += settings.validate()
    if problems:
        for problem in problems:
            print(f"lockservice: error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
            return runner.run(serve(settings))
    except (ConfigError, LockserviceError) as error:
        print(f"lockservice: error: {error}", file=sys.stderr)
        return 2


def _add_serve(sub: Subparsers) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gRPC server",
        description=(
            "Run the lockservice gRPC server. Each setting is a flag, a LOCKSERVICE_* variable and a "
            "key of the TOML --config file; a flag beats its variable, which beats the config file, "
            "which beats the default."
        ),
    )
    serve.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML file of settings, keys named as the flags without -- [env {CONFIG_VARIABLE}]",
    )
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.variable}; default {default_text(option)}]"
        if option.is_switch:
            # Present means on; absent (None) leaves the variable and the config file to decide.
            serve.add_argument(
                option.flag, dest=option.name, action="store_const", const="true", help=help_text
            )
        else:
            serve.add_argument(option.flag, dest=option.name, metavar=option.metavar, help=help_text)
    serve.set_defaults(run=_run_serve)


def _run_health(args: argparse.Namespace) -> int:
    return check_health(
        HealthCheck(
            target=args.target,
            service=args.service,
            timeout_seconds=args.timeout,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_server_name=args.tls_server_name,
        )
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 3600 seconds")
    return value


def _add_health(sub: Subparsers) -> None:
    health = sub.add_parser(
        "health",
        help="exit 0 if a server is SERVING, else 1",
        description=(
            "Ask a server's grpc.health.v1 service whether it is SERVING: exit 0 if so, 1 otherwise "
            "(starting, draining, unreachable). For container health checks."
        ),
    )
    target = os.environ.get("LOCKSERVICE_TARGET", _DEFAULT_TARGET)
    health.add_argument(
        "--target",
        default=target,
        metavar="ADDRESS",
        help=f"HOST:PORT or unix:PATH [env LOCKSERVICE_TARGET; default {_DEFAULT_TARGET}]",
    )
    health.add_argument("--service", default="", help="service to ask about (default: the whole server)")
    health.add_argument("--timeout", type=_positive_seconds, default=5.0, metavar="SECONDS", help="default 5")
    health.add_argument("--tls-ca", default="", metavar="PATH", help="PEM CA that signed the server: use TLS")
    health.add_argument("--tls-cert", default="", metavar="PATH", help="PEM client certificate (mTLS)")
    health.add_argument("--tls-key", default="", metavar="PATH", help="PEM key of --tls-cert")
    health.add_argument(
        "--tls-server-name", default="", metavar="NAME", help="name to expect in the server's certificate"
    )
    health.set_defaults(run=_run_health)


# Each group registers its subcommands; each subcommand sets `run(args) -> exit status`.
# The client verbs (get, put, lock NAME -- CMD, ...) join here as
# `lockservice.cli_client.add_client_commands`; backup, restore and bump as
# `lockservice.cli_backup.add_backup_commands`; locks, lock-info and leases as
# `lockservice.cli_admin.add_admin_commands`; compact and migrate as
# `lockservice.cli_store.add_store_commands`.
_COMMAND_GROUPS: tuple[Callable[[Subparsers], None], ...] = (
    _add_serve,
    _add_health,
    add_client_commands,
    add_backup_commands,
    add_admin_commands,
    add_store_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockservice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"lockservice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in _COMMAND_GROUPS:
        add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
