"""Real file-system faults for the storage tests: a small disk that fills up, a read-only directory.

Both need to mount (root with CAP_SYS_ADMIN, as on this project's CI machine). Where mounting is
not allowed the tests that need it are skipped with that reason; the same SQLITE_FULL path is
covered without a mount by tests/store/test_sqlite.py (`PRAGMA max_page_count`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_FILLER_CHUNK = 64 * 1024


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], check=False, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); needs root with CAP_SYS_ADMIN")


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], check=False, capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (created), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _unmount(path)


def fill(disk: Path) -> Path:
    """Writes a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    chunk = b"\0" * _FILLER_CHUNK
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    # The last partial chunk may have left a few bytes: take them too.
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while out.write(b"\0"):
            pass
    return filler


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """`directory` and everything in it read-only: a read-only bind mount as root (root writes
    through file modes), file modes otherwise."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [directory, *directory.iterdir()]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield directory
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    _mount("--bind", str(directory), str(directory))
    try:
        _mount("-o", "remount,ro,bind", str(directory))
        yield directory
    finally:
        _unmount(directory)
