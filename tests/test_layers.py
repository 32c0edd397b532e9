"""Imports point down the layers: the core and the stores never see gRPC, protobuf or the wire;
only the stores know SQL; the gRPC adapter never imports the HTTP adapter; only the startup
module picks a store backend; and importing a package loads nothing heavy."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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


def test_the_memory_store_needs_no_database() -> None:
    """It stands in for a database in the core's tests: no SQL, no driver, no concrete store."""
    database = re.compile(
        r"^\s*(import|from) (sqlite3|sqlite_utils|psycopg|lockservice\.store\.(sqlite|postgres))", re.M
    )
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _sources("store", "memory")
        if SQL.search(path.read_text()) or database.search(path.read_text())
    ]
    assert _sources("store", "memory")
    assert offenders == []


# -- inside the core: one home per concept (issue #16) ------------------------------------------

CORE = PACKAGE / "core"
CORE_IMPORT = re.compile(r"^\s*(?:from|import) (lockservice(?:\.\w+)*)", re.M)
# What the core may not reach: the adapters, the wire, the entry points, the concrete stores.
OUTSIDE_THE_CORE = re.compile(r"lockservice\.(rpc|http|v1|cli\w*|store(?!\.base$))(\.|$)")


def _imports(path: Path) -> set[str]:
    return set(CORE_IMPORT.findall(path.read_text()))


def _offenders(paths: list[Path], wrong: Callable[[str], bool]) -> dict[str, list[str]]:
    """The modules among `paths` that import a `wrong` name, with those names."""
    found = {str(path.relative_to(PACKAGE)): sorted(filter(wrong, _imports(path))) for path in paths}
    return {path: names for path, names in found.items() if names}


def test_the_core_imports_nothing_above_it_nor_a_store_but_its_contract() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imports(path) if OUTSIDE_THE_CORE.match(name)
        )
        for path in _sources("core")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_locks_reach_into_leases_only_through_their_record_modules() -> None:
    """A lock is held under a lease: the locks grant one, check one is live and end a dead
    holder's (`grant`, `lifetime`, `end`), and never use the leases' entry points."""
    allowed = {f"lockservice.core.leases.{name}" for name in ("grant", "lifetime", "end")}
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name
            for name in _imports(path)
            if name.startswith("lockservice.core.leases") and name not in allowed
        )
        for path in CORE.joinpath("locks").glob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_leases_reach_into_locks_only_where_a_lease_ends() -> None:
    """Ending a lease frees its locks: `leases/end.py` uses the locks' hand-over, and no other
    leases module imports the locks (the package's `__init__` only fixes their load order)."""
    modules = [path for path in _sources("core", "leases") if path.name != "__init__.py"]
    assert _offenders(modules, lambda name: name.startswith("lockservice.core.locks")) == {
        "core/leases/end.py": ["lockservice.core.locks.handoff"]
    }
    init = _imports(CORE / "leases" / "__init__.py")
    assert {name for name in init if name.startswith("lockservice.core.locks")} == {"lockservice.core.locks"}


def _lock_modules_reached_from(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py")
        for imported in _imports(path):
            if imported.startswith("lockservice.core.locks.") and imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_fencing_rests_on_the_lock_state_not_on_the_queue() -> None:
    """CompareAndSet and every fenced write check a token against the lock's state and its
    holder's lease: no queue, hand-over or lock service is loaded into that reasoning."""
    assert _lock_modules_reached_from("lockservice.core.locks.fencing") == {
        "lockservice.core.locks.views",
        "lockservice.core.locks.expiry",
    }


def test_only_the_idempotency_module_runs_a_request_once() -> None:
    """Every mutation writes through `write_once`; request ids are claimed and answers saved in
    `idempotency.py`, and by the hand-over, which saves a queued acquire's answer at its grant."""
    uses = {
        str(path.relative_to(CORE)): sorted(
            set(re.findall(r"\b(run_once|claim_request|save_answer)\(", text))
        )
        for path in CORE.rglob("*.py")
        if path.name != "idempotency.py" and (text := path.read_text())
    }
    assert {path: names for path, names in uses.items() if names} == {"locks/handoff.py": ["save_answer"]}


def test_every_locks_and_leases_module_says_what_it_is_for() -> None:
    undocumented = [
        str(path.relative_to(CORE))
        for path in _sources("core", "locks") + _sources("core", "leases")
        if not path.read_text().startswith('"""')
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    "first",
    [
        "lockservice.core.leases",
        "lockservice.core.leases.end",
        "lockservice.core.leases.lifetime",
        "lockservice.core.locks",
        "lockservice.core.versions",
    ],
)
def test_the_locks_and_leases_load_whichever_is_imported_first(first: str) -> None:
    """The two packages use each other (see above): each loads in a fresh interpreter first."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {first}; from lockservice.core.locks import Locks"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _importers(of: re.Pattern[str]) -> list[str]:
    return sorted(
        str(path.relative_to(PACKAGE))
        for path in _sources()
        if any(of.match(name) for name in _imported_modules(path))
    )


def test_rpc_never_imports_http() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _sources("rpc")
        if any(re.match(r"lockservice\.http\b", name) for name in _imported_modules(path))
    ]
    assert offenders == []


def test_only_the_startup_module_picks_a_store_backend() -> None:
    """Everything else speaks `Store` (`lockservice.store.base`); a backend's own modules and
    the backup tool (which works on the files and databases of both) are in `store/`."""
    importers = _importers(re.compile(r"lockservice\.store\.(sqlite|postgres)\b"))
    assert [name for name in importers if not name.startswith("store/")] == ["server/startup.py"]


HEAVY = ("starlette", "uvicorn", "psycopg", "psycopg_pool", "sqlite_utils", "prometheus_client")


def _loaded_after(statement: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter has loaded after `statement`."""
    probe = f"import sys\n{statement}\nprint(' '.join(sorted(set(m.split('.')[0] for m in sys.modules))))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout.split()
    return [name for name in HEAVY if name in loaded]


def test_package_inits_import_nothing_heavy() -> None:
    packages = sorted(
        ".".join(("lockservice", *path.parent.relative_to(PACKAGE).parts))
        for path in PACKAGE.rglob("__init__.py")
        if not {"v1", "routes"} & set(path.relative_to(PACKAGE).parts)
    )
    assert "lockservice.store.postgres" in packages
    assert _loaded_after("\n".join(f"import {package}" for package in packages)) == []


def test_the_status_codec_loads_no_server_or_adapter() -> None:
    """The HTTP adapter decodes statuses with `lockservice.rpc.status`: it must not drag in the
    server's stores, web framework or metrics."""
    assert _loaded_after("import lockservice.rpc.status") == []


def test_the_command_loads_no_server_stack_until_serve_runs() -> None:
    """Each client verb (`lockservice get`, `lock`, ...) is a process of its own: the server's
    stores, web framework, metrics and logging library would cost every call their import."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, lockservice.cli\nprint(' '.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    assert sorted({name.split(".")[0] for name in loaded} & {*HEAVY, "structlog", "uvloop"}) == []
    assert [name for name in loaded if name.startswith(("lockservice.server", "lockservice.store"))] == []
