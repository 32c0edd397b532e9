"""`pip install ./clients/python` installs the client and its stubs, and nothing of the server."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

CLIENT_PROJECT = Path(__file__).resolve().parent.parent
SERVER_ONLY_MODULES = ["lockservice", "sqlite_utils", "structlog", "psycopg", "starlette", "uvicorn"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client installed with pip into a directory of its own (from a copy of the project, so
    the checkout gets no build files). Dependencies are not installed: they are checked apart."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "src"):
        copy = shutil.copytree if (CLIENT_PROJECT / name).is_dir() else shutil.copy
        copy(CLIENT_PROJECT / name, source / name)
    shutil.rmtree(source / "src" / "lockservice_client.egg-info", ignore_errors=True)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def test_installs_only_the_client_package(installed: Path) -> None:
    assert sorted(p.name for p in installed.iterdir()) == [
        "lockservice_client",
        "lockservice_client-0.1.0.dist-info",
    ]
    package = installed / "lockservice_client"
    assert (package / "py.typed").exists()
    stubs = sorted(p.name for p in (package / "_proto").iterdir() if p.suffix in (".py", ".pyi"))
    assert stubs == sorted(
        [
            f"{name}{suffix}"
            for name in ("errors", "lease", "lock", "resource")
            for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
        ]
        + ["__init__.py"]
    )


def test_depends_on_grpc_and_protobuf_only(installed: Path) -> None:
    metadata = email.message_from_string(
        (installed / "lockservice_client-0.1.0.dist-info" / "METADATA").read_text()
    )
    requirements = [line for line in metadata.get_all("Requires-Dist") or [] if "extra ==" not in line]
    assert sorted(requirements) == [
        "googleapis-common-protos<2,>=1.70",
        "grpcio-status<2,>=1.85.1",
        "grpcio<2,>=1.85.1",
        "protobuf<8,>=7.35.1",
    ]


def test_works_against_a_server_with_the_server_package_unimportable(
    installed: Path, server: ServerProcess, prefix: str
) -> None:
    script = textwrap.dedent(
        f"""
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {SERVER_ONLY_MODULES!r}:
                    raise ImportError("the client must not import " + name)
                return None

        sys.meta_path.insert(0, Refuse())
        sys.path.insert(0, {str(installed)!r})
        import lockservice_client
        from lockservice_client import AlreadyExists, Client

        assert lockservice_client.__file__.startswith({str(installed)!r})
        with Client({server.address!r}) as client:
            print(client.create("{prefix}/k", b"v").version)
            try:
                client.create("{prefix}/k", b"again")
            except AlreadyExists as error:
                print(error.reason, error.conflict.current_version)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1", "RESOURCE_EXISTS 1"]
