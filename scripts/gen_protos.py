"""Generate lockservice/v1 from protos/lockservice/v1 (messages, gRPC stubs, type stubs).

The output is committed so that installing needs no protoc; CI runs this script and fails when
the committed code differs from what the protos generate.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT


def main() -> int:
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "lockservice" / "v1").glob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = pathlib.Path(sys.executable).parent
    plugins = {}
    for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        found = shutil.which(name) or (str(bin_dir / name) if (bin_dir / name).exists() else None)
        if found is None:
            print(f"{name} not found: pip install -e '.[dev]' (mypy-protobuf)", file=sys.stderr)
            return 1
        plugins[name] = found
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        *(f"--plugin={name}={path}" for name, path in plugins.items()),
        f"--python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *sources,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return int(code)
    init = OUT / "lockservice" / "v1" / "__init__.py"
    init.write_text(
        '"""Generated from protos/lockservice/v1 by scripts/gen_protos.py: never edit by hand."""\n'
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
