"""The recipe verbs of the `lockservice` command against a real server: `elect NAME -- CMD` (and
`elect NAME --listen`), as `etcdctl elect`, and `semaphore NAME --limit N -- CMD`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.test_cli_client import outcome, run, start

pytestmark = pytest.mark.backend_specific(
    "sqlite", reason="the CLI sees only the wire; tests/e2e covers each backend's behaviour"
)


def test_elect_runs_the_command_as_leader_and_listeners_see_each_term(
    server: ServerProcess, prefix: str
) -> None:
    name = f"{prefix}/office"
    listener = start(server, "elect", name, "--listen", "--count", "5")
    assert listener.stdout is not None
    assert listener.stdout.readline() == "(no leader)\n"  # observing from here on, without a gap
    script = 'echo "$LOCKSERVICE_LOCK_NAME $LOCKSERVICE_FENCING_TOKEN"; exit 4'
    assert outcome(run(server, "elect", name, "--holder", "pod-a", "--", "sh", "-c", script)) == (
        4,
        f"{name} 1\n",
        "",
    )
    assert outcome(run(server, "elect", "--holder", "pod-b", name, "sh", "-c", script)) == (
        4,
        f"{name} 2\n",
        "",
    )
    stdout, stderr = listener.communicate(timeout=30)
    assert (listener.returncode, stdout, stderr) == (
        0,
        "pod-a token 1\n(no leader)\npod-b token 2\n(no leader)\n",
        "",
    )


def test_concurrent_campaigns_lead_one_at_a_time(server: ServerProcess, prefix: str, tmp_path: Path) -> None:
    inside, tokens = tmp_path / "inside", tmp_path / "tokens"
    term = (
        f'mkdir {inside} || exit 99; echo "$LOCKSERVICE_FENCING_TOKEN" >> {tokens}; sleep 0.2; rmdir {inside}'
    )
    runs = [start(server, "elect", f"{prefix}/office", "--", "sh", "-c", term) for _ in range(4)]
    statuses = [process.wait(timeout=60) for process in runs]
    for process in runs:
        process.communicate()
    assert statuses == [0, 0, 0, 0]
    assert tokens.read_text().split() == ["1", "2", "3", "4"]


def test_semaphore_runs_at_most_limit_commands_at_once(
    server: ServerProcess, prefix: str, tmp_path: Path
) -> None:
    inside, counts = tmp_path / "inside", tmp_path / "counts"
    inside.mkdir()
    # Each command is in the directory only while it holds a slot: nobody counts more than 2.
    section = f"touch {inside}/$$; ls {inside} | wc -l >> {counts}; sleep 0.2; rm {inside}/$$"
    runs = [
        start(server, "semaphore", f"{prefix}/pool", "--limit", "2", "--", "sh", "-c", section)
        for _ in range(6)
    ]
    statuses = [process.wait(timeout=60) for process in runs]
    for process in runs:
        process.communicate()
    assert statuses == [0] * 6
    seen = [int(count) for count in counts.read_text().split()]
    assert len(seen) == 6
    assert max(seen) <= 2


def test_recipe_verbs_usage_errors(server: ServerProcess, prefix: str) -> None:
    assert outcome(run(server, "elect", f"{prefix}/office")) == (
        2,
        "",
        "lockservice: error: elect needs a command, or --listen: lockservice elect NAME -- CMD [ARGS...]\n",
    )
    assert outcome(run(server, "semaphore", f"{prefix}/pool", "--", "true")) == (
        2,
        "",
        "lockservice: error: semaphore needs --limit N: "
        "lockservice semaphore NAME --limit N -- CMD [ARGS...]\n",
    )
    assert outcome(run(server, "semaphore", f"{prefix}/pool", "--limit", "1")) == (
        2,
        "",
        "lockservice: error: semaphore needs a command: lockservice semaphore NAME -- CMD [ARGS...]\n",
    )
    assert outcome(
        run(server, "semaphore", f"{prefix}/pool", "--limit", "1", "--wait", "0", "--", "true")
    ) == (
        0,
        "",
        "",
    )
