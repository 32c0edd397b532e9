"""The client verbs of the `lockservice` command: get, put, cas, delete, list, watch, lease, lock,
and the recipes elect and semaphore.

Each verb talks to `--target` (env LOCKSERVICE_TARGET, default 127.0.0.1:50051) through the
Python client (`lockservice_client`, installed from clients/python), so none of the server's
stack is loaded. A failure prints one line, `lockservice: error: REASON: message`, and the exit
status says what kind it was:

    0   success                        4   not found (key, version, lease, lock)
    1   any other error                75  `lock`: the lock was lost while CMD ran (CMD was stopped)
    2   bad usage                      126 `lock`: CMD cannot be run
    3   conflict (ABORTED, ALREADY_EXISTS: the current state is in the message)
                                       127 `lock`: CMD not found

`lock NAME -- CMD ARGS...` otherwise exits with CMD's own status (128 + N if signal N ended it);
`elect NAME -- CMD` and `semaphore NAME --limit N -- CMD` exit as `lock` does.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeAlias, TypeVar

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from lockservice_client import Client, HeldLock, LockserviceError
    from lockservice_client.messages import Fence
    from lockservice_client.recipes import Election

__all__ = [
    "CLIENT_COMMANDS",
    "EXIT_CANNOT_RUN",
    "EXIT_COMMAND_NOT_FOUND",
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_LOCK_LOST",
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "add_client_commands",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_LOCK_LOST = 75  # EX_TEMPFAIL: the lock can be taken again later
EXIT_CANNOT_RUN = 126
EXIT_COMMAND_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

CLIENT_COMMANDS = ("get", "put", "cas", "delete", "list", "watch", "lease", "lock", "elect", "semaphore")
DEFAULT_TARGET = "127.0.0.1:50051"
TOKEN_VARIABLE = "LOCKSERVICE_TOKEN"

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[["Client", argparse.Namespace], int]
_M = TypeVar("_M", bound="Message")


def _fail(message: str) -> None:
    print(f"lockservice: error: {message}", file=sys.stderr)


def _exit_status_for(error: LockserviceError) -> int:
    from lockservice_client import ConflictError, NotFound

    if isinstance(error, ConflictError):
        return EXIT_CONFLICT
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _connect(args: argparse.Namespace) -> Client:
    from lockservice_client import Client, Tls

    token = _read(args.token_file).decode().strip() if args.token_file else os.environ.get(TOKEN_VARIABLE)
    tls = None
    if args.tls or args.tls_ca or args.tls_cert:
        tls = Tls(
            root_certificates=_read(args.tls_ca) if args.tls_ca else None,
            certificate_chain=_read(args.tls_cert) if args.tls_cert else None,
            private_key=_read(args.tls_key) if args.tls_key else None,
            server_name=args.tls_server_name or None,
        )
    return Client(args.target, tls=tls, token=token or None, timeout=args.timeout)


def _runs(handler: Handler, args: argparse.Namespace) -> int:
    """Connects, runs `handler`, and turns every failure into one line and an exit status."""
    try:
        from lockservice_client import LockserviceError
    except ImportError:
        _fail("the client verbs need the Python client: pip install lockservice-client")
        return EXIT_ERROR
    try:
        with _connect(args) as client:
            return handler(client, args)
    except LockserviceError as error:
        _fail(str(error))
        return _exit_status_for(error)
    except (OSError, ValueError) as error:
        _fail(str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _non_negative_seconds(text: str) -> float:
    return 0.0 if text in ("0", "0.0") else _positive_seconds(text)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _fence(text: str) -> tuple[str, int]:
    """NAME:TOKEN (a lock name may itself contain ':'; the token is what follows the last one)."""
    name, _, token = text.rpartition(":")
    if not name or not token.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:TOKEN")
    return name, int(token)


def _fence_of(args: argparse.Namespace) -> Fence | None:
    from lockservice_client.messages import Fence

    if args.fence is None:
        return None
    name, token = args.fence
    return Fence(lock_name=name, token=token)


def _value_of(args: argparse.Namespace) -> bytes:
    """VALUE as bytes; `-` or no VALUE reads standard input."""
    if args.value in (None, "-"):
        return sys.stdin.buffer.read()
    return os.fsencode(args.value)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    target = os.environ.get("LOCKSERVICE_TARGET") or DEFAULT_TARGET
    common.add_argument(
        "--target",
        default=target,
        metavar="ADDRESS",
        help=f"HOST:PORT or unix:PATH of the server [env LOCKSERVICE_TARGET; default {DEFAULT_TARGET}]",
    )
    common.add_argument(
        "--timeout", type=_positive_seconds, default=10.0, metavar="SECONDS", help="deadline of each call"
    )
    common.add_argument("--tls", action="store_true", help="use TLS with the system's trusted roots")
    common.add_argument("--tls-ca", default="", metavar="PATH", help="PEM CA that signed the server: use TLS")
    common.add_argument("--tls-cert", default="", metavar="PATH", help="PEM client certificate (mTLS)")
    common.add_argument("--tls-key", default="", metavar="PATH", help="PEM key of --tls-cert")
    common.add_argument(
        "--tls-server-name", default="", metavar="NAME", help="name to expect in the server's certificate"
    )
    common.add_argument(
        "--token-file",
        default="",
        metavar="PATH",
        help=f"file holding a bearer token (needs TLS) [or the token itself in env {TOKEN_VARIABLE}]",
    )
    return common


def _json_line(shape: object) -> str:
    """One line of the JSON shape the HTTP adapter answers (`lockservice.json_views`)."""
    import json

    return json.dumps(shape, ensure_ascii=False, separators=(",", ":"))


def _as_server_message(message: Message, server_class: type[_M]) -> _M:
    """The client's message as the same message of `lockservice.v1`, which the JSON views take
    (both are generated from the same protos; only the Python package differs)."""
    return server_class.FromString(message.SerializeToString())


def _resource_json_line(resource: Message) -> str:
    from lockservice.json_views import resource_json
    from lockservice.v1 import resource_pb2

    return _json_line(resource_json(_as_server_message(resource, resource_pb2.Resource), with_value=True))


# Resources.


def _get(client: Client, args: argparse.Namespace) -> int:
    resource = client.get(args.key, version=args.version)
    if args.json:
        print(_resource_json_line(resource))
    else:
        sys.stdout.buffer.write(resource.value)
        sys.stdout.flush()
    return 0


def _put(client: Client, args: argparse.Namespace) -> int:
    value = _value_of(args)
    if args.if_version == 0:
        resource = client.create(args.key, value, content_type=args.content_type, lease_id=args.lease)
    else:
        resource = client.put(
            args.key,
            value,
            expected_version=args.if_version,
            content_type=args.content_type,
            fence=_fence_of(args),
            lease_id=args.lease,
        )
    print(f"{resource.key} version {resource.version}")
    return 0


def _cas(client: Client, args: argparse.Namespace) -> int:
    resource = client.compare_and_set(
        args.key,
        _value_of(args),
        expected_version=args.expect_version,
        expected_etag=args.expect_etag,
        expected_value=None if args.expect_value is None else os.fsencode(args.expect_value),
        expect_absent=args.expect_absent,
        content_type=args.content_type,
        fence=_fence_of(args),
        lease_id=args.lease,
    )
    print(f"{resource.key} version {resource.version}")
    return 0


def _delete(client: Client, args: argparse.Namespace) -> int:
    deleted = client.delete(
        args.key, expected_version=args.if_version, allow_missing=args.missing_ok, fence=_fence_of(args)
    )
    if deleted.HasField("resource"):
        print(f"{args.key} deleted at revision {deleted.revision}")
    else:
        print(f"{args.key} was already missing")
    return 0


def _list(client: Client, args: argparse.Namespace) -> int:
    for resource in client.list(args.prefix, with_values=args.json):
        print(_resource_json_line(resource) if args.json else f"{resource.key} version {resource.version}")
    return 0


def _watch(client: Client, args: argparse.Namespace) -> int:
    from lockservice_client.messages import WatchEvent

    events = client.watch(args.key, prefix=args.prefix, start_revision=args.from_revision)
    for seen, event in enumerate(events, start=1):
        if args.json:
            from lockservice.json_views import event_json
            from lockservice.v1 import resource_pb2

            line = _json_line(event_json(_as_server_message(event, resource_pb2.WatchEvent)))
        else:
            kind = WatchEvent.EventType.Name(event.type)
            line = f"{kind} {event.resource.key} version {event.resource.version} revision {event.revision}"
        print(line, flush=True)
        if seen == args.count:
            break
    return 0


# Leases.


def _lease_grant(client: Client, args: argparse.Namespace) -> int:
    print(client.grant_lease(args.ttl, holder=args.holder).lease_id)
    return 0


def _lease_get(client: Client, args: argparse.Namespace) -> int:
    from lockservice.json_views import lease_json
    from lockservice.v1 import lease_pb2

    print(_json_line(lease_json(_as_server_message(client.get_lease(args.lease_id), lease_pb2.Lease))))
    return 0


def _lease_refresh(client: Client, args: argparse.Namespace) -> int:
    lease = client.refresh_lease(args.lease_id)
    print(f"{lease.lease_id} refreshed for {lease.ttl_seconds}s")
    return 0


def _lease_revoke(client: Client, args: argparse.Namespace) -> int:
    revoked = client.revoke_lease(args.lease_id)
    print(f"{args.lease_id} revoked at revision {revoked.revision}")
    return 0


# Locks.


def _run_with_command(
    parser: argparse.ArgumentParser, handler: Handler, command_optional: bool, args: argparse.Namespace
) -> int:
    """`VERB [OPTIONS] NAME [--] CMD...`, and also `VERB NAME OPTIONS -- CMD...`: argparse hands
    everything after NAME to CMD, so options found before a `--` there are parsed again."""
    if "--" in args.argv and args.argv[0] != "--":
        split = args.argv.index("--")
        parser.parse_args([*args.argv[:split], args.name, *args.argv[split:]], namespace=args)
    elif args.argv and args.argv[0] != "--" and args.argv[0].startswith("-"):
        # `elect NAME --listen ...`: options after NAME, and no command.
        parser.parse_args([*args.argv, args.name], namespace=args)
    if args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    if not args.argv and not command_optional:
        _fail(f"{args.command} needs a command: lockservice {args.command} NAME -- CMD [ARGS...]")
        return EXIT_USAGE
    return _runs(handler, args)


def _run_under(hold: AbstractContextManager[HeldLock], what: str, args: argparse.Namespace) -> int:
    """Runs CMD while `hold` holds; `what` names the hold in messages."""
    from lockservice_client.command import run_held

    command = args.argv
    try:
        run = run_held(
            hold, command, kill_after=args.kill_after, extra_env={"LOCKSERVICE_TARGET": args.target}
        )
    except FileNotFoundError:
        _fail(f"{command[0]}: command not found")
        return EXIT_COMMAND_NOT_FOUND
    except PermissionError:
        _fail(f"{command[0]}: cannot run (permission denied)")
        return EXIT_CANNOT_RUN
    if run.lost:
        _fail(f"{what} (token {run.token}) was lost while {command[0]} ran: {run.lost_cause}")
        return EXIT_LOCK_LOST
    return run.exit_status


def _lock(client: Client, args: argparse.Namespace) -> int:
    hold = client.lock(args.name, args.ttl, wait=args.wait, holder=args.holder)
    return _run_under(hold, f"lock {args.name}", args)


def _elect(client: Client, args: argparse.Namespace) -> int:
    from lockservice_client.recipes import Election

    election = Election(client, args.name, ttl_seconds=args.ttl)
    if args.listen:
        return _listen(election, args.count)
    if not args.argv:
        _fail("elect needs a command, or --listen: lockservice elect NAME -- CMD [ARGS...]")
        return EXIT_USAGE
    hold = election.campaign(args.holder or client.holder, wait=args.wait)
    return _run_under(hold, f"the leadership of {args.name}", args)


def _listen(election: Election, count: int) -> int:
    """Prints the leader (`VALUE token T`, or `(no leader)`) now and at each change."""
    for seen, leader in enumerate(election.observe(), start=1):
        print("(no leader)" if leader is None else f"{leader.value} token {leader.token}", flush=True)
        if seen == count:
            break
    return 0


def _semaphore(client: Client, args: argparse.Namespace) -> int:
    from lockservice_client.recipes import Semaphore

    if args.limit is None:
        _fail("semaphore needs --limit N: lockservice semaphore NAME --limit N -- CMD [ARGS...]")
        return EXIT_USAGE
    semaphore = Semaphore(client, args.name, args.limit, ttl_seconds=args.ttl)
    hold = semaphore.acquire(wait=args.wait, holder=args.holder)
    return _run_under(hold, f"semaphore {args.name}", args)


# The parsers.


def _verb(
    sub: Subparsers, name: str, handler: Handler, common: argparse.ArgumentParser, help_text: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, parents=[common], help=help_text, description=help_text
    )
    parser.set_defaults(run=functools.partial(_runs, handler))
    return parser


def _add_write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "value", nargs="?", metavar="VALUE", help="the value; '-' or none reads standard input"
    )
    parser.add_argument("--content-type", default="", metavar="TYPE", help="media type of the value")
    parser.add_argument("--lease", default="", metavar="LEASE_ID", help="attach the key to this lease")
    parser.add_argument(
        "--fence", type=_fence, metavar="NAME:TOKEN", help="refuse unless TOKEN holds lock NAME"
    )


def _add_resource_verbs(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    get = _verb(sub, "get", _get, common, "print a key's value (exit 4 if missing)")
    get.add_argument("key", metavar="KEY")
    get.add_argument("--version", type=_non_negative_int, default=0, help="a retained past version")
    get.add_argument("--json", action="store_true", help="print the whole resource as one JSON line")

    put = _verb(sub, "put", _put, common, "write a key (exit 3 if --if-version is stale)")
    put.add_argument("key", metavar="KEY")
    _add_write_options(put)
    put.add_argument(
        "--if-version",
        type=_non_negative_int,
        metavar="N",
        help="only if the key is at version N (0: absent)",
    )

    cas = _verb(sub, "cas", _cas, common, "compare-and-set a key (exit 3 if the compare fails)")
    cas.add_argument("key", metavar="KEY")
    _add_write_options(cas)
    expectation = cas.add_mutually_exclusive_group(required=True)
    expectation.add_argument("--expect-version", type=_non_negative_int, metavar="N")
    expectation.add_argument("--expect-etag", metavar="ETAG")
    expectation.add_argument("--expect-value", metavar="VALUE")
    expectation.add_argument("--expect-absent", action="store_true")

    delete = _verb(sub, "delete", _delete, common, "delete a key (exit 4 if missing, 3 if stale)")
    delete.add_argument("key", metavar="KEY")
    delete.add_argument("--if-version", type=_non_negative_int, metavar="N", help="only if at version N")
    delete.add_argument("--missing-ok", action="store_true", help="succeed when the key is already missing")
    delete.add_argument(
        "--fence", type=_fence, metavar="NAME:TOKEN", help="refuse unless TOKEN holds lock NAME"
    )

    listing = _verb(sub, "list", _list, common, "list keys under a prefix: 'KEY version N' lines")
    listing.add_argument("prefix", nargs="?", default="", metavar="PREFIX")
    listing.add_argument("--json", action="store_true", help="one JSON line per resource, with its value")

    watch = _verb(sub, "watch", _watch, common, "print changes: 'PUT|DELETE|EXPIRE KEY version V revision R'")
    watch.add_argument("key", metavar="KEY")
    watch.add_argument("--prefix", action="store_true", help="watch every key under KEY")
    watch.add_argument(
        "--from-revision", type=_non_negative_int, default=0, metavar="R", help="replay from R"
    )
    watch.add_argument("--count", type=_non_negative_int, default=0, metavar="N", help="exit after N events")
    watch.add_argument("--json", action="store_true", help="one JSON line per event")


def _add_lease_verbs(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    lease = sub.add_parser("lease", help="grant, inspect, refresh or revoke a lease")
    lease_sub = lease.add_subparsers(dest="lease_command", required=True, metavar="ACTION")
    grant = _verb(lease_sub, "grant", _lease_grant, common, "grant a lease and print its id")
    grant.add_argument("ttl", type=_non_negative_int, metavar="TTL_SECONDS")
    grant.add_argument("--holder", default=None, help="who holds it (default HOST:PID)")
    for name, handler, help_text in (
        ("get", _lease_get, "print a lease as one JSON line"),
        ("refresh", _lease_refresh, "extend a lease to its full TTL"),
        ("revoke", _lease_revoke, "end a lease: release its locks, delete its keys"),
    ):
        _verb(lease_sub, name, handler, common, help_text).add_argument("lease_id", metavar="LEASE_ID")


def _add_command_verb(
    sub: Subparsers,
    common: argparse.ArgumentParser,
    name: str,
    handler: Handler,
    help_text: str,
    *,
    wait_forever: bool,
    command_optional: bool = False,
) -> argparse.ArgumentParser:
    """A verb that runs CMD while holding something: NAME, `-- CMD`, and the hold's options."""
    parser = _verb(sub, name, handler, common, help_text)
    parser.set_defaults(run=functools.partial(_run_with_command, parser, handler, command_optional))
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    parser.add_argument(
        "--ttl", type=_non_negative_int, default=10, metavar="SECONDS", help="lease TTL (default 10)"
    )
    parser.add_argument(
        "--wait",
        type=_non_negative_seconds,
        default=None if wait_forever else 0.0,
        metavar="SECONDS",
        help="queue this long if held (default: as long as it takes)"
        if wait_forever
        else "queue this long if held (default: exit 3)",
    )
    parser.add_argument("--holder", default=None, help="who holds it (default HOST:PID)")
    parser.add_argument(
        "--kill-after",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="if the hold is lost: SIGTERM CMD, then SIGKILL after this long (default 10)",
    )
    return parser


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_hold_verbs(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _add_command_verb(
        sub,
        common,
        "lock",
        _lock,
        "run CMD while holding lock NAME (token in $LOCKSERVICE_FENCING_TOKEN)",
        wait_forever=False,
    )
    elect = _add_command_verb(
        sub,
        common,
        "elect",
        _elect,
        "campaign in election NAME and run CMD while leader (--holder is the leader's value), "
        "or --listen: print the leader at each change",
        wait_forever=True,
        command_optional=True,
    )
    elect.add_argument("--listen", action="store_true", help="print 'VALUE token T' lines, '(no leader)'")
    elect.add_argument(
        "--count", type=_non_negative_int, default=0, metavar="N", help="with --listen: exit after N lines"
    )
    semaphore = _add_command_verb(
        sub,
        common,
        "semaphore",
        _semaphore,
        "run CMD while holding one of the --limit slots of semaphore NAME",
        wait_forever=True,
    )
    # Required, but checked after the options that may follow NAME are parsed (see _run_with_command).
    semaphore.add_argument(
        "--limit", type=_positive_int, metavar="N", help="at most N holders at once (required)"
    )


def add_client_commands(sub: Subparsers) -> None:
    """Registers the client verbs; each sets `run(args) -> exit status` as the `serve` parser does."""
    common = _common_options()
    _add_resource_verbs(sub, common)
    _add_lease_verbs(sub, common)
    _add_hold_verbs(sub, common)
