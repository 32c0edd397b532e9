"""The operator's read-only client verbs: `locks`, `lock-info` and `leases`.

They answer "who holds what, since when, until when, and who waits" from a running server
(`--target`, as the other client verbs), through ListLocks, GetLock and ListLeases. Each prints
one line per lock or lease (`--json`: one JSON object per line, in the shape `GET /v1/locks`
and `GET /v1/leases` list them), and fails as the other client verbs do
(`lockservice.cli_client`: one line, exit 4 when not found).

A lock the caller may read but not take is shown without its holder, lease and token
("holder withheld"); locks it may not read are not shown at all.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lockservice.cli_client import _as_server_message, _common_options, _json_line, _verb
from lockservice.json_views import lease_json, listed_lock_json
from lockservice.v1 import lease_pb2 as server_lease_pb2
from lockservice.v1 import lock_pb2 as server_lock_pb2

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp
    from lockservice_client import Client
    from lockservice_client._proto import lease_pb2, lock_pb2

    from lockservice.cli import Subparsers

__all__ = ["ADMIN_COMMANDS", "add_admin_commands", "describe_lease", "describe_lock"]

ADMIN_COMMANDS = ("locks", "lock-info", "leases")


def _time(stamp: Timestamp) -> str:
    return stamp.ToJsonString()


def describe_lock(lock: lock_pb2.Lock) -> str:
    """One line: the lock, who holds it (or that it is free) and how many wait."""
    if lock.held:
        who = "held (holder withheld)" if lock.detail_withheld else f"held by {lock.holder or '?'}"
        line = f"{lock.name} {who}"
        if not lock.detail_withheld:
            line += f" token {lock.token} lease {lock.lease_id}"
        line += f" since {_time(lock.acquire_time)}"
        if lock.HasField("expire_time"):
            line += f" until {_time(lock.expire_time)}"
    else:
        line = f"{lock.name} free"
        if not lock.detail_withheld:
            line += f" (last token {lock.token})"
        if lock.HasField("available_time"):
            line += f" in lock-delay until {_time(lock.available_time)}"
    return line + f"; {lock.waiters} waiting"


def _queue_lines(lock: lock_pb2.Lock) -> list[str]:
    return [
        f"  {place}. {waiter.holder or '(holder withheld)'} waits until {_time(waiter.deadline)}"
        for place, waiter in enumerate(lock.queue, start=1)
    ]


def describe_lease(lease: lease_pb2.Lease) -> str:
    """One line: the lease, its holder, TTL, expiry, and what it holds."""
    return (
        f"{lease.lease_id} holder {lease.holder or '-'} ttl {lease.ttl_seconds}s "
        f"expires {_time(lease.expire_time)} ({lease.remaining_ms // 1000}s left) "
        f"locks [{', '.join(lease.lock_names)}] keys [{', '.join(lease.resource_keys)}]"
    )


def _lock_json_line(lock: lock_pb2.Lock) -> str:
    """The lock in the JSON shape the HTTP adapter lists it in (`GET /v1/locks`)."""
    return _json_line(listed_lock_json(_as_server_message(lock, server_lock_pb2.Lock)))


def _lease_json_line(lease: lease_pb2.Lease) -> str:
    return _json_line(lease_json(_as_server_message(lease, server_lease_pb2.Lease)))


def _locks(client: Client, args: argparse.Namespace) -> int:
    for lock in client.list_locks(args.prefix, page_size=args.page_size, include_queue=args.queue):
        if args.json:
            print(_lock_json_line(lock))
            continue
        print(describe_lock(lock))
        for line in _queue_lines(lock):
            print(line)
    return 0


def _lock_info(client: Client, args: argparse.Namespace) -> int:
    lock = client.get_lock(args.name)
    # GetLock does not carry the queue: the listing of this one name does (a name sorts first
    # among the names it prefixes), unless it withholds what GetLock showed.
    for listed in client.list_locks(args.name, page_size=1, include_queue=True):
        if listed.name == args.name and not listed.detail_withheld:
            lock = listed
        break
    if args.json:
        print(_lock_json_line(lock))
        return 0
    print(describe_lock(lock))
    for line in _queue_lines(lock):
        print(line)
    return 0


def _leases(client: Client, args: argparse.Namespace) -> int:
    for lease in client.list_leases(holder=args.holder, page_size=args.page_size):
        print(_lease_json_line(lease) if args.json else describe_lease(lease))
    return 0


def _page_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page size from 1 to 1000")
    return int(text)


def add_admin_commands(sub: Subparsers) -> None:
    """Registers `locks`, `lock-info` and `leases`; each sets `run(args) -> exit status`."""
    common = _common_options()
    locks = _verb(
        sub, "locks", _locks, common, "list the locks under a prefix: holder, token, expiry, waiters"
    )
    locks.add_argument(
        "prefix", nargs="?", default="", metavar="PREFIX", help="lock names to list (default all)"
    )
    locks.add_argument("--queue", action="store_true", help="also list each lock's queued callers, in order")
    info = _verb(sub, "lock-info", _lock_info, common, "show one lock: holder, token, expiry and its queue")
    info.add_argument("name", metavar="NAME")
    leases = _verb(
        sub, "leases", _leases, common, "list your live leases: holder, TTL, expiry, what they hold"
    )
    leases.add_argument("--holder", default="", help="only leases granted to this holder")
    for parser in (locks, info, leases):
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
    for parser in (locks, leases):
        parser.add_argument(
            "--page-size", type=_page_size, default=100, metavar="N", help="items per call (default 100)"
        )
