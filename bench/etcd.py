"""A local single-member etcd for the naive-client comparison (issue 20), and its v3 KV API.

`bench.harness.Servers(Backend("etcd"))` starts `etcd` (the Debian package `etcd-server`, or any
etcd 3.4+ on PATH) on loopback: a data directory inside the run's temporary directory, a free
client port and a free peer port, default durability (the WAL is fsynced before a write is
acknowledged, as lockservice's SQLite commit is), warnings-only logs; it is stopped by its
process id when the run ends, like every server the bench starts.

The load generator speaks etcd's own gRPC API, as lockservice's bench clients do theirs: a
hand-written subset of etcd's rpc.proto (`bench/etcd_kv.proto`: KV.Range and KV.Txn with the
fields used, etcd's field numbers) loaded at run time with `grpc.protos_and_services`
(grpcio-tools, a dev dependency), since the Python etcd3 clients do not work with protobuf 7.
"""

from __future__ import annotations

import functools
import shutil
from types import ModuleType

__all__ = ["available", "command", "kv_protos"]

_PROTO = "bench/etcd_kv.proto"  # found on sys.path: the repository root, where `python -m bench` runs


def available() -> bool:
    """Whether an `etcd` binary is on PATH."""
    return shutil.which("etcd") is not None


def command(data_dir: str, target: str, peer_port: int) -> list[str]:
    """The command line of a one-member etcd serving gRPC (and its JSON gateway) at `target`."""
    client_url = f"http://{target}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    return [
        "etcd",
        "--name=bench",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=bench={peer_url}",
        "--logger=zap",
        "--log-level=warn",
    ]


@functools.cache
def kv_protos() -> tuple[ModuleType, ModuleType]:
    """(messages, services) of `bench/etcd_kv.proto`: `KVStub(channel)` has `Range` and `Txn`."""
    import grpc

    return grpc.protos_and_services(_PROTO)
