"""Imports point down the layers: the core and the stores never see gRPC, protobuf or the wire;
only the stores know SQL."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lockservice"
WIRE_IMPORT = re.compile(
    r"^\s*(import grpc|from grpc|from google\.|import google|from lockservice\.(v1|rpc))", re.M
)
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|CREATE TABLE)\b")


def _sources(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


def test_core_and_store_do_not_import_the_wire() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _sources("core") + _sources("store") + [PACKAGE / "model.py", PACKAGE / "errors.py"]
        if WIRE_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_only_the_store_knows_sql() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _sources()
        if "store" not in path.relative_to(PACKAGE).parts
        and "v1" not in path.relative_to(PACKAGE).parts
        and SQL.search(path.read_text())
    ]
    assert offenders == []


def test_core_does_not_import_a_concrete_store() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _sources("core")
        if re.search(r"lockservice\.store\.(sqlite|postgres)", path.read_text())
    ]
    assert offenders == []
