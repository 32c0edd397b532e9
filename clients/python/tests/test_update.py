"""`update(key, fn)`: read, apply, conditional write; on conflict re-apply to the value the conflict
carries (re-read only when it carries none), bounded."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lockservice_client import AsyncClient, Backoff, Client, VersionConflict
from lockservice_client._proto import errors_pb2
from lockservice_client._requests import state_from_conflict
from lockservice_client.errors import conflict_from_detail
from tests.conftest import ServerProcess

WORKERS = 16
INCREMENTS_PER_WORKER = 10
STORM_BACKOFF = Backoff(attempts=200, initial=0.002, maximum=0.05)


def increment(value: bytes | None) -> bytes:
    return str(int(value or b"0") + 1).encode()


def test_backoff_grows_exponentially_up_to_the_cap_minus_jitter() -> None:
    backoff = Backoff(attempts=6, initial=0.01, multiplier=2.0, maximum=0.05, jitter=0.5)
    assert [backoff.delay(n, uniform=lambda: 0.0) for n in range(4)] == [0.01, 0.02, 0.04, 0.05]
    assert [backoff.delay(n, uniform=lambda: 1.0) for n in range(4)] == [0.005, 0.01, 0.02, 0.025]


@pytest.mark.parametrize("attempts,jitter", [(0, 1.0), (3, 1.5)])
def test_backoff_refuses_bad_settings(attempts: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(attempts=attempts, jitter=jitter)


def test_update_creates_a_missing_key_from_none(client: Client, prefix: str) -> None:
    seen: list[bytes | None] = []

    def first_write(value: bytes | None) -> bytes:
        seen.append(value)
        return b"1"

    created = client.update(f"{prefix}/k", first_write)
    assert (seen, created.version, created.value) == ([None], 1, b"1")


def test_update_applies_to_the_current_value(client: Client, prefix: str) -> None:
    client.create(f"{prefix}/k", b"41", content_type="text/plain")
    updated = client.update(f"{prefix}/k", increment)
    assert (updated.value, updated.version, updated.content_type) == (b"42", 2, "text/plain")


def test_update_gives_up_after_the_attempts_with_the_last_conflict(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    client.create(key, b"0")
    calls: list[bytes | None] = []

    def write_behind_its_back(value: bytes | None) -> bytes:
        calls.append(value)
        client.put(key, b"someone else")  # every conditional write now conflicts
        return b"mine"

    with pytest.raises(VersionConflict) as caught:
        client.update(key, write_behind_its_back, backoff=Backoff(attempts=3, initial=0.001))
    assert calls == [b"0", b"someone else", b"someone else"]
    assert caught.value.conflict is not None
    assert (caught.value.conflict.current_version, caught.value.conflict.expected) == (4, "version 3")
    assert client.get(key).value == b"someone else"


def _counting_reads(client: Client | AsyncClient) -> list[str]:
    """Records the keys `client.get` is called with, on this instance only."""
    reads: list[str] = []
    real_get = client.get

    def get(key: str, **options: object) -> object:
        reads.append(key)
        return real_get(key, **options)  # type: ignore[arg-type]

    client.get = get  # type: ignore[method-assign,assignment]
    return reads


def test_a_retry_applies_to_the_value_the_conflict_carries_without_reading(
    client: Client, prefix: str
) -> None:
    key = f"{prefix}/k"
    client.create(key, b"10", content_type="text/plain")
    reads = _counting_reads(client)
    seen: list[bytes | None] = []

    def increment_after_a_rival(value: bytes | None) -> bytes:
        seen.append(value)
        if len(seen) == 1:
            client.put(key, b"20")  # a rival's write: this try conflicts
        return increment(value)

    updated = client.update(key, increment_after_a_rival, backoff=Backoff(attempts=3, initial=0.001))
    assert (seen, reads) == ([b"10", b"20"], [key])
    assert (updated.value, updated.version, updated.content_type) == (b"21", 3, "text/plain")


def test_a_conflict_on_a_deleted_key_retries_as_a_create_without_reading(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    client.create(key, b"1")
    reads = _counting_reads(client)
    seen: list[bytes | None] = []

    def increment_after_a_delete(value: bytes | None) -> bytes:
        seen.append(value)
        if len(seen) == 1:
            client.delete(key)
        return increment(value)

    updated = client.update(key, increment_after_a_delete, backoff=Backoff(attempts=3, initial=0.001))
    assert (seen, reads) == ([b"1", None], [key])
    assert (updated.value, updated.version) == (b"1", 1)


def test_a_conflict_whose_state_is_withheld_is_not_taken_for_an_absent_key() -> None:
    withheld = errors_pb2.ConflictDetail(key="k", expected="version 3", state_withheld=True)
    conflict = conflict_from_detail(withheld)
    assert conflict.state_withheld
    assert state_from_conflict("k", conflict) == (False, None)
    assert state_from_conflict("k", conflict_from_detail(errors_pb2.ConflictDetail(key="k"))) == (True, None)


def test_a_value_over_4_kib_is_read_again_after_a_conflict(client: Client, prefix: str) -> None:
    key = f"{prefix}/big"
    client.create(key, b"a" * 5000)
    reads = _counting_reads(client)
    seen: list[bytes | None] = []

    def append_after_a_rival(value: bytes | None) -> bytes:
        seen.append(value)
        if len(seen) == 1:
            client.put(key, b"b" * 5000)
        return (value or b"") + b"!"

    updated = client.update(key, append_after_a_rival, backoff=Backoff(attempts=3, initial=0.001))
    assert (seen, reads) == ([b"a" * 5000, b"b" * 5000], [key, key])
    assert (updated.value, updated.version) == (b"b" * 5000 + b"!", 3)


def test_the_async_update_retries_from_the_conflict_without_reading(
    server: ServerProcess, client: Client, prefix: str
) -> None:
    key = f"{prefix}/k"
    client.create(key, b"5")
    seen: list[bytes | None] = []

    def increment_after_a_rival(value: bytes | None) -> bytes:
        seen.append(value)
        if len(seen) == 1:
            client.put(key, b"7")  # the rival (a blocking client: the server is another process)
        return increment(value)

    async def scenario() -> tuple[list[str], bytes, int]:
        async with AsyncClient(server.address) as aclient:
            reads: list[str] = []
            real_get = aclient.get

            async def get(key: str, **options: object) -> object:
                reads.append(key)
                return await real_get(key, **options)  # type: ignore[arg-type]

            aclient.get = get  # type: ignore[method-assign,assignment]
            updated = await aclient.update(
                key, increment_after_a_rival, backoff=Backoff(attempts=3, initial=0.001)
            )
            return reads, updated.value, updated.version

    assert asyncio.run(scenario()) == ([key], b"8", 3)
    assert seen == [b"5", b"7"]


def test_sixteen_threads_updating_one_key_lose_no_increment(client: Client, prefix: str) -> None:
    key = f"{prefix}/counter"
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(INCREMENTS_PER_WORKER):
                client.update(key, increment, backoff=STORM_BACKOFF)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    final = client.get(key)
    assert (final.value, final.version) == (
        str(WORKERS * INCREMENTS_PER_WORKER).encode(),
        WORKERS * INCREMENTS_PER_WORKER,
    )


def test_sixteen_tasks_updating_one_key_lose_no_increment(server: ServerProcess, prefix: str) -> None:
    key = f"{prefix}/counter"

    async def storm() -> bytes:
        async with AsyncClient(server.address) as client:

            async def worker() -> None:
                for _ in range(INCREMENTS_PER_WORKER):
                    await client.update(key, increment, backoff=STORM_BACKOFF)

            await asyncio.gather(*(worker() for _ in range(WORKERS)))
            return (await client.get(key)).value

    assert asyncio.run(storm()) == str(WORKERS * INCREMENTS_PER_WORKER).encode()
