"""The client verbs of the `lockservice` command, run as subprocesses against a real server.

Each verb prints one line per result and one line per error (`lockservice: error: REASON: ...`);
the exit status says conflict (3), not found (4), other error (1), usage (2); `lock` passes on
CMD's status, or 75 when the lock was lost while CMD ran.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from lockservice_client import Client, LockNotFound
from lockservice_client.messages import WatchEvent

from tests.conftest import LOCKSERVICE, ServerProcess
from tests.docs import section
from tests.e2e.support import ServerFactory
from tests.http.support import gateway_client_fixture

pytestmark = pytest.mark.backend_specific(
    "sqlite", reason="the CLI sees only the wire; tests/e2e covers each backend's behaviour"
)


CLI = [LOCKSERVICE]
http = gateway_client_fixture()


def _environment(server: ServerProcess) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LOCKSERVICE_")}
    env["LOCKSERVICE_TARGET"] = server.address
    return env


def run(
    server: ServerProcess, *args: str, stdin: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_environment(server),
        timeout=timeout,
        check=False,
    )


def start(server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(server),
    )


def _holder_lease(client: Client, name: str, timeout: float = 20.0) -> str:
    """The lease of the holder of `name`, once someone holds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(LockNotFound):
            lock = client.get_lock(name)
            if lock.held:
                return lock.lease_id
        time.sleep(0.05)
    raise AssertionError(f"nobody took {name} within {timeout}s")


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def test_put_get_and_a_stale_put(server: ServerProcess, prefix: str) -> None:
    key = f"{prefix}/k"
    assert outcome(run(server, "put", key, "hello")) == (0, f"{key} version 1\n", "")
    assert outcome(run(server, "get", key)) == (0, "hello", "")
    assert outcome(run(server, "put", key, "-", "--if-version", "1", stdin="from stdin")) == (
        0,
        f"{key} version 2\n",
        "",
    )
    assert outcome(run(server, "put", key, "late", "--if-version", "1")) == (
        3,
        "",
        f"lockservice: error: VERSION_MISMATCH: {key} is at version 2, not at the expected version 1\n",
    )
    assert outcome(run(server, "get", key, "--version", "1")) == (0, "hello", "")


def test_json_output_of_get_and_list_is_the_http_shape(
    server: ServerProcess, http: httpx.Client, prefix: str
) -> None:
    """One JSON shape for a resource: the CLI prints what the HTTP adapter answers, integers
    as numbers, times RFC 3339, the value base64 in `value_base64`."""
    key = f"{prefix}/k"
    with Client(server.address) as client:
        client.create(key, b'{"qty": 1}', content_type="application/json")
    shown = run(server, "get", key, "--json")
    assert (shown.returncode, shown.stdout.count("\n")) == (0, 1)
    resource = json.loads(shown.stdout)
    assert (resource["key"], resource["value_base64"], resource["version"], resource["content_type"]) == (
        key,
        "eyJxdHkiOiAxfQ==",
        1,
        "application/json",
    )
    assert resource["lease_id"] == ""
    over_http = http.get("/v1/resources", params={"prefix": f"{prefix}/", "view": "full"})
    assert over_http.status_code == 200
    assert over_http.json()["resources"] == [resource]

    listed = run(server, "list", f"{prefix}/", "--json")
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [resource]


def test_json_output_of_watch_is_the_http_event_shape(server: ServerProcess, prefix: str) -> None:
    key = f"{prefix}/watched"
    with Client(server.address) as client:
        written = client.create(key, b"v")
    shown = run(server, "watch", key, "--from-revision", str(written.mod_revision), "--count", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    event = json.loads(shown.stdout)
    assert (event["type"], event["revision"]) == ("PUT", written.mod_revision)
    assert event["resource"]["version"] == 1
    assert event["resource"]["value_base64"] == "dg=="


def test_put_if_version_zero_creates_only(server: ServerProcess, prefix: str) -> None:
    key = f"{prefix}/k"
    assert outcome(run(server, "put", key, "v", "--if-version", "0")) == (0, f"{key} version 1\n", "")
    assert outcome(run(server, "put", key, "v", "--if-version", "0")) == (
        3,
        "",
        f"lockservice: error: RESOURCE_EXISTS: {key} already exists at version 1\n",
    )


def test_get_of_a_missing_key_exits_4(server: ServerProcess, prefix: str) -> None:
    assert outcome(run(server, "get", f"{prefix}/missing")) == (
        4,
        "",
        f"lockservice: error: RESOURCE_NOT_FOUND: {prefix}/missing does not exist\n",
    )


def test_cas_writes_only_on_a_match(server: ServerProcess, prefix: str) -> None:
    key = f"{prefix}/k"
    assert outcome(run(server, "cas", key, "v1", "--expect-absent")) == (0, f"{key} version 1\n", "")
    assert outcome(run(server, "cas", key, "v2", "--expect-value", "v1")) == (0, f"{key} version 2\n", "")
    assert outcome(run(server, "cas", key, "v3", "--expect-version", "1")) == (
        3,
        "",
        f"lockservice: error: VERSION_MISMATCH: {key} is at version 2, not at the expected version 1\n",
    )
    result = run(server, "cas", key, "v3")
    assert result.returncode == 2
    assert (
        "one of the arguments --expect-version --expect-etag --expect-value --expect-absent is required"
        in (result.stderr)
    )


def test_delete_list_and_missing_ok(server: ServerProcess, prefix: str) -> None:
    with Client(server.address) as client:
        for name in ("b", "a", "c"):
            client.create(f"{prefix}/{name}", name.encode())
    assert outcome(run(server, "list", f"{prefix}/")) == (
        0,
        f"{prefix}/a version 1\n{prefix}/b version 1\n{prefix}/c version 1\n",
        "",
    )
    assert run(server, "delete", f"{prefix}/a", "--if-version", "2").returncode == 3
    deleted = run(server, "delete", f"{prefix}/a", "--if-version", "1")
    with Client(server.address) as client:
        put, delete = itertools.islice(client.watch(f"{prefix}/a", start_revision=1), 2)
    assert (put.type, delete.type) == (WatchEvent.PUT, WatchEvent.DELETE)
    assert outcome(deleted) == (0, f"{prefix}/a deleted at revision {delete.revision}\n", "")
    assert outcome(run(server, "delete", f"{prefix}/a")) == (
        4,
        "",
        f"lockservice: error: RESOURCE_NOT_FOUND: {prefix}/a does not exist\n",
    )
    assert outcome(run(server, "delete", f"{prefix}/a", "--missing-ok")) == (
        0,
        f"{prefix}/a was already missing\n",
        "",
    )
    assert outcome(run(server, "list", f"{prefix}/")) == (
        0,
        f"{prefix}/b version 1\n{prefix}/c version 1\n",
        "",
    )


def test_watch_replays_from_a_revision_and_stops_after_count(server: ServerProcess, prefix: str) -> None:
    with Client(server.address) as client:
        first = client.create(f"{prefix}/k", b"1")
        second = client.put(f"{prefix}/k", b"2")
        deleted = client.delete(f"{prefix}/k")
    result = run(
        server, "watch", f"{prefix}/", "--prefix", "--from-revision", str(first.mod_revision), "--count", "3"
    )
    assert outcome(result) == (
        0,
        f"PUT {prefix}/k version 1 revision {first.mod_revision}\n"
        f"PUT {prefix}/k version 2 revision {second.mod_revision}\n"
        f"DELETE {prefix}/k version 2 revision {deleted.revision}\n",
        "",
    )


def test_lease_grant_get_refresh_revoke(server: ServerProcess) -> None:
    granted = run(server, "lease", "grant", "30", "--holder", "cli-test")
    assert granted.returncode == 0
    lease_id = granted.stdout.strip()
    assert len(lease_id) == 32
    shown = run(server, "lease", "get", lease_id)
    assert shown.returncode == 0
    lease = json.loads(shown.stdout)
    assert (lease["lease_id"], lease["holder"], lease["ttl_seconds"]) == (lease_id, "cli-test", 30)
    assert sorted(lease) == [
        "expire_time",
        "grant_time",
        "holder",
        "lease_id",
        "lock_names",
        "remaining_ms",
        "resource_keys",
        "ttl_seconds",
    ]
    assert outcome(run(server, "lease", "refresh", lease_id)) == (0, f"{lease_id} refreshed for 30s\n", "")
    revoked = run(server, "lease", "revoke", lease_id)
    assert (revoked.returncode, revoked.stdout.startswith(f"{lease_id} revoked at revision ")) == (0, True)
    again = run(server, "lease", "revoke", lease_id)
    assert (again.returncode, again.stderr.startswith("lockservice: error: LEASE_NOT_FOUND: ")) == (4, True)
    assert again.stderr.count("\n") == 1


def test_lock_runs_the_command_with_the_token_and_returns_its_status(
    server: ServerProcess, prefix: str
) -> None:
    name = f"{prefix}/lock"
    script = 'echo "$LOCKSERVICE_LOCK_NAME $LOCKSERVICE_FENCING_TOKEN ${#LOCKSERVICE_LEASE_ID}"; exit 7'
    assert outcome(run(server, "lock", name, "--", "sh", "-c", script)) == (7, f"{name} 1 32\n", "")
    assert outcome(run(server, "lock", "--ttl", "5", name, "sh", "-c", script)) == (7, f"{name} 2 32\n", "")
    with Client(server.address) as client:
        assert client.get_lock(name).held is False


def test_lock_options_may_follow_the_name_before_the_separator(server: ServerProcess, prefix: str) -> None:
    assert outcome(run(server, "lock", f"{prefix}/lock", "--ttl", "3", "--", "sh", "-c", "exit 0")) == (
        0,
        "",
        "",
    )


def test_a_fenced_write_from_the_locked_command(server: ServerProcess, prefix: str) -> None:
    key, name = f"{prefix}/data", f"{prefix}/lock"
    write = f'{" ".join(CLI)} put {key} fenced --fence "$LOCKSERVICE_LOCK_NAME:$LOCKSERVICE_FENCING_TOKEN"'
    assert outcome(run(server, "lock", name, "--", "sh", "-c", write)) == (0, f"{key} version 1\n", "")
    assert outcome(run(server, "put", key, "stale", "--fence", f"{name}:1")) == (
        3,
        "",
        f"lockservice: error: STALE_FENCE: fence token 1 is stale: nobody holds lock {name}\n",
    )


def test_lock_held_by_another_exits_3_or_waits_with_wait(server: ServerProcess, prefix: str) -> None:
    name = f"{prefix}/lock"
    with Client(server.address) as client:
        held = client.acquire_lock(name, ttl_seconds=30, holder="someone-else")
        result = run(server, "lock", name, "--", "true")
        assert result.returncode == 3
        assert result.stderr == (
            f"lockservice: error: LOCK_HELD: lock {name} is held by someone-else (token {held.token})\n"
        )
        waiting = start(
            server, "lock", "--wait", "20", name, "--", "sh", "-c", 'echo "$LOCKSERVICE_FENCING_TOKEN"'
        )
        time.sleep(1.0)
        assert waiting.poll() is None
        client.release_lock(name, held.token)
        stdout, stderr = waiting.communicate(timeout=20)
    assert (waiting.returncode, stdout, stderr) == (0, f"{held.token + 1}\n", "")


def test_concurrent_locked_commands_never_overlap(server: ServerProcess, prefix: str, tmp_path: Path) -> None:
    inside, tokens = tmp_path / "inside", tmp_path / "tokens"
    critical_section = (
        f'mkdir {inside} || exit 99; echo "$LOCKSERVICE_FENCING_TOKEN" >> {tokens}; sleep 0.2; rmdir {inside}'
    )
    runs = [
        start(server, "lock", "--wait", "30", f"{prefix}/lock", "--", "sh", "-c", critical_section)
        for _ in range(4)
    ]
    statuses = [process.wait(timeout=60) for process in runs]
    for process in runs:
        process.communicate()
    assert statuses == [0, 0, 0, 0]
    assert tokens.read_text().split() == ["1", "2", "3", "4"]


def test_lost_lock_stops_the_command_and_exits_75(server: ServerProcess, prefix: str, tmp_path: Path) -> None:
    name, marker = f"{prefix}/lock", tmp_path / "terminated"
    script = f'sleep 30 & trap "kill $!; touch {marker}; exit 0" TERM; wait'
    locked = start(server, "lock", "--ttl", "2", "--kill-after", "5", name, "--", "sh", "-c", script)
    with Client(server.address) as client:
        lease_id = _holder_lease(client, name)
        client.revoke_lease(lease_id)  # the lease ends under the running command
    stdout, stderr = locked.communicate(timeout=20)
    assert (locked.returncode, stdout) == (75, "")
    assert marker.exists()
    assert stderr == (
        f"lockservice: error: lock {name} (token 1) was lost while sh ran: LEASE_NOT_FOUND: lease {lease_id} "
        "does not exist (never granted, expired or revoked)\n"
    )


def test_sigterm_is_passed_to_the_command_and_the_lock_released(server: ServerProcess, prefix: str) -> None:
    name = f"{prefix}/lock"
    locked = start(
        server, "lock", name, "--", "sh", "-c", 'sleep 30 & trap "kill $!; exit 5" TERM; echo ready; wait'
    )
    assert locked.stdout is not None
    assert locked.stdout.readline() == "ready\n"
    locked.send_signal(signal.SIGTERM)
    assert locked.wait(timeout=20) == 5
    locked.communicate()
    with Client(server.address) as client:
        assert client.get_lock(name).held is False


def test_command_errors(server: ServerProcess, prefix: str) -> None:
    assert outcome(run(server, "lock", f"{prefix}/lock", "--", "no-such-command-here")) == (
        127,
        "",
        "lockservice: error: no-such-command-here: command not found\n",
    )
    assert outcome(run(server, "lock", f"{prefix}/lock")) == (
        2,
        "",
        "lockservice: error: lock needs a command: lockservice lock NAME -- CMD [ARGS...]\n",
    )
    unreachable = run(server, "get", "k", "--target", "127.0.0.1:1", "--timeout", "5")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("lockservice: error: UNAVAILABLE: ")
    assert unreachable.stderr.count("\n") == 1
    bad_usage = run(server, "put", "k", "v", "--if-version", "seven")
    assert bad_usage.returncode == 2
    assert bad_usage.stderr.endswith("argument --if-version: 'seven' is not a whole number\n")


README_EXAMPLE = re.compile(r"^(lockservice .+?)\s+# (?:exit (\d+): )?(.+)$")


def _readme_examples() -> list[tuple[str, int, str]]:
    """(command, exit status, what it prints) from the `# comment` of each line of the README's
    command-line example: stdout on success, the error line after `exit N:`."""
    (block,) = re.findall(r"```sh\n(.*?)```", section("Command line"), re.S)
    examples = []
    for line in block.splitlines():
        match = README_EXAMPLE.match(line)
        assert match is not None, f"README example without its output: {line}"
        examples.append((match[1], int(match[2] or 0), match[3]))
    return examples


def test_readme_command_line_examples(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory().start()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "lockservice"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(CLI)} "$@"\n')
    wrapper.chmod(0o755)
    env = {**_environment(server), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for command, status, expected in _readme_examples():
        result = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, env=env, timeout=30, check=False
        )
        printed = result.stdout.rstrip("\n") if status == 0 else result.stderr.rstrip("\n")
        assert (result.returncode, printed) == (
            status,
            expected if status == 0 else f"lockservice: error: {expected}",
        )
