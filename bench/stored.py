"""A large SQLite store filled once and copied for each run: the issue table's 1,000,000-key rows.

Filling a million keys over gRPC takes minutes (15.6 for a million keys and leases on the loaded
2-core machine), so `template()` fills one store the way `--stored-keys` / `--stored-leases`
do (`bench.matrix.filled_servers`: leases through the store before the server starts, keys by
Transact once it serves), copies it with lockservice's own online backup (`backup_sqlite`: one
consistent point in time, a self-contained file), and keeps the copy in a cache directory.
Each run then starts its server on a fresh copy of that file, synced before the server starts (so
the kernel is not writing back hundreds of MB beside the run's own fsyncs), and every run starts
from the same bytes. The server opening a copy has read none of it yet: its caches start cold,
as after a restart, where a server filled in place starts warm with what it just wrote.

The cached file is named by its sizes and the SQLite schema version, and is rebuilt when it is
older than `MAX_AGE`: its leases were granted for a day (`bench.fill.FILL_LEASE_TTL`) and must
still be live during the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.harness import Backend, Servers
from bench.loadgen import Sizes
from bench.matrix import filled_servers, server_args
from lockservice.store.backup import backup_sqlite
from lockservice.store.sqlite.schema import SCHEMA_VERSION

__all__ = ["MAX_AGE", "default_cache_dir", "template", "template_name", "template_servers"]

MAX_AGE = 12 * 3600.0  # seconds; the filled leases live 24 h


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/lockservice-bench`, else `~/.cache/lockservice-bench`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lockservice-bench"


def template_name(sizes: Sizes) -> str:
    """The cached file's name: what it holds and the schema it was written with."""
    return (
        f"sqlite-schema{SCHEMA_VERSION}-{sizes.stored_keys}keys-{sizes.value_bytes}b-"
        f"{sizes.stored_leases}leases.db"
    )


def template(cache_dir: Path, sizes: Sizes, log: Callable[[str], None] = print) -> Path:
    """The cached store holding `sizes.stored_keys` keys and `sizes.stored_leases` live leases,
    filled now if it is missing or older than `MAX_AGE`."""
    path = cache_dir / template_name(sizes)
    if path.exists() and time.time() - path.stat().st_mtime < MAX_AGE:
        log(f"stored-keys store: cached {path}")
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"stored-keys store: filling {sizes.stored_keys:,} keys and {sizes.stored_leases:,} leases")
    with filled_servers(Backend("sqlite"), sizes) as servers:
        backup_sqlite(servers.location, str(path))
    log(f"stored-keys store: filled in {time.monotonic() - started:.0f} s, cached as {path}")
    return path


@contextlib.contextmanager
def template_servers(path: Path, sizes: Sizes) -> Iterator[Servers]:
    """A fresh SQLite server on a copy of the cached store `path` (which holds `sizes`' stored
    keys and leases)."""

    def copy(location: str) -> None:
        shutil.copyfile(path, location)
        with open(location, "rb") as copied:
            os.fsync(copied.fileno())  # written back now, not by the kernel during the measured window

    with Servers(Backend("sqlite"), server_args(sizes), copy) as servers:
        yield servers
