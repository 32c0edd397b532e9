"""The issue table's runs that need servers, at tiny sizes: the naive clients against a local etcd
(skipped where no `etcd` is installed; CI installs its binary), and servers
started on copies of the cached large store. No timing assertions."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import grpc
import pytest

from bench import etcd
from bench.harness import Backend
from bench.loadgen import Sizes
from bench.matrix import Settings, measure
from bench.stored import MAX_AGE, template, template_name, template_servers
from bench.workloads import WORKLOADS
from bench.workloads.resources import KV_PREFIX, kv_key, put_all, read_prefix
from lockservice.v1 import lease_pb2, lease_pb2_grpc

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_naive_clients_against_etcd_count_every_increment() -> None:
    if not etcd.available():
        pytest.skip("etcd not installed (apt-get install etcd-server)")
    settings = Settings(workers=1, concurrency=2, duration=0.5, sizes=Sizes(naive_clients=4))
    record = measure(WORKLOADS["cas-hot-naive-etcd"], Backend("etcd"), settings, 1)
    assert (record["backend"], record["errors"], record["check"]) == ("etcd", 0, "ok"), record
    assert record["ops"] > 0 and record["calls_per_op"] >= 2, record


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leases(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        page = lease_pb2_grpc.LeaseServiceStub(channel).ListLeases(
            lease_pb2.ListLeasesRequest(holder="bench-fill", page_size=100), timeout=30
        )
    return len(page.leases)


@pytest.mark.timeout(120)
def test_the_large_store_is_filled_once_and_each_server_starts_on_a_copy(tmp_path: Path) -> None:
    sizes = Sizes(keys=20, stored_keys=30, stored_leases=5)
    logs: list[str] = []
    path = template(tmp_path, sizes, logs.append)
    assert path == tmp_path / template_name(sizes)
    assert template(tmp_path, sizes, logs.append) == path
    assert logs[0] == "stored-keys store: filling 30 keys and 5 leases"
    assert logs[2:] == [f"stored-keys store: cached {path}"]
    digest = _digest(path)
    for _ in range(2):  # the second server sees none of the first one's write
        with template_servers(path, sizes) as servers:
            values = read_prefix(servers.targets[0], KV_PREFIX)
            assert sorted(values) == [kv_key(index) for index in range(30)]
            assert _leases(servers.targets[0]) == 5
            put_all(servers.targets[0], [(kv_key(99), b"written")])
    assert _digest(path) == digest
    stale = time.time() - MAX_AGE - 60
    os.utime(path, (stale, stale))
    template(tmp_path, sizes, logs.append)
    assert logs[3] == "stored-keys store: filling 30 keys and 5 leases"
