"""Top frames of py-spy profiles written by `python -m bench --profile DIR`.

    .venv/bin/python -m bench.profiles DIR/sqlite-cas-hot-1-0.txt [--top 25] [--match lockservice/]

Reads py-spy's raw (collapsed) stacks, one `frame;frame;... COUNT` line per distinct stack, and
prints, per file, the share of samples spent in each frame itself ("self") and under it
("total", counted once per stack), for frames whose location contains `--match`.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """`function (path:line)` -> `function (package/module.py)`: lines merged, paths shortened."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["path"]
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


def top_frames(path: Path, match: str, top: int) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return f"{path}: no samples"
    lines = [f"{path}: {samples} samples", "  total%   self%  frame"]
    for frame, count in total.most_common():
        if match in frame and len(lines) < top + 2:
            lines.append(f"  {100 * count / samples:6.1f}  {100 * own[frame] / samples:6.1f}  {frame}")
    lines.append("  top self:")
    for frame, count in own.most_common(top):
        lines.append(f"  {100 * count / samples:6.1f}  {frame}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="top frames of py-spy raw profiles")
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only frames whose text contains this (total%% list)")
    args = parser.parse_args()
    for path in args.files:
        print(top_frames(path, args.match, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
