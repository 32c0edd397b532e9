"""The client's own stubs: generated from the same protos as the server's, importable beside them,
and checked for drift."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

CLIENT_PROJECT = Path(__file__).resolve().parent.parent
GENERATOR = CLIENT_PROJECT / "scripts" / "gen_client_protos.py"
STUBS = CLIENT_PROJECT / "src" / "lockservice_client" / "_proto"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_client_protos", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_stub_imports_the_server_package() -> None:
    server_import = re.compile(r"^\s*(from|import) lockservice\.v1\b", re.M)
    offenders = [p.name for p in STUBS.iterdir() if p.is_file() and server_import.search(p.read_text())]
    assert offenders == []
    assert "from lockservice_client._proto import lock_pb2" in (STUBS / "resource_pb2.py").read_text()


def test_committed_stubs_match_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_drift_check_names_changed_missing_and_extra_files(tmp_path: Path) -> None:
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    committed.mkdir()
    fresh.mkdir()
    for name, text in {"same_pb2.py": "x", "changed_pb2.py": "old", "extra_pb2.py": "x"}.items():
        (committed / name).write_text(text)
    for name, text in {"same_pb2.py": "x", "changed_pb2.py": "new", "new_pb2.pyi": "x"}.items():
        (fresh / name).write_text(text)
    assert _generator().stale_files(committed, fresh) == ["changed_pb2.py", "extra_pb2.py", "new_pb2.pyi"]


@pytest.mark.parametrize("first", ["server", "client"])
def test_server_and_client_stubs_import_in_one_process(first: str) -> None:
    """Both register the same proto files (same names, same bytes) in protobuf's default pool, so
    either may be imported first and a message from one is a message of the other."""
    imports = {
        "server": "from lockservice.v1 import errors_pb2 as server_errors, resource_pb2 as server_resource",
        "client": (
            "from lockservice_client._proto import errors_pb2 as client_errors; "
            "from lockservice_client._proto import resource_pb2 as client_resource"
        ),
    }
    second = "client" if first == "server" else "server"
    script = textwrap.dedent(
        f"""
        {imports[first]}
        {imports[second]}
        from google.protobuf import any_pb2

        assert client_resource.Resource is server_resource.Resource
        wire = server_resource.Resource(key="k", version=3).SerializeToString()
        print(client_resource.Resource.FromString(wire).version)
        packed = any_pb2.Any()
        packed.Pack(server_errors.ConflictDetail(current_version=7))
        detail = client_errors.ConflictDetail()
        print(packed.Unpack(detail), detail.current_version)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3", "True 7"]
