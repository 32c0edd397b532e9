"""The backup, restore and bump verbs in process: where they find the store (as serve does),
what they print, and their one-line refusals."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from lockservice.cli import main
from lockservice.store.backup import backup_sqlite
from lockservice.store.sqlite.schema import migrate


@pytest.fixture(autouse=True)
def _no_lockservice_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCKSERVICE_DB", "LOCKSERVICE_STORE", "LOCKSERVICE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _empty_store(path: Path) -> None:
    """A lockservice database as a first start leaves it: schema, revision 0."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn)


def test_the_verbs_find_the_store_as_serve_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    by_variable, by_config, by_flag = tmp_path / "v.db", tmp_path / "c.db", tmp_path / "f.db"
    for path in (by_variable, by_config, by_flag):
        _empty_store(path)
    config = tmp_path / "lockservice.toml"
    config.write_text(f'db = "{by_config}"\n')
    out = tmp_path / "out.db"

    assert main(["backup", str(out), "--config", str(config)]) == 0
    assert (
        capsys.readouterr().out == f"backed up {by_config} to {out}: revision 0, {out.stat().st_size} bytes\n"
    )
    monkeypatch.setenv("LOCKSERVICE_STORE", f"sqlite:{by_variable}")
    assert main(["backup", str(out), "--config", str(config)]) == 0  # the variable beats the file
    assert capsys.readouterr().out.startswith(f"backed up {by_variable} to {out}: ")
    assert main(["backup", str(out), "--store", f"sqlite:{by_flag}"]) == 0  # the flag beats both
    assert capsys.readouterr().out.startswith(f"backed up {by_flag} to {out}: ")


def test_restore_prints_where_tokens_and_revisions_continue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, backup = tmp_path / "lockservice.db", tmp_path / "backup.db"
    _empty_store(db)
    backup_sqlite(str(db), str(backup))
    assert main(["restore", str(backup), "--db", str(db), "--force", "--bump", str(10**17)]) == 0
    assert capsys.readouterr().out == (
        f"restored {backup} to {db}\n"
        f"fencing tokens continue above {10**17}; revisions continue above {10**17} "
        "(Watch from an earlier revision answers REVISION_COMPACTED)\n"
    )
    # The store now holds values above the clock: a further bump says the clock may be behind.
    assert main(["bump", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "lockservice: warning: the store held tokens or revisions at or above this clock"
    )
    assert captured.out.startswith(
        f"fencing tokens continue above {10**17}; revisions continue above {10**17} "
    )


def test_postgres_backup_and_restore_point_to_postgres_tools_and_bump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/x"
    for argv in (
        ["backup", str(tmp_path / "out"), "--store", url],
        ["restore", str(tmp_path / "in"), "--store", url],
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            "lockservice: error: a PostgreSQL store is backed up with pg_dump (or PostgreSQL's base "
            "backups and WAL archive) and restored with pg_restore; then run "
            "`lockservice bump --store URL` (see docs/operations.md)\n"
        )


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["restore", "b.db", "--bump", "-1"]) == 2
    assert "argument --bump: '-1' is not a whole number, 0 or more" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "out"), "--store", "mysql://x"]) == 2
    assert capsys.readouterr().err == (
        "lockservice: error: --store: 'mysql://x' is not a postgresql://..., sqlite:PATH or "
        "sqlite:///ABSOLUTE/PATH URL\n"
    )
    missing = tmp_path / "missing.db"
    assert main(["bump", "--db", str(missing)]) == 2
    assert capsys.readouterr().err == f"lockservice: error: the database {missing} does not exist\n"
    assert main(["backup"]) == 2
    assert "the following arguments are required: OUT" in capsys.readouterr().err
