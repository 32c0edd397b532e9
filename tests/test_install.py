"""Each distribution installs from its wheel into a fresh virtual environment and works there.

As a user installs them: `lockservice` (the server, its client verbs, the mountable HTTP adapter;
no PostgreSQL driver unless the `postgres` extra is asked for) and `lockservice-client` (the
Python client alone). The wheels are built from the checkout; their dependencies come from the
package index. The server is started from its fresh environment and called from both.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ports import free_port
from lockservice import __version__

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python"
# Building and installing both environments, from a warm pip cache, takes about a minute here.
pytestmark = pytest.mark.timeout(300)


def _run(*argv: str | Path, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _copy_project(source: Path, target: Path, names: tuple[str, ...]) -> Path:
    """The files a build needs, so that building writes nothing into the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, ignore=ignore)
        else:
            shutil.copy(source / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    server = _copy_project(
        ROOT, tmp_path_factory.mktemp("server"), ("pyproject.toml", "README.md", "lockservice")
    )
    client = _copy_project(CLIENT, tmp_path_factory.mktemp("client"), ("pyproject.toml", "README.md", "src"))
    out = tmp_path_factory.mktemp("wheels")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        out,
        server,
        client,
    )
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert sorted(built) == ["lockservice", "lockservice_client"]
    return built


def _venv_installing(path: Path, *requirements: Path) -> subprocess.Popen[str]:
    """Creates a virtual environment at `path` and pip-installs `requirements` into it (the
    wheels given as files, so that an index's package of the same name cannot stand in). The
    environment gets no pip of its own (seeding one costs 3 s of CPU): this pip installs into it."""
    script = (
        f"{sys.executable} -m venv --without-pip {path} && "
        f"{sys.executable} -m pip --python {path}/bin/python install --quiet --disable-pip-version-check "
        + " ".join(str(requirement) for requirement in requirements)
    )
    return subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def venvs(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ "server": `pip install lockservice`; "client": `pip install lockservice-client`; built at once."""
    root = tmp_path_factory.mktemp("venvs")
    paths = {"server": root / "server", "client": root / "client"}
    installs = {
        "server": _venv_installing(paths["server"], wheels["lockservice"], wheels["lockservice_client"]),
        "client": _venv_installing(paths["client"], wheels["lockservice_client"]),
    }
    for name, install in installs.items():
        output, _ = install.communicate(timeout=240)
        assert install.returncode == 0, f"installing {name}:\n{output}"
    for path in paths.values():
        _run(sys.executable, "-m", "pip", "--python", path / "bin" / "python", "check")
    return paths


@pytest.fixture(scope="module")
def live_server(venvs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`lockservice serve` from the fresh server environment (SQLite, no psycopg there)."""
    lockservice = venvs["server"] / "bin" / "lockservice"
    address = f"127.0.0.1:{free_port()}"
    db = tmp_path_factory.mktemp("db") / "lockservice.db"
    log = (db.parent / "server.log").open("w")
    process = subprocess.Popen(
        [lockservice, "serve", "--listen", address, "--db", db], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while _run(lockservice, "health", "--target", address, "--timeout", "1", check=False).returncode:
            assert process.poll() is None, (db.parent / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start serving in 30 s"
            time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_the_server_distribution_says_its_version(venvs: dict[str, Path]) -> None:
    result = _run(venvs["server"] / "bin" / "lockservice", "--version")
    assert result.stdout == f"lockservice {__version__}\n"


def test_the_server_has_no_postgres_driver_unless_asked_and_says_how_to_get_it(
    venvs: dict[str, Path], tmp_path: Path
) -> None:
    python = venvs["server"] / "bin" / "python"
    installed = _run(sys.executable, "-m", "pip", "--python", python, "list", "--format=freeze").stdout
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert {"lockservice", "lockservice-client", "uvloop"} <= names
    assert not names & {"psycopg", "psycopg-binary", "psycopg-pool"}
    refused = _run(
        venvs["server"] / "bin" / "lockservice",
        "serve",
        "--store",
        "postgresql://127.0.0.1/none",
        check=False,
    )
    assert (refused.returncode, refused.stderr) == (
        2,
        "lockservice: error: --store: PostgreSQL support is not installed here: "
        "pip install 'lockservice[postgres]'\n",
    )


def test_the_http_adapter_imports_without_the_storage_stack(venvs: dict[str, Path]) -> None:
    script = textwrap.dedent(
        """
        import sys
        import lockservice
        assert lockservice.__file__.startswith(sys.prefix), lockservice.__file__
        from lockservice.http import create_app, rpc_error_handler
        from lockservice_client import LockserviceError
        create_app(target="127.0.0.1:1")
        loaded = sorted({name.split(".")[0] for name in sys.modules})
        print(",".join(name for name in loaded if name in ("psycopg", "psycopg_pool", "sqlite_utils")))
        """
    )
    assert _run(venvs["server"] / "bin" / "python", "-I", "-c", script).stdout == "\n"


def test_the_server_distributions_client_verbs_work(venvs: dict[str, Path], live_server: str) -> None:
    lockservice = venvs["server"] / "bin" / "lockservice"
    put = _run(lockservice, "put", "install/key", "v1", "--target", live_server)
    assert put.stdout == "install/key version 1\n"
    locked = _run(
        lockservice,
        "lock",
        "install/job",
        "--target",
        live_server,
        "--",
        "sh",
        "-c",
        "echo $LOCKSERVICE_FENCING_TOKEN",
    )
    assert locked.stdout == "1\n"


def test_the_client_distribution_alone_talks_to_the_server(venvs: dict[str, Path], live_server: str) -> None:
    script = textwrap.dedent(
        f"""
        import importlib.util
        from lockservice_client import AlreadyExists, Client

        assert importlib.util.find_spec("lockservice") is None
        with Client({live_server!r}) as client:
            client.create("install/client", b"v")
            try:
                client.create("install/client", b"again")
            except AlreadyExists as error:
                print(error.reason, error.conflict.current_version)
        """
    )
    assert _run(venvs["client"] / "bin" / "python", "-I", "-c", script).stdout == "RESOURCE_EXISTS 1\n"
