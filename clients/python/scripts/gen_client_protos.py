"""Generate the client's own stubs, `lockservice_client._proto`, from protos/lockservice/v1.

The server package ships the same protos as the module `lockservice.v1`; the client must not ship
a second `lockservice.v1` (the two would clash in one environment). So this script runs protoc into
a scratch directory and rewrites the generated imports from `lockservice.v1` to
`lockservice_client._proto`. The proto file names inside the descriptors stay
`lockservice/v1/*.proto`: both sets of stubs register the identical files in protobuf's default
pool, so the server's and the client's modules can be imported in one process.

    python clients/python/scripts/gen_client_protos.py          # regenerate (output is committed)
    python clients/python/scripts/gen_client_protos.py --check  # exit 1 if the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import pathlib
import re
import shutil
import sys
import tempfile

import grpc_tools
from grpc_tools import protoc

CLIENT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = CLIENT.parent.parent / "protos"
OUT = CLIENT / "src" / "lockservice_client" / "_proto"
GENERATED_PACKAGE = "lockservice.v1"
CLIENT_PACKAGE = "lockservice_client._proto"
INIT_TEXT = (
    '"""Generated from protos/lockservice/v1 by clients/python/scripts/gen_client_protos.py: '
    'never edit by hand."""\n'
)
_IMPORT = re.compile(rf"^from {re.escape(GENERATED_PACKAGE)} import ", re.M)


def _plugin(name: str) -> str:
    found = shutil.which(name)
    beside_python = pathlib.Path(sys.executable).parent / name
    if found is None and beside_python.exists():
        found = str(beside_python)
    if found is None:
        raise SystemExit(f"{name} not found: pip install mypy-protobuf grpcio-tools")
    return found


def _run_protoc(scratch: pathlib.Path) -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "lockservice" / "v1").glob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={scratch}",
            f"--mypy_out={scratch}",
            f"--grpc_python_out={scratch}",
            f"--mypy_grpc_out={scratch}",
            *sources,
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def generate(destination: pathlib.Path) -> None:
    """Writes the rewritten stubs (and the package `__init__`) into `destination`, replacing it."""
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = pathlib.Path(scratch_name)
        _run_protoc(scratch)
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        for source in sorted((scratch / "lockservice" / "v1").iterdir()):
            text = _IMPORT.sub(f"from {CLIENT_PACKAGE} import ", source.read_text())
            (destination / source.name).write_text(text)
        (destination / "__init__.py").write_text(INIT_TEXT)


def stale_files(committed: pathlib.Path, fresh: pathlib.Path) -> list[str]:
    """Names of files that differ, or exist on one side only (caches are ignored)."""
    names = {p.name for p in committed.glob("*.py*")} | {p.name for p in fresh.glob("*.py*")}
    return sorted(
        name
        for name in names
        if not (committed / name).exists()
        or not (fresh / name).exists()
        or not filecmp.cmp(committed / name, fresh / name, shallow=False)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare with the committed code; write nothing")
    args = parser.parse_args(argv)
    if not args.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as fresh_name:
        fresh = pathlib.Path(fresh_name) / "_proto"
        generate(fresh)
        stale = stale_files(OUT, fresh)
    if stale:
        print(
            f"{OUT.relative_to(CLIENT)} is stale ({', '.join(stale)}): "
            "run python clients/python/scripts/gen_client_protos.py and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
