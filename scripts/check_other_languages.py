"""Run the README's Go and Java generation commands ("## Other languages") as written.

Each language's first ```sh block after its bold heading (**Go**, **Java**) runs with bash in a
scratch directory holding a copy of protos/, so the commands prove that protos/ alone generates
(and for Java, compiles) a client. A language whose tools are not installed is skipped with a
loud message on stderr, not failed, except under CI=true: the generators come from the machine's
package registries (Debian's), which .ci/run installs.

    python scripts/check_other_languages.py   # exit 1 if a language fails, or lacks its tools in CI
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMAND_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Language:
    """A README heading, the executables and files its block needs, and files it must write."""

    heading: str
    tools: tuple[str, ...]
    needed_files: tuple[str, ...]
    outputs: tuple[str, ...]


_JAVA_LIBS = "/usr/share/java"
_JAVA_JARS = ("protobuf", "grpc-api", "grpc-stub", "grpc-protobuf", "guava", "proto-google-common-protos")
LANGUAGES = (
    Language(
        heading="**Go**",
        tools=("protoc", "protoc-gen-go", "protoc-gen-go-grpc"),
        needed_files=(),
        outputs=(
            "gen/go/lockservice/v1/errors.pb.go",
            "gen/go/lockservice/v1/resource.pb.go",
            "gen/go/lockservice/v1/resource_grpc.pb.go",
            "gen/go/lockservice/v1/lease_grpc.pb.go",
            "gen/go/lockservice/v1/lock_grpc.pb.go",
        ),
    ),
    Language(
        heading="**Java**",
        tools=("protoc", "grpc_java_plugin", "javac"),
        needed_files=tuple(f"{_JAVA_LIBS}/{jar}.jar" for jar in _JAVA_JARS),
        outputs=(
            "gen/java/dev/lockservice/v1/ConflictDetail.java",
            "gen/java/dev/lockservice/v1/ResourceServiceGrpc.java",
            "gen/classes/dev/lockservice/v1/ResourceServiceGrpc.class",
            "gen/classes/dev/lockservice/v1/LockServiceGrpc.class",
        ),
    ),
)


def readme_block(readme: str, heading: str) -> str:
    """The first ```sh block after `heading` in the "Other languages" section."""
    section = readme.split("\n## Other languages\n", 1)[1].split("\n## ", 1)[0]
    after_heading = section.split(f"\n{heading}", 1)[1]
    match = re.search(r"```sh\n(.*?)```", after_heading, re.S)
    if match is None:
        raise SystemExit(f"README: no ```sh block after {heading}")
    return match.group(1)


def missing(language: Language) -> list[str]:
    """The tools and files `language` needs that this machine lacks."""
    tools = [tool for tool in language.tools if shutil.which(tool) is None]
    return tools + [path for path in language.needed_files if not pathlib.Path(path).exists()]


def check(language: Language, commands: str) -> bool:
    """Runs `commands` in a scratch copy of protos/; True when they succeed and write `outputs`."""
    with tempfile.TemporaryDirectory(prefix="lockservice-gen-") as scratch_name:
        scratch = pathlib.Path(scratch_name)
        shutil.copytree(ROOT / "protos", scratch / "protos")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            check=False,
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
        if result.returncode != 0:
            print(f"{language.heading}: the README's commands failed ({result.returncode}):", file=sys.stderr)
            print(result.stdout + result.stderr, file=sys.stderr)
            return False
        absent = [output for output in language.outputs if not (scratch / output).is_file()]
        if absent:
            written = ", ".join(absent)
            print(f"{language.heading}: the README's commands did not write {written}", file=sys.stderr)
            return False
    print(f"{language.heading}: the README's commands generated the client from protos/ alone")
    return True


def main() -> int:
    readme = README.read_text()
    # .ci/run installs the generators, so under CI their absence is a broken install, not a skip.
    in_ci = os.environ.get("CI", "").lower() == "true"
    ok = True
    for language in LANGUAGES:
        commands = readme_block(readme, language.heading)
        lacking = missing(language)
        if lacking and in_ci:
            print(f"FAILED {language.heading}: {', '.join(lacking)} not installed", file=sys.stderr)
            ok = False
            continue
        if lacking:
            print(
                f"!!! SKIPPED {language.heading}: {', '.join(lacking)} not installed; "
                "its README commands were NOT checked !!!",
                file=sys.stderr,
            )
            continue
        ok = check(language, commands) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
